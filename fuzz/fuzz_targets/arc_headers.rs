//! The ARC header parsers (tag lists, ARC-Seal, ARC-Message-Signature,
//! ARC-Authentication-Results) and set collection: no panic on any input,
//! and whatever parses round-trips through `Display`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ptt_arc::header::{ArcAuthenticationResults, ArcMessageSignature, ArcSeal};
use ptt_arc::tags::TagList;
use ptt_arc::verify::ArcVerifier;

fuzz_target!(|data: &[u8]| {
    if let Ok(tags) = TagList::parse(data) {
        let again = TagList::parse(tags.to_string().as_bytes()).expect("tag list round trip");
        assert_eq!(again, tags);
    }
    if let Ok(seal) = ArcSeal::parse(data) {
        assert_eq!(
            ArcSeal::parse(seal.to_string().as_bytes()).as_ref(),
            Ok(&seal)
        );
    }
    if let Ok(ams) = ArcMessageSignature::parse(data) {
        assert_eq!(
            ArcMessageSignature::parse(ams.to_string().as_bytes()).as_ref(),
            Ok(&ams)
        );
    }
    if let Ok(aar) = ArcAuthenticationResults::parse(data) {
        assert_eq!(
            ArcAuthenticationResults::parse(aar.to_string().as_bytes()).as_ref(),
            Ok(&aar)
        );
    }
    // The whole header block: collecting sets, asking for keys and the
    // verdict with every key missing never panic (no crypto runs).
    let _ = ptt_dns::run(ArcVerifier::from_message(data), |_| {
        ptt_dns::Answer::NxDomain
    });
});
