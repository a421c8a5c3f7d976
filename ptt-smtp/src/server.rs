//! The server session machine: bytes in, events out, replies out as bytes.
//!
//! See the crate documentation for the driving loop. One [`Server`] is one
//! SMTP connection. It never blocks and never reads a clock: every input
//! carries the caller's `now` ([`Time`]), and [`Output::Timeout`] says when
//! to call again if nothing arrives.

use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::time::Duration;

use crate::Time;
use crate::address::{AddressError, ForwardPath, ReversePath};
use crate::command::{Body, Command, CommandError, MailParams, RcptParams};
use crate::reply::{EnhancedCode, Reply};
use crate::sasl::{self, Credentials, Mechanism, SaslError};

/// Limits and offered extensions of a server. Shared by all connections of
/// a listener (`Arc<ServerConfig>`).
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The name in the greeting and the EHLO reply.
    pub hostname: String,
    /// Text after the host name in the greeting.
    pub banner: String,
    /// Longest command line, CRLF included (RFC 5321 requires at least 512).
    pub max_line_length: usize,
    /// Longest SASL response line during AUTH.
    pub max_auth_line_length: usize,
    /// Recipients per transaction; more get `452 4.5.3`.
    pub max_recipients: usize,
    /// Largest message in octets (after dot-unstuffing), announced with SIZE
    /// and enforced while the data streams (`552 5.3.4`).
    pub max_message_size: u64,
    /// Bad commands (unknown, syntax errors, bad sequence, too many
    /// recipients) per session before `421 4.7.0` and close.
    pub max_bad_commands: u32,
    /// RSET commands per session before `421 4.7.0` and close.
    pub max_rsets: u32,
    /// Failed AUTH attempts per session before `421 4.7.0` and close.
    pub max_auth_failures: u32,
    /// Offer STARTTLS (the caller must then be able to do a handshake).
    pub starttls: bool,
    /// Offer AUTH PLAIN LOGIN (only under TLS unless `auth_without_tls`).
    pub auth: bool,
    /// Allow AUTH without TLS (tests and loopback only).
    pub auth_without_tls: bool,
    /// Refuse MAIL until the client has authenticated (`530 5.7.0`), as a
    /// submission server does.
    pub require_auth: bool,
    /// Offer PIPELINING (RFC 2920).
    pub pipelining: bool,
    /// Offer CHUNKING / BDAT (RFC 3030).
    pub chunking: bool,
    /// Offer 8BITMIME (RFC 6152).
    pub eightbitmime: bool,
    /// Offer SMTPUTF8 (RFC 6531).
    pub smtputf8: bool,
    /// Offer DSN (RFC 3461) and accept its parameters.
    pub dsn: bool,
    /// Put enhanced status codes in replies (RFC 2034).
    pub enhanced_status_codes: bool,
    /// Idle time allowed while waiting for a command.
    pub command_timeout: Duration,
    /// Idle time allowed while message data is expected.
    pub data_timeout: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            hostname: "localhost".into(),
            banner: "ESMTP ptt".into(),
            max_line_length: 1000,
            max_auth_line_length: 12288,
            max_recipients: 1000,
            max_message_size: 36_700_160,
            max_bad_commands: 20,
            max_rsets: 100,
            max_auth_failures: 3,
            starttls: false,
            auth: false,
            auth_without_tls: false,
            require_auth: false,
            pipelining: true,
            chunking: true,
            eightbitmime: true,
            smtputf8: true,
            dsn: true,
            enhanced_status_codes: true,
            command_timeout: Duration::from_secs(300),
            data_timeout: Duration::from_secs(180),
        }
    }
}

/// What the caller gives the machine.
#[derive(Debug, Clone, Copy)]
pub enum Input<'a> {
    /// Bytes read from the client at `now`.
    Receive(Time, &'a [u8]),
    /// The time is `now` (a wakeup asked for by [`Output::Timeout`]).
    Timeout(Time),
    /// The TLS handshake asked for by [`Output::StartTls`] has completed.
    TlsEstablished(Time),
    /// The client closed the connection (EOF) or it broke.
    Closed(Time),
}

/// What the machine asks the caller to do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Write these bytes to the client.
    Transmit(Vec<u8>),
    /// Something happened; those that [`Event::needs_answer`] wait for
    /// [`Server::accept`], [`Server::accept_with`] or [`Server::refuse`].
    Event(Event),
    /// Start the TLS handshake now (the 220 reply has been transmitted), then
    /// give [`Input::TlsEstablished`]. Bytes the client sent after STARTTLS
    /// in the clear have been discarded.
    StartTls,
    /// Close the connection (after QUIT, a 421, or when the client closed).
    Close,
    /// Nothing to do until more input arrives or until this time.
    Timeout(Time),
}

