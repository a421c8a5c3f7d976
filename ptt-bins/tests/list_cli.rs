//! The list verbs end to end: images from `ptt create` checked with
//! `fsck.fat -n` and read with mtools; files written with mtools read by
//! `ptt show`; the clear errors; and the same verbs on a directory.

use std::path::Path;
use std::process::Command;

fn ptt(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ptt"))
        .args(args)
        .output()
        .expect("run ptt");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn ok(args: &[&str]) -> String {
    let (code, out, err) = ptt(args);
    assert_eq!(code, 0, "ptt {args:?}: {err}{out}");
    out
}

fn fails(args: &[&str], wanted: &str) {
    let (code, out, err) = ptt(args);
    assert_eq!(code, 2, "ptt {args:?} should fail: {out}{err}");
    assert!(
        err.contains(wanted),
        "ptt {args:?}: {err:?} lacks {wanted:?}"
    );
    assert_eq!(err.lines().count(), 1, "one line: {err}");
}

fn tool(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd)
        .args(args)
        .env("MTOOLS_SKIP_CHECK", "1")
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{cmd} {args:?}:\n{text}");
    text
}

fn fsck(img: &Path) {
    tool("fsck.fat", &["-n", img.to_str().unwrap()]);
}

#[test]
fn the_readme_session_on_an_image() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("lipap.img");
    let i = img.to_str().unwrap();
    ok(&["create", i]);
    fsck(&img);
    ok(&[
        "add",
        i,
        "--domain",
        "mailingl.st",
        "ptt",
        "--moderator",
        "foo@bar.com",
    ]);
    // The original README's form: no NAME when the domain has one list.
    ok(&["add-moderator", i, "--domain", "mailingl.st", "bar@foo.com"]);
    ok(&[
        "add",
        i,
        "--domain",
        "mailingl.st",
        "ptt-dev",
        "--moderator",
        "foo@bar.com",
        "--subscriber",
        "a@example.org",
        "--policy",
        "open",
    ]);
    ok(&[
        "subscribe",
        i,
        "--domain",
        "mailingl.st",
        "ptt-dev",
        "b@example.net",
        "c@example.net",
    ]);
    ok(&[
        "unsubscribe",
        i,
        "--domain",
        "mailingl.st",
        "ptt-dev",
        "c@example.net",
    ]);
    ok(&[
        "rem-moderator",
        i,
        "--domain",
        "mailingl.st",
        "ptt",
        "bar@foo.com",
    ]);
    fsck(&img);

    let root = tool("mdir", &["-i", i, "::/"]);
    for name in ["bounces", "temp", "lists", "tmp"] {
        assert!(root.contains(name), "{root}");
    }
    let lists = tool("mdir", &["-i", i, "::/lists"]);
    assert!(
        lists.contains("ptt.json") && lists.contains("ptt-dev.json"),
        "{lists}"
    );
    let json = tool("mtype", &["-i", i, "::/lists/ptt-dev.json"]);
    assert!(
        json.contains("\"b@example.net\"") && !json.contains("c@example.net"),
        "{json}"
    );
    assert!(json.contains("\"policy\": \"open\""), "{json}");
    let ptt_json = tool("mtype", &["-i", i, "::/lists/ptt.json"]);
    assert!(
        ptt_json.contains("foo@bar.com") && !ptt_json.contains("bar@foo.com"),
        "{ptt_json}"
    );

    // Edit a list with mtools; ptt reads the edit.
    let edited = json.replace(
        "\"b@example.net\"",
        "\"b@example.net\",\n    \"mtools@example.com\"",
    );
    let file = dir.path().join("ptt-dev.json");
    std::fs::write(&file, edited).unwrap();
    tool(
        "mcopy",
        &[
            "-o",
            "-i",
            i,
            file.to_str().unwrap(),
            "::/lists/ptt-dev.json",
        ],
    );
    fsck(&img);
    let shown = ok(&["show", i, "--domain", "mailingl.st", "ptt-dev"]);
    assert!(
        shown.contains("mtools@example.com") && shown.contains("subscribers (3)"),
        "{shown}"
    );
    let summary = ok(&["show", i]);
    assert!(
        summary.contains("ptt@mailingl.st  policy subscribers  0 subscriber(s)  1 moderator(s)"),
        "{summary}"
    );
    assert!(
        summary.contains("ptt-dev@mailingl.st  policy open  3 subscriber(s)"),
        "{summary}"
    );
    // ptt keeps working on the image mtools wrote to.
    ok(&[
        "subscribe",
        i,
        "--domain",
        "mailingl.st",
        "ptt-dev",
        "d@example.net",
    ]);
    fsck(&img);
}

