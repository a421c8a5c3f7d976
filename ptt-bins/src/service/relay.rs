//! The relay: the only service that talks to the Internet, and that only
//! the signer may hand mail to (its client certificate is checked during
//! the handshake).
//!
//! Today it delivers the domain's own mail to the receiver (over SMTP with
//! STARTTLS, as any MTA would) and keeps the rest, fsynced, in
//! `state/relay/outbound/` (one `.eml` and one `.env` per message) for the
//! delivery to MX hosts that comes next. The `250` comes only once the
//! receiver has the message or it is on disk.

use std::net::IpAddr;
use std::sync::Arc;

use ptt_smtp::server::{Event, Server, ServerConfig};
use ptt_smtp::{EnhancedCode, Reply, TlsMode};

use super::Running;
use super::hop::{Handoff, Hop};
use super::listener::{Listener, Spec};
use super::transaction::Transaction;
use crate::config::{Config, ServiceName};
use crate::net::smtp::{Answer, SessionHandler};
use crate::store::spool::{Envelope, Spool, new_id};

struct Shared {
    domain: String,
    receiver: Option<Hop>,
    outbound: Spool,
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
    let outbound_dir = config.state_of(ServiceName::Relay).join("outbound");
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
    let shared = Arc::new(Shared {
        domain: config.domain.clone(),
        receiver,
        outbound: Spool::open(&outbound_dir)
            .map_err(|e| format!("creating {}: {e}", outbound_dir.display()))?,
    });
    let smtp = Arc::new(ServerConfig {
        hostname: config.hostname.clone(),
        banner: "ESMTP ptt relay".into(),
        max_message_size: super::internal_size_limit(config),
        ..ServerConfig::default()
    });
    let spec = Spec {
        service: "relay",
        config: smtp,
        tls: Some(acceptor),
        implicit: true,
        max_sessions: 4096,
    };
    let listeners = Listener::spawn_all(&section.listen, &spec, move |peer| {
        Session::new(shared.clone(), peer.ip())
    })?;
    Ok(Running {
        name: ServiceName::Relay,
        listeners,
        tasks: Vec::new(),
    })
}

struct Session {
    shared: Arc<Shared>,
    _peer: IpAddr,
    tx: Transaction,
}

impl Session {
    fn new(shared: Arc<Shared>, peer: IpAddr) -> Session {
        Session {
            shared,
            _peer: peer,
            tx: Transaction::default(),
        }
    }

    fn is_local(&self, address: &str) -> bool {
        crate::userdb::domain_of(address) == self.shared.domain
    }

    async fn end_of_data(&mut self) -> Answer {
        let Transaction {
            from,
            rcpts,
            data: message,
        } = self.tx.take();
        let id = new_id();
        let (local, remote): (Vec<String>, Vec<String>) =
            rcpts.into_iter().partition(|r| self.is_local(r));
        if !local.is_empty() {
            let Some(receiver) = &self.shared.receiver else {
                return Answer::Refuse(reply(
                    451,
                    4,
                    3,
                    0,
                    "no receiver configured for local mail",
                ));
            };
            match receiver.send(&from, &local, &message).await {
                Handoff::Taken {
                    reply: next,
                    refused,
                    deferred,
                } => {
                    if !deferred.is_empty() {
                        // The receiver has it for the others: asking again
                        // may duplicate theirs, never lose the rest.
                        tracing::warn!(
                            service = "relay",
                            id,
                            ?deferred,
                            "local recipients deferred"
                        );
                        return Answer::Refuse(reply(
                            451,
                            4,
                            4,
                            0,
                            "some local recipients deferred; try again later",
                        ));
                    }
                    for (rcpt, why) in &refused {
                        // Submission checks the domain's recipients at
                        // RCPT; this is a user removed in between.
                        tracing::error!(service = "relay", id, rcpt, %why, "the receiver refused a local recipient");
                    }
                    tracing::info!(service = "relay", id, from = from, to = local.join(","), next = "receiver", reply = %next, "delivered");
                }
                Handoff::Refused(why) => return Answer::Refuse(why),
                Handoff::Deferred(why) => {
                    tracing::warn!(service = "relay", id, "local delivery deferred: {why}");
                    return Answer::Refuse(reply(
                        451,
                        4,
                        4,
                        0,
                        "local delivery deferred; try again later",
                    ));
                }
            }
        }
        if !remote.is_empty() {
            let spool = self.shared.outbound.clone();
            let envelope = Envelope {
                from: from.clone(),
                to: remote.clone(),
                user: None,
            };
            let key = id.clone();
            let stored =
                tokio::task::spawn_blocking(move || spool.put(&key, &envelope, &message)).await;
            if !matches!(stored, Ok(Ok(()))) {
                return Answer::Refuse(reply(452, 4, 3, 1, "cannot queue the message now"));
            }
            tracing::info!(
                service = "relay",
                id,
                from = from,
                to = remote.join(","),
                "queued in outbound/ (delivery to MX hosts is not built yet)"
            );
        }
        Answer::AcceptWith(reply(250, 2, 0, 0, &format!("queued as {id}")))
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
