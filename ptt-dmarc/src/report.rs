//! DMARC aggregate reports (RFC 7489 7.2 and appendix C).
//!
//! * [`ReportBuilder`] collects a day's evaluated messages for one policy
//!   domain and groups identical rows into counts; [`Feedback::to_xml`]
//!   writes the report in the RFC 7489 schema (every element the schema
//!   requires is written, IPv6 addresses uncompressed as its pattern wants).
//! * [`Feedback::parse_xml`] (feature `std`) reads reports from other
//!   receivers: RFC 7489 ones, DMARCbis ones (`urn:ietf:params:xml:ns:dmarc-2.0`
//!   namespace, `np`, `discovery_method`, `generator`, extensions), and the
//!   common deviations (missing `version`, legacy `unknown`/`error` SPF
//!   results); unknown elements are skipped.
//! * [`from_message`] (feature `std`) finds the report in an email: a
//!   `.xml`, `.xml.gz` or `.zip` attachment.

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt::Write as _;
use core::net::IpAddr;

use crate::eval::{AuthInput, DkimResult, DmarcResult, SpfResult, SpfScope, Verdict};
use crate::record::{Alignment, DmarcRecord, Policy};

/// `report_metadata`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReportMetadata {
    /// `org_name`: the reporting organization.
    pub org_name: String,
    /// `email`: its contact address.
    pub email: String,
    /// `extra_contact_info`.
    pub extra_contact_info: Option<String>,
    /// `report_id`: unique per report.
    pub report_id: String,
    /// `date_range/begin`, seconds since the epoch (UTC).
    pub begin: u64,
    /// `date_range/end`.
    pub end: u64,
    /// `error` elements.
    pub errors: Vec<String>,
    /// `generator` (DMARCbis).
    pub generator: Option<String>,
}

/// How the policy was discovered (DMARCbis `discovery_method`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DiscoveryMethod {
    /// `psl`: RFC 7489, via the Public Suffix List.
    Psl,
    /// `treewalk`: DMARCbis DNS tree walk.
    Treewalk,
}

/// `policy_published`: the record as the receiver saw it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PolicyPublished {
    /// `domain`: where the record was found.
    pub domain: String,
    /// `adkim`.
    pub adkim: Option<Alignment>,
    /// `aspf`.
    pub aspf: Option<Alignment>,
    /// `p`.
    pub p: Option<Policy>,
    /// `sp`.
    pub sp: Option<Policy>,
    /// `np` (DMARCbis).
    pub np: Option<Policy>,
    /// `pct` (RFC 7489).
    pub pct: Option<u8>,
    /// `fo`, as written.
    pub fo: Option<String>,
    /// `testing` (DMARCbis `t`).
    pub testing: Option<bool>,
    /// `discovery_method` (DMARCbis).
    pub discovery_method: Option<DiscoveryMethod>,
}

impl PolicyPublished {
    /// The published policy of `record` found at `_dmarc.<domain>`.
    pub fn from_record(domain: &str, record: &DmarcRecord) -> PolicyPublished {
        let fo = record.fo_text();
        PolicyPublished {
            domain: domain.to_string(),
            adkim: Some(record.adkim()),
            aspf: Some(record.aspf()),
            p: Some(record.policy()),
            sp: Some(record.subdomain_policy()),
            np: record.np,
            pct: Some(record.pct.unwrap_or(100)),
            fo,
            testing: record.t,
            discovery_method: None,
        }
    }
}

/// `disposition` in `policy_evaluated`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Disposition {
    /// `none`.
    None,
    /// `pass` (DMARCbis reports).
    Pass,
    /// `quarantine`.
    Quarantine,
    /// `reject`.
    Reject,
}

impl Disposition {
    fn as_str(self) -> &'static str {
        match self {
            Disposition::None => "none",
            Disposition::Pass => "pass",
            Disposition::Quarantine => "quarantine",
            Disposition::Reject => "reject",
        }
    }
}

