//! The SPF record (RFC 7208 sections 4.5, 5, 6 and 12): parsed into terms and
//! printed back.

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;
use core::net::{Ipv4Addr, Ipv6Addr};

use crate::macros::{MacroContext, MacroError, MacroString};

/// A directive's qualifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Qualifier {
    /// `+` (the default).
    Pass,
    /// `-`.
    Fail,
    /// `~`.
    SoftFail,
    /// `?`.
    Neutral,
}

impl Qualifier {
    fn symbol(self) -> &'static str {
        match self {
            Qualifier::Pass => "",
            Qualifier::Fail => "-",
            Qualifier::SoftFail => "~",
            Qualifier::Neutral => "?",
        }
    }
}

/// The optional prefix lengths after `a` and `mx`: `/24`, `//64`, `/24//64`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct DualCidr {
    /// IPv4 prefix length (0–32); `None` means 32.
    pub v4: Option<u8>,
    /// IPv6 prefix length (0–128); `None` means 128.
    pub v6: Option<u8>,
}

impl fmt::Display for DualCidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(v4) = self.v4 {
            write!(f, "/{v4}")?;
        }
        if let Some(v6) = self.v6 {
            write!(f, "//{v6}")?;
        }
        Ok(())
    }
}

/// A mechanism (RFC 7208 section 5).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Mechanism {
    /// `all`.
    All,
    /// `include:domain`.
    Include(MacroString),
    /// `a[:domain][cidr]`.
    A {
        /// The target, or the current domain when absent.
        domain: Option<MacroString>,
        /// The prefix lengths.
        cidr: DualCidr,
    },
    /// `mx[:domain][cidr]`.
    Mx {
        /// The target, or the current domain when absent.
        domain: Option<MacroString>,
        /// The prefix lengths.
        cidr: DualCidr,
    },
    /// `ptr[:domain]`.
    Ptr(Option<MacroString>),
    /// `ip4:network[/len]`.
    Ip4 {
        /// The network.
        addr: Ipv4Addr,
        /// The prefix length (0–32); `None` means 32.
        prefix: Option<u8>,
    },
    /// `ip6:network[/len]`.
    Ip6 {
        /// The network.
        addr: Ipv6Addr,
        /// The prefix length (0–128); `None` means 128.
        prefix: Option<u8>,
    },
    /// `exists:domain`.
    Exists(MacroString),
}

impl Mechanism {
    /// True for the mechanisms that cost a DNS lookup and count against the
    /// limit of 10 (RFC 7208 section 4.6.4).
    pub fn queries_dns(&self) -> bool {
        matches!(
            self,
            Mechanism::Include(_)
                | Mechanism::A { .. }
                | Mechanism::Mx { .. }
                | Mechanism::Ptr(_)
                | Mechanism::Exists(_)
        )
    }
}

impl fmt::Display for Mechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mechanism::All => f.write_str("all"),
            Mechanism::Include(d) => write!(f, "include:{d}"),
            Mechanism::A { domain, cidr } | Mechanism::Mx { domain, cidr } => {
                f.write_str(if matches!(self, Mechanism::A { .. }) {
                    "a"
                } else {
                    "mx"
                })?;
                if let Some(d) = domain {
                    write!(f, ":{d}")?;
                }
                write!(f, "{cidr}")
            }
            Mechanism::Ptr(domain) => {
                f.write_str("ptr")?;
                if let Some(d) = domain {
                    write!(f, ":{d}")?;
                }
                Ok(())
            }
            Mechanism::Ip4 { addr, prefix } => {
                write!(f, "ip4:{addr}")?;
                if let Some(p) = prefix {
                    write!(f, "/{p}")?;
                }
                Ok(())
            }
            Mechanism::Ip6 { addr, prefix } => {
                write!(f, "ip6:{addr}")?;
                if let Some(p) = prefix {
                    write!(f, "/{p}")?;
                }
                Ok(())
            }
            Mechanism::Exists(d) => write!(f, "exists:{d}"),
        }
    }
}

/// A qualifier and a mechanism.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Directive {
    /// The result when the mechanism matches.
    pub qualifier: Qualifier,
    /// The mechanism.
    pub mechanism: Mechanism,
}

