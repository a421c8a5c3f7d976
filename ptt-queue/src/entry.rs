//! One queued message's envelope and what became of each recipient: the
//! part of a queue entry that is written to disk (the message itself is the
//! caller's).
//!
//! ```
//! use ptt_queue::{Entry, Notify, Recipient};
//! let entry = Entry::new("0001", "alice@example.org", &["bob@example.net"], 1_700_000_000);
//! assert_eq!(entry.pending().collect::<Vec<_>>(), ["bob@example.net"]);
//! assert_eq!(entry.recipients[0].notify, Notify::default());
//! assert!(!entry.is_finished());
//! ```

use alloc::string::{String, ToString};
use alloc::vec::Vec;

use serde::{Deserialize, Serialize};

/// What a sender asked to be told about (RFC 3461 `NOTIFY=`). Without the
/// parameter: failures and delays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notify {
    /// Report a failure.
    pub failure: bool,
    /// Report a delay.
    pub delay: bool,
    /// Report a delivery.
    pub success: bool,
}

impl Default for Notify {
    fn default() -> Notify {
        Notify {
            failure: true,
            delay: true,
            success: false,
        }
    }
}

impl Notify {
    /// `NOTIFY=NEVER`.
    pub const NEVER: Notify = Notify {
        failure: false,
        delay: false,
        success: false,
    };
}

/// What a report returns of the original message (RFC 3461 `RET=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Return {
    /// Its header only (the default).
    #[default]
    Headers,
    /// All of it.
    Full,
}

/// What the next hop said about one recipient, or why there was no next
/// hop: the facts a delivery report is made of.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// The enhanced status code (RFC 3463), e.g. `5.1.1`.
    pub status: String,
    /// The host that answered, when one did (`mx.example.net`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_mta: Option<String>,
    /// The reply or the reason, e.g. `smtp; 550 5.1.1 no such user` or
    /// `x-ptt; example.net accepts no mail (null MX)`.
    pub diagnostic: String,
    /// When (Unix seconds).
    pub at: u64,
}

/// The result of one attempt for one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The next hop took it.
    Delivered(Report),
    /// Not now: try again later.
    Deferred(Report),
    /// Never: the recipient fails.
    Failed(Report),
}

/// Where one recipient stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum RecipientState {
    /// Still to be delivered; the last attempt's result, if any.
    Pending {
        /// Why the last attempt did not deliver.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        last: Option<Report>,
    },
    /// Delivered.
    Delivered {
        /// The next hop's answer.
        report: Report,
        /// Whether the sender has been told (only asked with
        /// `NOTIFY=SUCCESS`).
        #[serde(default)]
        notified: bool,
    },
    /// Failed for good.
    Failed {
        /// Why.
        report: Report,
        /// Whether the sender has been told.
        #[serde(default)]
        notified: bool,
    },
}

/// One recipient of a queued message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recipient {
    /// The address.
    pub address: String,
    /// The original recipient (RFC 3461 `ORCPT=`, e.g. `rfc822;bob@example.net`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub orcpt: Option<String>,
    /// What the sender wants to hear about.
    #[serde(default)]
    pub notify: Notify,
    /// Where it stands.
    #[serde(flatten)]
    pub state: RecipientState,
}

impl Recipient {
    /// A pending recipient with the default `NOTIFY`.
    pub fn new(address: &str) -> Recipient {
        Recipient {
            address: address.to_string(),
            orcpt: None,
            notify: Notify::default(),
            state: RecipientState::Pending { last: None },
        }
    }

    /// Whether it is still to be delivered.
    pub fn is_pending(&self) -> bool {
        matches!(self.state, RecipientState::Pending { .. })
    }

    /// The last report on it.
    pub fn last_report(&self) -> Option<&Report> {
        match &self.state {
            RecipientState::Pending { last } => last.as_ref(),
            RecipientState::Delivered { report, .. } | RecipientState::Failed { report, .. } => {
                Some(report)
            }
        }
    }
}

