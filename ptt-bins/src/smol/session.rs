//! One SMTP session of the smoltcp receiver, from the client's greeting to
//! the next hop's answer: the ptt-smtp server machine on a [`Stream`], the
//! message authenticated by the [`Authenticator`] with its questions sent
//! through the loop's DNS client, and handed on by the ptt-smtp client
//! machine on a second connection.
//!
//! The receiver is a front MX with no users of its own: recipients in its
//! domains are taken, anything else is refused (it relays for nobody), and
//! every message goes to one next hop, which answers for it before the
//! client gets its reply (nothing is queued here).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use ptt_dkim::{SharedKeyCache, Verifier, VerifyPolicy};
use ptt_dmarc::Policy;
use ptt_dmarc::psl::PublicSuffixList;
use ptt_dns::{Answer, Evaluator as _, Query, Step};
use ptt_smtp::server::{Input, Output};
use ptt_smtp::{
    ClientConfig, EnhancedCode, Event, ForwardPath, MailParams, Message, RcptParams, Reply,
    ReversePath, Server, ServerConfig,
};
use smoltcp::iface::{Interface, SocketHandle, SocketSet};
use smoltcp::wire::IpEndpoint;

use super::budget::{Budget, allocated};
use super::dns::{Asker, Dns};
use super::next_hop::{NextHop, Outcome};
use super::stream::{Read, Stream};
use crate::authn::{Authentication, Authenticator, Envelope, is_forged_result, without_fields};
use crate::service::hop::{Handoff, handoff_of};
use crate::service::trace::received_field_at;

/// What every session shares.
pub(crate) struct Shared {
    pub(crate) smtp: Arc<ServerConfig>,
    pub(crate) tls: Arc<rustls::ServerConfig>,
    pub(crate) psl: &'static PublicSuffixList,
    /// This host's name: the `Authentication-Results` id and `Received`'s `by`.
    pub(crate) hostname: String,
    /// The domains mail is taken for.
    pub(crate) domains: Vec<String>,
    pub(crate) next_hop: IpEndpoint,
    pub(crate) client: ClientConfig,
    pub(crate) dkim_keys: Arc<SharedKeyCache>,
    pub(crate) budget: Budget,
    /// Socket buffer size of each connection.
    pub(crate) socket_buffer: usize,
}

/// The clocks of one turn of the loop, read once.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Now {
    /// smoltcp's clock, as the SMTP machines count time.
    pub(crate) time: Duration,
    /// Unix seconds (DKIM `t=`/`x=`, SPF, `Received`).
    pub(crate) unix: u64,
    /// A random number for this turn (the DMARC `pct` sample).
    pub(crate) random: u32,
}

/// What a session's step may use of the loop.
pub(crate) struct Turn<'l, 's> {
    pub(crate) sockets: &'l mut SocketSet<'s>,
    pub(crate) iface: &'l mut Interface,
    pub(crate) dns: &'l mut Dns,
    pub(crate) shared: &'l Shared,
    pub(crate) now: Now,
    /// The next local port for a connection to the next hop.
    pub(crate) next_port: &'l mut u16,
}

/// The message waiting to be handed on once it is authenticated.
struct Received {
    message: Vec<u8>,
    protocol: &'static str,
}

