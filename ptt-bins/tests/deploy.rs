//! The deployment files: the systemd units pass `systemd-analyze verify`
//! and rate below 2.0 in `systemd-analyze security --offline=true`; the
//! Kubernetes manifests pass `kubernetes-validate`.

use std::path::{Path, PathBuf};
use std::process::Command;

fn deploy() -> PathBuf {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy")).to_path_buf()
}

/// Whether `tool` runs; in CI its absence fails, elsewhere it skips.
fn have(tool: &str, arg: &str) -> bool {
    let ok = Command::new(tool)
        .arg(arg)
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "{tool} is needed (.ci/install-peers installs it)"
        );
        eprintln!("skipped: {tool} is not installed");
    }
    ok
}

#[test]
fn the_systemd_units_verify_and_rate_below_two() {
    if !have("systemd-analyze", "--version") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut units = Vec::new();
    for entry in std::fs::read_dir(deploy().join("systemd"))
        .unwrap()
        .flatten()
    {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !(name.ends_with(".service") || name.ends_with(".target")) {
            continue;
        }
        // The unit as installed, with this build's binary where it runs ptt.
        let text = std::fs::read_to_string(entry.path())
            .unwrap()
            .replace("/usr/bin/ptt", env!("CARGO_BIN_EXE_ptt"));
        let path = dir.path().join(&name);
        std::fs::write(&path, text).unwrap();
        units.push(path);
    }
    units.sort();
    let services: Vec<&PathBuf> = units
        .iter()
        .filter(|u| u.extension().is_some_and(|e| e == "service"))
        .collect();
    // The five services and the CA they share.
    assert_eq!(services.len(), 6, "{units:?}");
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .args(&units)
        .output()
        .unwrap();
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "systemd-analyze verify: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    for unit in services {
        let out = Command::new("systemd-analyze")
            .args(["security", "--offline=true"])
            .arg(unit)
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&out.stdout).into_owned();
        let level: f64 = said
            .lines()
            .find_map(|l| l.split("exposure level for ").nth(1))
            .and_then(|rest| rest.split(": ").nth(1))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{}: no exposure level in\n{said}", unit.display()));
        assert!(level < 2.0, "{}: exposure {level}\n{said}", unit.display());
    }
}

#[test]
fn ptt_ca_makes_the_private_ca_once() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("ptt.toml");
    std::fs::write(
        &config,
        "domain = \"example.test\"\nhostname = \"mx.example.test\"\nstate = \"state\"\n",
    )
    .unwrap();
    let run = || {
        let out = Command::new(env!("CARGO_BIN_EXE_ptt"))
            .args(["ca", "--config", config.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(run().starts_with("made the private CA of example.test"));
    let cert = std::fs::read(dir.path().join("state/ca/ca.pem")).unwrap();
    let key = dir.path().join("state/ca/ca-key.pem");
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // A second run keeps it.
    assert!(run().starts_with("kept"));
    assert_eq!(
        std::fs::read(dir.path().join("state/ca/ca.pem")).unwrap(),
        cert
    );
}

#[test]
fn the_kubernetes_manifests_validate() {
    if !have("kubernetes-validate", "--version") {
        return;
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(deploy().join("k8s"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 8, "{files:?}");
    let out = Command::new("kubernetes-validate")
        .arg("--strict")
        .args(&files)
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{said}");
    // Every workload and its NetworkPolicy.
    for resource in [
        "deployment/submission",
        "deployment/signer",
        "statefulset/relay",
        "deployment/receiver",
        "statefulset/lists",
        "networkpolicy/default-deny",
        "networkpolicy/signer",
    ] {
        assert!(
            said.contains(&format!("passed for resource {resource} ")),
            "{resource}: {said}"
        );
    }
}

#[test]
fn the_kubernetes_configuration_is_one_ptt_accepts() {
    // The ConfigMap's ptt.toml, checked by `ptt check-config` as written.
    let manifest = std::fs::read_to_string(deploy().join("k8s/01-config.yaml")).unwrap();
    let body: String = manifest
        .split("ptt.toml: |\n")
        .nth(1)
        .unwrap()
        .lines()
        .map(|l| l.strip_prefix("    ").unwrap_or(l))
        .collect::<Vec<_>>()
        .join("\n");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("ptt.toml");
    std::fs::write(&config, body).unwrap();
    std::fs::create_dir_all(dir.path().join("tsig")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ptt"))
        .args(["check-config", config.to_str().unwrap()])
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Only the TSIG key file, a Secret in the cluster, may be missing here.
    assert!(
        out.status.success() || said.lines().all(|l| l.contains("tsig")),
        "{said}"
    );
}
