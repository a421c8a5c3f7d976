//! The Sender Rewriting Scheme: how a forwarder rewrites the envelope
//! sender of mail it passes on, so that SPF at the destination checks the
//! forwarder's domain, and how it recognises (and undoes) the rewrite
//! when a bounce comes back.
//!
//! The address forms are Shevek's (those of libsrs2 and postsrsd):
//! `SRS0=HASH=TT=orig-domain=orig-local@forwarder` for a first forwarder,
//! and `SRS1=HASH=first-forwarder==HASH=TT=orig-domain=orig-local@forwarder`
//! for the next ones. `HASH` is a keyed HMAC-SHA256 over the rest, in
//! lower-case base32 (six characters, case-insensitive: some hops change the
//! case of local parts); `TT` is the day the address was made (base32,
//! modulo 1024 days), so a bounce address stops working after
//! [`Srs::max_age_days`].
//!
//! ```
//! use ptt_queue::srs::Srs;
//! let srs = Srs::new(b"a secret only the forwarder knows");
//! let today = 20_000; // days since 1970
//! let rewritten = srs.forward("alice@example.net", "fwd.example.org", today).unwrap();
//! assert!(rewritten.starts_with("SRS0="));
//! assert!(rewritten.ends_with("=example.net=alice@fwd.example.org"));
//! assert_eq!(srs.reverse(&rewritten, today + 3).unwrap(), "alice@example.net");
//! assert!(srs.reverse(&rewritten, today + 40).is_err()); // too old
//! ```

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Why an address could not be rewritten or undone.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SrsError {
    /// Not `local@domain`.
    #[error("{0:?} is not an address of the form local@domain")]
    NotAnAddress(String),
    /// Not an SRS address.
    #[error("{0:?} is not an SRS address")]
    NotSrs(String),
    /// An SRS address missing parts.
    #[error("{0:?} is a malformed SRS address")]
    Malformed(String),
    /// The hash does not match: forged, or made with another key.
    #[error("{0:?} has a hash this forwarder did not make")]
    BadHash(String),
    /// Made too long ago (or in the future).
    #[error("{address:?} is {age_days} days old, more than {max_days}")]
    Expired {
        /// The address.
        address: String,
        /// Its age in days.
        age_days: u64,
        /// The limit.
        max_days: u64,
    },
    /// The rewritten local part would exceed [`MAX_LOCAL_PART`] octets.
    #[error("{0:?} is too long to rewrite")]
    TooLong(String),
}

/// The longest local part [`Srs::forward`] makes. RFC 5321 §4.5.3.1.1
/// sets 64 as the least every server must take and asks for no limit where
/// possible; real servers take far more, and SRS of a long address needs
/// more than 64, so this is the limit a receiving server is not expected
/// to go below in practice.
pub const MAX_LOCAL_PART: usize = 128;

const BASE32: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
const HASH_LEN: usize = 6;

/// An SRS key and its limits.
#[derive(Clone)]
pub struct Srs {
    key: Vec<u8>,
    /// How many days a rewritten address is honoured (default 21).
    pub max_age_days: u64,
}

impl core::fmt::Debug for Srs {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Srs")
            .field("key", &"…")
            .field("max_age_days", &self.max_age_days)
            .finish()
    }
}

fn split_address(address: &str) -> Result<(&str, &str), SrsError> {
    match address.rsplit_once('@') {
        Some((local, domain)) if !local.is_empty() && !domain.is_empty() => Ok((local, domain)),
        _ => Err(SrsError::NotAnAddress(address.to_string())),
    }
}

/// `SRS0`/`SRS1` followed by one of the separators libsrs2 accepts.
fn srs_kind(local: &str) -> Option<(u8, &str)> {
    let head = local.get(..4)?;
    let kind = if head.eq_ignore_ascii_case("SRS0") {
        0
    } else if head.eq_ignore_ascii_case("SRS1") {
        1
    } else {
        return None;
    };
    let rest = &local[4..];
    let sep = rest.chars().next()?;
    matches!(sep, '=' | '+' | '-').then(|| (kind, &rest[1..]))
}

impl Srs {
    /// A rewriter with this secret key.
    pub fn new(key: &[u8]) -> Srs {
        Srs {
            key: key.to_vec(),
            max_age_days: 21,
        }
    }

