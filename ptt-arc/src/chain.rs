//! Collecting the ARC Sets of a message and checking the chain's structure
//! (RFC 8617 §5.2 steps 1 to 3).

use alloc::vec::Vec;

use crate::header::{
    ARC_AUTHENTICATION_RESULTS, ARC_MESSAGE_SIGNATURE, ARC_SEAL, ArcAuthenticationResults,
    ArcMessageSignature, ArcSeal, ChainStatus, HeaderError, MAX_INSTANCE,
};
use crate::message::{Field, bytes};

/// Which of the three ARC header fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ArcHeader {
    /// ARC-Authentication-Results.
    Aar,
    /// ARC-Message-Signature.
    Ams,
    /// ARC-Seal.
    Seal,
}

impl ArcHeader {
    /// The header field name.
    pub fn name(self) -> &'static str {
        match self {
            ArcHeader::Aar => ARC_AUTHENTICATION_RESULTS,
            ArcHeader::Ams => ARC_MESSAGE_SIGNATURE,
            ArcHeader::Seal => ARC_SEAL,
        }
    }

    /// Which ARC header a field name is, if any (case-insensitive).
    pub fn from_name(name: &[u8]) -> Option<ArcHeader> {
        [ArcHeader::Aar, ArcHeader::Ams, ArcHeader::Seal]
            .into_iter()
            .find(|h| name.eq_ignore_ascii_case(h.name().as_bytes()))
    }
}

impl core::fmt::Display for ArcHeader {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

/// Why the chain's structure is invalid (every one makes the chain `fail`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChainError {
    /// An ARC header field that does not parse.
    #[error("{0}")]
    Header(#[from] HeaderError),
    /// Two header fields of one kind with the same instance.
    #[error("two {header} header fields with i={instance}")]
    Duplicate {
        /// Which header.
        header: ArcHeader,
        /// The repeated instance.
        instance: u32,
    },
    /// A set lacks one of its three header fields.
    #[error("ARC set i={instance} has no {header}")]
    Missing {
        /// Which header.
        header: ArcHeader,
        /// The incomplete set.
        instance: u32,
    },
    /// The most recent ARC-Seal already says `cv=fail`.
    #[error("the most recent ARC-Seal (i={instance}) says cv=fail")]
    LatestSealFailed {
        /// Its instance.
        instance: u32,
    },
    /// A seal's `cv=` is not the one its position requires.
    #[error("ARC-Seal i={instance} has cv={found}, expected cv={expected}")]
    WrongCv {
        /// The seal's instance.
        instance: u32,
        /// What it says.
        found: ChainStatus,
        /// What RFC 8617 §5.2 step 3.3 requires there.
        expected: ChainStatus,
    },
}

/// One header field of an ARC Set: where it is and what it says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located<T> {
    /// Index of the field in the message's header fields.
    pub index: usize,
    /// The parsed field.
    pub parsed: T,
}

/// One complete ARC Set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArcSet {
    /// The instance shared by the three fields.
    pub instance: u32,
    /// Its ARC-Authentication-Results.
    pub aar: Located<ArcAuthenticationResults>,
    /// Its ARC-Message-Signature.
    pub ams: Located<ArcMessageSignature>,
    /// Its ARC-Seal.
    pub seal: Located<ArcSeal>,
}

/// The instance an ARC header field claims, read leniently (the tag `i=`
/// alone), so that a sealer can number its set after a broken chain.
fn claimed_instance(kind: ArcHeader, value: &[u8]) -> Option<u32> {
    let n = match kind {
        ArcHeader::Aar => ArcAuthenticationResults::parse(value).ok()?.instance,
        ArcHeader::Ams | ArcHeader::Seal => {
            let tags = crate::tags::TagList::parse(value).ok()?;
            tags.get("i")?.parse().ok()?
        }
    };
    Some(n)
}

/// The highest instance any ARC header field of the message claims
/// (0 when there is none). A sealer numbers its set one above it.
pub fn highest_instance(message: &[u8], fields: &[Field]) -> u32 {
    fields
        .iter()
        .filter_map(|f| {
            let kind = ArcHeader::from_name(bytes(message, f.name.clone()))?;
            claimed_instance(kind, bytes(message, f.value.clone()))
        })
        .max()
        .unwrap_or(0)
}

