//! The relay against real MX hosts on loopback: BIND serving MX records
//! that point at aiosmtpd listeners on 127.0.0.2… (one down, one refusing
//! at first, one refusing for good, one with STARTTLS), a null MX, RFC 3464
//! reports parsed by Python's `email` package, and forwarding with SRS
//! checked by pyspf.

#[path = "common/farm.rs"]
mod farm;
#[path = "common/site.rs"]
mod site;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use farm::MxFarm;
use ptt_testkit::dns_zones::{BindZones, Zone};
use ptt_testkit::dnssec::{SignedZones, ValidatingResolver};
use ptt_testkit::python::pyspf_check;
use ptt_testkit::{SignedCert, free_port, swaks};
use site::{PASSWORD, Site, dns_through, ptt, text};

/// A certificate's files as the MX farm takes them.
fn files(cert: &SignedCert) -> (&Path, &Path) {
    (cert.cert.as_path(), cert.key.as_path())
}

/// Sends a message as alice through submission.
fn submit(site: &Site, to: &[&str], subject: &str) {
    let mut args = vec!["--server", "127.0.0.1", "--port"];
    let port = site.submission.to_string();
    args.push(&port);
    args.extend([
        "-tls",
        "--auth",
        "PLAIN",
        "--auth-user",
        "alice@example.test",
        "--auth-password",
        PASSWORD,
    ]);
    args.extend(["--from", "alice@example.test"]);
    let to = to.join(",");
    args.extend(["--to", &to]);
    let header = format!("Subject: {subject}");
    args.extend(["--header", &header, "--body", "hello from the relay test"]);
    let out = swaks(&args);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("250 2.0.0"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// `ptt queue list` for `config`, read again every 200 ms until `done`
/// says so of it or 20 s have passed; the last listing.
fn queue_listing(config: &str, done: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let listed = text(&ptt(&["queue", "list", "--config", config], ""));
        if done(&listed) || Instant::now() > deadline {
            return listed;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Parses an RFC 3464 report with Python's `email` package: returns the
/// per-recipient fields as `action status final-recipient diagnostic` lines.
fn parse_report(message: &[u8]) -> String {
    let script = r#"import email, sys
m = email.message_from_bytes(sys.stdin.buffer.read())
assert m.get_content_type() == 'multipart/report', m.get_content_type()
assert m.get_param('report-type') == 'delivery-status'
parts = m.get_payload()
assert parts[0].get_content_type() == 'text/plain'
assert parts[1].get_content_type() == 'message/delivery-status'
assert parts[2].get_content_type() in ('text/rfc822-headers', 'message/rfc822')
blocks = parts[1].get_payload()
assert blocks[0]['Reporting-MTA'].startswith('dns;'), blocks[0]['Reporting-MTA']
for b in blocks[1:]:
    print(b['Action'], b['Status'], b['Final-Recipient'], b['Diagnostic-Code'])
"#;
    let mut child = Command::new("python3")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), message).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "not a valid report: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(message)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn site_with_dns(dns: &BindZones, relay_extra: &str) -> Site {
    let site = Site::with(
        "",
        Some(&format!("[dns]\nresolver = \"{}\"", dns.addr())),
        "",
    );
    site.add_to_section("relay", relay_extra);
    site
}

#[test]
fn mx_order_retries_starttls_null_mx_and_one_report_for_the_failures() {
    let mx_port = free_port();
    let cert = SignedCert::for_names(&["mx2.remote.test"]);
    let farm = MxFarm::start(
        mx_port,
        &[
            ("127.0.0.3", "accept", Some(files(&cert))),
            ("127.0.0.4", "tempfail_once", None),
            ("127.0.0.5", "reject_rcpt", None),
        ],
    );
    let dns = BindZones::start(&[
        Zone {
            origin: "example.test.",
            records: &[("@", "TXT", "\"v=spf1 ip4:127.0.0.0/8 -all\"")],
        },
        Zone {
            origin: "remote.test.",
            records: &[
                // The preferred MX is down (nothing listens on .2).
                ("@", "MX", "10 mx1.remote.test."),
                ("@", "MX", "20 mx2.remote.test."),
                ("mx1", "A", "127.0.0.2"),
                ("mx2", "A", "127.0.0.3"),
            ],
        },
        Zone {
            origin: "flaky.test.",
            records: &[("@", "MX", "10 mx.flaky.test."), ("mx", "A", "127.0.0.4")],
        },
        Zone {
            origin: "refuse.test.",
            records: &[("@", "MX", "10 mx.refuse.test."), ("mx", "A", "127.0.0.5")],
        },
        Zone {
            origin: "nullmx.test.",
            records: &[("@", "MX", "0 .")],
        },
    ]);
    let mut site = site_with_dns(
        &dns,
        &format!(
            "port = {mx_port}\nretry_seconds = [1]\ngive_up_seconds = 120\nrequire_tls = [\"remote.test\"]\ntls_ca = \"{}\"",
            cert.ca.display()
        ),
    );
    site.serve(&[]);
    submit(
        &site,
        &[
            "bob@remote.test",
            "carol@flaky.test",
            "dave@refuse.test",
            "erin@nullmx.test",
        ],
        "to four domains",
    );

    // remote.test: the second MX, over verified TLS (required for it).
    let got = farm.wait_mail("127.0.0.3", 1);
    assert_eq!(got.len(), 1, "{}", site.log());
    assert_eq!(got[0]["rcpt_tos"], serde_json::json!(["bob@remote.test"]));
    assert_eq!(got[0]["tls"], true);
    assert_eq!(got[0]["mail_from"], "alice@example.test");
    assert!(got[0]["data"].as_str().unwrap().contains("DKIM-Signature:"));
    // flaky.test: 451 first, 250 at the next attempt a second later.
    let got = farm.wait_mail("127.0.0.4", 1);
    assert_eq!(got.len(), 1, "{}", site.log());
    assert_eq!(got[0]["rcpt_tos"], serde_json::json!(["carol@flaky.test"]));
    assert!(farm.mail("127.0.0.5").is_empty());

    // One report for dave (550) and erin (null MX), in alice's mailbox.
    let mailbox = site.wait_mailbox("alice@example.test", 1);
    assert_eq!(mailbox.len(), 1, "{}", site.log());
    let report = parse_report(&mailbox[0]);
    let lines: Vec<&str> = report.lines().collect();
    assert_eq!(lines.len(), 2, "{report}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("failed 5.1.1 rfc822; dave@refuse.test smtp; 550 5.1.1")),
        "{report}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("failed 5.1.10 rfc822; erin@nullmx.test")),
        "{report}"
    );
    let dsn = String::from_utf8_lossy(&mailbox[0]);
    assert!(dsn.contains("DKIM-Signature:"), "reports are signed: {dsn}");
    assert!(
        dsn.contains("Subject: to four domains"),
        "the original header comes back"
    );

    // Nothing is left in the queue.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = ptt(
            &["queue", "list", "--config", site.config.to_str().unwrap()],
            "",
        );
        let listed = text(&out);
        if listed.contains("the queue is empty") {
            break;
        }
        assert!(Instant::now() < deadline, "{listed}");
        std::thread::sleep(Duration::from_millis(200));
    }
    // The log says which host took what, and how.
    let log = site.log();
    assert!(
        log.contains("mx2.remote.test") && log.contains("tls=\"required\""),
        "{log}"
    );
}

