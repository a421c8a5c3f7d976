//! k-fold cross-validation of ptt-spam against bogofilter on a labelled
//! corpus, both trained and tested on the same folds in one run.
//!
//! Shared by `examples/crossval.rs` (the full 5-fold run a user starts) and
//! `tests/crossval.rs` (a reduced run that asserts the targets).
//!
//! Corpus layout: directories whose name starts with `spam` hold spam, all
//! other directories ham; one raw message per file. Within each class,
//! files are sorted by name and dealt round-robin into the folds, so every
//! fold has the same class mix and the split is the same on every machine.

#![allow(dead_code)]

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use ptt_spam::{Class, Params, TokenDb, Tokenizer, Verdict, classify};

/// One labelled message.
pub struct Message {
    pub path: PathBuf,
    pub class: Class,
    pub fold: usize,
}

/// Reads the corpus under `root`, every `step`-th file of each class
/// (`step` 1 = all), dealt into `k` folds.
pub fn load(root: &Path, k: usize, step: usize) -> Vec<Message> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root)
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    let mut out = Vec::new();
    for class in [Class::Ham, Class::Spam] {
        let mut files: Vec<PathBuf> = dirs
            .iter()
            .filter(|d| {
                let spam = d
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("spam"));
                spam == (class == Class::Spam)
            })
            .flat_map(|d| {
                std::fs::read_dir(d)
                    .unwrap_or_else(|e| panic!("{}: {e}", d.display()))
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.is_file())
            })
            .collect();
        files.sort();
        for (i, path) in files.into_iter().step_by(step.max(1)).enumerate() {
            out.push(Message {
                path,
                class,
                fold: i % k,
            });
        }
    }
    out
}

/// The fold of the older messages in a time-ordered split (trained on).
pub const OLDER: usize = 0;
/// The fold of the newer messages in a time-ordered split (tested on).
pub const NEWER: usize = 1;

/// The corpus split by time, as a filter meets mail in deployment: within
/// each class, messages sorted by their `Date:`; the newest `test_percent`
/// percent in fold [`NEWER`], the rest in [`OLDER`]. Messages without a
/// readable date count as old. Random folds mix periods and flatter every
/// filter; this split does not.
pub fn load_by_date(root: &Path, test_percent: usize) -> Vec<Message> {
    let mut out = load(root, 1, 1);
    let date = |m: &Message| -> i64 {
        std::fs::read(&m.path)
            .ok()
            .and_then(|raw| {
                mail_parser::MessageParser::default()
                    .parse_headers(&raw)
                    .and_then(|msg| msg.date().map(|d| d.to_timestamp()))
            })
            .unwrap_or(i64::MIN)
    };
    for class in [Class::Ham, Class::Spam] {
        let mut dated: Vec<(i64, usize)> = out
            .iter()
            .enumerate()
            .filter(|(_, m)| m.class == class)
            .map(|(i, m)| (date(m), i))
            .collect();
        // Ties by path, so the split is the same on every machine.
        dated.sort_by(|a, b| {
            a.0.cmp(&b.0)
                .then_with(|| out[a.1].path.cmp(&out[b.1].path))
        });
        let newer = dated.len() * test_percent / 100;
        for (rank, (_, i)) in dated.iter().enumerate() {
            out[*i].fold = if rank >= dated.len() - newer {
                NEWER
            } else {
                OLDER
            };
        }
    }
    out
}

/// Verdict counts over a test fold.
#[derive(Debug, Default, Clone, Copy)]
pub struct Tally {
    pub ham: usize,
    pub spam: usize,
    pub correct: usize,
    pub unsure: usize,
    /// Ham flagged as spam.
    pub false_positive: usize,
    /// Spam passed as ham.
    pub false_negative: usize,
}

impl Tally {
    pub fn add(&mut self, class: Class, verdict: Verdict) {
        match class {
            Class::Ham => self.ham += 1,
            Class::Spam => self.spam += 1,
        }
        match (class, verdict) {
            (Class::Ham, Verdict::Ham) | (Class::Spam, Verdict::Spam) => self.correct += 1,
            (Class::Ham, Verdict::Spam) => self.false_positive += 1,
            (Class::Spam, Verdict::Ham) => self.false_negative += 1,
            // Unsure, and any verdict a later ptt-spam adds: not correct.
            _ => self.unsure += 1,
        }
    }

