//! The private certificate authority ptt's services use between themselves.
//!
//! Services talk SMTP to each other over TLS with certificates from a CA that
//! ptt generates (DESIGN.md): the CA signs one leaf per service name, and each
//! client trusts only that CA. `ptt up` makes a fresh one per run.

use std::path::Path;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};

use crate::config::{Config, ServiceName};
use crate::net::tls::Identity;
use crate::store::write_private;

/// A private CA able to issue service certificates.
pub(crate) struct LocalCa {
    issuer: Issuer<'static, KeyPair>,
    cert_pem: String,
}

/// A certificate and its private key, both PEM.
pub(crate) struct IssuedCert {
    /// The leaf certificate (PEM).
    pub(crate) cert_pem: String,
    /// Its PKCS#8 private key (PEM).
    pub(crate) key_pem: String,
}

impl LocalCa {
    /// Generates a CA (ECDSA P-256) named after `domain`.
    pub(crate) fn generate(domain: &str) -> Result<LocalCa, rcgen::Error> {
        let key = KeyPair::generate()?;
        let params = ca_params(domain);
        let cert = params.self_signed(&key)?;
        Ok(LocalCa {
            cert_pem: cert.pem(),
            issuer: Issuer::new(params, key),
        })
    }

    /// The CA kept in `dir` (`ca.pem`, `ca-key.pem` mode 0600), made there
    /// first if there is none. Services started at the same moment agree
    /// on one CA: a new one is written in a folder of its own and renamed
    /// to `dir` in one step, and whoever loses that race reads the winner's.
    pub(crate) fn load_or_create(dir: &Path, domain: &str) -> Result<LocalCa, String> {
        if !dir.join("ca.pem").exists() {
            let ca =
                LocalCa::generate(domain).map_err(|e| format!("making the private CA: {e}"))?;
            let parent = dir.parent().unwrap_or(Path::new("."));
            std::fs::create_dir_all(parent)
                .map_err(|e| format!("creating {}: {e}", parent.display()))?;
            let mut nonce = [0u8; 8];
            let _ = crate::random::fill(&mut nonce);
            let nonce: String = nonce.iter().map(|b| format!("{b:02x}")).collect();
            let tmp = parent.join(format!(".ca.{}.{nonce}.tmp", std::process::id()));
            let _ = std::fs::remove_dir_all(&tmp);
            std::fs::create_dir(&tmp).map_err(|e| format!("creating {}: {e}", tmp.display()))?;
            write_private(
                &tmp.join("ca-key.pem"),
                ca.issuer.key().serialize_pem().as_bytes(),
            )
            .map_err(|e| format!("writing the CA key: {e}"))?;
            write_private(&tmp.join("ca.pem"), ca.cert_pem.as_bytes())
                .map_err(|e| format!("writing the CA: {e}"))?;
            // rename(2) of a folder onto a missing or empty one is atomic;
            // onto a full one it fails, and the CA there wins.
            let won = std::fs::rename(&tmp, dir).is_ok();
            let _ = std::fs::remove_dir_all(&tmp);
            if won {
                return Ok(ca);
            }
        }
        let (cert_path, key_path) = (dir.join("ca.pem"), dir.join("ca-key.pem"));
        let cert_pem = std::fs::read_to_string(&cert_path)
            .map_err(|e| format!("reading {}: {e}", cert_path.display()))?;
        let key_pem = std::fs::read_to_string(&key_path)
            .map_err(|e| format!("reading {}: {e}", key_path.display()))?;
        let key =
            KeyPair::from_pem(&key_pem).map_err(|e| format!("{}: {e}", key_path.display()))?;
        // The issuer needs only the CA's name and key: the same name and
        // key sign certificates that chain to the stored one.
        Ok(LocalCa {
            cert_pem,
            issuer: Issuer::new(ca_params(domain), key),
        })
    }

    /// The CA certificate clients should trust (PEM).
    #[cfg(test)]
    pub(crate) fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// Issues a server certificate for `names` (DNS names or IP addresses).
    pub(crate) fn issue(&self, names: &[&str]) -> Result<IssuedCert, rcgen::Error> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        params.subject_alt_names = names
            .iter()
            .map(|name| match name.parse::<std::net::IpAddr>() {
                Ok(ip) => Ok(SanType::IpAddress(ip)),
                Err(_) => Ok(SanType::DnsName((*name).try_into()?)),
            })
            .collect::<Result<_, rcgen::Error>>()?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, names.first().copied().unwrap_or("ptt"));
        params.distinguished_name = dn;
        // Services are servers to some and clients to others.
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(IssuedCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

fn ca_params(domain: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, format!("ptt private CA for {domain}"));
    params.distinguished_name = dn;
    params
}

