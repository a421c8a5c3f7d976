//! SMTP replies (RFC 5321 section 4.2) with enhanced status codes
//! (RFC 2034, RFC 3463): the parsed form, its wire form, and an incremental
//! parser for the client side.

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

/// An enhanced status code `class.subject.detail` (RFC 3463), such as `2.1.5`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EnhancedCode {
    /// 2, 4 or 5.
    pub class: u8,
    /// The subject (0 to 999).
    pub subject: u16,
    /// The detail (0 to 999).
    pub detail: u16,
}

impl EnhancedCode {
    /// A code from its three parts.
    pub const fn new(class: u8, subject: u16, detail: u16) -> Self {
        EnhancedCode {
            class,
            subject,
            detail,
        }
    }

    /// Parses `X.Y.Z` (X in 2, 4, 5; Y and Z of one to three digits).
    pub fn parse(s: &str) -> Option<EnhancedCode> {
        let mut parts = s.split('.');
        let class = parts.next()?;
        let subject = parts.next()?;
        let detail = parts.next()?;
        if parts.next().is_some() {
            return None;
        }
        let num = |p: &str, max: usize| -> Option<u16> {
            if p.is_empty() || p.len() > max || !p.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            p.parse().ok()
        };
        let class = num(class, 1)?;
        if !matches!(class, 2 | 4 | 5) {
            return None;
        }
        Some(EnhancedCode {
            class: class as u8,
            subject: num(subject, 3)?,
            detail: num(detail, 3)?,
        })
    }
}

impl fmt::Display for EnhancedCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.class, self.subject, self.detail)
    }
}

/// One SMTP reply: a three-digit code, an optional enhanced code, and one or
/// more lines of text.
///
/// ```
/// use ptt_smtp::{EnhancedCode, Reply};
/// let r = Reply::new(250, Some(EnhancedCode::new(2, 1, 0)), "Sender OK");
/// assert_eq!(r.to_string(), "250 2.1.0 Sender OK\r\n");
/// assert_eq!(Reply::parse(b"250 2.1.0 Sender OK\r\n").unwrap(), r);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    code: u16,
    enhanced: Option<EnhancedCode>,
    lines: Vec<String>,
}

/// Why a reply could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReplyError {
    /// A line does not start with a three-digit code from 200 to 599.
    #[error("reply line {line:?} does not start with a code from 200 to 599")]
    BadCode {
        /// The offending line (lossy UTF-8).
        line: String,
    },
    /// The fourth character of a line is neither a space nor `-`.
    #[error("reply line {line:?} has no space or '-' after its code")]
    BadSeparator {
        /// The offending line.
        line: String,
    },
    /// The lines of one multi-line reply carry different codes.
    #[error("reply line {line:?} has code {got}, the reply began with {expected}")]
    MixedCodes {
        /// The code of the first line.
        expected: u16,
        /// The code on this line.
        got: u16,
        /// The offending line.
        line: String,
    },
    /// A line is longer than the parser's limit.
    #[error("reply line longer than {limit} octets")]
    LineTooLong {
        /// The limit.
        limit: usize,
    },
    /// A reply has more lines than the parser's limit.
    #[error("reply with more than {limit} lines")]
    TooManyLines {
        /// The limit.
        limit: usize,
    },
    /// The input ended before the last line of the reply.
    #[error("reply is incomplete (no last line ending in CRLF)")]
    Incomplete,
    /// Bytes follow the reply.
    #[error("{count} bytes follow the reply")]
    Trailing {
        /// How many.
        count: usize,
    },
}

fn clean(text: &str) -> String {
    text.chars()
        .map(|c| if c == '\r' || c == '\n' { ' ' } else { c })
        .collect()
}

impl Reply {
    /// A one-line reply. CR and LF in `text` become spaces.
    pub fn new(code: u16, enhanced: Option<EnhancedCode>, text: &str) -> Reply {
        Reply {
            code,
            enhanced,
            lines: alloc::vec![clean(text)],
        }
    }

