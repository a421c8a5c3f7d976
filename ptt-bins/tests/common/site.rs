//! A ptt site for end-to-end tests: a user repository made with
//! `ptt adduser`, a configuration with free loopback ports, and
//! `ptt serve` started (all services in one process, or one process per
//! service) and stopped with the test.

#![allow(dead_code)]

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use ptt_testkit::free_port;

/// The password every test user gets unless a test changes it.
pub const PASSWORD: &str = "correct horse battery staple";

/// A site under a temporary folder.
pub struct Site {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub repo: PathBuf,
    pub submission: u16,
    pub submissions: u16,
    pub receiver: u16,
    pub signer: u16,
    pub relay: u16,
    /// The list server's SMTP port, and its HTTPS one (used once a test
    /// adds a `[lists]` section).
    pub lists: u16,
    pub lists_https: u16,
    /// `ptt serve` processes, with the services each runs.
    pub processes: Vec<(Vec<String>, Child)>,
}

/// Runs `ptt` with `args`, `stdin` on its standard input.
pub fn ptt(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ptt"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run ptt");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// Both output streams, for assertion messages.
pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

impl Site {
    /// A site for example.test with alice (alias al@, may send as
    /// sales@) and bob, and `extra` lines appended to `[submission]`.
    pub fn new(extra_submission: &str) -> Site {
        Site::with(extra_submission, None, "")
    }

    /// [`Site::new`] with a `[dns]` section of the test's (instead of a
    /// local records file) and lines appended to `[signer]`.
    pub fn with(extra_submission: &str, dns: Option<&str>, extra_signer: &str) -> Site {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("users.git");
        let repo_s = repo.to_str().unwrap().to_string();
        let add = |args: &[&str]| {
            let mut all = vec!["adduser", "--users", &repo_s, "--password-stdin"];
            all.extend_from_slice(args);
            let out = ptt(&all, &format!("{PASSWORD}\n"));
            assert!(out.status.success(), "adduser: {}", text(&out));
        };
        add(&[
            "--domain",
            "example.test",
            "--alias",
            "al@example.test",
            "--may-send-as",
            "sales@example.test",
            "alice@example.test",
        ]);
        add(&["bob@example.test"]);
        let (submission, submissions, receiver, signer, relay) = (
            free_port(),
            free_port(),
            free_port(),
            free_port(),
            free_port(),
        );
        let records = dir.path().join("records.toml");
        std::fs::write(
            &records,
            "zones = [\"example.test\", \"example.net\"]\n[txt]\n\"example.test\" = [\"v=spf1 ip4:127.0.0.0/8 -all\"]\n",
        )
        .unwrap();
        let default_dns = "[dns]\nrecords = \"records.toml\"".to_string();
        let dns = dns.map_or(default_dns, str::to_string);
        let config = dir.path().join("ptt.toml");
        std::fs::write(
            &config,
            format!(
                "domain = \"example.test\"\nhostname = \"mx.example.test\"\nstate = \"state\"\n\
                 {dns}\n\
                 [users]\nrepo = \"users.git\"\npoll_seconds = 1\n\
                 [submission]\nlisten = [\"127.0.0.1:{submission}\"]\nlisten_tls = [\"127.0.0.1:{submissions}\"]\n{extra_submission}\n\
                 [signer]\nlisten = [\"127.0.0.1:{signer}\"]\n{extra_signer}\n\
                 [relay]\nlisten = [\"127.0.0.1:{relay}\"]\n\
                 [receiver]\nlisten = [\"127.0.0.1:{receiver}\"]\n"
            ),
        )
        .unwrap();
        Site {
            dir,
            config,
            repo,
            submission,
            submissions,
            receiver,
            signer,
            relay,
            lists: free_port(),
            lists_https: free_port(),
            processes: Vec::new(),
        }
    }

    /// Appends lines (a section) to the configuration file.
    pub fn append_config(&self, text: &str) {
        let mut config = std::fs::read_to_string(&self.config).unwrap();
        config.push_str(text);
        std::fs::write(&self.config, config).unwrap();
    }

    pub fn repo(&self) -> &str {
        self.repo.to_str().unwrap()
    }

    fn port_of(&self, service: &str) -> Vec<u16> {
        match service {
            "submission" => vec![self.submission, self.submissions],
            "receiver" => vec![self.receiver],
            "signer" => vec![self.signer],
            "relay" => vec![self.relay],
            "lists" => vec![self.lists],
            _ => vec![],
        }
    }

    /// Starts `ptt serve` for `services` (all when empty), logs to a file.
    pub fn serve(&mut self, services: &[&str]) {
        self.serve_via(services, &[]);
    }

