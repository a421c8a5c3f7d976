//! Prometheus metrics after real traffic: three messages from alice to
//! bob and one refused for its From, then `/metrics` scraped over HTTP.

#[path = "common/site.rs"]
mod site;

use std::io::{Read as _, Write as _};
use std::time::{Duration, Instant};

use ptt_testkit::free_port;
use site::{PASSWORD, Site, swaks_to, text};

fn scrape(port: u16) -> String {
    let mut tcp = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    tcp.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut body = String::new();
    tcp.read_to_string(&mut body).unwrap();
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    body
}

/// The value of the sample whose name and labels contain all of `parts`.
fn value(metrics: &str, name: &str, labels: &[&str]) -> f64 {
    metrics
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .filter(|l| labels.iter().all(|p| l.contains(p)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[test]
fn the_counts_follow_the_traffic() {
    let mut site = Site::new("");
    let port = free_port();
    site.append_config(&format!("[metrics]\nlisten = \"127.0.0.1:{port}\"\n"));
    site.serve(&[]);
    for n in 0..3 {
        let said = site.submit_as_alice("bob@example.test", &format!("counted {n}"), "one");
        assert!(said.contains("250 2.0.0"), "{said}");
    }
    // alice may not send with someone else's From: refused at the end of data.
    let out = swaks_to(
        site.submission,
        &[
            "-tls",
            "--auth",
            "PLAIN",
            "--auth-user",
            "alice@example.test",
            "--auth-password",
            PASSWORD,
            "--from",
            "alice@example.test",
            "--to",
            "bob@example.test",
            "--header",
            "From: ceo@bank.example",
        ],
    );
    assert!(text(&out).contains("550 5.7.1"), "{}", text(&out));
    assert_eq!(site.wait_mailbox("bob@example.test", 3).len(), 3);
    // The relay records its deliveries once the receiver has answered.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut metrics = scrape(port);
    while value(
        &metrics,
        "ptt_deliveries_total",
        &["delivered", "tls=\"local\""],
    ) < 3.0
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(200));
        metrics = scrape(port);
    }
    let accepted = |service: &str| {
        value(
            &metrics,
            "ptt_messages_total",
            &[&format!("service=\"{service}\""), "outcome=\"accepted\""],
        )
    };
    for service in ["submission", "signer", "relay", "receiver"] {
        assert_eq!(accepted(service), 3.0, "{service}:\n{metrics}");
    }
    assert_eq!(
        value(
            &metrics,
            "ptt_messages_total",
            &[
                "service=\"submission\"",
                "outcome=\"refused\"",
                "reason=\"5.7.1\""
            ]
        ),
        1.0,
        "{metrics}"
    );
    assert!(value(&metrics, "ptt_sessions_total", &["service=\"submission\""]) >= 4.0);
    assert_eq!(
        value(
            &metrics,
            "ptt_deliveries_total",
            &["delivered", "tls=\"local\""]
        ),
        3.0,
        "{metrics}"
    );
    // SPF passes for 127.0.0.1 (the site's record), three times.
    assert_eq!(
        value(
            &metrics,
            "ptt_auth_results_total",
            &["method=\"spf\"", "result=\"pass\""]
        ),
        3.0,
        "{metrics}"
    );
    assert_eq!(
        value(&metrics, "ptt_spam_verdicts_total", &[]),
        3.0,
        "{metrics}"
    );
    // Each hand-off to the signer timed: submission's three.
    assert!(
        value(
            &metrics,
            "ptt_hop_seconds_count",
            &["next=\"signer.ptt.internal\""]
        ) >= 3.0,
        "{metrics}"
    );
    assert!(
        metrics.contains("\nptt_relay_queue_messages 0\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("\nptt_relay_queue_oldest_seconds 0\n"),
        "{metrics}"
    );
    assert_eq!(
        value(&metrics, "ptt_dkim_keys", &["state=\"active\""]),
        2.0,
        "{metrics}"
    );
    assert!(
        metrics.contains("# TYPE ptt_message_seconds histogram"),
        "{metrics}"
    );
}
