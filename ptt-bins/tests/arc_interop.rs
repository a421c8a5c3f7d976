//! ARC interop with dkimpy: chains of 1, 2 and 3 hops, each hop sealed by
//! dkimpy's `arc_sign` or by `ptt arc seal`, in every order (2 + 4 + 8 = 14
//! chains). Every chain must validate as `pass` with both dkimpy's
//! `arc_verify` and `ptt arc verify`; after the body is changed, both must
//! say `fail`.
//!
//! Each hop has its own domain, selector and RSA 2048 key made by dkimpy's
//! `dknewkey`; the key records reach dkimpy through its `dnsfunc` and ptt
//! through `--txt`. dkimpy takes the chain status for its seal from an
//! Authentication-Results field of its authserv-id (`arc=...`); the test
//! writes that field from dkimpy's own `arc_verify`, as a dkimpy-based hop
//! would. `ptt arc seal` validates and stamps by itself.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use ptt_testkit::python::{PyDns, dkimpy_arc_verify};

const PTT: &str = env!("CARGO_BIN_EXE_ptt");

const MESSAGE: &str = "From: Alice <alice@origin.example>\r\n\
To: list@hop1.example\r\n\
Subject: ARC interop\r\n\
Date: Sun, 22 Nov 2026 00:00:00 +0000\r\n\
Message-ID: <interop@origin.example>\r\n\
MIME-Version: 1.0\r\n\
Content-Type: text/plain; charset=us-ascii\r\n\
\r\n\
Hello,\r\n\
this message goes through up to three ARC sealers.\r\n\
  Trailing   spaces and blank lines at the end.   \r\n\
\r\n\
\r\n";

struct Hop {
    domain: String,
    selector: String,
    srv_id: String,
    key_path: PathBuf,
    key_pem: Vec<u8>,
}

struct World {
    _dir: tempfile::TempDir,
    hops: Vec<Hop>,
    txt: BTreeMap<String, String>,
}