    /// A reply of several lines (an empty list gives one empty line).
    pub fn multiline<I, S>(code: u16, enhanced: Option<EnhancedCode>, lines: I) -> Reply
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut lines: Vec<String> = lines.into_iter().map(|l| clean(l.as_ref())).collect();
        if lines.is_empty() {
            lines.push(String::new());
        }
        Reply {
            code,
            enhanced,
            lines,
        }
    }

    /// The three-digit code.
    pub fn code(&self) -> u16 {
        self.code
    }

    /// The enhanced status code, when the reply carries one.
    pub fn enhanced(&self) -> Option<EnhancedCode> {
        self.enhanced
    }

    /// The text lines (without code, enhanced code or CRLF).
    pub fn lines(&self) -> &[String] {
        &self.lines
    }

    /// The lines joined by a space.
    pub fn text(&self) -> String {
        self.lines.join(" ")
    }

    /// 2xx.
    pub fn is_positive(&self) -> bool {
        (200..300).contains(&self.code)
    }

    /// 3xx (intermediate: send more).
    pub fn is_intermediate(&self) -> bool {
        (300..400).contains(&self.code)
    }

    /// 4xx.
    pub fn is_transient(&self) -> bool {
        (400..500).contains(&self.code)
    }

    /// 5xx.
    pub fn is_permanent(&self) -> bool {
        (500..600).contains(&self.code)
    }

    /// The same reply without its enhanced code.
    pub fn without_enhanced(mut self) -> Reply {
        self.enhanced = None;
        self
    }

    /// Appends the wire form (every line ending in CRLF) to `out`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        let last = self.lines.len().saturating_sub(1);
        for (i, line) in self.lines.iter().enumerate() {
            let code = self.code.to_string();
            out.extend_from_slice(code.as_bytes());
            out.push(if i == last { b' ' } else { b'-' });
            if let Some(e) = self.enhanced {
                out.extend_from_slice(e.to_string().as_bytes());
                if !line.is_empty() {
                    out.push(b' ');
                }
            }
            out.extend_from_slice(line.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
    }

    /// Parses exactly one complete reply (all its lines, each ending in CRLF).
    pub fn parse(input: &[u8]) -> Result<Reply, ReplyError> {
        let mut parser = ReplyParser::new();
        parser.push(input);
        match parser.next_reply()? {
            Some(reply) => {
                if parser.buffered() > 0 {
                    return Err(ReplyError::Trailing {
                        count: parser.buffered(),
                    });
                }
                Ok(reply)
            }
            None => Err(ReplyError::Incomplete),
        }
    }
}

/// A reply line as text: bytes that are not UTF-8 become `?`, one per
/// byte, so the text is never longer than the line (U+FFFD would triple
/// it, and the reply would no longer fit the line limit it was read under).
fn text_of(line: &[u8]) -> String {
    let mut text = String::with_capacity(line.len());
    for chunk in line.utf8_chunks() {
        text.push_str(chunk.valid());
        text.extend(core::iter::repeat_n('?', chunk.invalid().len()));
    }
    text
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = Vec::new();
        self.write_to(&mut out);
        f.write_str(&String::from_utf8_lossy(&out))
    }
}

/// Splits a byte stream from a server into replies, line by line.
///
/// Lines may end in CRLF or (leniently) a bare LF. Enhanced codes are
/// recognised when every line of a reply starts with the same one and its
/// class matches the first digit of the code.
#[derive(Debug, Default, Clone)]
pub struct ReplyParser {
    buf: Vec<u8>,
    pos: usize,
    pending: Vec<(u16, String)>,
    max_line: usize,
    max_lines: usize,
}

impl ReplyParser {
    /// A parser with limits of 4096 octets per line and 512 lines per reply.
    pub fn new() -> Self {
        ReplyParser {
            buf: Vec::new(),
            pos: 0,
            pending: Vec::new(),
            max_line: 4096,
            max_lines: 512,
        }
    }

    /// Adds bytes received from the server.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.pos > 0 && self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes held that do not yet form a line.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// The next complete reply, `Ok(None)` when more bytes are needed.
    pub fn next_reply(&mut self) -> Result<Option<Reply>, ReplyError> {
        loop {
            let rest = self.buf.get(self.pos..).unwrap_or_default();
            let Some(lf) = memchr::memchr(b'\n', rest) else {
                if rest.len() > self.max_line {
                    return Err(ReplyError::LineTooLong {
                        limit: self.max_line,
                    });
                }
                return Ok(None);
            };
            let mut line = rest.get(..lf).unwrap_or_default();
            self.pos += lf + 1;
            if line.last() == Some(&b'\r') {
                line = line.get(..line.len() - 1).unwrap_or_default();
            }
            if line.len() > self.max_line {
                return Err(ReplyError::LineTooLong {
                    limit: self.max_line,
                });
            }
            let text = text_of(line);
            let code = match line.get(..3) {
                Some(d) if d.iter().all(|b| b.is_ascii_digit()) => {
                    let c = u16::from(d[0] - b'0') * 100
                        + u16::from(d[1] - b'0') * 10
                        + u16::from(d[2] - b'0');
                    if !(200..600).contains(&c) {
                        self.pending.clear();
                        return Err(ReplyError::BadCode { line: text });
                    }
                    c
                }
                _ => {
                    self.pending.clear();
                    return Err(ReplyError::BadCode { line: text });
                }
            };
            let (last, body) = match line.get(3) {
                None => (true, String::new()),
                Some(b' ') => (true, text.get(4..).unwrap_or_default().to_string()),
                Some(b'-') => (false, text.get(4..).unwrap_or_default().to_string()),
                Some(_) => {
                    self.pending.clear();
                    return Err(ReplyError::BadSeparator { line: text });
                }
            };
            if let Some((first, _)) = self.pending.first()
                && *first != code
            {
                let expected = *first;
                self.pending.clear();
                return Err(ReplyError::MixedCodes {
                    expected,
                    got: code,
                    line: text,
                });
            }
            self.pending.push((code, body));
            if self.pending.len() > self.max_lines {
                self.pending.clear();
                return Err(ReplyError::TooManyLines {
                    limit: self.max_lines,
                });
            }
            if last {
                let lines: Vec<String> = core::mem::take(&mut self.pending)
                    .into_iter()
                    .map(|(_, l)| l)
                    .collect();
                return Ok(Some(assemble(code, lines)));
            }
        }
    }
}

