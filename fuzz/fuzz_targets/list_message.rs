//! ptt-list: any bytes sent to any of a list's addresses (post, commands,
//! confirm/accept tokens, VERP bounces with DSN bodies) never panic, and
//! the state stays consistent: a post fans out to exactly the subscribers,
//! and the address and DSN parsers survive anything.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ptt_list::dsn::parse_dsn;
use ptt_list::{Address, Authentication, DmarcPolicy, Entropy, Incoming, Policy, State};

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    if let Ok(a) = Address::parse(&text) {
        assert_eq!(Address::parse(&a.to_string()).expect("display parses"), a);
    }
    let _ = parse_dsn(rest);
    let mut state = State::default();
    let m = Address::parse("mod@example.org").expect("fixed address");
    let policy = [Policy::Open, Policy::Subscribers, Policy::Moderated][usize::from(sel % 3)];
    state
        .create_list("a-b", "lists.example", &[5; 32], &[m], policy)
        .expect("fixed list");
    let subs: Vec<Address> = ["x@example.net", "y@other.example", "Z@example.net"]
        .iter()
        .map(|s| Address::parse(s).expect("fixed address"))
        .collect();
    state
        .set_subscribed("a-b", None, &subs, true)
        .expect("list exists");
    if sel & 0x40 != 0 {
        let l = state.lists.get_mut("a-b").expect("list exists");
        l.settings.footer = Some("footer".into());
        l.settings.subject_prefix = Some("[a-b] ".into());
    }
    let rcpts = [
        "a-b@lists.example",
        "a-b-subscribe@lists.example",
        "a-b-unsubscribe@lists.example",
        "a-b-help@lists.example",
        "a-b-owner@lists.example",
        "a-b-subscribers@lists.example",
        "a-b-return-1-x=example.net@lists.example",
        "a-b-confirm-aaaaaaaaaaaaaaaa@lists.example",
    ];
    let rcpt = rcpts[usize::from(sel >> 3) % rcpts.len()];
    let auth = Authentication {
        dmarc_pass: sel & 0x80 == 0,
        dmarc_fail: sel & 0x80 != 0,
        author_policy: [
            DmarcPolicy::Absent,
            DmarcPolicy::None,
            DmarcPolicy::Quarantine,
            DmarcPolicy::Reject,
        ][usize::from(sel & 3)],
    };
    let mail_from = if sel & 0x20 != 0 { "" } else { "x@example.net" };
    let out = state.handle(
        1_700_000_000,
        &Entropy([sel; 20]),
        &Incoming {
            mail_from,
            rcpt,
            data: rest,
            auth,
        },
    );
    if let Some(f) = &out.fanout {
        assert_eq!(f.len(), state.lists["a-b"].subscribers.len());
    }
    // An accept from the moderator for whatever was held.
    let held: Vec<String> = state.lists["a-b"]
        .held
        .iter()
        .map(|h| h.token.clone())
        .collect();
    for t in held {
        let r = format!("a-b-accept-{t}@lists.example");
        let msg = b"From: mod@example.org\r\nSubject: ok\r\n\r\nok\r\n";
        let out = state.handle(
            1_700_000_100,
            &Entropy([1; 20]),
            &Incoming {
                mail_from: "mod@example.org",
                rcpt: &r,
                data: msg,
                auth: Authentication::default(),
            },
        );
        assert!(out.fanout.is_some());
    }
    assert!(state.blobs.is_empty());
});
