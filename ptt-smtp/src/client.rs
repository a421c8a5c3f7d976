//! The client session machine: sends transactions over one connection.
//!
//! Greeting, EHLO (falling back to HELO), STARTTLS when asked for (the
//! caller wraps the stream on [`Output::StartTls`]), AUTH PLAIN or LOGIN,
//! then each queued [`Message`]: MAIL, RCPT (pipelined with DATA when the
//! server offers PIPELINING), DATA with dot-stuffing or BDAT when offered,
//! RSET when a transaction is left open, and QUIT after [`Client::finish`].

use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::time::Duration;

use crate::Time;
use crate::address::{ForwardPath, ReversePath};
use crate::command::{Body, Command, MailParams, RcptParams};
use crate::data;
use crate::reply::{EnhancedCode, Reply, ReplyError, ReplyParser};
use crate::sasl::{self, Credentials};

/// When to use TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// Never send STARTTLS.
    None,
    /// STARTTLS when the server offers it, otherwise go on in the clear.
    Opportunistic,
    /// STARTTLS or fail.
    Required,
    /// The connection is TLS from its first byte (RFC 8314); no STARTTLS.
    Implicit,
}

/// How a client behaves.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The name sent with EHLO/HELO.
    pub hello_name: String,
    /// TLS policy.
    pub tls: TlsMode,
    /// Authenticate with these (PLAIN if offered, else LOGIN).
    pub credentials: Option<Credentials>,
    /// Use PIPELINING when offered.
    pub pipelining: bool,
    /// Use BDAT when offered.
    pub chunking: bool,
    /// How long to wait for each reply.
    pub timeout: Duration,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            hello_name: "localhost".into(),
            tls: TlsMode::Opportunistic,
            credentials: None,
            pipelining: true,
            chunking: false,
            timeout: Duration::from_secs(300),
        }
    }
}

/// One message to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The envelope sender.
    pub from: ReversePath,
    /// MAIL parameters; SIZE, BODY=8BITMIME and SMTPUTF8 are added when the
    /// server offers them and the message needs them.
    pub params: MailParams,
    /// The recipients with their parameters.
    pub to: Vec<(ForwardPath, RcptParams)>,
    /// The message (header and body); line ends are normalised to CRLF.
    pub data: Vec<u8>,
}

/// What the server offered in its EHLO reply.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Extensions {
    /// The reply was to EHLO (false after a fallback to HELO).
    pub esmtp: bool,
    /// PIPELINING.
    pub pipelining: bool,
    /// SIZE, with the limit when given (0 means none).
    pub size: Option<u64>,
    /// 8BITMIME.
    pub eightbitmime: bool,
    /// SMTPUTF8.
    pub smtputf8: bool,
    /// ENHANCEDSTATUSCODES.
    pub enhanced_status_codes: bool,
    /// STARTTLS.
    pub starttls: bool,
    /// AUTH mechanisms, upper case.
    pub auth: Vec<String>,
    /// DSN.
    pub dsn: bool,
    /// CHUNKING.
    pub chunking: bool,
}

impl Extensions {
    /// Reads the keyword lines of an EHLO reply (the first line is the
    /// greeting and is skipped).
    pub fn from_ehlo(reply: &Reply) -> Extensions {
        let mut e = Extensions {
            esmtp: true,
            ..Extensions::default()
        };
        for line in reply.lines().iter().skip(1) {
            let mut words = line.split(' ').filter(|w| !w.is_empty());
            let Some(kw) = words.next() else { continue };
            match kw.to_ascii_uppercase().as_str() {
                "PIPELINING" => e.pipelining = true,
                "SIZE" => e.size = Some(words.next().and_then(|n| n.parse().ok()).unwrap_or(0)),
                "8BITMIME" => e.eightbitmime = true,
                "SMTPUTF8" => e.smtputf8 = true,
                "ENHANCEDSTATUSCODES" => e.enhanced_status_codes = true,
                "STARTTLS" => e.starttls = true,
                "DSN" => e.dsn = true,
                "CHUNKING" => e.chunking = true,
                "AUTH" => e.auth.extend(words.map(|w| w.to_ascii_uppercase())),
                _ => {}
            }
        }
        e
    }
}

