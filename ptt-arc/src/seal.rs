//! Sealing: adding this hop's ARC Set to a message (RFC 8617 §5.1).

use alloc::string::{String, ToString};
use alloc::vec::Vec;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::authres;
use crate::chain::{self, ArcSet, ChainError};
use crate::dkim_glue::{self, BodyHasher, SigningKey};
use crate::header::{
    ARC_AUTHENTICATION_RESULTS, ARC_MESSAGE_SIGNATURE, ARC_SEAL, Algorithm, ArcMessageSignature,
    ArcSeal, Canon, ChainStatus, MAX_INSTANCE, valid_domain,
};
use crate::message::{self, Field};
use crate::verify::ArcVerdict;

/// How the new header fields are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HeaderStyle {
    /// The ValiMail suite's standardized format: one line per field, tags
    /// in alphabetical order, one space after each `;`.
    Standard,
    /// The same tags, folded before a tag when a line would pass 78
    /// columns and inside `b=`, with a tab. (Relaxed canonicalization
    /// makes this fold invisible to the signatures.)
    #[default]
    Folded,
}

/// The header fields a sealer signs in its ARC-Message-Signature by
/// default (those that exist on the message are signed; the rest are
/// skipped).
pub const DEFAULT_SIGNED_HEADERS: &[&str] = &[
    "from",
    "to",
    "cc",
    "subject",
    "date",
    "message-id",
    "reply-to",
    "in-reply-to",
    "references",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
    "list-id",
    "list-post",
    "list-unsubscribe",
    "dkim-signature",
];

/// Why a message could not be sealed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SealError {
    /// `d=`, `s=` or the authserv-id is not a valid name.
    #[error("invalid {what} {value:?}")]
    InvalidName {
        /// Which one.
        what: &'static str,
        /// The value given.
        value: String,
    },
    /// A signed header name that cannot be used (not a field name, or an
    /// ARC or Authentication-Results field: RFC 8617 §4.1.2).
    #[error("cannot sign header field {0:?}")]
    InvalidSignedHeader(String),
    /// The chain already has 50 sets.
    #[error("the chain already has {MAX_INSTANCE} ARC sets")]
    ChainFull,
    /// The verdict does not describe this message's chain.
    #[error("the verdict ({verdict}) does not match the message's chain: {detail}")]
    VerdictMismatch {
        /// The verdict given.
        verdict: ChainStatus,
        /// What differs.
        detail: String,
    },
    /// Signing failed.
    #[error("signing failed: {0}")]
    Sign(String),
}

/// The three header fields of a new ARC Set, each a complete field with
/// its final CRLF.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewArcSet {
    /// The instance of the new set.
    pub instance: u32,
    /// The `cv=` written in its seal.
    pub cv: ChainStatus,
    /// `ARC-Seal: ...\r\n`.
    pub seal: String,
    /// `ARC-Message-Signature: ...\r\n`.
    pub ams: String,
    /// `ARC-Authentication-Results: ...\r\n`.
    pub aar: String,
}

impl NewArcSet {
    /// The three fields in the order they go on top of the message
    /// (ARC-Seal first).
    pub fn header_block(&self) -> String {
        alloc::format!("{}{}{}", self.seal, self.ams, self.aar)
    }

    /// `message` with the set prepended.
    pub fn prepend_to(&self, message: &[u8]) -> Vec<u8> {
        let mut out = self.header_block().into_bytes();
        out.extend_from_slice(message);
        out
    }
}

/// What sealing did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SealOutcome {
    /// A new set was made.
    Sealed(NewArcSet),
    /// The most recent seal already says `cv=fail`: RFC 8617 §5.1 step 2
    /// says to add nothing.
    ChainAlreadyFailed,
}

/// What signs the AMS and the AS: DKIM's signature over the given data
/// (RSASSA-PKCS1-v1_5 with SHA-256, or Ed25519 over the SHA-256 of it).
///
/// It is implemented for ptt-dkim's [`SigningKey`]; another implementation
/// can keep the private key elsewhere (an HSM, a signing service).
pub trait ArcSigner {
    /// The `a=` of the signatures.
    fn algorithm(&self) -> Algorithm;
    /// Signs `data`.
    fn sign(&self, data: &[u8]) -> Result<Vec<u8>, String>;
}

