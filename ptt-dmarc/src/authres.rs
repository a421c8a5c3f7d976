//! The `Authentication-Results` header field (RFC 8601): a writer that
//! cannot be injected into and a parser for the fields already in a message.
//!
//! Writing: every part is checked when it is set. Keywords (method, result,
//! property type and name) must be `[A-Za-z0-9_-]`; free text (authserv-id,
//! reason, property values, comments) may be any UTF-8 without control
//! characters and is written bare only when it is a token (or, for a
//! property value, an address or domain), otherwise as a quoted-string or
//! an escaped comment. So a value can never end the field, start a new
//! result or a new header: `CR`, `LF` and the other controls are refused.
//!
//! Reading: [`AuthenticationResults::parse`] reads a field body (everything
//! after `Authentication-Results:`), unfolding it and handling comments and
//! quoted-strings anywhere CFWS is allowed. A receiver must remove the
//! fields that claim its own authserv-id before adding its own (RFC 8601
//! 5); [`claims_authserv_id`] answers that even for a field too broken to
//! parse.
//!
//! ```
//! use ptt_dmarc::authres::{AuthenticationResults, MethodResult};
//!
//! let mut ar = AuthenticationResults::new("mx.example.org").unwrap();
//! ar.push(MethodResult::new("spf", "pass").unwrap()
//!     .with_property("smtp", "mailfrom", "alice@example.com").unwrap());
//! // A CR LF in a value is refused, never written.
//! assert!(MethodResult::new("dkim", "fail").unwrap()
//!     .with_reason("bad\r\nX-Evil: yes").is_err());
//! ar.push(MethodResult::new("dkim", "fail").unwrap());
//! assert_eq!(ar.to_string(),
//!     "mx.example.org; spf=pass smtp.mailfrom=alice@example.com; dkim=fail");
//! let back = AuthenticationResults::parse(&ar.to_string()).unwrap();
//! assert_eq!(back, ar);
//! ```

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt::{self, Write as _};

/// Why a field could not be parsed or a part could not be written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthResError {
    /// The parser expected `expected` at byte `at` and found `found`.
    #[error("expected {expected} at byte {at}, found {found:?}")]
    Expected {
        /// What was expected.
        expected: &'static str,
        /// Byte offset in the (unfolded) input.
        at: usize,
        /// Up to 20 characters found there.
        found: String,
    },
    /// A comment or quoted-string that does not end.
    #[error("unterminated {what} starting at byte {at}")]
    Unterminated {
        /// `comment` or `quoted-string`.
        what: &'static str,
        /// Where it starts.
        at: usize,
    },
    /// A part given to the writer that is not a keyword.
    #[error("{field} {value:?} is not a keyword ([A-Za-z0-9_-], starting with a letter or digit)")]
    NotKeyword {
        /// Which part.
        field: &'static str,
        /// The offending value.
        value: String,
    },
    /// Text with a control character (CR, LF, NUL, …) or empty where text
    /// is required.
    #[error("{field} {value:?} contains a control character or is empty")]
    BadText {
        /// Which part.
        field: &'static str,
        /// The offending value.
        value: String,
    },
}

/// A `ptype.property=value` item.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Property {
    ptype: String,
    name: String,
    value: String,
}

impl Property {
    /// Checks and builds a property (`ptype` is e.g. `smtp`, `header`,
    /// `policy`; `name` e.g. `mailfrom`, `d`, `from`).
    pub fn new(ptype: &str, name: &str, value: &str) -> Result<Property, AuthResError> {
        Ok(Property {
            ptype: keyword("ptype", ptype)?,
            name: keyword("property", name)?,
            value: text("property value", value, true)?,
        })
    }

    /// The property type (lowercase).
    pub fn ptype(&self) -> &str {
        &self.ptype
    }

    /// The property name (lowercase).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The value, unquoted.
    pub fn value(&self) -> &str {
        &self.value
    }
}

/// One `method=result` with its reason, properties and comments.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MethodResult {
    method: String,
    version: Option<u32>,
    result: String,
    reason: Option<String>,
    properties: Vec<Property>,
    comments: Vec<String>,
}

impl MethodResult {
    /// `method=result`, e.g. `("dkim", "pass")`.
    pub fn new(method: &str, result: &str) -> Result<MethodResult, AuthResError> {
        Ok(MethodResult {
            method: keyword("method", method)?,
            version: None,
            result: keyword("result", result)?,
            reason: None,
            properties: Vec::new(),
            comments: Vec::new(),
        })
    }

    /// Sets the method version (`dkim/1=pass`).
    pub fn with_version(mut self, version: u32) -> MethodResult {
        self.version = Some(version);
        self
    }

