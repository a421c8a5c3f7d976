//! Shared by the `smtp_*` integration tests: `ptt smtp-sink` as a child
//! process on a free port, and a raw SMTP line client for probes.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `ptt smtp-sink` running on 127.0.0.1, killed on drop.
pub struct PttSink {
    child: Child,
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
}

impl PttSink {
    pub fn start(extra: &[&str]) -> PttSink {
        let dir = tempfile::Builder::new()
            .prefix("ptt-smtp-sink-test-")
            .tempdir()
            .unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_ptt"))
            .args(["smtp-sink", "--listen", "127.0.0.1:0", "--maildir"])
            .arg(dir.path().join("md"))
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn ptt smtp-sink");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .parse()
            .unwrap();
        PttSink { child, addr, dir }
    }

    pub fn port(&self) -> String {
        self.addr.port().to_string()
    }

    pub fn maildir(&self) -> PathBuf {
        self.dir.path().join("md")
    }

    /// The stored messages, sorted by file name.
    pub fn messages(&self) -> Vec<Vec<u8>> {
        let mut names: Vec<PathBuf> = std::fs::read_dir(self.maildir().join("new"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        names.sort();
        names.iter().map(|p| std::fs::read(p).unwrap()).collect()
    }

    /// Files left in tmp/ (none once every session has ended).
    pub fn leftovers(&self) -> usize {
        std::fs::read_dir(self.maildir().join("tmp"))
            .unwrap()
            .count()
    }

    pub fn wait_for(&self, n: usize) -> Vec<Vec<u8>> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let m = self.messages();
            if m.len() >= n || Instant::now() > deadline {
                return m;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for PttSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A raw connection that writes bytes and reads replies.
pub struct Raw {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Raw {
    pub fn connect(addr: SocketAddr) -> Raw {
        let stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let mut r = Raw {
            stream,
            buf: Vec::new(),
        };
        assert!(r.reply().starts_with("220 "));
        r
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    /// Writes, ignoring errors (the server may close first).
    pub fn send_lenient(&mut self, bytes: &[u8]) {
        let _ = self.stream.write_all(bytes);
    }

    /// The next complete reply (all its lines).
    pub fn reply(&mut self) -> String {
        let mut lines = String::new();
        loop {
            while let Some(i) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=i).collect();
                let line = String::from_utf8_lossy(&line).into_owned();
                lines.push_str(&line);
                if line.as_bytes().get(3) != Some(&b'-') {
                    return lines;
                }
            }
            let mut chunk = [0u8; 65536];
            let n = self.stream.read(&mut chunk).unwrap_or(0);
            if n == 0 {
                return lines;
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// The codes of the next `n` replies.
    pub fn codes(&mut self, n: usize) -> Vec<String> {
        (0..n)
            .map(|_| self.reply().get(..3).unwrap_or("EOF").to_string())
            .collect()
    }

    /// Whether the server closed the connection.
    pub fn closed(&mut self) -> bool {
        let mut b = [0u8; 1];
        matches!(self.stream.read(&mut b), Ok(0))
    }
}

/// swaks against `addr`; returns (success, combined output).
pub fn swaks(addr: SocketAddr, extra: &[&str]) -> (bool, String) {
    let port = addr.port().to_string();
    let mut args = vec![
        "--server",
        "127.0.0.1",
        "--port",
        &port,
        "--from",
        "a@example.org",
        "--to",
        "b@example.net",
    ];
    args.extend_from_slice(extra);
    let out = ptt_testkit::swaks(&args);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

pub fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}
