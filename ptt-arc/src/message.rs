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
/// The fields are ptt-dkim's ([`ptt_dkim::split_header_fields`]), so that
/// ARC reads a header exactly as its DKIM signatures are computed over it:
/// lines may end in CRLF or a bare LF, a line that starts with a space or
/// a tab continues the previous field, and a line with no field name
/// before a colon becomes a nameless field, never selected.
pub fn split(message: &[u8]) -> (Vec<Field>, usize) {
    let (head_end, body) = header_end(message);
    let head = message.get(..head_end).unwrap_or_default();
    let base = message.as_ptr() as usize;
    let fields = ptt_dkim::split_header_fields(head)
        .into_iter()
        .map(|f| {
            let start = f.raw.as_ptr() as usize - base;
            let raw = start..start + f.raw.len();
            let content = f
                .raw
                .strip_suffix(b"\r\n")
                .or_else(|| f.raw.strip_suffix(b"\n"))
                .map_or(f.raw.len(), <[u8]>::len);
            if f.name.is_empty() {
                return Field {
                    name: start..start,
                    value: start..start + content,
                    raw,
                };
            }
            let name_start = f.name.as_ptr() as usize - base;
            let after_colon = memchr::memchr(b':', f.raw).map_or(content, |c| c + 1);
            Field {
                name: name_start..name_start + f.name.len(),
                value: start + after_colon.min(content)..start + content,
                raw,
            }
        })
        .collect();
    (fields, body)
}

/// Where the header block ends (the empty line's start) and the body
/// starts (after it); both the message's end when there is no empty line.
fn header_end(message: &[u8]) -> (usize, usize) {
    let mut pos = 0;
    while pos < message.len() {
        let line_end = memchr::memchr(b'\n', message.get(pos..).unwrap_or_default())
            .map_or(message.len(), |n| pos + n + 1);
        let line = message.get(pos..line_end).unwrap_or_default();
        if line == b"\r\n" || line == b"\n" {
            return (pos, line_end);
        }
        pos = line_end;
    }
    (message.len(), message.len())
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