/// Where a session is.
enum Phase {
    /// Talking with the client.
    Smtp,
    /// The next hop is asked whether it takes mail for this recipient
    /// (transaction `id` on the kept session).
    Verifying { id: u64, rcpt: ForwardPath },
    /// The message is being authenticated (DNS questions out).
    Authenticating(Box<Authenticator<'static>>, Received),
    /// The message is with the next hop (transaction `id`).
    HandingOff { id: u64 },
}

/// One client's session.
pub(crate) struct Session {
    pub(crate) id: Asker,
    server: Server,
    stream: Stream,
    peer: IpAddr,
    helo: String,
    extended: bool,
    from: ReversePath,
    rcpts: Vec<ForwardPath>,
    data: Vec<u8>,
    /// Message data came while the heap was over its budget: it was
    /// dropped, and the message will be refused.
    over_budget: bool,
    tls_told: bool,
    phase: Phase,
    /// The session with the next hop, kept from the first recipient on.
    hop: Option<Box<NextHop>>,
    deadline: Option<Duration>,
    closing: bool,
    /// Sockets of this session to be removed once closed.
    pub(crate) spent: Vec<SocketHandle>,
    pub(crate) done: bool,
}

fn reply(code: u16, class: u8, subject: u16, detail: u16, text: &str) -> Reply {
    Reply::new(code, Some(EnhancedCode::new(class, subject, detail)), text)
}

fn insufficient_storage() -> Reply {
    reply(452, 4, 3, 1, "insufficient system storage; try again later")
}

fn next_hop_unreachable() -> Reply {
    reply(
        451,
        4,
        4,
        0,
        "the next hop cannot take the message now; try again later",
    )
}

impl Session {
    /// A session on the connection `handle`, from `peer`.
    pub(crate) fn new(
        id: Asker,
        handle: SocketHandle,
        peer: IpAddr,
        shared: &Shared,
        now: Now,
    ) -> Session {
        Session {
            id,
            server: Server::new(shared.smtp.clone(), now.time, false),
            stream: Stream::new(handle),
            peer,
            helo: String::new(),
            extended: false,
            from: ReversePath::Null,
            rcpts: Vec::new(),
            data: Vec::new(),
            over_budget: false,
            tls_told: false,
            phase: Phase::Smtp,
            hop: None,
            deadline: None,
            closing: false,
            spent: Vec::new(),
            done: false,
        }
    }

    /// When the session wants the loop to turn again at the latest.
    pub(crate) fn poll_at(&self) -> Option<Duration> {
        match &self.hop {
            Some(hop) => Some(
                self.deadline
                    .map_or(hop.poll_at(), |d| d.min(hop.poll_at())),
            ),
            None => self.deadline,
        }
    }

    /// An answer to a question this session's authentication asked.
    pub(crate) fn answer(&mut self, query: &Query, answer: Answer, turn: &mut Turn<'_, '_>) {
        if let Phase::Authenticating(auth, _) = &mut self.phase {
            auth.answer(query, answer);
            self.authenticate(turn);
        }
    }

    /// Everything the session can do now.
    pub(crate) fn step(&mut self, turn: &mut Turn<'_, '_>) {
        if self.done {
            return;
        }
        if let Some(hop) = &mut self.hop {
            hop.step(turn.sockets, turn.now.time);
            self.next_hop_answered(turn);
        }
        if matches!(self.phase, Phase::Smtp) && !self.closing {
            match self.stream.read(turn.sockets) {
                Read::Data(bytes) => self
                    .server
                    .handle_input(Input::Receive(turn.now.time, &bytes)),
                Read::Nothing => {}
                Read::Closed(why) => {
                    if let Some(why) = why {
                        tracing::info!(service = "smol-receiver", peer = %self.peer, "{why}");
                    }
                    self.server.handle_input(Input::Closed(turn.now.time));
                    self.closing = true;
                }
            }
            if self.stream.is_tls() && !self.tls_told && self.stream.tls_established() {
                self.tls_told = true;
                self.server
                    .handle_input(Input::TlsEstablished(turn.now.time));
            }
            if self.deadline.is_some_and(|d| turn.now.time >= d) {
                self.deadline = None;
                self.server.handle_input(Input::Timeout(turn.now.time));
            }
            self.drain(turn);
        }
        self.stream.flush(turn.sockets);
        if self.closing && !self.stream.has_output() {
            self.finish(turn);
        }
    }

    /// Acts on what the server machine has to say.
    fn drain(&mut self, turn: &mut Turn<'_, '_>) {
        loop {
            match self.server.poll_output() {
                Output::Transmit(bytes) => self.stream.write(&bytes),
                Output::Event(event) => {
                    self.on_event(event, turn);
                    if !matches!(self.phase, Phase::Smtp) {
                        // The answer comes with the authentication.
                        return;
                    }
                }
                Output::StartTls => {
                    if let Err(why) = self.stream.start_server_tls(turn.shared.tls.clone()) {
                        tracing::warn!(service = "smol-receiver", "{why}");
                        self.closing = true;
                        return;
                    }
                }
                Output::Close => {
                    self.closing = true;
                    return;
                }
                Output::Timeout(at) => {
                    self.deadline = Some(at);
                    return;
                }
            }
        }
    }

