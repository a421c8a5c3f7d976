//! `ptt spam train|classify|stats` end to end, as a user runs them.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn ptt(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ptt"))
        .args(args)
        .output()
        .expect("ptt runs")
}

/// `ptt spam ACTION --db DB ARGS…`.
fn ptt_spam(action: &str, db: &str, args: &[&str]) -> Output {
    let mut all = vec!["spam", action, "--db", db];
    all.extend_from_slice(args);
    ptt(&all)
}

/// The test corpus under `dir` and `dir/spam.db` trained on all of it with
/// `args` added: (database, spam directory, ham directory).
fn trained(dir: &Path, args: &[&str]) -> (PathBuf, String, String) {
    let (spam, ham) = corpus(dir);
    let (spam, ham) = (spam.to_str().unwrap(), ham.to_str().unwrap());
    let db = dir.join("spam.db");
    let mut all = args.to_vec();
    all.extend(["--spam", spam, "--ham", ham]);
    let o = ptt_spam("train", db.to_str().unwrap(), &all);
    assert!(o.status.success(), "{:?}", text(&o));
    (db, spam.to_owned(), ham.to_owned())
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

const SPAM_WORDS: &[&str] = &[
    "cheap",
    "pills",
    "viagra",
    "winner",
    "lottery",
    "claim",
    "prize",
    "offer",
    "limited",
    "discount",
    "casino",
    "bonus",
    "unsubscribe",
    "guaranteed",
    "income",
    "mortgage",
];
const HAM_WORDS: &[&str] = &[
    "meeting", "notes", "tuesday", "project", "review", "patch", "kernel", "release", "thanks",
    "lunch", "agenda", "minutes", "build", "branch", "merge", "schedule",
];

/// A deterministic message from a vocabulary.
fn message(i: usize, words: &[&str], from: &str) -> String {
    let mut body = String::new();
    let mut x = i as u64 * 2_654_435_761 + 12345;
    for _ in 0..60 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let _ = write!(body, "{} ", words[(x % words.len() as u64) as usize]);
    }
    format!(
        "From: {from}\nTo: user@example.net\nSubject: {} {}\nMessage-ID: <{i}@{}>\n\n{body}\n",
        words[i % words.len()],
        words[(i * 7) % words.len()],
        from.rsplit('@').next().unwrap_or("x")
    )
}

fn corpus(dir: &Path) -> (PathBuf, PathBuf) {
    let spam = dir.join("spam");
    let ham = dir.join("ham");
    std::fs::create_dir_all(&spam).unwrap();
    std::fs::create_dir_all(&ham).unwrap();
    for i in 0..40 {
        std::fs::write(
            spam.join(format!("{i:03}.eml")),
            message(i, SPAM_WORDS, "promo@deals.example"),
        )
        .unwrap();
        std::fs::write(
            ham.join(format!("{i:03}.eml")),
            message(i, HAM_WORDS, "bob@work.example"),
        )
        .unwrap();
    }
    (spam, ham)
}

