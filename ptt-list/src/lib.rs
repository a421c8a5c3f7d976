//! ptt-list: a mailing-list manager's decisions, without I/O, and its state
//! on a FAT32 image or in a directory.
//!
//! The decision logic is fully deterministic: it opens no socket and no
//! file, reads no clock and draws no random number. The caller passes the
//! time (Unix seconds) and fresh random bytes ([`Entropy`]) into each call,
//! and gets back what to answer, what to send and what to persist
//! ([`Output`]). The [`store`] module (feature `std`) persists the
//! [`State`] atomically in the original ptt's layout: `lists/NAME.json`,
//! `bounces.json`, `temp.json` and `tmp/`.
//!
//! ```
//! use ptt_list::{Address, Authentication, Entropy, Incoming, Policy, State};
//!
//! let mut state = State::default();
//! let moderator = Address::parse("mod@example.org").unwrap();
//! state.create_list("ptt-dev", "lists.example", &[7; 32], &[moderator], Policy::Subscribers).unwrap();
//! let alice = Address::parse("alice@example.net").unwrap();
//! state.set_subscribed("ptt-dev", None, &[alice], true).unwrap();
//!
//! let post = b"From: Alice <alice@example.net>\r\nSubject: hello\r\n\r\nHi all\r\n";
//! let out = state.handle(1_700_000_000, &Entropy([1; 20]), &Incoming {
//!     mail_from: "alice@example.net",
//!     rcpt: "ptt-dev@lists.example",
//!     data: post,
//!     auth: Authentication::default(),
//! });
//! let fan = out.fanout.unwrap();
//! let d = fan.get(0).unwrap();
//! assert_eq!(d.mail_from, "ptt-dev-return-1-alice=example.net@lists.example");
//! let text = String::from_utf8(fan.message(&d)).unwrap();
//! assert!(text.contains("List-Id: <ptt-dev.lists.example>"));
//! assert!(text.contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click"));
//! assert!(out.changes.lists.contains("ptt-dev")); // the counter moved: persist it
//! ```
//!
//! The addresses a list answers to are described in [`address`].
//!
//! The crate is not `no_std`: it parses MIME (the author, Content-Type for
//! the footer, RFC 3464 reports) with `mail-parser`, which needs `std`.
//! Without the default feature `std` only the storage backends go away.
//!
//! RFC 8058 one-click: posts carry an HTTPS `List-Unsubscribe` URL
//! (`Settings::one_click_url`, by default `https://DOMAIN/lists/unsubscribe`)
//! with the list, the address and an HMAC token; the web front end that
//! receives the POST calls [`State::one_click`], which needs no stored
//! token.
#![warn(missing_docs, unreachable_pub)]

extern crate alloc;

pub mod address;
pub mod dsn;
mod engine;
mod message;
pub mod model;
#[cfg(feature = "std")]
pub mod store;

pub use address::{Address, AddressError, Role};
pub use engine::{
    Batch, Delivery, DeliveryRef, DeliveryResult, Entropy, Event, FanOut, Incoming, ListError,
    Outgoing, Output, Reply, author, delivery_for, one_click_token, plan_post,
};
pub use message::rfc5322_date;
pub use model::{
    Authentication, Changes, DmarcPolicy, Held, HoldReason, List, Pending, Policy, Retry, Settings,
    Stage, State,
};
