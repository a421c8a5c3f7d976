//! The receiver on smoltcp (the unikernel route) from the kernel's side: a
//! network namespace with a TAP device (TEST-NET-1 inside it only), the
//! `ptt-smol-receiver` binary on the TAP device at 192.0.2.2, and, at the
//! kernel's 192.0.2.1: BIND answering SPF, DKIM and DMARC, an aiosmtpd next
//! hop, swaks and Python clients. Needs root (CI runs as root); elsewhere
//! the tests skip.

#![cfg(feature = "smoltcp")]

#[path = "common/farm.rs"]
mod farm;

use std::fs::File;
use std::io::{BufRead as _, BufReader};
use std::os::fd::AsRawFd as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use farm::MxFarm;
use ptt_testkit::dns_zones::{BindZones, Zone};
use ptt_testkit::python::{dkimpy_sign, ed25519_keypair};
use ptt_testkit::{TestCert, free_port, swaks};

/// The kernel's side of the TAP device.
const KERNEL: &str = "192.0.2.1";
/// The smoltcp receiver's address.
const SMOL: &str = "192.0.2.2";

/// A network namespace with a TAP device `ptttap0` at 192.0.2.1/24,
/// deleted on drop.
struct Netns {
    name: String,
}

impl Netns {
    /// `None` when this user may not make one (not root): the test skips,
    /// except in CI.
    fn create(tag: &str) -> Option<Netns> {
        let name = format!("pttsmol-{tag}-{}", std::process::id());
        let ip = |args: &[&str]| {
            Command::new("ip")
                .args(args)
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        if !ip(&["netns", "add", &name]) {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI runs as root: `ip netns add` must work there"
            );
            eprintln!("skipped: needs root to make a network namespace and a TAP device");
            return None;
        }
        let ns = Netns { name };
        for args in [
            vec!["-n", &ns.name, "link", "set", "lo", "up"],
            vec![
                "-n", &ns.name, "tuntap", "add", "mode", "tap", "name", "ptttap0",
            ],
            vec![
                "-n",
                &ns.name,
                "addr",
                "add",
                "192.0.2.1/24",
                "dev",
                "ptttap0",
            ],
            vec!["-n", &ns.name, "link", "set", "ptttap0", "up"],
        ] {
            assert!(ip(&args), "ip {}", args.join(" "));
        }
        Some(ns)
    }

