//! DKIM tag lists (RFC 6376 §3.2), the syntax of ARC-Seal and
//! ARC-Message-Signature header fields.
//!
//! ```text
//! tag-list  =  tag-spec *( ";" tag-spec ) [ ";" ]
//! tag-spec  =  [FWS] tag-name [FWS] "=" [FWS] tag-value [FWS]
//! tag-name  =  ALPHA *ALNUMPUNC
//! tag-value =  [ tval *( 1*(WSP / FWS) tval ) ]
//! ```
//!
//! Tag names are case sensitive, a name may appear only once, and an empty
//! `tag-spec` (`;;`) is a syntax error; only one trailing `;` is allowed.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

/// One `name=value` pair of a tag list. The value keeps its inner folding
/// whitespace as it was written (leading and trailing whitespace removed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tag {
    /// The tag name (case sensitive).
    pub name: String,
    /// The tag value, trimmed of the surrounding folding whitespace.
    pub value: String,
}

/// A parsed tag list, in the order written.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TagList {
    /// The tags, in order.
    pub tags: Vec<Tag>,
}

/// Why a tag list did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TagListError {
    /// An empty `tag-spec`: two `;` with only whitespace between them.
    #[error("empty tag-spec (\";;\") at byte {offset}")]
    EmptyTagSpec {
        /// Byte offset of the empty spec in the value.
        offset: usize,
    },
    /// A `tag-spec` with no `=`.
    #[error("tag-spec {spec:?} has no \"=\"")]
    MissingEquals {
        /// The offending spec.
        spec: String,
    },
    /// A tag name that is not `ALPHA *(ALPHA / DIGIT / "_")`.
    #[error("invalid tag name {name:?}")]
    InvalidName {
        /// The offending name.
        name: String,
    },
    /// A tag value with a byte a tag value may not hold.
    #[error("tag {name}= has an invalid byte 0x{byte:02x} in its value")]
    InvalidValue {
        /// The tag name.
        name: String,
        /// The offending byte.
        byte: u8,
    },
    /// The same tag name twice.
    #[error("tag {name}= appears more than once")]
    Duplicate {
        /// The repeated name.
        name: String,
    },
}

/// Folding whitespace as it appears inside a header field value.
pub(crate) fn is_fws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

pub(crate) fn trim_fws(s: &[u8]) -> &[u8] {
    let start = s.iter().position(|&b| !is_fws(b)).unwrap_or(s.len());
    let end = s.iter().rposition(|&b| !is_fws(b)).map_or(start, |e| e + 1);
    s.get(start..end).unwrap_or_default()
}

fn valid_name(name: &[u8]) -> bool {
    match name.split_first() {
        Some((first, rest)) => {
            first.is_ascii_alphabetic()
                && rest.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'_')
        }
        None => false,
    }
}

impl TagList {
    /// Parses a tag list from a header field value (the bytes after the
    /// colon, folding included).
    pub fn parse(value: &[u8]) -> Result<TagList, TagListError> {
        let mut tags: Vec<Tag> = Vec::new();
        let specs: Vec<&[u8]> = value.split(|&b| b == b';').collect();
        let last = specs.len().saturating_sub(1);
        let mut offset = 0;
        for (n, spec) in specs.iter().enumerate() {
            let here = offset;
            offset += spec.len() + 1;
            let trimmed = trim_fws(spec);
            if trimmed.is_empty() {
                // One trailing ";" (or an empty list) is allowed.
                if n == last && (n > 0 || tags.is_empty()) {
                    continue;
                }
                return Err(TagListError::EmptyTagSpec { offset: here });
            }
            let Some(eq) = trimmed.iter().position(|&b| b == b'=') else {
                return Err(TagListError::MissingEquals {
                    spec: String::from_utf8_lossy(trimmed).into_owned(),
                });
            };
            let name = trim_fws(trimmed.get(..eq).unwrap_or_default());
            let val = trim_fws(trimmed.get(eq + 1..).unwrap_or_default());
            if !valid_name(name) {
                return Err(TagListError::InvalidName {
                    name: String::from_utf8_lossy(name).into_owned(),
                });
            }
            // Names are ASCII by the check above.
            let name = String::from_utf8_lossy(name).into_owned();
            if let Some(&byte) = val
                .iter()
                .find(|&&b| b == b';' || b == 0x7f || (b < 0x21 && !is_fws(b)))
            {
                return Err(TagListError::InvalidValue { name, byte });
            }
            if tags.iter().any(|t| t.name == name) {
                return Err(TagListError::Duplicate { name });
            }
            let value = match core::str::from_utf8(val) {
                Ok(v) => String::from(v),
                Err(e) => {
                    let byte = val.get(e.valid_up_to()).copied().unwrap_or(0);
                    return Err(TagListError::InvalidValue { name, byte });
                }
            };
            tags.push(Tag { name, value });
        }
        Ok(TagList { tags })
    }

    /// The value of tag `name`, if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.tags
            .iter()
            .find(|t| t.name == name)
            .map(|t| t.value.as_str())
    }
}

impl fmt::Display for TagList {
    /// Writes `name=value; name=value` (one space after each `;`, no
    /// trailing `;`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (n, tag) in self.tags.iter().enumerate() {
            if n > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{}={}", tag.name, tag.value)?;
        }
        Ok(())
    }
}

/// Removes every folding-whitespace byte (for `b=`, `bh=` base64 values).
pub(crate) fn strip_fws(value: &str) -> String {
    value.chars().filter(|c| !c.is_ascii_whitespace()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn whitespace_around_separators_is_ignored() {
        let t = TagList::parse(b" a = b ;\r\n\tc=d e ; ").unwrap();
        assert_eq!(t.get("a"), Some("b"));
        assert_eq!(t.get("c"), Some("d e"));
        assert_eq!(t.to_string(), "a=b; c=d e");
    }

    #[test]
    fn syntax_errors() {
        assert!(matches!(
            TagList::parse(b"a=b;; c=d"),
            Err(TagListError::EmptyTagSpec { .. })
        ));
        assert!(matches!(
            TagList::parse(b"a=b; ;"),
            Err(TagListError::EmptyTagSpec { .. })
        ));
        assert!(matches!(
            TagList::parse(b"a=b; ==; c=d"),
            Err(TagListError::InvalidName { .. })
        ));
        assert!(matches!(
            TagList::parse(b"a=b; _=; c=d"),
            Err(TagListError::InvalidName { .. })
        ));
        assert!(matches!(
            TagList::parse(b"a=b; s=x; s=x"),
            Err(TagListError::Duplicate { .. })
        ));
        assert!(matches!(
            TagList::parse(b"a=b; c"),
            Err(TagListError::MissingEquals { .. })
        ));
        assert!(TagList::parse(b"").unwrap().tags.is_empty());
        assert!(TagList::parse(b"a=b;").is_ok());
        assert!(TagList::parse(b"a=;").is_ok());
    }

    #[test]
    fn names_are_case_sensitive() {
        let t = TagList::parse(b"S=x").unwrap();
        assert_eq!(t.get("s"), None);
        assert_eq!(t.get("S"), Some("x"));
    }
}
