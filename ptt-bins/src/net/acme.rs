//! Certificates that set themselves up: ACME (RFC 8555) with the DNS-01
//! challenge, answered through the domain's primary server by the same
//! RFC 2136 UPDATE with TSIG the signer uses, so no web server is needed.
//!
//! - [`LiveCert`] is what a public listener presents: rustls asks it on
//!   every handshake, and [`LiveCert::set`] swaps the certificate without a
//!   restart.
//! - [`Acme::obtain`] runs one order for the host name: the account (kept
//!   in `state/<service>/acme/account.json`), the challenge record
//!   `_acme-challenge.HOST` published and removed afterwards, the key and
//!   chain written to `cert.pem` and `key.pem` (0600) there.
//! - [`manage`] keeps a service's certificate: at start, then whenever
//!   two thirds of its life are over (or the files change, e.g. after
//!   `ptt acme renew`), with backoff on failure; the listener keeps the
//!   certificate it has meanwhile.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use instant_acme::{
    Account, AccountCredentials, ChallengeType, Identifier, NewAccount, NewOrder, OrderStatus,
    RetryPolicy,
};
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio_rustls::TlsAcceptor;

use crate::config::{AcmeConfig, Config, ServiceName};
use crate::dns::{TsigKey, Updater, fqdn};
use crate::store::{write_atomic, write_private};

/// The certificate a public listener presents, swappable while it runs.
#[derive(Debug)]
pub(crate) struct LiveCert {
    current: RwLock<Arc<CertifiedKey>>,
    provider: Arc<CryptoProvider>,
}

fn certified(
    cert_pem: &[u8],
    key_pem: &[u8],
    provider: &CryptoProvider,
) -> Result<CertifiedKey, String> {
    let certs: Vec<_> = rustls_pemfile::certs(&mut &cert_pem[..])
        .collect::<Result<_, _>>()
        .map_err(|e| format!("bad certificate PEM: {e}"))?;
    if certs.is_empty() {
        return Err("no certificate in the PEM".into());
    }
    let key = rustls_pemfile::private_key(&mut &key_pem[..])
        .map_err(|e| format!("bad key PEM: {e}"))?
        .ok_or("no private key in the PEM")?;
    CertifiedKey::from_der(certs, key, provider).map_err(|e| format!("certificate and key: {e}"))
}

impl LiveCert {
    /// Starts with this certificate and key.
    pub(crate) fn new(cert_pem: &[u8], key_pem: &[u8]) -> Result<LiveCert, String> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let first = certified(cert_pem, key_pem, &provider)?;
        Ok(LiveCert {
            current: RwLock::new(Arc::new(first)),
            provider,
        })
    }

    /// Presents this certificate from the next handshake on.
    pub(crate) fn set(&self, cert_pem: &[u8], key_pem: &[u8]) -> Result<(), String> {
        let next = Arc::new(certified(cert_pem, key_pem, &self.provider)?);
        if let Ok(mut current) = self.current.write() {
            *current = next;
        }
        Ok(())
    }

    /// A TLS acceptor presenting whatever this holds at each handshake.
    pub(crate) fn acceptor(self: &Arc<Self>) -> Result<TlsAcceptor, String> {
        let config = rustls::ServerConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS: {e}"))?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        Ok(TlsAcceptor::from(Arc::new(config)))
    }
}

impl ResolvesServerCert for LiveCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current.read().ok().map(|c| c.clone())
    }
}

/// One service's ACME client.
pub(crate) struct Acme {
    config: AcmeConfig,
    hostname: String,
    dir: PathBuf,
    updater: Updater,
}

impl Acme {
    /// The client of `[tls] acme` for `service`, or `None` without one.
    pub(crate) fn new(config: &Config, service: ServiceName) -> Result<Option<Acme>, String> {
        let Some(acme) = &config.tls.acme else {
            return Ok(None);
        };
        let (Some(primary), Some(key_file)) = (config.dns.primary, &config.dns.tsig_key) else {
            return Err(
                "[tls] acme answers DNS-01 through [dns] primary with tsig_key: set both".into(),
            );
        };
        let key = TsigKey::from_bind_file(key_file)?;
        Ok(Some(Acme {
            config: acme.clone(),
            hostname: config.hostname.clone(),
            dir: config.state_of(service).join("acme"),
            updater: Updater::connect(primary, &key)?,
        }))
    }

