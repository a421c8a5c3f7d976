//! k-fold cross-validation of ptt-spam against bogofilter, both trained and
//! tested on the same folds in one run.
//!
//! ```text
//! cargo run --release -p ptt-spam --example crossval -- [CORPUS] [FOLDS] [--prune N] [--osb-window N] [--ablation]
//! ```
//!
//! CORPUS defaults to `../shared/corpora/spamassassin-public-corpus`
//! (directories named `spam*` hold spam, the others ham); FOLDS to 5. With
//! `--prune N`, each fold's database drops the tokens seen in fewer than N
//! training messages (`ptt spam train --prune N`); `--osb-window N` sets
//! the tokenizer's OSB window (default 2).
//! Prints a Markdown table: correct / unsure / ham flagged as spam / spam
//! passed as ham, per fold and in total; then the same for a time-ordered
//! split (each filter trained on the older 80% of each class by `Date:`,
//! tested on the newest 20%), which is how a filter meets mail in
//! deployment and what every change is judged on. `--ablation` adds, on
//! that split, ptt with each family of tokens left out in turn. The classifier runs with
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
    let mut ablation = false;
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
            "--ablation" => ablation = true,
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
    // The time-ordered split: train on the past, test on the future.
    let by_date = crossval::load_by_date(&root, 20);
    let Some(results) = crossval::run(&by_date, &[crossval::NEWER], &setup, &work) else {
        return ExitCode::from(2);
    };
    let _ = std::fs::remove_dir_all(&work);
    let (table, ptt, bogo) = crossval::table(&results);
    let test = by_date.iter().filter(|m| m.fold == crossval::NEWER).count();
    println!(
        "\nTime-ordered split: trained on the older {} messages, tested on the newest {test} (20% of each class by Date:)\n",
        by_date.len() - test
    );
    println!("{table}");
    println!(
        "time-ordered: ptt: {} correct ({:.2}%), {:.2}% of ham flagged; bogofilter: {} correct ({:.2}%), {:.2}% of ham flagged",
        ptt.correct,
        100.0 * ptt.accuracy(),
        100.0 * ptt.fp_rate(),
        bogo.correct,
        100.0 * bogo.accuracy(),
        100.0 * bogo.fp_rate()
    );
    if ablation {
        // What each family of tokens is worth on the time-ordered split:
        // the whole tokenizer, then each family left out in turn.
        println!(
            "\nAblation on the time-ordered split (ptt only; each row leaves one family out):\n"
        );
        println!("| left out | correct | unsure | ham→spam | spam→ham |\n|---|---|---|---|---|");
        let families: [(&str, &[&str]); 13] = [
            ("nothing", &[]),
            ("body words and pairs", &[""]),
            ("url: tld: (URL hosts)", &["url", "tld"]),
            ("subj:", &["subj"]),
            ("from: to:", &["from", "to"]),
            ("rcvd: (Received hosts)", &["rcvd"]),
            ("ct: cs: mime: (types, charsets)", &["ct", "cs", "mime"]),
            ("xm: (mailer)", &["xm"]),
            ("mid: (Message-ID domain)", &["mid"]),
            ("h: (other header values)", &["h"]),
            ("hn: (header names)", &["hn"]),
            ("html: att:", &["html", "att"]),
            (
                "all of subj: ct: cs: mime: xm: mid: h: hn: html: att:",
                &[
                    "subj", "ct", "cs", "mime", "xm", "mid", "h", "hn", "html", "att",
                ],
            ),
        ];
        for (label, prefixes) in families {
            let setup = crossval::Setup {
                without: prefixes.iter().map(|p| p.to_string()).collect(),
                tokenizer: setup.tokenizer.clone(),
                prune: setup.prune,
                ..crossval::Setup::default()
            };
            let tallies = crossval::run_ptt(&by_date, &[crossval::NEWER], &setup);
            let t = &tallies[0].0;
            println!(
                "| {label} | {} ({:.2}%) | {} | {} | {} |",
                t.correct,
                100.0 * t.accuracy(),
                t.unsure,
                t.false_positive,
                t.false_negative
            );
        }
    }
    ExitCode::SUCCESS
}
