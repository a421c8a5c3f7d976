//! The tag-list syntax shared by DKIM signatures, DKIM key records and ARC
//! headers (RFC 6376 §3.2): `name=value; name=value`.

use alloc::vec::Vec;
use core::ops::Range;

/// One `name=value` pair of a tag list, borrowed from the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tag<'a> {
    /// The tag name (`ALPHA *(ALPHA / DIGIT / "_")`), as written.
    pub name: &'a str,
    /// The value with the surrounding folding whitespace removed; inner
    /// whitespace (e.g. inside a folded `b=`) is kept.
    pub value: &'a [u8],
    /// Where `value` sits in the input.
    pub span: Range<usize>,
    /// The value with its surrounding whitespace: from just after `=` to
    /// the `;` or the end. A verifier deletes exactly this range to blank
    /// out `b=` (RFC 6376 §3.7: "including all surrounding whitespace").
    pub full_span: Range<usize>,
}

impl Tag<'_> {
    /// The value with every whitespace byte (SP, HTAB, CR, LF) removed, as
    /// base64 values (`b=`, `bh=`, `p=`) are read.
    pub fn value_without_whitespace(&self) -> Vec<u8> {
        // Room for all of it, filled by the stack variant's loop.
        let mut out = alloc::vec![0; self.value.len()];
        let kept = self
            .value_without_whitespace_in(&mut out)
            .map_or(0, <[u8]>::len);
        out.truncate(kept);
        out
    }

    /// [`Self::value_without_whitespace`] written into `out`, when the
    /// value is no longer than it (so that a caller can unfold on the
    /// stack); `None` otherwise.
    pub(crate) fn value_without_whitespace_in<'b>(&self, out: &'b mut [u8]) -> Option<&'b [u8]> {
        let out = out.get_mut(..self.value.len())?;
        let mut len = 0;
        for &b in self.value {
            // Every byte written, the count moved past it unless it is
            // whitespace: no branch that depends on the byte.
            if let Some(slot) = out.get_mut(len) {
                *slot = b;
            }
            len += usize::from(!is_fws(b));
        }
        out.get(..len)
    }

    /// The value as text, if it is UTF-8.
    pub fn value_str(&self) -> Option<&str> {
        core::str::from_utf8(self.value).ok()
    }
}

/// What is wrong with a tag list.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TagListError {
    /// A tag has no name before `=` (or the name starts with a non-letter).
    #[error("tag list: tag name expected at byte {offset}")]
    EmptyName {
        /// Byte offset in the input.
        offset: usize,
    },
    /// A byte that may not appear in a tag name.
    #[error("tag list: byte 0x{byte:02x} not allowed in tag name at byte {offset}")]
    BadNameByte {
        /// The byte.
        byte: u8,
        /// Byte offset in the input.
        offset: usize,
    },
    /// The name is not followed by `=`.
    #[error("tag list: `=` expected after tag {name:?} at byte {offset}")]
    MissingEquals {
        /// The tag name.
        name: alloc::string::String,
        /// Byte offset in the input.
        offset: usize,
    },
    /// A control byte in a value.
    #[error("tag list: byte 0x{byte:02x} not allowed in the value of {name:?} at byte {offset}")]
    BadValueByte {
        /// The tag name.
        name: alloc::string::String,
        /// The byte.
        byte: u8,
        /// Byte offset in the input.
        offset: usize,
    },
    /// The same tag twice (RFC 6376 §3.2 makes the whole list invalid).
    #[error("tag list: tag {name:?} appears twice")]
    Duplicate {
        /// The tag name.
        name: alloc::string::String,
    },
    /// An empty tag-spec (`;;`) where the grammar is read strictly
    /// ([`parse_tag_list_strict`]).
    #[error("tag list: empty tag-spec (\";;\") at byte {offset}")]
    EmptySpec {
        /// Byte offset of the empty spec in the input.
        offset: usize,
    },
}

pub(crate) fn is_wsp(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

pub(crate) fn is_fws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// `s` without the folding whitespace ([`is_fws`]) at its ends.
pub(crate) fn trim_fws(s: &str) -> &str {
    s.trim_matches(|c: char| u8::try_from(c).is_ok_and(is_fws))
}

/// A control byte other than folding whitespace, or DEL: not allowed in a
/// tag value. Written with `&` and `|` on the comparisons, so that a check
/// over a value can run many bytes at a time.
#[inline(always)]
fn bad_value_byte(b: u8) -> bool {
    (b < 0x21) & (b != b' ') & (b != b'\t') & (b != b'\r') & (b != b'\n') | (b == 0x7f)
}

/// Parses a tag list. Empty specs (`;;`, a trailing `;`) are skipped, as
/// deployed signers emit them; duplicate names are an error.
///
/// ```
/// let tags = ptt_dkim::parse_tag_list(b"v=1; a=rsa-sha256;\r\n b=ab\r\n cd").unwrap();
/// assert_eq!(tags[2].name, "b");
/// assert_eq!(tags[2].value, b"ab\r\n cd");
/// ```
pub fn parse_tag_list(input: &[u8]) -> Result<Vec<Tag<'_>>, TagListError> {
    parse(input, false)
}

/// Parses a tag list by RFC 6376 §3.2's grammar exactly, as ARC's header
/// fields are read (RFC 8617): an empty tag-spec (`;;`) is an error; one
/// trailing `;` is allowed.
///
/// ```
/// assert!(ptt_dkim::parse_tag_list_strict(b"i=1; a=rsa-sha256;").is_ok());
/// assert!(ptt_dkim::parse_tag_list_strict(b"i=1;; a=rsa-sha256").is_err());
/// assert!(ptt_dkim::parse_tag_list(b"i=1;; a=rsa-sha256").is_ok());
/// ```
pub fn parse_tag_list_strict(input: &[u8]) -> Result<Vec<Tag<'_>>, TagListError> {
    parse(input, true)
}