    fn cert_path(&self) -> PathBuf {
        self.dir.join("cert.pem")
    }

    fn key_path(&self) -> PathBuf {
        self.dir.join("key.pem")
    }

    /// The certificate and key obtained before, if any.
    pub(crate) fn stored(&self) -> Option<(Vec<u8>, Vec<u8>)> {
        Some((
            std::fs::read(self.cert_path()).ok()?,
            std::fs::read(self.key_path()).ok()?,
        ))
    }

    async fn account(&self) -> Result<Account, String> {
        let path = self.dir.join("account.json");
        let builder = || match &self.config.ca {
            Some(ca) => Account::builder_with_root(ca),
            None => Account::builder(),
        };
        if let Ok(text) = std::fs::read_to_string(&path) {
            let credentials: AccountCredentials =
                serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
            return builder()
                .map_err(|e| format!("ACME client: {e}"))?
                .from_credentials(credentials)
                .await
                .map_err(|e| format!("ACME account: {e}"));
        }
        let contact: Vec<&str> = self.config.contact.iter().map(String::as_str).collect();
        let (account, credentials) = builder()
            .map_err(|e| format!("ACME client: {e}"))?
            .create(
                &NewAccount {
                    contact: &contact,
                    terms_of_service_agreed: true,
                    only_return_existing: false,
                },
                self.config.directory.clone(),
                None,
            )
            .await
            .map_err(|e| format!("ACME account at {}: {e}", self.config.directory))?;
        let text = serde_json::to_string(&credentials).map_err(|e| e.to_string())?;
        write_private(&path, text.as_bytes())
            .map_err(|e| format!("writing {}: {e}", path.display()))?;
        Ok(account)
    }

    /// One order for the host name, answered by DNS-01; writes and returns
    /// the chain and key (PEM).
    pub(crate) async fn obtain(&self) -> Result<(Vec<u8>, Vec<u8>), String> {
        std::fs::create_dir_all(&self.dir)
            .map_err(|e| format!("creating {}: {e}", self.dir.display()))?;
        let account = self.account().await?;
        let identifiers = [Identifier::Dns(self.hostname.clone())];
        let mut order = account
            .new_order(&NewOrder::new(&identifiers))
            .await
            .map_err(|e| format!("ACME order for {}: {e}", self.hostname))?;
        let mut published = Vec::new();
        let outcome = self.answer(&mut order, &mut published).await;
        // The challenge records go, whatever happened.
        for (zone, name, value) in &published {
            match self
                .updater
                .remove_txt(zone, name, |t| t == value.as_bytes())
                .await
            {
                Ok(_) => tracing::info!(record = %name, "ACME challenge record removed"),
                Err(e) => tracing::warn!(record = %name, "removing the ACME challenge record: {e}"),
            }
        }
        outcome?;
        let key_pem = order
            .finalize()
            .await
            .map_err(|e| format!("ACME finalize: {e}"))?;
        let chain = order
            .poll_certificate(&RetryPolicy::new().timeout(Duration::from_secs(120)))
            .await
            .map_err(|e| format!("ACME certificate: {e}"))?;
        // Key and chain must always match: both written under temporary
        // names, then renamed (the key first; a crash in between leaves a
        // pair that does not match, which the service replaces by a new
        // order instead of refusing to start).
        let (key_tmp, cert_tmp) = (
            self.dir.join(".key.pem.new"),
            self.dir.join(".cert.pem.new"),
        );
        write_private(&key_tmp, key_pem.as_bytes())
            .map_err(|e| format!("writing {}: {e}", key_tmp.display()))?;
        write_atomic(&cert_tmp, chain.as_bytes())
            .map_err(|e| format!("writing {}: {e}", cert_tmp.display()))?;
        std::fs::rename(&key_tmp, self.key_path()).map_err(|e| format!("renaming the key: {e}"))?;
        std::fs::rename(&cert_tmp, self.cert_path())
            .map_err(|e| format!("renaming the certificate: {e}"))?;
        tracing::info!(
            host = self.hostname,
            directory = self.config.directory,
            "ACME certificate obtained"
        );
        Ok((chain.into_bytes(), key_pem.into_bytes()))
    }

