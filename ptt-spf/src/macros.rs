//! SPF macros (RFC 7208 section 7): the `macro-string` of a domain-spec or of
//! an explanation, parsed into parts, printed back, and expanded.

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;
use core::net::IpAddr;

/// Where a macro string appears: the letters `c`, `r` and `t` are allowed
/// only in explanation text, and only explanation text may hold spaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MacroContext {
    /// A `domain-spec` of a mechanism or modifier, or an unknown modifier's value.
    DomainSpec,
    /// The text of an `exp=` TXT record (`explain-string`).
    Explanation,
}

/// A macro letter (RFC 7208 section 7.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MacroLetter {
    /// `s`: the sender, `local-part@domain`.
    Sender,
    /// `l`: the local-part of the sender.
    LocalPart,
    /// `o`: the domain of the sender.
    SenderDomain,
    /// `d`: the domain being checked.
    Domain,
    /// `i`: the client IP, dotted (IPv6 as dot-separated nibbles).
    Ip,
    /// `p`: the validated domain name of the client IP (needs DNS).
    ValidatedName,
    /// `v`: `in-addr` for IPv4, `ip6` for IPv6.
    IpVersion,
    /// `h`: the HELO/EHLO domain.
    Helo,
    /// `c`: the client IP in its readable form (explanations only).
    ClientIp,
    /// `r`: the receiving host's domain (explanations only).
    Receiver,
    /// `t`: the current timestamp (explanations only).
    Timestamp,
}

impl MacroLetter {
    fn from_char(c: char) -> Option<MacroLetter> {
        Some(match c.to_ascii_lowercase() {
            's' => MacroLetter::Sender,
            'l' => MacroLetter::LocalPart,
            'o' => MacroLetter::SenderDomain,
            'd' => MacroLetter::Domain,
            'i' => MacroLetter::Ip,
            'p' => MacroLetter::ValidatedName,
            'v' => MacroLetter::IpVersion,
            'h' => MacroLetter::Helo,
            'c' => MacroLetter::ClientIp,
            'r' => MacroLetter::Receiver,
            't' => MacroLetter::Timestamp,
            _ => return None,
        })
    }

    /// The lowercase letter.
    pub fn as_char(self) -> char {
        match self {
            MacroLetter::Sender => 's',
            MacroLetter::LocalPart => 'l',
            MacroLetter::SenderDomain => 'o',
            MacroLetter::Domain => 'd',
            MacroLetter::Ip => 'i',
            MacroLetter::ValidatedName => 'p',
            MacroLetter::IpVersion => 'v',
            MacroLetter::Helo => 'h',
            MacroLetter::ClientIp => 'c',
            MacroLetter::Receiver => 'r',
            MacroLetter::Timestamp => 't',
        }
    }

    fn explanation_only(self) -> bool {
        matches!(
            self,
            MacroLetter::ClientIp | MacroLetter::Receiver | MacroLetter::Timestamp
        )
    }
}

/// The delimiters a macro may split on.
pub const DELIMITERS: &str = ".-+,/_=";

/// One `%{...}` macro: a letter and its transformers.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MacroExpand {
    /// Which value is expanded.
    pub letter: MacroLetter,
    /// Uppercase letter: URL-escape the result.
    pub url_escape: bool,
    /// Keep only this many right-hand parts (at least 1).
    pub digits: Option<u32>,
    /// Reverse the parts before keeping them.
    pub reverse: bool,
    /// The delimiters to split on, in the order written (empty: `.`).
    pub delimiters: String,
}

/// A part of a macro string.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MacroPart {
    /// Literal text (a `%` in it is printed as `%%`).
    Literal(String),
    /// `%_`: a space.
    Space,
    /// `%-`: `%20`, a URL-encoded space.
    UrlSpace,
    /// `%{...}`.
    Expand(MacroExpand),
}

/// A parsed `macro-string` (or `explain-string`).
///
/// ```
/// use ptt_spf::{MacroString, MacroContext};
/// let m = MacroString::parse("%{ir}.%{l1r+-}._spf.%{d}", MacroContext::DomainSpec).unwrap();
/// assert_eq!(m.to_string(), "%{ir}.%{l1r+-}._spf.%{d}");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct MacroString {
    parts: Vec<MacroPart>,
}