/// A queued message's envelope and state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The queue id (the caller's; unique in its queue).
    pub id: String,
    /// The reverse path (empty for `<>`, which is never sent a report).
    pub from: String,
    /// RFC 3461 `ENVID=`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub envid: Option<String>,
    /// RFC 3461 `RET=`.
    #[serde(default)]
    pub ret: Return,
    /// When it was accepted (Unix seconds).
    pub arrived: u64,
    /// Attempts made so far.
    #[serde(default)]
    pub attempts: u32,
    /// When to try next.
    pub next_attempt: u64,
    /// Whether the sender was sent a "delayed" report.
    #[serde(default)]
    pub delay_notified: bool,
    /// The recipients.
    pub recipients: Vec<Recipient>,
}

impl Entry {
    /// A fresh entry, due at once.
    pub fn new(id: &str, from: &str, to: &[&str], now: u64) -> Entry {
        Entry {
            id: id.to_string(),
            from: from.to_string(),
            envid: None,
            ret: Return::default(),
            arrived: now,
            attempts: 0,
            next_attempt: now,
            delay_notified: false,
            recipients: to.iter().map(|a| Recipient::new(a)).collect(),
        }
    }

    /// The recipients still to deliver.
    pub fn pending(&self) -> impl Iterator<Item = &str> {
        self.recipients
            .iter()
            .filter(|r| r.is_pending())
            .map(|r| r.address.as_str())
    }

    /// Recipients whose sender must still be told something, with what.
    pub(crate) fn due_notices(&self) -> (Vec<String>, Vec<String>) {
        let (mut failed, mut delivered) = (Vec::new(), Vec::new());
        if self.from.is_empty() {
            // Never a report to `<>`: reports about reports loop.
            return (failed, delivered);
        }
        for r in &self.recipients {
            match &r.state {
                RecipientState::Failed {
                    notified: false, ..
                } if r.notify.failure => failed.push(r.address.clone()),
                RecipientState::Delivered {
                    notified: false, ..
                } if r.notify.success => delivered.push(r.address.clone()),
                _ => {}
            }
        }
        (failed, delivered)
    }

    /// Whether nothing is left to do: no recipient pending and every report
    /// the sender asked for sent.
    pub fn is_finished(&self) -> bool {
        let (failed, delivered) = self.due_notices();
        self.pending().next().is_none() && failed.is_empty() && delivered.is_empty()
    }

    pub(crate) fn recipient_mut(&mut self, address: &str) -> Option<&mut Recipient> {
        self.recipients
            .iter_mut()
            .find(|r| r.address.eq_ignore_ascii_case(address))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_toml() {
        let mut e = Entry::new(
            "q1",
            "a@example.org",
            &["b@example.net", "c@example.net"],
            7,
        );
        e.envid = Some("ENV1".into());
        e.ret = Return::Full;
        e.recipients[0].state = RecipientState::Failed {
            report: Report {
                status: "5.1.1".into(),
                remote_mta: Some("mx.example.net".into()),
                diagnostic: "smtp; 550 5.1.1 no such user".into(),
                at: 9,
            },
            notified: false,
        };
        e.recipients[1].notify = Notify::NEVER;
        e.recipients[1].state = RecipientState::Pending {
            last: Some(Report {
                status: "4.4.1".into(),
                remote_mta: None,
                diagnostic: "x-ptt; connection refused".into(),
                at: 9,
            }),
        };
        let text = toml::to_string(&e).unwrap();
        let back: Entry = toml::from_str(&text).unwrap();
        assert_eq!(back, e, "{text}");
    }

    #[test]
    fn no_report_to_the_null_sender() {
        let mut e = Entry::new("q1", "", &["b@example.net"], 7);
        e.recipients[0].state = RecipientState::Failed {
            report: Report {
                status: "5.1.1".into(),
                remote_mta: None,
                diagnostic: "smtp; 550 no".into(),
                at: 9,
            },
            notified: false,
        };
        assert!(e.is_finished());
        e.from = "a@example.org".into();
        assert!(!e.is_finished());
    }
}
