//! `ptt smtp-sink`: an SMTP server that stores every accepted message in a
//! Maildir, on disk (temp file, fsync, rename) before it answers 250.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use ptt_smtp::server::{Event, Server, ServerConfig};
use ptt_smtp::{EnhancedCode, Reply};
use tokio::net::TcpListener;

use crate::exit::{Failure, Outcome};
use crate::net::smtp::{Answer, SessionHandler};
use crate::net::{smtp, tls};
use crate::store::maildir::Maildir;

/// Run an SMTP server that stores each accepted message in a Maildir.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Example:\n  ptt smtp-sink --listen 127.0.0.1:2525 --maildir /tmp/sink\n  \
    ptt smtp-sink --listen 127.0.0.1:0 --maildir /tmp/sink --tls-cert cert.pem --tls-key key.pem --auth alice:secret\n\n\
    It prints `listening on ADDR` once it accepts connections (use port 0 for a free port).\n\
    Each message is written to DIR/tmp, fsynced, renamed into DIR/new and the directory\n\
    fsynced before the 250 reply; --no-fsync skips both fsyncs (for benchmarks)."
)]
pub(crate) struct Args {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:2525")]
    listen: SocketAddr,
    /// The Maildir (tmp/, new/ and cur/ are created).
    #[arg(long)]
    maildir: PathBuf,
    /// PEM certificate chain: STARTTLS is offered (or implicit TLS).
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// TLS from the first byte (RFC 8314, as on port 465) instead of STARTTLS.
    #[arg(long, requires = "tls_cert")]
    implicit_tls: bool,
    /// Largest message accepted, in octets (SIZE).
    #[arg(long, default_value_t = 36_700_160)]
    max_size: u64,
    /// Recipients per message.
    #[arg(long, default_value_t = 1000)]
    max_recipients: usize,
    /// Do not fsync messages (benchmarks only: a 250 no longer means on disk).
    #[arg(long)]
    no_fsync: bool,
    /// Accept AUTH (under TLS) for USER:PASSWORD; may be repeated.
    #[arg(long, value_name = "USER:PASSWORD")]
    auth: Vec<String>,
    /// Allow AUTH without TLS (testing only).
    #[arg(long, requires = "auth")]
    auth_without_tls: bool,
    /// The host name in the greeting.
    #[arg(long, default_value = "localhost")]
    hostname: String,
}

pub(crate) fn run(args: Args) -> Outcome {
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(c), Some(k)) => Some(tls::acceptor(c, k).map_err(Failure::Input)?),
        _ => None,
    };
    let mut users = Vec::new();
    for a in &args.auth {
        let (u, p) = a
            .split_once(':')
            .ok_or_else(|| Failure::input(format!("--auth {a:?}: expected USER:PASSWORD")))?;
        users.push((u.to_string(), p.to_string()));
    }
    let maildir = Maildir::create(&args.maildir)
        .map_err(|e| Failure::input(format!("cannot create {}: {e}", args.maildir.display())))?;
    let config = Arc::new(ServerConfig {
        hostname: args.hostname.clone(),
        max_message_size: args.max_size,
        max_recipients: args.max_recipients,
        starttls: tls.is_some() && !args.implicit_tls,
        auth: !users.is_empty(),
        auth_without_tls: args.auth_without_tls,
        ..ServerConfig::default()
    });
    // One thread serves the network (as Postfix's smtp-sink does); file work
    // goes to tokio's blocking pool, so both cores are used.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::input(format!("tokio runtime: {e}")))?;
    let sink = Arc::new(Sink {
        maildir,
        fsync: !args.no_fsync,
        users,
    });
    runtime.block_on(async move {
        let listener = TcpListener::bind(args.listen)
            .await
            .map_err(|e| Failure::input(format!("cannot listen on {}: {e}", args.listen)))?;
        let local = listener
            .local_addr()
            .map_err(|e| Failure::input(format!("local address: {e}")))?;
        println!("listening on {local}");
        let _ = std::io::stdout().flush();
        smtp::listen(listener, config, tls, args.implicit_tls, move |_peer| {
            SinkSession::new(sink.clone())
        })
        .await;
        Ok(())
    })
}

/// What all sessions share.
#[derive(Debug)]
struct Sink {
    maildir: Maildir,
    fsync: bool,
    users: Vec<(String, String)>,
}

/// Messages up to this size stay in memory until DATA ends; a larger one
/// spills into its temp file as it streams.
const IN_MEMORY: usize = 256 * 1024;

/// Where the bytes of the message being received are.
enum Body {
    /// Still in memory (the common case: one file operation at the end).
    Memory(Vec<u8>),
    /// Spilled into the temp file.
    Spilled(BufWriter<File>),
}

/// One message being received.
struct Open {
    name: String,
    tmp: PathBuf,
    body: Body,
}

