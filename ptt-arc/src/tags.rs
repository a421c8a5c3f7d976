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

/// ptt-dkim's complaint in this crate's terms.
fn from_dkim(value: &[u8], e: ptt_dkim::TagListError) -> TagListError {
    use ptt_dkim::TagListError as D;
    // The spec (between `;`) an offset falls in, trimmed.
    let spec_at = |offset: usize| {
        let start = value
            .get(..offset.min(value.len()))
            .and_then(|v| v.iter().rposition(|&b| b == b';'))
            .map_or(0, |p| p + 1);
        let end = value
            .get(offset.min(value.len())..)
            .and_then(|v| v.iter().position(|&b| b == b';'))
            .map_or(value.len(), |p| offset + p);
        String::from_utf8_lossy(trim_fws(value.get(start..end).unwrap_or_default())).into_owned()
    };
    match e {
        D::EmptySpec { offset } => TagListError::EmptyTagSpec { offset },
        D::EmptyName { offset } | D::BadNameByte { offset, .. } => {
            let spec = spec_at(offset);
            let name = spec.split('=').next().unwrap_or_default().trim().into();
            TagListError::InvalidName { name }
        }
        D::MissingEquals { offset, .. } => TagListError::MissingEquals {
            spec: spec_at(offset),
        },
        D::BadValueByte { name, byte, .. } => TagListError::InvalidValue { name, byte },
        D::Duplicate { name } => TagListError::Duplicate { name },
        other => TagListError::InvalidName {
            name: alloc::format!("{other}"),
        },
    }
}

impl TagList {
    /// Parses a tag list from a header field value (the bytes after the
    /// colon, folding included).
    pub fn parse(value: &[u8]) -> Result<TagList, TagListError> {
        // ptt-dkim's grammar, read strictly; the tags owned, as UTF-8.
        let parsed = ptt_dkim::parse_tag_list_strict(value).map_err(|e| from_dkim(value, e))?;
        let mut tags = Vec::with_capacity(parsed.len());
        for tag in parsed {
            let name = String::from(tag.name);
            let value = match core::str::from_utf8(tag.value) {
                Ok(v) => String::from(v),
                Err(e) => {
                    let byte = tag.value.get(e.valid_up_to()).copied().unwrap_or(0);
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
