//! The DKIM key record published at `SELECTOR._domainkey.DOMAIN` (RFC 6376
//! §3.6.1, RFC 8463 for `k=ed25519`).

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;

use crate::der;
use crate::tag::{TagListError, parse_tag_list, trim_fws};

/// Why a key record does not parse or its key cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyRecordError {
    /// The tag list is malformed.
    #[error(transparent)]
    TagList(#[from] TagListError),
    /// `v=` is present but not `DKIM1`, or not the first tag.
    #[error("key record: v={0:?} is not DKIM1 as the first tag")]
    Version(String),
    /// `p=` is absent.
    #[error("key record: required tag p= is missing")]
    MissingKey,
    /// `p=` is not base64.
    #[error("key record: p= is not base64")]
    Base64,
    /// A value is not UTF-8.
    #[error("key record: {0}= is not UTF-8")]
    Utf8(&'static str),
    /// `p=` is base64 but not a key of type `k=`.
    #[error("key record: p= is not a valid {key_type} public key ({why})")]
    BadKey {
        /// `k=`.
        key_type: String,
        /// What was wrong.
        why: &'static str,
    },
    /// `k=` names a key type this implementation does not know.
    #[error("key record: unknown key type k={0:?}")]
    UnknownKeyType(String),
}

/// A parsed key record.
///
/// `Display` writes `v=DKIM1; k=...; [h=...;] [s=...;] [t=...;] [n=...;] p=...`
/// and `parse` reads it back to an equal value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DkimKeyRecord {
    /// `k=` (default `rsa`), lower-cased.
    pub key_type: String,
    /// `h=`: acceptable hash algorithms, if restricted.
    pub hashes: Option<Vec<String>>,
    /// `s=`: service types, if restricted (`email` or `*`).
    pub services: Option<Vec<String>>,
    /// `t=`: flags (`y` testing, `s` strict identity).
    pub flags: Vec<String>,
    /// `n=`: notes, as written.
    pub notes: Option<String>,
    /// `p=` decoded; empty means the key was revoked.
    pub public_key: Vec<u8>,
    /// Tags this implementation does not know, kept in order.
    pub unknown: Vec<(String, String)>,
}

/// A public key ready for verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicKey {
    /// An RSA key as an RSAPublicKey (PKCS#1) DER, with its modulus size.
    Rsa {
        /// The RSAPublicKey DER (unwrapped from SubjectPublicKeyInfo if needed).
        der: Vec<u8>,
        /// Modulus length in bits.
        bits: usize,
    },
    /// An Ed25519 key (RFC 8463: the raw 32 bytes).
    Ed25519([u8; 32]),
}

fn list(value: &str) -> Vec<String> {
    value
        .split(':')
        .map(|s| trim_fws(s).to_ascii_lowercase())
        .filter(|s| !s.is_empty())
        .collect()
}

fn text<'a>(v: &'a [u8], n: &'static str) -> Result<&'a str, KeyRecordError> {
    core::str::from_utf8(v).map_err(|_| KeyRecordError::Utf8(n))
}

impl DkimKeyRecord {
    /// Parses a record given as one string.
    pub fn parse(input: &[u8]) -> Result<Self, KeyRecordError> {
        let tags = parse_tag_list(input)?;
        let mut rec = DkimKeyRecord {
            key_type: "rsa".into(),
            hashes: None,
            services: None,
            flags: Vec::new(),
            notes: None,
            public_key: Vec::new(),
            unknown: Vec::new(),
        };
        let mut have_p = false;
        for (idx, tag) in tags.iter().enumerate() {
            match tag.name {
                "v" => {
                    if idx != 0 || tag.value != b"DKIM1" {
                        return Err(KeyRecordError::Version(
                            String::from_utf8_lossy(tag.value).into_owned(),
                        ));
                    }
                }
                "k" => rec.key_type = text(tag.value, "k")?.to_ascii_lowercase(),
                "h" => rec.hashes = Some(list(text(tag.value, "h")?)),
                "s" => rec.services = Some(list(text(tag.value, "s")?)),
                "t" => rec.flags = list(text(tag.value, "t")?),
                "n" => rec.notes = Some(text(tag.value, "n")?.to_string()),
                "p" => {
                    have_p = true;
                    rec.public_key = B64
                        .decode(tag.value_without_whitespace())
                        .map_err(|_| KeyRecordError::Base64)?;
                }
                other => rec.unknown.push((
                    other.to_string(),
                    String::from_utf8_lossy(tag.value).into_owned(),
                )),
            }
        }
        if !have_p {
            return Err(KeyRecordError::MissingKey);
        }
        Ok(rec)
    }

    /// Parses a record from the character-strings of one TXT record, joined
    /// without separators (RFC 6376 §3.6.2.2).
    pub fn from_txt_strings<S: AsRef<[u8]>>(strings: &[S]) -> Result<Self, KeyRecordError> {
        let joined: Vec<u8> = strings
            .iter()
            .flat_map(|s| s.as_ref().iter().copied())
            .collect();
        Self::parse(&joined)
    }

    /// True when `p=` is empty: the key was revoked.
    pub fn is_revoked(&self) -> bool {
        self.public_key.is_empty()
    }

    /// True with `t=y`: the domain is testing DKIM.
    pub fn is_testing(&self) -> bool {
        self.flags.iter().any(|f| f == "y")
    }

