//! The task that runs the queue: it loads the entries on disk at start,
//! takes each new one from the sessions, and carries out what the Sans-IO
//! [`Queue`] asks for: an attempt ([`Deliverer`]), a report ([`Notifier`]),
//! writing an entry's state or removing it. It also takes `ptt queue`'s
//! requests from `queue/control/` every second.

use std::sync::Arc;
use std::time::Duration;

use ptt_queue::{Entry, NoticeKind, Outcome, Output, Queue, RetryPolicy};
use tokio::sync::{Semaphore, mpsc};

use super::bounce::Notifier;
use super::deliver::{Deliverer, Job};
use super::queue_dir::{QueueDir, Request};
use crate::service::trace::unix_now;

/// Batches of attempts and reports running at once.
const CONCURRENCY: usize = 128;

/// Messages in one batch of attempts at most (they are read into memory).
const BATCH: usize = 64;

/// Bytes of new messages kept in memory for their first attempt, at
/// most; past it a message is read back from the queue as on a retry.
const FRESH_BYTES: usize = 16 << 20;

/// What reaches the worker.
pub(crate) enum Event {
    /// A new entry, on disk already; with its message when the session
    /// still has it (the first attempt then reads nothing back).
    Queued {
        entry: Entry,
        message: Option<FreshMessage>,
    },
    /// An attempt ended.
    Attempted {
        id: String,
        results: Vec<(String, Outcome)>,
    },
    /// A report was handed on (or not).
    Notified {
        id: String,
        kind: NoticeKind,
        recipients: Vec<String>,
        sent: bool,
    },
}

/// The queue's runner.
pub(crate) struct Worker {
    queue: Queue,
    dir: QueueDir,
    deliverer: Arc<Deliverer>,
    notifier: Arc<Notifier>,
    events: mpsc::UnboundedReceiver<Event>,
    sender: mpsc::UnboundedSender<Event>,
    slots: Arc<Semaphore>,
    fresh: Fresh,
}

/// A message as the session received it.
type FreshMessage = Arc<Vec<u8>>;

/// New messages kept for their first attempt, within [`FRESH_BYTES`].
#[derive(Default)]
struct Fresh {
    messages: std::collections::HashMap<String, FreshMessage>,
    bytes: usize,
}

impl Fresh {
    fn keep(&mut self, id: &str, message: FreshMessage) {
        if self.bytes + message.len() > FRESH_BYTES {
            return;
        }
        self.bytes += message.len();
        if let Some(old) = self.messages.insert(id.to_string(), message) {
            self.bytes -= old.len();
        }
    }

    fn take(&mut self, id: &str) -> Option<FreshMessage> {
        let message = self.messages.remove(id)?;
        self.bytes -= message.len();
        Some(message)
    }
}

impl Worker {
    /// A worker over `dir`, with the entries found there.
    pub(crate) fn new(
        policy: RetryPolicy,
        dir: QueueDir,
        deliverer: Deliverer,
        notifier: Notifier,
    ) -> Result<(Worker, mpsc::UnboundedSender<Event>), String> {
        let mut queue = Queue::new(policy);
        let (entries, broken) = dir
            .load_all()
            .map_err(|e| format!("reading {}: {e}", dir.path().display()))?;
        for why in broken {
            tracing::error!(service = "relay", "queue entry set aside as .broken: {why}");
        }
        if !entries.is_empty() {
            tracing::info!(
                service = "relay",
                count = entries.len(),
                "queued messages found at start"
            );
        }
        for entry in entries {
            queue.insert(entry);
        }
        let (sender, events) = mpsc::unbounded_channel();
        Ok((
            Worker {
                queue,
                dir,
                deliverer: Arc::new(deliverer),
                notifier: Arc::new(notifier),
                events,
                sender: sender.clone(),
                slots: Arc::new(Semaphore::new(CONCURRENCY)),
                fresh: Fresh::default(),
            },
            sender,
        ))
    }