    /// Sets `reason="…"`.
    pub fn with_reason(mut self, reason: &str) -> Result<MethodResult, AuthResError> {
        self.reason = Some(text("reason", reason, false)?);
        Ok(self)
    }

    /// Adds `ptype.name=value`.
    pub fn with_property(
        mut self,
        ptype: &str,
        name: &str,
        value: &str,
    ) -> Result<MethodResult, AuthResError> {
        self.properties.push(Property::new(ptype, name, value)?);
        Ok(self)
    }

    /// Adds a comment, written after the result.
    pub fn with_comment(mut self, comment: &str) -> Result<MethodResult, AuthResError> {
        self.comments.push(text("comment", comment, false)?);
        Ok(self)
    }

    /// The method (lowercase).
    pub fn method(&self) -> &str {
        &self.method
    }

    /// The method version, if written.
    pub fn version(&self) -> Option<u32> {
        self.version
    }

    /// The result (lowercase).
    pub fn result(&self) -> &str {
        &self.result
    }

    /// The reason, unquoted.
    pub fn reason(&self) -> Option<&str> {
        self.reason.as_deref()
    }

    /// The properties in order.
    pub fn properties(&self) -> &[Property] {
        &self.properties
    }

    /// The first value of `ptype.name`.
    pub fn property(&self, ptype: &str, name: &str) -> Option<&str> {
        self.properties
            .iter()
            .find(|p| p.ptype.eq_ignore_ascii_case(ptype) && p.name.eq_ignore_ascii_case(name))
            .map(|p| p.value.as_str())
    }

    /// The comments in this result, in order.
    pub fn comments(&self) -> &[String] {
        &self.comments
    }
}

/// A whole `Authentication-Results` field.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AuthenticationResults {
    authserv_id: String,
    version: Option<u32>,
    comments: Vec<String>,
    results: Vec<MethodResult>,
}

impl AuthenticationResults {
    /// A field for `authserv_id` with no result yet (written `; none`).
    pub fn new(authserv_id: &str) -> Result<AuthenticationResults, AuthResError> {
        Ok(AuthenticationResults {
            authserv_id: text("authserv-id", authserv_id, false)?,
            version: None,
            comments: Vec::new(),
            results: Vec::new(),
        })
    }

    /// Sets the version written after the authserv-id (only `1` exists).
    pub fn with_version(mut self, version: u32) -> AuthenticationResults {
        self.version = Some(version);
        self
    }

    /// Adds a comment after the authserv-id.
    pub fn with_comment(mut self, comment: &str) -> Result<AuthenticationResults, AuthResError> {
        self.comments.push(text("comment", comment, false)?);
        Ok(self)
    }

    /// Appends a result.
    pub fn push(&mut self, result: MethodResult) {
        self.results.push(result);
    }

    /// The authserv-id, unquoted.
    pub fn authserv_id(&self) -> &str {
        &self.authserv_id
    }

    /// The version, if written.
    pub fn version(&self) -> Option<u32> {
        self.version
    }

    /// Comments after the authserv-id.
    pub fn comments(&self) -> &[String] {
        &self.comments
    }

    /// The results (empty for `none`).
    pub fn results(&self) -> &[MethodResult] {
        &self.results
    }

