//! The `DKIM-Signature` header field value (RFC 6376 §3.5) as a parsed form.

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;

use crate::tag::{Tag, TagListError, is_fws, parse_tag_list, trim_fws};

/// A signing algorithm (`a=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// `rsa-sha256` (RFC 6376).
    RsaSha256,
    /// `ed25519-sha256` (RFC 8463).
    Ed25519Sha256,
    /// `rsa-sha1`: parsed so that it can be reported; never valid (RFC 8301).
    RsaSha1,
}

impl Algorithm {
    /// The name as written in `a=`.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::RsaSha256 => "rsa-sha256",
            Algorithm::Ed25519Sha256 => "ed25519-sha256",
            Algorithm::RsaSha1 => "rsa-sha1",
        }
    }

    /// Parses `a=` (case-insensitive).
    pub fn parse(s: &str) -> Option<Self> {
        [
            Algorithm::RsaSha256,
            Algorithm::Ed25519Sha256,
            Algorithm::RsaSha1,
        ]
        .into_iter()
        .find(|a| a.as_str().eq_ignore_ascii_case(s))
    }

    /// The key type (`k=`) this algorithm needs.
    pub fn key_type(self) -> &'static str {
        match self {
            Algorithm::RsaSha256 | Algorithm::RsaSha1 => "rsa",
            Algorithm::Ed25519Sha256 => "ed25519",
        }
    }

    /// The hash name as key records list it in `h=`.
    pub fn hash_name(self) -> &'static str {
        match self {
            Algorithm::RsaSha1 => "sha1",
            _ => "sha256",
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A canonicalization algorithm (RFC 6376 §3.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Canonicalization {
    /// `simple`: (almost) no change.
    #[default]
    Simple,
    /// `relaxed`: whitespace and header-name case normalized.
    Relaxed,
}

impl Canonicalization {
    /// The name as written in `c=`.
    pub fn as_str(self) -> &'static str {
        match self {
            Canonicalization::Simple => "simple",
            Canonicalization::Relaxed => "relaxed",
        }
    }

    /// Parses one half of `c=` (case-insensitive).
    pub fn parse(s: &str) -> Option<Self> {
        if s.eq_ignore_ascii_case("simple") {
            Some(Canonicalization::Simple)
        } else if s.eq_ignore_ascii_case("relaxed") {
            Some(Canonicalization::Relaxed)
        } else {
            None
        }
    }

    /// Parses a whole `c=` value (`header/body`, or `header` alone meaning
    /// `header/simple`).
    pub fn parse_pair(s: &str) -> Option<(Self, Self)> {
        match s.split_once('/') {
            Some((h, b)) => Some((Self::parse(h.trim())?, Self::parse(b.trim())?)),
            None => Some((Self::parse(s.trim())?, Canonicalization::Simple)),
        }
    }
}

impl fmt::Display for Canonicalization {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a `DKIM-Signature` value does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureError {
    /// The tag list itself is malformed.
    #[error(transparent)]
    TagList(#[from] TagListError),
    /// A required tag is absent.
    #[error("DKIM-Signature: required tag {0}= is missing")]
    Missing(&'static str),
    /// `v=` is not `1`.
    #[error("DKIM-Signature: v={0:?} is not 1")]
    Version(String),
    /// `a=` names no known algorithm.
    #[error("DKIM-Signature: unknown algorithm a={0:?}")]
    Algorithm(String),
    /// `c=` is not `simple`/`relaxed` pairs.
    #[error("DKIM-Signature: bad canonicalization c={0:?}")]
    Canonicalization(String),
    /// `d=`, `s=` or the domain of `i=` is not a domain name.
    #[error("DKIM-Signature: {tag}={value:?} is not a domain name")]
    Domain {
        /// The tag.
        tag: &'static str,
        /// The value.
        value: String,
    },
    /// `i=` has no `@`.
    #[error("DKIM-Signature: i={0:?} has no @")]
    Identity(String),
    /// `h=` holds an empty or malformed header name.
    #[error("DKIM-Signature: bad header list h={0:?}")]
    Headers(String),
    /// A base64 value does not decode.
    #[error("DKIM-Signature: {tag}= is not base64: {value:?}")]
    Base64 {
        /// The tag.
        tag: &'static str,
        /// The value.
        value: String,
    },
    /// A number (`t=`, `x=`, `l=`) is malformed or too large.
    #[error("DKIM-Signature: {tag}={value:?} is not a number")]
    Number {
        /// The tag.
        tag: &'static str,
        /// The value.
        value: String,
    },
    /// A value is not UTF-8.
    #[error("DKIM-Signature: {0}= is not UTF-8")]
    Utf8(&'static str),
}

/// A parsed `DKIM-Signature` (RFC 6376 §3.5).
///
/// `Display` writes the tags in a fixed order on one line (`b=` last) and
/// `parse` reads that form back to an equal value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DkimSignature {
    /// `a=`.
    pub algorithm: Algorithm,
    /// `c=`, header half.
    pub header_canon: Canonicalization,
    /// `c=`, body half.
    pub body_canon: Canonicalization,
    /// `d=`: the signing domain.
    pub domain: String,
    /// `s=`: the selector.
    pub selector: String,
    /// `h=`: the signed header names, in order, as written.
    pub headers: HeaderNames,
    /// `bh=`: the body hash.
    pub body_hash: Vec<u8>,
    /// `b=`: the signature (empty while signing).
    pub signature: Vec<u8>,
    /// `i=`: the agent or user identifier (`[local]@domain`).
    pub identity: Option<String>,
    /// `l=`: the number of canonical body bytes signed.
    pub body_length: Option<u64>,
    /// `q=`, as written (`dns/txt`).
    pub query_methods: Option<String>,
    /// `t=`: signing time (seconds since the epoch).
    pub timestamp: Option<u64>,
    /// `x=`: expiry time (seconds since the epoch).
    pub expiration: Option<u64>,
    /// `z=`: copied header fields, as written.
    pub copied_headers: Option<String>,
    /// Tags this implementation does not know, kept in order (RFC 6376 says
    /// to ignore them).
    pub unknown: Vec<(String, String)>,
}

pub(crate) fn valid_domain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 255
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b >= 0x80)
        })
}

