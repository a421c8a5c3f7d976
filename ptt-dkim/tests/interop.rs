//! Interop both ways with independent implementations, on generated
//! messages (varied folding, long lines, empty body, trailing blank lines,
//! 8-bit, CRLF edge cases):
//! - every message signed by ptt verifies with dkimpy and with OpenDKIM
//!   (`opendkim -t`, keys from a `TestPublicKeys` file);
//! - every message signed by dkimpy verifies with ptt;
//! - a one-byte change makes every verifier fail.

mod common;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::process::Command;

use common::{summary, verify_with};
use ptt_dkim::{
    Canonicalization, KeyKind, Signer, SignerConfig, SigningKey, Verdict, generate_key,
};
use ptt_testkit::python::dkimpy_sign;

/// dkimpy's verdict on many messages in one Python process (each signature
/// checked: `dkim.DKIM(m).verify(idx=i)` for every DKIM-Signature).
fn dkimpy_verify_all(messages: &[Vec<u8>], records: &BTreeMap<String, String>) -> Vec<bool> {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let list: Vec<String> = messages.iter().map(|m| b64.encode(m)).collect();
    let cfg = serde_json::json!({ "txt": records, "port": null });
    // The messages go on standard input (too large for an argument).
    let input = serde_json::json!(list).to_string();
    let out = ptt_testkit::python::run(
        r#"import dkim, base64
out = []
for m in json.loads(sys.stdin.read()):
    m = base64.b64decode(m)
    d = dkim.DKIM(m)
    n = len([h for h in d.headers if h[0].lower() == b'dkim-signature'])
    def one(i):
        try:
            return d.verify(idx=i, **dns_kw())
        except Exception:
            return False
    ok = n > 0 and all(one(i) for i in range(n))
    out.append('pass' if ok else 'fail')
print(' '.join(out))"#,
        cfg,
        input.as_bytes(),
    );
    assert!(
        out.status.success(),
        "dkimpy: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(|w| w == "pass")
        .collect()
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The generated messages: (name, bytes).
fn messages() -> Vec<(&'static str, Vec<u8>)> {
    let base = "From: Alice <alice@example.com>\r\nTo: bob@example.net\r\nSubject: test\r\nDate: Sat, 21 Nov 2026 10:00:00 +0000\r\nMessage-ID: <1@example.com>\r\n";
    let mut long_line = String::new();
    for i in 0..400 {
        let _ = write!(long_line, "word{i} ");
    }
    let mut long_header = String::from("References:");
    for i in 0..60 {
        let _ = write!(long_header, "\r\n <ref{i}@lists.example.org>");
    }
    let mut big = String::new();
    for i in 0..3000 {
        let _ = write!(
            big,
            "line {i}: the quick brown fox\t jumps  over the lazy dog \r\n"
        );
    }
    let m = |head: &str, body: &[u8]| [head.as_bytes(), b"\r\n", body].concat();
    vec![
        ("plain", m(base, b"Hello.\r\n")),
        ("empty body", m(base, b"")),
        ("body only CRLFs", m(base, b"\r\n\r\n\r\n")),
        ("trailing blank lines", m(base, b"text\r\n\r\n\r\n\r\n")),
        ("no final CRLF", m(base, b"no newline at end")),
        (
            "trailing whitespace",
            m(base, b"a  \r\n\tb\t\r\n  \r\nc \t \r\n"),
        ),
        ("inner whitespace runs", m(base, b"a \t  b\r\n   lead\r\n")),
        ("lone CR in line", m(base, b"a\rb\r\nc\r\n")),
        (
            "folded headers",
            m(
                "From: Alice\r\n <alice@example.com>\r\nTo:bob@example.net\r\nSubject: a\r\n\tfolded   subject\r\n  over three lines\r\nDate: Sat, 21 Nov 2026 10:00:00 +0000\r\nX-Tabs:\t\tvalue\t\r\n",
                b"Body\r\n",
            ),
        ),
        (
            "long header",
            m(&format!("{base}{long_header}\r\n"), b"x\r\n"),
        ),
        ("long line", m(base, format!("{long_line}\r\n").as_bytes())),
        (
            "8-bit",
            m(
                "From: =?utf-8?q?J=C3=B6rg?= <j@example.com>\r\nTo: b@example.net\r\nSubject: Gr\u{fc}\u{df}e \u{20ac}\r\n",
                "K\u{f6}ln \u{20ac} \u{1f600}\r\nlatin1: \u{e9}\r\n".as_bytes(),
            ),
        ),
        ("8-bit latin-1", m(base, b"caf\xe9 na\xefve\r\n")),
        (
            "repeated headers",
            m(
                &format!("{base}Received: a\r\nReceived: b\r\nTo: second@example.net\r\n"),
                b"x\r\n",
            ),
        ),
        ("100 KB", m(base, big.as_bytes())),
    ]
}

/// A fresh RSA-2048 key as (PEM, key): from the crate (aws-lc-rs), or from
/// `openssl genrsa` when the backend cannot generate RSA keys (ring).
fn rsa_key() -> (String, SigningKey) {
    match generate_key(KeyKind::Rsa2048, [0; 32]) {
        Ok(g) => (g.pem, g.key),
        Err(_) => {
            let out = Command::new("openssl")
                .args(["genrsa", "-traditional", "2048"])
                .output()
                .expect("run openssl genrsa");
            let pem = String::from_utf8(out.stdout).unwrap();
            let key = SigningKey::from_pem(pem.as_bytes()).unwrap();
            (pem, key)
        }
    }
}

fn tamper(msg: &[u8]) -> Vec<u8> {
    let mut out = msg.to_vec();
    // Change one byte of the body when it has a visible byte, else of Subject.
    let body = msg.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let pos = (body..msg.len())
        .find(|&i| msg[i].is_ascii_alphanumeric())
        .unwrap_or_else(|| {
            let s = msg.windows(8).position(|w| w == b"Subject:").unwrap();
            s + 9
        });
    out[pos] ^= 0x01;
    out
}

/// Cases where `opendkim -t` (2.11) disagrees with dkimpy and ptt, each with
/// its reason. For these the test checks that OpenDKIM rejects a signature
/// made by dkimpy on the same message in the same way, which shows the
/// difference is OpenDKIM's (dkimpy and ptt still verify ptt's signature).
fn opendkim_exception(name: &str, c: (Canonicalization, Canonicalization)) -> Option<&'static str> {
    use Canonicalization::{Relaxed, Simple};
    match (name, c) {
        ("lone CR in line", (_, Relaxed)) => {
            Some("a CR outside CRLF in a relaxed body: OpenDKIM canonicalizes it differently")
        }
        ("no final CRLF", (_, Relaxed)) => {
            Some("relaxed body without a final CRLF: opendkim -t says \"message not signed\"")
        }
        ("folded headers" | "long header", (Simple, _)) => Some(
            "simple header canonicalization of fields written `Name:value` or `Name:CRLF value`: opendkim -t rebuilds them as `Name: value`",
        ),
        _ => None,
    }
}

/// Signs with dkimpy (one process for all): (message, selector, key, header
/// canon, body canon).
type SignJob<'a> = (
    Vec<u8>,
    &'a str,
    &'a [u8],
    Canonicalization,
    Canonicalization,
);

