//! The RFC 5322.From of a message, as DMARC needs it (RFC 7489 §6.6.1):
//! exactly one From field, and its addresses read whole or not at all.
//!
//! ```
//! use ptt_dmarc::from::{from_addresses, from_domain};
//! let m = b"From: \"Doe, J\" <j@Example.ORG>\r\nTo: x@y.test\r\n\r\nbody\r\n";
//! assert_eq!(from_domain(m).unwrap(), "example.org");
//! assert_eq!(from_addresses(b"From: a@x.test, b@y.test\r\n\r\n").unwrap().len(), 2);
//! assert!(from_domain(b"From: a@x.test, b@y.test\r\n\r\n").is_err());
//! ```

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

/// Why the From field cannot give the one domain DMARC needs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FromError {
    /// No From field.
    #[error("the message has no From field")]
    Missing,
    /// More than one From field.
    #[error("the message has more than one From field")]
    Several,
    /// The field holds no address.
    #[error("no address in From: {0:?}")]
    NoAddress(String),
    /// The address list cannot be read whole.
    #[error("cannot read the address list {value:?}: {why}")]
    Unreadable {
        /// The field's value.
        value: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// Not exactly one address (DMARC needs one author domain).
    #[error("From holds {0} addresses, not one")]
    NotOne(usize),
}

/// The header block of `message` (without the empty line that ends it),
/// or all of it when it has no body.
pub fn header_block(message: &[u8]) -> &[u8] {
    if message.starts_with(b"\r\n") {
        return &[];
    }
    match message.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(end) => &message[..end + 2],
        None => message,
    }
}

/// The values of the From fields of `message`, unfolded.
fn from_fields(message: &[u8]) -> Vec<String> {
    let mut fields: Vec<String> = Vec::new();
    let mut in_from = false;
    for line in header_block(message).split(|b| *b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.first().is_some_and(|b| *b == b' ' || *b == b'\t') {
            if in_from && let Some(last) = fields.last_mut() {
                last.push_str(&String::from_utf8_lossy(line));
            }
            continue;
        }
        in_from = false;
        if let Some(colon) = line.iter().position(|b| *b == b':') {
            let name = &line[..colon];
            if name.trim_ascii().eq_ignore_ascii_case(b"from") {
                in_from = true;
                fields.push(String::from_utf8_lossy(&line[colon + 1..]).into_owned());
            }
        }
    }
    fields
}

/// The addresses of the single From field (RFC 5322 §3.6.2: exactly one
/// From field), lowercase-domain as written otherwise; an error says what
/// was wrong.
pub fn from_addresses(message: &[u8]) -> Result<Vec<String>, FromError> {
    let fields = from_fields(message);
    let [value] = fields.as_slice() else {
        return Err(if fields.is_empty() {
            FromError::Missing
        } else {
            FromError::Several
        });
    };
    let addresses = address_list(&strip_comments(value))?;
    if addresses.is_empty() {
        return Err(FromError::NoAddress(value.trim().to_string()));
    }
    Ok(addresses)
}

