//! The three ARC header fields (RFC 8617 §4.1): ARC-Authentication-Results,
//! ARC-Message-Signature and ARC-Seal, with `parse` and `Display` that
//! round-trip.
//!
//! `Display` writes the "standardized header format" of the ValiMail ARC
//! test suite: tags in alphabetical order, lowercase keys, one space after
//! each `;`, no other whitespace, no trailing `;`. Tags this crate does not
//! know are kept and written after the known ones.

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;
use core::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::tags::{Tag, TagList, TagListError, strip_fws, trim_fws};

/// The highest ARC instance number (RFC 8617 §4.2.1).
pub const MAX_INSTANCE: u32 = 50;

/// Header field name of the ARC-Seal.
pub const ARC_SEAL: &str = "ARC-Seal";
/// Header field name of the ARC-Message-Signature.
pub const ARC_MESSAGE_SIGNATURE: &str = "ARC-Message-Signature";
/// Header field name of the ARC-Authentication-Results.
pub const ARC_AUTHENTICATION_RESULTS: &str = "ARC-Authentication-Results";

/// Why an ARC header field did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HeaderError {
    /// The tag list itself is malformed.
    #[error("{field}: {source}")]
    TagList {
        /// Which header field.
        field: &'static str,
        /// The tag-list error.
        source: TagListError,
    },
    /// A required tag is absent.
    #[error("{field}: required tag {tag}= is missing")]
    Missing {
        /// Which header field.
        field: &'static str,
        /// The missing tag.
        tag: &'static str,
    },
    /// A tag's value does not fit its syntax.
    #[error("{field}: tag {tag}= has an invalid value {value:?}")]
    Invalid {
        /// Which header field.
        field: &'static str,
        /// The tag.
        tag: &'static str,
        /// The offending value.
        value: String,
    },
    /// A tag that this header field must not carry (`h=` in an ARC-Seal).
    #[error("{field}: tag {tag}= is not allowed")]
    Forbidden {
        /// Which header field.
        field: &'static str,
        /// The tag.
        tag: &'static str,
    },
    /// An ARC-Message-Signature that signs an ARC-Seal (RFC 8617 §4.1.2).
    #[error("ARC-Message-Signature: h= must not name ARC-Seal")]
    SignsSeal,
    /// The ARC-Authentication-Results does not start with `i=N;`.
    #[error("ARC-Authentication-Results: {0}")]
    AarPrefix(&'static str),
}

/// A signing algorithm of an ARC header field (`a=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Algorithm {
    /// `rsa-sha256` (RFC 6376).
    RsaSha256,
    /// `ed25519-sha256` (RFC 8463).
    Ed25519Sha256,
}

impl Algorithm {
    /// The `a=` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::RsaSha256 => "rsa-sha256",
            Algorithm::Ed25519Sha256 => "ed25519-sha256",
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Algorithm {
    type Err = ();
    /// Exact, case-sensitive match (`rsa-sha1` is refused: RFC 8301).
    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "rsa-sha256" => Ok(Algorithm::RsaSha256),
            "ed25519-sha256" => Ok(Algorithm::Ed25519Sha256),
            _ => Err(()),
        }
    }
}

/// A canonicalization algorithm (RFC 6376 §3.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Canon {
    /// `simple`.
    Simple,
    /// `relaxed`.
    Relaxed,
}

impl Canon {
    fn as_str(self) -> &'static str {
        match self {
            Canon::Simple => "simple",
            Canon::Relaxed => "relaxed",
        }
    }
    fn parse(s: &str) -> Option<Canon> {
        match s {
            "simple" => Some(Canon::Simple),
            "relaxed" => Some(Canon::Relaxed),
            _ => None,
        }
    }
}

/// The Chain Validation Status (RFC 8617 §4.4), as in `cv=` and `arc=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChainStatus {
    /// No chain on the message.
    None,
    /// A chain that validated.
    Pass,
    /// A chain that failed validation.
    Fail,
}

