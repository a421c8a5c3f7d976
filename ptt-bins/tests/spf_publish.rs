//! `ptt spf publish` against BIND with TSIG: the new record is what `dig`
//! sees, other TXT records stay, a long record is split into 255-byte
//! strings, and updates without the key or with a wrong key are refused.
//! Then `ptt spf check` evaluates the published record.

use std::process::{Command, Output};

use ptt_testkit::Bind;

fn ptt(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ptt"))
        .args(args)
        .output()
        .expect("run ptt")
}

/// `ptt spf publish` of `record` for `domain` through `server` with `tsig`.
fn publish(server: &str, tsig: &str, domain: &str, record: &str) -> Output {
    ptt(&[
        "spf", "publish", "--dns", server, "--tsig", tsig, "--domain", domain, record,
    ])
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn publish_replaces_the_spf_record_and_is_seen_by_dig() {
    let dns = Bind::start(
        "test.",
        &[
            ("corp", "TXT", "\"google-site-verification=abc\""),
            ("corp", "TXT", "\"v=spf1 -all\""),
            ("corp", "MX", "10 mail.test."),
            ("mail", "A", "192.0.2.25"),
        ],
    );
    let server = dns.addr().to_string();
    let key = dns.key_spec();

    let out = publish(
        &server,
        &key,
        "corp.test",
        "v=spf1 mx ip4:198.51.100.0/24 -all",
    );
    assert!(out.status.success(), "{}", text(&out));
    let mut txt = dns.dig("corp.test.", "TXT");
    txt.sort();
    assert_eq!(
        txt,
        vec![
            "\"google-site-verification=abc\"".to_string(),
            "\"v=spf1 mx ip4:198.51.100.0/24 -all\"".to_string()
        ]
    );

    // The record is in force: a check through the same server passes for
    // the MX host and fails for others.
    let check = |ip: &str| {
        ptt(&[
            "spf",
            "check",
            "--ip",
            ip,
            "--mail-from",
            "alice@corp.test",
            "--helo",
            "mail.test",
            "--dns",
            &server,
        ])
    };
    let out = check("192.0.2.25");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("result: pass"));
    let out = check("203.0.113.1");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("result: fail"));

    // A record longer than 255 bytes becomes several strings of one record.
    let long: String = (0..30)
        .map(|n| format!("ip4:198.51.{n}.0/24 "))
        .collect::<String>();
    let long = format!("v=spf1 {long}-all");
    assert!(long.len() > 255);
    let out = publish(&server, &key, "corp.test.", &long);
    assert!(out.status.success(), "{}", text(&out));
    let spf: Vec<String> = dns
        .dig("corp.test.", "TXT")
        .into_iter()
        .filter(|t| t.starts_with("\"v=spf1"))
        .collect();
    assert_eq!(spf.len(), 1, "{spf:?}");
    let strings: Vec<&str> = spf[0].split("\" \"").collect();
    assert_eq!(strings.len(), long.len().div_ceil(255), "{spf:?}");
    for piece in &strings[..strings.len() - 1] {
        assert_eq!(piece.trim_matches('"').len(), 255, "{spf:?}");
    }
    assert_eq!(spf[0].trim_matches('"').replace("\" \"", ""), long);

    // A wrong key is refused and changes nothing.
    let wrong = format!(
        "{}:{}:{}",
        dns.key().name,
        dns.key().algorithm,
        "d3Jvbmcgc2VjcmV0IGtleSBieXRlcw=="
    );
    let out = publish(&server, &wrong, "corp.test", "v=spf1 +all");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    // An unsigned update is refused too.
    assert!(
        dns.nsupdate_unsigned(&["update add corp.test. 300 TXT \"v=spf1 +all\""])
            .is_err()
    );
    assert!(
        !dns.dig("corp.test.", "TXT")
            .iter()
            .any(|t| t.contains("+all"))
    );

    // A record that is not valid SPF is refused before anything is sent.
    let out = publish(&server, &key, "corp.test", "v=spf1 ip4:1.2.3.4/33 -all");
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("ip4:1.2.3.4/33"), "{}", text(&out));
}

#[test]
fn dmarc_publish_shares_the_update_path() {
    let dns = Bind::start(
        "test.",
        &[
            ("_dmarc.corp", "TXT", "\"v=DMARC1; p=none\""),
            ("_dmarc.corp", "TXT", "\"unrelated=1\""),
        ],
    );
    let (server, key) = (dns.addr().to_string(), dns.key_spec());
    let record = "v=DMARC1; p=reject; rua=mailto:dmarc@corp.test";
    let publish = |record: &str| {
        ptt(&[
            "dmarc",
            "publish",
            "--dns",
            &server,
            "--tsig",
            &key,
            "--domain",
            "corp.test",
            record,
        ])
    };
    let out = publish(record);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("(replaced)"), "{}", text(&out));
    let mut txt = dns.dig("_dmarc.corp.test.", "TXT");
    txt.sort();
    assert_eq!(
        txt,
        vec!["\"unrelated=1\"".to_string(), format!("\"{record}\"")]
    );
    // The same again: nothing sent, the serial stays.
    let serial = dns.dig("test.", "SOA");
    let out = publish(record);
    assert!(text(&out).contains("(unchanged)"), "{}", text(&out));
    assert_eq!(dns.dig("test.", "SOA"), serial);
    // Not DMARC: refused before anything is sent.
    let out = publish("v=DMARC1; p=sometimes");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
}
