//! `check_host()` (RFC 7208 section 4) as a Sans-IO state machine: it yields
//! DNS questions and takes their answers; it never touches the network.
//!
//! Internally each step replays the evaluation from the start over the
//! answers received so far, stopping at the first question still open. The
//! evaluation is deterministic, so a replay reaches the same point, and it
//! is short: the RFC's limits bound it to a few dozen lookups. Where the RFC
//! lets lookups run independently (the addresses of the MX hosts, of the PTR
//! names), every open question of the batch is yielded before waiting.

use alloc::borrow::ToOwned;
use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::macros::{MacroContext, MacroString, MacroValues};
use crate::record::{
    Directive, DualCidr, Mechanism, Modifier, Qualifier, SpfRecord, Term, is_spf_record,
};

/// Most DNS-querying terms (`include`, `a`, `mx`, `ptr`, `exists`,
/// `redirect`) one evaluation may use (RFC 7208 section 4.6.4).
pub const MAX_DNS_TERMS: u32 = 10;
/// Most void lookups (no records, or NXDOMAIN) one evaluation may have.
pub const MAX_VOID_LOOKUPS: u32 = 2;
/// Most MX records, or PTR names, one `mx`/`ptr`/`%{p}` may look at.
pub const MAX_NAMES_PER_LOOKUP: usize = 10;

/// The result of an SPF check (RFC 7208 section 2.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SpfResult {
    /// No SPF record, or no checkable domain.
    None,
    /// The domain says nothing about this client.
    Neutral,
    /// The client is authorized.
    Pass,
    /// The client is not authorized.
    Fail,
    /// Probably not authorized.
    SoftFail,
    /// A transient DNS error: try later.
    TempError,
    /// The domain's records are wrong and need a human.
    PermError,
}

impl SpfResult {
    /// The result's name as the RFC writes it (`pass`, `softfail`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            SpfResult::None => "none",
            SpfResult::Neutral => "neutral",
            SpfResult::Pass => "pass",
            SpfResult::Fail => "fail",
            SpfResult::SoftFail => "softfail",
            SpfResult::TempError => "temperror",
            SpfResult::PermError => "permerror",
        }
    }
}

impl fmt::Display for SpfResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not an SPF result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown SPF result {0:?}")]
pub struct UnknownResult(pub String);

impl core::str::FromStr for SpfResult {
    type Err = UnknownResult;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "none" => SpfResult::None,
            "neutral" => SpfResult::Neutral,
            "pass" => SpfResult::Pass,
            "fail" => SpfResult::Fail,
            "softfail" => SpfResult::SoftFail,
            "temperror" => SpfResult::TempError,
            "permerror" => SpfResult::PermError,
            _ => return Err(UnknownResult(s.to_string())),
        })
    }
}

impl From<Qualifier> for SpfResult {
    fn from(q: Qualifier) -> Self {
        match q {
            Qualifier::Pass => SpfResult::Pass,
            Qualifier::Fail => SpfResult::Fail,
            Qualifier::SoftFail => SpfResult::SoftFail,
            Qualifier::Neutral => SpfResult::Neutral,
        }
    }
}

/// Which identity is checked (RFC 7208 section 2.3 and 2.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Identity {
    /// The SMTP `MAIL FROM` reverse-path (or `postmaster@HELO` when it is empty).
    MailFrom,
    /// The `HELO`/`EHLO` domain.
    Helo,
}

impl Identity {
    /// `mailfrom` or `helo`, as `Received-SPF` writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Identity::MailFrom => "mailfrom",
            Identity::Helo => "helo",
        }
    }
}

/// What to check: the client, the identity and the values macros may use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    ip: IpAddr,
    mail_from: String,
    helo: String,
    identity: Identity,
    receiver: String,
    timestamp: u64,
}

impl Request {
    /// Checks the `MAIL FROM` identity of a client at `ip` that said
    /// `HELO helo`. An empty `mail_from` (a bounce) checks `postmaster@helo`.
    pub fn mail_from(ip: IpAddr, mail_from: &str, helo: &str) -> Request {
        Request {
            ip: canonical_ip(ip),
            mail_from: mail_from.to_string(),
            helo: helo.to_string(),
            identity: Identity::MailFrom,
            receiver: "unknown".to_string(),
            timestamp: 0,
        }
    }