/// Something the client did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// HELO or EHLO (answer: accept, or refuse with a reply). Any open
    /// transaction has been dropped.
    Hello {
        /// The name the client gave.
        name: String,
        /// EHLO rather than HELO.
        extended: bool,
    },
    /// AUTH with complete credentials (answer: accept gives `235 2.7.0`,
    /// refuse with e.g. `535 5.7.8`).
    Auth {
        /// PLAIN or LOGIN.
        mechanism: Mechanism,
        /// What the client sent.
        credentials: Credentials,
    },
    /// MAIL FROM (answer).
    Mail {
        /// The reverse path.
        from: ReversePath,
        /// Its parameters (SIZE, BODY, SMTPUTF8, RET, ENVID, AUTH).
        params: MailParams,
    },
    /// RCPT TO (answer).
    Rcpt {
        /// The forward path.
        to: ForwardPath,
        /// Its parameters (NOTIFY, ORCPT).
        params: RcptParams,
    },
    /// Message data begins (after `354`, or at the first BDAT chunk).
    DataStart {
        /// Sent with BDAT.
        chunked: bool,
    },
    /// Message bytes, dot-unstuffed, in order.
    DataChunk(Vec<u8>),
    /// The message is complete (answer: accept once it is stored, which
    /// sends `250`; or refuse).
    DataEnd {
        /// The message size in octets.
        size: u64,
    },
    /// The machine refused the message data (bare CR or LF, NUL, too large)
    /// and dropped the transaction; discard what was collected.
    DataRefused {
        /// The reply sent.
        reply: Reply,
    },
    /// The open transaction was dropped (RSET, EHLO, STARTTLS, a bad line,
    /// the connection closed); discard anything collected for it.
    Reset,
    /// VRFY (answer: accept gives `252 2.5.0`; or refuse, or accept with a reply).
    Vrfy(String),
    /// The client said QUIT.
    Quit,
}

impl Event {
    /// Whether the machine waits for [`Server::accept`] / [`Server::refuse`].
    pub fn needs_answer(&self) -> bool {
        matches!(
            self,
            Event::Hello { .. }
                | Event::Auth { .. }
                | Event::Mail { .. }
                | Event::Rcpt { .. }
                | Event::DataEnd { .. }
                | Event::Vrfy(_)
        )
    }
}

/// Returned when the caller answers while no event waits for an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("no event is waiting for an answer")]
pub struct NoPendingEvent;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scan {
    LineStart,
    Mid,
    Cr,
    Dot,
    DotCr,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Problem {
    BareLf,
    BareCr,
    Nul,
    TooBig,
}

/// Scans message data: only CRLF.CRLF ends it (with `dots`), a leading dot
/// is removed, and bare CR, bare LF and NUL are problems.
#[derive(Debug, Clone, Copy)]
struct DataScan {
    state: Scan,
    dots: bool,
    bytes: u64,
    max: u64,
    problem: Option<Problem>,
}

impl DataScan {
    fn new(dots: bool, max: u64, bytes: u64) -> Self {
        DataScan {
            state: Scan::LineStart,
            dots,
            bytes,
            max,
            problem: None,
        }
    }

    fn fail(&mut self, p: Problem) {
        if self.problem.is_none() {
            self.problem = Some(p);
        }
    }

    fn emit(&mut self, bytes: &[u8], out: &mut Vec<u8>) {
        if self.problem.is_some() || bytes.is_empty() {
            return;
        }
        self.bytes += bytes.len() as u64;
        if self.bytes > self.max {
            self.problem = Some(Problem::TooBig);
        } else {
            out.extend_from_slice(bytes);
        }
    }

    /// Returns how many bytes were consumed and whether the end marker was
    /// seen (only with `dots`).
    fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> (usize, bool) {
        let mut i = 0;
        while let Some(&b) = input.get(i) {
            match self.state {
                Scan::Mid => {
                    let rest = input.get(i..).unwrap_or_default();
                    let n = memchr::memchr3(b'\r', b'\n', 0, rest).unwrap_or(rest.len());
                    self.emit(rest.get(..n).unwrap_or_default(), out);
                    i += n;
                    match input.get(i) {
                        None => break,
                        Some(b'\r') => self.state = Scan::Cr,
                        Some(b'\n') => self.fail(Problem::BareLf),
                        Some(_) => self.fail(Problem::Nul),
                    }
                    i += 1;
                }
                Scan::LineStart => {
                    if self.dots && b == b'.' {
                        i += 1;
                        self.state = Scan::Dot;
                    } else {
                        self.state = Scan::Mid;
                    }
                }
                Scan::Cr => {
                    if b == b'\n' {
                        i += 1;
                        self.emit(b"\r\n", out);
                        self.state = Scan::LineStart;
                    } else {
                        self.fail(Problem::BareCr);
                        self.state = Scan::Mid;
                    }
                }
                Scan::Dot => {
                    if b == b'\r' {
                        i += 1;
                        self.state = Scan::DotCr;
                    } else {
                        self.state = Scan::Mid;
                    }
                }
                Scan::DotCr => {
                    if b == b'\n' {
                        return (i + 1, true);
                    }
                    self.fail(Problem::BareCr);
                    self.state = Scan::Mid;
                }
            }
        }
        (i, false)
    }

