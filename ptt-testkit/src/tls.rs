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

/// A small CA and a leaf certificate it signed, as PEM files in a
/// temporary folder: for servers whose clients verify the chain (webpki
/// refuses a self-signed certificate, which carries CA:TRUE, as a server's).
#[derive(Debug)]
pub struct SignedCert {
    /// The CA certificate a client must trust (PEM).
    pub ca: PathBuf,
    /// The leaf certificate (PEM).
    pub cert: PathBuf,
    /// The leaf's private key (PEM, PKCS#8).
    pub key: PathBuf,
    _dir: tempfile::TempDir,
}

impl SignedCert {
    /// A P-256 CA and a leaf for `names` (DNS names or IP addresses), valid
    /// for two days, made with the `openssl` command.
    pub fn for_names(names: &[&str]) -> SignedCert {
        let openssl = require_program("openssl", "Debian package openssl");
        let dir = tempfile::Builder::new()
            .prefix("ptt-ca-")
            .tempdir()
            .expect("temp dir for certificates");
        let run = |args: &[&str]| {
            let out = Command::new(&openssl)
                .current_dir(dir.path())
                .args(args)
                .output()
                .expect("run openssl");
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ];
        run(&[
            &["req", "-x509"][..],
            &ec,
            &[
                "-days",
                "2",
                "-subj",
                "/CN=ptt test CA",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
            ],
        ]
        .concat());
        let cn = format!("/CN={}", names.first().copied().unwrap_or("localhost"));
        run(&[
            &["req"][..],
            &ec,
            &["-subj", &cn, "-keyout", "key.pem", "-out", "req.csr"],
        ]
        .concat());
        let san: Vec<String> = names
            .iter()
            .map(|n| match n.parse::<std::net::IpAddr>() {
                Ok(_) => format!("IP:{n}"),
                Err(_) => format!("DNS:{n}"),
            })
            .collect();
        std::fs::write(
            dir.path().join("ext.cnf"),
            format!(
                "subjectAltName={}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
                san.join(",")
            ),
        )
        .expect("write ext.cnf");
        run(&[
            "x509",
            "-req",
            "-in",
            "req.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
            "-out",
            "cert.pem",
        ]);
        SignedCert {
            ca: dir.path().join("ca.pem"),
            cert: dir.path().join("cert.pem"),
            key: dir.path().join("key.pem"),
            _dir: dir,
        }
    }
}
