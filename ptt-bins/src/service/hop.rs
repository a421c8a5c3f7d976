//! Handing a message to the next service (or host) over SMTP: one
//! transaction per message, with the answer sorted into what the caller
//! must do: the next hop has it, refused it for good, or try later. The
//! sessions are kept open between messages (up to [`IDLE_KEPT`], for
//! [`IDLE`]), so a flow of mail pays for the TCP and TLS handshakes once; a
//! kept session the next hop closed meanwhile is replaced, and the message
//! sent again, only when nothing of it had been answered.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ptt_smtp::{Client, ClientConfig, Message, Reply, TlsMode, TransactionResult};
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio_rustls::TlsConnector;

use super::transaction::Dsn;
use crate::net::smtp::{ClientSession, Conn, Transacted};

/// How long a whole hand-off may take.
const HOP_TIMEOUT: Duration = Duration::from_secs(120);

/// Hand-offs to one next hop at once: a burst of a thousand sessions
/// queues here instead of holding a thousand connections (and their TLS
/// state) to the next service.
pub(crate) const HOP_CONNECTIONS: usize = 64;

/// How long a session is kept open without a message.
pub(crate) const IDLE: Duration = Duration::from_secs(10);

/// Idle sessions kept at most (each holds its TLS buffers): a burst opens
/// up to [`HOP_CONNECTIONS`], a steady flow reuses a few.
pub(crate) const IDLE_KEPT: usize = 16;

/// A next hop: where, and how to speak TLS to it.
#[derive(Clone)]
pub(crate) struct Hop {
    /// Its address.
    pub(crate) addr: SocketAddr,
    /// TLS (with our client certificate for internal hops).
    pub(crate) connector: TlsConnector,
    /// The name its certificate must carry.
    pub(crate) name: ServerName<'static>,
    /// Implicit TLS (internal hops) or STARTTLS required.
    pub(crate) mode: TlsMode,
    /// Our EHLO name.
    pub(crate) hello: String,
    /// Its name, for the metrics.
    label: String,
    /// Connections open to it now, at most [`HOP_CONNECTIONS`].
    pub(crate) slots: Arc<Semaphore>,
    /// Sessions open and idle, the most recent last.
    idle: Arc<Mutex<Vec<ClientSession>>>,
}

/// What came of a hand-off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Handoff {
    /// The next hop took the message for these recipients (with its final
    /// reply); the others it refused for good, with its reply.
    Taken {
        /// Its reply to the end of data.
        reply: Reply,
        /// Recipients it refused permanently.
        refused: Vec<(String, Reply)>,
        /// Recipients it refused for now (to be tried again).
        deferred: Vec<(String, Reply)>,
    },
    /// Refused for good (a 5xx to MAIL, to every RCPT, or to the data).
    Refused(Reply),
    /// Not taken now (4xx, connection trouble): try again later.
    Deferred(String),
}

impl Hop {
    /// A hop to `addr`, its certificate naming `name`.
    pub(crate) fn new(
        addr: SocketAddr,
        connector: TlsConnector,
        name: &str,
        mode: TlsMode,
        hello: &str,
    ) -> Result<Hop, String> {
        Ok(Hop {
            addr,
            connector,
            name: ServerName::try_from(name.to_string()).map_err(|e| format!("{name:?}: {e}"))?,
            mode,
            hello: hello.to_string(),
            label: name.to_string(),
            slots: Arc::new(Semaphore::new(HOP_CONNECTIONS)),
            idle: Arc::new(Mutex::new(Vec::new())),
        })
    }

    /// A hop to another of ptt's services at `addr`: implicit TLS with
    /// our client certificate from the private CA, its certificate naming
    /// `service`.
    pub(crate) fn internal(
        identity: &crate::net::tls::Identity,
        addr: SocketAddr,
        service: crate::config::ServiceName,
        hello: &str,
    ) -> Result<Hop, String> {
        Hop::new(
            addr,
            identity.internal_connector()?,
            &service.internal_name(),
            TlsMode::Implicit,
            hello,
        )
    }

