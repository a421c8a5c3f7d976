//! The DMARC policy record published in DNS at `_dmarc.<domain>` (RFC 7489
//! section 6.3, with the DMARCbis tags `np`, `t` and `psd`).
//!
//! [`DmarcRecord::parse`] is strict: every known tag must carry a valid value
//! and appear once, and the error names the tag and the offending text.
//! [`DmarcRecord::parse_lenient`] is what a receiver uses (RFC 7489 6.3:
//! "syntax errors in the remainder of the record SHOULD be discarded in favor
//! of default values"): only a missing or wrong `v=DMARC1` rejects the record,
//! and every discarded tag is returned as a warning.
//!
//! Every field is an `Option` so that [`Display`](core::fmt::Display) writes
//! back exactly the tags that were present; the accessors
//! ([`DmarcRecord::policy`], [`DmarcRecord::adkim`], …) apply the defaults.

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

/// A requested policy (`p`, `sp`, `np`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Policy {
    /// `none`: monitor only.
    None,
    /// `quarantine`: treat as suspicious.
    Quarantine,
    /// `reject`: refuse the message.
    Reject,
}

impl Policy {
    /// The tag value as written in a record and in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::None => "none",
            Policy::Quarantine => "quarantine",
            Policy::Reject => "reject",
        }
    }

    /// Parses a tag value (case-insensitive, as ABNF literals are).
    pub fn parse(value: &str) -> Option<Policy> {
        match value.to_ascii_lowercase().as_str() {
            "none" => Some(Policy::None),
            "quarantine" => Some(Policy::Quarantine),
            "reject" => Some(Policy::Reject),
            _ => None,
        }
    }

    /// The next less strict policy, applied to a message that is "sampled
    /// out" by `pct` or covered by `t=y` (RFC 7489 6.6.4).
    pub fn downgrade(self) -> Policy {
        match self {
            Policy::Reject => Policy::Quarantine,
            Policy::Quarantine | Policy::None => Policy::None,
        }
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Identifier alignment mode (`adkim`, `aspf`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Alignment {
    /// `r`: the organizational domains must match (the default).
    #[default]
    Relaxed,
    /// `s`: the domains must be identical.
    Strict,
}

impl Alignment {
    /// `r` or `s`.
    pub fn as_str(self) -> &'static str {
        match self {
            Alignment::Relaxed => "r",
            Alignment::Strict => "s",
        }
    }

    /// Parses `r` or `s` (case-insensitive).
    pub fn parse(value: &str) -> Option<Alignment> {
        match value {
            "r" | "R" => Some(Alignment::Relaxed),
            "s" | "S" => Some(Alignment::Strict),
            _ => None,
        }
    }
}

impl fmt::Display for Alignment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Unit of a report URI's size limit (`!10m`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SizeUnit {
    /// No unit: bytes.
    Bytes,
    /// `k`: kibibytes.
    Kilo,
    /// `m`: mebibytes.
    Mega,
    /// `g`: gibibytes.
    Giga,
    /// `t`: tebibytes.
    Tera,
}

impl SizeUnit {
    fn suffix(self) -> &'static str {
        match self {
            SizeUnit::Bytes => "",
            SizeUnit::Kilo => "k",
            SizeUnit::Mega => "m",
            SizeUnit::Giga => "g",
            SizeUnit::Tera => "t",
        }
    }

    fn shift(self) -> u32 {
        match self {
            SizeUnit::Bytes => 0,
            SizeUnit::Kilo => 10,
            SizeUnit::Mega => 20,
            SizeUnit::Giga => 30,
            SizeUnit::Tera => 40,
        }
    }
}

/// A reporting URI from `rua` or `ruf`: `URI [ "!" size [unit] ]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ReportUri {
    uri: String,
    limit: Option<(u64, SizeUnit)>,
}

