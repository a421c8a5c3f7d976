//! The queue machine: which entry to try when, what each attempt's results
//! mean, which reports are due, and what to write or delete.
//!
//! The caller owns the files and the sockets. It inserts the entries it
//! has (at start, from disk; later, each message it accepted), sleeps until
//! [`Queue::poll_timeout`], calls [`Queue::handle_timeout`], and carries out
//! every [`Output`] in order:
//!
//! ```
//! use ptt_queue::{Entry, Outcome, Output, Queue, Report, RetryPolicy};
//! let mut queue = Queue::new(RetryPolicy::default());
//! let now = 1_700_000_000;
//! queue.insert(Entry::new("q1", "alice@example.org", &["bob@example.net"], now));
//! queue.handle_timeout(now);
//! let Some(Output::Attempt { id, recipients }) = queue.poll_output() else { panic!() };
//! assert_eq!(recipients, ["bob@example.net"]);
//!
//! // The MX said 451: the entry is written with the reply and waits 5 minutes.
//! let report = Report { status: "4.3.0".into(), remote_mta: Some("mx.example.net".into()),
//!                       diagnostic: "smtp; 451 4.3.0 try later".into(), at: now };
//! queue.finish_attempt(&id, vec![("bob@example.net".into(), Outcome::Deferred(report))], now);
//! assert_eq!(queue.poll_output(), Some(Output::Save { id: "q1".into() }));
//! assert_eq!(queue.poll_timeout(), Some(now + 300));
//! ```

use alloc::collections::{BTreeMap, BTreeSet, VecDeque};
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use crate::entry::{Entry, Outcome, RecipientState, Report};
use crate::policy::RetryPolicy;

/// Which report is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoticeKind {
    /// Some recipients failed for good (RFC 3464 `Action: failed`).
    Failure,
    /// Some recipients are still being tried (`Action: delayed`).
    Delay,
    /// Some recipients asked to hear about delivery (`Action: delivered`).
    Success,
}

/// What the caller must do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Try to deliver the entry to these recipients now, then call
    /// [`Queue::finish_attempt`].
    Attempt {
        /// The entry.
        id: String,
        /// Its pending recipients.
        recipients: Vec<String>,
    },
    /// Send the entry's sender a delivery report (see [`crate::dsn`]) about
    /// these recipients, then call [`Queue::notified`].
    Notify {
        /// The entry.
        id: String,
        /// What kind of report.
        kind: NoticeKind,
        /// The recipients it is about.
        recipients: Vec<String>,
    },
    /// Write the entry ([`Queue::get`]) over its previous version.
    Save {
        /// The entry.
        id: String,
    },
    /// Nothing is left to do for the entry: delete its files.
    Remove {
        /// The entry.
        id: String,
    },
}

/// Why a call was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum QueueError {
    /// No entry has this id.
    #[error("no queued message {0:?}")]
    Unknown(String),
    /// The entry has no attempt or report outstanding.
    #[error("queued message {0:?} has no attempt or report outstanding")]
    NotBusy(String),
}

/// The queue.
#[derive(Debug, Clone, Default)]
pub struct Queue {
    policy: RetryPolicy,
    entries: BTreeMap<String, Entry>,
    /// Entries with an attempt or a report outstanding.
    busy: BTreeSet<String>,
    out: VecDeque<Output>,
}

impl Queue {
    /// An empty queue with this schedule.
    pub fn new(policy: RetryPolicy) -> Queue {
        Queue {
            policy,
            ..Queue::default()
        }
    }

    /// The schedule.
    pub fn policy(&self) -> &RetryPolicy {
        &self.policy
    }

    /// Adds (or replaces) an entry; it is tried at its `next_attempt`.
    pub fn insert(&mut self, entry: Entry) {
        self.busy.remove(&entry.id);
        self.entries.insert(entry.id.clone(), entry);
    }

    /// An entry.
    pub fn get(&self, id: &str) -> Option<&Entry> {
        self.entries.get(id)
    }