impl Open {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match &mut self.body {
            Body::Memory(buf) if buf.len() + bytes.len() <= IN_MEMORY => {
                buf.extend_from_slice(bytes);
                Ok(())
            }
            Body::Memory(buf) => {
                let mut file = BufWriter::with_capacity(64 * 1024, File::create(&self.tmp)?);
                file.write_all(buf)?;
                file.write_all(bytes)?;
                self.body = Body::Spilled(file);
                Ok(())
            }
            Body::Spilled(file) => file.write_all(bytes),
        }
    }

    /// Removes the temp file, if the message ever reached it.
    fn discard(self) {
        if let Body::Spilled(file) = self.body {
            drop(file);
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// One connection's state.
struct SinkSession {
    sink: Arc<Sink>,
    from: String,
    rcpts: Vec<String>,
    open: Option<Open>,
    failed: Option<std::io::Error>,
}

impl SinkSession {
    fn new(sink: Arc<Sink>) -> Self {
        SinkSession {
            sink,
            from: String::new(),
            rcpts: Vec::new(),
            open: None,
            failed: None,
        }
    }

    fn discard(&mut self) {
        if let Some(open) = self.open.take() {
            open.discard();
        }
        self.failed = None;
    }

    fn start(&mut self) {
        self.discard();
        let name = self.sink.maildir.unique_name();
        let tmp = self.sink.maildir.tmp_path(&name);
        let mut head = format!("Return-Path: <{}>\r\n", self.from);
        for r in &self.rcpts {
            head.push_str(&format!("Delivered-To: {r}\r\n"));
        }
        let mut buf = Vec::with_capacity(16 * 1024);
        buf.extend_from_slice(head.as_bytes());
        self.open = Some(Open {
            name,
            tmp,
            body: Body::Memory(buf),
        });
    }

    fn write(&mut self, bytes: &[u8]) {
        if self.failed.is_some() {
            return;
        }
        if let Some(open) = &mut self.open
            && let Err(e) = open.write(bytes)
        {
            self.failed = Some(e);
        }
    }

    async fn finish(&mut self) -> Answer {
        let failed = self.failed.take();
        let Some(open) = self.open.take() else {
            return Answer::Refuse(Reply::new(
                451,
                Some(EnhancedCode::new(4, 3, 0)),
                "Local error: no message file",
            ));
        };
        if let Some(e) = failed {
            eprintln!("ptt smtp-sink: writing {}: {e}", open.tmp.display());
            open.discard();
            return Answer::Refuse(Reply::new(
                451,
                Some(EnhancedCode::new(4, 3, 0)),
                "Local error in writing the message",
            ));
        }
        let sink = self.sink.clone();
        let name = open.name.clone();
        let tmp = open.tmp.clone();
        // All file work of a message that stayed in memory happens here, in
        // one blocking task beside the network loop, which meanwhile goes
        // on serving the other sessions.
        let stored = tokio::task::spawn_blocking(move || store(open, &sink.maildir, sink.fsync))
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e)));
        match stored {
            Ok(()) => Answer::AcceptWith(Reply::new(
                250,
                Some(EnhancedCode::new(2, 0, 0)),
                &format!("Ok: queued as {name}"),
            )),
            Err(e) => {
                eprintln!("ptt smtp-sink: storing {}: {e}", tmp.display());
                let _ = std::fs::remove_file(&tmp);
                Answer::Refuse(Reply::new(
                    451,
                    Some(EnhancedCode::new(4, 3, 0)),
                    "Local error in storing the message",
                ))
            }
        }
    }
}

/// Writes the message to its temp file (unless it spilled there already)
/// and publishes it in the Maildir (fsynced unless `fsync` is off).
fn store(open: Open, maildir: &Maildir, fsync: bool) -> std::io::Result<()> {
    let file = match open.body {
        Body::Memory(buf) => {
            let mut file = File::create(&open.tmp)?;
            file.write_all(&buf)?;
            file
        }
        Body::Spilled(file) => file.into_inner().map_err(|e| e.into_error())?,
    };
    maildir.publish(&open.name, file, fsync)
}

impl SessionHandler for SinkSession {
    async fn event(&mut self, event: Event, session: &Server) -> Answer {
        match event {
            Event::Auth { credentials, .. } => {
                let ok = self
                    .sink
                    .users
                    .iter()
                    .any(|(u, p)| *u == credentials.username && *p == credentials.password);
                if ok {
                    Answer::Accept
                } else {
                    Answer::Refuse(Reply::new(
                        535,
                        Some(EnhancedCode::new(5, 7, 8)),
                        "Authentication credentials invalid",
                    ))
                }
            }
            Event::Mail { from, .. } => {
                self.from = from.mailbox().map(|m| m.to_string()).unwrap_or_default();
                self.rcpts.clear();
                Answer::Accept
            }
            Event::Rcpt { to, .. } => {
                self.rcpts.push(match to.mailbox() {
                    Some(m) => m.to_string(),
                    None => "postmaster".into(),
                });
                Answer::Accept
            }
            Event::DataStart { .. } => {
                self.start();
                Answer::Accept
            }
            Event::DataChunk(bytes) => {
                self.write(&bytes);
                Answer::Accept
            }
            Event::DataEnd { .. } => {
                let _ = session;
                self.finish().await
            }
            Event::DataRefused { .. } | Event::Reset | Event::Quit => {
                self.discard();
                Answer::Accept
            }
            // HELO, VRFY, and events a later ptt-smtp adds: the machine's
            // usual answer.
            _ => Answer::Accept,
        }
    }

    fn closed(&mut self) {
        self.discard();
    }
}
