//! The receiver: mail from the Internet for the domain's users.
//!
//! STARTTLS offered; RCPT accepted only for users and aliases of the user
//! repository (and `postmaster`), `550 5.1.1` for anyone else, `554 5.7.1`
//! for other domains (never an open relay). Forged `Authentication-Results`
//! claiming our host name are removed; SPF, DKIM and DMARC are checked;
//! `Received-SPF` and `Authentication-Results` stamped; DMARC `p=reject`
//! failures refused. Each message is stored in the Maildir of each
//! recipient's user, `state/receiver/mail/ADDRESS/`, fsynced before the `250`.
//! Mail for users with `forward_to`, and bounces to our SRS addresses, is
//! handed to the signer (which ARC-seals it) and on to the relay, with an
//! SRS sender ([`super::forwarding`]); the `250` comes once the signer has it.
//!
//! Every message is scored by the spam filter ([`spam`]): `X-Spam-Status`
//! and `X-Spam-Score` added (those arriving removed), spam at or above
//! `spam_threshold` refused with `spam_action = "refuse"`, and a message
//! carrying an attachment of a dangerous type (`dangerous_extensions`,
//! anywhere in the MIME tree) refused. The domain's users train the filter
//! by sending to `spam@DOMAIN` or `ham@DOMAIN` (recognised by our own DKIM
//! signature, which only their authenticated submissions carry).

use std::net::IpAddr;
use std::sync::Arc;

use ptt_dmarc::Policy;
use ptt_dmarc::psl::PublicSuffixList;
use ptt_queue::srs::Srs;
use ptt_smtp::server::{Event, Server, ServerConfig};
use ptt_smtp::{EnhancedCode, Reply};

use self::spam::{SpamFilter, is_verdict_field, messages_to_learn};
use super::forwarding::{Destination, destination, rewrite_sender};
use super::hop::{Handoff, Hop, Verified};
use super::listener::{Listener, Spec};
use super::trace::{received_field, unix_now};
use super::users::Users;
use super::{Running, public_tls};
use crate::authn::{Envelope, authenticate, is_forged_result, without_fields};
use crate::config::{Config, ServiceName};
use crate::dns::Resolver;
use crate::net::smtp::{Answer, SessionHandler};
use crate::store::maildir::Maildir;
use crate::store::spool::new_id;

pub(crate) mod dmarc_reports;
pub(crate) mod spam;

struct Shared {
    domain: String,
    hostname: String,
    users: Users,
    resolver: Resolver,
    psl: PublicSuffixList,
    mail: std::path::PathBuf,
    srs: Srs,
    /// Where forwarded mail goes: the signer.
    signer: Option<Hop>,
    /// `[lists] domain` and the list server, which answers for its
    /// addresses.
    lists: Option<(String, Hop)>,
    /// The spam filter.
    spam: Arc<SpamFilter>,
    /// `[receiver] spam_action == "refuse"`.
    refuse_spam: bool,
    /// `[receiver] spam_threshold`.
    spam_threshold: f64,
    /// `[receiver] dmarc_action`.
    dmarc_action: String,
    /// Sessions open per client address (IPv6 per /64); entries leave
    /// with their last session, so it holds no more than the sessions do.
    per_ip: std::sync::Mutex<std::collections::HashMap<IpAddr, usize>>,
    /// `[receiver] max_sessions_per_ip`.
    max_per_ip: usize,
    /// `[receiver] unlimited`.
    unlimited: Vec<crate::config::Network>,
    /// Messages begun per client address in the current minute: (minute,
    /// count). Old minutes are dropped when the map grows, so it holds
    /// about one minute's worth of addresses.
    rates: std::sync::Mutex<std::collections::HashMap<IpAddr, (u64, u32)>>,
    /// `[receiver] max_messages_per_ip_per_minute`.
    max_per_minute: u32,
    /// The DMARC aggregate reports of the current period.
    reports: dmarc_reports::Reports,
    /// `[receiver] dmarc_rua`, and where the reports sent to it are kept.
    rua: Option<(String, std::path::PathBuf)>,
}

/// The key a client address is counted under: IPv6 by /64 (one host
/// usually holds the whole /64), IPv4 as it is.
fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
        v4 => v4,
    }
}

