//! Each service's sandbox, entered once its configuration is read and
//! before it starts: what the table in the README says it may touch, and
//! nothing else.
//!
//! - **Landlock** (file and TCP rules, ABI up to 7): read-only its
//!   configuration, the CA certificate (never the CA key), the files its
//!   section names and the system's shared files (`/etc`, libraries);
//!   read-write only its own `state/<service>/` (and the lists' state,
//!   the receiver's SRS key folder); TCP bind only on its listen ports;
//!   TCP connect only to the ports its job dials ([`Plan::for_services`]).
//! - **seccomp**: no `execve`, `ptrace`, `mount`, module, keyring, `bpf`
//!   or namespace calls (`EPERM`).
//!
//! The rules bind the calling thread and every thread it starts later, so
//! [`enter`] runs before the runtime's threads exist. Several services in
//! one process get the union of their rules. On a kernel without Landlock
//! the log says so and the service goes on, unless `sandbox = "required"`.
//! `ptt sandbox-check` applies exactly this ([`apply`]) and then tries
//! what the service must never do ([`probe`]).

pub(crate) mod probe;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use landlock::{
    ABI, Access, AccessFs, AccessNet, CompatLevel, Compatible, NetPort, Ruleset, RulesetAttr,
    RulesetCreatedAttr, RulesetStatus, path_beneath_rules,
};

use crate::config::{Config, SandboxMode, ServiceName};

/// The Landlock ABI asked for (the kernel's, if older, is used: best effort).
const ABI_WANTED: ABI = ABI::V7;

/// What a process may touch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Plan {
    /// Read (and, for libraries, map executable).
    pub(crate) read: BTreeSet<PathBuf>,
    /// Read and write (made if missing, so that a rule can hold them).
    pub(crate) write: BTreeSet<PathBuf>,
    /// TCP ports it may bind.
    pub(crate) bind: BTreeSet<u16>,
    /// TCP ports it may connect to.
    pub(crate) connect: BTreeSet<u16>,
    /// Whether it may run programs (only to fetch a users repository over
    /// SSH, which runs `ssh`).
    pub(crate) exec: bool,
}

/// What the sandbox came to.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Status {
    /// Landlock's enforcement.
    pub(crate) landlock: RulesetStatus,
    /// Whether the seccomp filter is on.
    pub(crate) seccomp: bool,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let landlock = match self.landlock {
            RulesetStatus::FullyEnforced => "fully enforced",
            RulesetStatus::PartiallyEnforced => "partly enforced (older kernel)",
            RulesetStatus::NotEnforced => "not enforced (no Landlock in this kernel)",
        };
        let seccomp = if self.seccomp { "on" } else { "off" };
        write!(f, "Landlock {landlock}, seccomp {seccomp}")
    }
}

/// The system files every service reads: name service and TLS roots
/// (`/etc`), the libraries `getaddrinfo` may load, randomness.
const SYSTEM_READ: &[&str] = &[
    "/etc",
    "/usr/share/ca-certificates",
    "/usr/lib",
    "/lib",
    "/lib64",
    "/dev/urandom",
    "/dev/null",
    "/proc/self",
    "/sys/fs/cgroup",
    "/sys/devices/system/cpu",
];

fn port_of_url(url: &str) -> Option<u16> {
    let rest = url.strip_prefix("https://")?;
    let host = rest.split('/').next()?;
    let port = match host.strip_prefix('[') {
        Some(v6) => v6.split_once("]:").map(|(_, p)| p),
        None => host.rsplit_once(':').map(|(_, p)| p),
    };
    match port {
        Some(p) => p.parse().ok(),
        None => Some(443),
    }
}

