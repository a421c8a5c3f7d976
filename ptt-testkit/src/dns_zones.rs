//! BIND `named` serving several zones at once (for example a forward zone
//! and the `in-addr.arpa` / `ip6.arpa` zones its PTR records live in), read
//! only, on a free port of 127.0.0.1. [`crate::Bind`] is the one-zone server
//! that takes TSIG-signed updates.

use std::fmt::Write as _;
use std::net::SocketAddr;

use crate::named::{Named, absolute, options_on};
use crate::process::free_port;

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

impl Zone<'_> {
    /// The zone file: SOA and NS, then the records.
    pub(crate) fn text(&self) -> String {
        let origin = absolute(self.origin);
        let mut text = format!(
            "$ORIGIN {origin}\n$TTL 300\n@ IN SOA ns.invalid. hostmaster.invalid. 1 3600 600 86400 300\n@ IN NS ns.invalid.\n"
        );
        for (owner, rtype, rdata) in self.records {
            let _ = writeln!(text, "{owner} IN {rtype} {rdata}");
        }
        text
    }
}

/// A running `named` with several read-only zones.
#[derive(Debug)]
pub struct BindZones {
    named: Named,
}

impl BindZones {
    /// Starts `named` with every zone of `zones`.
    pub fn start(zones: &[Zone<'_>]) -> BindZones {
        BindZones::start_on(&[], zones)
    }

    /// [`BindZones::start`], listening on the addresses `also` too, on the
    /// same port (e.g. a TAP device's address in a network namespace).
    pub fn start_on(also: &[std::net::Ipv4Addr], zones: &[Zone<'_>]) -> BindZones {
        let dir = tempfile::Builder::new()
            .prefix("ptt-bindz-")
            .tempdir()
            .expect("temp dir for named");
        let d = dir.path();
        let port = free_port();
        let mut conf = options_on(d, port, also);
        for (n, zone) in zones.iter().enumerate() {
            let origin = absolute(zone.origin);
            let file = d.join(format!("zone{n}.db"));
            std::fs::write(&file, zone.text()).expect("write zone");
            let _ = writeln!(
                conf,
                "zone \"{origin}\" {{ type primary; file \"{}\"; }};",
                file.display()
            );
        }
        let named = Named::start(dir, port, &conf);
        for zone in zones {
            named.wait_for_zone(&absolute(zone.origin));
        }
        BindZones { named }
    }

    /// The port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.named.port()
    }

    /// `127.0.0.1:port`.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port()))
    }

    /// `dig +short` for `name` and `rtype`: one string per answer record.
    pub fn dig(&self, name: &str, rtype: &str) -> Vec<String> {
        self.named.dig(name, rtype)
    }
}