/// The outcome of one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionResult {
    /// The id [`Client::send`] returned.
    pub id: u64,
    /// The reply to MAIL (or a local refusal, code 554, when the message
    /// cannot be sent to this server).
    pub mail: Reply,
    /// Each recipient with the reply to its RCPT, in order.
    pub rcpts: Vec<(ForwardPath, Reply)>,
    /// The reply to the end of data, when data was sent.
    pub data: Option<Reply>,
}

impl TransactionResult {
    /// The recipients the message was delivered to (RCPT and data accepted).
    pub fn delivered(&self) -> Vec<&ForwardPath> {
        if !self.data.as_ref().is_some_and(Reply::is_positive) {
            return Vec::new();
        }
        self.rcpts
            .iter()
            .filter(|(_, r)| r.is_positive())
            .map(|(p, _)| p)
            .collect()
    }

    /// Whether every recipient got the message.
    pub fn all_delivered(&self) -> bool {
        !self.rcpts.is_empty() && self.delivered().len() == self.rcpts.len()
    }
}

/// Why the session failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The server refused the connection or a step of the session.
    #[error("{step}: server replied {reply}")]
    Refused {
        /// The step (`greeting`, `EHLO`, `STARTTLS`, `AUTH`).
        step: &'static str,
        /// The reply.
        reply: Reply,
    },
    /// TLS was required and the server does not offer STARTTLS.
    #[error("TLS required but the server does not offer STARTTLS")]
    NoStartTls,
    /// Credentials were given and the server offers neither PLAIN nor LOGIN.
    #[error("the server offers no AUTH PLAIN or LOGIN (offered: {offered:?})")]
    NoAuth {
        /// The mechanisms it offered.
        offered: Vec<String>,
    },
    /// The server's bytes are not SMTP replies.
    #[error("bad reply from server: {0}")]
    Protocol(ReplyError),
    /// No reply in time.
    #[error("timed out waiting for the server")]
    Timeout,
    /// The connection closed before QUIT completed.
    #[error("connection closed by the server")]
    ClosedEarly,
}

/// What the caller gives the machine.
#[derive(Debug, Clone, Copy)]
pub enum Input<'a> {
    /// Bytes read from the server at `now`.
    Receive(Time, &'a [u8]),
    /// The time is `now`.
    Timeout(Time),
    /// The handshake asked for by [`Output::StartTls`] completed.
    TlsEstablished(Time),
    /// The server closed the connection.
    Closed(Time),
}

/// What the machine asks the caller to do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Write these bytes to the server.
    Transmit(Vec<u8>),
    /// Something happened.
    Event(ClientEvent),
    /// Do the TLS handshake now, then give [`Input::TlsEstablished`].
    StartTls,
    /// Close the connection; the session is over.
    Close,
    /// Wait for input or this time.
    Timeout(Time),
}

/// What the client learnt.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientEvent {
    /// The server's greeting.
    Greeting(Reply),
    /// The session is ready for mail (after EHLO, STARTTLS and AUTH).
    Ready(Extensions),
    /// AUTH succeeded.
    Authenticated(Reply),
    /// A message's transaction finished.
    Transaction(TransactionResult),
    /// The session failed; queued messages are not sent.
    Failed(ClientError),
    /// Every reply received, in order (for logging).
    Reply(Reply),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Mail,
    Rcpt(usize),
    Data,
    Body,
}

#[derive(Debug)]
struct Tx {
    id: u64,
    msg: Message,
    mail: Option<Reply>,
    rcpts: Vec<(ForwardPath, Reply)>,
    data: Option<Reply>,
    expect: VecDeque<Expect>,
    /// RCPT commands not yet sent (non-pipelined).
    next_rcpt: usize,
    chunk: bool,
    /// MAIL and RCPT only ([`Client::verify`]).
    probe: bool,
}

#[derive(Debug)]
enum State {
    Greeting,
    Ehlo,
    Helo,
    StartTls,
    Handshake { signalled: bool },
    AuthPlain,
    AuthLoginUser,
    AuthLoginPass,
    Idle,
    Tx(Box<Tx>),
    Rset,
    Quit,
    Closed,
}

