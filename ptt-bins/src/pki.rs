//! The private certificate authority ptt's services use between themselves.
//!
//! Services talk SMTP to each other over TLS with certificates from a CA that
//! ptt generates (DESIGN.md): the CA signs one leaf per service name, and each
//! client trusts only that CA. `ptt up` makes a fresh one per run.

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};

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
        let mut params = CertificateParams::default();
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, format!("ptt private CA for {domain}"));
        params.distinguished_name = dn;
        let cert = params.self_signed(&key)?;
        Ok(LocalCa {
            cert_pem: cert.pem(),
            issuer: Issuer::new(params, key),
        })
    }

    /// The CA certificate clients should trust (PEM).
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
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(IssuedCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
