//! DKIM-Signature tag-list parsing: never panics, and whatever parses
//! round-trips through Display.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = ptt_dkim::parse_tag_list(data);
    if let Ok(sig) = ptt_dkim::DkimSignature::parse(data) {
        let text = sig.to_string();
        let again = ptt_dkim::DkimSignature::parse(text.as_bytes()).expect("Display output parses");
        assert_eq!(again, sig);
    }
});
