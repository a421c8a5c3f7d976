//! Finding the end of the header block in a stream.

use alloc::vec::Vec;

/// Collects the header block until the empty line; hands back the body part.
#[derive(Debug, Clone)]
pub(crate) struct HeadSplitter {
    // Starts (from the first piece on) with a virtual CRLF so that a
    // message with no header fields ("\r\n" first) is found by the same
    // search for CRLF CRLF.
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
            // Sized by the first piece (`push`); nothing allocated before.
            buf: Vec::new(),
            done: false,
            limit,
        }
    }

    /// The header block and the start of the body, borrowed from `data`,
    /// when `data` is the first piece and holds the whole header block:
    /// then nothing is copied (a caller with the message in memory).
    /// `None` otherwise, and the piece is to be given to [`Self::push`].
    pub(crate) fn split_first<'d>(&mut self, data: &'d [u8]) -> Option<(&'d [u8], &'d [u8])> {
        if self.done || !self.buf.is_empty() {
            return None;
        }
        let split = match data.strip_prefix(b"\r\n") {
            Some(body) => (&data[..0], body),
            None => {
                let p = find_term(data)?;
                (data.get(..p + 2)?, data.get(p + 4..)?)
            }
        };
        self.done = true;
        Some(split)
    }

    /// Puts the virtual CRLF first, once, when the first bytes come.
    fn begin(&mut self) {
        if self.buf.is_empty() {
            self.buf.extend_from_slice(b"\r\n");
        }
    }

    /// Takes the collected header block out, leaving an empty splitter
    /// that is done (so that a caller can read the block while it changes
    /// itself).
    pub(crate) fn take(&mut self) -> HeadSplitter {
        core::mem::replace(
            self,
            HeadSplitter {
                buf: Vec::new(),
                done: true,
                limit: self.limit,
            },
        )
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
        self.begin();
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
            self.begin();
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

    /// The header block and body found without a copy equal those found
    /// by `push`, for the first piece cut at every place of messages with
    /// and without header fields and an empty line.
    #[test]
    fn split_first_equals_push() {
        for msg in [
            &b"A: 1\r\nB: 2\r\n\r\nbody\r\n"[..],
            b"\r\nbody",
            b"\r\n\r\n",
            b"A: 1\r\n",
            b"\n\r\nX",
            b"A: 1\r\n\r\n",
        ] {
            for cut in 0..=msg.len() {
                let first = &msg[..cut];
                let mut pushed = HeadSplitter::new(1000);
                let pushed_body = pushed.push(first).unwrap();
                let mut split = HeadSplitter::new(1000);
                match split.split_first(first) {
                    Some((head, body)) => {
                        assert_eq!(Some(body), pushed_body, "{msg:?} {cut}");
                        assert_eq!(head, pushed.head(), "{msg:?} {cut}");
                        assert!(split.is_done());
                    }
                    None => {
                        assert_eq!(split.push(first).unwrap(), pushed_body, "{msg:?} {cut}");
                        assert!(pushed_body.is_none() || first.is_empty(), "{msg:?} {cut}");
                    }
                }
            }
        }
        let mut h = HeadSplitter::new(1000);
        h.finish();
        assert_eq!(h.head(), b"");
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
