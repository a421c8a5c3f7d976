//! Splitting a message's header block into fields.

use alloc::vec::Vec;
use core::ops::Range;

/// One header field of a message, as byte ranges into the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// The field name (before the colon, trailing whitespace excluded).
    pub name: Range<usize>,
    /// The value: the bytes after the colon up to, not including, the final
    /// line break (folding kept).
    pub value: Range<usize>,
    /// The whole field, final line break included.
    pub raw: Range<usize>,
}

/// The header fields of `message`, top to bottom, and the offset where the
/// body starts (after the empty line; `message.len()` when there is none).
///
/// Lines may end in CRLF or a bare LF. A line that starts with a space or a
/// tab continues the previous field. A line whose text before the first
/// colon is not a field name (no colon, an empty name, a space in it)
/// becomes a nameless field, never selected.
pub fn split(message: &[u8]) -> (Vec<Field>, usize) {
    let mut fields: Vec<Field> = Vec::new();
    let mut pos = 0;
    while pos < message.len() {
        let line_end = memchr::memchr(b'\n', message.get(pos..).unwrap_or_default())
            .map_or(message.len(), |n| pos + n + 1);
        let line = message.get(pos..line_end).unwrap_or_default();
        let content_len = line
            .strip_suffix(b"\r\n")
            .or_else(|| line.strip_suffix(b"\n"))
            .map_or(line.len(), <[u8]>::len);
        if content_len == 0 {
            // The empty line between header and body.
            return (fields, line_end);
        }
        let first = line.first().copied().unwrap_or(0);
        if (first == b' ' || first == b'\t') && !fields.is_empty() {
            if let Some(last) = fields.last_mut() {
                last.value.end = pos + content_len;
                last.raw.end = line_end;
            }
        } else {
            let content = line.get(..content_len).unwrap_or_default();
            // As ptt-dkim reads it: the name is the non-empty run of
            // printable ASCII before the colon; anything else is nameless.
            match memchr::memchr(b':', content) {
                Some(colon)
                    if colon > 0
                        && content
                            .get(..colon)
                            .unwrap_or_default()
                            .iter()
                            .all(|b| (0x21..=0x7e).contains(b)) =>
                {
                    fields.push(Field {
                        name: pos..pos + colon,
                        value: pos + colon + 1..pos + content_len,
                        raw: pos..line_end,
                    });
                }
                _ => fields.push(Field {
                    name: pos..pos,
                    value: pos..pos + content_len,
                    raw: pos..line_end,
                }),
            }
        }
        pos = line_end;
    }
    (fields, message.len())
}

/// The bytes of `range` in `message` (empty when out of bounds).
pub(crate) fn bytes(message: &[u8], range: Range<usize>) -> &[u8] {
    message.get(range).unwrap_or_default()
}

/// Converts bare LF line ends to CRLF (mail read from a Unix file or from a
/// YAML test suite); CRLF stays as it is.
pub fn to_crlf(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + message.len() / 32);
    let mut prev = 0u8;
    for &b in message {
        if b == b'\n' && prev != b'\r' {
            out.push(b'\r');
        }
        out.push(b);
        prev = b;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_folded_fields_and_finds_the_body() {
        let m = b"A: 1\r\nB:\r\n 2\r\n\t3\r\nno colon\r\n\r\nbody\r\n";
        let (fields, body) = split(m);
        assert_eq!(fields.len(), 3);
        assert_eq!(bytes(m, fields[0].name.clone()), b"A");
        assert_eq!(bytes(m, fields[0].value.clone()), b" 1");
        assert_eq!(bytes(m, fields[1].value.clone()), b"\r\n 2\r\n\t3");
        assert_eq!(bytes(m, fields[1].raw.clone()), b"B:\r\n 2\r\n\t3\r\n");
        assert_eq!(bytes(m, fields[2].name.clone()), b"");
        assert_eq!(bytes(m, fields[2].value.clone()), b"no colon");
        assert_eq!(&m[body..], b"body\r\n");
    }

    #[test]
    fn no_body_and_empty_message() {
        let (f, b) = split(b"A: 1\r\n");
        assert_eq!((f.len(), b), (1, 6));
        let (f, b) = split(b"");
        assert_eq!((f.len(), b), (0, 0));
        let (f, b) = split(b"\r\nbody");
        assert_eq!((f.len(), b), (0, 2));
    }

    #[test]
    fn lf_to_crlf() {
        assert_eq!(to_crlf(b"a\nb\r\nc\n"), b"a\r\nb\r\nc\r\n");
    }
}