fn dkimpy_sign_all(jobs: &[SignJob<'_>]) -> Vec<Vec<u8>> {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let list: Vec<serde_json::Value> = jobs
        .iter()
        .map(|(m, sel, key, h, b)| {
            serde_json::json!({
                "m": b64.encode(m), "sel": sel, "key": String::from_utf8_lossy(key),
                "h": h.as_str(), "b": b.as_str(),
            })
        })
        .collect();
    let cfg = serde_json::json!({ "txt": {}, "port": null, "jobs": list });
    let out = ptt_testkit::python::run(
        r#"import dkim, base64
for j in cfg['jobs']:
    m = base64.b64decode(j['m'])
    ed = not j['key'].startswith('-----')
    sig = dkim.sign(m, j['sel'].encode(), b'example.com', j['key'].encode(),
                    canonicalize=(j['h'].encode(), j['b'].encode()),
                    signature_algorithm=b'ed25519-sha256' if ed else b'rsa-sha256')
    print(base64.b64encode(sig + m).decode())"#,
        cfg,
        b"",
    );
    assert!(
        out.status.success(),
        "dkimpy sign: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| b64.decode(l.trim()).unwrap())
        .collect()
}

struct OpenDkim {
    dir: tempfile::TempDir,
}

impl OpenDkim {
    fn new(records: &BTreeMap<String, String>) -> Self {
        ptt_testkit::require_program("opendkim", "Debian package opendkim");
        let dir = tempfile::tempdir().unwrap();
        let mut keys = String::new();
        for (name, rec) in records {
            let _ = writeln!(keys, "{name} {rec}");
        }
        std::fs::write(dir.path().join("keys"), keys).unwrap();
        std::fs::write(
            dir.path().join("opendkim.conf"),
            format!(
                "Mode v\nTestPublicKeys {}\nSyslog no\nMinimumKeyBits 1024\n",
                dir.path().join("keys").display()
            ),
        )
        .unwrap();
        OpenDkim { dir }
    }

    /// OpenDKIM's verdict: true when it prints "succeeded".
    fn verify(&self, msg: &[u8]) -> (bool, String) {
        let file = self.dir.path().join("msg.eml");
        std::fs::write(&file, msg).unwrap();
        let out = Command::new("opendkim")
            .arg("-x")
            .arg(self.dir.path().join("opendkim.conf"))
            .arg("-t")
            .arg(&file)
            .output()
            .expect("run opendkim");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (
            text.contains("verification (") && text.contains(") succeeded"),
            text,
        )
    }
}

#[test]
fn ptt_signs_dkimpy_and_opendkim_verify() {
    let (rsa_pem, rsa) = rsa_key();
    let ed_seed_b64 = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode([42u8; 32])
    };
    let ed = SigningKey::from_ed25519_seed(&[42; 32]).unwrap();
    let records: BTreeMap<String, String> = [
        (
            "rsa._domainkey.example.com".to_string(),
            rsa.key_record().to_string(),
        ),
        (
            "ed._domainkey.example.com".to_string(),
            ed.key_record().to_string(),
        ),
    ]
    .into();
    let odk = OpenDkim::new(&records);
    let canons = [
        (Canonicalization::Relaxed, Canonicalization::Relaxed),
        (Canonicalization::Simple, Canonicalization::Simple),
        (Canonicalization::Relaxed, Canonicalization::Simple),
        (Canonicalization::Simple, Canonicalization::Relaxed),
    ];
    let mut failures = Vec::new();
    let mut checked = 0;
    let mut batch: Vec<(String, Vec<u8>, bool)> = Vec::new();
    let mut exceptions = Vec::new();
    for (name, msg) in messages() {
        for (sel, key) in [("rsa", &rsa), ("ed", &ed)] {
            for c in canons {
                let mut cfg = SignerConfig::new("example.com", sel);
                (cfg.header_canon, cfg.body_canon) = c;
                cfg.timestamp = Some(now());
                let mut s = Signer::new(key, &cfg).unwrap();
                // Feed in odd-sized pieces, as DATA arrives.
                for chunk in msg.chunks(7) {
                    s.update(chunk);
                }
                let signed = [s.finish().unwrap().as_bytes(), &msg].concat();
                let label = format!("{name} {sel} {}/{}", c.0, c.1);
                let bad = tamper(&signed);
                batch.push((label.clone(), signed.clone(), true));
                batch.push((format!("tampered {label}"), bad.clone(), false));
                if let Some(why) = opendkim_exception(name, c) {
                    exceptions.push((label.clone(), why, msg.clone(), sel, c));
                } else {
                    let (ok, text) = odk.verify(&signed);
                    if !ok {
                        failures.push(format!("opendkim rejects {label}: {text}"));
                    }
                    let (ok, text) = odk.verify(&bad);
                    if ok {
                        failures.push(format!("opendkim accepts tampered {label}: {text}"));
                    }
                }
                let res = verify_with(&signed, now(), &records);
                if res[0].verdict != Verdict::Pass {
                    failures.push(format!("ptt rejects {label}: {}", summary(&res)));
                }
                let res = verify_with(&bad, now(), &records);
                if !matches!(res[0].verdict, Verdict::Fail(_)) {
                    failures.push(format!("ptt accepts tampered {label}: {}", summary(&res)));
                }
                checked += 1;
            }
        }
    }
    // The OpenDKIM exceptions: OpenDKIM must reject dkimpy's signature too.
    let rsa_pem = rsa_pem.as_bytes();
    let ed_seed = ed_seed_b64.as_bytes();
    let jobs: Vec<_> = exceptions
        .iter()
        .map(|(_, _, msg, sel, c)| {
            (
                msg.clone(),
                *sel,
                if *sel == "rsa" { rsa_pem } else { ed_seed },
                c.0,
                c.1,
            )
        })
        .collect();
    let py_signed = dkimpy_sign_all(&jobs);
    for ((label, why, ..), py) in exceptions.iter().zip(&py_signed) {
        let (ok, text) = odk.verify(py);
        if ok {
            failures.push(format!(
                "exception {label} does not hold: opendkim accepts dkimpy's signature: {text}"
            ));
        } else {
            println!("opendkim exception {label}: {why} (dkimpy's signature fails there too)");
        }
        batch.push((format!("dkimpy-signed {label}"), py.clone(), true));
    }
    let msgs: Vec<Vec<u8>> = batch.iter().map(|b| b.1.clone()).collect();
    let verdicts = dkimpy_verify_all(&msgs, &records);
    assert_eq!(verdicts.len(), batch.len());
    for ((label, _, want), got) in batch.iter().zip(verdicts) {
        if *want != got {
            failures.push(format!(
                "dkimpy says {} for {label}",
                if got { "pass" } else { "fail" }
            ));
        }
    }
    println!(
        "ptt-signed interop: {checked} signed messages, {} failures",
        failures.len()
    );
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn dkimpy_signs_ptt_verifies() {
    let (rsa_pem, rsa_key) = rsa_key();
    let seed = [9u8; 32];
    let ed = SigningKey::from_ed25519_seed(&seed).unwrap();
    use base64::Engine as _;
    let ed_seed_b64 = base64::engine::general_purpose::STANDARD.encode(seed);
    let records: BTreeMap<String, String> = [
        (
            "rsa._domainkey.example.com".to_string(),
            rsa_key.key_record().to_string(),
        ),
        (
            "ed._domainkey.example.com".to_string(),
            ed.key_record().to_string(),
        ),
    ]
    .into();
    let mut failures = Vec::new();
    let mut checked = 0;
    for (name, msg) in messages() {
        for (sel, pem, is_ed) in [
            ("rsa", rsa_pem.as_bytes(), false),
            ("ed", ed_seed_b64.as_bytes(), true),
        ] {
            let signed = dkimpy_sign(&msg, sel, "example.com", pem, is_ed);
            let res = verify_with(&signed, now(), &records);
            if res.len() != 1 || res[0].verdict != Verdict::Pass {
                failures.push(format!(
                    "ptt rejects dkimpy {name} {sel}: {}",
                    summary(&res)
                ));
            }
            let res = verify_with(&tamper(&signed), now(), &records);
            if !matches!(res[0].verdict, Verdict::Fail(_)) {
                failures.push(format!(
                    "ptt accepts tampered dkimpy {name} {sel}: {}",
                    summary(&res)
                ));
            }
            checked += 1;
        }
    }
    println!(
        "dkimpy-signed interop: {checked} messages, {} failures",
        failures.len()
    );
    assert!(failures.is_empty(), "{failures:#?}");
}