    fn hash(&self, parts: &[&str]) -> String {
        // The key is any length: HMAC accepts every key size.
        let mut mac = match Hmac::<Sha256>::new_from_slice(&self.key) {
            Ok(mac) => mac,
            Err(_) => return String::new(),
        };
        for part in parts {
            mac.update(part.to_ascii_lowercase().as_bytes());
            mac.update(b"\0");
        }
        let digest = mac.finalize().into_bytes();
        let mut bits: u64 = 0;
        for &b in &digest[..5] {
            bits = (bits << 8) | u64::from(b);
        }
        (0..HASH_LEN)
            .map(|i| BASE32[((bits >> (35 - 5 * i)) & 31) as usize] as char)
            .collect()
    }

    fn check(&self, given: &str, parts: &[&str], address: &str) -> Result<(), SrsError> {
        let want = self.hash(parts);
        // Not constant-time over a network hop this is not needed, but cheap.
        let same = given.len() == want.len()
            && given
                .bytes()
                .zip(want.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a.to_ascii_lowercase() ^ b))
                == 0;
        if same {
            Ok(())
        } else {
            Err(SrsError::BadHash(address.to_string()))
        }
    }

    /// Rewrites `sender` for mail forwarded by `forwarder` (our domain) on
    /// day `today` (days since 1970). A sender already in `forwarder` and
    /// the null sender (empty) are kept as they are.
    pub fn forward(&self, sender: &str, forwarder: &str, today: u64) -> Result<String, SrsError> {
        if sender.is_empty() {
            return Ok(String::new());
        }
        let (local, domain) = split_address(sender)?;
        if domain.eq_ignore_ascii_case(forwarder) {
            return Ok(sender.to_string());
        }
        let local_out = match srs_kind(local) {
            Some((0, rest)) => {
                // SRS0 from another forwarder: keep its part, name it.
                let rest = format!("={rest}");
                let hash = self.hash(&[domain, &rest]);
                format!("SRS1={hash}={domain}={rest}")
            }
            Some((_, rest)) => {
                // SRS1: keep the first forwarder and its part, rehash.
                let (_, after) = rest
                    .split_once('=')
                    .ok_or_else(|| SrsError::Malformed(sender.to_string()))?;
                let (first, tail) = after
                    .split_once("==")
                    .ok_or_else(|| SrsError::Malformed(sender.to_string()))?;
                let tail = format!("={tail}");
                let hash = self.hash(&[first, &tail]);
                format!("SRS1={hash}={first}={tail}")
            }
            None => {
                let tt = timestamp(today);
                let hash = self.hash(&[&tt, domain, local]);
                format!("SRS0={hash}={tt}={domain}={local}")
            }
        };
        if local_out.len() > MAX_LOCAL_PART {
            return Err(SrsError::TooLong(sender.to_string()));
        }
        Ok(format!("{local_out}@{forwarder}"))
    }

    /// Undoes a rewrite made by this key: an SRS0 address gives the original
    /// sender, an SRS1 address the SRS0 address at the first forwarder.
    pub fn reverse(&self, address: &str, today: u64) -> Result<String, SrsError> {
        let (local, _) = split_address(address)?;
        let malformed = || SrsError::Malformed(address.to_string());
        match srs_kind(local) {
            Some((0, rest)) => {
                let mut parts = rest.splitn(4, '=');
                let (Some(hash), Some(tt), Some(domain), Some(orig)) =
                    (parts.next(), parts.next(), parts.next(), parts.next())
                else {
                    return Err(malformed());
                };
                if domain.is_empty() || orig.is_empty() {
                    return Err(malformed());
                }
                self.check(hash, &[tt, domain, orig], address)?;
                let made = untimestamp(tt).ok_or_else(malformed)?;
                let age = (today % 1024 + 1024 - made) % 1024;
                if age > self.max_age_days {
                    return Err(SrsError::Expired {
                        address: address.to_string(),
                        age_days: age,
                        max_days: self.max_age_days,
                    });
                }
                Ok(format!("{orig}@{domain}"))
            }
            Some((_, rest)) => {
                let (hash, after) = rest.split_once('=').ok_or_else(malformed)?;
                let (first, tail) = after.split_once("==").ok_or_else(malformed)?;
                if first.is_empty() || tail.is_empty() {
                    return Err(malformed());
                }
                let tail_with_sep = format!("={tail}");
                self.check(hash, &[first, &tail_with_sep], address)?;
                Ok(format!("SRS0={tail}@{first}"))
            }
            None => Err(SrsError::NotSrs(address.to_string())),
        }
    }

    /// Whether `address` looks like an SRS address (it may still be forged).
    pub fn is_srs(address: &str) -> bool {
        split_address(address).is_ok_and(|(local, _)| srs_kind(local).is_some())
    }
}