    /// The results of one method.
    pub fn method<'a>(&'a self, method: &'a str) -> impl Iterator<Item = &'a MethodResult> + 'a {
        self.results
            .iter()
            .filter(move |r| r.method.eq_ignore_ascii_case(method))
    }

    /// True when this field claims `authserv_id` (case-insensitive).
    pub fn is_from(&self, authserv_id: &str) -> bool {
        self.authserv_id.eq_ignore_ascii_case(authserv_id)
    }

    /// The whole header field, `Authentication-Results: …\r\n`, folded
    /// before each result and between items so that lines stay near 78
    /// characters.
    pub fn to_header_field(&self) -> String {
        struct Folder {
            out: String,
            line: usize,
        }
        impl Folder {
            fn piece(&mut self, piece: &str) {
                if self.line + 1 + piece.len() > 78 && self.line > 1 {
                    self.out.push_str("\r\n\t");
                    self.line = 1;
                } else {
                    self.out.push(' ');
                    self.line += 1;
                }
                self.out.push_str(piece);
                self.line += piece.len();
            }
            fn newline(&mut self) {
                self.out.push_str("\r\n\t");
                self.line = 1;
            }
        }
        let mut head = String::new();
        write_value(&mut head, &self.authserv_id);
        if let Some(v) = self.version {
            let _ = write!(head, " {v}");
        }
        for c in &self.comments {
            head.push(' ');
            write_comment(&mut head, c);
        }
        head.push_str(if self.results.is_empty() {
            "; none"
        } else {
            ";"
        });
        let mut f = Folder {
            out: String::from("Authentication-Results:"),
            line: "Authentication-Results:".len(),
        };
        f.piece(&head);
        for (i, r) in self.results.iter().enumerate() {
            // Each result starts a line of its own.
            f.newline();
            let pieces = r.pieces();
            let n = pieces.len();
            for (j, mut p) in pieces.into_iter().enumerate() {
                if j + 1 == n && i + 1 < self.results.len() {
                    p.push(';');
                }
                if j == 0 {
                    f.out.push_str(&p);
                    f.line += p.len();
                } else {
                    f.piece(&p);
                }
            }
        }
        f.out.push_str("\r\n");
        f.out
    }

    /// Parses a field body (what follows `Authentication-Results:`), folded
    /// or not. A leading field name is accepted too.
    pub fn parse(body: &str) -> Result<AuthenticationResults, AuthResError> {
        let body = strip_field_name(body);
        let unfolded: String = body.chars().filter(|&c| c != '\r' && c != '\n').collect();
        let mut p = Parser {
            s: &unfolded,
            pos: 0,
        };
        let mut comments = Vec::new();
        p.cfws(&mut comments)?;
        let authserv_id = p.value("authserv-id")?;
        p.cfws(&mut comments)?;
        let version = if p.peek().is_some_and(|c| c.is_ascii_digit()) {
            let v = p.number("authres-version")?;
            p.cfws(&mut comments)?;
            Some(v)
        } else {
            None
        };
        let mut results = Vec::new();
        p.expect(';')?;
        loop {
            let mut rcomments = Vec::new();
            p.cfws(&mut rcomments)?;
            if p.at_end() {
                break;
            }
            let method = p.keyword("method")?;
            p.cfws(&mut rcomments)?;
            if method.eq_ignore_ascii_case("none")
                && results.is_empty()
                && (p.at_end() || p.peek() == Some(';'))
            {
                comments.append(&mut rcomments);
                if p.at_end() {
                    break;
                }
                p.expect(';')?;
                continue;
            }
            let mut r = MethodResult {
                method: method.to_ascii_lowercase(),
                version: None,
                result: String::new(),
                reason: None,
                properties: Vec::new(),
                comments: Vec::new(),
            };
            if p.peek() == Some('/') {
                p.pos += 1;
                p.cfws(&mut rcomments)?;
                r.version = Some(p.number("method-version")?);
                p.cfws(&mut rcomments)?;
            }
            p.expect('=')?;
            p.cfws(&mut rcomments)?;
            r.result = p.keyword("result")?.to_ascii_lowercase();
            p.cfws(&mut rcomments)?;
            // reasonspec and propspecs.
            while !p.at_end() && p.peek() != Some(';') {
                let word = p.keyword("property type or reason")?;
                p.cfws(&mut rcomments)?;
                if word.eq_ignore_ascii_case("reason") && p.peek() == Some('=') {
                    p.pos += 1;
                    p.cfws(&mut rcomments)?;
                    r.reason = Some(p.value("reason")?);
                } else {
                    p.expect('.')?;
                    p.cfws(&mut rcomments)?;
                    let name = p.keyword("property")?;
                    p.cfws(&mut rcomments)?;
                    p.expect('=')?;
                    p.cfws(&mut rcomments)?;
                    let value = p.pvalue()?;
                    r.properties.push(Property {
                        ptype: word.to_ascii_lowercase(),
                        name: name.to_ascii_lowercase(),
                        value,
                    });
                }
                p.cfws(&mut rcomments)?;
            }
            r.comments = rcomments;
            results.push(r);
            if p.at_end() {
                break;
            }
            p.expect(';')?;
        }
        Ok(AuthenticationResults {
            authserv_id,
            version,
            comments,
            results,
        })
    }
}

impl MethodResult {
    fn pieces(&self) -> Vec<String> {
        let mut pieces = Vec::new();
        let mut head = self.method.clone();
        if let Some(v) = self.version {
            let _ = write!(head, "/{v}");
        }
        let _ = write!(head, "={}", self.result);
        pieces.push(head);
        for c in &self.comments {
            let mut s = String::new();
            write_comment(&mut s, c);
            pieces.push(s);
        }
        if let Some(reason) = &self.reason {
            let mut s = String::from("reason=");
            write_value(&mut s, reason);
            pieces.push(s);
        }
        for p in &self.properties {
            let mut s = alloc::format!("{}.{}=", p.ptype, p.name);
            write_pvalue(&mut s, &p.value);
            pieces.push(s);
        }
        pieces
    }
}