/// One session's place in the per-address count, given back on drop.
struct Slot {
    shared: Arc<Shared>,
    key: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Ok(mut map) = self.shared.per_ip.lock()
            && let Some(n) = map.get_mut(&self.key)
        {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.key);
            }
        }
    }
}

fn reply(code: u16, class: u8, subject: u16, detail: u16, text: &str) -> Reply {
    Reply::new(code, Some(EnhancedCode::new(class, subject, detail)), text)
}

/// Starts `[receiver]`.
pub(crate) async fn start(config: &Config, users: Users) -> Result<Running, String> {
    let Some(section) = &config.receiver else {
        return Err("no [receiver] section".into());
    };
    let identity = crate::net::pki::identity(config, ServiceName::Receiver)?;
    let (acceptor, acme_task) = public_tls(config, &identity, ServiceName::Receiver)?;
    let spam_db = section
        .spam_db
        .clone()
        .unwrap_or_else(|| config.state_of(ServiceName::Receiver).join("spam.db"));
    let spam = Arc::new(SpamFilter::open(&spam_db, &section.dangerous_extensions)?);
    let watcher = {
        let spam = spam.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(std::time::Duration::from_secs(2)).await;
                let filter = spam.clone();
                match tokio::task::spawn_blocking(move || filter.reload_if_replaced()).await {
                    Ok(Ok(true)) => {
                        tracing::info!(service = "receiver", "spam database replaced: read again")
                    }
                    Ok(Err(e)) => {
                        tracing::warn!(service = "receiver", "spam database not read again: {e}")
                    }
                    _ => {}
                }
            }
        })
    };
    let shared = Arc::new(Shared {
        domain: config.domain.clone(),
        hostname: config.hostname.clone(),
        users,
        resolver: crate::dns::Resolver::for_config(config)?,
        psl: PublicSuffixList::builtin(),
        mail: config.state_of(ServiceName::Receiver).join("mail"),
        srs: super::forwarding::srs_key(&config.state)?,
        signer: match &config.signer {
            Some(s) => Some(Hop::internal(
                &identity,
                s.address,
                ServiceName::Signer,
                &config.hostname,
            )?),
            None => None,
        },
        lists: match &config.lists {
            Some(l) => Some((
                l.domain.to_ascii_lowercase(),
                Hop::internal(&identity, l.address, ServiceName::Lists, &config.hostname)?,
            )),
            None => None,
        },
        spam,
        refuse_spam: section.spam_action == "refuse",
        spam_threshold: section.spam_threshold,
        dmarc_action: section.dmarc_action.clone(),
        per_ip: std::sync::Mutex::new(std::collections::HashMap::new()),
        max_per_ip: section.max_sessions_per_ip,
        unlimited: section.unlimited.clone(),
        rates: std::sync::Mutex::new(std::collections::HashMap::new()),
        max_per_minute: section.max_messages_per_ip_per_minute,
        reports: dmarc_reports::Reports::new(&config.domain, &config.hostname, unix_now()),
        rua: section
            .dmarc_rua
            .clone()
            .map(|a| (a, dmarc_reports::kept_dir(config))),
    });
    let reporter = {
        let shared = shared.clone();
        let every = std::time::Duration::from_secs(section.dmarc_report_seconds);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let Some(signer) = &shared.signer else {
                    continue;
                };
                shared
                    .reports
                    .send(signer, &shared.resolver, &shared.psl, unix_now())
                    .await;
            }
        })
    };
    let smtp = Arc::new(ServerConfig {
        hostname: config.hostname.clone(),
        banner: "ESMTP ptt receiver".into(),
        starttls: true,
        max_message_size: section.max_message_size,
        max_recipients: section.max_recipients,
        ..ServerConfig::default()
    });
    let spec = Spec {
        service: "receiver",
        config: smtp,
        tls: Some(acceptor),
        implicit: false,
        max_sessions: 4096,
    };
    let listeners = Listener::spawn_all(&section.listen, &spec, move |peer| {
        Session::new(shared.clone(), peer.ip())
    })?;
    Ok(Running {
        name: ServiceName::Receiver,
        listeners,
        tasks: acme_task.into_iter().chain([watcher, reporter]).collect(),
    })
}