impl ReportUri {
    /// Parses one URI of the comma-separated list (surrounding whitespace
    /// trimmed).
    pub fn parse(text: &str) -> Result<ReportUri, RecordError> {
        let text = text.trim_matches(is_wsp);
        let bad = || RecordError::InvalidUri {
            uri: text.to_string(),
        };
        let (uri, limit) = match text.rfind('!') {
            Some(bang) => {
                let (uri, rest) = text.split_at(bang);
                let rest = &rest[1..];
                let digits_end = rest
                    .find(|c: char| !c.is_ascii_digit())
                    .unwrap_or(rest.len());
                let (digits, unit) = rest.split_at(digits_end);
                let size: u64 = digits.parse().map_err(|_| bad())?;
                let unit = match unit {
                    "" => SizeUnit::Bytes,
                    "k" | "K" => SizeUnit::Kilo,
                    "m" | "M" => SizeUnit::Mega,
                    "g" | "G" => SizeUnit::Giga,
                    "t" | "T" => SizeUnit::Tera,
                    _ => return Err(bad()),
                };
                (uri, Some((size, unit)))
            }
            None => (text, None),
        };
        // RFC 3986 scheme ":" and something after it; no whitespace, and no
        // ',' or ';' (they must be %-encoded inside a DMARC URI).
        let colon = uri.find(':').ok_or_else(bad)?;
        let (scheme, rest) = uri.split_at(colon);
        let scheme_ok = scheme
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
        let rest_ok = rest.len() > 1
            && rest
                .chars()
                .all(|c| c.is_ascii_graphic() && c != ',' && c != ';' && c != '!');
        if !scheme_ok || !rest_ok {
            return Err(bad());
        }
        Ok(ReportUri {
            uri: uri.to_string(),
            limit,
        })
    }

    /// The URI without the size limit (e.g. `mailto:dmarc@example.com`).
    pub fn uri(&self) -> &str {
        &self.uri
    }

    /// The `mailto:` address, if this is a mailto URI.
    pub fn mailto(&self) -> Option<&str> {
        let (scheme, rest) = self.uri.split_once(':')?;
        scheme.eq_ignore_ascii_case("mailto").then_some(rest)
    }

    /// The size limit as written (number and unit).
    pub fn limit(&self) -> Option<(u64, SizeUnit)> {
        self.limit
    }

    /// The size limit in bytes (saturating).
    pub fn limit_bytes(&self) -> Option<u64> {
        self.limit
            .map(|(n, unit)| n.saturating_mul(1u64 << unit.shift()))
    }
}

impl fmt::Display for ReportUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.uri)?;
        if let Some((n, unit)) = self.limit {
            write!(f, "!{n}{}", unit.suffix())?;
        }
        Ok(())
    }
}

/// A failure-reporting option of `fo`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureOption {
    /// `0`: report when all mechanisms fail to produce an aligned pass.
    All,
    /// `1`: report when any mechanism fails to produce an aligned pass.
    Any,
    /// `d`: report DKIM failures.
    Dkim,
    /// `s`: report SPF failures.
    Spf,
}

impl FailureOption {
    fn as_str(self) -> &'static str {
        match self {
            FailureOption::All => "0",
            FailureOption::Any => "1",
            FailureOption::Dkim => "d",
            FailureOption::Spf => "s",
        }
    }

    fn parse(value: &str) -> Option<FailureOption> {
        match value {
            "0" => Some(FailureOption::All),
            "1" => Some(FailureOption::Any),
            "d" | "D" => Some(FailureOption::Dkim),
            "s" | "S" => Some(FailureOption::Spf),
            _ => None,
        }
    }
}

/// DMARCbis `psd`: whether the domain is a public suffix domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PsdFlag {
    /// `y`: a public suffix operator's record.
    Yes,
    /// `n`: the organizational domain.
    No,
    /// `u`: unspecified (the default).
    Unknown,
}

impl PsdFlag {
    fn as_str(self) -> &'static str {
        match self {
            PsdFlag::Yes => "y",
            PsdFlag::No => "n",
            PsdFlag::Unknown => "u",
        }
    }
}

/// Why a record (or one of its tags) was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// The record does not start with `v=DMARC1`: it is not a DMARC record
    /// and must be ignored (RFC 7489 6.6.3).
    #[error("not a DMARC record: it must start with \"v=DMARC1\", found {found:?}")]
    NotDmarc {
        /// The first tag as found.
        found: String,
    },
    /// A tag-spec without `=`, or with a bad tag name.
    #[error("malformed tag-spec {spec:?}: expected name=value")]
    Malformed {
        /// The offending tag-spec.
        spec: String,
    },
    /// A known tag appears twice.
    #[error("tag {tag:?} appears more than once")]
    Duplicate {
        /// The tag name.
        tag: String,
    },
    /// A known tag with a value outside its grammar.
    #[error("tag {tag:?} has an invalid value {value:?}")]
    InvalidValue {
        /// The tag name.
        tag: &'static str,
        /// The offending value.
        value: String,
    },
    /// A reporting URI that is not `scheme:...[!size[kmgt]]`.
    #[error("invalid reporting URI {uri:?}")]
    InvalidUri {
        /// The offending URI.
        uri: String,
    },
}

