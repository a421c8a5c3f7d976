//! SMTP MTA Strict Transport Security (RFC 8461): whether mail for a domain
//! must go over TLS to an authenticated MX, without any I/O.
//!
//! The caller does the lookups: the `_mta-sts.<domain>` TXT records (read
//! with [`pick_record`]), and, when [`refresh_needed`] says so, the policy
//! at `https://mta-sts.<domain>/.well-known/mta-sts.txt` (no redirects, a
//! valid certificate, at most [`MAX_POLICY_SIZE`] bytes, read with
//! [`Policy::parse`]). It keeps the result as a [`CachedPolicy`] (serde), and
//! asks [`check_host`] what each MX host requires.
//!
//! ```
//! use ptt_queue::mta_sts::{check_host, pick_record, refresh_needed, CachedPolicy, Policy, Verdict};
//! let now = 1_700_000_000;
//! let txt = ["v=spf1 -all", "v=STSv1; id=20160831085700Z;"];
//! let record = pick_record(&txt).unwrap().expect("the domain has MTA-STS");
//! let mut cache: Option<CachedPolicy> = None;
//! if refresh_needed(cache.as_ref(), Some(&record), now) {
//!     // … fetch the policy over HTTPS, then:
//!     let body = "version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\n\
//!                 mx: *.example.net\r\nmax_age: 604800\r\n";
//!     cache = Some(CachedPolicy::new(&record, Policy::parse(body).unwrap(), now));
//! }
//! let later = now + 3600;
//! assert!(!refresh_needed(cache.as_ref(), Some(&record), later));
//! let policy = cache.as_ref().and_then(|c| c.fresh_policy(later));
//! assert_eq!(check_host(policy, "MAIL.example.com."), Verdict::RequireVerifiedTls);
//! assert_eq!(check_host(policy, "backup.example.net"), Verdict::RequireVerifiedTls);
//! assert_eq!(check_host(policy, "a.b.example.net"), Verdict::HostNotListed);
//! assert_eq!(check_host(None, "mx.elsewhere.example"), Verdict::NoPolicy);
//! ```

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

use serde::{Deserialize, Serialize};

/// The largest policy body [`Policy::parse`] reads (64 KiB, RFC 8461 §3.3).
pub const MAX_POLICY_SIZE: usize = 64 * 1024;

/// The largest `max_age` a policy may have: 31557600 seconds, about a
/// year (RFC 8461 §3.2).
pub const MAX_MAX_AGE: u32 = 31_557_600;

const VERSION: &str = "STSv1";

/// Why a TXT record or a policy was not understood. For the sender, each
/// means the same (RFC 8461 §3.1, §3.3): no live policy; a cached one that
/// is still fresh applies, otherwise the domain is treated as not having
/// MTA-STS.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MtaStsError {
    /// The TXT record does not begin with `v=STSv1`.
    #[error("{0:?} is not an MTA-STS record (it must begin with v=STSv1)")]
    NotStsRecord(String),
    /// A field of the TXT record is not `name=value`.
    #[error("MTA-STS record {record:?} has a malformed field {field:?}")]
    BadRecordField {
        /// The record.
        record: String,
        /// The field.
        field: String,
    },
    /// The TXT record has no `id=`.
    #[error("MTA-STS record {0:?} has no id")]
    MissingId(String),
    /// The TXT record's `id=` is not 1 to 32 letters and digits.
    #[error("MTA-STS id {0:?} is not 1 to 32 letters and digits")]
    BadId(String),
    /// More than one TXT record begins with `v=STSv1`: the domain has no
    /// usable policy (RFC 8461 §3.1).
    #[error("{count} TXT records begin with v=STSv1, a domain must publish one: {0:?}", count = .0.len())]
    MultipleRecords(Vec<String>),
    /// The policy body is larger than [`MAX_POLICY_SIZE`].
    #[error("the MTA-STS policy is {0} bytes, more than {MAX_POLICY_SIZE}")]
    PolicyTooLarge(usize),
    /// A policy line that is not `key: value`.
    #[error("MTA-STS policy line {0:?} is not `key: value`")]
    BadLine(String),
    /// The policy's `version` is not `STSv1`.
    #[error("MTA-STS policy version {0:?} is not STSv1")]
    BadVersion(String),
    /// The policy's `mode` is not `enforce`, `testing` or `none`.
    #[error("MTA-STS policy mode {0:?} is not enforce, testing or none")]
    BadMode(String),
    /// The policy's `max_age` is not a number of seconds up to
    /// [`MAX_MAX_AGE`].
    #[error("MTA-STS policy max_age {0:?} is not a number of seconds from 0 to {MAX_MAX_AGE}")]
    BadMaxAge(String),
    /// A policy `mx` that is neither a host name nor `*.` and a host name.
    #[error("MTA-STS policy mx {0:?} is not a host name or *. and a host name")]
    BadMx(String),
    /// A required policy field is missing (`version`, `mode`, `max_age`,
    /// or `mx` unless the mode is `none`).
    #[error("the MTA-STS policy has no {0} field")]
    MissingField(&'static str),
}

/// The `_mta-sts.<domain>` TXT record (RFC 8461 §3.1): it says the domain
/// has a policy, and which one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StsRecord {
    /// The policy's id: when it changes, the policy has changed.
    pub id: String,
}

