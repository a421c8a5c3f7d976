//! `ptt up`: the services of one mail domain on loopback, with keys and
//! certificates generated at start, so that a newcomer sees the whole path
//! of a message with one command.
//!
//! What runs (each an SMTP listener over the ptt-smtp server machine):
//! - **submission** (STARTTLS on one port, implicit TLS on another): AUTH
//!   PLAIN/LOGIN only under TLS, for one generated user; a user may send only
//!   as themselves; every message is DKIM-signed (Ed25519, the **signer**'s
//!   job) and then routed: recipients of the domain go to the receiver over
//!   SMTP with STARTTLS (certificate from the private CA), others are queued
//!   on disk in `outbound/` for the relay.
//! - **receiver**: accepts mail for the domain's users only (no open relay),
//!   removes forged `Authentication-Results` of its own, runs SPF, DKIM and
//!   DMARC, stamps `Received-SPF` and `Authentication-Results`, refuses what
//!   DMARC says to reject, and stores the rest in `inbox/` (fsynced before
//!   the `250`).
//!
//! The domain's DNS (DKIM key, SPF, DMARC records) is served to the
//! receiver from an in-process zone, since a loopback demo has no primary DNS
//! server; names of other domains go to the system's resolver.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ptt_dkim::{KeyKind, Signer, SignerConfig, SigningKey};
use ptt_dmarc::Policy;
use ptt_dmarc::psl::PublicSuffixList;
use ptt_smtp::server::{Event, Server, ServerConfig};
use ptt_smtp::{
    Client, ClientConfig, ClientEvent, EnhancedCode, MailParams, Message, RcptParams, Reply,
    TlsMode,
};
use rustls::pki_types::ServerName;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::authn::{Envelope, authenticate, strip_forged_results};
use crate::dns::Resolver;
use crate::exit::{Failure, Outcome};
use crate::maildir::Maildir;
use crate::pki::LocalCa;
use crate::smtp_io::{self, Answer, Conn, SessionHandler};

/// Run every service of a domain on loopback with generated keys.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Example:\n  ptt up --domain example.test --state ./ptt-local\n\n\
Then send as the printed user, e.g. with swaks:\n  \
swaks --server 127.0.0.1:5870 -tls --auth PLAIN --auth-user demo@example.test \\\n      \
--auth-password PASSWORD --from demo@example.test --to demo@example.test"
)]
pub(crate) struct Args {
    /// The mail domain the local service is for.
    #[arg(long, default_value = "example.test")]
    domain: String,
    /// Where keys, certificates, the inbox and the outbound queue are kept.
    #[arg(long, default_value = "ptt-local")]
    state: PathBuf,
    /// The address every listener binds.
    #[arg(long, default_value = "127.0.0.1")]
    listen: IpAddr,
    /// Submission with STARTTLS (587 in production).
    #[arg(long, default_value_t = 5870)]
    submission_port: u16,
    /// Submission with implicit TLS (465 in production).
    #[arg(long, default_value_t = 4650)]
    submissions_port: u16,
    /// The receiver (25 in production).
    #[arg(long, default_value_t = 2525)]
    receiver_port: u16,
    /// The local part of the generated user.
    #[arg(long, default_value = "demo")]
    user: String,
}

/// Everything the sessions share.
struct Site {
    domain: String,
    user: String,
    password: String,
    /// What the signer signs with (`d=` the domain, `s=` the selector).
    signing: SignerConfig,
    dkim: SigningKey,
    inbox: Maildir,
    outbound: Maildir,
    resolver: Resolver,
    psl: PublicSuffixList,
    receiver: SocketAddr,
    connector: TlsConnector,
    hostname: String,
}

pub(crate) fn run(args: Args) -> Outcome {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Failure::input(format!("starting the runtime: {e}")))?;
    runtime.block_on(up(args))
}

fn io_failure(what: &str, path: &Path) -> impl Fn(std::io::Error) -> Failure {
    let at = format!("{what} {}", path.display());
    move |e| Failure::input(format!("{at}: {e}"))
}

