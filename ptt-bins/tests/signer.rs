//! The signer against a real BIND with TSIG: it publishes its keys'
//! records itself (and nothing when they are already right), replaces a key
//! changed on disk, says why a wrong TSIG key fails and changes nothing,
//! and rotates (new dated selector signing, the old one published until its
//! retention ends, then revoked, then gone). Mail through submission →
//! signer → relay → receiver carries both signatures, which dkimpy and
//! OpenDKIM verify against the records BIND serves.

#[path = "common/site.rs"]
mod site;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use ptt_testkit::Bind;
use ptt_testkit::python::{PyDns, dkimpy_verify_each};
use site::{PASSWORD, Site, ptt, swaks_to, text};

fn zone() -> Bind {
    zone_with(&[])
}

fn zone_with(extra: &[(&str, &str, &str)]) -> Bind {
    let mut records = vec![
        ("@", "TXT", "\"v=spf1 ip4:127.0.0.0/8 -all\""),
        ("_dmarc", "TXT", "\"v=DMARC1; p=reject\""),
    ];
    records.extend_from_slice(extra);
    Bind::start("example.test", &records)
}

/// A site whose DNS is `bind`: the resolver, and the primary with `key`.
fn site_on(bind: &Bind, key: &Path, extra_signer: &str) -> Site {
    let dns = format!(
        "[dns]\nresolver = \"{a}\"\nprimary = \"{a}\"\ntsig_key = \"{k}\"",
        a = bind.addr(),
        k = key.display()
    );
    Site::with("", Some(&dns), extra_signer)
}

/// The TXT record at `SELECTOR._domainkey.example.test`, strings joined.
fn key_record(bind: &Bind, selector: &str) -> Option<String> {
    let lines = bind.dig(&format!("{selector}._domainkey.example.test"), "TXT");
    lines.first().map(|l| {
        l.trim()
            .trim_matches('"')
            .split("\" \"")
            .collect::<String>()
    })
}

fn serial(bind: &Bind) -> u64 {
    bind.dig("example.test", "SOA")
        .first()
        .and_then(|l| l.split_whitespace().nth(2).map(str::to_string))
        .and_then(|s| s.parse().ok())
        .expect("a SOA serial")
}

fn wait_until(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The record of the signer's key `selector` as it is on disk.
fn record_on_disk(site: &Site, selector: &str) -> String {
    let pem = std::fs::read(site.state().join(format!("signer/keys/{selector}.pem"))).unwrap();
    ptt_dkim::SigningKey::from_pem(&pem)
        .unwrap()
        .key_record()
        .to_string()
}

fn send(site: &Site, subject: &str) -> String {
    site.submit_as_alice("bob@example.test", subject, "signed twice")
}

/// OpenDKIM's verdict on every signature of `message`, resolving through
/// libunbound pointed at `bind` (the `test.` zone is special-use, hence
/// `nodefault`).
fn opendkim_verify(message: &[u8], bind: &Bind) -> String {
    ptt_testkit::require_program("opendkim", "Debian package opendkim");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("unbound.conf"),
        format!(
            "server:\n  do-not-query-localhost: no\n  local-zone: \"test.\" nodefault\n  module-config: \"iterator\"\n\
             forward-zone:\n  name: \".\"\n  forward-addr: 127.0.0.1@{}\n",
            bind.port()
        ),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("opendkim.conf"),
        format!(
            "Mode v\nSyslog no\nMinimumKeyBits 1024\nResolverConfiguration {}\n",
            dir.path().join("unbound.conf").display()
        ),
    )
    .unwrap();
    let file = dir.path().join("msg.eml");
    std::fs::write(&file, message).unwrap();
    let out = Command::new("opendkim")
        .arg("-x")
        .arg(dir.path().join("opendkim.conf"))
        .arg("-t")
        .arg(&file)
        .output()
        .expect("run opendkim");
    text(&out)
}

