//! The sandbox: `ptt sandbox-check` for every service (each forbidden act
//! refused by the kernel), and a site served with the sandbox on doing its
//! job end to end.

#[path = "common/site.rs"]
mod site;

use site::{Site, ptt, text};

/// A site with all five services.
fn site() -> Site {
    let site = Site::new("");
    let state = site.dir.path().join("lists");
    std::fs::create_dir(&state).unwrap();
    let out = ptt(&["create", state.to_str().unwrap()], "");
    assert!(out.status.success(), "{}", text(&out));
    site.append_config(&format!(
        "[lists]\nlisten = [\"127.0.0.1:{}\"]\nstate = \"lists\"\nhttps_listen = [\"127.0.0.1:{}\"]\n",
        site.lists, site.lists_https
    ));
    site
}

#[test]
fn every_service_is_refused_what_it_must_never_do() {
    let site = site();
    let config = site.config.to_str().unwrap();
    for service in ["submission", "signer", "relay", "receiver", "lists"] {
        let out = ptt(&["sandbox-check", "--config", config, service], "");
        let said = text(&out);
        assert!(out.status.success(), "{service}:\n{said}");
        assert!(
            said.contains(&format!("{service}: Landlock fully enforced, seccomp on")),
            "{said}"
        );
        assert!(
            !said.contains("ALLOWED") && !said.contains("FAILED"),
            "{said}"
        );
        for act in [
            "read ",
            "ca/ca-key.pem",
            "write /tmp/ptt-sandbox-check",
            "connect to 127.0.0.1:",
            "run /bin/sh: Operation not permitted",
        ] {
            assert!(
                said.lines()
                    .any(|l| l.starts_with("refused") && l.contains(act)),
                "{service}: no refused {act:?}:\n{said}"
            );
        }
        // The DKIM keys are the signer's alone; the queue the relay's.
        if service != "signer" {
            assert!(said.contains("signer/keys/"), "{said}");
        }
        if service != "relay" {
            assert!(said.contains("relay/queue"), "{said}");
        }
        assert!(said.contains("allowed  write"), "{said}");
    }
    let out = ptt(&["sandbox-check", "--config", config, "nothing"], "");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
}

#[test]
fn a_sandboxed_site_still_delivers_and_says_so() {
    let mut site = site();
    site.serve(&[]);
    let said = site.submit_as_alice("bob@example.test", "under the sandbox", "confined");
    assert!(said.contains("250 2.0.0"), "{said}\n{}", site.log());
    let got = site.wait_mailbox("bob@example.test", 1);
    assert_eq!(got.len(), 1, "{}", site.log());
    // Signed by the signer (its keys read under its sandbox), checked and
    // stored by the receiver (under its own).
    let stored = String::from_utf8_lossy(&got[0]);
    assert_eq!(stored.matches("DKIM-Signature:").count(), 2, "{stored}");
    assert!(
        stored.starts_with("Authentication-Results: mx.example.test;"),
        "{stored}"
    );
    assert!(
        site.log()
            .contains("sandbox: Landlock fully enforced, seccomp on"),
        "{}",
        site.log()
    );
}

#[test]
fn sandbox_off_and_a_bad_value_are_said() {
    let site = Site::new("");
    let config = std::fs::read_to_string(&site.config).unwrap();
    std::fs::write(
        &site.config,
        config.replacen(
            "state = \"state\"\n",
            "state = \"state\"\nsandbox = \"maybe\"\n",
            1,
        ),
    )
    .unwrap();
    let out = ptt(&["check-config", site.config.to_str().unwrap()], "");
    let said = text(&out);
    assert_eq!(out.status.code(), Some(2), "{said}");
    assert!(
        said.contains("sandbox = \"maybe\" is not one of on, off, required"),
        "{said}"
    );
}