#[test]
fn a_message_that_waits_is_listed_retried_and_deleted_by_ptt_queue() {
    // An MX that is down, a retry far away: the message waits.
    let mx_port = free_port();
    let dns = BindZones::start(&[
        Zone {
            origin: "example.test.",
            records: &[("@", "TXT", "\"v=spf1 ip4:127.0.0.0/8 -all\"")],
        },
        Zone {
            origin: "down.test.",
            records: &[("@", "MX", "10 mx.down.test."), ("mx", "A", "127.0.0.6")],
        },
    ]);
    let mut site = site_with_dns(&dns, &format!("port = {mx_port}\nretry_seconds = [3600]"));
    site.serve(&[]);
    submit(&site, &["zed@down.test"], "waiting");
    let config = site.config.to_str().unwrap().to_string();
    let listed = queue_listing(&config, |l| l.contains("deferred"));
    assert!(
        listed.contains("zed@down.test  deferred 4.4.1") && listed.contains("Connection refused"),
        "{listed}"
    );
    assert!(
        listed.contains("next in 59m") || listed.contains("next in 1h"),
        "{listed}"
    );
    let id = listed.split_whitespace().next().unwrap().to_string();
    let shown = text(&ptt(&["queue", "show", &id, "--config", &config], ""));
    assert!(
        shown.contains("Subject: waiting") && shown.contains("attempts: 1"),
        "{shown}"
    );

    // Now the MX comes up; retry makes it go at once.
    let farm = MxFarm::start(mx_port, &[("127.0.0.6", "accept", None)]);
    let out = ptt(&["queue", "retry", &id, "--config", &config], "");
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(farm.wait_mail("127.0.0.6", 1).len(), 1, "{}", site.log());

    // A second message, deleted by hand while the relay runs.
    drop(farm);
    submit(&site, &["zed@down.test"], "to be deleted");
    let listed = queue_listing(&config, |l| l.contains("deferred"));
    let id = listed.split_whitespace().next().unwrap().to_string();
    let out = ptt(&["queue", "delete", &id, "--config", &config], "");
    assert!(
        text(&out).contains(&format!("deleted {id}")),
        "{}",
        text(&out)
    );
    assert!(text(&ptt(&["queue", "list", "--config", &config], "")).contains("the queue is empty"));
    let out = ptt(&["queue", "show", "nonexistent0", "--config", &config], "");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    // Restarting finds nothing lost and nothing to do.
    site.terminate();
    assert!(
        site.log().contains("deleted by ptt queue"),
        "{}",
        site.log()
    );
}