struct Session {
    shared: Arc<Shared>,
    peer: IpAddr,
    helo: String,
    from: String,
    /// The users (own addresses) the message is stored for.
    rcpts: Vec<String>,
    /// The addresses it is forwarded to.
    forward: Vec<String>,
    /// The list addresses it is for (handed to the list server).
    list_rcpts: Vec<String>,
    /// `spam@` or `ham@` was a recipient: what to learn it as.
    learn: Option<ptt_spam::Class>,
    /// Our `rua=` address was a recipient: keep the report.
    report: bool,
    /// Its place in the per-address count.
    _slot: Slot,
    /// The address has more sessions open than allowed: `421` at once.
    crowded: bool,
    data: Vec<u8>,
}

impl Session {
    fn new(shared: Arc<Shared>, peer: IpAddr) -> Session {
        let key = client_key(peer);
        let open = shared
            .per_ip
            .lock()
            .map(|mut map| {
                let n = map.entry(key).or_insert(0);
                *n += 1;
                *n
            })
            .unwrap_or(0);
        let crowded =
            open > shared.max_per_ip && !shared.unlimited.iter().any(|n| n.contains(peer));
        let slot = Slot {
            shared: shared.clone(),
            key,
        };
        Session {
            _slot: slot,
            crowded,
            shared,
            peer,
            helo: String::new(),
            from: String::new(),
            rcpts: Vec::new(),
            forward: Vec::new(),
            list_rcpts: Vec::new(),
            learn: None,
            report: false,
            data: Vec::new(),
        }
    }

    fn reset(&mut self) {
        self.from.clear();
        self.rcpts.clear();
        self.forward.clear();
        self.list_rcpts.clear();
        self.learn = None;
        self.report = false;
        self.data = Vec::new();
    }

    /// Counts a message begun by this client; whether it is over the rate.
    fn over_rate(&self) -> bool {
        let shared = &self.shared;
        if shared.unlimited.iter().any(|n| n.contains(self.peer)) {
            return false;
        }
        let minute = unix_now() / 60;
        let Ok(mut rates) = shared.rates.lock() else {
            return false;
        };
        if rates.len() > 100_000 {
            rates.retain(|_, (m, _)| *m == minute);
        }
        let entry = rates.entry(client_key(self.peer)).or_insert((minute, 0));
        if entry.0 != minute {
            *entry = (minute, 0);
        }
        entry.1 += 1;
        entry.1 > shared.max_per_minute
    }

