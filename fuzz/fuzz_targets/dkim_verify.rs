//! DKIM verification of whole messages: the verifier given the message in
//! one piece (the header block read in place) and in two pieces cut
//! anywhere (the header block collected) gives the same results, for the
//! input as it is (any signature fields in it are checked against a key
//! of `s._domainkey.example.com`) and for the input signed by ptt-dkim;
//! and the input signed by ptt-dkim (Ed25519, relaxed or simple by the
//! first byte, with a From field put first, as signing needs one)
//! verifies as `pass`, whatever else the message holds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ptt_dkim::{
    Answer, Canonicalization, Signer, SignerConfig, SigningKey, Step, Verifier, VerifyPolicy,
};

const NOW: u64 = 1_765_000_000;

fn verify(pieces: &[&[u8]], record: &str) -> Vec<String> {
    let mut v = Verifier::new(VerifyPolicy::default(), NOW);
    for piece in pieces {
        v.update(piece);
    }
    v.end();
    while let Step::Query(q) = v.poll() {
        let answer = if q.name == "s._domainkey.example.com" {
            Answer::txt(record)
        } else {
            Answer::NxDomain
        };
        v.answer(&q, answer);
    }
    v.results().iter().map(|r| r.to_string()).collect()
}

/// The results of `msg` whole, after checking that two pieces cut at
/// `cut` (taken modulo the length) give the same.
fn verify_whole_and_cut(msg: &[u8], cut: usize, record: &str) -> Vec<String> {
    let whole = verify(&[msg], record);
    let cut = cut % (msg.len() + 1);
    let pieces = verify(&[&msg[..cut], &msg[cut..]], record);
    assert_eq!(whole, pieces, "cut at {cut}");
    whole
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let cut = usize::from(first & 0x7f) * 8;
    let key = SigningKey::from_ed25519_seed(&[7; 32]).expect("a crypto backend");
    let record = key.key_record().to_string();
    verify_whole_and_cut(rest, cut, &record);

    let msg = [&b"From: a@example.com\r\n"[..], rest].concat();
    let mut config = SignerConfig::new("example.com", "s");
    config.timestamp = Some(NOW - 60);
    let canon = if first & 0x80 == 0 {
        Canonicalization::Relaxed
    } else {
        Canonicalization::Simple
    };
    (config.header_canon, config.body_canon) = (canon, canon);
    let mut signer = Signer::new(&key, &config).expect("the configuration is valid");
    signer.update(&msg);
    // Signing refuses only a header block over the configured limit.
    let Ok(field) = signer.finish() else {
        assert!(msg.len() > config.max_header_bytes);
        return;
    };
    let signed = [field.as_bytes(), &msg].concat();
    let results = verify_whole_and_cut(&signed, cut, &record);
    assert!(
        results.first().is_some_and(|r| r.starts_with("dkim=pass")),
        "{results:?}"
    );
});
