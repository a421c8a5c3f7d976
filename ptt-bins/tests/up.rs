//! `ptt up` end to end: swaks submits over STARTTLS and implicit TLS with
//! AUTH, the message goes submission → signer (two DKIM signatures) →
//! relay → receiver, is authenticated and stored; dkimpy independently
//! verifies both signatures of what landed in the mailbox; the open-relay,
//! spoofing and forged-results probes are refused.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ptt_testkit::python::{PyDns, dkimpy_verify_each};
use ptt_testkit::{Peer, free_port, swaks, wait_for_tcp};

struct Up {
    _process: Peer,
    state: tempfile::TempDir,
    submission: u16,
    submissions: u16,
    receiver: u16,
    password: String,
    key_records: BTreeMap<String, String>,
    config: PathBuf,
}

impl Up {
    fn start() -> Up {
        let state = tempfile::tempdir().unwrap();
        let (submission, submissions, receiver) = (free_port(), free_port(), free_port());
        let (signer, relay) = (free_port(), free_port());
        let (lists, lists_https) = (free_port(), free_port());
        let mut child = Command::new(env!("CARGO_BIN_EXE_ptt"))
            .arg("up")
            .arg("--state")
            .arg(state.path())
            .args(["--submission-port", &submission.to_string()])
            .args(["--submissions-port", &submissions.to_string()])
            .args(["--receiver-port", &receiver.to_string()])
            .args(["--signer-port", &signer.to_string()])
            .args(["--relay-port", &relay.to_string()])
            .args(["--lists-port", &lists.to_string()])
            .args(["--lists-https-port", &lists_https.to_string()])
            .stdout(Stdio::piped())
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn ptt up");
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let process = Peer::new("ptt up", child);
        let (mut password, mut key_records, mut config) =
            (String::new(), BTreeMap::new(), PathBuf::new());
        for line in stdout.lines() {
            let line = line.unwrap();
            if let Some(rest) = line.trim().strip_prefix("user") {
                password = rest.split_whitespace().last().unwrap().to_string();
            }
            if line.contains("._domainkey.") {
                let name = line.split_whitespace().next().unwrap();
                key_records.insert(
                    name.trim_end_matches('.').to_string(),
                    line.split('"').nth(1).unwrap().to_string(),
                );
            }
            if let Some(path) = line.strip_prefix("Go on later with: ptt serve --config ") {
                config = PathBuf::from(path.trim());
            }
            if line.starts_with("Stop with") {
                break;
            }
        }
        assert!(!password.is_empty(), "ptt up printed no password");
        assert!(config.is_file(), "ptt up printed no config path");
        for port in [submission, submissions, receiver] {
            wait_for_tcp(
                ([127, 0, 0, 1], port).into(),
                Duration::from_secs(10),
                "ptt up",
            );
        }
        Up {
            _process: process,
            state,
            submission,
            submissions,
            receiver,
            password,
            key_records,
            config,
        }
    }

    /// The messages of the demo user's mailbox (`inbox`) or the relay's
    /// queue (`outbound`).
    fn folder(&self, name: &str) -> Vec<Vec<u8>> {
        let (dir, ext) = match name {
            "inbox" => (
                self.state
                    .path()
                    .join("receiver/mail/demo@example.test/new"),
                "ptt",
            ),
            _ => (self.state.path().join("relay/queue"), "msg"),
        };
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        files.retain(|p| p.extension().is_some_and(|e| e == ext));
        files.sort();
        files.iter().map(|p| std::fs::read(p).unwrap()).collect()
    }