async fn up(args: Args) -> Outcome {
    let domain = args.domain.trim_end_matches('.').to_ascii_lowercase();
    if ptt_smtp::Domain::parse(&domain, false).is_err() || !domain.contains('.') {
        return Err(Failure::input(format!(
            "--domain {domain:?}: not a domain name"
        )));
    }
    let state = &args.state;
    std::fs::create_dir_all(state).map_err(io_failure("creating", state))?;
    let hostname = format!("mx.{domain}");

    // The private CA and the one certificate every listener presents.
    let ca = LocalCa::generate(&domain).map_err(Failure::input)?;
    let leaf = ca
        .issue(&["localhost", "127.0.0.1", &hostname])
        .map_err(Failure::input)?;
    let (ca_pem, cert_pem, key_pem) = (
        state.join("ca.pem"),
        state.join("cert.pem"),
        state.join("key.pem"),
    );
    for (path, text) in [
        (&ca_pem, ca.cert_pem()),
        (&cert_pem, &leaf.cert_pem),
        (&key_pem, &leaf.key_pem),
    ] {
        std::fs::write(path, text).map_err(io_failure("writing", path))?;
    }
    let acceptor = smtp_io::tls::acceptor(&cert_pem, &key_pem).map_err(Failure::Input)?;
    let connector = smtp_io::tls::connector(Some(&ca_pem)).map_err(Failure::Input)?;

    // The signer's key and the records the domain would publish.
    let seed = crate::random::bytes32().map_err(Failure::Input)?;
    let generated = ptt_dkim::generate_key(KeyKind::Ed25519, seed).map_err(Failure::input)?;
    let dkim_path = state.join("dkim-ed25519.pem");
    std::fs::write(&dkim_path, &generated.pem).map_err(io_failure("writing", &dkim_path))?;
    let selector = "ptt".to_string();
    let records = [
        (
            format!("{selector}._domainkey.{domain}"),
            generated.key.key_record().to_string(),
        ),
        (
            domain.clone(),
            "v=spf1 ip4:127.0.0.0/8 ip6:::1 -all".to_string(),
        ),
        (format!("_dmarc.{domain}"), "v=DMARC1; p=reject".to_string()),
    ];
    let mut resolver = Resolver::new(None)
        .or_else(|_| {
            // No system resolver configured: answer only from the local zone.
            Resolver::new(Some(SocketAddr::from(([127, 0, 0, 1], 53))))
        })
        .map_err(Failure::Input)?;
    resolver.add_local_zone(&domain);
    for (name, text) in &records {
        resolver.add_local_txt(name, text);
    }

    let mut password_bytes = [0u8; 12];
    crate::random::fill(&mut password_bytes)
        .map_err(|e| Failure::input(format!("reading /dev/urandom: {e}")))?;
    let password: String = password_bytes.iter().map(|b| format!("{b:02x}")).collect();

    let inbox_path = state.join("inbox");
    let outbound_path = state.join("outbound");
    let site = Arc::new(Site {
        user: format!("{}@{domain}", args.user),
        password,
        signing: SignerConfig::new(&domain, &selector),
        dkim: generated.key,
        inbox: Maildir::create(&inbox_path).map_err(io_failure("creating", &inbox_path))?,
        outbound: Maildir::create(&outbound_path)
            .map_err(io_failure("creating", &outbound_path))?,
        resolver,
        psl: PublicSuffixList::builtin(),
        receiver: SocketAddr::new(args.listen, args.receiver_port),
        connector,
        hostname: hostname.clone(),
        domain: domain.clone(),
    });

    let receiver_config = Arc::new(ServerConfig {
        hostname: hostname.clone(),
        banner: "ESMTP ptt receiver".into(),
        starttls: true,
        ..ServerConfig::default()
    });
    let submission_config = Arc::new(ServerConfig {
        hostname: hostname.clone(),
        banner: "ESMTP ptt submission".into(),
        starttls: true,
        auth: true,
        require_auth: true,
        ..ServerConfig::default()
    });
    let submissions_config = Arc::new(ServerConfig {
        starttls: false,
        ..(*submission_config).clone()
    });

    let bind = |port| async move {
        let addr = SocketAddr::new(args.listen, port);
        TcpListener::bind(addr)
            .await
            .map_err(|e| Failure::input(format!("listening on {addr}: {e}")))
    };
    let receiver = bind(args.receiver_port).await?;
    let submission = bind(args.submission_port).await?;
    let submissions = bind(args.submissions_port).await?;

    println!("ptt up: {domain} on {}", args.listen);
    println!(
        "  receiver     {}  (STARTTLS offered; mail for @{domain} only)",
        addr_of(&receiver)
    );
    println!(
        "  submission   {}  (STARTTLS, then AUTH)",
        addr_of(&submission)
    );
    println!(
        "  submissions  {}  (implicit TLS, then AUTH)",
        addr_of(&submissions)
    );
    println!("  user         {}  password {}", site.user, site.password);
    println!(
        "  CA           {}  (trust it to check the servers' certificate)",
        ca_pem.display()
    );
    println!("  inbox        {}/new", site.inbox.root().display());
    println!(
        "  outbound     {}/new  (for the relay)",
        site.outbound.root().display()
    );
    println!("  DNS records the domain publishes:");
    for (name, text) in &records {
        println!("    {name}. TXT \"{text}\"");
    }
    println!("Stop with Ctrl-C.");

    let tasks = [
        tokio::spawn(accept_loop(
            receiver,
            receiver_config,
            Some(acceptor.clone()),
            false,
            site.clone(),
            Role::Receiver,
        )),
        tokio::spawn(accept_loop(
            submission,
            submission_config,
            Some(acceptor.clone()),
            false,
            site.clone(),
            Role::Submission,
        )),
        tokio::spawn(accept_loop(
            submissions,
            submissions_config,
            Some(acceptor),
            true,
            site,
            Role::Submission,
        )),
    ];
    let _ = tokio::signal::ctrl_c().await;
    for task in tasks {
        task.abort();
    }
    println!("ptt up: stopped");
    Ok(())
}

