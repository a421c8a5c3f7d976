//! Independent implementations in Python: dkimpy (DKIM and ARC) and pyspf.
//!
//! DNS answers come either from a map of TXT records handed to dkimpy's
//! `dnsfunc` (no server needed) or from a real server (e.g. [`crate::Bind`])
//! by pointing dnspython's default resolver at it.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::process::{Command, Output, Stdio};

use crate::process::require_program;
use crate::smtp::check_python_module;

/// Where the Python side gets its DNS answers.
#[derive(Debug, Clone)]
pub enum PyDns {
    /// TXT records by name (with or without the final dot).
    Txt(BTreeMap<String, String>),
    /// A DNS server on 127.0.0.1 at this port.
    Server(u16),
}

const PRELUDE: &str = r#"
import json, sys
cfg = json.loads(sys.argv[1])
def _txt(name, timeout=5):
    if isinstance(name, bytes):
        name = name.decode()
    name = name.rstrip('.')
    for k, v in cfg['txt'].items():
        if k.rstrip('.').lower() == name.lower():
            return v.encode()
    return None
if cfg.get('port'):
    import dns.resolver
    r = dns.resolver.Resolver(configure=False)
    r.nameservers = ['127.0.0.1']
    r.port = cfg['port']
    dns.resolver.default_resolver = r
    dnsfunc = None
else:
    dnsfunc = _txt
def dns_kw():
    return {} if dnsfunc is None else {'dnsfunc': dnsfunc}
"#;