impl ChainStatus {
    /// `none`, `pass` or `fail`.
    pub fn as_str(self) -> &'static str {
        match self {
            ChainStatus::None => "none",
            ChainStatus::Pass => "pass",
            ChainStatus::Fail => "fail",
        }
    }
}

impl fmt::Display for ChainStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ChainStatus {
    type Err = ();
    /// `none`, `pass` or `fail`, in any case.
    fn from_str(s: &str) -> Result<Self, ()> {
        if s.eq_ignore_ascii_case("none") {
            Ok(ChainStatus::None)
        } else if s.eq_ignore_ascii_case("pass") {
            Ok(ChainStatus::Pass)
        } else if s.eq_ignore_ascii_case("fail") {
            Ok(ChainStatus::Fail)
        } else {
            Err(())
        }
    }
}

fn parse_instance(field: &'static str, v: &str) -> Result<u32, HeaderError> {
    let bad = || HeaderError::Invalid {
        field,
        tag: "i",
        value: v.to_string(),
    };
    if v.is_empty() || v.len() > 2 || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    match v.parse::<u32>() {
        Ok(n) if (1..=MAX_INSTANCE).contains(&n) => Ok(n),
        _ => Err(bad()),
    }
}

/// A domain name or selector: dot-separated labels of letters, digits,
/// `-` and `_` (and UTF-8, for U-labels), none empty or longer than 63.
pub(crate) fn valid_domain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b >= 0x80)
        })
}

fn parse_base64(field: &'static str, tag: &'static str, v: &str) -> Result<Vec<u8>, HeaderError> {
    let compact = strip_fws(v);
    match STANDARD.decode(compact.as_bytes()) {
        Ok(bytes) if !bytes.is_empty() => Ok(bytes),
        _ => Err(HeaderError::Invalid {
            field,
            tag,
            value: v.to_string(),
        }),
    }
}

fn parse_time(field: &'static str, v: &str) -> Result<u64, HeaderError> {
    if v.is_empty() || v.len() > 12 || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(HeaderError::Invalid {
            field,
            tag: "t",
            value: v.to_string(),
        });
    }
    v.parse().map_err(|_| HeaderError::Invalid {
        field,
        tag: "t",
        value: v.to_string(),
    })
}

struct Tags {
    field: &'static str,
    list: TagList,
}

impl Tags {
    fn parse(field: &'static str, value: &[u8]) -> Result<Tags, HeaderError> {
        TagList::parse(value)
            .map(|list| Tags { field, list })
            .map_err(|source| HeaderError::TagList { field, source })
    }
    fn opt(&self, tag: &str) -> Option<&str> {
        self.list.get(tag)
    }
    fn req(&self, tag: &'static str) -> Result<&str, HeaderError> {
        self.list.get(tag).ok_or(HeaderError::Missing {
            field: self.field,
            tag,
        })
    }
    fn invalid(&self, tag: &'static str, value: &str) -> HeaderError {
        HeaderError::Invalid {
            field: self.field,
            tag,
            value: value.to_string(),
        }
    }
    fn algorithm(&self) -> Result<Algorithm, HeaderError> {
        let v = self.req("a")?;
        v.parse().map_err(|()| self.invalid("a", v))
    }
    fn domain(&self, tag: &'static str) -> Result<String, HeaderError> {
        let v = self.req(tag)?;
        if valid_domain(v) {
            Ok(v.to_string())
        } else {
            Err(self.invalid(tag, v))
        }
    }
    fn time(&self) -> Result<Option<u64>, HeaderError> {
        self.opt("t").map(|v| parse_time(self.field, v)).transpose()
    }
    fn extra(&self, known: &[&str]) -> Vec<Tag> {
        self.list
            .tags
            .iter()
            .filter(|t| !known.contains(&t.name.as_str()))
            .cloned()
            .collect()
    }
}