impl From<Policy> for Disposition {
    fn from(p: Policy) -> Disposition {
        match p {
            Policy::None => Disposition::None,
            Policy::Quarantine => Disposition::Quarantine,
            Policy::Reject => Disposition::Reject,
        }
    }
}

/// `PolicyOverrideType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OverrideType {
    /// `forwarded`.
    Forwarded,
    /// `sampled_out`: exempted by `pct`.
    SampledOut,
    /// `trusted_forwarder`.
    TrustedForwarder,
    /// `mailing_list`.
    MailingList,
    /// `local_policy`.
    LocalPolicy,
    /// `other`.
    Other,
}

impl OverrideType {
    fn as_str(self) -> &'static str {
        match self {
            OverrideType::Forwarded => "forwarded",
            OverrideType::SampledOut => "sampled_out",
            OverrideType::TrustedForwarder => "trusted_forwarder",
            OverrideType::MailingList => "mailing_list",
            OverrideType::LocalPolicy => "local_policy",
            OverrideType::Other => "other",
        }
    }

    /// Parses a `type` value; an unknown one is `other`.
    pub fn parse(s: &str) -> OverrideType {
        match s.trim().to_ascii_lowercase().as_str() {
            "forwarded" => OverrideType::Forwarded,
            "sampled_out" => OverrideType::SampledOut,
            "trusted_forwarder" => OverrideType::TrustedForwarder,
            "mailing_list" => OverrideType::MailingList,
            "local_policy" => OverrideType::LocalPolicy,
            _ => OverrideType::Other,
        }
    }
}

/// `reason` in `policy_evaluated`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OverrideReason {
    /// `type`.
    pub kind: OverrideType,
    /// `comment`.
    pub comment: Option<String>,
}

/// `policy_evaluated`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PolicyEvaluated {
    /// The disposition applied.
    pub disposition: Disposition,
    /// Aligned DKIM pass.
    pub dkim_pass: bool,
    /// Aligned SPF pass.
    pub spf_pass: bool,
    /// Override reasons.
    pub reasons: Vec<OverrideReason>,
}

/// `identifiers`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Identifiers {
    /// `envelope_to`: the recipient domain.
    pub envelope_to: Option<String>,
    /// `envelope_from`: the RFC 5321.MailFrom domain (empty for a null
    /// sender).
    pub envelope_from: Option<String>,
    /// `header_from`: the RFC 5322.From domain.
    pub header_from: String,
}

/// A `dkim` element of `auth_results`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DkimAuthResult {
    /// `domain` (`d=`).
    pub domain: String,
    /// `selector` (`s=`).
    pub selector: Option<String>,
    /// `result`.
    pub result: DkimResult,
    /// `human_result`.
    pub human_result: Option<String>,
}

/// An `spf` element of `auth_results`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SpfAuthResult {
    /// `domain`.
    pub domain: String,
    /// `scope`.
    pub scope: Option<SpfScope>,
    /// `result`.
    pub result: SpfResult,
    /// `human_result` (DMARCbis).
    pub human_result: Option<String>,
}

/// An `extension` element (kept by name and definition only).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Extension {
    /// `name` attribute.
    pub name: String,
    /// `definition` attribute.
    pub definition: String,
}

/// One `record`: a group of messages with the same source IP, identifiers
/// and results.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Record {
    /// `row/source_ip`.
    pub source_ip: IpAddr,
    /// `row/count`.
    pub count: u64,
    /// `row/policy_evaluated`.
    pub policy_evaluated: PolicyEvaluated,
    /// `identifiers`.
    pub identifiers: Identifiers,
    /// `auth_results/dkim`.
    pub dkim: Vec<DkimAuthResult>,
    /// `auth_results/spf`.
    pub spf: Vec<SpfAuthResult>,
    /// `extensions`.
    pub extensions: Vec<Extension>,
}