/// `v=STSv1` followed by the end, a space or a `;`: the records that count
/// when a domain has several TXT records.
fn is_sts_candidate(txt: &str) -> bool {
    match txt.strip_prefix("v=STSv1") {
        Some(rest) => matches!(rest.chars().next(), None | Some(';' | ' ' | '\t')),
        None => false,
    }
}

/// An extension field name (RFC 8461 §3.1 and §3.2): a letter or digit,
/// then up to 31 letters, digits, `_`, `-` or `.`.
fn is_field_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    match bytes.split_first() {
        Some((first, rest)) => {
            first.is_ascii_alphanumeric()
                && rest.len() <= 31
                && rest
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
        }
        None => false,
    }
}

impl StsRecord {
    /// Reads a TXT record (its strings already joined), e.g.
    /// `v=STSv1; id=20160831085700Z;`. `v=STSv1` must come first, `id` must
    /// be present, fields are `name=value` separated by `;` with optional
    /// blanks around it, and fields other than `id` are ignored. Names are
    /// case-sensitive; of a repeated `id` the first counts.
    pub fn parse(txt: &str) -> Result<StsRecord, MtaStsError> {
        let trimmed = txt.trim_matches([' ', '\t']);
        if !is_sts_candidate(trimmed) {
            return Err(MtaStsError::NotStsRecord(txt.to_string()));
        }
        let bad_field = |field: &str| MtaStsError::BadRecordField {
            record: txt.to_string(),
            field: field.to_string(),
        };
        let fields: Vec<&str> = trimmed.split(';').collect();
        let last = fields.len() - 1;
        let mut id: Option<&str> = None;
        for (i, field) in fields.iter().enumerate() {
            let field = field.trim_matches([' ', '\t']);
            if i == 0 {
                if field != "v=STSv1" {
                    return Err(bad_field(field));
                }
                continue;
            }
            if field.is_empty() && i == last {
                break; // the optional final `;`
            }
            let Some((name, value)) = field.split_once('=') else {
                return Err(bad_field(field));
            };
            let value_ok = !value.is_empty()
                && value
                    .bytes()
                    .all(|b| (0x21..=0x7e).contains(&b) && b != b'=' && b != b';');
            if !is_field_name(name) || !value_ok {
                return Err(bad_field(field));
            }
            if name == "id" && id.is_none() {
                if value.len() > 32 || !value.bytes().all(|b| b.is_ascii_alphanumeric()) {
                    return Err(MtaStsError::BadId(value.to_string()));
                }
                id = Some(value);
            }
        }
        match id {
            Some(id) => Ok(StsRecord { id: id.to_string() }),
            None => Err(MtaStsError::MissingId(txt.to_string())),
        }
    }
}

/// Picks the MTA-STS record among all the TXT records at
/// `_mta-sts.<domain>` (RFC 8461 §3.1): only those beginning with
/// `v=STSv1` count. None of them: `Ok(None)`, the domain has no MTA-STS.
/// More than one: [`MtaStsError::MultipleRecords`]. One: it is parsed.
pub fn pick_record(records: &[&str]) -> Result<Option<StsRecord>, MtaStsError> {
    let candidates: Vec<&str> = records
        .iter()
        .copied()
        .filter(|txt| is_sts_candidate(txt.trim_start_matches([' ', '\t'])))
        .collect();
    match candidates.as_slice() {
        [] => Ok(None),
        [one] => StsRecord::parse(one).map(Some),
        many => Err(MtaStsError::MultipleRecords(
            many.iter().map(|txt| txt.to_string()).collect(),
        )),
    }
}

/// What a policy asks of senders (RFC 8461 §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Deliver only to listed MX hosts, over TLS with a valid certificate.
    Enforce,
    /// Deliver anyway, but report failures (RFC 8460).
    Testing,
    /// As if the domain had no policy.
    None,
}

impl Mode {
    /// The policy-file spelling: `enforce`, `testing` or `none`.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::Testing => "testing",
            Mode::None => "none",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An MTA-STS policy (RFC 8461 §3.2), as served at
/// `https://mta-sts.<domain>/.well-known/mta-sts.txt`.
///
/// [`Display`](fmt::Display) writes it back in that format (CRLF lines),
/// for a relay that serves its own policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    /// What senders must do.
    pub mode: Mode,
    /// How long (seconds) a sender may keep it after fetching it.
    pub max_age: u32,
    /// The MX host patterns: host names, or `*.` and a host name (one more
    /// leftmost label), lower-case, without a final dot.
    pub mx: Vec<String>,
}

/// A host name (RFC 5321 `Domain`): LDH labels of 1 to 63 octets, not
/// beginning or ending with `-`, A-labels only.
fn is_host_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// An `mx` value: `["*."] Domain`, lower-cased; a final dot is tolerated
/// and dropped.
fn parse_mx(value: &str) -> Result<String, MtaStsError> {
    let pattern = value.strip_suffix('.').unwrap_or(value);
    let host = pattern.strip_prefix("*.").unwrap_or(pattern);
    if is_host_name(host) {
        Ok(pattern.to_ascii_lowercase())
    } else {
        Err(MtaStsError::BadMx(value.to_string()))
    }
}

/// An extension value: visible characters (UTF-8 allowed) and inner
/// spaces; no control characters.
fn is_extension_value(value: &str) -> bool {
    !value.is_empty() && !value.chars().any(|c| c.is_control())
}

