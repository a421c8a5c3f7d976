//! The one configuration file of a ptt site (TOML).
//!
//! [`Config::load`] reads and checks a file and gives either a [`Config`]
//! every service can trust, or every problem found as a [`Problem`] that
//! names the file, line and column, says what is wrong and what to write
//! instead (`ptt check-config` prints them as `FILE:LINE:COL: …; …`).
//!
//! ```
//! let text = r#"
//! domain = "example.org"
//! hostname = "mx.example.org"
//! state = "/var/lib/ptt"
//! [users]
//! repo = "/var/lib/ptt/users.git"
//! [submission]
//! listen = ["0.0.0.0:587"]
//! listen_tls = ["0.0.0.0:465"]
//! [signer]
//! listen = ["127.0.0.1:10465"]
//! [relay]
//! listen = ["127.0.0.1:10025"]
//! "#;
//! let config = ptt_bins::config::Config::parse(text, "ptt.toml".as_ref()).unwrap();
//! assert_eq!(config.domain, "example.org");
//! assert_eq!(config.state_of(ptt_bins::config::ServiceName::Signer),
//!            std::path::Path::new("/var/lib/ptt/signer"));
//! // Where submission dials the signer.
//! assert_eq!(config.signer.unwrap().address.to_string(), "127.0.0.1:10465");
//! ```
//!
//! Every key is documented in the example file shipped beside this crate,
//! `deploy/ptt.example.toml`, which `ptt up` also writes out, filled in.

mod raw;

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use raw::EXAMPLE;

/// The services of a site, in the order their sections appear.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ServiceName {
    /// Mail from users (465 implicit TLS, 587 STARTTLS), AUTH against the user repo.
    Submission,
    /// The only holder of the private keys: DKIM, ARC.
    Signer,
    /// The only service that talks to the Internet.
    Relay,
    /// Mail from the Internet (25).
    Receiver,
    /// The mailing-list server.
    Lists,
}

impl ServiceName {
    /// Every service, in the order of their sections (and of `ptt serve`'s
    /// start and its summary).
    pub const ALL: [ServiceName; 5] = [
        ServiceName::Submission,
        ServiceName::Receiver,
        ServiceName::Lists,
        ServiceName::Signer,
        ServiceName::Relay,
    ];

    /// The section name, also the word on `ptt serve`'s command line.
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceName::Submission => "submission",
            ServiceName::Signer => "signer",
            ServiceName::Relay => "relay",
            ServiceName::Receiver => "receiver",
            ServiceName::Lists => "lists",
        }
    }

    /// The service named `word`, if any.
    pub fn parse(word: &str) -> Option<ServiceName> {
        ServiceName::ALL.into_iter().find(|s| s.as_str() == word)
    }

    /// The name in this service's certificate from the private CA, which
    /// other services check (e.g. `signer.ptt.internal`).
    pub fn internal_name(self) -> String {
        format!("{}.ptt.internal", self.as_str())
    }
}

impl fmt::Display for ServiceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A checked configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it was read from (relative paths in it are relative to its folder).
    pub path: PathBuf,
    /// The mail domain.
    pub domain: String,
    /// This host's name (greetings, `Received`, the authserv-id).
    pub hostname: String,
    /// Where each service keeps its files, under `state/<service>/`; the
    /// private CA is under `state/ca/`.
    pub state: PathBuf,
    /// `sandbox`: how each service confines itself once started.
    pub sandbox: SandboxMode,
    /// DNS servers.
    pub dns: Dns,
    /// The user repository (needed by submission and the receiver).
    pub users: Option<Users>,
    /// The certificate the public listeners present.
    pub tls: Tls,
    /// Logging.
    pub log: Log,
    /// `[submission]`, when configured.
    pub submission: Option<Submission>,
    /// `[signer]`, when configured.
    pub signer: Option<Signer>,
    /// `[relay]`, when configured.
    pub relay: Option<Relay>,
    /// `[receiver]`, when configured.
    pub receiver: Option<Receiver>,
    /// `[lists]`, when configured.
    pub lists: Option<Lists>,
    /// `[metrics]`, when configured.
    pub metrics: Option<Metrics>,
}

