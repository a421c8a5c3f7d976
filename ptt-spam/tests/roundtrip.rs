//! Parsed forms and the store round-trip; the tokenizer never panics.

use proptest::prelude::*;
use ptt_spam::{Class, Params, SpamStatus, TokenDb, Tokenizer, Verdict, classify, store};

fn verdict() -> impl Strategy<Value = Verdict> {
    prop_oneof![
        Just(Verdict::Spam),
        Just(Verdict::Ham),
        Just(Verdict::Unsure)
    ]
}

proptest! {
    #[test]
    fn spam_status_roundtrips(v in verdict(), score in 0u32..=10_000) {
        let status = SpamStatus { verdict: v, score: f64::from(score) / 10_000.0 };
        let text = status.to_string();
        prop_assert_eq!(text.parse::<SpamStatus>(), Ok(status));
        prop_assert_eq!(text.parse::<SpamStatus>().map(|s| s.to_string()), Ok(text));
    }

    #[test]
    fn verdict_roundtrips(v in verdict()) {
        prop_assert_eq!(v.to_string().parse::<Verdict>(), Ok(v));
    }

    #[test]
    fn tokenizer_never_panics(raw in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let t = Tokenizer::default().explain(true).tokenize(&raw);
        let mut db = TokenDb::new();
        db.train(t.hashes(), Class::Ham);
        let r = classify(&db, &t, &Params::default());
        prop_assert!((0.0..=1.0).contains(&r.score));
    }

    #[test]
    fn store_roundtrips(tokens in proptest::collection::vec(1u64.., 0..2000), spam in any::<bool>()) {
        let mut db = TokenDb::new();
        db.train(&tokens, if spam { Class::Spam } else { Class::Ham });
        prop_assert_eq!(TokenDb::from_bytes(&db.to_bytes()), Ok(db));
    }

    #[test]
    fn store_rejects_truncation(cut in 1usize..64) {
        let mut db = TokenDb::new();
        db.train(&[1, 2, 3], Class::Spam);
        let bytes = db.to_bytes();
        prop_assert!(TokenDb::from_bytes(&bytes[..bytes.len() - cut]).is_err());
    }
}

#[test]
fn save_replaces_atomically() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spam.db");
    let mut db = TokenDb::new();
    db.train(&[10, 20, 30], Class::Spam);
    store::save(&db, &path).unwrap();
    // A reader that opened the old file keeps its contents after the save.
    let old_bytes = db.to_bytes();
    let mut old = std::fs::File::open(&path).unwrap();
    db.train(&[40], Class::Ham);
    store::save(&db, &path).unwrap();
    let mut seen = Vec::new();
    std::io::Read::read_to_end(&mut old, &mut seen).unwrap();
    assert_eq!(seen, old_bytes, "the old file is intact for its reader");
    assert_eq!(store::load(&path).unwrap(), db);
    // No temporary file is left behind.
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["spam.db"]);
    let err = store::load(&dir.path().join("nope.db")).unwrap_err();
    assert!(err.to_string().contains("nope.db"), "{err}");
}

#[test]
fn verdict_explains_itself() {
    let t = Tokenizer::default().explain(true);
    let mut db = TokenDb::new();
    for i in 0..30 {
        let spam =
            format!("Subject: cheap pills {i}\n\nbuy cheap pills online now, best price {i}");
        let ham =
            format!("Subject: meeting {i}\n\nthe meeting notes for tuesday are in the wiki {i}");
        db.train(t.tokenize(spam.as_bytes()).hashes(), Class::Spam);
        db.train(t.tokenize(ham.as_bytes()).hashes(), Class::Ham);
    }
    let r = classify(
        &db,
        &t.tokenize(b"Subject: pills\n\nbuy cheap pills"),
        &Params::default(),
    );
    assert_eq!(r.verdict, Verdict::Spam);
    let h = r.headers();
    assert!(h.starts_with("X-Spam-Status: Yes, score="), "{h}");
    assert!(
        h.contains("\"cheap <1> pills\"=") || h.contains("\"pills\"="),
        "{h}"
    );
    assert!(h.ends_with("X-Spam-Flag: YES\r\n"), "{h}");
    assert!(h.lines().all(|l| l.len() <= 78), "{h}");
    let r = classify(
        &db,
        &t.tokenize(b"Subject: notes\n\nmeeting notes for tuesday"),
        &Params::default(),
    );
    assert_eq!(r.verdict, Verdict::Ham);
    assert!(r.headers().starts_with("X-Spam-Status: No, score=0.0"));
    assert!(!r.headers().contains("X-Spam-Flag"));
}