/// A parsed DMARC record. See the [module docs](self).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DmarcRecord {
    /// `p`: the policy for the domain itself.
    pub p: Option<Policy>,
    /// `sp`: the policy for subdomains.
    pub sp: Option<Policy>,
    /// `np` (DMARCbis): the policy for non-existent subdomains.
    pub np: Option<Policy>,
    /// `adkim`: DKIM alignment mode.
    pub adkim: Option<Alignment>,
    /// `aspf`: SPF alignment mode.
    pub aspf: Option<Alignment>,
    /// `pct` (RFC 7489; removed by DMARCbis): 0–100.
    pub pct: Option<u8>,
    /// `t` (DMARCbis): testing mode, `y` or `n`.
    pub t: Option<bool>,
    /// `psd` (DMARCbis).
    pub psd: Option<PsdFlag>,
    /// `fo`: failure reporting options.
    pub fo: Option<Vec<FailureOption>>,
    /// `rf`: failure report formats (e.g. `afrf`).
    pub rf: Option<Vec<String>>,
    /// `ri`: aggregate report interval in seconds.
    pub ri: Option<u32>,
    /// `rua`: aggregate report destinations.
    pub rua: Option<Vec<ReportUri>>,
    /// `ruf`: failure report destinations.
    pub ruf: Option<Vec<ReportUri>>,
}

pub(crate) fn is_wsp(c: char) -> bool {
    c == ' ' || c == '\t'
}