#[test]
fn the_signer_publishes_its_keys_and_both_signatures_verify() {
    // A wildcard answers for the selectors' names before they exist: an
    // UPDATE prerequisite never matches what a wildcard synthesizes.
    let bind = zone_with(&[("*", "TXT", "\"wildcard\"")]);
    let mut site = site_on(&bind, &bind.key().file, "record_ttl = 1");
    site.serve(&[]);
    for sel in ["ptt-ed25519", "ptt-rsa"] {
        wait_until(&format!("{sel} published"), Duration::from_secs(20), || {
            key_record(&bind, sel).is_some()
        });
        assert_eq!(key_record(&bind, sel).unwrap(), record_on_disk(&site, sel));
    }
    let out = send(&site, "through the signer");
    assert!(out.contains("250 2.0.0 queued"), "{out}");
    let mail = site.wait_mailbox("bob@example.test", 1);
    assert_eq!(mail.len(), 1, "{}", site.log());
    let message = &mail[0];
    let head = String::from_utf8_lossy(message);
    assert!(
        head.contains("a=ed25519-sha256") && head.contains("a=rsa-sha256"),
        "{head}"
    );
    assert!(
        head.contains("dkim=pass header.d=example.test header.s=ptt-ed25519")
            && head.contains("dkim=pass header.d=example.test header.s=ptt-rsa"),
        "the receiver checked both against BIND: {head}"
    );
    // Independent verifiers, each asking BIND.
    assert_eq!(
        dkimpy_verify_each(message, &PyDns::Server(bind.port())),
        [true, true]
    );
    let odk = opendkim_verify(message, &bind);
    assert!(
        odk.contains("s=ptt-ed25519") || odk.contains("s=ptt-rsa"),
        "opendkim: {odk}"
    );
    assert!(
        !odk.contains("fail") && odk.contains("succeeded"),
        "opendkim: {odk}"
    );
    // Both signatures, each alone: the message with only one of them.
    for keep in ["a=ed25519-sha256", "a=rsa-sha256"] {
        let only = strip_other_signature(message, keep);
        let odk = opendkim_verify(&only, &bind);
        assert!(
            odk.contains("succeeded") && !odk.contains("fail"),
            "{keep} alone: {odk}"
        );
    }

    // A restart finds the records right and sends no UPDATE.
    let before = serial(&bind);
    site.terminate();
    site.serve(&[]);
    let out = send(&site, "after a restart");
    assert!(out.contains("250 2.0.0 queued"), "{out}");
    assert_eq!(site.wait_mailbox("bob@example.test", 2).len(), 2);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(serial(&bind), before, "a restart made a new serial");

    // A key changed on disk is replaced at the primary.
    let rsa = site.state().join("signer/keys/ptt-rsa.pem");
    std::fs::remove_file(&rsa).unwrap();
    let out = ptt(
        &[
            "dkim",
            "keygen",
            "--algorithm",
            "rsa-2048",
            "--selector",
            "ptt-rsa",
            "--domain",
            "example.test",
            "--out",
            rsa.to_str().unwrap(),
        ],
        "",
    );
    assert!(out.status.success(), "{}", text(&out));
    let want = record_on_disk(&site, "ptt-rsa");
    wait_until("the new key published", Duration::from_secs(20), || {
        key_record(&bind, "ptt-rsa").as_deref() == Some(want.as_str())
    });
    assert!(serial(&bind) > before);
    assert!(site.log().contains("key record replaced"), "{}", site.log());
}

/// `message` without the DKIM-Signature field that lacks `keep`.
fn strip_other_signature(message: &[u8], keep: &str) -> Vec<u8> {
    let text = String::from_utf8_lossy(message).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let mut fields: Vec<String> = Vec::new();
    for line in head.split("\r\n") {
        if line.starts_with([' ', '\t']) {
            if let Some(last) = fields.last_mut() {
                last.push_str("\r\n");
                last.push_str(line);
            }
        } else {
            fields.push(line.to_string());
        }
    }
    fields.retain(|f| !f.starts_with("DKIM-Signature:") || f.contains(keep));
    format!("{}\r\n\r\n{body}", fields.join("\r\n")).into_bytes()
}

