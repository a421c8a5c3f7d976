//! A thousand concurrent submission sessions (implicit TLS, AUTH) against
//! the services each in its own process: every session completes, every
//! message arrives, and every service's peak resident memory (VmHWM) stays
//! under 64 MiB. The same client drives `benches/load/submission.sh`.

#[path = "common/site.rs"]
mod site;

use std::process::Command;

use site::{PASSWORD, Site, peak_rss_kib, repo_root};

const SESSIONS: usize = 1000;
const BUDGET_KIB: u64 = 64 * 1024;

#[test]
fn a_thousand_concurrent_submission_sessions_stay_under_64_mib() {
    let mut site = Site::new("");
    for service in ["relay", "signer", "receiver", "submission"] {
        site.serve(&[service]);
    }
    let out = Command::new("python3")
        .arg(repo_root().join("benches/load/submission_clients.py"))
        .args([
            &site.submissions.to_string(),
            "alice@example.test",
            PASSWORD,
            &SESSIONS.to_string(),
            "bob@example.test",
        ])
        .output()
        .expect("run the load client");
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    let peaks: Vec<(String, u64)> = site
        .pids()
        .into_iter()
        .map(|(name, pid)| (name, peak_rss_kib(pid)))
        .collect();
    println!("{report}peak RSS (KiB): {peaks:?}");
    assert!(
        report.starts_with(&format!("sessions {SESSIONS} ok {SESSIONS} errors 0")),
        "{report}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Delivery goes through the relay's queue: give it time.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let mut stored = site.mailbox("bob@example.test").len();
    while stored < SESSIONS && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(500));
        stored = site.mailbox("bob@example.test").len();
    }
    assert_eq!(stored, SESSIONS, "messages stored");
    for (name, kib) in &peaks {
        assert!(*kib > 0, "no VmHWM for {name}");
        assert!(*kib < BUDGET_KIB, "{name} peaked at {kib} KiB: {report}");
    }
}