impl fmt::Display for MethodResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.pieces().iter().enumerate() {
            if i > 0 {
                f.write_char(' ')?;
            }
            f.write_str(p)?;
        }
        Ok(())
    }
}

/// The field body on one line: `authserv-id[ version][ (comment)]; result; …`
/// or `authserv-id; none`.
impl fmt::Display for AuthenticationResults {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = String::new();
        write_value(&mut s, &self.authserv_id);
        f.write_str(&s)?;
        if let Some(v) = self.version {
            write!(f, " {v}")?;
        }
        for c in &self.comments {
            let mut s = String::from(" ");
            write_comment(&mut s, c);
            f.write_str(&s)?;
        }
        if self.results.is_empty() {
            return f.write_str("; none");
        }
        for r in &self.results {
            write!(f, "; {r}")?;
        }
        Ok(())
    }
}

impl core::str::FromStr for AuthenticationResults {
    type Err = AuthResError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        AuthenticationResults::parse(s)
    }
}

/// True when the field body claims `authserv_id`, read from its first
/// token, even when the rest does not parse. Use it to drop forged fields
/// (RFC 8601 5) before adding the receiver's own.
pub fn claims_authserv_id(body: &str, authserv_id: &str) -> bool {
    let body = strip_field_name(body);
    let unfolded: String = body.chars().filter(|&c| c != '\r' && c != '\n').collect();
    let mut p = Parser {
        s: &unfolded,
        pos: 0,
    };
    let mut sink = Vec::new();
    if p.cfws(&mut sink).is_err() {
        return false;
    }
    match p.value("authserv-id") {
        Ok(id) => id.eq_ignore_ascii_case(authserv_id),
        Err(_) => false,
    }
}

fn strip_field_name(body: &str) -> &str {
    const NAME: &str = "authentication-results";
    match body.get(..NAME.len()) {
        Some(head) if head.eq_ignore_ascii_case(NAME) => {
            let rest = &body[NAME.len()..];
            let rest = rest.trim_start_matches([' ', '\t']);
            rest.strip_prefix(':').unwrap_or(body)
        }
        _ => body,
    }
}

fn keyword(field: &'static str, value: &str) -> Result<String, AuthResError> {
    let ok = value
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric())
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(value.to_ascii_lowercase())
    } else {
        Err(AuthResError::NotKeyword {
            field,
            value: value.to_string(),
        })
    }
}

fn text(field: &'static str, value: &str, allow_empty: bool) -> Result<String, AuthResError> {
    if (value.is_empty() && !allow_empty) || value.chars().any(char::is_control) {
        return Err(AuthResError::BadText {
            field,
            value: value.to_string(),
        });
    }
    Ok(value.to_string())
}

/// RFC 2045 token characters.
fn is_token_char(c: char) -> bool {
    c.is_ascii_graphic() && !"()<>@,;:\\\"/[]?=".contains(c)
}

fn is_token(s: &str) -> bool {
    !s.is_empty() && s.chars().all(is_token_char)
}

fn write_quoted(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
}

fn write_value(out: &mut String, s: &str) {
    if is_token(s) {
        out.push_str(s);
    } else {
        write_quoted(out, s);
    }
}

/// A property value may also be `[local-part] "@" domain-name` bare.
fn write_pvalue(out: &mut String, s: &str) {
    let addr_ok = s.split_once('@').is_some_and(|(local, domain)| {
        let atext = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c);
        let local_ok = local.is_empty()
            || local
                .split('.')
                .all(|a| !a.is_empty() && a.chars().all(atext));
        let domain_ok = !domain.is_empty()
            && domain.split('.').all(|l| {
                !l.is_empty()
                    && l.chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            });
        local_ok && domain_ok
    });
    if addr_ok || is_token(s) {
        out.push_str(s);
    } else {
        write_quoted(out, s);
    }
}

fn write_comment(out: &mut String, s: &str) {
    out.push('(');
    for c in s.chars() {
        if c == '(' || c == ')' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push(')');
}

struct Parser<'a> {
    s: &'a str,
    pos: usize,
}