/// One SMTP client session.
#[derive(Debug)]
pub struct Client {
    config: ClientConfig,
    state: State,
    parser: ReplyParser,
    out: Vec<u8>,
    events: VecDeque<ClientEvent>,
    /// Messages waiting, with whether each is a probe ([`Client::verify`]).
    queue: VecDeque<(u64, Message, bool)>,
    next_id: u64,
    finishing: bool,
    tls: bool,
    ext: Extensions,
    last_activity: Time,
}

fn local_refusal(text: &str) -> Reply {
    Reply::new(554, Some(EnhancedCode::new(5, 6, 7)), text)
}

impl Client {
    /// A session on a freshly connected stream (TLS already for
    /// [`TlsMode::Implicit`]); it waits for the greeting.
    pub fn new(config: ClientConfig, now: Time) -> Client {
        let tls = config.tls == TlsMode::Implicit;
        Client {
            config,
            state: State::Greeting,
            parser: ReplyParser::new(),
            out: Vec::new(),
            events: VecDeque::new(),
            queue: VecDeque::new(),
            next_id: 1,
            finishing: false,
            tls,
            ext: Extensions::default(),
            last_activity: now,
        }
    }

    /// Queues a message; returns its id, found again in
    /// [`TransactionResult::id`].
    pub fn send(&mut self, message: Message) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.queue.push_back((id, message, false));
        id
    }

    /// Queues a recipient check: MAIL and RCPT only, then RSET, so the
    /// server's RCPT replies say whether it would take mail for `to`
    /// (recipient verification, as a front server asks the one behind
    /// it). Its [`TransactionResult`] has no data reply.
    ///
    /// ```
    /// use ptt_smtp::{Client, ClientConfig, ClientEvent, ForwardPath, RcptParams, ReversePath};
    /// use core::time::Duration;
    ///
    /// let mut client = Client::new(ClientConfig::default(), Duration::ZERO);
    /// let to = ForwardPath::parse("<list@example.org>", true).unwrap();
    /// let id = client.verify(ReversePath::Null, vec![(to, RcptParams::default())]);
    /// assert_eq!(id, 1);
    /// ```
    pub fn verify(&mut self, from: ReversePath, to: Vec<(ForwardPath, RcptParams)>) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        let message = Message {
            from,
            params: MailParams::default(),
            to,
            data: Vec::new(),
        };
        self.queue.push_back((id, message, true));
        id
    }

    /// No more messages: QUIT once the queue is sent.
    pub fn finish(&mut self) {
        self.finishing = true;
    }

    /// Whether the session is under TLS.
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// The extensions of the last EHLO reply.
    pub fn extensions(&self) -> &Extensions {
        &self.ext
    }

    /// Gives the machine one input.
    pub fn handle_input(&mut self, input: Input<'_>) {
        match input {
            Input::Receive(now, bytes) => {
                self.last_activity = now;
                if !matches!(self.state, State::Closed | State::Handshake { .. }) {
                    self.parser.push(bytes);
                }
            }
            Input::Timeout(now) => {
                if self.waiting() && now >= self.last_activity + self.config.timeout {
                    self.fail(ClientError::Timeout);
                    self.state = State::Closed;
                }
            }
            Input::TlsEstablished(now) => {
                self.last_activity = now;
                if matches!(self.state, State::Handshake { .. }) {
                    self.tls = true;
                    self.parser = ReplyParser::new();
                    self.ext = Extensions::default();
                    self.command(&Command::Ehlo(self.config.hello_name.clone()));
                    self.state = State::Ehlo;
                }
            }
            Input::Closed(_) => {
                if !matches!(self.state, State::Closed) {
                    if !matches!(self.state, State::Quit) {
                        self.fail(ClientError::ClosedEarly);
                    }
                    self.state = State::Closed;
                }
            }
        }
    }

    fn waiting(&self) -> bool {
        !matches!(self.state, State::Idle | State::Closed)
    }

    /// The next thing to do.
    pub fn poll_output(&mut self) -> Output {
        loop {
            if let Some(e) = self.events.pop_front() {
                return Output::Event(e);
            }
            if matches!(self.state, State::Idle) {
                self.start_next();
                if !self.events.is_empty() {
                    continue;
                }
            }
            match self.parser.next_reply() {
                Ok(Some(reply)) => {
                    self.events.push_back(ClientEvent::Reply(reply.clone()));
                    self.on_reply(reply);
                }
                Ok(None) => break,
                Err(e) => {
                    self.fail(ClientError::Protocol(e));
                    self.state = State::Closed;
                }
            }
        }
        if !self.out.is_empty() {
            return Output::Transmit(core::mem::take(&mut self.out));
        }
        match &mut self.state {
            State::Closed => Output::Close,
            State::Handshake { signalled } if !*signalled => {
                *signalled = true;
                Output::StartTls
            }
            State::Idle => Output::Timeout(Duration::MAX),
            _ => Output::Timeout(self.last_activity + self.config.timeout),
        }
    }

    fn command(&mut self, c: &Command) {
        self.out.extend_from_slice(c.to_string().as_bytes());
        self.out.extend_from_slice(b"\r\n");
    }

    fn fail(&mut self, e: ClientError) {
        self.events.push_back(ClientEvent::Failed(e));
    }

    /// Fails and says QUIT.
    fn abort(&mut self, e: ClientError) {
        self.fail(e);
        self.queue.clear();
        self.command(&Command::Quit);
        self.state = State::Quit;
    }

    fn on_reply(&mut self, reply: Reply) {
        match core::mem::replace(&mut self.state, State::Closed) {
            State::Greeting => {
                self.events.push_back(ClientEvent::Greeting(reply.clone()));
                if reply.code() == 220 {
                    self.command(&Command::Ehlo(self.config.hello_name.clone()));
                    self.state = State::Ehlo;
                } else {
                    self.abort(ClientError::Refused {
                        step: "greeting",
                        reply,
                    });
                }
            }
            State::Ehlo => {
                if reply.is_positive() {
                    self.ext = Extensions::from_ehlo(&reply);
                    self.after_hello();
                } else if reply.is_permanent() {
                    self.command(&Command::Helo(self.config.hello_name.clone()));
                    self.state = State::Helo;
                } else {
                    self.abort(ClientError::Refused {
                        step: "EHLO",
                        reply,
                    });
                }
            }
            State::Helo => {
                if reply.is_positive() {
                    self.ext = Extensions::default();
                    self.after_hello();
                } else {
                    self.abort(ClientError::Refused {
                        step: "HELO",
                        reply,
                    });
                }
            }
            State::StartTls => {
                if reply.code() == 220 {
                    self.state = State::Handshake { signalled: false };
                } else if self.config.tls == TlsMode::Required {
                    self.abort(ClientError::Refused {
                        step: "STARTTLS",
                        reply,
                    });
                } else {
                    self.after_tls();
                }
            }
            State::Handshake { signalled } => {
                // A reply while waiting for TLS: the server misbehaves.
                self.state = State::Handshake { signalled };
            }
            State::AuthPlain | State::AuthLoginPass => self.auth_done(reply),
            State::AuthLoginUser => {
                if reply.code() == 334 {
                    let pass = self
                        .config
                        .credentials
                        .as_ref()
                        .map(|c| sasl::encode(c.password.as_bytes()))
                        .unwrap_or_default();
                    self.out.extend_from_slice(pass.as_bytes());
                    self.out.extend_from_slice(b"\r\n");
                    self.state = State::AuthLoginPass;
                } else {
                    self.auth_done(reply);
                }
            }
            State::Idle => self.state = State::Idle,
            State::Tx(tx) => self.tx_reply(tx, reply),
            State::Rset => {
                self.state = State::Idle;
            }
            State::Quit => {
                self.state = State::Closed;
            }
            State::Closed => {}
        }
    }

    fn after_hello(&mut self) {
        if !self.tls && matches!(self.config.tls, TlsMode::Opportunistic | TlsMode::Required) {
            if self.ext.starttls {
                self.command(&Command::StartTls);
                self.state = State::StartTls;
                return;
            }
            if self.config.tls == TlsMode::Required {
                return self.abort(ClientError::NoStartTls);
            }
        }
        self.after_tls();
    }

    fn after_tls(&mut self) {
        let Some(creds) = self.config.credentials.clone() else {
            return self.ready();
        };
        if self.ext.auth.iter().any(|m| m == "PLAIN") {
            self.command(&Command::Auth {
                mechanism: "PLAIN".into(),
                initial: Some(sasl::plain_response(&creds)),
            });
            self.state = State::AuthPlain;
        } else if self.ext.auth.iter().any(|m| m == "LOGIN") {
            self.command(&Command::Auth {
                mechanism: "LOGIN".into(),
                initial: Some(sasl::encode(creds.username.as_bytes())),
            });
            self.state = State::AuthLoginUser;
        } else {
            let offered = self.ext.auth.clone();
            self.abort(ClientError::NoAuth { offered });
        }
    }

    fn auth_done(&mut self, reply: Reply) {
        if reply.code() == 235 {
            self.events.push_back(ClientEvent::Authenticated(reply));
            self.ready();
        } else {
            self.abort(ClientError::Refused {
                step: "AUTH",
                reply,
            });
        }
    }

    fn ready(&mut self) {
        self.events.push_back(ClientEvent::Ready(self.ext.clone()));
        self.state = State::Idle;
    }

    /// In Idle: starts the next message, or QUIT.
    fn start_next(&mut self) {
        let Some((id, mut msg, probe)) = self.queue.pop_front() else {
            if self.finishing {
                self.command(&Command::Quit);
                self.state = State::Quit;
            }
            return;
        };
        let needs_utf8 = msg.from.mailbox().is_some_and(|m| m.is_utf8())
            || msg
                .to
                .iter()
                .any(|(t, _)| t.mailbox().is_some_and(|m| m.is_utf8()));
        let eight_bit = msg.data.iter().any(|b| *b >= 0x80);
        if needs_utf8 && !self.ext.smtputf8 {
            let reply = local_refusal("server does not offer SMTPUTF8 for a UTF-8 address");
            self.events
                .push_back(ClientEvent::Transaction(TransactionResult {
                    id,
                    mail: reply.clone(),
                    rcpts: msg
                        .to
                        .iter()
                        .map(|(t, _)| (t.clone(), reply.clone()))
                        .collect(),
                    data: None,
                }));
            return;
        }
        if let Some(limit) = self.ext.size.filter(|l| *l > 0)
            && msg.data.len() as u64 > limit
        {
            let reply = Reply::new(
                552,
                Some(EnhancedCode::new(5, 3, 4)),
                &alloc::format!(
                    "message of {} octets exceeds the server's SIZE {limit}",
                    msg.data.len()
                ),
            );
            self.events
                .push_back(ClientEvent::Transaction(TransactionResult {
                    id,
                    mail: reply.clone(),
                    rcpts: msg
                        .to
                        .iter()
                        .map(|(t, _)| (t.clone(), reply.clone()))
                        .collect(),
                    data: None,
                }));
            return;
        }
        let chunk = self.config.chunking && self.ext.chunking;
        msg.data = if chunk {
            data::normalize(&msg.data)
        } else {
            data::stuff(&msg.data)
        };
        let p = &mut msg.params;
        if needs_utf8 {
            p.smtputf8 = true;
        }
        if eight_bit && self.ext.eightbitmime && p.body.is_none() {
            p.body = Some(Body::EightBitMime);
        }
        if self.ext.size.is_some() && p.size.is_none() {
            p.size = Some(msg.data.len() as u64);
        }
        if !self.ext.dsn {
            p.ret = None;
            p.envid = None;
            for (_, rp) in &mut msg.to {
                rp.notify = None;
                rp.orcpt = None;
            }
        }
        if !self.ext.esmtp {
            msg.params = MailParams::default();
            for (_, rp) in &mut msg.to {
                *rp = RcptParams::default();
            }
        }
        let pipelining = self.config.pipelining && self.ext.pipelining;
        let mut tx = Tx {
            id,
            mail: None,
            rcpts: Vec::new(),
            data: None,
            expect: VecDeque::new(),
            next_rcpt: 0,
            chunk,
            msg,
            probe,
        };
        self.command(&Command::Mail {
            from: tx.msg.from.clone(),
            params: tx.msg.params.clone(),
        });
        tx.expect.push_back(Expect::Mail);
        if pipelining {
            for i in 0..tx.msg.to.len() {
                self.send_rcpt(&mut tx, i);
            }
            tx.next_rcpt = tx.msg.to.len();
            if !chunk && !probe {
                self.command(&Command::Data);
                tx.expect.push_back(Expect::Data);
            }
        }
        self.state = State::Tx(Box::new(tx));
    }

    fn send_rcpt(&mut self, tx: &mut Tx, i: usize) {
        if let Some((to, params)) = tx.msg.to.get(i) {
            let c = Command::Rcpt {
                to: to.clone(),
                params: params.clone(),
            };
            self.command(&c);
            tx.expect.push_back(Expect::Rcpt(i));
        }
    }

    fn tx_reply(&mut self, mut tx: Box<Tx>, reply: Reply) {
        let Some(what) = tx.expect.pop_front() else {
            self.state = State::Tx(tx);
            return;
        };
        match what {
            Expect::Mail => {
                let ok = reply.is_positive();
                tx.mail = Some(reply);
                if !ok {
                    // Pipelined RCPT and DATA replies still come; without
                    // pipelining, the transaction ends here.
                    if tx.expect.is_empty() {
                        return self.tx_done(tx, false);
                    }
                } else if tx.expect.is_empty() {
                    self.send_rcpt_or_data(&mut tx);
                    if tx.expect.is_empty() {
                        return self.tx_done(tx, true);
                    }
                }
            }
            Expect::Rcpt(i) => {
                if let Some((to, _)) = tx.msg.to.get(i) {
                    tx.rcpts.push((to.clone(), reply));
                }
                if tx.expect.is_empty() {
                    self.send_rcpt_or_data(&mut tx);
                    if tx.expect.is_empty() {
                        let open = tx.mail.as_ref().is_some_and(Reply::is_positive);
                        return self.tx_done(tx, open);
                    }
                }
            }
            Expect::Data => {
                let accepted = tx.rcpts.iter().any(|(_, r)| r.is_positive())
                    && tx.mail.as_ref().is_some_and(Reply::is_positive);
                if reply.code() == 354 {
                    if accepted {
                        let body = core::mem::take(&mut tx.msg.data);
                        self.out.extend_from_slice(&body);
                    } else {
                        // RFC 2920: end the data at once.
                        self.out.extend_from_slice(b".\r\n");
                    }
                    tx.expect.push_back(Expect::Body);
                } else {
                    tx.data = Some(reply);
                    let open = tx.mail.as_ref().is_some_and(Reply::is_positive);
                    return self.tx_done(tx, open);
                }
            }
            Expect::Body => {
                tx.data = Some(reply);
                return self.tx_done(tx, false);
            }
        }
        self.state = State::Tx(tx);
    }

    /// Without pipelining: the next RCPT, or DATA / BDAT after the last.
    fn send_rcpt_or_data(&mut self, tx: &mut Tx) {
        if tx.next_rcpt < tx.msg.to.len() {
            let i = tx.next_rcpt;
            tx.next_rcpt += 1;
            self.send_rcpt(tx, i);
            return;
        }
        let mail_ok = tx.mail.as_ref().is_some_and(Reply::is_positive);
        let any = tx.rcpts.iter().any(|(_, r)| r.is_positive());
        if !mail_ok || !any || tx.data.is_some() || tx.probe {
            return;
        }
        if tx.chunk {
            let body = core::mem::take(&mut tx.msg.data);
            self.command(&Command::Bdat {
                size: body.len() as u64,
                last: true,
            });
            self.out.extend_from_slice(&body);
            tx.expect.push_back(Expect::Body);
        } else if !tx.expect.contains(&Expect::Data) {
            self.command(&Command::Data);
            tx.expect.push_back(Expect::Data);
        }
    }

    fn tx_done(&mut self, tx: Box<Tx>, open: bool) {
        let result = TransactionResult {
            id: tx.id,
            mail: tx.mail.unwrap_or_else(|| local_refusal("no reply to MAIL")),
            rcpts: tx.rcpts,
            data: tx.data,
        };
        self.events.push_back(ClientEvent::Transaction(result));
        if open {
            self.command(&Command::Rset);
            self.state = State::Rset;
        } else {
            self.state = State::Idle;
        }
    }
}
