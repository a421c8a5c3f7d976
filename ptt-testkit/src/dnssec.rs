//! DNSSEC for DANE tests: zones signed with `dnssec-signzone` and served by
//! an authoritative `named` ([`SignedZones`]), and a validating resolver, a
//! second `named` that forwards every question to it and trusts only the
//! keys it is given ([`ValidatingResolver`]): names under those keys are
//! secure (or bogus when a key does not match), every other name insecure.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::process::Command;

use crate::dns_zones::Zone;
use crate::named::{Named, absolute, options};
use crate::process::{free_port, require_program};

/// An authoritative `named` with some zones signed.
#[derive(Debug)]
pub struct SignedZones {
    named: Named,
    anchors: Vec<(String, String)>,
}

impl SignedZones {
    /// Starts `named` with every zone of `zones`, those named in `signed`
    /// signed with one ECDSA P-256 key each.
    pub fn start(zones: &[Zone<'_>], signed: &[&str]) -> SignedZones {
        let keygen = require_program("dnssec-keygen", "Debian package bind9-utils");
        let signzone = require_program("dnssec-signzone", "Debian package bind9-utils");
        let dir = tempfile::Builder::new()
            .prefix("ptt-dnssec-")
            .tempdir()
            .expect("temp dir for named");
        let d = dir.path();
        let port = free_port();
        let mut conf = options(d, port);
        let mut anchors = Vec::new();
        for (n, zone) in zones.iter().enumerate() {
            let origin = absolute(zone.origin);
            let file = d.join(format!("zone{n}.db"));
            std::fs::write(&file, zone.text()).expect("write zone");
            let served = if signed.iter().any(|s| absolute(s) == origin) {
                let out = Command::new(&keygen)
                    .current_dir(d)
                    .args([
                        "-q",
                        "-a",
                        "ECDSAP256SHA256",
                        "-f",
                        "KSK",
                        "-n",
                        "ZONE",
                        &origin,
                    ])
                    .output()
                    .expect("run dnssec-keygen");
                assert!(
                    out.status.success(),
                    "dnssec-keygen: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                let base = String::from_utf8_lossy(&out.stdout).trim().to_string();
                let key = std::fs::read_to_string(d.join(format!("{base}.key"))).expect("key file");
                let dnskey = key
                    .lines()
                    .find(|l| !l.starts_with(';') && l.contains("DNSKEY"))
                    .and_then(|l| l.split_once("DNSKEY"))
                    .map(|(_, k)| k.trim().to_string())
                    .expect("a DNSKEY line");
                anchors.push((origin.clone(), dnskey));
                let signed_file = d.join(format!("zone{n}.db.signed"));
                let out = Command::new(&signzone)
                    .current_dir(d)
                    .args(["-S", "-z", "-K"])
                    .arg(d)
                    .args(["-o", &origin, "-f"])
                    .arg(&signed_file)
                    .arg(&file)
                    .output()
                    .expect("run dnssec-signzone");
                assert!(
                    out.status.success(),
                    "dnssec-signzone: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                signed_file
            } else {
                file
            };
            let _ = writeln!(
                conf,
                "zone \"{origin}\" {{ type primary; file \"{}\"; }};",
                served.display()
            );
        }
        let named = Named::start(dir, port, &conf);
        for zone in zones {
            named.wait_for_zone(&absolute(zone.origin));
        }
        SignedZones { named, anchors }
    }

    /// `127.0.0.1:port`.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.named.port()))
    }

    /// The public key of a signed zone, as a trust anchor takes it:
    /// `257 3 13 BASE64`.
    pub fn anchor(&self, zone: &str) -> &str {
        let origin = absolute(zone);
        self.anchors
            .iter()
            .find(|(z, _)| *z == origin)
            .map(|(_, k)| k.as_str())
            .unwrap_or_else(|| panic!("{zone} is not signed here"))
    }
}

/// A validating, forwarding `named`.
#[derive(Debug)]
pub struct ValidatingResolver {
    named: Named,
}

impl ValidatingResolver {
    /// Starts a resolver that asks `upstream` every question and checks
    /// the answers of the zones in `anchors` (zone, `257 3 13 BASE64`).
    pub fn start(upstream: SocketAddr, anchors: &[(&str, &str)]) -> ValidatingResolver {
        let dir = tempfile::Builder::new()
            .prefix("ptt-resolver-")
            .tempdir()
            .expect("temp dir for named");
        let d = dir.path();
        let port = free_port();
        let conf = options(d, port)
            .replace("recursion no;", "recursion yes;\n    allow-recursion { 127.0.0.0/8; };")
            .replace(
                "dnssec-validation no;",
                &format!(
                    "dnssec-validation yes;\n    forward only;\n    forwarders {{ {} port {}; }};\n    qname-minimization off;",
                    upstream.ip(),
                    upstream.port()
                ),
            );
        let mut conf = conf;
        conf.push_str("trust-anchors {\n");
        for (zone, key) in anchors {
            let mut parts = key.splitn(4, ' ');
            let (flags, proto, alg, data) = (
                parts.next().unwrap_or_default(),
                parts.next().unwrap_or_default(),
                parts.next().unwrap_or_default(),
                parts.next().unwrap_or_default().replace(' ', ""),
            );
            let _ = writeln!(
                conf,
                "    \"{}\" static-key {flags} {proto} {alg} \"{data}\";",
                absolute(zone)
            );
        }
        conf.push_str("};\n");
        let named = Named::start(dir, port, &conf);
        ValidatingResolver { named }
    }

    /// `127.0.0.1:port`.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.named.port()))
    }

    /// `dig +short +dnssec` through the resolver.
    pub fn dig(&self, name: &str, rtype: &str) -> Vec<String> {
        self.named.dig(name, rtype)
    }
}
