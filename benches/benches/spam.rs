//! ptt-spam: tokenize + classify per message, and 100 messages end to end
//! beside bogofilter (`bogofilter -T -B`, same training, same files) in the
//! same run.
//!
//! Messages come from the shared SpamAssassin corpus: every 16th message is
//! held out for classifying, the rest trains both filters.

use std::path::PathBuf;
use std::process::Command;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ptt_spam::{Class, Params, TokenDb, Tokenizer, classify, store};

struct Setup {
    test: Vec<(PathBuf, Vec<u8>)>,
    db: TokenDb,
    db_file: PathBuf,
    bogofilter_dir: Option<PathBuf>,
    _tmp: tempfile::TempDir,
}

fn setup() -> Option<Setup> {
    let root = ptt_testkit::shared_suite("corpora/spamassassin-public-corpus")?;
    let tokenizer = Tokenizer::default();
    let tmp = tempfile::tempdir().ok()?;
    let mut db = TokenDb::new();
    let mut test = Vec::new();
    let mut train: Vec<(PathBuf, Class)> = Vec::new();
    for (dir, class) in [
        ("easy-ham-1", Class::Ham),
        ("hard-ham-1", Class::Ham),
        ("spam-1", Class::Spam),
    ] {
        let mut files: Vec<PathBuf> = std::fs::read_dir(root.join(dir))
            .ok()?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        files.sort();
        for (i, f) in files.into_iter().enumerate() {
            let raw = std::fs::read(&f).ok()?;
            if i % 16 == 0 {
                test.push((f, raw));
            } else {
                db.train(tokenizer.tokenize(&raw).hashes(), class);
                train.push((f, class));
            }
        }
    }
    let db_file = tmp.path().join("spam.db");
    store::save(&db, &db_file).ok()?;
    let bogofilter_dir = tmp.path().join("bogofilter");
    std::fs::create_dir_all(&bogofilter_dir).ok()?;
    let mut bogofilter_ok = Command::new("bogofilter").arg("-V").output().is_ok();
    for (flag, class) in [("-s", Class::Spam), ("-n", Class::Ham)] {
        let files: Vec<&PathBuf> = train
            .iter()
            .filter(|t| t.1 == class)
            .map(|t| &t.0)
            .collect();
        for chunk in files.chunks(1000) {
            bogofilter_ok &= bogofilter_ok
                && Command::new("bogofilter")
                    .args(["-C", "-d"])
                    .arg(&bogofilter_dir)
                    .args([flag, "-B"])
                    .args(chunk)
                    .status()
                    .is_ok_and(|s| s.success());
        }
    }
    Some(Setup {
        test,
        db,
        db_file,
        bogofilter_dir: bogofilter_ok.then_some(bogofilter_dir),
        _tmp: tmp,
    })
}

fn bench(c: &mut Criterion) {
    let Some(s) = setup() else {
        println!("spam bench skipped: no shared corpus");
        return;
    };
    let tokenizer = Tokenizer::default();
    let params = Params::default();
    let bytes: usize = s.test.iter().map(|t| t.1.len()).sum();
    println!(
        "spam bench: {} held-out messages, {} bytes on average; db {} tokens",
        s.test.len(),
        bytes / s.test.len().max(1),
        s.db.token_count()
    );

    let mut g = c.benchmark_group("spam/per-message");
    g.throughput(Throughput::Elements(s.test.len() as u64));
    g.bench_function("ptt tokenize", |b| {
        b.iter(|| {
            for (_, raw) in &s.test {
                std::hint::black_box(tokenizer.tokenize(raw));
            }
        })
    });
    g.bench_function("ptt tokenize+classify", |b| {
        b.iter(|| {
            for (_, raw) in &s.test {
                let t = tokenizer.tokenize(raw);
                std::hint::black_box(classify(&s.db, &t, &params));
            }
        })
    });
    g.finish();

    let files: Vec<&PathBuf> = s.test.iter().take(100).map(|t| &t.0).collect();
    let mut g = c.benchmark_group("spam/100-files");
    g.throughput(Throughput::Elements(files.len() as u64));
    g.sample_size(10);
    g.bench_function("ptt (load db, read, tokenize, classify; one thread)", |b| {
        b.iter(|| {
            let db = store::load(&s.db_file).expect("db loads");
            for f in &files {
                let raw = std::fs::read(f).expect("file reads");
                let t = tokenizer.tokenize(&raw);
                std::hint::black_box(classify(&db, &t, &params));
            }
        })
    });
    if let Some(dir) = &s.bogofilter_dir {
        g.bench_function("bogofilter -T -B (process)", |b| {
            b.iter(|| {
                let out = Command::new("bogofilter")
                    .args(["-C", "-d"])
                    .arg(dir)
                    .args(["-T", "-B"])
                    .args(&files)
                    .output()
                    .expect("bogofilter runs");
                assert!(!out.stdout.is_empty());
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