fn is_keyword(s: &str) -> bool {
    !s.is_empty()
        && s.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn parse_yn(tag: &'static str, value: &str) -> Result<bool, RecordError> {
    match value {
        "y" | "Y" => Ok(true),
        "n" | "N" => Ok(false),
        _ => Err(RecordError::InvalidValue {
            tag,
            value: value.to_string(),
        }),
    }
}

fn invalid(tag: &'static str, value: &str) -> RecordError {
    RecordError::InvalidValue {
        tag,
        value: value.to_string(),
    }
}

/// Splits `name=value` tag-specs, checking `v=DMARC1` first.
fn tag_specs(text: &str) -> Result<Vec<(&str, &str)>, RecordError> {
    // TXT strings are concatenated by the caller; a record may end with ';'.
    let mut specs = Vec::new();
    for (i, spec) in text.split(';').enumerate() {
        let spec = spec.trim_matches(|c: char| is_wsp(c) || c == '\r' || c == '\n');
        if spec.is_empty() {
            if i == 0 {
                return Err(RecordError::NotDmarc {
                    found: String::new(),
                });
            }
            continue;
        }
        let Some((name, value)) = spec.split_once('=') else {
            if i == 0 {
                return Err(RecordError::NotDmarc {
                    found: spec.to_string(),
                });
            }
            return Err(RecordError::Malformed {
                spec: spec.to_string(),
            });
        };
        let name = name.trim_matches(is_wsp);
        let value = value.trim_matches(is_wsp);
        if i == 0 {
            if name != "v" || value != "DMARC1" {
                return Err(RecordError::NotDmarc {
                    found: spec.to_string(),
                });
            }
            continue;
        }
        if !is_keyword(name) {
            return Err(RecordError::Malformed {
                spec: spec.to_string(),
            });
        }
        specs.push((name, value));
    }
    Ok(specs)
}

/// True when a TXT record claims to be DMARC (starts with `v=DMARC1`), which
/// is how RFC 7489 6.6.3 picks records out of a TXT RRset.
pub fn is_dmarc_record(text: &str) -> bool {
    let first = text.split(';').next().unwrap_or("");
    match first.split_once('=') {
        Some((name, value)) => {
            name.trim_matches(is_wsp) == "v" && value.trim_matches(is_wsp) == "DMARC1"
        }
        None => false,
    }
}

fn parse_uris(value: &str) -> Result<Vec<ReportUri>, RecordError> {
    value.split(',').map(ReportUri::parse).collect()
}

impl DmarcRecord {
    /// Strict parse: every known tag must be valid and appear once; unknown
    /// tags are ignored (RFC 7489 6.3 says they MUST be).
    pub fn parse(text: &str) -> Result<DmarcRecord, RecordError> {
        let mut record = DmarcRecord::default();
        for (name, value) in tag_specs(text)? {
            record.set(name, value)?;
        }
        Ok(record)
    }

    /// Receiver's parse: only a missing or wrong `v=DMARC1` (or a first
    /// tag-spec that is not one) is an error; a tag with a bad value, a
    /// duplicate tag (the first one wins) or a malformed tag-spec is dropped
    /// and reported in the returned warnings.
    pub fn parse_lenient(text: &str) -> Result<(DmarcRecord, Vec<RecordError>), RecordError> {
        let mut record = DmarcRecord::default();
        let mut warnings = Vec::new();
        for (i, spec) in text.split(';').enumerate() {
            let spec = spec.trim_matches(|c: char| is_wsp(c) || c == '\r' || c == '\n');
            if i == 0 {
                tag_specs(spec)?;
                continue;
            }
            if spec.is_empty() {
                continue;
            }
            match spec.split_once('=') {
                Some((name, value)) if is_keyword(name.trim_matches(is_wsp)) => {
                    if let Err(e) =
                        record.set(name.trim_matches(is_wsp), value.trim_matches(is_wsp))
                    {
                        warnings.push(e);
                    }
                }
                _ => warnings.push(RecordError::Malformed {
                    spec: spec.to_string(),
                }),
            }
        }
        Ok((record, warnings))
    }

    fn set(&mut self, name: &str, value: &str) -> Result<(), RecordError> {
        fn once<T>(slot: &mut Option<T>, tag: &str, v: T) -> Result<(), RecordError> {
            if slot.is_some() {
                return Err(RecordError::Duplicate {
                    tag: tag.to_string(),
                });
            }
            *slot = Some(v);
            Ok(())
        }
        // Tag names are compared case-insensitively, as opendmarc does.
        match name.to_ascii_lowercase().as_str() {
            "v" => Err(RecordError::Duplicate { tag: "v".into() }),
            "p" => {
                let v = Policy::parse(value).ok_or_else(|| invalid("p", value))?;
                once(&mut self.p, "p", v)
            }
            "sp" => {
                let v = Policy::parse(value).ok_or_else(|| invalid("sp", value))?;
                once(&mut self.sp, "sp", v)
            }
            "np" => {
                let v = Policy::parse(value).ok_or_else(|| invalid("np", value))?;
                once(&mut self.np, "np", v)
            }
            "adkim" => {
                let v = Alignment::parse(value).ok_or_else(|| invalid("adkim", value))?;
                once(&mut self.adkim, "adkim", v)
            }
            "aspf" => {
                let v = Alignment::parse(value).ok_or_else(|| invalid("aspf", value))?;
                once(&mut self.aspf, "aspf", v)
            }
            "pct" => {
                let ok = !value.is_empty()
                    && value.len() <= 3
                    && value.bytes().all(|b| b.is_ascii_digit());
                let v: u8 = match value.parse() {
                    Ok(n) if ok && n <= 100 => n,
                    _ => return Err(invalid("pct", value)),
                };
                once(&mut self.pct, "pct", v)
            }
            "t" => {
                let v = parse_yn("t", value)?;
                once(&mut self.t, "t", v)
            }
            "psd" => {
                let v = match value {
                    "y" | "Y" => PsdFlag::Yes,
                    "n" | "N" => PsdFlag::No,
                    "u" | "U" => PsdFlag::Unknown,
                    _ => return Err(invalid("psd", value)),
                };
                once(&mut self.psd, "psd", v)
            }
            "fo" => {
                let v = value
                    .split(':')
                    .map(|o| FailureOption::parse(o.trim_matches(is_wsp)))
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| invalid("fo", value))?;
                once(&mut self.fo, "fo", v)
            }
            "rf" => {
                let v = value
                    .split(':')
                    .map(|o| {
                        let o = o.trim_matches(is_wsp);
                        is_keyword(o).then(|| o.to_ascii_lowercase())
                    })
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| invalid("rf", value))?;
                once(&mut self.rf, "rf", v)
            }
            "ri" => {
                let ok = !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit());
                let v: u32 = match value.parse() {
                    Ok(n) if ok => n,
                    _ => return Err(invalid("ri", value)),
                };
                once(&mut self.ri, "ri", v)
            }
            "rua" => {
                let v = parse_uris(value)?;
                once(&mut self.rua, "rua", v)
            }
            "ruf" => {
                let v = parse_uris(value)?;
                once(&mut self.ruf, "ruf", v)
            }
            _ => Ok(()),
        }
    }

    /// The domain policy; `p=none` when absent (DMARCbis 4.7; RFC 7489
    /// 6.6.3 says the same when `rua` is present).
    pub fn policy(&self) -> Policy {
        self.p.unwrap_or(Policy::None)
    }

    /// The policy for an existing subdomain: `sp`, else `p`.
    pub fn subdomain_policy(&self) -> Policy {
        self.sp.unwrap_or_else(|| self.policy())
    }

    /// The policy for a non-existent subdomain: `np`, else `sp`, else `p`
    /// (DMARCbis 4.7).
    pub fn nonexistent_policy(&self) -> Policy {
        self.np.unwrap_or_else(|| self.subdomain_policy())
    }

    /// DKIM alignment mode (default relaxed).
    pub fn adkim(&self) -> Alignment {
        self.adkim.unwrap_or_default()
    }

    /// SPF alignment mode (default relaxed).
    pub fn aspf(&self) -> Alignment {
        self.aspf.unwrap_or_default()
    }

    /// The percentage of failing messages the policy applies to.
    ///
    /// DMARCbis replaced `pct` with `t`: `t=y` acts as `pct=0` and `t=n` as
    /// `pct=100`, and when `t` is present it wins over `pct` (a DMARCbis
    /// reader ignores `pct`). Without either, 100. So no value of `pct`
    /// other than the one written changes the outcome: `pct=50` applies the
    /// policy to half of the failing mail, downgrading the rest by one step.
    pub fn sampling_percent(&self) -> u8 {
        match self.t {
            Some(true) => 0,
            Some(false) => 100,
            None => self.pct.unwrap_or(100),
        }
    }

    /// The `fo` value as written (`0:d`), if present.
    pub fn fo_text(&self) -> Option<String> {
        self.fo.as_ref().map(|fo| {
            let names: Vec<&str> = fo.iter().map(|o| o.as_str()).collect();
            names.join(":")
        })
    }

    /// Aggregate report interval (default 86400 s).
    pub fn report_interval(&self) -> u32 {
        self.ri.unwrap_or(86400)
    }
}