    /// Publishes each authorization's DNS-01 record, tells the server, and
    /// waits for the order to be ready.
    async fn answer(
        &self,
        order: &mut instant_acme::Order,
        published: &mut Vec<(hickory_proto::rr::Name, hickory_proto::rr::Name, String)>,
    ) -> Result<(), String> {
        let mut authorizations = order.authorizations();
        while let Some(authz) = authorizations.next().await {
            let mut authz = authz.map_err(|e| format!("ACME authorization: {e}"))?;
            if authz.status == instant_acme::AuthorizationStatus::Valid {
                continue;
            }
            let mut challenge = authz
                .challenge(ChallengeType::Dns01)
                .ok_or("the ACME server offers no dns-01 challenge")?;
            let host = challenge.identifier().to_string();
            let value = challenge.key_authorization().dns_value();
            let name = fqdn(&format!("_acme-challenge.{host}"))?;
            let zone = self.updater.zone_of(&name).await?;
            // Noted before it is sent, so that it is removed whatever
            // happens next; only our value is added or removed, so another
            // client's order for the same name (the other service, certbot)
            // keeps its own.
            published.push((zone.clone(), name.clone(), value.clone()));
            let mine = value.clone();
            self.updater
                .ensure_txt(&zone, &name, move |t| t == mine.as_bytes(), &value, 60)
                .await?;
            tracing::info!(record = %name, "ACME challenge record published");
            challenge
                .set_ready()
                .await
                .map_err(|e| format!("ACME challenge: {e}"))?;
        }
        let status = order
            .poll_ready(&RetryPolicy::new().timeout(Duration::from_secs(120)))
            .await
            .map_err(|e| format!("ACME order: {e}"))?;
        if status != OrderStatus::Ready {
            return Err(format!("the ACME order is {status:?}, not ready"));
        }
        Ok(())
    }
}

/// Whether two thirds of the life of the first certificate in `pem` are
/// over at `now` (or it cannot be read: then it is renewed).
pub(crate) fn renewal_due(pem: &[u8], now: SystemTime) -> bool {
    let Some((not_before, not_after)) = validity(pem) else {
        return true;
    };
    let now = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let life = (not_after - not_before).max(1);
    now >= not_before + life * 2 / 3
}

/// notBefore and notAfter (Unix seconds) of the first certificate in `pem`.
fn validity(pem: &[u8]) -> Option<(i64, i64)> {
    let der = rustls_pemfile::certs(&mut &pem[..]).next()?.ok()?;
    let (cert, _) = der_item(der.as_ref(), 0x30)?;
    let (tbs, _) = der_item(cert, 0x30)?;
    let mut rest = tbs;
    if rest.first() == Some(&0xa0) {
        rest = der_skip(rest)?; // version
    }
    rest = der_skip(rest)?; // serial
    rest = der_skip(rest)?; // signature algorithm
    rest = der_skip(rest)?; // issuer
    let (validity, _) = der_item(rest, 0x30)?;
    let (first, after_first) = der_time(validity)?;
    let (second, _) = der_time(after_first)?;
    Some((first, second))
}

/// The subjectPublicKeyInfo (whole DER item) of the first certificate in
/// `pem`: what a TLSA record with selector 1 hashes.
pub(crate) fn spki(pem: &[u8]) -> Option<Vec<u8>> {
    let der = rustls_pemfile::certs(&mut &pem[..]).next()?.ok()?;
    spki_of_der(der.as_ref())
}

/// The subjectPublicKeyInfo (whole DER item) of a DER certificate.
pub(crate) fn spki_of_der(der: &[u8]) -> Option<Vec<u8>> {
    let (cert, _) = der_item(der, 0x30)?;
    let (tbs, _) = der_item(cert, 0x30)?;
    let mut rest = tbs;
    if rest.first() == Some(&0xa0) {
        rest = der_skip(rest)?; // version
    }
    // serial, signature algorithm, issuer, validity, subject
    for _ in 0..5 {
        rest = der_skip(rest)?;
    }
    let after = der_skip(rest)?;
    Some(rest[..rest.len() - after.len()].to_vec())
}