impl fmt::Display for Directive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.qualifier.symbol(), self.mechanism)
    }
}

/// A modifier (RFC 7208 section 6).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Modifier {
    /// `redirect=domain`.
    Redirect(MacroString),
    /// `exp=domain`.
    Exp(MacroString),
    /// Any other `name=value`, which evaluation ignores.
    Unknown {
        /// The name, as written.
        name: String,
        /// The value (a macro string).
        value: MacroString,
    },
}

impl fmt::Display for Modifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Modifier::Redirect(d) => write!(f, "redirect={d}"),
            Modifier::Exp(d) => write!(f, "exp={d}"),
            Modifier::Unknown { name, value } => write!(f, "{name}={value}"),
        }
    }
}

/// One term of a record.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Term {
    /// A mechanism with its qualifier.
    Directive(Directive),
    /// A modifier.
    Modifier(Modifier),
}

impl fmt::Display for Term {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Term::Directive(d) => d.fmt(f),
            Term::Modifier(m) => m.fmt(f),
        }
    }
}

/// Why a record does not parse. Evaluation turns any of these into
/// `permerror`; each names the offending term.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// The record does not start with `v=spf1` followed by a space or its end.
    #[error("not an SPF record (no \"v=spf1\" version): {record:?}")]
    NotSpf {
        /// The start of the record.
        record: String,
    },
    /// A character outside printable ASCII and space.
    #[error("character {ch:?} not allowed in term {term:?}")]
    BadCharacter {
        /// The term holding it.
        term: String,
        /// The character.
        ch: char,
    },
    /// A mechanism name this version of SPF does not know.
    #[error("unknown mechanism in term {term:?}")]
    UnknownMechanism {
        /// The term.
        term: String,
    },
    /// A known mechanism or modifier with a bad argument.
    #[error("bad term {term:?}: {reason}")]
    BadTerm {
        /// The term.
        term: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A macro string that does not parse.
    #[error("bad macro in term {term:?}: {source}")]
    BadMacro {
        /// The term.
        term: String,
        /// The macro error.
        source: MacroError,
    },
    /// `redirect=` or `exp=` given twice.
    #[error("modifier {name:?} appears more than once")]
    DuplicateModifier {
        /// `redirect` or `exp`.
        name: &'static str,
    },
}

impl RecordError {
    /// The term the error is about, when it is about one.
    pub fn term(&self) -> Option<&str> {
        match self {
            RecordError::BadCharacter { term, .. }
            | RecordError::UnknownMechanism { term }
            | RecordError::BadTerm { term, .. }
            | RecordError::BadMacro { term, .. } => Some(term),
            RecordError::NotSpf { .. } | RecordError::DuplicateModifier { .. } => None,
        }
    }
}

/// A parsed SPF record: `v=spf1` and its terms.
///
/// ```
/// use ptt_spf::SpfRecord;
/// let r: SpfRecord = "v=spf1 +mx a:mail.%{d}/24 include:_spf.example.net -all".parse().unwrap();
/// assert_eq!(r.to_string(), "v=spf1 mx a:mail.%{d}/24 include:_spf.example.net -all");
/// assert_eq!(r.terms().len(), 4);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct SpfRecord {
    terms: Vec<Term>,
}

/// True when `txt` (one TXT record, its strings joined) is an SPF version 1
/// record: `v=spf1` (any case) followed by a space or the end.
pub fn is_spf_record(txt: &[u8]) -> bool {
    txt.len() >= 6
        && txt
            .get(..6)
            .is_some_and(|v| v.eq_ignore_ascii_case(b"v=spf1"))
        && matches!(txt.get(6), None | Some(b' '))
}

impl SpfRecord {
    /// Builds a record from terms, checking that `redirect` and `exp` appear
    /// at most once each.
    pub fn from_terms(terms: Vec<Term>) -> Result<SpfRecord, RecordError> {
        let mut redirect = false;
        let mut exp = false;
        for term in &terms {
            let (seen, name) = match term {
                Term::Modifier(Modifier::Redirect(_)) => (&mut redirect, "redirect"),
                Term::Modifier(Modifier::Exp(_)) => (&mut exp, "exp"),
                _ => continue,
            };
            if *seen {
                return Err(RecordError::DuplicateModifier { name });
            }
            *seen = true;
        }
        Ok(SpfRecord { terms })
    }

