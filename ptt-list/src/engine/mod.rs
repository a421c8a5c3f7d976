//! The decisions: what an incoming message, a delivery result or the
//! passing of time does to the [`State`], and what goes out.

use alloc::collections::BTreeSet;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use hmac::{Hmac, Mac};
use mail_parser::{MessageParser, MimeHeaders};
use sha2::Sha256;

use crate::address::{Address, AddressError, Role, check_list_name, classify};
use crate::dsn::{Severity, parse_dsn};
use crate::message::{Notice, Raw, base32, field_bytes, percent_encode};
use crate::model::*;

mod admin;
mod bounces;
mod commands;
mod fanout;
mod notices;
mod posts;
mod retries;
mod rewrite;
mod tokens;

pub use self::fanout::{Batch, Delivery, DeliveryRef, FanOut, delivery_for, plan_post};
pub use self::rewrite::author;
pub use self::tokens::one_click_token;
#[allow(unused_imports)]
use self::{bounces::*, fanout::*, notices::*, rewrite::*, tokens::*};

/// Randomness for one call (tokens and Message-IDs); give fresh random bytes.
#[derive(Debug, Clone, Copy)]
pub struct Entropy(pub [u8; 20]);

impl Entropy {
    fn token(&self) -> String {
        base32(self.0.get(..10).unwrap_or_default())
    }
    fn id_part(&self) -> String {
        base32(self.0.get(10..).unwrap_or_default())
    }
}

/// An incoming message for one recipient.
#[derive(Debug, Clone, Copy)]
pub struct Incoming<'a> {
    /// The SMTP reverse path (empty for bounces).
    pub mail_from: &'a str,
    /// The recipient (one of the list's addresses).
    pub rcpt: &'a str,
    /// The message as received.
    pub data: &'a [u8],
    /// DMARC verdict and the author domain's policy.
    pub auth: Authentication,
}

/// The answer to give to the SMTP client for this message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// 250: taken (which may mean silently dropped; see the events).
    Accept,
    /// A refusal with its code, enhanced code and text.
    Reject {
        /// Basic code (550, 552, ...).
        code: u16,
        /// Enhanced status code.
        enhanced: &'static str,
        /// Text.
        text: String,
    },
}

/// A message the list sends (notices, confirmations, owner mail).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// Reverse path (empty: null sender, as for automatic replies).
    pub mail_from: String,
    /// Recipients.
    pub rcpts: Vec<String>,
    /// The message.
    pub data: Vec<u8>,
}

/// What happened, for logs and tests.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// A post went out (or is about to).
    Posted {
        /// List.
        list: String,
        /// Post number.
        post: u64,
    },
    /// A post is held.
    Held {
        /// List.
        list: String,
        /// Token of the accept/reject addresses.
        token: String,
        /// Why.
        reason: HoldReason,
    },
    /// A message was taken and dropped.
    Dropped {
        /// Why.
        reason: &'static str,
    },
    /// A subscription change waits.
    Pending {
        /// List.
        list: String,
        /// Token.
        token: String,
        /// Who it waits for.
        stage: Stage,
    },
    /// An address joined.
    Subscribed(Address),
    /// An address left.
    Unsubscribed(Address),
    /// A bounce was counted; `score` is the new score.
    Bounce {
        /// Subscriber.
        rcpt: Address,
        /// Score after this bounce.
        score: f64,
    },
    /// A subscriber was removed for bouncing.
    RemovedForBounces(Address),
    /// A delivery was queued for a retry.
    Queued {
        /// Subscriber.
        rcpt: Address,
        /// When it is retried.
        next: u64,
    },
    /// A held post, a pending request or a retry expired.
    Expired(String),
    /// A message was answered (help, roster, refusals).
    Answered(&'static str),
}

/// Everything a call decided.
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    /// What to answer the SMTP client.
    pub reply: Reply,
    /// Messages to send.
    pub send: Vec<Outgoing>,
    /// A post to fan out.
    pub fanout: Option<FanOut>,
    /// What to persist, before acknowledging (see the `store` module).
    pub changes: Changes,
    /// What happened.
    pub events: Vec<Event>,
}

impl Output {
    fn accept() -> Self {
        Output {
            reply: Reply::Accept,
            send: Vec::new(),
            fanout: None,
            changes: Changes::default(),
            events: Vec::new(),
        }
    }
    fn reject(code: u16, enhanced: &'static str, text: impl Into<String>) -> Self {
        Output {
            reply: Reply::Reject {
                code,
                enhanced,
                text: text.into(),
            },
            ..Output::accept()
        }
    }
    fn dropped(reason: &'static str) -> Self {
        let mut o = Output::accept();
        o.events.push(Event::Dropped { reason });
        o
    }
}