fn write_list<T: fmt::Display>(f: &mut fmt::Formatter<'_>, sep: &str, items: &[T]) -> fmt::Result {
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            f.write_str(sep)?;
        }
        write!(f, "{item}")?;
    }
    Ok(())
}

impl fmt::Display for DmarcRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("v=DMARC1")?;
        if let Some(p) = self.p {
            write!(f, "; p={p}")?;
        }
        if let Some(sp) = self.sp {
            write!(f, "; sp={sp}")?;
        }
        if let Some(np) = self.np {
            write!(f, "; np={np}")?;
        }
        if let Some(a) = self.adkim {
            write!(f, "; adkim={a}")?;
        }
        if let Some(a) = self.aspf {
            write!(f, "; aspf={a}")?;
        }
        if let Some(pct) = self.pct {
            write!(f, "; pct={pct}")?;
        }
        if let Some(t) = self.t {
            write!(f, "; t={}", if t { "y" } else { "n" })?;
        }
        if let Some(psd) = self.psd {
            write!(f, "; psd={}", psd.as_str())?;
        }
        if let Some(fo) = &self.fo {
            f.write_str("; fo=")?;
            let names: Vec<&str> = fo.iter().map(|o| o.as_str()).collect();
            write_list(f, ":", &names)?;
        }
        if let Some(rf) = &self.rf {
            f.write_str("; rf=")?;
            write_list(f, ":", rf)?;
        }
        if let Some(ri) = self.ri {
            write!(f, "; ri={ri}")?;
        }
        if let Some(rua) = &self.rua {
            f.write_str("; rua=")?;
            write_list(f, ",", rua)?;
        }
        if let Some(ruf) = &self.ruf {
            f.write_str("; ruf=")?;
            write_list(f, ",", ruf)?;
        }
        Ok(())
    }
}