    /// At the end of the last BDAT chunk: a CR left over is a bare CR.
    fn finish_chunks(&mut self) {
        if self.state == Scan::Cr {
            self.fail(Problem::BareCr);
        }
    }
}

#[derive(Debug, Clone)]
enum State {
    /// Reading command lines.
    Command,
    /// Discarding the rest of an overlong line.
    Discard,
    /// After 354, reading the message.
    Data(DataScan),
    /// Reading the octets of one BDAT chunk; `scan` is `None` when the chunk
    /// is refused (bad sequence) and only read to be skipped.
    Bdat {
        remaining: u64,
        last: bool,
        scan: Option<DataScan>,
        refusal: Option<Reply>,
    },
    /// AUTH PLAIN waits for the response.
    AuthPlain,
    /// AUTH LOGIN waits for the user name.
    AuthLoginUser,
    /// AUTH LOGIN waits for the password.
    AuthLoginPass(String),
    /// 220 to STARTTLS sent; waiting for the handshake.
    StartTls { signalled: bool },
    /// The session is over.
    Closed,
}

#[derive(Debug, Clone)]
enum Ask {
    Hello { name: String, extended: bool },
    Auth { username: String },
    Mail { smtputf8: bool },
    Rcpt,
    DataEnd,
    Vrfy,
}

#[derive(Debug, Clone)]
struct Transaction {
    smtputf8: bool,
    rcpts: usize,
    /// BDAT chunks so far (then DATA is out of sequence), and their scan.
    chunked: Option<DataScan>,
}

const fn ec(class: u8, subject: u16, detail: u16) -> Option<EnhancedCode> {
    Some(EnhancedCode::new(class, subject, detail))
}

/// One SMTP server session.
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use ptt_smtp::server::{Event, Input, Output, Server, ServerConfig};
///
/// let t = Duration::ZERO;
/// let mut s = Server::new(Arc::new(ServerConfig::default()), t, false);
/// s.handle_input(Input::Receive(t, b"EHLO client.test\r\nQUIT\r\n"));
/// let mut wire = Vec::new();
/// loop {
///     match s.poll_output() {
///         Output::Transmit(b) => wire.extend(b),
///         Output::Event(e) if e.needs_answer() => s.accept().unwrap(),
///         Output::Event(_) => {}
///         Output::Close => break,
///         other => panic!("{other:?}"),
///     }
/// }
/// let wire = String::from_utf8(wire).unwrap();
/// assert!(wire.starts_with("220 localhost ESMTP ptt\r\n250-localhost"));
/// assert!(wire.ends_with("221 2.0.0 Bye\r\n"));
/// ```
#[derive(Debug)]
pub struct Server {
    config: Arc<ServerConfig>,
    state: State,
    inbuf: Vec<u8>,
    pos: usize,
    out: Vec<u8>,
    events: VecDeque<Event>,
    pending: Option<Ask>,
    hello: Option<(String, bool)>,
    tls: bool,
    authenticated: Option<String>,
    transaction: Option<Transaction>,
    bad_commands: u32,
    rsets: u32,
    auth_failures: u32,
    last_activity: Time,
}

impl Server {
    /// A new session at `now`; `tls` is true for implicit TLS (port 465),
    /// where the handshake came before the greeting. The greeting is the
    /// first output.
    pub fn new(config: Arc<ServerConfig>, now: Time, tls: bool) -> Server {
        let mut s = Server {
            config,
            state: State::Command,
            inbuf: Vec::new(),
            pos: 0,
            out: Vec::new(),
            events: VecDeque::new(),
            pending: None,
            hello: None,
            tls,
            authenticated: None,
            transaction: None,
            bad_commands: 0,
            rsets: 0,
            auth_failures: 0,
            last_activity: now,
        };
        let greeting = alloc::format!("{} {}", s.config.hostname, s.config.banner);
        s.reply(Reply::new(220, None, &greeting));
        s
    }

    /// The configuration.
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// Whether the session runs under TLS.
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// The accepted HELO/EHLO name.
    pub fn hello_name(&self) -> Option<&str> {
        self.hello.as_ref().map(|(n, _)| n.as_str())
    }

    /// The user name accepted by AUTH.
    pub fn authenticated_user(&self) -> Option<&str> {
        self.authenticated.as_deref()
    }

