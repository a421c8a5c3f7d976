//! k-fold cross-validation of ptt-spam against bogofilter, both trained and
//! tested on the same folds in one run.
//!
//! ```text
//! cargo run --release -p ptt-spam --example crossval -- [CORPUS] [FOLDS] [--prune N] [--osb-window N]
//! ```
//!
//! CORPUS defaults to `../shared/corpora/spamassassin-public-corpus`
//! (directories named `spam*` hold spam, the others ham); FOLDS to 5. With
//! `--prune N`, each fold's database drops the tokens seen in fewer than N
//! training messages (`ptt spam train --prune N`); `--osb-window N` sets
//! the tokenizer's OSB window (default 2).
//! Prints a Markdown table: correct / unsure / ham flagged as spam / spam
//! passed as ham, per fold and in total. The classifier runs with
//! `Params::default()`: nothing is tuned on the folds.

#[path = "../tests/harness/mod.rs"]
mod crossval;

use std::path::PathBuf;
use std::process::ExitCode;

use ptt_spam::Tokenizer;

fn main() -> ExitCode {
    let usage = |what: &str| {
        eprintln!(
            "crossval: {what}\nusage: crossval [CORPUS] [FOLDS] [--prune N] [--osb-window N]"
        );
        ExitCode::from(2)
    };
    let mut setup = crossval::Setup::default();
    let mut positional = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut number = || args.next().and_then(|v| v.parse::<u32>().ok());
        match arg.as_str() {
            "--prune" => match number() {
                Some(n) => setup.prune = Some(n),
                None => return usage("--prune needs a number"),
            },
            "--osb-window" => match number() {
                Some(n @ 1..=5) => setup.tokenizer = Tokenizer::default().osb_window(n as usize),
                _ => return usage("--osb-window needs a number from 1 to 5"),
            },
            _ => positional.push(arg),
        }
    }
    let mut positional = positional.into_iter();
    let root = positional
        .next()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("../shared/corpora/spamassassin-public-corpus"));
    let k: usize = match positional.next().map(|s| s.parse()) {
        None => 5,
        Some(Ok(k)) if k >= 2 => k,
        Some(_) => return usage("FOLDS must be a number of at least 2"),
    };
    if !root.is_dir() {
        return usage(&format!("{} is not a directory", root.display()));
    }
    let messages = crossval::load(&root, k, 1);
    let work = std::env::temp_dir().join(format!("ptt-spam-crossval-{}", std::process::id()));
    let folds: Vec<usize> = (0..k).collect();
    let Some(results) = crossval::run(&messages, &folds, &setup, &work) else {
        eprintln!("crossval: bogofilter is not installed (apt-get install bogofilter)");
        return ExitCode::from(2);
    };
    let _ = std::fs::remove_dir_all(&work);
    let (table, ptt, bogo) = crossval::table(&results);
    println!(
        "{k}-fold cross-validation on {} ({} messages)\n",
        root.display(),
        messages.len()
    );
    println!("{table}");
    println!(
        "ptt: {} correct, {:.2}% of ham flagged; bogofilter: {} correct, {:.2}% of ham flagged",
        ptt.correct,
        100.0 * ptt.fp_rate(),
        bogo.correct,
        100.0 * bogo.fp_rate()
    );
    ExitCode::SUCCESS
}
