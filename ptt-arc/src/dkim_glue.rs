//! The seam between ARC and ptt-dkim: every canonicalization, hash and
//! signature operation ARC needs is a call into ptt-dkim's public API
//! (RFC 8617 §5.2: "Canonicalization, hash functions, and signature
//! validation methods are imported from RFC 6376 section 5"). Nothing here
//! canonicalizes or hashes on its own.

use alloc::string::{String, ToString};
use alloc::vec::Vec;

use ptt_dkim::{Canonicalization, HeaderField, canonicalize_header, header_hash_input};

pub use ptt_dkim::{BodyHasher as DkimBodyHasher, PublicKey, SigningKey};

use crate::header::{Algorithm, Canon};
use crate::message::{Field, bytes};

fn canon(c: Canon) -> Canonicalization {
    match c {
        Canon::Simple => Canonicalization::Simple,
        Canon::Relaxed => Canonicalization::Relaxed,
    }
}

fn algorithm(a: Algorithm) -> ptt_dkim::Algorithm {
    match a {
        Algorithm::RsaSha256 => ptt_dkim::Algorithm::RsaSha256,
        Algorithm::Ed25519Sha256 => ptt_dkim::Algorithm::Ed25519Sha256,
    }
}

/// A streaming SHA-256 body hash over a canonicalized body, with an
/// optional `l=` limit: ptt-dkim's [`DkimBodyHasher`].
pub struct BodyHasher(DkimBodyHasher);

impl core::fmt::Debug for BodyHasher {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        self.0.fmt(f)
    }
}

impl BodyHasher {
    pub(crate) fn new(c: Canon, limit: Option<u64>) -> Self {
        BodyHasher(DkimBodyHasher::new(canon(c), limit))
    }

    /// Adds the next piece of the body.
    pub fn update(&mut self, chunk: &[u8]) {
        self.0.update(chunk);
    }

    /// Ends the body: the SHA-256 hash.
    pub fn finish(self) -> Vec<u8> {
        self.0.finish().hash.to_vec()
    }
}

/// ptt-dkim's view of one of our fields.
fn field<'a>(header: &'a [u8], f: &Field) -> HeaderField<'a> {
    HeaderField {
        name: bytes(header, f.name.clone()),
        raw: bytes(header, f.raw.clone()),
    }
}

/// The usable public key in a key-record answer for a signature made with
/// `alg` (revoked keys, wrong `k=`/`h=`/`s=`, RSA under 1024 bits refused).
pub(crate) fn usable_key(answer: &ptt_dkim::Answer, alg: Algorithm) -> Result<PublicKey, String> {
    let record = ptt_dkim::key_from_answer(answer).map_err(|e| e.to_string())?;
    ptt_dkim::usable_key(&record, algorithm(alg)).map_err(|e| e.to_string())
}

/// Checks a signature made with `a=` over `data` (DKIM's way: RSA
/// PKCS#1 v1.5 SHA-256 over the data, Ed25519 over its SHA-256).
pub(crate) fn verify(
    key: &PublicKey,
    alg: Algorithm,
    data: &[u8],
    sig: &[u8],
) -> Result<(), String> {
    ptt_dkim::verify_signature(key, algorithm(alg), data, sig).map_err(|e| e.to_string())
}

/// Signs `data` as DKIM does.
pub(crate) fn sign(key: &SigningKey, data: &[u8]) -> Result<Vec<u8>, String> {
    key.sign(data).map_err(|e| e.to_string())
}

/// The `a=` a key signs with.
pub(crate) fn key_algorithm(key: &SigningKey) -> Algorithm {
    match key.algorithm() {
        ptt_dkim::Algorithm::Ed25519Sha256 => Algorithm::Ed25519Sha256,
        _ => Algorithm::RsaSha256,
    }
}

/// Appends the canonical form of a field (name, value as in the message)
/// with its final CRLF.
pub(crate) fn canon_header(c: Canon, name: &[u8], value: &[u8], out: &mut Vec<u8>) {
    let raw = [name, b":", value, b"\r\n"].concat();
    canonicalize_header(canon(c), &HeaderField { name, raw: &raw }, out);
}

/// Where the `b=` value sits in a signature field's value.
fn b_span(value: &[u8]) -> core::ops::Range<usize> {
    ptt_dkim::parse_tag_list(value)
        .ok()
        .and_then(|tags| tags.iter().find(|t| t.name == "b").map(|t| t.span.clone()))
        .unwrap_or(value.len()..value.len())
}

/// Appends the relaxed canonical form of a signature field (an ARC-Seal
/// being made or checked) with its `b=` value deleted and no final CRLF.
pub(crate) fn canon_signature_header(name: &[u8], value: &[u8], out: &mut Vec<u8>) {
    let raw = [name, b":", value, b"\r\n"].concat();
    let sig = HeaderField { name, raw: &raw };
    let none: &[&str] = &[];
    out.extend(header_hash_input(
        Canonicalization::Relaxed,
        &[],
        none,
        &sig,
        b_span(value),
    ));
}

/// The data an AMS signs (RFC 6376 §3.7): the fields `h=` selects from
/// `fields` (of `header`), canonicalized, then the signature field `sig`
/// (given with the buffer it lives in) with `b=` deleted.
pub(crate) fn signed_headers_input(
    header: &[u8],
    fields: &[Field],
    h: &[String],
    c: Canon,
    sig: Option<(&[u8], &Field)>,
) -> Vec<u8> {
    let dkim_fields: Vec<HeaderField<'_>> = fields.iter().map(|f| field(header, f)).collect();
    let Some((buf, sig)) = sig else {
        return Vec::new();
    };
    let sig_field = field(buf, sig);
    let value = bytes(buf, sig.value.clone());
    header_hash_input(canon(c), &dkim_fields, h, &sig_field, b_span(value))
}
