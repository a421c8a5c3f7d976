//! One delivery attempt of one queued message: its recipients grouped by
//! domain, each domain's mail handed to the receiver (the domain's own
//! users), a smarthost, or the domain's MX hosts (RFC 5321 §5: by
//! preference, equals shuffled, the domain itself without MX, nothing for
//! a null MX), each host's addresses tried in turn (IPv6 first), with
//! STARTTLS whenever the host offers it, and only over verified TLS for the
//! domains of `[relay] require_tls`.
//!
//! The results are per recipient, as the hosts gave them:
//! [`Outcome::Delivered`], [`Outcome::Deferred`] (4xx, no host reachable,
//! DNS trouble) or [`Outcome::Failed`] (5xx, no such domain, null MX).

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hickory_proto::rr::{RData, RecordType};
use ptt_queue::mta_sts::{Verdict, check_host};
use ptt_queue::route::{Route, mx_hosts};
use ptt_queue::{Entry, Outcome, Report, Return};
use ptt_smtp::Credentials;
use ptt_smtp::command::{Notify, Orcpt, Ret};
use ptt_smtp::{Client, ClientConfig, MailParams, Message, RcptParams, Reply, TlsMode};
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::mta_sts::StsCache;
use crate::dns::secure::{SecureResolver, Security};
use crate::dns::{Lookup, Resolver};
use crate::net::dane::Tlsa;
use crate::net::smtp::{ClientSession, Conn, Transacted};
use crate::service::hop::{Handoff, Hop};

/// How long connecting to one address may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one host's whole session may take.
const SESSION_TIMEOUT: Duration = Duration::from_secs(600);

/// What an attempt needs to know.
pub(crate) struct Deliverer {
    /// The resolver of `[dns]`.
    pub(crate) resolver: Arc<Resolver>,
    /// Our domain and `[lists] domain`: their mail goes to the receiver.
    pub(crate) local_domains: Vec<String>,
    /// Our EHLO name.
    pub(crate) hello: String,
    /// The port dialled on MX hosts.
    pub(crate) port: u16,
    /// `[relay] smarthost`, as host and port.
    pub(crate) smarthost: Option<(String, u16)>,
    /// AUTH at the smarthost.
    pub(crate) smarthost_auth: Option<Credentials>,
    /// `[relay] hold`: keep mail for other domains.
    pub(crate) hold: bool,
    /// Domains that need verified TLS.
    pub(crate) require_tls: Vec<String>,
    /// STARTTLS without checking the certificate (RFC 7435).
    pub(crate) opportunistic: TlsConnector,
    /// STARTTLS checking the certificate against the roots.
    pub(crate) verified: TlsConnector,
    /// The receiver, for our own domain.
    pub(crate) receiver: Option<Hop>,
    /// MTA-STS policies.
    pub(crate) sts: StsCache,
    /// DNSSEC-aware lookups when the resolver validates: DANE is on.
    pub(crate) secure: Option<SecureResolver>,
    /// Sessions kept open after a delivery, per destination.
    pub(crate) idle: Mutex<HashMap<SessionKey, Vec<ClientSession>>>,
}

/// A kept session's destination: address, host name, TLS rule.
type SessionKey = (SocketAddr, String, &'static str);

/// How long a session is kept open without a message.
const KEEP_SESSION: Duration = Duration::from_secs(10);

/// Sessions kept per destination at most.
const SESSIONS_PER_HOST: usize = 8;

/// How a session with one host does TLS.
enum TlsChoice {
    /// STARTTLS when offered, any certificate (RFC 7435).
    Opportunistic,
    /// STARTTLS required, the certificate verified for the host name.
    Verified,
    /// STARTTLS required, the certificate matched against TLSA records.
    Dane(TlsConnector),
    /// STARTTLS required, any certificate (TLSA records, none usable).
    Encrypted,
}

impl TlsChoice {
    /// A name for the kept-session key (DANE sessions are never shared
    /// across different records: each is keyed by its host anyway).
    fn label(&self) -> &'static str {
        match self {
            TlsChoice::Opportunistic => "opportunistic",
            TlsChoice::Verified => "verified",
            TlsChoice::Dane(_) => "dane",
            TlsChoice::Encrypted => "encrypted",
        }
    }
}

