//! An HTTPS server for MTA-STS policies (RFC 8461 §3.3): Python's
//! `http.server` behind TLS, serving `/.well-known/mta-sts.txt` on port 443
//! of a loopback address, stopped with the test.

use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::process::{require_program, wait_for_tcp};

/// A running policy server.
#[derive(Debug)]
pub struct PolicyServer {
    child: Child,
    _root: tempfile::TempDir,
}

impl PolicyServer {
    /// Serves `policy` at `https://IP/.well-known/mta-sts.txt` with the
    /// certificate and key given (PEM files).
    pub fn start(ip: Ipv4Addr, cert: &Path, key: &Path, policy: &str) -> PolicyServer {
        let python = require_program("python3", "Debian package python3");
        let root = tempfile::Builder::new()
            .prefix("ptt-www-")
            .tempdir()
            .expect("temp dir for the policy");
        std::fs::create_dir_all(root.path().join(".well-known")).expect("mkdir .well-known");
        std::fs::write(root.path().join(".well-known/mta-sts.txt"), policy)
            .expect("write the policy");
        let script = format!(
            "import http.server, ssl, functools\n\
handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory='{root}')\n\
httpd = http.server.HTTPServer(('{ip}', 443), handler)\n\
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER); ctx.load_cert_chain('{cert}', '{key}')\n\
httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)\n\
httpd.serve_forever()\n",
            root = root.path().display(),
            cert = cert.display(),
            key = key.display()
        );
        let child = Command::new(python)
            .args(["-c", &script])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn the policy server");
        wait_for_tcp(
            (ip, 443).into(),
            Duration::from_secs(10),
            "the MTA-STS policy server",
        );
        PolicyServer { child, _root: root }
    }
}

impl Drop for PolicyServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