/// `[dns]`.
#[derive(Debug, Clone, Default)]
pub struct Dns {
    /// The resolver (`None`: the system's, from `/etc/resolv.conf`).
    pub resolver: Option<SocketAddr>,
    /// The domain's primary server, for RFC 2136 UPDATE.
    pub primary: Option<SocketAddr>,
    /// A BIND `tsig-keygen` key file for the UPDATEs.
    pub tsig_key: Option<PathBuf>,
    /// Records answered locally before the resolver is asked (a demo or
    /// test zone; `ptt up` writes one).
    pub records: Option<PathBuf>,
    /// The MTA-STS mode the domain publishes (`enforce`, `testing`), for
    /// `ptt dns check`.
    pub mta_sts: Option<String>,
    /// Where TLS reports go (`mailto:…`), when the domain asks for them.
    pub tls_rpt: Option<String>,
    /// Whether the domain publishes TLSA records for its MX (DANE).
    pub dane: bool,
    /// An extra CA to trust for HTTPS lookups (the MTA-STS policy), e.g.
    /// a test server's.
    pub https_ca: Option<PathBuf>,
    /// A DNSSEC-signed name the relay asks at start to learn whether the
    /// resolver validates (DANE needs it); default `.`.
    pub dnssec_probe: String,
}

/// `[users]`.
#[derive(Debug, Clone)]
pub struct Users {
    /// A local path (bare or not) or an SSH URL (`ssh://…`, `git@host:…`).
    pub repo: String,
    /// How often servers look for a new commit.
    pub poll: Duration,
}

/// `[tls]`: the certificate of the listeners that face users and the
/// Internet: a static one, one obtained by ACME, or else one the private CA
/// issues for `hostname`.
#[derive(Debug, Clone, Default)]
pub struct Tls {
    /// PEM certificate chain.
    pub cert: Option<PathBuf>,
    /// PEM private key.
    pub key: Option<PathBuf>,
    /// `acme = { directory, contact, ca }`: a certificate for `hostname`
    /// by ACME DNS-01 through `[dns] primary`.
    pub acme: Option<AcmeConfig>,
}

/// `[tls] acme`.
#[derive(Debug, Clone)]
pub struct AcmeConfig {
    /// The ACME directory URL.
    pub directory: String,
    /// Contact URIs (`mailto:…`).
    pub contact: Vec<String>,
    /// An extra CA to trust for the directory's HTTPS (test servers).
    pub ca: Option<PathBuf>,
}

/// `[log]`.
#[derive(Debug, Clone, Default)]
pub struct Log {
    /// One JSON object per line instead of text.
    pub json: bool,
}

/// `[submission]`.
#[derive(Debug, Clone)]
pub struct Submission {
    /// STARTTLS listeners (587).
    pub listen: Vec<SocketAddr>,
    /// Implicit TLS listeners (465).
    pub listen_tls: Vec<SocketAddr>,
    /// Largest message, in octets.
    pub max_message_size: u64,
    /// Password verifications running at once (each holds argon2's memory).
    pub auth_concurrency: usize,
    /// Failed logins from one address before it is blocked.
    pub max_failures_per_ip: u32,
    /// Failed logins for one account before it is blocked.
    pub max_failures_per_user: u32,
    /// How long a block lasts (and over what window failures count).
    pub block: Duration,
    /// Networks never throttled (the site's own proxies and bridges).
    pub allow: Vec<Network>,
    /// Sessions served at once; more wait in the listen queue.
    pub max_sessions: usize,
}

/// `[signer]`.
#[derive(Debug, Clone)]
pub struct Signer {
    /// Internal listeners (implicit TLS, client certificates required).
    pub listen: Vec<SocketAddr>,
    /// Where the other services reach it (default: the first `listen`).
    pub address: SocketAddr,
    /// The selector prefix of the keys it makes at first start.
    pub selector: String,
    /// The TTL of the key records it publishes, in seconds.
    pub record_ttl: u32,
    /// How long a replaced key stays published after a rotation.
    pub retention: Duration,
}