    /// Parses a whole record (`v=spf1 ...`).
    pub fn parse(record: &str) -> Result<SpfRecord, RecordError> {
        if !is_spf_record(record.as_bytes()) {
            return Err(RecordError::NotSpf {
                record: record.chars().take(40).collect(),
            });
        }
        let body = record.get(6..).unwrap_or_default();
        let mut terms = Vec::new();
        for term in body.split(' ').filter(|t| !t.is_empty()) {
            terms.push(parse_term(term)?);
        }
        SpfRecord::from_terms(terms)
    }

    /// The terms, in order.
    pub fn terms(&self) -> &[Term] {
        &self.terms
    }

    /// The directives, in order.
    pub fn directives(&self) -> impl Iterator<Item = &Directive> {
        self.terms.iter().filter_map(|t| match t {
            Term::Directive(d) => Some(d),
            Term::Modifier(_) => None,
        })
    }

    /// The `redirect=` target, if any.
    pub fn redirect(&self) -> Option<&MacroString> {
        self.terms.iter().find_map(|t| match t {
            Term::Modifier(Modifier::Redirect(d)) => Some(d),
            _ => None,
        })
    }

    /// The `exp=` target, if any.
    pub fn exp(&self) -> Option<&MacroString> {
        self.terms.iter().find_map(|t| match t {
            Term::Modifier(Modifier::Exp(d)) => Some(d),
            _ => None,
        })
    }
}

impl core::str::FromStr for SpfRecord {
    type Err = RecordError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SpfRecord::parse(s)
    }
}

impl fmt::Display for SpfRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("v=spf1")?;
        for term in &self.terms {
            write!(f, " {term}")?;
        }
        Ok(())
    }
}