    fn reset(&mut self) {
        self.from = ReversePath::Null;
        self.rcpts.clear();
        self.data = Vec::new();
        self.over_budget = false;
    }

    fn on_event(&mut self, event: Event, turn: &mut Turn<'_, '_>) {
        let shared = turn.shared;
        let answer = match event {
            Event::Hello { name, extended } => {
                self.helo = name;
                self.extended = extended;
                self.reset();
                Ok(None)
            }
            Event::Auth { .. } => Err(reply(502, 5, 5, 1, "AUTH is not offered here")),
            Event::Mail { from, params } => {
                self.reset();
                let size = params.size.unwrap_or(0);
                let size = usize::try_from(size).unwrap_or(usize::MAX);
                if shared.budget.over(allocated().saturating_add(size)) {
                    Err(insufficient_storage())
                } else {
                    self.from = from;
                    Ok(None)
                }
            }
            Event::Rcpt { to, .. } => {
                let ours = match &to {
                    ForwardPath::Postmaster => true,
                    ForwardPath::Mailbox(m) => match m.domain() {
                        ptt_smtp::Domain::Name(d) => shared
                            .domains
                            .iter()
                            .any(|ours| ours.eq_ignore_ascii_case(d.trim_end_matches('.'))),
                        // Address literals: relay tricks, never ours.
                        _ => false,
                    },
                };
                if ours {
                    // The next hop says whether it takes it.
                    self.verify(to, turn);
                    return;
                } else {
                    Err(reply(554, 5, 7, 1, "relay access denied"))
                }
            }
            Event::DataStart { .. } => {
                self.data = Vec::new();
                self.over_budget = false;
                return;
            }
            Event::DataChunk(chunk) => {
                if self.over_budget || shared.budget.over(allocated()) {
                    self.over_budget = true;
                    self.data = Vec::new();
                } else {
                    self.data.extend_from_slice(&chunk);
                }
                return;
            }
            Event::DataEnd { .. } => {
                if std::mem::take(&mut self.over_budget) {
                    self.data = Vec::new();
                    Err(insufficient_storage())
                } else {
                    self.begin_authentication(turn);
                    return;
                }
            }
            Event::DataRefused { .. } | Event::Reset => {
                self.reset();
                return;
            }
            Event::Vrfy(_) => Ok(None),
            Event::Quit => return,
            // Events a later ptt-smtp adds are not ours to answer.
            _ => return,
        };
        self.give(answer);
    }

    /// Answers the event the server machine waits on: accept (with the
    /// machine's reply, or this one) or refuse.
    fn give(&mut self, answer: Result<Option<Reply>, Reply>) {
        let _ = match answer {
            Ok(None) => self.server.accept(),
            Ok(Some(r)) => self.server.accept_with(r),
            Err(r) => self.server.refuse(r),
        };
    }

    /// [`Session::give`], then what the machine says to it is sent.
    fn respond(&mut self, answer: Result<Option<Reply>, Reply>, turn: &mut Turn<'_, '_>) {
        self.give(answer);
        self.drain(turn);
        self.stream.flush(turn.sockets);
    }

    fn begin_authentication(&mut self, turn: &mut Turn<'_, '_>) {
        let shared = turn.shared;
        let message = without_fields(&std::mem::take(&mut self.data), |f| {
            is_forged_result(f, &shared.hostname)
        });
        let envelope = Envelope {
            ip: self.peer,
            helo: self.helo.clone(),
            mail_from: self
                .from
                .mailbox()
                .map(|m| m.to_string())
                .unwrap_or_default(),
        };
        let verifier = Verifier::new(VerifyPolicy::default(), turn.now.unix)
            .with_key_cache(shared.dkim_keys.clone());
        let auth = Authenticator::new(
            shared.psl,
            &message,
            &envelope,
            &shared.hostname,
            turn.now.unix,
            turn.now.random % 100,
            verifier,
        );
        let protocol = match (self.extended, self.stream.is_tls()) {
            (true, true) => "ESMTPS",
            (true, false) => "ESMTP",
            (false, true) => "SMTPS",
            (false, false) => "SMTP",
        };
        self.phase = Phase::Authenticating(Box::new(auth), Received { message, protocol });
        self.authenticate(turn);
    }