    /// Gives the machine one input.
    pub fn handle_input(&mut self, input: Input<'_>) {
        match input {
            Input::Receive(now, bytes) => {
                self.last_activity = now;
                match self.state {
                    State::Closed | State::StartTls { .. } => {}
                    _ => {
                        if self.pos > 0 && self.pos >= self.inbuf.len() / 2 {
                            self.inbuf.drain(..self.pos);
                            self.pos = 0;
                        }
                        self.inbuf.extend_from_slice(bytes);
                    }
                }
            }
            Input::Timeout(now) => {
                if self.pending.is_none()
                    && !matches!(self.state, State::Closed)
                    && now >= self.deadline()
                {
                    self.drop_transaction();
                    self.reply(Reply::new(
                        421,
                        ec(4, 4, 2),
                        &alloc::format!("{} Timeout, closing connection", self.config.hostname),
                    ));
                    self.close();
                }
            }
            Input::TlsEstablished(now) => {
                self.last_activity = now;
                if matches!(self.state, State::StartTls { .. }) {
                    // RFC 3207 4.2: forget everything learned before TLS.
                    self.tls = true;
                    self.hello = None;
                    self.authenticated = None;
                    self.transaction = None;
                    self.inbuf.clear();
                    self.pos = 0;
                    self.state = State::Command;
                }
            }
            Input::Closed(_) => {
                self.drop_transaction();
                self.pending = None;
                self.state = State::Closed;
                self.out.clear();
            }
        }
    }

    fn deadline(&self) -> Time {
        let t = match self.state {
            State::Data(_) | State::Bdat { .. } => self.config.data_timeout,
            _ => self.config.command_timeout,
        };
        self.last_activity + t
    }

    /// The next thing to do. Call until it returns [`Output::Timeout`] (wait
    /// for input or that time) or [`Output::Close`].
    pub fn poll_output(&mut self) -> Output {
        loop {
            if let Some(e) = self.events.pop_front() {
                return Output::Event(e);
            }
            if self.pending.is_some() || !self.step() {
                break;
            }
        }
        if !self.out.is_empty() {
            return Output::Transmit(core::mem::take(&mut self.out));
        }
        match &mut self.state {
            State::Closed => Output::Close,
            State::StartTls { signalled } if !*signalled => {
                *signalled = true;
                Output::StartTls
            }
            _ => Output::Timeout(self.deadline()),
        }
    }

    /// Accepts the event waiting for an answer with the usual reply.
    pub fn accept(&mut self) -> Result<(), NoPendingEvent> {
        self.answer(true, None)
    }

    /// Accepts with the caller's reply (e.g. `250 2.0.0 queued as ID`).
    pub fn accept_with(&mut self, reply: Reply) -> Result<(), NoPendingEvent> {
        self.answer(true, Some(reply))
    }

    /// Refuses the event waiting for an answer with `reply` (a 4xx or 5xx;
    /// a 421 also closes the session).
    pub fn refuse(&mut self, reply: Reply) -> Result<(), NoPendingEvent> {
        self.answer(false, Some(reply))
    }

    fn answer(&mut self, ok: bool, reply: Option<Reply>) -> Result<(), NoPendingEvent> {
        let ask = self.pending.take().ok_or(NoPendingEvent)?;
        let default = match (&ask, ok) {
            (Ask::Hello { name, extended }, true) => {
                self.hello = Some((name.clone(), *extended));
                self.hello_reply(name, *extended)
            }
            (Ask::Hello { .. }, false) => Reply::new(550, ec(5, 7, 1), "Hello refused"),
            (Ask::Auth { username }, true) => {
                self.authenticated = Some(username.clone());
                Reply::new(235, ec(2, 7, 0), "Authentication successful")
            }
            (Ask::Auth { .. }, false) => {
                self.auth_failures += 1;
                Reply::new(535, ec(5, 7, 8), "Authentication credentials invalid")
            }
            (Ask::Mail { smtputf8 }, true) => {
                self.transaction = Some(Transaction {
                    smtputf8: *smtputf8,
                    rcpts: 0,
                    chunked: None,
                });
                Reply::new(250, ec(2, 1, 0), "Sender OK")
            }
            (Ask::Mail { .. }, false) => Reply::new(550, ec(5, 7, 1), "Sender refused"),
            (Ask::Rcpt, true) => {
                if let Some(t) = &mut self.transaction {
                    t.rcpts += 1;
                }
                Reply::new(250, ec(2, 1, 5), "Recipient OK")
            }
            (Ask::Rcpt, false) => Reply::new(550, ec(5, 1, 1), "Recipient refused"),
            (Ask::DataEnd, true) => {
                self.transaction = None;
                Reply::new(250, ec(2, 0, 0), "OK")
            }
            (Ask::DataEnd, false) => {
                self.transaction = None;
                Reply::new(554, ec(5, 0, 0), "Transaction failed")
            }
            (Ask::Vrfy, true) => Reply::new(
                252,
                ec(2, 5, 0),
                "Cannot VRFY user, but will accept message and attempt delivery",
            ),
            (Ask::Vrfy, false) => Reply::new(550, ec(5, 1, 1), "No such user"),
        };
        let reply = reply.unwrap_or(default);
        let closing = reply.code() == 421;
        self.reply(reply);
        if closing {
            self.drop_transaction();
            self.close();
        } else if !ok
            && self.auth_failures >= self.config.max_auth_failures
            && self.config.max_auth_failures > 0
        {
            self.reply(Reply::new(
                421,
                ec(4, 7, 0),
                "Too many authentication failures, closing connection",
            ));
            self.close();
        }
        Ok(())
    }