/// `[relay]`.
#[derive(Debug, Clone)]
pub struct Relay {
    /// Internal listeners (implicit TLS, the signer's certificate required).
    pub listen: Vec<SocketAddr>,
    /// Where the signer reaches it.
    pub address: SocketAddr,
    /// The port dialled on MX hosts.
    pub port: u16,
    /// Send everything to this host (`HOST:PORT`) instead of the MX hosts.
    pub smarthost: Option<String>,
    /// AUTH at the smarthost: the user name and the file holding the
    /// password (sent only over TLS with a certificate that verifies).
    pub smarthost_auth: Option<(String, PathBuf)>,
    /// Keep mail for other domains queued without trying it (`ptt up`'s
    /// demo, which must not reach the Internet).
    pub hold: bool,
    /// Waits after the 1st, 2nd, … failed attempt, in seconds; the last
    /// repeats.
    pub retry: Vec<u64>,
    /// A message not delivered this long after it arrived fails, seconds.
    pub give_up: u64,
    /// When set, the sender is told once that a message is delayed after
    /// this many seconds.
    pub delay_notice: Option<u64>,
    /// Domains mail to which goes only over TLS with a certificate that
    /// verifies (else it waits in the queue).
    pub require_tls: Vec<String>,
    /// Extra CA certificates (PEM) trusted for MX hosts and MTA-STS
    /// policies besides the system's.
    pub tls_ca: Option<PathBuf>,
}

/// `[receiver]`.
#[derive(Debug, Clone)]
pub struct Receiver {
    /// Listeners (25), STARTTLS offered.
    pub listen: Vec<SocketAddr>,
    /// Where the relay delivers the domain's own mail.
    pub address: SocketAddr,
    /// Largest message, in octets.
    pub max_message_size: u64,
    /// Recipients per message at most.
    pub max_recipients: usize,
    /// Sessions open at once per client address (IPv6 per /64); more get
    /// `421 4.7.0`.
    pub max_sessions_per_ip: usize,
    /// Networks whose sessions `max_sessions_per_ip` does not count (the
    /// relay delivering the domain's own mail comes from 127.0.0.1).
    pub unlimited: Vec<Network>,
    /// Messages (MAIL commands) per client address per minute; more get
    /// `450 4.7.1` until the minute is over.
    pub max_messages_per_ip_per_minute: u32,
    /// The address of our own DMARC record's `rua=`: aggregate reports
    /// sent there are parsed and kept (`ptt dmarc reports`).
    pub dmarc_rua: Option<String>,
    /// How often DMARC aggregate reports are sent, in seconds (a day).
    pub dmarc_report_seconds: u64,
    /// The spam filter's token database (`None`: `STATE/receiver/spam.db`).
    pub spam_db: Option<PathBuf>,
    /// `tag` (headers only) or `refuse` (`550 5.7.1` at the end of data)
    /// for spam scoring at least `spam_threshold`.
    pub spam_action: String,
    /// The score from which `spam_action` applies.
    pub spam_threshold: f64,
    /// Attachment extensions refused (`550 5.7.1`), inside the MIME tree too.
    pub dangerous_extensions: Vec<String>,
    /// `enforce` (p=reject refused, p=quarantine marked), `quarantine`
    /// (both marked), or `annotate` (results recorded only).
    pub dmarc_action: String,
}

/// `[metrics]`: where Prometheus scrapes `/metrics`.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    /// A process's listener (one running several services, or one whose
    /// service has no address of its own below).
    pub listen: Option<SocketAddr>,
    /// A process running only this service listens here.
    pub per_service: Vec<(ServiceName, SocketAddr)>,
}

impl Metrics {
    /// Where a process running `services` serves its metrics.
    pub fn address_for(&self, services: &[ServiceName]) -> Option<SocketAddr> {
        if let [one] = services
            && let Some((_, a)) = self.per_service.iter().find(|(s, _)| s == one)
        {
            return Some(*a);
        }
        self.listen
    }
}