    /// All entries, by id.
    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.entries.values()
    }

    /// How many entries there are.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether the entry has an attempt or report outstanding.
    pub fn is_busy(&self, id: &str) -> bool {
        self.busy.contains(id)
    }

    /// The earliest moment something is due, if anything is waiting.
    pub fn poll_timeout(&self) -> Option<u64> {
        self.entries
            .values()
            .filter(|e| !self.busy.contains(&e.id))
            .map(|e| e.next_attempt)
            .min()
    }

    /// Starts what is due at `now`.
    pub fn handle_timeout(&mut self, now: u64) {
        let due: Vec<String> = self
            .entries
            .values()
            .filter(|e| e.next_attempt <= now && !self.busy.contains(&e.id))
            .map(|e| e.id.clone())
            .collect();
        for id in due {
            self.advance(&id, now, true);
        }
    }

    /// The next thing to do.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// Records an attempt's results (recipients not named stay pending
    /// with their previous report) and decides what comes next.
    pub fn finish_attempt(
        &mut self,
        id: &str,
        results: Vec<(String, Outcome)>,
        now: u64,
    ) -> Result<(), QueueError> {
        let policy = self.policy.clone();
        let entry = self
            .entries
            .get_mut(id)
            .ok_or_else(|| QueueError::Unknown(id.to_string()))?;
        if !self.busy.remove(id) {
            return Err(QueueError::NotBusy(id.to_string()));
        }
        for (address, outcome) in results {
            let Some(r) = entry.recipient_mut(&address) else {
                continue;
            };
            if !r.is_pending() {
                continue;
            }
            r.state = match outcome {
                Outcome::Delivered(report) => RecipientState::Delivered {
                    report,
                    notified: false,
                },
                Outcome::Failed(report) => RecipientState::Failed {
                    report,
                    notified: false,
                },
                Outcome::Deferred(report) => RecipientState::Pending { last: Some(report) },
            };
        }
        entry.attempts = entry.attempts.saturating_add(1);
        let deadline = policy.deadline(entry.arrived);
        if now >= deadline {
            for r in entry.recipients.iter_mut().filter(|r| r.is_pending()) {
                let last = r.last_report().cloned();
                r.state = RecipientState::Failed {
                    report: expired(last, policy.give_up_after, now),
                    notified: false,
                };
            }
        }
        entry.next_attempt = policy.next_attempt(entry.arrived, entry.attempts, now);
        self.out.push_back(Output::Save { id: id.to_string() });
        self.advance(id, now, false);
        Ok(())
    }

    /// Records that the report asked for by [`Output::Notify`] was sent
    /// (`sent`) or could not be handed on (it is asked for again in 5
    /// minutes).
    pub fn notified(
        &mut self,
        id: &str,
        kind: NoticeKind,
        recipients: &[String],
        sent: bool,
        now: u64,
    ) -> Result<(), QueueError> {
        let entry = self
            .entries
            .get_mut(id)
            .ok_or_else(|| QueueError::Unknown(id.to_string()))?;
        if !self.busy.remove(id) {
            return Err(QueueError::NotBusy(id.to_string()));
        }
        if !sent {
            entry.next_attempt = now.saturating_add(300);
            return Ok(());
        }
        if kind == NoticeKind::Delay {
            entry.delay_notified = true;
        }
        for r in entry.recipients.iter_mut() {
            if !recipients
                .iter()
                .any(|a| a.eq_ignore_ascii_case(&r.address))
            {
                continue;
            }
            match (&mut r.state, kind) {
                (RecipientState::Failed { notified, .. }, NoticeKind::Failure)
                | (RecipientState::Delivered { notified, .. }, NoticeKind::Success) => {
                    *notified = true
                }
                _ => {}
            }
        }
        self.out.push_back(Output::Save { id: id.to_string() });
        self.advance(id, now, false);
        Ok(())
    }

    /// Makes entries due now (`ptt queue retry`): one, or all when `id` is
    /// `None`. Returns how many.
    pub fn retry(&mut self, id: Option<&str>, now: u64) -> Result<usize, QueueError> {
        if let Some(id) = id
            && !self.entries.contains_key(id)
        {
            return Err(QueueError::Unknown(id.to_string()));
        }
        let mut n = 0;
        for entry in self.entries.values_mut() {
            if id.is_none_or(|id| id == entry.id) && !self.busy.contains(&entry.id) {
                entry.next_attempt = now;
                n += 1;
            }
        }
        Ok(n)
    }

    /// Drops an entry without a report (`ptt queue delete`); the caller
    /// deletes its files. An attempt in flight finishes unheard.
    pub fn remove(&mut self, id: &str) -> Result<Entry, QueueError> {
        self.busy.remove(id);
        self.entries
            .remove(id)
            .ok_or_else(|| QueueError::Unknown(id.to_string()))
    }

    /// Decides the entry's next step: a report due, an attempt (when
    /// `attempt_now`), its removal, or waiting.
    fn advance(&mut self, id: &str, now: u64, attempt_now: bool) {
        let Some(entry) = self.entries.get_mut(id) else {
            return;
        };
        let (failed, delivered) = entry.due_notices();
        let notice = if !failed.is_empty() {
            Some((NoticeKind::Failure, failed))
        } else if !delivered.is_empty() {
            Some((NoticeKind::Success, delivered))
        } else {
            self.policy.warn_after.and_then(|warn| {
                let late = now >= entry.arrived.saturating_add(warn);
                let waiting: Vec<String> = entry
                    .recipients
                    .iter()
                    .filter(|r| r.is_pending() && r.notify.delay)
                    .map(|r| r.address.clone())
                    .collect();
                (late && !entry.delay_notified && !entry.from.is_empty() && !waiting.is_empty())
                    .then_some((NoticeKind::Delay, waiting))
            })
        };
        if let Some((kind, recipients)) = notice {
            self.busy.insert(id.to_string());
            self.out.push_back(Output::Notify {
                id: id.to_string(),
                kind,
                recipients,
            });
            return;
        }
        if entry.is_finished() {
            self.entries.remove(id);
            self.out.push_back(Output::Remove { id: id.to_string() });
            return;
        }
        if attempt_now {
            self.busy.insert(id.to_string());
            self.out.push_back(Output::Attempt {
                id: id.to_string(),
                recipients: entry.pending().map(str::to_string).collect(),
            });
        }
    }
}