    /// Checks the `HELO` identity.
    pub fn helo(ip: IpAddr, helo: &str) -> Request {
        Request {
            identity: Identity::Helo,
            ..Request::mail_from(ip, "", helo)
        }
    }

    /// The receiving host's name, for `%{r}` in explanations.
    pub fn with_receiver(mut self, receiver: &str) -> Request {
        self.receiver = receiver.to_string();
        self
    }

    /// Seconds since the epoch, for `%{t}` in explanations (the caller owns
    /// the clock).
    pub fn with_timestamp(mut self, timestamp: u64) -> Request {
        self.timestamp = timestamp;
        self
    }

    /// The client address (IPv4-mapped IPv6 addresses are taken as IPv4).
    pub fn ip(&self) -> IpAddr {
        self.ip
    }

    /// The identity checked.
    pub fn identity(&self) -> Identity {
        self.identity
    }

    /// The HELO name.
    pub fn helo_name(&self) -> &str {
        &self.helo
    }

    /// The receiving host.
    pub fn receiver(&self) -> &str {
        &self.receiver
    }

    /// The sender as checked: `local@domain`, with `postmaster` standing in
    /// for a missing local-part and `postmaster@HELO` for an empty reverse-path
    /// or a HELO check.
    pub fn sender(&self) -> String {
        let (l, d) = self.sender_parts();
        format!("{l}@{d}")
    }

    /// The `MAIL FROM` as given (possibly empty).
    pub fn mail_from_raw(&self) -> &str {
        &self.mail_from
    }

    /// The domain `check_host()` starts with.
    pub fn domain(&self) -> String {
        self.sender_parts().1
    }

    fn sender_parts(&self) -> (String, String) {
        if self.identity == Identity::Helo || self.mail_from.is_empty() {
            return ("postmaster".to_string(), self.helo.clone());
        }
        match self.mail_from.rsplit_once('@') {
            Some(("", d)) => ("postmaster".to_string(), d.to_string()),
            Some((l, d)) => (l.to_string(), d.to_string()),
            None => ("postmaster".to_string(), self.mail_from.clone()),
        }
    }
}

fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => ip,
        },
        v4 => v4,
    }
}

pub use ptt_dns::{Answer, Query, QueryType};

/// The outcome of an evaluation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpfOutput {
    /// The result.
    pub result: SpfResult,
    /// The identity checked.
    pub identity: Identity,
    /// The domain checked first.
    pub domain: String,
    /// The sender as checked (`local@domain`).
    pub sender: String,
    /// The directive that matched, as printed by [`Display`](fmt::Display).
    pub mechanism: Option<String>,
    /// Why the result is `temperror`, `permerror` or `none`.
    pub problem: Option<String>,
    /// The domain's explanation (from `exp=`), for `fail` only.
    pub explanation: Option<String>,
}

/// What the evaluator wants next: a [`Query`] to look up (several may be
/// handed out before any answer is needed), [`Step::Wait`] for their
/// answers, or [`Step::Done`] with the outcome.
pub type Step = ptt_dns::Step<SpfOutput>;

impl ptt_dns::Evaluator for Evaluator {
    type Output = SpfOutput;
    fn poll(&mut self) -> Step {
        Evaluator::poll(self)
    }
    fn answer(&mut self, query: &Query, answer: Answer) {
        Evaluator::answer(self, query, answer)
    }
}

/// A domain's SPF record as found on an earlier replay.
#[derive(Debug, Clone)]
enum Cached {
    Record(Arc<SpfRecord>),
    NoRecord,
    Temp(String),
    Perm(String),
}

#[derive(Debug, Clone)]
enum State {
    /// Queries the last replay stopped on, and how many were handed out.
    Open {
        queries: Vec<Query>,
        handed_out: usize,
    },
    Done(SpfOutput),
}

