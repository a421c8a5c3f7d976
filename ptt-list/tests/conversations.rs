//! Whole conversations in memory: every message the list sends is looked at
//! and, where a person would answer it, answered.

use ptt_list::dsn::parse_dsn;
use ptt_list::{
    Address, Authentication, DeliveryResult, DmarcPolicy, Entropy, Event, HoldReason, Incoming,
    Output, Policy, Reply, State, one_click_token,
};

const T0: u64 = 1_750_000_000;
const DAY: u64 = 86_400;

struct World {
    state: State,
    now: u64,
    seed: u8,
}

fn a(s: &str) -> Address {
    Address::parse(s).unwrap()
}

impl World {
    fn new(name: &str, policy: Policy) -> World {
        let mut state = State::default();
        state
            .create_list(
                name,
                "lists.example",
                &[9; 32],
                &[a("mod@example.org")],
                policy,
            )
            .unwrap();
        World {
            state,
            now: T0,
            seed: 1,
        }
    }

    fn entropy(&mut self) -> Entropy {
        self.seed = self.seed.wrapping_add(1);
        let mut e = [0u8; 20];
        for (i, b) in e.iter_mut().enumerate() {
            *b = self.seed.wrapping_mul(31).wrapping_add(i as u8 * 7);
        }
        Entropy(e)
    }

    fn send(&mut self, from: &str, rcpt: &str, body: &str, auth: Authentication) -> Output {
        let data = format!(
            "From: {from}\r\nTo: {rcpt}\r\nSubject: {body}\r\nMessage-ID: <{}@x>\r\n\r\n{body}\r\n",
            self.seed
        );
        self.send_raw(from, rcpt, data.as_bytes(), auth)
    }

    fn send_raw(
        &mut self,
        mail_from: &str,
        rcpt: &str,
        data: &[u8],
        auth: Authentication,
    ) -> Output {
        let e = self.entropy();
        self.now += 60;
        self.state.handle(
            self.now,
            &e,
            &Incoming {
                mail_from,
                rcpt,
                data,
                auth,
            },
        )
    }
}

/// The Reply-To (or From) address of the only message in `out` sent to `to`.
fn reply_address(out: &Output, to: &str) -> String {
    let m = out
        .send
        .iter()
        .find(|m| m.rcpts == [to.to_string()])
        .expect("a message to the requester");
    let text = String::from_utf8(m.data.clone()).unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with("Reply-To: "))
        .expect("Reply-To");
    line["Reply-To: ".len()..].trim().to_string()
}

fn accept_address(out: &Output) -> String {
    let text = String::from_utf8(out.send[0].data.clone()).unwrap();
    text.split_whitespace()
        .find(|w| w.contains("-accept-"))
        .unwrap()
        .to_string()
}

fn dsn(to: &str, rcpt: &str, status: &str) -> Vec<u8> {
    format!(
        "From: MAILER-DAEMON@mx.example.net\r\nTo: {to}\r\nSubject: failure\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\r\n\r\n--b\r\n\
Content-Type: text/plain\r\n\r\nfailed\r\n--b\r\nContent-Type: message/delivery-status\r\n\r\n\
Reporting-MTA: dns; mx.example.net\r\n\r\nFinal-Recipient: rfc822; {rcpt}\r\nAction: failed\r\nStatus: {status}\r\n\r\n--b--\r\n"
    )
    .into_bytes()
}

