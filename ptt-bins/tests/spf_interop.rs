//! `ptt spf check` against pyspf, both asking the same BIND server: every
//! case must give the same result (and, where the domain has an `exp=`, the
//! same explanation). The zone covers include chains, a, mx, ptr, exists
//! with macros, redirect, exp, void lookups, a DNS error, missing, multiple
//! and broken records, and IPv6.

use std::process::Command;

use ptt_testkit::dns_zones::{BindZones, Zone};
use ptt_testkit::python::pyspf_check;

const FORWARD: &[(&str, &str, &str)] = &[
    ("simple", "TXT", "\"v=spf1 ip4:192.0.2.0/25 -all\""),
    ("a", "TXT", "\"v=spf1 a a:other.a.test/28 -all\""),
    ("a", "A", "192.0.2.10"),
    ("a", "AAAA", "2001:db8::10"),
    ("other.a", "A", "198.51.100.1"),
    ("mx", "TXT", "\"v=spf1 mx mx:mx.a.test/24 ~all\""),
    ("mx", "MX", "10 mail1.mx.test."),
    ("mx", "MX", "20 mail2.mx.test."),
    ("mail1.mx", "A", "192.0.2.20"),
    ("mail2.mx", "A", "192.0.2.21"),
    ("mx.a", "MX", "5 other.a.test."),
    // An include chain three deep, the last one with IPv6.
    (
        "inc",
        "TXT",
        "\"v=spf1 include:_spf.inc.test include:_spf3.inc.test ?all\"",
    ),
    (
        "_spf.inc",
        "TXT",
        "\"v=spf1 include:_spf2.inc.test ip4:203.0.113.0/24 -all\"",
    ),
    ("_spf2.inc", "TXT", "\"v=spf1 ip6:2001:db8:1::/48 ~all\""),
    ("_spf3.inc", "TXT", "\"v=spf1 a:mail1.mx.test -all\""),
    ("ptr", "TXT", "\"v=spf1 ptr -all\""),
    ("host.ptr", "A", "192.0.2.30"),
    ("liar.ptr", "A", "192.0.2.99"),
    (
        "macro",
        "TXT",
        "\"v=spf1 exists:%{ir}.%{l1r+-}._spf.%{d} -all\"",
    ),
    ("30.2.0.192.alice._spf.macro", "A", "127.0.0.2"),
    ("40.2.0.192.bob._spf.macro", "A", "127.0.0.2"),
    (
        "redir",
        "TXT",
        "\"v=spf1 ip4:198.51.100.77 redirect=simple.test\"",
    ),
    (
        "void",
        "TXT",
        "\"v=spf1 a:nx1.void.test a:nx2.void.test a:nx3.void.test ip4:192.0.2.1 -all\"",
    ),
    (
        "void2",
        "TXT",
        "\"v=spf1 a:nx1.void.test a:nx2.void.test ip4:192.0.2.1 -all\"",
    ),
    ("exp", "TXT", "\"v=spf1 mx:mx.test -all exp=why.exp.test\""),
    (
        "why.exp",
        "TXT",
        "\"%{i} may not send for %{d} (from %{s})\"",
    ),
    ("nospf", "TXT", "\"google-site-verification=abc\""),
    ("two", "TXT", "\"v=spf1 -all\""),
    ("two", "TXT", "\"v=spf1 +all\""),
    ("broken", "TXT", "\"v=spf1 ip4:192.0.2.300 -all\""),
    ("unknown", "TXT", "\"v=spf1 foo:bar -all\""),
    (
        "split",
        "TXT",
        "\"v=spf1 ip4:192.0.2.0/24 \" \"ip4:198.51.100.0/24 -all\"",
    ),
    (
        "outside",
        "TXT",
        "\"v=spf1 include:spf.elsewhere.example -all\"",
    ),
    ("helo", "TXT", "\"v=spf1 a -all\""),
    ("helo", "A", "192.0.2.50"),
];

const REVERSE: &[(&str, &str, &str)] = &[
    ("30", "PTR", "host.ptr.test."),
    ("31", "PTR", "liar.ptr.test."),
];