#[test]
fn train_classify_stats_untrain() {
    let dir = tempfile::tempdir().unwrap();
    let (spam, ham) = corpus(dir.path());
    let db = dir.path().join("spam.db");
    let dbs = db.to_str().unwrap();

    let o = ptt_spam(
        "train",
        dbs,
        &[
            "--spam",
            spam.to_str().unwrap(),
            "--ham",
            ham.to_str().unwrap(),
        ],
    );
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}{err}");
    assert!(out.contains("trained 40 spam and 40 ham"), "{out}");
    // No terminal here: no progress bar on standard error.
    assert!(!err.contains('['), "{err:?}");

    let o = ptt_spam("stats", dbs, &[]);
    let (out, _) = text(&o);
    assert!(o.status.success());
    assert!(
        out.contains("spam:     40 messages") && out.contains("ham:      40 messages"),
        "{out}"
    );

    let new_spam = dir.path().join("new-spam.eml");
    let new_ham = dir.path().join("new-ham.eml");
    std::fs::write(&new_spam, message(1000, SPAM_WORDS, "other@deals.example")).unwrap();
    std::fs::write(&new_ham, message(1001, HAM_WORDS, "carol@work.example")).unwrap();
    let o = ptt_spam(
        "classify",
        dbs,
        &[new_spam.to_str().unwrap(), new_ham.to_str().unwrap()],
    );
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    let verdict = |line: &str, file: &Path| -> (String, f64) {
        let rest = line
            .strip_prefix(&format!("{}: ", file.display()))
            .expect("FILE: first");
        let (v, score) = rest.split_once(' ').expect("verdict SCORE");
        (v.to_owned(), score.parse().expect("a number"))
    };
    let (v, score) = verdict(lines[0], &new_spam);
    assert!(v == "spam" && score >= 0.9, "{out}");
    let (v, score) = verdict(lines[1], &new_ham);
    assert!(v == "ham" && score <= 0.2, "{out}");

    let o = ptt_spam("classify", dbs, &["--headers", new_spam.to_str().unwrap()]);
    let (out, _) = text(&o);
    assert!(out.starts_with("X-Spam-Status: Yes, score="), "{out}");
    assert!(out.contains("X-Spam-Flag: YES"), "{out}");

    // Untraining what was trained gives back an empty database.
    let o = ptt_spam(
        "train",
        dbs,
        &[
            "--untrain",
            "--spam",
            spam.to_str().unwrap(),
            "--ham",
            ham.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{:?}", text(&o));
    let (out, _) = text(&ptt_spam("stats", dbs, &[]));
    assert!(
        out.contains("spam:     0 messages") && out.contains("tokens:   0"),
        "{out}"
    );
}

#[test]
fn foreign_and_corrupt_databases_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (spam, _) = corpus(dir.path());
    let msg = spam.join("000.eml");
    let foreign = dir.path().join("foreign.db");
    let mut page = vec![0u8; 4096];
    page[12..16].copy_from_slice(&0x0005_3162u32.to_le_bytes());
    std::fs::write(&foreign, &page).unwrap();
    let o = ptt_spam(
        "classify",
        foreign.to_str().unwrap(),
        &[msg.to_str().unwrap()],
    );
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        err.contains("not a ptt token store") && err.contains("Berkeley DB"),
        "{err}"
    );

    let db = dir.path().join("spam.db");
    let o = ptt_spam(
        "train",
        db.to_str().unwrap(),
        &["--spam", spam.to_str().unwrap()],
    );
    assert!(o.status.success());
    let mut bytes = std::fs::read(&db).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 1;
    std::fs::write(&db, &bytes).unwrap();
    let o = ptt_spam("stats", db.to_str().unwrap(), &[]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(2));
    assert!(err.contains("checksum"), "{err}");
    // Training onto a corrupt database refuses too, and leaves it as it was.
    let o = ptt_spam(
        "train",
        db.to_str().unwrap(),
        &["--spam", spam.to_str().unwrap()],
    );
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(std::fs::read(&db).unwrap(), bytes);

    let o = ptt_spam(
        "classify",
        dir.path().join("missing.db").to_str().unwrap(),
        &[msg.to_str().unwrap()],
    );
    assert_eq!(o.status.code(), Some(2));
    let o = ptt_spam(
        "classify",
        db.to_str().unwrap(),
        &["--ham-cutoff", "0.95", msg.to_str().unwrap()],
    );
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn hostile_messages_are_classified() {
    let dir = tempfile::tempdir().unwrap();
    let (spam, ham) = corpus(dir.path());
    let db = dir.path().join("spam.db");
    let dbs = db.to_str().unwrap();
    assert!(
        ptt_spam(
            "train",
            dbs,
            &[
                "--spam",
                spam.to_str().unwrap(),
                "--ham",
                ham.to_str().unwrap()
            ]
        )
        .status
        .success()
    );

    let mut files = Vec::new();
    let mut add = |name: &str, bytes: Vec<u8>| {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        files.push(p);
    };
    // 10 MB base64 attachment, with an executable after it.
    let mut big = String::from(
        "From: a@b.example\nSubject: files\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"B\"\n\n--B\nContent-Type: text/plain\n\nhere\n--B\nContent-Type: application/pdf; name=\"a.pdf\"\nContent-Transfer-Encoding: base64\n\n",
    );
    let line = "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ejAxMjM0\n";
    while big.len() < 10 << 20 {
        big.push_str(line);
    }
    big.push_str("--B\nContent-Type: application/octet-stream; name=\"setup.exe\"\nContent-Transfer-Encoding: base64\n\nTVqQAAMAAAAEAAAA\n--B--\n");
    add("big.eml", big.into_bytes());
    // A header of 2 MB and thousands of header fields.
    let mut huge = format!("Subject: {}\n", "x ".repeat(1 << 20));
    for i in 0..20_000 {
        let _ = writeln!(huge, "X-H{i}: v{i}");
    }
    huge.push_str("\nbody\n");
    add("huge-header.eml", huge.into_bytes());
    // Malformed MIME: unterminated boundaries, nesting, bad encodings.
    let mut nested = String::from("Content-Type: multipart/mixed; boundary=\"a\"\n\n");
    for i in 0..500 {
        let _ = write!(
            nested,
            "--a\nContent-Type: multipart/mixed; boundary=\"a{i}\"\nContent-Transfer-Encoding: base64\n\n=?x?=%%%\n"
        );
    }
    add("malformed.eml", nested.into_bytes());
    // Binary garbage.
    add(
        "garbage.bin",
        (0..1_000_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
            .collect(),
    );
    add("empty.eml", Vec::new());

    let mut args = vec!["spam", "classify", "--db", dbs];
    let names: Vec<String> = files
        .iter()
        .map(|p| p.to_str().unwrap().to_owned())
        .collect();
    args.extend(names.iter().map(String::as_str));
    let o = ptt(&args);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), files.len(), "{out}");
    assert!(
        lines[0].starts_with(&format!("{}: spam 1.0000", files[0].display())),
        "{out}"
    );
    for (line, f) in lines.iter().zip(&files) {
        assert!(line.starts_with(&format!("{}: ", f.display())), "{line}");
    }
}

