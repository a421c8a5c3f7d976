//! Finding the end of the header block in a stream.

use alloc::vec::Vec;

/// Collects the header block until the empty line; hands back the body part.
#[derive(Debug, Clone)]
pub(crate) struct HeadSplitter {
    // Starts with a virtual CRLF so that a message with no header fields
    // ("\r\n" first) is found by the same search for CRLF CRLF.
    buf: Vec<u8>,
    done: bool,
    limit: usize,
}

const TERM: &[u8] = b"\r\n\r\n";

/// Where CRLF CRLF first starts in `data`: each LF is looked at (a memmem
/// searcher would be built for every message, which costs more than this
/// search over a usual header block).
fn find_term(data: &[u8]) -> Option<usize> {
    let mut from = 0;
    while let Some(k) = memchr::memchr(b'\n', data.get(from..)?) {
        let lf = from + k;
        if lf >= 3 && data.get(lf - 3..=lf) == Some(TERM) {
            return Some(lf - 3);
        }
        from = lf + 1;
    }
    None
}

impl HeadSplitter {
    pub(crate) fn new(limit: usize) -> Self {
        HeadSplitter {
            // Sized by the first piece (`push`).
            buf: b"\r\n".to_vec(),
            done: false,
            limit,
        }
    }

    pub(crate) fn is_done(&self) -> bool {
        self.done
    }

    /// Takes bytes; once the empty line is seen returns the rest of `data`
    /// (the start of the body). `Err(limit)` when the header is too large.
    pub(crate) fn push<'d>(&mut self, data: &'d [u8]) -> Result<Option<&'d [u8]>, usize> {
        if self.done {
            return Ok(Some(data));
        }
        // The terminator may straddle what we have and what came.
        for k in (1..=3).rev() {
            if self.buf.ends_with(&TERM[..k]) && data.starts_with(&TERM[k..]) {
                let used = 4 - k;
                self.buf.extend_from_slice(&data[..used]);
                self.buf.truncate(self.buf.len() - 2);
                self.done = true;
                return Ok(Some(&data[used..]));
            }
        }
        let term = find_term(data);
        if self.buf.len() == 2 {
            // Room for the header block if it is all here, else for what is
            // and a usual header block besides (some callers feed a line at
            // a time).
            let head = term.map_or(data.len() + 512, |p| p + 2);
            self.buf.reserve(head.min(self.limit));
        }
        if let Some(p) = term {
            self.buf.extend_from_slice(&data[..p + 2]);
            self.done = true;
            return Ok(Some(&data[p + 4..]));
        }
        self.buf.extend_from_slice(data);
        if self.buf.len() > self.limit {
            return Err(self.limit);
        }
        Ok(None)
    }

    /// Ends the message: a header with no empty line after it is the whole
    /// message (no body).
    pub(crate) fn finish(&mut self) {
        if !self.done {
            self.done = true;
            if !self.buf.ends_with(b"\r\n") {
                self.buf.extend_from_slice(b"\r\n");
            }
        }
    }

    /// The header block: every field with its CRLF, without the empty line.
    pub(crate) fn head(&self) -> &[u8] {
        self.buf.get(2..).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_anywhere() {
        let msg = b"A: 1\r\nB: 2\r\n\r\nbody\r\n";
        for cut in 0..msg.len() {
            let mut h = HeadSplitter::new(1000);
            let mut body = Vec::new();
            for part in [&msg[..cut], &msg[cut..]] {
                if let Some(b) = h.push(part).unwrap() {
                    body.extend_from_slice(b);
                }
            }
            assert_eq!(h.head(), b"A: 1\r\nB: 2\r\n", "cut {cut}");
            assert_eq!(body, b"body\r\n", "cut {cut}");
        }
        let mut h = HeadSplitter::new(1000);
        assert_eq!(h.push(b"\r\nbody").unwrap(), Some(&b"body"[..]));
        assert_eq!(h.head(), b"");
        let mut h = HeadSplitter::new(4);
        assert!(h.push(b"A: 12345").is_err());
    }

    #[test]
    fn find_term_equals_memmem() {
        // Every string over {CR, LF, a} up to 8 bytes.
        let alphabet = [b'\r', b'\n', b'a'];
        for len in 0..=8u32 {
            for code in 0..3u32.pow(len) {
                let s: Vec<u8> = (0..len)
                    .map(|k| alphabet[(code / 3u32.pow(k) % 3) as usize])
                    .collect();
                assert_eq!(find_term(&s), memchr::memmem::find(&s, TERM), "{s:?}");
            }
        }
    }
}
