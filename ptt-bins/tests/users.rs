//! The user database end to end: `ptt adduser`, `passwd`, `deluser` and
//! `users` against real repositories, checked with the real `git`.

#[path = "common/site.rs"]
mod site;

use std::process::Command;

use site::{PASSWORD, ptt, text};

fn git(args: &[&str]) -> String {
    let out = Command::new("git").args(args).output().expect("run git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn adduser_makes_one_commit_that_git_shows() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("users.git");
    let repo_s = repo.to_str().unwrap();
    let out = ptt(
        &[
            "adduser",
            "--users",
            repo_s,
            "--domain",
            "example.test",
            "--password-stdin",
            "--alias",
            "al@example.test",
            "--forward-to",
            "alice@elsewhere.example",
            "--may-send-as",
            "sales@example.test",
            "Alice@Example.test",
        ],
        &format!("{PASSWORD}\n"),
    );
    assert!(out.status.success(), "{}", text(&out));
    let log = git(&["--git-dir", repo_s, "log", "--format=%an <%ae>|%s"]);
    assert_eq!(
        log.trim(),
        "ptt <ptt@example.test>|adduser alice@example.test; aliases: al@example.test; \
         forward_to: alice@elsewhere.example; may_send_as: sales@example.test"
    );
    let file = git(&[
        "--git-dir",
        repo_s,
        "show",
        "HEAD:users/alice@example.test.toml",
    ]);
    assert!(file.contains("password = \"$argon2id$v=19$"), "{file}");
    assert!(
        !file.contains(PASSWORD),
        "the password itself is never stored"
    );
    assert!(file.contains("aliases = [\"al@example.test\"]"), "{file}");
    assert!(
        file.contains("forward_to = [\"alice@elsewhere.example\"]"),
        "{file}"
    );
    assert!(
        file.contains("may_send_as = [\"sales@example.test\"]"),
        "{file}"
    );
    let domains = git(&["--git-dir", repo_s, "show", "HEAD:domains.toml"]);
    assert!(domains.contains("example.test"), "{domains}");
    // git's own check of the objects ptt wrote.
    git(&["--git-dir", repo_s, "fsck", "--strict"]);

    // Refused, and no commit made: a duplicate, an alias taken, an address
    // outside the domains, an empty password, a bad address.
    for (args, stdin, why) in [
        (vec!["alice@example.test"], "x\n", "already exists"),
        (vec!["al@example.test"], "x\n", "already exists"),
        (
            vec!["--alias", "al@example.test", "carol@example.test"],
            "x\n",
            "already alice@example.test's",
        ),
        (
            vec!["eve@other.test"],
            "x\n",
            "outside the repository's domains",
        ),
        (vec!["dave@example.test"], "\n", "empty"),
        (vec!["../evil@example.test"], "x\n", "local part"),
    ] {
        let mut all = vec!["adduser", "--users", repo_s, "--password-stdin"];
        all.extend(args);
        let out = ptt(&all, stdin);
        assert_eq!(out.status.code(), Some(2), "{all:?}: {}", text(&out));
        assert!(text(&out).contains(why), "{all:?}: {}", text(&out));
    }
    assert_eq!(
        git(&["--git-dir", repo_s, "rev-list", "--count", "HEAD"]).trim(),
        "1"
    );

    // passwd and deluser: one commit each, said in the message.
    let out = ptt(
        &[
            "passwd",
            "--users",
            repo_s,
            "--password-stdin",
            "alice@example.test",
        ],
        "new one\n",
    );
    assert!(out.status.success(), "{}", text(&out));
    let out = ptt(
        &[
            "adduser",
            "--users",
            repo_s,
            "--password-stdin",
            "bob@example.test",
        ],
        "b\n",
    );
    assert!(out.status.success(), "{}", text(&out));
    let out = ptt(&["deluser", "--users", repo_s, "bob@example.test"], "");
    assert!(out.status.success(), "{}", text(&out));
    let out = ptt(&["deluser", "--users", repo_s, "nobody@example.test"], "");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let subjects = git(&["--git-dir", repo_s, "log", "--format=%s"]);
    let subjects: Vec<&str> = subjects.lines().collect();
    assert_eq!(
        subjects[..3],
        [
            "deluser bob@example.test",
            "adduser bob@example.test",
            "passwd alice@example.test"
        ]
    );
    let tree = git(&["--git-dir", repo_s, "ls-tree", "-r", "--name-only", "HEAD"]);
    assert_eq!(tree.trim(), "domains.toml\nusers/alice@example.test.toml");

    let out = ptt(&["users", "--users", repo_s], "");
    assert!(out.status.success(), "{}", text(&out));
    let table = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("ADDRESS"), "{table}");
    assert!(
        lines[1].starts_with("alice@example.test  al@example.test"),
        "{table}"
    );
    assert_eq!(lines.len(), 2, "{table}");
}