pub(crate) fn valid_header_name(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| (0x21..=0x7e).contains(&b) && b != b':')
}

fn text<'a>(tag: &Tag<'a>, name: &'static str) -> Result<&'a str, SignatureError> {
    core::str::from_utf8(tag.value).map_err(|_| SignatureError::Utf8(name))
}

pub(crate) fn number(value: &[u8], tag: &'static str) -> Result<u64, SignatureError> {
    let err = || SignatureError::Number {
        tag,
        value: String::from_utf8_lossy(value).into_owned(),
    };
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return Err(err());
    }
    value
        .iter()
        .try_fold(0u64, |acc, d| {
            acc.checked_mul(10)?.checked_add(u64::from(d - b'0'))
        })
        .ok_or_else(err)
}

pub(crate) fn base64(tag: &Tag<'_>, name: &'static str) -> Result<Vec<u8>, SignatureError> {
    let decoded = if !tag.value.iter().any(|&b| is_fws(b)) {
        // Not folded (as `bh=` usually is): decoded where it stands.
        B64.decode(tag.value)
    } else if tag.value.len() <= 128 {
        // The folds taken out on the stack, in a buffer sized to the value
        // (an Ed25519 `b=` is 88 characters, a 4096-bit RSA one 684): no
        // allocation but the result's, and little to clear.
        decode_unfolded(tag, &mut [0u8; 128])
    } else {
        decode_unfolded(tag, &mut [0u8; 1024])
    };
    decoded.map_err(|_| SignatureError::Base64 {
        tag: name,
        value: String::from_utf8_lossy(tag.value).into_owned(),
    })
}

/// The base64 value of `tag` decoded with its folds taken out, in `stack`
/// when it fits, else on the heap.
fn decode_unfolded(tag: &Tag<'_>, stack: &mut [u8]) -> Result<Vec<u8>, base64::DecodeError> {
    match tag.value_without_whitespace_in(stack) {
        Some(unfolded) => B64.decode(unfolded),
        None => B64.decode(tag.value_without_whitespace()),
    }
}

