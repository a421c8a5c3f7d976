//! Child processes that die with the test, free ports, and the check that a
//! peer program is installed.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::Child;
use std::time::{Duration, Instant};

/// A running peer process, killed (and reaped) on drop.
#[derive(Debug)]
pub struct Peer {
    name: &'static str,
    child: Child,
}

impl Peer {
    /// Wraps a spawned child.
    pub fn new(name: &'static str, child: Child) -> Self {
        Peer { name, child }
    }

    /// Panics with the peer's name if it has already exited (it failed to
    /// start, usually because of its configuration).
    pub fn assert_running(&mut self, log_hint: &str) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("{} exited at start ({status}); {log_hint}", self.name);
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
///
/// The listener is closed before returning, so another process may take the
/// port in between; the kernel hands out ephemeral ports round-robin, which
/// makes that rare enough for tests.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local_addr").port()
}

/// Waits until something accepts TCP connections on `addr`, or panics after
/// `timeout` naming `what`.
pub fn wait_for_tcp(addr: SocketAddr, timeout: Duration, what: &str) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{what} did not listen on {addr} within {timeout:?}");
}

/// Returns the path of `program` on `PATH` (or in `/usr/sbin`, where Debian
/// puts daemons), or panics naming the package that provides it.
///
/// `package` is written as the install command would take it, e.g.
/// `"Debian package bind9"` or `"pip package dkimpy"`.
pub fn require_program(program: &str, package: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
    dirs.extend(["/usr/sbin", "/sbin", "/usr/local/sbin"].map(PathBuf::from));
    for dir in dirs {
        let candidate = dir.join(program);
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!(
        "this test needs `{program}` from the {package}; it is not installed \
         (run `.ci/test`, which installs every peer, or install the package)"
    );
}