fn world() -> World {
    let dir = tempfile::tempdir().expect("temp dir");
    let dknewkey = ptt_testkit::require_program("dknewkey", "pip package dkimpy");
    let mut hops = Vec::new();
    let mut txt = BTreeMap::new();
    for n in 1..=3 {
        let base = dir.path().join(format!("hop{n}"));
        let out = Command::new(&dknewkey)
            .args(["--ktype", "rsa"])
            .arg(&base)
            .current_dir(dir.path())
            .output()
            .expect("run dknewkey");
        assert!(
            out.status.success(),
            "dknewkey: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let key_path = base.with_extension("key");
        let key_pem = std::fs::read(&key_path).expect("key file");
        let record = std::fs::read_to_string(base.with_extension("dns")).expect("dns file");
        let hop = Hop {
            domain: format!("hop{n}.example"),
            selector: format!("arc{n}"),
            srv_id: format!("mx.hop{n}.example"),
            key_path,
            key_pem,
        };
        txt.insert(
            format!("{}._domainkey.{}", hop.selector, hop.domain),
            record.trim().to_string(),
        );
        hops.push(hop);
    }
    World {
        _dir: dir,
        hops,
        txt,
    }
}

fn ptt(args: &[String], stdin: &[u8]) -> (bool, Vec<u8>, String) {
    let mut child = Command::new(PTT)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run ptt");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin)
        .expect("write stdin");
    let out = child.wait_with_output().expect("wait for ptt");
    (
        out.status.success(),
        out.stdout,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

impl World {
    fn txt_args(&self) -> Vec<String> {
        self.txt
            .iter()
            .flat_map(|(k, v)| ["--txt".to_string(), format!("{k}={v}")])
            .collect()
    }

    fn ptt_verify(&self, message: &[u8]) -> String {
        let mut args = vec!["arc".to_string(), "verify".to_string()];
        args.extend(self.txt_args());
        let (_, out, err) = ptt(&args, message);
        let line = String::from_utf8_lossy(&out).trim().to_string();
        let cv = line
            .strip_prefix("cv=")
            .and_then(|r| r.split_whitespace().next())
            .unwrap_or_else(|| panic!("ptt arc verify printed {line:?}, stderr {err}"));
        cv.to_string()
    }

    fn dkimpy_verify(&self, message: &[u8]) -> String {
        dkimpy_arc_verify(message, &PyDns::Txt(self.txt.clone()))
    }

    fn seal_ptt(&self, hop: &Hop, message: &[u8]) -> Vec<u8> {
        let mut args: Vec<String> = [
            "arc",
            "seal",
            "--selector",
            &hop.selector,
            "--domain",
            &hop.domain,
            "--authserv-id",
            &hop.srv_id,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.push("--key".into());
        args.push(hop.key_path.display().to_string());
        args.extend(self.txt_args());
        let (ok, out, err) = ptt(&args, message);
        assert!(ok, "ptt arc seal failed: {err}");
        out
    }

    fn seal_dkimpy(&self, hop: &Hop, message: &[u8]) -> Vec<u8> {
        let cv = self.dkimpy_verify(message);
        let stamped = [
            format!("Authentication-Results: {}; arc={cv}\r\n", hop.srv_id).as_bytes(),
            message,
        ]
        .concat();
        let sealed = dkimpy_arc_sign(&stamped, hop);
        assert!(
            sealed.len() > stamped.len(),
            "dkimpy added no ARC set (cv={cv})"
        );
        sealed
    }
}

/// dkimpy's `arc_sign` for one hop.
fn dkimpy_arc_sign(message: &[u8], hop: &Hop) -> Vec<u8> {
    ptt_testkit::python::dkimpy_arc_sign(
        message,
        &hop.selector,
        &hop.domain,
        &hop.key_pem,
        &hop.srv_id,
    )
}

/// The unfolded value of the first `name` field of a message.
fn field(message: &[u8], name: &str) -> Option<String> {
    let text = String::from_utf8_lossy(message);
    let mut lines = text.split("\r\n");
    let first = lines.find(|l| {
        l.split_once(':')
            .is_some_and(|(n, _)| n.eq_ignore_ascii_case(name))
    })?;
    let mut value = first.split_once(':').map(|(_, v)| v.to_string())?;
    for l in lines.take_while(|l| l.starts_with([' ', '\t'])) {
        value.push_str(l);
    }
    Some(value)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sealer {
    Dkimpy,
    Ptt,
}

#[test]
fn chains_of_one_to_three_hops_in_every_order() {
    let w = world();
    let mut checked = 0;
    for hops in 1..=3usize {
        for mask in 0..(1u32 << hops) {
            let order: Vec<Sealer> = (0..hops)
                .map(|k| {
                    if mask & (1 << k) != 0 {
                        Sealer::Ptt
                    } else {
                        Sealer::Dkimpy
                    }
                })
                .collect();
            let mut message = MESSAGE.as_bytes().to_vec();
            for (k, sealer) in order.iter().enumerate() {
                let hop = &w.hops[k];
                message = match sealer {
                    Sealer::Dkimpy => w.seal_dkimpy(hop, &message),
                    Sealer::Ptt => w.seal_ptt(hop, &message),
                };
                // Every intermediate chain validates too.
                assert_eq!(
                    (w.dkimpy_verify(&message), w.ptt_verify(&message)),
                    ("pass".to_string(), "pass".to_string()),
                    "{order:?} after hop {}:\n{}",
                    k + 1,
                    String::from_utf8_lossy(&message)
                );
            }
            // A body changed after the last seal breaks the newest AMS.
            let mut tampered = message.clone();
            tampered.extend_from_slice(b"P.S. added after sealing\r\n");
            assert_eq!(
                (w.dkimpy_verify(&tampered), w.ptt_verify(&tampered)),
                ("fail".to_string(), "fail".to_string()),
                "{order:?} with a modified body"
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 14);
}

#[test]
fn a_failed_chain_is_sealed_with_cv_fail_and_not_built_upon() {
    let w = world();
    // Hop 1 seals, then the body changes: the chain is broken on arrival
    // at hop 2.
    let mut message = w.seal_ptt(&w.hops[0], MESSAGE.as_bytes());
    message.extend_from_slice(b"footer added by a careless list\r\n");
    assert_eq!(w.ptt_verify(&message), "fail");
    // Hop 2 (ptt) seals with cv=fail, signing only its own set.
    let sealed = w.seal_ptt(&w.hops[1], &message);
    let seal = field(&sealed, "ARC-Seal").expect("a new ARC-Seal");
    assert!(seal.contains("cv=fail") && seal.contains("i=2"), "{seal}");
    let stamp = field(&sealed, "Authentication-Results").expect("the stamp");
    assert!(stamp.contains("mx.hop2.example; arc=fail"), "{stamp}");
    assert_eq!(w.ptt_verify(&sealed), "fail");
    // dkimpy answers no status (Python None) for a chain whose seal says
    // cv=fail ("the chain is terminated"); RFC 8617 §5.2 step 2 says fail.
    let dkimpy = w.dkimpy_verify(&sealed);
    assert!(dkimpy == "fail" || dkimpy == "None", "dkimpy: {dkimpy}");
    // Hop 3 adds nothing to a chain whose newest seal says cv=fail.
    let again = w.seal_ptt(&w.hops[2], &sealed);
    let seal = field(&again, "ARC-Seal").expect("the old ARC-Seal");
    assert!(seal.contains("i=2"), "no set 3 on a failed chain: {seal}");
}

/// A TXT record's text as zone-file rdata: quoted strings of at most 255
/// bytes.
fn zone_txt(text: &str) -> String {
    text.as_bytes()
        .chunks(255)
        .map(|c| format!("\"{}\"", String::from_utf8_lossy(c)))
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn keys_from_a_real_dns_server() {
    let w = world();
    // The hops' keys under one zone, test.: arcN._domainkey.hopN.test.
    let records: Vec<(String, String)> = w
        .hops
        .iter()
        .map(|h| {
            let record = &w.txt[&format!("{}._domainkey.{}", h.selector, h.domain)];
            (
                format!(
                    "{}._domainkey.{}",
                    h.selector,
                    h.domain.replace(".example", "")
                ),
                zone_txt(record),
            )
        })
        .collect();
    let rr: Vec<(&str, &str, &str)> = records
        .iter()
        .map(|(n, t)| (n.as_str(), "TXT", t.as_str()))
        .collect();
    let dns = ptt_testkit::Bind::start("test.", &rr);
    let server = format!("127.0.0.1:{}", dns.port());
    let seal = |hop: &Hop, message: &[u8]| {
        let domain = hop.domain.replace(".example", ".test");
        let args: Vec<String> = [
            "arc",
            "seal",
            "--selector",
            &hop.selector,
            "--domain",
            &domain,
            "--authserv-id",
            &hop.srv_id,
            "--dns",
            &server,
            "--key",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([hop.key_path.display().to_string()])
        .collect();
        let (ok, out, err) = ptt(&args, message);
        assert!(ok, "ptt arc seal --dns: {err}");
        out
    };
    let two = seal(&w.hops[1], &seal(&w.hops[0], MESSAGE.as_bytes()));
    let args = ["arc", "verify", "--dns", &server].map(String::from);
    let (ok, out, err) = ptt(&args, &two);
    assert!(ok, "{err}");
    assert_eq!(
        String::from_utf8_lossy(&out).trim(),
        "cv=pass (2 sets, oldest-pass=0)"
    );
    assert_eq!(dkimpy_arc_verify(&two, &PyDns::Server(dns.port())), "pass");
    // A third hop, then a changed body: fail, exit 1.
    let mut three = seal(&w.hops[2], &two);
    three.extend_from_slice(b"tampered\r\n");
    let (ok, out, _) = ptt(&args, &three);
    assert!(!ok, "exit 1 on fail");
    assert!(
        String::from_utf8_lossy(&out)
            .starts_with("cv=fail (ARC-Message-Signature i=3: body hash mismatch)"),
        "{}",
        String::from_utf8_lossy(&out)
    );
}