    fn hello_reply(&self, name: &str, extended: bool) -> Reply {
        let c = &self.config;
        let first = alloc::format!("{} greets {}", c.hostname, name);
        if !extended {
            return Reply::new(250, None, &first);
        }
        let mut lines = alloc::vec![first];
        if c.pipelining {
            lines.push("PIPELINING".into());
        }
        lines.push(alloc::format!("SIZE {}", c.max_message_size));
        if c.eightbitmime {
            lines.push("8BITMIME".into());
        }
        if c.smtputf8 {
            lines.push("SMTPUTF8".into());
        }
        if c.enhanced_status_codes {
            lines.push("ENHANCEDSTATUSCODES".into());
        }
        if c.starttls && !self.tls {
            lines.push("STARTTLS".into());
        }
        if c.auth && (self.tls || c.auth_without_tls) && self.authenticated.is_none() {
            lines.push("AUTH PLAIN LOGIN".into());
        }
        if c.dsn {
            lines.push("DSN".into());
        }
        if c.chunking {
            lines.push("CHUNKING".into());
        }
        Reply::multiline(250, None, lines)
    }

    fn reply(&mut self, reply: Reply) {
        if self.config.enhanced_status_codes {
            reply.write_to(&mut self.out);
        } else {
            reply.without_enhanced().write_to(&mut self.out);
        }
    }

    fn close(&mut self) {
        self.state = State::Closed;
        self.inbuf.clear();
        self.pos = 0;
    }

    fn ask(&mut self, ask: Ask, event: Event) {
        self.pending = Some(ask);
        self.events.push_back(event);
    }

    fn drop_transaction(&mut self) {
        if self.transaction.take().is_some() {
            self.events.push_back(Event::Reset);
        }
    }

    fn bad_command(&mut self, reply: Reply) {
        self.reply(reply);
        self.bad_commands += 1;
        if self.bad_commands >= self.config.max_bad_commands {
            self.drop_transaction();
            self.reply(Reply::new(
                421,
                ec(4, 7, 0),
                "Too many errors, closing connection",
            ));
            self.close();
        }
    }

    /// Processes buffered input; returns whether anything happened.
    fn step(&mut self) -> bool {
        match self.state {
            State::Closed | State::StartTls { .. } => false,
            State::Discard => {
                let rest = self.inbuf.get(self.pos..).unwrap_or_default();
                if rest.is_empty() {
                    return false;
                }
                match memchr::memchr(b'\n', rest) {
                    Some(i) => {
                        self.pos += i + 1;
                        self.state = State::Command;
                    }
                    None => self.pos = self.inbuf.len(),
                }
                true
            }
            State::Data(mut scan) => {
                let rest = self.inbuf.get(self.pos..).unwrap_or_default();
                if rest.is_empty() {
                    return false;
                }
                let mut chunk = Vec::with_capacity(rest.len());
                let (used, end) = scan.feed(rest, &mut chunk);
                self.pos += used;
                if !chunk.is_empty() {
                    self.events.push_back(Event::DataChunk(chunk));
                }
                if end {
                    self.state = State::Command;
                    self.end_of_data(scan);
                } else {
                    self.state = State::Data(scan);
                }
                true
            }
            State::Bdat { .. } => self.step_bdat(),
            State::Command | State::AuthPlain | State::AuthLoginUser | State::AuthLoginPass(_) => {
                self.step_line()
            }
        }
    }

    fn end_of_data(&mut self, scan: DataScan) {
        match scan.problem {
            None => {
                self.ask(Ask::DataEnd, Event::DataEnd { size: scan.bytes });
            }
            Some(p) => {
                let reply = match p {
                    Problem::BareLf | Problem::BareCr => Reply::new(
                        554,
                        ec(5, 6, 0),
                        "Bare CR or LF in message; only CRLF line ends are allowed. Transaction dropped",
                    ),
                    Problem::Nul => Reply::new(
                        554,
                        ec(5, 6, 0),
                        "NUL octet in message. Transaction dropped",
                    ),
                    Problem::TooBig => Reply::new(
                        552,
                        ec(5, 3, 4),
                        "Message size exceeds fixed maximum message size",
                    ),
                };
                self.transaction = None;
                self.events.push_back(Event::DataRefused {
                    reply: reply.clone(),
                });
                self.reply(reply);
            }
        }
    }

