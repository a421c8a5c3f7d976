//! A self-signed certificate for `localhost` / `127.0.0.1`, made with the
//! `openssl` command so that the peers' TLS does not share code with ptt's.

use std::path::PathBuf;
use std::process::Command;

use crate::process::require_program;

/// A certificate and its key as PEM files in a temporary folder.
#[derive(Debug)]
pub struct TestCert {
    /// The certificate (PEM).
    pub cert: PathBuf,
    /// The private key (PEM, PKCS#8).
    pub key: PathBuf,
    _dir: tempfile::TempDir,
}

impl TestCert {
    /// Makes a fresh P-256 self-signed certificate valid for two days for
    /// `DNS:localhost` and `IP:127.0.0.1`.
    pub fn localhost() -> TestCert {
        let openssl = require_program("openssl", "Debian package openssl");
        let dir = tempfile::Builder::new()
            .prefix("ptt-cert-")
            .tempdir()
            .expect("temp dir for certificate");
        let cert = dir.path().join("cert.pem");
        let key = dir.path().join("key.pem");
        let out = Command::new(openssl)
            .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
            .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "2"])
            .args(["-subj", "/CN=localhost"])
            .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .output()
            .expect("run openssl req");
        assert!(
            out.status.success(),
            "openssl req failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        TestCert {
            cert,
            key,
            _dir: dir,
        }
    }
}