fn addr_of(listener: &TcpListener) -> String {
    listener
        .local_addr()
        .map_or_else(|e| e.to_string(), |a| a.to_string())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Receiver,
    Submission,
}

async fn accept_loop(
    listener: TcpListener,
    config: Arc<ServerConfig>,
    tls: Option<TlsAcceptor>,
    implicit: bool,
    site: Arc<Site>,
    role: Role,
) {
    loop {
        let Ok((tcp, peer)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let (config, tls, site) = (config.clone(), tls.clone(), site.clone());
        tokio::spawn(async move {
            let mut session = Session::new(site, role, peer.ip());
            let _ = smtp_io::serve(tcp, config, tls, implicit, &mut session).await;
        });
    }
}

/// One connection's transaction.
struct Session {
    site: Arc<Site>,
    role: Role,
    peer: IpAddr,
    helo: String,
    tls: bool,
    from: String,
    rcpts: Vec<String>,
    data: Vec<u8>,
}

fn reply(code: u16, class: u8, subject: u16, detail: u16, text: &str) -> Reply {
    Reply::new(code, Some(EnhancedCode::new(class, subject, detail)), text)
}

impl Session {
    fn new(site: Arc<Site>, role: Role, peer: IpAddr) -> Session {
        Session {
            site,
            role,
            peer,
            helo: String::new(),
            tls: false,
            from: String::new(),
            rcpts: Vec::new(),
            data: Vec::new(),
        }
    }

    /// The trace field this hop adds (RFC 5321 §4.4), CRLF-terminated.
    fn received_field(&self, authenticated: bool, protocol: &str) -> String {
        let helo: String = self.helo.chars().filter(|c| c.is_ascii_graphic()).collect();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let auth = if authenticated {
            " (authenticated)"
        } else {
            ""
        };
        format!(
            "Received: from {helo} ({ip}){auth}\r\n\tby {by} with {protocol};\r\n\t{date}\r\n",
            ip = self.peer,
            by = self.site.hostname,
            date = rfc5322_date(now),
        )
    }

    fn reset(&mut self) {
        self.from.clear();
        self.rcpts.clear();
        self.data.clear();
    }

    fn is_local(&self, address: &str) -> bool {
        address
            .rsplit_once('@')
            .is_some_and(|(_, d)| d.eq_ignore_ascii_case(&self.site.domain))
    }

    fn check_password(&self, user: &str, password: &str) -> bool {
        let user_ok = user.eq_ignore_ascii_case(&self.site.user)
            || format!("{user}@{}", self.site.domain).eq_ignore_ascii_case(&self.site.user);
        // Compare every byte so that the time does not tell how much matched.
        let (a, b) = (password.as_bytes(), self.site.password.as_bytes());
        let same =
            a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0;
        user_ok && same
    }

    async fn end_of_data(&mut self) -> Answer {
        let message = std::mem::take(&mut self.data);
        match self.role {
            Role::Submission => self.submit(message).await,
            Role::Receiver => self.receive(message).await,
        }
    }

    /// The signer's and the router's job for an authenticated message.
    async fn submit(&mut self, message: Vec<u8>) -> Answer {
        let site = self.site.clone();
        // t= (RFC 6376 §3.5): when it was signed, as OpenDKIM stamps too.
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut signer = match Signer::new(&site.dkim, &site.signing) {
            Ok(s) => s.at(Some(now), None),
            Err(e) => return Answer::Refuse(reply(451, 4, 3, 0, &format!("cannot sign: {e}"))),
        };
        signer.update(&message);
        let signature = match signer.finish() {
            Ok(field) => field,
            Err(e) => {
                return Answer::Refuse(reply(
                    554,
                    5,
                    6,
                    0,
                    &format!("cannot sign this message: {e}"),
                ));
            }
        };
        let trace = self.received_field(true, "ESMTPSA");
        let signature = format!("{trace}{signature}");
        let (local, remote): (Vec<String>, Vec<String>) =
            self.rcpts.iter().cloned().partition(|r| self.is_local(r));
        if !local.is_empty()
            && let Err(why) = self
                .relay_to_receiver(&local, &[signature.as_bytes(), &message].concat())
                .await
        {
            return Answer::Refuse(reply(
                451,
                4,
                4,
                0,
                &format!("local delivery deferred: {why}"),
            ));
        }
        if !remote.is_empty() {
            let mut envelope = format!("X-Ptt-Envelope-From: <{}>\r\n", self.from);
            for r in &remote {
                envelope.push_str(&format!("X-Ptt-Envelope-To: <{r}>\r\n"));
            }
            let parts = [envelope.into_bytes(), signature.into_bytes(), message];
            let stored = tokio::task::spawn_blocking(move || {
                let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
                site.outbound.deliver(&refs)
            })
            .await;
            if !matches!(stored, Ok(Ok(_))) {
                return Answer::Refuse(reply(451, 4, 3, 0, "cannot queue the message"));
            }
        }
        Answer::AcceptWith(reply(250, 2, 0, 0, "signed and accepted"))
    }

    /// Hands a signed message to the receiver over SMTP with STARTTLS.
    async fn relay_to_receiver(&self, rcpts: &[String], data: &[u8]) -> Result<(), String> {
        let site = &self.site;
        let parse = |a: &str| {
            ptt_smtp::ForwardPath::parse(&format!("<{a}>"), true).map_err(|e| e.to_string())
        };
        let to = rcpts
            .iter()
            .map(|r| Ok((parse(r)?, RcptParams::default())))
            .collect::<Result<Vec<_>, String>>()?;
        let from = ptt_smtp::ReversePath::parse(&format!("<{}>", self.from), true)
            .map_err(|e| e.to_string())?;
        let config = ClientConfig {
            hello_name: site.hostname.clone(),
            tls: TlsMode::Required,
            credentials: None,
            pipelining: true,
            chunking: false,
            timeout: Duration::from_secs(60),
        };
        let tcp = TcpStream::connect(site.receiver)
            .await
            .map_err(|e| e.to_string())?;
        let mut client = Client::new(config, Duration::ZERO);
        client.send(Message {
            from,
            params: MailParams::default(),
            to,
            data: data.to_vec(),
        });
        client.finish();
        let name = ServerName::try_from("localhost").map_err(|e| e.to_string())?;
        let (mut delivered, mut failure) = (false, None);
        smtp_io::drive_client(
            Conn::Plain(tcp),
            &mut client,
            Some((&site.connector, name)),
            |e| match e {
                ClientEvent::Transaction(t) => delivered = t.all_delivered(),
                ClientEvent::Failed(f) => failure = Some(f.to_string()),
                _ => {}
            },
        )
        .await
        .map_err(|e| e.to_string())?;
        match (delivered, failure) {
            (true, _) => Ok(()),
            (false, Some(f)) => Err(f),
            (false, None) => Err("the receiver refused it".into()),
        }
    }

    /// The receiver's job: authenticate, stamp, store.
    async fn receive(&mut self, message: Vec<u8>) -> Answer {
        let site = self.site.clone();
        let message = strip_forged_results(&message, &site.hostname);
        let envelope = Envelope {
            ip: self.peer,
            helo: self.helo.clone(),
            mail_from: self.from.clone(),
        };
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let sample = crate::random::below(100);
        let auth = authenticate(
            &site.resolver,
            &site.psl,
            &message,
            &envelope,
            &site.hostname,
            now,
            sample,
        )
        .await;
        if auth.dmarc.disposition == Policy::Reject {
            return Answer::Refuse(reply(
                550,
                5,
                7,
                1,
                &format!("rejected by the DMARC policy of {}", auth.dmarc.from_domain),
            ));
        }
        let results = match auth.header_field(&site.hostname) {
            Ok(field) => field,
            Err(e) => {
                return Answer::Refuse(reply(451, 4, 3, 0, &format!("cannot record results: {e}")));
            }
        };
        let quarantine = if auth.dmarc.disposition == Policy::Quarantine {
            "X-Ptt-Quarantine: DMARC\r\n"
        } else {
            ""
        };
        let trace = self.received_field(false, if self.tls { "ESMTPS" } else { "ESMTP" });
        let parts = [
            results.into_bytes(),
            auth.received_spf.into_bytes(),
            quarantine.as_bytes().to_vec(),
            trace.into_bytes(),
            message,
        ];
        let stored = tokio::task::spawn_blocking(move || {
            let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
            site.inbox.deliver(&refs)
        })
        .await;
        match stored {
            Ok(Ok(name)) => Answer::AcceptWith(reply(250, 2, 0, 0, &format!("stored as {name}"))),
            _ => Answer::Refuse(reply(451, 4, 3, 0, "cannot store the message")),
        }
    }
}

impl SessionHandler for Session {
    async fn event(&mut self, event: Event, session: &Server) -> Answer {
        let max = session.config().max_message_size;
        match event {
            Event::Hello { name, .. } => {
                self.helo = name;
                self.reset();
                Answer::Accept
            }
            Event::Auth { credentials, .. } => {
                if self.role == Role::Submission
                    && self.check_password(&credentials.username, &credentials.password)
                {
                    Answer::Accept
                } else {
                    Answer::Refuse(reply(535, 5, 7, 8, "Authentication credentials invalid"))
                }
            }
            Event::Mail { from, .. } => {
                self.reset();
                self.from = from.mailbox().map(|m| m.to_string()).unwrap_or_default();
                if self.role == Role::Submission && !self.from.eq_ignore_ascii_case(&self.site.user)
                {
                    return Answer::Refuse(reply(
                        553,
                        5,
                        7,
                        1,
                        &format!("{} may not send as <{}>", self.site.user, self.from),
                    ));
                }
                Answer::Accept
            }
            Event::Rcpt { to, .. } => {
                let Some(mailbox) = to.mailbox().map(|m| m.to_string()) else {
                    // <postmaster>: ours.
                    self.rcpts.push(format!("postmaster@{}", self.site.domain));
                    return Answer::Accept;
                };
                if self.role == Role::Receiver {
                    if !self.is_local(&mailbox) {
                        return Answer::Refuse(reply(554, 5, 7, 1, "relay access denied"));
                    }
                    let local = mailbox.rsplit_once('@').map_or("", |(l, _)| l);
                    let user = self.site.user.rsplit_once('@').map_or("", |(l, _)| l);
                    if !local.eq_ignore_ascii_case(user)
                        && !local.eq_ignore_ascii_case("postmaster")
                    {
                        return Answer::Refuse(reply(550, 5, 1, 1, "no such user here"));
                    }
                }
                self.rcpts.push(mailbox);
                Answer::Accept
            }
            Event::DataStart { .. } => {
                self.data.clear();
                Answer::Accept
            }
            Event::DataChunk(bytes) => {
                // The machine enforces SIZE; this bound only guards memory.
                if (self.data.len() + bytes.len()) as u64 <= max {
                    self.data.extend_from_slice(&bytes);
                }
                Answer::Accept
            }
            Event::DataEnd { .. } => self.end_of_data().await,
            Event::DataRefused { .. } | Event::Reset | Event::Quit => {
                self.reset();
                Answer::Accept
            }
            Event::Vrfy(_) => Answer::Refuse(reply(
                252,
                2,
                5,
                0,
                "Cannot VRFY, but will accept the message",
            )),
        }
    }
}

/// `Sun, 22 Nov 2026 01:25:55 +0000` for a Unix time (RFC 5322 §3.3).
fn rfc5322_date(unix: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = unix / 86_400;
    let secs = unix % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{}, {day:02} {} {year} {:02}:{:02}:{:02} +0000",
        DAYS[(days % 7) as usize],
        MONTHS[(month - 1) as usize],
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::rfc5322_date;

    #[test]
    fn dates_are_rfc5322() {
        assert_eq!(rfc5322_date(0), "Thu, 01 Jan 1970 00:00:00 +0000");
        assert_eq!(rfc5322_date(951_782_400), "Tue, 29 Feb 2000 00:00:00 +0000");
        assert_eq!(
            rfc5322_date(1_795_310_755),
            "Sun, 22 Nov 2026 01:25:55 +0000"
        );
    }
}
