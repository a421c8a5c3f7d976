//! The file as written (serde with spans), and the checks that turn it
//! into a [`Config`] or a list of [`Problem`]s with their places.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::{
    AcmeConfig, Config, Dns, Lists, Log, Metrics, Network, Problem, Problems, Receiver, Relay,
    SandboxMode, ServiceName, Signer, Submission, Tls, Users,
};

/// The example configuration shipped in the repository, every key
/// documented (`deploy/ptt.example.toml`).
pub const EXAMPLE: &str = include_str!("../../../deploy/ptt.example.toml");

type S<T> = Spanned<T>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    domain: S<String>,
    hostname: S<String>,
    state: S<String>,
    #[serde(default)]
    sandbox: Option<S<String>>,
    #[serde(default)]
    dns: Option<S<DnsSection>>,
    #[serde(default)]
    users: Option<S<UsersSection>>,
    #[serde(default)]
    tls: Option<S<TlsSection>>,
    #[serde(default)]
    log: Option<S<LogSection>>,
    #[serde(default)]
    submission: Option<S<SubmissionSection>>,
    #[serde(default)]
    signer: Option<S<SignerSection>>,
    #[serde(default)]
    relay: Option<S<RelaySection>>,
    #[serde(default)]
    receiver: Option<S<ReceiverSection>>,
    #[serde(default)]
    lists: Option<S<ListsSection>>,
    #[serde(default)]
    metrics: Option<S<MetricsSection>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DnsSection {
    resolver: Option<S<String>>,
    primary: Option<S<String>>,
    tsig_key: Option<S<String>>,
    records: Option<S<String>>,
    mta_sts: Option<S<String>>,
    tls_rpt: Option<S<String>>,
    dane: Option<S<bool>>,
    https_ca: Option<S<String>>,
    dnssec_probe: Option<S<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UsersSection {
    repo: S<String>,
    poll_seconds: Option<S<u64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsSection {
    cert: Option<S<String>>,
    key: Option<S<String>>,
    acme: Option<S<AcmeSection>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AcmeSection {
    directory: S<String>,
    #[serde(default)]
    contact: Option<S<String>>,
    ca: Option<S<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MetricsSection {
    listen: Option<S<String>>,
    submission: Option<S<String>>,
    signer: Option<S<String>>,
    relay: Option<S<String>>,
    receiver: Option<S<String>>,
    lists: Option<S<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LogSection {
    format: Option<S<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SubmissionSection {
    #[serde(default)]
    listen: Vec<S<String>>,
    #[serde(default)]
    listen_tls: Vec<S<String>>,
    max_message_size: Option<S<u64>>,
    auth_concurrency: Option<S<u64>>,
    max_failures_per_ip: Option<S<u32>>,
    max_failures_per_user: Option<S<u32>>,
    block_seconds: Option<S<u64>>,
    #[serde(default)]
    allow: Vec<S<String>>,
    max_sessions: Option<S<u64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignerSection {
    listen: S<Vec<S<String>>>,
    address: Option<S<String>>,
    selector: Option<S<String>>,
    record_ttl: Option<S<u64>>,
    retention_seconds: Option<S<u64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RelaySection {
    listen: S<Vec<S<String>>>,
    address: Option<S<String>>,
    port: Option<S<u16>>,
    smarthost: Option<S<String>>,
    smarthost_user: Option<S<String>>,
    smarthost_password_file: Option<S<String>>,
    hold: Option<S<bool>>,
    retry_seconds: Option<S<Vec<S<u64>>>>,
    give_up_seconds: Option<S<u64>>,
    delay_notice_seconds: Option<S<u64>>,
    #[serde(default)]
    require_tls: Vec<S<String>>,
    tls_ca: Option<S<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReceiverSection {
    listen: S<Vec<S<String>>>,
    address: Option<S<String>>,
    max_message_size: Option<S<u64>>,
    spam_db: Option<S<String>>,
    spam_action: Option<S<String>>,
    spam_threshold: Option<S<f64>>,
    dangerous_extensions: Option<S<Vec<S<String>>>>,
    dmarc_action: Option<S<String>>,
    max_recipients: Option<S<u64>>,
    max_sessions_per_ip: Option<S<u64>>,
    dmarc_report_seconds: Option<S<u64>>,
    unlimited: Option<Vec<S<String>>>,
    dmarc_rua: Option<S<String>>,
    max_messages_per_ip_per_minute: Option<S<u64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListsSection {
    listen: S<Vec<S<String>>>,
    address: Option<S<String>>,
    state: S<String>,
    domain: Option<S<String>>,
    https_listen: Option<S<Vec<S<String>>>>,
    one_click_url: Option<S<String>>,
}

/// Collects problems against one file's text.
struct Checker<'a> {
    text: &'a str,
    file: &'a Path,
    problems: Vec<Problem>,
}

impl Checker<'_> {
    fn at(&mut self, span: Range<usize>, what: impl Into<String>, fix: impl Into<String>) {
        let (line, column) = line_column(self.text, span.start);
        self.problems.push(Problem {
            file: self.file.to_path_buf(),
            line,
            column,
            what: what.into(),
            fix: fix.into(),
        });
    }

    fn domain(&mut self, value: &S<String>, key: &str) -> String {
        let d = value.get_ref().trim_end_matches('.').to_ascii_lowercase();
        if ptt_smtp::Domain::parse(&d, false).is_err() || !d.contains('.') {
            self.at(
                value.span(),
                format!("{key} = {:?} is not a domain name", value.get_ref()),
                format!("write a fully qualified name, e.g. {key} = \"example.org\""),
            );
        }
        d
    }

    fn addr(&mut self, value: &S<String>, key: &str, example: &str) -> Option<SocketAddr> {
        match value.get_ref().parse::<SocketAddr>() {
            Ok(a) => Some(a),
            Err(_) => {
                self.at(
                    value.span(),
                    format!("{key}: {:?} is not IP:PORT", value.get_ref()),
                    format!("write an address and a port, e.g. \"{example}\" (IPv6: \"[::1]:25\")"),
                );
                None
            }
        }
    }

    fn addrs(&mut self, values: &[S<String>], key: &str, example: &str) -> Vec<SocketAddr> {
        values
            .iter()
            .filter_map(|v| self.addr(v, key, example))
            .collect()
    }

    /// A listen list that must not be empty.
    fn listen(
        &mut self,
        list: &S<Vec<S<String>>>,
        section: &str,
        example: &str,
    ) -> Vec<SocketAddr> {
        if list.get_ref().is_empty() {
            self.at(
                list.span(),
                format!("[{section}] listen is empty"),
                format!("give at least one address, e.g. listen = [\"{example}\"]"),
            );
        }
        self.addrs(list.get_ref(), &format!("[{section}] listen"), example)
    }

    /// Where other services dial a service: `address`, or the first
    /// listen address (an unspecified one becomes loopback).
    fn dial(
        &mut self,
        address: Option<&S<String>>,
        listen: &[SocketAddr],
        section: &str,
    ) -> SocketAddr {
        if let Some(a) = address {
            return self
                .addr(a, &format!("[{section}] address"), "127.0.0.1:10465")
                .unwrap_or_else(unspecified);
        }
        let Some(first) = listen.first() else {
            return unspecified();
        };
        let ip = match first.ip() {
            IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        SocketAddr::new(ip, first.port())
    }

    /// Like [`Checker::positive`], and at most `max`.
    fn bounded(&mut self, value: Option<&S<u64>>, key: &str, default: u64, max: u64) -> u64 {
        match value {
            Some(v) if *v.get_ref() > max => {
                self.at(
                    v.span(),
                    format!("{key} = {} is more than this can take", v.get_ref()),
                    format!("write a number from 1 to {max} (default {default})"),
                );
                default
            }
            _ => self.positive(value, key, default),
        }
    }

    fn positive(&mut self, value: Option<&S<u64>>, key: &str, default: u64) -> u64 {
        match value {
            Some(v) if *v.get_ref() == 0 => {
                self.at(
                    v.span(),
                    format!("{key} = 0 is not allowed"),
                    format!("write a positive number (default {default})"),
                );
                default
            }
            Some(v) => *v.get_ref(),
            None => default,
        }
    }
}

fn unspecified() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 0))
}

/// 1-based line and column (in characters) of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

/// What to write instead, for serde's and toml's own messages.
fn fix_for(message: &str) -> String {
    if let Some(rest) = message.strip_prefix("unknown field `") {
        let name = rest.split('`').next().unwrap_or_default();
        let expected = rest.split_once("expected ").map_or("", |(_, e)| e);
        return if expected.is_empty() {
            format!("remove `{name}`; deploy/ptt.example.toml lists every key")
        } else {
            format!("remove `{name}` or write one of {expected}")
        };
    }
    if let Some(rest) = message.strip_prefix("missing field `") {
        let name = rest.split('`').next().unwrap_or_default();
        let example = match name {
            "domain" => "domain = \"example.org\"",
            "hostname" => "hostname = \"mx.example.org\"",
            "state" => "state = \"/var/lib/ptt\"",
            "repo" => "repo = \"/var/lib/ptt/users.git\"",
            "listen" => "listen = [\"127.0.0.1:10465\"]",
            _ => "",
        };
        return if example.is_empty() {
            format!("add `{name}`; deploy/ptt.example.toml shows it")
        } else {
            format!("add `{example}`")
        };
    }
    if message.contains("invalid type") && message.contains("expected a string") {
        return "write the value in double quotes".into();
    }
    if message.contains("invalid type") && message.contains("expected a sequence") {
        return "write a list in brackets, e.g. [\"127.0.0.1:587\"]".into();
    }
    if message.contains("invalid type") || message.contains("invalid value") {
        return "write a value of the type deploy/ptt.example.toml shows for this key".into();
    }
    "write valid TOML (key = \"value\", [section]); deploy/ptt.example.toml is a complete example"
        .into()
}

fn path_in(base: &Path, value: &str) -> PathBuf {
    let p = PathBuf::from(value);
    if p.is_absolute() { p } else { base.join(p) }
}

/// Parses and checks the whole file.
pub(super) fn check(text: &str, file: &Path) -> Result<Config, Problems> {
    let mut c = Checker {
        text,
        file,
        problems: Vec::new(),
    };
    let raw: File = match toml::from_str(text) {
        Ok(raw) => raw,
        Err(e) => {
            let message = e.message().trim().to_string();
            c.at(e.span().unwrap_or(0..0), message.clone(), fix_for(&message));
            return Err(Problems(c.problems));
        }
    };
    let base = file
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();

    let domain = c.domain(&raw.domain, "domain");
    let hostname = c.domain(&raw.hostname, "hostname");
    let sandbox = match raw.sandbox.as_ref().map(|s| (s, s.get_ref().as_str())) {
        None | Some((_, "on")) => SandboxMode::On,
        Some((_, "off")) => SandboxMode::Off,
        Some((_, "required")) => SandboxMode::Required,
        Some((s, other)) => {
            c.at(
                s.span(),
                format!("sandbox = {other:?} is not one of on, off, required"),
                "write sandbox = \"on\" (Landlock and seccomp where the kernel has them), \"required\" (refuse to run without) or \"off\"",
            );
            SandboxMode::On
        }
    };
    if raw.state.get_ref().is_empty() {
        c.at(
            raw.state.span(),
            "state is empty",
            "name the folder the services keep their files in, e.g. state = \"/var/lib/ptt\"",
        );
    }
    let state = path_in(&base, raw.state.get_ref());

    let dns = match &raw.dns {
        None => Dns::default(),
        Some(d) => {
            let d = d.get_ref();
            let mut file = |v: &Option<S<String>>, key: &str, fix: &str| {
                v.as_ref().map(|k| {
                    let p = path_in(&base, k.get_ref());
                    if !p.is_file() {
                        c.at(
                            k.span(),
                            format!("[dns] {key}: {} does not exist", p.display()),
                            fix,
                        );
                    }
                    p
                })
            };
            let tsig_key = file(
                &d.tsig_key,
                "tsig_key",
                "name a key file made by `tsig-keygen -a hmac-sha256 NAME`",
            );
            let https_ca = file(
                &d.https_ca,
                "https_ca",
                "name a PEM file of CA certificates",
            );
            let records = file(
                &d.records,
                "records",
                "name a records file (zones = [\"example.test\"] and a [txt] table), or leave the key out",
            );
            Dns {
                resolver: d
                    .resolver
                    .as_ref()
                    .and_then(|r| c.addr(r, "[dns] resolver", "127.0.0.1:53")),
                primary: d
                    .primary
                    .as_ref()
                    .and_then(|r| c.addr(r, "[dns] primary", "192.0.2.53:53")),
                tsig_key,
                records,
                mta_sts: d.mta_sts.as_ref().map(|m| {
                    let mode = m.get_ref().to_ascii_lowercase();
                    if !matches!(mode.as_str(), "enforce" | "testing") {
                        c.at(m.span(), format!("[dns] mta_sts = {:?} is not an MTA-STS mode", m.get_ref()),
                            "write mta_sts = \"enforce\" or \"testing\" (RFC 8461), or leave it out");
                    }
                    mode
                }),
                tls_rpt: d.tls_rpt.as_ref().map(|r| {
                    if !r.get_ref().starts_with("mailto:") && !r.get_ref().starts_with("https://") {
                        c.at(r.span(), format!("[dns] tls_rpt = {:?} is not a report URI", r.get_ref()),
                            "write tls_rpt = \"mailto:tlsrpt@example.org\" (RFC 8460)");
                    }
                    r.get_ref().clone()
                }),
                dane: d.dane.as_ref().is_some_and(|v| *v.get_ref()),
                https_ca,
                dnssec_probe: d
                    .dnssec_probe
                    .as_ref()
                    .map_or_else(|| ".".to_string(), |p| p.get_ref().clone()),
            }
        }
    };

    let users = raw.users.as_ref().map(|u| {
        let u = u.get_ref();
        let repo = u.repo.get_ref();
        let repo = if crate::userdb::is_remote(repo) {
            repo.clone()
        } else {
            path_in(&base, repo).display().to_string()
        };
        Users {
            repo,
            poll: Duration::from_secs(c.positive(
                u.poll_seconds.as_ref(),
                "[users] poll_seconds",
                2,
            )),
        }
    });

    let tls = match &raw.tls {
        None => Tls::default(),
        Some(t) => {
            let span = t.span();
            let t = t.get_ref();
            if t.cert.is_some() != t.key.is_some() {
                c.at(
                    span,
                    "[tls] has only one of cert and key",
                    "give both cert = \"FILE\" and key = \"FILE\", or neither (the private CA then issues one)",
                );
            }
            let acme = t.acme.as_ref().map(|a| {
                let span = a.span();
                let a = a.get_ref();
                let directory = a.directory.get_ref().clone();
                if !directory.starts_with("https://") {
                    c.at(
                        a.directory.span(),
                        format!("[tls] acme directory {directory:?} is not an https:// URL"),
                        "write the directory URL, e.g. directory = \"https://acme-v02.api.letsencrypt.org/directory\"",
                    );
                }
                if t.cert.is_some() {
                    c.at(
                        span.clone(),
                        "[tls] has both a static cert and acme",
                        "keep one: cert/key for a certificate you manage, or acme to have one obtained",
                    );
                }
                let contact = a
                    .contact
                    .as_ref()
                    .map(|m| {
                        if !m.get_ref().starts_with("mailto:") {
                            c.at(
                                m.span(),
                                format!("[tls] acme contact {:?} is not a mailto: URI", m.get_ref()),
                                "write contact = \"mailto:postmaster@example.org\"",
                            );
                        }
                        vec![m.get_ref().clone()]
                    })
                    .unwrap_or_default();
                let ca = a.ca.as_ref().map(|v| {
                    let p = path_in(&base, v.get_ref());
                    if !p.is_file() {
                        c.at(v.span(), format!("[tls] acme ca: {} does not exist", p.display()), "name a PEM file");
                    }
                    p
                });
                AcmeConfig {
                    directory,
                    contact,
                    ca,
                }
            });
            let mut file_of = |v: &Option<S<String>>, key: &str| {
                v.as_ref().map(|v| {
                    let p = path_in(&base, v.get_ref());
                    if !p.is_file() {
                        c.at(
                            v.span(),
                            format!("[tls] {key}: {} does not exist", p.display()),
                            "name a PEM file",
                        );
                    }
                    p
                })
            };
            Tls {
                cert: file_of(&t.cert, "cert"),
                key: file_of(&t.key, "key"),
                acme,
            }
        }
    };

    let metrics = raw.metrics.as_ref().map(|m| {
        let m = m.get_ref();
        let mut one = |v: &Option<S<String>>, key: &str| {
            v.as_ref()
                .and_then(|v| c.addr(v, &format!("[metrics] {key}"), "127.0.0.1:9100"))
        };
        let per_service = [
            (ServiceName::Submission, one(&m.submission, "submission")),
            (ServiceName::Signer, one(&m.signer, "signer")),
            (ServiceName::Relay, one(&m.relay, "relay")),
            (ServiceName::Receiver, one(&m.receiver, "receiver")),
            (ServiceName::Lists, one(&m.lists, "lists")),
        ]
        .into_iter()
        .filter_map(|(s, a)| Some((s, a?)))
        .collect();
        Metrics {
            listen: one(&m.listen, "listen"),
            per_service,
        }
    });
    let log = match raw.log.as_ref().and_then(|l| l.get_ref().format.as_ref()) {
        None => Log::default(),
        Some(f) => match f.get_ref().as_str() {
            "text" => Log { json: false },
            "json" => Log { json: true },
            other => {
                c.at(
                    f.span(),
                    format!("[log] format = {other:?} is not a log format"),
                    "write format = \"text\" or format = \"json\"",
                );
                Log::default()
            }
        },
    };

    let signer = raw.signer.as_ref().map(|s| {
        let s = s.get_ref();
        let listen = c.listen(&s.listen, "signer", "127.0.0.1:10465");
        let address = c.dial(s.address.as_ref(), &listen, "signer");
        let selector = match &s.selector {
            Some(sel) => {
                let ok = !sel.get_ref().is_empty()
                    && sel
                        .get_ref()
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-');
                if !ok {
                    c.at(
                        sel.span(),
                        format!("[signer] selector = {:?} is not a DNS label", sel.get_ref()),
                        "write letters, digits and '-', e.g. selector = \"ptt\"",
                    );
                }
                sel.get_ref().to_ascii_lowercase()
            }
            None => "ptt".into(),
        };
        Signer {
            listen,
            address,
            selector,
            record_ttl: c.bounded(s.record_ttl.as_ref(), "[signer] record_ttl", 300, 86_400) as u32,
            retention: Duration::from_secs(c.positive(
                s.retention_seconds.as_ref(),
                "[signer] retention_seconds",
                604_800,
            )),
        }
    });

    let relay = raw.relay.as_ref().map(|r| {
        let r = r.get_ref();
        let listen = c.listen(&r.listen, "relay", "127.0.0.1:10025");
        let address = c.dial(r.address.as_ref(), &listen, "relay");
        let port = match &r.port {
            Some(p) if *p.get_ref() == 0 => {
                c.at(
                    p.span(),
                    "[relay] port = 0",
                    "write the port dialled on MX hosts, e.g. port = 25",
                );
                25
            }
            Some(p) => *p.get_ref(),
            None => 25,
        };
        let smarthost = r.smarthost.as_ref().map(|s| {
            let text = s.get_ref();
            match text.rsplit_once(':') {
                Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0) => {}
                _ => c.at(
                    s.span(),
                    format!("[relay] smarthost = {text:?} is not HOST:PORT"),
                    "write the host and port, e.g. smarthost = \"smtp.provider.example:587\"",
                ),
            }
            text.clone()
        });
        let smarthost_auth = match (&r.smarthost_user, &r.smarthost_password_file) {
            (Some(user), Some(file)) => {
                let path = path_in(&base, file.get_ref());
                if !path.is_file() {
                    c.at(
                        file.span(),
                        format!("[relay] smarthost_password_file: {} does not exist", path.display()),
                        "name a file holding the smarthost password (mode 0600)",
                    );
                }
                if smarthost.is_none() {
                    c.at(
                        user.span(),
                        "[relay] smarthost_user without a smarthost",
                        "add smarthost = \"HOST:PORT\" or remove smarthost_user",
                    );
                }
                Some((user.get_ref().clone(), path))
            }
            (Some(user), None) => {
                c.at(
                    user.span(),
                    "[relay] smarthost_user without smarthost_password_file",
                    "add smarthost_password_file = \"FILE\" (the password, mode 0600)",
                );
                None
            }
            (None, Some(file)) => {
                c.at(
                    file.span(),
                    "[relay] smarthost_password_file without smarthost_user",
                    "add smarthost_user = \"NAME\"",
                );
                None
            }
            (None, None) => None,
        };
        let retry = match &r.retry_seconds {
            Some(list) if list.get_ref().is_empty() || list.get_ref().iter().any(|v| *v.get_ref() == 0) => {
                c.at(
                    list.span(),
                    "[relay] retry_seconds must list waits of at least one second",
                    "write the waits after each failed attempt, e.g. retry_seconds = [300, 900, 1800, 3600]",
                );
                Vec::new()
            }
            Some(list) => list.get_ref().iter().map(|v| *v.get_ref()).collect(),
            None => ptt_queue::RetryPolicy::default().backoff,
        };
        let give_up = c.positive(r.give_up_seconds.as_ref(), "[relay] give_up_seconds", 5 * 86_400);
        let delay_notice = r.delay_notice_seconds.as_ref().map(|v| *v.get_ref());
        let mut require_tls = Vec::new();
        for domain in &r.require_tls {
            let d = domain.get_ref().trim().trim_end_matches('.').to_ascii_lowercase();
            if d.is_empty() || !d.contains('.') || d.contains(['@', ' ', '/']) {
                c.at(
                    domain.span(),
                    format!("[relay] require_tls: {:?} is not a domain", domain.get_ref()),
                    "list the domains mail to which must go over verified TLS, e.g. require_tls = [\"example.net\"]",
                );
            }
            require_tls.push(d);
        }
        Relay {
            listen,
            address,
            port,
            smarthost,
            smarthost_auth,
            hold: r.hold.as_ref().is_some_and(|v| *v.get_ref()),
            retry,
            give_up,
            delay_notice,
            require_tls,
            tls_ca: r.tls_ca.as_ref().map(|k| {
                let p = path_in(&base, k.get_ref());
                if !p.is_file() {
                    c.at(
                        k.span(),
                        format!("[relay] tls_ca: {} does not exist", p.display()),
                        "name a PEM file of CA certificates to trust for MX hosts",
                    );
                }
                p
            }),
        }
    });

    let receiver = raw.receiver.as_ref().map(|r| {
        let r = r.get_ref();
        let listen = c.listen(&r.listen, "receiver", "0.0.0.0:25");
        let address = c.dial(r.address.as_ref(), &listen, "receiver");
        let mut choice =
            |value: &Option<S<String>>, key: &str, allowed: &[&str], default: &str| match value {
                Some(v) if !allowed.contains(&v.get_ref().as_str()) => {
                    c.at(
                        v.span(),
                        format!(
                            "[receiver] {key} = {:?} is not one of {}",
                            v.get_ref(),
                            allowed.join(", ")
                        ),
                        format!(
                            "write {key} = \"{default}\" (or another of {})",
                            allowed.join(", ")
                        ),
                    );
                    default.to_string()
                }
                Some(v) => v.get_ref().clone(),
                None => default.to_string(),
            };
        let spam_action = choice(&r.spam_action, "spam_action", &["tag", "refuse"], "tag");
        let dmarc_action = choice(
            &r.dmarc_action,
            "dmarc_action",
            &["enforce", "quarantine", "annotate"],
            "enforce",
        );
        let spam_threshold =
            match &r.spam_threshold {
                Some(t) if !(0.0..=1.0).contains(t.get_ref()) => {
                    c.at(
                    t.span(),
                    format!("[receiver] spam_threshold = {} is not between 0 and 1", t.get_ref()),
                    "write the score from which the spam action applies, e.g. spam_threshold = 0.9",
                );
                    0.9
                }
                Some(t) => *t.get_ref(),
                None => 0.9,
            };
        let dangerous_extensions = match &r.dangerous_extensions {
            Some(list) => list
                .get_ref()
                .iter()
                .map(|e| e.get_ref().trim_start_matches('.').to_ascii_lowercase())
                .collect(),
            None => ptt_spam::tokenize::DANGEROUS_EXTENSIONS
                .iter()
                .map(|e| e.to_string())
                .collect(),
        };
        Receiver {
            listen,
            address,
            max_message_size: c.positive(
                r.max_message_size.as_ref(),
                "[receiver] max_message_size",
                36_700_160,
            ),
            max_recipients: c.bounded(
                r.max_recipients.as_ref(),
                "[receiver] max_recipients",
                100,
                100_000,
            ) as usize,
            max_sessions_per_ip: c.bounded(
                r.max_sessions_per_ip.as_ref(),
                "[receiver] max_sessions_per_ip",
                50,
                1_000_000,
            ) as usize,
            unlimited: match &r.unlimited {
                Some(list) => list
                    .iter()
                    .filter_map(|a| {
                        let n = Network::parse(a.get_ref());
                        if n.is_none() {
                            c.at(
                                a.span(),
                                format!("[receiver] unlimited: {:?} is not a network", a.get_ref()),
                                "write ADDRESS/PREFIX, e.g. \"127.0.0.1/32\"",
                            );
                        }
                        n
                    })
                    .collect(),
                None => ["127.0.0.1/32", "::1/128"]
                    .iter()
                    .filter_map(|n| Network::parse(n))
                    .collect(),
            },
            max_messages_per_ip_per_minute: c.bounded(
                r.max_messages_per_ip_per_minute.as_ref(),
                "[receiver] max_messages_per_ip_per_minute",
                300,
                1_000_000,
            ) as u32,
            dmarc_rua: r.dmarc_rua.as_ref().map(|a| {
                let text = a.get_ref().trim().trim_start_matches("mailto:").to_ascii_lowercase();
                if crate::userdb::check_address(&text).is_err() {
                    c.at(
                        a.span(),
                        format!("[receiver] dmarc_rua = {:?} is not an address", a.get_ref()),
                        "write the address of your DMARC record's rua=, e.g. dmarc_rua = \"dmarc@example.org\"",
                    );
                }
                text
            }),
            dmarc_report_seconds: c.positive(
                r.dmarc_report_seconds.as_ref(),
                "[receiver] dmarc_report_seconds",
                86_400,
            ),
            spam_db: r.spam_db.as_ref().map(|p| path_in(&base, p.get_ref())),
            spam_action,
            spam_threshold,
            dangerous_extensions,
            dmarc_action,
        }
    });

    let lists = raw.lists.as_ref().map(|l| {
        let l = l.get_ref();
        let listen = c.listen(&l.listen, "lists", "127.0.0.1:10026");
        let address = c.dial(l.address.as_ref(), &listen, "lists");
        let https_listen = l.https_listen.as_ref().map_or_else(Vec::new, |h| {
            c.addrs(h.get_ref(), "[lists] https_listen", "0.0.0.0:443")
        });
        let one_click_url = l.one_click_url.as_ref().and_then(|u| {
            let url = u.get_ref();
            if url.starts_with("https://") && !url.contains(['#', ' ', '<', '>', '"']) {
                Some(url.clone())
            } else {
                c.at(
                    u.span(),
                    format!("[lists] one_click_url {url:?} is not an https:// URL"),
                    "RFC 8058 needs HTTPS: write e.g. one_click_url = \"https://lists.example.org/lists/unsubscribe\"",
                );
                None
            }
        });
        Lists {
            listen,
            address,
            state: path_in(&base, l.state.get_ref()),
            domain: l
                .domain
                .as_ref()
                .map_or_else(|| domain.clone(), |d| c.domain(d, "[lists] domain")),
            https_listen,
            one_click_url,
        }
    });

    let submission = raw.submission.as_ref().map(|s| {
        let span = s.span();
        let s = s.get_ref();
        let listen = c.addrs(&s.listen, "[submission] listen", "0.0.0.0:587");
        let listen_tls = c.addrs(&s.listen_tls, "[submission] listen_tls", "0.0.0.0:465");
        if s.listen.is_empty() && s.listen_tls.is_empty() {
            c.at(
                span.clone(),
                "[submission] has no listener",
                "add listen = [\"0.0.0.0:587\"] (STARTTLS) and/or listen_tls = [\"0.0.0.0:465\"] (implicit TLS)",
            );
        }
        let allow = s
            .allow
            .iter()
            .filter_map(|a| {
                let n = Network::parse(a.get_ref());
                if n.is_none() {
                    c.at(
                        a.span(),
                        format!("[submission] allow: {:?} is not a network", a.get_ref()),
                        "write ADDRESS/PREFIX, e.g. \"10.0.0.0/8\" or \"fd00::/8\"",
                    );
                }
                n
            })
            .collect();
        if raw.signer.is_none() {
            c.at(
                span,
                "[submission] hands every message to the signer, and there is no [signer]",
                "add a [signer] section with its listen address (each process reads the same file)",
            );
        }
        Submission {
            listen,
            listen_tls,
            max_message_size: c.positive(
                s.max_message_size.as_ref(),
                "[submission] max_message_size",
                36_700_160,
            ),
            auth_concurrency: c.bounded(
                s.auth_concurrency.as_ref(),
                "[submission] auth_concurrency",
                1,
                256,
            ) as usize,
            max_failures_per_ip: s.max_failures_per_ip.as_ref().map_or(10, |v| *v.get_ref()),
            max_failures_per_user: s.max_failures_per_user.as_ref().map_or(10, |v| *v.get_ref()),
            block: Duration::from_secs(c.positive(
                s.block_seconds.as_ref(),
                "[submission] block_seconds",
                900,
            )),
            allow,
            max_sessions: c.bounded(
                s.max_sessions.as_ref(),
                "[submission] max_sessions",
                4096,
                1_000_000,
            ) as usize,
        }
    });

    // The services that read the user repository need one.
    if users.is_none() {
        for (present, name) in [
            (raw.submission.as_ref().map(Spanned::span), "submission"),
            (raw.receiver.as_ref().map(Spanned::span), "receiver"),
        ] {
            if let Some(span) = present {
                c.at(
                    span,
                    format!("[{name}] needs the user repository, and there is no [users]"),
                    "add [users] with repo = \"PATH\" (make one with `ptt adduser --users PATH …`)",
                );
            }
        }
    }
    if let Some(acme) = raw.tls.as_ref().and_then(|t| t.get_ref().acme.as_ref())
        && (dns.primary.is_none() || dns.tsig_key.is_none())
    {
        c.at(
            acme.span(),
            "[tls] acme answers the DNS-01 challenge through the primary, and [dns] has no primary or tsig_key",
            "add primary = \"IP:PORT\" and tsig_key = \"FILE\" to [dns]",
        );
    }
    if let (Some(s), None) = (&raw.signer, &raw.relay) {
        c.at(
            s.span(),
            "[signer] hands every signed message to the relay, and there is no [relay]",
            "add a [relay] section with its listen address",
        );
    }

    if !c.problems.is_empty() {
        return Err(Problems(c.problems));
    }
    Ok(Config {
        path: file.to_path_buf(),
        domain,
        hostname,
        state,
        sandbox,
        dns,
        users,
        tls,
        log,
        submission,
        signer,
        relay,
        receiver,
        lists,
        metrics,
    })
}
