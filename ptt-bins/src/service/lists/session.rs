//! One SMTP session from the receiver: RCPT answered from the list state
//! (every address ptt-list defines, nothing else), and at the end of the
//! data the engine's decision for each list address, committed, then
//! sent ([`super::outbound`]).

use std::sync::Arc;

use ptt_list::{Authentication, Changes, DmarcPolicy, Event as ListEvent, Incoming, Output, Reply};
use ptt_smtp::server::{Event, Server};
use ptt_smtp::{EnhancedCode, Reply as SmtpReply};

use super::Shared;
use crate::net::smtp::{Answer, SessionHandler};
use crate::service::trace::unix_now;
use crate::service::transaction::Transaction;

fn reply(code: u16, class: u8, subject: u16, detail: u16, text: &str) -> SmtpReply {
    SmtpReply::new(code, Some(EnhancedCode::new(class, subject, detail)), text)
}

/// The DMARC result the receiver recorded in its `Authentication-Results`
/// (the topmost field naming our host: the receiver removes forged ones
/// before adding its own), with the author domain's policy from its
/// comment (`p=REJECT sp=… dis=…`; the stricter of `p` and `sp`).
pub(crate) fn authentication(message: &[u8], hostname: &str) -> Authentication {
    let head = crate::authn::header_block(message);
    let ours = ptt_dkim::split_header_fields(head)
        .into_iter()
        .filter(|f| f.name.eq_ignore_ascii_case(b"authentication-results"))
        .filter_map(|f| {
            ptt_dmarc::authres::AuthenticationResults::parse(&String::from_utf8_lossy(f.value()))
                .ok()
        })
        .find(|ar| ar.authserv_id().eq_ignore_ascii_case(hostname));
    let Some(ar) = ours else {
        return Authentication::default();
    };
    let Some(dmarc) = ar.method("dmarc").next() else {
        return Authentication::default();
    };
    let result = dmarc.result().to_ascii_lowercase();
    let rank = |p: DmarcPolicy| match p {
        DmarcPolicy::Absent => 0,
        DmarcPolicy::None => 1,
        DmarcPolicy::Quarantine => 2,
        DmarcPolicy::Reject => 3,
    };
    let mut author_policy = DmarcPolicy::Absent;
    for comment in dmarc.comments() {
        for word in comment.split_whitespace() {
            let Some((key, value)) = word.split_once('=') else {
                continue;
            };
            if !matches!(key.to_ascii_lowercase().as_str(), "p" | "sp") {
                continue;
            }
            let p = match value.to_ascii_lowercase().as_str() {
                "none" => DmarcPolicy::None,
                "quarantine" => DmarcPolicy::Quarantine,
                "reject" => DmarcPolicy::Reject,
                _ => continue,
            };
            if rank(p) > rank(author_policy) {
                author_policy = p;
            }
        }
    }
    Authentication {
        dmarc_pass: result == "pass",
        dmarc_fail: result == "fail",
        author_policy,
    }
}

/// One session.
pub(crate) struct Session {
    shared: Arc<Shared>,
    tx: Transaction,
}

impl Session {
    pub(crate) fn new(shared: Arc<Shared>) -> Session {
        Session {
            shared,
            tx: Transaction::default(),
        }
    }

    /// RCPT: a list address of our domain, or `550 5.1.1`.
    async fn rcpt(&self, rcpt: String) -> Result<(), SmtpReply> {
        let shared = self.shared.clone();
        let asked = rcpt.clone();
        let known =
            tokio::task::spawn_blocking(move || shared.state.read(|s| s.accepts(&asked))).await;
        match known {
            Ok(Ok(true)) => Ok(()),
            Ok(Ok(false)) => Err(reply(
                550,
                5,
                1,
                1,
                &format!("<{rcpt}>: no such list address"),
            )),
            Ok(Err(e)) => {
                tracing::error!(service = "lists", "reading the list state: {e}");
                Err(reply(451, 4, 3, 0, "the list state cannot be read now"))
            }
            Err(_) => Err(reply(451, 4, 3, 0, "the list state cannot be read now")),
        }
    }

