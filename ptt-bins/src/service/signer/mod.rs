//! The signer: the only holder of the private keys. It accepts mail only
//! from ptt's own services (a client certificate of the private CA naming
//! submission, the receiver, the list server or the relay, checked during
//! the handshake), signs every message of its domain with two DKIM
//! signatures (Ed25519 and RSA-2048, RFC 8463 §4, relaxed/relaxed, `t=`
//! stamped), and hands it to the relay; the `250` to its client comes only
//! once the relay has it. A message whose `From:` domain it has no key for
//! is refused (`550 5.7.1`), never passed on unsigned.
//!
//! Keys are PEM files in `state/signer/keys/` (mode 0600), made at first
//! start, with their life in `keys.toml` ([`keys`]); no other service's
//! configuration names them. With `[dns] primary` and `tsig_key`, the
//! signer publishes each selector's record itself and signs with a key only
//! once the primary serves its record ([`publish`]).

use std::net::IpAddr;
use std::sync::{Arc, RwLock};

use ptt_dkim::{Signer, SignerConfig, SigningKey};
use ptt_smtp::server::{Event, Server};
use ptt_smtp::{EnhancedCode, Reply};

use self::keys::{KeyState, KeyStore};
use super::Running;
use super::hop::{Handoff, Hop};
use super::listener::Listener;
use super::trace::{received_field, unix_now};
use super::transaction::Transaction;
use crate::config::{Config, ServiceName};
use crate::net::smtp::{Answer, SessionHandler};
use crate::store::spool::new_id;

pub(crate) mod keys;
pub(crate) mod publish;

/// One DKIM key the signer signs with.
pub(crate) struct DkimKey {
    /// Its selector.
    pub(crate) selector: String,
    /// Its algorithm.
    pub(crate) algorithm: keys::Algorithm,
    /// The key.
    pub(crate) key: SigningKey,
}

impl DkimKey {
    /// The TXT record to publish at `SELECTOR._domainkey.DOMAIN`.
    pub(crate) fn record(&self) -> String {
        self.key.key_record().to_string()
    }
}

/// The signer's key store, `state/signer/keys/`.
pub(crate) fn store(config: &Config) -> Result<KeyStore, String> {
    KeyStore::open(&config.state_of(ServiceName::Signer).join("keys"))
}

/// The active keys (made at first start: the configured selector's two),
/// for `ptt up`'s records and the signer's start.
pub(crate) fn active_keys(config: &Config) -> Result<Vec<DkimKey>, String> {
    let prefix = config
        .signer
        .as_ref()
        .map_or("ptt", |s| s.selector.as_str());
    let store = store(config)?;
    store.ensure_initial(prefix, unix_now())?;
    store
        .read()?
        .keys
        .iter()
        .filter(|k| k.state == KeyState::Active)
        .map(|k| {
            Ok(DkimKey {
                selector: k.selector.clone(),
                algorithm: k.algorithm,
                key: store.key(&k.selector)?,
            })
        })
        .collect()
}

pub(crate) struct Shared {
    domain: String,
    hostname: String,
    /// For the ARC chains of forwarded mail.
    resolver: crate::dns::Resolver,
    /// The keys signing now: active, and (with a primary) seen published.
    signing: RwLock<Arc<Vec<DkimKey>>>,
    relay: Hop,
}

fn reply(code: u16, class: u8, subject: u16, detail: u16, text: &str) -> Reply {
    Reply::new(code, Some(EnhancedCode::new(class, subject, detail)), text)
}

