//! The testkit's own check: each peer starts, does its job and stops.

use std::time::Duration;

use ptt_testkit::{AiosmtpdSink, Bind, PostfixSink, SinkTls, swaks};

#[test]
fn bind_accepts_tsig_update_and_serves_it() {
    let dns = Bind::start("test.", &[("www", "A", "192.0.2.80")]);
    assert_eq!(dns.dig("www.test.", "A"), vec!["192.0.2.80"]);

    dns.nsupdate(&["update add sel._domainkey.test. 300 TXT \"v=DKIM1; k=ed25519; p=AAAA\""])
        .expect("signed update accepted");
    assert_eq!(
        dns.dig("sel._domainkey.test.", "TXT"),
        vec!["\"v=DKIM1; k=ed25519; p=AAAA\""]
    );

    let refused = dns
        .nsupdate_unsigned(&["update add evil.test. 300 TXT \"x\""])
        .expect_err("an update without the key must be refused");
    assert!(refused.contains("REFUSED"), "nsupdate said: {refused}");
    assert!(dns.dig("evil.test.", "TXT").is_empty());
}

#[test]
fn aiosmtpd_sink_stores_what_swaks_sends() {
    let sink = AiosmtpdSink::start(SinkTls::None);
    let port = sink.port().to_string();
    let out = swaks(&[
        "--server",
        "127.0.0.1",
        "--port",
        &port,
        "--from",
        "alice@example.org",
        "--to",
        "bob@example.net,carol@example.net",
        "--helo",
        "client.test",
        "--header",
        "Subject: testkit",
        "--body",
        "hello from swaks",
    ]);
    assert!(
        out.status.success(),
        "swaks: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let got = sink.wait_for(1, Duration::from_secs(10));
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].mail_from, "alice@example.org");
    assert_eq!(got[0].rcpt_to, ["bob@example.net", "carol@example.net"]);
    assert_eq!(got[0].helo, "client.test");
    assert!(!got[0].tls);
    let text = String::from_utf8_lossy(&got[0].data);
    assert!(text.contains("Subject: testkit"), "{text}");
    assert!(text.contains("hello from swaks"), "{text}");
}

#[test]
fn aiosmtpd_sink_speaks_starttls() {
    let sink = AiosmtpdSink::start(SinkTls::StartTls);
    let port = sink.port().to_string();
    let out = swaks(&[
        "--server",
        "127.0.0.1",
        "--port",
        &port,
        "-tls",
        "--from",
        "alice@example.org",
        "--to",
        "bob@example.net",
    ]);
    assert!(
        out.status.success(),
        "swaks: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let got = sink.wait_for(1, Duration::from_secs(10));
    assert!(got[0].tls, "the message came over TLS");
}

#[test]
fn postfix_smtp_sink_dumps_messages() {
    let sink = PostfixSink::start();
    let port = sink.port().to_string();
    let out = swaks(&[
        "--server",
        "127.0.0.1",
        "--port",
        &port,
        "--from",
        "alice@example.org",
        "--to",
        "bob@example.net",
        "--body",
        "to postfix",
    ]);
    assert!(
        out.status.success(),
        "swaks: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let dumps = sink.dumps();
        if let Some(d) = dumps.first() {
            assert!(String::from_utf8_lossy(d).contains("to postfix"));
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "smtp-sink wrote no dump"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn dkimpy_signs_and_verifies_with_a_txt_map() {
    use ptt_testkit::python::{PyDns, dkimpy_sign, dkimpy_verify, ed25519_keypair};
    let (private, public) = ed25519_keypair();
    let msg = b"From: a@example.org\r\nTo: b@example.net\r\nSubject: hi\r\n\r\nbody\r\n";
    let signed = dkimpy_sign(msg, "sel", "example.org", private.as_bytes(), true);
    let mut txt = std::collections::BTreeMap::new();
    txt.insert(
        "sel._domainkey.example.org".to_string(),
        format!("v=DKIM1; k=ed25519; p={public}"),
    );
    let dns = PyDns::Txt(txt);
    assert!(dkimpy_verify(&signed, &dns));
    let mut tampered = signed.clone();
    let last = tampered.len() - 3;
    tampered[last] ^= 1;
    assert!(!dkimpy_verify(&tampered, &dns));
}

#[test]
fn aiosmtpd_sink_speaks_implicit_tls() {
    let sink = AiosmtpdSink::start(SinkTls::Implicit);
    let port = sink.port().to_string();
    let out = swaks(&[
        "--server",
        "127.0.0.1",
        "--port",
        &port,
        "--tls-on-connect",
        "--from",
        "alice@example.org",
        "--to",
        "bob@example.net",
    ]);
    assert!(
        out.status.success(),
        "swaks: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let got = sink.wait_for(1, Duration::from_secs(10));
    assert!(got[0].tls, "the message came over TLS");
}