impl ArcSigner for SigningKey {
    fn algorithm(&self) -> Algorithm {
        dkim_glue::key_algorithm(self)
    }
    fn sign(&self, data: &[u8]) -> Result<Vec<u8>, String> {
        dkim_glue::sign(self, data)
    }
}

/// Which header fields the AMS signs.
#[derive(Debug, Clone, PartialEq, Eq)]
enum SignedHeaders {
    /// Those of [`DEFAULT_SIGNED_HEADERS`] on the message, each as often as
    /// it occurs.
    Default,
    /// Exactly this `h=` list.
    Exact(Vec<String>),
}

/// An ARC sealer: a signing key and the names it seals with.
///
/// Sealing is pure: the timestamp comes in as an argument, and the chain's
/// status comes from an [`ArcVerdict`] made by
/// [`ArcVerifier`](crate::verify::ArcVerifier) on the same message.
pub struct Sealer<'k> {
    key: &'k dyn ArcSigner,
    domain: String,
    selector: String,
    authserv_id: String,
    signed_headers: SignedHeaders,
    style: HeaderStyle,
}

impl core::fmt::Debug for Sealer<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Sealer")
            .field("domain", &self.domain)
            .field("selector", &self.selector)
            .field("authserv_id", &self.authserv_id)
            .field("signed_headers", &self.signed_headers)
            .field("style", &self.style)
            .finish_non_exhaustive()
    }
}

fn header_name_ok(n: &str) -> bool {
    !n.is_empty() && n.bytes().all(|b| (0x21..=0x7e).contains(&b) && b != b':')
}

