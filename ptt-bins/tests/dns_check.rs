//! `ptt dns check` against BIND: a complete zone (forward and reverse,
//! with an MTA-STS policy served over HTTPS by Python on 127.0.0.2:443, a
//! TLS-RPT record and the TLSA of the receiver's certificate) is all ok;
//! then each record removed or broken in turn (MX, PTR, SPF, a DKIM key that
//! does not match, DMARC, MTA-STS, TLS-RPT, a TLSA of another key) gets the
//! line that says what to publish, and exit 1.

#[path = "common/site.rs"]
mod site;

use std::process::Command;

use ptt_testkit::SignedCert;
use ptt_testkit::dns_zones::{BindZones, Zone};
use ptt_testkit::https::PolicyServer;
use site::{Site, ptt, text};

/// The TLSA 3 1 1 data of the receiver's certificate, once it exists.
static TLSA: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// SHA-256 of a certificate's subjectPublicKeyInfo, hex, by openssl.
fn spki_sha256(cert: &std::path::Path) -> String {
    let script = format!(
        "openssl x509 -in {} -noout -pubkey | openssl pkey -pubin -outform DER | sha256sum",
        cert.display()
    );
    let out = Command::new("sh").args(["-c", &script]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

/// The records of a complete zone, with `skip` left out and `replace`
/// put in (owner, type, data).
fn zone_records(
    dkim: &[(String, String)],
    skip: &str,
    replace: &[(&str, &str, String)],
) -> Vec<(String, String, String)> {
    let mut records: Vec<(String, String, String)> = vec![
        ("@".into(), "MX".into(), "10 mx.example.test.".into()),
        // A TEST-NET address: only looked up, never dialled.
        ("mx".into(), "A".into(), "192.0.2.25".into()),
        (
            "@".into(),
            "TXT".into(),
            "\"v=spf1 a:mx.example.test -all\"".into(),
        ),
        (
            "_dmarc".into(),
            "TXT".into(),
            "\"v=DMARC1; p=reject; rua=mailto:dmarc@example.test\"".into(),
        ),
        (
            "_mta-sts".into(),
            "TXT".into(),
            "\"v=STSv1; id=20261207\"".into(),
        ),
        ("mta-sts".into(), "A".into(), "127.0.0.2".into()),
        (
            "_smtp._tls".into(),
            "TXT".into(),
            "\"v=TLSRPTv1; rua=mailto:tls@example.test\"".into(),
        ),
        (
            "_25._tcp.mx".into(),
            "TLSA".into(),
            format!("3 1 1 {}", TLSA.get().expect("the receiver's TLSA data")),
        ),
    ];
    for (selector, record) in dkim {
        // Zone files take long TXT data as several strings.
        let strings: Vec<String> = record
            .as_bytes()
            .chunks(200)
            .map(|c| format!("\"{}\"", String::from_utf8_lossy(c)))
            .collect();
        records.push((
            format!("{selector}._domainkey"),
            "TXT".into(),
            strings.join(" "),
        ));
    }
    records.retain(|(owner, rtype, _)| format!("{owner} {rtype}") != skip);
    for (owner, rtype, data) in replace {
        records.retain(|(o, t, _)| !(o == owner && t == rtype));
        records.push((owner.to_string(), rtype.to_string(), data.clone()));
    }
    records
}

fn start_zones(records: &[(String, String, String)], ptr: &str) -> BindZones {
    let forward: Vec<(&str, &str, &str)> = records
        .iter()
        .map(|(o, t, d)| (o.as_str(), t.as_str(), d.as_str()))
        .collect();
    let reverse = [("25", "PTR", ptr)];
    BindZones::start(&[
        Zone {
            origin: "example.test.",
            records: &forward,
        },
        Zone {
            origin: "2.0.192.in-addr.arpa.",
            records: &reverse,
        },
    ])
}

/// A broken zone: what, its records, the PTR target, the line expected,
/// and the record it must say to publish.
type Case<'a> = (
    &'a str,
    Vec<(String, String, String)>,
    &'a str,
    &'a str,
    &'a str,
);

#[test]
fn a_complete_zone_passes_and_each_broken_record_says_what_to_publish() {
    let https = SignedCert::for_names(&["mta-sts.example.test"]);
    let ca = https.ca.clone();
    let _policy = PolicyServer::start(
        std::net::Ipv4Addr::new(127, 0, 0, 2),
        &https.cert,
        &https.key,
        "version: STSv1\nmode: enforce\nmx: mx.example.test\nmax_age: 604800\n",
    );
    // A site whose signer has made its keys and receiver its certificate.
    let mut site = Site::new("");
    site.serve(&["signer", "relay", "receiver"]);
    site.terminate();
    let tlsa = spki_sha256(&site.state().join("receiver/tls/cert.pem"));
    TLSA.set(tlsa.clone()).unwrap();
    let dkim: Vec<(String, String)> = ["ptt-ed25519", "ptt-rsa"]
        .iter()
        .map(|sel| {
            let pem = std::fs::read(site.state().join(format!("signer/keys/{sel}.pem"))).unwrap();
            let key = ptt_dkim::SigningKey::from_pem(&pem).unwrap();
            (sel.to_string(), key.key_record().to_string())
        })
        .collect();
    let check = |zones: &BindZones| {
        let config = std::fs::read_to_string(&site.config).unwrap();
        let config = config.replace(
            "[dns]\nrecords = \"records.toml\"",
            &format!(
                "[dns]\nresolver = \"{}\"\nmta_sts = \"enforce\"\nhttps_ca = \"{}\"\ntls_rpt = \"mailto:tls@example.test\"\ndane = true",
                zones.addr(),
                ca.display()
            ),
        );
        let path = site.dir.path().join("check.toml");
        std::fs::write(&path, config).unwrap();
        ptt(&["dns", "check", "--config", path.to_str().unwrap()], "")
    };

    let zones = start_zones(&zone_records(&dkim, "", &[]), "mx.example.test.");
    let out = check(&zones);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let report = text(&out);
    for line in [
        "MX",
        "A/AAAA",
        "PTR 192.0.2.25",
        "SPF",
        "DKIM ptt-rsa",
        "DMARC",
        "MTA-STS TXT",
        "MTA-STS policy",
        "TLS-RPT",
        "TLSA",
    ] {
        assert!(
            report
                .lines()
                .any(|l| l.starts_with("ok") && l.contains(line)),
            "{line} not ok:\n{report}"
        );
    }
    // --json for monitoring.
    let path = site.dir.path().join("check.toml");
    let json = ptt(
        &["dns", "check", "--config", path.to_str().unwrap(), "--json"],
        "",
    );
    let parsed: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert!(
        parsed
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["status"] == "ok"),
        "{parsed}"
    );
    drop(zones);

    let other_key = {
        let g = ptt_dkim::generate_key(ptt_dkim::KeyKind::Rsa2048, [7; 32]).unwrap();
        g.key.key_record().to_string()
    };
    let wrong_tlsa = format!("3 1 1 {}", "00".repeat(32));
    let tlsa_publish = format!("_25._tcp.mx.example.test. TLSA 3 1 1 {tlsa}");
    let cases: Vec<Case> = vec![
        (
            "no TLS-RPT",
            zone_records(&dkim, "_smtp._tls TXT", &[]),
            "mx.example.test.",
            "missing  TLS-RPT",
            "_smtp._tls.example.test. TXT \"v=TLSRPTv1; rua=mailto:tls@example.test\"",
        ),
        (
            "TLSA of another key",
            zone_records(&dkim, "", &[("_25._tcp.mx", "TLSA", wrong_tlsa.clone())]),
            "mx.example.test.",
            "wrong    TLSA",
            &tlsa_publish,
        ),
        (
            "no MX",
            zone_records(&dkim, "@ MX", &[]),
            "mx.example.test.",
            "missing  MX",
            "example.test. MX 10 mx.example.test.",
        ),
        (
            "PTR elsewhere",
            zone_records(&dkim, "", &[]),
            "other.example.",
            "wrong    PTR 192.0.2.25",
            "25.2.0.192.in-addr.arpa. PTR mx.example.test.",
        ),
        (
            "SPF failing",
            zone_records(&dkim, "", &[("@", "TXT", "\"v=spf1 -all\"".to_string())]),
            "mx.example.test.",
            "wrong    SPF",
            "example.test. TXT \"v=spf1 a:mx.example.test -all\"",
        ),
        (
            "DKIM mismatch",
            zone_records(
                &[dkim[0].clone(), ("ptt-rsa".to_string(), other_key.clone())],
                "",
                &[],
            ),
            "mx.example.test.",
            "wrong    DKIM ptt-rsa",
            "ptt-rsa._domainkey.example.test. TXT \"v=DKIM1; k=rsa; p=",
        ),
        (
            "no DMARC",
            zone_records(&dkim, "_dmarc TXT", &[]),
            "mx.example.test.",
            "missing  DMARC",
            "_dmarc.example.test. TXT \"v=DMARC1;",
        ),
        (
            "no MTA-STS",
            zone_records(&dkim, "_mta-sts TXT", &[]),
            "mx.example.test.",
            "missing  MTA-STS TXT",
            "_mta-sts.example.test. TXT \"v=STSv1; id=",
        ),
    ];
    for (what, records, ptr, line, publish) in cases {
        let zones = start_zones(&records, ptr);
        let out = check(&zones);
        let report = text(&out);
        assert_eq!(out.status.code(), Some(1), "{what}: {report}");
        let at = report
            .lines()
            .position(|l| l.starts_with(line))
            .unwrap_or_else(|| panic!("{what}: no line {line:?} in\n{report}"));
        let next = report.lines().nth(at + 1).unwrap_or_default();
        assert!(
            next.contains(&format!("publish: {publish}")),
            "{what}: {next:?} in\n{report}"
        );
        // Only that record is flagged.
        let flagged = report
            .lines()
            .filter(|l| l.starts_with("missing") || l.starts_with("wrong"))
            .count();
        assert_eq!(flagged, 1, "{what}:\n{report}");
    }
}
