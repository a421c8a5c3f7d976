//! BIND `named` serving several zones at once (for example a forward zone
//! and the `in-addr.arpa` / `ip6.arpa` zones its PTR records live in), read
//! only, on a free port of 127.0.0.1. [`crate::Bind`] is the one-zone server
//! that takes TSIG-signed updates.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::process::{Peer, free_port, require_program, wait_for_tcp};

/// One zone: its origin (with or without the final dot) and its records as
/// `(owner, type, rdata)` in zone-file syntax (`"@"`, a relative owner, or an
/// absolute one ending in a dot).
#[derive(Debug, Clone)]
pub struct Zone<'a> {
    /// The origin, e.g. `"test."` or `"2.0.192.in-addr.arpa."`.
    pub origin: &'a str,
    /// The records beside the SOA and NS that are added for the zone.
    pub records: &'a [(&'a str, &'a str, &'a str)],
}

/// A running `named` with several read-only zones.
#[derive(Debug)]
pub struct BindZones {
    _named: Peer,
    port: u16,
    dir: tempfile::TempDir,
}

fn absolute(origin: &str) -> String {
    if origin.ends_with('.') {
        origin.to_string()
    } else {
        format!("{origin}.")
    }
}

impl BindZones {
    /// Starts `named` with every zone of `zones`.
    pub fn start(zones: &[Zone<'_>]) -> BindZones {
        let named = require_program("named", "Debian package bind9");
        require_program("dig", "Debian package bind9-dnsutils");
        let dir = tempfile::Builder::new()
            .prefix("ptt-bindz-")
            .tempdir()
            .expect("temp dir for named");
        let d = dir.path();
        let port = free_port();
        let mut conf = format!(
            r#"options {{
    directory "{dir}";
    listen-on port {port} {{ 127.0.0.1; }};
    listen-on-v6 {{ none; }};
    recursion no;
    pid-file "{dir}/named.pid";
    session-keyfile "{dir}/session.key";
    dnssec-validation no;
    notify no;
}};
controls {{ }};
"#,
            dir = d.display(),
        );
        for (n, zone) in zones.iter().enumerate() {
            let origin = absolute(zone.origin);
            let mut text = format!(
                "$ORIGIN {origin}\n$TTL 300\n@ IN SOA ns.invalid. hostmaster.invalid. 1 3600 600 86400 300\n@ IN NS ns.invalid.\n"
            );
            for (owner, rtype, rdata) in zone.records {
                let _ = writeln!(text, "{owner} IN {rtype} {rdata}");
            }
            let file = d.join(format!("zone{n}.db"));
            std::fs::write(&file, text).expect("write zone");
            let _ = writeln!(
                conf,
                "zone \"{origin}\" {{ type primary; file \"{}\"; }};",
                file.display()
            );
        }
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
        let server = BindZones {
            _named: peer,
            port,
            dir,
        };
        for zone in zones {
            server.wait_for_zone(&absolute(zone.origin));
        }
        server
    }

    fn wait_for_zone(&self, origin: &str) {
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

    /// The port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:port`.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// `dig +short` for `name` and `rtype`: one string per answer record.
    pub fn dig(&self, name: &str, rtype: &str) -> Vec<String> {
        let out = Command::new(require_program("dig", "Debian package bind9-dnsutils"))
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