/// Why a macro string does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MacroError {
    /// A `%` not followed by `{`, `%`, `_` or `-`.
    #[error("bad '%' escape at byte {at} of {input:?}")]
    BadPercent {
        /// The macro string.
        input: String,
        /// Byte offset of the `%`.
        at: usize,
    },
    /// `%{` without its closing `}`.
    #[error("unterminated '%{{' at byte {at} of {input:?}")]
    Unterminated {
        /// The macro string.
        input: String,
        /// Byte offset of the `%`.
        at: usize,
    },
    /// An unknown macro letter, or one allowed only in explanations.
    #[error("macro letter {letter:?} not allowed here in {input:?}")]
    BadLetter {
        /// The letter found.
        letter: char,
        /// The macro string.
        input: String,
    },
    /// Transformers or delimiters that do not follow the grammar (or a
    /// digit count of 0).
    #[error("bad transformer {transformer:?} in {input:?}")]
    BadTransformer {
        /// What follows the letter inside the braces.
        transformer: String,
        /// The macro string.
        input: String,
    },
    /// A character that no macro string may hold (non-ASCII, control, or a
    /// space outside explanations).
    #[error("character {ch:?} not allowed in {input:?}")]
    BadCharacter {
        /// The character.
        ch: char,
        /// The macro string.
        input: String,
    },
}

impl MacroString {
    /// Parses `input` as a macro string of the given context.
    pub fn parse(input: &str, context: MacroContext) -> Result<MacroString, MacroError> {
        let mut parts = Vec::new();
        let mut literal = String::new();
        let bytes = input.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            let Some(ch) = input.get(i..).and_then(|s| s.chars().next()) else {
                break;
            };
            if ch == '%' {
                let next = bytes.get(i + 1).copied();
                match next {
                    Some(b'%') => {
                        literal.push('%');
                        i += 2;
                    }
                    Some(b'_') => {
                        flush(&mut parts, &mut literal);
                        parts.push(MacroPart::Space);
                        i += 2;
                    }
                    Some(b'-') => {
                        flush(&mut parts, &mut literal);
                        parts.push(MacroPart::UrlSpace);
                        i += 2;
                    }
                    Some(b'{') => {
                        let close = input
                            .get(i + 2..)
                            .and_then(|rest| rest.find('}'))
                            .ok_or_else(|| MacroError::Unterminated {
                                input: input.to_string(),
                                at: i,
                            })?;
                        let body = input.get(i + 2..i + 2 + close).unwrap_or_default();
                        let expand = parse_expand(body, input, context)?;
                        flush(&mut parts, &mut literal);
                        parts.push(MacroPart::Expand(expand));
                        i += 3 + close;
                    }
                    _ => {
                        return Err(MacroError::BadPercent {
                            input: input.to_string(),
                            at: i,
                        });
                    }
                }
                continue;
            }
            let allowed = match ch {
                '\x21'..='\x7e' => true,
                ' ' => context == MacroContext::Explanation,
                _ => false,
            };
            if !allowed {
                return Err(MacroError::BadCharacter {
                    ch,
                    input: input.to_string(),
                });
            }
            literal.push(ch);
            i += ch.len_utf8();
        }
        flush(&mut parts, &mut literal);
        Ok(MacroString { parts })
    }

    /// Builds a macro string from parts, merging adjacent literals and
    /// dropping empty ones (the form [`MacroString::parse`] returns).
    pub fn from_parts(parts: impl IntoIterator<Item = MacroPart>) -> MacroString {
        let mut out = Vec::new();
        let mut literal = String::new();
        for part in parts {
            match part {
                MacroPart::Literal(text) => literal.push_str(&text),
                other => {
                    flush(&mut out, &mut literal);
                    out.push(other);
                }
            }
        }
        flush(&mut out, &mut literal);
        MacroString { parts: out }
    }

    /// The parts, in order.
    pub fn parts(&self) -> &[MacroPart] {
        &self.parts
    }

    /// True when the string holds no macro at all (only literal text).
    pub fn is_literal(&self) -> bool {
        self.parts
            .iter()
            .all(|p| matches!(p, MacroPart::Literal(_)))
    }

    /// True when expanding needs the validated name of the client (`%{p}`),
    /// which costs DNS lookups.
    pub fn uses_validated_name(&self) -> bool {
        self.parts
            .iter()
            .any(|p| matches!(p, MacroPart::Expand(m) if m.letter == MacroLetter::ValidatedName))
    }

    /// True when the last part is a `%{...}` expansion.
    pub(crate) fn ends_with_macro(&self) -> bool {
        matches!(self.parts.last(), Some(MacroPart::Expand(_)))
    }

    /// The literal text after the last macro (all of it when there is none).
    pub(crate) fn literal_tail(&self) -> String {
        let mut tail = String::new();
        for part in self.parts.iter().rev() {
            match part {
                MacroPart::Literal(t) => tail.insert_str(0, t),
                _ => break,
            }
        }
        tail
    }

    /// Expands the string with `values`. `p` must already be resolved in
    /// `values` when [`uses_validated_name`](Self::uses_validated_name) is true
    /// (else it expands to `unknown`).
    pub fn expand(&self, values: &MacroValues<'_>) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                MacroPart::Literal(t) => out.push_str(t),
                MacroPart::Space => out.push(' '),
                MacroPart::UrlSpace => out.push_str("%20"),
                MacroPart::Expand(m) => {
                    let raw = values.value(m.letter);
                    let transformed = transform(&raw, m);
                    if m.url_escape {
                        url_escape(&transformed, &mut out);
                    } else {
                        out.push_str(&transformed);
                    }
                }
            }
        }
        out
    }

    /// Expands a domain-spec: as [`expand`](Self::expand), then shortened
    /// from the left, label by label, to at most 253 characters
    /// (RFC 7208 section 7.3).
    pub fn expand_domain(&self, values: &MacroValues<'_>) -> String {
        let mut out = self.expand(values);
        let trailing_dot = out.ends_with('.');
        if trailing_dot {
            out.pop();
        }
        while out.len() > 253 {
            match out.find('.') {
                Some(dot) => {
                    out.drain(..=dot);
                }
                None => {
                    out.clear();
                }
            }
        }
        out
    }
}