/// `check_host()` as a state machine.
///
/// ```
/// use ptt_spf::{Answer, Evaluator, QueryType, Request, SpfResult, Step};
/// let request = Request::mail_from("192.0.2.1".parse().unwrap(), "alice@example.org", "mx.example.org");
/// let mut ev = Evaluator::new(request);
/// let out = loop {
///     match ev.poll() {
///         Step::Query(q) => {
///             let answer = match (q.name.as_str(), q.qtype) {
///                 ("example.org", QueryType::Txt) => Answer::Txt(vec![b"v=spf1 ip4:192.0.2.0/24 -all".to_vec()]),
///                 _ => Answer::NxDomain,
///             };
///             ev.answer(&q, answer);
///         }
///         Step::Wait => unreachable!("each query is answered at once here"),
///         Step::Done(out) => break out,
///     }
/// };
/// assert_eq!(out.result, SpfResult::Pass);
/// assert_eq!(out.mechanism.as_deref(), Some("ip4:192.0.2.0/24"));
/// ```
#[derive(Debug, Clone)]
pub struct Evaluator {
    request: Request,
    answers: BTreeMap<(String, QueryType), Answer>,
    /// Parsed records by domain, so that a replay does not parse again.
    records: BTreeMap<String, Cached>,
    state: State,
    replays: u32,
}

impl Evaluator {
    /// Starts an evaluation.
    pub fn new(request: Request) -> Evaluator {
        Evaluator {
            request,
            answers: BTreeMap::new(),
            records: BTreeMap::new(),
            state: State::Open {
                queries: Vec::new(),
                handed_out: 0,
            },
            replays: 0,
        }
    }

    /// The request being evaluated.
    pub fn request(&self) -> &Request {
        &self.request
    }

    /// The next thing to do.
    pub fn poll(&mut self) -> Step {
        loop {
            match &mut self.state {
                State::Done(out) => return Step::Done(out.clone()),
                State::Open {
                    queries,
                    handed_out,
                } => {
                    if let Some(q) = queries.get(*handed_out) {
                        *handed_out += 1;
                        return Step::Query(q.clone());
                    }
                    if queries.iter().any(|q| !self.answers.contains_key(&q.key())) {
                        return Step::Wait;
                    }
                    self.replay();
                }
            }
        }
    }

    /// Hands in the answer to a query.
    pub fn answer(&mut self, query: &Query, answer: Answer) {
        let key = query.key();
        if key.1 == QueryType::Txt {
            self.records.remove(&key.0);
        }
        self.answers.insert(key, answer);
    }

    /// The outcome, once [`poll`](Self::poll) has returned [`Step::Done`].
    pub fn output(&self) -> Option<&SpfOutput> {
        match &self.state {
            State::Done(out) => Some(out),
            State::Open { .. } => None,
        }
    }

    /// How many times the evaluation was replayed (one per round of answers).
    pub fn replays(&self) -> u32 {
        self.replays
    }

    /// Runs a whole evaluation with a synchronous resolver.
    pub fn run(request: Request, mut resolve: impl FnMut(&Query) -> Answer) -> SpfOutput {
        let mut ev = Evaluator::new(request);
        loop {
            match ev.poll() {
                Step::Query(q) => {
                    let a = resolve(&q);
                    ev.answer(&q, a);
                }
                // Every query handed out has been answered above.
                Step::Wait => continue,
                Step::Done(out) => return out,
            }
        }
    }

    fn replay(&mut self) {
        self.replays += 1;
        let (local, domain) = self.request.sender_parts();
        let mut run = Run {
            request: &self.request,
            answers: &self.answers,
            records: &mut self.records,
            local: &local,
            sender_domain: &domain,
            missing: Vec::new(),
            dns_terms: 0,
            void_lookups: 0,
        };
        let verdict = match run.check_host(&domain, true) {
            Ok(v) => v,
            Err(Stop::Final(v)) => v,
            Err(Stop::Missing) => {
                let mut queries = core::mem::take(&mut run.missing);
                queries.sort();
                queries.dedup_by(|a, b| a.key() == b.key());
                self.state = State::Open {
                    queries,
                    handed_out: 0,
                };
                return;
            }
        };
        self.state = State::Done(SpfOutput {
            result: verdict.result,
            identity: self.request.identity,
            domain: domain.clone(),
            sender: format!("{local}@{domain}"),
            mechanism: verdict.mechanism,
            problem: verdict.problem,
            explanation: verdict.explanation,
        });
    }
}

#[derive(Debug)]
struct Verdict {
    result: SpfResult,
    mechanism: Option<String>,
    problem: Option<String>,
    explanation: Option<String>,
}

impl Verdict {
    fn new(result: SpfResult) -> Verdict {
        Verdict {
            result,
            mechanism: None,
            problem: None,
            explanation: None,
        }
    }