#[test]
fn concurrent_changes_never_overwrite_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("users.git");
    let repo_s = repo.to_str().unwrap().to_string();
    let out = ptt(
        &[
            "adduser",
            "--users",
            &repo_s,
            "--domain",
            "example.test",
            "--password-stdin",
            "first@example.test",
        ],
        "x\n",
    );
    assert!(out.status.success(), "{}", text(&out));
    // Six writers at once: three add the same user, three add others.
    let writers: Vec<_> = (0..6)
        .map(|i| {
            let repo_s = repo_s.clone();
            std::thread::spawn(move || {
                let who = if i % 2 == 0 {
                    "same@example.test".to_string()
                } else {
                    format!("u{i}@example.test")
                };
                let out = ptt(
                    &["adduser", "--users", &repo_s, "--password-stdin", &who],
                    &format!("pw{i}\n"),
                );
                (who, out.status.success(), text(&out))
            })
        })
        .collect();
    let results: Vec<(String, bool, String)> =
        writers.into_iter().map(|w| w.join().unwrap()).collect();
    let same_ok = results
        .iter()
        .filter(|(w, ok, _)| w == "same@example.test" && *ok)
        .count();
    assert_eq!(same_ok, 1, "exactly one adds the same user: {results:#?}");
    assert!(
        results
            .iter()
            .filter(|(w, _, _)| w != "same@example.test")
            .all(|(_, ok, _)| *ok),
        "{results:#?}"
    );
    let tree = git(&["--git-dir", &repo_s, "ls-tree", "-r", "--name-only", "HEAD"]);
    for who in ["first", "same", "u1", "u3", "u5"] {
        assert!(
            tree.contains(&format!("users/{who}@example.test.toml")),
            "{who} missing:\n{tree}"
        );
    }
    // One commit per successful change, in one line of history.
    assert_eq!(
        git(&["--git-dir", &repo_s, "rev-list", "--count", "HEAD"]).trim(),
        "5"
    );
    git(&["--git-dir", &repo_s, "fsck", "--strict"]);
}

#[test]
fn a_new_repository_takes_its_first_users_domain() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("fresh.git");
    let repo_s = repo.to_str().unwrap();
    let out = ptt(
        &[
            "adduser",
            "--users",
            repo_s,
            "--password-stdin",
            "alice@example.org",
        ],
        "pw\n",
    );
    assert!(out.status.success(), "{}", text(&out));
    let domains = git(&["--git-dir", repo_s, "show", "HEAD:domains.toml"]);
    assert!(domains.contains("example.org"), "{domains}");
    let out = ptt(
        &[
            "adduser",
            "--users",
            repo_s,
            "--password-stdin",
            "bob@example.org",
        ],
        "pw\n",
    );
    assert!(out.status.success(), "{}", text(&out));
    let out = ptt(
        &[
            "adduser",
            "--users",
            repo_s,
            "--password-stdin",
            "eve@elsewhere.example",
        ],
        "pw\n",
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("outside the repository's domains"),
        "{}",
        text(&out)
    );
}

#[test]
fn a_non_bare_repository_stays_clean_for_git() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("users");
    let repo_s = repo.to_str().unwrap();
    git(&["init", "-q", repo_s]);
    std::fs::write(repo.join("README"), "users of example.test\n").unwrap();
    git(&["-C", repo_s, "add", "README"]);
    git(&[
        "-C",
        repo_s,
        "-c",
        "user.name=t",
        "-c",
        "user.email=t@t",
        "commit",
        "-qm",
        "start",
    ]);
    let out = ptt(
        &[
            "adduser",
            "--users",
            repo_s,
            "--domain",
            "example.test",
            "--password-stdin",
            "alice@example.test",
        ],
        "pw\n",
    );
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        git(&["-C", repo_s, "status", "--porcelain"]),
        "",
        "git status after adduser"
    );
    assert!(repo.join("users/alice@example.test.toml").is_file());
    assert!(
        repo.join("README").is_file(),
        "the rest of the tree is kept"
    );
    let out = ptt(&["deluser", "--users", repo_s, "alice@example.test"], "");
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        git(&["-C", repo_s, "status", "--porcelain"]),
        "",
        "git status after deluser"
    );
    assert!(!repo.join("users/alice@example.test.toml").exists());
    assert_eq!(
        git(&["-C", repo_s, "rev-list", "--count", "HEAD"]).trim(),
        "3"
    );
}

#[test]
fn a_repository_over_ssh_is_fetched_changed_and_pushed() {
    // No host is contacted: a stand-in `ssh` runs the remote command here,
    // as sshd would on the server.
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let ssh = bin.join("ssh");
    std::fs::write(
        &ssh,
        "#!/bin/sh\n# ssh stand-in: skip options and the host, run the command locally\n\
         while [ $# -gt 0 ]; do case \"$1\" in -G) echo 'user git'; exit 0;; -o|-p) shift 2;; -*) shift;; *) break;; esac; done\n\
         shift\nexec sh -c \"$*\"\n",
    )
    .unwrap();
    std::process::Command::new("chmod")
        .args(["+x", ssh.to_str().unwrap()])
        .status()
        .unwrap();
    let remote = dir.path().join("srv/users.git");
    git(&["init", "-q", "--bare", remote.to_str().unwrap()]);
    let url = format!("git@host:{}", remote.display());
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let run = |args: &[&str], stdin: &str| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ptt"))
            .args(args)
            .env("PATH", &path)
            .env("GIT_SSH_COMMAND", ssh.to_str().unwrap())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write as _;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };
    let out = run(
        &[
            "adduser",
            "--users",
            &url,
            "--domain",
            "example.test",
            "--password-stdin",
            "alice@example.test",
        ],
        "pw\n",
    );
    assert!(out.status.success(), "{}", text(&out));
    let log = git(&["--git-dir", remote.to_str().unwrap(), "log", "--format=%s"]);
    assert_eq!(log.trim(), "adduser alice@example.test");
    let out = run(&["users", "--users", &url], "");
    assert!(out.status.success(), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("alice@example.test"));
}