/// `sandbox`: Landlock and seccomp for the services.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SandboxMode {
    /// Applied where the kernel has them; the log says what was.
    On,
    /// Not applied.
    Off,
    /// Refuse to run without a fully enforced Landlock ruleset.
    Required,
}

/// `[lists]`.
#[derive(Debug, Clone)]
pub struct Lists {
    /// Internal listeners (implicit TLS; the receiver's client certificate).
    pub listen: Vec<SocketAddr>,
    /// Where the receiver reaches it (default: the first `listen`).
    pub address: SocketAddr,
    /// The FAT32 image or directory of the list state.
    pub state: PathBuf,
    /// The domain lists live on.
    pub domain: String,
    /// HTTPS listeners for RFC 8058 one-click unsubscription (none: posts
    /// offer the mailto: form only, unless `one_click_url` names another
    /// front end).
    pub https_listen: Vec<SocketAddr>,
    /// The URL put in `List-Unsubscribe` (default:
    /// `https://HOSTNAME[:PORT]/lists/unsubscribe` of the first
    /// `https_listen`).
    pub one_click_url: Option<String>,
}

/// An IP network, `ADDRESS/PREFIX`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    addr: IpAddr,
    prefix: u8,
}

impl Network {
    /// Parses `192.0.2.0/24`, `2001:db8::/32` or a single address.
    pub fn parse(text: &str) -> Option<Network> {
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a.parse::<IpAddr>().ok()?, p.parse::<u8>().ok()?),
            None => {
                let a = text.parse::<IpAddr>().ok()?;
                (a, if a.is_ipv4() { 32 } else { 128 })
            }
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        (prefix <= max).then_some(Network { addr, prefix })
    }

    /// Whether `ip` is inside.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// One thing wrong in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file.
    pub file: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// What is wrong.
    pub what: String,
    /// What to write instead.
    pub fix: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}; {}",
            self.file.display(),
            self.line,
            self.column,
            self.what,
            self.fix
        )
    }
}

/// Every problem found in a file (at least one).
#[derive(Debug, Clone)]
pub struct Problems(pub Vec<Problem>);

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Problems {}

impl Config {
    /// Reads and checks `path`.
    pub fn load(path: &Path) -> Result<Config, Problems> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Problems(vec![Problem {
                file: path.to_path_buf(),
                line: 1,
                column: 1,
                what: format!("cannot read the file: {e}"),
                fix: "give the path of a ptt configuration file (see deploy/ptt.example.toml)"
                    .into(),
            }])
        })?;
        Config::parse(&text, path)
    }

    /// Checks `text`, read from `path` (used in messages, and as the base
    /// of relative paths).
    pub fn parse(text: &str, path: &Path) -> Result<Config, Problems> {
        raw::check(text, path)
    }

    /// `state/<service>/`.
    pub fn state_of(&self, service: ServiceName) -> PathBuf {
        self.state.join(service.as_str())
    }

    /// The services configured, in [`ServiceName::ALL`] order.
    pub fn services(&self) -> Vec<ServiceName> {
        ServiceName::ALL
            .into_iter()
            .filter(|s| match s {
                ServiceName::Submission => self.submission.is_some(),
                ServiceName::Signer => self.signer.is_some(),
                ServiceName::Relay => self.relay.is_some(),
                ServiceName::Receiver => self.receiver.is_some(),
                ServiceName::Lists => self.lists.is_some(),
            })
            .collect()
    }

    /// One line that says what the file configures.
    pub fn summary(&self) -> String {
        let services: Vec<&str> = self.services().iter().map(|s| s.as_str()).collect();
        format!(
            "{}: domain {}, host {}, state {}, users {}, services: {}",
            self.path.display(),
            self.domain,
            self.hostname,
            self.state.display(),
            self.users.as_ref().map_or("none", |u| u.repo.as_str()),
            if services.is_empty() {
                "none".to_string()
            } else {
                services.join(", ")
            }
        )
    }
}

#[cfg(test)]
mod tests;
