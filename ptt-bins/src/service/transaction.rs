//! The transaction an internal hop (signer, relay) collects from a client
//! that is one of ptt's own services: the envelope and the data, with the
//! events that only fill it answered here and the rest left to the hop.

use ptt_smtp::server::Event;

use crate::net::smtp::Answer;

/// MAIL, RCPT and the data of one transaction.
#[derive(Debug, Default)]
pub(crate) struct Transaction {
    /// The reverse path (empty for `<>`).
    pub(crate) from: String,
    /// The recipients (`<postmaster>` as the domain's postmaster).
    pub(crate) rcpts: Vec<String>,
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
            Event::Mail { from, .. } => {
                *self = Transaction {
                    from: from.mailbox().map(|m| m.to_string()).unwrap_or_default(),
                    ..Transaction::default()
                };
            }
            Event::Rcpt { to, .. } => self.rcpts.push(match to.mailbox() {
                Some(m) => m.to_string(),
                None => format!("postmaster@{domain}"),
            }),
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
