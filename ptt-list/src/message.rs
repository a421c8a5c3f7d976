//! Raw header handling (rewriting is done on bytes, so that what is not
//! touched stays byte for byte as it came) and the texts the list sends.

use alloc::string::String;
use alloc::vec::Vec;

/// A message split into header fields (each with its folded lines and
/// final CRLF) and body. Line endings are normalised to CRLF first.
#[derive(Debug, Clone)]
pub(crate) struct Raw {
    pub(crate) fields: Vec<Field>,
    pub(crate) body: Vec<u8>,
}

#[derive(Debug, Clone)]
pub(crate) struct Field {
    /// Name as written.
    pub(crate) name: String,
    /// The whole field, `Name: value\r\n` with continuation lines.
    pub(crate) raw: Vec<u8>,
}

impl Field {
    /// The unfolded value without the name and the colon, trimmed.
    pub(crate) fn value(&self) -> String {
        let colon = self.raw.iter().position(|&c| c == b':').unwrap_or(0);
        let v = self.raw.get(colon + 1..).unwrap_or_default();
        let mut out = String::with_capacity(v.len());
        for &c in v {
            if c != b'\r' && c != b'\n' {
                out.push(char::from(c));
            }
        }
        String::from(out.trim())
    }
}

/// Converts bare LF (and bare CR) to CRLF.
pub(crate) fn to_crlf(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + data.len() / 32);
    let mut i = 0;
    while let Some(&c) = data.get(i) {
        match c {
            b'\r' => {
                out.extend_from_slice(b"\r\n");
                if data.get(i + 1) == Some(&b'\n') {
                    i += 1;
                }
            }
            b'\n' => out.extend_from_slice(b"\r\n"),
            _ => out.push(c),
        }
        i += 1;
    }
    out
}

impl Raw {
    /// Splits a message (any line endings) into fields and body. Lines in
    /// the header that are neither fields nor continuations end the header.
    pub(crate) fn parse(data: &[u8]) -> Raw {
        let data = to_crlf(data);
        let mut fields: Vec<Field> = Vec::new();
        let mut pos = 0;
        loop {
            let rest = data.get(pos..).unwrap_or_default();
            if rest.is_empty() {
                return Raw {
                    fields,
                    body: Vec::new(),
                };
            }
            if rest.starts_with(b"\r\n") {
                return Raw {
                    fields,
                    body: rest.get(2..).unwrap_or_default().to_vec(),
                };
            }
            let line_end = find_crlf(rest).map_or(rest.len(), |e| e + 2);
            let line = rest.get(..line_end).unwrap_or(rest);
            if line.first().is_some_and(|&c| c == b' ' || c == b'\t')
                && let Some(last) = fields.last_mut()
            {
                last.raw.extend_from_slice(line);
                pos += line_end;
                continue;
            }
            let Some(colon) = line.iter().position(|&c| c == b':') else {
                // Not a header line: the rest is body.
                return Raw {
                    fields,
                    body: rest.to_vec(),
                };
            };
            let name = line.get(..colon).unwrap_or_default();
            if name.is_empty() || !name.iter().all(|&c| (33..=126).contains(&c)) {
                return Raw {
                    fields,
                    body: rest.to_vec(),
                };
            }
            let mut raw = line.to_vec();
            if !raw.ends_with(b"\r\n") {
                raw.extend_from_slice(b"\r\n");
            }
            fields.push(Field {
                name: String::from_utf8_lossy(name).into_owned(),
                raw,
            });
            pos += line_end;
        }
    }

    /// The first field called `name` (case-insensitive).
    pub(crate) fn get(&self, name: &str) -> Option<&Field> {
        self.fields
            .iter()
            .find(|f| f.name.eq_ignore_ascii_case(name))
    }

    /// Every field called `name`.
    pub(crate) fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Field> + 'a {
        self.fields
            .iter()
            .filter(move |f| f.name.eq_ignore_ascii_case(name))
    }

    /// Removes every field whose name is in `names`.
    pub(crate) fn remove(&mut self, names: &[&str]) {
        self.fields
            .retain(|f| !names.iter().any(|n| f.name.eq_ignore_ascii_case(n)));
    }

    /// Replaces (or appends) a field.
    pub(crate) fn set(&mut self, name: &str, value: &str) {
        let raw = field_bytes(name, value);
        if let Some(f) = self
            .fields
            .iter_mut()
            .find(|f| f.name.eq_ignore_ascii_case(name))
        {
            f.raw = raw;
            self.fields.retain({
                let mut seen = false;
                move |g| {
                    if g.name.eq_ignore_ascii_case(name) {
                        let keep = !seen;
                        seen = true;
                        keep
                    } else {
                        true
                    }
                }
            });
        } else {
            self.push(name, value);
        }
    }

    /// Appends a field.
    pub(crate) fn push(&mut self, name: &str, value: &str) {
        self.fields.push(Field {
            name: name.into(),
            raw: field_bytes(name, value),
        });
    }

    /// The message as bytes.
    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        let len: usize =
            self.fields.iter().map(|f| f.raw.len()).sum::<usize>() + 2 + self.body.len();
        let mut out = Vec::with_capacity(len);
        for f in &self.fields {
            out.extend_from_slice(&f.raw);
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&self.body);
        out
    }
}