/// (ip, MAIL FROM, HELO).
const CASES: &[(&str, &str, &str)] = &[
    ("192.0.2.5", "alice@simple.test", "mx.example"),
    ("192.0.2.200", "alice@simple.test", "mx.example"),
    ("192.0.2.10", "alice@a.test", "mx.example"),
    ("198.51.100.9", "alice@a.test", "mx.example"),
    ("198.51.100.99", "alice@a.test", "mx.example"),
    ("2001:db8::10", "alice@a.test", "mx.example"),
    ("2001:db8::11", "alice@a.test", "mx.example"),
    ("192.0.2.21", "alice@mx.test", "mx.example"),
    ("198.51.100.200", "alice@mx.test", "mx.example"),
    ("10.0.0.1", "alice@mx.test", "mx.example"),
    ("203.0.113.7", "alice@inc.test", "mx.example"),
    ("2001:db8:1::25", "alice@inc.test", "mx.example"),
    ("192.0.2.20", "alice@inc.test", "mx.example"),
    ("10.9.9.9", "alice@inc.test", "mx.example"),
    ("192.0.2.30", "alice@ptr.test", "mx.example"),
    ("192.0.2.31", "alice@ptr.test", "mx.example"),
    ("192.0.2.32", "alice@ptr.test", "mx.example"),
    ("192.0.2.30", "alice@macro.test", "mx.example"),
    ("192.0.2.30", "bob@macro.test", "mx.example"),
    ("192.0.2.40", "bob@macro.test", "mx.example"),
    ("198.51.100.77", "alice@redir.test", "mx.example"),
    ("192.0.2.6", "alice@redir.test", "mx.example"),
    ("192.0.2.200", "alice@redir.test", "mx.example"),
    ("192.0.2.1", "alice@void.test", "mx.example"),
    ("192.0.2.1", "alice@void2.test", "mx.example"),
    ("192.0.2.99", "alice@exp.test", "mx.example"),
    ("192.0.2.20", "alice@exp.test", "mx.example"),
    ("192.0.2.1", "alice@nospf.test", "mx.example"),
    ("192.0.2.1", "alice@nxdomain.test", "mx.example"),
    ("192.0.2.1", "alice@two.test", "mx.example"),
    ("192.0.2.1", "alice@broken.test", "mx.example"),
    ("192.0.2.1", "alice@unknown.test", "mx.example"),
    ("198.51.100.3", "alice@split.test", "mx.example"),
    ("192.0.2.1", "alice@outside.test", "mx.example"),
    ("192.0.2.50", "", "helo.test"),
    ("192.0.2.51", "", "helo.test"),
];

fn ptt_check(port: u16, ip: &str, from: &str, helo: &str) -> (String, i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ptt"))
        .args([
            "spf",
            "check",
            "--ip",
            ip,
            "--mail-from",
            from,
            "--helo",
            helo,
        ])
        .args([
            "--dns",
            &format!("127.0.0.1:{port}"),
            "--receiver",
            "rx.example",
        ])
        .output()
        .expect("run ptt");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let result = stdout
        .lines()
        .find_map(|l| l.strip_prefix("result: "))
        .unwrap_or_else(|| {
            panic!(
                "no result line: {stdout}{}",
                String::from_utf8_lossy(&out.stderr)
            )
        })
        .to_string();
    (result, out.status.code().unwrap_or(-1), stdout)
}

#[test]
fn ptt_spf_check_agrees_with_pyspf() {
    let dns = BindZones::start(&[
        Zone {
            origin: "test.",
            records: FORWARD,
        },
        Zone {
            origin: "2.0.192.in-addr.arpa.",
            records: REVERSE,
        },
    ]);
    let mut passed = 0;
    let mut failed = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for (ip, from, helo) in CASES {
        let (ours, code, stdout) = ptt_check(dns.port(), ip, from, helo);
        let (theirs, their_expl) = pyspf_check(ip, from, helo, dns.port());
        seen.insert(ours.clone());
        let mut ok = ours == theirs && (code == 0) == (ours == "pass");
        assert!(stdout.contains("Received-SPF: "), "{stdout}");
        if ours == "fail" && from.ends_with("@exp.test") {
            let expl = stdout
                .lines()
                .find_map(|l| l.strip_prefix("explanation: "))
                .unwrap_or_default();
            ok &= expl == their_expl;
            println!("explanation: ptt {expl:?}, pyspf {their_expl:?}");
        }
        if ok {
            passed += 1;
        } else {
            failed.push(format!(
                "{ip} {from:?} {helo}: ptt {ours} (exit {code}), pyspf {theirs} ({their_expl})\n{stdout}"
            ));
        }
    }
    println!(
        "spf-interop-pyspf: {passed} passed, {} failed",
        failed.len()
    );
    for f in &failed {
        println!("DIFFERENT {f}");
    }
    // The cases reach every result but temperror's cousins; make sure they do.
    for r in [
        "pass",
        "fail",
        "softfail",
        "neutral",
        "none",
        "permerror",
        "temperror",
    ] {
        assert!(seen.contains(r), "no case gave {r}: {seen:?}");
    }
    assert!(
        failed.is_empty(),
        "{} cases differ from pyspf",
        failed.len()
    );
}
