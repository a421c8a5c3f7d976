//! DANE for SMTP (RFC 7672): a server certificate checked against the MX
//! host's TLSA records instead of (or beside) the Web PKI. DANE-EE
//! (usage 3) matches the end-entity certificate or its public key and
//! ignores names and dates, as RFC 7672 §3.1.1 says; DANE-TA (usage 2)
//! names a trust anchor the server sends in its chain, from which the
//! certificate must verify for the MX host name (§3.1.2). PKIX usages (0
//! and 1) are unusable for SMTP (§3.1.3).

use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use sha2::Digest as _;
use tokio_rustls::TlsConnector;

/// One TLSA record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Tlsa {
    /// 0–3 (PKIX-TA, PKIX-EE, DANE-TA, DANE-EE).
    pub(crate) usage: u8,
    /// 0 whole certificate, 1 public key.
    pub(crate) selector: u8,
    /// 0 exact, 1 SHA-256, 2 SHA-512.
    pub(crate) matching: u8,
    /// The association data.
    pub(crate) data: Vec<u8>,
}

impl Tlsa {
    /// Whether a client can use it for SMTP (RFC 7672 §3.1.3).
    pub(crate) fn is_usable(&self) -> bool {
        matches!(self.usage, 2 | 3) && self.selector <= 1 && self.matching <= 2
    }

    /// Whether the DER certificate `cert` matches.
    pub(crate) fn matches(&self, cert: &[u8]) -> bool {
        let selected = match self.selector {
            0 => cert.to_vec(),
            1 => match crate::net::acme::spki_of_der(cert) {
                Some(spki) => spki,
                None => return false,
            },
            _ => return false,
        };
        let digest = match self.matching {
            0 => selected,
            1 => sha2::Sha256::digest(&selected).to_vec(),
            2 => sha2::Sha512::digest(&selected).to_vec(),
            _ => return false,
        };
        digest == self.data
    }
}

/// A connector that accepts a server only as its TLSA records say.
pub(crate) fn connector(records: Vec<Tlsa>) -> TlsConnector {
    let provider = crate::net::tls::provider();
    let verifier = DaneVerifier {
        records: records.into_iter().filter(Tlsa::is_usable).collect(),
        provider,
    };
    match crate::net::tls::judged_by(Arc::new(verifier)) {
        Ok(connector) => connector,
        // The default protocol versions are always there with aws-lc-rs.
        Err(e) => unreachable!("{e}"),
    }
}

#[derive(Debug)]
struct DaneVerifier {
    records: Vec<Tlsa>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for DaneVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // DANE-EE: the certificate itself, whatever its names and dates.
        if self
            .records
            .iter()
            .any(|r| r.usage == 3 && r.matches(end_entity.as_ref()))
        {
            return Ok(ServerCertVerified::assertion());
        }
        // DANE-TA: a certificate of the chain is the trust anchor.
        for anchor in intermediates {
            if !self
                .records
                .iter()
                .any(|r| r.usage == 2 && r.matches(anchor.as_ref()))
            {
                continue;
            }
            let mut roots = rustls::RootCertStore::empty();
            if roots.add(anchor.clone()).is_err() {
                continue;
            }
            let Ok(webpki) =
                WebPkiServerVerifier::builder_with_provider(Arc::new(roots), self.provider.clone())
                    .build()
            else {
                continue;
            };
            return webpki.verify_server_cert(
                end_entity,
                intermediates,
                server_name,
                ocsp_response,
                now,
            );
        }
        Err(rustls::Error::General(
            "no TLSA record matches the server's certificate (DANE)".into(),
        ))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        crate::net::tls::handshake_signature(&self.provider, 12, message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        crate::net::tls::handshake_signature(&self.provider, 13, message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_match_by_certificate_or_key() {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["mx.example.net".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let der = cert.der().to_vec();
        let spki = crate::net::acme::spki_of_der(&der).unwrap();
        let r = |usage, selector, matching, data: Vec<u8>| Tlsa {
            usage,
            selector,
            matching,
            data,
        };
        assert!(r(3, 1, 1, sha2::Sha256::digest(&spki).to_vec()).matches(&der));
        assert!(r(3, 0, 1, sha2::Sha256::digest(&der).to_vec()).matches(&der));
        assert!(r(3, 1, 2, sha2::Sha512::digest(&spki).to_vec()).matches(&der));
        assert!(r(3, 0, 0, der.clone()).matches(&der));
        assert!(!r(3, 1, 1, vec![0; 32]).matches(&der));
        assert!(!r(3, 1, 1, sha2::Sha256::digest(&spki).to_vec()).matches(b"not a certificate"));
        assert!(!r(1, 1, 1, vec![]).is_usable());
        assert!(!r(3, 2, 1, vec![]).is_usable());
        assert!(r(2, 0, 1, vec![]).is_usable());
    }
}