#[test]
fn forwarded_mail_passes_spf_with_srs_and_its_bounce_returns_to_the_sender() {
    let mx_port = free_port();
    let farm = MxFarm::start(
        mx_port,
        &[
            ("127.0.0.7", "accept", None),
            ("127.0.0.8", "reject_data", None),
            ("127.0.0.9", "accept", None),
        ],
    );
    let dns = BindZones::start(&[
        Zone {
            origin: "example.test.",
            records: &[("@", "TXT", "\"v=spf1 ip4:127.0.0.0/8 -all\"")],
        },
        // The original sender's domain allows nobody on loopback: without
        // SRS, the forwarded copy would fail SPF at the destination.
        Zone {
            origin: "origin.test.",
            records: &[
                ("@", "TXT", "\"v=spf1 ip4:192.0.2.1 -all\""),
                ("@", "MX", "10 mx.origin.test."),
                ("mx", "A", "127.0.0.9"),
            ],
        },
        Zone {
            origin: "dest.test.",
            records: &[("@", "MX", "10 mx.dest.test."), ("mx", "A", "127.0.0.7")],
        },
        Zone {
            origin: "strict.test.",
            records: &[("@", "MX", "10 mx.strict.test."), ("mx", "A", "127.0.0.8")],
        },
    ]);
    let mut site = site_with_dns(&dns, &format!("port = {mx_port}\nretry_seconds = [1]"));
    let repo = std::path::Path::new(site.repo()).to_path_buf();
    let set_forward = |user: &str, to: &str| {
        let path = repo.clone();
        let work = tempfile::tempdir().unwrap();
        let git = |args: &[&str]| {
            let out = Command::new("git")
                .current_dir(work.path())
                .args(args)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "git {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        git(&["clone", "-q", path.to_str().unwrap(), "."]);
        let file = work.path().join(format!("users/{user}.toml"));
        let mut toml: String = std::fs::read_to_string(&file)
            .unwrap()
            .lines()
            .filter(|l| !l.starts_with("forward_to"))
            .map(|l| format!("{l}\n"))
            .collect();
        toml.push_str(&format!("forward_to = [\"{to}\"]\n"));
        std::fs::write(&file, toml).unwrap();
        git(&[
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@example.test",
            "commit",
            "-qam",
            "forward",
        ]);
        git(&["push", "-q", "origin", "HEAD"]);
    };
    set_forward("bob@example.test", "bob@dest.test");
    site.serve(&[]);

    // ann@origin.test writes to bob from the Internet (port 25).
    let port = site.receiver.to_string();
    let out = swaks(&[
        "--server",
        "127.0.0.1",
        "--port",
        &port,
        "--ehlo",
        "mx.origin.test",
        "--from",
        "ann@origin.test",
        "--to",
        "bob@example.test",
        "--header",
        "Subject: for bob, forwarded",
        "--body",
        "hi bob",
    ]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("250 2.0.0 forwarded"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let got = farm.wait_mail("127.0.0.7", 1);
    assert_eq!(got.len(), 1, "{}", site.log());
    let sender = got[0]["mail_from"].as_str().unwrap();
    assert!(
        sender.starts_with("SRS0=") && sender.ends_with("@example.test"),
        "{sender}"
    );
    assert_eq!(got[0]["rcpt_tos"], serde_json::json!(["bob@dest.test"]));
    let data = got[0]["data"].as_str().unwrap();
    assert!(
        data.contains("ARC-Seal:") && data.contains("Subject: for bob, forwarded"),
        "{data}"
    );
    let (spf, why) = pyspf_check(
        got[0]["peer"].as_str().unwrap(),
        sender,
        "mx.example.test",
        dns.port(),
    );
    assert_eq!(spf, "pass", "{why}");
    let (unrewritten, _) = pyspf_check(
        got[0]["peer"].as_str().unwrap(),
        "ann@origin.test",
        "mx.example.test",
        dns.port(),
    );
    assert_eq!(unrewritten, "fail", "without SRS it would fail");

    // Now bob forwards to a host that refuses: the report goes to the SRS
    // address, comes back in through the receiver, and reaches ann.
    set_forward("bob@example.test", "bob@strict.test");
    // The receiver reads the new commit within a second or two; until then
    // a copy still goes to dest.test, which the loop notices.
    let mut at_dest = farm.mail("127.0.0.7").len();
    for _ in 0..10 {
        std::thread::sleep(Duration::from_millis(1500));
        let out = swaks(&[
            "--server",
            "127.0.0.1",
            "--port",
            &port,
            "--ehlo",
            "mx.origin.test",
            "--from",
            "ann@origin.test",
            "--to",
            "bob@example.test",
            "--header",
            "Subject: for bob, refused",
            "--body",
            "hi again",
        ]);
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("250 2.0.0 forwarded"),
            "{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            site.log()
        );
        std::thread::sleep(Duration::from_millis(1500));
        let now_at_dest = farm.mail("127.0.0.7").len();
        if now_at_dest == at_dest {
            break;
        }
        at_dest = now_at_dest;
    }
    let back = farm.wait_mail("127.0.0.9", 1);
    assert_eq!(back.len(), 1, "{}", site.log());
    // aiosmtpd writes the null reverse path as "<>".
    assert_eq!(back[0]["mail_from"], "<>");
    assert_eq!(back[0]["rcpt_tos"], serde_json::json!(["ann@origin.test"]));
    let report = parse_report(back[0]["data"].as_str().unwrap().as_bytes());
    assert!(
        report.contains("failed 5.7.1 rfc822; bob@strict.test smtp; 554 5.7.1"),
        "{report}"
    );
}

#[test]
fn dsn_parameters_travel_from_submission_to_the_report() {
    let mx_port = free_port();
    let farm = MxFarm::start(
        mx_port,
        &[
            ("127.0.0.10", "accept", None),
            ("127.0.0.11", "reject_rcpt", None),
        ],
    );
    let dns = BindZones::start(&[
        Zone {
            origin: "example.test.",
            records: &[("@", "TXT", "\"v=spf1 ip4:127.0.0.0/8 -all\"")],
        },
        Zone {
            origin: "yes.test.",
            records: &[("@", "MX", "10 mx.yes.test."), ("mx", "A", "127.0.0.10")],
        },
        Zone {
            origin: "no.test.",
            records: &[("@", "MX", "10 mx.no.test."), ("mx", "A", "127.0.0.11")],
        },
    ]);
    let mut site = site_with_dns(&dns, &format!("port = {mx_port}\nretry_seconds = [1]"));
    site.serve(&[]);
    // NOTIFY=SUCCESS for one, NEVER for another, ORCPT and ENVID.
    let script = format!(
        r#"import smtplib, ssl
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
s = smtplib.SMTP('127.0.0.1', {port}, timeout=30)
s.starttls(context=ctx)
s.login('alice@example.test', '{PASSWORD}')
msg = 'From: alice@example.test\r\nTo: bob@yes.test\r\nSubject: with DSN\r\n\r\nhi\r\n'
s.mail('alice@example.test', ['RET=HDRS', 'ENVID=env-42'])
print(s.rcpt('bob@yes.test', ['NOTIFY=SUCCESS', 'ORCPT=rfc822;b@yes.test']))
print(s.rcpt('carl@no.test', ['NOTIFY=NEVER']))
print(s.rcpt('dora@no.test', ['NOTIFY=FAILURE']))
print(s.data(msg))
s.quit()
"#,
        port = site.submission
    );
    let out = Command::new("python3")
        .args(["-c", &script])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("250"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(farm.wait_mail("127.0.0.10", 1).len(), 1, "{}", site.log());
    // Two reports: bob delivered (asked), dora failed (asked); carl never.
    let mailbox = site.wait_mailbox("alice@example.test", 2);
    assert_eq!(mailbox.len(), 2, "{}", site.log());
    let reports: Vec<String> = mailbox.iter().map(|m| parse_report(m)).collect();
    let all = reports.join("");
    assert!(
        all.contains("delivered 2.0.0 rfc822; bob@yes.test"),
        "{all}"
    );
    assert!(all.contains("failed 5.1.1 rfc822; dora@no.test"), "{all}");
    assert!(!all.contains("carl@no.test"), "{all}");
    let texts: Vec<String> = mailbox
        .iter()
        .map(|m| String::from_utf8_lossy(m).into_owned())
        .collect();
    assert!(
        texts
            .iter()
            .all(|t| t.contains("Original-Envelope-Id: env-42")),
        "{texts:?}"
    );
    assert!(
        texts
            .iter()
            .any(|t| t.contains("Original-Recipient: rfc822;b@yes.test")),
        "{texts:?}"
    );
}

#[test]
fn mta_sts_enforce_keeps_mail_from_a_host_with_a_bad_certificate() {
    let mx_port = free_port();
    // Both MX hosts present a certificate no configured CA vouches for.
    let untrusted = SignedCert::for_names(&["mx.sts.test", "mx.plain.test", "mx.testing.test"]);
    let farm = MxFarm::start(
        mx_port,
        &[
            ("127.0.0.12", "accept", Some(files(&untrusted))),
            ("127.0.0.14", "accept", Some(files(&untrusted))),
            ("127.0.0.15", "accept", Some(files(&untrusted))),
        ],
    );
    // The policies' server has a certificate of a CA the relay trusts.
    let https = SignedCert::for_names(&["mta-sts.sts.test"]);
    let _policy = ptt_testkit::https::PolicyServer::start(
        std::net::Ipv4Addr::new(127, 0, 0, 13),
        &https.cert,
        &https.key,
        "version: STSv1\r\nmode: enforce\r\nmx: mx.sts.test\r\nmax_age: 86400\r\n",
    );
    let testing = SignedCert::for_names(&["mta-sts.testing.test"]);
    let _testing_policy = ptt_testkit::https::PolicyServer::start(
        std::net::Ipv4Addr::new(127, 0, 0, 16),
        &testing.cert,
        &testing.key,
        "version: STSv1\nmode: testing\nmx: *.testing.test\nmax_age: 86400\n",
    );
    let dns = BindZones::start(&[
        Zone {
            origin: "example.test.",
            records: &[("@", "TXT", "\"v=spf1 ip4:127.0.0.0/8 -all\"")],
        },
        Zone {
            origin: "sts.test.",
            records: &[
                ("@", "MX", "10 mx.sts.test."),
                ("mx", "A", "127.0.0.12"),
                ("_mta-sts", "TXT", "\"v=STSv1; id=20261207\""),
                ("mta-sts", "A", "127.0.0.13"),
            ],
        },
        Zone {
            origin: "plain.test.",
            records: &[("@", "MX", "10 mx.plain.test."), ("mx", "A", "127.0.0.14")],
        },
        Zone {
            origin: "testing.test.",
            records: &[
                ("@", "MX", "10 mx.testing.test."),
                ("mx", "A", "127.0.0.15"),
                ("_mta-sts", "TXT", "\"v=STSv1; id=1\""),
                ("mta-sts", "A", "127.0.0.16"),
            ],
        },
    ]);
    let bundle = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        bundle.path(),
        [
            std::fs::read(&https.ca).unwrap(),
            std::fs::read(&testing.ca).unwrap(),
        ]
        .concat(),
    )
    .unwrap();
    let mut site = site_with_dns(
        &dns,
        &format!(
            "port = {mx_port}\nretry_seconds = [3600]\ntls_ca = \"{}\"",
            bundle.path().display()
        ),
    );
    site.serve(&[]);
    submit(
        &site,
        &["pat@sts.test", "quinn@plain.test", "rory@testing.test"],
        "policies",
    );
    // Without a policy, and with a policy in testing mode, STARTTLS with
    // any certificate will do.
    assert_eq!(farm.wait_mail("127.0.0.14", 1).len(), 1, "{}", site.log());
    assert_eq!(farm.wait_mail("127.0.0.15", 1).len(), 1, "{}", site.log());
    // With enforce, the certificate must verify: kept, and the reason shown.
    let config = site.config.to_str().unwrap().to_string();
    let listed = queue_listing(&config, |l| l.contains("pat@sts.test deferred"));
    assert!(
        listed.contains("pat@sts.test  deferred"),
        "{listed}\n{}",
        site.log()
    );
    assert!(
        listed.contains("TLS mta-sts: an authenticated certificate is needed"),
        "{listed}"
    );
    assert!(farm.mail("127.0.0.12").is_empty());
    let log = site.log();
    assert!(
        log.contains("MTA-STS policy fetched") && log.contains("mode=enforce"),
        "{log}"
    );
    assert!(log.contains("tls=\"mta-sts-testing\""), "{log}");
    // The policy is cached on disk for the next start.
    let cached = site.state().join("relay/mta-sts/sts.test.toml");
    assert!(
        std::fs::read_to_string(&cached)
            .unwrap()
            .contains("enforce")
    );
}

/// The crash test's generator: `n` messages through submission over one
/// connection, each with its own subject; prints how many got a 250.
fn generate(port: u16, n: usize, rcpt_domain: &str, body_bytes: usize) -> Child {
    let script = format!(
        r#"import smtplib, ssl, sys, time
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
def connect():
    s = smtplib.SMTP('127.0.0.1', {port}, timeout=60)
    s.starttls(context=ctx)
    s.login('alice@example.test', '{PASSWORD}')
    return s
s = connect()
ok = 0
body = 'x' * 70 + '\r\n'
body = body * ({body_bytes} // 72 + 1)
for i in range({n}):
    msg = 'From: alice@example.test\r\nTo: u{{0}}@{rcpt_domain}\r\nSubject: flow-{{0}}\r\n\r\n'.format(i) + body
    for attempt in range(20):
        try:
            s.sendmail('alice@example.test', ['u%d@{rcpt_domain}' % (i % 10)], msg)
            ok += 1
            break
        except (smtplib.SMTPException, OSError) as e:
            print('retry', i, e, file=sys.stderr, flush=True)
            time.sleep(0.5)
            try:
                s = connect()
            except Exception:
                pass
print(ok, flush=True)
"#
    );
    Command::new("python3")
        .args(["-c", &script])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap()
}

/// The subjects `flow-N` the host at `ip` stored, with how many times each.
fn flow_counts(farm: &MxFarm, ip: &str) -> std::collections::BTreeMap<usize, usize> {
    let mut counts = std::collections::BTreeMap::new();
    for m in farm.mail(ip) {
        let data = m["data"].as_str().unwrap_or_default();
        if let Some(n) = data
            .lines()
            .find_map(|l| l.strip_prefix("Subject: flow-"))
            .and_then(|n| n.trim().parse::<usize>().ok())
        {
            *counts.entry(n).or_default() += 1;
        }
    }
    counts
}

#[test]
fn kill_9_of_the_relay_while_a_thousand_messages_flow_loses_none() {
    const N: usize = 1000;
    let mx_port = free_port();
    let farm = MxFarm::start(mx_port, &[("127.0.0.20", "accept", None)]);
    let dns = BindZones::start(&[
        Zone {
            origin: "example.test.",
            records: &[("@", "TXT", "\"v=spf1 ip4:127.0.0.0/8 -all\"")],
        },
        Zone {
            origin: "sink.test.",
            records: &[("@", "MX", "10 mx.sink.test."), ("mx", "A", "127.0.0.20")],
        },
    ]);
    let mut site = site_with_dns(&dns, &format!("port = {mx_port}\nretry_seconds = [1]"));
    site.serve(&["relay"]);
    site.serve(&["submission", "signer", "receiver"]);
    let mut generator = generate(site.submission, N, "sink.test", 200);
    // Kill the relay with SIGKILL at random moments while mail flows, and
    // start it again each time.
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64
        | 1;
    eprintln!("kill schedule seed {seed}");
    let mut random = move |below: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % below
    };
    let mut kills = 0;
    while generator.try_wait().unwrap().is_none() && kills < 20 {
        std::thread::sleep(Duration::from_millis(100 + random(700)));
        site.kill("relay");
        kills += 1;
        std::thread::sleep(Duration::from_millis(random(300)));
        site.serve(&["relay"]);
    }
    let out = generator.wait_with_output().unwrap();
    let accepted: usize = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0);
    assert_eq!(accepted, N, "every message got its 250 from submission");
    // Everything arrives: submission retries its spool every 30 s.
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut counts = flow_counts(&farm, "127.0.0.20");
    while counts.len() < N && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
        counts = flow_counts(&farm, "127.0.0.20");
    }
    let missing: Vec<usize> = (0..N).filter(|n| !counts.contains_key(n)).collect();
    let duplicates = counts.values().filter(|&&c| c > 1).count();
    eprintln!(
        "{kills} kills; {} distinct messages at the sink, {duplicates} delivered more than once",
        counts.len()
    );
    assert!(kills >= 3, "the relay was killed {kills} times only");
    assert!(missing.is_empty(), "lost: {missing:?}\n{}", site.log());
}