    fn step_bdat(&mut self) -> bool {
        let State::Bdat {
            remaining,
            last,
            scan,
            refusal,
        } = &mut self.state
        else {
            return false;
        };
        let rest = self.inbuf.get(self.pos..).unwrap_or_default();
        if *remaining > 0 {
            if rest.is_empty() {
                return false;
            }
            let take = usize::try_from(*remaining)
                .unwrap_or(usize::MAX)
                .min(rest.len());
            let part = rest.get(..take).unwrap_or_default();
            if let Some(scan) = scan {
                let mut chunk = Vec::with_capacity(part.len());
                scan.feed(part, &mut chunk);
                if !chunk.is_empty() {
                    self.events.push_back(Event::DataChunk(chunk));
                }
            }
            self.pos += take;
            *remaining -= take as u64;
            if *remaining > 0 {
                return true;
            }
        }
        // The chunk is complete.
        let last = *last;
        let scan = scan.take();
        let refusal = refusal.take();
        self.state = State::Command;
        if let Some(r) = refusal {
            self.bad_command(r);
            return true;
        }
        let Some(mut scan) = scan else {
            return true;
        };
        if last {
            scan.finish_chunks();
        }
        if scan.problem.is_some() {
            self.end_of_data(scan);
            return true;
        }
        if last {
            self.end_of_data(scan);
        } else {
            if let Some(t) = &mut self.transaction {
                t.chunked = Some(scan);
            }
            self.reply(Reply::new(
                250,
                ec(2, 0, 0),
                &alloc::format!("{} octets received", scan.bytes),
            ));
        }
        true
    }

    fn step_line(&mut self) -> bool {
        let auth = !matches!(self.state, State::Command);
        let limit = if auth {
            self.config.max_auth_line_length
        } else {
            self.config.max_line_length
        };
        let rest = self.inbuf.get(self.pos..).unwrap_or_default();
        let Some(lf) = memchr::memchr(b'\n', rest) else {
            if rest.len() >= limit {
                self.pos = self.inbuf.len();
                self.state = State::Discard;
                self.line_too_long();
                return true;
            }
            return false;
        };
        let raw = rest.get(..lf).unwrap_or_default();
        self.pos += lf + 1;
        if lf + 1 > limit {
            self.state = State::Command;
            self.line_too_long();
            return true;
        }
        let Some(line) = raw.strip_suffix(b"\r") else {
            self.bare_newline();
            return true;
        };
        if memchr::memchr(b'\r', line).is_some() {
            self.bare_newline();
            return true;
        }
        if memchr::memchr(0, line).is_some() {
            self.state = State::Command;
            self.drop_transaction();
            self.bad_command(Reply::new(500, ec(5, 5, 2), "NUL octet in command"));
            return true;
        }
        let line = line.to_vec();
        match core::mem::replace(&mut self.state, State::Command) {
            State::AuthPlain => self.auth_plain_response(&line),
            State::AuthLoginUser => self.auth_login_user(&line),
            State::AuthLoginPass(user) => self.auth_login_pass(user, &line),
            _ => self.command(&line),
        }
        true
    }

    fn line_too_long(&mut self) {
        self.bad_command(Reply::new(500, ec(5, 5, 6), "Line too long"));
    }

    fn bare_newline(&mut self) {
        self.state = State::Command;
        self.drop_transaction();
        self.bad_command(Reply::new(
            500,
            ec(5, 5, 2),
            "Bare CR or LF in command; only CRLF line ends are allowed. Transaction dropped",
        ));
    }

    fn command(&mut self, line: &[u8]) {
        let cmd = match Command::parse(line) {
            Ok(c) => c,
            Err(e) => return self.command_error(e),
        };
        match cmd {
            Command::Helo(name) => self.hello(name, false),
            Command::Ehlo(name) => self.hello(name, true),
            Command::Mail { from, params } => self.mail(from, params),
            Command::Rcpt { to, params } => self.rcpt(to, params),
            Command::Data => self.data(),
            Command::Bdat { size, last } => self.bdat(size, last),
            Command::Rset => {
                self.rsets += 1;
                self.drop_transaction();
                if self.rsets > self.config.max_rsets {
                    self.reply(Reply::new(
                        421,
                        ec(4, 7, 0),
                        "Too many RSET commands, closing connection",
                    ));
                    self.close();
                } else {
                    self.reply(Reply::new(250, ec(2, 0, 0), "OK"));
                }
            }
            Command::Noop => self.reply(Reply::new(250, ec(2, 0, 0), "OK")),
            Command::Quit => {
                self.drop_transaction();
                self.events.push_back(Event::Quit);
                self.reply(Reply::new(221, ec(2, 0, 0), "Bye"));
                self.close();
            }
            Command::Vrfy(s) => self.ask(Ask::Vrfy, Event::Vrfy(s)),
            Command::Expn(_) => {
                self.reply(Reply::new(502, ec(5, 5, 1), "EXPN not available"));
            }
            Command::Help(_) => self.reply(Reply::new(
                214,
                ec(2, 0, 0),
                "Commands: HELO EHLO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP STARTTLS AUTH",
            )),
            Command::StartTls => self.starttls(),
            Command::Auth { mechanism, initial } => self.auth(&mechanism, initial),
        }
    }

