//! The relay: the only service that talks to the Internet, and that only
//! the signer may hand mail to (its client certificate is checked during
//! the handshake).
//!
//! Every message it accepts is queued first ([`queue_dir`]: message and
//! envelope fsynced and renamed, the folder fsynced) and only then given
//! its `250`; a full or failing disk gets `452` instead. The queue
//! ([`worker`], driving the Sans-IO `ptt_queue::Queue`) delivers: the
//! domain's own users through the receiver, everyone else through the MX
//! hosts or the smarthost ([`deliver`]), retrying with backoff, and sends
//! the sender an RFC 3464 report through the signer when a recipient fails
//! ([`bounce`]). Forwarding is the receiver's: the relay delivers what it
//! is given.

use std::sync::Arc;

use ptt_queue::{Entry, RetryPolicy};
use ptt_smtp::server::{Event, Server};
use ptt_smtp::{EnhancedCode, Reply, TlsMode};
use tokio::sync::mpsc;

use super::Running;
use super::hop::Hop;
use super::listener::Listener;
use super::trace::unix_now;
use super::transaction::Transaction;
use crate::config::{Config, ServiceName};
use crate::dns::secure::{SecureResolver, Security};
use crate::net::smtp::{Answer, SessionHandler};
use crate::store::spool::new_id;

pub(crate) mod bounce;
pub(crate) mod deliver;
pub(crate) mod mta_sts;
pub(crate) mod queue_dir;
pub(crate) mod worker;

use queue_dir::QueueDir;

/// Files of delivered messages kept for reuse, at most: two per message,
/// room for a burst of deliveries between arrivals.
const SPARE_FILES: usize = 1024;

/// The queue folder of a configuration.
pub(crate) fn queue_path(config: &Config) -> std::path::PathBuf {
    config.state_of(ServiceName::Relay).join("queue")
}

struct Shared {
    domain: String,
    queue: QueueDir,
    worker: mpsc::UnboundedSender<worker::Event>,
}

fn reply(code: u16, class: u8, subject: u16, detail: u16, text: &str) -> Reply {
    Reply::new(code, Some(EnhancedCode::new(class, subject, detail)), text)
}

/// Starts `[relay]`.
pub(crate) async fn start(config: &Config) -> Result<Running, String> {
    let Some(section) = &config.relay else {
        return Err("no [relay] section".into());
    };
    let identity = crate::net::pki::identity(config, ServiceName::Relay)?;
    let acceptor = identity.internal_acceptor(&[ServiceName::Signer.internal_name()])?;
    let queue = QueueDir::open(&queue_path(config))
        .map_err(|e| format!("creating {}: {e}", queue_path(config).display()))?;
    let lock = queue
        .lock()
        .map_err(|e| format!("locking {}: {e}", queue.path().display()))?
        .ok_or_else(|| {
            format!(
                "another relay runs on {} (it holds .lock)",
                queue.path().display()
            )
        })?;
    // Holding the lock: the files of delivered messages are written again
    // for new ones (see queue_dir).
    let queue = queue.recycling(SPARE_FILES);
    let receiver = match &config.receiver {
        Some(r) => Some(Hop::new(
            r.address,
            // The receiver presents the private CA's certificate, or the
            // public one of [tls]: then it is checked as any MTA would
            // (opportunistically, RFC 7435).
            if config.tls.cert.is_some() {
                crate::net::tls::connector(None)?
            } else {
                identity.ca_connector()?
            },
            &config.hostname,
            TlsMode::Required,
            &config.hostname,
        )?),
        None => None,
    };
    let signer = match &config.signer {
        Some(s) => Some(Hop::internal(
            &identity,
            s.address,
            ServiceName::Signer,
            &config.hostname,
        )?),
        None => None,
    };
    let smarthost = section.smarthost.as_ref().and_then(|s| {
        let (host, port) = s.rsplit_once(':')?;
        Some((
            host.trim_matches(['[', ']']).to_string(),
            port.parse().ok()?,
        ))
    });
    let smarthost_auth = match &section.smarthost_auth {
        Some((user, file)) => {
            let password = std::fs::read_to_string(file)
                .map_err(|e| format!("[relay] smarthost_password_file {}: {e}", file.display()))?;
            Some(ptt_smtp::Credentials {
                authzid: String::new(),
                username: user.clone(),
                password: password.lines().next().unwrap_or_default().to_string(),
            })
        }
        None => None,
    };
    let deliverer = deliver::Deliverer {
        resolver: Arc::new(crate::dns::Resolver::for_config(config)?),
        local_domains: std::iter::once(config.domain.clone())
            .chain(config.lists.as_ref().map(|l| l.domain.clone()))
            .collect(),
        hello: config.hostname.clone(),
        port: section.port,
        smarthost,
        smarthost_auth,
        hold: section.hold,
        require_tls: section.require_tls.clone(),
        opportunistic: crate::net::tls::connector(None)?,
        verified: crate::net::tls::verified_connector(section.tls_ca.as_deref())?,
        receiver,
        sts: mta_sts::StsCache::new(config.state_of(ServiceName::Relay).join("mta-sts")),
        secure: dane_resolver(config).await,
        idle: Default::default(),
    };
    let notifier = bounce::Notifier {
        signer,
        hostname: config.hostname.clone(),
        domain: config.domain.clone(),
    };
    let policy = RetryPolicy {
        backoff: section.retry.clone(),
        give_up_after: section.give_up,
        warn_after: section.delay_notice,
    };
    let (worker, sender) = worker::Worker::new(policy, queue.clone(), deliverer, notifier)?;
    let task = tokio::spawn(async move {
        let _lock = lock;
        worker.run().await
    });
    let shared = Arc::new(Shared {
        domain: config.domain.clone(),
        queue,
        worker: sender,
    });
    let spec = super::internal_spec(config, ServiceName::Relay, acceptor);
    let listeners = Listener::spawn_all(&section.listen, &spec, move |_| {
        Session::new(shared.clone())
    })?;
    Ok(Running {
        name: ServiceName::Relay,
        listeners,
        tasks: vec![task],
    })
}