/// The content of the DER item at the start of `data` if its tag is
/// `tag`, and what follows it.
fn der_item(data: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    if *data.first()? != tag {
        return None;
    }
    let (len, header): (usize, usize) = match *data.get(1)? {
        l if l < 0x80 => (l as usize, 2),
        0x81 => (*data.get(2)? as usize, 3),
        0x82 => ((*data.get(2)? as usize) << 8 | *data.get(3)? as usize, 4),
        0x83 => (
            (*data.get(2)? as usize) << 16 | (*data.get(3)? as usize) << 8 | *data.get(4)? as usize,
            5,
        ),
        _ => return None,
    };
    let body = data.get(header..header.checked_add(len)?)?;
    Some((body, &data[header + len..]))
}

fn der_skip(data: &[u8]) -> Option<&[u8]> {
    let tag = *data.first()?;
    der_item(data, tag).map(|(_, rest)| rest)
}

/// A UTCTime or GeneralizedTime at the start of `data`, in Unix seconds.
fn der_time(data: &[u8]) -> Option<(i64, &[u8])> {
    let tag = *data.first()?;
    let (body, rest) = der_item(data, tag)?;
    let text = std::str::from_utf8(body).ok()?;
    let digits = text.strip_suffix('Z')?;
    let (year, rest_digits) = match tag {
        0x17 => {
            let yy: i64 = digits.get(..2)?.parse().ok()?;
            (
                if yy >= 50 { 1900 + yy } else { 2000 + yy },
                digits.get(2..)?,
            )
        }
        0x18 => (digits.get(..4)?.parse().ok()?, digits.get(4..)?),
        _ => return None,
    };
    let n = |i: usize| -> Option<i64> { rest_digits.get(i..i + 2)?.parse().ok() };
    let (month, day, hour, minute, second) = (n(0)?, n(2)?, n(4)?, n(6)?, n(8)?);
    // Days from civil (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some((days * 86_400 + hour * 3600 + minute * 60 + second, rest))
}

/// Keeps `live` presenting a current certificate from `acme`: checks every
/// few seconds whether the files changed (`ptt acme renew`) or renewal is
/// due, and obtains one when needed, with backoff after failures.
pub(crate) async fn manage(acme: Acme, live: Arc<LiveCert>) {
    let mut loaded: Option<Vec<u8>> = None;
    let mut backoff = Duration::from_secs(5);
    let mut next_try = tokio::time::Instant::now();
    loop {
        if let Some((cert, key)) = acme.stored()
            && loaded.as_ref() != Some(&cert)
        {
            match live.set(&cert, &key) {
                Ok(()) => {
                    tracing::info!(host = acme.hostname, "presenting the ACME certificate");
                    loaded = Some(cert);
                }
                Err(e) => tracing::warn!(host = acme.hostname, "the stored ACME certificate: {e}"),
            }
        }
        let due = loaded
            .as_ref()
            .is_none_or(|cert| renewal_due(cert, SystemTime::now()));
        if due && tokio::time::Instant::now() >= next_try {
            match acme.obtain().await {
                Ok(_) => {
                    backoff = Duration::from_secs(5);
                    // Never two orders in a row, whatever the new one says.
                    next_try = tokio::time::Instant::now() + Duration::from_secs(3600);
                }
                Err(e) => {
                    tracing::warn!(
                        host = acme.hostname,
                        retry_in_s = backoff.as_secs(),
                        "ACME: {e}"
                    );
                    next_try = tokio::time::Instant::now() + backoff;
                    backoff = (backoff * 2).min(Duration::from_secs(3600));
                }
            }
            continue;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validity_is_read_from_the_certificate() {
        let ca = crate::net::pki::LocalCa::generate("example.test").unwrap();
        let leaf = ca.issue(&["mx.example.test"]).unwrap();
        let (from, to) = validity(leaf.cert_pem.as_bytes()).unwrap();
        // rcgen's defaults: 1975-01-01 to 4096-01-01.
        assert_eq!(from, 157_766_400);
        assert_eq!(to, 67_090_118_400);
        assert!(!renewal_due(leaf.cert_pem.as_bytes(), SystemTime::now()));
        assert!(renewal_due(b"not a certificate", SystemTime::now()));
        // The SPKI as openssl sees it.
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("c.pem"), &leaf.cert_pem).unwrap();
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!(
                "openssl x509 -in {} -noout -pubkey | openssl pkey -pubin -outform DER | od -An -tx1 | tr -d ' \\n'",
                dir.path().join("c.pem").display()
            ))
            .output()
            .unwrap();
        let hex: String = spki(leaf.cert_pem.as_bytes())
            .unwrap()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), hex);
    }
}