/// The first name of a colon-separated list and the list after its colon
/// (`None` when it was the last): `h=` is read and its names given out a
/// byte at a time, as names are a few ASCII bytes (a split by a char
/// pattern decodes every character, a split by `':'` calls memchr per
/// name).
fn first_name(list: &str) -> (&str, Option<&str>) {
    match list.bytes().position(|b| b == b':') {
        Some(colon) => (list.get(..colon).unwrap_or_default(), list.get(colon + 1..)),
        None => (list, None),
    }
}

/// Splits an `h=` value into header names.
pub(crate) fn header_list(value: &str) -> Option<HeaderNames> {
    let mut names = HeaderNames {
        joined: String::with_capacity(value.len()),
    };
    let mut rest = Some(value);
    while let Some(list) = rest {
        let (name, after) = first_name(list);
        if !names.push(trim_fws(name)) {
            return None;
        }
        rest = after;
    }
    Some(names)
}

/// The header field names of a signature's `h=`, in order and as written,
/// held as one string: a signature's parse allocates once for all of
/// them. Every name is a valid field name (printable ASCII, no colon).
///
/// ```
/// use ptt_dkim::HeaderNames;
/// let h = HeaderNames::from_names(["From", "to", "Subject"]).unwrap();
/// assert_eq!(h.len(), 3);
/// assert_eq!(h.get(1), Some("to"));
/// assert!(h.contains("FROM"));
/// assert_eq!(h.to_string(), "From:to:Subject");
/// assert_eq!(h.iter().collect::<Vec<_>>(), ["From", "to", "Subject"]);
/// assert!(HeaderNames::from_names(["From", "a:b"]).is_none());
/// assert!(HeaderNames::new().is_empty());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct HeaderNames {
    /// The names joined by `:` (empty for none: a name is never empty).
    joined: String,
}

impl HeaderNames {
    /// No names.
    pub fn new() -> Self {
        HeaderNames::default()
    }

    /// The names given, in order; `None` when one is not a valid header
    /// field name (empty, or with a byte outside `!`..`~`, or a colon).
    pub fn from_names<S: AsRef<str>>(names: impl IntoIterator<Item = S>) -> Option<Self> {
        let mut out = HeaderNames::new();
        for name in names {
            if !out.push(name.as_ref()) {
                return None;
            }
        }
        Some(out)
    }

    /// Appends `name`; false (and nothing appended) when it is not a valid
    /// header field name.
    pub fn push(&mut self, name: &str) -> bool {
        if !valid_header_name(name) {
            return false;
        }
        if !self.joined.is_empty() {
            self.joined.push(':');
        }
        self.joined.push_str(name);
        true
    }

    /// How many names.
    pub fn len(&self) -> usize {
        self.iter().count()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.joined.is_empty()
    }

    /// The name at `index`.
    pub fn get(&self, index: usize) -> Option<&str> {
        self.iter().nth(index)
    }

    /// True when one of the names is `name`, ignoring ASCII case.
    pub fn contains(&self, name: &str) -> bool {
        self.iter().any(|n| n.eq_ignore_ascii_case(name))
    }

    /// The names in order.
    pub fn iter(&self) -> HeaderNamesIter<'_> {
        HeaderNamesIter { rest: &self.joined }
    }

    /// The names joined by `:`, as `h=` is written.
    pub fn as_str(&self) -> &str {
        &self.joined
    }
}

impl fmt::Display for HeaderNames {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.joined)
    }
}

impl<'a> IntoIterator for &'a HeaderNames {
    type Item = &'a str;
    type IntoIter = HeaderNamesIter<'a>;
    fn into_iter(self) -> HeaderNamesIter<'a> {
        self.iter()
    }
}

/// The names of a [`HeaderNames`], in order.
#[derive(Debug, Clone)]
pub struct HeaderNamesIter<'a> {
    /// The names not yet given, joined by `:` (empty when all were: a name
    /// is never empty).
    rest: &'a str,
}

