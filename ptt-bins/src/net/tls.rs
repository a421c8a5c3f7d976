//! rustls configurations (aws-lc-rs) for the SMTP servers and clients.

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, aws_lc_rs};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio_rustls::{TlsAcceptor, TlsConnector};

pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(aws_lc_rs::default_provider())
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let pem = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let certs: Vec<_> = rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: bad PEM: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate in the file", path.display()));
    }
    Ok(certs)
}

/// A TLS acceptor from a PEM certificate chain file and a PEM private key
/// file.
pub(crate) fn acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, String> {
    let cert_pem =
        std::fs::read(cert).map_err(|e| format!("cannot read {}: {e}", cert.display()))?;
    let key_pem = std::fs::read(key).map_err(|e| format!("cannot read {}: {e}", key.display()))?;
    acceptor_from_pem(&cert_pem, &key_pem)
        .map_err(|e| format!("{} / {}: {e}", cert.display(), key.display()))
}

/// A TLS acceptor from PEM text (e.g. a certificate issued by the local CA
/// in memory, as `ptt up` does).
pub(crate) fn acceptor_from_pem(cert_pem: &[u8], key_pem: &[u8]) -> Result<TlsAcceptor, String> {
    server_config_from_pem(cert_pem, key_pem).map(TlsAcceptor::from)
}

/// The rustls server configuration of [`acceptor_from_pem`], for a driver
/// that feeds rustls its bytes itself (the smoltcp receiver).
pub(crate) fn server_config_from_pem(
    cert_pem: &[u8],
    key_pem: &[u8],
) -> Result<Arc<rustls::ServerConfig>, String> {
    let certs: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut &cert_pem[..])
        .collect::<Result<_, _>>()
        .map_err(|e| format!("bad certificate PEM: {e}"))?;
    if certs.is_empty() {
        return Err("no certificate in the PEM".into());
    }
    let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut &key_pem[..])
        .map_err(|e| format!("bad key PEM: {e}"))?
        .ok_or_else(|| "no private key in the PEM".to_string())?;
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("TLS certificate and key: {e}"))?;
    Ok(Arc::new(config))
}

/// A TLS connector that trusts the certificates in `ca` (PEM), or, when
/// `ca` is `None`, any certificate (signatures are still checked, the
/// identity is not: SMTP's opportunistic TLS, RFC 7435).
pub(crate) fn connector(ca: Option<&Path>) -> Result<TlsConnector, String> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?;
    let config = match ca {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in read_certs(ca)? {
                roots
                    .add(cert)
                    .map_err(|e| format!("{}: {e}", ca.display()))?;
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        None => return judged_by(Arc::new(AnyCert(provider()))),
    };
    Ok(TlsConnector::from(Arc::new(config)))
}

/// A connector whose server certificates `verifier` judges (opportunistic
/// TLS, DANE), presenting none of its own.
pub(crate) fn judged_by(verifier: Arc<dyn ServerCertVerifier>) -> Result<TlsConnector, String> {
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(config)))
}

/// A connector that verifies server certificates against the system's
/// roots and, when given, the CA certificates of `extra` (a PEM file): how
/// the relay speaks to MX hosts whose policy requires TLS.
pub(crate) fn verified_connector(extra: Option<&Path>) -> Result<TlsConnector, String> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    if let Some(extra) = extra {
        for cert in read_certs(extra)? {
            roots
                .add(cert)
                .map_err(|e| format!("{}: {e}", extra.display()))?;
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(config)))
}

/// Checks a handshake signature (TLS 1.2 or 1.3) with `provider`'s
/// algorithms: what every verifier of ours does whatever it thinks of the
/// certificate.
pub(crate) fn handshake_signature(
    provider: &CryptoProvider,
    version: u8,
    message: &[u8],
    cert: &CertificateDer<'_>,
    dss: &DigitallySignedStruct,
) -> Result<HandshakeSignatureValid, rustls::Error> {
    let algorithms = &provider.signature_verification_algorithms;
    if version == 12 {
        rustls::crypto::verify_tls12_signature(message, cert, dss, algorithms)
    } else {
        rustls::crypto::verify_tls13_signature(message, cert, dss, algorithms)
    }
}

