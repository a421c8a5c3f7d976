//! k-fold cross-validation of ptt-spam against bogofilter, both trained and
//! tested on the same folds in one run.
//!
//! ```text
//! cargo run --release -p ptt-spam --example crossval -- [CORPUS] [FOLDS]
//! ```
//!
//! CORPUS defaults to `../shared/corpora/spamassassin-public-corpus`
//! (directories named `spam*` hold spam, the others ham); FOLDS to 5.
//! Prints a Markdown table: correct / unsure / ham flagged as spam / spam
//! passed as ham, per fold and in total. The classifier runs with
//! `Params::default()`: nothing is tuned on the folds.

#[path = "../tests/harness/mod.rs"]
mod crossval;

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let root = args
        .next()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("../shared/corpora/spamassassin-public-corpus"));
    let k: usize = match args.next().map(|s| s.parse()) {
        None => 5,
        Some(Ok(k)) if k >= 2 => k,
        Some(_) => {
            eprintln!("crossval: FOLDS must be a number of at least 2");
            return ExitCode::from(2);
        }
    };
    if !root.is_dir() {
        eprintln!("crossval: {} is not a directory", root.display());
        return ExitCode::from(2);
    }
    let messages = crossval::load(&root, k, 1);
    let work = std::env::temp_dir().join(format!("ptt-spam-crossval-{}", std::process::id()));
    let folds: Vec<usize> = (0..k).collect();
    let params = ptt_spam::Params::default();
    let Some(results) = crossval::run(&messages, &folds, &params, &work) else {
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
