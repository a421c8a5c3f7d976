//! Policy discovery against a real DNS server: BIND `named` (ptt-testkit)
//! serves the zone, `dig` asks each question the evaluator yields, and the
//! answers (TXT strings, NXDOMAIN, NODATA) go back as they came on the wire.

use std::process::Command;

use ptt_dmarc::Policy;
use ptt_dmarc::eval::*;
use ptt_dmarc::psl::PublicSuffixList;
use ptt_testkit::Bind;

/// Asks `named` with dig and turns the reply into an [`Answer`].
fn ask(dns: &Bind, q: &Query) -> Answer {
    let rtype = q.qtype.as_str();
    let dig = ptt_testkit::require_program("dig", "Debian package bind9-dnsutils");
    let out = Command::new(dig)
        .args(["@127.0.0.1", "-p", &dns.port().to_string(), &q.name, rtype])
        .args(["+noall", "+comments", "+answer", "+time=2", "+tries=1"])
        .output()
        .expect("run dig");
    let text = String::from_utf8_lossy(&out.stdout);
    let status = text
        .split("status: ")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .unwrap_or("TIMEOUT");
    match status {
        "NXDOMAIN" => return Answer::NxDomain,
        "NOERROR" => {}
        other => return Answer::TempError(other.to_string()),
    }
    let mut records = Vec::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with(';') && !l.trim().is_empty())
    {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < 5 || fields[3] != rtype {
            continue;
        }
        // Rdata after "name ttl IN TYPE": TXT as one or more quoted strings.
        let rdata = after_fields(line, 4);
        records.push(rdata);
    }
    if records.is_empty() {
        return Answer::NoRecords;
    }
    match q.qtype {
        QueryType::Txt => Answer::Txt(records.iter().map(|r| join_txt(r).into_bytes()).collect()),
        _ => Answer::A(records.iter().filter_map(|r| r.parse().ok()).collect()),
    }
}

/// The rest of `line` after `n` whitespace-separated fields.
fn after_fields(line: &str, n: usize) -> &str {
    let mut rest = line.trim_start();
    for _ in 0..n {
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        rest = rest[end..].trim_start();
    }
    rest.trim_end()
}

/// `"a" "b\"c"` → `ab"c` (the strings of one TXT record, concatenated).
fn join_txt(rdata: &str) -> String {
    let mut out = String::new();
    let mut chars = rdata.chars();
    let mut inside = false;
    while let Some(c) = chars.next() {
        match (inside, c) {
            (false, '"') => inside = true,
            (true, '"') => inside = false,
            (true, '\\') => {
                if let Some(n) = chars.next() {
                    out.push(n);
                }
            }
            (true, c) => out.push(c),
            _ => {}
        }
    }
    out
}

#[test]
fn discovery_over_real_dns() {
    let dns = Bind::start(
        "test.",
        &[
            (
                "_dmarc.example",
                "TXT",
                "\"v=DMARC1; p=reject; sp=quarantine; np=reject\"",
            ),
            ("example", "A", "192.0.2.1"),
            ("sub.example", "A", "192.0.2.2"),
            // A record split in two strings, and an SPF record beside it.
            (
                "_dmarc.split",
                "TXT",
                "\"v=DMARC1; p=quarantine; rua=mailto:a@split.test,\" \"mailto:b@split.test; pct=50\"",
            ),
            ("_dmarc.split", "TXT", "\"v=spf1 -all\""),
            ("_dmarc.multi", "TXT", "\"v=DMARC1; p=reject\""),
            ("_dmarc.multi", "TXT", "\"v=DMARC1; p=none\""),
        ],
    );
    let psl = PublicSuffixList::builtin();
    let fail = || AuthInput {
        spf: Some(SpfOutcome::mail_from(SpfResult::Fail, "elsewhere.test")),
        dkim: vec![DkimOutcome::new(DkimResult::Pass, "elsewhere.test")],
    };
    let run = |from: &str, input: AuthInput, sample: u32| {
        let mut asked = Vec::new();
        let v = Evaluation::new(&psl, from, input, sample)
            .unwrap()
            .run(|q| {
                let a = ask(&dns, q);
                asked.push((q.name.clone(), a.clone()));
                a
            });
        (v, asked)
    };

    let (v, asked) = run("example.test", fail(), 0);
    assert_eq!(
        (v.result, v.disposition, v.source),
        (
            DmarcResult::Fail,
            Policy::Reject,
            Some(PolicySource::Domain)
        )
    );
    assert_eq!(asked.len(), 1);

    let (v, asked) = run("sub.example.test", fail(), 0);
    assert_eq!(
        (v.disposition, v.source),
        (Policy::Quarantine, Some(PolicySource::Subdomain)),
        "{asked:?}"
    );
    assert_eq!(asked[0].1, Answer::NxDomain);
    assert_eq!(asked.len(), 3);

    let (v, asked) = run("ghost.example.test", fail(), 0);
    assert_eq!(
        (v.disposition, v.source),
        (Policy::Reject, Some(PolicySource::NonExistent)),
        "{asked:?}"
    );
    assert_eq!(
        asked[2],
        ("ghost.example.test".to_string(), Answer::NxDomain)
    );

    let pass = AuthInput {
        spf: Some(SpfOutcome::mail_from(
            SpfResult::Pass,
            "bounce.sub.example.test",
        )),
        dkim: vec![],
    };
    let (v, _) = run("sub.example.test", pass, 0);
    assert_eq!((v.result, v.disposition), (DmarcResult::Pass, Policy::None));

    let (v, _) = run("split.test", fail(), 70);
    let record = v.record.as_ref().unwrap();
    assert_eq!(record.rua.as_ref().unwrap().len(), 2);
    assert_eq!(record.pct, Some(50));
    assert_eq!((v.disposition, v.sampled_out), (Policy::None, true));

    let (v, _) = run("multi.test", fail(), 0);
    assert_eq!(v.result, DmarcResult::None);
    assert!(matches!(
        v.no_policy,
        Some(NoPolicy::MultipleRecords { .. })
    ));

    let (v, asked) = run("a.b.nothing.test", fail(), 0);
    assert_eq!(v.result, DmarcResult::None);
    assert_eq!(
        asked.iter().map(|a| a.0.as_str()).collect::<Vec<_>>(),
        ["_dmarc.a.b.nothing.test", "_dmarc.nothing.test"]
    );
}
