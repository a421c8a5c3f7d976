//! Prometheus metrics: `/metrics` on `[metrics] listen` (or the address
//! of the one service a process runs), through `metrics` and its
//! Prometheus exporter. The names, one place:
//!
//! | metric | labels | what |
//! |---|---|---|
//! | `ptt_sessions_total` | `service` | SMTP sessions accepted |
//! | `ptt_sessions_open` | `service` | SMTP sessions open now |
//! | `ptt_messages_total` | `service`, `outcome` (accepted, refused), `reason` (the reply's enhanced code) | end of data |
//! | `ptt_message_seconds` | `service` | from the end of the data to the reply (the next hops' time included) |
//! | `ptt_hop_seconds` | `next` | one hand-off to the next service |
//! | `ptt_auth_results_total` | `method` (spf, dkim, dmarc, arc), `result` | the receiver's (and the signer's ARC) verdicts |
//! | `ptt_spam_verdicts_total` | `verdict` | the receiver's filter |
//! | `ptt_relay_queue_messages` | | messages in the relay's queue |
//! | `ptt_relay_queue_oldest_seconds` | | age of the oldest |
//! | `ptt_deliveries_total` | `outcome` (delivered, deferred, failed), `tls` (none, starttls, verified, mta-sts, dane, local) | per recipient and attempt |
//! | `ptt_dkim_keys` | `state` | the signer's keys by state |
//! | `ptt_list_posts_total`, `ptt_list_bounces_total` | | the list server |

use std::net::SocketAddr;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};

use crate::config::{Config, ServiceName};

pub(crate) const SESSIONS: &str = "ptt_sessions_total";
pub(crate) const SESSIONS_OPEN: &str = "ptt_sessions_open";
pub(crate) const MESSAGES: &str = "ptt_messages_total";
pub(crate) const MESSAGE_SECONDS: &str = "ptt_message_seconds";
pub(crate) const HOP_SECONDS: &str = "ptt_hop_seconds";
pub(crate) const AUTH_RESULTS: &str = "ptt_auth_results_total";
pub(crate) const SPAM_VERDICTS: &str = "ptt_spam_verdicts_total";
pub(crate) const QUEUE_MESSAGES: &str = "ptt_relay_queue_messages";
pub(crate) const QUEUE_OLDEST: &str = "ptt_relay_queue_oldest_seconds";
pub(crate) const DELIVERIES: &str = "ptt_deliveries_total";
pub(crate) const DKIM_KEYS: &str = "ptt_dkim_keys";
pub(crate) const LIST_POSTS: &str = "ptt_list_posts_total";
pub(crate) const LIST_BOUNCES: &str = "ptt_list_bounces_total";

/// Histogram buckets, in seconds: a local hop takes milliseconds, a
/// remote MX seconds.
const BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0,
];

/// Starts the exporter for a process running `services`, when
/// `[metrics]` gives it an address; the address.
pub(crate) fn install(
    config: &Config,
    services: &[ServiceName],
) -> Result<Option<SocketAddr>, String> {
    let Some(addr) = config
        .metrics
        .as_ref()
        .and_then(|m| m.address_for(services))
    else {
        return Ok(None);
    };
    PrometheusBuilder::new()
        .with_http_listener(addr)
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), BUCKETS)
        .map_err(|e| format!("[metrics]: {e}"))?
        .upkeep_timeout(Duration::from_secs(5))
        .install()
        .map_err(|e| format!("[metrics] listen {addr}: {e}"))?;
    describe();
    tracing::info!(%addr, "metrics for Prometheus on http://{addr}/metrics");
    Ok(Some(addr))
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!(SESSIONS, "SMTP sessions accepted");
    describe_gauge!(SESSIONS_OPEN, "SMTP sessions open now");
    describe_counter!(
        MESSAGES,
        "messages at the end of their data, accepted or refused (reason: the reply's code)"
    );
    describe_histogram!(
        MESSAGE_SECONDS,
        metrics::Unit::Seconds,
        "from the end of a message's data to the reply"
    );
    describe_histogram!(
        HOP_SECONDS,
        metrics::Unit::Seconds,
        "one hand-off to the next service"
    );
    describe_counter!(AUTH_RESULTS, "SPF, DKIM, DMARC and ARC results");
    describe_counter!(SPAM_VERDICTS, "the spam filter's verdicts");
    describe_gauge!(QUEUE_MESSAGES, "messages in the relay's queue");
    describe_gauge!(
        QUEUE_OLDEST,
        metrics::Unit::Seconds,
        "age of the oldest message in the relay's queue"
    );
    describe_counter!(
        DELIVERIES,
        "delivery attempts per recipient, by outcome and TLS mode"
    );
    describe_gauge!(DKIM_KEYS, "the signer's DKIM keys by state");
    describe_counter!(LIST_POSTS, "posts the list server sent out");
    describe_counter!(LIST_BOUNCES, "bounces the list server counted");
}

/// The reason label of a reply: its enhanced code, or its basic code.
pub(crate) fn reason(reply: &ptt_smtp::Reply) -> String {
    match reply.enhanced() {
        Some(e) => e.to_string(),
        None => reply.code().to_string(),
    }
}