fn timestamp(today: u64) -> String {
    let t = today % 1024;
    [
        BASE32[(t >> 5) as usize] as char,
        BASE32[(t & 31) as usize] as char,
    ]
    .iter()
    .collect()
}

fn untimestamp(tt: &str) -> Option<u64> {
    let b = tt.as_bytes();
    if b.len() != 2 {
        return None;
    }
    let digit = |c: u8| {
        BASE32
            .iter()
            .position(|&x| x == c.to_ascii_lowercase())
            .map(|p| p as u64)
    };
    Some(digit(b[0])? << 5 | digit(b[1])?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const DAY: u64 = 20_500;

    #[test]
    fn two_forwarders_and_back() {
        let first = Srs::new(b"first");
        let second = Srs::new(b"second");
        let a = first
            .forward("bob@origin.example", "one.example", DAY)
            .unwrap();
        let b = second.forward(&a, "two.example", DAY).unwrap();
        assert!(b.starts_with("SRS1=") && b.ends_with("@two.example"), "{b}");
        assert!(b.contains("=one.example=="), "{b}");
        // A third forwarder keeps the first forwarder's part.
        let c = Srs::new(b"third")
            .forward(&b, "three.example", DAY)
            .unwrap();
        assert!(
            c.starts_with("SRS1=") && c.contains("=one.example=="),
            "{c}"
        );
        // The second forwarder sends the bounce to the first one…
        let back = second.reverse(&b, DAY).unwrap();
        assert_eq!(back, a);
        // …which finds the original sender.
        assert_eq!(first.reverse(&back, DAY + 1).unwrap(), "bob@origin.example");
        assert!(matches!(first.reverse(&b, DAY), Err(SrsError::BadHash(_))));
    }

    #[test]
    fn refuses_forgeries_and_junk() {
        let srs = Srs::new(b"k");
        let good = srs
            .forward("bob@origin.example", "fwd.example", DAY)
            .unwrap();
        let forged = good.replace("=origin.example=", "=victim.example=");
        assert!(matches!(
            srs.reverse(&forged, DAY),
            Err(SrsError::BadHash(_))
        ));
        assert!(matches!(
            srs.reverse("bob@x", DAY),
            Err(SrsError::NotSrs(_))
        ));
        assert!(matches!(
            srs.reverse("SRS0=abc@x", DAY),
            Err(SrsError::Malformed(_))
        ));
        assert!(matches!(
            srs.reverse("SRS1=abc=x@y", DAY),
            Err(SrsError::Malformed(_))
        ));
        assert!(matches!(
            srs.reverse("nolocal", DAY),
            Err(SrsError::NotAnAddress(_))
        ));
        assert!(matches!(
            srs.reverse(&good, DAY + 22),
            Err(SrsError::Expired { .. })
        ));
        // The upper-cased address still works (case-insensitive hops).
        assert_eq!(
            srs.reverse(&good.to_uppercase(), DAY).unwrap(),
            "BOB@ORIGIN.EXAMPLE"
        );
        // Our own senders and the null sender are left alone.
        assert_eq!(
            srs.forward("me@fwd.example", "FWD.example", DAY).unwrap(),
            "me@fwd.example"
        );
        assert_eq!(srs.forward("", "fwd.example", DAY).unwrap(), "");
        let long = format!("{}@origin.example", "x".repeat(120));
        assert!(matches!(
            srs.forward(&long, "fwd.example", DAY),
            Err(SrsError::TooLong(_))
        ));
    }

    #[test]
    fn timestamps_wrap() {
        let srs = Srs::new(b"k");
        let a = srs.forward("bob@o.example", "f.example", 1023).unwrap();
        assert_eq!(srs.reverse(&a, 1024 + 5).unwrap(), "bob@o.example");
    }

    proptest! {
        #[test]
        fn reverse_undoes_forward(local in "[a-zA-Z0-9.+=_-]{1,30}", domain in "[a-z0-9-]{1,20}\\.[a-z]{2,6}", day in 0u64..100_000, later in 0u64..21) {
            let srs = Srs::new(b"key");
            let sender = format!("{local}@{domain}");
            let rewritten = srs.forward(&sender, "fwd.example", day).unwrap();
            let back = srs.reverse(&rewritten, day + later).unwrap();
            if Srs::is_srs(&sender) {
                prop_assert!(back.ends_with(&domain) || back.contains('='));
            } else {
                prop_assert_eq!(back, sender);
            }
        }

        #[test]
        fn never_panics(s in "\\PC{0,80}") {
            let srs = Srs::new(b"key");
            let _ = srs.reverse(&s, DAY);
            let _ = srs.forward(&s, "fwd.example", DAY);
        }
    }
}