#[test]
fn subscribe_confirm_post_fanout_bounce_removal() {
    let mut w = World::new("ptt-dev", Policy::Subscribers);
    // bob asks to join; nothing changes before he confirms.
    let out = w.send(
        "bob@example.net",
        "ptt-dev-subscribe@lists.example",
        "subscribe",
        Authentication::default(),
    );
    assert_eq!(out.reply, Reply::Accept);
    assert!(w.state.lists["ptt-dev"].subscribers.is_empty());
    let confirm = reply_address(&out, "bob@example.net");
    assert!(confirm.starts_with("ptt-dev-confirm-"), "{confirm}");
    // A wrong token does nothing.
    let out2 = w.send(
        "bob@example.net",
        "ptt-dev-confirm-aaaaaaaaaaaaaaaa@lists.example",
        "re",
        Authentication::default(),
    );
    assert!(out2.events.contains(&Event::Answered("unknown token")));
    // He replies to the confirmation.
    let out = w.send(
        "bob@example.net",
        &confirm,
        "Re: confirm",
        Authentication::default(),
    );
    assert!(
        out.events
            .contains(&Event::Subscribed(a("bob@example.net"))),
        "{:?}",
        out.events
    );
    assert!(out.changes.lists.contains("ptt-dev"));
    // carol joins directly (administrator).
    w.state
        .set_subscribed(
            "ptt-dev",
            None,
            &[a("carol@other.example"), a("dave@example.net")],
            true,
        )
        .unwrap();

    // bob posts: three subscribers, two domains, VERP per recipient.
    let out = w.send(
        "bob@example.net",
        "ptt-dev@lists.example",
        "first post",
        Authentication::default(),
    );
    let fan = out.fanout.expect("a fan-out");
    assert_eq!(fan.post, 1);
    assert_eq!(fan.len(), 3);
    let domains: Vec<_> = fan.batches().map(|b| b.domain).collect();
    assert_eq!(domains, ["example.net", "other.example"]);
    let d = fan.get(0).unwrap();
    assert_eq!(d.rcpt, "bob@example.net");
    assert_eq!(
        d.mail_from,
        "ptt-dev-return-1-bob=example.net@lists.example"
    );
    let msg = String::from_utf8(fan.message(&d)).unwrap();
    for h in [
        "List-Id: <ptt-dev.lists.example>",
        "List-Post: <mailto:ptt-dev@lists.example>",
        "Precedence: list",
        "Sender: ptt-dev-owner@lists.example",
        "List-Unsubscribe-Post: List-Unsubscribe=One-Click",
        "From: bob@example.net",
    ] {
        assert!(msg.contains(h), "{h} missing in\n{msg}");
    }
    // The post that comes back through the list is a loop.
    let looped = w.send_raw(
        "ptt-dev-return-1-bob=example.net@lists.example",
        "ptt-dev@lists.example",
        &fan.message(&d),
        Authentication::default(),
    );
    assert!(looped.fanout.is_none());
    assert!(matches!(looped.events[0], Event::Dropped { .. }));

    // dave's server says 4xx: queued with backoff, post kept in tmp/.
    let dave = a("dave@example.net");
    let e = w.entropy();
    let out = w.state.delivery_result(
        w.now,
        &e,
        "ptt-dev",
        1,
        &dave,
        DeliveryResult::Temporary("451 try later".into()),
        &fan.common,
    );
    assert!(out.changes.queue && out.changes.blobs_put.contains("ptt-dev-1.eml"));
    let next = w.state.queue[0].next;
    assert_eq!(next, w.now + 15 * 60);
    assert!(w.state.due_retries(w.now).is_empty());
    let due = w.state.due_retries(next);
    assert_eq!(due.len(), 1);
    assert_eq!(
        due[0].1.mail_from,
        "ptt-dev-return-1-dave=example.net@lists.example"
    );
    let out = w.state.delivery_result(
        next,
        &e,
        "ptt-dev",
        1,
        &dave,
        DeliveryResult::Temporary("451 again".into()),
        &fan.common,
    );
    assert!(
        out.events
            .iter()
            .any(|e| matches!(e, Event::Queued { next: n, .. } if *n == next + 30 * 60))
    );
    let out = w.state.delivery_result(
        next + 1800,
        &e,
        "ptt-dev",
        1,
        &dave,
        DeliveryResult::Delivered,
        &fan.common,
    );
    assert!(w.state.queue.is_empty() && w.state.blobs.is_empty());
    assert!(out.changes.blobs_removed.contains("ptt-dev-1.eml"));

    // carol's mailbox is gone: every post bounces (async DSN to the VERP address).
    let carol = a("carol@other.example");
    let mut removed = false;
    for n in 0..10 {
        let out = w.send(
            "bob@example.net",
            "ptt-dev@lists.example",
            &format!("post {n}"),
            Authentication::default(),
        );
        let fan = out.fanout.unwrap();
        let verp = fan
            .batches()
            .nth(1)
            .unwrap()
            .deliveries()
            .next()
            .unwrap()
            .mail_from
            .to_string();
        let report = dsn(&verp, "carol@other.example", "5.1.1");
        assert!(parse_dsn(&report).is_some());
        // The same post bouncing twice counts once.
        let out = w.send_raw("", &verp, &report, Authentication::default());
        let again = w.send_raw("", &verp, &report, Authentication::default());
        assert!(!again.changes.bounces);
        if out
            .events
            .contains(&Event::RemovedForBounces(carol.clone()))
        {
            // The moderators hear of it.
            assert_eq!(out.send.len(), 1);
            assert_eq!(out.send[0].rcpts, ["mod@example.org"]);
            removed = true;
            assert!(n >= 4, "removed after {n} bounces");
            break;
        }
        w.now += DAY / 2;
    }
    assert!(removed);
    assert!(!w.state.lists["ptt-dev"].subscribers.contains(&carol));
    assert!(!w.state.bounces["ptt-dev"].contains_key(carol.key()));
}