impl<'a> Iterator for HeaderNamesIter<'a> {
    type Item = &'a str;
    fn next(&mut self) -> Option<&'a str> {
        if self.rest.is_empty() {
            return None;
        }
        let (name, after) = first_name(self.rest);
        self.rest = after.unwrap_or_default();
        Some(name)
    }
}

/// The tags of a `DKIM-Signature` that RFC 6376 defines, found by name.
#[derive(Default)]
struct KnownTags<'t, 'a> {
    v: Option<&'t Tag<'a>>,
    a: Option<&'t Tag<'a>>,
    c: Option<&'t Tag<'a>>,
    d: Option<&'t Tag<'a>>,
    s: Option<&'t Tag<'a>>,
    h: Option<&'t Tag<'a>>,
    bh: Option<&'t Tag<'a>>,
    b: Option<&'t Tag<'a>>,
    i: Option<&'t Tag<'a>>,
    l: Option<&'t Tag<'a>>,
    q: Option<&'t Tag<'a>>,
    t: Option<&'t Tag<'a>>,
    x: Option<&'t Tag<'a>>,
    z: Option<&'t Tag<'a>>,
}

impl DkimSignature {
    /// Parses a `DKIM-Signature` header field value (what follows the colon).
    pub fn parse(value: &[u8]) -> Result<Self, SignatureError> {
        let tags = parse_tag_list(value)?;
        Self::from_tags(&tags, true)
    }

