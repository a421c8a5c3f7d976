//! Submission through `ptt serve`, driven by swaks and Python's smtplib:
//! AUTH PLAIN and LOGIN over STARTTLS and implicit TLS against the Git user
//! database; every refusal with its code; a password changed by
//! `ptt passwd` taken up without a restart; password guessing throttled;
//! services in separate processes behave the same; the signer refuses
//! clients without the right certificate; SIGTERM mid-flow loses nothing
//! that got a 250.

#[path = "common/site.rs"]
mod site;

use std::process::Command;
use std::time::{Duration, Instant};

use site::{PASSWORD, Site, ptt, swaks_to, text};

fn as_user(port: u16, tls: &str, mech: &str, user: &str, password: &str, rest: &[&str]) -> String {
    let mut args = vec![
        tls,
        "--auth",
        mech,
        "--auth-user",
        user,
        "--auth-password",
        password,
    ];
    args.extend_from_slice(rest);
    text(&swaks_to(port, &args))
}

#[test]
fn plain_and_login_over_starttls_and_implicit_tls() {
    let mut site = Site::new("");
    site.serve(&[]);
    let mut n = 0;
    for (port, tls) in [
        (site.submission, "-tls"),
        (site.submissions, "--tls-on-connect"),
    ] {
        for mech in ["PLAIN", "LOGIN"] {
            let subject = format!("Subject: {mech} {tls}");
            let out = as_user(
                port,
                tls,
                mech,
                "alice@example.test",
                PASSWORD,
                &[
                    "--from",
                    "alice@example.test",
                    "--to",
                    "bob@example.test",
                    "--header",
                    &subject,
                ],
            );
            assert!(out.contains("235 2.7.0"), "{mech} {tls}: {out}");
            assert!(out.contains("250 2.0.0 queued as"), "{mech} {tls}: {out}");
            n += 1;
        }
    }
    let mail = site.wait_mailbox("bob@example.test", n);
    assert_eq!(mail.len(), n);
    let first = String::from_utf8_lossy(&mail[0]);
    assert!(first.contains("with ESMTPSA id"), "{first}");
    assert_eq!(first.matches("DKIM-Signature:").count(), 2, "{first}");
    // A bare login name is one of the domain's; an alias and a
    // may_send_as address may be used as the sender.
    let out = as_user(
        site.submission,
        "-tls",
        "PLAIN",
        "alice",
        PASSWORD,
        &[
            "--from",
            "al@example.test",
            "--to",
            "bob@example.test",
            "--header",
            "From: Al <al@example.test>",
        ],
    );
    assert!(out.contains("250 2.0.0 queued"), "{out}");
    let out = as_user(
        site.submission,
        "-tls",
        "PLAIN",
        "alice@example.test",
        PASSWORD,
        &[
            "--from",
            "sales@example.test",
            "--to",
            "bob@example.test",
            "--header",
            "From: sales@example.test",
        ],
    );
    assert!(out.contains("250 2.0.0 queued"), "{out}");
    let log = site.log();
    assert!(
        log.contains("service=\"submission\"") && log.contains("accepted"),
        "{log}"
    );
}

