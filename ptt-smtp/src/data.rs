//! Message data on the client side: line ends normalised to CRLF and, for
//! DATA, dot-stuffed and terminated (RFC 5321 section 4.5.2).

use alloc::vec::Vec;

/// Normalises line ends to CRLF (a bare LF or a bare CR becomes CRLF) and
/// makes sure non-empty data ends with CRLF.
pub fn normalize(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + data.len() / 32 + 2);
    let mut i = 0;
    while i < data.len() {
        let rest = data.get(i..).unwrap_or_default();
        let n = memchr::memchr2(b'\r', b'\n', rest).unwrap_or(rest.len());
        out.extend_from_slice(rest.get(..n).unwrap_or_default());
        i += n;
        match data.get(i) {
            None => break,
            Some(b'\r') => {
                out.extend_from_slice(b"\r\n");
                i += if data.get(i + 1) == Some(&b'\n') {
                    2
                } else {
                    1
                };
            }
            Some(_) => {
                out.extend_from_slice(b"\r\n");
                i += 1;
            }
        }
    }
    if !out.is_empty() && !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// The DATA form of `data`: normalised, every line starting with `.` gets
/// one more, and the end marker `.CRLF` follows.
///
/// ```
/// assert_eq!(ptt_smtp::data::stuff(b"a\n.b\n..\n"), b"a\r\n..b\r\n...\r\n.\r\n");
/// ```
pub fn stuff(data: &[u8]) -> Vec<u8> {
    let norm = normalize(data);
    let mut out = Vec::with_capacity(norm.len() + norm.len() / 64 + 8);
    let mut line_start = true;
    let mut i = 0;
    while i < norm.len() {
        if line_start && norm.get(i) == Some(&b'.') {
            out.push(b'.');
        }
        let rest = norm.get(i..).unwrap_or_default();
        match memchr::memchr(b'\n', rest) {
            Some(n) => {
                out.extend_from_slice(rest.get(..=n).unwrap_or_default());
                i += n + 1;
                line_start = true;
            }
            None => {
                out.extend_from_slice(rest);
                break;
            }
        }
    }
    out.extend_from_slice(b".\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes() {
        assert_eq!(normalize(b"a\nb\rc\r\nd"), b"a\r\nb\r\nc\r\nd\r\n");
        assert_eq!(normalize(b""), b"");
        assert_eq!(stuff(b""), b".\r\n");
        assert_eq!(stuff(b".\r\n"), b"..\r\n.\r\n");
    }
}
