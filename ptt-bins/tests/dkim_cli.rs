//! `ptt dkim keygen|sign|verify` end to end: keys published in a real BIND
//! zone, verification over DNS (`--dns`) and from `--txt`, dkimpy as the
//! independent verifier of what `ptt dkim sign` wrote.

use std::io::Write as _;
use std::process::{Command, Output, Stdio};

use ptt_testkit::Bind;
use ptt_testkit::python::{PyDns, dkimpy_verify};

const MESSAGE: &[u8] = b"From: Alice <alice@test>\nTo: bob@example.net\nSubject: hello\n  folded\nDate: Sat, 21 Nov 2026 10:00:00 +0000\nMessage-ID: <cli@test>\n\nHello Bob.\n\n";

fn ptt(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ptt"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ptt");
    // ptt may refuse bad arguments without reading its input: a broken
    // pipe here is not the test's failure; the exit status and output say.
    if let Err(e) = child.stdin.take().unwrap().write_all(stdin) {
        assert_eq!(
            e.kind(),
            std::io::ErrorKind::BrokenPipe,
            "writing ptt's input: {e}"
        );
    }
    child.wait_with_output().unwrap()
}

/// `ptt dkim sign` of [`MESSAGE`] with `key` as `selector`._domainkey.test.
fn sign(key: &std::path::Path, selector: &str) -> Output {
    let key = key.to_str().expect("UTF-8 temp path");
    ptt(
        &[
            "dkim",
            "sign",
            "--key",
            key,
            "--selector",
            selector,
            "--domain",
            "test",
        ],
        MESSAGE,
    )
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `S._domainkey.D. IN TXT "a" "b"` → (`S._domainkey.D.`, `"a" "b"`).
fn record_line(out: &Output) -> (String, String) {
    let line = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let (name, rest) = line
        .split_once(" IN TXT ")
        .expect("keygen prints a TXT line");
    (name.to_string(), rest.to_string())
}

fn unquote(strings: &str) -> String {
    strings
        .split('"')
        .enumerate()
        .filter(|(i, _)| i % 2 == 1)
        .map(|(_, s)| s)
        .collect()
}

#[test]
fn keygen_sign_verify_over_bind() {
    let dir = tempfile::tempdir().unwrap();
    let mut zone_records = Vec::new();
    let mut keys = Vec::new();
    for (alg, sel) in [("ed25519", "ed"), ("rsa-2048", "rsa")] {
        let key = dir.path().join(format!("{sel}.pem"));
        let out = ptt(
            &[
                "dkim",
                "keygen",
                "--algorithm",
                alg,
                "--selector",
                sel,
                "--domain",
                "test",
                "--out",
                key.to_str().unwrap(),
            ],
            b"",
        );
        assert!(out.status.success(), "keygen {alg}: {}", text(&out));
        let (name, strings) = record_line(&out);
        assert_eq!(name, format!("{sel}._domainkey.test."));
        assert!(unquote(&strings).starts_with("v=DKIM1;"), "{strings}");
        assert!(
            strings
                .split('"')
                .enumerate()
                .filter(|(i, _)| i % 2 == 1)
                .all(|(_, s)| s.len() <= 255),
            "TXT strings of at most 255 bytes: {strings}"
        );
        // Refuses to overwrite the key.
        let again = ptt(
            &[
                "dkim",
                "keygen",
                "--algorithm",
                alg,
                "--selector",
                sel,
                "--domain",
                "test",
                "--out",
                key.to_str().unwrap(),
            ],
            b"",
        );
        assert_eq!(again.status.code(), Some(2), "{}", text(&again));
        zone_records.push((format!("{sel}._domainkey"), strings));
        keys.push((sel, key));
    }
    let records: Vec<(&str, &str, &str)> = zone_records
        .iter()
        .map(|(n, v)| (n.as_str(), "TXT", v.as_str()))
        .collect();
    let bind = Bind::start("test.", &records);
    let dns = bind.addr().to_string();

    for (sel, key) in &keys {
        let signed = sign(key, sel);
        assert!(signed.status.success(), "sign: {}", text(&signed));
        let signed = signed.stdout;
        assert!(signed.starts_with(b"DKIM-Signature: v=1;"));

        let out = ptt(&["dkim", "verify", "--dns", &dns], &signed);
        assert_eq!(
            out.status.code(),
            Some(0),
            "verify --dns {sel}: {}",
            text(&out)
        );
        let t = text(&out);
        assert!(
            t.contains("dkim=pass") && t.contains("Authentication-Results: localhost;"),
            "{t}"
        );
        assert!(t.contains(&format!("header.s={sel}")), "{t}");

        // dkimpy agrees, asking the same BIND server.
        assert!(
            dkimpy_verify(&signed, &PyDns::Server(bind.port())),
            "dkimpy rejects {sel}"
        );

        // One byte changed in the body: exit 1, and dkimpy fails too.
        let mut bad = signed.clone();
        let pos = bad.windows(5).position(|w| w == b"Hello").unwrap();
        bad[pos] = b'J';
        let out = ptt(&["dkim", "verify", "--dns", &dns], &bad);
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        assert!(
            text(&out).contains("dkim=fail (body hash mismatch)"),
            "{}",
            text(&out)
        );
        assert!(!dkimpy_verify(&bad, &PyDns::Server(bind.port())));

        // --txt instead of DNS.
        let (_, strings) = zone_records
            .iter()
            .find(|(n, _)| n.starts_with(sel))
            .unwrap();
        let txt = format!("{sel}._domainkey.test={}", unquote(strings));
        let out = ptt(&["dkim", "verify", "--txt", &txt], &signed);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    }

    // A selector that is not in the zone: NXDOMAIN, permerror, exit 1.
    let signed = sign(&keys[0].1, "missing");
    let out = ptt(&["dkim", "verify", "--dns", &dns], &signed.stdout);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("dkim=permerror (no key record)"),
        "{}",
        text(&out)
    );

    // A revoked key published by UPDATE: fail (key revoked).
    bind.nsupdate(&[
        "update delete ed._domainkey.test. TXT",
        "update add ed._domainkey.test. 300 TXT \"v=DKIM1; k=ed25519; p=\"",
    ])
    .unwrap();
    let signed = sign(&keys[0].1, "ed");
    let out = ptt(&["dkim", "verify", "--dns", &dns], &signed.stdout);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("key revoked"), "{}", text(&out));
}