/// An ARC-Seal header field (RFC 8617 §4.1.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArcSeal {
    /// `i=`: the instance, 1 to 50.
    pub instance: u32,
    /// `a=`.
    pub algorithm: Algorithm,
    /// `b=`: the signature, decoded.
    pub signature: Vec<u8>,
    /// `cv=`: the chain status the sealer saw.
    pub cv: ChainStatus,
    /// `d=`: the signing domain.
    pub domain: String,
    /// `s=`: the selector.
    pub selector: String,
    /// `t=`: when it was sealed, in seconds since the epoch.
    pub timestamp: Option<u64>,
    /// Tags this crate does not know, kept in order.
    pub extra: Vec<Tag>,
}

impl ArcSeal {
    /// Parses the value of an ARC-Seal header field.
    pub fn parse(value: &[u8]) -> Result<ArcSeal, HeaderError> {
        let t = Tags::parse(ARC_SEAL, value)?;
        if t.opt("h").is_some() {
            return Err(HeaderError::Forbidden {
                field: ARC_SEAL,
                tag: "h",
            });
        }
        let cv = t.req("cv")?;
        Ok(ArcSeal {
            instance: parse_instance(ARC_SEAL, t.req("i")?)?,
            algorithm: t.algorithm()?,
            signature: parse_base64(ARC_SEAL, "b", t.req("b")?)?,
            cv: cv.parse().map_err(|()| t.invalid("cv", cv))?,
            domain: t.domain("d")?,
            selector: t.domain("s")?,
            timestamp: t.time()?,
            extra: t.extra(&["i", "a", "b", "cv", "d", "s", "t"]),
        })
    }

    /// The value with `b=` given as `signature` (base64), in the
    /// standardized format.
    pub(crate) fn format(&self, b: &str) -> String {
        let mut s = alloc::format!(
            "a={}; b={}; cv={}; d={}; i={}; s={}",
            self.algorithm,
            b,
            self.cv,
            self.domain,
            self.instance,
            self.selector
        );
        if let Some(t) = self.timestamp {
            s.push_str(&alloc::format!("; t={t}"));
        }
        push_extra(&mut s, &self.extra);
        s
    }
}

fn push_extra(s: &mut String, extra: &[Tag]) {
    for tag in extra {
        s.push_str("; ");
        s.push_str(&tag.name);
        s.push('=');
        s.push_str(&tag.value);
    }
}

impl fmt::Display for ArcSeal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.format(&STANDARD.encode(&self.signature)))
    }
}

/// An ARC-Message-Signature header field (RFC 8617 §4.1.2): a DKIM
/// signature whose `i=` is the instance and which has no `v=`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArcMessageSignature {
    /// `i=`: the instance, 1 to 50.
    pub instance: u32,
    /// `a=`.
    pub algorithm: Algorithm,
    /// `b=`: the signature, decoded.
    pub signature: Vec<u8>,
    /// `bh=`: the body hash, decoded.
    pub body_hash: Vec<u8>,
    /// `c=`: header and body canonicalization (default `relaxed/relaxed`,
    /// see [`parse`](Self::parse)).
    pub canonicalization: (Canon, Canon),
    /// `d=`: the signing domain.
    pub domain: String,
    /// `h=`: the signed header fields, as written.
    pub headers: Vec<String>,
    /// `l=`: how many body bytes the hash covers.
    pub body_length: Option<u64>,
    /// `s=`: the selector.
    pub selector: String,
    /// `t=`: when it was signed.
    pub timestamp: Option<u64>,
    /// Tags this crate does not know, kept in order.
    pub extra: Vec<Tag>,
    /// Whether `c=` was written (so that `Display` round-trips).
    pub explicit_canonicalization: bool,
}