/// The outcome of one delivery attempt, reported by the relay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryResult {
    /// Accepted by the recipient's server.
    Delivered,
    /// A 4xx or a connection failure: retry later.
    Temporary(String),
    /// A 5xx: give up.
    Permanent(String),
}

/// Why an administrative change was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ListError {
    /// `ptt add` of a name that is taken (names are unique across domains,
    /// since the file is `lists/NAME.json`).
    #[error("list {0:?} exists")]
    Exists(String),
    /// No list by that name (on that domain).
    #[error("unknown list {0:?}")]
    Unknown(String),
    /// A bad address or list name.
    #[error(transparent)]
    Address(#[from] AddressError),
    /// A bad domain.
    #[error("domain {input:?}: {why}")]
    Domain {
        /// As given.
        input: String,
        /// What is wrong.
        why: &'static str,
    },
    /// A list needs at least one moderator.
    #[error("list {0:?} would have no moderator left")]
    LastModerator(String),
    /// Removing someone who is not a moderator.
    #[error("{address} is not a moderator of {list:?}")]
    NotModerator {
        /// List.
        list: String,
        /// Address.
        address: String,
    },
}

struct Ctx<'a> {
    now: u64,
    entropy: &'a Entropy,
    seq: u32,
}

impl Ctx<'_> {
    fn message_id(&mut self, domain: &str) -> String {
        self.seq += 1;
        format!(
            "<{}.{}.{}@{domain}>",
            self.now,
            self.entropy.id_part(),
            self.seq
        )
    }
}

impl State {
    /// Whether `rcpt` is one of the addresses of a list here (for the SMTP
    /// server's RCPT answer).
    pub fn accepts(&self, rcpt: &str) -> bool {
        self.route(rcpt).is_some()
    }

    fn route(&self, rcpt: &str) -> Option<(String, Role)> {
        let a = Address::parse(rcpt).ok()?;
        let names = self
            .lists
            .values()
            .filter(|l| l.domain == a.domain())
            .map(|l| l.name.as_str());
        classify(a.local(), names).map(|(n, r)| (n.to_string(), r))
    }

    /// Decides what to do with a message to one of the lists' addresses.
    pub fn handle(&mut self, now: u64, entropy: &Entropy, input: &Incoming<'_>) -> Output {
        let Some((name, role)) = self.route(input.rcpt) else {
            return Output::reject(
                550,
                "5.1.1",
                format!("<{}>: no such list address", input.rcpt),
            );
        };
        let Some(list) = self.lists.get(&name) else {
            return Output::reject(550, "5.1.1", "no such list");
        };
        if input.data.len() as u64 > list.settings.max_size {
            return Output::reject(
                552,
                "5.3.4",
                format!("message larger than {} octets", list.settings.max_size),
            );
        }
        let mut ctx = Ctx {
            now,
            entropy,
            seq: 0,
        };
        let raw = Raw::parse(input.data);
        // Every address of the list, each to what answers it.
        match role {
            Role::Post => self.on_post(&mut ctx, &name, &raw, input),
            Role::Owner => self.to_owners(&name, &raw),
            Role::Return { post, rcpt } => self.on_bounce(&mut ctx, &name, post, &rcpt, input.data),
            Role::Help => {
                self.command(&mut ctx, input, &raw, |s, ctx, who| s.help(ctx, &name, who))
            }
            Role::Subscribers => self.command(&mut ctx, input, &raw, |s, ctx, who| {
                s.roster(ctx, &name, who)
            }),
            Role::Subscribe => self.command(&mut ctx, input, &raw, |s, ctx, who| {
                s.request(ctx, &name, Change::Subscribe, who)
            }),
            Role::Unsubscribe => self.command(&mut ctx, input, &raw, |s, ctx, who| {
                s.request(ctx, &name, Change::Unsubscribe, who)
            }),
            Role::Confirm(token) => self.command(&mut ctx, input, &raw, |s, ctx, who| {
                s.confirm(ctx, &name, &token, who)
            }),
            Role::Accept(token) => self.command(&mut ctx, input, &raw, |s, ctx, who| {
                s.decide(ctx, &name, &token, true, who, input.mail_from)
            }),
            Role::Reject(token) => self.command(&mut ctx, input, &raw, |s, ctx, who| {
                s.decide(ctx, &name, &token, false, who, input.mail_from)
            }),
        }
    }