/// What the TLSA records of a host say.
enum DaneState {
    /// Usable records: only a matching certificate will do.
    Records(Vec<Tlsa>),
    /// Records, none usable: TLS without authentication.
    Unusable,
    /// No secure records: DANE does not apply.
    None,
    /// The lookup was bogus or failed: do not go on in the clear.
    Defer(String),
}

/// Reports of one attempt.
pub(crate) type Results = Vec<(String, Outcome)>;

fn report(status: &str, remote_mta: Option<&str>, diagnostic: String, now: u64) -> Report {
    Report {
        status: status.into(),
        remote_mta: remote_mta.map(str::to_string),
        diagnostic,
        at: now,
    }
}

/// The report of an SMTP reply.
fn from_reply(reply: &Reply, host: &str, now: u64) -> Report {
    let status = match reply.enhanced() {
        Some(e) => e.to_string(),
        None => format!("{}.0.0", reply.code() / 100),
    };
    let text = reply.text();
    let diagnostic = match reply.enhanced() {
        Some(e) => format!("smtp; {} {e} {text}", reply.code()),
        None => format!("smtp; {} {text}", reply.code()),
    };
    report(&status, Some(host), diagnostic, now)
}

fn outcome_of(reply: &Reply, host: &str, now: u64) -> Outcome {
    let r = from_reply(reply, host, now);
    if reply.is_positive() {
        Outcome::Delivered(r)
    } else if reply.is_permanent() {
        Outcome::Failed(r)
    } else {
        Outcome::Deferred(r)
    }
}

fn all(rcpts: &[String], outcome: &dyn Fn() -> Outcome) -> Results {
    rcpts.iter().map(|r| (r.clone(), outcome())).collect()
}

/// A recipient's RFC 3461 parameters, passed on (the client drops them
/// when the host does not offer DSN).
fn rcpt_params(entry: &Entry, address: &str) -> RcptParams {
    let Some(r) = entry
        .recipients
        .iter()
        .find(|r| r.address.eq_ignore_ascii_case(address))
    else {
        return RcptParams::default();
    };
    let n = r.notify;
    let notify = (n != ptt_queue::Notify::default()).then_some(Notify {
        never: n == ptt_queue::Notify::NEVER,
        success: n.success,
        failure: n.failure,
        delay: n.delay,
    });
    RcptParams {
        notify,
        orcpt: r.orcpt.as_ref().and_then(|o| {
            let (addr_type, addr) = o.split_once(';')?;
            Some(Orcpt {
                addr_type: addr_type.to_string(),
                addr: addr.to_string(),
            })
        }),
        other: Vec::new(),
    }
}

/// One queued message to try: which recipients, and its bytes.
pub(crate) struct Job {
    /// The queue entry.
    pub(crate) entry: Entry,
    /// The recipients to try now.
    pub(crate) rcpts: Vec<String>,
    /// The message.
    pub(crate) message: Vec<u8>,
}

/// Part of a job for one domain: the job's index and those recipients.
type Part = (usize, Vec<String>);

/// How one host's session ended for the parts it was given.
struct Session {
    /// Parts the host answered for, with its answers.
    done: Vec<(usize, Results)>,
    /// Parts with no definite answer: for the next address or host.
    left: Vec<Part>,
    /// Why those were left.
    why: String,
    /// Whether the session ran under TLS.
    encrypted: bool,
}

/// The TLS mode of a session for the metrics: what was asked for, and
/// (opportunistic) whether STARTTLS happened.
fn tls_mode(asked: &str, encrypted: bool) -> &'static str {
    match (asked, encrypted) {
        (_, false) => "none",
        ("dane", _) => "dane",
        ("mta-sts", _) => "mta-sts",
        ("opportunistic" | "mta-sts-testing" | "dane-unusable", _) => "starttls",
        _ => "verified",
    }
}