/// Whether the message carries any ARC header field at all.
pub fn has_arc_headers(message: &[u8], fields: &[Field]) -> bool {
    fields
        .iter()
        .any(|f| ArcHeader::from_name(bytes(message, f.name.clone())).is_some())
}

/// Collects the ARC Sets of a message and checks the chain's structure
/// (RFC 8617 §5.2 steps 1 to 3): `Ok(vec![])` when there is no ARC header
/// field, the sets ordered by instance 1..N otherwise.
pub fn collect(message: &[u8], fields: &[Field]) -> Result<Vec<ArcSet>, ChainError> {
    type Slot<T> = Option<Located<T>>;
    let mut aars: Vec<Slot<ArcAuthenticationResults>> = Vec::new();
    let mut amss: Vec<Slot<ArcMessageSignature>> = Vec::new();
    let mut seals: Vec<Slot<ArcSeal>> = Vec::new();
    let mut first_error: Option<ChainError> = None;
    let mut latest_seal: Option<(u32, ChainStatus)> = None;

    fn put<T>(
        slots: &mut Vec<Option<Located<T>>>,
        header: ArcHeader,
        instance: u32,
        index: usize,
        parsed: T,
    ) -> Result<(), ChainError> {
        let i = instance as usize;
        if slots.len() <= i {
            slots.resize_with(i + 1, || None);
        }
        match slots.get_mut(i) {
            Some(slot @ None) => {
                *slot = Some(Located { index, parsed });
                Ok(())
            }
            _ => Err(ChainError::Duplicate { header, instance }),
        }
    }

    for (index, field) in fields.iter().enumerate() {
        let Some(kind) = ArcHeader::from_name(bytes(message, field.name.clone())) else {
            continue;
        };
        let value = bytes(message, field.value.clone());
        let result = match kind {
            ArcHeader::Aar => ArcAuthenticationResults::parse(value)
                .map_err(ChainError::from)
                .and_then(|p| put(&mut aars, kind, p.instance, index, p)),
            ArcHeader::Ams => ArcMessageSignature::parse(value)
                .map_err(ChainError::from)
                .and_then(|p| put(&mut amss, kind, p.instance, index, p)),
            ArcHeader::Seal => ArcSeal::parse(value)
                .map_err(ChainError::from)
                .and_then(|p| {
                    if latest_seal.is_none_or(|(i, _)| p.instance > i) {
                        latest_seal = Some((p.instance, p.cv));
                    }
                    put(&mut seals, kind, p.instance, index, p)
                }),
        };
        if let Err(e) = result {
            first_error.get_or_insert(e);
        }
    }

    // Step 2: a chain already marked failed stays failed.
    if let Some((instance, ChainStatus::Fail)) = latest_seal {
        return Err(ChainError::LatestSealFailed { instance });
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    let n = aars
        .len()
        .max(amss.len())
        .max(seals.len())
        .saturating_sub(1);
    let mut sets = Vec::with_capacity(n);
    let mut aars = aars.into_iter();
    let mut amss = amss.into_iter();
    let mut seals = seals.into_iter();
    // Slot 0 is never used (instances start at 1).
    let _ = (aars.next(), amss.next(), seals.next());
    for instance in 1..=n as u32 {
        let missing = |header| ChainError::Missing { header, instance };
        let aar = aars
            .next()
            .flatten()
            .ok_or_else(|| missing(ArcHeader::Aar))?;
        let ams = amss
            .next()
            .flatten()
            .ok_or_else(|| missing(ArcHeader::Ams))?;
        let seal = seals
            .next()
            .flatten()
            .ok_or_else(|| missing(ArcHeader::Seal))?;
        let expected = if instance == 1 {
            ChainStatus::None
        } else {
            ChainStatus::Pass
        };
        if seal.parsed.cv != expected {
            return Err(ChainError::WrongCv {
                instance,
                found: seal.parsed.cv,
                expected,
            });
        }
        sets.push(ArcSet {
            instance,
            aar,
            ams,
            seal,
        });
    }
    debug_assert!(sets.len() <= MAX_INSTANCE as usize);
    Ok(sets)
}

/// The (AAR, AMS, AS) field indexes of a set.
pub(crate) fn triple(set: &ArcSet) -> [usize; 3] {
    [set.aar.index, set.ams.index, set.seal.index]
}

/// Appends the relaxed canonical form of sets (each AAR, AMS, AS) to
/// `out`; with `sign_last`, the very last AS has its `b=` emptied and no
/// final CRLF (it is the seal being made or checked).
pub(crate) fn sets_input(
    header: &[u8],
    fields: &[crate::message::Field],
    triples: &[[usize; 3]],
    sign_last: bool,
    out: &mut Vec<u8>,
) {
    let last = triples.len().saturating_sub(1);
    for (n, t) in triples.iter().enumerate() {
        for (k, &index) in t.iter().enumerate() {
            let Some(f) = fields.get(index) else {
                continue;
            };
            let name = crate::message::bytes(header, f.name.clone());
            let value = crate::message::bytes(header, f.value.clone());
            if sign_last && n == last && k == 2 {
                crate::dkim_glue::canon_signature_header(name, value, out);
            } else {
                crate::dkim_glue::canon_header(crate::header::Canon::Relaxed, name, value, out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::split;
    use alloc::format;
    use alloc::string::String;

    fn set(i: u32, cv: &str) -> String {
        format!(
            "ARC-Seal: i={i}; a=rsa-sha256; cv={cv}; d=example.org; s=s; b=AAAA\r\n\
             ARC-Message-Signature: i={i}; a=rsa-sha256; d=example.org; s=s; h=from; bh=AAAA; b=AAAA\r\n\
             ARC-Authentication-Results: i={i}; mx.example; none\r\n"
        )
    }

    fn run(headers: &str) -> Result<Vec<ArcSet>, ChainError> {
        let m = format!("{headers}From: a@b\r\n\r\nbody\r\n");
        let (fields, _) = split(m.as_bytes());
        collect(m.as_bytes(), &fields)
    }

    #[test]
    fn complete_chains() {
        assert!(run("").unwrap().is_empty());
        let sets = run(&format!("{}{}", set(2, "pass"), set(1, "none"))).unwrap();
        assert_eq!(sets.len(), 2);
        assert_eq!(sets[0].instance, 1);
        assert_eq!(sets[1].instance, 2);
    }

    #[test]
    fn structure_failures() {
        assert!(matches!(
            run(&format!("{}{}", set(3, "pass"), set(1, "none"))),
            Err(ChainError::Missing { instance: 2, .. })
        ));
        assert!(matches!(
            run(&format!("{}{}", set(1, "none"), set(1, "none"))),
            Err(ChainError::Duplicate { instance: 1, .. })
        ));
        assert!(matches!(
            run(&set(1, "pass")),
            Err(ChainError::WrongCv { instance: 1, .. })
        ));
        assert!(matches!(
            run(&format!("{}{}", set(2, "none"), set(1, "none"))),
            Err(ChainError::WrongCv { instance: 2, .. })
        ));
        assert!(matches!(
            run(&format!("{}{}", set(2, "fail"), set(1, "none"))),
            Err(ChainError::LatestSealFailed { instance: 2 })
        ));
        let no_aar: String = set(1, "none")
            .lines()
            .take(2)
            .map(|l| format!("{l}\r\n"))
            .collect();
        assert!(matches!(
            run(&no_aar),
            Err(ChainError::Missing {
                header: ArcHeader::Aar,
                instance: 1
            })
        ));
        assert!(matches!(
            run(&set(1, "none").replace("i=1; a=rsa-sha256; cv", "a=rsa-sha256; cv")),
            Err(ChainError::Header(_))
        ));
    }

    #[test]
    fn highest_instance_is_lenient() {
        let m = format!("{}{}From: a\r\n\r\n", set(2, "bogus"), set(1, "none"));
        let (fields, _) = split(m.as_bytes());
        assert_eq!(highest_instance(m.as_bytes(), &fields), 2);
        assert!(has_arc_headers(m.as_bytes(), &fields));
    }
}