    /// Moves this thread into the namespace: every process it starts from
    /// now on (named, Python, swaks, the receiver) lives there.
    fn enter(&self) {
        let file = File::open(format!("/run/netns/{}", self.name)).expect("the namespace file");
        // SAFETY: setns on a valid descriptor; it changes only this
        // thread's network namespace.
        let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// The receiver binary, with its log lines kept.
struct Receiver {
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
}

impl Receiver {
    fn start(dns_port: u16, hop_port: u16, cert: &TestCert, budget_mib: usize) -> Receiver {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ptt-smol-receiver"))
            .args(["--tap", "ptttap0", "--address", "192.0.2.2/24"])
            .args(["--resolver", &format!("{KERNEL}:{dns_port}")])
            .args(["--next-hop", &format!("{KERNEL}:{hop_port}")])
            .args(["--hostname", "mx.smol.test", "--domain", "example.test"])
            .arg("--cert")
            .arg(&cert.cert)
            .arg("--key")
            .arg(&cert.key)
            .args(["--budget-mib", &budget_mib.to_string()])
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start ptt-smol-receiver");
        let log = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().expect("stderr");
        let lines = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                lines.lock().expect("log").push(line);
            }
        });
        let receiver = Receiver { child, log };
        // The receiver answers once smoltcp has the interface: a TCP
        // connect from the kernel's side shows it.
        let deadline = Instant::now() + Duration::from_secs(20);
        let addr = format!("{SMOL}:25").parse().expect("address");
        while std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_err() {
            assert!(
                Instant::now() < deadline,
                "the receiver did not listen:\n{}",
                receiver.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        receiver
    }

    fn log(&self) -> String {
        self.log.lock().expect("log").join("\n")
    }

    /// The highest heap figure the receiver logged.
    fn peak_heap(&self) -> usize {
        self.log
            .lock()
            .expect("log")
            .iter()
            .filter_map(|l| l.split("peak_allocated=").nth(1))
            .filter_map(|v| v.split_whitespace().next()?.parse().ok())
            .max()
            .unwrap_or(0)
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn send(from: &str, to: &str, message: &[u8], dir: &Path) -> String {
    let file = dir.join(format!("m{}.eml", free_port()));
    std::fs::write(&file, message).expect("write the message");
    let out = swaks(&[
        "--server",
        SMOL,
        "--port",
        "25",
        "--tls",
        "--ehlo",
        "mta.sender.test",
        "--from",
        from,
        "--to",
        to,
        "--data",
        file.to_str().expect("path"),
    ]);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn message(subject: &str) -> Vec<u8> {
    format!(
        "Authentication-Results: mx.smol.test; dkim=pass header.d=forged.test\r\n\
         From: Alice <alice@sender.test>\r\nTo: bob@example.test\r\nSubject: {subject}\r\n\
         Date: Mon, 07 Dec 2026 12:00:00 +0000\r\nMessage-ID: <{subject}@sender.test>\r\n\r\n\
         Hello Bob,\r\nthis came through smoltcp.\r\n"
    )
    .into_bytes()
}

/// The fields called `name` in a stored message's header, unfolded.
fn fields(data: &str, name: &str) -> Vec<String> {
    let head = data.split("\r\n\r\n").next().unwrap_or(data);
    let head = head.replace("\r\n\t", " ").replace("\r\n ", " ");
    let prefix = format!("{}:", name.to_ascii_lowercase());
    head.split("\r\n")
        .filter(|l| l.to_ascii_lowercase().starts_with(&prefix))
        .map(str::to_string)
        .collect()
}

/// What the next hop stored, waiting until it has `n` messages.
fn stored(farm: &MxFarm, n: usize) -> Vec<String> {
    farm.wait_mail(KERNEL, n)
        .iter()
        .map(|m| m["data"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn swaks_with_starttls_through_smoltcp_gets_authentication_results_at_the_next_hop() {
    let Some(ns) = Netns::create("e2e") else {
        return;
    };
    ns.enter();
    let (private, public) = ed25519_keypair();
    let key_record = format!("\"v=DKIM1; k=ed25519; p={public}\"");
    let dns = BindZones::start_on(
        &[KERNEL.parse().expect("address")],
        &[
            Zone {
                origin: "sender.test.",
                records: &[
                    ("@", "TXT", "\"v=spf1 ip4:192.0.2.1 -all\""),
                    ("sel._domainkey", "TXT", &key_record),
                    ("_dmarc", "TXT", "\"v=DMARC1; p=reject\""),
                ],
            },
            Zone {
                origin: "other.test.",
                records: &[("@", "TXT", "\"v=spf1 ip4:192.0.2.1 -all\"")],
            },
        ],
    );
    let hop_port = free_port();
    let farm = MxFarm::start(hop_port, &[(KERNEL, "by_address", None)]);
    let cert = TestCert::localhost();
    let receiver = Receiver::start(dns.port(), hop_port, &cert, 64);
    let dir = tempfile::tempdir().expect("temp dir");

    // A dkimpy-signed message, and the same with its body changed after
    // signing; SPF passes for sender.test, so DMARC passes both.
    let signed = dkimpy_sign(
        &message("signed"),
        "sel",
        "sender.test",
        private.as_bytes(),
        true,
    );
    let out = send("alice@sender.test", "bob@example.test", &signed, dir.path());
    assert!(
        out.contains("<~  250 2.0.0 handed on"),
        "{out}\n{}",
        receiver.log()
    );
    assert!(out.contains("=== TLS started"), "STARTTLS: {out}");
    let tampered = String::from_utf8(signed.clone())
        .expect("text")
        .replace("this came through", "this was changed on")
        .into_bytes();
    let out = send(
        "alice@sender.test",
        "bob@example.test",
        &tampered,
        dir.path(),
    );
    assert!(
        out.contains("<~  250 2.0.0 handed on"),
        "{out}\n{}",
        receiver.log()
    );

    let got = stored(&farm, 2);
    assert_eq!(got.len(), 2, "{}", receiver.log());
    for (data, dkim) in got.iter().zip(["dkim=pass", "dkim=fail"]) {
        let results = fields(data, "Authentication-Results");
        assert_eq!(results.len(), 1, "the forged field is gone: {results:?}");
        let results = &results[0];
        assert!(
            results.starts_with("Authentication-Results: mx.smol.test;"),
            "{results}"
        );
        assert!(
            results.contains("spf=pass smtp.mailfrom=alice@sender.test"),
            "{results}"
        );
        assert!(results.contains(dkim), "{results}");
        assert!(results.contains("header.d=sender.test"), "{results}");
        assert!(results.contains("dmarc=pass"), "{results}");
        assert!(
            fields(data, "Received-SPF")[0].starts_with("Received-SPF: pass"),
            "{data}"
        );
        assert!(
            fields(data, "Received")[0].contains("by mx.smol.test with ESMTPS"),
            "{data}"
        );
        assert!(!data.contains("forged.test"), "{data}");
    }

    // DMARC p=reject: sender.test's From with another domain's envelope
    // and no signature is refused at the end of data, nothing handed on.
    let out = send(
        "x@other.test",
        "bob@example.test",
        &message("spoof"),
        dir.path(),
    );
    assert!(out.contains("<~* 550 5.7.1"), "{out}");
    // Never a relay: another domain, an address literal, a percent hack.
    for rcpt in [
        "eve@elsewhere.test",
        "bob@[192.0.2.2]",
        "eve%elsewhere.test@[192.0.2.2]",
    ] {
        let out = send("alice@sender.test", rcpt, &signed, dir.path());
        assert!(out.contains("<~* 554 5.7.1"), "{rcpt}: {out}");
    }
    // The next hop is asked about each recipient before the client's RCPT
    // is answered: its refusal for good and its "not now" come back there,
    // so a message is never taken for a recipient it would refuse.
    let out = send(
        "alice@sender.test",
        "gone@example.test",
        &signed,
        dir.path(),
    );
    assert!(out.contains("<~* 550 5.1.1"), "{out}");
    let out = send(
        "alice@sender.test",
        "gone@example.test,carol@example.test",
        &signed,
        dir.path(),
    );
    assert!(out.contains("<~* 550 5.1.1"), "{out}");
    assert!(out.contains("<~  250 2.0.0 handed on"), "{out}");
    let got = farm.wait_mail(KERNEL, 3);
    assert_eq!(got.len(), 3, "{}", receiver.log());
    assert_eq!(
        got[2]["rcpt_tos"],
        serde_json::json!(["carol@example.test"])
    );
    let out = send(
        "alice@sender.test",
        "slow@example.test",
        &signed,
        dir.path(),
    );
    assert!(out.contains("<~* 451 4.4.0"), "{out}");
    let out = send(
        "alice@sender.test",
        "slow@example.test",
        &signed,
        dir.path(),
    );
    assert!(out.contains("<~  250 2.0.0 handed on"), "{out}");
    assert_eq!(stored(&farm, 4).len(), 4);
    // With the next hop down, nothing is taken: 451 at RCPT.
    drop(farm);
    let out = send("alice@sender.test", "bob@example.test", &signed, dir.path());
    assert!(out.contains("<~* 451 4.4.0"), "{out}");
}

/// 100 sessions open at once, each with STARTTLS and a message: all of
/// them served inside a 64 MiB heap; and with a heap too small for them,
/// the ones that do not fit get 421 while the others are served.
#[test]
fn a_hundred_sessions_stay_inside_the_heap_budget() {
    let Some(ns) = Netns::create("heap") else {
        return;
    };
    ns.enter();
    let dns = BindZones::start_on(
        &[KERNEL.parse().expect("address")],
        &[Zone {
            origin: "sender.test.",
            records: &[("@", "TXT", "\"v=spf1 ip4:192.0.2.1 -all\"")],
        }],
    );
    let cert = TestCert::localhost();
    let clients = Path::new(env!("CARGO_MANIFEST_DIR")).join("../benches/load/receiver_clients.py");
    for (budget_mib, all_served) in [(64, true), (8, false)] {
        let hop_port = free_port();
        let farm = MxFarm::start(hop_port, &[(KERNEL, "accept", None)]);
        let receiver = Receiver::start(dns.port(), hop_port, &cert, budget_mib);
        let out = Command::new("python3")
            .arg(&clients)
            .args(["25", "100", "bob@example.test", "0", SMOL])
            .output()
            .expect("run the load client");
        let report = String::from_utf8_lossy(&out.stdout).into_owned();
        let ok: usize = report
            .split_whitespace()
            .skip_while(|w| *w != "ok")
            .nth(1)
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        let peak = receiver.peak_heap();
        println!(
            "budget {budget_mib} MiB: {report}peak heap {} KiB",
            peak / 1024
        );
        assert!(peak > 0, "the receiver logs its heap: {}", receiver.log());
        assert!(
            peak <= budget_mib << 20,
            "peak heap {peak} over {budget_mib} MiB"
        );
        if all_served {
            assert_eq!(ok, 100, "{report}{}", receiver.log());
        } else {
            assert!(ok > 0 && ok < 100, "some served, some refused: {report}");
            assert!(report.contains("421"), "the refused got 421: {report}");
        }
        assert_eq!(stored(&farm, ok).len(), ok);
        // Once the sessions are over, a new one is served again.
        let dir = tempfile::tempdir().expect("temp dir");
        let out = send(
            "alice@sender.test",
            "bob@example.test",
            &message("after"),
            dir.path(),
        );
        assert!(
            out.contains("<~  250 2.0.0 handed on"),
            "{out}\n{}",
            receiver.log()
        );
        drop(receiver);
    }
}