/// Starts `[signer]`.
pub(crate) async fn start(config: &Config) -> Result<Running, String> {
    let (Some(section), Some(relay)) = (&config.signer, &config.relay) else {
        return Err("[signer] needs [signer] and [relay] sections".into());
    };
    let identity = crate::net::pki::identity(config, ServiceName::Signer)?;
    let clients: Vec<String> = [
        ServiceName::Submission,
        ServiceName::Receiver,
        ServiceName::Lists,
        ServiceName::Relay,
    ]
    .iter()
    .map(|s| s.internal_name())
    .collect();
    let acceptor = identity.internal_acceptor(&clients)?;
    let keys = active_keys(config)?;
    let publisher = publish::Publisher::new(config)?;
    // Without a primary the operator publishes the records: sign at once.
    // With one, a key signs only once its record is seen at the primary.
    let signing = if publisher.is_some() {
        Vec::new()
    } else {
        keys
    };
    let shared = Arc::new(Shared {
        domain: config.domain.clone(),
        hostname: config.hostname.clone(),
        resolver: crate::dns::Resolver::for_config(config)?,
        signing: RwLock::new(Arc::new(signing)),
        relay: Hop::internal(
            &identity,
            relay.address,
            ServiceName::Relay,
            &config.hostname,
        )?,
    });
    let maintenance = tokio::spawn(publish::maintain(
        shared.clone(),
        store(config)?,
        publisher,
        config.domain.clone(),
        section.record_ttl,
    ));
    let spec = super::internal_spec(config, ServiceName::Signer, acceptor);
    let listeners = Listener::spawn_all(&section.listen, &spec, move |peer| {
        Session::new(shared.clone(), peer.ip())
    })?;
    Ok(Running {
        name: ServiceName::Signer,
        listeners,
        tasks: vec![maintenance],
    })
}

struct Session {
    shared: Arc<Shared>,
    peer: IpAddr,
    /// Which service the client is (from its certificate).
    client: Option<ServiceName>,
    helo: String,
    tx: Transaction,
}

impl Session {
    fn new(shared: Arc<Shared>, peer: IpAddr) -> Session {
        Session {
            shared,
            peer,
            client: None,
            helo: String::new(),
            tx: Transaction::default(),
        }
    }

    /// The DKIM-Signature fields for `message`, one per key.
    fn sign(&self, message: &[u8]) -> Result<String, Reply> {
        let now = unix_now();
        let mut fields = String::new();
        let keys = self
            .shared
            .signing
            .read()
            .map(|k| k.clone())
            .unwrap_or_default();
        if keys.is_empty() {
            return Err(reply(
                451,
                4,
                7,
                5,
                "no DKIM key is published yet; try again later",
            ));
        }
        for key in keys.iter() {
            let config = SignerConfig::new(&self.shared.domain, &key.selector);
            let mut signer = Signer::new(&key.key, &config)
                .map_err(|e| reply(451, 4, 3, 0, &format!("cannot sign: {e}")))?
                .at(Some(now), None);
            signer.update(message);
            let field = signer
                .finish()
                .map_err(|e| reply(554, 5, 6, 0, &format!("cannot sign this message: {e}")))?;
            fields.push_str(&field);
        }
        Ok(fields)
    }

    /// Mail the receiver forwards or the list server posts: an ARC set
    /// (RFC 8617) over the chain as it validates now, with our
    /// Authentication-Results, sealed with the active RSA key.
    async fn arc_seal(&self, message: Vec<u8>) -> Result<Vec<u8>, Reply> {
        let shared = &self.shared;
        let keys = shared.signing.read().map(|k| k.clone()).unwrap_or_default();
        let Some(key) = keys.iter().find(|k| k.algorithm == keys::Algorithm::Rsa) else {
            return Err(reply(
                451,
                4,
                7,
                5,
                "no ARC key is published yet; try again later",
            ));
        };
        let verdict = crate::dns::evaluate::arc(&shared.resolver, &message).await;
        metrics::counter!(
            super::metrics::AUTH_RESULTS,
            "method" => "arc",
            "result" => verdict.status.to_string()
        )
        .increment(1);
        let stamped = ptt_arc::seal::stamp(&message, &shared.hostname, &verdict);
        let sealer =
            ptt_arc::seal::Sealer::new(&key.key, &shared.domain, &key.selector, &shared.hostname)
                .map_err(|e| reply(451, 4, 3, 0, &format!("cannot seal: {e}")))?;
        match sealer.seal(&stamped, &verdict, unix_now()) {
            Ok(ptt_arc::seal::SealOutcome::Sealed(set)) => Ok(set.prepend_to(&stamped)),
            // RFC 8617 §5.1: a failed chain gets no new set (nor does an
            // outcome a later ptt-arc adds).
            Ok(_) => Ok(stamped),
            Err(e) => Err(reply(
                554,
                5,
                6,
                0,
                &format!("cannot seal this message: {e}"),
            )),
        }
    }

