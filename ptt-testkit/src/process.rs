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
/// Ports come from 20000–32767, below Linux's ephemeral range (32768–60999),
/// so neither the kernel's `bind(0)` nor the source port of an outgoing
/// connection made by another test can take the port before the service under
/// test binds it. The port is free for both TCP and UDP (DNS servers use both). Within one test binary a port is never handed out twice; a
/// port is checked free by binding it before it is returned.
pub fn free_port() -> u16 {
    use std::collections::HashSet;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicU64, Ordering};
    static GIVEN: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    const LOW: u64 = 20_000;
    const SPAN: u64 = 32_768 - LOW;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let mut state = nanos ^ (u64::from(std::process::id()) << 32);
    for _ in 0..1000 {
        // splitmix64: different processes and calls land far apart.
        state = state
            .wrapping_add(0x9E37_79B9_7F4A_7C15)
            .wrapping_add(COUNTER.fetch_add(1, Ordering::Relaxed));
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        let port = (LOW + z % SPAN) as u16;
        let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
        let given = given.get_or_insert_with(HashSet::new);
        if given.contains(&port) {
            continue;
        }
        let tcp = TcpListener::bind(("127.0.0.1", port));
        let udp = std::net::UdpSocket::bind(("127.0.0.1", port));
        if tcp.is_ok() && udp.is_ok() {
            given.insert(port);
            return port;
        }
    }
    panic!("no free TCP port on 127.0.0.1 in 20000-32767 after 1000 tries");
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
