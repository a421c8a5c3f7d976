//! The list's clock: copies waiting in the retry queue are sent again
//! when due, and expired confirmations, held posts and retries past their
//! deadline are dropped (the engine's `handle_timeout`), at least every
//! [`TICK`] since `ptt` verbs may change the state meanwhile.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use super::Shared;
use super::outbound::{Copy, record, send_copies, send_notices};
use crate::service::trace::unix_now;

/// The longest the task sleeps.
pub(crate) const TICK: Duration = Duration::from_secs(30);

/// Runs for ever.
pub(crate) async fn run(shared: Arc<Shared>) {
    loop {
        let s = shared.clone();
        let next = tokio::task::spawn_blocking(move || s.state.read(|st| st.poll_timeout()))
            .await
            .ok()
            .and_then(Result::ok)
            .flatten();
        let wait = next.map_or(TICK, |at| {
            Duration::from_secs(at.saturating_sub(unix_now())).min(TICK)
        });
        tokio::time::sleep(wait.max(Duration::from_secs(1))).await;
        expire(&shared).await;
        retry_due(&shared).await;
    }
}

/// The engine's timeout: expiries, and retries given up.
async fn expire(shared: &Arc<Shared>) {
    let s = shared.clone();
    let now = unix_now();
    let expired = tokio::task::spawn_blocking(move || {
        s.state.change(|state| {
            let out = state.handle_timeout(now, &super::entropy());
            let changes = out.changes.clone();
            (out, changes)
        })
    })
    .await;
    match expired {
        Ok(Ok(out)) => {
            for event in &out.events {
                tracing::info!(service = "lists", event = ?event, "expired");
            }
            for why in send_notices(shared, &out.send).await {
                tracing::warn!(service = "lists", "a notice waits: {why}");
            }
        }
        Ok(Err(e)) => tracing::error!(service = "lists", "list state: {e}"),
        Err(e) => tracing::error!(service = "lists", "list state: {e}"),
    }
}

/// Sends the copies due now again, post by post.
async fn retry_due(shared: &Arc<Shared>) {
    let s = shared.clone();
    let now = unix_now();
    let due = tokio::task::spawn_blocking(move || {
        s.state.read(|state| {
            let mut posts: BTreeMap<(String, u64), (Vec<u8>, Vec<Copy>)> = BTreeMap::new();
            for (retry, delivery) in state.due_retries(now) {
                let Some(common) = state.blobs.get(&retry.blob()) else {
                    continue;
                };
                let entry = posts
                    .entry((retry.list.clone(), retry.post))
                    .or_insert_with(|| (common.clone(), Vec::new()));
                entry.1.push(Copy {
                    data: delivery.message(common),
                    rcpt: delivery.rcpt,
                    mail_from: delivery.mail_from,
                });
            }
            posts
        })
    })
    .await;
    let posts = match due {
        Ok(Ok(posts)) => posts,
        Ok(Err(e)) => {
            tracing::error!(service = "lists", "list state: {e}");
            return;
        }
        Err(_) => return,
    };
    for ((list, post), (common, copies)) in posts {
        let n = copies.len();
        let results = send_copies(shared, copies).await;
        tracing::info!(service = "lists", list, post, copies = n, "retried");
        record(shared, &list, post, results, &common).await;
    }
}