/// The DNSSEC-aware client DANE needs, when `[dns] resolver` validates:
/// asked once at start, and said in the log either way.
async fn dane_resolver(config: &Config) -> Option<SecureResolver> {
    let Some(server) = config.dns.resolver else {
        tracing::warn!(
            service = "relay",
            "DANE is off: no [dns] resolver to ask whether it validates DNSSEC"
        );
        return None;
    };
    let probe = if config.dns.dnssec_probe.is_empty() {
        "."
    } else {
        config.dns.dnssec_probe.as_str()
    };
    let secure = SecureResolver::connect(server);
    match secure.validates(probe).await {
        Security::Secure => {
            tracing::info!(service = "relay", resolver = %secure.server(), probe, "the resolver validates DNSSEC: DANE is on");
            Some(secure)
        }
        other => {
            tracing::warn!(service = "relay", resolver = %secure.server(), probe, answer = %other, "the resolver does not validate DNSSEC (no AD on the probe): DANE is off");
            None
        }
    }
}

struct Session {
    shared: Arc<Shared>,
    tx: Transaction,
}

impl Session {
    fn new(shared: Arc<Shared>) -> Session {
        Session {
            shared,
            tx: Transaction::default(),
        }
    }

    /// Queues the message, durably, before the `250`.
    async fn end_of_data(&mut self) -> Answer {
        let Transaction {
            from,
            rcpts,
            dsn,
            data: message,
        } = self.tx.take();
        if rcpts.is_empty() {
            return Answer::Refuse(reply(554, 5, 5, 1, "no valid recipients"));
        }
        let now = unix_now();
        let to: Vec<&str> = rcpts.iter().map(String::as_str).collect();
        let mut entry = Entry::new(&new_id(), &from, &to, now);
        entry.envid = dsn.envid.clone();
        if dsn.ret_full == Some(true) {
            entry.ret = ptt_queue::Return::Full;
        }
        for (i, r) in entry.recipients.iter_mut().enumerate() {
            let params = dsn.rcpt(i);
            r.notify = params.queue_notify();
            r.orcpt = params.orcpt;
        }
        let entries = vec![entry];
        let queue = self.shared.queue.clone();
        let to_store = entries.clone();
        let stored = tokio::task::spawn_blocking(move || {
            let pairs: Vec<(&Entry, &[u8])> =
                to_store.iter().map(|e| (e, message.as_slice())).collect();
            queue.put(&pairs).map(|()| message)
        })
        .await;
        let Ok(Ok(message)) = stored else {
            tracing::error!(service = "relay", "cannot queue a message: {stored:?}");
            return Answer::Refuse(reply(
                452,
                4,
                3,
                1,
                "cannot queue the message now; try again later",
            ));
        };
        // Handed on with its entry: the first attempt needs no read.
        let message = Arc::new(message);
        let ids: Vec<String> = entries.iter().map(|e| e.id.clone()).collect();
        for entry in entries {
            tracing::info!(
                service = "relay",
                id = entry.id,
                from = entry.from,
                to = entry.pending().collect::<Vec<_>>().join(","),
                "queued"
            );
            let _ = self.shared.worker.send(worker::Event::Queued {
                entry,
                message: Some(message.clone()),
            });
        }
        Answer::AcceptWith(reply(250, 2, 0, 0, &format!("queued as {}", ids.join(" "))))
    }
}

impl SessionHandler for Session {
    async fn event(&mut self, event: Event, session: &Server) -> Answer {
        let max = session.config().max_message_size;
        match self.tx.absorb(event, max, &self.shared.domain) {
            Ok(answer) => answer,
            Err(Event::DataEnd { .. }) => self.end_of_data().await,
            Err(Event::Auth { .. } | Event::Vrfy(_)) => {
                Answer::Refuse(reply(502, 5, 5, 1, "not here"))
            }
            Err(_) => Answer::Accept,
        }
    }
}