    fn command_error(&mut self, e: CommandError) {
        let reply = match &e {
            CommandError::Unknown { .. } => Reply::new(500, ec(5, 5, 2), "Command not recognized"),
            CommandError::Syntax { .. } => {
                Reply::new(501, ec(5, 5, 4), &alloc::format!("Syntax error: {e}"))
            }
            CommandError::Param { .. } => {
                Reply::new(501, ec(5, 5, 4), &alloc::format!("Syntax error: {e}"))
            }
            CommandError::Address { command, source } => match source {
                AddressError::NeedsSmtpUtf8 { .. } => {
                    Reply::new(553, ec(5, 6, 7), "Non-ASCII address requires SMTPUTF8")
                }
                _ => Reply::new(
                    501,
                    if *command == "MAIL" {
                        ec(5, 1, 7)
                    } else {
                        ec(5, 1, 3)
                    },
                    &alloc::format!("Bad address syntax: {source}"),
                ),
            },
        };
        self.bad_command(reply);
    }

    fn sequence(&mut self, text: &str) {
        self.bad_command(Reply::new(503, ec(5, 5, 1), text));
    }

    fn hello(&mut self, name: String, extended: bool) {
        self.drop_transaction();
        self.ask(
            Ask::Hello {
                name: name.clone(),
                extended,
            },
            Event::Hello { name, extended },
        );
    }

    fn mail(&mut self, from: ReversePath, params: MailParams) {
        if self.hello.is_none() {
            return self.sequence("Send EHLO or HELO first");
        }
        if self.transaction.is_some() {
            return self.sequence("Nested MAIL command");
        }
        if self.config.require_auth && self.authenticated.is_none() {
            return self.bad_command(Reply::new(530, ec(5, 7, 0), "Authentication required"));
        }
        let c = &self.config;
        let unsupported = !params.other.is_empty()
            || matches!(params.body, Some(Body::BinaryMime))
            || (matches!(params.body, Some(Body::EightBitMime)) && !c.eightbitmime)
            || (params.smtputf8 && !c.smtputf8)
            || ((params.ret.is_some() || params.envid.is_some()) && !c.dsn);
        if unsupported {
            return self.bad_command(Reply::new(
                555,
                ec(5, 5, 4),
                "MAIL parameter not recognized or not implemented",
            ));
        }
        if params.size.is_some_and(|s| s > c.max_message_size) {
            return self.reply(Reply::new(
                552,
                ec(5, 3, 4),
                "Message size exceeds fixed maximum message size",
            ));
        }
        self.ask(
            Ask::Mail {
                smtputf8: params.smtputf8,
            },
            Event::Mail { from, params },
        );
    }

    fn rcpt(&mut self, to: ForwardPath, params: RcptParams) {
        let Some(t) = &self.transaction else {
            return self.sequence("Need MAIL command first");
        };
        if t.chunked.is_some() {
            return self.sequence("RCPT after BDAT");
        }
        if t.rcpts >= self.config.max_recipients {
            return self.bad_command(Reply::new(452, ec(4, 5, 3), "Too many recipients"));
        }
        if !t.smtputf8 && to.mailbox().is_some_and(|m| m.is_utf8()) {
            return self.bad_command(Reply::new(
                553,
                ec(5, 6, 7),
                "Non-ASCII address requires SMTPUTF8",
            ));
        }
        if !params.other.is_empty()
            || ((params.notify.is_some() || params.orcpt.is_some()) && !self.config.dsn)
        {
            return self.bad_command(Reply::new(
                555,
                ec(5, 5, 4),
                "RCPT parameter not recognized or not implemented",
            ));
        }
        self.ask(Ask::Rcpt, Event::Rcpt { to, params });
    }

    fn data(&mut self) {
        let Some(t) = &self.transaction else {
            return self.sequence("Need MAIL command first");
        };
        if t.chunked.is_some() {
            return self.sequence("DATA after BDAT");
        }
        if t.rcpts == 0 {
            return self.bad_command(Reply::new(554, ec(5, 5, 1), "No valid recipients"));
        }
        self.state = State::Data(DataScan::new(true, self.config.max_message_size, 0));
        self.events.push_back(Event::DataStart { chunked: false });
        self.reply(Reply::new(354, None, "End data with <CR><LF>.<CR><LF>"));
    }

