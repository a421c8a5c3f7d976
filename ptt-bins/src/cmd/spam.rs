//! `ptt spam`: train, run and inspect the Bayesian spam filter (ptt-spam).

use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};

use ptt_spam::{Class, DEFAULT_OSB_WINDOW, Params, TokenDb, Tokenizer, Tokens, Verdict, store};

use crate::exit::{Failure, Outcome};

/// Train, run and inspect the Bayesian spam filter.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    ptt spam train --db spam.db --spam corpus/spam --ham corpus/ham\n  \
    ptt spam classify --db spam.db new/*.eml\n  \
    ptt spam train --db spam.db --untrain --ham wrongly-trained.eml\n  \
    ptt spam stats --db spam.db")]
pub(crate) struct Args {
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, clap::Subcommand)]
enum Action {
    /// Add messages (files, or directories of one message per file) to the
    /// token database as spam or as ham; the database is created if missing
    /// and replaced atomically.
    #[command(
        after_help = "Example:\n  ptt spam train --db spam.db --spam corpus/spam --ham corpus/ham"
    )]
    Train(Train),
    /// Classify messages: one line `FILE: spam|ham|unsure SCORE` each.
    #[command(
        after_help = "Example:\n  ptt spam classify --db spam.db msg1.eml msg2.eml\n  \
        ptt spam classify --db spam.db --headers - < msg.eml"
    )]
    Classify(Classify),
    /// Show what a token database holds.
    #[command(after_help = "Example:\n  ptt spam stats --db spam.db")]
    Stats(Stats),
}

#[derive(Debug, clap::Args)]
struct Train {
    /// The token database file.
    #[arg(long, value_name = "DB")]
    db: PathBuf,
    /// Spam messages: files, or directories of one message per file.
    #[arg(long, value_name = "DIR|FILE", num_args = 1.., required_unless_present = "ham")]
    spam: Vec<PathBuf>,
    /// Ham (wanted) messages: files, or directories of one message per file.
    #[arg(long, value_name = "DIR|FILE", num_args = 1..)]
    ham: Vec<PathBuf>,
    /// Undo an earlier training of these messages as the given class (a
    /// user's correction of a wrong training).
    #[arg(long)]
    untrain: bool,
    /// Before saving, drop tokens seen in fewer than MIN messages: a table
    /// several times smaller and faster to load, at a small cost in accuracy;
    /// counts dropped are lost to later training.
    #[arg(long, value_name = "MIN")]
    prune: Option<u32>,
    /// The OSB window of a new database: each body word is paired with each
    /// of the N-1 words before it (default 2: on mail from a later period
    /// than the training, it was right more often than 5 and flagged no
    /// ham). A database keeps the window it was created with (older ones,
    /// 5), and `classify` tokenizes with it.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u8).range(1..=5))]
    osb_window: Option<u8>,
}

#[derive(Debug, clap::Args)]
struct Classify {
    /// The token database file.
    #[arg(long, value_name = "DB")]
    db: PathBuf,
    /// Print the X-Spam-Status / X-Spam-Flag header fields for each message
    /// instead of the one-line verdict.
    #[arg(long)]
    headers: bool,
    /// Score at or above which a message is spam.
    #[arg(long, value_name = "SCORE", default_value_t = Params::default().spam_cutoff)]
    spam_cutoff: f64,
    /// Score at or under which a message is ham (between: unsure).
    #[arg(long, value_name = "SCORE", default_value_t = Params::default().ham_cutoff)]
    ham_cutoff: f64,
    /// Worker threads for reading, tokenizing and classifying (default:
    /// the cores available, at most 8); output stays in the files' order.
    #[arg(long, short = 'j', value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    jobs: Option<u16>,
    /// Messages to classify (`-` reads one from standard input).
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
}

#[derive(Debug, clap::Args)]
struct Stats {
    /// The token database file.
    #[arg(long, value_name = "DB")]
    db: PathBuf,
}

pub(crate) fn run(args: Args) -> Outcome {
    match args.action {
        Action::Train(t) => train(t),
        Action::Classify(c) => classify(c),
        Action::Stats(s) => stats(s),
    }
}

fn load(db: &Path) -> Result<TokenDb, Failure> {
    store::load(db).map_err(Failure::input)
}

/// Files named, with directories expanded (recursively, sorted, hidden
/// entries skipped).
fn expand(paths: &[PathBuf], out: &mut Vec<PathBuf>) -> Result<(), Failure> {
    for path in paths {
        let meta = std::fs::metadata(path)
            .map_err(|e| Failure::input(format!("{}: {e}", path.display())))?;
        if meta.is_dir() {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
                .map_err(|e| Failure::input(format!("{}: {e}", path.display())))?
                .filter_map(|e| e.ok())
                .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
                .map(|e| e.path())
                .collect();
            entries.sort();
            expand(&entries, out)?;
        } else {
            out.push(path.clone());
        }
    }
    Ok(())
}

fn default_workers() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(8)
}

/// Reads one message (`-` is standard input).
fn read_message(path: &Path) -> Result<Vec<u8>, String> {
    if path.as_os_str() == "-" {
        let mut buf = Vec::new();
        std::io::stdin()
            .read_to_end(&mut buf)
            .map_err(|e| format!("standard input: {e}"))?;
        Ok(buf)
    } else {
        std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))
    }
}

/// Maps `f` over `files` (or any items) on `n` threads, keeping their order. Threads take
/// the next few files whenever they are free, so a thread that gets less of
/// the CPU (a busy machine) does less of the work instead of holding up the
/// end.
fn par_map<I: Sync, T: Send>(files: &[I], n: usize, f: impl Fn(&I) -> T + Sync) -> Vec<T> {
    if n <= 1 || files.len() < 16 {
        return files.iter().map(&f).collect();
    }
    const BATCH: usize = 4;
    let next = std::sync::atomic::AtomicUsize::new(0);
    let (f, next) = (&f, &next);
    let mut done: Vec<(usize, T)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..n.min(files.len().div_ceil(BATCH)))
            .map(|_| {
                scope.spawn(move || {
                    let mut out = Vec::new();
                    loop {
                        let start = next.fetch_add(BATCH, std::sync::atomic::Ordering::Relaxed);
                        let Some(batch) = files.get(start..(start + BATCH).min(files.len())) else {
                            break;
                        };
                        if batch.is_empty() {
                            break;
                        }
                        out.extend(batch.iter().enumerate().map(|(i, p)| (start + i, f(p))));
                    }
                    out
                })
            })
            .collect();
        let mut all = Vec::with_capacity(files.len());
        for h in handles {
            match h.join() {
                Ok(v) => all.extend(v),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        all
    });
    done.sort_unstable_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, t)| t).collect()
}

/// Reads and tokenizes `files` on all cores, keeping their order.
fn tokenize_all(tokenizer: &Tokenizer, files: &[PathBuf]) -> Vec<Result<Tokens, String>> {
    par_map(files, default_workers(), |p: &PathBuf| {
        read_message(p).map(|raw| tokenizer.tokenize(&raw))
    })
}

/// A progress bar on standard error, drawn only when it is a terminal.
struct Progress {
    total: usize,
    done: usize,
    on: bool,
}

impl Progress {
    fn new(total: usize) -> Self {
        Progress {
            total,
            done: 0,
            on: std::io::stderr().is_terminal(),
        }
    }

    fn advance(&mut self, n: usize, what: &str) {
        self.done += n;
        if !self.on || self.total == 0 {
            return;
        }
        let width = 40;
        let filled = width * self.done / self.total;
        let mut err = std::io::stderr().lock();
        let _ = write!(
            err,
            "\r[{}{}] {}/{} {what}",
            "=".repeat(filled),
            " ".repeat(width - filled),
            self.done,
            self.total
        );
        let _ = err.flush();
    }

    fn finish(&self) {
        if self.on && self.total > 0 {
            let _ = writeln!(std::io::stderr());
        }
    }
}

fn train(args: Train) -> Outcome {
    let window = args.osb_window.map(usize::from);
    let mut db = match std::fs::metadata(&args.db) {
        Ok(_) => load(&args.db)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            TokenDb::with_osb_window(window.unwrap_or(DEFAULT_OSB_WINDOW))
        }
        Err(e) => return Err(Failure::input(format!("{}: {e}", args.db.display()))),
    };
    if let Some(w) = window
        && w != db.osb_window()
    {
        return Err(Failure::input(format!(
            "{} holds tokens of OSB window {}, not {w}: a database keeps the window it was \
             created with (train a new one to change it)",
            args.db.display(),
            db.osb_window()
        )));
    }
    let mut jobs = Vec::new();
    for (class, paths) in [(Class::Spam, &args.spam), (Class::Ham, &args.ham)] {
        let mut files = Vec::new();
        expand(paths, &mut files)?;
        jobs.push((class, files));
    }
    let total = jobs.iter().map(|(_, f)| f.len()).sum();
    let mut progress = Progress::new(total);
    let tokenizer = Tokenizer::default().osb_window(db.osb_window());
    let mut counts = [0usize; 2];
    for (class, files) in &jobs {
        let label = match class {
            Class::Spam => "spam",
            Class::Ham => "ham",
        };
        for batch in files.chunks(256) {
            for tokens in tokenize_all(&tokenizer, batch) {
                let tokens = tokens.map_err(|e| {
                    progress.finish();
                    Failure::input(format!(
                        "{e} (database {} left unchanged)",
                        args.db.display()
                    ))
                })?;
                if args.untrain {
                    db.untrain(tokens.hashes(), *class);
                } else {
                    db.train(tokens.hashes(), *class);
                }
            }
            progress.advance(batch.len(), label);
        }
        counts[usize::from(*class == Class::Ham)] += files.len();
    }
    progress.finish();
    match args.prune {
        Some(min) => db.prune(min),
        None if args.untrain => db.compact(),
        None => {}
    }
    store::save(&db, &args.db).map_err(Failure::input)?;
    println!(
        "{} {} spam and {} ham messages; {} now holds {} spam, {} ham, {} tokens",
        if args.untrain { "untrained" } else { "trained" },
        counts[0],
        counts[1],
        args.db.display(),
        db.spam_messages(),
        db.ham_messages(),
        db.token_count()
    );
    Ok(())
}

fn classify(args: Classify) -> Outcome {
    let ok = |v: f64| (0.0..=1.0).contains(&v);
    if !ok(args.spam_cutoff) || !ok(args.ham_cutoff) || args.ham_cutoff > args.spam_cutoff {
        return Err(Failure::input(format!(
            "cutoffs must satisfy 0 <= --ham-cutoff ({}) <= --spam-cutoff ({}) <= 1",
            args.ham_cutoff, args.spam_cutoff
        )));
    }
    if args.files.iter().filter(|f| f.as_os_str() == "-").count() > 1 {
        return Err(Failure::input("standard input (-) can be named only once"));
    }
    let params = Params {
        spam_cutoff: args.spam_cutoff,
        ham_cutoff: args.ham_cutoff,
        clues: if args.headers {
            Params::default().clues
        } else {
            0
        },
        ..Params::default()
    };
    // The window the database was trained with, from its header, so that
    // tokenizing can start while the rest loads (a bad file is load's to
    // report).
    let window = store::peek_osb_window(&args.db).unwrap_or(DEFAULT_OSB_WINDOW);
    let tokenizer = Tokenizer::default()
        .explain(args.headers)
        .osb_window(window);
    let workers = args.jobs.map_or_else(default_workers, usize::from);
    // With several threads and no standard input to wait on, the database
    // loads on a thread of its own while the workers start reading and
    // tokenizing; messages tokenized before it is ready are classified once
    // it is, the others straight away.
    let overlap = workers > 1 && !args.files.iter().any(|f| f.as_os_str() == "-");
    // The store is opened again to load it: if it was replaced in between
    // (a retrained database renamed over it), its window may differ.
    let load_for_window = || -> Result<TokenDb, String> {
        let db = store::load(&args.db).map_err(|e| e.to_string())?;
        if db.osb_window() != window {
            return Err(format!(
                "{} was replaced while it was read (OSB window {window}, now {}): run again",
                args.db.display(),
                db.osb_window()
            ));
        }
        Ok(db)
    };
    let db: std::sync::OnceLock<Result<TokenDb, String>> = std::sync::OnceLock::new();
    if !overlap {
        let _ = db.set(Ok(load_for_window().map_err(Failure::input)?));
    }
    let line = |db: &TokenDb, tokens: &Tokens, path: &Path| {
        let result = ptt_spam::classify(db, tokens, &params);
        if args.headers {
            result.headers().replace("\r\n", "\n")
        } else {
            let verdict = match result.verdict {
                Verdict::Spam => "spam",
                Verdict::Ham => "ham",
                _ => "unsure",
            };
            format!("{}: {verdict} {:.4}\n", path.display(), result.score)
        }
    };
    /// One message after the first pass.
    enum Step {
        /// Its line, or why it could not be read.
        Done(Result<String, String>),
        /// Tokenized before the database was ready.
        Waiting(Tokens),
    }
    // Read, tokenize, classify and format; print in order.
    let mut steps = std::thread::scope(|scope| {
        if overlap {
            scope.spawn(|| db.set(load_for_window()));
        }
        par_map(&args.files, workers, |path: &PathBuf| {
            let raw = match read_message(path) {
                Ok(raw) => raw,
                Err(e) => return Step::Done(Err(e)),
            };
            let tokens = tokenizer.tokenize(&raw);
            match db.get() {
                Some(Ok(db)) => Step::Done(Ok(line(db, &tokens, path))),
                _ => Step::Waiting(tokens),
            }
        })
    });
    let db = match db.get() {
        Some(Ok(db)) => db,
        Some(Err(e)) => return Err(Failure::input(e)),
        None => return Err(Failure::input("the token database was not loaded")),
    };
    let waiting: Vec<usize> = (0..steps.len())
        .filter(|&i| matches!(steps.get(i), Some(Step::Waiting(_))))
        .collect();
    let late = par_map(&waiting, workers, |&i| {
        match (steps.get(i), args.files.get(i)) {
            (Some(Step::Waiting(tokens)), Some(path)) => line(db, tokens, path),
            _ => String::new(),
        }
    });
    for (i, l) in waiting.into_iter().zip(late) {
        if let Some(step) = steps.get_mut(i) {
            *step = Step::Done(Ok(l));
        }
    }
    let lines = steps.into_iter().map(|step| match step {
        Step::Done(r) => r,
        Step::Waiting(_) => Err(String::from("message left unclassified")),
    });
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut failed = 0usize;
    for line in lines {
        match line {
            Ok(line) => {
                // A closed output (piped into head) stops ptt quietly.
                out.write_all(line.as_bytes()).map_err(Failure::stdout)?;
            }
            Err(e) => {
                eprintln!("ptt: {e}");
                failed += 1;
            }
        }
    }
    out.flush().map_err(Failure::stdout)?;
    if failed > 0 {
        return Err(Failure::input(format!(
            "{failed} of {} messages could not be read",
            args.files.len()
        )));
    }
    Ok(())
}

fn stats(args: Stats) -> Outcome {
    let db = load(&args.db)?;
    let size = std::fs::metadata(&args.db).map(|m| m.len()).unwrap_or(0);
    println!("database: {}", args.db.display());
    println!("format:   ptt token store version {}", store::VERSION);
    println!("size:     {size} bytes");
    println!("spam:     {} messages", db.spam_messages());
    println!("ham:      {} messages", db.ham_messages());
    println!("tokens:   {}", db.token_count());
    println!("window:   OSB {}", db.osb_window());
    Ok(())
}