/// The report for a recipient given up on at the deadline.
fn expired(last: Option<Report>, after: u64, now: u64) -> Report {
    let days = after / 86_400;
    let hours = (after % 86_400) / 3600;
    let span = if days > 0 {
        alloc::format!("{days} days")
    } else {
        alloc::format!("{hours} hours")
    };
    match last {
        Some(last) => Report {
            // The last reason, made permanent: X.4.7 when it had none.
            status: match last.status.split_once('.') {
                Some((_, rest)) if last.status.starts_with('4') => alloc::format!("5.{rest}"),
                _ => "5.4.7".into(),
            },
            remote_mta: last.remote_mta,
            diagnostic: alloc::format!("{} (gave up after {span})", last.diagnostic),
            at: now,
        },
        None => Report {
            status: "5.4.7".into(),
            remote_mta: None,
            diagnostic: alloc::format!("x-ptt; not delivered in {span}"),
            at: now,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::Notify;
    use alloc::vec;

    const T0: u64 = 1_700_000_000;

    fn report(status: &str, at: u64) -> Report {
        Report {
            status: status.into(),
            remote_mta: Some("mx.example.net".into()),
            diagnostic: alloc::format!("smtp; {status}"),
            at,
        }
    }

    fn attempt(q: &mut Queue, now: u64) -> (String, Vec<String>) {
        q.handle_timeout(now);
        match q.poll_output() {
            Some(Output::Attempt { id, recipients }) => (id, recipients),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn mixed_results_bounce_once_and_retry_the_rest() {
        let mut q = Queue::new(RetryPolicy::default());
        q.insert(Entry::new(
            "q",
            "a@example.org",
            &["b@x.net", "c@x.net", "d@x.net"],
            T0,
        ));
        let (id, rcpts) = attempt(&mut q, T0);
        assert_eq!(rcpts.len(), 3);
        assert_eq!(q.poll_timeout(), None, "busy entries are not due");
        q.finish_attempt(
            &id,
            vec![
                ("b@x.net".into(), Outcome::Delivered(report("2.0.0", T0))),
                ("c@x.net".into(), Outcome::Failed(report("5.1.1", T0))),
                ("d@x.net".into(), Outcome::Deferred(report("4.2.0", T0))),
            ],
            T0,
        )
        .unwrap();
        assert_eq!(q.poll_output(), Some(Output::Save { id: "q".into() }));
        let Some(Output::Notify {
            kind, recipients, ..
        }) = q.poll_output()
        else {
            panic!()
        };
        assert_eq!(
            (kind, recipients.as_slice()),
            (NoticeKind::Failure, &["c@x.net".to_string()][..])
        );
        q.notified("q", kind, &recipients, true, T0 + 1).unwrap();
        assert_eq!(q.poll_output(), Some(Output::Save { id: "q".into() }));
        assert_eq!(q.poll_output(), None);
        assert_eq!(q.poll_timeout(), Some(T0 + 300));
        let (_, rcpts) = attempt(&mut q, T0 + 300);
        assert_eq!(rcpts, ["d@x.net"]);
        q.finish_attempt(
            "q",
            vec![(
                "d@x.net".into(),
                Outcome::Delivered(report("2.0.0", T0 + 300)),
            )],
            T0 + 300,
        )
        .unwrap();
        assert_eq!(q.poll_output(), Some(Output::Save { id: "q".into() }));
        assert_eq!(q.poll_output(), Some(Output::Remove { id: "q".into() }));
        assert!(q.is_empty());
    }

    #[test]
    fn gives_up_at_the_deadline_with_the_last_reason() {
        let mut q = Queue::new(RetryPolicy::default());
        q.insert(Entry::new("q", "a@example.org", &["b@x.net"], T0));
        let mut now = T0;
        let mut attempts = 0;
        loop {
            let (id, _) = attempt(&mut q, now);
            attempts += 1;
            q.finish_attempt(
                &id,
                vec![("b@x.net".into(), Outcome::Deferred(report("4.4.1", now)))],
                now,
            )
            .unwrap();
            assert_eq!(q.poll_output(), Some(Output::Save { id: "q".into() }));
            if let Some(Output::Notify {
                kind, recipients, ..
            }) = q.poll_output()
            {
                assert_eq!(kind, NoticeKind::Failure);
                assert_eq!(now, T0 + 5 * 86_400);
                let e = q.get("q").unwrap();
                let r = e.recipients[0].last_report().unwrap();
                assert_eq!(r.status, "5.4.1");
                assert!(r.diagnostic.contains("gave up after 5 days"), "{r:?}");
                q.notified("q", kind, &recipients, true, now).unwrap();
                assert_eq!(q.poll_output(), Some(Output::Save { id: "q".into() }));
                assert_eq!(q.poll_output(), Some(Output::Remove { id: "q".into() }));
                break;
            }
            now = q.poll_timeout().unwrap();
            assert!(attempts < 100);
        }
        // 5m, 15m, 30m, 1h, 2h, then every 4h for five days, and the last.
        assert!((30..=40).contains(&attempts), "{attempts}");
    }

    #[test]
    fn delay_notice_once_when_asked_and_never_to_the_null_sender() {
        let policy = RetryPolicy {
            warn_after: Some(3600),
            ..RetryPolicy::default()
        };
        let mut q = Queue::new(policy);
        q.insert(Entry::new("q", "a@example.org", &["b@x.net"], T0));
        let mut bounce = Entry::new("n", "", &["b@x.net"], T0);
        bounce.recipients[0].notify = Notify::default();
        q.insert(bounce);
        let mut delays = 0;
        let mut now = T0;
        while now < T0 + 86_400 {
            q.handle_timeout(now);
            let mut attempted = Vec::new();
            while let Some(out) = q.poll_output() {
                match out {
                    Output::Attempt { id, .. } => attempted.push(id),
                    Output::Notify {
                        id,
                        kind,
                        recipients,
                    } => {
                        assert_eq!((id.as_str(), kind), ("q", NoticeKind::Delay));
                        delays += 1;
                        q.notified(&id, kind, &recipients, true, now).unwrap();
                    }
                    Output::Save { .. } => {}
                    Output::Remove { id } => panic!("removed {id}"),
                }
            }
            for id in attempted {
                q.finish_attempt(
                    &id,
                    vec![("b@x.net".into(), Outcome::Deferred(report("4.4.1", now)))],
                    now,
                )
                .unwrap();
            }
            now = q.poll_timeout().unwrap();
        }
        assert_eq!(delays, 1);
    }

    #[test]
    fn a_failed_notice_is_asked_again_and_retry_and_remove_work() {
        let mut q = Queue::new(RetryPolicy::default());
        q.insert(Entry::new("q", "a@example.org", &["b@x.net"], T0));
        let (id, _) = attempt(&mut q, T0);
        q.finish_attempt(
            &id,
            vec![("b@x.net".into(), Outcome::Failed(report("5.1.1", T0)))],
            T0,
        )
        .unwrap();
        q.poll_output();
        let Some(Output::Notify {
            kind, recipients, ..
        }) = q.poll_output()
        else {
            panic!()
        };
        q.notified("q", kind, &recipients, false, T0).unwrap();
        assert_eq!(q.poll_timeout(), Some(T0 + 300));
        assert_eq!(q.retry(Some("q"), T0 + 10), Ok(1));
        q.handle_timeout(T0 + 10);
        assert!(matches!(q.poll_output(), Some(Output::Notify { .. })));
        assert!(q.notified("nope", kind, &recipients, true, T0).is_err());
        assert!(q.remove("q").is_ok());
        assert_eq!(q.retry(Some("q"), T0), Err(QueueError::Unknown("q".into())));
        assert!(q.finish_attempt("q", vec![], T0).is_err());
    }

    #[test]
    fn success_notices_only_when_asked() {
        let mut q = Queue::new(RetryPolicy::default());
        let mut e = Entry::new("q", "a@example.org", &["b@x.net", "c@x.net"], T0);
        e.recipients[0].notify.success = true;
        q.insert(e);
        let (id, _) = attempt(&mut q, T0);
        q.finish_attempt(
            &id,
            vec![
                ("b@x.net".into(), Outcome::Delivered(report("2.0.0", T0))),
                ("c@x.net".into(), Outcome::Delivered(report("2.0.0", T0))),
            ],
            T0,
        )
        .unwrap();
        q.poll_output();
        assert_eq!(
            q.poll_output(),
            Some(Output::Notify {
                id: "q".into(),
                kind: NoticeKind::Success,
                recipients: vec!["b@x.net".into()]
            })
        );
    }
}