/// Accepts any server certificate, but checks the handshake signature.
#[derive(Debug)]
struct AnyCert(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        handshake_signature(&self.0, 12, message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        handshake_signature(&self.0, 13, message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A service's certificate and key from the private CA, and the CA.
#[derive(Clone)]
pub(crate) struct Identity {
    /// The leaf chain, PEM.
    pub(crate) cert_pem: Vec<u8>,
    /// Its private key, PEM.
    pub(crate) key_pem: Vec<u8>,
    /// The private CA, PEM.
    pub(crate) ca_pem: Vec<u8>,
}

fn certs_of(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Vec<_> = rustls_pemfile::certs(&mut &pem[..])
        .collect::<Result<_, _>>()
        .map_err(|e| format!("bad certificate PEM: {e}"))?;
    if certs.is_empty() {
        return Err("no certificate in the PEM".into());
    }
    Ok(certs)
}

fn key_of(pem: &[u8]) -> Result<PrivateKeyDer<'static>, String> {
    rustls_pemfile::private_key(&mut &pem[..])
        .map_err(|e| format!("bad key PEM: {e}"))?
        .ok_or_else(|| "no private key in the PEM".to_string())
}

impl Identity {
    fn roots(&self) -> Result<Arc<rustls::RootCertStore>, String> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in certs_of(&self.ca_pem)? {
            roots.add(cert).map_err(|e| format!("private CA: {e}"))?;
        }
        Ok(Arc::new(roots))
    }

    /// An acceptor for an internal listener: a client must present a
    /// certificate of the private CA naming one of `clients`
    /// (`submission.ptt.internal` …), or the handshake fails.
    pub(crate) fn internal_acceptor(&self, clients: &[String]) -> Result<TlsAcceptor, String> {
        let inner =
            rustls::server::WebPkiClientVerifier::builder_with_provider(self.roots()?, provider())
                .build()
                .map_err(|e| format!("client verifier: {e}"))?;
        let verifier = Arc::new(NamedClients {
            inner,
            names: clients.to_vec(),
        });
        let config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS: {e}"))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(certs_of(&self.cert_pem)?, key_of(&self.key_pem)?)
            .map_err(|e| format!("TLS certificate and key: {e}"))?;
        Ok(TlsAcceptor::from(Arc::new(config)))
    }

    /// An acceptor for a public listener with this identity's certificate
    /// (no client certificate asked).
    pub(crate) fn public_acceptor(&self) -> Result<TlsAcceptor, String> {
        acceptor_from_pem(&self.cert_pem, &self.key_pem)
    }

    /// A connector that presents this identity and trusts only the
    /// private CA (the server's name is checked by the caller's
    /// `ServerName`, e.g. `signer.ptt.internal`).
    pub(crate) fn internal_connector(&self) -> Result<TlsConnector, String> {
        let config = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS: {e}"))?
            .with_root_certificates(self.roots()?)
            .with_client_auth_cert(certs_of(&self.cert_pem)?, key_of(&self.key_pem)?)
            .map_err(|e| format!("TLS client certificate: {e}"))?;
        Ok(TlsConnector::from(Arc::new(config)))
    }

    /// A connector that trusts only the private CA, without presenting a
    /// certificate (the relay dialling the receiver, as any MTA would).
    pub(crate) fn ca_connector(&self) -> Result<TlsConnector, String> {
        let config = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS: {e}"))?
            .with_root_certificates(self.roots()?)
            .with_no_client_auth();
        Ok(TlsConnector::from(Arc::new(config)))
    }
}

/// Which of ptt's services a certificate (already verified against the
/// private CA) names.
pub(crate) fn service_of(der: &[u8]) -> Option<crate::config::ServiceName> {
    let der = CertificateDer::from(der);
    let cert = webpki::EndEntityCert::try_from(&der).ok()?;
    crate::config::ServiceName::ALL.into_iter().find(|s| {
        ServerName::try_from(s.internal_name())
            .is_ok_and(|n| cert.verify_is_valid_for_subject_name(&n).is_ok())
    })
}

/// The private CA's verifier, plus: the certificate must name one of the
/// allowed services.
#[derive(Debug)]
struct NamedClients {
    inner: Arc<dyn rustls::server::danger::ClientCertVerifier>,
    names: Vec<String>,
}

impl rustls::server::danger::ClientCertVerifier for NamedClients {
    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<rustls::server::danger::ClientCertVerified, rustls::Error> {
        let verified = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        let cert = webpki::EndEntityCert::try_from(end_entity).map_err(|_| {
            rustls::Error::InvalidCertificate(rustls::CertificateError::BadEncoding)
        })?;
        let allowed = self.names.iter().any(|name| {
            ServerName::try_from(name.as_str())
                .is_ok_and(|n| cert.verify_is_valid_for_subject_name(&n).is_ok())
        });
        if allowed {
            Ok(verified)
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