/// Whether `host` matches one `mx` pattern (RFC 8461 §4.1).
fn mx_matches(pattern: &str, host: &str) -> bool {
    let pattern = pattern.strip_suffix('.').unwrap_or(pattern);
    match pattern.strip_prefix("*.") {
        Some(suffix) => match host.split_once('.') {
            Some((first, rest)) => {
                !first.is_empty() && !first.contains('*') && rest.eq_ignore_ascii_case(suffix)
            }
            None => false,
        },
        None => !pattern.is_empty() && host.eq_ignore_ascii_case(pattern),
    }
}

impl Policy {
    /// Reads a policy body: `key: value` lines ending in CRLF or LF, with
    /// `version: STSv1`, `mode`, `max_age` and, unless the mode is `none`,
    /// at least one `mx`. Keys and the known values are case-sensitive;
    /// blanks around values and blank lines are tolerated; unknown keys are
    /// ignored (their syntax is still checked); of a repeated field other
    /// than `mx` the first counts (RFC 8461 §3.2). Bodies over
    /// [`MAX_POLICY_SIZE`] bytes are refused.
    pub fn parse(text: &str) -> Result<Policy, MtaStsError> {
        if text.len() > MAX_POLICY_SIZE {
            return Err(MtaStsError::PolicyTooLarge(text.len()));
        }
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut version = false;
        let mut mode: Option<Mode> = None;
        let mut max_age: Option<u32> = None;
        let mut mx: Vec<String> = Vec::new();
        for line in text.split('\n') {
            let line = line.strip_suffix('\r').unwrap_or(line);
            let line = line.trim_matches([' ', '\t']);
            if line.is_empty() {
                continue;
            }
            let Some((key, value)) = line.split_once(':') else {
                return Err(MtaStsError::BadLine(line.to_string()));
            };
            let key = key.trim_end_matches([' ', '\t']);
            let value = value.trim_start_matches([' ', '\t']);
            match key {
                "version" if !version => {
                    if value != VERSION {
                        return Err(MtaStsError::BadVersion(value.to_string()));
                    }
                    version = true;
                }
                "mode" if mode.is_none() => {
                    mode = Some(match value {
                        "enforce" => Mode::Enforce,
                        "testing" => Mode::Testing,
                        "none" => Mode::None,
                        _ => return Err(MtaStsError::BadMode(value.to_string())),
                    });
                }
                "max_age" if max_age.is_none() => {
                    let seconds = (1..=10)
                        .contains(&value.len())
                        .then_some(value)
                        .filter(|v| v.bytes().all(|b| b.is_ascii_digit()))
                        .and_then(|v| v.parse::<u32>().ok())
                        .filter(|&s| s <= MAX_MAX_AGE)
                        .ok_or_else(|| MtaStsError::BadMaxAge(value.to_string()))?;
                    max_age = Some(seconds);
                }
                "mx" => mx.push(parse_mx(value)?),
                // A repeated version, mode or max_age: ignored.
                "version" | "mode" | "max_age" => {}
                _ => {
                    if !is_field_name(key) || !is_extension_value(value) {
                        return Err(MtaStsError::BadLine(line.to_string()));
                    }
                }
            }
        }
        if !version {
            return Err(MtaStsError::MissingField("version"));
        }
        let mode = mode.ok_or(MtaStsError::MissingField("mode"))?;
        let max_age = max_age.ok_or(MtaStsError::MissingField("max_age"))?;
        if mx.is_empty() && mode != Mode::None {
            return Err(MtaStsError::MissingField("mx"));
        }
        Ok(Policy { mode, max_age, mx })
    }

    /// Whether an MX host matches one of the policy's `mx` patterns (RFC
    /// 8461 §4.1): case-insensitive, a final dot ignored, and `*.` standing
    /// for exactly one leftmost label (`*.example.com` matches
    /// `mx.example.com`, neither `example.com` nor `a.b.example.com`).
    pub fn matches_mx(&self, host: &str) -> bool {
        let host = host.strip_suffix('.').unwrap_or(host);
        !host.is_empty() && self.mx.iter().any(|pattern| mx_matches(pattern, host))
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "version: {VERSION}\r\nmode: {}\r\n", self.mode)?;
        for mx in &self.mx {
            write!(f, "mx: {mx}\r\n")?;
        }
        write!(f, "max_age: {}\r\n", self.max_age)
    }
}

/// A policy as a sender keeps it between fetches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachedPolicy {
    /// The id of the TXT record that announced it.
    pub id: String,
    /// The policy.
    pub policy: Policy,
    /// When it was fetched (Unix seconds).
    pub fetched_at: u64,
}

impl CachedPolicy {
    /// A policy just fetched after `record` announced it.
    pub fn new(record: &StsRecord, policy: Policy, now: u64) -> CachedPolicy {
        CachedPolicy {
            id: record.id.clone(),
            policy,
            fetched_at: now,
        }
    }

    /// When it stops applying (Unix seconds): `fetched_at + max_age`, the
    /// age capped at [`MAX_MAX_AGE`] should a stored entry hold more.
    pub fn expires_at(&self) -> u64 {
        let max_age = self.policy.max_age.min(MAX_MAX_AGE);
        self.fetched_at.saturating_add(u64::from(max_age))
    }

    /// Whether it still applies at `now`: `fetched_at + max_age > now`.
    pub fn is_fresh(&self, now: u64) -> bool {
        self.expires_at() > now
    }