impl Plan {
    /// The union of what `services` may touch under `config`.
    pub(crate) fn for_services(config: &Config, services: &[ServiceName]) -> Plan {
        let mut plan = Plan::default();
        plan.read.extend(SYSTEM_READ.iter().map(PathBuf::from));
        // Prometheus scrapes this process here.
        plan.bind.extend(
            config
                .metrics
                .as_ref()
                .and_then(|m| m.address_for(services))
                .map(|a| a.port()),
        );
        plan.read.insert(config.path.clone());
        plan.read.insert(config.state.join("ca").join("ca.pem"));
        let optional = [
            &config.tls.cert,
            &config.tls.key,
            &config.dns.records,
            &config.dns.https_ca,
        ];
        plan.read.extend(optional.into_iter().flatten().cloned());
        let resolver = config.dns.resolver.map_or(53, |a| a.port());
        let ports = |list: &[SocketAddr]| list.iter().map(SocketAddr::port).collect::<Vec<_>>();
        let acme = |plan: &mut Plan| {
            if let Some(acme) = &config.tls.acme {
                plan.connect.extend(port_of_url(&acme.directory));
                plan.read.extend(acme.ca.iter().cloned());
                plan.connect.extend(config.dns.primary.map(|p| p.port()));
            }
        };
        for service in services {
            plan.write.insert(config.state_of(*service));
            // Those that ask DNS questions: ARC chains, MX and TLSA, SPF
            // DKIM and DMARC.
            if matches!(
                service,
                ServiceName::Signer | ServiceName::Relay | ServiceName::Receiver
            ) {
                plan.connect.insert(resolver);
            }
            match service {
                ServiceName::Submission => {
                    if let Some(s) = &config.submission {
                        plan.bind.extend(ports(&s.listen));
                        plan.bind.extend(ports(&s.listen_tls));
                    }
                    plan.connect
                        .extend(config.signer.as_ref().map(|s| s.address.port()));
                    plan.users(config);
                    acme(&mut plan);
                }
                ServiceName::Signer => {
                    if let Some(s) = &config.signer {
                        plan.bind.extend(ports(&s.listen));
                    }
                    plan.connect
                        .extend(config.relay.as_ref().map(|r| r.address.port()));
                    plan.connect.extend(config.dns.primary.map(|p| p.port()));
                    plan.read.extend(config.dns.tsig_key.iter().cloned());
                }
                ServiceName::Relay => {
                    if let Some(r) = &config.relay {
                        plan.bind.extend(ports(&r.listen));
                        plan.connect.insert(r.port);
                        // MTA-STS policies.
                        plan.connect.insert(443);
                        plan.connect.extend(
                            r.smarthost
                                .as_deref()
                                .and_then(|s| s.rsplit_once(':'))
                                .and_then(|(_, p)| p.parse::<u16>().ok()),
                        );
                        plan.read.extend(r.tls_ca.iter().cloned());
                        plan.read
                            .extend(r.smarthost_auth.iter().map(|(_, f)| f.clone()));
                    }
                    plan.connect
                        .extend(config.signer.as_ref().map(|s| s.address.port()));
                    plan.connect
                        .extend(config.receiver.as_ref().map(|r| r.address.port()));
                }
                ServiceName::Receiver => {
                    if let Some(r) = &config.receiver {
                        plan.bind.extend(ports(&r.listen));
                        if let Some(db) = &r.spam_db {
                            // Replaced by rename when retrained: its folder.
                            plan.write
                                .insert(db.parent().unwrap_or(Path::new(".")).to_path_buf());
                        }
                    }
                    plan.write.insert(config.state.join("srs"));
                    plan.connect
                        .extend(config.signer.as_ref().map(|s| s.address.port()));
                    plan.connect
                        .extend(config.lists.as_ref().map(|l| l.address.port()));
                    plan.users(config);
                    acme(&mut plan);
                }
                ServiceName::Lists => {
                    if let Some(l) = &config.lists {
                        plan.bind.extend(ports(&l.listen));
                        plan.bind.extend(ports(&l.https_listen));
                        plan.write.insert(l.state.clone());
                        if !l.https_listen.is_empty() {
                            acme(&mut plan);
                        }
                    }
                    plan.connect
                        .extend(config.signer.as_ref().map(|s| s.address.port()));
                }
            }
        }
        plan
    }

    /// The user repository: read; fetched over SSH (a program run) when
    /// it is remote.
    fn users(&mut self, config: &Config) {
        if let Some(users) = &config.users {
            if crate::userdb::is_remote(&users.repo) {
                // gix runs `ssh`, which reads its keys and known hosts.
                self.exec = true;
                self.connect.insert(22);
                self.read.extend(["/usr/bin", "/bin"].map(PathBuf::from));
                if let Some(home) = std::env::var_os("HOME") {
                    self.read.insert(PathBuf::from(home).join(".ssh"));
                }
            } else {
                self.read.insert(PathBuf::from(&users.repo));
            }
        }
    }
}

/// What must exist before the sandbox closes: the services' certificates
/// (made with the CA key, which no service may read afterwards) and the
/// folders the rules name.
pub(crate) fn prepare(
    config: &Config,
    services: &[ServiceName],
    plan: &Plan,
) -> Result<(), String> {
    for service in services {
        crate::net::pki::identity(config, *service)?;
    }
    for dir in &plan.write {
        if !dir.exists() {
            std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        }
    }
    Ok(())
}