    /// Sends one message.
    pub(crate) async fn send(&self, from: &str, rcpts: &[String], data: &[u8]) -> Handoff {
        self.send_with(from, rcpts, data, &Dsn::default()).await
    }

    /// Sends one message with its RFC 3461 parameters (passed on when the
    /// next hop offers DSN).
    pub(crate) async fn send_with(
        &self,
        from: &str,
        rcpts: &[String],
        data: &[u8],
        dsn: &Dsn,
    ) -> Handoff {
        let Ok(_slot) = self.slots.acquire().await else {
            return Handoff::Deferred("shutting down".into());
        };
        let started = Instant::now();
        let outcome =
            match tokio::time::timeout(HOP_TIMEOUT, self.try_send(from, rcpts, data, dsn)).await {
                Ok(outcome) => outcome,
                Err(_) => Handoff::Deferred(format!("{}: timed out", self.addr)),
            };
        metrics::histogram!(super::metrics::HOP_SECONDS, "next" => self.label.clone())
            .record(started.elapsed().as_secs_f64());
        outcome
    }

    async fn try_send(&self, from: &str, rcpts: &[String], data: &[u8], dsn: &Dsn) -> Handoff {
        let parse_rcpt = |a: &str| {
            ptt_smtp::ForwardPath::parse(&format!("<{a}>"), true).map_err(|e| format!("<{a}>: {e}"))
        };
        let to = match rcpts
            .iter()
            .enumerate()
            .map(|(i, r)| Ok((parse_rcpt(r)?, dsn.rcpt(i).to_params())))
            .collect::<Result<Vec<_>, String>>()
        {
            Ok(to) => to,
            Err(e) => return Handoff::Refused(Reply::new(553, None, &e)),
        };
        let from_path = match ptt_smtp::ReversePath::parse(&format!("<{from}>"), true) {
            Ok(f) => f,
            Err(e) => return Handoff::Refused(Reply::new(553, None, &format!("<{from}>: {e}"))),
        };
        let message = Message {
            from: from_path,
            params: dsn.mail_params(),
            to,
            data: data.to_vec(),
        };
        let t = loop {
            let (mut session, reused) = match self.take_idle() {
                Some(session) => (session, true),
                None => match self.open().await {
                    Ok(session) => (session, false),
                    Err(why) => return Handoff::Deferred(why),
                },
            };
            match session.transact(message.clone()).await {
                Transacted::Done(t) => {
                    self.put_idle(session);
                    break t;
                }
                // A kept session the next hop had closed: a new one.
                Transacted::Unsent(_) if reused => continue,
                Transacted::Unsent(why) | Transacted::Failed(why) => {
                    return Handoff::Deferred(format!("{}: {why}", self.addr));
                }
            }
        };
        handoff_of(t, self.addr)
    }
}

/// What a finished transaction with the next hop at `addr` comes to.
pub(crate) fn handoff_of(t: TransactionResult, addr: impl std::fmt::Display) -> Handoff {
    if !t.mail.is_positive() {
        return classify(t.mail);
    }
    let (mut refused, mut deferred) = (Vec::new(), Vec::new());
    for (path, reply) in &t.rcpts {
        let address = path.mailbox().map(|m| m.to_string()).unwrap_or_default();
        if reply.code() >= 500 {
            refused.push((address, reply.clone()));
        } else if !reply.is_positive() {
            deferred.push((address, reply.clone()));
        }
    }
    match t.data {
        Some(reply) if reply.is_positive() => Handoff::Taken {
            reply,
            refused,
            deferred,
        },
        Some(reply) => classify(reply),
        None => match (deferred.into_iter().next(), refused.into_iter().next()) {
            (Some((_, reply)), _) => Handoff::Deferred(format!("{addr}: {reply}")),
            (None, Some((_, reply))) => Handoff::Refused(reply),
            (None, None) => Handoff::Deferred(format!("{addr}: no data reply")),
        },
    }
}

/// What the next hop says of a recipient ([`Hop::verify`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verified {
    /// It would take mail for it.
    Yes,
    /// It refuses it, with this reply (a 4xx means: not now).
    No(Reply),
    /// It could not be asked (connection trouble).
    Unknown(String),
}

