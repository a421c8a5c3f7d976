//! The DNSSEC test servers do what the DANE tests rely on: a signed zone's
//! answers come back with AD through the validating resolver, a zone whose
//! trust anchor does not match gives SERVFAIL (and an answer with CD), and
//! an unsigned zone answers without AD.

use std::process::Command;

use ptt_testkit::dns_zones::Zone;
use ptt_testkit::dnssec::{SignedZones, ValidatingResolver};

fn dig(server: std::net::SocketAddr, args: &[&str]) -> String {
    let out = Command::new("dig")
        .arg(format!("@{}", server.ip()))
        .args([
            "-p",
            &server.port().to_string(),
            "+time=3",
            "+tries=1",
            "+dnssec",
        ])
        .args(args)
        .output()
        .expect("dig");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn secure_bogus_and_insecure() {
    let zones = SignedZones::start(
        &[
            Zone {
                origin: "good.test.",
                records: &[("www", "A", "192.0.2.1")],
            },
            Zone {
                origin: "broken.test.",
                records: &[("www", "A", "192.0.2.2")],
            },
            Zone {
                origin: "plain.test.",
                records: &[("www", "A", "192.0.2.3")],
            },
        ],
        &["good.test", "broken.test"],
    );
    // broken.test is given good.test's key: nothing of it validates.
    let resolver = ValidatingResolver::start(
        zones.addr(),
        &[
            ("good.test", zones.anchor("good.test")),
            ("broken.test", zones.anchor("good.test")),
        ],
    );
    let good = dig(resolver.addr(), &["www.good.test", "A"]);
    assert!(good.contains(" ad") && good.contains("192.0.2.1"), "{good}");
    let broken = dig(resolver.addr(), &["www.broken.test", "A"]);
    assert!(broken.contains("SERVFAIL"), "{broken}");
    let unchecked = dig(resolver.addr(), &["+cd", "www.broken.test", "A"]);
    assert!(unchecked.contains("192.0.2.2"), "{unchecked}");
    let plain = dig(resolver.addr(), &["www.plain.test", "A"]);
    assert!(
        plain.contains("192.0.2.3") && !plain.contains(" ad;") && !plain.contains(" ad "),
        "{plain}"
    );
}
