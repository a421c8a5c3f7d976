//! Submission (RFC 6409; 587 with STARTTLS, 465 with implicit TLS, RFC
//! 8314): users authenticate with AUTH PLAIN or LOGIN, only under TLS,
//! against the user repository, and send as themselves.
//!
//! - Password checks run off the event loop, at most `auth_concurrency`
//!   at once (argon2id holds 19 MiB each); failures are throttled per
//!   address and per account ([`throttle`]); unknown users cost as much
//!   time as known ones.
//! - MAIL FROM and every `From:` address must be the user's own, an alias,
//!   or a `may_send_as` address (`553 5.7.1` / `550 5.7.1` otherwise).
//! - The message gets a `Received` field (and `Date`/`Message-ID` when it
//!   lacks them, RFC 6409 §8), then goes to the signer over TLS with this
//!   service's client certificate. The `250` comes once the signer has it,
//!   or once it is in this service's fsynced spool when the signer cannot
//!   take it now; the spool is retried in the background.
//! - Without AUTH nothing is accepted, for anyone: never an open relay.

pub(crate) mod throttle;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ptt_smtp::server::{Event, Server, ServerConfig};
use ptt_smtp::{EnhancedCode, Reply};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use self::throttle::{Limits, Throttle};
use super::hop::{Handoff, Hop};
use super::listener::{Listener, Spec};
use super::trace::{received_field, rfc5322_date, unix_now};
use super::transaction::{Dsn, RcptDsn};
use super::users::Users;
use super::{Running, public_tls};
use crate::config::{Config, ServiceName};
use crate::net::smtp::{Answer, SessionHandler};
use crate::store::spool::{Envelope, Spool, new_id};
use crate::userdb::{normalize, password};

/// How often the spool is tried again.
const SPOOL_RETRY: Duration = Duration::from_secs(30);

/// What every session of the service shares.
pub(crate) struct Shared {
    domain: String,
    /// `[lists] domain`: the list server answers for its addresses.
    lists_domain: Option<String>,
    hostname: String,
    users: Users,
    throttle: Throttle,
    auth_slots: Semaphore,
    signer: Hop,
    spool: Spool,
}

fn reply(code: u16, class: u8, subject: u16, detail: u16, text: &str) -> Reply {
    Reply::new(code, Some(EnhancedCode::new(class, subject, detail)), text)
}

/// The answer to a login while blocked (and the session ends).
fn blocked_reply(block: &throttle::Block) -> Reply {
    reply(
        421,
        4,
        7,
        0,
        &format!(
            "too many failed logins for {}; try again in {} s",
            block.what,
            block.remaining.as_secs().max(1)
        ),
    )
}

/// Starts the listeners of `[submission]`.
pub(crate) async fn start(config: &Config, users: Users) -> Result<Running, String> {
    let Some(section) = &config.submission else {
        return Err("no [submission] section".into());
    };
    let Some(signer) = &config.signer else {
        return Err("[submission] needs a [signer] to hand mail to".into());
    };
    let identity = crate::net::pki::identity(config, ServiceName::Submission)?;
    let spool_dir = config.state_of(ServiceName::Submission).join("spool");
    let spool =
        Spool::open(&spool_dir).map_err(|e| format!("creating {}: {e}", spool_dir.display()))?;
    let shared = Arc::new(Shared {
        domain: config.domain.clone(),
        lists_domain: config.lists.as_ref().map(|l| l.domain.to_ascii_lowercase()),
        hostname: config.hostname.clone(),
        users,
        throttle: Throttle::new(Limits {
            per_ip: section.max_failures_per_ip,
            per_user: section.max_failures_per_user,
            window: section.block,
            allow: section.allow.clone(),
        }),
        auth_slots: Semaphore::new(section.auth_concurrency),
        signer: Hop::internal(
            &identity,
            signer.address,
            ServiceName::Signer,
            &config.hostname,
        )?,
        spool,
    });
    let (acceptor, acme_task) = public_tls(config, &identity, ServiceName::Submission)?;
    // The decoy hash costs one argon2 run: made now, not in a session.
    tokio::task::spawn_blocking(password::decoy)
        .await
        .map_err(|e| e.to_string())?;
    let base = ServerConfig {
        hostname: config.hostname.clone(),
        banner: "ESMTP ptt submission".into(),
        auth: true,
        require_auth: true,
        max_message_size: section.max_message_size,
        ..ServerConfig::default()
    };
    let mut listeners = Vec::new();
    for (addrs, implicit) in [(&section.listen, false), (&section.listen_tls, true)] {
        let spec = Spec {
            service: "submission",
            config: Arc::new(ServerConfig {
                starttls: !implicit,
                ..base.clone()
            }),
            tls: Some(acceptor.clone()),
            implicit,
            max_sessions: section.max_sessions,
        };
        let shared = shared.clone();
        listeners.extend(Listener::spawn_all(addrs, &spec, move |peer| {
            Session::new(shared.clone(), peer.ip())
        })?);
    }
    let retry: JoinHandle<()> = tokio::spawn(drain_spool(shared));
    Ok(Running {
        name: ServiceName::Submission,
        listeners,
        tasks: std::iter::once(retry).chain(acme_task).collect(),
    })
}