    fn problem(result: SpfResult, problem: String) -> Verdict {
        Verdict {
            problem: Some(problem),
            ..Verdict::new(result)
        }
    }
}

enum Stop {
    /// Answers are needed (listed in `Run::missing`).
    Missing,
    /// The evaluation ends with this verdict (temperror or permerror).
    Final(Verdict),
}

fn perm(problem: String) -> Stop {
    Stop::Final(Verdict::problem(SpfResult::PermError, problem))
}

fn temp(problem: String) -> Stop {
    Stop::Final(Verdict::problem(SpfResult::TempError, problem))
}

struct Run<'a> {
    request: &'a Request,
    answers: &'a BTreeMap<(String, QueryType), Answer>,
    records: &'a mut BTreeMap<String, Cached>,
    local: &'a str,
    sender_domain: &'a str,
    missing: Vec<Query>,
    dns_terms: u32,
    void_lookups: u32,
}

/// RFC 7208 section 4.3: a domain that cannot be checked.
pub(crate) fn checkable_domain(domain: &str) -> bool {
    let d = domain.strip_suffix('.').unwrap_or(domain);
    if d.is_empty() || d.len() > 253 || d.starts_with('[') {
        return false;
    }
    let mut labels = 0;
    for label in d.split('.') {
        if label.is_empty() || label.len() > 63 {
            return false;
        }
        labels += 1;
    }
    labels >= 2
}

/// A mechanism's target that no DNS query can be made of (an empty label, a
/// label over 63 octets): treated as a name that does not exist.
fn queryable(name: &str) -> bool {
    let n = name.strip_suffix('.').unwrap_or(name);
    !n.is_empty() && n.len() <= 253 && n.split('.').all(|l| !l.is_empty() && l.len() <= 63)
}

fn in_prefix4(ip: Ipv4Addr, net: Ipv4Addr, len: u8) -> bool {
    let len = u32::from(len.min(32));
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    u32::from(ip) & mask == u32::from(net) & mask
}

fn in_prefix6(ip: Ipv6Addr, net: Ipv6Addr, len: u8) -> bool {
    let len = u32::from(len.min(128));
    let mask = if len == 0 {
        0
    } else {
        u128::MAX << (128 - len)
    };
    u128::from(ip) & mask == u128::from(net) & mask
}

/// The PTR query name of an address.
pub fn reverse_name(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            format!("{}.{}.{}.{}.in-addr.arpa", o[3], o[2], o[1], o[0])
        }
        IpAddr::V6(v6) => {
            let mut s = String::with_capacity(72);
            for byte in v6.octets().iter().rev() {
                let hex = b"0123456789abcdef";
                s.push(char::from(hex[usize::from(byte & 15)]));
                s.push('.');
                s.push(char::from(hex[usize::from(byte >> 4)]));
                s.push('.');
            }
            s.push_str("ip6.arpa");
            s
        }
    }
}

fn norm(name: &str) -> String {
    name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase()
}

