//! The spam tokenizer and classifier on arbitrary bytes: no panic, token
//! count within the limit, a score in [0, 1], and a token store that
//! round-trips through its byte form.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ptt_spam::{Class, Limits, Params, TokenDb, Tokenizer, classify};

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    let tokenizer = Tokenizer::new(limits).explain(data.first().is_some_and(|b| b & 1 == 1));
    let tokens = tokenizer.tokenize(data);
    assert!(tokens.hashes().len() <= limits.max_tokens);
    let mut db = TokenDb::new();
    db.train(tokens.hashes(), Class::Spam);
    let result = classify(&db, &tokens, &Params::default());
    assert!((0.0..=1.0).contains(&result.score));
    let _ = result.headers();
    db.untrain(tokens.hashes(), Class::Spam);
    assert_eq!(db.token_count(), 0);
    // Arbitrary bytes as a store: an error, never a panic.
    let _ = TokenDb::from_bytes(data);
});
