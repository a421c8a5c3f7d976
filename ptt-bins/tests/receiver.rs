//! The receiver's filters end to end: the spam filter in the path (trained
//! on the shared SpamAssassin corpus, a spam marked, then refused, a ham
//! delivered), users training it through `spam@`/`ham@`, dangerous
//! attachments refused (a configurable list, nested parts too), forged
//! verdict fields removed, and the DMARC action (`annotate`, `quarantine`)
//! for a `p=reject` spoof from a BIND-served domain.

#[path = "common/site.rs"]
mod site;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use ptt_testkit::dns_zones::{BindZones, Zone};
use site::{PASSWORD, Site, ptt, text};

/// Sends `message` from `from` to `to` over plain SMTP at `port` with
/// Python's smtplib; returns the server's answer to the data
/// (`250 …` or the refusal).
fn send_raw(port: u16, from: &str, to: &str, message: &[u8]) -> String {
    let script = format!(
        r#"import smtplib, sys
data = sys.stdin.buffer.read().replace(b'\r\n', b'\n').replace(b'\n', b'\r\n')
s = smtplib.SMTP('127.0.0.1', {port}, timeout=30)
s.ehlo('mx.sender.test')
try:
    s.sendmail('{from}', ['{to}'], data)
    print('250 accepted')
except smtplib.SMTPRecipientsRefused as e:
    code, text = list(e.recipients.values())[0]
    print(code, text.decode())
except smtplib.SMTPResponseException as e:
    print(e.smtp_code, e.smtp_error.decode())
"#
    );
    let mut child = Command::new("python3")
        .args(["-c", &script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(message).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A site whose DNS is a BIND of its own (no question leaves the machine)
/// and `receiver` lines appended to `[receiver]`.
fn site(dns: &BindZones, receiver: &str) -> Site {
    let site = Site::with(
        "",
        Some(&format!("[dns]\nresolver = \"{}\"", dns.addr())),
        "",
    );
    site.append_config(receiver);
    site
}

fn zones() -> BindZones {
    BindZones::start(&[
        Zone {
            origin: "example.test.",
            records: &[("@", "TXT", "\"v=spf1 ip4:127.0.0.0/8 -all\"")],
        },
        Zone {
            origin: "bank.test.",
            records: &[
                ("@", "TXT", "\"v=spf1 ip4:192.0.2.1 -all\""),
                ("_dmarc", "TXT", "\"v=DMARC1; p=reject\""),
            ],
        },
    ])
}

fn corpus_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.file_name().is_none_or(|n| n != "cmds"))
        .collect();
    files.sort();
    files
}

/// The first of `files` that `ptt spam classify` calls `verdict`.
fn one_classified(db: &Path, files: &[PathBuf], verdict: &str) -> PathBuf {
    let mut args = vec![
        "spam".to_string(),
        "classify".into(),
        "--db".into(),
        db.display().to_string(),
    ];
    args.extend(files.iter().map(|f| f.display().to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = ptt(&args, "");
    let listed = String::from_utf8_lossy(&out.stdout).into_owned();
    let line = listed
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some(verdict))
        .unwrap_or_else(|| panic!("no held-out message classified {verdict}: {listed}"));
    PathBuf::from(line.split(": ").next().unwrap())
}

#[test]
fn corpus_spam_is_marked_then_refused_and_ham_is_delivered() {
    let Some(corpus) = ptt_testkit::shared_suite("corpora/spamassassin-public-corpus") else {
        eprintln!("skipped: no corpora/spamassassin-public-corpus under PTT_SHARED");
        return;
    };
    let spam = corpus_files(&corpus.join("spam-1"));
    let ham = corpus_files(&corpus.join("easy-ham-1"));
    let dns = zones();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("spam.db");
    let mut args = vec![
        "spam".to_string(),
        "train".into(),
        "--db".into(),
        db.display().to_string(),
        "--spam".into(),
    ];
    args.extend(spam[..300].iter().map(|f| f.display().to_string()));
    args.push("--ham".into());
    args.extend(ham[..300].iter().map(|f| f.display().to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = ptt(&args, "");
    assert!(out.status.success(), "{}", text(&out));
    let held_spam = one_classified(&db, &spam[300..340], "spam");
    let held_ham = one_classified(&db, &ham[300..340], "ham");

    let mut site = site(&dns, &format!("spam_db = \"{}\"\n", db.display()));
    site.serve(&[]);
    let answer = send_raw(
        site.receiver,
        "x@sender.test",
        "bob@example.test",
        &std::fs::read(&held_spam).unwrap(),
    );
    assert!(answer.starts_with("250"), "{answer}");
    let answer = send_raw(
        site.receiver,
        "y@sender.test",
        "bob@example.test",
        &std::fs::read(&held_ham).unwrap(),
    );
    assert!(answer.starts_with("250"), "{answer}");
    let mail = site.wait_mailbox("bob@example.test", 2);
    assert_eq!(mail.len(), 2, "{}", site.log());
    let texts: Vec<String> = mail
        .iter()
        .map(|m| String::from_utf8_lossy(m).into_owned())
        .collect();
    let marked: Vec<&String> = texts
        .iter()
        .filter(|t| t.contains("X-Spam-Flag: YES\r\n"))
        .collect();
    assert_eq!(marked.len(), 1, "exactly the spam is marked: {texts:?}");
    let score: f64 = marked[0]
        .lines()
        .find_map(|l| l.strip_prefix("X-Spam-Score: "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0);
    assert!(
        marked[0].contains("X-Spam-Status: Yes") && score >= 0.9,
        "{}",
        marked[0]
    );
    let clean = texts.iter().find(|t| !t.contains("X-Spam-Flag")).unwrap();
    assert!(clean.contains("X-Spam-Status: No"), "{clean}");

    // With spam_action = "refuse", the same spam is refused at the end of data.
    site.terminate();
    site.append_config("spam_action = \"refuse\"\nspam_threshold = 0.9\n");
    site.serve(&[]);
    let answer = send_raw(
        site.receiver,
        "x@sender.test",
        "bob@example.test",
        &std::fs::read(&held_spam).unwrap(),
    );
    assert!(
        answer.starts_with("550") && answer.contains("spam"),
        "{answer}"
    );
    assert_eq!(
        site.mailbox("bob@example.test").len(),
        2,
        "nothing more stored"
    );
}

/// A message as alice sends it through submission, with `attached`
/// forwarded as a message/rfc822 attachment.
fn forward_as_attachment(port: u16, to: &str, attached: &[u8]) -> String {
    let script = format!(
        r#"import smtplib, ssl, sys
from email.message import EmailMessage
import email
inner = email.message_from_bytes(sys.stdin.buffer.read())
m = EmailMessage()
m['From'] = 'alice@example.test'
m['To'] = '{to}'
m['Subject'] = 'this is spam'
m.set_content('see the attached message')
m.add_attachment(inner)
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
s = smtplib.SMTP('127.0.0.1', {port}, timeout=30)
s.starttls(context=ctx)
s.login('alice@example.test', '{PASSWORD}')
print(s.send_message(m))
s.quit()
"#
    );
    let mut child = Command::new("python3")
        .args(["-c", &script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(attached).unwrap();
    let out = child.wait_with_output().unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn status_of(message: &[u8]) -> String {
    String::from_utf8_lossy(message)
        .lines()
        .find(|l| l.starts_with("X-Spam-Status:"))
        .unwrap_or_default()
        .to_string()
}

#[test]
fn users_train_the_filter_through_spam_and_ham() {
    // The signer publishes its keys (the receiver checks our signature to
    // know the training came from a user of ours).
    let bind = ptt_testkit::Bind::start(
        "example.test",
        &[("@", "TXT", "\"v=spf1 ip4:127.0.0.0/8 -all\"")],
    );
    let dns = format!(
        "[dns]\nresolver = \"{a}\"\nprimary = \"{a}\"\ntsig_key = \"{k}\"",
        a = bind.addr(),
        k = bind.key().file.display()
    );
    let mut site = Site::with("", Some(&dns), "record_ttl = 1");
    site.serve(&[]);
    let pitch = b"From: seller@sender.test\r\nTo: bob@example.test\r\nSubject: cheap replica watches\r\n\r\n\
Cheap replica watches, best prices, order now, free shipping worldwide, limited offer.\r\n";
    let answer = send_raw(
        site.receiver,
        "seller@sender.test",
        "bob@example.test",
        pitch,
    );
    assert!(answer.starts_with("250"), "{answer}");
    let before = status_of(&site.wait_mailbox("bob@example.test", 1)[0]);
    assert!(
        before.contains("Unsure"),
        "an empty database knows nothing: {before}"
    );

    // alice reports it as spam, and a newsletter as ham.
    let out = forward_as_attachment(site.submission, "spam@example.test", pitch);
    assert!(out.contains("{}"), "{out}");
    let newsletter = b"From: news@sender.test\r\nSubject: our monthly meeting notes\r\n\r\n\
The minutes of the monthly meeting are below; the next meeting is on Tuesday.\r\n";
    let out = forward_as_attachment(site.submission, "ham@example.test", newsletter);
    assert!(out.contains("{}"), "{out}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while site.log().matches("spam filter trained").count() < 2
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(
        site.log().matches("spam filter trained").count(),
        2,
        "{}",
        site.log()
    );

    // The same pitch again: now a spam.
    let answer = send_raw(
        site.receiver,
        "seller@sender.test",
        "bob@example.test",
        pitch,
    );
    assert!(answer.starts_with("250"), "{answer}");
    let after = status_of(&site.wait_mailbox("bob@example.test", 2)[1]);
    assert!(before != after);
    assert!(
        after.starts_with("X-Spam-Status: Yes"),
        "training changed nothing: {after}"
    );

    // An outsider cannot train it.
    let answer = send_raw(
        site.receiver,
        "seller@sender.test",
        "spam@example.test",
        newsletter,
    );
    assert!(
        answer.starts_with("550") && answer.contains("train"),
        "{answer}"
    );
}

#[test]
fn dangerous_attachments_are_refused_and_forged_verdicts_removed() {
    let dns = zones();
    let mut site = site(&dns, "dangerous_extensions = [\"exe\", \"xyz\"]\n");
    site.serve(&[]);
    let with = |name: &str| {
        format!(
            "From: a@sender.test\r\nSubject: invoice\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n\
--b1\r\nContent-Type: application/octet-stream; name=\"{name}\"\r\nContent-Disposition: attachment; filename=\"{name}\"\r\n\
Content-Transfer-Encoding: base64\r\n\r\nTVqQAAMAAAAEAAAA\r\n--b1--\r\n"
        )
    };
    for name in ["invoice.pdf.exe", "RUN.XYZ"] {
        let answer = send_raw(
            site.receiver,
            "a@sender.test",
            "bob@example.test",
            with(name).as_bytes(),
        );
        assert!(
            answer.starts_with("550") && answer.contains(name),
            "{name}: {answer}"
        );
    }
    // Inside a forwarded message, too.
    let nested = format!(
        "From: a@sender.test\r\nSubject: fwd\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"outer\"\r\n\r\n\
--outer\r\nContent-Type: text/plain\r\n\r\nforwarded\r\n--outer\r\nContent-Type: message/rfc822\r\n\r\n{}\r\n--outer--\r\n",
        with("setup.exe")
    );
    let answer = send_raw(
        site.receiver,
        "a@sender.test",
        "bob@example.test",
        nested.as_bytes(),
    );
    assert!(
        answer.starts_with("550") && answer.contains("setup.exe"),
        "{answer}"
    );
    // Not on the configured list: delivered.
    let answer = send_raw(
        site.receiver,
        "a@sender.test",
        "bob@example.test",
        with("script.vbs").as_bytes(),
    );
    assert!(answer.starts_with("250"), "{answer}");
    // A verdict written by the sender is removed; ours is the only one.
    let forged = b"X-Spam-Status: No, score=0.000\r\nX-Spam-Flag: NO\r\nX-Spam-Score: 0.000\r\nFrom: a@sender.test\r\nSubject: hi\r\n\r\nhello\r\n";
    let answer = send_raw(site.receiver, "a@sender.test", "bob@example.test", forged);
    assert!(answer.starts_with("250"), "{answer}");
    let mail = site.wait_mailbox("bob@example.test", 2);
    let last = String::from_utf8_lossy(mail.last().unwrap()).into_owned();
    assert_eq!(last.matches("X-Spam-Status:").count(), 1, "{last}");
    assert_eq!(last.matches("X-Spam-Score:").count(), 1, "{last}");
    assert!(
        !last.contains("X-Spam-Flag: NO") && !last.contains("score=0.000"),
        "{last}"
    );
}

#[test]
fn dmarc_action_annotate_and_quarantine_keep_a_reject_spoof() {
    let dns = zones();
    let spoof =
        b"From: ceo@bank.test\r\nTo: bob@example.test\r\nSubject: wire the money\r\n\r\nnow\r\n";
    let mut enforce = site(&dns, "");
    enforce.serve(&[]);
    let answer = send_raw(enforce.receiver, "ceo@bank.test", "bob@example.test", spoof);
    assert!(
        answer.starts_with("550") && answer.contains("DMARC"),
        "{answer}"
    );
    drop(enforce);
    for (action, marked) in [("quarantine", true), ("annotate", false)] {
        let mut site = site(&dns, &format!("dmarc_action = \"{action}\"\n"));
        site.serve(&[]);
        let answer = send_raw(site.receiver, "ceo@bank.test", "bob@example.test", spoof);
        assert!(answer.starts_with("250"), "{action}: {answer}");
        let mail = site.wait_mailbox("bob@example.test", 1);
        let stored = String::from_utf8_lossy(&mail[0]).into_owned();
        assert!(stored.contains("dmarc=fail"), "{action}: {stored}");
        assert_eq!(
            stored.contains("X-Ptt-Quarantine: DMARC"),
            marked,
            "{action}: {stored}"
        );
    }
    // A bad value is a configuration error with its place and the fix.
    let dns2 = zones();
    let bad = site(&dns2, "dmarc_action = \"ignore\"\n");
    let out = ptt(&["check-config", bad.config.to_str().unwrap()], "");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out)
            .contains("dmarc_action = \"ignore\" is not one of enforce, quarantine, annotate"),
        "{}",
        text(&out)
    );
}

#[test]
fn a_thousand_concurrent_sessions_at_the_receiver_stay_under_64_mib() {
    const SESSIONS: usize = 1000;
    let dns = zones();
    let mut site = site(&dns, "");
    site.serve(&["receiver"]);
    let out = Command::new("python3")
        .arg(site::repo_root().join("benches/load/receiver_clients.py"))
        .args([
            &site.receiver.to_string(),
            &SESSIONS.to_string(),
            "bob@example.test",
            "100",
        ])
        .output()
        .expect("run the load client");
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    let peak = site
        .pids()
        .into_iter()
        .map(|(_, pid)| site::peak_rss_kib(pid))
        .max()
        .unwrap_or(0);
    println!("{report}receiver peak RSS {peak} KiB");
    assert!(
        report.starts_with(&format!("sessions {SESSIONS} ok {SESSIONS} errors 0")),
        "{report}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while site.mailbox("bob@example.test").len() < SESSIONS && std::time::Instant::now() < deadline
    {
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert_eq!(site.mailbox("bob@example.test").len(), SESSIONS);
    assert!(peak > 0 && peak < 64 * 1024, "peak RSS {peak} KiB");
}

#[test]
fn one_address_gets_no_more_than_its_share_of_sessions() {
    let dns = zones();
    let mut site = site(&dns, "max_sessions_per_ip = 3\n");
    site.serve(&[]);
    let script = format!(
        r#"import socket, time
socks = []
for i in range(5):
    s = socket.create_connection(('127.0.0.1', {port}), source_address=('127.0.0.5', 0))
    s.recv(1000)
    s.sendall(b'EHLO x.test\r\n')
    time.sleep(0.2)
    print(i, s.recv(1000).split(b'\r\n')[0].decode())
    socks.append(s)
"#,
        port = site.receiver
    );
    let out = Command::new("python3")
        .args(["-c", &script])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    let lines: Vec<&str> = said.lines().collect();
    assert_eq!(
        lines.len(),
        5,
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(lines[..3].iter().all(|l| l.contains(" 250")), "{said}");
    assert!(lines[3..].iter().all(|l| l.contains(" 421")), "{said}");
    // Another address is not affected, and the slots come back.
    std::thread::sleep(std::time::Duration::from_millis(300));
    let answer = send_raw(
        site.receiver,
        "a@sender.test",
        "bob@example.test",
        b"Subject: x\r\n\r\ny\r\n",
    );
    assert!(answer.starts_with("250"), "{answer}");
}

#[test]
fn kill_9_of_the_receiver_loses_nothing_that_got_a_250() {
    let dns = zones();
    let mut site = site(&dns, "");
    site.serve(&["receiver"]);
    // A sender that records which messages got their 250, retrying the others.
    let script = format!(
        r#"import smtplib, sys, time
accepted = []
for i in range(500):
    msg = 'From: a@sender.test\r\nTo: bob@example.test\r\nSubject: crash-%d\r\n\r\nbody %d\r\n' % (i, i)
    for attempt in range(100):
        try:
            s = smtplib.SMTP('127.0.0.1', {port}, timeout=10)
            s.sendmail('a@sender.test', ['bob@example.test'], msg)
            accepted.append(i)
            try:
                s.quit()
            except Exception:
                pass
            break
        except Exception:
            time.sleep(0.05)
print(' '.join(str(i) for i in accepted))
"#,
        port = site.receiver
    );
    let mut sender = Command::new("python3")
        .args(["-c", &script])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut kills = 0;
    while sender.try_wait().unwrap().is_none() && kills < 10 {
        std::thread::sleep(std::time::Duration::from_millis(150 + 47 * kills));
        site.kill("receiver");
        kills += 1;
        site.serve(&["receiver"]);
    }
    let out = sender.wait_with_output().unwrap();
    let accepted: Vec<usize> = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|n| n.parse().ok())
        .collect();
    assert_eq!(accepted.len(), 500, "every message got its 250 in the end");
    let stored: std::collections::BTreeSet<usize> = site
        .mailbox("bob@example.test")
        .iter()
        .filter_map(|m| {
            String::from_utf8_lossy(m)
                .lines()
                .find_map(|l| l.strip_prefix("Subject: crash-"))
                .and_then(|n| n.trim().parse().ok())
        })
        .collect();
    let lost: Vec<&usize> = accepted.iter().filter(|n| !stored.contains(n)).collect();
    assert!(kills >= 3, "killed {kills} times only");
    assert!(lost.is_empty(), "lost after a 250: {lost:?}");
}

#[test]
fn a_dmarc_aggregate_report_goes_to_the_rua_address_and_validates() {
    let sink = ptt_testkit::AiosmtpdSink::start(ptt_testkit::SinkTls::None);
    let dns = BindZones::start(&[
        Zone {
            origin: "example.test.",
            records: &[("@", "TXT", "\"v=spf1 ip4:127.0.0.0/8 -all\"")],
        },
        Zone {
            origin: "sender.test.",
            records: &[
                ("@", "TXT", "\"v=spf1 ip4:127.0.0.0/8 -all\""),
                (
                    "_dmarc",
                    "TXT",
                    "\"v=DMARC1; p=none; rua=mailto:reports@sender.test\"",
                ),
                ("@", "MX", "10 mx.sender.test."),
                ("mx", "A", "127.0.0.1"),
            ],
        },
    ]);
    let site_ = site(
        &dns,
        "dmarc_report_seconds = 3\ndmarc_rua = \"dmarc@example.test\"\n",
    );
    let config = std::fs::read_to_string(&site_.config).unwrap();
    std::fs::write(
        &site_.config,
        config.replacen(
            "[relay]\n",
            &format!("[relay]\nport = {}\n", sink.port()),
            1,
        ),
    )
    .unwrap();
    let mut site = site_;
    site.serve(&[]);
    for i in 0..3 {
        let message = format!(
            "From: x@sender.test\r\nTo: bob@example.test\r\nSubject: m{i}\r\n\r\nhello\r\n"
        );
        let answer = send_raw(
            site.receiver,
            "x@sender.test",
            "bob@example.test",
            message.as_bytes(),
        );
        assert!(answer.starts_with("250"), "{answer}");
    }
    let got = sink.wait_for(1, std::time::Duration::from_secs(30));
    assert_eq!(got.len(), 1, "{}", site.log());
    assert_eq!(got[0].rcpt_to, ["reports@sender.test"]);
    let feedback = ptt_dmarc::report::from_message(&got[0].data).unwrap();
    assert_eq!(feedback.len(), 1);
    assert_eq!(feedback[0].policy.domain, "sender.test");
    let count: u64 = feedback[0].records.iter().map(|r| r.count).sum();
    assert_eq!(count, 3, "{:?}", feedback[0]);
    // The attachment as sent validates against the RFC 7489 schema.
    let xsd = site::repo_root().join("ptt-dmarc/tests/data/rfc7489-rua.xsd");
    let script = r#"import email, gzip, subprocess, sys, tempfile
m = email.message_from_bytes(sys.stdin.buffer.read())
part = [p for p in m.walk() if p.get_filename()][0]
xml = gzip.decompress(part.get_payload(decode=True))
with tempfile.NamedTemporaryFile(suffix='.xml') as f:
    f.write(xml); f.flush()
    r = subprocess.run(['xmllint', '--noout', '--schema', sys.argv[1], f.name], capture_output=True, text=True)
    print(r.returncode, r.stderr)
"#;
    let mut child = Command::new("python3")
        .args(["-c", script, xsd.to_str().unwrap()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&got[0].data).unwrap();
    let out = child.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(said.starts_with("0 "), "xmllint: {said}");
    let sent = String::from_utf8_lossy(&got[0].data).into_owned();
    assert!(
        sent.contains("DKIM-Signature:") && sent.contains("Report Domain: sender.test"),
        "{sent}"
    );
    // The same report sent to our own rua= address is kept and listed.
    let answer = send_raw(
        site.receiver,
        "reports@sender.test",
        "dmarc@example.test",
        &got[0].data,
    );
    assert!(answer.starts_with("250"), "{answer}");
    assert!(
        site.log().contains("DMARC aggregate report kept"),
        "{}",
        site.log()
    );
    let answer = send_raw(
        site.receiver,
        "x@sender.test",
        "dmarc@example.test",
        b"Subject: hi\r\n\r\nnot a report\r\n",
    );
    assert!(answer.starts_with("550"), "{answer}");
    let out = ptt(
        &[
            "dmarc",
            "reports",
            "--config",
            site.config.to_str().unwrap(),
        ],
        "",
    );
    let listed = text(&out);
    assert!(out.status.success(), "{listed}");
    let line = listed
        .lines()
        .find(|l| l.contains("sender.test"))
        .unwrap_or_else(|| panic!("{listed}"));
    let fields: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(fields[0], "example.test", "{listed}");
    assert_eq!(&fields[fields.len() - 3..], ["3", "3", "0"], "{listed}");
}

#[test]
fn one_address_sends_no_more_than_its_messages_per_minute() {
    let dns = zones();
    let mut site = site(&dns, "max_messages_per_ip_per_minute = 3\n");
    site.serve(&[]);
    let script = format!(
        r#"import smtplib
s = smtplib.SMTP('127.0.0.1', {port}, timeout=30, source_address=('127.0.0.7', 0))
for i in range(5):
    try:
        s.sendmail('a@sender.test', ['bob@example.test'], 'Subject: m%d\r\n\r\nx\r\n' % i)
        print(i, 250)
    except smtplib.SMTPSenderRefused as e:
        print(i, e.smtp_code)
"#,
        port = site.receiver
    );
    let out = Command::new("python3")
        .args(["-c", &script])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        said.lines().collect::<Vec<_>>(),
        ["0 250", "1 250", "2 250", "3 450", "4 450"],
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Another address is not held back.
    let answer = send_raw(
        site.receiver,
        "b@sender.test",
        "bob@example.test",
        b"Subject: y\r\n\r\nz\r\n",
    );
    assert!(answer.starts_with("250"), "{answer}");
}