    /// Runs until the task is stopped. Every state change is on disk
    /// before the next step, so stopping (or `kill -9`) at any point loses
    /// nothing: an attempt cut short is made again at the next start.
    pub(crate) async fn run(mut self) {
        let mut control = tokio::time::interval(Duration::from_secs(1));
        control.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            self.queue.handle_timeout(unix_now());
            self.carry_out().await;
            let now = unix_now();
            metrics::gauge!(crate::service::metrics::QUEUE_MESSAGES).set(self.queue.len() as f64);
            let oldest = self.queue.entries().map(|e| e.arrived).min();
            metrics::gauge!(crate::service::metrics::QUEUE_OLDEST)
                .set(oldest.map_or(0, |a| now.saturating_sub(a)) as f64);
            let wait = match self.queue.poll_timeout() {
                Some(at) => Duration::from_secs(at.saturating_sub(unix_now())),
                None => Duration::from_secs(3600),
            };
            tokio::select! {
                event = self.events.recv() => {
                    let Some(event) = event else { return };
                    self.handle(event);
                    // Take whatever else is waiting before the next step.
                    while let Ok(event) = self.events.try_recv() {
                        self.handle(event);
                    }
                }
                _ = tokio::time::sleep(wait) => {}
                _ = control.tick() => self.requests().await,
            }
        }
    }

    fn handle(&mut self, event: Event) {
        let now = unix_now();
        let result = match event {
            Event::Queued { entry, message } => {
                if let Some(message) = message {
                    self.fresh.keep(&entry.id, message);
                }
                self.queue.insert(entry);
                Ok(())
            }
            Event::Attempted { id, results } => self.queue.finish_attempt(&id, results, now),
            Event::Notified {
                id,
                kind,
                recipients,
                sent,
            } => self.queue.notified(&id, kind, &recipients, sent, now),
        };
        if let Err(e) = result {
            // A `ptt queue delete` while the attempt ran.
            tracing::info!(service = "relay", "{e}");
        }
    }

    async fn carry_out(&mut self) {
        let outputs: Vec<Output> = std::iter::from_fn(|| self.queue.poll_output()).collect();
        // A state written just before its entry is removed is not written.
        let removed: std::collections::HashSet<String> = outputs
            .iter()
            .filter_map(|o| match o {
                Output::Remove { id } => Some(id.clone()),
                _ => None,
            })
            .collect();
        let (mut batch, mut saves) = (Vec::new(), Vec::new());
        for output in outputs {
            match output {
                Output::Attempt { id, recipients } => batch.push((id, recipients)),
                Output::Notify {
                    id,
                    kind,
                    recipients,
                } => self.notify(id, kind, recipients),
                Output::Save { id } if !removed.contains(&id) => {
                    if let Some(entry) = self.queue.get(&id) {
                        saves.push(entry.clone());
                    }
                }
                Output::Remove { id } => {
                    // Given up before its first attempt.
                    self.fresh.take(&id);
                }
                Output::Save { .. } => {}
            }
        }
        if !saves.is_empty() || !removed.is_empty() {
            // One folder fsync for all the changes of this step.
            let dir = self.dir.clone();
            let removes: Vec<String> = removed.into_iter().collect();
            let ids = removes.clone();
            let applied = tokio::task::spawn_blocking(move || dir.apply(&saves, &removes)).await;
            match applied {
                Ok(Ok(())) => {
                    for id in ids {
                        tracing::info!(service = "relay", id, "done");
                    }
                }
                // The old states stay on disk: at worst an attempt is made
                // again after a restart.
                other => tracing::error!(service = "relay", "cannot write the queue: {other:?}"),
            }
        }
        // Attempts due together go together: one connection per
        // destination carries all their messages.
        while !batch.is_empty() {
            let rest = batch.split_off(batch.len().min(BATCH));
            self.attempt(std::mem::replace(&mut batch, rest));
        }
    }

    fn attempt(&mut self, due: Vec<(String, Vec<String>)>) {
        // Each entry with the recipients due, and its message if in memory.
        let entries: Vec<(Entry, Vec<String>, Option<FreshMessage>)> = due
            .into_iter()
            .filter_map(|(id, rcpts)| {
                let entry = self.queue.get(&id)?.clone();
                Some((entry, rcpts, self.fresh.take(&id)))
            })
            .collect();
        let all_fresh = entries.iter().all(|(_, _, fresh)| fresh.is_some());
        let (dir, deliverer, sender, slots) = (
            self.dir.clone(),
            self.deliverer.clone(),
            self.sender.clone(),
            self.slots.clone(),
        );
        tokio::spawn(async move {
            let _slot = slots.acquire_owned().await;
            let now = unix_now();
            let load = move || {
                entries
                    .into_iter()
                    .map(|(entry, rcpts, fresh)| {
                        let message = match fresh {
                            Some(m) => Ok(Arc::try_unwrap(m).unwrap_or_else(|m| m.to_vec())),
                            None => dir.message(&entry.id),
                        };
                        (entry, rcpts, message)
                    })
                    .collect::<Vec<_>>()
            };
            // The disk only when a message is not in memory.
            let loaded = if all_fresh {
                load()
            } else {
                tokio::task::spawn_blocking(load).await.unwrap_or_default()
            };
            let mut jobs = Vec::new();
            for (entry, rcpts, message) in loaded {
                match message {
                    Ok(message) => jobs.push(Job {
                        entry,
                        rcpts,
                        message,
                    }),
                    Err(e) => {
                        tracing::error!(
                            service = "relay",
                            id = entry.id,
                            "cannot read the queued message: {e}"
                        );
                        let results = rcpts
                            .iter()
                            .map(|r| {
                                (
                                    r.clone(),
                                    Outcome::Deferred(ptt_queue::Report {
                                        status: "4.3.0".into(),
                                        remote_mta: None,
                                        diagnostic: "x-ptt; the queued message cannot be read"
                                            .into(),
                                        at: now,
                                    }),
                                )
                            })
                            .collect();
                        let _ = sender.send(Event::Attempted {
                            id: entry.id,
                            results,
                        });
                    }
                }
            }
            let mut random = [0u8; 8];
            let _ = crate::random::fill(&mut random);
            let results = deliverer
                .attempt(&jobs, now, u64::from_le_bytes(random))
                .await;
            for (job, results) in jobs.into_iter().zip(results) {
                let _ = sender.send(Event::Attempted {
                    id: job.entry.id,
                    results,
                });
            }
        });
    }

    fn notify(&self, id: String, kind: NoticeKind, recipients: Vec<String>) {
        let Some(entry) = self.queue.get(&id).cloned() else {
            return;
        };
        let (dir, notifier, sender, slots) = (
            self.dir.clone(),
            self.notifier.clone(),
            self.sender.clone(),
            self.slots.clone(),
        );
        tokio::spawn(async move {
            let _slot = slots.acquire_owned().await;
            let key = id.clone();
            let original = tokio::task::spawn_blocking(move || dir.message(&key))
                .await
                .ok()
                .and_then(Result::ok)
                .unwrap_or_default();
            let sent = notifier
                .send(&entry, kind, &recipients, &original, unix_now())
                .await;
            let _ = sender.send(Event::Notified {
                id,
                kind,
                recipients,
                sent,
            });
        });
    }

    async fn requests(&mut self) {
        let dir = self.dir.clone();
        let Ok(requests) = tokio::task::spawn_blocking(move || dir.take_requests()).await else {
            return;
        };
        for request in requests {
            match request {
                Request::Retry(id) => match self.queue.retry(id.as_deref(), unix_now()) {
                    Ok(n) => {
                        tracing::info!(service = "relay", count = n, "retry asked by ptt queue")
                    }
                    Err(e) => tracing::warn!(service = "relay", "ptt queue retry: {e}"),
                },
                Request::Delete(id) => match self.queue.remove(&id) {
                    Ok(_) => {
                        self.fresh.take(&id);
                        let dir = self.dir.clone();
                        let key = id.clone();
                        let _ = tokio::task::spawn_blocking(move || dir.remove(&key)).await;
                        tracing::warn!(
                            service = "relay",
                            id,
                            "deleted by ptt queue, no report sent"
                        );
                    }
                    Err(e) => tracing::warn!(service = "relay", "ptt queue delete: {e}"),
                },
            }
        }
    }
}