#[test]
fn every_refusal_has_its_code() {
    let mut site = Site::new("");
    site.serve(&[]);
    let sub = site.submission;
    let msg = ["--from", "alice@example.test", "--to", "bob@example.test"];

    // Wrong password, unknown user: 535 5.7.8, the same answer.
    let out = as_user(sub, "-tls", "PLAIN", "alice@example.test", "guess", &msg);
    assert!(out.contains("535 5.7.8"), "{out}");
    let out = as_user(sub, "-tls", "LOGIN", "nobody@example.test", PASSWORD, &msg);
    assert!(out.contains("535 5.7.8"), "{out}");

    // AUTH before TLS: not offered, and refused when tried anyway.
    let script = format!(
        "import smtplib\ns = smtplib.SMTP('127.0.0.1', {sub})\ns.ehlo()\nprint('auth offered' if s.has_extn('auth') else 'auth not offered')\n\
         code, msg = s.docmd('AUTH', 'PLAIN AGFsaWNlQGV4YW1wbGUudGVzdABndWVzcw==')\nprint(code, msg.decode())\n\
         code, msg = s.docmd('MAIL', 'FROM:<alice@example.test>')\nprint(code, msg.decode())\n"
    );
    let out = Command::new("python3")
        .args(["-c", &script])
        .output()
        .unwrap();
    let out = text(&out);
    assert!(out.contains("auth not offered"), "{out}");
    assert!(
        out.lines().nth(1).is_some_and(|l| l.starts_with('5')),
        "AUTH in clear: {out}"
    );
    assert!(out.contains("530 5.7.0"), "MAIL without AUTH: {out}");

    // Not an open relay: without AUTH nothing is accepted, for anyone.
    let out = text(&swaks_to(
        sub,
        &["-tls", "--from", "x@example.net", "--to", "y@example.org"],
    ));
    assert!(out.contains("530 5.7.0"), "{out}");

    // A foreign MAIL FROM, a foreign From:, a From: of two people.
    let out = as_user(
        sub,
        "-tls",
        "PLAIN",
        "alice@example.test",
        PASSWORD,
        &["--from", "bob@example.test", "--to", "bob@example.test"],
    );
    assert!(out.contains("553 5.7.1"), "{out}");
    let out = as_user(
        sub,
        "-tls",
        "PLAIN",
        "alice@example.test",
        PASSWORD,
        &[
            "--from",
            "alice@example.test",
            "--to",
            "bob@example.test",
            "--header",
            "From: The Boss <bob@example.test>",
        ],
    );
    assert!(out.contains("550 5.7.1"), "{out}");
    let out = as_user(
        sub,
        "-tls",
        "PLAIN",
        "alice@example.test",
        PASSWORD,
        &[
            "--from",
            "alice@example.test",
            "--to",
            "bob@example.test",
            "--header",
            "From: alice@example.test, \"x, y\" <bob@example.test>",
        ],
    );
    assert!(out.contains("550 5.7.1"), "{out}");
    let out = as_user(
        sub,
        "-tls",
        "PLAIN",
        "alice@example.test",
        PASSWORD,
        &[
            "--from",
            "alice@example.test",
            "--to",
            "bob@example.test",
            "--header",
            "From: ",
        ],
    );
    assert!(
        out.contains("550 5.6.0") || out.contains("550 5.7.1"),
        "{out}"
    );
    // A recipient of the domain that does not exist: 550 5.1.1 at RCPT,
    // in the user's mail program, not a message lost later.
    let out = as_user(
        sub,
        "-tls",
        "PLAIN",
        "alice@example.test",
        PASSWORD,
        &["--from", "alice@example.test", "--to", "typo@example.test"],
    );
    assert!(out.contains("550 5.1.1"), "{out}");
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        site.mailbox("bob@example.test").is_empty(),
        "nothing refused was delivered"
    );
}

