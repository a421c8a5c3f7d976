//! The tokio wiring of the ptt-smtp machines: one loop that drives a
//! [`ptt_smtp::Server`] over a TCP stream (plain, STARTTLS, or implicit
//! TLS), asking a [`SessionHandler`] for every decision, and one that drives
//! a [`ptt_smtp::Client`].
//!
//! Every SMTP listener of ptt (the sink, and later submission and the
//! receiver) is a [`SessionHandler`] plus [`listen`] (or [`serve`] for one
//! connection):
//!
//! ```ignore
//! let listener = TcpListener::bind(addr).await?;
//! let config = Arc::new(ServerConfig { hostname, starttls: true, auth: true, ..Default::default() });
//! listen(listener, config, Some(acceptor), false, move |peer| MyHandler::new(peer, shared.clone())).await;
//! ```

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use ptt_smtp::server::{self, Event, Server, ServerConfig};
use ptt_smtp::{Client, ClientEvent, Reply, client};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// A connection that may be upgraded to TLS in the middle.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Conn {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS, server side.
    ServerTls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
    /// TLS, client side.
    ClientTls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
    /// Only during an upgrade.
    Gone,
}

impl Conn {
    fn is_tls(&self) -> bool {
        matches!(self, Conn::ServerTls(_) | Conn::ClientTls(_))
    }

    /// The client's certificate on a server-side TLS connection.
    pub(crate) fn peer_certificate(&self) -> Option<&[u8]> {
        match self {
            Conn::ServerTls(s) => s
                .get_ref()
                .1
                .peer_certificates()?
                .first()
                .map(|c| c.as_ref()),
            _ => None,
        }
    }

    /// Wraps the plain stream in server-side TLS.
    pub(crate) async fn accept_tls(&mut self, acceptor: &TlsAcceptor) -> io::Result<()> {
        let Conn::Plain(tcp) = std::mem::replace(self, Conn::Gone) else {
            return Err(io::Error::other("TLS over TLS"));
        };
        let tls = acceptor.accept(tcp).await?;
        *self = Conn::ServerTls(Box::new(tls));
        Ok(())
    }

    /// Wraps the plain stream in client-side TLS.
    pub(crate) async fn connect_tls(
        &mut self,
        connector: &TlsConnector,
        name: rustls::pki_types::ServerName<'static>,
    ) -> io::Result<()> {
        let Conn::Plain(tcp) = std::mem::replace(self, Conn::Gone) else {
            return Err(io::Error::other("TLS over TLS"));
        };
        let tls = connector.connect(name, tcp).await?;
        *self = Conn::ClientTls(Box::new(tls));
        Ok(())
    }
}

fn gone() -> io::Error {
    io::Error::new(
        io::ErrorKind::NotConnected,
        "connection lost in a TLS upgrade",
    )
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Conn::ServerTls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            Conn::ClientTls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            Conn::Gone => Poll::Ready(Err(gone())),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Conn::ServerTls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            Conn::ClientTls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            Conn::Gone => Poll::Ready(Err(gone())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_flush(cx),
            Conn::ServerTls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Conn::ClientTls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Conn::Gone => Poll::Ready(Err(gone())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Conn::ServerTls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            Conn::ClientTls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            Conn::Gone => Poll::Ready(Ok(())),
        }
    }
}

/// The answer to an event that [`Event::needs_answer`].
#[derive(Debug)]
pub(crate) enum Answer {
    /// Accept with the machine's usual reply.
    Accept,
    /// Accept with this reply (e.g. a queue id after DATA).
    AcceptWith(Reply),
    /// Refuse with this reply.
    Refuse(Reply),
}

/// The decisions of one SMTP server session. One value per connection.
pub(crate) trait SessionHandler: Send {
    /// Called for every event of the session, in order. For events that
    /// need an answer the result is applied; for the others it is ignored.
    /// `session` tells the TLS state, the HELO name and the authenticated
    /// user.
    fn event(
        &mut self,
        event: Event,
        session: &Server,
    ) -> impl std::future::Future<Output = Answer> + Send;

    /// TLS is up; `cert` is the client's certificate, when it gave one
    /// (the internal listeners require one, checked during the handshake).
    fn tls_peer(&mut self, cert: Option<&[u8]>) {
        let _ = cert;
    }