/// The system calls no service makes: running programs, debugging other
/// processes, mounts and namespaces, kernel modules and keyrings, BPF.
fn forbidden_syscalls(exec: bool) -> Vec<i64> {
    let mut calls = vec![
        libc::SYS_ptrace,
        libc::SYS_process_vm_readv,
        libc::SYS_process_vm_writev,
        libc::SYS_mount,
        libc::SYS_umount2,
        libc::SYS_pivot_root,
        libc::SYS_chroot,
        libc::SYS_setns,
        libc::SYS_unshare,
        libc::SYS_init_module,
        libc::SYS_finit_module,
        libc::SYS_delete_module,
        libc::SYS_kexec_load,
        libc::SYS_add_key,
        libc::SYS_request_key,
        libc::SYS_keyctl,
        libc::SYS_bpf,
        libc::SYS_perf_event_open,
        libc::SYS_reboot,
        libc::SYS_swapon,
        libc::SYS_swapoff,
    ];
    if !exec {
        calls.extend([libc::SYS_execve, libc::SYS_execveat]);
    }
    calls
}

fn seccomp(exec: bool) -> Result<(), String> {
    use seccompiler::{BpfProgram, SeccompAction, SeccompFilter};
    let rules = forbidden_syscalls(exec)
        .into_iter()
        .map(|n| (n, Vec::new()))
        .collect();
    let arch = std::env::consts::ARCH
        .try_into()
        .map_err(|e| format!("seccomp on {}: {e:?}", std::env::consts::ARCH))?;
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        arch,
    )
    .map_err(|e| format!("seccomp filter: {e}"))?;
    let program: BpfProgram = filter
        .try_into()
        .map_err(|e| format!("seccomp program: {e:?}"))?;
    seccompiler::apply_filter(&program).map_err(|e| format!("seccomp: {e}"))
}

/// Applies `plan` to this thread and those it starts from now on.
pub(crate) fn apply(plan: &Plan) -> Result<Status, String> {
    let err = |e: landlock::RulesetError| format!("Landlock: {e}");
    let mut ruleset = Ruleset::default()
        .set_compatibility(CompatLevel::BestEffort)
        .handle_access(AccessFs::from_all(ABI_WANTED))
        .map_err(err)?
        .handle_access(AccessNet::from_all(ABI_WANTED))
        .map_err(err)?
        .create()
        .map_err(err)?
        .add_rules(path_beneath_rules(
            &plan.read,
            AccessFs::from_read(ABI_WANTED),
        ))
        .map_err(err)?
        .add_rules(path_beneath_rules(
            &plan.write,
            AccessFs::from_all(ABI_WANTED),
        ))
        .map_err(err)?;
    for port in &plan.bind {
        ruleset = ruleset
            .add_rule(NetPort::new(*port, AccessNet::BindTcp))
            .map_err(err)?;
    }
    for port in &plan.connect {
        ruleset = ruleset
            .add_rule(NetPort::new(*port, AccessNet::ConnectTcp))
            .map_err(err)?;
    }
    let restricted = ruleset.restrict_self().map_err(err)?;
    let seccomp_on = match seccomp(plan.exec) {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!("{e}");
            false
        }
    };
    Ok(Status {
        landlock: restricted.ruleset,
        seccomp: seccomp_on,
    })
}

/// Enters the sandbox of `services` as `config` says (`sandbox`), and
/// logs what it came to.
pub(crate) fn enter(config: &Config, services: &[ServiceName]) -> Result<(), String> {
    if config.sandbox == SandboxMode::Off {
        tracing::warn!("sandbox = \"off\": the services run unconfined");
        return Ok(());
    }
    let plan = Plan::for_services(config, services);
    prepare(config, services, &plan)?;
    let status = apply(&plan)?;
    let full = status.landlock == RulesetStatus::FullyEnforced && status.seccomp;
    if config.sandbox == SandboxMode::Required && !full {
        return Err(format!(
            "sandbox = \"required\", and this kernel gives only: {status}"
        ));
    }
    if full {
        tracing::info!(
            bind = ?plan.bind,
            connect = ?plan.connect,
            "sandbox: {status}"
        );
    } else {
        tracing::warn!("sandbox: {status}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acme_directories_give_their_port() {
        assert_eq!(port_of_url("https://acme.example/dir"), Some(443));
        assert_eq!(port_of_url("https://127.0.0.1:14000/dir"), Some(14000));
        assert_eq!(port_of_url("https://[::1]:14000/dir"), Some(14000));
        assert_eq!(port_of_url("http://x/"), None);
    }
}