impl ArcMessageSignature {
    /// Parses the value of an ARC-Message-Signature header field.
    pub fn parse(value: &[u8]) -> Result<ArcMessageSignature, HeaderError> {
        let t = Tags::parse(ARC_MESSAGE_SIGNATURE, value)?;
        let field = ARC_MESSAGE_SIGNATURE;
        let canonicalization = match t.opt("c") {
            // RFC 8617 keeps DKIM's tags but ARC is relaxed throughout: an
            // AMS without c= is read as relaxed/relaxed, as dkimpy does and
            // the ValiMail suite expects (ams_fields_c_na).
            None => (Canon::Relaxed, Canon::Relaxed),
            Some(c) => {
                let (h, b) = c.split_once('/').unwrap_or((c, "simple"));
                match (Canon::parse(h), Canon::parse(b)) {
                    (Some(h), Some(b)) => (h, b),
                    _ => return Err(t.invalid("c", c)),
                }
            }
        };
        let h = t.req("h")?;
        let headers: Vec<String> = if trim_fws(h.as_bytes()).is_empty() {
            Vec::new()
        } else {
            let mut names = Vec::new();
            for name in h.split(':') {
                // An empty name ("from::to") selects nothing; the suite
                // expects it to verify (ams_fields_h_mis_hdr).
                let name = core::str::from_utf8(trim_fws(name.as_bytes())).unwrap_or_default();
                if !name.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
                    return Err(t.invalid("h", h));
                }
                names.push(name.to_string());
            }
            names
        };
        if headers.iter().any(|n| n.eq_ignore_ascii_case(ARC_SEAL)) {
            return Err(HeaderError::SignsSeal);
        }
        let body_length = match t.opt("l") {
            None => None,
            Some(l) => {
                if l.is_empty() || l.len() > 76 || !l.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(t.invalid("l", l));
                }
                Some(l.parse().map_err(|_| t.invalid("l", l))?)
            }
        };
        Ok(ArcMessageSignature {
            instance: parse_instance(field, t.req("i")?)?,
            algorithm: t.algorithm()?,
            signature: parse_base64(field, "b", t.req("b")?)?,
            body_hash: parse_base64(field, "bh", t.req("bh")?)?,
            canonicalization,
            domain: t.domain("d")?,
            headers,
            body_length,
            selector: t.domain("s")?,
            timestamp: t.time()?,
            extra: t.extra(&["i", "a", "b", "bh", "c", "d", "h", "l", "s", "t"]),
            explicit_canonicalization: t.opt("c").is_some(),
        })
    }

    /// The value with `b=` given as `b`, in the standardized format.
    pub(crate) fn format(&self, b: &str) -> String {
        let mut s = alloc::format!(
            "a={}; b={}; bh={}",
            self.algorithm,
            b,
            STANDARD.encode(&self.body_hash)
        );
        if self.explicit_canonicalization {
            s.push_str(&alloc::format!(
                "; c={}/{}",
                self.canonicalization.0.as_str(),
                self.canonicalization.1.as_str()
            ));
        }
        s.push_str(&alloc::format!(
            "; d={}; h={}; i={}",
            self.domain,
            self.headers.join(":"),
            self.instance
        ));
        if let Some(l) = self.body_length {
            s.push_str(&alloc::format!("; l={l}"));
        }
        s.push_str(&alloc::format!("; s={}", self.selector));
        if let Some(t) = self.timestamp {
            s.push_str(&alloc::format!("; t={t}"));
        }
        push_extra(&mut s, &self.extra);
        s
    }
}

impl fmt::Display for ArcMessageSignature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.format(&STANDARD.encode(&self.signature)))
    }
}

/// An ARC-Authentication-Results header field (RFC 8617 §4.1.1):
/// `i=N;` followed by an Authentication-Results payload (RFC 8601).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArcAuthenticationResults {
    /// `i=`: the instance, 1 to 50.
    pub instance: u32,
    /// The authserv-id (the first token of the payload).
    pub authserv_id: String,
    /// The payload after `i=N;`, trimmed, folding kept.
    pub payload: String,
}

/// Skips `CFWS` (whitespace and nested comments) from `pos`.
pub(crate) fn skip_cfws(s: &[u8], mut pos: usize) -> usize {
    loop {
        match s.get(pos) {
            Some(b) if crate::tags::is_fws(*b) => pos += 1,
            Some(b'(') => {
                let mut depth = 0usize;
                while let Some(&b) = s.get(pos) {
                    pos += 1;
                    match b {
                        b'\\' => pos += 1,
                        b'(' => depth += 1,
                        b')' => {
                            depth = depth.saturating_sub(1);
                            if depth == 0 {
                                break;
                            }
                        }
                        _ => {}
                    }
                }
            }
            _ => return pos,
        }
    }
}