/// Hands spooled messages to the signer until none is left, for ever.
async fn drain_spool(shared: Arc<Shared>) {
    loop {
        let ids = {
            let spool = shared.spool.clone();
            tokio::task::spawn_blocking(move || spool.entries())
                .await
                .ok()
                .and_then(Result::ok)
                .unwrap_or_default()
        };
        for id in ids {
            let spool = shared.spool.clone();
            let loaded = {
                let id = id.clone();
                tokio::task::spawn_blocking(move || spool.load(&id)).await
            };
            let Ok(Ok((envelope, message))) = loaded else {
                continue;
            };
            match shared
                .signer
                .send_with(&envelope.from, &envelope.to, &message, &envelope.dsn)
                .await
            {
                Handoff::Deferred(why) => {
                    tracing::info!(service = "submission", id, "still spooled: {why}");
                    continue;
                }
                Handoff::Refused(reply) => {
                    tracing::error!(service = "submission", id, %reply, "the signer refused a spooled message; dropped");
                }
                Handoff::Taken {
                    reply,
                    refused,
                    deferred,
                } => {
                    for (rcpt, why) in &refused {
                        tracing::error!(service = "submission", id, rcpt, %why, "the signer refused a recipient of a spooled message");
                    }
                    tracing::info!(service = "submission", id, next = "signer", %reply, "sent from the spool");
                    if !deferred.is_empty() {
                        // Keep the entry for the recipients still waiting.
                        let spool = shared.spool.clone();
                        let to: Vec<String> = deferred.into_iter().map(|(r, _)| r).collect();
                        let envelope = Envelope {
                            dsn: envelope.dsn.only(&envelope.to, &to),
                            to,
                            ..envelope
                        };
                        let id = id.clone();
                        let _ = tokio::task::spawn_blocking(move || {
                            spool.put(&id, &envelope, &message)
                        })
                        .await;
                        continue;
                    }
                }
            }
            let spool = shared.spool.clone();
            let _ = tokio::task::spawn_blocking(move || spool.remove(&id)).await;
        }
        tokio::time::sleep(SPOOL_RETRY).await;
    }
}

/// One connection.
struct Session {
    shared: Arc<Shared>,
    peer: IpAddr,
    helo: String,
    /// The authenticated user's address.
    user: Option<String>,
    from: String,
    rcpts: Vec<String>,
    /// RET, ENVID, NOTIFY and ORCPT, passed on.
    dsn: Dsn,
    data: Vec<u8>,
    too_big: bool,
}

impl Session {
    fn new(shared: Arc<Shared>, peer: IpAddr) -> Session {
        Session {
            shared,
            peer,
            helo: String::new(),
            user: None,
            from: String::new(),
            rcpts: Vec::new(),
            dsn: Dsn::default(),
            data: Vec::new(),
            too_big: false,
        }
    }

    fn reset(&mut self) {
        self.from.clear();
        self.rcpts.clear();
        self.dsn = Dsn::default();
        self.data = Vec::new();
        self.too_big = false;
    }

    /// The user's full address for a login name (a bare local part is
    /// taken as one of the domain's).
    fn login_address(&self, name: &str) -> String {
        let name = normalize(name);
        if name.contains('@') {
            name
        } else {
            format!("{name}@{}", self.shared.domain)
        }
    }