impl core::str::FromStr for DmarcRecord {
    type Err = RecordError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DmarcRecord::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;
    use alloc::vec;
    use proptest::prelude::*;

    #[test]
    fn rfc7489_examples() {
        // RFC 7489 appendix B.2.1 and B.2.3-style records.
        let r =
            DmarcRecord::parse("v=DMARC1; p=none; rua=mailto:dmarc-feedback@example.com").unwrap();
        assert_eq!(r.policy(), Policy::None);
        assert_eq!(
            r.rua.as_ref().unwrap()[0].mailto(),
            Some("dmarc-feedback@example.com")
        );
        let r = DmarcRecord::parse(
            "v=DMARC1; p=quarantine; rua=mailto:dmarc-feedback@example.com,mailto:tld-test@thirdparty.example.net!10m; pct=25",
        )
        .unwrap();
        assert_eq!(r.policy(), Policy::Quarantine);
        assert_eq!(r.sampling_percent(), 25);
        let rua = r.rua.as_ref().unwrap();
        assert_eq!(rua[1].limit(), Some((10, SizeUnit::Mega)));
        assert_eq!(rua[1].limit_bytes(), Some(10 << 20));
        assert_eq!(r.subdomain_policy(), Policy::Quarantine);
        assert_eq!(r.adkim(), Alignment::Relaxed);
    }

    #[test]
    fn dmarcbis_tags() {
        let r = DmarcRecord::parse("v=DMARC1;p=reject;sp=quarantine;np=none;t=y;psd=n").unwrap();
        assert_eq!(r.policy(), Policy::Reject);
        assert_eq!(r.subdomain_policy(), Policy::Quarantine);
        assert_eq!(r.nonexistent_policy(), Policy::None);
        assert_eq!(r.sampling_percent(), 0);
        assert_eq!(r.psd, Some(PsdFlag::No));
        // np falls back to sp then p.
        let r = DmarcRecord::parse("v=DMARC1; p=reject; sp=quarantine").unwrap();
        assert_eq!(r.nonexistent_policy(), Policy::Quarantine);
        let r = DmarcRecord::parse("v=DMARC1; p=reject").unwrap();
        assert_eq!(r.nonexistent_policy(), Policy::Reject);
        // t wins over pct; without p, none.
        let r = DmarcRecord::parse("v=DMARC1; pct=10; t=n").unwrap();
        assert_eq!(r.sampling_percent(), 100);
        assert_eq!(r.policy(), Policy::None);
    }

    #[test]
    fn errors_name_the_tag() {
        assert_eq!(
            DmarcRecord::parse("v=DMARC1; p=block"),
            Err(RecordError::InvalidValue {
                tag: "p",
                value: "block".into()
            })
        );
        assert_eq!(
            DmarcRecord::parse("v=DMARC1; p=none; pct=101"),
            Err(RecordError::InvalidValue {
                tag: "pct",
                value: "101".into()
            })
        );
        assert!(matches!(
            DmarcRecord::parse("v=DMARC1; pct=-1"),
            Err(RecordError::InvalidValue { tag: "pct", .. })
        ));
        assert!(matches!(
            DmarcRecord::parse("v=DMARC1; pct=+5"),
            Err(RecordError::InvalidValue { tag: "pct", .. })
        ));
        assert_eq!(
            DmarcRecord::parse("v=DMARC1; p=none; p=reject"),
            Err(RecordError::Duplicate { tag: "p".into() })
        );
        assert!(matches!(
            DmarcRecord::parse("p=none; v=DMARC1"),
            Err(RecordError::NotDmarc { .. })
        ));
        assert!(matches!(
            DmarcRecord::parse("v=DMARC2; p=none"),
            Err(RecordError::NotDmarc { .. })
        ));
        assert!(matches!(
            DmarcRecord::parse("v=spf1 -all"),
            Err(RecordError::NotDmarc { .. })
        ));
        assert!(matches!(
            DmarcRecord::parse("v=DMARC1; p=none; rua=dmarc@example.com"),
            Err(RecordError::InvalidUri { .. })
        ));
        assert!(matches!(
            DmarcRecord::parse("v=DMARC1; p=none; garbage"),
            Err(RecordError::Malformed { .. })
        ));
        // Unknown tags are ignored.
        assert_eq!(
            DmarcRecord::parse("v=DMARC1; p=none; x_foo=bar")
                .unwrap()
                .policy(),
            Policy::None
        );
        // Whitespace around '=' and ';', trailing ';'.
        let r = DmarcRecord::parse("v = DMARC1 ;  p = Reject ; ").unwrap();
        assert_eq!(r.policy(), Policy::Reject);
    }