impl ArcAuthenticationResults {
    /// Parses the value of an ARC-Authentication-Results header field.
    pub fn parse(value: &[u8]) -> Result<ArcAuthenticationResults, HeaderError> {
        let field = ARC_AUTHENTICATION_RESULTS;
        let mut pos = skip_cfws(value, 0);
        if value.get(pos) != Some(&b'i') {
            return Err(HeaderError::AarPrefix("does not start with i="));
        }
        pos = skip_cfws(value, pos + 1);
        if value.get(pos) != Some(&b'=') {
            return Err(HeaderError::AarPrefix("does not start with i="));
        }
        pos = skip_cfws(value, pos + 1);
        let digits = value
            .get(pos..)
            .unwrap_or_default()
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        let number = core::str::from_utf8(value.get(pos..pos + digits).unwrap_or_default())
            .unwrap_or_default();
        if digits == 0 {
            let end = value
                .get(pos..)
                .unwrap_or_default()
                .iter()
                .position(|&b| b == b';' || crate::tags::is_fws(b))
                .map_or(value.len(), |n| pos + n);
            return Err(HeaderError::Invalid {
                field,
                tag: "i",
                value: String::from_utf8_lossy(value.get(pos..end).unwrap_or_default())
                    .into_owned(),
            });
        }
        let instance = parse_instance(field, number)?;
        pos = skip_cfws(value, pos + digits);
        if value.get(pos) != Some(&b';') {
            return Err(HeaderError::AarPrefix("no \";\" after the instance"));
        }
        let payload = trim_fws(value.get(pos + 1..).unwrap_or_default());
        let payload = String::from_utf8_lossy(payload).into_owned();
        let start = skip_cfws(payload.as_bytes(), 0);
        let authserv_id: String = payload
            .get(start..)
            .unwrap_or_default()
            .chars()
            .take_while(|c| *c != ';' && *c != '(' && !c.is_ascii_whitespace())
            .collect();
        if authserv_id.is_empty() {
            return Err(HeaderError::AarPrefix("no authserv-id"));
        }
        Ok(ArcAuthenticationResults {
            instance,
            authserv_id,
            payload,
        })
    }
}