    /// The connection is over (after QUIT, a 421, EOF or an I/O error).
    fn closed(&mut self) {}
}

/// Accepts connections for ever, one task per connection, each with the
/// handler `make(peer)` returns. Errors of one session are printed to
/// standard error and never stop the others.
pub(crate) async fn listen<H, F>(
    listener: TcpListener,
    config: Arc<ServerConfig>,
    tls: Option<TlsAcceptor>,
    implicit: bool,
    make: F,
) where
    H: SessionHandler + 'static,
    F: Fn(std::net::SocketAddr) -> H,
{
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // Out of descriptors and the like: wait, then go on.
                eprintln!("smtp: accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let mut handler = make(peer);
        let (config, tls) = (config.clone(), tls.clone());
        tokio::spawn(async move {
            if let Err(e) = serve(tcp, config, tls, implicit, &mut handler, None).await {
                eprintln!("smtp: session with {peer}: {e}");
            }
        });
    }
}

/// Drives one server session over `tcp` until it closes.
///
/// `tls` makes STARTTLS possible (when `config.starttls`) or, with
/// `implicit`, runs the handshake before the greeting (RFC 8314). Once
/// `stop` says true, the next MAIL is answered `421 4.3.2` and the session
/// ends: a transaction under way finishes, no new one starts.
pub(crate) async fn serve<H: SessionHandler>(
    tcp: TcpStream,
    config: Arc<ServerConfig>,
    tls: Option<TlsAcceptor>,
    implicit: bool,
    handler: &mut H,
    stop: Option<watch::Receiver<bool>>,
) -> io::Result<()> {
    let _ = tcp.set_nodelay(true);
    let mut conn = Conn::Plain(tcp);
    if implicit {
        let acceptor = tls
            .as_ref()
            .ok_or_else(|| io::Error::other("implicit TLS without a certificate"))?;
        tokio::time::timeout(config.command_timeout, conn.accept_tls(acceptor))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out"))??;
        handler.tls_peer(conn.peer_certificate());
    }
    let start = Instant::now();
    let now = move || start.elapsed();
    let mut session = Server::new(config, now(), conn.is_tls());
    let result = drive_server(&mut conn, &mut session, tls.as_ref(), handler, now, stop).await;
    if result.is_err() {
        // Let the machine drop the transaction and tell the handler.
        session.handle_input(server::Input::Closed(now()));
        while let server::Output::Event(e) = session.poll_output() {
            handler.event(e, &session).await;
        }
    }
    handler.closed();
    linger(&mut conn).await;
    result
}

/// Closes our side, then reads and discards what the client still sends
/// for a moment, so that unread input does not turn the close into a reset
/// that would destroy our last reply (a 421 or a 221) in flight.
async fn linger(conn: &mut Conn) {
    let _ = conn.shutdown().await;
    let mut buf = [0u8; 4096];
    let until = tokio::time::Instant::now() + Duration::from_secs(2);
    while let Ok(Ok(n)) = tokio::time::timeout_at(until, conn.read(&mut buf)).await {
        if n == 0 {
            break;
        }
    }
}