fn log_results(id: &str, host: &str, ip: IpAddr, tls: &str, encrypted: bool, results: &Results) {
    for (rcpt, outcome) in results {
        let (what, r) = match outcome {
            Outcome::Delivered(r) => ("delivered", r),
            Outcome::Deferred(r) => ("deferred", r),
            Outcome::Failed(r) => ("failed", r),
        };
        metrics::counter!(
            crate::service::metrics::DELIVERIES,
            "outcome" => what,
            "tls" => tls_mode(tls, encrypted)
        )
        .increment(1);
        tracing::info!(service = "relay", id, to = rcpt, mx = host, ip = %ip, tls, result = what, reply = r.diagnostic);
    }
}

impl Deliverer {
    /// Tries a batch of queued messages once: their recipients grouped by
    /// domain, each domain's messages sent over one connection (several
    /// transactions in one session). The results are in the order of
    /// `jobs`.
    pub(crate) async fn attempt(&self, jobs: &[Job], now: u64, random: u64) -> Vec<Results> {
        let mut by_domain: BTreeMap<String, Vec<Part>> = BTreeMap::new();
        for (i, job) in jobs.iter().enumerate() {
            let mut mine: BTreeMap<String, Vec<String>> = BTreeMap::new();
            for r in &job.rcpts {
                mine.entry(crate::userdb::domain_of(r))
                    .or_default()
                    .push(r.clone());
            }
            for (domain, rcpts) in mine {
                by_domain.entry(domain).or_default().push((i, rcpts));
            }
        }
        let attempts = by_domain.into_iter().map(|(domain, parts)| async move {
            self.to_domain(&domain, parts, jobs, now, random).await
        });
        let mut results: Vec<Results> = jobs.iter().map(|_| Vec::new()).collect();
        for (i, r) in futures_util::future::join_all(attempts)
            .await
            .into_iter()
            .flatten()
        {
            results[i].extend(r);
        }
        results
    }