/// Builds a reply, taking out an enhanced code that starts every line.
fn assemble(code: u16, lines: Vec<String>) -> Reply {
    let split = |l: &str| -> Option<(EnhancedCode, String)> {
        let (head, tail) = match l.find(' ') {
            Some(i) => (&l[..i], &l[i + 1..]),
            None => (l, ""),
        };
        let e = EnhancedCode::parse(head)?;
        Some((e, tail.to_string()))
    };
    let class = (code / 100) as u8;
    if let Some((first, _)) = lines.first().and_then(|l| split(l))
        && first.class == class
    {
        {
            let mut out = Vec::with_capacity(lines.len());
            for l in &lines {
                match split(l) {
                    Some((e, t)) if e == first => out.push(t),
                    _ => {
                        return Reply {
                            code,
                            enhanced: None,
                            lines,
                        };
                    }
                }
            }
            return Reply {
                code,
                enhanced: Some(first),
                lines: out,
            };
        }
    }
    Reply {
        code,
        enhanced: None,
        lines,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    /// Found by the `smtp_reply` fuzz target: a line at the length limit
    /// full of bytes that are not UTF-8 parsed, but its text (with U+FFFD
    /// for each) no longer fit the limit, so the reply did not parse back.
    #[test]
    fn non_utf8_text_keeps_its_length_and_parses_back() {
        let mut line = b"573 -".to_vec();
        line.extend(core::iter::repeat_n(0xe9u8, 4000));
        line.extend_from_slice(b"\r\n");
        let r = Reply::parse(&line).unwrap();
        assert!(r.to_string().len() <= line.len());
        assert_eq!(Reply::parse(r.to_string().as_bytes()).unwrap(), r);
        let r = Reply::parse(b"250 caf\xc3\xa9 \xff ok\r\n").unwrap();
        assert_eq!(r.to_string(), "250 caf\u{e9} ? ok\r\n");
    }

    #[test]
    fn multiline_round_trip() {
        let r = Reply::multiline(250, None, ["mx.test", "PIPELINING", "SIZE 100"]);
        let wire = r.to_string();
        assert_eq!(wire, "250-mx.test\r\n250-PIPELINING\r\n250 SIZE 100\r\n");
        assert_eq!(Reply::parse(wire.as_bytes()).unwrap(), r);
    }

    #[test]
    fn incremental_and_lenient() {
        let mut p = ReplyParser::new();
        p.push(b"220 hi\r\n250-a\r\n25");
        assert_eq!(p.next_reply().unwrap().unwrap().code(), 220);
        assert_eq!(p.next_reply().unwrap(), None);
        p.push(b"0 b\n");
        let r = p.next_reply().unwrap().unwrap();
        assert_eq!(r.lines(), &["a".to_string(), "b".to_string()]);
    }

    #[test]
    fn errors() {
        assert!(matches!(
            Reply::parse(b"hello\r\n"),
            Err(ReplyError::BadCode { .. })
        ));
        assert!(matches!(
            Reply::parse(b"250-a\r\n251 b\r\n"),
            Err(ReplyError::MixedCodes { .. })
        ));
        assert!(matches!(
            Reply::parse(b"250xa\r\n"),
            Err(ReplyError::BadSeparator { .. })
        ));
        assert_eq!(Reply::parse(b"250-a\r\n"), Err(ReplyError::Incomplete));
        assert_eq!(Reply::parse(b"250\r\n").unwrap().lines(), &[String::new()]);
    }

    #[test]
    fn enhanced_only_when_class_matches() {
        let r = Reply::parse(b"550 2.1.0 odd\r\n").unwrap();
        assert_eq!(r.enhanced(), None);
        let r = Reply::parse(b"550-5.1.1 no\r\n550 5.1.1 such user\r\n").unwrap();
        assert_eq!(r.enhanced(), Some(EnhancedCode::new(5, 1, 1)));
        assert_eq!(
            r.lines(),
            &vec!["no".to_string(), "such user".to_string()][..]
        );
    }
}
