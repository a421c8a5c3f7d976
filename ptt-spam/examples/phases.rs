//! Where the time of classifying files goes: load, read, tokenize, classify
//! (the least of 5 runs each for the last two).
//!
//! ```text
//! cargo run --release -p ptt-spam --example phases -- DB FILE...
//! ```
//!
//! The last figure classifies again with the table copied into memory
//! (`COMPACT=1`: rebuilt at the load factor of a fresh rebuild, under 1/2),
//! to compare with the loaded store's own pages.
use std::path::PathBuf;
use std::time::Instant;

use ptt_spam::{Params, Tokenizer, classify, store};

fn main() {
    let mut args = std::env::args_os().skip(1);
    let Some(db) = args.next() else {
        eprintln!("usage: phases DB FILE...");
        std::process::exit(2);
    };
    let files: Vec<PathBuf> = args.map(PathBuf::from).collect();
    let t = Instant::now();
    let db = match store::load(std::path::Path::new(&db)) {
        Ok(db) => db,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let load = t.elapsed();
    let t = Instant::now();
    let raws: Vec<Vec<u8>> = files.iter().filter_map(|f| std::fs::read(f).ok()).collect();
    let read = t.elapsed();
    // Tokens as the database was trained (its OSB window).
    let tokenizer = Tokenizer::default().osb_window(db.osb_window());
    // Each phase runs 5 times; the least time is reported (the machine may
    // be busy with other work).
    let mut tokenize = std::time::Duration::MAX;
    let mut toks = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        toks = raws.iter().map(|r| tokenizer.tokenize(r)).collect();
        tokenize = tokenize.min(t.elapsed());
    }
    let params = Params {
        clues: 0,
        ..Params::default()
    };
    let mut classify_t = std::time::Duration::MAX;
    let mut spam = 0;
    for _ in 0..5 {
        let t = Instant::now();
        spam = 0;
        for tk in &toks {
            if classify(&db, tk, &params).verdict == ptt_spam::Verdict::Spam {
                spam += 1;
            }
        }
        classify_t = classify_t.min(t.elapsed());
    }
    let mut owned = db.clone();
    if std::env::var_os("COMPACT").is_some() {
        owned.compact();
    }
    let mut classify_owned = std::time::Duration::MAX;
    for _ in 0..5 {
        let t = Instant::now();
        for tk in &toks {
            std::hint::black_box(classify(&owned, tk, &params));
        }
        classify_owned = classify_owned.min(t.elapsed());
    }
    let ntok: usize = toks.iter().map(|t| t.hashes().len()).sum();
    let hits: usize = toks
        .iter()
        .flat_map(|t| t.hashes())
        .filter(|&&h| db.get(h) != ptt_spam::Counts::default())
        .count();
    println!(
        "{} files, {} tokens ({} per message, {:.0}% known), {} spam; db {} tokens\n\
         load {:?}  read {:?}  tokenize {:?}  classify {:?} (table in memory: {:?})",
        raws.len(),
        ntok,
        ntok / raws.len().max(1),
        100.0 * hits as f64 / ntok.max(1) as f64,
        spam,
        db.token_count(),
        load,
        read,
        tokenize,
        classify_t,
        classify_owned
    );
}
