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

/// A loaded store answers from the file's pages exactly as the table it was
/// saved from, is decoded on its first change, and a damaged file is refused
/// with the reason.
#[test]
fn loaded_store_reads_and_changes_like_memory() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spam.db");
    let mut db = TokenDb::new();
    let tokens: Vec<u64> = (1..5000u64)
        .map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15))
        .collect();
    db.train(&tokens, Class::Spam);
    db.train(&tokens[..700], Class::Ham);
    store::save(&db, &path).unwrap();
    let mut loaded = store::load(&path).unwrap();
    assert_eq!(loaded, db);
    for t in tokens.iter().copied().step_by(7).chain([12345, u64::MAX]) {
        assert_eq!(loaded.get(t), db.get(t), "token {t}");
    }
    assert_eq!(loaded.to_bytes(), std::fs::read(&path).unwrap());
    let spam = Tokenizer::default().tokenize(b"Subject: x\n\nsome words here");
    assert_eq!(
        classify(&loaded, &spam, &Params::default()),
        classify(&db, &spam, &Params::default())
    );
    // The first change decodes the table; the file is left alone.
    loaded.train(&tokens[..10], Class::Ham);
    db.train(&tokens[..10], Class::Ham);
    assert_eq!(loaded, db);
    assert_eq!(loaded.get(tokens[3]).ham, 2);
    assert_eq!(store::load(&path).unwrap().get(tokens[3]).ham, 1);
    // One flipped bit in the slots: a checksum error naming the file.
    let mut bytes = std::fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 1;
    std::fs::write(&path, &bytes).unwrap();
    let err = store::load(&path).unwrap_err().to_string();
    assert!(err.contains("spam.db") && err.contains("checksum"), "{err}");
    // A foreign file and a short one.
    std::fs::write(
        &path,
        b"From alice@example.org Mon Jan 1\nSubject: hi\n\nhello, this is mail",
    )
    .unwrap();
    let err = store::load(&path).unwrap_err().to_string();
    assert!(err.contains("not a ptt token store"), "{err}");
    std::fs::write(&path, b"PTTSPAM").unwrap();
    let err = store::load(&path).unwrap_err().to_string();
    assert!(err.contains("shorter"), "{err}");
}