    /// Asks what the authentication asks, and goes on once it is done.
    fn authenticate(&mut self, turn: &mut Turn<'_, '_>) {
        let Phase::Authenticating(auth, _) = &mut self.phase else {
            return;
        };
        let done = loop {
            match auth.poll() {
                Step::Query(q) => turn.dns.ask(q, self.id),
                Step::Wait => return,
                Step::Done(a) => break a,
            }
        };
        let Phase::Authenticating(_, received) = std::mem::replace(&mut self.phase, Phase::Smtp)
        else {
            return;
        };
        self.authenticated(done, received, turn);
    }

    fn authenticated(&mut self, auth: Authentication, received: Received, turn: &mut Turn<'_, '_>) {
        let shared = turn.shared;
        let id = format!("{:x}.{}", turn.now.unix, self.id);
        if auth.dmarc.disposition == Policy::Reject {
            tracing::info!(
                service = "smol-receiver",
                id,
                from_domain = auth.dmarc.from_domain,
                "refused by DMARC"
            );
            self.answer_client(
                Err(reply(
                    550,
                    5,
                    7,
                    1,
                    &format!("rejected by the DMARC policy of {}", auth.dmarc.from_domain),
                )),
                turn,
            );
            return;
        }
        let results = match auth.header_field(&shared.hostname) {
            Ok(field) => field,
            Err(e) => {
                self.answer_client(
                    Err(reply(451, 4, 3, 0, &format!("cannot record results: {e}"))),
                    turn,
                );
                return;
            }
        };
        let trace = received_field_at(
            &self.helo,
            self.peer,
            &shared.hostname,
            received.protocol,
            &id,
            turn.now.unix,
        );
        let quarantine = if auth.dmarc.disposition == Policy::Quarantine {
            "X-Ptt-Quarantine: DMARC\r\n"
        } else {
            ""
        };
        let data = [
            results.as_bytes(),
            auth.received_spf.as_bytes(),
            quarantine.as_bytes(),
            trace.as_bytes(),
            &received.message,
        ]
        .concat();
        drop(received);
        tracing::info!(
            service = "smol-receiver",
            id,
            peer = %self.peer,
            results = auth.results().iter().map(|(m, r)| format!("{m}={r}")).collect::<Vec<_>>().join(" "),
            "authenticated"
        );
        let message = Message {
            from: self.from.clone(),
            params: MailParams::default(),
            to: self
                .rcpts
                .iter()
                .map(|r| (r.clone(), RcptParams::default()))
                .collect(),
            data,
        };
        if let Err(why) = self.on_next_hop(turn, |client| Phase::HandingOff {
            id: client.send(message),
        }) {
            tracing::warn!(
                service = "smol-receiver",
                id,
                "cannot reach the next hop: {why}"
            );
            self.answer_client(Err(next_hop_unreachable()), turn);
        }
    }

    /// The kept session with the next hop, opened (again) if it has none
    /// that works.
    fn next_hop(&mut self, turn: &mut Turn<'_, '_>) -> Result<&mut NextHop, String> {
        if let Some(mut hop) = self.hop.take_if(|h| !h.usable()) {
            hop.close(turn.sockets, turn.now.time);
            self.spent.push(hop.handle());
        }
        if self.hop.is_none() {
            *turn.next_port = turn.next_port.wrapping_add(1);
            let port = 49152 + *turn.next_port % 16384;
            let shared = turn.shared;
            let hop = NextHop::open(
                shared.next_hop,
                port,
                &shared.client,
                shared.socket_buffer,
                turn.iface,
                turn.sockets,
                turn.now.time,
            )?;
            self.hop = Some(Box::new(hop));
        }
        self.hop
            .as_deref_mut()
            .ok_or_else(|| "no next hop".to_string())
    }

    /// Starts a transaction on the next hop (`start` queues it and gives
    /// the phase that waits for it), and takes its end if it is there
    /// already.
    fn on_next_hop(
        &mut self,
        turn: &mut Turn<'_, '_>,
        start: impl FnOnce(&mut ptt_smtp::Client) -> Phase,
    ) -> Result<(), String> {
        let hop = self.next_hop(turn)?;
        let phase = start(&mut hop.client);
        hop.step(turn.sockets, turn.now.time);
        self.phase = phase;
        self.next_hop_answered(turn);
        Ok(())
    }