/// Runs a Python script that sees `cfg` (the JSON `config`), `dnsfunc` and
/// `dns_kw()`, with `stdin` as its standard input.
pub fn run(script: &str, config: serde_json::Value, stdin: &[u8]) -> Output {
    let python = require_program("python3", "Debian package python3");
    let mut child = Command::new(python)
        .arg("-c")
        .arg(format!("{PRELUDE}\n{script}"))
        .arg(config.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn python3");
    let mut input = child.stdin.take().expect("python stdin");
    input.write_all(stdin).expect("write to python");
    drop(input);
    child.wait_with_output().expect("wait for python3")
}

fn dns_config(dns: &PyDns) -> serde_json::Value {
    match dns {
        PyDns::Txt(map) => serde_json::json!({ "txt": map, "port": null }),
        PyDns::Server(port) => serde_json::json!({ "txt": {}, "port": port }),
    }
}

fn require_dkimpy() {
    check_python_module("dkim", "pip package dkimpy");
    check_python_module("dns", "pip package dnspython");
}

/// dkimpy's verdict on every DKIM signature: `true` when `dkim.verify` passes
/// (it checks the first signature, as dkimpy does).
pub fn dkimpy_verify(message: &[u8], dns: &PyDns) -> bool {
    require_dkimpy();
    let out = run(
        "import dkim\nm = sys.stdin.buffer.read()\nprint('pass' if dkim.verify(m, **dns_kw()) else 'fail')",
        dns_config(dns),
        message,
    );
    python_verdict(&out, "dkimpy verify")
}

/// dkimpy's verdict on each DKIM signature of `message`, in order (a
/// message signed twice, Ed25519 and RSA, gives two verdicts).
pub fn dkimpy_verify_each(message: &[u8], dns: &PyDns) -> Vec<bool> {
    require_dkimpy();
    let out = run(
        "import dkim
m = sys.stdin.buffer.read()
d = dkim.DKIM(m)
n = len([h for h in d.headers if h[0].lower() == b'dkim-signature'])
def one(i):\n    try:\n        return dkim.DKIM(m).verify(idx=i, **dns_kw())\n    except dkim.DKIMException:\n        return False\n\
print(' '.join('pass' if one(i) else 'fail' for i in range(n)))",
        dns_config(dns),
        message,
    );
    assert!(
        out.status.success(),
        "dkimpy verify failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(|v| v == "pass")
        .collect()
}

/// dkimpy's ARC verdict: the `cv` value (`pass`, `fail` or `none`).
pub fn dkimpy_arc_verify(message: &[u8], dns: &PyDns) -> String {
    require_dkimpy();
    let out = run(
        "import dkim\nm = sys.stdin.buffer.read()\ncv, results, reason = dkim.arc_verify(m, **dns_kw())\nprint(cv.decode() if isinstance(cv, bytes) else cv)",
        dns_config(dns),
        message,
    );
    assert!(
        out.status.success(),
        "dkimpy arc_verify failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Signs `message` with dkimpy: `key_pem` is the private key (RSA PEM, or the
/// base64 Ed25519 seed as `dknewkey` writes it), headers relaxed/relaxed by
/// default. Returns the whole signed message.
pub fn dkimpy_sign(
    message: &[u8],
    selector: &str,
    domain: &str,
    key_pem: &[u8],
    ed25519: bool,
) -> Vec<u8> {
    require_dkimpy();
    let config = serde_json::json!({
        "txt": {}, "port": null,
        "selector": selector, "domain": domain,
        "key": String::from_utf8_lossy(key_pem),
        "ed25519": ed25519,
    });
    let out = run(
        r#"import dkim
m = sys.stdin.buffer.read()
alg = b'ed25519-sha256' if cfg['ed25519'] else b'rsa-sha256'
sig = dkim.sign(m, cfg['selector'].encode(), cfg['domain'].encode(), cfg['key'].encode(),
                canonicalize=(b'relaxed', b'relaxed'), signature_algorithm=alg)
sys.stdout.buffer.write(sig + m)"#,
        config,
        message,
    );
    assert!(
        out.status.success(),
        "dkimpy sign failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Seals `message` with dkimpy's `arc_sign`. Returns the whole sealed
/// message. Sealing needs no DNS: dkimpy reads the chain status from the
/// message's `Authentication-Results` for `authserv_id`.
pub fn dkimpy_arc_sign(
    message: &[u8],
    selector: &str,
    domain: &str,
    key_pem: &[u8],
    authserv_id: &str,
) -> Vec<u8> {
    require_dkimpy();
    let config = serde_json::json!({
        "txt": {}, "port": null,
        "selector": selector, "domain": domain,
        "key": String::from_utf8_lossy(key_pem), "srv_id": authserv_id,
    });
    let out = run(
        r#"import dkim
m = sys.stdin.buffer.read()
sig = dkim.arc_sign(m, cfg['selector'].encode(), cfg['domain'].encode(), cfg['key'].encode(),
                    cfg['srv_id'].encode())
sys.stdout.buffer.write(b''.join(sig) + m)"#,
        config,
        message,
    );
    assert!(
        out.status.success(),
        "dkimpy arc_sign failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A fresh Ed25519 key pair made by PyNaCl, as dkimpy's `dknewkey` would:
/// `(private seed, public key)`, both base64. The seed is what
/// [`dkimpy_sign`] takes with `ed25519 = true`; the public key is the `p=`
/// of the DKIM key record.
pub fn ed25519_keypair() -> (String, String) {
    check_python_module("nacl", "pip package pynacl");
    let out = run(
        "import nacl.signing, base64\nk = nacl.signing.SigningKey.generate()\nprint(base64.b64encode(bytes(k)).decode())\nprint(base64.b64encode(bytes(k.verify_key)).decode())",
        serde_json::json!({"txt": {}, "port": null}),
        b"",
    );
    assert!(
        out.status.success(),
        "PyNaCl key generation failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines().map(str::to_string);
    match (lines.next(), lines.next()) {
        (Some(private), Some(public)) => (private, public),
        _ => panic!("PyNaCl printed no key pair: {text:?}"),
    }
}

/// pyspf's `check2` against a DNS server on 127.0.0.1:`port`: returns
/// `(result, explanation)`, e.g. `("pass", "sender SPF authorized")`.
pub fn pyspf_check(ip: &str, mail_from: &str, helo: &str, port: u16) -> (String, String) {
    check_python_module("spf", "pip package pyspf");
    check_python_module("dns", "pip package dnspython");
    let mut config = dns_config(&PyDns::Server(port));
    config["ip"] = ip.into();
    config["s"] = mail_from.into();
    config["h"] = helo.into();
    let out = run(
        "import spf\nres, expl = spf.check2(i=cfg['ip'], s=cfg['s'], h=cfg['h'])\nprint(res)\nprint(expl)",
        config,
        b"",
    );
    assert!(
        out.status.success(),
        "pyspf failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    (
        lines.next().unwrap_or_default().to_string(),
        lines.next().unwrap_or_default().to_string(),
    )
}

fn python_verdict(out: &Output, what: &str) -> bool {
    assert!(
        out.status.success(),
        "{what} raised: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim() == "pass"
}