    /// The policy, if it still applies at `now`.
    pub fn fresh_policy(&self, now: u64) -> Option<&Policy> {
        self.is_fresh(now).then_some(&self.policy)
    }
}

/// Whether to fetch the policy again (RFC 8461 §3.3, §5.1), given what is
/// cached and the TXT record just looked up:
///
/// - a record and nothing cached, a cached policy of another id, or one
///   that has expired: yes;
/// - a record whose id is the cached one, still fresh: no;
/// - no record (none, several, unreadable, or the lookup failed): no.
///   Discovery starts with the TXT record; until then a fresh cached
///   policy still applies ([`CachedPolicy::fresh_policy`]) and an expired
///   one does not, so there is nothing to fetch.
///
/// After a failed fetch the caller should wait before trying again (RFC
/// 8461 §3.3 suggests five minutes or more per id).
pub fn refresh_needed(cached: Option<&CachedPolicy>, record: Option<&StsRecord>, now: u64) -> bool {
    match (cached, record) {
        (_, None) => false,
        (None, Some(_)) => true,
        (Some(cached), Some(record)) => cached.id != record.id || !cached.is_fresh(now),
    }
}

/// What a sender must do to deliver to one MX host (RFC 8461 §4, §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// No policy (or mode `none`): deliver as usual (opportunistic TLS).
    NoPolicy,
    /// Mode `enforce` and the host is listed: deliver only after STARTTLS,
    /// with a certificate that is valid (trusted, unexpired) for this MX
    /// host name; otherwise do not deliver to this host (try the next, and
    /// defer rather than bounce when none is left).
    RequireVerifiedTls,
    /// Mode `enforce` and the host is not listed: do not connect to it.
    /// When no MX is listed, defer (RFC 8461 §5.1: fetch the policy again
    /// before retrying).
    HostNotListed,
    /// Mode `testing`: check as for `enforce` (listing, STARTTLS,
    /// certificate) and report failures (RFC 8460), but deliver anyway.
    TestingOnly {
        /// Whether the host is listed in the policy.
        mx_matches: bool,
    },
}