    /// Asks the next hop about `rcpt`; the client's RCPT is answered with
    /// what it says.
    fn verify(&mut self, rcpt: ForwardPath, turn: &mut Turn<'_, '_>) {
        let from = self.from.clone();
        if let Err(why) = self.on_next_hop(turn, |client| Phase::Verifying {
            id: client.verify(from, vec![(rcpt.clone(), RcptParams::default())]),
            rcpt,
        }) {
            tracing::warn!(
                service = "smol-receiver",
                "cannot reach the next hop: {why}"
            );
            self.give(Err(next_hop_unreachable()));
        }
    }

    /// What the next hop said, once it has, given to the client.
    fn next_hop_answered(&mut self, turn: &mut Turn<'_, '_>) {
        let (id, verifying) = match &self.phase {
            Phase::Verifying { id, .. } => (*id, true),
            Phase::HandingOff { id } => (*id, false),
            _ => return,
        };
        let Some(outcome) = self.hop.as_mut().and_then(|h| h.take(id)) else {
            return;
        };
        let phase = std::mem::replace(&mut self.phase, Phase::Smtp);
        if verifying {
            let Phase::Verifying { rcpt, .. } = phase else {
                return;
            };
            let answer = match outcome {
                Outcome::Done(t) => {
                    let said = t
                        .rcpts
                        .into_iter()
                        .next()
                        .map(|(_, r)| r)
                        .filter(|_| t.mail.is_positive())
                        .unwrap_or(t.mail);
                    if said.is_positive() {
                        self.rcpts.push(rcpt);
                        Ok(None)
                    } else if said.code() >= 500 {
                        Err(said)
                    } else {
                        Err(reply(
                            451,
                            4,
                            4,
                            0,
                            &format!("the next hop says: {}", said.text()),
                        ))
                    }
                }
                Outcome::Failed(why) => {
                    tracing::warn!(service = "smol-receiver", "next hop: {why}");
                    Err(next_hop_unreachable())
                }
            };
            self.respond(answer, turn);
            return;
        }
        let answer = match outcome {
            Outcome::Done(t) => match handoff_of(t, turn.shared.next_hop) {
                Handoff::Taken {
                    reply: r,
                    refused,
                    deferred,
                } => {
                    if !refused.is_empty() || !deferred.is_empty() {
                        tracing::error!(
                            service = "smol-receiver",
                            refused = refused.len(),
                            deferred = deferred.len(),
                            "the next hop took the message for some recipients only, though it had said yes to each"
                        );
                    }
                    Ok(Some(reply(
                        250,
                        2,
                        0,
                        0,
                        &format!("handed on: {}", r.text()),
                    )))
                }
                Handoff::Refused(r) => Err(r),
                Handoff::Deferred(why) => {
                    tracing::warn!(service = "smol-receiver", "next hop deferred: {why}");
                    Err(next_hop_unreachable())
                }
            },
            Outcome::Failed(why) => {
                tracing::warn!(service = "smol-receiver", "next hop: {why}");
                Err(next_hop_unreachable())
            }
        };
        self.answer_client(answer, turn);
    }

    /// Gives the client its reply to the end of data and goes on reading.
    fn answer_client(&mut self, answer: Result<Option<Reply>, Reply>, turn: &mut Turn<'_, '_>) {
        self.phase = Phase::Smtp;
        self.reset();
        self.respond(answer, turn);
    }

    fn finish(&mut self, turn: &mut Turn<'_, '_>) {
        self.stream.close(turn.sockets);
        self.spent.push(self.stream.handle);
        if let Some(mut hop) = self.hop.take() {
            hop.close(turn.sockets, turn.now.time);
            self.spent.push(hop.handle());
        }
        turn.dns.forget(self.id);
        self.done = true;
        tracing::info!(
            service = "smol-receiver",
            peer = %self.peer,
            allocated = super::budget::allocated(),
            peak_allocated = super::budget::peak_allocated(),
            "session ended"
        );
    }
}