#[test]
fn a_full_queue_disk_gets_452_and_loses_nothing() {
    if !Command::new("unshare")
        .args(["-m", "--propagation", "private", "true"])
        .status()
        .is_ok_and(|s| s.success())
    {
        eprintln!(
            "skipped: needs `unshare -m` (root or CAP_SYS_ADMIN) to give the relay a small tmpfs"
        );
        return;
    }
    const N: usize = 12;
    let mx_port = free_port();
    let dns = BindZones::start(&[
        Zone {
            origin: "example.test.",
            records: &[("@", "TXT", "\"v=spf1 ip4:127.0.0.0/8 -all\"")],
        },
        Zone {
            origin: "later.test.",
            records: &[("@", "MX", "10 mx.later.test."), ("mx", "A", "127.0.0.22")],
        },
    ]);
    let mut site = site_with_dns(&dns, &format!("port = {mx_port}\nretry_seconds = [1]"));
    let queue = site.state().join("relay/queue");
    std::fs::create_dir_all(&queue).unwrap();
    // The relay's queue on a 320 KiB tmpfs of its own: five of these
    // messages fill it.
    let mount = format!(
        "mount -t tmpfs -o size=320k tmpfs '{}' && exec \"$@\"",
        queue.display()
    );
    site.serve_via(
        &["relay"],
        &[
            "unshare",
            "-m",
            "--propagation",
            "private",
            "sh",
            "-c",
            &mount,
            "sh",
        ],
    );
    site.serve(&["submission", "signer", "receiver"]);
    // The MX is down: the queue fills up.
    let generator = generate(site.submission, N, "later.test", 60_000);
    let out = generator.wait_with_output().unwrap();
    let accepted: usize = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0);
    assert_eq!(accepted, N, "submission took every message");
    let log = site.log();
    assert!(
        log.contains("cannot queue a message"),
        "the relay never ran out of room:\n{log}"
    );
    assert!(log.contains("452"), "{log}");
    // The MX comes up: the queue drains, room comes back, submission's
    // spool sends the rest.
    let farm = MxFarm::start(mx_port, &[("127.0.0.22", "accept", None)]);
    let deadline = Instant::now() + Duration::from_secs(150);
    let mut counts = flow_counts(&farm, "127.0.0.22");
    while counts.len() < N && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
        counts = flow_counts(&farm, "127.0.0.22");
    }
    let missing: Vec<usize> = (0..N).filter(|n| !counts.contains_key(n)).collect();
    assert!(missing.is_empty(), "lost: {missing:?}\n{}", site.log());
}