    /// Builds the parsed form from an already parsed tag list. With
    /// `require_version` false, `v=` may be absent (ARC-Message-Signature
    /// uses this form, with `i=` the ARC instance, left in `unknown`).
    pub fn from_tags(tags: &[Tag<'_>], require_version: bool) -> Result<Self, SignatureError> {
        // One pass sorts the tags by name (a lookup per tag would compare
        // every name with every other); the checks below then run in the
        // order of RFC 6376 §3.5, so the first fault is the one reported.
        let mut known = KnownTags::default();
        let mut unknown = Vec::new();
        for t in tags {
            let slot = match t.name.as_bytes() {
                b"v" => &mut known.v,
                b"a" => &mut known.a,
                b"c" => &mut known.c,
                b"d" => &mut known.d,
                b"s" => &mut known.s,
                b"h" => &mut known.h,
                b"bh" => &mut known.bh,
                b"b" => &mut known.b,
                // ARC-Message-Signature's i= is the ARC instance.
                b"i" if require_version => &mut known.i,
                b"l" => &mut known.l,
                b"q" => &mut known.q,
                b"t" => &mut known.t,
                b"x" => &mut known.x,
                b"z" => &mut known.z,
                _ => {
                    unknown.push((
                        t.name.to_string(),
                        String::from_utf8_lossy(t.value).into_owned(),
                    ));
                    continue;
                }
            };
            *slot = Some(t);
        }
        match known.v {
            Some(v) if v.value != b"1" => {
                return Err(SignatureError::Version(
                    String::from_utf8_lossy(v.value).into_owned(),
                ));
            }
            None if require_version => return Err(SignatureError::Missing("v")),
            _ => {}
        }
        let a = text(known.a.ok_or(SignatureError::Missing("a"))?, "a")?;
        let algorithm = Algorithm::parse(a).ok_or_else(|| SignatureError::Algorithm(a.into()))?;
        let (header_canon, body_canon) = match known.c {
            Some(c) => {
                let c = text(c, "c")?;
                Canonicalization::parse_pair(c)
                    .ok_or_else(|| SignatureError::Canonicalization(c.into()))?
            }
            None => (Canonicalization::Simple, Canonicalization::Simple),
        };
        let d = text(known.d.ok_or(SignatureError::Missing("d"))?, "d")?;
        if !valid_domain(d) {
            return Err(SignatureError::Domain {
                tag: "d",
                value: d.into(),
            });
        }
        let s = text(known.s.ok_or(SignatureError::Missing("s"))?, "s")?;
        if !valid_domain(s) {
            return Err(SignatureError::Domain {
                tag: "s",
                value: s.into(),
            });
        }
        let h = text(known.h.ok_or(SignatureError::Missing("h"))?, "h")?;
        let headers = header_list(h).ok_or_else(|| SignatureError::Headers(h.into()))?;
        let body_hash = base64(known.bh.ok_or(SignatureError::Missing("bh"))?, "bh")?;
        let signature = base64(known.b.ok_or(SignatureError::Missing("b"))?, "b")?;
        let identity = match known.i {
            Some(i) => {
                let i = text(i, "i")?;
                let (_, dom) = i
                    .rsplit_once('@')
                    .ok_or_else(|| SignatureError::Identity(i.into()))?;
                if !valid_domain(dom) {
                    return Err(SignatureError::Domain {
                        tag: "i",
                        value: i.into(),
                    });
                }
                Some(i.to_string())
            }
            None => None,
        };
        let num = |t: Option<&Tag<'_>>, n: &'static str| t.map(|t| number(t.value, n)).transpose();
        Ok(DkimSignature {
            algorithm,
            header_canon,
            body_canon,
            domain: d.into(),
            selector: s.into(),
            headers,
            body_hash,
            signature,
            identity,
            body_length: num(known.l, "l")?,
            query_methods: known
                .q
                .map(|q| text(q, "q").map(String::from))
                .transpose()?,
            timestamp: num(known.t, "t")?,
            expiration: num(known.x, "x")?,
            copied_headers: known
                .z
                .map(|z| text(z, "z").map(String::from))
                .transpose()?,
            unknown,
        })
    }

    /// The domain of the identity: `i=`'s domain, or `d=` when `i=` is absent.
    pub fn identity_domain(&self) -> &str {
        self.identity
            .as_deref()
            .and_then(|i| i.rsplit_once('@'))
            .map_or(self.domain.as_str(), |(_, d)| d)
    }

    /// The DNS name of the key record: `SELECTOR._domainkey.DOMAIN`.
    pub fn key_name(&self) -> String {
        // Sized once (a format! grows it three times).
        const LABEL: &str = "._domainkey.";
        let mut name = String::with_capacity(self.selector.len() + LABEL.len() + self.domain.len());
        name.push_str(&self.selector);
        name.push_str(LABEL);
        name.push_str(&self.domain);
        name
    }

    /// Writes every tag but `b=`'s value: `...; bh=...; b=`.
    pub(crate) fn write_unsigned(&self, f: &mut impl fmt::Write) -> fmt::Result {
        self.unsigned_tags().write(f)
    }

    /// This signature's tags but `b=`'s value, borrowed.
    pub(crate) fn unsigned_tags(&self) -> UnsignedTags<'_, &HeaderNames> {
        UnsignedTags {
            algorithm: self.algorithm,
            header_canon: self.header_canon,
            body_canon: self.body_canon,
            domain: &self.domain,
            selector: &self.selector,
            identity: self.identity.as_deref(),
            query_methods: self.query_methods.as_deref(),
            timestamp: self.timestamp,
            expiration: self.expiration,
            body_length: self.body_length,
            headers: &self.headers,
            lowercase_headers: false,
            copied_headers: self.copied_headers.as_deref(),
            unknown: &self.unknown,
            body_hash: &self.body_hash,
        }
    }
}

/// A signature's tags but `b=`'s value, borrowed: what a signer writes and
/// signs, built from its configuration without copying it.
pub(crate) struct UnsignedTags<'a, N> {
    pub(crate) algorithm: Algorithm,
    pub(crate) header_canon: Canonicalization,
    pub(crate) body_canon: Canonicalization,
    pub(crate) domain: &'a str,
    pub(crate) selector: &'a str,
    pub(crate) identity: Option<&'a str>,
    pub(crate) query_methods: Option<&'a str>,
    pub(crate) timestamp: Option<u64>,
    pub(crate) expiration: Option<u64>,
    pub(crate) body_length: Option<u64>,
    /// `h=`, as written or (with `lowercase_headers`) in lower case.
    pub(crate) headers: N,
    pub(crate) lowercase_headers: bool,
    pub(crate) copied_headers: Option<&'a str>,
    pub(crate) unknown: &'a [(String, String)],
    pub(crate) body_hash: &'a [u8],
}

