//! Delivery reports (RFC 3464) to the senders of queued mail, handed to
//! the signer (so that they are DKIM-signed as the domain's other mail),
//! which passes them back to the relay's queue like any message, from `<>`.

use ptt_queue::dsn::{Dsn, compose};
use ptt_queue::{Entry, NoticeKind};

use crate::service::hop::{Handoff, Hop};
use crate::service::trace::rfc5322_date;

/// Sends reports.
pub(crate) struct Notifier {
    /// The signer.
    pub(crate) signer: Option<Hop>,
    /// Our host name (`Reporting-MTA`).
    pub(crate) hostname: String,
    /// Our domain (the report's `From:` is `MAILER-DAEMON@` it).
    pub(crate) domain: String,
}

impl Notifier {
    /// Composes and hands on the report; `true` once it is off our hands
    /// (taken, or refused for good, which is logged: a report is never
    /// tried forever), `false` to ask again later.
    pub(crate) async fn send(
        &self,
        entry: &Entry,
        kind: NoticeKind,
        recipients: &[String],
        original: &[u8],
        now: u64,
    ) -> bool {
        let Some(signer) = &self.signer else {
            tracing::error!(
                service = "relay",
                id = entry.id,
                "no [signer] to send a delivery report through"
            );
            return false;
        };
        let mut random = [0u8; 8];
        let _ = crate::random::fill(&mut random);
        let token: String = random.iter().map(|b| format!("{b:02x}")).collect();
        let boundary = format!("=_ptt_{token}");
        let message_id = format!("<dsn.{}.{token}@{}>", entry.id, self.hostname);
        let from = format!("MAILER-DAEMON@{}", self.domain);
        let message = compose(&Dsn {
            entry,
            kind,
            recipients,
            original,
            reporting_mta: &self.hostname,
            from: &from,
            date: &rfc5322_date(now),
            arrival_date: &rfc5322_date(entry.arrived),
            message_id: &message_id,
            boundary: &boundary,
        });
        match signer
            .send("", std::slice::from_ref(&entry.from), &message)
            .await
        {
            Handoff::Taken { .. } => {
                tracing::info!(service = "relay", id = entry.id, to = entry.from, kind = ?kind, about = recipients.join(","), "delivery report sent");
                true
            }
            Handoff::Refused(reply) => {
                tracing::error!(service = "relay", id = entry.id, to = entry.from, %reply, "the signer refused a delivery report; dropped");
                true
            }
            Handoff::Deferred(why) => {
                tracing::warn!(
                    service = "relay",
                    id = entry.id,
                    "delivery report not sent now: {why}"
                );
                false
            }
        }
    }
}