    async fn authenticate(&mut self, username: &str, authzid: &str, pass: String) -> Answer {
        let user = self.login_address(username);
        let shared = self.shared.clone();
        if let Some(block) = shared.throttle.check(self.peer, &user, Instant::now()) {
            tracing::warn!(
                service = "submission",
                peer = %self.peer,
                user,
                blocked = block.what,
                seconds_left = block.remaining.as_secs(),
                "login refused: blocked after repeated failures"
            );
            return Answer::Refuse(blocked_reply(&block));
        }
        // Proxy authorization is not offered: an authzid must be the user.
        let authz_ok = authzid.is_empty() || self.login_address(authzid) == user;
        let verified = match shared.auth_slots.acquire().await {
            Ok(_slot) => {
                // Checked again with the slot held: sessions that waited
                // for it while others failed must not all get a guess.
                if let Some(block) = shared.throttle.check(self.peer, &user, Instant::now()) {
                    return Answer::Refuse(blocked_reply(&block));
                }
                let db = shared.users.get();
                let record = db.get(&user).map(|u| u.password.clone());
                let exists = record.is_some();
                tokio::task::spawn_blocking(move || {
                    // Unknown users and unusable hashes cost the same time
                    // as a real check, so timing does not tell who exists.
                    let usable = record.filter(|phc| password::is_hash(phc));
                    let ok =
                        password::verify(&pass, usable.as_deref().unwrap_or(password::decoy()));
                    ok && usable.is_some() && exists
                })
                .await
                .unwrap_or(false)
            }
            Err(_) => false,
        };
        let exists = shared.users.get().get(&user).is_some();
        if verified && authz_ok {
            shared.throttle.succeeded(self.peer, &user, Instant::now());
            tracing::info!(service = "submission", peer = %self.peer, user, "authenticated");
            self.user = Some(user);
            return Answer::Accept;
        }
        let (delay, blocks) = shared.throttle.failed(self.peer, &user, Instant::now());
        for block in blocks {
            tracing::warn!(
                service = "submission",
                peer = %self.peer,
                blocked = block.what,
                failures = block.failures,
                seconds = block.remaining.as_secs(),
                "blocking logins after repeated failures"
            );
        }
        tracing::info!(service = "submission", peer = %self.peer, user, known = exists, "login failed");
        tokio::time::sleep(delay).await;
        Answer::Refuse(reply(535, 5, 7, 8, "Authentication credentials invalid"))
    }

    fn may_send_as(&self, address: &str) -> bool {
        let Some(user) = &self.user else {
            return false;
        };
        self.shared.users.get().may_send_as(user, address)
    }

    async fn end_of_data(&mut self) -> Answer {
        let message = std::mem::take(&mut self.data);
        let user = self.user.clone().unwrap_or_default();
        let froms = match crate::authn::from_addresses(&message) {
            Ok(f) => f,
            Err(why) => return Answer::Refuse(reply(550, 5, 6, 0, &why)),
        };
        if let Some(foreign) = froms.iter().find(|a| !self.may_send_as(a)) {
            tracing::info!(
                service = "submission",
                user,
                from = foreign,
                "refused: foreign From"
            );
            return Answer::Refuse(reply(
                550,
                5,
                7,
                1,
                &format!("{user} may not send with From: {foreign}"),
            ));
        }
        let id = new_id();
        let mut head = received_field(&self.helo, self.peer, &self.shared.hostname, "ESMTPSA", &id);
        let header = crate::authn::header_block(&message);
        let has = |name: &[u8]| {
            ptt_dkim::split_header_fields(header)
                .iter()
                .any(|f| f.name.eq_ignore_ascii_case(name))
        };
        if !has(b"date") {
            head.push_str(&format!("Date: {}\r\n", rfc5322_date(unix_now())));
        }
        if !has(b"message-id") {
            head.push_str(&format!("Message-ID: <{id}@{}>\r\n", self.shared.hostname));
        }
        let mut full = head.into_bytes();
        full.extend_from_slice(&message);
        let rcpts = std::mem::take(&mut self.rcpts);
        let dsn = std::mem::take(&mut self.dsn);
        // Boxed: the hand-off's state lives on the heap only while it runs,
        // not inside every session's future.
        let outcome = Box::pin(
            self.shared
                .signer
                .send_with(&self.from, &rcpts, &full, &dsn),
        )
        .await;
        let log_rcpts = rcpts.join(",");
        match outcome {
            Handoff::Taken {
                reply: next,
                refused,
                deferred,
            } => {
                for (rcpt, why) in &refused {
                    tracing::warn!(service = "submission", id, rcpt, %why, "the signer refused a recipient");
                }
                if !deferred.is_empty() {
                    let to: Vec<String> = deferred.into_iter().map(|(r, _)| r).collect();
                    let dsn = dsn.only(&rcpts, &to);
                    if let Err(answer) = self.spool(&id, &user, to, dsn, &full).await {
                        return answer;
                    }
                }
                tracing::info!(
                    service = "submission", id, user, from = self.from, to = log_rcpts,
                    size = full.len(), next = "signer", reply = %next, "accepted"
                );
                Answer::AcceptWith(reply(250, 2, 0, 0, &format!("queued as {id}")))
            }
            Handoff::Refused(why) => {
                tracing::info!(service = "submission", id, user, to = log_rcpts, %why, "refused by the signer");
                Answer::Refuse(why)
            }
            Handoff::Deferred(why) => {
                if let Err(answer) = self.spool(&id, &user, rcpts, dsn, &full).await {
                    return answer;
                }
                tracing::info!(
                    service = "submission",
                    id,
                    user,
                    from = self.from,
                    to = log_rcpts,
                    size = full.len(),
                    "accepted into the spool: {why}"
                );
                Answer::AcceptWith(reply(250, 2, 0, 0, &format!("queued as {id}")))
            }
        }
    }