impl<'k> Sealer<'k> {
    /// A sealer for `d=domain`, `s=selector`, whose Authentication-Results
    /// carry `authserv_id`.
    pub fn new(
        key: &'k dyn ArcSigner,
        domain: &str,
        selector: &str,
        authserv_id: &str,
    ) -> Result<Sealer<'k>, SealError> {
        for (what, value) in [("domain", domain), ("selector", selector)] {
            if !valid_domain(value) {
                return Err(SealError::InvalidName {
                    what,
                    value: value.to_string(),
                });
            }
        }
        if authserv_id.is_empty()
            || authserv_id
                .bytes()
                .any(|b| b <= b' ' || b == b';' || b == 0x7f || b == b'(' || b == b'"')
        {
            return Err(SealError::InvalidName {
                what: "authserv-id",
                value: authserv_id.to_string(),
            });
        }
        Ok(Sealer {
            key,
            domain: domain.to_ascii_lowercase(),
            selector: selector.to_ascii_lowercase(),
            authserv_id: authserv_id.to_string(),
            signed_headers: SignedHeaders::Default,
            style: HeaderStyle::default(),
        })
    }

    /// Signs exactly these header fields in the AMS (`h=`, in this order,
    /// lowercased; the ValiMail suite's `sig-headers`).
    pub fn with_signed_headers<S: AsRef<str>>(
        mut self,
        names: &[S],
    ) -> Result<Sealer<'k>, SealError> {
        let mut list = Vec::new();
        for n in names {
            let n = n.as_ref();
            // RFC 8617 §4.1.2: no ARC header field and no
            // Authentication-Results in the AMS.
            if !header_name_ok(n)
                || [
                    ARC_SEAL,
                    ARC_MESSAGE_SIGNATURE,
                    ARC_AUTHENTICATION_RESULTS,
                    authres::AUTHENTICATION_RESULTS,
                ]
                .iter()
                .any(|h| n.eq_ignore_ascii_case(h))
            {
                return Err(SealError::InvalidSignedHeader(n.to_string()));
            }
            list.push(n.to_ascii_lowercase());
        }
        self.signed_headers = SignedHeaders::Exact(list);
        Ok(self)
    }

    /// Lays the new header fields out in `style`.
    pub fn with_style(mut self, style: HeaderStyle) -> Sealer<'k> {
        self.style = style;
        self
    }

    /// The `h=` list for a message whose fields are `fields`.
    fn h_list(&self, message: &[u8], fields: &[Field]) -> Vec<String> {
        match &self.signed_headers {
            SignedHeaders::Exact(list) => list.clone(),
            SignedHeaders::Default => {
                let mut list = Vec::new();
                for name in DEFAULT_SIGNED_HEADERS {
                    let count = fields
                        .iter()
                        .filter(|f| {
                            message::bytes(message, f.name.clone())
                                .eq_ignore_ascii_case(name.as_bytes())
                        })
                        .count();
                    for _ in 0..count {
                        list.push((*name).to_string());
                    }
                }
                list
            }
        }
    }

    /// Seals `message` (header and body, CRLF line ends): returns the new
    /// ARC Set to put on top of it, or [`SealOutcome::ChainAlreadyFailed`].
    ///
    /// `verdict` is the validation of this message's chain; the new seal
    /// carries its status as `cv=`. When it is `fail`, the seal signs only
    /// the new set (RFC 8617 §5.1.2). `timestamp` is `t=` (seconds since
    /// the epoch).
    pub fn seal(
        &self,
        message: &[u8],
        verdict: &ArcVerdict,
        timestamp: u64,
    ) -> Result<SealOutcome, SealError> {
        let (fields, body_start) = message::split(message);
        let header = message.get(..body_start).unwrap_or_default();
        let body = message.get(body_start..).unwrap_or_default();
        let mut hasher = BodyHasher::new(Canon::Relaxed, None);
        hasher.update(body);
        self.seal_parts(header, &fields, &hasher.finish(), verdict, timestamp)
    }

    /// [`seal`](Self::seal) for a message whose body was hashed as it
    /// streamed by: `header` is the header block, `body_hash` the
    /// relaxed-canonicalized SHA-256 body hash (see [`body_hasher`]).
    pub fn seal_header(
        &self,
        header: &[u8],
        body_hash: &[u8],
        verdict: &ArcVerdict,
        timestamp: u64,
    ) -> Result<SealOutcome, SealError> {
        let (fields, _) = message::split(header);
        self.seal_parts(header, &fields, body_hash, verdict, timestamp)
    }

    fn seal_parts(
        &self,
        header: &[u8],
        fields: &[Field],
        body_hash: &[u8],
        verdict: &ArcVerdict,
        timestamp: u64,
    ) -> Result<SealOutcome, SealError> {
        let mismatch = |detail: &str| SealError::VerdictMismatch {
            verdict: verdict.status,
            detail: detail.to_string(),
        };
        let existing: Result<Vec<ArcSet>, ChainError> = chain::collect(header, fields);
        if let Err(ChainError::LatestSealFailed { .. }) = existing {
            return Ok(SealOutcome::ChainAlreadyFailed);
        }
        let instance = chain::highest_instance(header, fields) + 1;
        if instance > MAX_INSTANCE {
            return Err(SealError::ChainFull);
        }
        let cv = verdict.status;
        let prior: Vec<ArcSet> = match (cv, existing) {
            (ChainStatus::None, Ok(sets)) if sets.is_empty() => sets,
            (ChainStatus::None, _) => return Err(mismatch("the message has ARC header fields")),
            (ChainStatus::Pass, Ok(sets))
                if !sets.is_empty() && sets.len() as u32 == verdict.sets =>
            {
                sets
            }
            (ChainStatus::Pass, _) => {
                return Err(mismatch("the message's chain is not the one that passed"));
            }
            // RFC 8617 §5.1.2: a failed chain is not built upon.
            (ChainStatus::Fail, _) => Vec::new(),
        };

        // 1. ARC-Authentication-Results.
        let mut results = authres::results_for(header, fields, &self.authserv_id);
        if results.is_empty() {
            results.push("none".to_string());
        }
        let mut aar_tokens = alloc::vec![alloc::format!("i={instance}"), self.authserv_id.clone()];
        aar_tokens.extend(results);
        let aar = render(ARC_AUTHENTICATION_RESULTS, &aar_tokens, self.style);

        // 2. ARC-Message-Signature over the message with the AAR on top.
        let mut with_aar = aar.clone().into_bytes();
        with_aar.extend_from_slice(header);
        let (aar_fields, _) = message::split(&with_aar);
        let mut ams = ArcMessageSignature {
            instance,
            algorithm: self.key_algorithm(),
            signature: Vec::new(),
            body_hash: body_hash.to_vec(),
            canonicalization: (Canon::Relaxed, Canon::Relaxed),
            domain: self.domain.clone(),
            headers: self.h_list(&with_aar, &aar_fields),
            body_length: None,
            selector: self.selector.clone(),
            timestamp: Some(timestamp),
            extra: Vec::new(),
            explicit_canonicalization: true,
        };
        let unsigned_ams = render(ARC_MESSAGE_SIGNATURE, &tokens(&ams.format("")), self.style);
        let (ams_field, _) = message::split(unsigned_ams.as_bytes());
        let input = dkim_glue::signed_headers_input(
            &with_aar,
            &aar_fields,
            &ams.headers,
            Canon::Relaxed,
            ams_field.first().map(|f| (unsigned_ams.as_bytes(), f)),
        );
        ams.signature = self.key.sign(&input).map_err(SealError::Sign)?;
        let ams_text = render(
            ARC_MESSAGE_SIGNATURE,
            &tokens(&ams.format(&STANDARD.encode(&ams.signature))),
            self.style,
        );

        // 3. ARC-Seal over the prior sets (none after a failure) and this one.
        let mut seal = ArcSeal {
            instance,
            algorithm: self.key_algorithm(),
            signature: Vec::new(),
            cv,
            domain: self.domain.clone(),
            selector: self.selector.clone(),
            timestamp: Some(timestamp),
            extra: Vec::new(),
        };
        let unsigned_seal = render(ARC_SEAL, &tokens(&seal.format("")), self.style);
        let new_block = alloc::format!("{unsigned_seal}{ams_text}{aar}");
        let (new_fields, _) = message::split(new_block.as_bytes());
        let mut input = Vec::new();
        let prior_triples: Vec<[usize; 3]> = prior.iter().map(chain::triple).collect();
        chain::sets_input(header, fields, &prior_triples, false, &mut input);
        chain::sets_input(
            new_block.as_bytes(),
            &new_fields,
            &[[2, 1, 0]],
            true,
            &mut input,
        );
        seal.signature = self.key.sign(&input).map_err(SealError::Sign)?;
        let seal_text = render(
            ARC_SEAL,
            &tokens(&seal.format(&STANDARD.encode(&seal.signature))),
            self.style,
        );
        Ok(SealOutcome::Sealed(NewArcSet {
            instance,
            cv,
            seal: seal_text,
            ams: ams_text,
            aar,
        }))
    }

    fn key_algorithm(&self) -> Algorithm {
        self.key.algorithm()
    }
}