impl Parser<'_> {
    fn rest(&self) -> &str {
        self.s.get(self.pos..).unwrap_or("")
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn at_end(&self) -> bool {
        self.rest().is_empty()
    }

    fn err(&self, expected: &'static str) -> AuthResError {
        AuthResError::Expected {
            expected,
            at: self.pos,
            found: self.rest().chars().take(20).collect(),
        }
    }

    fn expect(&mut self, c: char) -> Result<(), AuthResError> {
        if self.peek() == Some(c) {
            self.pos += c.len_utf8();
            Ok(())
        } else {
            Err(self.err(match c {
                ';' => "';'",
                '=' => "'='",
                '.' => "'.'",
                _ => "a separator",
            }))
        }
    }

    /// Skips whitespace and comments, collecting the comments.
    fn cfws(&mut self, comments: &mut Vec<String>) -> Result<(), AuthResError> {
        loop {
            match self.peek() {
                Some(' ' | '\t') => self.pos += 1,
                Some('(') => {
                    let c = self.comment()?;
                    comments.push(c);
                }
                _ => return Ok(()),
            }
        }
    }

    fn comment(&mut self) -> Result<String, AuthResError> {
        let start = self.pos;
        self.pos += 1;
        let mut depth = 1;
        let mut out = String::new();
        loop {
            let Some(c) = self.peek() else {
                return Err(AuthResError::Unterminated {
                    what: "comment",
                    at: start,
                });
            };
            self.pos += c.len_utf8();
            match c {
                '\\' => {
                    let Some(n) = self.peek() else { continue };
                    self.pos += n.len_utf8();
                    if !n.is_control() {
                        out.push(n);
                    }
                }
                '(' => {
                    depth += 1;
                    out.push(c);
                }
                ')' => {
                    depth -= 1;
                    if depth == 0 {
                        return Ok(out);
                    }
                    out.push(c);
                }
                c if c.is_control() && c != '\t' => {}
                c => out.push(c),
            }
        }
    }

    fn quoted(&mut self) -> Result<String, AuthResError> {
        let start = self.pos;
        self.pos += 1;
        let mut out = String::new();
        loop {
            let Some(c) = self.peek() else {
                return Err(AuthResError::Unterminated {
                    what: "quoted-string",
                    at: start,
                });
            };
            self.pos += c.len_utf8();
            match c {
                '"' => return Ok(out),
                '\\' => {
                    let Some(n) = self.peek() else { continue };
                    self.pos += n.len_utf8();
                    if !n.is_control() {
                        out.push(n);
                    }
                }
                c if c.is_control() && c != '\t' => {}
                c => out.push(c),
            }
        }
    }

    fn keyword(&mut self, what: &'static str) -> Result<String, AuthResError> {
        let rest = self.rest();
        let n = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
            .unwrap_or(rest.len());
        if n == 0 {
            return Err(self.err(what));
        }
        let word = rest[..n].to_string();
        self.pos += n;
        Ok(word)
    }

    fn number(&mut self, what: &'static str) -> Result<u32, AuthResError> {
        let rest = self.rest();
        let n = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let v = rest[..n].parse().map_err(|_| self.err(what))?;
        self.pos += n;
        Ok(v)
    }

    /// token / quoted-string.
    fn value(&mut self, what: &'static str) -> Result<String, AuthResError> {
        if self.peek() == Some('"') {
            return self.quoted();
        }
        let rest = self.rest();
        let n = rest.find(|c: char| !is_token_char(c)).unwrap_or(rest.len());
        if n == 0 {
            return Err(self.err(what));
        }
        let v = rest[..n].to_string();
        self.pos += n;
        Ok(v)
    }

    /// A property value: a quoted-string, or a run of anything but
    /// whitespace, `;`, `(` and `"` (covering tokens, `local@domain`,
    /// `@domain` and, leniently, IPv6 addresses with `:`).
    fn pvalue(&mut self) -> Result<String, AuthResError> {
        if self.peek() == Some('"') {
            return self.quoted();
        }
        let rest = self.rest();
        let n = rest
            .find(|c: char| c.is_whitespace() || c.is_control() || matches!(c, ';' | '(' | '"'))
            .unwrap_or(rest.len());
        let v = rest[..n].to_string();
        self.pos += n;
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;
    use proptest::prelude::*;

    /// Parses, and checks that what was read is written back the same.
    fn p(s: &str) -> AuthenticationResults {
        let a = AuthenticationResults::parse(s).unwrap_or_else(|e| panic!("{s:?}: {e}"));
        for text in [a.to_string(), a.to_header_field()] {
            assert_eq!(
                AuthenticationResults::parse(&text).as_ref(),
                Ok(&a),
                "{text}"
            );
        }
        a
    }

    /// RFC 8601 appendix B.
    #[test]
    fn rfc8601_appendix_b() {
        // B.2: nothing done.
        let a = p("Authentication-Results: example.org 1; none");
        assert_eq!(
            (a.authserv_id(), a.version(), a.results().len()),
            ("example.org", Some(1), 0)
        );
        // B.3: SPF.
        let a = p(" example.com;\r\n                  spf=pass smtp.mailfrom=example.net");
        assert_eq!(a.results()[0].method(), "spf");
        assert_eq!(a.results()[0].result(), "pass");
        assert_eq!(
            a.results()[0].property("smtp", "mailfrom"),
            Some("example.net")
        );
        // B.4: SMTP AUTH and SPF, and iprev with a policy property.
        let a = p(
            " example.com;\r\n          auth=pass (cram-md5) smtp.auth=sender@example.net;\r\n          spf=pass smtp.mailfrom=example.net",
        );
        assert_eq!(a.results().len(), 2);
        assert_eq!(a.results()[0].comments(), ["cram-md5"]);
        assert_eq!(
            a.results()[0].property("smtp", "auth"),
            Some("sender@example.net")
        );
        let a = p(" example.com; iprev=pass\r\n          policy.iprev=192.0.2.200");
        assert_eq!(
            a.results()[0].property("policy", "iprev"),
            Some("192.0.2.200")
        );
        // B.5: DKIM with header.d and header.i.
        let a = p(
            " example.com;\r\n          dkim=pass (good signature) header.d=mail-router.example.net",
        );
        assert_eq!(
            a.results()[0].property("header", "d"),
            Some("mail-router.example.net")
        );
        let a = p(
            " example.net;\r\n          dkim=pass (good signature) header.i=@newyork.example.com",
        );
        assert_eq!(
            a.results()[0].property("header", "i"),
            Some("@newyork.example.com")
        );
        // B.6: two signatures, with header.b.
        let a = p(
            " mail-router.example.net;\r\n          dkim=pass (good signature) header.d=newyork.example.com\r\n                header.b=oINEO8hg;\r\n          dkim=fail (bad signature) header.d=mail-router.example.net\r\n                header.b=EToRSuvU",
        );
        assert_eq!(a.results().len(), 2);
        assert_eq!(a.results()[1].result(), "fail");
        assert_eq!(a.results()[1].property("header", "b"), Some("EToRSuvU"));
        assert_eq!(a.results()[1].comments(), ["bad signature"]);
        // B.7: comment-heavy.
        let a = p(
            " foo.example.net (foobar) 1 (baz);\r\n    dkim (Because I like it) / 1 (One yay) = (wait for it) fail\r\n      policy (A dot can go here) . (like that) expired\r\n      (this surprised me) = (as I wasn't expecting it) 1362471462",
        );
        assert_eq!(a.authserv_id(), "foo.example.net");
        assert_eq!(a.version(), Some(1));
        assert_eq!(a.comments(), ["foobar", "baz"]);
        let r = &a.results()[0];
        assert_eq!(
            (r.method(), r.version(), r.result()),
            ("dkim", Some(1), "fail")
        );
        assert_eq!(r.property("policy", "expired"), Some("1362471462"));
        assert_eq!(r.comments().len(), 7);
        assert_eq!(r.comments()[6], "as I wasn't expecting it");
    }

    #[test]
    fn real_world_fields() {
        let a = p(
            "mx.google.com;\r\n       dkim=pass header.i=@example.com header.s=sel header.b=abc123;\r\n       spf=pass (google.com: domain of a@example.com designates 192.0.2.1 as permitted sender) smtp.mailfrom=a@example.com;\r\n       dmarc=pass (p=REJECT sp=REJECT dis=NONE) header.from=example.com",
        );
        assert_eq!(a.results().len(), 3);
        assert_eq!(
            a.method("dmarc").next().unwrap().property("header", "from"),
            Some("example.com")
        );
        let a = p("x; spf=pass smtp.remote-ip=2001:db8::1 reason=\"a \\\"quoted\\\" reason\"");
        assert_eq!(
            a.results()[0].property("smtp", "remote-ip"),
            Some("2001:db8::1")
        );
        assert_eq!(a.results()[0].reason(), Some("a \"quoted\" reason"));
        // Trailing ';' is tolerated.
        assert_eq!(p("x; spf=pass;").results().len(), 1);
        // "none" with a comment.
        assert!(p("x; none (nothing checked)").results().is_empty());
    }

    #[test]
    fn parse_errors() {
        for bad in [
            "",
            ";",
            "x",
            "x; =pass",
            "x; spf",
            "x; spf=",
            "x; spf=pass smtp",
            "x; spf=pass smtp.mailfrom",
            "x (unterminated; spf=pass",
            "x; spf=pass reason=\"open",
            "x; spf=pass; ; dkim",
        ] {
            assert!(AuthenticationResults::parse(bad).is_err(), "{bad:?} parsed");
        }
        assert!(matches!(
            AuthenticationResults::parse("x; spf pass"),
            Err(AuthResError::Expected {
                expected: "'='",
                at: 7,
                ..
            })
        ));
    }

    #[test]
    fn writer_refuses_injection() {
        assert!(AuthenticationResults::new("mx\r\nX-Forged: 1").is_err());
        assert!(AuthenticationResults::new("").is_err());
        assert!(MethodResult::new("spf;dkim", "pass").is_err());
        assert!(MethodResult::new("spf", "pass (x)").is_err());
        assert!(MethodResult::new("spf", "").is_err());
        let m = MethodResult::new("spf", "pass").unwrap();
        assert!(m.clone().with_property("smtp", "mail from", "x").is_err());
        assert!(m.clone().with_property("smtp", "mailfrom", "a\nb").is_err());
        assert!(m.clone().with_reason("a\0b").is_err());
        assert!(m.clone().with_comment("a\r\n b").is_err());
        // Hostile but printable text is quoted or escaped and reads back
        // unchanged.
        let m = m
            .with_property(
                "smtp",
                "mailfrom",
                "\"evil\"; dkim=pass header.d=bank.example",
            )
            .unwrap()
            .with_reason("x); dmarc=pass (y")
            .unwrap()
            .with_comment("a) ; dkim=pass (b \\")
            .unwrap();
        let mut a = AuthenticationResults::new("mx \"ours\"; dmarc=pass").unwrap();
        a.push(m);
        let text = a.to_string();
        let back = p(&text);
        assert_eq!(back, a, "{text}");
        assert_eq!(back.results().len(), 1, "{text}");
        assert!(!claims_authserv_id(&text, "mx"));
    }

    #[test]
    fn forged_headers() {
        assert!(claims_authserv_id(
            "Authentication-Results: MX.example.org; spf=pass",
            "mx.example.org"
        ));
        assert!(claims_authserv_id(
            " mx.example.org; garbage ((",
            "mx.example.org"
        ));
        assert!(claims_authserv_id(
            " (c) \"mx.example.org\" 1; none",
            "mx.example.org"
        ));
        assert!(!claims_authserv_id(
            " mx.example.org.evil; spf=pass",
            "mx.example.org"
        ));
        assert!(!claims_authserv_id("", "mx.example.org"));
        assert!(p("mx.example.org; spf=pass").is_from("MX.EXAMPLE.ORG"));
    }

    #[test]
    fn items_from_results() {
        use crate::eval::*;
        use crate::psl::PublicSuffixList;
        let psl = PublicSuffixList::builtin();
        let spf = SpfOutcome::mail_from(SpfResult::SoftFail, "example.net");
        let dk = DkimOutcome::new(DkimResult::Pass, "example.com").with_selector("s1");
        let input = AuthInput {
            spf: Some(spf.clone()),
            dkim: alloc::vec![dk.clone()],
        };
        let verdict = Evaluation::new(&psl, "example.com", input, 0)
            .unwrap()
            .run(|_| Answer::txt("v=DMARC1; p=reject; sp=none"));
        let mut a = AuthenticationResults::new("mx.example.org").unwrap();
        a.push(items::spf(&spf, Some("bounce@example.net")).unwrap());
        a.push(items::dkim(&dk).unwrap());
        a.push(items::dmarc(&verdict).unwrap());
        assert_eq!(
            a.to_string(),
            "mx.example.org; spf=softfail smtp.mailfrom=bounce@example.net; \
             dkim=pass header.d=example.com header.s=s1; \
             dmarc=pass (p=REJECT sp=NONE dis=NONE) header.from=example.com"
        );
    }

    #[test]
    fn header_field_folds() {
        let mut a = AuthenticationResults::new("mx.example.org").unwrap();
        a.push(
            MethodResult::new("dkim", "pass")
                .unwrap()
                .with_property("header", "d", "a-rather-long-domain-name.example.com")
                .unwrap()
                .with_property("header", "s", "selector-2026-11")
                .unwrap()
                .with_property("header", "b", "AbCdEfGh")
                .unwrap(),
        );
        a.push(
            MethodResult::new("spf", "pass")
                .unwrap()
                .with_property("smtp", "mailfrom", "x@y.example")
                .unwrap(),
        );
        let field = a.to_header_field();
        assert!(
            field.starts_with("Authentication-Results: mx.example.org;\r\n\tdkim=pass"),
            "{field}"
        );
        assert!(field.ends_with("\r\n"));
        for line in field.split("\r\n") {
            assert!(line.len() <= 78, "{line:?}");
        }
        assert_eq!(p(&field), a);
        let empty = AuthenticationResults::new("mx").unwrap().to_header_field();
        assert_eq!(empty, "Authentication-Results: mx; none\r\n");
    }

    fn kw() -> impl Strategy<Value = String> {
        "[a-z0-9][a-z0-9_-]{0,8}"
    }
    fn txt() -> impl Strategy<Value = String> {
        "[ -~\u{e9}\u{4e2d}]{1,16}"
    }

    prop_compose! {
        fn method_result()(
            method in kw(), result in kw(), version in proptest::option::of(0u32..5),
            reason in proptest::option::of(txt()),
            props in proptest::collection::vec((kw(), kw(), "[ -~]{0,12}"), 0..4),
            comments in proptest::collection::vec(txt(), 0..3),
        ) -> MethodResult {
            let mut m = MethodResult::new(&method, &result).unwrap();
            if method == "none" { m = MethodResult::new("nonex", &result).unwrap(); }
            if let Some(v) = version { m = m.with_version(v); }
            if let Some(r) = reason { m = m.with_reason(&r).unwrap(); }
            for (t, n, v) in props {
                let t = if t == "reason" { "reasonx".to_string() } else { t };
                m = m.with_property(&t, &n, &v).unwrap();
            }
            for c in comments { m = m.with_comment(&c).unwrap(); }
            m
        }
    }

    proptest! {
        #[test]
        fn round_trip(id in txt(), version in proptest::option::of(0u32..3),
                      comments in proptest::collection::vec(txt(), 0..2),
                      results in proptest::collection::vec(method_result(), 0..4)) {
            let mut a = AuthenticationResults::new(&id).unwrap();
            if let Some(v) = version { a = a.with_version(v); }
            for c in &comments { a = a.with_comment(c).unwrap(); }
            for r in results { a.push(r); }
            let text = a.to_string();
            prop_assert_eq!(&AuthenticationResults::parse(&text).unwrap(), &a, "{}", text);
            prop_assert_eq!(&AuthenticationResults::parse(&a.to_header_field()).unwrap(), &a);
            prop_assert!(claims_authserv_id(&text, &id));
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,100}") {
            let _ = AuthenticationResults::parse(&s);
            let _ = claims_authserv_id(&s, "x");
            if let Ok(a) = AuthenticationResults::parse(&format!("x; {s}")) {
                // Whatever was read can be written and read back the same.
                prop_assert_eq!(AuthenticationResults::parse(&a.to_string()).unwrap(), a);
            }
        }
    }
}