/// The identity of `service`: its certificate from the private CA, kept
/// in `state/<service>/tls/` (the key mode 0600). Made on first use,
/// naming the service (`signer.ptt.internal`), the host name, `localhost`
/// and 127.0.0.1, so that one certificate serves its internal and public
/// listeners.
pub(crate) fn identity(config: &Config, service: ServiceName) -> Result<Identity, String> {
    let ca_dir = config.state.join("ca");
    let dir = config.state_of(service).join("tls");
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    let read = |p: &Path| std::fs::read(p).map_err(|e| format!("reading {}: {e}", p.display()));
    if !cert_path.exists() || !key_path.exists() {
        let ca = LocalCa::load_or_create(&ca_dir, &config.domain)?;
        let internal = service.internal_name();
        let leaf = ca
            .issue(&[&internal, &config.hostname, "localhost", "127.0.0.1", "::1"])
            .map_err(|e| format!("issuing the {service} certificate: {e}"))?;
        std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        write_private(&key_path, leaf.key_pem.as_bytes())
            .map_err(|e| format!("writing {}: {e}", key_path.display()))?;
        write_private(&cert_path, leaf.cert_pem.as_bytes())
            .map_err(|e| format!("writing {}: {e}", cert_path.display()))?;
    }
    Ok(Identity {
        cert_pem: read(&cert_path)?,
        key_pem: read(&key_path)?,
        ca_pem: read(&ca_dir.join("ca.pem"))?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn services_starting_together_agree_on_one_ca() {
        let dir = tempfile::tempdir().unwrap();
        let ca_dir = dir.path().join("ca");
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let ca_dir = ca_dir.clone();
                std::thread::spawn(move || {
                    let ca = LocalCa::load_or_create(&ca_dir, "example.test").unwrap();
                    let leaf = ca.issue(&["x.ptt.internal"]).unwrap();
                    (ca.cert_pem.clone(), leaf.cert_pem)
                })
            })
            .collect();
        let results: Vec<(String, String)> =
            threads.into_iter().map(|t| t.join().unwrap()).collect();
        let stored = std::fs::read_to_string(ca_dir.join("ca.pem")).unwrap();
        for (i, (ca, leaf)) in results.iter().enumerate() {
            assert_eq!(ca, &stored, "thread {i} uses another CA");
            std::fs::write(dir.path().join("leaf.pem"), leaf).unwrap();
            let out = std::process::Command::new("openssl")
                .arg("verify")
                .arg("-CAfile")
                .arg(ca_dir.join("ca.pem"))
                .arg(dir.path().join("leaf.pem"))
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "thread {i}: {}",
                String::from_utf8_lossy(&out.stdout)
            );
        }
    }

    #[test]
    fn issued_certificate_chains_to_the_ca() {
        let ca = LocalCa::generate("example.test").unwrap();
        let leaf = ca.issue(&["localhost", "127.0.0.1"]).unwrap();
        assert!(ca.cert_pem().starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(leaf.cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(leaf.key_pem.contains("PRIVATE KEY"));
        // Checked with an independent implementation: openssl verify.
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca.cert_pem()).unwrap();
        std::fs::write(dir.path().join("leaf.pem"), &leaf.cert_pem).unwrap();
        let out = std::process::Command::new("openssl")
            .arg("verify")
            .arg("-CAfile")
            .arg(dir.path().join("ca.pem"))
            .arg(dir.path().join("leaf.pem"))
            .output()
            .expect("run openssl verify");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
        let other = LocalCa::generate("other.test").unwrap();
        std::fs::write(dir.path().join("other.pem"), other.cert_pem()).unwrap();
        let out = std::process::Command::new("openssl")
            .arg("verify")
            .arg("-CAfile")
            .arg(dir.path().join("other.pem"))
            .arg(dir.path().join("leaf.pem"))
            .output()
            .expect("run openssl verify");
        assert!(
            !out.status.success(),
            "a foreign CA must not verify the leaf"
        );
    }
}
