//! Envelope addresses: `Mailbox`, reverse- and forward-paths (RFC 5321
//! section 4.1.2, RFC 6531 for UTF-8).
//!
//! Parsing is strict where leniency could make one address look like
//! another: a quoted local part that holds `@`, `<`, `>` or a control
//! character is refused, source routes are accepted (RFC 5321 4.1.1.3 says
//! a server MUST) but dropped, never followed, and a quoted local part that
//! needs no quotes is stored unquoted, so two spellings of one mailbox
//! compare equal.

use alloc::string::{String, ToString};
use core::fmt;
use core::net::{Ipv4Addr, Ipv6Addr};

/// Why an address could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AddressError {
    /// The path is not enclosed in `<` and `>`.
    #[error("path {input:?} is not enclosed in angle brackets")]
    NoBrackets {
        /// The input.
        input: String,
    },
    /// No `@` between local part and domain.
    #[error("address {input:?} has no '@domain'")]
    NoDomain {
        /// The input.
        input: String,
    },
    /// The local part is empty, badly formed, or holds a forbidden character.
    #[error("local part {local:?} is not a valid dot-string or quoted string")]
    BadLocalPart {
        /// The local part.
        local: String,
    },
    /// The quoted local part holds a character that could make it read as
    /// another address.
    #[error("quoted local part {local:?} holds '@', '<', '>' or a control character")]
    Ambiguous {
        /// The local part.
        local: String,
    },
    /// The local part is longer than 64 octets.
    #[error("local part of {len} octets is longer than 64")]
    LocalPartTooLong {
        /// Its length.
        len: usize,
    },
    /// The domain is badly formed.
    #[error("domain {domain:?} is not a valid domain or address literal")]
    BadDomain {
        /// The domain.
        domain: String,
    },
    /// The domain is longer than 255 octets.
    #[error("domain of {len} octets is longer than 255")]
    DomainTooLong {
        /// Its length.
        len: usize,
    },
    /// Non-ASCII characters without SMTPUTF8 (RFC 6531).
    #[error("address {input:?} has non-ASCII characters but SMTPUTF8 was not given")]
    NeedsSmtpUtf8 {
        /// The input.
        input: String,
    },
    /// The source route is badly formed.
    #[error("source route {route:?} is badly formed")]
    BadRoute {
        /// The route.
        route: String,
    },
}

/// The domain of a mailbox.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Domain {
    /// A domain name (ASCII or, with SMTPUTF8, U-labels), as given.
    Name(String),
    /// `[192.0.2.1]`.
    Ipv4(Ipv4Addr),
    /// `[IPv6:2001:db8::1]`.
    Ipv6(Ipv6Addr),
}

impl Domain {
    /// Parses a domain or an address literal.
    pub fn parse(s: &str, utf8: bool) -> Result<Domain, AddressError> {
        let bad = || AddressError::BadDomain {
            domain: s.to_string(),
        };
        if s.len() > 255 {
            return Err(AddressError::DomainTooLong { len: s.len() });
        }
        if let Some(inner) = s.strip_prefix('[') {
            let inner = inner.strip_suffix(']').ok_or_else(bad)?;
            if let Some(v6) = inner
                .strip_prefix("IPv6:")
                .or_else(|| inner.strip_prefix("ipv6:"))
            {
                return v6.parse().map(Domain::Ipv6).map_err(|_| bad());
            }
            // Only dotted-quad IPv4 (no leading zeros, which some parsers read
            // as octal).
            let parts: alloc::vec::Vec<&str> = inner.split('.').collect();
            if parts.len() != 4
                || parts.iter().any(|p| {
                    p.is_empty()
                        || p.len() > 3
                        || (p.len() > 1 && p.starts_with('0'))
                        || !p.bytes().all(|b| b.is_ascii_digit())
                })
            {
                return Err(bad());
            }
            return inner.parse().map(Domain::Ipv4).map_err(|_| bad());
        }
        if s.is_empty() {
            return Err(bad());
        }
        for label in s.split('.') {
            if label.is_empty() || label.len() > 63 {
                return Err(bad());
            }
            let ok_char =
                |c: char| c.is_ascii_alphanumeric() || c == '-' || (utf8 && !c.is_ascii());
            if !label.chars().all(ok_char) || label.starts_with('-') || label.ends_with('-') {
                if !utf8 && !s.is_ascii() {
                    return Err(AddressError::NeedsSmtpUtf8 {
                        input: s.to_string(),
                    });
                }
                return Err(bad());
            }
        }
        Ok(Domain::Name(s.to_string()))
    }
}

impl fmt::Display for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Domain::Name(n) => f.write_str(n),
            Domain::Ipv4(a) => write!(f, "[{a}]"),
            Domain::Ipv6(a) => write!(f, "[IPv6:{a}]"),
        }
    }
}