#[test]
fn bounce_scores_decay() {
    let mut w = World::new("l", Policy::Open);
    let bob = a("bob@example.net");
    w.state
        .set_subscribed("l", None, std::slice::from_ref(&bob), true)
        .unwrap();
    for post in 1..=4 {
        let report = dsn(
            &format!("l-return-{post}-bob=example.net@lists.example"),
            "bob@example.net",
            "5.2.1",
        );
        w.send_raw(
            "",
            &format!("l-return-{post}-bob=example.net@lists.example"),
            &report,
            Authentication::default(),
        );
        // a month between bounces: the score never builds up
        w.now += 30 * DAY;
    }
    assert!(w.state.lists["l"].subscribers.contains(&bob));
    assert!(w.state.bounce_score("l", &bob, w.now) < 0.1);
    // A soft (4.x.x) failure counts half.
    let verp = "l-return-9-bob=example.net@lists.example";
    w.send_raw(
        "",
        verp,
        &dsn(verp, "bob@example.net", "4.2.2"),
        Authentication::default(),
    );
    let s = w.state.bounce_score("l", &bob, w.now);
    assert!((0.5..0.6).contains(&s), "{s}");
}

#[test]
fn five_hard_bounces_in_a_row_remove_at_a_threshold_of_five() {
    let mut w = World::new("l", Policy::Open);
    let bob = a("bob@example.net");
    w.state
        .set_subscribed("l", None, std::slice::from_ref(&bob), true)
        .unwrap();
    for post in 1..=5 {
        assert!(
            w.state.lists["l"].subscribers.contains(&bob),
            "after {post}"
        );
        let verp = format!("l-return-{post}-bob=example.net@lists.example");
        w.send_raw(
            "",
            &verp,
            &dsn(&verp, "bob@example.net", "5.1.1"),
            Authentication::default(),
        );
        // A minute apart: the decay shaves a little off the first ones.
        w.now += 60;
    }
    assert!(!w.state.lists["l"].subscribers.contains(&bob));
}

