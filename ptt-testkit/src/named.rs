//! One `named` process in its own temporary directory on a free port of
//! 127.0.0.1: what [`crate::Bind`] and [`crate::dns_zones::BindZones`] both
//! start and ask (the options block, starting, `dig`, waiting for a zone).

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::process::{Peer, require_program, wait_for_tcp};

pub(crate) const PACKAGE_BIND: &str = "Debian package bind9";
pub(crate) const PACKAGE_UTILS: &str = "Debian package bind9-dnsutils";

/// `origin` with its final dot.
pub(crate) fn absolute(origin: &str) -> String {
    if origin.ends_with('.') {
        origin.to_string()
    } else {
        format!("{origin}.")
    }
}

/// The `options` and `controls` of a test server: authoritative only,
/// IPv4 loopback on `port`, its files in `dir`.
pub(crate) fn options(dir: &Path, port: u16) -> String {
    options_on(dir, port, &[])
}

/// [`options`] listening on the addresses `also` too (beside 127.0.0.1,
/// which the helpers use): for a peer that cannot reach loopback, such as
/// a userspace TCP/IP stack on a TAP device.
pub(crate) fn options_on(dir: &Path, port: u16, also: &[std::net::Ipv4Addr]) -> String {
    let also: String = also.iter().map(|a| format!(" {a};")).collect();
    format!(
        r#"options {{
    directory "{dir}";
    listen-on port {port} {{ 127.0.0.1;{also} }};
    listen-on-v6 {{ none; }};
    recursion no;
    pid-file "{dir}/named.pid";
    session-keyfile "{dir}/session.key";
    dnssec-validation no;
    notify no;
}};
controls {{ }};
"#,
        dir = dir.display(),
    )
}

/// A running `named`.
#[derive(Debug)]
pub(crate) struct Named {
    // Field order matters: the process dies before its directory is removed.
    _peer: Peer,
    port: u16,
    dir: tempfile::TempDir,
}

impl Named {
    /// Writes `conf` as `named.conf` in `dir`, starts `named` on it and
    /// waits until it listens on `port`.
    pub(crate) fn start(dir: tempfile::TempDir, port: u16, conf: &str) -> Named {
        let named = require_program("named", PACKAGE_BIND);
        require_program("dig", PACKAGE_UTILS);
        let d = dir.path();
        std::fs::write(d.join("named.conf"), conf).expect("write named.conf");
        let log = d.join("named.log");
        let child = Command::new(named)
            .arg("-f")
            .arg("-c")
            .arg(d.join("named.conf"))
            .arg("-L")
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn named");
        let mut peer = Peer::new("named", child);
        wait_for_tcp(
            SocketAddr::from(([127, 0, 0, 1], port)),
            Duration::from_secs(20),
            "named",
        );
        peer.assert_running(&format!("see {}", log.display()));
        Named {
            _peer: peer,
            port,
            dir,
        }
    }

    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// Waits until `named` answers for the SOA of `origin`.
    pub(crate) fn wait_for_zone(&self, origin: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if !self.dig(origin, "SOA").is_empty() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "named did not serve {origin} within 20 s (a zone file error?); see {}",
            self.dir.path().join("named.log").display()
        );
    }

    /// `dig +short` for `name` and `rtype`: one string per answer record.
    pub(crate) fn dig(&self, name: &str, rtype: &str) -> Vec<String> {
        let out = Command::new(require_program("dig", PACKAGE_UTILS))
            .args(["@127.0.0.1", "-p", &self.port.to_string(), name, rtype])
            .args(["+short", "+time=2", "+tries=1"])
            .output()
            .expect("run dig");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with(';'))
            .map(str::to_string)
            .collect()
    }
}