fn flush(parts: &mut Vec<MacroPart>, literal: &mut String) {
    if !literal.is_empty() {
        parts.push(MacroPart::Literal(core::mem::take(literal)));
    }
}

fn parse_expand(body: &str, input: &str, context: MacroContext) -> Result<MacroExpand, MacroError> {
    let mut chars = body.chars();
    let Some(first) = chars.next() else {
        return Err(MacroError::BadTransformer {
            transformer: String::new(),
            input: input.to_string(),
        });
    };
    let letter = MacroLetter::from_char(first)
        .filter(|l| context == MacroContext::Explanation || !l.explanation_only())
        .ok_or_else(|| MacroError::BadLetter {
            letter: first,
            input: input.to_string(),
        })?;
    let rest = chars.as_str();
    let bad = || MacroError::BadTransformer {
        transformer: rest.to_string(),
        input: input.to_string(),
    };
    let digit_len = rest.bytes().take_while(u8::is_ascii_digit).count();
    let (digits_text, after) = rest.split_at(digit_len);
    let digits = if digits_text.is_empty() {
        None
    } else {
        // Counts beyond any label count keep every part; saturate instead of
        // failing on absurd lengths.
        let n = digits_text.bytes().fold(0u32, |n, d| {
            n.saturating_mul(10).saturating_add(u32::from(d - b'0'))
        });
        if n == 0 {
            return Err(bad());
        }
        Some(n)
    };
    let (reverse, delimiters) = match after.strip_prefix(['r', 'R']) {
        Some(d) => (true, d),
        None => (false, after),
    };
    if !delimiters.chars().all(|c| DELIMITERS.contains(c)) {
        return Err(bad());
    }
    Ok(MacroExpand {
        letter,
        url_escape: first.is_ascii_uppercase(),
        digits,
        reverse,
        delimiters: delimiters.to_string(),
    })
}