/// A whole aggregate report (`feedback`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Feedback {
    /// `version`, as written (`1.0`; absent in many reports).
    pub version: Option<String>,
    /// `report_metadata`.
    pub metadata: ReportMetadata,
    /// `policy_published`.
    pub policy: PolicyPublished,
    /// `record`s.
    pub records: Vec<Record>,
    /// Report-level `extensions`.
    pub extensions: Vec<Extension>,
}

/// One evaluated message, as the receiver logs it for the day's report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportEntry {
    /// The connecting IP.
    pub source_ip: IpAddr,
    /// The RFC 5321.MailFrom domain (empty for a null sender).
    pub envelope_from: String,
    /// The recipient domain, if the report should say it.
    pub envelope_to: Option<String>,
    /// The SPF and DKIM results DMARC was given.
    pub auth: AuthInput,
    /// DMARC's verdict.
    pub verdict: Verdict,
    /// Why a local policy overrode the disposition, if it did.
    pub overrides: Vec<OverrideReason>,
}

/// Collects a day's messages for one policy domain into a [`Feedback`].
#[derive(Debug, Clone)]
pub struct ReportBuilder {
    feedback: Feedback,
}

impl ReportBuilder {
    /// A report for `policy` with this metadata (begin/end are the day's
    /// bounds, given by the caller).
    pub fn new(metadata: ReportMetadata, policy: PolicyPublished) -> ReportBuilder {
        ReportBuilder {
            feedback: Feedback {
                version: Some("1.0".to_string()),
                metadata,
                policy,
                records: Vec::new(),
                extensions: Vec::new(),
            },
        }
    }

    /// Adds one message; a message identical in every reported field to an
    /// earlier one increments its count.
    pub fn add(&mut self, entry: &ReportEntry) {
        let v = &entry.verdict;
        let mut reasons = entry.overrides.clone();
        if v.sampled_out {
            reasons.push(OverrideReason {
                kind: OverrideType::SampledOut,
                comment: None,
            });
        }
        let policy_evaluated = PolicyEvaluated {
            disposition: v.disposition.into(),
            dkim_pass: v.result == DmarcResult::Pass && v.dkim_aligned.is_some(),
            spf_pass: v.result == DmarcResult::Pass && v.spf_aligned,
            reasons,
        };
        let identifiers = Identifiers {
            envelope_to: entry.envelope_to.clone(),
            envelope_from: Some(entry.envelope_from.clone()),
            header_from: v.from_domain.clone(),
        };
        let dkim: Vec<DkimAuthResult> = entry
            .auth
            .dkim
            .iter()
            .map(|d| DkimAuthResult {
                domain: d.domain.clone(),
                selector: d.selector.clone(),
                result: d.result,
                human_result: None,
            })
            .collect();
        let spf = match &entry.auth.spf {
            Some(s) => SpfAuthResult {
                domain: s.domain.clone(),
                scope: Some(s.scope),
                result: s.result,
                human_result: None,
            },
            // The schema wants at least one SPF result.
            None => SpfAuthResult {
                domain: entry.envelope_from.clone(),
                scope: Some(SpfScope::MailFrom),
                result: SpfResult::None,
                human_result: None,
            },
        };
        let record = Record {
            source_ip: entry.source_ip,
            count: 1,
            policy_evaluated,
            identifiers,
            dkim,
            spf: alloc::vec![spf],
            extensions: Vec::new(),
        };
        match self.feedback.records.iter_mut().find(|r| {
            r.source_ip == record.source_ip
                && r.policy_evaluated == record.policy_evaluated
                && r.identifiers == record.identifiers
                && r.dkim == record.dkim
                && r.spf == record.spf
        }) {
            Some(r) => r.count = r.count.saturating_add(1),
            None => self.feedback.records.push(record),
        }
    }

    /// The number of distinct records so far.
    pub fn len(&self) -> usize {
        self.feedback.records.len()
    }

    /// True when no message was added.
    pub fn is_empty(&self) -> bool {
        self.feedback.records.is_empty()
    }

    /// The report.
    pub fn build(self) -> Feedback {
        self.feedback
    }
}