    async fn end_of_data(&mut self, tls: bool) -> Answer {
        let shared = self.shared.clone();
        // Results claiming to be ours and spam verdicts from outside go.
        let message = without_fields(&std::mem::take(&mut self.data), |f| {
            is_forged_result(f, &shared.hostname) || is_verdict_field(f)
        });
        let envelope = Envelope {
            ip: self.peer,
            helo: self.helo.clone(),
            mail_from: self.from.clone(),
        };
        let id = new_id();
        let auth = authenticate(
            &shared.resolver,
            &shared.psl,
            &message,
            &envelope,
            &shared.hostname,
            unix_now(),
            crate::random::below(100),
        )
        .await;
        shared.reports.record(self.peer, &self.from, &auth);
        for (method, result) in auth.results() {
            metrics::counter!(super::metrics::AUTH_RESULTS, "method" => method, "result" => result)
                .increment(1);
        }
        if std::mem::take(&mut self.report)
            && let Some((_, dir)) = &shared.rua
        {
            let kept = dmarc_reports::keep(dir, &message);
            match kept {
                Ok(n) => tracing::info!(
                    service = "receiver",
                    id,
                    reports = n,
                    "DMARC aggregate report kept"
                ),
                Err(e)
                    if self.rcpts.is_empty()
                        && self.forward.is_empty()
                        && self.list_rcpts.is_empty() =>
                {
                    return Answer::Refuse(reply(
                        550,
                        5,
                        6,
                        0,
                        &format!("not a DMARC aggregate report: {e}"),
                    ));
                }
                Err(e) => tracing::warn!(service = "receiver", id, "not a DMARC report: {e}"),
            }
            if self.rcpts.is_empty() && self.forward.is_empty() && self.list_rcpts.is_empty() {
                return Answer::AcceptWith(reply(250, 2, 0, 0, &format!("report kept as {id}")));
            }
        }
        let dmarc_refuses = shared.dmarc_action == "enforce";
        if auth.dmarc.disposition == Policy::Reject && dmarc_refuses {
            tracing::info!(
                service = "receiver",
                id,
                from_domain = auth.dmarc.from_domain,
                "refused by DMARC"
            );
            return Answer::Refuse(reply(
                550,
                5,
                7,
                1,
                &format!("rejected by the DMARC policy of {}", auth.dmarc.from_domain),
            ));
        }
        let results = match auth.header_field(&shared.hostname) {
            Ok(field) => field,
            Err(e) => {
                return Answer::Refuse(reply(451, 4, 3, 0, &format!("cannot record results: {e}")));
            }
        };
        let marks = shared.dmarc_action != "annotate";
        let quarantine =
            if marks && matches!(auth.dmarc.disposition, Policy::Quarantine | Policy::Reject) {
                "X-Ptt-Quarantine: DMARC\r\n"
            } else {
                ""
            };
        // Training by the domain's users: our own DKIM signature and a
        // From of our domain say it came through their submission.
        if let Some(class) = self.learn.take() {
            let ours = |d: &str| d.eq_ignore_ascii_case(&shared.domain);
            let signed_by_us = auth.dkim.iter().any(|r| {
                matches!(r.verdict, ptt_dkim::Verdict::Pass)
                    && r.domain.as_deref().is_some_and(ours)
            });
            let from_us = crate::authn::from_domain(&message).is_ok_and(|d| ours(&d));
            if signed_by_us && from_us {
                let filter = shared.spam.clone();
                let learnt = messages_to_learn(&message);
                let n = learnt.len();
                let trained = tokio::task::spawn_blocking(move || {
                    learnt.iter().try_for_each(|m| filter.train(m, class))
                })
                .await;
                match trained {
                    Ok(Ok(())) => {
                        tracing::info!(service = "receiver", id, class = ?class, messages = n, "spam filter trained")
                    }
                    other => {
                        tracing::error!(service = "receiver", id, "training failed: {other:?}");
                        return Answer::Refuse(reply(451, 4, 3, 0, "cannot train the filter now"));
                    }
                }
                if self.rcpts.is_empty() && self.forward.is_empty() && self.list_rcpts.is_empty() {
                    return Answer::AcceptWith(reply(
                        250,
                        2,
                        0,
                        0,
                        &format!("learnt as {class:?} ({n} message(s))"),
                    ));
                }
            } else if self.rcpts.is_empty() && self.forward.is_empty() && self.list_rcpts.is_empty()
            {
                return Answer::Refuse(reply(
                    550,
                    5,
                    7,
                    1,
                    "only the domain's own users may train the filter (send through submission)",
                ));
            }
        }
        // The spam filter.
        let filter = shared.spam.clone();
        let scored = message.clone();
        let Ok(verdict) = tokio::task::spawn_blocking(move || filter.classify(&scored)).await
        else {
            return Answer::Refuse(reply(451, 4, 3, 0, "cannot score the message now"));
        };
        if let Some(name) = &verdict.dangerous_attachment {
            tracing::info!(
                service = "receiver",
                id,
                attachment = name,
                "refused: dangerous attachment"
            );
            return Answer::Refuse(reply(
                550,
                5,
                7,
                1,
                &format!("attachments of this type are not accepted: {name}"),
            ));
        }
        metrics::counter!(
            super::metrics::SPAM_VERDICTS,
            "verdict" => format!("{:?}", verdict.verdict).to_ascii_lowercase()
        )
        .increment(1);
        let is_spam =
            verdict.verdict == ptt_spam::Verdict::Spam && verdict.score >= shared.spam_threshold;
        if is_spam && shared.refuse_spam {
            tracing::info!(
                service = "receiver",
                id,
                score = verdict.score,
                "refused as spam"
            );
            return Answer::Refuse(reply(550, 5, 7, 1, "message refused as spam"));
        }
        let spam_fields = format!(
            "{}X-Spam-Score: {:.3}\r\n",
            verdict.headers(),
            verdict.score
        );
        let protocol = if tls { "ESMTPS" } else { "ESMTP" };
        let trace = received_field(&self.helo, self.peer, &shared.hostname, protocol, &id);
        let head = [
            results,
            auth.received_spf.clone(),
            quarantine.to_string(),
            spam_fields,
            trace,
        ]
        .concat();
        let rcpts = std::mem::take(&mut self.rcpts);
        let forward = std::mem::take(&mut self.forward);
        let list_rcpts = std::mem::take(&mut self.list_rcpts);
        if let (false, Some((_, lists))) = (list_rcpts.is_empty(), &shared.lists) {
            // The list server first: if it cannot take the message now,
            // nothing else is done and the sender tries again later.
            let copy = [head.as_bytes(), &message].concat();
            let nothing_else = rcpts.is_empty() && forward.is_empty();
            let next = Next {
                id: &id,
                name: "the list server",
                done: "to the list server",
            };
            if let Err(answer) = next
                .hand_off(Some(lists), &self.from, &list_rcpts, &copy, nothing_else)
                .await
            {
                return answer;
            }
            if nothing_else {
                return Answer::AcceptWith(reply(250, 2, 0, 0, &format!("to the lists as {id}")));
            }
        }
        if !forward.is_empty() {
            // Forwarded first: if the signer cannot take it now, nothing is
            // stored and the sender tries again later.
            let sender = rewrite_sender(&shared.srs, &shared.domain, &self.from, unix_now());
            let copy = [head.as_bytes(), &message].concat();
            let next = Next {
                id: &id,
                name: "the signer (forwarding)",
                done: "forwarded",
            };
            if let Err(answer) = next
                .hand_off(
                    shared.signer.as_ref(),
                    &sender,
                    &forward,
                    &copy,
                    rcpts.is_empty(),
                )
                .await
            {
                return answer;
            }
            if rcpts.is_empty() {
                return Answer::AcceptWith(reply(250, 2, 0, 0, &format!("forwarded as {id}")));
            }
        }
        let root = shared.mail.clone();
        let to = rcpts.clone();
        let stored = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            for user in &to {
                let dir = Maildir::create(&root.join(user))?;
                dir.deliver(&[head.as_bytes(), &message])?;
            }
            Ok(())
        })
        .await;
        match stored {
            Ok(Ok(())) => {
                tracing::info!(
                    service = "receiver", id, peer = %self.peer, from = self.from,
                    to = rcpts.join(","), dmarc = auth.dmarc.result.as_str(), "stored"
                );
                Answer::AcceptWith(reply(250, 2, 0, 0, &format!("stored as {id}")))
            }
            _ => Answer::Refuse(reply(451, 4, 3, 0, "cannot store the message now")),
        }
    }
}

