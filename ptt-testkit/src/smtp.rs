//! SMTP peers: an aiosmtpd sink, Postfix `smtp-sink`, and `swaks`.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::process::{Peer, free_port, require_program, wait_for_tcp};
use crate::tls::TestCert;

const SINK_SCRIPT: &str = include_str!("smtp_sink.py");

/// How the aiosmtpd sink offers TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SinkTls {
    /// Plain SMTP, no STARTTLS.
    None,
    /// STARTTLS offered (RFC 3207), with a fresh self-signed certificate.
    StartTls,
    /// TLS from the first byte (RFC 8314 implicit TLS).
    Implicit,
}

/// One message the sink accepted.
#[derive(Debug, Clone)]
pub struct ReceivedMessage {
    /// The message bytes as received (dot-unstuffed, CRLF line ends).
    pub data: Vec<u8>,
    /// The envelope sender.
    pub mail_from: String,
    /// The envelope recipients.
    pub rcpt_to: Vec<String>,
    /// The EHLO/HELO name the client gave.
    pub helo: String,
    /// Whether the session was under TLS when the message came.
    pub tls: bool,
}

/// An aiosmtpd server that stores each message it accepts.
#[derive(Debug)]
pub struct AiosmtpdSink {
    _process: Peer,
    port: u16,
    cert: Option<TestCert>,
    dir: tempfile::TempDir,
}

impl AiosmtpdSink {
    /// Starts the sink on a free port of 127.0.0.1.
    pub fn start(tls: SinkTls) -> AiosmtpdSink {
        let python = require_program("python3", "Debian package python3");
        check_python_module("aiosmtpd", "pip package aiosmtpd");
        let dir = tempfile::Builder::new()
            .prefix("ptt-aiosmtpd-")
            .tempdir()
            .expect("temp dir for aiosmtpd");
        let script = dir.path().join("sink.py");
        std::fs::write(&script, SINK_SCRIPT).expect("write sink.py");
        let store = dir.path().join("mail");
        std::fs::create_dir(&store).expect("mail dir");
        let port = free_port();
        let mut cmd = Command::new(python);
        cmd.arg(&script).arg(&store).arg(port.to_string());
        let cert = match tls {
            SinkTls::None => None,
            SinkTls::StartTls | SinkTls::Implicit => Some(TestCert::localhost()),
        };
        if let Some(cert) = &cert {
            cmd.arg(&cert.cert).arg(&cert.key);
            if tls == SinkTls::Implicit {
                cmd.arg("implicit");
            }
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn aiosmtpd sink");
        let stdout = child.stdout.take().expect("sink stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read sink readiness");
        assert!(
            line.starts_with("READY"),
            "aiosmtpd sink did not start: {line:?}"
        );
        let process = Peer::new("aiosmtpd", child);
        wait_for_tcp(
            SocketAddr::from(([127, 0, 0, 1], port)),
            Duration::from_secs(10),
            "aiosmtpd",
        );
        AiosmtpdSink {
            _process: process,
            port,
            cert,
            dir,
        }
    }

    /// The port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:port`.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// The certificate the sink presents, when it speaks TLS.
    pub fn cert(&self) -> Option<&TestCert> {
        self.cert.as_ref()
    }

    /// The messages stored so far, oldest first.
    pub fn messages(&self) -> Vec<ReceivedMessage> {
        let store = self.dir.path().join("mail");
        let mut names: Vec<PathBuf> = std::fs::read_dir(&store)
            .expect("read sink store")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "eml"))
            .collect();
        names.sort();
        names
            .into_iter()
            .map(|eml| {
                let meta: serde_json::Value = serde_json::from_slice(
                    &std::fs::read(eml.with_extension("json")).expect("read envelope"),
                )
                .expect("envelope json");
                ReceivedMessage {
                    data: std::fs::read(&eml).expect("read message"),
                    mail_from: meta["mail_from"].as_str().unwrap_or_default().to_string(),
                    rcpt_to: meta["rcpt_tos"]
                        .as_array()
                        .map(|a| {
                            a.iter()
                                .filter_map(|v| v.as_str().map(str::to_string))
                                .collect()
                        })
                        .unwrap_or_default(),
                    helo: meta["helo"].as_str().unwrap_or_default().to_string(),
                    tls: meta["tls"].as_bool().unwrap_or(false),
                }
            })
            .collect()
    }

    /// Waits until at least `n` messages are stored, or panics after `timeout`.
    pub fn wait_for(&self, n: usize, timeout: Duration) -> Vec<ReceivedMessage> {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.messages();
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "aiosmtpd sink got {} messages, expected {n}",
                got.len()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Postfix's `smtp-sink`, writing each message it gets to a file.
#[derive(Debug)]
pub struct PostfixSink {
    _process: Peer,
    port: u16,
    dir: tempfile::TempDir,
}

impl PostfixSink {
    /// Starts `smtp-sink` on a free port with a backlog of 50; every message
    /// is dumped to a file in the sink's folder.
    pub fn start() -> PostfixSink {
        Self::start_with(&[])
    }

    /// As [`PostfixSink::start`], with extra `smtp-sink` options.
    pub fn start_with(extra: &[&str]) -> PostfixSink {
        let program = require_program("smtp-sink", "Debian package postfix");
        let dir = tempfile::Builder::new()
            .prefix("ptt-smtp-sink-")
            .tempdir()
            .expect("temp dir for smtp-sink");
        let dump = dir.path().join("dump");
        std::fs::create_dir(&dump).expect("dump dir");
        // smtp-sink drops privileges to the -u user, who must write there.
        let _ = Command::new("chown").arg("nobody").arg(&dump).status();
        let port = free_port();
        let child = Command::new(program)
            .args(["-u", "nobody", "-R"])
            .arg(&dump)
            .args(["-d", "dump.%M."])
            .args(["-h", "sink.test"])
            .args(extra)
            .arg(format!("127.0.0.1:{port}"))
            .arg("50")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn smtp-sink");
        let process = Peer::new("smtp-sink", child);
        wait_for_tcp(
            SocketAddr::from(([127, 0, 0, 1], port)),
            Duration::from_secs(10),
            "smtp-sink",
        );
        PostfixSink {
            _process: process,
            port,
            dir,
        }
    }

    /// The port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:port`.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// The dump files written so far (each holds smtp-sink's record of one
    /// message: envelope lines, then the data).
    pub fn dumps(&self) -> Vec<Vec<u8>> {
        let mut files = Vec::new();
        collect_files(&self.dir.path().join("dump"), &mut files);
        files.sort();
        files.iter().filter_map(|p| std::fs::read(p).ok()).collect()
    }
}

fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                collect_files(&path, out);
            } else {
                out.push(path);
            }
        }
    }
}

/// Runs `swaks` with `args` (add `--server`, `--port`, `--to`, …) and standard
/// input closed, so that it never prompts. Returns its output whatever the
/// exit status.
pub fn swaks(args: &[&str]) -> Output {
    let program = require_program("swaks", "Debian package swaks");
    Command::new(program)
        .args(args)
        .args(["--timeout", "20"])
        .stdin(Stdio::null())
        .output()
        .expect("run swaks")
}

/// Panics naming `package` when `python3 -c "import MODULE"` fails.
pub(crate) fn check_python_module(module: &str, package: &str) {
    let ok = Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "this test needs the Python module `{module}` from the {package}; it is \
         not installed (run `.ci/test`, which installs every peer)"
    );
}