async fn drive_server<H: SessionHandler>(
    conn: &mut Conn,
    session: &mut Server,
    tls: Option<&TlsAcceptor>,
    handler: &mut H,
    now: impl Fn() -> Duration,
    stop: Option<watch::Receiver<bool>>,
) -> io::Result<()> {
    // Small: a thousand sessions at once each hold one.
    let mut buf = vec![0u8; 4 * 1024];
    // Between MAIL and the end of its data (or a reset): a stopping
    // service lets such a session finish its transaction.
    let mut in_transaction = false;
    loop {
        match session.poll_output() {
            server::Output::Transmit(bytes) => {
                conn.write_all(&bytes).await?;
                conn.flush().await?;
            }
            server::Output::Event(event) => {
                if matches!(event, Event::Mail { .. }) && stop.as_ref().is_some_and(|s| *s.borrow())
                {
                    let reply = Reply::new(
                        421,
                        Some(ptt_smtp::EnhancedCode::new(4, 3, 2)),
                        "shutting down; try again later",
                    );
                    session.refuse(reply).map_err(io::Error::other)?;
                    continue;
                }
                let ask = event.needs_answer();
                let is_mail = matches!(event, Event::Mail { .. });
                if matches!(
                    event,
                    Event::DataEnd { .. } | Event::DataRefused { .. } | Event::Reset | Event::Quit
                ) {
                    in_transaction = false;
                }
                let answer = handler.event(event, session).await;
                if is_mail && !matches!(answer, Answer::Refuse(_)) {
                    in_transaction = true;
                }
                if ask {
                    let r = match answer {
                        Answer::Accept => session.accept(),
                        Answer::AcceptWith(reply) => session.accept_with(reply),
                        Answer::Refuse(reply) => session.refuse(reply),
                    };
                    r.map_err(io::Error::other)?;
                }
            }
            server::Output::StartTls => {
                let acceptor = tls.ok_or_else(|| io::Error::other("STARTTLS without TLS"))?;
                let limit = session.config().command_timeout;
                tokio::time::timeout(limit, conn.accept_tls(acceptor))
                    .await
                    .map_err(|_| {
                        io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out")
                    })??;
                handler.tls_peer(conn.peer_certificate());
                session.handle_input(server::Input::TlsEstablished(now()));
            }
            server::Output::Close => return Ok(()),
            server::Output::Timeout(at) => {
                let wait = at.saturating_sub(now());
                let stopping = async {
                    match stop.clone() {
                        Some(mut s) => {
                            let _ = s.wait_for(|stop| *stop).await;
                        }
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    read = conn.read(&mut buf) => match read {
                        Ok(0) => session.handle_input(server::Input::Closed(now())),
                        Ok(n) => session.handle_input(server::Input::Receive(now(), &buf[..n])),
                        Err(e) => return Err(e),
                    },
                    () = tokio::time::sleep(wait) => session.handle_input(server::Input::Timeout(now())),
                    () = stopping, if !in_transaction => {
                        // Idle while the service stops: say so and close
                        // (a transaction under way is left to finish).
                        conn.write_all(b"421 4.3.2 shutting down; try again later\r\n").await?;
                        conn.flush().await?;
                        return Ok(());
                    }
                }
            }
        }
    }
}

/// Drives a client session over `conn` until it closes; `on_event` sees
/// every event. `tls` is needed for STARTTLS.
pub(crate) async fn drive_client(
    mut conn: Conn,
    client: &mut Client,
    tls: Option<(&TlsConnector, rustls::pki_types::ServerName<'static>)>,
    mut on_event: impl FnMut(&ClientEvent),
) -> io::Result<()> {
    let start = Instant::now();
    let now = move || start.elapsed();
    let mut buf = vec![0u8; 4 * 1024];
    loop {
        match client.poll_output() {
            client::Output::Transmit(bytes) => {
                conn.write_all(&bytes).await?;
                conn.flush().await?;
            }
            client::Output::Event(e) => on_event(&e),
            client::Output::StartTls => {
                let (connector, name) = tls
                    .clone()
                    .ok_or_else(|| io::Error::other("STARTTLS without a TLS configuration"))?;
                conn.connect_tls(connector, name).await?;
                client.handle_input(client::Input::TlsEstablished(now()));
            }
            client::Output::Close => {
                let _ = conn.shutdown().await;
                return Ok(());
            }
            client::Output::Timeout(at) => {
                let wait = at.saturating_sub(now()).min(Duration::from_secs(3600));
                tokio::select! {
                    read = conn.read(&mut buf) => match read {
                        Ok(0) => client.handle_input(client::Input::Closed(now())),
                        Ok(n) => client.handle_input(client::Input::Receive(now(), &buf[..n])),
                        Err(e) => return Err(e),
                    },
                    () = tokio::time::sleep(wait) => client.handle_input(client::Input::Timeout(now())),
                }
            }
        }
    }
}

/// A client session that outlives one message: the connection, the
/// ptt-smtp machine and its clock, kept open between transactions so that
/// the next message to the same hop skips the TCP and TLS handshakes.
pub(crate) struct ClientSession {
    conn: Conn,
    client: Client,
    epoch: Instant,
    tls: Option<(TlsConnector, rustls::pki_types::ServerName<'static>)>,
    buf: Vec<u8>,
    /// When its last transaction ended.
    pub(crate) idle_since: Instant,
}

/// How one transaction on a [`ClientSession`] went.
pub(crate) enum Transacted {
    /// The server answered MAIL (and the rest).
    Done(client::TransactionResult),
    /// The session failed before the server answered anything of this
    /// transaction: safe to try again on a new connection.
    Unsent(String),
    /// The session failed during the transaction.
    Failed(String),
}

impl ClientSession {
    /// A session over `conn` (plain, or TLS already), its machine made at
    /// `epoch`.
    pub(crate) fn new(
        conn: Conn,
        client: Client,
        epoch: Instant,
        tls: Option<(TlsConnector, rustls::pki_types::ServerName<'static>)>,
    ) -> ClientSession {
        ClientSession {
            conn,
            client,
            epoch,
            tls,
            buf: vec![0u8; 4 * 1024],
            idle_since: Instant::now(),
        }
    }

    /// Sends one message and drives the session until its result.
    pub(crate) async fn transact(&mut self, message: client::Message) -> Transacted {
        let id = self.client.send(message);
        self.result_of(id).await
    }

    /// Asks whether the server takes mail for `to` (MAIL and RCPT, then
    /// RSET; no data), and drives the session until its answer.
    pub(crate) async fn verify(
        &mut self,
        from: ptt_smtp::ReversePath,
        to: Vec<(ptt_smtp::ForwardPath, ptt_smtp::RcptParams)>,
    ) -> Transacted {
        let id = self.client.verify(from, to);
        self.result_of(id).await
    }

    /// Drives the session until transaction `id` ends.
    async fn result_of(&mut self, id: u64) -> Transacted {
        let (mut result, mut failure, mut replies) = (None, None, 0usize);
        let driven = self
            .drive_until(|e| match e {
                ClientEvent::Transaction(t) if t.id == id => {
                    result = Some(t.clone());
                    true
                }
                ClientEvent::Failed(f) => {
                    failure = Some(f.to_string());
                    true
                }
                ClientEvent::Reply(_) => {
                    replies += 1;
                    false
                }
                _ => false,
            })
            .await;
        self.idle_since = Instant::now();
        if let Some(t) = result {
            return Transacted::Done(t);
        }
        let why = failure
            .or_else(|| driven.err().map(|e| e.to_string()))
            .unwrap_or_else(|| "the session ended before the message was sent".into());
        if replies == 0 {
            Transacted::Unsent(why)
        } else {
            Transacted::Failed(why)
        }
    }

    /// Whether the session runs under TLS.
    pub(crate) fn is_tls(&self) -> bool {
        self.client.is_tls()
    }

    /// Says QUIT and closes (at most a few seconds).
    pub(crate) async fn quit(mut self) {
        self.client.finish();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.drive_until(|_| false)).await;
    }

    /// Drives until `stop` says so for an event, the machine has nothing to
    /// do (idle), or the connection closes.
    async fn drive_until(&mut self, mut stop: impl FnMut(&ClientEvent) -> bool) -> io::Result<()> {
        let epoch = self.epoch;
        let now = move || epoch.elapsed();
        loop {
            match self.client.poll_output() {
                client::Output::Transmit(bytes) => {
                    self.conn.write_all(&bytes).await?;
                    self.conn.flush().await?;
                }
                client::Output::Event(e) => {
                    if stop(&e) {
                        return Ok(());
                    }
                }
                client::Output::StartTls => {
                    let (connector, name) = self
                        .tls
                        .clone()
                        .ok_or_else(|| io::Error::other("STARTTLS without a TLS configuration"))?;
                    self.conn.connect_tls(&connector, name).await?;
                    self.client
                        .handle_input(client::Input::TlsEstablished(now()));
                }
                client::Output::Close => {
                    let _ = self.conn.shutdown().await;
                    return Ok(());
                }
                // Idle: nothing queued, nothing awaited.
                client::Output::Timeout(at) if at == Duration::MAX => return Ok(()),
                client::Output::Timeout(at) => {
                    let wait = at.saturating_sub(now()).min(Duration::from_secs(3600));
                    tokio::select! {
                        read = self.conn.read(&mut self.buf) => match read {
                            Ok(0) => self.client.handle_input(client::Input::Closed(now())),
                            Ok(n) => self.client.handle_input(client::Input::Receive(now(), &self.buf[..n])),
                            Err(e) => return Err(e),
                        },
                        () = tokio::time::sleep(wait) => self.client.handle_input(client::Input::Timeout(now())),
                    }
                }
            }
        }
    }
}