/// Parses one term (a directive or a modifier).
pub fn parse_term(term: &str) -> Result<Term, RecordError> {
    if let Some(ch) = term.chars().find(|c| !matches!(c, '\x21'..='\x7e')) {
        return Err(RecordError::BadCharacter {
            term: term.to_string(),
            ch,
        });
    }
    let bad = |reason| RecordError::BadTerm {
        term: term.to_string(),
        reason,
    };
    let macro_err = |source| RecordError::BadMacro {
        term: term.to_string(),
        source,
    };

    // A modifier: name "=" macro-string, name = ALPHA *( ALPHA / DIGIT / "-" / "_" / "." ).
    let name_len = term
        .char_indices()
        .take_while(|&(i, c)| {
            if i == 0 {
                c.is_ascii_alphabetic()
            } else {
                c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')
            }
        })
        .count();
    if name_len > 0 && term.as_bytes().get(name_len) == Some(&b'=') {
        let name = term.get(..name_len).unwrap_or_default();
        let value = term.get(name_len + 1..).unwrap_or_default();
        let modifier = if name.eq_ignore_ascii_case("redirect") || name.eq_ignore_ascii_case("exp")
        {
            let spec = domain_spec(value, term)?;
            if name.eq_ignore_ascii_case("redirect") {
                Modifier::Redirect(spec)
            } else {
                Modifier::Exp(spec)
            }
        } else {
            Modifier::Unknown {
                name: name.to_string(),
                value: MacroString::parse(value, MacroContext::DomainSpec).map_err(macro_err)?,
            }
        };
        return Ok(Term::Modifier(modifier));
    }

    let (qualifier, rest) = match term.as_bytes().first() {
        Some(b'+') => (Qualifier::Pass, term.get(1..).unwrap_or_default()),
        Some(b'-') => (Qualifier::Fail, term.get(1..).unwrap_or_default()),
        Some(b'~') => (Qualifier::SoftFail, term.get(1..).unwrap_or_default()),
        Some(b'?') => (Qualifier::Neutral, term.get(1..).unwrap_or_default()),
        _ => (Qualifier::Pass, term),
    };
    let name_end = rest.find([':', '/']).unwrap_or(rest.len());
    let (name, args) = rest.split_at(name_end);
    let name = name.to_ascii_lowercase();
    let mechanism = match name.as_str() {
        "all" => {
            if !args.is_empty() {
                return Err(bad("\"all\" takes no argument"));
            }
            Mechanism::All
        }
        "include" | "exists" => {
            let spec = args
                .strip_prefix(':')
                .ok_or_else(|| bad("a domain is required after ':'"))?;
            let spec = domain_spec(spec, term)?;
            if name == "include" {
                Mechanism::Include(spec)
            } else {
                Mechanism::Exists(spec)
            }
        }
        "a" | "mx" => {
            let (spec, cidr) = split_dual_cidr(args).ok_or_else(|| bad("bad prefix length"))?;
            let domain = match spec {
                "" => None,
                s => {
                    let s = s
                        .strip_prefix(':')
                        .ok_or_else(|| bad("expected ':' or '/' after the name"))?;
                    Some(domain_spec(s, term)?)
                }
            };
            if name == "a" {
                Mechanism::A { domain, cidr }
            } else {
                Mechanism::Mx { domain, cidr }
            }
        }
        "ptr" => match args {
            "" => Mechanism::Ptr(None),
            s => {
                let s = s
                    .strip_prefix(':')
                    .ok_or_else(|| bad("\"ptr\" takes no prefix length"))?;
                Mechanism::Ptr(Some(domain_spec(s, term)?))
            }
        },
        "ip4" => {
            let net = args
                .strip_prefix(':')
                .ok_or_else(|| bad("an address is required after ':'"))?;
            let (addr, prefix) = match net.split_once('/') {
                Some((a, p)) => (
                    a,
                    Some(cidr_len(p, 32).ok_or_else(|| bad("bad prefix length"))?),
                ),
                None => (net, None),
            };
            let addr = addr
                .parse::<Ipv4Addr>()
                .map_err(|_| bad("not an IPv4 address"))?;
            Mechanism::Ip4 { addr, prefix }
        }
        "ip6" => {
            let net = args
                .strip_prefix(':')
                .ok_or_else(|| bad("an address is required after ':'"))?;
            let (addr, prefix) = match net.split_once('/') {
                Some((a, p)) => (
                    a,
                    Some(cidr_len(p, 128).ok_or_else(|| bad("bad prefix length"))?),
                ),
                None => (net, None),
            };
            let addr = addr
                .parse::<Ipv6Addr>()
                .map_err(|_| bad("not an IPv6 address"))?;
            Mechanism::Ip6 { addr, prefix }
        }
        _ => {
            return Err(RecordError::UnknownMechanism {
                term: term.to_string(),
            });
        }
    };
    Ok(Term::Directive(Directive {
        qualifier,
        mechanism,
    }))
}

/// A prefix length: "0" or digits without a leading zero, at most `max`.
fn cidr_len(text: &str, max: u8) -> Option<u8> {
    if text.is_empty()
        || text.len() > 3
        || !text.bytes().all(|b| b.is_ascii_digit())
        || (text.len() > 1 && text.starts_with('0'))
    {
        return None;
    }
    text.parse::<u8>().ok().filter(|n| *n <= max)
}

/// Splits `[:domain][/v4][//v6]` into the domain part and the prefix lengths.
fn split_dual_cidr(args: &str) -> Option<(&str, DualCidr)> {
    let mut rest = args;
    let mut cidr = DualCidr::default();
    if let Some(pos) = rest.rfind("//") {
        let digits = rest.get(pos + 2..)?;
        if digits.bytes().all(|b| b.is_ascii_digit()) {
            cidr.v6 = Some(cidr_len(digits, 128)?);
            rest = rest.get(..pos)?;
        }
    }
    if let Some(pos) = rest.rfind('/') {
        let digits = rest.get(pos + 1..)?;
        if digits.bytes().all(|b| b.is_ascii_digit()) {
            cidr.v4 = Some(cidr_len(digits, 32)?);
            rest = rest.get(..pos)?;
        }
    }
    Some((rest, cidr))
}

