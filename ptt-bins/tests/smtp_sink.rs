//! `ptt smtp-sink` against real clients: swaks (plain, STARTTLS, implicit
//! TLS, PIPELINING, AUTH), Python smtplib and Postfix smtp-source; and the
//! probes (smuggling, bare LF/CR, overlong line, NUL, 10,000 recipients),
//! each followed by a normal delivery from another client.

#[path = "smtp_common/mod.rs"]
mod common;

use std::process::{Command, Stdio};

use common::{PttSink, Raw, contains, path_str, swaks};
use ptt_testkit::TestCert;

#[test]
fn swaks_plain_and_pipelining() {
    let sink = PttSink::start(&[]);
    let (ok, out) = swaks(sink.addr, &["--body", "plain body\n.dot line"]);
    assert!(ok, "{out}");
    let (ok, out) = swaks(
        sink.addr,
        &["--pipeline", "--to", "c@example.net,d@example.net"],
    );
    assert!(ok, "{out}");
    assert!(out.contains("PIPELINING"), "{out}");
    let m = sink.wait_for(2);
    assert_eq!(m.len(), 2);
    // Find each message by its content, not by its place in the listing.
    let plain = m
        .iter()
        .find(|m| contains(m, b"\r\nplain body\r\n.dot line\r\n"))
        .expect("the plain message, with its dot line unstuffed");
    assert!(plain.starts_with(b"Return-Path: <a@example.org>\r\nDelivered-To: b@example.net\r\n"));
    assert!(m.iter().any(|m| contains(
        m,
        b"Delivered-To: c@example.net\r\nDelivered-To: d@example.net\r\n"
    )));
    assert_eq!(sink.leftovers(), 0);
}

#[test]
fn swaks_starttls_and_auth() {
    let cert = TestCert::localhost();
    let sink = PttSink::start(&[
        "--tls-cert",
        path_str(&cert.cert),
        "--tls-key",
        path_str(&cert.key),
        "--auth",
        "alice:s3cret",
    ]);
    let (ok, out) = swaks(sink.addr, &["-tls"]);
    assert!(ok, "{out}");
    assert!(out.contains("TLS started"), "{out}");
    for mech in ["PLAIN", "LOGIN"] {
        let (ok, out) = swaks(
            sink.addr,
            &[
                "-tls",
                "--auth",
                mech,
                "--auth-user",
                "alice",
                "--auth-password",
                "s3cret",
            ],
        );
        assert!(ok, "{mech}: {out}");
        assert!(out.contains("235 2.7.0"), "{out}");
        let (ok, out) = swaks(
            sink.addr,
            &[
                "-tls",
                "--auth",
                mech,
                "--auth-user",
                "alice",
                "--auth-password",
                "wrong",
            ],
        );
        assert!(!ok, "{mech} with a wrong password: {out}");
        assert!(out.contains("535 5.7.8"), "{out}");
    }
    // AUTH is not offered in the clear.
    let (ok, out) = swaks(
        sink.addr,
        &[
            "--auth",
            "PLAIN",
            "--auth-user",
            "alice",
            "--auth-password",
            "s3cret",
        ],
    );
    assert!(!ok, "{out}");
    assert!(!out.contains("AUTH PLAIN LOGIN"), "{out}");
    assert_eq!(sink.wait_for(3).len(), 3);
}

#[test]
fn swaks_implicit_tls() {
    let cert = TestCert::localhost();
    let sink = PttSink::start(&[
        "--tls-cert",
        path_str(&cert.cert),
        "--tls-key",
        path_str(&cert.key),
        "--implicit-tls",
    ]);
    let (ok, out) = swaks(sink.addr, &["--tls-on-connect"]);
    assert!(ok, "{out}");
    assert!(!out.contains("250-STARTTLS"), "{out}");
    assert_eq!(sink.wait_for(1).len(), 1);
}

const SMTPLIB: &str = r#"
import smtplib, ssl, sys
port = int(sys.argv[1])
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
s = smtplib.SMTP("127.0.0.1", port, timeout=20)
s.ehlo("smtplib.test")
assert s.has_extn("starttls"), s.esmtp_features
s.starttls(context=ctx)
s.ehlo("smtplib.test")
s.login("alice", "s3cret")
msg = b"Subject: smtplib\r\n\r\n.starts with a dot\r\n..two dots\r\nend\r\n"
refused = s.sendmail("a@example.org", ["b@example.net", "c@example.net"], msg)
assert refused == {}, refused
code, _ = s.noop()
assert code == 250
s.quit()
print("ok")
"#;

#[test]
fn python_smtplib() {
    let cert = TestCert::localhost();
    let sink = PttSink::start(&[
        "--tls-cert",
        path_str(&cert.cert),
        "--tls-key",
        path_str(&cert.key),
        "--auth",
        "alice:s3cret",
    ]);
    let out = Command::new("python3")
        .args(["-c", SMTPLIB, &sink.port()])
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let m = sink.wait_for(1);
    assert!(contains(
        &m[0],
        b"\r\n.starts with a dot\r\n..two dots\r\nend\r\n"
    ));
}

#[test]
fn postfix_smtp_source() {
    let sink = PttSink::start(&[]);
    let program = ptt_testkit::require_program("smtp-source", "Debian package postfix");
    let out = Command::new(program)
        .args([
            "-c",
            "-m",
            "200",
            "-s",
            "5",
            "-l",
            "4096",
            "-f",
            "a@example.org",
        ])
        .args(["-t", "b@example.net"])
        .arg(sink.addr.to_string())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let m = sink.wait_for(200);
    assert_eq!(m.len(), 200);
    assert!(m.iter().all(|m| m.len() > 4096));
    // And pipelined (-d: don't wait for each reply).
    let program = ptt_testkit::require_program("smtp-source", "Debian package postfix");
    let out = Command::new(program)
        .args([
            "-d",
            "-m",
            "50",
            "-s",
            "2",
            "-l",
            "1000",
            "-f",
            "a@example.org",
        ])
        .args(["-t", "b@example.net"])
        .arg(sink.addr.to_string())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(sink.wait_for(250).len(), 250);
}