#[test]
fn a_wrong_tsig_key_changes_nothing_and_says_why() {
    let bind = zone();
    let dir = tempfile::tempdir().unwrap();
    let wrong = dir.path().join("wrong.key");
    std::fs::write(
        &wrong,
        "key \"upd-key\" {\n\talgorithm hmac-sha256;\n\tsecret \"d3JvbmcgZm9yIHN1cmUgdGhpcyBpcyBub3QgdGhlIGtleQ==\";\n};\n",
    )
    .unwrap();
    let before = serial(&bind);
    let mut site = site_on(&bind, &wrong, "record_ttl = 1");
    site.serve(&[]);
    wait_until("the refusal in the log", Duration::from_secs(20), || {
        site.log().contains("publishing ptt-")
    });
    let log = site.log();
    assert!(
        log.contains("rejected the TSIG signature") && log.contains("tsig_key"),
        "{log}"
    );
    assert!(key_record(&bind, "ptt-rsa").is_none());
    assert_eq!(serial(&bind), before);
    // Nothing is signed with an unpublished key: submission keeps the
    // message in its spool and says so.
    let out = send(&site, "not signed yet");
    assert!(out.contains("250 2.0.0 queued"), "{out}");
    wait_until("the spool", Duration::from_secs(10), || {
        site.log().contains("accepted into the spool")
    });
    assert!(
        site.log().contains("no DKIM key is published yet"),
        "{}",
        site.log()
    );
    assert!(site.mailbox("bob@example.test").is_empty());
}

#[test]
fn a_rotation_signs_with_the_new_selector_and_retires_the_old() {
    let bind = zone();
    let mut site = site_on(
        &bind,
        &bind.key().file,
        "record_ttl = 1\nretention_seconds = 4",
    );
    site.serve(&[]);
    wait_until("the first keys", Duration::from_secs(20), || {
        key_record(&bind, "ptt-rsa").is_some() && key_record(&bind, "ptt-ed25519").is_some()
    });
    let config = site.config.to_str().unwrap().to_string();
    let out = ptt(
        &["dkim", "rotate", "--config", &config, "--timeout", "30"],
        "",
    );
    assert!(out.status.success(), "{}", text(&out));
    let said = text(&out);
    assert!(said.contains("the resolver serves the new key"), "{said}");
    assert!(
        said.contains("a test message signed with the new keys verifies"),
        "{said}"
    );
    let new: Vec<String> = said
        .lines()
        .filter_map(|l| l.split_once(": record ").map(|(sel, _)| sel.to_string()))
        .collect();
    assert_eq!(new.len(), 2, "{said}");
    assert!(
        new.iter().all(|s| s.starts_with('p') && s.contains('m')),
        "dated: {new:?}"
    );
    let keys = text(&ptt(&["dkim", "keys", "--config", &config], ""));
    assert!(keys.contains(&new[0]) && keys.contains("active"), "{keys}");
    assert!(
        keys.contains("ptt-rsa") && keys.contains("retiring"),
        "{keys}"
    );

    // Mail is now signed with the new selectors, and verifies.
    wait_until("signing with the new keys", Duration::from_secs(20), || {
        site.log().contains(&format!("selectors=\"{}", new[0]))
    });
    let out = send(&site, "after rotation");
    assert!(out.contains("250 2.0.0 queued"), "{out}");
    let mail = site.wait_mailbox("bob@example.test", 1);
    let head = String::from_utf8_lossy(&mail[0]).into_owned();
    for sel in &new {
        assert!(
            head.contains(&format!("s={sel};")),
            "{sel} not used: {head}"
        );
    }
    assert!(!head.contains("s=ptt-rsa;"), "{head}");
    assert_eq!(
        dkimpy_verify_each(&mail[0], &PyDns::Server(bind.port())),
        [true, true]
    );
    // The old selectors stay published right after the rotation ...
    assert!(key_record(&bind, "ptt-rsa").is_some_and(|r| !r.ends_with("p=")));
    // ... then are revoked (p= empty) once the retention is over ...
    wait_until("the old key revoked", Duration::from_secs(30), || {
        key_record(&bind, "ptt-rsa").is_some_and(|r| r.ends_with("p="))
    });
    // ... then removed, record and key.
    wait_until("the old key removed", Duration::from_secs(30), || {
        key_record(&bind, "ptt-rsa").is_none() && key_record(&bind, "ptt-ed25519").is_none()
    });
    assert!(!site.state().join("signer/keys/ptt-rsa.pem").exists());
    let keys = text(&ptt(&["dkim", "keys", "--config", &config], ""));
    assert!(
        keys.lines()
            .any(|l| l.starts_with("ptt-rsa") && l.contains("removed")),
        "{keys}"
    );
    for sel in &new {
        assert_eq!(key_record(&bind, sel).unwrap(), record_on_disk(&site, sel));
    }
}