/// The next service a message goes to from here (the list server, or
/// the signer for forwarding), for one message.
struct Next<'a> {
    /// The message's id here.
    id: &'a str,
    /// The service, as the logs and replies name it.
    name: &'static str,
    /// What the log says once it has the message.
    done: &'static str,
}

impl Next<'_> {
    /// Hands `copy` for `to` to `hop`. `Err` is the answer to give now:
    /// `451` when it cannot take it now (nothing else is done: the sender
    /// tries again), or its refusal when nothing else is to be delivered.
    async fn hand_off(
        &self,
        hop: Option<&Hop>,
        sender: &str,
        to: &[String],
        copy: &[u8],
        nothing_else: bool,
    ) -> Result<(), Answer> {
        let (id, name) = (self.id, self.name);
        let outcome = match hop {
            Some(hop) => hop.send(sender, to, copy).await,
            None => Handoff::Deferred(format!("{name} is not configured")),
        };
        match outcome {
            Handoff::Taken { .. } => {
                tracing::info!(
                    service = "receiver",
                    id,
                    from = sender,
                    to = to.join(","),
                    "{}",
                    self.done
                );
                Ok(())
            }
            Handoff::Deferred(why) => {
                tracing::warn!(service = "receiver", id, "{name} deferred: {why}");
                Err(Answer::Refuse(reply(
                    451,
                    4,
                    4,
                    0,
                    &format!("{name} cannot take the message now; try again later"),
                )))
            }
            Handoff::Refused(why) if nothing_else => {
                tracing::info!(service = "receiver", id, %why, "refused by {name}");
                Err(Answer::Refuse(why))
            }
            Handoff::Refused(why) => {
                tracing::error!(service = "receiver", id, %why, to = to.join(","), "refused by {name}; delivered to the others");
                Ok(())
            }
        }
    }
}