    async fn to_domain(
        &self,
        domain: &str,
        parts: Vec<Part>,
        jobs: &[Job],
        now: u64,
        random: u64,
    ) -> Vec<(usize, Results)> {
        let each = |outcome: &dyn Fn() -> Outcome| -> Vec<(usize, Results)> {
            parts
                .iter()
                .map(|(i, rcpts)| (*i, all(rcpts, outcome)))
                .collect()
        };
        if self
            .local_domains
            .iter()
            .any(|d| d.eq_ignore_ascii_case(domain))
        {
            let local = parts.iter().map(|(i, rcpts)| async move {
                let job = &jobs[*i];
                (
                    *i,
                    self.to_receiver(&job.entry.id, &job.entry.from, rcpts, &job.message, now)
                        .await,
                )
            });
            return futures_util::future::join_all(local).await;
        }
        if self.hold {
            return each(&|| {
                Outcome::Deferred(report(
                    "4.3.2",
                    None,
                    "x-ptt; held: [relay] hold = true keeps mail for other domains".into(),
                    now,
                ))
            });
        }
        if domain.starts_with('[') || domain.parse::<IpAddr>().is_ok() {
            return each(&|| {
                Outcome::Failed(report(
                    "5.1.2",
                    None,
                    "x-ptt; address literals are not delivered to".into(),
                    now,
                ))
            });
        }
        // DANE (RFC 7672) applies to MX hosts from a secure MX answer; an
        // MX answer that is bogus or missing stops here, and says so.
        let mx_security = match (&self.secure, &self.smarthost) {
            (Some(secure), None) => {
                let security = secure.lookup(domain, RecordType::MX).await.security;
                tracing::info!(service = "relay", domain, dnssec = %security, "MX lookup");
                Some(security)
            }
            _ => None,
        };
        let dane_on = match mx_security {
            Some(security) => match security {
                Security::Secure => true,
                Security::Insecure => false,
                why => {
                    let reason = format!(
                        "x-ptt; the MX answer of {domain} is {why}; DANE may apply, so nothing is sent"
                    );
                    tracing::warn!(service = "relay", domain, dnssec = %why, "MX lookup not trusted");
                    return each(&|| Outcome::Deferred(report("4.7.5", None, reason.clone(), now)));
                }
            },
            None => false,
        };
        let hosts: Vec<(String, u16)> = match &self.smarthost {
            Some(h) => vec![h.clone()],
            None => match self.route(domain, random).await {
                Ok(Route::Hosts(hosts)) => hosts.into_iter().map(|h| (h, self.port)).collect(),
                Ok(Route::NullMx) => {
                    return each(&|| {
                        Outcome::Failed(report(
                            "5.1.10",
                            None,
                            format!("x-ptt; {domain} accepts no mail (null MX, RFC 7505)"),
                            now,
                        ))
                    });
                }
                Err(outcome) => return each(&|| outcome(now)),
            },
        };
        let required = self
            .require_tls
            .iter()
            .any(|d| d.eq_ignore_ascii_case(domain));
        let policy = match (&self.smarthost, required) {
            (None, false) => {
                self.sts
                    .policy(&self.resolver, &self.verified, domain, now)
                    .await
            }
            _ => None,
        };
        let ids = |parts: &[Part]| {
            parts
                .iter()
                .map(|(i, _)| jobs[*i].entry.id.as_str())
                .collect::<Vec<_>>()
                .join(",")
        };
        let mut done: Vec<(usize, Results)> = Vec::new();
        let mut left = parts.clone();
        let mut last = String::from("no host to try");
        'hosts: for (host, port) in &hosts {
            let dane = if dane_on {
                self.dane_state(host, *port).await
            } else {
                DaneState::None
            };
            let (choice, tls) = match dane {
                DaneState::Records(records) => (
                    TlsChoice::Dane(crate::net::dane::connector(records)),
                    "dane",
                ),
                DaneState::Unusable => (TlsChoice::Encrypted, "dane-unusable"),
                DaneState::Defer(why) => {
                    last = why;
                    tracing::warn!(
                        service = "relay",
                        id = ids(&left),
                        mx = host,
                        tls = "dane",
                        "skipped: {last}"
                    );
                    continue;
                }
                DaneState::None if required => (TlsChoice::Verified, "required"),
                // A password goes only to a server whose certificate verifies.
                DaneState::None if self.smarthost_auth.is_some() => {
                    (TlsChoice::Verified, "smarthost-auth")
                }
                DaneState::None => match check_host(policy.as_ref(), host) {
                    Verdict::NoPolicy => (TlsChoice::Opportunistic, "opportunistic"),
                    Verdict::RequireVerifiedTls => (TlsChoice::Verified, "mta-sts"),
                    Verdict::TestingOnly { .. } => (TlsChoice::Opportunistic, "mta-sts-testing"),
                    Verdict::HostNotListed => {
                        last = format!("{host} is not an MX of the MTA-STS policy of {domain}");
                        tracing::info!(
                            service = "relay",
                            id = ids(&left),
                            mx = host,
                            tls = "mta-sts",
                            "skipped: {last}"
                        );
                        continue;
                    }
                },
            };
            let verified = !matches!(choice, TlsChoice::Opportunistic);
            let addresses = match self.addresses(host).await {
                Ok(a) => a,
                Err(why) => {
                    last = why;
                    continue;
                }
            };
            for ip in addresses {
                let addr = SocketAddr::new(ip, *port);
                let session = match tokio::time::timeout(
                    SESSION_TIMEOUT,
                    self.session(addr, host, &choice, &left, jobs, now),
                )
                .await
                {
                    Ok(session) => session,
                    Err(_) => Session {
                        done: Vec::new(),
                        left: left.clone(),
                        why: format!("{host} [{ip}]: timed out"),
                        encrypted: false,
                    },
                };
                for (i, results) in &session.done {
                    log_results(
                        &jobs[*i].entry.id,
                        host,
                        ip,
                        tls,
                        session.encrypted,
                        results,
                    );
                }
                done.extend(session.done);
                left = session.left;
                if left.is_empty() {
                    break 'hosts;
                }
                let why = if verified {
                    format!(
                        "{} (TLS {tls}: an authenticated certificate is needed)",
                        session.why
                    )
                } else {
                    session.why
                };
                tracing::info!(service = "relay", id = ids(&left), mx = host, ip = %ip, tls, "trying the next host: {why}");
                last = why;
            }
        }
        for (i, rcpts) in left {
            done.push((
                i,
                all(&rcpts, &|| {
                    Outcome::Deferred(report("4.4.1", None, format!("x-ptt; {last}"), now))
                }),
            ));
        }
        done
    }

    /// The TLSA records of `host` for `port` (RFC 7672 §2.2), as far as
    /// the resolver vouches for them.
    async fn dane_state(&self, host: &str, port: u16) -> DaneState {
        let Some(secure) = &self.secure else {
            return DaneState::None;
        };
        let name = format!("_{port}._tcp.{host}");
        let answer = secure.lookup(&name, RecordType::TLSA).await;
        let records: Vec<Tlsa> = answer
            .records
            .iter()
            .filter_map(|r| match r {
                RData::TLSA(t) => Some(Tlsa {
                    usage: u8::from(t.cert_usage),
                    selector: u8::from(t.selector),
                    matching: u8::from(t.matching),
                    data: t.cert_data.clone(),
                }),
                _ => None,
            })
            .collect();
        tracing::info!(service = "relay", tlsa = name, dnssec = %answer.security, records = records.len(), "TLSA lookup");
        match answer.security {
            Security::Secure if records.iter().any(Tlsa::is_usable) => DaneState::Records(records),
            Security::Secure if !records.is_empty() => DaneState::Unusable,
            Security::Secure | Security::Insecure => DaneState::None,
            why => DaneState::Defer(format!(
                "TLSA {name}: {why}; not sent without DANE (RFC 7672 §2.2)"
            )),
        }
    }

    /// The domain's MX hosts, or why there are none.
    async fn route(
        &self,
        domain: &str,
        random: u64,
    ) -> Result<Route, Box<dyn Fn(u64) -> Outcome + Send + Sync>> {
        match self.resolver.lookup(domain, RecordType::MX).await {
            Lookup::Found(records) => {
                let mx: Vec<(u16, String)> = records
                    .iter()
                    .filter_map(|r| match r {
                        RData::MX(mx) => Some((mx.preference, mx.exchange.to_ascii())),
                        _ => None,
                    })
                    .collect();
                Ok(mx_hosts(domain, &mx, random))
            }
            Lookup::NoRecords => Ok(mx_hosts(domain, &[], random)),
            Lookup::NxDomain => {
                let domain = domain.to_string();
                Err(Box::new(move |now| {
                    Outcome::Failed(report(
                        "5.1.2",
                        None,
                        format!("x-ptt; the domain {domain} does not exist"),
                        now,
                    ))
                }))
            }
            Lookup::Failed(why) => {
                let domain = domain.to_string();
                Err(Box::new(move |now| {
                    Outcome::Deferred(report(
                        "4.4.3",
                        None,
                        format!("x-ptt; looking up the MX of {domain}: {why}"),
                        now,
                    ))
                }))
            }
        }
    }

    /// A host's addresses, IPv6 first.
    async fn addresses(&self, host: &str) -> Result<Vec<IpAddr>, String> {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(vec![ip]);
        }
        let mut ips = Vec::new();
        let mut failures = Vec::new();
        for rtype in [RecordType::AAAA, RecordType::A] {
            match self.resolver.lookup(host, rtype).await {
                Lookup::Found(records) => ips.extend(records.iter().filter_map(|r| match r {
                    RData::A(a) => Some(IpAddr::V4(a.0)),
                    RData::AAAA(a) => Some(IpAddr::V6(a.0)),
                    _ => None,
                })),
                Lookup::NoRecords | Lookup::NxDomain => {}
                Lookup::Failed(why) => failures.push(why),
            }
        }
        if ips.is_empty() {
            return Err(match failures.first() {
                Some(why) => format!("looking up {host}: {why}"),
                None => format!("{host} has no address"),
            });
        }
        Ok(ips)
    }

    /// A session with `addr`: a kept one when there is one (and whether it
    /// was kept), else a new connection.
    async fn connect(
        &self,
        addr: SocketAddr,
        host: &str,
        tls: &TlsChoice,
    ) -> Result<(ClientSession, bool), String> {
        let key = (addr, host.to_string(), tls.label());
        if let Some(session) = self.take_idle(&key) {
            return Ok((session, true));
        }
        let name = ServerName::try_from(host.to_string())
            .map_err(|_| format!("{host:?} is not a host name"))?;
        let tcp = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
            Ok(Ok(t)) => t,
            Ok(Err(e)) => return Err(format!("{host} [{}]: {e}", addr.ip())),
            Err(_) => return Err(format!("{host} [{}]: connection timed out", addr.ip())),
        };
        let _ = tcp.set_nodelay(true);
        let (mode, connector) = match tls {
            TlsChoice::Opportunistic => (TlsMode::Opportunistic, &self.opportunistic),
            TlsChoice::Verified => (TlsMode::Required, &self.verified),
            TlsChoice::Dane(connector) => (TlsMode::Required, connector),
            TlsChoice::Encrypted => (TlsMode::Required, &self.opportunistic),
        };
        let config = ClientConfig {
            hello_name: self.hello.clone(),
            tls: mode,
            credentials: self
                .smarthost
                .as_ref()
                .and_then(|_| self.smarthost_auth.clone()),
            pipelining: true,
            chunking: true,
            timeout: Duration::from_secs(300),
        };
        Ok((
            ClientSession::new(
                Conn::Plain(tcp),
                Client::new(config, Duration::ZERO),
                std::time::Instant::now(),
                Some((connector.clone(), name)),
            ),
            false,
        ))
    }

    fn take_idle(&self, key: &SessionKey) -> Option<ClientSession> {
        let mut idle = self.idle.lock().ok()?;
        let list = idle.get_mut(key)?;
        while let Some(session) = list.pop() {
            if session.idle_since.elapsed() < KEEP_SESSION {
                return Some(session);
            }
            tokio::spawn(session.quit());
        }
        None
    }

    fn put_idle(&self, key: SessionKey, session: ClientSession) {
        let Ok(mut idle) = self.idle.lock() else {
            return;
        };
        // Drop the destinations nobody used for a while.
        idle.retain(|_, list| {
            list.retain(|s| s.idle_since.elapsed() < KEEP_SESSION);
            !list.is_empty()
        });
        let list = idle.entry(key).or_default();
        list.push(session);
        if list.len() > SESSIONS_PER_HOST {
            let oldest = list.remove(0);
            tokio::spawn(oldest.quit());
        }
    }

    /// One session with one host: every part as its own transaction, on a
    /// session kept from an earlier delivery when there is one.
    async fn session(
        &self,
        addr: SocketAddr,
        host: &str,
        tls: &TlsChoice,
        parts: &[Part],
        jobs: &[Job],
        now: u64,
    ) -> Session {
        let (mut session, mut reused) = match self.connect(addr, host, tls).await {
            Ok(s) => s,
            Err(why) => {
                return Session {
                    done: Vec::new(),
                    left: parts.to_vec(),
                    why,
                    encrypted: false,
                };
            }
        };
        let mut done: Vec<(usize, Results)> = Vec::new();
        let mut left: Vec<Part> = Vec::new();
        let mut why = String::new();
        let mut healthy = true;
        for (i, rcpts) in parts {
            if !healthy {
                left.push((*i, rcpts.clone()));
                continue;
            }
            let entry = &jobs[*i].entry;
            let Ok(from_path) = ptt_smtp::ReversePath::parse(&format!("<{}>", entry.from), true)
            else {
                done.push((
                    *i,
                    all(rcpts, &|| {
                        Outcome::Failed(report(
                            "5.1.7",
                            None,
                            format!("x-ptt; bad sender <{}>", entry.from),
                            now,
                        ))
                    }),
                ));
                continue;
            };
            let mut to = Vec::new();
            let mut bad = Vec::new();
            for r in rcpts {
                match ptt_smtp::ForwardPath::parse(&format!("<{r}>"), true) {
                    Ok(p) => to.push((p, rcpt_params(entry, r))),
                    Err(_) => bad.push((
                        r.clone(),
                        Outcome::Failed(report(
                            "5.1.3",
                            None,
                            format!("x-ptt; bad address <{r}>"),
                            now,
                        )),
                    )),
                }
            }
            if to.is_empty() {
                done.push((*i, bad));
                continue;
            }
            let message = Message {
                from: from_path,
                params: MailParams {
                    ret: (entry.ret == Return::Full).then_some(Ret::Full),
                    envid: entry.envid.clone(),
                    ..MailParams::default()
                },
                to,
                data: jobs[*i].message.clone(),
            };
            let mut outcome = session.transact(message.clone()).await;
            if matches!(outcome, Transacted::Unsent(_)) && reused {
                // The host closed the kept session meanwhile: a new one.
                reused = false;
                match self.connect_fresh(addr, host, tls).await {
                    Ok(fresh) => {
                        session = fresh;
                        outcome = session.transact(message).await;
                    }
                    Err(e) => outcome = Transacted::Unsent(e),
                }
            }
            let t = match outcome {
                Transacted::Done(t) => t,
                Transacted::Unsent(w) | Transacted::Failed(w) => {
                    why = format!("{host} [{}]: {w}", addr.ip());
                    healthy = false;
                    left.push((*i, rcpts.clone()));
                    continue;
                }
            };
            if t.mail.is_transient() {
                // Not this host, now: the next one may take it.
                why = format!("{host}: {}", t.mail);
                left.push((*i, rcpts.clone()));
                continue;
            }
            let mut results = bad;
            if t.mail.is_permanent() {
                results.extend(all(rcpts, &|| outcome_of(&t.mail, host, now)));
                done.push((*i, results));
                continue;
            }
            for (path, reply) in &t.rcpts {
                let address = path.mailbox().map(|m| m.to_string()).unwrap_or_default();
                let outcome = if !reply.is_positive() {
                    outcome_of(reply, host, now)
                } else {
                    match &t.data {
                        Some(data) => outcome_of(data, host, now),
                        None => Outcome::Deferred(report(
                            "4.4.2",
                            Some(host),
                            "x-ptt; the connection ended before the data was taken".into(),
                            now,
                        )),
                    }
                };
                results.push((address, outcome));
            }
            done.push((*i, results));
        }
        let encrypted = session.is_tls();
        if healthy {
            self.put_idle((addr, host.to_string(), tls.label()), session);
        }
        Session {
            done,
            left,
            why,
            encrypted,
        }
    }

    async fn connect_fresh(
        &self,
        addr: SocketAddr,
        host: &str,
        tls: &TlsChoice,
    ) -> Result<ClientSession, String> {
        // Forget kept sessions to this host: they are likely closed too.
        if let Ok(mut idle) = self.idle.lock() {
            idle.remove(&(addr, host.to_string(), tls.label()));
        }
        self.connect(addr, host, tls).await.map(|(s, _)| s)
    }

    /// The domain's own mail, to the receiver.
    async fn to_receiver(
        &self,
        id: &str,
        from: &str,
        rcpts: &[String],
        message: &[u8],
        now: u64,
    ) -> Results {
        let Some(receiver) = &self.receiver else {
            return all(rcpts, &|| {
                Outcome::Deferred(report(
                    "4.3.0",
                    None,
                    "x-ptt; no [receiver] configured".into(),
                    now,
                ))
            });
        };
        let host = receiver.addr.to_string();
        let results = match receiver.send(from, rcpts, message).await {
            Handoff::Taken {
                reply,
                refused,
                deferred,
            } => rcpts
                .iter()
                .map(|r| {
                    let find = |list: &[(String, Reply)]| {
                        list.iter()
                            .find(|(a, _)| a.eq_ignore_ascii_case(r))
                            .map(|(_, reply)| reply.clone())
                    };
                    let outcome = match (find(&refused), find(&deferred)) {
                        (Some(no), _) => outcome_of(&no, &host, now),
                        (_, Some(later)) => outcome_of(&later, &host, now),
                        _ => outcome_of(&reply, &host, now),
                    };
                    (r.clone(), outcome)
                })
                .collect(),
            Handoff::Refused(reply) => all(rcpts, &|| outcome_of(&reply, &host, now)),
            Handoff::Deferred(why) => all(rcpts, &|| {
                Outcome::Deferred(report("4.4.1", None, format!("x-ptt; {why}"), now))
            }),
        };
        for (rcpt, outcome) in &results {
            let what = match outcome {
                Outcome::Delivered(_) => "delivered",
                Outcome::Deferred(_) => "deferred",
                Outcome::Failed(_) => "failed",
            };
            metrics::counter!(crate::service::metrics::DELIVERIES, "outcome" => what, "tls" => "local")
                .increment(1);
            tracing::info!(
                service = "relay",
                id,
                to = rcpt,
                next = "receiver",
                result = what
            );
        }
        results
    }
}