    /// Puts a message in the spool (durably) for the retry task.
    async fn spool(
        &self,
        id: &str,
        user: &str,
        to: Vec<String>,
        dsn: Dsn,
        data: &[u8],
    ) -> Result<(), Answer> {
        let spool = self.shared.spool.clone();
        let envelope = Envelope {
            from: self.from.clone(),
            to,
            user: Some(user.to_string()),
            dsn,
        };
        let (id, data) = (id.to_string(), data.to_vec());
        match tokio::task::spawn_blocking(move || spool.put(&id, &envelope, &data)).await {
            Ok(Ok(())) => Ok(()),
            _ => Err(Answer::Refuse(reply(
                451,
                4,
                3,
                0,
                "cannot hand the message on or store it now; try again later",
            ))),
        }
    }
}

impl SessionHandler for Session {
    async fn event(&mut self, event: Event, session: &Server) -> Answer {
        match event {
            Event::Hello { name, .. } => {
                self.helo = name;
                self.reset();
                Answer::Accept
            }
            Event::Auth { credentials, .. } => {
                if !session.is_tls() {
                    // The machine does not offer AUTH without TLS; a second
                    // line of defence all the same.
                    return Answer::Refuse(reply(
                        538,
                        5,
                        7,
                        11,
                        "Encryption required for requested authentication mechanism",
                    ));
                }
                self.authenticate(
                    &credentials.username,
                    &credentials.authzid,
                    credentials.password.clone(),
                )
                .await
            }
            Event::Mail { from, params } => {
                self.reset();
                self.dsn = Dsn::from_mail(&params);
                let Some(user) = self.user.clone() else {
                    return Answer::Refuse(reply(530, 5, 7, 0, "Authentication required"));
                };
                let Some(mailbox) = from.mailbox().map(|m| m.to_string()) else {
                    return Answer::Refuse(reply(
                        553,
                        5,
                        7,
                        1,
                        &format!("{user} may not send with the null reverse-path"),
                    ));
                };
                if !self.may_send_as(&mailbox) {
                    tracing::info!(
                        service = "submission",
                        user,
                        from = mailbox,
                        "refused: foreign MAIL FROM"
                    );
                    return Answer::Refuse(reply(
                        553,
                        5,
                        7,
                        1,
                        &format!("{user} may not send as <{mailbox}>"),
                    ));
                }
                self.from = mailbox;
                Answer::Accept
            }
            Event::Rcpt { to, params } => {
                if self.user.is_none() {
                    return Answer::Refuse(reply(530, 5, 7, 0, "Authentication required"));
                }
                let rcpt = match to.mailbox() {
                    Some(m) => m.to_string(),
                    None => format!("postmaster@{}", self.shared.domain),
                };
                // The domain's own addresses are known here: a typo gets its
                // 550 now, in the user's mail program, not a lost message.
                let rcpt_domain = crate::userdb::domain_of(&rcpt);
                let local = rcpt_domain == self.shared.domain;
                let normalized = normalize(&rcpt);
                // spam@ and ham@ train the receiver's filter; list
                // addresses are the list server's to answer (the receiver
                // asks it, and an unknown one comes back as a report).
                let known = self.shared.users.get().owner(&rcpt).is_some()
                    || self.shared.lists_domain.as_deref() == Some(rcpt_domain.as_str())
                    || normalized.starts_with("postmaster@")
                    || normalized.starts_with("spam@")
                    || normalized.starts_with("ham@");
                if local && !known {
                    return Answer::Refuse(reply(
                        550,
                        5,
                        1,
                        1,
                        &format!("no such user here: {rcpt}"),
                    ));
                }
                self.rcpts.push(rcpt);
                self.dsn.rcpts.push(RcptDsn::from_params(&params));
                Answer::Accept
            }
            Event::DataStart { .. } => {
                self.data.clear();
                Answer::Accept
            }
            Event::DataChunk(bytes) => {
                // The machine enforces SIZE; this only guards memory.
                if (self.data.len() + bytes.len()) as u64 <= session.config().max_message_size {
                    self.data.extend_from_slice(&bytes);
                } else {
                    self.too_big = true;
                }
                Answer::Accept
            }
            Event::DataEnd { .. } => {
                if self.too_big || self.user.is_none() {
                    self.reset();
                    return Answer::Refuse(reply(552, 5, 3, 4, "Message too big"));
                }
                let answer = self.end_of_data().await;
                self.reset();
                answer
            }
            Event::Vrfy(_) => Answer::Refuse(reply(
                252,
                2,
                5,
                0,
                "Cannot VRFY, but will accept the message",
            )),
            _ => {
                self.reset();
                Answer::Accept
            }
        }
    }
}