    #[test]
    fn lenient_keeps_the_good_tags() {
        let (r, w) =
            DmarcRecord::parse_lenient("v=DMARC1; p=reject; pct=150; sp=bogus; p=none; junk")
                .unwrap();
        assert_eq!(r.policy(), Policy::Reject);
        assert_eq!(r.sampling_percent(), 100);
        assert_eq!(r.sp, None);
        assert_eq!(w.len(), 4, "{w:?}");
        assert!(DmarcRecord::parse_lenient("p=reject").is_err());
    }

    fn policy() -> impl Strategy<Value = Policy> {
        prop_oneof![
            Just(Policy::None),
            Just(Policy::Quarantine),
            Just(Policy::Reject)
        ]
    }
    fn alignment() -> impl Strategy<Value = Alignment> {
        prop_oneof![Just(Alignment::Relaxed), Just(Alignment::Strict)]
    }
    fn uri() -> impl Strategy<Value = ReportUri> {
        (
            "[a-z][a-z0-9+.-]{0,6}",
            "[a-zA-Z0-9@._%/?=&-]{1,20}",
            proptest::option::of((
                0u64..100000,
                prop_oneof![
                    Just(SizeUnit::Bytes),
                    Just(SizeUnit::Kilo),
                    Just(SizeUnit::Mega),
                    Just(SizeUnit::Giga),
                    Just(SizeUnit::Tera)
                ],
            )),
        )
            .prop_map(|(scheme, rest, limit)| ReportUri {
                uri: format!("{scheme}:{rest}"),
                limit,
            })
    }

    prop_compose! {
        fn record()(
            p in proptest::option::of(policy()),
            sp in proptest::option::of(policy()),
            np in proptest::option::of(policy()),
            adkim in proptest::option::of(alignment()),
            aspf in proptest::option::of(alignment()),
            pct in proptest::option::of(0u8..=100),
            t in proptest::option::of(any::<bool>()),
            psd in proptest::option::of(prop_oneof![Just(PsdFlag::Yes), Just(PsdFlag::No), Just(PsdFlag::Unknown)]),
            fo in proptest::option::of(proptest::collection::vec(prop_oneof![
                Just(FailureOption::All), Just(FailureOption::Any), Just(FailureOption::Dkim), Just(FailureOption::Spf)], 1..4)),
            rf in proptest::option::of(proptest::collection::vec("[a-z][a-z0-9]{0,5}", 1..3)),
            ri in proptest::option::of(any::<u32>()),
            rua in proptest::option::of(proptest::collection::vec(uri(), 1..3)),
            ruf in proptest::option::of(proptest::collection::vec(uri(), 1..3)),
        ) -> DmarcRecord {
            DmarcRecord { p, sp, np, adkim, aspf, pct, t, psd, fo, rf, ri, rua, ruf }
        }
    }

    proptest! {
        #[test]
        fn display_parse_round_trip(r in record()) {
            let text = r.to_string();
            prop_assert_eq!(DmarcRecord::parse(&text).unwrap(), r.clone());
            prop_assert_eq!(DmarcRecord::parse_lenient(&text).unwrap(), (r, vec![]));
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,80}") {
            let _ = DmarcRecord::parse(&s);
            let _ = DmarcRecord::parse_lenient(&s);
            let _ = DmarcRecord::parse(&format!("v=DMARC1; {s}"));
        }

        #[test]
        fn parsed_records_round_trip(s in "(; ?(p|sp|np|adkim|aspf|pct|t|fo|ri|rua)=[a-z0-9:!,]{0,8}){0,6}") {
            let text = format!("v=DMARC1{s}");
            if let Ok(r) = DmarcRecord::parse(&text) {
                prop_assert_eq!(DmarcRecord::parse(&r.to_string()).unwrap(), r);
            }
        }
    }
}