#[test]
fn clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("l.img");
    let i = img.to_str().unwrap();
    ok(&["create", i, "--size", "40M"]);
    fails(&["create", i], "exists");
    fails(
        &[
            "create",
            dir.path().join("small.img").to_str().unwrap(),
            "--size",
            "1M",
        ],
        "image full",
    );
    ok(&[
        "add",
        i,
        "--domain",
        "example.org",
        "l",
        "--moderator",
        "m@example.org",
    ]);
    fails(
        &[
            "add",
            i,
            "--domain",
            "example.org",
            "l",
            "--moderator",
            "m@example.org",
        ],
        "list \"l\" exists",
    );
    fails(
        &[
            "subscribe",
            i,
            "--domain",
            "example.org",
            "nope",
            "a@example.org",
        ],
        "unknown list",
    );
    fails(
        &[
            "subscribe",
            i,
            "--domain",
            "example.com",
            "l",
            "a@example.org",
        ],
        "unknown list",
    );
    fails(
        &[
            "subscribe",
            i,
            "--domain",
            "example.org",
            "l",
            "not-an-address",
        ],
        "bad address",
    );
    fails(
        &[
            "add",
            i,
            "--domain",
            "example.org",
            "x",
            "--moderator",
            "bad@",
        ],
        "bad address",
    );
    fails(
        &[
            "add",
            i,
            "--domain",
            "example.org",
            "Bad Name",
            "--moderator",
            "m@example.org",
        ],
        "list name",
    );
    fails(
        &[
            "rem-moderator",
            i,
            "--domain",
            "example.org",
            "l",
            "m@example.org",
        ],
        "no moderator left",
    );
    let junk = dir.path().join("junk.img");
    std::fs::write(&junk, vec![7u8; 4096]).unwrap();
    fails(&["show", junk.to_str().unwrap()], "not a ptt image");
    fails(
        &["show", dir.path().join("missing").to_str().unwrap()],
        "not a ptt image",
    );
    // Fill the image with mtools, then ask ptt for one more file.
    let dir_listing = tool("mdir", &["-i", i, "::/"]);
    let free: u64 = dir_listing
        .lines()
        .find(|l| l.contains("bytes free"))
        .and_then(|l| l.split("bytes free").next())
        .map(|n| {
            n.chars()
                .filter(char::is_ascii_digit)
                .collect::<String>()
                .parse()
                .unwrap()
        })
        .expect("mdir prints the free bytes");
    let filler = dir.path().join("filler");
    std::fs::write(&filler, vec![b'f'; free as usize]).unwrap();
    tool("mcopy", &["-i", i, filler.to_str().unwrap(), "::/filler"]);
    fails(
        &[
            "subscribe",
            i,
            "--domain",
            "example.org",
            "l",
            "a@example.org",
        ],
        "image full",
    );
    fsck(&img);
    assert!(ok(&["show", i]).contains("0 subscriber(s)"));
}

#[test]
fn a_directory_works_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    let s = state.to_str().unwrap();
    ok(&["create", s]);
    for f in ["bounces.json", "temp.json", "lists", "tmp"] {
        assert!(state.join(f).exists(), "{f}");
    }
    ok(&[
        "add",
        s,
        "--domain",
        "example.org",
        "a-b-c",
        "--moderator",
        "m@example.org",
        "--subscriber",
        "x@example.net",
    ]);
    ok(&[
        "subscribe",
        s,
        "--domain",
        "example.org",
        "a-b-c",
        "y@example.net",
    ]);
    let shown = ok(&["show", s, "a-b-c"]);
    assert!(
        shown.contains("subscribers (2)") && shown.contains("y@example.net"),
        "{shown}"
    );
    fails(&["create", s], "exists");
}
