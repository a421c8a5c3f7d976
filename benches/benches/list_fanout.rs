//! ptt-list: planning the fan-out of one post to 100,000 subscribers
//! (rewriting the message once; per subscriber the VERP return path, the
//! RFC 8058 one-click token (HMAC-SHA256) and its List-Unsubscribe field;
//! grouping by domain). Target: under 200 ms.
//!
//! References in the same run: the HMAC tokens alone (the crypto floor of
//! per-subscriber one-click tokens), and a naive plan that only formats the
//! VERP addresses into a `HashMap` keyed by domain.

use std::collections::HashMap;
use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use ptt_list::{Address, DmarcPolicy, List, Policy, State, one_click_token, plan_post};

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
        .map(|i| Address::parse(&format!("user.{i}@d{}.example.org", i % 5_000)).unwrap())
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

fn bench(c: &mut Criterion) {
    let l = list(100_000);
    let msg = post();
    let mut g = c.benchmark_group("list_fanout_100k");
    g.sample_size(10);
    g.bench_function("ptt_list::plan_post (DMARC From rewrite)", |b| {
        b.iter(|| {
            let f = plan_post(black_box(&l), 7, black_box(&msg), DmarcPolicy::Reject);
            assert_eq!(f.len(), 100_000);
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