/// `Authentication-Results` items for the results of this crate's types.
pub mod items {
    use super::{AuthResError, MethodResult};
    use crate::eval::{DkimOutcome, DmarcResult, SpfOutcome, SpfScope, Verdict};
    use alloc::format;

    /// `spf=<result> smtp.mailfrom=<address or domain>` (or `smtp.helo=`).
    /// `identity` is what SPF checked: the MAIL FROM address (or its domain)
    /// or the HELO name; `None` writes the outcome's domain.
    pub fn spf(outcome: &SpfOutcome, identity: Option<&str>) -> Result<MethodResult, AuthResError> {
        let name = match outcome.scope {
            SpfScope::MailFrom => "mailfrom",
            SpfScope::Helo => "helo",
        };
        MethodResult::new("spf", outcome.result.as_str())?.with_property(
            "smtp",
            name,
            identity.unwrap_or(&outcome.domain),
        )
    }

    /// `dkim=<result> header.d=<domain> [header.s=<selector>]`.
    pub fn dkim(outcome: &DkimOutcome) -> Result<MethodResult, AuthResError> {
        let mut m = MethodResult::new("dkim", outcome.result.as_str())?.with_property(
            "header",
            "d",
            &outcome.domain,
        )?;
        if let Some(s) = &outcome.selector {
            m = m.with_property("header", "s", s)?;
        }
        Ok(m)
    }

    /// `dmarc=<result> (p=… sp=… dis=…) header.from=<domain>`; the comment
    /// says the policy in force and the disposition applied, as large
    /// receivers do.
    pub fn dmarc(verdict: &Verdict) -> Result<MethodResult, AuthResError> {
        let mut m = MethodResult::new("dmarc", verdict.result.as_str())?;
        if let Some(record) = &verdict.record {
            let mut comment = format!("p={}", record.policy().as_str().to_ascii_uppercase());
            if let Some(sp) = record.sp {
                comment.push_str(&format!(" sp={}", sp.as_str().to_ascii_uppercase()));
            }
            comment.push_str(&format!(
                " dis={}",
                verdict.disposition.as_str().to_ascii_uppercase()
            ));
            if verdict.sampled_out {
                comment.push_str(" sampled_out");
            }
            m = m.with_comment(&comment)?;
        }
        if verdict.result == DmarcResult::PermError || verdict.from_domain.is_empty() {
            return Ok(m);
        }
        m.with_property("header", "from", &verdict.from_domain)
    }
}