const HEAD: &[u8] = b"EHLO probe.test\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\n";

/// After each probe, another client still gets its message through.
fn still_serving(sink: &PttSink, expected: usize) {
    let (ok, out) = swaks(sink.addr, &[]);
    assert!(ok, "{out}");
    assert_eq!(sink.wait_for(expected).len(), expected);
}

#[test]
fn smuggling_probe() {
    let sink = PttSink::start(&[]);
    let mut c = Raw::connect(sink.addr);
    c.send(HEAD);
    c.send(
        b"DATA\r\nSubject: hi\r\n\r\nhello\n.\nMAIL FROM:<admin@example.net>\r\nRCPT TO:<victim@example.net>\r\nDATA\r\nSubject: forged\r\n\r\nforged\r\n.\r\nNOOP\r\n",
    );
    let codes = c.codes(6);
    assert_eq!(codes, ["250", "250", "250", "354", "554", "250"]);
    // The same with a bare CR and with "\r\n.\n".
    for smuggle in [
        &b"x\r.\rMAIL FROM:<e@x.org>\r\n.\r\n"[..],
        b"x\r\n.\nQUIT\r\n.\r\n",
    ] {
        c.send(b"MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\nDATA\r\n");
        c.send(smuggle);
        assert_eq!(c.codes(4), ["250", "250", "354", "554"]);
    }
    c.send(b"QUIT\r\n");
    assert!(c.reply().starts_with("221"));
    assert_eq!(sink.messages().len(), 0, "nothing smuggled was stored");
    still_serving(&sink, 1);
    assert_eq!(sink.leftovers(), 0);
}

#[test]
fn bare_lf_nul_and_overlong_probes() {
    let sink = PttSink::start(&[]);
    let mut c = Raw::connect(sink.addr);
    c.send(HEAD);
    c.send(b"NOOP\nRCPT TO:<c@example.net>\r\n");
    // "NOOP\n" is refused and drops the transaction, so the RCPT that
    // follows has no MAIL.
    let r = c.codes(5);
    assert_eq!(
        r,
        ["250", "250", "250", "500", "503"],
        "bare LF in a command"
    );
    c.send(b"NOOP\r\n");
    assert_eq!(c.codes(1), ["250"]);
    c.send(HEAD);
    c.send(b"DATA\r\nab\0c\r\n.\r\n");
    let r = c.reply();
    let r2 = c.codes(3);
    assert!(r.starts_with("250"), "{r}");
    assert_eq!(r2, ["250", "250", "354"]);
    let r = c.reply();
    assert!(r.starts_with("554 5.6.0 NUL"), "{r}");
    let long = vec![b'A'; 100_000];
    c.send(&long);
    c.send(b"\r\nNOOP\r\n");
    let r = c.reply();
    assert!(r.starts_with("500 5.5.6"), "{r}");
    assert_eq!(c.codes(1), ["250"]);
    drop(c);
    still_serving(&sink, 1);
}

#[test]
fn ten_thousand_recipients_probe() {
    let sink = PttSink::start(&[]);
    let mut c = Raw::connect(sink.addr);
    let mut input = b"EHLO probe.test\r\nMAIL FROM:<a@example.org>\r\n".to_vec();
    for i in 0..10_000 {
        input.extend_from_slice(format!("RCPT TO:<r{i}@example.net>\r\n").as_bytes());
    }
    // The server closes after too many errors; writing may then fail.
    c.send_lenient(&input);
    let codes = c.codes(1 + 1 + 1000 + 20 + 1);
    assert!(codes[..1002].iter().all(|c| c == "250"));
    assert!(
        codes[1002..1022].iter().all(|c| c == "452"),
        "{:?}",
        &codes[1000..]
    );
    assert_eq!(codes[1022], "421");
    assert!(c.closed());
    still_serving(&sink, 1);
}

/// A message past the in-memory limit spills into its temp file as it
/// streams and is stored byte for byte; an aborted one leaves nothing.
#[test]
fn large_message_spills_to_disk_intact() {
    let sink = PttSink::start(&[]);
    let mut body = Vec::new();
    let mut i = 0u32;
    while body.len() < 1_500_000 {
        body.extend_from_slice(format!("line {i} of a long message\r\n").as_bytes());
        i += 1;
    }
    let mut c = Raw::connect(sink.addr);
    c.send(HEAD);
    c.send(b"DATA\r\n");
    assert_eq!(c.codes(4), ["250", "250", "250", "354"]);
    c.send(b"Subject: big\r\n\r\n");
    c.send(&body);
    c.send(b".\r\n");
    assert_eq!(c.codes(1), ["250"]);
    // A second large message, cut off by a disconnect in the middle of DATA.
    c.send(b"MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\nDATA\r\n");
    assert_eq!(c.codes(3), ["250", "250", "354"]);
    c.send(&body);
    drop(c);
    let m = sink.wait_for(1);
    assert_eq!(m.len(), 1);
    assert!(contains(&m[0], b"\r\nSubject: big\r\n\r\nline 0 of"));
    assert!(m[0].ends_with(&body));
    // The server notices the closed connection and removes the temp file.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while sink.leftovers() > 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(sink.leftovers(), 0);
}