/// A mailbox `local@domain`.
///
/// ```
/// use ptt_smtp::Mailbox;
/// let m = Mailbox::parse("\"john\"@example.org", false).unwrap();
/// assert_eq!(m.to_string(), "john@example.org"); // quotes were not needed
/// let q = Mailbox::parse("\"john smith\"@example.org", false).unwrap();
/// assert_eq!(q.local_part(), "john smith");
/// assert!(Mailbox::parse("\"a@b\"@example.org", false).is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Mailbox {
    /// The local part, unquoted and unescaped.
    local: String,
    domain: Domain,
}

fn is_atext(c: char, utf8: bool) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c) || (utf8 && !c.is_ascii())
}

fn is_dot_string(s: &str, utf8: bool) -> bool {
    !s.is_empty()
        && s.split('.')
            .all(|a| !a.is_empty() && a.chars().all(|c| is_atext(c, utf8)))
}

impl Mailbox {
    /// A mailbox from an (unquoted) local part and a domain, checked as
    /// [`Mailbox::parse`] would.
    pub fn new(local: &str, domain: Domain) -> Result<Mailbox, AddressError> {
        check_local(local, true)?;
        Ok(Mailbox {
            local: local.to_string(),
            domain,
        })
    }

    /// Parses `local@domain` (no angle brackets). `utf8` allows non-ASCII
    /// characters (the transaction carries SMTPUTF8).
    pub fn parse(s: &str, utf8: bool) -> Result<Mailbox, AddressError> {
        if !utf8 && !s.is_ascii() {
            return Err(AddressError::NeedsSmtpUtf8 {
                input: s.to_string(),
            });
        }
        let (local, rest) = if let Some(q) = s.strip_prefix('"') {
            // Quoted string: find the closing quote, honouring backslashes.
            let mut out = String::new();
            let mut chars = q.char_indices();
            let mut end = None;
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => match chars.next() {
                        Some((_, e)) if (' '..='~').contains(&e) || (utf8 && !e.is_ascii()) => {
                            out.push(e)
                        }
                        _ => {
                            return Err(AddressError::BadLocalPart {
                                local: s.to_string(),
                            });
                        }
                    },
                    '"' => {
                        end = Some(i + 1);
                        break;
                    }
                    c if (' '..='~').contains(&c) || (utf8 && !c.is_ascii()) => out.push(c),
                    _ => {
                        return Err(AddressError::Ambiguous {
                            local: s.to_string(),
                        });
                    }
                }
            }
            let end = end.ok_or_else(|| AddressError::BadLocalPart {
                local: s.to_string(),
            })?;
            let rest = q.get(end..).unwrap_or_default();
            check_local(&out, utf8)?;
            (out, rest)
        } else {
            let at = s.rfind('@').ok_or_else(|| AddressError::NoDomain {
                input: s.to_string(),
            })?;
            let local = &s[..at];
            if !is_dot_string(local, utf8) {
                return Err(AddressError::BadLocalPart {
                    local: local.to_string(),
                });
            }
            (local.to_string(), &s[at..])
        };
        let domain = rest
            .strip_prefix('@')
            .ok_or_else(|| AddressError::NoDomain {
                input: s.to_string(),
            })?;
        if local.len() > 64 {
            return Err(AddressError::LocalPartTooLong { len: local.len() });
        }
        Ok(Mailbox {
            local,
            domain: Domain::parse(domain, utf8)?,
        })
    }

    /// The local part, unquoted.
    pub fn local_part(&self) -> &str {
        &self.local
    }

    /// The domain.
    pub fn domain(&self) -> &Domain {
        &self.domain
    }

    /// Whether any part is non-ASCII (needs SMTPUTF8 to be sent).
    pub fn is_utf8(&self) -> bool {
        !self.local.is_ascii() || !self.domain.to_string().is_ascii()
    }
}

fn check_local(local: &str, utf8: bool) -> Result<(), AddressError> {
    if local.is_empty() {
        return Err(AddressError::BadLocalPart {
            local: local.to_string(),
        });
    }
    if local.len() > 64 {
        return Err(AddressError::LocalPartTooLong { len: local.len() });
    }
    if local
        .chars()
        .any(|c| c == '@' || c == '<' || c == '>' || c.is_control())
    {
        return Err(AddressError::Ambiguous {
            local: local.to_string(),
        });
    }
    if !utf8 && !local.is_ascii() {
        return Err(AddressError::NeedsSmtpUtf8 {
            input: local.to_string(),
        });
    }
    Ok(())
}

impl fmt::Display for Mailbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if is_dot_string(&self.local, true) {
            f.write_str(&self.local)?;
        } else {
            f.write_str("\"")?;
            for c in self.local.chars() {
                if c == '"' || c == '\\' {
                    f.write_str("\\")?;
                }
                write!(f, "{c}")?;
            }
            f.write_str("\"")?;
        }
        write!(f, "@{}", self.domain)
    }
}