impl<'a> Run<'a> {
    fn lookup(&mut self, name: &str, qtype: QueryType) -> Result<&'a Answer, Stop> {
        let q = Query {
            name: name.strip_suffix('.').unwrap_or(name).to_string(),
            qtype,
        };
        match self.answers.get(&q.key()) {
            Some(a) => Ok(a),
            None => {
                self.missing.push(q);
                Err(Stop::Missing)
            }
        }
    }

    /// Looks up every name; asks for all the open ones at once.
    fn lookup_all(&mut self, names: &[String], qtype: QueryType) -> Result<Vec<&'a Answer>, Stop> {
        let mut out = Vec::with_capacity(names.len());
        let mut missing = false;
        for name in names {
            match self.lookup(name, qtype) {
                Ok(a) => out.push(a),
                Err(_) => missing = true,
            }
        }
        if missing { Err(Stop::Missing) } else { Ok(out) }
    }

    fn count_term(&mut self, term: &dyn fmt::Display) -> Result<(), Stop> {
        self.dns_terms += 1;
        if self.dns_terms > MAX_DNS_TERMS {
            return Err(perm(format!(
                "more than {MAX_DNS_TERMS} DNS-querying terms (at \"{term}\")"
            )));
        }
        Ok(())
    }

    fn count_void(&mut self, answer: &Answer, term: &dyn fmt::Display) -> Result<(), Stop> {
        if answer.is_void() {
            self.void_lookups += 1;
            if self.void_lookups > MAX_VOID_LOOKUPS {
                return Err(perm(format!(
                    "more than {MAX_VOID_LOOKUPS} void DNS lookups (at \"{term}\")"
                )));
            }
        }
        Ok(())
    }

    fn values<'v>(&'v self, domain: &'v str, p: Option<&'v str>) -> MacroValues<'v> {
        MacroValues {
            local_part: self.local,
            sender_domain: self.sender_domain,
            domain,
            ip: self.request.ip,
            helo: &self.request.helo,
            validated_name: p,
            receiver: &self.request.receiver,
            timestamp: self.request.timestamp,
        }
    }

    /// Expands a macro string, resolving `%{p}` first when it is used.
    fn expand(&mut self, m: &MacroString, domain: &str, as_domain: bool) -> Result<String, Stop> {
        let p = if m.uses_validated_name() {
            self.validated_name(domain)?
        } else {
            None
        };
        let values = self.values(domain, p.as_deref());
        Ok(if as_domain {
            m.expand_domain(&values)
        } else {
            m.expand(&values)
        })
    }

    /// The client's names that resolve back to its address (RFC 7208 5.5),
    /// at most [`MAX_NAMES_PER_LOOKUP`] of them looked at. DNS errors make a
    /// name, or the whole lookup, count as not found.
    fn validated_names(&mut self) -> Result<Vec<String>, Stop> {
        let ip = self.request.ip;
        let names = match self.lookup(&reverse_name(ip), QueryType::Ptr)? {
            Answer::Ptr(names) => names,
            _ => return Ok(Vec::new()),
        };
        let names: Vec<String> = names.iter().take(MAX_NAMES_PER_LOOKUP).cloned().collect();
        let qtype = match ip {
            IpAddr::V4(_) => QueryType::A,
            IpAddr::V6(_) => QueryType::Aaaa,
        };
        let answers = self.lookup_all(&names, qtype)?;
        let mut valid = Vec::new();
        for (name, answer) in names.iter().zip(answers) {
            let ok = match (answer, ip) {
                (Answer::A(addrs), IpAddr::V4(v4)) => addrs.contains(&v4),
                (Answer::Aaaa(addrs), IpAddr::V6(v6)) => addrs.contains(&v6),
                _ => false,
            };
            if ok {
                valid.push(name.strip_suffix('.').unwrap_or(name).to_string());
            }
        }
        Ok(valid)
    }

    /// `%{p}`: a validated name, preferring the domain itself, then its
    /// subdomains, then any.
    fn validated_name(&mut self, domain: &str) -> Result<Option<String>, Stop> {
        let names = self.validated_names()?;
        let d = norm(domain);
        let suffix = format!(".{d}");
        let pick = names
            .iter()
            .find(|n| norm(n) == d)
            .or_else(|| names.iter().find(|n| norm(n).ends_with(&suffix)))
            .or_else(|| names.first());
        Ok(pick.cloned())
    }

    fn address_matches(&self, answer: &Answer, cidr: DualCidr) -> bool {
        match (answer, self.request.ip) {
            (Answer::A(addrs), IpAddr::V4(ip)) => addrs
                .iter()
                .any(|a| in_prefix4(ip, *a, cidr.v4.unwrap_or(32))),
            (Answer::Aaaa(addrs), IpAddr::V6(ip)) => addrs
                .iter()
                .any(|a| in_prefix6(ip, *a, cidr.v6.unwrap_or(128))),
            _ => false,
        }
    }

    fn address_type(&self) -> QueryType {
        match self.request.ip {
            IpAddr::V4(_) => QueryType::A,
            IpAddr::V6(_) => QueryType::Aaaa,
        }
    }

    /// Fetches and parses the SPF record of `domain`: `Ok(None)` when there
    /// is none.
    fn record(&mut self, domain: &str) -> Result<Option<Arc<SpfRecord>>, Stop> {
        let key = norm(domain);
        let cached = match self.records.get(&key) {
            Some(c) => c.clone(),
            None => {
                let c = self.fetch_record(domain)?;
                self.records.insert(key, c.clone());
                c
            }
        };
        match cached {
            Cached::Record(r) => Ok(Some(r)),
            Cached::NoRecord => Ok(None),
            Cached::Temp(p) => Err(temp(p)),
            Cached::Perm(p) => Err(perm(p)),
        }
    }

    fn fetch_record(&mut self, domain: &str) -> Result<Cached, Stop> {
        let records = match self.lookup(domain, QueryType::Txt)? {
            Answer::Txt(records) => records,
            Answer::TempError(_) => {
                return Ok(Cached::Temp(format!("DNS error looking up {domain} TXT")));
            }
            Answer::NoRecords | Answer::NxDomain => return Ok(Cached::NoRecord),
            _ => return Ok(Cached::Temp(format!("wrong answer type for {domain} TXT"))),
        };
        let mut spf = records.iter().filter(|r| is_spf_record(r));
        let Some(first) = spf.next() else {
            return Ok(Cached::NoRecord);
        };
        if spf.next().is_some() {
            return Ok(Cached::Perm(format!(
                "{domain} has more than one v=spf1 record"
            )));
        }
        let text = String::from_utf8_lossy(first);
        Ok(match SpfRecord::parse(&text) {
            Ok(r) => Cached::Record(Arc::new(r)),
            Err(e) => Cached::Perm(format!("{domain}: {e}")),
        })
    }

    fn check_host(&mut self, domain: &str, want_exp: bool) -> Result<Verdict, Stop> {
        if !checkable_domain(domain) {
            return Ok(Verdict::problem(
                SpfResult::None,
                format!("{domain:?} is not a domain that can be checked"),
            ));
        }
        let Some(record) = self.record(domain)? else {
            return Ok(Verdict::problem(
                SpfResult::None,
                format!("no SPF record at {domain}"),
            ));
        };
        for term in record.terms() {
            let Term::Directive(directive) = term else {
                continue;
            };
            // The directive's text is only formatted when it is reported.
            if self.matches(&directive.mechanism, domain, directive)? {
                let text = directive.to_string();
                let result = SpfResult::from(directive.qualifier);
                let explanation = if result == SpfResult::Fail && want_exp {
                    self.explanation(&record, domain)?
                } else {
                    None
                };
                return Ok(Verdict {
                    result,
                    mechanism: Some(text),
                    problem: None,
                    explanation,
                });
            }
        }
        if let Some(target) = record.redirect() {
            let text = Modifier::Redirect(target.clone()).to_string();
            self.count_term(&text)?;
            let target = self.expand(target, domain, true)?;
            let verdict = self.check_host(&target, want_exp)?;
            if verdict.result == SpfResult::None {
                return Err(perm(format!("{text}: no SPF record at {target}")));
            }
            return Ok(verdict);
        }
        Ok(Verdict::new(SpfResult::Neutral))
    }

    fn matches(
        &mut self,
        mechanism: &Mechanism,
        domain: &str,
        text: &Directive,
    ) -> Result<bool, Stop> {
        let ip = self.request.ip;
        match mechanism {
            Mechanism::All => Ok(true),
            Mechanism::Ip4 { addr, prefix } => Ok(match ip {
                IpAddr::V4(v4) => in_prefix4(v4, *addr, prefix.unwrap_or(32)),
                IpAddr::V6(_) => false,
            }),
            Mechanism::Ip6 { addr, prefix } => Ok(match ip {
                IpAddr::V6(v6) => in_prefix6(v6, *addr, prefix.unwrap_or(128)),
                // An IPv4-mapped network (::ffff:a.b.c.d/96+) names IPv4
                // clients: compare the client as its mapped form.
                IpAddr::V4(v4) => {
                    let len = prefix.unwrap_or(128);
                    addr.to_ipv4_mapped().is_some()
                        && len >= 96
                        && in_prefix6(v4.to_ipv6_mapped(), *addr, len)
                }
            }),
            Mechanism::Include(spec) => {
                self.count_term(text)?;
                let target = self.expand(spec, domain, true)?;
                let verdict = self.check_host(&target, false)?;
                match verdict.result {
                    SpfResult::Pass => Ok(true),
                    SpfResult::Fail | SpfResult::SoftFail | SpfResult::Neutral => Ok(false),
                    SpfResult::None => Err(perm(format!("{text}: no SPF record at {target}"))),
                    SpfResult::TempError | SpfResult::PermError => Err(Stop::Final(verdict)),
                }
            }
            Mechanism::A { domain: spec, cidr } => {
                self.count_term(text)?;
                let target = match spec {
                    Some(spec) => self.expand(spec, domain, true)?,
                    None => domain.to_owned(),
                };
                if !queryable(&target) {
                    return Ok(false);
                }
                let answer = self.lookup(&target, self.address_type())?;
                if matches!(answer, Answer::TempError(_)) {
                    return Err(temp(format!("{text}: DNS error looking up {target}")));
                }
                self.count_void(answer, text)?;
                Ok(self.address_matches(answer, *cidr))
            }
            Mechanism::Mx { domain: spec, cidr } => {
                self.count_term(text)?;
                let target = match spec {
                    Some(spec) => self.expand(spec, domain, true)?,
                    None => domain.to_owned(),
                };
                if !queryable(&target) {
                    return Ok(false);
                }
                let answer = self.lookup(&target, QueryType::Mx)?;
                let hosts = match answer {
                    Answer::TempError(_) => {
                        return Err(temp(format!("{text}: DNS error looking up {target} MX")));
                    }
                    Answer::Mx(hosts) => hosts,
                    other => {
                        self.count_void(other, text)?;
                        return Ok(false);
                    }
                };
                self.count_void(answer, text)?;
                // At most 10 exchanges are looked up and checked; more than
                // 10 is a permerror unless one of the first 10 matched.
                let checked = hosts.get(..MAX_NAMES_PER_LOOKUP).unwrap_or(hosts);
                let answers = self.lookup_all(checked, self.address_type())?;
                for (host, answer) in checked.iter().zip(&answers) {
                    if matches!(**answer, Answer::TempError(_)) {
                        return Err(temp(format!("{text}: DNS error looking up {host}")));
                    }
                    if self.address_matches(answer, *cidr) {
                        return Ok(true);
                    }
                }
                if hosts.len() > MAX_NAMES_PER_LOOKUP {
                    return Err(perm(format!(
                        "{text}: {target} has more than {MAX_NAMES_PER_LOOKUP} MX records"
                    )));
                }
                Ok(false)
            }
            Mechanism::Ptr(spec) => {
                self.count_term(text)?;
                let target = match spec {
                    Some(spec) => self.expand(spec, domain, true)?,
                    None => domain.to_owned(),
                };
                let ptr = self.lookup(&reverse_name(ip), QueryType::Ptr)?;
                self.count_void(ptr, text)?;
                let target = norm(&target);
                let suffix = format!(".{target}");
                Ok(self.validated_names()?.iter().any(|n| {
                    let n = norm(n);
                    n == target || n.ends_with(&suffix)
                }))
            }
            Mechanism::Exists(spec) => {
                self.count_term(text)?;
                let target = self.expand(spec, domain, true)?;
                if !queryable(&target) {
                    return Ok(false);
                }
                let answer = self.lookup(&target, QueryType::A)?;
                match answer {
                    Answer::TempError(_) => {
                        Err(temp(format!("{text}: DNS error looking up {target}")))
                    }
                    Answer::A(addrs) if !addrs.is_empty() => Ok(true),
                    other => {
                        self.count_void(other, text)?;
                        Ok(false)
                    }
                }
            }
        }
    }

    /// The explanation of a `fail` (RFC 7208 section 6.2); any problem with
    /// it means no explanation, never an error.
    fn explanation(&mut self, record: &SpfRecord, domain: &str) -> Result<Option<String>, Stop> {
        let Some(spec) = record.exp() else {
            return Ok(None);
        };
        let target = self.expand(spec, domain, true)?;
        if !checkable_domain(&target) {
            return Ok(None);
        }
        let records = match self.lookup(&target, QueryType::Txt)? {
            Answer::Txt(records) => records,
            _ => return Ok(None),
        };
        let [text] = records.as_slice() else {
            return Ok(None);
        };
        let Ok(text) = core::str::from_utf8(text) else {
            return Ok(None);
        };
        let Ok(m) = MacroString::parse(text, MacroContext::Explanation) else {
            return Ok(None);
        };
        Ok(Some(self.expand(&m, domain, false)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn evaluator_can_cross_threads() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<Evaluator>();
    }

    fn zone(q: &Query) -> Answer {
        match (q.name.as_str(), q.qtype) {
            ("example.org", QueryType::Txt) => Answer::Txt(vec![
                b"v=spf1 mx include:_spf.example.net -all exp=why.example.org".to_vec(),
                b"google-site-verification=xyz".to_vec(),
            ]),
            ("why.example.org", QueryType::Txt) => {
                Answer::Txt(vec![b"%{i} is not one of %{d}'s hosts".to_vec()])
            }
            ("example.org", QueryType::Mx) => {
                Answer::Mx(vec!["mx1.example.org".into(), "mx2.example.org".into()])
            }
            ("mx1.example.org", QueryType::A) => Answer::A(vec![Ipv4Addr::new(192, 0, 2, 10)]),
            ("mx2.example.org", QueryType::A) => Answer::A(vec![Ipv4Addr::new(192, 0, 2, 11)]),
            ("_spf.example.net", QueryType::Txt) => Answer::Txt(vec![
                b"v=spf1 ip4:198.51.100.0/24 ip6:2001:db8::/32 ~all".to_vec(),
            ]),
            ("timeout.example.org", _) => Answer::TempError("timeout".into()),
            _ => Answer::NxDomain,
        }
    }

    fn check(ip: &str, from: &str) -> SpfOutput {
        Evaluator::run(
            Request::mail_from(ip.parse().unwrap(), from, "helo.example.org"),
            zone,
        )
    }

    #[test]
    fn mx_include_and_fail_with_explanation() {
        let out = check("192.0.2.11", "a@example.org");
        assert_eq!(out.result, SpfResult::Pass);
        assert_eq!(out.mechanism.as_deref(), Some("mx"));
        let out = check("198.51.100.7", "a@example.org");
        assert_eq!(out.result, SpfResult::Pass);
        assert_eq!(out.mechanism.as_deref(), Some("include:_spf.example.net"));
        let out = check("::ffff:203.0.113.9", "a@example.org");
        assert_eq!(out.result, SpfResult::Fail);
        assert_eq!(
            out.explanation.as_deref(),
            Some("203.0.113.9 is not one of example.org's hosts")
        );
    }

    #[test]
    fn mx_addresses_are_asked_together() {
        let mut ev = Evaluator::new(Request::mail_from(
            "192.0.2.11".parse().unwrap(),
            "a@example.org",
            "h.example.org",
        ));
        let mut asked = Vec::new();
        loop {
            match ev.poll() {
                Step::Query(q) => asked.push(q),
                Step::Wait => {
                    for q in asked.drain(..) {
                        ev.answer(&q, zone(&q));
                    }
                }
                Step::Done(out) => {
                    assert_eq!(out.result, SpfResult::Pass);
                    break;
                }
            }
        }
        // TXT, then MX, then both A queries in one round, then the end.
        assert_eq!(ev.replays(), 4);
    }

    #[test]
    fn timeouts_and_missing_records() {
        assert_eq!(
            check("192.0.2.1", "a@timeout.example.org").result,
            SpfResult::TempError
        );
        assert_eq!(
            check("192.0.2.1", "a@nowhere.example.org").result,
            SpfResult::None
        );
        assert_eq!(check("192.0.2.1", "a@localhost").result, SpfResult::None);
    }

    #[test]
    fn prefixes() {
        assert!(in_prefix4(
            Ipv4Addr::new(10, 1, 2, 3),
            Ipv4Addr::new(10, 0, 0, 0),
            8
        ));
        assert!(!in_prefix4(
            Ipv4Addr::new(11, 1, 2, 3),
            Ipv4Addr::new(10, 0, 0, 0),
            8
        ));
        assert!(in_prefix4(
            Ipv4Addr::new(11, 1, 2, 3),
            Ipv4Addr::new(10, 0, 0, 0),
            0
        ));
        assert!(in_prefix6(
            "2001:db8::1".parse().unwrap(),
            "2001:db8::".parse().unwrap(),
            32
        ));
        assert_eq!(
            reverse_name("192.0.2.3".parse().unwrap()),
            "3.2.0.192.in-addr.arpa"
        );
        assert!(reverse_name("2001:db8::1".parse().unwrap()).starts_with("1.0.0.0."));
    }
}
