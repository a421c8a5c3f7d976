//! The session with the next hop that one client session keeps: opened at
//! the first recipient, which the next hop is asked about (MAIL and RCPT,
//! then RSET, the way a front MX verifies recipients with the server behind
//! it), then used for the message itself, and ended with the client's
//! session. The ptt-smtp client machine on a smoltcp connection.

use std::time::Duration;

use ptt_smtp::client::{Input, Output};
use ptt_smtp::{Client, ClientConfig, ClientEvent, TransactionResult};
use smoltcp::iface::{Interface, SocketHandle, SocketSet};
use smoltcp::socket::tcp;
use smoltcp::wire::IpEndpoint;

use super::stream::{Read, Stream};

/// How long a connection to the next hop may take to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// How a transaction with the next hop ended.
pub(crate) enum Outcome {
    /// It has its replies.
    Done(TransactionResult),
    /// The session failed before (connection lost, timeout), with why.
    Failed(String),
}

/// A kept session with the next hop.
pub(crate) struct NextHop {
    pub(crate) client: Client,
    stream: Stream,
    addr: IpEndpoint,
    deadline: Duration,
    /// Until when the connection may still be opening.
    connect_by: Duration,
    /// Transactions that have ended, not yet taken.
    ended: Vec<TransactionResult>,
    /// Why the session failed, once it has.
    failed: Option<String>,
}

impl NextHop {
    /// Connects to `addr` from local `port`.
    pub(crate) fn open(
        addr: IpEndpoint,
        port: u16,
        config: &ClientConfig,
        buffer: usize,
        iface: &mut Interface,
        sockets: &mut SocketSet<'_>,
        now: Duration,
    ) -> Result<NextHop, String> {
        let mut socket = tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0; buffer]),
            tcp::SocketBuffer::new(vec![0; buffer]),
        );
        super::tuned(&mut socket);
        socket
            .connect(iface.context(), addr, port)
            .map_err(|e| format!("connect to {addr}: {e}"))?;
        let handle = sockets.add(socket);
        Ok(NextHop {
            client: Client::new(config.clone(), now),
            stream: Stream::new(handle),
            addr,
            deadline: now + CONNECT_TIMEOUT.min(config.timeout),
            connect_by: now + CONNECT_TIMEOUT,
            ended: Vec::new(),
            failed: None,
        })
    }

    /// The connection's socket.
    pub(crate) fn handle(&self) -> SocketHandle {
        self.stream.handle
    }

    /// Whether it can take another transaction.
    pub(crate) fn usable(&self) -> bool {
        self.failed.is_none()
    }

    /// When it wants the loop to turn again at the latest.
    pub(crate) fn poll_at(&self) -> Duration {
        self.deadline
    }

    /// Reads what came, drives the client machine, sends what it says.
    pub(crate) fn step(&mut self, sockets: &mut SocketSet<'_>, now: Duration) {
        if self.failed.is_none() {
            let state = sockets.get_mut::<tcp::Socket>(self.stream.handle).state();
            match state {
                tcp::State::SynSent if now >= self.connect_by => {
                    self.failed = Some(format!(
                        "{}: no connection within {} s",
                        self.addr,
                        CONNECT_TIMEOUT.as_secs()
                    ));
                }
                tcp::State::SynSent => {}
                tcp::State::Closed => self.client.handle_input(Input::Closed(now)),
                _ => match self.stream.read(sockets) {
                    Read::Data(bytes) => self.client.handle_input(Input::Receive(now, &bytes)),
                    Read::Nothing => {}
                    Read::Closed(_) => self.client.handle_input(Input::Closed(now)),
                },
            }
            if now >= self.deadline {
                self.client.handle_input(Input::Timeout(now));
            }
        }
        loop {
            match self.client.poll_output() {
                Output::Transmit(bytes) => self.stream.write(&bytes),
                Output::Event(ClientEvent::Transaction(t)) => self.ended.push(t),
                Output::Event(ClientEvent::Failed(e)) => {
                    self.failed
                        .get_or_insert_with(|| format!("{}: {e}", self.addr));
                }
                Output::Event(_) => {}
                Output::StartTls => {
                    // Built without TLS (TlsMode::None): never asked.
                    self.failed
                        .get_or_insert_with(|| format!("{}: wants TLS", self.addr));
                    break;
                }
                Output::Close => {
                    self.failed
                        .get_or_insert_with(|| format!("{}: session closed", self.addr));
                    break;
                }
                Output::Timeout(at) => {
                    self.deadline = if self.connecting(sockets) {
                        at.min(self.connect_by)
                    } else {
                        at
                    };
                    break;
                }
            }
        }
        self.stream.flush(sockets);
    }

    fn connecting(&self, sockets: &mut SocketSet<'_>) -> bool {
        sockets.get_mut::<tcp::Socket>(self.stream.handle).state() == tcp::State::SynSent
    }

    /// How transaction `id` ended, once it has.
    pub(crate) fn take(&mut self, id: u64) -> Option<Outcome> {
        if let Some(at) = self.ended.iter().position(|t| t.id == id) {
            return Some(Outcome::Done(self.ended.swap_remove(at)));
        }
        self.failed.clone().map(Outcome::Failed)
    }

    /// QUIT, then the connection is left to close.
    pub(crate) fn close(&mut self, sockets: &mut SocketSet<'_>, now: Duration) {
        if self.failed.is_none() {
            self.client.finish();
            self.step(sockets, now);
        }
        self.stream.close(sockets);
    }
}
