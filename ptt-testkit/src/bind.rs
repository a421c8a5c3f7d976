//! BIND `named` as the domain's primary DNS server, with a TSIG key that may
//! update the zone (RFC 2136), on a free port of 127.0.0.1.

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::named::{Named, PACKAGE_BIND, PACKAGE_UTILS, absolute, options};
use crate::process::{free_port, require_program};

/// A TSIG key as BIND writes it with `tsig-keygen`.
#[derive(Debug, Clone)]
pub struct TsigKey {
    /// Key name, e.g. `upd-key`.
    pub name: String,
    /// Algorithm name as BIND spells it, e.g. `hmac-sha256`.
    pub algorithm: String,
    /// The secret, base64 as in the key file.
    pub secret: String,
    /// The key file, usable with `nsupdate -k`.
    pub file: PathBuf,
}

/// A running `named` serving one zone that the [`TsigKey`] may update.
#[derive(Debug)]
pub struct Bind {
    named: Named,
    origin: String,
    key: TsigKey,
}

impl Bind {
    /// Starts `named` with zone `origin` (e.g. `"test."`) holding an SOA, an
    /// NS and the given `(owner, type, rdata)` records (`"@"` or a relative or
    /// absolute owner name, as in a zone file).
    pub fn start(origin: &str, records: &[(&str, &str, &str)]) -> Bind {
        let keygen = require_program("tsig-keygen", PACKAGE_BIND);
        require_program("nsupdate", PACKAGE_UTILS);
        let origin = absolute(origin);
        let dir = tempfile::Builder::new()
            .prefix("ptt-bind-")
            .tempdir()
            .expect("temp dir for named");
        let d = dir.path();

        let key_file = d.join("tsig.key");
        let out = Command::new(keygen)
            .args(["-a", "hmac-sha256", "upd-key"])
            .output()
            .expect("run tsig-keygen");
        assert!(out.status.success(), "tsig-keygen failed");
        std::fs::write(&key_file, &out.stdout).expect("write tsig.key");
        let key = parse_key_file(&key_file, &String::from_utf8_lossy(&out.stdout));

        let mut zone = format!(
            "$ORIGIN {origin}\n$TTL 300\n@ IN SOA ns.{origin} hostmaster.{origin} 1 3600 600 86400 300\n@ IN NS ns.{origin}\nns IN A 127.0.0.1\n"
        );
        for (owner, rtype, rdata) in records {
            let _ = writeln!(zone, "{owner} IN {rtype} {rdata}");
        }
        std::fs::write(d.join("zone.db"), zone).expect("write zone");

        let port = free_port();
        let conf = format!(
            "include \"{key}\";\n{options}zone \"{origin}\" {{ type primary; file \"{dir}/zone.db\"; allow-update {{ key \"upd-key\"; }}; }};\n",
            key = key_file.display(),
            options = options(d, port),
            dir = d.display(),
        );
        let named = Named::start(dir, port, &conf);
        named.wait_for_zone(&origin);
        Bind { named, origin, key }
    }

    /// The UDP/TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.named.port()
    }

    /// `127.0.0.1:port`.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port()))
    }

    /// The zone origin, with its final dot.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The TSIG key that may update the zone.
    pub fn key(&self) -> &TsigKey {
        &self.key
    }

    /// The key as the `ptt` command line takes it: `NAME:ALGORITHM:SECRET`.
    pub fn key_spec(&self) -> String {
        format!(
            "{}:{}:{}",
            self.key.name, self.key.algorithm, self.key.secret
        )
    }

    /// Runs `nsupdate` with the TSIG key and the given update lines (e.g.
    /// `update add x.test. 300 TXT "v"`), then `send`. Returns nsupdate's
    /// stderr on failure.
    pub fn nsupdate(&self, lines: &[&str]) -> Result<(), String> {
        self.run_nsupdate(Some(&self.key.file), lines)
    }

    /// Runs `nsupdate` without any key; BIND should answer REFUSED.
    pub fn nsupdate_unsigned(&self, lines: &[&str]) -> Result<(), String> {
        self.run_nsupdate(None, lines)
    }

    fn run_nsupdate(&self, key: Option<&Path>, lines: &[&str]) -> Result<(), String> {
        let mut cmd = Command::new(require_program("nsupdate", PACKAGE_UTILS));
        if let Some(key) = key {
            cmd.arg("-k").arg(key);
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn nsupdate");
        let mut script = format!("server 127.0.0.1 {}\nzone {}\n", self.port(), self.origin);
        for line in lines {
            script.push_str(line);
            script.push('\n');
        }
        script.push_str("send\n");
        child
            .stdin
            .take()
            .expect("nsupdate stdin")
            .write_all(script.as_bytes())
            .expect("write to nsupdate");
        let out = child.wait_with_output().expect("wait for nsupdate");
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    /// `dig +short` for `name` and `rtype`: one string per answer record.
    pub fn dig(&self, name: &str, rtype: &str) -> Vec<String> {
        self.named.dig(name, rtype)
    }
}

fn parse_key_file(file: &Path, text: &str) -> TsigKey {
    // key "upd-key" {
    //         algorithm hmac-sha256;
    //         secret "base64==";
    // };
    let quoted = |line: &str| line.split('"').nth(1).map(str::to_string);
    let mut name = None;
    let mut algorithm = None;
    let mut secret = None;
    for line in text.lines().map(str::trim) {
        if line.starts_with("key ") {
            name = quoted(line);
        } else if let Some(rest) = line.strip_prefix("algorithm ") {
            algorithm = Some(rest.trim_end_matches(';').trim().to_string());
        } else if line.starts_with("secret ") {
            secret = quoted(line);
        }
    }
    TsigKey {
        name: name.expect("key name in tsig-keygen output"),
        algorithm: algorithm.expect("algorithm in tsig-keygen output"),
        secret: secret.expect("secret in tsig-keygen output"),
        file: file.to_path_buf(),
    }
}