#[test]
fn moderated_subscription_and_posts() {
    let mut w = World::new("team", Policy::Moderated);
    w.state
        .lists
        .get_mut("team")
        .unwrap()
        .settings
        .subscription_moderated = true;
    let out = w.send(
        "eve@example.net",
        "team-subscribe@lists.example",
        "subscribe",
        Authentication::default(),
    );
    let confirm = reply_address(&out, "eve@example.net");
    let out = w.send(
        "eve@example.net",
        &confirm,
        "yes",
        Authentication::default(),
    );
    // confirmed, now the moderator decides
    assert!(
        !w.state.lists["team"]
            .subscribers
            .contains(&a("eve@example.net"))
    );
    let mod_mail = out
        .send
        .iter()
        .find(|m| m.rcpts == ["mod@example.org"])
        .unwrap();
    let text = String::from_utf8(mod_mail.data.clone()).unwrap();
    let accept = text
        .split_whitespace()
        .find(|w| w.contains("-accept-"))
        .unwrap()
        .to_string();
    // someone who is not a moderator cannot accept
    let out = w.send("eve@example.net", &accept, "ok", Authentication::default());
    assert!(matches!(out.events[0], Event::Dropped { .. }));
    let out = w.send("mod@example.org", &accept, "ok", Authentication::default());
    assert!(
        out.events
            .contains(&Event::Subscribed(a("eve@example.net")))
    );

    // eve posts: held, the moderator gets the post attached.
    let out = w.send(
        "eve@example.net",
        "team@lists.example",
        "a held post",
        Authentication::default(),
    );
    assert!(out.fanout.is_none());
    assert!(matches!(
        &out.events[0],
        Event::Held {
            reason: HoldReason::Moderated,
            ..
        }
    ));
    assert_eq!(w.state.blobs.len(), 1);
    let accept = accept_address(&out);
    assert!(
        String::from_utf8(out.send[0].data.clone())
            .unwrap()
            .contains("message/rfc822")
    );
    let out = w.send("mod@example.org", &accept, "ok", Authentication::default());
    let fan = out.fanout.expect("released");
    assert!(
        String::from_utf8(fan.common.clone())
            .unwrap()
            .contains("Subject: a held post")
    );
    assert!(w.state.blobs.is_empty() && w.state.lists["team"].held.is_empty());

    // The moderator posts directly.
    let out = w.send(
        "mod@example.org",
        "team@lists.example",
        "from the moderator",
        Authentication::default(),
    );
    assert!(out.fanout.is_some());

    // Another held post, rejected; and a third one expires.
    let out = w.send(
        "eve@example.net",
        "team@lists.example",
        "spam",
        Authentication::default(),
    );
    let reject = accept_address(&out).replace("-accept-", "-reject-");
    let out = w.send("mod@example.org", &reject, "no", Authentication::default());
    assert!(out.fanout.is_none() && w.state.blobs.is_empty());
    w.send(
        "eve@example.net",
        "team@lists.example",
        "late",
        Authentication::default(),
    );
    let deadline = w.state.poll_timeout().unwrap();
    let e = w.entropy();
    let out = w.state.handle_timeout(deadline, &e);
    assert!(w.state.lists["team"].held.is_empty() && w.state.blobs.is_empty());
    assert_eq!(out.changes.blobs_removed.len(), 1);
}

#[test]
fn subscribers_policy_holds_strangers() {
    let mut w = World::new("open-ish", Policy::Subscribers);
    let out = w.send(
        "stranger@example.com",
        "open-ish@lists.example",
        "hello",
        Authentication::default(),
    );
    assert!(matches!(
        &out.events[0],
        Event::Held {
            reason: HoldReason::NotSubscribed,
            ..
        }
    ));
    let mut w = World::new("wide", Policy::Open);
    let out = w.send(
        "stranger@example.com",
        "wide@lists.example",
        "hello",
        Authentication::default(),
    );
    assert!(out.fanout.is_some());
}

#[test]
fn one_click_unsubscribe() {
    let mut w = World::new("news", Policy::Open);
    let bob = a("Bob@Example.NET");
    w.state
        .set_subscribed("news", None, std::slice::from_ref(&bob), true)
        .unwrap();
    let out = w.send(
        "x@example.com",
        "news@lists.example",
        "issue 1",
        Authentication::default(),
    );
    let fan = out.fanout.unwrap();
    let msg = String::from_utf8(fan.message(&fan.get(0).unwrap())).unwrap();
    let token = one_click_token(&w.state.lists["news"], &a("bob@example.net"));
    assert!(msg.contains(&format!("https://lists.example/lists/unsubscribe?list=news&address=Bob%40example.net&token={token}")), "{msg}");
    let e = w.entropy();
    // A forged token changes nothing.
    let out = w
        .state
        .one_click(
            w.now,
            &e,
            "news",
            "bob@example.net",
            "AAAAAAAAAAAAAAAAAAAAAA",
        )
        .unwrap();
    assert!(matches!(out.reply, Reply::Reject { .. }));
    // Another subscriber's token does not work for bob.
    let other = one_click_token(&w.state.lists["news"], &a("carol@example.net"));
    w.state
        .one_click(w.now, &e, "news", "bob@example.net", &other)
        .unwrap();
    assert!(w.state.lists["news"].subscribers.contains(&bob));
    let out = w
        .state
        .one_click(w.now, &e, "news", "bob@example.net", &token)
        .unwrap();
    assert!(out.events.contains(&Event::Unsubscribed(bob.clone())));
    assert!(w.state.lists["news"].subscribers.is_empty());
}

