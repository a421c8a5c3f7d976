//! The transaction an internal hop (signer, relay) collects from a client
//! that is one of ptt's own services: the envelope, its RFC 3461 delivery
//! status parameters, and the data, with the events that only fill it
//! answered here and the rest left to the hop.

use ptt_smtp::command::{Notify, Orcpt, Ret};
use ptt_smtp::server::Event;
use ptt_smtp::{MailParams, RcptParams};
use serde::{Deserialize, Serialize};

use crate::net::smtp::Answer;

/// A recipient's RFC 3461 parameters, in the form they are stored in.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RcptDsn {
    /// `NOTIFY=` as sent, e.g. `SUCCESS,FAILURE` or `NEVER`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) notify: Option<String>,
    /// `ORCPT=` as `TYPE;ADDRESS`, e.g. `rfc822;bob@example.net`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) orcpt: Option<String>,
}

impl RcptDsn {
    /// From the parsed RCPT parameters.
    pub(crate) fn from_params(params: &RcptParams) -> RcptDsn {
        RcptDsn {
            notify: params.notify.map(|n| {
                if n.never {
                    return "NEVER".to_string();
                }
                let mut flags = Vec::new();
                if n.success {
                    flags.push("SUCCESS");
                }
                if n.failure {
                    flags.push("FAILURE");
                }
                if n.delay {
                    flags.push("DELAY");
                }
                flags.join(",")
            }),
            orcpt: params
                .orcpt
                .as_ref()
                .map(|o| format!("{};{}", o.addr_type, o.addr)),
        }
    }

    fn notify(&self) -> Option<Notify> {
        let text = self.notify.as_deref()?;
        let mut n = Notify::default();
        for flag in text.split(',') {
            match flag.trim().to_ascii_uppercase().as_str() {
                "NEVER" => n.never = true,
                "SUCCESS" => n.success = true,
                "FAILURE" => n.failure = true,
                "DELAY" => n.delay = true,
                _ => {}
            }
        }
        Some(n)
    }

    /// The RCPT parameters to send on.
    pub(crate) fn to_params(&self) -> RcptParams {
        RcptParams {
            notify: self.notify(),
            orcpt: self.orcpt.as_ref().and_then(|o| {
                let (addr_type, addr) = o.split_once(';')?;
                Some(Orcpt {
                    addr_type: addr_type.to_string(),
                    addr: addr.to_string(),
                })
            }),
            other: Vec::new(),
        }
    }

    /// What the queue reports on: without `NOTIFY=`, failures and delays.
    pub(crate) fn queue_notify(&self) -> ptt_queue::Notify {
        match self.notify() {
            None => ptt_queue::Notify::default(),
            Some(n) if n.never => ptt_queue::Notify::NEVER,
            Some(n) => ptt_queue::Notify {
                failure: n.failure,
                delay: n.delay,
                success: n.success,
            },
        }
    }
}

/// The RFC 3461 parameters that travel with a message from hop to hop.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Dsn {
    /// `RET=FULL` (true) or `RET=HDRS` (false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) ret_full: Option<bool>,
    /// `ENVID=`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) envid: Option<String>,
    /// Per recipient, in the order of the recipients (missing: none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) rcpts: Vec<RcptDsn>,
}

impl Dsn {
    /// Takes RET and ENVID from MAIL's parameters.
    pub(crate) fn from_mail(params: &MailParams) -> Dsn {
        Dsn {
            ret_full: params.ret.map(|r| r == Ret::Full),
            envid: params.envid.clone(),
            rcpts: Vec::new(),
        }
    }

    /// The MAIL parameters to send on.
    pub(crate) fn mail_params(&self) -> MailParams {
        MailParams {
            ret: self.ret_full.map(|f| if f { Ret::Full } else { Ret::Hdrs }),
            envid: self.envid.clone(),
            ..MailParams::default()
        }
    }