#[test]
fn no_relay_trick_gets_mail_out() {
    let mx_port = free_port();
    let farm = MxFarm::start(mx_port, &[("127.0.0.23", "accept", None)]);
    let dns = BindZones::start(&[
        Zone {
            origin: "example.test.",
            records: &[
                ("@", "TXT", "\"v=spf1 ip4:127.0.0.0/8 -all\""),
                ("@", "MX", "10 mx.example.test."),
                ("mx", "A", "127.0.0.1"),
            ],
        },
        Zone {
            origin: "victim.test.",
            records: &[("@", "MX", "10 mx.victim.test."), ("mx", "A", "127.0.0.23")],
        },
    ]);
    let mut site = site_with_dns(&dns, &format!("port = {mx_port}\nretry_seconds = [1]"));
    site.serve(&[]);
    let receiver = site.receiver.to_string();
    let tricks = [
        "bob%victim.test@example.test",
        "@example.test:bob@victim.test",
        "victim.test!bob@example.test",
        "\"bob@victim.test\"@example.test",
        "bob@victim.test",
        "bob@[127.0.0.23]",
        "bob@victim.test@example.test",
        "bob@example.test.victim.test",
        "postmaster@victim.test",
        "bob@example.test.",
    ];
    for rcpt in tricks {
        let out = swaks(&[
            "--server",
            "127.0.0.1",
            "--port",
            &receiver,
            "--ehlo",
            "attacker.test",
            "--from",
            "spammer@attacker.test",
            "--to",
            rcpt,
            "--header",
            "Subject: relay trick",
            "--body",
            "spam",
        ]);
        let transcript = String::from_utf8_lossy(&out.stdout);
        let rcpt_reply = transcript
            .lines()
            .skip_while(|l| !l.contains("RCPT TO"))
            .nth(1)
            .unwrap_or_default()
            .to_string();
        assert!(
            rcpt_reply.contains(" 5")
                || rcpt_reply.contains("<** 5")
                || transcript.contains("<** 5"),
            "{rcpt}: {transcript}"
        );
        assert!(
            !transcript.contains("250 2.0.0"),
            "{rcpt} was accepted: {transcript}"
        );
    }
    // Submission without AUTH, and AUTH over cleartext, get nowhere.
    let submission = site.submission.to_string();
    let out = swaks(&[
        "--server",
        "127.0.0.1",
        "--port",
        &submission,
        "-tls",
        "--from",
        "alice@example.test",
        "--to",
        "bob@victim.test",
        "--body",
        "x",
    ]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("530"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // The relay and the signer take only ptt's own services: a client with
    // no certificate, or the wrong one, fails the handshake.
    for port in [site.relay, site.signer] {
        let out = Command::new("openssl")
            .args([
                "s_client",
                "-connect",
                &format!("127.0.0.1:{port}"),
                "-quiet",
                "-verify_quiet",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                use std::io::Write as _;
                let _ = c.stdin.take().unwrap().write_all(
                    b"EHLO x\r\nMAIL FROM:<a@example.test>\r\nRCPT TO:<bob@victim.test>\r\n",
                );
                c.wait_with_output()
            })
            .unwrap();
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(
            !said.contains("250"),
            "port {port} spoke SMTP without a client certificate: {said}"
        );
    }
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        farm.mail("127.0.0.23").is_empty(),
        "something reached the victim"
    );
    let listed = text(&ptt(
        &["queue", "list", "--config", site.config.to_str().unwrap()],
        "",
    ));
    assert!(listed.contains("the queue is empty"), "{listed}");
}

/// `openssl … | openssl dgst -sha256`, in hex: the data of a TLSA record.
fn sha256_hex(pipeline: &str) -> String {
    let out = Command::new("sh")
        .args(["-c", &format!("{pipeline} | openssl dgst -sha256 -r")])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn dane_a_matching_tlsa_delivers_and_a_mismatch_or_a_bogus_answer_waits() {
    let mx_port = free_port();
    // A certificate no configured CA vouches for: only DANE can vouch.
    let cert = SignedCert::for_names(&[
        "mx1.dane.test",
        "mx2.dane.test",
        "mx3.dane.test",
        "mx.broken.test",
    ]);
    let chain = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        chain.path(),
        [
            std::fs::read(&cert.cert).unwrap(),
            std::fs::read(&cert.ca).unwrap(),
        ]
        .concat(),
    )
    .unwrap();
    let with_chain = (chain.path(), cert.key.as_path());
    let farm = MxFarm::start(
        mx_port,
        &[
            ("127.0.0.26", "accept", Some(with_chain)),
            ("127.0.0.27", "accept", Some(with_chain)),
            ("127.0.0.28", "accept", Some(with_chain)),
            ("127.0.0.29", "accept", Some(with_chain)),
        ],
    );
    let leaf_spki = sha256_hex(&format!(
        "openssl x509 -in '{}' -pubkey -noout | openssl pkey -pubin -outform DER",
        cert.cert.display()
    ));
    let ca_cert = sha256_hex(&format!(
        "openssl x509 -in '{}' -outform DER",
        cert.ca.display()
    ));
    let (ee, bad, ta) = (
        format!("3 1 1 {leaf_spki}"),
        format!("3 1 1 {}", "00".repeat(32)),
        format!("2 0 1 {ca_cert}"),
    );
    let (tlsa1, tlsa2, tlsa3, tlsa4) = (
        format!("_{mx_port}._tcp.mx1"),
        format!("_{mx_port}._tcp.mx2"),
        format!("_{mx_port}._tcp.mx3"),
        format!("_{mx_port}._tcp.mx"),
    );
    let zones = SignedZones::start(
        &[
            Zone {
                origin: "example.test.",
                records: &[("@", "TXT", "\"v=spf1 ip4:127.0.0.0/8 -all\"")],
            },
            Zone {
                origin: "dane.test.",
                records: &[
                    ("ok", "MX", "10 mx1.dane.test."),
                    ("bad", "MX", "10 mx2.dane.test."),
                    ("ta", "MX", "10 mx3.dane.test."),
                    ("mx1", "A", "127.0.0.26"),
                    ("mx2", "A", "127.0.0.27"),
                    ("mx3", "A", "127.0.0.29"),
                    (&tlsa1, "TLSA", &ee),
                    (&tlsa2, "TLSA", &bad),
                    (&tlsa3, "TLSA", &ta),
                ],
            },
            Zone {
                origin: "broken.test.",
                records: &[
                    ("@", "MX", "10 mx.broken.test."),
                    ("mx", "A", "127.0.0.28"),
                    (&tlsa4, "TLSA", &ee),
                ],
            },
        ],
        &["dane.test", "broken.test"],
    );
    // broken.test is given dane.test's key: its answers are bogus.
    let resolver = ValidatingResolver::start(
        zones.addr(),
        &[
            ("dane.test", zones.anchor("dane.test")),
            ("broken.test", zones.anchor("dane.test")),
        ],
    );
    let mut site = Site::with(
        "",
        Some(&format!(
            "[dns]\nresolver = \"{}\"\ndnssec_probe = \"dane.test\"",
            resolver.addr()
        )),
        "",
    );
    let config = std::fs::read_to_string(&site.config).unwrap();
    std::fs::write(
        &site.config,
        config.replacen(
            "[relay]\n",
            &format!("[relay]\nport = {mx_port}\nretry_seconds = [3600]\n"),
            1,
        ),
    )
    .unwrap();
    site.serve(&[]);
    submit(
        &site,
        &[
            "a@ok.dane.test",
            "b@bad.dane.test",
            "c@ta.dane.test",
            "d@broken.test",
        ],
        "dane",
    );
    // DANE-EE and DANE-TA matches are delivered…
    assert_eq!(farm.wait_mail("127.0.0.26", 1).len(), 1, "{}", site.log());
    assert_eq!(farm.wait_mail("127.0.0.29", 1).len(), 1, "{}", site.log());
    // …a mismatch and a bogus answer wait, and say why.
    let config = site.config.to_str().unwrap().to_string();
    let listed = queue_listing(&config, |l| {
        l.contains("b@bad.dane.test deferred") && l.contains("d@broken.test deferred")
    });
    assert!(
        listed.contains("no TLSA record matches"),
        "{listed}\n{}",
        site.log()
    );
    assert!(listed.contains("bogus"), "{listed}");
    assert!(farm.mail("127.0.0.27").is_empty() && farm.mail("127.0.0.28").is_empty());
    let log = site.log();
    assert!(
        log.contains("the resolver validates DNSSEC: DANE is on"),
        "{log}"
    );
    assert!(
        log.contains("tls=\"dane\"") && log.contains("result=\"delivered\""),
        "{log}"
    );
}

#[test]
fn a_smarthost_gets_everything_with_auth_over_verified_tls() {
    let port = free_port();
    let cert = SignedCert::for_names(&["smart.example.test"]);
    let farm = MxFarm::start_with(
        port,
        &[serde_json::json!({
            "ip": "127.0.0.30", "behaviour": "accept",
            "cert": cert.cert, "key": cert.key, "auth": "ptt-relay:s3cret smarthost",
        })],
    );
    let dns = BindZones::start(&[
        Zone {
            origin: "example.test.",
            records: &[
                ("@", "TXT", "\"v=spf1 ip4:127.0.0.0/8 -all\""),
                ("smart", "A", "127.0.0.30"),
            ],
        },
        // An MX of its own, never dialled: the smarthost takes everything.
        Zone {
            origin: "elsewhere.test.",
            records: &[
                ("@", "MX", "10 mx.elsewhere.test."),
                ("mx", "A", "127.0.0.31"),
            ],
        },
    ]);
    let password = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(password.path(), "s3cret smarthost\n").unwrap();
    let mut site = site_with_dns(
        &dns,
        &format!(
            "smarthost = \"smart.example.test:{port}\"\nsmarthost_user = \"ptt-relay\"\nsmarthost_password_file = \"{}\"\ntls_ca = \"{}\"",
            password.path().display(),
            cert.ca.display()
        ),
    );
    site.serve(&[]);
    submit(&site, &["zoe@elsewhere.test"], "via the smarthost");
    let got = farm.wait_mail("127.0.0.30", 1);
    assert_eq!(got.len(), 1, "{}", site.log());
    assert_eq!(got[0]["authenticated"], true);
    assert_eq!(got[0]["tls"], true);
    assert!(
        site.log().contains("tls=\"smarthost-auth\""),
        "{}",
        site.log()
    );
    // A smarthost user without its password file is a configuration error.
    let bad = site.dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        std::fs::read_to_string(&site.config)
            .unwrap()
            .replace("smarthost_password_file", "# smarthost_password_file"),
    )
    .unwrap();
    let out = ptt(&["check-config", bad.to_str().unwrap()], "");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("smarthost_user without smarthost_password_file"),
        "{}",
        text(&out)
    );
}