#[test]
fn confirmed_unsubscribe() {
    let mut w = World::new("l", Policy::Open);
    w.state
        .set_subscribed("l", None, &[a("bob@example.net")], true)
        .unwrap();
    let out = w.send(
        "bob@example.net",
        "l-unsubscribe@lists.example",
        "bye",
        Authentication::default(),
    );
    assert_eq!(w.state.lists["l"].subscribers.len(), 1);
    let confirm = reply_address(&out, "bob@example.net");
    let out = w.send(
        "bob@example.net",
        &confirm,
        "Re: bye",
        Authentication::default(),
    );
    assert!(
        out.events
            .contains(&Event::Unsubscribed(a("bob@example.net")))
    );
    assert!(w.state.lists["l"].subscribers.is_empty());
    // bounces and automatic mail never get answers
    let out = w.send_raw(
        "",
        "l-subscribe@lists.example",
        b"From: x@y.z\r\n\r\n",
        Authentication::default(),
    );
    assert!(out.send.is_empty());
}

#[test]
fn dmarc_mitigation_by_policy() {
    let mut w = World::new("l", Policy::Open);
    w.state
        .set_subscribed("l", None, &[a("r@example.net")], true)
        .unwrap();
    let post = |w: &mut World, policy: DmarcPolicy, fail: bool| {
        let auth = Authentication {
            dmarc_pass: !fail,
            dmarc_fail: fail,
            author_policy: policy,
        };
        w.send_raw(
            "ann@strict.example",
            "l@lists.example",
            b"From: Ann <ann@strict.example>\r\nSubject: s\r\n\r\nbody\r\n",
            auth,
        )
    };
    for (policy, rewritten) in [
        (DmarcPolicy::Absent, false),
        (DmarcPolicy::None, false),
        (DmarcPolicy::Quarantine, true),
        (DmarcPolicy::Reject, true),
    ] {
        let out = post(&mut w, policy, false);
        let common = String::from_utf8(out.fanout.unwrap().common).unwrap();
        if rewritten {
            assert!(
                common.contains("From: \"Ann via l\" <l@lists.example>"),
                "{policy:?}\n{common}"
            );
            assert!(common.contains("Reply-To: ann@strict.example"));
        } else {
            assert!(
                common.contains("From: Ann <ann@strict.example>"),
                "{policy:?}\n{common}"
            );
            assert!(!common.contains("Reply-To"));
        }
    }
    // With mitigation off the From stays.
    w.state
        .lists
        .get_mut("l")
        .unwrap()
        .settings
        .dmarc_mitigation = false;
    let out = post(&mut w, DmarcPolicy::Reject, false);
    assert!(
        String::from_utf8(out.fanout.unwrap().common)
            .unwrap()
            .contains("From: Ann <ann@strict.example>")
    );
    // A DMARC failure under p=reject is held silently; a moderator may release it.
    let out = post(&mut w, DmarcPolicy::Reject, true);
    assert!(out.send.is_empty() && out.fanout.is_none());
    let Event::Held {
        token,
        reason: HoldReason::DmarcReject,
        ..
    } = &out.events[0]
    else {
        panic!("{:?}", out.events)
    };
    let out = w.send(
        "mod@example.org",
        &format!("l-accept-{token}@lists.example"),
        "release",
        Authentication::default(),
    );
    assert!(out.fanout.is_some());
    // p=quarantine failures are not held (the receiving side decides).
    let out = post(&mut w, DmarcPolicy::Quarantine, true);
    assert!(out.fanout.is_some());
}

