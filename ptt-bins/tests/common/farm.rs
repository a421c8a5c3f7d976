//! aiosmtpd MX hosts for end-to-end tests (`tests/mx_farm.py`): one
//! listener per loopback address, each with a behaviour, storing what it
//! takes as JSON.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One MX host: its address, its behaviour (see `mx_farm.py`), and its
/// certificate chain and key files when it offers STARTTLS.
pub type FarmHost<'a> = (&'a str, &'a str, Option<(&'a Path, &'a Path)>);

/// aiosmtpd MX hosts, killed with the test.
pub struct MxFarm {
    pub root: tempfile::TempDir,
    pub child: Child,
}

impl Drop for MxFarm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl MxFarm {
    /// Hosts as `(ip, behaviour, certificate chain and key files)` on one port.
    pub fn start(port: u16, hosts: &[FarmHost<'_>]) -> MxFarm {
        let hosts: Vec<serde_json::Value> = hosts
            .iter()
            .map(|(ip, behaviour, cert)| {
                serde_json::json!({
                    "ip": ip, "behaviour": behaviour,
                    "cert": cert.map(|(c, _)| c.to_str().unwrap().to_string()),
                    "key": cert.map(|(_, k)| k.to_str().unwrap().to_string()),
                })
            })
            .collect();
        MxFarm::start_with(port, &hosts)
    }

    /// Hosts given as the JSON objects `mx_farm.py` takes.
    pub fn start_with(port: u16, hosts: &[serde_json::Value]) -> MxFarm {
        let root = tempfile::tempdir().unwrap();
        let config = root.path().join("farm.json");
        std::fs::write(
            &config,
            serde_json::json!({"root": root.path().join("mail"), "port": port, "hosts": hosts})
                .to_string(),
        )
        .unwrap();
        let mut child = Command::new("python3")
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/mx_farm.py"))
            .arg(&config)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "READY", "the MX farm did not start");
        MxFarm { root, child }
    }

    /// What the host at `ip` stored.
    pub fn mail(&self, ip: &str) -> Vec<serde_json::Value> {
        let dir: PathBuf = self.root.path().join("mail").join(ip);
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        files.retain(|p| p.extension().is_some_and(|e| e == "json"));
        files.sort();
        files
            .iter()
            .map(|p| serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap())
            .collect()
    }

    pub fn wait_mail(&self, ip: &str, n: usize) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let got = self.mail(ip);
            if got.len() >= n || Instant::now() > deadline {
                return got;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}