    async fn end_of_data(&mut self) -> Answer {
        let Transaction {
            from, rcpts, data, ..
        } = self.tx.take();
        let shared = self.shared.clone();
        let auth = authentication(&data, &shared.hostname);
        let now = unix_now();
        let (sender, to) = (from.clone(), rcpts.clone());
        let decided = tokio::task::spawn_blocking(move || {
            shared.state.change(|state| {
                let mut changes = Changes::default();
                let mut outputs = Vec::new();
                for rcpt in &to {
                    let out = state.handle(
                        now,
                        &super::entropy(),
                        &Incoming {
                            mail_from: &sender,
                            rcpt,
                            data: &data,
                            auth,
                        },
                    );
                    changes.merge(out.changes.clone());
                    outputs.push(out);
                }
                (outputs, changes)
            })
        })
        .await;
        let outputs: Vec<Output> = match decided {
            Ok(Ok(outputs)) => outputs,
            Ok(Err(e)) => {
                tracing::error!(service = "lists", "committing the list state: {e}");
                return Answer::Refuse(reply(451, 4, 3, 0, "the list state cannot be written now"));
            }
            Err(_) => return Answer::Refuse(reply(451, 4, 3, 0, "the list server failed")),
        };
        let mut refusal = None;
        let mut taken = false;
        let mut unsent = Vec::new();
        for (rcpt, out) in rcpts.iter().zip(&outputs) {
            log_events(&from, rcpt, &out.events);
            match &out.reply {
                Reply::Accept => taken = true,
                Reply::Reject {
                    code,
                    enhanced,
                    text,
                } => {
                    tracing::info!(service = "lists", from, to = rcpt, code, text, "refused");
                    refusal.get_or_insert_with(|| {
                        let e = enhanced
                            .split('.')
                            .filter_map(|n| n.parse::<u16>().ok())
                            .collect::<Vec<_>>();
                        match e.as_slice() {
                            [c, s, d] => reply(*code, *c as u8, *s, *d, text),
                            _ => SmtpReply::new(*code, None, text),
                        }
                    });
                }
            }
            unsent.extend(super::outbound::send(&self.shared, out).await);
        }
        if !taken {
            return Answer::Refuse(
                refusal.unwrap_or_else(|| reply(550, 5, 1, 1, "no such list address")),
            );
        }
        if !unsent.is_empty() {
            // What was decided is kept; the answer could not go out: the
            // sender tries again, and the engine answers afresh.
            return Answer::Refuse(reply(
                451,
                4,
                4,
                0,
                &format!(
                    "the list's answer cannot be sent now: {}",
                    unsent.join("; ")
                ),
            ));
        }
        Answer::AcceptWith(reply(250, 2, 0, 0, "taken by the list server"))
    }
}

/// One log line per thing the engine did.
fn log_events(from: &str, rcpt: &str, events: &[ListEvent]) {
    for event in events {
        match event {
            ListEvent::Posted { list, post } => {
                tracing::info!(service = "lists", from, list, post, "posted")
            }
            ListEvent::Held { list, reason, .. } => {
                tracing::info!(service = "lists", from, list, reason = ?reason, "post held for the moderators")
            }
            ListEvent::Subscribed(a) => {
                tracing::info!(service = "lists", to = rcpt, address = %a, "subscribed")
            }
            ListEvent::Unsubscribed(a) => {
                tracing::info!(service = "lists", to = rcpt, address = %a, "unsubscribed")
            }
            ListEvent::Bounce { rcpt: a, score } => {
                metrics::counter!(crate::service::metrics::LIST_BOUNCES).increment(1);
                tracing::info!(service = "lists", address = %a, score, "bounce counted")
            }
            ListEvent::RemovedForBounces(a) => {
                tracing::info!(service = "lists", address = %a, "removed for bouncing")
            }
            other => tracing::info!(service = "lists", from, to = rcpt, event = ?other, "list"),
        }
    }
}

impl SessionHandler for Session {
    async fn event(&mut self, event: Event, session: &Server) -> Answer {
        if let Event::Rcpt { to, .. } = &event {
            let rcpt = to.mailbox().map(|m| m.to_string()).unwrap_or_default();
            if let Err(refused) = self.rcpt(rcpt).await {
                return Answer::Refuse(refused);
            }
        }
        let max = session.config().max_message_size;
        match self.tx.absorb(event, max, &self.shared.domain) {
            Ok(answer) => answer,
            Err(Event::DataEnd { .. }) => self.end_of_data().await,
            Err(Event::Auth { .. } | Event::Vrfy(_)) => {
                Answer::Refuse(reply(502, 5, 5, 1, "not here"))
            }
            Err(_) => Answer::Accept,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_receivers_dmarc_result_and_the_stricter_policy_are_read() {
        let m = b"Authentication-Results: other.example; dmarc=pass (p=NONE)\r\n\
Authentication-Results: mx.example.test;\r\n spf=fail smtp.mailfrom=a@big.example;\r\n \
dkim=none;\r\n dmarc=fail (p=QUARANTINE sp=REJECT dis=QUARANTINE) header.from=big.example\r\n\
From: a@big.example\r\n\r\nbody\r\n";
        let a = authentication(m, "mx.example.test");
        assert!(a.dmarc_fail && !a.dmarc_pass);
        assert_eq!(a.author_policy, DmarcPolicy::Reject);
        // Results of another host are not ours to trust.
        let a = authentication(m, "mx.other.test");
        assert_eq!(a, Authentication::default());
        let pass = b"Authentication-Results: mx.example.test; dmarc=pass (p=NONE dis=NONE) header.from=x.example\r\n\r\n";
        let a = authentication(pass, "mx.example.test");
        assert!(a.dmarc_pass && !a.dmarc_fail);
        assert_eq!(a.author_policy, DmarcPolicy::None);
    }
}