    /// True with `t=s`: `i=` must be exactly `d=`, no subdomain.
    pub fn is_strict(&self) -> bool {
        self.flags.iter().any(|f| f == "s")
    }

    /// True when `s=` allows email (absent, `*` or `email`).
    pub fn allows_email(&self) -> bool {
        self.services
            .as_ref()
            .is_none_or(|s| s.iter().any(|x| x == "*" || x == "email"))
    }

    /// True when `h=` allows the hash (absent, or lists it).
    pub fn allows_hash(&self, hash: &str) -> bool {
        self.hashes
            .as_ref()
            .is_none_or(|h| h.iter().any(|x| x == hash))
    }

    /// Decodes `p=` as a key of type `k=`: RSA in SubjectPublicKeyInfo or bare
    /// RSAPublicKey form, Ed25519 as 32 raw bytes.
    pub fn public_key(&self) -> Result<PublicKey, KeyRecordError> {
        let bad = |why| KeyRecordError::BadKey {
            key_type: self.key_type.clone(),
            why,
        };
        match self.key_type.as_str() {
            "rsa" => {
                let rsa = match der::spki(&self.public_key) {
                    Some((oid, key)) if oid == der::OID_RSA => key,
                    Some(_) => return Err(bad("SubjectPublicKeyInfo of another algorithm")),
                    None => &self.public_key[..],
                };
                let bits = der::rsa_public_key_bits(rsa).ok_or(bad("not an RSAPublicKey"))?;
                Ok(PublicKey::Rsa {
                    der: rsa.to_vec(),
                    bits,
                })
            }
            "ed25519" => {
                let raw = match der::spki(&self.public_key) {
                    Some((oid, key)) if oid == der::OID_ED25519 => key,
                    _ => &self.public_key[..],
                };
                let key: [u8; 32] = raw.try_into().map_err(|_| bad("not 32 bytes"))?;
                Ok(PublicKey::Ed25519(key))
            }
            other => Err(KeyRecordError::UnknownKeyType(other.to_string())),
        }
    }

    /// Splits the record into TXT character-strings of at most 255 bytes.
    pub fn to_txt_strings(&self) -> Vec<String> {
        let text = self.to_string();
        text.as_bytes()
            .chunks(255)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect()
    }
}

impl fmt::Display for DkimKeyRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v=DKIM1; k={};", self.key_type)?;
        if let Some(h) = &self.hashes {
            write!(f, " h={};", h.join(":"))?;
        }
        if let Some(s) = &self.services {
            write!(f, " s={};", s.join(":"))?;
        }
        if !self.flags.is_empty() {
            write!(f, " t={};", self.flags.join(":"))?;
        }
        if let Some(n) = &self.notes {
            write!(f, " n={n};")?;
        }
        for (k, v) in &self.unknown {
            write!(f, " {k}={v};")?;
        }
        write!(f, " p={}", B64.encode(&self.public_key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RSA1024: &str = "MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDkHlOQoBTzWRiGs5V6NpP3idY6Wk08a5qhdR6wy5bdOKb2jLQiY/J16JYi0Qvx/byYzCNb3W91y3FutACDfzwQ/BC/e/8uBsCR+yz1Lxj+PL6lHvqMKrM3rG4hstT5QjvHO9PzoxZyVYLzBfO2EeC3Ip3G+2kryOTIKT+l/K4w3QIDAQAB";

    #[test]
    fn rsa_spki_and_round_trip() {
        let rec =
            DkimKeyRecord::parse(format!("v=DKIM1; g=*; k=rsa; p={RSA1024}").as_bytes()).unwrap();
        assert!(matches!(
            rec.public_key(),
            Ok(PublicKey::Rsa { bits: 1024, .. })
        ));
        assert_eq!(
            DkimKeyRecord::parse(rec.to_string().as_bytes()).unwrap(),
            rec
        );
        let split = [&RSA1024.as_bytes()[..10], &RSA1024.as_bytes()[10..]];
        let joined = DkimKeyRecord::from_txt_strings(&[b"p=".as_slice(), split[0], split[1]]);
        assert_eq!(joined.unwrap().public_key, rec.public_key);
    }

    #[test]
    fn errors_and_flags() {
        assert!(matches!(
            DkimKeyRecord::parse(b"v=DKIM1: g=*; p="),
            Err(KeyRecordError::Version(_))
        ));
        assert!(matches!(
            DkimKeyRecord::parse(b"k=rsa; v=DKIM1; p="),
            Err(KeyRecordError::Version(_))
        ));
        assert!(matches!(
            DkimKeyRecord::parse(b"k=rsa"),
            Err(KeyRecordError::MissingKey)
        ));
        let revoked = DkimKeyRecord::parse(b"v=DKIM1; p=; t=y:s; s=email").unwrap();
        assert!(revoked.is_revoked() && revoked.is_testing() && revoked.is_strict());
        assert!(revoked.allows_email());
        let bad = DkimKeyRecord::parse(b"k=ed25519-sha256; p=AAAA").unwrap();
        assert!(matches!(
            bad.public_key(),
            Err(KeyRecordError::UnknownKeyType(_))
        ));
        let short = DkimKeyRecord::parse(b"k=ed25519; p=AAAA").unwrap();
        assert!(matches!(
            short.public_key(),
            Err(KeyRecordError::BadKey { .. })
        ));
    }
}
