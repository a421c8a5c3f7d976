//! ptt-list: planning the fan-out of one post to 100,000 subscribers in
//! 5,000 domains (rewriting the message once; per subscriber the VERP
//! return path, the RFC 8058 one-click token (HMAC-SHA256) and its
//! List-Unsubscribe field; grouping by domain). Target: under 200 ms.
//!
//! The plan is checked once before timing (every delivery, its domain,
//! a sample VERP address, List-Unsubscribe and token, the rewritten
//! message) and its size in every timed iteration.
//!
//! References in the same run: the HMAC tokens alone as `one_click_token`
//! makes them (keying the MAC for each address), and a naive plan that only
//! formats the VERP addresses into a `HashMap` keyed by domain.

use std::collections::HashMap;
use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use ptt_list::{Address, DmarcPolicy, FanOut, List, Policy, State, one_click_token, plan_post};

const SUBSCRIBERS: usize = 100_000;
const DOMAINS: usize = 5_000;

fn list(n: usize) -> List {
    let mut state = State::default();
    state
        .create_list(
            "ptt-dev",
            "mailingl.st",
            &[42; 32],
            &[Address::parse("mod@mailingl.st").unwrap()],
            Policy::Open,
        )
        .unwrap();
    let subs: Vec<Address> = (0..n)
        .map(|i| Address::parse(&format!("user.{i}@d{}.example.org", i % DOMAINS)).unwrap())
        .collect();
    state.set_subscribed("ptt-dev", None, &subs, true).unwrap();
    let mut l = state.lists.remove("ptt-dev").unwrap();
    l.settings.subject_prefix = Some("[ptt] ".into());
    l.settings.footer = Some("To leave: ptt-dev-unsubscribe@mailingl.st".into());
    l
}

fn post() -> Vec<u8> {
    let mut m = b"From: Alice Example <alice@strict.example>\r\nTo: ptt-dev@mailingl.st\r\nSubject: a post\r\nMessage-ID: <1@strict.example>\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n".to_vec();
    for i in 0..60 {
        m.extend_from_slice(
            format!("line {i} of a post of about four kilobytes, as lists carry them.\r\n")
                .as_bytes(),
        );
    }
    m
}

/// Panics unless `f` is the whole, correct plan for post 7 of `l`.
fn verify(l: &List, f: &FanOut) {
    assert_eq!(f.len(), SUBSCRIBERS);
    assert_eq!(f.batches().len(), DOMAINS);
    for b in f.batches() {
        assert_eq!(b.len(), SUBSCRIBERS / DOMAINS, "{}", b.domain);
        for d in b.deliveries() {
            assert!(d.rcpt.ends_with(&format!("@{}", b.domain)), "{}", d.rcpt);
        }
    }
    let common = String::from_utf8(f.common.clone()).unwrap();
    for want in [
        "Subject: [ptt] a post\r\n",
        "From: \"Alice Example via ptt-dev\" <ptt-dev@mailingl.st>\r\n",
        "List-Id: <ptt-dev.mailingl.st>\r\n",
        "To leave: ptt-dev-unsubscribe@mailingl.st",
    ] {
        assert!(common.contains(want), "{want:?} missing");
    }
    let i = 12_345;
    let rcpt = format!("user.{i}@d{}.example.org", i % DOMAINS);
    let d = f.deliveries().find(|d| d.rcpt == rcpt).unwrap();
    assert_eq!(
        d.mail_from,
        format!(
            "ptt-dev-return-7-user.{i}=d{}.example.org@mailingl.st",
            i % DOMAINS
        )
    );
    let token = one_click_token(l, &Address::parse(&rcpt).unwrap());
    let message = String::from_utf8(f.message(&d)).unwrap();
    assert!(message.starts_with(&format!(
        "List-Unsubscribe: <https://mailingl.st/lists/unsubscribe?list=ptt-dev&address=user.{i}%40d{}.example.org&token={token}>,\r\n",
        i % DOMAINS
    )));
    assert!(message.ends_with(&common));
}

fn bench(c: &mut Criterion) {
    let l = list(SUBSCRIBERS);
    let msg = post();
    verify(&l, &plan_post(&l, 7, &msg, DmarcPolicy::Reject));
    let mut g = c.benchmark_group("list_fanout_100k");
    g.sample_size(10);
    g.bench_function("ptt_list::plan_post (DMARC From rewrite)", |b| {
        b.iter(|| {
            let f = plan_post(black_box(&l), 7, black_box(&msg), DmarcPolicy::Reject);
            assert_eq!(f.len(), SUBSCRIBERS);
            f
        })
    });
    g.bench_function("reference: one-click HMAC tokens only", |b| {
        b.iter(|| {
            l.subscribers
                .iter()
                .map(|s| one_click_token(&l, s).len())
                .sum::<usize>()
        })
    });
    g.bench_function("reference: naive VERP into HashMap by domain", |b| {
        b.iter(|| {
            let mut by: HashMap<&str, Vec<String>> = HashMap::new();
            for s in &l.subscribers {
                by.entry(s.domain()).or_default().push(format!(
                    "ptt-dev-return-7-{}={}@mailingl.st",
                    s.local(),
                    s.domain()
                ));
            }
            by.len()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
