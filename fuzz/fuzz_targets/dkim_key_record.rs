//! DKIM key-record parsing (and the DER inside p=): never panics, and
//! whatever parses round-trips through Display.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(rec) = ptt_dkim::DkimKeyRecord::parse(data) {
        let _ = rec.public_key();
        let text = rec.to_string();
        let again = ptt_dkim::DkimKeyRecord::parse(text.as_bytes()).expect("Display output parses");
        assert_eq!(again, rec);
    }
    // p= holding arbitrary DER, for both key types.
    for k in ["rsa", "ed25519"] {
        let rec = ptt_dkim::DkimKeyRecord {
            key_type: k.into(),
            hashes: None,
            services: None,
            flags: Vec::new(),
            notes: None,
            public_key: data.to_vec(),
            unknown: Vec::new(),
        };
        let _ = rec.public_key();
    }
});