impl<N: IntoIterator<Item: AsRef<str>> + Copy> UnsignedTags<'_, N> {
    /// Writes `v=1; a=...; bh=...; b=` (the order ptt signs in).
    pub(crate) fn write(&self, f: &mut impl fmt::Write) -> fmt::Result {
        // Piece by piece, with no formatting machinery or temporary
        // strings: a signer writes this once per message.
        for piece in [
            "v=1; a=",
            self.algorithm.as_str(),
            "; c=",
            self.header_canon.as_str(),
            "/",
            self.body_canon.as_str(),
            "; d=",
            self.domain,
            "; s=",
            self.selector,
            ";",
        ] {
            f.write_str(piece)?;
        }
        let tag = |f: &mut dyn fmt::Write, name: &str, value: &str| {
            f.write_str(" ")?;
            f.write_str(name)?;
            f.write_str("=")?;
            f.write_str(value)?;
            f.write_str(";")
        };
        if let Some(i) = self.identity {
            tag(f, "i", i)?;
        }
        if let Some(q) = self.query_methods {
            tag(f, "q", q)?;
        }
        if let Some(t) = self.timestamp {
            write!(f, " t={t};")?;
        }
        if let Some(x) = self.expiration {
            write!(f, " x={x};")?;
        }
        if let Some(l) = self.body_length {
            write!(f, " l={l};")?;
        }
        f.write_str(" h=")?;
        for (k, name) in self.headers.into_iter().enumerate() {
            if k > 0 {
                f.write_str(":")?;
            }
            let name = name.as_ref();
            if self.lowercase_headers {
                for c in name.chars() {
                    f.write_char(c.to_ascii_lowercase())?;
                }
            } else {
                f.write_str(name)?;
            }
        }
        f.write_str(";")?;
        if let Some(z) = self.copied_headers {
            tag(f, "z", z)?;
        }
        for (k, v) in self.unknown {
            tag(f, k, v)?;
        }
        // A `bh=` of up to 48 bytes (a SHA-256 digest is 32) is encoded on
        // the stack; a longer one (only from a parsed signature) takes the
        // allocating way.
        let (mut stack, mut heap) = ([0u8; 64], String::new());
        f.write_str(" bh=")?;
        f.write_str(base64_in(self.body_hash, &mut stack, &mut heap))?;
        f.write_str("; b=")
    }
}

/// Base64 of `data`, written into `stack` when it fits there, else into
/// `heap`: a signer encodes `bh=` and `b=` once per message, and most fit.
pub(crate) fn base64_in<'a>(data: &[u8], stack: &'a mut [u8], heap: &'a mut String) -> &'a str {
    match B64.encode_slice(data, &mut *stack) {
        Ok(n) => stack
            .get(..n)
            .and_then(|b| core::str::from_utf8(b).ok())
            .unwrap_or_default(),
        Err(_) => {
            *heap = B64.encode(data);
            heap
        }
    }
}