impl fmt::Display for ArcAuthenticationResults {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "i={}; {}", self.instance, self.payload)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AS: &[u8] = b" a=rsa-sha256;\r\n    b=dOdFEyhrk/tw5wl3vMIogoxhaVsKJkrkEhnAcq2XqOLSQhPpGzhGBJzR7k1sWGokon3TmQ\r\n    7TX9zQLO6ikRpwd/pUswiRW5DBupy58fefuclXJAhErsrebfvfiueGyhHXV7C1LyJTztywzn\r\n    QGG4SCciU/FTlsJ0QANrnLRoadfps=; cv=none; d=example.org; i=1; s=dummy;\r\n    t=12345";

    #[test]
    fn arc_seal_round_trips() {
        let seal = ArcSeal::parse(AS).unwrap();
        assert_eq!(seal.instance, 1);
        assert_eq!(seal.cv, ChainStatus::None);
        assert_eq!(seal.timestamp, Some(12345));
        let text = seal.to_string();
        assert!(text.starts_with("a=rsa-sha256; b=dOdFEyhrk/tw5"));
        assert!(text.ends_with("; cv=none; d=example.org; i=1; s=dummy; t=12345"));
        assert_eq!(ArcSeal::parse(text.as_bytes()).unwrap(), seal);
    }

    #[test]
    fn arc_seal_field_errors() {
        let with = |from: &str, to: &str| {
            let s = String::from_utf8_lossy(AS).replace(from, to);
            ArcSeal::parse(s.as_bytes())
        };
        for (from, to) in [
            ("i=1", "i=0"),
            ("i=1", "i=51"),
            ("i=1", "i=blorp"),
            ("i=1", "i="),
            ("i=1;", ""),
            ("cv=none", "cv="),
            ("cv=none", "cv=:)"),
            ("d=example.org", "d=***"),
            ("d=example.org", "d=example..."),
            ("s=dummy", "s="),
            ("t=12345", "t="),
            ("t=12345", "t=-123.4"),
            ("a=rsa-sha256", "a=rsa-sha1"),
            ("a=rsa-sha256", "a="),
            ("b=dOdF", "b=!!!"),
            ("t=12345", "t=12345; h=from"),
        ] {
            assert!(with(from, to).is_err(), "{from} -> {to}");
        }
        assert_eq!(
            with("cv=none", "cv=Pass").unwrap().cv,
            ChainStatus::Pass,
            "cv is case-insensitive"
        );
        assert!(with("t=12345", "t=12345; w=catparty").is_ok());
    }

    #[test]
    fn ams_parses_and_round_trips() {
        let v = b" a=rsa-sha256;\r\n b=QsRzR/UqwRfV; bh=KWSe46TZKCcDbH4klJPo+tjk5LWJnVRlP5pvjXFZYLQ= ;\r\n d=example.org; h=from : to:\r\n date; i=1; s=dummy; t=12345";
        let ams = ArcMessageSignature::parse(v).unwrap();
        assert_eq!(ams.headers, ["from", "to", "date"]);
        assert_eq!(ams.canonicalization, (Canon::Relaxed, Canon::Relaxed));
        assert!(!ams.explicit_canonicalization);
        let text = ams.to_string();
        assert_eq!(
            text,
            "a=rsa-sha256; b=QsRzR/UqwRfV; bh=KWSe46TZKCcDbH4klJPo+tjk5LWJnVRlP5pvjXFZYLQ=; d=example.org; h=from:to:date; i=1; s=dummy; t=12345"
        );
        assert_eq!(ArcMessageSignature::parse(text.as_bytes()).unwrap(), ams);
    }

    #[test]
    fn ams_field_rules() {
        let base =
            "a=rsa-sha256; b=QsRz; bh=KWSe; c=relaxed/relaxed; d=example.org; h=from; i=1; s=dummy";
        let with =
            |from: &str, to: &str| ArcMessageSignature::parse(base.replace(from, to).as_bytes());
        assert!(with("h=from", "h=").unwrap().headers.is_empty());
        assert_eq!(
            with("c=relaxed/relaxed", "c=relaxed")
                .unwrap()
                .canonicalization,
            (Canon::Relaxed, Canon::Simple)
        );
        for (from, to) in [
            ("c=relaxed/relaxed", "c="),
            ("c=relaxed/relaxed", "c=pancake/waffle"),
            ("h=from", "h=from:arc-seal"),
            ("h=from; ", ""),
            ("bh=KWSe", "bh="),
            ("d=example.org", "d="),
        ] {
            assert!(with(from, to).is_err(), "{from} -> {to}");
        }
    }

    #[test]
    fn aar_prefix() {
        let aar = ArcAuthenticationResults::parse(
            b" i=1; lists.example.org;\r\n    spf=pass smtp.mfrom=jqd@d1.example",
        )
        .unwrap();
        assert_eq!(aar.instance, 1);
        assert_eq!(aar.authserv_id, "lists.example.org");
        assert_eq!(
            aar.to_string(),
            "i=1; lists.example.org;\r\n    spf=pass smtp.mfrom=jqd@d1.example"
        );
        assert_eq!(
            ArcAuthenticationResults::parse(aar.to_string().as_bytes()).unwrap(),
            aar
        );
        for bad in [
            &b" lists.example.org; spf=pass"[..],
            b" i=; lists.example.org",
            b" i=0; lists.example.org",
            b" i=squanch; lists.example.org",
            b" lists.example.org; i=1; spf=pass",
            b" i=1 lists.example.org; spf=pass",
        ] {
            assert!(ArcAuthenticationResults::parse(bad).is_err());
        }
        assert_eq!(
            ArcAuthenticationResults::parse(b" (c) i (x) = 7 ; mx.example; none")
                .unwrap()
                .instance,
            7
        );
    }
}