/// Whether two tag names are the same (case matters, RFC 6376 §3.2).
/// Names are a byte or two: compared in line rather than by a call to
/// `memcmp`, which `==` on `str` makes and which costs more than the
/// compare (a signature's parse compares names a hundred times).
#[inline]
pub(crate) fn same_name(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).all(|(x, y)| x == y)
}

fn parse(input: &[u8], strict: bool) -> Result<Vec<Tag<'_>>, TagListError> {
    // Room for every spec at once (one per `;`, and one after the last):
    // a signature has ten or so, which growing would reach in three steps.
    let specs = memchr::memchr_iter(b';', input).count() + 1;
    let mut tags: Vec<Tag<'_>> = Vec::with_capacity(specs.min(64));
    let mut pos = 0;
    let len = input.len();
    while pos < len {
        // One tag-spec, up to the next ';' or the end.
        let end = memchr::memchr(b';', &input[pos..]).map_or(len, |i| pos + i);
        let spec = &input[pos..end];
        let lead = spec.iter().take_while(|b| is_fws(**b)).count();
        if lead == spec.len() {
            // Only what follows the last `;` may be empty, strictly read.
            if strict && end < len {
                return Err(TagListError::EmptySpec { offset: pos });
            }
            pos = end + 1;
            continue;
        }
        let name_start = pos + lead;
        let mut i = name_start;
        while i < end && (input[i].is_ascii_alphanumeric() || input[i] == b'_') {
            i += 1;
        }
        if i == name_start || !input[name_start].is_ascii_alphabetic() {
            return Err(if i == name_start && input[name_start] != b'=' {
                TagListError::BadNameByte {
                    byte: input[name_start],
                    offset: name_start,
                }
            } else {
                TagListError::EmptyName { offset: name_start }
            });
        }
        // Names are ASCII by construction.
        let name = core::str::from_utf8(&input[name_start..i]).unwrap_or_default();
        while i < end && is_fws(input[i]) {
            i += 1;
        }
        if i >= end || input[i] != b'=' {
            if i < end && !is_fws(input[i]) && input[i] != b'=' {
                return Err(TagListError::BadNameByte {
                    byte: input[i],
                    offset: i,
                });
            }
            return Err(TagListError::MissingEquals {
                name: name.into(),
                offset: i,
            });
        }
        i += 1;
        let after_equals = i;
        while i < end && is_fws(input[i]) {
            i += 1;
        }
        let mut vend = end;
        while vend > i && is_fws(input[vend - 1]) {
            vend -= 1;
        }
        // Checked over the whole value without an early exit (so that it
        // runs many bytes at a time), and searched only when it fails.
        let value = &input[i..vend];
        if value.iter().fold(false, |bad, &b| bad | bad_value_byte(b))
            && let Some(k) = value.iter().position(|&b| bad_value_byte(b))
        {
            return Err(TagListError::BadValueByte {
                name: name.into(),
                byte: value[k],
                offset: i + k,
            });
        }
        if tags.iter().any(|t| same_name(t.name, name)) {
            return Err(TagListError::Duplicate { name: name.into() });
        }
        tags.push(Tag {
            name,
            value: &input[i..vend],
            span: i..vend,
            full_span: after_equals..end,
        });
        pos = end + 1;
    }
    Ok(tags)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_and_trimming() {
        let input = b" v = 1 ;b=  x y ;";
        let tags = parse_tag_list(input).unwrap();
        assert_eq!(tags.len(), 2);
        assert_eq!(tags[0].value, b"1");
        assert_eq!(&input[tags[1].span.clone()], b"x y");
        assert_eq!(&input[tags[1].full_span.clone()], b"  x y ");
        assert_eq!(tags[1].value_without_whitespace(), b"xy");
    }

    #[test]
    fn errors() {
        assert!(matches!(
            parse_tag_list(b"v=1; v=2"),
            Err(TagListError::Duplicate { .. })
        ));
        assert!(matches!(
            parse_tag_list(b"v"),
            Err(TagListError::MissingEquals { .. })
        ));
        assert!(matches!(
            parse_tag_list(b"=1"),
            Err(TagListError::EmptyName { .. })
        ));
        assert!(matches!(
            parse_tag_list(b"v=DKIM1: g=*"),
            Ok(ref t) if t[0].value == b"DKIM1: g=*"
        ));
        assert!(parse_tag_list(b"a=\x01").is_err());
        // Every byte inside a value but `;`: refused exactly when it is a control
        // byte other than folding whitespace, or DEL, and reported where
        // it is.
        for b in (0..=255u8).filter(|&b| b != b';') {
            let input = [b"v=1; a=xy".as_slice(), &[b], b"z; b=2"].concat();
            let bad = (b < 0x21 && !is_fws(b)) || b == 0x7f;
            match parse_tag_list(&input) {
                Err(TagListError::BadValueByte { byte, offset, name }) => {
                    assert!(bad, "{b:#04x}");
                    assert_eq!((byte, offset, name.as_str()), (b, 9, "a"));
                }
                Ok(tags) => {
                    assert!(!bad, "{b:#04x}");
                    assert_eq!(tags[1].value, &input[7..11], "{b:#04x}");
                }
                Err(e) => panic!("{b:#04x}: {e}"),
            }
        }
        assert!(parse_tag_list(b"1a=b").is_err());
        assert_eq!(parse_tag_list(b"").unwrap(), vec![]);
        assert_eq!(parse_tag_list(b" ; ;").unwrap(), vec![]);
    }
}