/// Parses a `domain-spec`: a macro string ending in a macro or in
/// `.toplabel[.]`.
fn domain_spec(spec: &str, term: &str) -> Result<MacroString, RecordError> {
    let m = MacroString::parse(spec, MacroContext::DomainSpec).map_err(|source| {
        RecordError::BadMacro {
            term: term.to_string(),
            source,
        }
    })?;
    if spec.is_empty() {
        return Err(RecordError::BadTerm {
            term: term.to_string(),
            reason: "empty domain",
        });
    }
    if !m.ends_with_macro() {
        let tail = m.literal_tail();
        let tail = tail.strip_suffix('.').unwrap_or(&tail);
        let ok = match tail.rsplit_once('.') {
            Some((_, top)) => is_toplabel(top),
            None => false,
        };
        if !ok {
            return Err(RecordError::BadTerm {
                term: term.to_string(),
                reason: "the domain does not end in a valid top label",
            });
        }
    }
    Ok(m)
}

fn is_toplabel(label: &str) -> bool {
    let b = label.as_bytes();
    !b.is_empty()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
        && b.first().is_some_and(u8::is_ascii_alphanumeric)
        && b.last().is_some_and(u8::is_ascii_alphanumeric)
        && !b.iter().all(u8::is_ascii_digit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_mechanism_and_modifier() {
        let text = "v=spf1 +all -include:_spf.example.com ~a ?a:mail.example.com/24//64 mx/16 \
                    mx:%{d}//48 ptr ptr:example.org ip4:192.0.2.0/24 ip4:192.0.2.1 \
                    ip6:2001:db8::/32 exists:%{ir}.%{l1r+-}._spf.%{d} redirect=_spf.example.net \
                    exp=explain.%{d} moo.cow-far_out=man:dog/cat";
        let r = SpfRecord::parse(text).unwrap();
        assert_eq!(r.terms().len(), 15);
        assert_eq!(r.directives().count(), 12);
        assert_eq!(r.redirect().unwrap().to_string(), "_spf.example.net");
        assert_eq!(r.exp().unwrap().to_string(), "explain.%{d}");
        let again = SpfRecord::parse(&r.to_string()).unwrap();
        assert_eq!(again, r);
        assert!(matches!(
            r.terms()[3],
            Term::Directive(Directive {
                qualifier: Qualifier::Neutral,
                mechanism: Mechanism::A {
                    cidr: DualCidr {
                        v4: Some(24),
                        v6: Some(64)
                    },
                    ..
                }
            })
        ));
    }

    #[test]
    fn errors_name_the_term() {
        let e = SpfRecord::parse("v=spf1 a:foo.example.com all/32").unwrap_err();
        assert_eq!(e.term(), Some("all/32"));
        let e = SpfRecord::parse("v=spf1 foo:bar -all").unwrap_err();
        assert!(matches!(e, RecordError::UnknownMechanism { ref term } if term == "foo:bar"));
        let e = SpfRecord::parse("v=spf1 ip4:1.2.3.4/33").unwrap_err();
        assert_eq!(e.term(), Some("ip4:1.2.3.4/33"));
        let e = SpfRecord::parse("v=spf1 a:%{x}.com").unwrap_err();
        assert!(matches!(e, RecordError::BadMacro { .. }));
        assert!(e.to_string().contains("a:%{x}.com"));
        let e = SpfRecord::parse("v=spf1 redirect=a.com redirect=b.com").unwrap_err();
        assert_eq!(e, RecordError::DuplicateModifier { name: "redirect" });
        assert!(SpfRecord::parse("v=spf1 a:museum").is_err());
        assert!(SpfRecord::parse("v=spf1 a:1.2.3.4").is_err());
        assert!(SpfRecord::parse("v=spf1 mx:").is_err());
        assert!(SpfRecord::parse("v=spf1 a/").is_err());
        assert!(SpfRecord::parse("v=spf1 ip4:1.2.3.4/024").is_err());
        assert!(SpfRecord::parse("v=spf1 a\r-all").is_err());
        assert!(matches!(
            SpfRecord::parse("v=spf10 -all"),
            Err(RecordError::NotSpf { .. })
        ));
    }

    #[test]
    fn version_detection() {
        assert!(is_spf_record(b"v=spf1"));
        assert!(is_spf_record(b"V=SPF1 -all"));
        assert!(!is_spf_record(b"v=spf1-all"));
        assert!(!is_spf_record(b"v=spf"));
        assert!(SpfRecord::parse("v=spf1   ").unwrap().terms().is_empty());
    }
}