fn find_crlf(s: &[u8]) -> Option<usize> {
    s.windows(2).position(|w| w == b"\r\n")
}

/// `Name: value\r\n`, folded at spaces so lines stay under 78 octets
/// where the value allows it.
pub(crate) fn field_bytes(name: &str, value: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(name.len() + value.len() + 8);
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    let mut col = name.len() + 2;
    let mut first = true;
    for word in value.split(' ') {
        if !first {
            if col + 1 + word.len() > 78 {
                out.extend_from_slice(b"\r\n ");
                col = 1;
            } else {
                out.push(b' ');
                col += 1;
            }
        }
        out.extend_from_slice(word.as_bytes());
        col += word.len();
        first = false;
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// RFC 5322 date (UTC) for a Unix time.
pub fn rfc5322_date(unix: u64) -> String {
    let days = unix / 86_400;
    let secs = unix % 86_400;
    let (y, m, d) = civil_from_days(days as i64);
    let weekday = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][(days % 7) as usize];
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ][(m - 1) as usize];
    alloc::format!(
        "{weekday}, {d} {month} {y} {:02}:{:02}:{:02} +0000",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// Howard Hinnant's days-to-civil.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Lower-case base32 (RFC 4648 alphabet, lower case, no padding).
pub(crate) fn base32(bytes: &[u8]) -> String {
    const ALPHA: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    let mut out = String::new();
    let mut acc: u32 = 0;
    let mut bits = 0;
    for &b in bytes {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHA[((acc >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHA[((acc << (5 - bits)) & 31) as usize]));
    }
    out
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
pub(crate) fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for &c in s.as_bytes() {
        if c.is_ascii_alphanumeric() || b"-._~".contains(&c) {
            out.push(char::from(c));
        } else {
            out.push('%');
            out.push(char::from(b"0123456789ABCDEF"[usize::from(c >> 4)]));
            out.push(char::from(b"0123456789ABCDEF"[usize::from(c & 15)]));
        }
    }
    out
}

/// A plain-text message the list writes itself (confirmations, notices).
pub(crate) struct Notice<'a> {
    pub(crate) from: &'a str,
    pub(crate) to: &'a str,
    pub(crate) subject: &'a str,
    pub(crate) reply_to: Option<&'a str>,
    pub(crate) message_id: String,
    pub(crate) date: u64,
    pub(crate) body: &'a str,
    /// Attach this message as message/rfc822 (a held post shown to moderators).
    pub(crate) attach: Option<&'a [u8]>,
}

impl Notice<'_> {
    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        let mut raw = Raw {
            fields: Vec::new(),
            body: Vec::new(),
        };
        raw.push("From", self.from);
        raw.push("To", self.to);
        raw.push("Subject", self.subject);
        if let Some(r) = self.reply_to {
            raw.push("Reply-To", r);
        }
        raw.push("Date", &rfc5322_date(self.date));
        raw.push("Message-ID", &self.message_id);
        raw.push("MIME-Version", "1.0");
        raw.push("Auto-Submitted", "auto-replied");
        raw.push("Precedence", "list");
        let text = to_crlf(self.body.as_bytes());
        match self.attach {
            None => {
                raw.push("Content-Type", "text/plain; charset=utf-8");
                raw.push("Content-Transfer-Encoding", "8bit");
                raw.body = text;
            }
            Some(msg) => {
                let boundary = alloc::format!("=_ptt_{}", self.date);
                raw.push(
                    "Content-Type",
                    &alloc::format!("multipart/mixed; boundary=\"{boundary}\""),
                );
                let mut b = Vec::new();
                b.extend_from_slice(alloc::format!("--{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n").as_bytes());
                b.extend_from_slice(&text);
                b.extend_from_slice(
                    alloc::format!("\r\n--{boundary}\r\nContent-Type: message/rfc822\r\n\r\n")
                        .as_bytes(),
                );
                b.extend_from_slice(&to_crlf(msg));
                b.extend_from_slice(alloc::format!("\r\n--{boundary}--\r\n").as_bytes());
                raw.body = b;
            }
        }
        raw.to_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_and_rewrites() {
        let mut m = Raw::parse(b"From: a@b.c\nSubject: hi\n there\nX: 1\n\nbody\nline\n");
        assert_eq!(m.fields.len(), 3);
        assert_eq!(m.get("subject").unwrap().value(), "hi there");
        m.set("Subject", "[l] hi there");
        m.remove(&["x"]);
        assert_eq!(
            m.to_bytes(),
            b"From: a@b.c\r\nSubject: [l] hi there\r\n\r\nbody\r\nline\r\n".to_vec()
        );
    }

    #[test]
    fn dates() {
        assert_eq!(rfc5322_date(0), "Thu, 1 Jan 1970 00:00:00 +0000");
        assert_eq!(
            rfc5322_date(1_700_000_000),
            "Tue, 14 Nov 2023 22:13:20 +0000"
        );
    }

    #[test]
    fn base32_and_percent() {
        assert_eq!(base32(b"foobar"), "mzxw6ytboi");
        assert_eq!(percent_encode("a+b@c.d"), "a%2Bb%40c.d");
    }
}
