//! `ptt send`: send one message read from standard input over SMTP.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::time::Duration;

use ptt_smtp::client::{ClientEvent, Message, TlsMode};
use ptt_smtp::{
    Client, ClientConfig, Credentials, ForwardPath, MailParams, RcptParams, ReversePath,
};
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;

use crate::exit::{Failure, Outcome};
use crate::net::smtp::Conn;
use crate::net::{smtp, tls};

/// Send a message from standard input to an SMTP server.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Example:\n  ptt send --server 127.0.0.1:2525 --from a@example.org --to b@example.net < message.eml\n  \
    ptt send --server mail.example.org:587 --starttls --auth-user alice --auth-password secret \\\n      \
    --from alice@example.org --to bob@example.net < message.eml\n\n\
    Prints every reply of the server. Exits 0 when every recipient accepted the message,\n\
    1 when any did not, 2 on bad usage or when the session failed.\n\
    Without --tls-ca the server certificate is not verified (opportunistic TLS, RFC 7435)."
)]
pub(crate) struct Args {
    /// The server, HOST:PORT.
    #[arg(long)]
    server: String,
    /// The envelope sender (empty for the null path `<>`).
    #[arg(long)]
    from: String,
    /// An envelope recipient (repeat for more).
    #[arg(long, required = true)]
    to: Vec<String>,
    /// Use STARTTLS, and fail if the server does not offer it.
    #[arg(long, conflicts_with = "tls")]
    starttls: bool,
    /// TLS from the first byte (RFC 8314, port 465).
    #[arg(long)]
    tls: bool,
    /// Trust only these PEM certificates for the server (default: no check).
    #[arg(long)]
    tls_ca: Option<PathBuf>,
    /// AUTH user name (PLAIN, or LOGIN when PLAIN is not offered).
    #[arg(long, requires = "auth_password")]
    auth_user: Option<String>,
    /// AUTH password.
    #[arg(long, requires = "auth_user")]
    auth_password: Option<String>,
    /// The name to give in EHLO.
    #[arg(long, default_value = "localhost")]
    helo: String,
    /// Send with BDAT when the server offers CHUNKING.
    #[arg(long)]
    chunking: bool,
    /// Do not pipeline commands even when offered.
    #[arg(long)]
    no_pipelining: bool,
    /// Seconds to wait for each reply.
    #[arg(long, default_value_t = 60)]
    timeout: u64,
}

fn bracket(s: &str) -> String {
    if s.starts_with('<') {
        s.to_string()
    } else {
        format!("<{s}>")
    }
}

pub(crate) fn run(args: Args) -> Outcome {
    let from = ReversePath::parse(&bracket(&args.from), true)
        .map_err(|e| Failure::input(format!("--from {:?}: {e}", args.from)))?;
    let mut to = Vec::new();
    for t in &args.to {
        let p = ForwardPath::parse(&bracket(t), true)
            .map_err(|e| Failure::input(format!("--to {t:?}: {e}")))?;
        to.push((p, RcptParams::default()));
    }
    let mut data = Vec::new();
    std::io::stdin()
        .read_to_end(&mut data)
        .map_err(|e| Failure::input(format!("reading the message from standard input: {e}")))?;
    let (host, _port) = args
        .server
        .rsplit_once(':')
        .ok_or_else(|| Failure::input(format!("--server {:?}: expected HOST:PORT", args.server)))?;
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let name = ServerName::try_from(host.clone())
        .map_err(|e| Failure::input(format!("--server {host:?}: {e}")))?;
    let connector = if args.starttls || args.tls {
        Some(tls::connector(args.tls_ca.as_deref()).map_err(Failure::Input)?)
    } else {
        None
    };
    let config = ClientConfig {
        hello_name: args.helo.clone(),
        tls: if args.tls {
            TlsMode::Implicit
        } else if args.starttls {
            TlsMode::Required
        } else {
            TlsMode::None
        },
        credentials: args.auth_user.as_ref().map(|u| Credentials {
            authzid: String::new(),
            username: u.clone(),
            password: args.auth_password.clone().unwrap_or_default(),
        }),
        pipelining: !args.no_pipelining,
        chunking: args.chunking,
        timeout: Duration::from_secs(args.timeout),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::input(format!("tokio runtime: {e}")))?;
    let server = args.server.clone();
    runtime.block_on(async move {
        let tcp = tokio::time::timeout(config.timeout, TcpStream::connect(&server))
            .await
            .map_err(|_| Failure::input(format!("connecting to {server}: timed out")))?
            .map_err(|e| Failure::input(format!("connecting to {server}: {e}")))?;
        let _ = tcp.set_nodelay(true);
        let mut conn = Conn::Plain(tcp);
        if let (true, Some(c)) = (args.tls, &connector) {
            conn.connect_tls(c, name.clone())
                .await
                .map_err(|e| Failure::input(format!("TLS with {server}: {e}")))?;
        }
        let mut client = Client::new(config, Duration::ZERO);
        client.send(Message {
            from,
            params: MailParams::default(),
            to,
            data,
        });
        client.finish();
        let mut delivered_all = false;
        let mut failure = None;
        let mut out = std::io::stdout().lock();
        let tls = connector.as_ref().map(|c| (c, name.clone()));
        smtp::drive_client(conn, &mut client, tls, |e| match e {
            ClientEvent::Reply(r) => {
                let _ = out.write_all(r.to_string().as_bytes());
            }
            ClientEvent::Transaction(t) => delivered_all = t.all_delivered(),
            ClientEvent::Failed(f) => failure = Some(f.to_string()),
            _ => {}
        })
        .await
        .map_err(|e| Failure::input(format!("session with {server}: {e}")))?;
        let _ = out.flush();
        if let Some(f) = failure {
            return Err(Failure::input(format!("session with {server}: {f}")));
        }
        if delivered_all {
            Ok(())
        } else {
            Err(Failure::Negative)
        }
    })
}