    fn wait_for(&self, name: &str, n: usize) -> Vec<Vec<u8>> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let got = self.folder(name);
            if got.len() >= n || Instant::now() > deadline {
                return got;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn output(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// swaks to 127.0.0.1:`port`, with `tls` (`-tls`, `--tls-on-connect` or
/// none), authenticating as demo@example.test by `mech` with `password`,
/// then the `rest` of the arguments (envelope, headers, body).
fn swaks_as_demo(
    port: &str,
    tls: Option<&str>,
    mech: &str,
    password: &str,
    rest: &[&str],
) -> std::process::Output {
    let mut args = vec!["--server", "127.0.0.1", "--port", port];
    args.extend(tls);
    args.extend([
        "--auth",
        mech,
        "--auth-user",
        "demo@example.test",
        "--auth-password",
        password,
    ]);
    args.extend_from_slice(rest);
    swaks(&args)
}

fn state_path(up: &Up) -> &Path {
    up.state.path()
}

#[test]
fn the_demo_list_takes_a_post_from_its_moderator_and_sends_it_back() {
    let up = Up::start();
    let port = up.submission.to_string();
    let out = swaks_as_demo(
        &port,
        Some("-tls"),
        "PLAIN",
        &up.password,
        &[
            "--from",
            "demo@example.test",
            "--to",
            "team@example.test",
            "--header",
            "Subject: to the demo list",
            "--body",
            "hello team",
        ],
    );
    assert!(out.status.success(), "swaks: {}", output(&out));
    // demo is the list's only subscriber: the copy comes back, signed
    // and sealed, with the list's fields.
    let inbox = up.wait_for("inbox", 1);
    assert_eq!(inbox.len(), 1);
    let text = String::from_utf8_lossy(&inbox[0]);
    assert!(text.contains("List-Id: <team.example.test>"), "{text}");
    assert!(text.contains("ARC-Seal: i=1;"), "{text}");
    assert!(text.contains("to the demo list"), "{text}");
}

#[test]
fn submission_signs_and_the_receiver_authenticates() {
    let up = Up::start();
    let port = up.submission.to_string();
    let out = swaks_as_demo(
        &port,
        Some("-tls"),
        "PLAIN",
        &up.password,
        &[
            "--from",
            "demo@example.test",
            "--to",
            "demo@example.test,friend@example.net",
            "--header",
            "Subject: through ptt up",
            "--body",
            "hello",
        ],
    );
    assert!(out.status.success(), "swaks: {}", output(&out));

    let inbox = up.wait_for("inbox", 1);
    assert_eq!(inbox.len(), 1);
    let text = String::from_utf8_lossy(&inbox[0]);
    assert!(
        text.starts_with("Authentication-Results: mx.example.test;"),
        "{text}"
    );
    for verdict in ["spf=pass", "dkim=pass header.d=example.test", "dmarc=pass"] {
        assert!(text.contains(verdict), "{verdict} missing in:\n{text}");
    }
    assert!(text.contains("Received-SPF: pass"), "{text}");
    assert!(text.contains("Received: from"), "{text}");

    // Two signatures (Ed25519 and RSA), each verified by an independent
    // implementation on its own: with only its key published.
    assert_eq!(text.matches("DKIM-Signature:").count(), 2, "{text}");
    assert!(text.contains("a=ed25519-sha256") && text.contains("a=rsa-sha256"));
    assert_eq!(up.key_records.len(), 2, "{:?}", up.key_records);
    let txt = PyDns::Txt(up.key_records.clone());
    assert_eq!(dkimpy_verify_each(&inbox[0], &txt), [true, true]);
    let tampered = String::from_utf8_lossy(&inbox[0]).replace("hello", "hellO");
    assert_eq!(
        dkimpy_verify_each(tampered.as_bytes(), &txt),
        [false, false]
    );
    // Each signature rests on its own key: with one key alone, only its
    // signature verifies.
    for (i, (name, record)) in up.key_records.iter().enumerate() {
        let alone = PyDns::Txt([(name.clone(), record.clone())].into());
        let verdicts = dkimpy_verify_each(&inbox[0], &alone);
        assert_eq!(
            verdicts.iter().filter(|v| **v).count(),
            1,
            "{name}: {verdicts:?} ({i})"
        );
    }

    // The remote recipient waits in the relay's queue (held: the demo never
    // reaches the Internet), signed; the local one was delivered.
    let outbound = up.wait_for("outbound", 1);
    let queued = String::from_utf8_lossy(&outbound[0]);
    let read_envelopes = || -> Vec<String> {
        std::fs::read_dir(state_path(&up).join("relay/queue"))
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.path().extension().is_some_and(|x| x == "toml"))
            .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut envelopes = read_envelopes();
    while !envelopes.iter().any(|e| e.contains("held")) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        envelopes = read_envelopes();
    }
    assert_eq!(envelopes.len(), 1, "{envelopes:?}");
    let entry: toml::Table = toml::from_str(&envelopes[0]).unwrap();
    let states: Vec<(String, String)> = entry["recipients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["address"].as_str().unwrap().to_string(),
                r["state"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(
        states.contains(&("friend@example.net".into(), "pending".into())),
        "{envelopes:?}"
    );
    let list = Command::new(env!("CARGO_BIN_EXE_ptt"))
        .args(["queue", "list", "--config"])
        .arg(state_path(&up).join("ptt.toml"))
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&list.stdout);
    assert!(
        listed.contains("friend@example.net") && listed.contains("held"),
        "{listed}"
    );
    assert!(queued.contains("DKIM-Signature:"), "{queued}");
    // Stamped with the signing time (t=), within this test's run.
    let t: u64 = queued
        .split_once("DKIM-Signature:")
        .and_then(|(_, field)| {
            field
                .split(';')
                .find_map(|tag| tag.trim().strip_prefix("t="))
        })
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no t= in {queued}"));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(t <= now && now - t < 600, "t={t}, now {now}");
    assert!(state_path(&up).join("ca/ca.pem").exists());
    // The configuration it wrote passes check-config and spells out the
    // services it ran.
    let check = Command::new(env!("CARGO_BIN_EXE_ptt"))
        .arg("check-config")
        .arg(&up.config)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let summary = String::from_utf8_lossy(&check.stdout);
    assert!(
        summary.contains("services: submission, receiver, lists, signer, relay"),
        "{summary}"
    );
}

#[test]
fn implicit_tls_submission_works() {
    let up = Up::start();
    let port = up.submissions.to_string();
    let out = swaks_as_demo(
        &port,
        Some("--tls-on-connect"),
        "LOGIN",
        &up.password,
        &["--from", "demo@example.test", "--to", "demo@example.test"],
    );
    assert!(out.status.success(), "swaks: {}", output(&out));
    assert_eq!(up.wait_for("inbox", 1).len(), 1);
}

#[test]
fn submission_refuses_cleartext_auth_bad_passwords_and_impersonation() {
    let up = Up::start();
    let port = up.submission.to_string();
    // No TLS: AUTH is not even offered, so swaks gives up.
    let out = swaks_as_demo(
        &port,
        None,
        "PLAIN",
        &up.password,
        &["--from", "demo@example.test", "--to", "demo@example.test"],
    );
    assert!(
        !out.status.success(),
        "AUTH in clear text must fail: {}",
        output(&out)
    );
    // Wrong password.
    let out = swaks_as_demo(
        &port,
        Some("-tls"),
        "PLAIN",
        "guess",
        &["--from", "demo@example.test", "--to", "demo@example.test"],
    );
    assert!(!out.status.success());
    assert!(output(&out).contains("535"), "{}", output(&out));
    // Sending as somebody else.
    let out = swaks_as_demo(
        &port,
        Some("-tls"),
        "PLAIN",
        &up.password,
        &["--from", "ceo@example.test", "--to", "demo@example.test"],
    );
    assert!(!out.status.success());
    assert!(output(&out).contains("553 5.7.1"), "{}", output(&out));
    // Without AUTH, MAIL is refused.
    let out = swaks(&[
        "--server",
        "127.0.0.1",
        "--port",
        &port,
        "-tls",
        "--from",
        "demo@example.test",
        "--to",
        "demo@example.test",
    ]);
    assert!(output(&out).contains("530"), "{}", output(&out));
    assert!(up.folder("inbox").is_empty() && up.folder("outbound").is_empty());
}

#[test]
fn receiver_is_no_open_relay_and_applies_dmarc() {
    let up = Up::start();
    let port = up.receiver.to_string();
    let out = swaks(&[
        "--server",
        "127.0.0.1",
        "--port",
        &port,
        "--from",
        "demo@example.test",
        "--to",
        "victim@example.net",
    ]);
    assert!(output(&out).contains("554 5.7.1"), "{}", output(&out));

    // A spoof of the domain: unsigned, from a sender whose SPF cannot pass
    // for example.test, so DMARC fails and p=reject applies.
    let out = swaks(&[
        "--server",
        "127.0.0.1",
        "--port",
        &port,
        "--helo",
        "evil.example.test",
        "--from",
        "bounce@nowhere.example.test",
        "--to",
        "demo@example.test",
        "--header",
        "From: demo@example.test",
    ]);
    assert!(output(&out).contains("550 5.7.1"), "{}", output(&out));

    // Forged results claiming our authserv-id are removed; ours are added.
    let out = swaks(&[
        "--server",
        "127.0.0.1",
        "--port",
        &port,
        "--from",
        "demo@example.test",
        "--to",
        "demo@example.test",
        "--add-header",
        "Authentication-Results: mx.example.test; dkim=pass header.d=bank.test",
    ]);
    assert!(out.status.success(), "{}", output(&out));
    let inbox = up.wait_for("inbox", 1);
    assert_eq!(inbox.len(), 1, "only the genuine message is stored");
    let text = String::from_utf8_lossy(&inbox[0]);
    assert_eq!(text.matches("Authentication-Results:").count(), 1, "{text}");
    assert!(!text.contains("bank.test"), "{text}");
    assert!(
        text.contains("spf=pass") && text.contains("dkim=none"),
        "{text}"
    );
}

/// The README's first command, `cargo run --release -p ptt-bins -- up`,
/// must pick the `ptt` binary: ptt-bins has two, and without
/// `default-run` cargo refuses to choose. Asked of `cargo metadata` (no
/// build), beside the command as the README gives it.
#[test]
fn the_readme_first_command_runs_ptt() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .expect("README.md");
    assert!(
        readme.contains("cargo run --release -p ptt-bins -- up"),
        "the README's first command changed; check this test"
    );
    let out = Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--no-deps",
            "--format-version",
            "1",
            "--offline",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run cargo metadata");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let metadata: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let package = metadata["packages"]
        .as_array()
        .and_then(|p| p.iter().find(|p| p["name"] == "ptt-bins"))
        .expect("ptt-bins in the workspace");
    let binaries: Vec<&str> = package["targets"]
        .as_array()
        .expect("targets")
        .iter()
        .filter(|t| {
            t["kind"]
                .as_array()
                .is_some_and(|k| k.iter().any(|k| k == "bin"))
        })
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert!(binaries.contains(&"ptt"), "{binaries:?}");
    if binaries.len() > 1 {
        assert_eq!(package["default_run"], "ptt", "binaries {binaries:?}");
    }
}