#[cfg(test)]
mod proptests {
    use super::*;
    use alloc::format;
    use proptest::prelude::*;

    fn domain() -> impl Strategy<Value = String> {
        "[a-z0-9][a-z0-9-]{0,8}(\\.[a-z0-9][a-z0-9-]{0,8}){0,3}"
    }

    fn extra(known: &'static [&'static str]) -> impl Strategy<Value = Vec<Tag>> {
        proptest::collection::btree_map("[x-z][a-z0-9_]{0,5}", "[!-:<-~]{0,12}", 0..3).prop_map(
            move |m| {
                m.into_iter()
                    .filter(|(k, _)| !known.contains(&k.as_str()))
                    .map(|(name, value)| Tag { name, value })
                    .collect()
            },
        )
    }

    fn status() -> impl Strategy<Value = ChainStatus> {
        prop_oneof![
            Just(ChainStatus::None),
            Just(ChainStatus::Pass),
            Just(ChainStatus::Fail)
        ]
    }

    fn algorithm() -> impl Strategy<Value = Algorithm> {
        prop_oneof![Just(Algorithm::RsaSha256), Just(Algorithm::Ed25519Sha256)]
    }

    proptest! {
        #[test]
        fn arc_seal_round_trips(
            instance in 1u32..=50,
            algorithm in algorithm(),
            signature in proptest::collection::vec(any::<u8>(), 1..300),
            cv in status(),
            domain in domain(),
            selector in domain(),
            timestamp in proptest::option::of(0u64..999_999_999_999),
            extra in extra(&[]),
        ) {
            let seal = ArcSeal { instance, algorithm, signature, cv, domain, selector, timestamp, extra };
            let text = seal.to_string();
            prop_assert_eq!(ArcSeal::parse(text.as_bytes()), Ok(seal));
        }

        #[test]
        fn ams_round_trips(
            instance in 1u32..=50,
            algorithm in algorithm(),
            signature in proptest::collection::vec(any::<u8>(), 1..300),
            body_hash in proptest::collection::vec(any::<u8>(), 32),
            c in (0u8..2, 0u8..2, any::<bool>()),
            domain in domain(),
            headers in proptest::collection::vec("[a-z][a-z0-9-]{0,15}", 0..8),
            body_length in proptest::option::of(any::<u64>()),
            selector in domain(),
            timestamp in proptest::option::of(0u64..999_999_999_999),
            extra in extra(&[]),
        ) {
            let canon = |n| if n == 0 { Canon::Simple } else { Canon::Relaxed };
            let ams = ArcMessageSignature {
                instance, algorithm, signature, body_hash,
                canonicalization: if c.2 { (canon(c.0), canon(c.1)) } else { (Canon::Relaxed, Canon::Relaxed) },
                domain, headers, body_length, selector, timestamp, extra,
                explicit_canonicalization: c.2,
            };
            let text = ams.to_string();
            prop_assert_eq!(ArcMessageSignature::parse(text.as_bytes()), Ok(ams));
        }

        #[test]
        fn aar_round_trips(
            instance in 1u32..=50,
            id in domain(),
            results in "[ -:<-~]{0,40}(; [ -:<-~]{1,40}){0,3}",
        ) {
            let payload = format!("{id}; {results}").trim().to_string();
            let aar = ArcAuthenticationResults { instance, authserv_id: id, payload };
            let text = aar.to_string();
            prop_assert_eq!(ArcAuthenticationResults::parse(text.as_bytes()), Ok(aar));
        }

        #[test]
        fn tag_lists_round_trip(pairs in proptest::collection::btree_map("[a-zA-Z][a-zA-Z0-9_]{0,6}", "([!-:<-~]{1,10}( [!-:<-~]{1,10})?)?", 0..6)) {
            let list = TagList { tags: pairs.into_iter().map(|(name, value)| Tag { name, value }).collect() };
            prop_assert_eq!(TagList::parse(list.to_string().as_bytes()), Ok(list));
        }
    }
}