impl fmt::Display for DkimSignature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_unsigned(f)?;
        f.write_str(&B64.encode(&self.signature))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RFC8463: &[u8] = b"v=1; a=ed25519-sha256; c=relaxed/relaxed;\r\n d=football.example.com; i=@football.example.com;\r\n q=dns/txt; s=brisbane; t=1528637909; h=from : to :\r\n subject : date : message-id : from : subject : date;\r\n bh=2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=;\r\n b=/gCrinpcQOoIfuHNQIbq4pgh9kyIK3AQUdt9OdqQehSwhEIug4D11Bus\r\n Fa3bT3FY5OsU7ZbnKELq+eXdp1Q1Dw==";

    #[test]
    fn parses_rfc8463_and_round_trips() {
        let sig = DkimSignature::parse(RFC8463).unwrap();
        assert_eq!(sig.algorithm, Algorithm::Ed25519Sha256);
        assert_eq!(sig.headers.len(), 8);
        assert_eq!(sig.headers.get(4), Some("message-id"));
        assert_eq!(sig.headers.get(8), None);
        assert_eq!(sig.signature.len(), 64);
        assert_eq!(sig.identity_domain(), "football.example.com");
        assert_eq!(sig.key_name(), "brisbane._domainkey.football.example.com");
        let again = DkimSignature::parse(sig.to_string().as_bytes()).unwrap();
        assert_eq!(again, sig);
    }

    /// b= folded anywhere decodes as unfolded, on either side of each
    /// stack buffer's size (128 bytes, a kilobyte) and past both (an
    /// 8192-bit signature); bad base64 is an error either way.
    #[test]
    fn base64_values_unfold_short_and_long() {
        for bytes in [1usize, 64, 90, 91, 96, 512, 720, 760, 1024] {
            let raw: Vec<u8> = (0..bytes).map(|i| (i * 31 + 7) as u8).collect();
            let encoded = B64.encode(&raw);
            let folded: String = encoded
                .as_bytes()
                .chunks(60)
                .map(|c| core::str::from_utf8(c).unwrap())
                .collect::<Vec<_>>()
                .join("\r\n\t ");
            for value in [&encoded, &folded] {
                let field = format!("v=1; a=rsa-sha256; d=a.test; s=s; h=from; bh=AAAA; b={value}");
                let sig = DkimSignature::parse(field.as_bytes()).unwrap();
                assert_eq!(sig.signature, raw, "{bytes} bytes");
            }
            let bad = format!("v=1; a=rsa-sha256; d=a.test; s=s; h=from; bh=AAAA; b={folded}!");
            assert!(matches!(
                DkimSignature::parse(bad.as_bytes()),
                Err(SignatureError::Base64 { tag: "b", .. })
            ));
        }
    }

    /// `h=` names lose the folding whitespace around them, in order and
    /// as written; an empty name or one with whitespace inside is refused.
    #[test]
    fn header_lists() {
        let names =
            |h: &str| header_list(h).map(|n| n.iter().map(String::from).collect::<Vec<_>>());
        assert_eq!(names("from"), Some(vec!["from".to_string()]));
        assert_eq!(
            names(" From :\r\n\tto:\tSubject \r\n "),
            Some(vec!["From".into(), "to".into(), "Subject".into()])
        );
        assert_eq!(
            names("from:from:x-a_b.c"),
            Some(vec!["from".into(), "from".into(), "x-a_b.c".into()])
        );
        for bad in [
            "",
            " ",
            "from:",
            ":from",
            "from::to",
            "fr om",
            "from:to\x7f",
            "from:t\u{e9}",
        ] {
            assert_eq!(names(bad), None, "{bad:?}");
        }
        let h = header_list("a:bb:ccc").unwrap();
        assert_eq!((h.len(), h.get(2), h.get(3)), (3, Some("ccc"), None));
        assert!(h.contains("BB") && !h.contains("b"));
    }

    #[test]
    fn rejects() {
        let base = "v=1; a=rsa-sha256; d=example.com; s=s; h=from; bh=AAAA; b=AAAA";
        assert!(DkimSignature::parse(base.as_bytes()).is_ok());
        let cases = [
            (base.replace("v=1", "v=2"), "Version"),
            (base.replace("a=rsa-sha256", "a=rsa-md5"), "Algorithm"),
            (
                base.replace("d=example.com", "d=legit.com(.attacker.com"),
                "Domain",
            ),
            (base.replace("h=from", "h=from::to"), "Headers"),
            (base.replace("bh=AAAA", "bh=A!"), "Base64"),
            (base.replace("; s=s", ""), "Missing"),
            (format!("{base}; c=fancy"), "Canonicalization"),
            (format!("{base}; t=12x"), "Number"),
            (format!("{base}; i=nobody"), "Identity"),
        ];
        for (input, want) in cases {
            let err = DkimSignature::parse(input.as_bytes()).unwrap_err();
            assert!(format!("{err:?}").starts_with(want), "{input}: {err:?}");
        }
        let relaxed = DkimSignature::parse(format!("{base}; c=relaxed").as_bytes()).unwrap();
        assert_eq!(
            (relaxed.header_canon, relaxed.body_canon),
            (Canonicalization::Relaxed, Canonicalization::Simple)
        );
    }
}
