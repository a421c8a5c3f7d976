//! `ptt auth check` against a real DNS server (BIND) serving the domain's
//! SPF, DKIM and DMARC records, on messages signed by dkimpy.

use std::io::Write as _;
use std::process::{Command, Stdio};

use ptt_testkit::Bind;
use ptt_testkit::python::{dkimpy_sign, ed25519_keypair};

fn auth_check(dns: &Bind, ip: &str, mail_from: &str, message: &[u8]) -> (i32, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ptt"))
        .args(["auth", "check", "--ip", ip, "--mail-from", mail_from])
        .args(["--helo", "mail.test", "--authserv-id", "mx.receiver.test"])
        .args(["--dns", &dns.addr().to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // ptt may refuse bad arguments without reading its input: a broken
    // pipe here is not the test's failure; the exit status and output say.
    if let Err(e) = child.stdin.take().unwrap().write_all(message) {
        assert_eq!(
            e.kind(),
            std::io::ErrorKind::BrokenPipe,
            "writing ptt's input: {e}"
        );
    }
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn spf_dkim_and_dmarc_from_a_real_zone() {
    let (private, public) = ed25519_keypair();
    let dns = Bind::start(
        "test.",
        &[
            ("example", "TXT", "\"v=spf1 ip4:192.0.2.0/24 -all\""),
            (
                "sel._domainkey.example",
                "TXT",
                &format!("\"v=DKIM1; k=ed25519; p={public}\""),
            ),
            ("_dmarc.example", "TXT", "\"v=DMARC1; p=reject; adkim=s\""),
        ],
    );
    let message =
        b"From: Alice <alice@example.test>\r\nTo: bob@example.net\r\nSubject: hi\r\n\r\nHello.\r\n";
    let signed = dkimpy_sign(message, "sel", "example.test", private.as_bytes(), true);

    // Signed, and sent from an address SPF allows: everything passes.
    let (code, text) = auth_check(&dns, "192.0.2.7", "alice@example.test", &signed);
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("Authentication-Results: mx.receiver.test;"),
        "{text}"
    );
    for verdict in ["spf=pass", "dkim=pass header.d=example.test", "dmarc=pass"] {
        assert!(text.contains(verdict), "{verdict} missing:\n{text}");
    }

    // From elsewhere, SPF fails, but the aligned DKIM pass carries DMARC.
    let (code, text) = auth_check(&dns, "198.51.100.1", "alice@example.test", &signed);
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("spf=fail") && text.contains("dmarc=pass"),
        "{text}"
    );

    // Body changed and sent from elsewhere: DKIM and SPF fail, DMARC rejects.
    let tampered = String::from_utf8_lossy(&signed).replace("Hello.", "Hello!");
    let (code, text) = auth_check(
        &dns,
        "198.51.100.1",
        "alice@example.test",
        tampered.as_bytes(),
    );
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("dkim=fail") && text.contains("dmarc=fail"),
        "{text}"
    );
    assert!(text.contains("dis=REJECT"), "{text}");

    // A message with two From fields is a DMARC permerror, never a pass.
    let two = b"From: alice@example.test\r\nFrom: eve@evil.example\r\n\r\nx\r\n";
    let (code, text) = auth_check(&dns, "192.0.2.7", "alice@example.test", two);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("dmarc=permerror"), "{text}");
}

#[test]
fn bad_input_is_one_line_and_exit_2() {
    let out = Command::new(env!("CARGO_BIN_EXE_ptt"))
        .args(["auth", "check", "--ip", "not-an-ip", "--helo", "x"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = Command::new(env!("CARGO_BIN_EXE_ptt"))
        .args([
            "auth",
            "check",
            "--ip",
            "192.0.2.1",
            "--helo",
            "x",
            "--dns",
            "nonsense",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("ptt: --dns"), "{err}");
}
