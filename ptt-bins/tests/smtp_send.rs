//! `ptt send` against aiosmtpd (plain, STARTTLS, implicit TLS), Postfix
//! `smtp-sink`, and `ptt smtp-sink` (AUTH, BDAT, per-recipient refusal).

#[path = "smtp_common/mod.rs"]
mod common;

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::{PttSink, contains, path_str};
use ptt_testkit::{AiosmtpdSink, PostfixSink, SinkTls, TestCert};

const MESSAGE: &[u8] =
    b"From: a@example.org\nTo: b@example.net\nSubject: ptt send\n\n.leading dot\nbody\n";

fn send(args: &[&str], message: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ptt"))
        .arg("send")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ptt send");
    // ptt may refuse bad arguments without reading its input: a broken
    // pipe here is not the test's failure; the exit status and output say.
    if let Err(e) = child.stdin.take().unwrap().write_all(message) {
        assert_eq!(
            e.kind(),
            std::io::ErrorKind::BrokenPipe,
            "writing ptt's input: {e}"
        );
    }
    child.wait_with_output().unwrap()
}

fn show(out: &Output) -> String {
    format!(
        "status {:?}\n{}{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn to_aiosmtpd_plain_and_starttls() {
    for (tls, flag) in [
        (SinkTls::None, None),
        (SinkTls::StartTls, Some("--starttls")),
        // SinkTls::Implicit is left out: the testkit's aiosmtpd script does
        // not start in implicit mode with aiosmtpd 1.4 (its readiness probe
        // times out); implicit TLS is tested against `ptt smtp-sink` below
        // and with swaks in smtp_sink.rs.
    ] {
        let sink = AiosmtpdSink::start(tls);
        let server = sink.addr().to_string();
        let mut args = vec![
            "--server",
            &server,
            "--from",
            "a@example.org",
            "--to",
            "b@example.net",
            "--to",
            "c@example.net",
        ];
        args.extend(flag);
        let out = send(&args, MESSAGE);
        assert_eq!(out.status.code(), Some(0), "{tls:?}: {}", show(&out));
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("250 "),
            "{}",
            show(&out)
        );
        let got = sink.wait_for(1, Duration::from_secs(10));
        assert_eq!(got[0].mail_from, "a@example.org");
        assert_eq!(got[0].rcpt_to, ["b@example.net", "c@example.net"]);
        assert_eq!(got[0].tls, tls != SinkTls::None, "{tls:?}");
        assert_eq!(
            got[0].data,
            b"From: a@example.org\r\nTo: b@example.net\r\nSubject: ptt send\r\n\r\n.leading dot\r\nbody\r\n"
        );
    }
}

#[test]
fn starttls_required_but_not_offered() {
    let sink = AiosmtpdSink::start(SinkTls::None);
    let server = sink.addr().to_string();
    let out = send(
        &[
            "--server",
            &server,
            "--from",
            "a@example.org",
            "--to",
            "b@example.net",
            "--starttls",
        ],
        MESSAGE,
    );
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("STARTTLS"));
    assert!(sink.messages().is_empty());
}

#[test]
fn to_postfix_smtp_sink() {
    let sink = PostfixSink::start();
    let server = sink.addr().to_string();
    let out = send(
        &[
            "--server",
            &server,
            "--from",
            "a@example.org",
            "--to",
            "b@example.net",
        ],
        MESSAGE,
    );
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let dumps = loop {
        let d = sink.dumps();
        if !d.is_empty() || std::time::Instant::now() > deadline {
            break d;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(dumps.len(), 1);
    assert!(
        contains(&dumps[0], b"\n.leading dot"),
        "{}",
        String::from_utf8_lossy(&dumps[0])
    );
    // Chunking is not offered by smtp-sink: --chunking falls back to DATA.
    let out = send(
        &[
            "--server",
            &server,
            "--from",
            "",
            "--to",
            "b@example.net",
            "--chunking",
            "--no-pipelining",
        ],
        MESSAGE,
    );
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
}

#[test]
fn to_ptt_sink_with_starttls_auth_and_bdat() {
    let cert = TestCert::localhost();
    let sink = PttSink::start(&[
        "--tls-cert",
        path_str(&cert.cert),
        "--tls-key",
        path_str(&cert.key),
        "--auth",
        "alice:s3cret",
    ]);
    let server = sink.addr.to_string();
    let base = [
        "--server",
        &server,
        "--from",
        "alice@example.org",
        "--to",
        "b@example.net",
    ];
    let with = |extra: &[&str]| {
        let mut a = base.to_vec();
        a.extend_from_slice(extra);
        send(&a, MESSAGE)
    };
    let auth = [
        "--starttls",
        "--auth-user",
        "alice",
        "--auth-password",
        "s3cret",
    ];
    let out = with(&auth);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("235 2.7.0"));
    let mut chunked = auth.to_vec();
    chunked.push("--chunking");
    let out = with(&chunked);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let out = with(&[
        "--starttls",
        "--auth-user",
        "alice",
        "--auth-password",
        "nope",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let m = sink.wait_for(2);
    assert_eq!(m.len(), 2);
    for msg in &m {
        assert!(contains(msg, b"\r\n\r\n.leading dot\r\nbody\r\n"));
    }
}

#[test]
fn some_recipients_refused_exits_1() {
    let sink = PttSink::start(&["--max-recipients", "1"]);
    let server = sink.addr.to_string();
    let out = send(
        &[
            "--server",
            &server,
            "--from",
            "a@example.org",
            "--to",
            "b@example.net",
            "--to",
            "c@example.net",
        ],
        MESSAGE,
    );
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("452 4.5.3"));
    assert_eq!(sink.wait_for(1).len(), 1, "delivered to the accepted one");
    let bad = send(
        &[
            "--server",
            &server,
            "--from",
            "a@@x",
            "--to",
            "b@example.net",
        ],
        b"",
    );
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn implicit_tls_to_ptt_sink() {
    let cert = TestCert::localhost();
    let sink = PttSink::start(&[
        "--tls-cert",
        path_str(&cert.cert),
        "--tls-key",
        path_str(&cert.key),
        "--implicit-tls",
    ]);
    let server = sink.addr.to_string();
    let out = send(
        &[
            "--server",
            &server,
            "--from",
            "a@example.org",
            "--to",
            "b@example.net",
            "--tls",
            "--tls-ca",
            path_str(&cert.cert),
        ],
        MESSAGE,
    );
    // The test certificate is a self-signed CA certificate, which webpki
    // refuses as an end-entity: --tls-ca must fail the handshake...
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    // ...and without --tls-ca (opportunistic, unverified) it goes through.
    let out = send(
        &[
            "--server",
            &server,
            "--from",
            "a@example.org",
            "--to",
            "b@example.net",
            "--tls",
        ],
        MESSAGE,
    );
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(sink.wait_for(1).len(), 1);
}
