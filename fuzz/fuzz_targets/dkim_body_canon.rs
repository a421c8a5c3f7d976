//! Body canonicalization: the body whole (64-byte blocks where it has
//! them) and the body in pieces shorter than a block (byte-at-a-time runs
//! only) give the same canonical form, for both algorithms, and
//! canonicalizing that form again changes nothing. The body hash, of the
//! body whole and in pieces of any size (with `l=` at a third of the
//! canonical form when bit 6 of the first byte is set), is SHA-256 of that
//! form (sha2's): on x86 with the SHA extensions, the rounds built into
//! the canonicalization loop and their lag behind the bytes written.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ptt_dkim::{BodyCanonicalizer, BodyHasher, Canonicalization, canonicalize_body};
use sha2::{Digest as _, Sha256};

fuzz_target!(|data: &[u8]| {
    let Some((&first, body)) = data.split_first() else {
        return;
    };
    let canon = if first & 0x80 == 0 {
        Canonicalization::Relaxed
    } else {
        Canonicalization::Simple
    };
    let piece = usize::from(first & 0x3f).max(1);
    let whole = canonicalize_body(canon, body);
    let mut pieces = Vec::new();
    let mut c = BodyCanonicalizer::new(canon);
    for chunk in body.chunks(piece) {
        c.update(chunk, &mut pieces);
    }
    c.finish(&mut pieces);
    assert_eq!(whole, pieces, "whole and in pieces of {piece}");
    assert_eq!(canonicalize_body(canon, &whole), whole, "idempotent");

    let mut h = BodyHasher::new(canon, None);
    h.update(body);
    let hash = h.finish();
    let want: [u8; 32] = Sha256::digest(&whole).into();
    assert_eq!(hash.hash, want, "body hash, whole");
    assert_eq!(hash.canonical_len, whole.len() as u64);

    let limit = (first & 0x40 != 0).then_some(whole.len() / 3);
    let mut h = BodyHasher::new(canon, limit.map(|l| l as u64));
    for chunk in body.chunks(piece * 37) {
        h.update(chunk);
    }
    let hash = h.finish();
    let want: [u8; 32] = Sha256::digest(&whole[..limit.unwrap_or(whole.len())]).into();
    assert_eq!(
        hash.hash,
        want,
        "body hash in pieces of {}, l={limit:?}",
        piece * 37
    );
    assert_eq!(hash.canonical_len, whole.len() as u64);
});