/// `message` with an `Authentication-Results: <authserv_id>; arc=...`
/// field on top that records `verdict` (RFC 8617 §6), unless one of the
/// message's Authentication-Results fields of `authserv_id` already has an
/// `arc=` result. The sealer then copies it into the AAR.
pub fn stamp(message: &[u8], authserv_id: &str, verdict: &ArcVerdict) -> Vec<u8> {
    let (fields, _) = message::split(message);
    if authres::has_arc_result(&authres::results_for(message, &fields, authserv_id)) {
        return message.to_vec();
    }
    let mut out = alloc::format!(
        "{}: {authserv_id}; {}\r\n",
        authres::AUTHENTICATION_RESULTS,
        verdict.auth_result()
    )
    .into_bytes();
    out.extend_from_slice(message);
    out
}

/// A body hasher for [`Sealer::seal_header`]: relaxed body
/// canonicalization, SHA-256.
pub fn body_hasher() -> BodyHasher {
    BodyHasher::new(Canon::Relaxed, None)
}

/// Splits a standardized value into its `"; "`-separated tags.
fn tokens(value: &str) -> Vec<String> {
    value.split("; ").map(ToString::to_string).collect()
}

/// Lays out a header field from its tokens (joined by `"; "`).
fn render(name: &str, tokens: &[String], style: HeaderStyle) -> String {
    const WIDTH: usize = 78;
    let mut out = alloc::format!("{name}:");
    match style {
        HeaderStyle::Standard => {
            out.push(' ');
            out.push_str(&tokens.join("; "));
        }
        HeaderStyle::Folded => {
            // `i=` first, as in RFC 8617's examples: some validators
            // (dkimpy) find a set's fields by looking for " i=N;", which a
            // fold before `i=` would hide.
            let mut tokens = tokens.to_vec();
            if let Some(at) = tokens.iter().position(|t| t.starts_with("i=")) {
                let instance = tokens.remove(at);
                tokens.insert(0, instance);
            }
            let mut col = out.len();
            let last = tokens.len().saturating_sub(1);
            for (n, tok) in tokens.iter().enumerate() {
                let piece = if n < last {
                    alloc::format!("{tok};")
                } else {
                    tok.clone()
                };
                if n > 0 && col + 1 + piece.len() > WIDTH {
                    out.push_str("\r\n\t");
                    col = 8;
                } else {
                    out.push(' ');
                    col += 1;
                }
                if piece.starts_with("b=") && col + piece.len() > WIDTH {
                    // Fold inside the signature: b= is emptied before any
                    // check, and relaxed canonicalization turns the fold
                    // into one space in the seals that cover it.
                    let mut rest = piece.as_str();
                    while !rest.is_empty() {
                        let room = WIDTH.saturating_sub(col).max(8);
                        let take = room.min(rest.len());
                        let (head, tail) = rest.split_at(take);
                        out.push_str(head);
                        col += head.len();
                        rest = tail;
                        if !rest.is_empty() {
                            out.push_str("\r\n\t");
                            col = 8;
                        }
                    }
                } else {
                    out.push_str(&piece);
                    col += piece.len();
                }
            }
        }
    }
    out.push_str("\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folded_fields_begin_with_the_instance() {
        let long = "b=".to_string() + &"A".repeat(200);
        let tokens: Vec<String> = ["a=rsa-sha256", long.as_str(), "cv=none", "d=example.org"]
            .iter()
            .map(ToString::to_string)
            .chain(["i=1".to_string(), "s=sel".to_string()])
            .collect();
        let out = render("ARC-Seal", &tokens, HeaderStyle::Folded);
        assert!(out.starts_with("ARC-Seal: i=1; a=rsa-sha256;"), "{out}");
        assert_eq!(out.matches("i=1").count(), 1);
    }

    #[test]
    fn render_standard_and_folded() {
        let toks = tokens("a=rsa-sha256; b=AAAA; cv=none; d=example.org; i=1; s=dummy; t=12345");
        assert_eq!(
            render("ARC-Seal", &toks, HeaderStyle::Standard),
            "ARC-Seal: a=rsa-sha256; b=AAAA; cv=none; d=example.org; i=1; s=dummy; t=12345\r\n"
        );
        let long_b = alloc::format!("b={}", "A".repeat(200));
        let toks = alloc::vec!["a=rsa-sha256".to_string(), long_b, "cv=none".to_string()];
        let folded = render("ARC-Seal", &toks, HeaderStyle::Folded);
        assert!(folded.lines().all(|l| l.len() <= 78), "{folded}");
        let unfolded: String = folded.replace("\r\n\t", "");
        assert!(unfolded.contains(&"A".repeat(200)));
        let parsed = ArcSeal::parse(folded.trim_start_matches("ARC-Seal:").as_bytes());
        assert!(parsed.is_err(), "missing tags, but the b= value must parse");
    }
}