#[test]
fn bad_input_is_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("k.pem");
    std::fs::write(&key, "not a key").unwrap();
    let out = sign(&key, "s");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let out = ptt(&["dkim", "verify", "--txt", "no-equals-sign"], MESSAGE);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let out = ptt(&["dkim", "verify", "--txt", "a=b"], b"no headers at all");
    assert_eq!(
        out.status.code(),
        Some(1),
        "unsigned message: {}",
        text(&out)
    );
    assert!(text(&out).contains("dkim=none"));
    // A 1024-bit key is refused for signing.
    let weak = std::process::Command::new("openssl")
        .args(["genrsa", "-traditional", "1024"])
        .output();
    if let Ok(weak) = weak
        && weak.status.success()
    {
        std::fs::write(&key, &weak.stdout).unwrap();
        let out = sign(&key, "s");
        assert_eq!(out.status.code(), Some(2), "{}", text(&out));
        assert!(text(&out).contains("1024 bits refused"), "{}", text(&out));
    }
}

/// A reader that stops early (`ptt … | head -0`) ends ptt quietly, with the
/// status of a command killed by SIGPIPE, not with a panic.
#[test]
fn closed_standard_output_is_no_panic() {
    // ptt dkim verify prints only after reading all of its input, so the
    // reader is gone before the first write whatever the scheduling.
    let mut child = Command::new(env!("CARGO_BIN_EXE_ptt"))
        .args(["dkim", "verify", "--txt", "s._domainkey.test=v=DKIM1; p="])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ptt");
    drop(child.stdout.take());
    child.stdin.take().unwrap().write_all(MESSAGE).unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(141), "{stderr}");
}
