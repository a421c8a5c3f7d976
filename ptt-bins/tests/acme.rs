//! ACME DNS-01 against Debian's pebble and BIND with TSIG: submission gets
//! a certificate for its host name, the challenge record appears at the
//! primary and is removed, STARTTLS then presents the new certificate
//! (openssl s_client checks it against pebble's root), and a forced renewal
//! (`ptt acme renew`) is presented live by the same process.

#[path = "common/site.rs"]
mod site;

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ptt_testkit::{Bind, SignedCert, free_port, require_program, wait_for_tcp};
use site::{Site, ptt, text};

/// pebble on loopback, validating DNS-01 through `dns`.
struct Pebble {
    child: Child,
    port: u16,
    management: u16,
    /// Its HTTPS certificate; `https.ca` is what a client must trust.
    https: SignedCert,
    _dir: tempfile::TempDir,
}

impl Pebble {
    fn start(dns: std::net::SocketAddr) -> Pebble {
        let pebble = require_program("pebble", "Debian package pebble");
        let dir = tempfile::tempdir().unwrap();
        let https = SignedCert::for_names(&["localhost", "127.0.0.1"]);
        let (port, management) = (free_port(), free_port());
        let config = dir.path().join("pebble.json");
        std::fs::write(
            &config,
            serde_json::json!({ "pebble": {
                "listenAddress": format!("127.0.0.1:{port}"),
                "managementListenAddress": format!("127.0.0.1:{management}"),
                "certificate": https.cert, "privateKey": https.key,
                "httpPort": free_port(), "tlsPort": free_port(),
                "ocspResponderURL": "", "externalAccountBindingRequired": false,
            }})
            .to_string(),
        )
        .unwrap();
        let child = Command::new(pebble)
            .arg("-config")
            .arg(&config)
            .args(["-dnsserver", &dns.to_string()])
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start pebble");
        wait_for_tcp(
            ([127, 0, 0, 1], port).into(),
            Duration::from_secs(10),
            "pebble",
        );
        Pebble {
            child,
            port,
            management,
            https,
            _dir: dir,
        }
    }

    /// Pebble's root, which it makes anew at each start.
    fn root(&self) -> String {
        let out = Command::new("curl")
            .args([
                "-sk",
                &format!("https://127.0.0.1:{}/roots/0", self.management),
            ])
            .output()
            .expect("run curl");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What STARTTLS on `port` presents: (`openssl s_client` output, serial).
fn presented(port: u16, root: &std::path::Path) -> (String, String) {
    let script = format!(
        "openssl s_client -starttls smtp -connect 127.0.0.1:{port} -servername mx.example.test \
         -verify_return_error -CAfile {root} </dev/null 2>&1 | tee /dev/stderr | openssl x509 -noout -serial -subject -ext subjectAltName",
        root = root.display()
    );
    let out = Command::new("sh").args(["-c", &script]).output().unwrap();
    let cert = String::from_utf8_lossy(&out.stdout).into_owned();
    let session = String::from_utf8_lossy(&out.stderr).into_owned();
    (
        format!("{session}\n{cert}"),
        cert.lines().next().unwrap_or_default().to_string(),
    )
}

#[test]
fn a_certificate_by_dns01_is_presented_and_renewed_live() {
    let bind = Bind::start("example.test", &[("mx", "A", "127.0.0.1")]);
    let pebble = Pebble::start(bind.addr());
    let dns = format!(
        "[dns]\nresolver = \"{a}\"\nprimary = \"{a}\"\ntsig_key = \"{k}\"",
        a = bind.addr(),
        k = bind.key().file.display()
    );
    let site = Site::with("", Some(&dns), "record_ttl = 1");
    let mut site = site;
    site.append_config(&format!(
        "[tls]\nacme = {{ directory = \"https://localhost:{}/dir\", contact = \"mailto:postmaster@example.test\", ca = \"{}\" }}\n",
        pebble.port,
        pebble.https.ca.display()
    ));
    let check = ptt(&["check-config", site.config.to_str().unwrap()], "");
    assert!(check.status.success(), "{}", text(&check));

    // Watch the primary for the challenge record while the order runs.
    let seen = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (seen, stop) = (seen.clone(), stop.clone());
        let port = bind.port();
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let out = Command::new("dig")
                    .args(["+short", "-p", &port.to_string(), "@127.0.0.1"])
                    .args(["_acme-challenge.mx.example.test", "TXT"])
                    .output();
                if out.is_ok_and(|o| !o.stdout.is_empty()) {
                    seen.store(true, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(30));
            }
        })
    };
    site.serve(&["submission", "signer", "relay"]);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !site.log().contains("presenting the ACME certificate") {
        assert!(Instant::now() < deadline, "no certificate: {}", site.log());
        std::thread::sleep(Duration::from_millis(200));
    }
    stop.store(true, Ordering::Relaxed);
    watcher.join().unwrap();
    assert!(
        seen.load(Ordering::Relaxed),
        "the challenge record never appeared at the primary"
    );
    assert!(
        bind.dig("_acme-challenge.mx.example.test", "TXT")
            .is_empty(),
        "the challenge record was left behind"
    );
    assert!(
        site.log().contains("ACME challenge record removed"),
        "{}",
        site.log()
    );

    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("pebble-root.pem");
    std::fs::write(&root, pebble.root()).unwrap();
    let (session, first) = presented(site.submission, &root);
    assert!(session.contains("Verify return code: 0 (ok)"), "{session}");
    assert!(session.contains("Pebble Intermediate"), "{session}");
    assert!(session.contains("DNS:mx.example.test"), "{session}");
    assert!(first.starts_with("serial="), "{session}");

    // A forced renewal: the same process presents the new one.
    let pid = site.pids()[0].1;
    let out = ptt(
        &[
            "acme",
            "renew",
            "--config",
            site.config.to_str().unwrap(),
            "submission",
        ],
        "",
    );
    assert!(out.status.success(), "{}", text(&out));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (session, serial) = presented(site.submission, &root);
        if serial != first && serial.starts_with("serial=") {
            assert!(session.contains("Verify return code: 0 (ok)"), "{session}");
            break;
        }
        assert!(Instant::now() < deadline, "still {first}: {session}");
        std::thread::sleep(Duration::from_millis(300));
    }
    assert_eq!(site.pids()[0].1, pid);
    assert!(
        std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "the service restarted"
    );
}