impl SessionHandler for Session {
    async fn event(&mut self, event: Event, session: &Server) -> Answer {
        if self.crowded {
            tracing::info!(service = "receiver", peer = %self.peer, "refused: too many sessions from this address");
            return Answer::Refuse(reply(
                421,
                4,
                7,
                0,
                "too many connections from your address; try again later",
            ));
        }
        match event {
            Event::Hello { name, .. } => {
                self.helo = name;
                self.reset();
                Answer::Accept
            }
            Event::Auth { .. } => Answer::Refuse(reply(502, 5, 5, 1, "AUTH is for submission")),
            Event::Mail { from, .. } => {
                self.reset();
                if self.over_rate() {
                    tracing::info!(service = "receiver", peer = %self.peer, "refused: too many messages from this address this minute");
                    return Answer::Refuse(reply(
                        450,
                        4,
                        7,
                        1,
                        "too many messages from your address; try again in a minute",
                    ));
                }
                self.from = from.mailbox().map(|m| m.to_string()).unwrap_or_default();
                Answer::Accept
            }
            Event::Rcpt { to, .. } => {
                let domain = &self.shared.domain;
                let mailbox = match to.mailbox() {
                    Some(m) => m.to_string(),
                    None => format!("postmaster@{domain}"),
                };
                let rcpt_domain = crate::userdb::domain_of(&mailbox);
                let db = self.shared.users.get();
                if let Some((list_domain, lists)) = &self.shared.lists
                    && rcpt_domain.eq_ignore_ascii_case(list_domain)
                    && !(rcpt_domain == *domain && db.owner(&mailbox).is_some())
                {
                    // The list server knows its addresses: asked before
                    // answering, so an unknown one is refused here, not
                    // bounced later.
                    match lists.verify(&self.from, &mailbox).await {
                        Verified::Yes => {
                            if !self.list_rcpts.contains(&mailbox) {
                                self.list_rcpts.push(mailbox);
                            }
                            return Answer::Accept;
                        }
                        Verified::No(why) if rcpt_domain != *domain => {
                            return Answer::Refuse(why);
                        }
                        // Our own domain: perhaps a user's after all.
                        Verified::No(_) => {}
                        Verified::Unknown(why) => {
                            tracing::warn!(
                                service = "receiver",
                                "list server not reachable: {why}"
                            );
                            return Answer::Refuse(reply(
                                451,
                                4,
                                4,
                                1,
                                "the list server cannot be asked now; try again later",
                            ));
                        }
                    }
                }
                if rcpt_domain != *domain {
                    return Answer::Refuse(reply(554, 5, 7, 1, "relay access denied"));
                }
                if let Some((rua, _)) = &self.shared.rua
                    && mailbox.eq_ignore_ascii_case(rua)
                {
                    self.report = true;
                    return Answer::Accept;
                }
                // spam@ and ham@ train the filter (unless a user has them).
                let local = mailbox
                    .rsplit_once('@')
                    .map(|(l, _)| l.to_ascii_lowercase())
                    .unwrap_or_default();
                if db.owner(&mailbox).is_none() && (local == "spam" || local == "ham") {
                    self.learn = Some(if local == "spam" {
                        ptt_spam::Class::Spam
                    } else {
                        ptt_spam::Class::Ham
                    });
                    return Answer::Accept;
                }
                let (store, targets) =
                    match destination(&db, domain, &self.shared.srs, &mailbox, unix_now()) {
                        Destination::Store(store) => (store, Vec::new()),
                        Destination::Forward { store, targets } => (store, targets),
                        Destination::Unknown(why) => {
                            return Answer::Refuse(reply(550, 5, 1, 1, &why));
                        }
                    };
                for user in store {
                    if !self.rcpts.contains(&user) {
                        self.rcpts.push(user);
                    }
                }
                for target in targets {
                    if !self.forward.iter().any(|t| t.eq_ignore_ascii_case(&target)) {
                        self.forward.push(target);
                    }
                }
                Answer::Accept
            }
            Event::DataStart { .. } => {
                self.data.clear();
                Answer::Accept
            }
            Event::DataChunk(bytes) => {
                if (self.data.len() + bytes.len()) as u64 <= session.config().max_message_size {
                    self.data.extend_from_slice(&bytes);
                }
                Answer::Accept
            }
            Event::DataEnd { .. } => self.end_of_data(session.is_tls()).await,
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