/// Splits `<...>` and drops a source route `@a,@b:`.
fn unbracket(s: &str) -> Result<&str, AddressError> {
    let inner = s
        .strip_prefix('<')
        .and_then(|s| s.strip_suffix('>'))
        .ok_or_else(|| AddressError::NoBrackets {
            input: s.to_string(),
        })?;
    if inner.starts_with('@') {
        let colon = inner.find(':').ok_or_else(|| AddressError::BadRoute {
            route: inner.to_string(),
        })?;
        let route = &inner[..colon];
        for hop in route.split(',') {
            let d = hop
                .strip_prefix('@')
                .ok_or_else(|| AddressError::BadRoute {
                    route: route.to_string(),
                })?;
            Domain::parse(d, true).map_err(|_| AddressError::BadRoute {
                route: route.to_string(),
            })?;
        }
        return Ok(&inner[colon + 1..]);
    }
    Ok(inner)
}

/// The argument of `MAIL FROM:`: the null path `<>` or a mailbox.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ReversePath {
    /// `<>`, for bounces.
    Null,
    /// A mailbox.
    Mailbox(Mailbox),
}

impl ReversePath {
    /// Parses `<>` or `<mailbox>` (a source route is dropped).
    pub fn parse(s: &str, utf8: bool) -> Result<ReversePath, AddressError> {
        if s == "<>" {
            return Ok(ReversePath::Null);
        }
        Ok(ReversePath::Mailbox(Mailbox::parse(unbracket(s)?, utf8)?))
    }

    /// The mailbox, unless null.
    pub fn mailbox(&self) -> Option<&Mailbox> {
        match self {
            ReversePath::Null => None,
            ReversePath::Mailbox(m) => Some(m),
        }
    }
}

impl fmt::Display for ReversePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReversePath::Null => f.write_str("<>"),
            ReversePath::Mailbox(m) => write!(f, "<{m}>"),
        }
    }
}

/// The argument of `RCPT TO:`: `<Postmaster>` or a mailbox.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ForwardPath {
    /// `<Postmaster>` without a domain (any case).
    Postmaster,
    /// A mailbox.
    Mailbox(Mailbox),
}

impl ForwardPath {
    /// Parses `<Postmaster>` or `<mailbox>` (a source route is dropped).
    pub fn parse(s: &str, utf8: bool) -> Result<ForwardPath, AddressError> {
        let inner = unbracket(s)?;
        if inner.eq_ignore_ascii_case("postmaster") {
            return Ok(ForwardPath::Postmaster);
        }
        Ok(ForwardPath::Mailbox(Mailbox::parse(inner, utf8)?))
    }

    /// The mailbox, unless `<Postmaster>`.
    pub fn mailbox(&self) -> Option<&Mailbox> {
        match self {
            ForwardPath::Postmaster => None,
            ForwardPath::Mailbox(m) => Some(m),
        }
    }
}

impl fmt::Display for ForwardPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ForwardPath::Postmaster => f.write_str("<Postmaster>"),
            ForwardPath::Mailbox(m) => write!(f, "<{m}>"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(ReversePath::parse("<>", false).unwrap(), ReversePath::Null);
        let p = ReversePath::parse("<@relay.test,@b.test:user@example.org>", false).unwrap();
        assert_eq!(p.to_string(), "<user@example.org>");
        assert_eq!(
            ForwardPath::parse("<postMaster>", false).unwrap(),
            ForwardPath::Postmaster
        );
        assert!(ForwardPath::parse("user@example.org", false).is_err());
        assert!(ForwardPath::parse("<user@example.org", false).is_err());
        assert!(ForwardPath::parse("<@x:user@example.org", false).is_err());
    }

    #[test]
    fn local_parts() {
        for ok in [
            "a.b+c@example.org",
            "\"a b\"@example.org",
            "\"a\\\"b\"@example.org",
            "x@[192.0.2.1]",
            "x@[IPv6:2001:db8::1]",
        ] {
            let m = Mailbox::parse(ok, false).unwrap();
            assert_eq!(Mailbox::parse(&m.to_string(), false).unwrap(), m, "{ok}");
        }
        for bad in [
            "a..b@example.org",
            ".a@example.org",
            "a@",
            "@example.org",
            "a@exa mple.org",
            "a@-x.org",
            "\"a@b\"@example.org",
            "\"a<b>\"@example.org",
            "\"a\tb\"@example.org",
            "a@[1.2.3]",
            "a@[01.2.3.4]",
            "a@[1.2.3.256]",
            "a@b@example.org",
            "ü@example.org",
        ] {
            assert!(Mailbox::parse(bad, false).is_err(), "{bad}");
        }
        let u = Mailbox::parse("ü@bücher.example", true).unwrap();
        assert!(u.is_utf8());
        assert!(matches!(
            Mailbox::parse("ü@example.org", false),
            Err(AddressError::NeedsSmtpUtf8 { .. })
        ));
        let long = alloc::format!("{}@example.org", "a".repeat(65));
        assert!(matches!(
            Mailbox::parse(&long, false),
            Err(AddressError::LocalPartTooLong { .. })
        ));
    }
}