/// A database made with `--osb-window 2` keeps that window: `stats` shows
/// it, `classify` tokenizes with it, and training it with another window is
/// refused without touching it.
#[test]
fn osb_window_is_kept_with_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let (db, spam, ham) = trained(dir.path(), &["--osb-window", "2"]);
    let (dbs, spam, ham) = (db.to_str().unwrap(), spam.as_str(), ham.as_str());
    let (out, _) = text(&ptt_spam("stats", dbs, &[]));
    assert!(out.contains("window:   OSB 2"), "{out}");

    let before = std::fs::read(&db).unwrap();
    let o = ptt_spam("train", dbs, &["--osb-window", "5", "--spam", spam]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("OSB window 2, not 5"), "{err}");
    assert_eq!(
        std::fs::read(&db).unwrap(),
        before,
        "refused training changed the database"
    );
    // Without --osb-window, more training keeps the database's window.
    let o = ptt_spam("train", dbs, &["--ham", ham]);
    assert!(o.status.success(), "{:?}", text(&o));
    let (out, _) = text(&ptt_spam("stats", dbs, &[]));
    assert!(
        out.contains("window:   OSB 2") && out.contains("ham:      80 messages"),
        "{out}"
    );

    let new_spam = dir.path().join("new-spam.eml");
    std::fs::write(&new_spam, message(1000, SPAM_WORDS, "other@deals.example")).unwrap();
    let o = ptt_spam("classify", dbs, &[new_spam.to_str().unwrap()]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert!(out.contains(": spam "), "{out}");
}

/// `ptt spam classify … | head -0`: the verdicts go to a reader already
/// gone; ptt stops quietly with the status of a command killed by SIGPIPE.
#[test]
fn closed_standard_output_ends_classify_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let (db, spam, _) = trained(dir.path(), &[]);
    let dbs = db.to_str().unwrap();
    let files: Vec<PathBuf> = std::fs::read_dir(&spam)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    // One message from standard input, sent only once the reader is gone,
    // so that ptt cannot have written before.
    let mut child = Command::new(env!("CARGO_BIN_EXE_ptt"))
        .args(["spam", "classify", "--db", dbs])
        .args(&files)
        .arg("-")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn ptt");
    drop(child.stdout.take());
    let message = message(2000, SPAM_WORDS, "other@deals.example");
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), message.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(141), "{stderr}");
    assert!(stderr.is_empty(), "{stderr}");
}