    /// `NAME-owner`: forwarded to the moderators, marked with `X-Loop` so
    /// that it never comes round again.
    fn to_owners(&self, name: &str, raw: &Raw) -> Output {
        let Some(list) = self.lists.get(name) else {
            return Output::reject(550, "5.1.1", "no such list");
        };
        let loop_mark = list.role_address(&Role::Owner);
        if raw
            .all("X-Loop")
            .any(|f| f.value().eq_ignore_ascii_case(&loop_mark))
        {
            return Output::dropped("loop on the owner address");
        }
        let mut fwd = raw.clone();
        fwd.fields.insert(
            0,
            crate::message::Field {
                name: "X-Loop".into(),
                raw: field_bytes("X-Loop", &loop_mark),
            },
        );
        let mut out = Output::accept();
        out.send.push(Outgoing {
            mail_from: String::new(),
            rcpts: list.moderators.iter().map(ToString::to_string).collect(),
            data: fwd.to_bytes(),
        });
        out.events
            .push(Event::Answered("forwarded to the moderators"));
        out
    }
}

impl Output {
    fn merge_from(&mut self, other: Output) {
        if other.reply != Reply::Accept {
            self.reply = other.reply;
        }
        self.send.extend(other.send);
        if other.fanout.is_some() {
            self.fanout = other.fanout;
        }
        self.changes.merge(other.changes);
        self.events.extend(other.events);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn percent_encode_into_matches_percent_encode(s in "\\PC{0,24}") {
            let mut out = String::from("x");
            percent_encode_into(&s, &mut out);
            prop_assert_eq!(out, format!("x{}", percent_encode(&s)));
        }
    }

    /// The plan and the retry path make the same deliveries, in domain
    /// order, and the tokens are the ones `one_click` checks.
    #[test]
    fn plan_matches_delivery_for() {
        let mut l = List::new("ptt-dev", "lists.example", &[9; 32]);
        for a in [
            "Bob@example.net",
            "a+tag@other.example",
            "carol@example.net",
            "d@z.example",
        ] {
            l.subscribers.insert(Address::parse(a).unwrap());
        }
        for url in [None, Some("https://lists.example/u?x=1")] {
            l.settings.one_click_url = url.map(String::from);
            let fan = plan_post(&l, 4, b"Subject: s\r\n\r\nbody\r\n", DmarcPolicy::Absent);
            assert_eq!(fan.len(), 4);
            let got: Vec<Delivery> = fan.deliveries().map(|d| d.to_delivery()).collect();
            let want: Vec<Delivery> = l
                .subscribers
                .iter()
                .map(|a| delivery_for(&l, 4, a))
                .collect();
            assert_eq!(got, want);
            let batches: Vec<(&str, Vec<&str>)> = fan
                .batches()
                .map(|b| (b.domain, b.deliveries().map(|d| d.rcpt).collect()))
                .collect();
            assert_eq!(
                batches,
                [
                    ("example.net", vec!["Bob@example.net", "carol@example.net"]),
                    ("other.example", vec!["a+tag@other.example"]),
                    ("z.example", vec!["d@z.example"]),
                ]
            );
            let d = fan.get(2).unwrap();
            assert_eq!(
                d.mail_from,
                "ptt-dev-return-4-a+tag=other.example@lists.example"
            );
            let header = String::from_utf8(d.header()).unwrap();
            let token = one_click_token(&l, &Address::parse("A+TAG@other.example").unwrap());
            match url {
                Some(_) => assert_eq!(
                    header,
                    format!(
                        "List-Unsubscribe: <https://lists.example/u?x=1&list=ptt-dev&address=a%2Btag%40other.example&token={token}>,\r\n <mailto:ptt-dev-unsubscribe@lists.example?subject=unsubscribe>\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
                    )
                ),
                None => assert_eq!(
                    header,
                    "List-Unsubscribe: <mailto:ptt-dev-unsubscribe@lists.example?subject=unsubscribe>\r\n"
                ),
            }
            let msg = fan.message(&d);
            assert!(msg.starts_with(header.as_bytes()));
            assert!(msg.ends_with(&fan.common));
            assert_eq!(msg.len(), header.len() + fan.common.len());
        }
    }
}