#[test]
fn mail_the_receiver_forwards_gets_an_arc_set_dkimpy_validates() {
    let bind = zone();
    let mut site = site_on(&bind, &bind.key().file, "record_ttl = 1");
    site.serve(&[]);
    wait_until("the keys published", Duration::from_secs(20), || {
        key_record(&bind, "ptt-rsa").is_some()
    });
    // Stand in for the receiver: its certificate, a message from another
    // domain with the receiver's Authentication-Results.
    let tls = site.state().join("receiver/tls");
    let script = format!(
        "import smtplib, ssl\nctx = ssl.create_default_context(cafile='{ca}')\nctx.check_hostname = False\n\
         ctx.load_cert_chain('{cert}', '{key}')\n\
         s = smtplib.SMTP_SSL('127.0.0.1', {port}, context=ctx, timeout=60)\n\
         msg = ('Authentication-Results: mx.example.test; spf=pass smtp.mailfrom=friend@elsewhere.test\\r\\n'\n\
                'From: Friend <friend@elsewhere.test>\\r\\nTo: bob@example.test\\r\\nSubject: forwarded\\r\\n'\n\
                'Date: Mon, 07 Dec 2026 01:00:00 +0000\\r\\nMessage-ID: <f1@elsewhere.test>\\r\\n\\r\\nhello through a forwarder\\r\\n')\n\
         print(s.sendmail('friend@elsewhere.test', ['bob@example.test'], msg))\ns.quit()\n",
        ca = site.state().join("ca/ca.pem").display(),
        cert = tls.join("cert.pem").display(),
        key = tls.join("key.pem").display(),
        port = site.signer,
    );
    let out = Command::new("python3")
        .args(["-c", &script])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let mail = site.wait_mailbox("bob@example.test", 1);
    assert_eq!(mail.len(), 1, "{}", site.log());
    let head = String::from_utf8_lossy(&mail[0]).into_owned();
    assert!(
        head.contains("ARC-Seal:") && head.contains("cv=none"),
        "{head}"
    );
    assert!(head.contains("ARC-Message-Signature:"), "{head}");
    // The receiver's results travel in the set.
    assert!(
        head.contains("ARC-Authentication-Results: i=1; mx.example.test; arc=none;\r\n\tspf=pass"),
        "{head}"
    );
    assert_eq!(
        ptt_testkit::python::dkimpy_arc_verify(&mail[0], &PyDns::Server(bind.port())),
        "pass",
        "{head}"
    );
    // Signed as our hop too, though the From: is someone else's.
    assert_eq!(
        dkimpy_verify_each(&mail[0], &PyDns::Server(bind.port())),
        [true, true]
    );
    // Submission mail with a foreign From: is still refused: only the
    // receiver and the list server may hand the signer others' mail.
    let out = text(&swaks_to(
        site.submission,
        &[
            "-tls",
            "--auth",
            "PLAIN",
            "--auth-user",
            "alice@example.test",
            "--auth-password",
            PASSWORD,
            "--from",
            "alice@example.test",
            "--to",
            "bob@example.test",
        ],
    ));
    assert!(out.contains("250 2.0.0 queued"), "{out}");
    let mail = site.wait_mailbox("bob@example.test", 2);
    assert!(
        !String::from_utf8_lossy(&mail[1]).contains("ARC-Seal"),
        "no ARC for submitted mail"
    );
}
