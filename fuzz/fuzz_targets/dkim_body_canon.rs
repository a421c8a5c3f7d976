//! Body canonicalization: the body whole (64-byte blocks where it has
//! them) and the body in pieces shorter than a block (byte-at-a-time runs
//! only) give the same canonical form, for both algorithms, and
//! canonicalizing that form again changes nothing.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ptt_dkim::{BodyCanonicalizer, Canonicalization, canonicalize_body};

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
});