fn escape(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // XML 1.0 cannot carry most controls at all: drop them.
            c if c.is_control() && !matches!(c, '\t' | '\n' | '\r') => {}
            c => out.push(c),
        }
    }
}

struct Xml {
    out: String,
    depth: usize,
}

impl Xml {
    fn open(&mut self, name: &str) {
        self.indent();
        let _ = writeln!(self.out, "<{name}>");
        self.depth += 1;
    }
    fn close(&mut self, name: &str) {
        self.depth -= 1;
        self.indent();
        let _ = writeln!(self.out, "</{name}>");
    }
    fn leaf(&mut self, name: &str, value: &str) {
        self.indent();
        let _ = write!(self.out, "<{name}>");
        escape(&mut self.out, value);
        let _ = writeln!(self.out, "</{name}>");
    }
    fn indent(&mut self) {
        for _ in 0..self.depth {
            self.out.push_str("  ");
        }
    }
}

/// An IP address as the RFC 7489 schema's `IPAddress` pattern accepts it:
/// dotted quad, or eight uncompressed IPv6 groups.
fn schema_ip(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let mut s = String::new();
            for (i, seg) in v6.segments().iter().enumerate() {
                if i > 0 {
                    s.push(':');
                }
                let _ = write!(s, "{seg:x}");
            }
            s
        }
    }
}

impl Feedback {
    /// The report as RFC 7489 appendix C XML (UTF-8). DMARCbis-only fields
    /// (`np`, `testing`, `discovery_method`, `generator`, extensions,
    /// `human_result` for SPF) are not written since that schema has no
    /// place for them; `sp`, `pct` and `fo`, which it requires, get their
    /// defaults when unknown.
    pub fn to_xml(&self) -> String {
        let mut x = Xml {
            out: String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"),
            depth: 0,
        };
        x.open("feedback");
        x.leaf("version", self.version.as_deref().unwrap_or("1.0"));
        let m = &self.metadata;
        x.open("report_metadata");
        x.leaf("org_name", &m.org_name);
        x.leaf("email", &m.email);
        if let Some(e) = &m.extra_contact_info {
            x.leaf("extra_contact_info", e);
        }
        x.leaf("report_id", &m.report_id);
        x.open("date_range");
        x.leaf("begin", &m.begin.to_string());
        x.leaf("end", &m.end.to_string());
        x.close("date_range");
        for e in &m.errors {
            x.leaf("error", e);
        }
        x.close("report_metadata");
        let p = &self.policy;
        x.open("policy_published");
        x.leaf("domain", &p.domain);
        if let Some(a) = p.adkim {
            x.leaf("adkim", a.as_str());
        }
        if let Some(a) = p.aspf {
            x.leaf("aspf", a.as_str());
        }
        let policy = p.p.unwrap_or(Policy::None);
        x.leaf("p", policy.as_str());
        x.leaf("sp", p.sp.unwrap_or(policy).as_str());
        x.leaf("pct", &p.pct.unwrap_or(100).to_string());
        x.leaf("fo", p.fo.as_deref().unwrap_or("0"));
        x.close("policy_published");
        for r in &self.records {
            x.open("record");
            x.open("row");
            x.leaf("source_ip", &schema_ip(r.source_ip));
            x.leaf("count", &r.count.to_string());
            let e = &r.policy_evaluated;
            x.open("policy_evaluated");
            // RFC 7489 has no "pass" disposition: nothing was applied.
            let disposition = match e.disposition {
                Disposition::Pass => Disposition::None,
                d => d,
            };
            x.leaf("disposition", disposition.as_str());
            x.leaf("dkim", if e.dkim_pass { "pass" } else { "fail" });
            x.leaf("spf", if e.spf_pass { "pass" } else { "fail" });
            for reason in &e.reasons {
                x.open("reason");
                x.leaf("type", reason.kind.as_str());
                if let Some(c) = &reason.comment {
                    x.leaf("comment", c);
                }
                x.close("reason");
            }
            x.close("policy_evaluated");
            x.close("row");
            let id = &r.identifiers;
            x.open("identifiers");
            if let Some(to) = &id.envelope_to {
                x.leaf("envelope_to", to);
            }
            x.leaf("envelope_from", id.envelope_from.as_deref().unwrap_or(""));
            x.leaf("header_from", &id.header_from);
            x.close("identifiers");
            x.open("auth_results");
            for d in &r.dkim {
                x.open("dkim");
                x.leaf("domain", &d.domain);
                if let Some(s) = &d.selector {
                    x.leaf("selector", s);
                }
                x.leaf("result", d.result.as_str());
                if let Some(h) = &d.human_result {
                    x.leaf("human_result", h);
                }
                x.close("dkim");
            }
            let none = [SpfAuthResult {
                domain: id.envelope_from.clone().unwrap_or_default(),
                scope: Some(SpfScope::MailFrom),
                result: SpfResult::None,
                human_result: None,
            }];
            let spf = if r.spf.is_empty() {
                &none[..]
            } else {
                &r.spf[..]
            };
            for s in spf {
                x.open("spf");
                x.leaf("domain", &s.domain);
                x.leaf("scope", s.scope.unwrap_or(SpfScope::MailFrom).as_str());
                x.leaf("result", s.result.as_str());
                x.close("spf");
            }
            x.close("auth_results");
            x.close("record");
        }
        x.close("feedback");
        x.out
    }
}