    async fn end_of_data(&mut self) -> Answer {
        let Transaction {
            from,
            rcpts,
            dsn,
            data: message,
        } = self.tx.take();
        let id = new_id();
        let forwarded = matches!(
            self.client,
            Some(ServiceName::Receiver | ServiceName::Lists)
        );
        let message = if forwarded {
            // Someone else's From: sealed and signed as our domain's hop.
            match self.arc_seal(message).await {
                Ok(sealed) => sealed,
                Err(r) => return Answer::Refuse(r),
            }
        } else {
            let domain = match crate::authn::from_domain(&message) {
                Ok(d) => d,
                Err(why) => {
                    return Answer::Refuse(reply(550, 5, 7, 1, &format!("cannot sign: {why}")));
                }
            };
            if !domain.eq_ignore_ascii_case(&self.shared.domain) {
                tracing::info!(
                    service = "signer",
                    id,
                    from_domain = domain,
                    "refused: no key for the From domain"
                );
                return Answer::Refuse(reply(
                    550,
                    5,
                    7,
                    1,
                    &format!(
                        "no signing key for {domain}; only {} is signed here",
                        self.shared.domain
                    ),
                ));
            }
            message
        };
        let signatures = match self.sign(&message) {
            Ok(s) => s,
            Err(r) => return Answer::Refuse(r),
        };
        let trace = received_field(&self.helo, self.peer, &self.shared.hostname, "ESMTPS", &id);
        let signed = [trace.as_bytes(), signatures.as_bytes(), &message].concat();
        match self
            .shared
            .relay
            .send_with(&from, &rcpts, &signed, &dsn)
            .await
        {
            Handoff::Taken { reply: next, .. } => {
                tracing::info!(
                    service = "signer", id, from = from, to = rcpts.join(","),
                    size = signed.len(), next = "relay", reply = %next, "signed"
                );
                Answer::AcceptWith(reply(250, 2, 0, 0, &format!("signed, queued as {id}")))
            }
            Handoff::Refused(why) => {
                tracing::info!(service = "signer", id, %why, "refused by the relay");
                Answer::Refuse(why)
            }
            Handoff::Deferred(why) => {
                tracing::warn!(
                    service = "signer",
                    id,
                    "the relay cannot take it now: {why}"
                );
                Answer::Refuse(reply(
                    451,
                    4,
                    4,
                    0,
                    "the relay cannot take the message now; try again later",
                ))
            }
        }
    }
}

impl SessionHandler for Session {
    fn tls_peer(&mut self, cert: Option<&[u8]>) {
        self.client = cert.and_then(crate::net::tls::service_of);
    }

    async fn event(&mut self, event: Event, session: &Server) -> Answer {
        let max = session.config().max_message_size;
        match self.tx.absorb(event, max, &self.shared.domain) {
            Ok(answer) => answer,
            Err(Event::Hello { name, .. }) => {
                self.helo = name;
                Answer::Accept
            }
            Err(Event::DataEnd { .. }) => self.end_of_data().await,
            Err(Event::Auth { .. } | Event::Vrfy(_)) => {
                Answer::Refuse(reply(502, 5, 5, 1, "not here"))
            }
            Err(_) => Answer::Accept,
        }
    }
}