#[test]
fn size_limit_help_roster_owner() {
    let mut w = World::new("a-b", Policy::Open);
    w.state.lists.get_mut("a-b").unwrap().settings.max_size = 100;
    let big = format!("From: x@y.example\r\n\r\n{}\r\n", "x".repeat(200));
    let out = w.send_raw(
        "x@y.example",
        "a-b@lists.example",
        big.as_bytes(),
        Authentication::default(),
    );
    assert!(matches!(out.reply, Reply::Reject { code: 552, .. }));
    w.state.lists.get_mut("a-b").unwrap().settings.max_size = 100_000;
    let out = w.send(
        "x@y.example",
        "a-b-help@lists.example",
        "help",
        Authentication::default(),
    );
    assert!(
        String::from_utf8(out.send[0].data.clone())
            .unwrap()
            .contains("a-b-subscribe@lists.example")
    );
    // the roster is for subscribers only
    let out = w.send(
        "x@y.example",
        "a-b-subscribers@lists.example",
        "who",
        Authentication::default(),
    );
    assert!(out.events.contains(&Event::Answered("roster refused")));
    w.state
        .set_subscribed("a-b", None, &[a("x@y.example")], true)
        .unwrap();
    let out = w.send(
        "x@y.example",
        "a-b-subscribers@lists.example",
        "who",
        Authentication::default(),
    );
    assert!(
        String::from_utf8(out.send[0].data.clone())
            .unwrap()
            .contains("x@y.example")
    );
    let out = w.send(
        "x@y.example",
        "a-b-owner@lists.example",
        "question",
        Authentication::default(),
    );
    assert_eq!(out.send[0].rcpts, ["mod@example.org"]);
    // the forwarded copy coming back is dropped
    let again = w.send_raw(
        "x@y.example",
        "a-b-owner@lists.example",
        &out.send[0].data.clone(),
        Authentication::default(),
    );
    assert!(again.send.is_empty());
    // unknown addresses are refused at once
    let out = w.send(
        "x@y.example",
        "a-b-nothing@lists.example",
        "?",
        Authentication::default(),
    );
    assert!(matches!(out.reply, Reply::Reject { code: 550, .. }));
    assert!(w.state.accepts("a-b-return-3-x=y.example@lists.example"));
    assert!(!w.state.accepts("a-b@other.example"));
}

#[test]
fn prefix_and_footer() {
    let mut w = World::new("l", Policy::Open);
    {
        let l = w.state.lists.get_mut("l").unwrap();
        l.settings.subject_prefix = Some("[l] ".into());
        l.settings.footer = Some("Unsubscribe: l-unsubscribe@lists.example".into());
        l.subscribers.insert(a("r@example.net"));
    }
    let out = w.send(
        "x@y.example",
        "l@lists.example",
        "hello",
        Authentication::default(),
    );
    let common = String::from_utf8(out.fanout.unwrap().common).unwrap();
    assert!(common.contains("Subject: [l] hello"));
    assert!(
        common.ends_with("hello\r\n-- \r\nUnsubscribe: l-unsubscribe@lists.example\r\n"),
        "{common}"
    );
    // a reply keeps a single prefix
    let out = w.send(
        "x@y.example",
        "l@lists.example",
        "Re: [l] hello",
        Authentication::default(),
    );
    assert!(
        String::from_utf8(out.fanout.unwrap().common)
            .unwrap()
            .contains("Subject: Re: [l] hello\r\n")
    );
    // multipart/mixed gets a part of its own
    let mp = b"From: x@y.example\r\nSubject: mp\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"zz\"\r\n\r\n--zz\r\nContent-Type: text/plain\r\n\r\nbody\r\n--zz--\r\n";
    let out = w.send_raw(
        "x@y.example",
        "l@lists.example",
        mp,
        Authentication::default(),
    );
    let common = out.fanout.unwrap().common;
    let parsed = mail_parser::MessageParser::default()
        .parse(&common)
        .unwrap();
    assert_eq!(
        parsed.parts.len(),
        3,
        "{}",
        String::from_utf8_lossy(&common)
    );
}