fn transform(value: &str, m: &MacroExpand) -> String {
    if m.digits.is_none() && !m.reverse && m.delimiters.is_empty() {
        return value.to_string();
    }
    let delims: &str = if m.delimiters.is_empty() {
        "."
    } else {
        &m.delimiters
    };
    let mut parts: Vec<&str> = value.split(|c| delims.contains(c)).collect();
    if m.reverse {
        parts.reverse();
    }
    if let Some(n) = m.digits {
        let n = usize::try_from(n).unwrap_or(usize::MAX);
        if n < parts.len() {
            parts.drain(..parts.len() - n);
        }
    }
    parts.join(".")
}

fn url_escape(value: &str, out: &mut String) {
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            let hex = b"0123456789ABCDEF";
            out.push('%');
            out.push(char::from(hex[usize::from(b >> 4)]));
            out.push(char::from(hex[usize::from(b & 15)]));
        }
    }
}

impl fmt::Display for MacroString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for part in &self.parts {
            match part {
                MacroPart::Literal(t) => {
                    for ch in t.chars() {
                        if ch == '%' {
                            f.write_str("%%")?;
                        } else {
                            write!(f, "{ch}")?;
                        }
                    }
                }
                MacroPart::Space => f.write_str("%_")?,
                MacroPart::UrlSpace => f.write_str("%-")?,
                MacroPart::Expand(m) => {
                    let c = m.letter.as_char();
                    let c = if m.url_escape {
                        c.to_ascii_uppercase()
                    } else {
                        c
                    };
                    write!(f, "%{{{c}")?;
                    if let Some(d) = m.digits {
                        write!(f, "{d}")?;
                    }
                    if m.reverse {
                        f.write_str("r")?;
                    }
                    write!(f, "{}}}", m.delimiters)?;
                }
            }
        }
        Ok(())
    }
}

/// The values macros expand to, for one `check_host()` call.
#[derive(Debug, Clone)]
pub struct MacroValues<'a> {
    /// The sender's local-part (`l`).
    pub local_part: &'a str,
    /// The sender's domain (`o`).
    pub sender_domain: &'a str,
    /// The domain being checked (`d`).
    pub domain: &'a str,
    /// The client IP (`i`, `c`, `v`).
    pub ip: IpAddr,
    /// The HELO domain (`h`).
    pub helo: &'a str,
    /// The validated name of the client (`p`), when it has been resolved.
    pub validated_name: Option<&'a str>,
    /// The receiving host (`r`).
    pub receiver: &'a str,
    /// Seconds since the epoch (`t`).
    pub timestamp: u64,
}

impl MacroValues<'_> {
    fn value(&self, letter: MacroLetter) -> String {
        match letter {
            MacroLetter::Sender => {
                let mut s = String::from(self.local_part);
                s.push('@');
                s.push_str(self.sender_domain);
                s
            }
            MacroLetter::LocalPart => self.local_part.to_string(),
            MacroLetter::SenderDomain => self.sender_domain.to_string(),
            MacroLetter::Domain => self.domain.to_string(),
            MacroLetter::Ip => dotted_ip(self.ip),
            MacroLetter::ValidatedName => self.validated_name.unwrap_or("unknown").to_string(),
            MacroLetter::IpVersion => match self.ip {
                IpAddr::V4(_) => "in-addr".to_string(),
                IpAddr::V6(_) => "ip6".to_string(),
            },
            MacroLetter::Helo => self.helo.to_string(),
            MacroLetter::ClientIp => self.ip.to_string(),
            MacroLetter::Receiver => self.receiver.to_string(),
            MacroLetter::Timestamp => self.timestamp.to_string(),
        }
    }
}