impl Feedback {
    /// The attachment name of RFC 7489 7.2.1.1:
    /// `receiver!policy-domain!begin!end.xml.gz`.
    pub fn file_name(&self, receiver: &str) -> String {
        alloc::format!(
            "{receiver}!{}!{}!{}.xml.gz",
            self.policy.domain,
            self.metadata.begin,
            self.metadata.end
        )
    }

    /// The Subject of the report email (RFC 7489 7.2.1.1).
    pub fn subject(&self, receiver: &str) -> String {
        alloc::format!(
            "Report Domain: {} Submitter: {receiver} Report-ID: <{}>",
            self.policy.domain,
            self.metadata.report_id
        )
    }

    /// The XML of [`to_xml`](Self::to_xml), gzip-compressed (RFC 1952) for
    /// the attachment.
    #[cfg(feature = "std")]
    pub fn to_gzip(&self) -> Vec<u8> {
        let xml = self.to_xml();
        let data = xml.as_bytes();
        let mut out = alloc::vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
        out.extend(miniz_oxide::deflate::compress_to_vec(data, 6));
        out.extend(crc32(data).to_le_bytes());
        out.extend((data.len() as u32).to_le_bytes());
        out
    }
}

/// CRC-32 (IEEE 802.3, reflected), as gzip wants it.
#[cfg(feature = "std")]
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0xedb8_8320 & (crc & 1).wrapping_neg());
        }
    }
    !crc
}

/// Why a report could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReportError {
    /// Not well-formed XML.
    #[error("XML error at byte {at}: {message}")]
    Xml {
        /// Byte offset.
        at: u64,
        /// The parser's message.
        message: String,
    },
    /// The root element is not `feedback`.
    #[error("the root element is {found:?}, not \"feedback\"")]
    NotFeedback {
        /// The root found.
        found: String,
    },
    /// A required element is missing.
    #[error("missing element {element}")]
    Missing {
        /// Its path.
        element: &'static str,
    },
    /// An element with a value outside its type.
    #[error("element {element} has an invalid value {value:?}")]
    InvalidValue {
        /// Its path.
        element: &'static str,
        /// The offending text.
        value: String,
    },
    /// The message has no report attachment (or it cannot be unpacked).
    #[error("no report in the message: {reason}")]
    NoReport {
        /// What was wrong.
        reason: String,
    },
}

#[cfg(feature = "std")]
mod read;

#[cfg(feature = "std")]
pub use read::from_message;
