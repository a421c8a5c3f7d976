//! Sending what the engine decided through the signer: notices
//! (confirmations, help, mail for the moderators) as they are, and a
//! post's copies one per subscriber (each has its own VERP return path and
//! one-click token, so each is signed on its own). What came of each copy
//! goes back to the engine: a copy the signer could not take waits in the
//! list's retry queue ([`super::retries`]); a recipient refused for good
//! counts as a hard bounce.

use std::sync::Arc;

use futures_util::StreamExt as _;
use ptt_list::{Address, Changes, DeliveryResult, Outgoing, Output};

use super::Shared;
use crate::service::hop::Handoff;
use crate::service::trace::unix_now;

/// Copies of one post handed to the signer at once (the hop itself opens
/// no more than its connection limit).
const COPIES_AT_ONCE: usize = 32;

/// One copy to send: recipient, VERP return path, whole message.
pub(crate) struct Copy {
    /// The subscriber.
    pub(crate) rcpt: String,
    /// The VERP return path.
    pub(crate) mail_from: String,
    /// The message.
    pub(crate) data: Vec<u8>,
}

/// What the engine is told of one copy: a refusal of the address is the
/// subscriber's (a hard bounce); anything else the signer or relay could
/// not do now, or cannot do with this message, is tried again.
fn result_of(handoff: Handoff) -> DeliveryResult {
    match handoff {
        Handoff::Taken {
            refused, deferred, ..
        } => match (refused.into_iter().next(), deferred.into_iter().next()) {
            (Some((_, r)), _) => DeliveryResult::Permanent(r.to_string()),
            (None, Some((_, r))) => DeliveryResult::Temporary(r.to_string()),
            (None, None) => DeliveryResult::Delivered,
        },
        Handoff::Refused(r) if r.code() >= 500 && r.enhanced().is_some_and(|e| e.subject == 1) => {
            DeliveryResult::Permanent(r.to_string())
        }
        Handoff::Refused(r) => DeliveryResult::Temporary(r.to_string()),
        Handoff::Deferred(why) => DeliveryResult::Temporary(why),
    }
}

/// Sends `out`'s notices and its post. Returns why, for each notice the
/// signer could not take now.
pub(crate) async fn send(shared: &Arc<Shared>, out: &Output) -> Vec<String> {
    let unsent = send_notices(shared, &out.send).await;
    if let Some(fan) = &out.fanout {
        let copies: Vec<Copy> = fan
            .deliveries()
            .map(|d| Copy {
                rcpt: d.rcpt.to_string(),
                mail_from: d.mail_from.to_string(),
                data: fan.message(&d),
            })
            .collect();
        let results = send_copies(shared, copies).await;
        metrics::counter!(crate::service::metrics::LIST_POSTS).increment(1);
        let delivered = results
            .iter()
            .filter(|(_, r)| *r == DeliveryResult::Delivered)
            .count();
        tracing::info!(
            service = "lists",
            list = fan.list,
            post = fan.post,
            copies = results.len(),
            delivered,
            "post handed to the signer"
        );
        record(shared, &fan.list, fan.post, results, &fan.common).await;
    }
    unsent
}

/// Sends notices; why, for each the signer could not take now.
pub(crate) async fn send_notices(shared: &Arc<Shared>, notices: &[Outgoing]) -> Vec<String> {
    let mut unsent = Vec::new();
    for notice in notices {
        match shared
            .signer
            .send(&notice.mail_from, &notice.rcpts, &notice.data)
            .await
        {
            Handoff::Taken { .. } => tracing::info!(
                service = "lists",
                to = notice.rcpts.join(","),
                "notice sent"
            ),
            Handoff::Refused(r) => {
                tracing::error!(service = "lists", to = notice.rcpts.join(","), %r, "notice refused by the signer")
            }
            Handoff::Deferred(why) => {
                tracing::warn!(
                    service = "lists",
                    to = notice.rcpts.join(","),
                    "notice deferred: {why}"
                );
                unsent.push(why);
            }
        }
    }
    unsent
}

/// Hands copies to the signer, a few at once; what came of each.
pub(crate) async fn send_copies(
    shared: &Arc<Shared>,
    copies: Vec<Copy>,
) -> Vec<(String, DeliveryResult)> {
    futures_util::stream::iter(copies)
        .map(|c| async move {
            let handoff = shared
                .signer
                .send(&c.mail_from, std::slice::from_ref(&c.rcpt), &c.data)
                .await;
            (c.rcpt, result_of(handoff))
        })
        .buffer_unordered(COPIES_AT_ONCE)
        .collect()
        .await
}

/// Tells the engine what came of post `post`'s copies (`common`: its
/// shared bytes, kept while retries wait), commits, and sends what that
/// decided (a subscriber removed for bouncing is told so).
pub(crate) async fn record(
    shared: &Arc<Shared>,
    list: &str,
    post: u64,
    results: Vec<(String, DeliveryResult)>,
    common: &[u8],
) {
    if results.is_empty() {
        return;
    }
    let (s, list_name, common) = (shared.clone(), list.to_string(), common.to_vec());
    let now = unix_now();
    let recorded = tokio::task::spawn_blocking(move || {
        s.state.change(|state| {
            let mut all = Output {
                reply: ptt_list::Reply::Accept,
                send: Vec::new(),
                fanout: None,
                changes: Changes::default(),
                events: Vec::new(),
            };
            for (rcpt, result) in results {
                let Ok(address) = Address::parse(&rcpt) else {
                    continue;
                };
                let out = state.delivery_result(
                    now,
                    &super::entropy(),
                    &list_name,
                    post,
                    &address,
                    result,
                    &common,
                );
                all.changes.merge(out.changes);
                all.send.extend(out.send);
                all.events.extend(out.events);
            }
            let changes = all.changes.clone();
            (all, changes)
        })
    })
    .await;
    match recorded {
        Ok(Ok(out)) => {
            for event in &out.events {
                tracing::info!(service = "lists", list, post, event = ?event, "delivery");
            }
            for why in send_notices(shared, &out.send).await {
                tracing::warn!(service = "lists", list, "a notice waits: {why}");
            }
        }
        Ok(Err(e)) => {
            tracing::error!(service = "lists", list, post, "recording deliveries: {e}")
        }
        Err(e) => tracing::error!(service = "lists", list, post, "recording deliveries: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ptt_smtp::{EnhancedCode, Reply};

    #[test]
    fn only_a_refused_address_is_the_subscribers_bounce() {
        let gone = Reply::new(550, Some(EnhancedCode::new(5, 1, 1)), "no such user");
        assert!(matches!(
            result_of(Handoff::Refused(gone.clone())),
            DeliveryResult::Permanent(_)
        ));
        let policy = Reply::new(554, Some(EnhancedCode::new(5, 6, 0)), "cannot sign");
        assert!(matches!(
            result_of(Handoff::Refused(policy)),
            DeliveryResult::Temporary(_)
        ));
        assert!(matches!(
            result_of(Handoff::Deferred("down".into())),
            DeliveryResult::Temporary(_)
        ));
        let ok = Reply::new(250, None, "ok");
        assert_eq!(
            result_of(Handoff::Taken {
                reply: ok.clone(),
                refused: vec![],
                deferred: vec![]
            }),
            DeliveryResult::Delivered
        );
        assert!(matches!(
            result_of(Handoff::Taken {
                reply: ok,
                refused: vec![("a@b.example".into(), gone)],
                deferred: vec![]
            }),
            DeliveryResult::Permanent(_)
        ));
    }
}