impl Hop {
    /// Asks whether the next hop takes mail for `rcpt` from `from`
    /// (empty: the null sender): MAIL and RCPT only, on a kept session,
    /// the way a front server verifies a recipient with the one behind it
    /// before its own RCPT reply.
    pub(crate) async fn verify(&self, from: &str, rcpt: &str) -> Verified {
        let Ok(to) = ptt_smtp::ForwardPath::parse(&format!("<{rcpt}>"), true) else {
            return Verified::No(Reply::new(553, None, &format!("<{rcpt}>: not an address")));
        };
        let from = match ptt_smtp::ReversePath::parse(&format!("<{from}>"), true) {
            Ok(f) => f,
            Err(_) => ptt_smtp::ReversePath::Null,
        };
        let Ok(_slot) = self.slots.acquire().await else {
            return Verified::Unknown("shutting down".into());
        };
        let asked = async {
            loop {
                let (mut session, reused) = match self.take_idle() {
                    Some(session) => (session, true),
                    None => match self.open().await {
                        Ok(session) => (session, false),
                        Err(why) => return Verified::Unknown(why),
                    },
                };
                let to = vec![(to.clone(), ptt_smtp::RcptParams::default())];
                match session.verify(from.clone(), to).await {
                    Transacted::Done(t) => {
                        self.put_idle(session);
                        if !t.mail.is_positive() {
                            return Verified::No(t.mail);
                        }
                        return match t.rcpts.into_iter().next() {
                            Some((_, reply)) if reply.is_positive() => Verified::Yes,
                            Some((_, reply)) => Verified::No(reply),
                            None => Verified::Unknown("no reply to RCPT".into()),
                        };
                    }
                    Transacted::Unsent(_) if reused => continue,
                    Transacted::Unsent(why) | Transacted::Failed(why) => {
                        return Verified::Unknown(format!("{}: {why}", self.addr));
                    }
                }
            }
        };
        match tokio::time::timeout(Duration::from_secs(30), asked).await {
            Ok(v) => v,
            Err(_) => Verified::Unknown(format!("{}: timed out", self.addr)),
        }
    }
}

impl Hop {
    /// A new session: TCP, and TLS at once for implicit TLS.
    async fn open(&self) -> Result<ClientSession, String> {
        let tcp = TcpStream::connect(self.addr)
            .await
            .map_err(|e| format!("connecting to {}: {e}", self.addr))?;
        let _ = tcp.set_nodelay(true);
        let mut conn = Conn::Plain(tcp);
        if self.mode == TlsMode::Implicit {
            conn.connect_tls(&self.connector, self.name.clone())
                .await
                .map_err(|e| format!("TLS with {}: {e}", self.addr))?;
        }
        let config = ClientConfig {
            hello_name: self.hello.clone(),
            tls: self.mode,
            credentials: None,
            pipelining: true,
            chunking: false,
            timeout: Duration::from_secs(60),
        };
        Ok(ClientSession::new(
            conn,
            Client::new(config, Duration::ZERO),
            Instant::now(),
            Some((self.connector.clone(), self.name.clone())),
        ))
    }

    /// An idle session still fresh enough; stale ones are closed.
    fn take_idle(&self) -> Option<ClientSession> {
        let mut idle = self.idle.lock().ok()?;
        while let Some(session) = idle.pop() {
            if session.idle_since.elapsed() < IDLE {
                return Some(session);
            }
            tokio::spawn(session.quit());
        }
        None
    }

    /// Keeps a session for the next message, closing the oldest beyond
    /// the limit.
    fn put_idle(&self, session: ClientSession) {
        let Ok(mut idle) = self.idle.lock() else {
            return;
        };
        idle.push(session);
        if idle.len() > IDLE_KEPT {
            let oldest = idle.remove(0);
            tokio::spawn(oldest.quit());
        }
    }
}

fn classify(reply: Reply) -> Handoff {
    if reply.code() >= 500 {
        Handoff::Refused(reply)
    } else {
        Handoff::Deferred(reply.to_string())
    }
}