    pub fn merge(&mut self, o: &Tally) {
        self.ham += o.ham;
        self.spam += o.spam;
        self.correct += o.correct;
        self.unsure += o.unsure;
        self.false_positive += o.false_positive;
        self.false_negative += o.false_negative;
    }

    pub fn total(&self) -> usize {
        self.ham + self.spam
    }

    /// Share of ham flagged as spam.
    pub fn fp_rate(&self) -> f64 {
        self.false_positive as f64 / self.ham.max(1) as f64
    }

    pub fn accuracy(&self) -> f64 {
        self.correct as f64 / self.total().max(1) as f64
    }
}

/// One test fold's results.
pub struct FoldResult {
    pub fold: usize,
    pub ptt: Tally,
    pub bogofilter: Tally,
    pub ptt_time: Duration,
    pub bogofilter_time: Duration,
}

/// How ptt is set up for a cross-validation.
#[derive(Debug, Default)]
pub struct Setup {
    /// Classification parameters.
    pub params: Params,
    /// The tokenizer (its OSB window).
    pub tokenizer: Tokenizer,
    /// Drop the tokens seen in fewer training messages than this, as
    /// `ptt spam train --prune` does.
    pub prune: Option<u32>,
    /// Leave out the tokens whose name starts with one of these (a family
    /// of features, to measure what it is worth; `""` means body words and
    /// their pairs, the names without a `prefix:`).
    pub without: Vec<String>,
}

/// Runs ptt's library on the folds: tokenizes every message once, then for
/// each fold in `folds` trains a fresh database on the other folds and
/// classifies the fold.
pub fn run_ptt(messages: &[Message], folds: &[usize], setup: &Setup) -> Vec<(Tally, Duration)> {
    let tokenizer = &setup.tokenizer;
    let start = Instant::now();
    let tokens: Vec<_> = messages
        .iter()
        .map(|m| {
            let raw =
                std::fs::read(&m.path).unwrap_or_else(|e| panic!("{}: {e}", m.path.display()));
            if setup.without.is_empty() {
                return tokenizer.tokenize(&raw);
            }
            let mut t = tokenizer.clone().explain(true).tokenize(&raw);
            t.retain_named(|name| {
                // Feature tokens are named `family:value`; body words and
                // their pairs carry no such prefix (family "").
                let family = name
                    .split_once(':')
                    .map(|(p, _)| p)
                    .filter(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_lowercase()))
                    .unwrap_or("");
                !setup.without.iter().any(|w| w == family)
            });
            t
        })
        .collect();
    let tokenize_time = start.elapsed() / folds.len().max(1) as u32;
    folds
        .iter()
        .map(|&fold| {
            let start = Instant::now();
            let mut db = TokenDb::with_osb_window(setup.tokenizer.osb_window_size());
            for (m, t) in messages.iter().zip(&tokens) {
                if m.fold != fold {
                    db.train(t.hashes(), m.class);
                }
            }
            if let Some(min) = setup.prune {
                db.prune(min);
            }
            let mut tally = Tally::default();
            for (m, t) in messages.iter().zip(&tokens) {
                if m.fold == fold {
                    tally.add(m.class, classify(&db, t, &setup.params).verdict);
                }
            }
            (tally, start.elapsed() + tokenize_time)
        })
        .collect()
}

