//! ptt-dmarc: organizational-domain lookups beside the `psl` crate (the list
//! compiled into a match, the usual Rust choice) in the same run, plus the
//! cost of a whole DMARC evaluation, of parsing a record and of reading and
//! writing an `Authentication-Results` field.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ptt_dmarc::DmarcRecord;
use ptt_dmarc::authres::AuthenticationResults;
use ptt_dmarc::eval::*;
use ptt_dmarc::psl::PublicSuffixList;
use std::hint::black_box;

const DOMAINS: &[&str] = &[
    "mail.example.com",
    "a.b.c.example.co.uk",
    "news.example.org",
    "bounces.esp.example.net",
    "x.y.foo.ck",
    "www.ck",
    "mx1.city.kobe.jp",
    "deep.sub.domain.example.com.au",
    "host.s3.amazonaws.com",
    "unlisted.tld-that-does-not-exist",
];

fn org_domain(c: &mut Criterion) {
    let ours = PublicSuffixList::builtin();
    // Both must agree before their speed means anything.
    for d in DOMAINS {
        let theirs = psl::domain_str(d).map(str::to_string);
        assert_eq!(ours.registrable_domain(d), theirs, "{d}");
    }
    let mut g = c.benchmark_group("org_domain");
    g.throughput(Throughput::Elements(DOMAINS.len() as u64));
    g.bench_function(BenchmarkId::new("ptt-dmarc", DOMAINS.len()), |b| {
        b.iter(|| {
            for d in DOMAINS {
                black_box(ours.organizational_domain(black_box(d)));
            }
        })
    });
    g.bench_function(BenchmarkId::new("psl-crate", DOMAINS.len()), |b| {
        b.iter(|| {
            for d in DOMAINS {
                black_box(psl::domain_str(black_box(d)));
            }
        })
    });
    g.finish();
    c.bench_function("psl_load_builtin", |b| b.iter(PublicSuffixList::builtin));
}

fn evaluation(c: &mut Criterion) {
    let psl = PublicSuffixList::builtin();
    let record = "v=DMARC1; p=reject; sp=quarantine; np=reject; adkim=r; aspf=s; pct=100; \
                  rua=mailto:dmarc@example.com,mailto:agg@thirdparty.example!10m; fo=0:d";
    let input = AuthInput {
        spf: Some(SpfOutcome::mail_from(SpfResult::Pass, "bounce.example.com")),
        dkim: vec![
            DkimOutcome::new(DkimResult::Fail, "esp.example.net"),
            DkimOutcome::new(DkimResult::Pass, "mail.example.com").with_selector("s1"),
        ],
    };
    c.bench_function("dmarc_record_parse", |b| {
        b.iter(|| DmarcRecord::parse(black_box(record)).unwrap())
    });
    c.bench_function("dmarc_evaluate_subdomain", |b| {
        b.iter(|| {
            Evaluation::new(&psl, "news.example.com", input.clone(), 7)
                .unwrap()
                .run(|q| match q.name.as_str() {
                    "_dmarc.example.com" => Answer::txt(record),
                    _ => Answer::NxDomain,
                })
        })
    });
    let field = "mx.google.com;\r\n       dkim=pass header.i=@example.com header.s=sel header.b=abc123;\r\n       \
                 spf=pass (google.com: domain of a@example.com designates 192.0.2.1 as permitted sender) \
                 smtp.mailfrom=a@example.com;\r\n       dmarc=pass (p=REJECT sp=REJECT dis=NONE) header.from=example.com";
    c.bench_function("authres_parse", |b| {
        b.iter(|| AuthenticationResults::parse(black_box(field)).unwrap())
    });
    let parsed = AuthenticationResults::parse(field).unwrap();
    c.bench_function("authres_write_folded", |b| {
        b.iter(|| black_box(&parsed).to_header_field())
    });
}

criterion_group!(benches, org_domain, evaluation);
criterion_main!(benches);