    /// Like [`Site::serve`], with `ptt serve …` run by `wrapper` (a command
    /// that ends by running its arguments, e.g. `unshare … sh -c '…; exec "$@"' sh`).
    pub fn serve_via(&mut self, services: &[&str], wrapper: &[&str]) {
        // Appended: a service started again (after a kill) keeps its
        // earlier lines.
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join(format!(
                "serve-{}.log",
                if services.is_empty() {
                    "all".to_string()
                } else {
                    services.join("-")
                }
            )))
            .unwrap();
        let mut command = match wrapper.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(env!("CARGO_BIN_EXE_ptt"));
                c
            }
            None => Command::new(env!("CARGO_BIN_EXE_ptt")),
        };
        let child = command
            .arg("serve")
            .arg("--config")
            .arg(&self.config)
            .args(services)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn ptt serve");
        self.processes
            .push((services.iter().map(|s| s.to_string()).collect(), child));
        let mut all = vec!["submission", "receiver", "signer", "relay"];
        if std::fs::read_to_string(&self.config).is_ok_and(|c| c.contains("\n[lists]")) {
            all.push("lists");
        }
        let names: Vec<&str> = if services.is_empty() {
            all
        } else {
            services.to_vec()
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        for name in names {
            for port in self.port_of(name) {
                let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
                loop {
                    if std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200))
                        .is_ok()
                    {
                        break;
                    }
                    let child = &mut self.processes.last_mut().expect("just pushed").1;
                    if let Ok(Some(status)) = child.try_wait() {
                        panic!(
                            "ptt serve exited ({status}) before {name} listened on {addr}:\n{}",
                            self.log()
                        );
                    }
                    assert!(
                        Instant::now() < deadline,
                        "ptt serve: {name} did not listen on {addr} within 60 s:\n{}",
                        self.log()
                    );
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        }
    }

    /// Everything the serve processes logged.
    pub fn log(&self) -> String {
        let mut all = String::new();
        for entry in std::fs::read_dir(self.dir.path()).unwrap().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with("serve-") {
                all.push_str(&std::fs::read_to_string(entry.path()).unwrap_or_default());
            }
        }
        all
    }

    /// The messages stored for `user` by the receiver.
    pub fn mailbox(&self, user: &str) -> Vec<Vec<u8>> {
        let dir = self.state().join("receiver/mail").join(user).join("new");
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        files.sort();
        files.iter().filter_map(|p| std::fs::read(p).ok()).collect()
    }

    /// Waits up to 20 s for `n` messages in `user`'s mailbox.
    pub fn wait_mailbox(&self, user: &str, n: usize) -> Vec<Vec<u8>> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let got = self.mailbox(user);
            if got.len() >= n || Instant::now() > deadline {
                return got;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// Sends SIGTERM to every serve process and waits for them.
    pub fn terminate(&mut self) -> Vec<std::process::ExitStatus> {
        let mut statuses = Vec::new();
        for (_, child) in &mut self.processes {
            unsafe_kill(child.id(), 15);
        }
        for (_, mut child) in self.processes.drain(..) {
            statuses.push(child.wait().unwrap());
        }
        statuses
    }

    /// Kills (SIGKILL) the serve process that runs exactly `service`.
    pub fn kill(&mut self, service: &str) {
        let i = self
            .processes
            .iter()
            .position(|(s, _)| s.len() == 1 && s[0] == service)
            .unwrap_or_else(|| panic!("no process runs only {service}"));
        let (_, mut child) = self.processes.remove(i);
        let _ = child.kill();
        let _ = child.wait();
    }

    /// The pids of the serve processes, with their services.
    pub fn pids(&self) -> Vec<(String, u32)> {
        self.processes
            .iter()
            .map(|(s, c)| (s.join(","), c.id()))
            .collect()
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        for (_, child) in &mut self.processes {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `kill -SIG pid` through the kill command (no libc in tests).
pub fn unsafe_kill(pid: u32, signal: i32) {
    let _ = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status();
}

/// Peak resident memory of a process in KiB (`VmHWM`).
pub fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// swaks against a local port with `args`.
pub fn swaks_to(port: u16, args: &[&str]) -> Output {
    let port = port.to_string();
    let mut all = vec!["--server", "127.0.0.1", "--port", &port];
    all.extend_from_slice(args);
    ptt_testkit::swaks(&all)
}

/// The `[dns]` section of a site whose resolver and primary is `bind`,
/// updated with its TSIG key.
pub fn dns_through(bind: &ptt_testkit::Bind) -> String {
    format!(
        "[dns]\nresolver = \"{a}\"\nprimary = \"{a}\"\ntsig_key = \"{k}\"",
        a = bind.addr(),
        k = bind.key().file.display()
    )
}

impl Site {
    /// Adds `lines` at the top of `[section]`.
    pub fn add_to_section(&self, section: &str, lines: &str) {
        let config = std::fs::read_to_string(&self.config).unwrap();
        let head = format!("[{section}]\n");
        assert!(
            config.contains(&head),
            "no [{section}] in the configuration"
        );
        std::fs::write(
            &self.config,
            config.replacen(&head, &format!("{head}{lines}\n"), 1),
        )
        .unwrap();
    }

    /// alice's message through submission (STARTTLS, AUTH PLAIN): everything
    /// swaks printed.
    pub fn submit_as_alice(&self, to: &str, subject: &str, body: &str) -> String {
        let header = format!("Subject: {subject}");
        text(&swaks_to(
            self.submission,
            &[
                "-tls",
                "--auth",
                "PLAIN",
                "--auth-user",
                "alice@example.test",
                "--auth-password",
                PASSWORD,
                "--from",
                "alice@example.test",
                "--to",
                to,
                "--header",
                &header,
                "--body",
                body,
            ],
        ))
    }
}

/// A path next to the crate: the repository root.
pub fn repo_root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}