    /// The parameters for a subset `keep` of the recipients `all` (in the
    /// order of `keep`).
    pub(crate) fn only(&self, all: &[String], keep: &[String]) -> Dsn {
        Dsn {
            rcpts: keep
                .iter()
                .map(|k| {
                    all.iter()
                        .position(|a| a.eq_ignore_ascii_case(k))
                        .map(|i| self.rcpt(i))
                        .unwrap_or_default()
                })
                .collect(),
            ..self.clone()
        }
    }

    /// The parameters of the `i`-th recipient.
    pub(crate) fn rcpt(&self, i: usize) -> RcptDsn {
        self.rcpts.get(i).cloned().unwrap_or_default()
    }
}

/// MAIL, RCPT and the data of one transaction.
#[derive(Debug, Default)]
pub(crate) struct Transaction {
    /// The reverse path (empty for `<>`).
    pub(crate) from: String,
    /// The recipients (`<postmaster>` as the domain's postmaster).
    pub(crate) rcpts: Vec<String>,
    /// RET, ENVID, NOTIFY and ORCPT.
    pub(crate) dsn: Dsn,
    /// The message.
    pub(crate) data: Vec<u8>,
}

impl Transaction {
    /// Answers the events that only fill or reset the transaction; gives
    /// back the others (HELO, AUTH, VRFY, the end of data) to the caller.
    /// `max` bounds the data kept; `domain` completes a bare `<postmaster>`.
    // The event goes back by value once per command: its size is no cost.
    #[allow(clippy::result_large_err)]
    pub(crate) fn absorb(&mut self, event: Event, max: u64, domain: &str) -> Result<Answer, Event> {
        match event {
            Event::Mail { from, params } => {
                *self = Transaction {
                    from: from.mailbox().map(|m| m.to_string()).unwrap_or_default(),
                    dsn: Dsn::from_mail(&params),
                    ..Transaction::default()
                };
            }
            Event::Rcpt { to, params } => {
                self.rcpts.push(match to.mailbox() {
                    Some(m) => m.to_string(),
                    None => format!("postmaster@{domain}"),
                });
                self.dsn.rcpts.push(RcptDsn::from_params(&params));
            }
            Event::DataStart { .. } => self.data.clear(),
            Event::DataChunk(bytes) => {
                // The machine enforces SIZE; this only guards memory.
                if (self.data.len() + bytes.len()) as u64 <= max {
                    self.data.extend_from_slice(&bytes);
                }
            }
            Event::Reset | Event::DataRefused { .. } | Event::Quit => {
                *self = Transaction::default()
            }
            other => return Err(other),
        }
        Ok(Answer::Accept)
    }

    /// The transaction, leaving an empty one.
    pub(crate) fn take(&mut self) -> Transaction {
        std::mem::take(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_round_trip() {
        let params = RcptParams {
            notify: Some(Notify {
                success: true,
                delay: true,
                ..Notify::default()
            }),
            orcpt: Some(Orcpt {
                addr_type: "rfc822".into(),
                addr: "bob@example.net".into(),
            }),
            other: Vec::new(),
        };
        let stored = RcptDsn::from_params(&params);
        assert_eq!(stored.notify.as_deref(), Some("SUCCESS,DELAY"));
        assert_eq!(stored.to_params(), params);
        let q = stored.queue_notify();
        assert!(q.success && q.delay && !q.failure);
        let never = RcptDsn {
            notify: Some("NEVER".into()),
            orcpt: None,
        };
        assert_eq!(never.queue_notify(), ptt_queue::Notify::NEVER);
        assert_eq!(
            RcptDsn::default().queue_notify(),
            ptt_queue::Notify::default()
        );
        let mail = MailParams {
            ret: Some(Ret::Full),
            envid: Some("E1".into()),
            size: Some(5),
            ..MailParams::default()
        };
        let dsn = Dsn::from_mail(&mail);
        let back = dsn.mail_params();
        assert_eq!(
            (back.ret, back.envid.as_deref(), back.size),
            (Some(Ret::Full), Some("E1"), None)
        );
    }
}