#[test]
fn a_password_changed_by_passwd_works_without_a_restart() {
    let mut site = Site::new("");
    site.serve(&["submission", "signer", "relay", "receiver"]);
    let msg = ["--from", "bob@example.test", "--to", "alice@example.test"];
    let out = as_user(
        site.submission,
        "-tls",
        "PLAIN",
        "bob@example.test",
        PASSWORD,
        &msg,
    );
    assert!(out.contains("250 2.0.0 queued"), "{out}");
    let out = ptt(
        &[
            "passwd",
            "--users",
            site.repo(),
            "--password-stdin",
            "bob@example.test",
        ],
        "brand new\n",
    );
    assert!(out.status.success(), "{}", text(&out));
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let out = as_user(
            site.submission,
            "-tls",
            "PLAIN",
            "bob@example.test",
            "brand new",
            &msg,
        );
        if out.contains("235 2.7.0") {
            assert!(out.contains("250 2.0.0 queued"), "{out}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the new password never worked: {out}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    let out = as_user(
        site.submission,
        "-tls",
        "PLAIN",
        "bob@example.test",
        PASSWORD,
        &msg,
    );
    assert!(
        out.contains("535 5.7.8"),
        "the old password must fail: {out}"
    );
    // A user added while running can log in; a removed one cannot.
    let out = ptt(
        &[
            "adduser",
            "--users",
            site.repo(),
            "--password-stdin",
            "carol@example.test",
        ],
        "c pw\n",
    );
    assert!(out.status.success(), "{}", text(&out));
    let out = ptt(
        &["deluser", "--users", site.repo(), "alice@example.test"],
        "",
    );
    assert!(out.status.success(), "{}", text(&out));
    // SIGHUP reloads at once.
    site::unsafe_kill(site.pids()[0].1, 1);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let carol = as_user(
            site.submission,
            "-tls",
            "PLAIN",
            "carol@example.test",
            "c pw",
            &["--from", "carol@example.test", "--to", "bob@example.test"],
        );
        let alice = as_user(
            site.submission,
            "-tls",
            "PLAIN",
            "alice@example.test",
            PASSWORD,
            &["--from", "alice@example.test", "--to", "bob@example.test"],
        );
        if carol.contains("250 2.0.0 queued") && alice.contains("535 5.7.8") {
            break;
        }
        assert!(Instant::now() < deadline, "carol: {carol}\nalice: {alice}");
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn fifty_wrong_passwords_from_one_address_are_throttled() {
    let mut site = Site::new("max_failures_per_ip = 10\nblock_seconds = 600");
    site.serve(&[]);
    // 50 tries in a row, one connection each, as a guesser would.
    let script = format!(
        "import smtplib, ssl, time\nctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE\n\
         codes = []\nstart = time.time()\n\
         for i in range(50):\n\
         \ts = smtplib.SMTP_SSL('127.0.0.1', {port}, context=ctx, timeout=30)\n\
         \ts.ehlo(); s.user, s.password = 'alice@example.test', 'guess%d' % i\n\
         \ttry:\n\t\ts.auth('PLAIN', s.auth_plain)\n\t\tcodes.append(235)\n\
         \texcept smtplib.SMTPAuthenticationError as e:\n\t\tcodes.append(e.smtp_code)\n\
         \texcept smtplib.SMTPServerDisconnected:\n\t\tcodes.append(0)\n\
         \texcept smtplib.SMTPResponseException as e:\n\t\tcodes.append(e.smtp_code)\n\
         \ttry:\n\t\ts.quit()\n\texcept Exception:\n\t\tpass\n\
         print(' '.join(map(str, codes)))\n\
         s = smtplib.SMTP_SSL('127.0.0.1', {port}, context=ctx, timeout=30)\n\
         s.ehlo(); s.user, s.password = 'alice@example.test', '{PASSWORD}'\n\
         try:\n\ts.auth('PLAIN', s.auth_plain)\n\tprint('right password: 235')\n\
         except smtplib.SMTPResponseException as e:\n\tprint('right password: %d %s' % (e.smtp_code, e.smtp_error.decode()))\n",
        port = site.submissions
    );
    let out = Command::new("python3")
        .args(["-c", &script])
        .output()
        .unwrap();
    let out = text(&out);
    let codes: Vec<u16> = out
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|c| c.parse().ok())
        .collect();
    assert_eq!(codes.len(), 50, "{out}");
    assert!(codes.iter().all(|c| *c != 235), "{out}");
    assert!(
        codes[..9].iter().all(|c| *c == 535),
        "the first tries are answered: {out}"
    );
    let blocked = codes.iter().filter(|c| **c == 421).count();
    assert!(blocked >= 40, "only {blocked} of 50 were throttled: {out}");
    // Blocked means blocked: even the right password from that address.
    assert!(out.contains("right password: 421"), "{out}");
    assert!(out.contains("too many failed logins"), "{out}");
    let log = site.log();
    assert!(
        log.contains("blocking logins after repeated failures"),
        "{log}"
    );
}

#[test]
fn parallel_guesses_from_one_address_get_no_more_tries() {
    // 40 sessions from one address, each sending one wrong AUTH at the same
    // moment: those waiting for the password check are checked again when
    // their turn comes, so the limit holds (10, plus the one in progress).
    let mut site = Site::new("max_failures_per_ip = 10");
    site.serve(&[]);
    let script = format!(
        "import smtplib, ssl, threading\nctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE\n\
         codes = []; lock = threading.Lock(); ready = threading.Barrier(40)\n\
         def guess(i):\n\
         \ts = smtplib.SMTP_SSL('127.0.0.1', {port}, context=ctx, timeout=60); s.ehlo()\n\
         \ts.user, s.password = 'alice@example.test', 'guess%d' % i\n\
         \tready.wait()\n\
         \ttry:\n\t\ts.auth('PLAIN', s.auth_plain); c = 235\n\
         \texcept smtplib.SMTPResponseException as e:\n\t\tc = e.smtp_code\n\
         \twith lock:\n\t\tcodes.append(c)\n\
         ts = [threading.Thread(target=guess, args=(i,)) for i in range(40)]\n\
         [t.start() for t in ts]; [t.join() for t in ts]\nprint(' '.join(map(str, sorted(codes))))\n",
        port = site.submissions
    );
    let out = Command::new("python3")
        .args(["-c", &script])
        .output()
        .unwrap();
    let out = text(&out);
    let codes: Vec<u16> = out
        .split_whitespace()
        .filter_map(|c| c.parse().ok())
        .collect();
    assert_eq!(codes.len(), 40, "{out}");
    let answered = codes.iter().filter(|c| **c == 535).count();
    assert!(answered <= 11, "{answered} guesses were checked: {out}");
    assert_eq!(
        codes.iter().filter(|c| **c == 421).count(),
        40 - answered,
        "{out}"
    );
}

#[test]
fn local_mail_is_delivered_with_a_public_certificate_too() {
    // With [tls], the receiver presents that certificate instead of the
    // private CA's; the relay still hands it the domain's mail.
    let cert = ptt_testkit::TestCert::localhost();
    let mut site = Site::new("");
    site.append_config(&format!(
        "[tls]\ncert = \"{}\"\nkey = \"{}\"\n",
        cert.cert.display(),
        cert.key.display()
    ));
    site.serve(&[]);
    let out = as_user(
        site.submission,
        "-tls",
        "PLAIN",
        "alice@example.test",
        PASSWORD,
        &["--from", "alice@example.test", "--to", "bob@example.test"],
    );
    assert!(out.contains("250 2.0.0 queued"), "{out}");
    assert_eq!(
        site.wait_mailbox("bob@example.test", 1).len(),
        1,
        "{}",
        site.log()
    );
    assert!(!site.log().contains("spool"), "{}", site.log());
}

#[test]
fn idle_sessions_are_told_and_closed_at_sigterm() {
    let mut site = Site::new("");
    site.serve(&[]);
    let script = format!(
        "import smtplib, ssl, sys\nctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE\n\
         s = smtplib.SMTP_SSL('127.0.0.1', {port}, context=ctx, timeout=60)\ns.login('alice@example.test', '{PASSWORD}')\n\
         print('idle', flush=True)\nprint(s.getreply())\n",
        port = site.submissions
    );
    let mut client = Command::new("python3")
        .args(["-c", &script])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = std::io::BufReader::new(client.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
    assert_eq!(line.trim(), "idle");
    let started = Instant::now();
    let statuses = site.terminate();
    assert!(statuses[0].success(), "{statuses:?}");
    // Neither the 30 s grace nor the 5 min idle timeout: told at once.
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    assert!(
        rest.contains("421") && rest.contains("shutting down"),
        "{rest}"
    );
    let _ = client.wait();
}

#[test]
fn services_in_separate_processes_and_client_certificates() {
    let mut site = Site::new("");
    site.serve(&["relay"]);
    site.serve(&["signer"]);
    site.serve(&["receiver"]);
    site.serve(&["submission"]);
    let out = as_user(
        site.submission,
        "-tls",
        "PLAIN",
        "alice@example.test",
        PASSWORD,
        &["--from", "alice@example.test", "--to", "bob@example.test"],
    );
    assert!(out.contains("250 2.0.0 queued"), "{out}");
    assert_eq!(site.wait_mailbox("bob@example.test", 1).len(), 1);
    // No client certificate: the signer and the relay end the handshake.
    let ca = site.state().join("ca/ca.pem");
    for port in [site.signer, site.relay] {
        let out = tls_probe(port, &ca, None);
        assert!(
            out.starts_with("refused:") && out.contains("CERTIFICATE_REQUIRED"),
            "port {port}: {out}"
        );
    }
    // The receiver's certificate (right CA, wrong service) is refused by
    // the relay, which takes only the signer's, and by the signer too? No:
    // the signer takes the receiver's (forwarded mail).
    let receiver_tls = site.state().join("receiver/tls");
    let out = tls_probe(site.relay, &ca, Some(&receiver_tls));
    assert!(
        out.starts_with("refused:"),
        "the relay took the receiver's certificate: {out}"
    );
    let out = tls_probe(site.signer, &ca, Some(&receiver_tls));
    assert!(
        out.contains("220 mx.example.test ESMTP ptt signer"),
        "{out}"
    );
    // A certificate from another CA, naming the submission service.
    let other = tempfile::tempdir().unwrap();
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=submission.ptt.internal",
            "-addext",
            "subjectAltName=DNS:submission.ptt.internal",
            "-keyout",
        ])
        .arg(other.path().join("key.pem"))
        .arg("-out")
        .arg(other.path().join("cert.pem"))
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", text(&made));
    let out = tls_probe(site.signer, &ca, Some(other.path()));
    assert!(
        out.starts_with("refused:"),
        "the signer took a foreign CA's certificate: {out}"
    );
    let statuses = site.terminate();
    assert!(statuses.iter().all(|s| s.success()), "{statuses:?}");
}