/// The addr-specs of an address list (RFC 5322 §3.4), comments already
/// removed: commas inside quoted strings or angle brackets do not split,
/// `<…>` wins over the display name, and groups (`name: a@b, c@d;`) give
/// their members. Anything it cannot read whole is an error, never a
/// guess: a reader that split it otherwise could show another address.
fn address_list(value: &str) -> Result<Vec<String>, FromError> {
    let bad = |why: &'static str| {
        Err(FromError::Unreadable {
            value: value.trim().to_string(),
            why,
        })
    };
    let mut parts = Vec::new();
    let (mut current, mut quoted, mut escaped, mut angle) = (String::new(), false, false, false);
    for c in value.chars() {
        if escaped {
            escaped = false;
            current.push(c);
            continue;
        }
        match c {
            '\\' if quoted => escaped = true,
            '\\' => return bad("a backslash outside a quoted string"),
            '"' if !angle => quoted = !quoted,
            '<' if !quoted => {
                if angle {
                    return bad("'<' inside '<…>'");
                }
                angle = true;
            }
            '>' if !quoted => {
                if !angle {
                    return bad("'>' without '<'");
                }
                angle = false;
            }
            ',' | ';' if !quoted && !angle => {
                parts.push(core::mem::take(&mut current));
                continue;
            }
            ':' if !quoted && !angle => {
                // A group's display name ends here.
                current.clear();
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    if quoted || angle || escaped {
        return bad("an unclosed quoted string or '<'");
    }
    parts.push(current);
    let mut out = Vec::new();
    for part in parts.iter().map(|p| p.trim()).filter(|p| !p.is_empty()) {
        let spec = match (part.find('<'), part.rfind('>')) {
            (Some(open), Some(close)) => {
                if part.matches('<').count() > 1 || !part[close + 1..].trim().is_empty() {
                    return bad("text after '<…>'");
                }
                let mut in_quotes = false;
                for c in part[..open].chars() {
                    match c {
                        '"' => in_quotes = !in_quotes,
                        '@' if !in_quotes => return bad("an '@' in an unquoted display name"),
                        _ => {}
                    }
                }
                part[open + 1..close].trim()
            }
            _ => {
                if part.contains(char::is_whitespace) || part.contains('"') {
                    return bad("a display name without '<address>'");
                }
                part
            }
        };
        let Some((local, domain)) = spec.rsplit_once('@') else {
            return bad("an address without '@'");
        };
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        if local.is_empty() || domain.is_empty() || domain.contains(char::is_whitespace) {
            return bad("an empty local part or domain");
        }
        out.push(format!("{local}@{domain}"));
    }
    Ok(out)
}

/// The domain of the single address in the single From field (RFC 7489
/// 6.6.1): anything else is an error saying what was wrong.
pub fn from_domain(message: &[u8]) -> Result<String, FromError> {
    let addresses = from_addresses(message)?;
    let [address] = addresses.as_slice() else {
        return Err(FromError::NotOne(addresses.len()));
    };
    Ok(address.rsplit_once('@').map_or("", |(_, d)| d).to_string())
}

/// Removes RFC 5322 comments (nested parentheses) outside quoted strings.
fn strip_comments(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let (mut depth, mut quoted, mut escaped) = (0u32, false, false);
    for c in value.chars() {
        if escaped {
            escaped = false;
            if depth == 0 {
                out.push(c);
            }
            continue;
        }
        match c {
            '\\' => {
                escaped = true;
                if depth == 0 {
                    out.push(c);
                }
            }
            '"' if depth == 0 => {
                quoted = !quoted;
                out.push(c);
            }
            '(' if !quoted => depth += 1,
            ')' if !quoted && depth > 0 => depth -= 1,
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_domain_reads_one_address() {
        let m = |from: &str| alloc::format!("From: {from}\r\nTo: x@y\r\n\r\nbody\r\n").into_bytes();
        assert_eq!(from_domain(&m("a@Example.ORG")).unwrap(), "example.org");
        assert_eq!(
            from_domain(&m("\"Doe, J (x@evil.test)\" <j@example.org>")).unwrap(),
            "example.org"
        );
        assert_eq!(
            from_domain(&m("J (work: j@evil.test) <j@example.org>")).unwrap(),
            "example.org"
        );
        assert!(from_domain(&m("a@one.test, b@two.test")).is_err());
        assert!(from_domain(&m("undisclosed")).is_err());
        assert!(from_domain(b"From: a@x.test\r\nFrom: b@y.test\r\n\r\n").is_err());
        assert!(from_domain(b"To: a@x.test\r\n\r\n").is_err());
    }

    #[test]
    fn from_addresses_reads_lists_quotes_and_groups() {
        let m = |from: &str| alloc::format!("From: {from}\r\n\r\n").into_bytes();
        assert_eq!(
            from_addresses(&m("\"a@b, c\" <j@Example.org>, k@x.test")).unwrap(),
            ["j@example.org", "k@x.test"]
        );
        assert_eq!(
            from_addresses(&m("team: a@x.test, b@y.test;")).unwrap(),
            ["a@x.test", "b@y.test"]
        );
        assert!(from_addresses(&m("nobody")).is_err());
        // What a lenient reader could split otherwise is refused, not guessed.
        for tricky in [
            "\\\"x, victim@bank.example, \"y <alice@example.org>",
            "victim@bank.example <alice@example.org>",
            "<alice@example.org> victim@bank.example",
            "\"unclosed <alice@example.org>",
            "a <b <alice@example.org>>",
            "Alice alice@example.org",
        ] {
            assert!(from_addresses(&m(tricky)).is_err(), "{tricky}");
        }
    }
}
