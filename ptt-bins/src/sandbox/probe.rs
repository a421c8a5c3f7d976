//! What `ptt sandbox-check` tries once a service's sandbox is on: each act
//! the service must never do, with the kernel's answer.

use std::io::Write as _;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::Plan;
use crate::config::{Config, ServiceName};

/// One forbidden act and what came of it.
#[derive(Debug)]
pub(crate) struct Attempt {
    /// What was tried.
    pub(crate) what: String,
    /// `Err`: refused, with the kernel's answer; `Ok`: it worked.
    pub(crate) outcome: Result<(), std::io::Error>,
}

impl Attempt {
    /// Whether the kernel refused it (EACCES or EPERM), as it must.
    pub(crate) fn refused(&self) -> bool {
        matches!(&self.outcome, Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied)
    }
}

impl std::fmt::Display for Attempt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.outcome {
            Err(e) if self.refused() => write!(f, "refused  {}: {e}", self.what),
            Err(e) => write!(
                f,
                "FAILED   {}: not refused by the sandbox but {e}",
                self.what
            ),
            Ok(()) => write!(f, "ALLOWED  {}", self.what),
        }
    }
}

/// The files that must exist for the reads to mean something: every
/// service's certificate key, the signer's DKIM keys, the relay's queue.
pub(crate) fn make_targets(config: &Config) -> Result<(), String> {
    for service in config.services() {
        crate::net::pki::identity(config, service)?;
    }
    if config.signer.is_some() {
        crate::service::signer::active_keys(config)?;
    }
    let queue = crate::service::relay::queue_path(config);
    std::fs::create_dir_all(&queue).map_err(|e| format!("creating {}: {e}", queue.display()))?;
    Ok(())
}

fn read(path: &Path) -> Attempt {
    let outcome = if path.is_dir() {
        std::fs::read_dir(path).map(|_| ())
    } else {
        std::fs::read(path).map(|_| ())
    };
    Attempt {
        what: format!("read {}", path.display()),
        outcome,
    }
}

fn write(path: &Path) -> Attempt {
    let outcome = std::fs::File::create(path).and_then(|mut f| f.write_all(b"sandbox-check\n"));
    if outcome.is_ok() {
        let _ = std::fs::remove_file(path);
    }
    Attempt {
        what: format!("write {}", path.display()),
        outcome,
    }
}

fn connect(port: u16) -> Attempt {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    // Refused by the sandbox before any packet; a closed port would say
    // "connection refused" instead.
    let outcome = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).map(|_| ());
    Attempt {
        what: format!("connect to {addr}"),
        outcome,
    }
}

fn exec() -> Attempt {
    let outcome = std::process::Command::new("/bin/sh")
        .args(["-c", "true"])
        .status()
        .map(|_| ());
    Attempt {
        what: "run /bin/sh".into(),
        outcome,
    }
}

/// The first file in `dir`, or `dir` itself.
fn a_file_in(dir: &Path) -> PathBuf {
    std::fs::read_dir(dir)
        .ok()
        .and_then(|d| d.flatten().map(|e| e.path()).find(|p| p.is_file()))
        .unwrap_or_else(|| dir.to_path_buf())
}

/// The forbidden acts for `service` under `plan` (its sandbox, applied
/// already): other services' private files, writes outside its state, a
/// port it never dials, a program. Made before the sandbox closes: the
/// paths to try (a directory listing needs the rights being tested).
pub(crate) fn plan_attempts(config: &Config, service: ServiceName) -> Vec<Target> {
    let mut targets = Vec::new();
    let state = &config.state;
    targets.push(Target::Read(state.join("ca").join("ca-key.pem")));
    let configured = config.services();
    for other in configured.iter().copied().filter(|s| *s != service) {
        targets.push(Target::Read(
            config.state_of(other).join("tls").join("key.pem"),
        ));
    }
    if service != ServiceName::Signer && configured.contains(&ServiceName::Signer) {
        targets.push(Target::Read(a_file_in(
            &config.state_of(ServiceName::Signer).join("keys"),
        )));
    }
    if service != ServiceName::Relay && configured.contains(&ServiceName::Relay) {
        targets.push(Target::Read(crate::service::relay::queue_path(config)));
    }
    let other = configured
        .iter()
        .copied()
        .find(|s| *s != service)
        .unwrap_or(ServiceName::Relay);
    targets.push(Target::Write(config.state_of(other).join("sandbox-check")));
    targets.push(Target::Write(state.join("sandbox-check")));
    targets.push(Target::Write(
        std::env::temp_dir().join("ptt-sandbox-check"),
    ));
    targets.push(Target::Read(PathBuf::from("/root")));
    targets
}

/// A file to try, chosen before the sandbox closes.
#[derive(Debug, Clone)]
pub(crate) enum Target {
    /// Read it (list it, for a folder).
    Read(PathBuf),
    /// Create it.
    Write(PathBuf),
}

/// Tries every forbidden act: the `targets`, a TCP port outside the
/// plan's, and running a shell.
pub(crate) fn attempts(plan: &Plan, targets: &[Target]) -> Vec<Attempt> {
    let mut out: Vec<Attempt> = targets
        .iter()
        .map(|t| match t {
            Target::Read(p) => read(p),
            Target::Write(p) => write(p),
        })
        .collect();
    let port = [22u16, 25, 443, 3306, 5432, 6379, 9]
        .into_iter()
        .find(|p| !plan.connect.contains(p))
        .unwrap_or(9);
    out.push(connect(port));
    if !plan.exec {
        out.push(exec());
    }
    out
}