/// The `i` form of an address: dotted quad, or 32 dot-separated nibbles
/// (uppercase, as the RFC 7208 test suite and pyspf write them; DNS names
/// compare case-insensitively).
pub(crate) fn dotted_ip(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let mut s = String::with_capacity(63);
            for (n, byte) in v6.octets().iter().enumerate() {
                if n > 0 {
                    s.push('.');
                }
                let hex = b"0123456789ABCDEF";
                s.push(char::from(hex[usize::from(byte >> 4)]));
                s.push('.');
                s.push(char::from(hex[usize::from(byte & 15)]));
            }
            s
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::Ipv4Addr;

    fn values() -> MacroValues<'static> {
        MacroValues {
            local_part: "strong-bad",
            sender_domain: "email.example.com",
            domain: "email.example.com",
            ip: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 3)),
            helo: "mx.example.org",
            validated_name: None,
            receiver: "mx.example.net",
            timestamp: 1_000_000,
        }
    }

    fn ex(s: &str) -> String {
        MacroString::parse(s, MacroContext::Explanation)
            .unwrap()
            .expand(&values())
    }

    #[test]
    fn rfc7208_section_7_4_examples() {
        assert_eq!(ex("%{s}"), "strong-bad@email.example.com");
        assert_eq!(ex("%{o}"), "email.example.com");
        assert_eq!(ex("%{d}"), "email.example.com");
        assert_eq!(ex("%{d4}"), "email.example.com");
        assert_eq!(ex("%{d3}"), "email.example.com");
        assert_eq!(ex("%{d2}"), "example.com");
        assert_eq!(ex("%{d1}"), "com");
        assert_eq!(ex("%{dr}"), "com.example.email");
        assert_eq!(ex("%{d2r}"), "example.email");
        assert_eq!(ex("%{l}"), "strong-bad");
        assert_eq!(ex("%{l-}"), "strong.bad");
        assert_eq!(ex("%{lr}"), "strong-bad");
        assert_eq!(ex("%{lr-}"), "bad.strong");
        assert_eq!(ex("%{l1r-}"), "strong");
        assert_eq!(
            ex("%{ir}.%{v}._spf.%{d2}"),
            "3.2.0.192.in-addr._spf.example.com"
        );
        assert_eq!(ex("%{lr-}.lp._spf.%{d2}"), "bad.strong.lp._spf.example.com");
        assert_eq!(
            ex("%{d2}.trusted-domains.example.net"),
            "example.com.trusted-domains.example.net"
        );
        assert_eq!(ex("%{S}"), "strong-bad%40email.example.com");
        assert_eq!(ex("a%%b%_c%-d"), "a%b c%20d");
        assert_eq!(
            ex("%{c} at %{t} by %{r}"),
            "192.0.2.3 at 1000000 by mx.example.net"
        );
    }

    #[test]
    fn ipv6_nibbles() {
        let mut v = values();
        v.ip = "2001:db8::cb01".parse().unwrap();
        let m = MacroString::parse("%{ir}.%{v}._spf.%{d2}", MacroContext::DomainSpec).unwrap();
        assert_eq!(
            m.expand(&v),
            "1.0.B.C.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.B.D.0.1.0.0.2.ip6._spf.example.com"
        );
    }

    #[test]
    fn errors_name_the_input() {
        let e = MacroString::parse("%{x}", MacroContext::DomainSpec).unwrap_err();
        assert!(matches!(e, MacroError::BadLetter { letter: 'x', .. }));
        assert!(MacroString::parse("%{c}", MacroContext::DomainSpec).is_err());
        assert!(MacroString::parse("%{c}", MacroContext::Explanation).is_ok());
        assert!(matches!(
            MacroString::parse("a%{d", MacroContext::DomainSpec),
            Err(MacroError::Unterminated { at: 1, .. })
        ));
        assert!(matches!(
            MacroString::parse("a%b", MacroContext::DomainSpec),
            Err(MacroError::BadPercent { at: 1, .. })
        ));
        assert!(MacroString::parse("%{d0}", MacroContext::DomainSpec).is_err());
        assert!(MacroString::parse("%{dx}", MacroContext::DomainSpec).is_err());
        assert!(MacroString::parse("a b", MacroContext::DomainSpec).is_err());
        assert!(MacroString::parse("a b", MacroContext::Explanation).is_ok());
        assert!(MacroString::parse("é", MacroContext::Explanation).is_err());
    }

    #[test]
    fn long_domains_are_cut_from_the_left() {
        let label = "a".repeat(60);
        let s = alloc::format!("{label}.{label}.{label}.{label}.{label}.example.com");
        let m = MacroString::parse(&s, MacroContext::DomainSpec).unwrap();
        let out = m.expand_domain(&values());
        assert!(out.len() <= 253);
        assert!(out.ends_with(".example.com"));
        assert!(out.starts_with('a'));
    }
}