/// Runs bogofilter on the folds, in a fresh database per fold under `work`:
/// `bogofilter -C -d DB -s -B` on the training spam, `-n -B` on the
/// training ham, then `-T -B` on the test fold. `None` when bogofilter is
/// not installed.
pub fn run_bogofilter(
    messages: &[Message],
    folds: &[usize],
    work: &Path,
) -> Option<Vec<(Tally, Duration)>> {
    if Command::new("bogofilter").arg("-V").output().is_err() {
        return None;
    }
    let mut out = Vec::new();
    for &fold in folds {
        let start = Instant::now();
        let db = work.join(format!("bogofilter-fold{fold}"));
        let _ = std::fs::remove_dir_all(&db);
        std::fs::create_dir_all(&db).unwrap_or_else(|e| panic!("{}: {e}", db.display()));
        for (flag, class) in [("-s", Class::Spam), ("-n", Class::Ham)] {
            let files: Vec<&Path> = messages
                .iter()
                .filter(|m| m.fold != fold && m.class == class)
                .map(|m| m.path.as_path())
                .collect();
            for chunk in files.chunks(1000) {
                let status = Command::new("bogofilter")
                    .args(["-C", "-d"])
                    .arg(&db)
                    .args([flag, "-B"])
                    .args(chunk)
                    .status()
                    .expect("bogofilter runs");
                assert!(status.success(), "bogofilter {flag} failed: {status}");
            }
        }
        let test: Vec<&Message> = messages.iter().filter(|m| m.fold == fold).collect();
        let mut tally = Tally::default();
        for chunk in test.chunks(1000) {
            let output = Command::new("bogofilter")
                .args(["-C", "-d"])
                .arg(&db)
                .args(["-T", "-B"])
                .args(chunk.iter().map(|m| &m.path))
                .output()
                .expect("bogofilter runs");
            let text = String::from_utf8_lossy(&output.stdout);
            let lines: Vec<&str> = text.lines().collect();
            assert_eq!(
                lines.len(),
                chunk.len(),
                "one line per file from bogofilter -T -B"
            );
            for (m, line) in chunk.iter().zip(lines) {
                // "PATH S 0.999" (paths here have no spaces)
                let mut words = line.rsplitn(3, ' ');
                let _score = words.next();
                let verdict = match words.next() {
                    Some("S") => Verdict::Spam,
                    Some("H") => Verdict::Ham,
                    Some("U") => Verdict::Unsure,
                    other => panic!("unexpected bogofilter line {line:?} ({other:?})"),
                };
                tally.add(m.class, verdict);
            }
        }
        let _ = std::fs::remove_dir_all(&db);
        out.push((tally, start.elapsed()));
    }
    Some(out)
}

/// Runs both filters on `folds` and returns one result per fold.
pub fn run(
    messages: &[Message],
    folds: &[usize],
    setup: &Setup,
    work: &Path,
) -> Option<Vec<FoldResult>> {
    let bogo = run_bogofilter(messages, folds, work)?;
    let ptt = run_ptt(messages, folds, setup);
    Some(
        folds
            .iter()
            .zip(ptt)
            .zip(bogo)
            .map(
                |((&fold, (ptt, ptt_time)), (bogofilter, bogofilter_time))| FoldResult {
                    fold,
                    ptt,
                    bogofilter,
                    ptt_time,
                    bogofilter_time,
                },
            )
            .collect(),
    )
}

/// The per-fold table in Markdown, with a total row.
pub fn table(results: &[FoldResult]) -> (String, Tally, Tally) {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "| fold | messages (ham/spam) | filter | correct | unsure | ham→spam (FP) | spam→ham (FN) | time |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|");
    let (mut pt, mut bt) = (Tally::default(), Tally::default());
    let (mut ptime, mut btime) = (Duration::ZERO, Duration::ZERO);
    let row = |s: &mut String, fold: &str, name: &str, t: &Tally, d: Duration| {
        let _ = writeln!(
            s,
            "| {fold} | {} ({}/{}) | {name} | {} ({:.2}%) | {} | {} ({:.2}% of ham) | {} | {:.1} s |",
            t.total(),
            t.ham,
            t.spam,
            t.correct,
            100.0 * t.accuracy(),
            t.unsure,
            t.false_positive,
            100.0 * t.fp_rate(),
            t.false_negative,
            d.as_secs_f64()
        );
    };
    for r in results {
        row(&mut s, &r.fold.to_string(), "ptt", &r.ptt, r.ptt_time);
        row(
            &mut s,
            &r.fold.to_string(),
            "bogofilter",
            &r.bogofilter,
            r.bogofilter_time,
        );
        pt.merge(&r.ptt);
        bt.merge(&r.bogofilter);
        ptime += r.ptt_time;
        btime += r.bogofilter_time;
    }
    row(&mut s, "all", "ptt", &pt, ptime);
    row(&mut s, "all", "bogofilter", &bt, btime);
    (s, pt, bt)
}