    fn bdat(&mut self, size: u64, last: bool) {
        let refuse = |text: &str| Some(Reply::new(503, ec(5, 5, 1), text));
        let (scan, refusal) = match &mut self.transaction {
            None => (None, refuse("Need MAIL command first")),
            Some(t) if t.rcpts == 0 => (
                None,
                Some(Reply::new(554, ec(5, 5, 1), "No valid recipients")),
            ),
            Some(t) => {
                let scan = match t.chunked.take() {
                    Some(s) => s,
                    None => {
                        self.events.push_back(Event::DataStart { chunked: true });
                        DataScan::new(false, self.config.max_message_size, 0)
                    }
                };
                (Some(scan), None)
            }
        };
        self.state = State::Bdat {
            remaining: size,
            last,
            scan,
            refusal,
        };
    }

    fn starttls(&mut self) {
        if self.tls {
            return self.sequence("Already running TLS");
        }
        if !self.config.starttls {
            return self.bad_command(Reply::new(502, ec(5, 5, 1), "STARTTLS not available"));
        }
        self.drop_transaction();
        self.reply(Reply::new(220, ec(2, 0, 0), "Ready to start TLS"));
        // Anything pipelined after STARTTLS is discarded (RFC 3207 and the
        // STARTTLS command injection attacks).
        self.inbuf.clear();
        self.pos = 0;
        self.state = State::StartTls { signalled: false };
    }

    fn auth(&mut self, mechanism: &str, initial: Option<String>) {
        let c = &self.config;
        if !c.auth {
            return self.bad_command(Reply::new(502, ec(5, 5, 1), "AUTH not available"));
        }
        if !self.tls && !c.auth_without_tls {
            return self.bad_command(Reply::new(
                538,
                ec(5, 7, 11),
                "Encryption required for requested authentication mechanism",
            ));
        }
        if self.hello.is_none() {
            return self.sequence("Send EHLO first");
        }
        if self.authenticated.is_some() {
            return self.sequence("Already authenticated");
        }
        if self.transaction.is_some() {
            return self.sequence("AUTH not allowed during a mail transaction");
        }
        match mechanism {
            "PLAIN" => match initial {
                Some(i) => self.auth_plain_response(i.as_bytes()),
                None => {
                    self.reply(Reply::new(334, None, ""));
                    self.state = State::AuthPlain;
                }
            },
            "LOGIN" => match initial {
                Some(i) => self.auth_login_user(i.as_bytes()),
                None => {
                    self.reply(Reply::new(334, None, "VXNlcm5hbWU6"));
                    self.state = State::AuthLoginUser;
                }
            },
            _ => self.bad_command(Reply::new(
                504,
                ec(5, 5, 4),
                "Unrecognized authentication type",
            )),
        }
    }

    fn sasl_error(&mut self, e: SaslError) {
        let reply = match e {
            SaslError::Cancelled => Reply::new(501, ec(5, 0, 0), "Authentication cancelled"),
            _ => Reply::new(501, ec(5, 5, 2), "Cannot decode response"),
        };
        self.auth_failures += 1;
        self.reply(reply);
        if self.auth_failures >= self.config.max_auth_failures {
            self.reply(Reply::new(
                421,
                ec(4, 7, 0),
                "Too many authentication failures, closing connection",
            ));
            self.close();
        }
    }

    fn decode(line: &[u8]) -> Result<Vec<u8>, SaslError> {
        let s = core::str::from_utf8(line).map_err(|_| SaslError::Base64)?;
        sasl::decode_response(s)
    }

    fn auth_plain_response(&mut self, line: &[u8]) {
        match Self::decode(line).and_then(|m| sasl::parse_plain(&m)) {
            Ok(credentials) => self.ask(
                Ask::Auth {
                    username: credentials.username.clone(),
                },
                Event::Auth {
                    mechanism: Mechanism::Plain,
                    credentials,
                },
            ),
            Err(e) => self.sasl_error(e),
        }
    }

    fn auth_login_user(&mut self, line: &[u8]) {
        match Self::decode(line).and_then(|u| String::from_utf8(u).map_err(|_| SaslError::Utf8)) {
            Ok(user) => {
                self.reply(Reply::new(334, None, "UGFzc3dvcmQ6"));
                self.state = State::AuthLoginPass(user);
            }
            Err(e) => self.sasl_error(e),
        }
    }

    fn auth_login_pass(&mut self, user: String, line: &[u8]) {
        match Self::decode(line).and_then(|u| String::from_utf8(u).map_err(|_| SaslError::Utf8)) {
            Ok(password) => self.ask(
                Ask::Auth {
                    username: user.clone(),
                },
                Event::Auth {
                    mechanism: Mechanism::Login,
                    credentials: Credentials {
                        authzid: String::new(),
                        username: user,
                        password,
                    },
                },
            ),
            Err(e) => self.sasl_error(e),
        }
    }
}