/// Connects with TLS (trusting `ca`, presenting `dir`/cert.pem and key.pem
/// when given) and reads the greeting: `greeting: …` or `refused: why`.
fn tls_probe(port: u16, ca: &std::path::Path, client: Option<&std::path::Path>) -> String {
    let load = client.map_or(String::new(), |d| {
        format!(
            "ctx.load_cert_chain('{}', '{}')\n",
            d.join("cert.pem").display(),
            d.join("key.pem").display()
        )
    });
    let script = format!(
        "import socket, ssl\nctx = ssl.create_default_context(cafile='{ca}')\nctx.check_hostname = False\n{load}\
         try:\n\ts = ctx.wrap_socket(socket.create_connection(('127.0.0.1', {port}), timeout=10))\n\
         \tdata = s.recv(200)\n\tprint('greeting:' if data else 'refused: closed', data.decode(errors='replace'))\n\
         except Exception as e:\n\tprint('refused:', e)\n",
        ca = ca.display()
    );
    let out = Command::new("python3")
        .args(["-c", &script])
        .output()
        .unwrap();
    text(&out).trim().to_string()
}

#[test]
fn sigterm_mid_flow_loses_nothing_that_got_a_250() {
    let mut site = Site::new("");
    site.serve(&[]);
    // 8 clients each send messages one after another until the server goes
    // away; every subject that got a 250 is printed.
    let script = format!(
        "import smtplib, ssl, threading, sys\nctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE\n\
         acked = []; lock = threading.Lock()\n\
         def client(k):\n\
         \ttry:\n\t\ts = smtplib.SMTP_SSL('127.0.0.1', {port}, context=ctx, timeout=60)\n\t\ts.login('alice@example.test', '{PASSWORD}')\n\
         \texcept Exception:\n\t\treturn\n\
         \tfor i in range(100000):\n\
         \t\tsubject = 'm-%d-%d' % (k, i)\n\
         \t\ttry:\n\t\t\ts.sendmail('alice@example.test', ['bob@example.test'], 'From: alice@example.test\\r\\nSubject: %s\\r\\n\\r\\nbody\\r\\n' % subject)\n\
         \t\texcept Exception:\n\t\t\treturn\n\
         \t\twith lock:\n\t\t\tacked.append(subject)\n\
         ts = [threading.Thread(target=client, args=(k,)) for k in range(8)]\n\
         [t.start() for t in ts]\n[t.join() for t in ts]\nprint(' '.join(acked))\n",
        port = site.submissions
    );
    let client = Command::new("python3")
        .args(["-c", &script])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Let mail flow, then stop the server in the middle of it.
    let deadline = Instant::now() + Duration::from_secs(30);
    while site.mailbox("bob@example.test").len() < 20 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let statuses = site.terminate();
    let out = client.wait_with_output().unwrap();
    assert!(
        statuses[0].success(),
        "ptt serve exits 0 on SIGTERM: {:?}\n{}",
        statuses,
        site.log()
    );
    let acked: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(str::to_string)
        .collect();
    assert!(
        acked.len() >= 20,
        "{} acknowledged; {}",
        acked.len(),
        text(&out)
    );
    let stored: Vec<String> = site
        .mailbox("bob@example.test")
        .iter()
        .map(|m| String::from_utf8_lossy(m).into_owned())
        .collect();
    let spooled = std::fs::read_dir(site.state().join("submission/spool"))
        .map(|d| d.count())
        .unwrap_or(0);
    for subject in &acked {
        let needle = format!("Subject: {subject}\r\n");
        assert!(
            stored.iter().any(|m| m.contains(&needle)),
            "{subject} got a 250 but is neither stored ({} stored, {spooled} spool files)",
            stored.len()
        );
    }
    assert!(site.log().contains("stopping"), "{}", site.log());
}

#[test]
fn a_bad_config_is_placed_and_the_example_passes() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    std::fs::write(
        &file,
        "domain = \"example.test\"\nhostname = \"mx.example.test\"\nstate = \"s\"\n[submission]\nlisten = [\"127.0.0.1:587\"]\nlisten_tls = [\"localhost\"]\n",
    )
    .unwrap();
    let out = ptt(&["check-config", file.to_str().unwrap()], "");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    let place = format!("{}:6:15: ", file.display());
    assert!(
        err.lines()
            .any(|l| l.starts_with(&place) && l.contains("is not IP:PORT; write")),
        "{err}"
    );
    assert!(err.contains("no [signer]"), "{err}");
    // serve refuses the same file the same way, before binding anything.
    let out = ptt(&["serve", "--config", file.to_str().unwrap()], "");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains(&place));

    let example = site::repo_root().join("deploy/ptt.example.toml");
    let out = ptt(&["check-config", example.to_str().unwrap()], "");
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("ok: "),
        "{}",
        text(&out)
    );
}