/// What the policy (if one applies: fresh, from the cache) requires of
/// delivery to `mx_host`.
pub fn check_host(policy: Option<&Policy>, mx_host: &str) -> Verdict {
    let Some(policy) = policy else {
        return Verdict::NoPolicy;
    };
    match policy.mode {
        Mode::None => Verdict::NoPolicy,
        Mode::Testing => Verdict::TestingOnly {
            mx_matches: policy.matches_mx(mx_host),
        },
        Mode::Enforce if policy.matches_mx(mx_host) => Verdict::RequireVerifiedTls,
        Mode::Enforce => Verdict::HostNotListed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;
    use alloc::vec;
    use proptest::prelude::*;

    /// The policy example of RFC 8461 §3.2.
    const RFC_POLICY: &str = "version: STSv1\nmode: enforce\nmx: mail.example.com\n\
                              mx: *.example.net\nmx: backupmx.example.com\nmax_age: 604800\n";

    fn policy(mode: Mode, mx: &[&str]) -> Policy {
        Policy {
            mode,
            max_age: 86_400,
            mx: mx.iter().map(|m| m.to_string()).collect(),
        }
    }

    // --- TXT record -------------------------------------------------------

    #[test]
    fn record_rfc_example() {
        let r = StsRecord::parse("v=STSv1; id=20160831085700Z;").unwrap();
        assert_eq!(r.id, "20160831085700Z");
        assert_eq!(StsRecord::parse("v=STSv1; id=20160831085700Z").unwrap(), r);
    }

    #[test]
    fn record_whitespace_and_extensions() {
        for txt in [
            "v=STSv1;id=abc",
            "v=STSv1 ; id=abc ;",
            "v=STSv1;\tid=abc;\t",
            "  v=STSv1; id=abc  ",
            "v=STSv1; foo=bar; id=abc",
            "v=STSv1; id=abc; x-ext.1=some:value",
            "v=STSv1; id=abc; id=second",
            "v=STSv1; id=abc; v=STSv2",
        ] {
            assert_eq!(StsRecord::parse(txt).unwrap().id, "abc", "{txt}");
        }
        let long = "a".repeat(32);
        assert_eq!(
            StsRecord::parse(&format!("v=STSv1; id={long}")).unwrap().id,
            long
        );
    }

    #[test]
    fn record_errors() {
        let err = |txt: &str| StsRecord::parse(txt).unwrap_err();
        assert_eq!(
            err("id=abc; v=STSv1"),
            MtaStsError::NotStsRecord("id=abc; v=STSv1".into())
        );
        assert!(matches!(
            err("v=STSv2; id=abc"),
            MtaStsError::NotStsRecord(_)
        ));
        assert!(matches!(
            err("v=STSv10; id=abc"),
            MtaStsError::NotStsRecord(_)
        ));
        assert!(matches!(
            err("V=STSv1; id=abc"),
            MtaStsError::NotStsRecord(_)
        ));
        assert!(matches!(
            err("v=stsv1; id=abc"),
            MtaStsError::NotStsRecord(_)
        ));
        assert!(matches!(err(""), MtaStsError::NotStsRecord(_)));
        assert_eq!(err("v=STSv1;"), MtaStsError::MissingId("v=STSv1;".into()));
        assert!(matches!(err("v=STSv1"), MtaStsError::MissingId(_)));
        assert!(matches!(err("v=STSv1; foo=bar"), MtaStsError::MissingId(_)));
        assert!(matches!(err("v=STSv1; ID=abc"), MtaStsError::MissingId(_)));
        assert_eq!(
            err("v=STSv1; id=abc-def"),
            MtaStsError::BadId("abc-def".into())
        );
        assert!(matches!(
            err(&format!("v=STSv1; id={}", "a".repeat(33))),
            MtaStsError::BadId(_)
        ));
        assert!(matches!(
            err("v=STSv1; id=é"),
            MtaStsError::BadRecordField { .. }
        ));
        assert_eq!(
            err("v=STSv1 id=abc"),
            MtaStsError::BadRecordField {
                record: "v=STSv1 id=abc".into(),
                field: "v=STSv1 id=abc".into()
            }
        );
        for txt in [
            "v=STSv1; id=",
            "v=STSv1; id = abc",
            "v=STSv1; id=abc;; ",
            "v=STSv1;; id=abc",
            "v=STSv1; id=abc; junk",
            "v=STSv1; id=abc; =x",
            "v=STSv1; id=a=b",
            "v=STSv1; id=abc; x=a b",
        ] {
            assert!(
                matches!(err(txt), MtaStsError::BadRecordField { .. }),
                "{txt}: {:?}",
                err(txt)
            );
        }
    }

    #[test]
    fn pick_among_records() {
        assert_eq!(pick_record(&[]).unwrap(), None);
        assert_eq!(
            pick_record(&["v=spf1 -all", "google-site-verification=x"]).unwrap(),
            None
        );
        assert_eq!(
            pick_record(&["v=spf1 -all", "v=STSv1; id=1"]).unwrap(),
            Some(StsRecord { id: "1".into() })
        );
        // v=STSv10 is some other record.
        assert_eq!(
            pick_record(&["v=STSv10; id=2", "v=STSv1; id=1"]).unwrap(),
            Some(StsRecord { id: "1".into() })
        );
        // Two MTA-STS records: no policy, even when one is broken.
        for records in [
            &["v=STSv1; id=1", "v=STSv1; id=2"][..],
            &["v=STSv1; id=1", "v=STSv1; id=1"][..],
            &["v=STSv1; id=1", "v=STSv1 ; junk"][..],
        ] {
            assert_eq!(
                pick_record(records).unwrap_err(),
                MtaStsError::MultipleRecords(records.iter().map(|r| r.to_string()).collect())
            );
        }
        // One record, but broken.
        assert_eq!(
            pick_record(&["v=STSv1; nothing=here"]).unwrap_err(),
            MtaStsError::MissingId("v=STSv1; nothing=here".into())
        );
    }

    // --- Policy -----------------------------------------------------------

    #[test]
    fn policy_rfc_example_lf_and_crlf() {
        let expected = Policy {
            mode: Mode::Enforce,
            max_age: 604_800,
            mx: vec![
                "mail.example.com".into(),
                "*.example.net".into(),
                "backupmx.example.com".into(),
            ],
        };
        assert_eq!(Policy::parse(RFC_POLICY).unwrap(), expected);
        let crlf = RFC_POLICY.replace('\n', "\r\n");
        assert_eq!(Policy::parse(&crlf).unwrap(), expected);
        // No final line end, blanks, mixed line ends, blank lines.
        let loose = "version:STSv1\r\nmode:   enforce  \nmx:\tmail.example.com\r\n\r\n\
                     mx: *.example.net\nmx: backupmx.example.com\r\nmax_age: 604800";
        assert_eq!(Policy::parse(loose).unwrap(), expected);
        // Fields in any order.
        let reordered = "max_age: 604800\nmx: mail.example.com\nmx: *.example.net\n\
                         mx: backupmx.example.com\nmode: enforce\nversion: STSv1\n";
        assert_eq!(Policy::parse(reordered).unwrap(), expected);
    }

    #[test]
    fn policy_modes_and_normalisation() {
        let p = Policy::parse("version: STSv1\nmode: testing\nmx: MX.Example.COM.\nmax_age: 0\n")
            .unwrap();
        assert_eq!(p, policy_with_age(Mode::Testing, &["mx.example.com"], 0));
        // Mode none needs no mx.
        let p = Policy::parse("version: STSv1\nmode: none\nmax_age: 86400\n").unwrap();
        assert_eq!(p, policy(Mode::None, &[]));
        let p = Policy::parse(&format!(
            "version: STSv1\nmode: enforce\nmx: a.example\nmax_age: {MAX_MAX_AGE}\n"
        ))
        .unwrap();
        assert_eq!(p.max_age, MAX_MAX_AGE);
        // Leading zeros, up to ten digits.
        let p = Policy::parse("version: STSv1\nmode: none\nmax_age: 0000086400\n").unwrap();
        assert_eq!(p.max_age, 86_400);
        // A byte-order mark is tolerated.
        let p = Policy::parse("\u{feff}version: STSv1\nmode: none\nmax_age: 1\n").unwrap();
        assert_eq!(p.mode, Mode::None);
    }

    fn policy_with_age(mode: Mode, mx: &[&str], max_age: u32) -> Policy {
        Policy {
            max_age,
            ..policy(mode, mx)
        }
    }

    #[test]
    fn policy_unknown_and_repeated_fields() {
        let text = "version: STSv1\nmode: enforce\nmx: mx.example.com\nmax_age: 86400\n\
                    future_field: some value, with spaces é\nx-1.a: b\n\
                    mode: none\nmax_age: 5\nversion: STSv9\nmode: bogus\nmax_age: -1\n\
                    mx: mx2.example.com\n";
        assert_eq!(
            Policy::parse(text).unwrap(),
            policy(Mode::Enforce, &["mx.example.com", "mx2.example.com"])
        );
    }

    #[test]
    fn policy_missing_fields() {
        let missing = |text: &str| Policy::parse(text).unwrap_err();
        assert_eq!(
            missing("mode: enforce\nmx: a.example\nmax_age: 1\n"),
            MtaStsError::MissingField("version")
        );
        assert_eq!(
            missing("version: STSv1\nmx: a.example\nmax_age: 1\n"),
            MtaStsError::MissingField("mode")
        );
        assert_eq!(
            missing("version: STSv1\nmode: enforce\nmx: a.example\n"),
            MtaStsError::MissingField("max_age")
        );
        assert_eq!(
            missing("version: STSv1\nmode: enforce\nmax_age: 1\n"),
            MtaStsError::MissingField("mx")
        );
        assert_eq!(
            missing("version: STSv1\nmode: testing\nmax_age: 1\n"),
            MtaStsError::MissingField("mx")
        );
        assert_eq!(missing(""), MtaStsError::MissingField("version"));
        // An HTML error page is not a policy.
        assert!(matches!(
            missing("<html><body>Not found</body></html>"),
            MtaStsError::BadLine(_)
        ));
    }

    #[test]
    fn policy_bad_values() {
        let base = |field: &str| format!("version: STSv1\nmode: enforce\nmx: a.example\n{field}\n");
        let bad_age = |v: &str| Policy::parse(&base(&format!("max_age: {v}"))).unwrap_err();
        for v in [
            "31557601",
            "99999999999",
            "4294967296",
            "-1",
            "+5",
            "1.5",
            "1e3",
            "",
            "86400s",
            "1 000",
            "８６４００",
        ] {
            assert_eq!(bad_age(v), MtaStsError::BadMaxAge(v.into()), "{v:?}");
        }
        let text = "version: STSv2\nmode: enforce\nmx: a.example\nmax_age: 1\n";
        assert_eq!(
            Policy::parse(text).unwrap_err(),
            MtaStsError::BadVersion("STSv2".into())
        );
        let text = "version: stsv1\nmode: enforce\nmx: a.example\nmax_age: 1\n";
        assert!(matches!(
            Policy::parse(text).unwrap_err(),
            MtaStsError::BadVersion(_)
        ));
        for mode in ["Enforce", "ENFORCE", "strict", "", "enforce testing"] {
            let text = format!("version: STSv1\nmode: {mode}\nmx: a.example\nmax_age: 1\n");
            assert_eq!(
                Policy::parse(&text).unwrap_err(),
                MtaStsError::BadMode(mode.into())
            );
        }
        for mx in [
            "",
            "*",
            "*.",
            "**.example.com",
            "mail.*.example.com",
            "*mail.example.com",
            "-mx.example.com",
            "mx-.example.com",
            "mx..example.com",
            "mx_1.example.com",
            "mx.example.com:25",
            "mx.example.com mx2.example.com",
            "bücher.example",
            ".example.com",
        ] {
            let text = format!("version: STSv1\nmode: enforce\nmx: {mx}\nmax_age: 1\n");
            assert_eq!(
                Policy::parse(&text).unwrap_err(),
                MtaStsError::BadMx(mx.into()),
                "{mx:?}"
            );
        }
        for line in [
            "no colon here",
            ": value",
            "bad key: v",
            "_x: v",
            "key:",
            "key: a\u{7}b",
        ] {
            assert_eq!(
                Policy::parse(&base(line)).unwrap_err(),
                MtaStsError::BadLine(line.trim_end().into()),
                "{line:?}"
            );
        }
        // A key longer than 32 characters is not a field name.
        let long = format!("{}: v", "k".repeat(33));
        assert!(matches!(
            Policy::parse(&base(&long)).unwrap_err(),
            MtaStsError::BadLine(_)
        ));
        assert!(Policy::parse(&base(&format!("{}: v\nmax_age: 1", "k".repeat(32)))).is_ok());
    }

    #[test]
    fn policy_size_limit() {
        let head = "version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 1\n";
        let filler = |n: usize| format!("{head}x: {}\n", "y".repeat(n));
        let fits = filler(MAX_POLICY_SIZE - head.len() - 4);
        assert_eq!(fits.len(), MAX_POLICY_SIZE);
        assert!(Policy::parse(&fits).is_ok());
        let over = filler(MAX_POLICY_SIZE - head.len() - 3);
        assert_eq!(
            Policy::parse(&over).unwrap_err(),
            MtaStsError::PolicyTooLarge(MAX_POLICY_SIZE + 1)
        );
    }

    #[test]
    fn policy_display_round_trips() {
        let p = Policy::parse(RFC_POLICY).unwrap();
        let text = p.to_string();
        assert_eq!(
            text,
            "version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.example.net\r\n\
             mx: backupmx.example.com\r\nmax_age: 604800\r\n"
        );
        assert_eq!(Policy::parse(&text).unwrap(), p);
    }

    // --- MX matching --------------------------------------------------------

    #[test]
    fn mx_matching_rfc_examples() {
        let p = Policy::parse(RFC_POLICY).unwrap();
        assert!(p.matches_mx("mail.example.com"));
        assert!(p.matches_mx("backupmx.example.com"));
        assert!(p.matches_mx("mx1.example.net"));
        assert!(!p.matches_mx("example.net"));
        assert!(!p.matches_mx("a.b.example.net"));
        assert!(!p.matches_mx("example.com"));
        assert!(!p.matches_mx("other.example.com"));
        // RFC 8461 §4.1: "*.example.com" and its three cases.
        let p = policy(Mode::Enforce, &["*.example.com"]);
        assert!(p.matches_mx("mail.example.com"));
        assert!(!p.matches_mx("example.com"));
        assert!(!p.matches_mx("foo.bar.example.com"));
    }

    #[test]
    fn mx_matching_case_and_dots() {
        let p = policy(Mode::Enforce, &["mail.example.com", "*.example.net"]);
        for host in [
            "MAIL.EXAMPLE.COM",
            "mail.example.com.",
            "Mail.Example.Com.",
            "MX1.Example.NET",
            "mx1.example.net.",
        ] {
            assert!(p.matches_mx(host), "{host}");
        }
        for host in [
            "",
            ".",
            "mail.example.com..",
            "xmail.example.com",
            "mail.example.com.evil",
            "mail.example.co",
            ".example.net",
            "*.example.net",
            "example.net.",
            "mx1.example.net.evil",
            "mx1example.net",
        ] {
            assert!(!p.matches_mx(host), "{host:?}");
        }
        // Patterns as stored by someone else: upper case, a final dot.
        let p = policy(Mode::Enforce, &["MAIL.Example.com.", "*.EXAMPLE.net."]);
        assert!(p.matches_mx("mail.example.com"));
        assert!(p.matches_mx("a.example.net"));
        assert!(!p.matches_mx("a.b.example.net"));
        // No patterns, or an empty one: nothing matches.
        assert!(!policy(Mode::None, &[]).matches_mx("mail.example.com"));
        assert!(!policy(Mode::Enforce, &[""]).matches_mx(""));
        assert!(!policy(Mode::Enforce, &["*."]).matches_mx("a."));
    }

    // --- Cache and verdicts ------------------------------------------------

    #[test]
    fn freshness_and_refresh() {
        let now = 1_700_000_000;
        let record = StsRecord { id: "a1".into() };
        let cached = CachedPolicy::new(&record, policy(Mode::Enforce, &["mx.example.com"]), now);
        assert_eq!(cached.expires_at(), now + 86_400);
        assert!(cached.is_fresh(now));
        assert!(cached.is_fresh(now + 86_399));
        assert!(!cached.is_fresh(now + 86_400));
        assert_eq!(cached.fresh_policy(now + 10), Some(&cached.policy));
        assert_eq!(cached.fresh_policy(now + 86_400), None);

        // No cache: fetch if there is a record.
        assert!(refresh_needed(None, Some(&record), now));
        assert!(!refresh_needed(None, None, now));
        // Same id, fresh: keep; expired: fetch.
        assert!(!refresh_needed(Some(&cached), Some(&record), now + 1));
        assert!(refresh_needed(Some(&cached), Some(&record), now + 86_400));
        // Another id: fetch, even when fresh. Ids are case-sensitive.
        let changed = StsRecord { id: "a2".into() };
        assert!(refresh_needed(Some(&cached), Some(&changed), now + 1));
        let upper = StsRecord { id: "A1".into() };
        assert!(refresh_needed(Some(&cached), Some(&upper), now + 1));
        // Record gone: nothing to fetch; the cache applies while fresh.
        assert!(!refresh_needed(Some(&cached), None, now + 1));
        assert!(!refresh_needed(Some(&cached), None, now + 86_400));

        // max_age 0: stale at once.
        let zero = CachedPolicy::new(&record, policy_with_age(Mode::Enforce, &["m.x"], 0), now);
        assert!(!zero.is_fresh(now));
        assert!(refresh_needed(Some(&zero), Some(&record), now));
        // No overflow near the end of time; a stored max_age beyond the
        // limit counts as the limit.
        let late = CachedPolicy {
            fetched_at: u64::MAX - 5,
            ..cached.clone()
        };
        assert!(late.is_fresh(u64::MAX - 1));
        let huge = CachedPolicy {
            policy: policy_with_age(Mode::Enforce, &["m.x"], u32::MAX),
            ..cached.clone()
        };
        assert_eq!(huge.expires_at(), now + u64::from(MAX_MAX_AGE));
    }

    #[test]
    fn verdicts() {
        let enforce = policy(Mode::Enforce, &["mx.example.com", "*.example.net"]);
        let testing = Policy {
            mode: Mode::Testing,
            ..enforce.clone()
        };
        let none = Policy {
            mode: Mode::None,
            ..enforce.clone()
        };
        assert_eq!(check_host(None, "mx.example.com"), Verdict::NoPolicy);
        assert_eq!(check_host(Some(&none), "mx.example.com"), Verdict::NoPolicy);
        assert_eq!(
            check_host(Some(&none), "elsewhere.example"),
            Verdict::NoPolicy
        );
        assert_eq!(
            check_host(Some(&enforce), "MX.example.com."),
            Verdict::RequireVerifiedTls
        );
        assert_eq!(
            check_host(Some(&enforce), "b.example.net"),
            Verdict::RequireVerifiedTls
        );
        assert_eq!(
            check_host(Some(&enforce), "a.b.example.net"),
            Verdict::HostNotListed
        );
        assert_eq!(
            check_host(Some(&enforce), "evil.example"),
            Verdict::HostNotListed
        );
        assert_eq!(
            check_host(Some(&testing), "mx.example.com"),
            Verdict::TestingOnly { mx_matches: true }
        );
        assert_eq!(
            check_host(Some(&testing), "evil.example"),
            Verdict::TestingOnly { mx_matches: false }
        );
    }

    #[test]
    fn cache_serde_round_trip() {
        let cached = CachedPolicy {
            id: "20160831085700Z".into(),
            policy: Policy::parse(RFC_POLICY).unwrap(),
            fetched_at: 1_700_000_000,
        };
        let text = toml::to_string(&cached).unwrap();
        assert!(text.contains("mode = \"enforce\""), "{text}");
        let back: CachedPolicy = toml::from_str(&text).unwrap();
        assert_eq!(back, cached);
        for mode in [Mode::Enforce, Mode::Testing, Mode::None] {
            let p = policy(mode, &["a.example"]);
            let back: Policy = toml::from_str(&toml::to_string(&p).unwrap()).unwrap();
            assert_eq!(back, p);
            assert!(
                toml::to_string(&p)
                    .unwrap()
                    .contains(&format!("\"{mode}\""))
            );
        }
    }

    #[test]
    fn errors_name_the_input() {
        let msg = StsRecord::parse("v=STSv1; id=bad-id")
            .unwrap_err()
            .to_string();
        assert!(msg.contains("bad-id"), "{msg}");
        let msg = pick_record(&["v=STSv1; id=1", "v=STSv1; id=2"])
            .unwrap_err()
            .to_string();
        assert!(
            msg.starts_with("2 TXT records") && msg.contains("id=2"),
            "{msg}"
        );
        let msg = Policy::parse("version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 1y\n")
            .unwrap_err()
            .to_string();
        assert!(msg.contains("\"1y\""), "{msg}");
    }

    fn policy_line() -> impl Strategy<Value = String> {
        let key = prop_oneof![
            Just("version".to_string()),
            Just("mode".to_string()),
            Just("max_age".to_string()),
            Just("mx".to_string()),
            "[a-z_.-]{0,4}",
        ];
        let value = prop_oneof![
            Just("STSv1".to_string()),
            Just("enforce".to_string()),
            Just("testing".to_string()),
            Just("none".to_string()),
            "[0-9]{0,12}",
            "(\\*\\.)?[a-zA-Z0-9.*-]{0,12}",
            "\\PC{0,8}",
        ];
        let sep = prop_oneof![Just(":"), Just(": "), Just(" :\t"), Just(""), Just("::")];
        let end = prop_oneof![Just("\n"), Just("\r\n"), Just("\r"), Just("")];
        (key, sep, value, end).prop_map(|(k, s, v, e)| format!("{k}{s}{v}{e}"))
    }

    proptest! {
        #[test]
        fn policy_parse_never_panics(s in any::<String>()) {
            let _ = Policy::parse(&s);
            let _ = StsRecord::parse(&s);
            let _ = pick_record(&[&s, "v=STSv1; id=1"]);
        }

        #[test]
        fn policy_parse_never_panics_on_near_policies(
            valid_start in any::<bool>(),
            lines in proptest::collection::vec(policy_line(), 0..12),
        ) {
            // Half the time after a valid policy, so that many are accepted.
            let start = "version: STSv1\nmode: testing\nmx: mx.example.com\nmax_age: 60\n";
            let text = if valid_start { start.to_string() } else { String::new() } + &lines.concat();
            if let Ok(p) = Policy::parse(&text) {
                // Whatever is accepted is valid and reads back the same.
                prop_assert!(p.max_age <= MAX_MAX_AGE);
                prop_assert!(p.mode == Mode::None || !p.mx.is_empty());
                prop_assert_eq!(Policy::parse(&p.to_string()).unwrap(), p.clone());
                for mx in &p.mx {
                    let host = mx.strip_prefix("*.").map(|s| format!("x.{s}")).unwrap_or(mx.clone());
                    prop_assert!(p.matches_mx(&host));
                    prop_assert!(p.matches_mx(&host.to_ascii_uppercase()));
                }
            }
        }

        #[test]
        fn record_parse_never_panics(s in "v=STSv1[ ;\t]{0,3}[a-z=; \t0-9]{0,20}") {
            if let Ok(r) = StsRecord::parse(&s) {
                prop_assert!(!r.id.is_empty() && r.id.len() <= 32);
            }
        }

        #[test]
        fn wildcard_takes_one_label(label in "[a-z0-9]{1,10}", extra in "[a-z0-9]{1,10}", domain in "[a-z]{1,10}\\.[a-z]{2,5}") {
            let p = policy(Mode::Enforce, &[&format!("*.{domain}")]);
            let one = format!("{label}.{domain}");
            let two = format!("{extra}.{label}.{domain}");
            prop_assert!(p.matches_mx(&one));
            prop_assert!(!p.matches_mx(&domain));
            prop_assert!(!p.matches_mx(&two));
        }
    }
}