#[test]
fn a_forwarded_message_carries_an_arc_chain_dkimpy_validates() {
    // The signer publishes its keys in BIND (the ARC seal's key among them);
    // the forwarded copy goes to a smarthost standing in for the user's
    // real mailbox provider.
    let bind = ptt_testkit::Bind::start(
        "example.test",
        &[("@", "TXT", "\"v=spf1 ip4:127.0.0.0/8 -all\"")],
    );
    let port = free_port();
    let farm = MxFarm::start(port, &[("127.0.0.32", "accept", None)]);
    let mut site = Site::with("", Some(&dns_through(&bind)), "record_ttl = 1");
    site.add_to_section("relay", &format!("smarthost = \"127.0.0.32:{port}\""));
    let repo = Path::new(site.repo()).to_path_buf();
    let work = tempfile::tempdir().unwrap();
    let git = |args: &[&str]| {
        let out = Command::new("git")
            .current_dir(work.path())
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    git(&["clone", "-q", repo.to_str().unwrap(), "."]);
    let file = work.path().join("users/bob@example.test.toml");
    let mut toml = std::fs::read_to_string(&file).unwrap();
    toml.push_str("forward_to = [\"bob@real.example\"]\n");
    std::fs::write(&file, toml).unwrap();
    git(&[
        "-c",
        "user.name=t",
        "-c",
        "user.email=t@example.test",
        "commit",
        "-qam",
        "forward",
    ]);
    git(&["push", "-q", "origin", "HEAD"]);
    site.serve(&[]);
    let receiver = site.receiver.to_string();
    // Wait until the signer signs (its keys published), then send from outside.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !site.log().contains("ready") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut got = Vec::new();
    while got.is_empty() && Instant::now() < deadline {
        let out = swaks(&[
            "--server",
            "127.0.0.1",
            "--port",
            &receiver,
            "--ehlo",
            "mx.origin.test",
            "--from",
            "ann@origin.test",
            "--to",
            "bob@example.test",
            "--header",
            "Subject: forwarded with ARC",
            "--body",
            "hello bob",
        ]);
        let said = String::from_utf8_lossy(&out.stdout).into_owned();
        if said.contains("250 2.0.0 forwarded") {
            got = farm.wait_mail("127.0.0.32", 1);
        } else {
            std::thread::sleep(Duration::from_millis(500));
        }
    }
    assert_eq!(got.len(), 1, "{}", site.log());
    let data = got[0]["data"]
        .as_str()
        .unwrap()
        .replace("\r\n", "\n")
        .replace('\n', "\r\n");
    assert!(
        data.contains("ARC-Seal:") && data.contains("ARC-Message-Signature:"),
        "{data}"
    );
    assert!(got[0]["mail_from"].as_str().unwrap().starts_with("SRS0="));
    let verdict = ptt_testkit::python::dkimpy_arc_verify(
        data.as_bytes(),
        &ptt_testkit::python::PyDns::Server(bind.port()),
    );
    assert_eq!(verdict, "pass", "{data}");
}
