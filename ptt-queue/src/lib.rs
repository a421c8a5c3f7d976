//! ptt-queue: a mail relay's queue without I/O.
//!
//! It keeps, for each queued message, the envelope and what became of
//! each recipient ([`Entry`]), decides when to try again and when to give
//! up ([`RetryPolicy`], [`Queue`]), composes the delivery reports a sender
//! gets back (RFC 3464, [`dsn`]), rewrites and restores forwarded senders
//! (SRS, [`srs`]) and orders a domain's MX hosts ([`route`]).
//!
//! It is fully deterministic: no socket, no file, no clock, no random
//! number. Time (Unix seconds) and randomness are passed in; the caller
//! keeps the files (writing each [`Entry`] as [`Output::Save`] says, with
//! serde) and makes the connections. It is `no_std` with `alloc`, so a
//! unikernel can drive the same queue as the tokio relay in `ptt-bins`.
//!
//! ```
//! use ptt_queue::{Entry, Outcome, Output, Queue, Report, RetryPolicy};
//! let mut queue = Queue::new(RetryPolicy::default());
//! let now = 1_700_000_000;
//! queue.insert(Entry::new("q1", "alice@example.org", &["bob@example.net"], now));
//! queue.handle_timeout(now);
//! while let Some(output) = queue.poll_output() {
//!     match output {
//!         Output::Attempt { id, recipients } => {
//!             // … deliver, then:
//!             let done = Report { status: "2.0.0".into(), remote_mta: Some("mx.example.net".into()),
//!                                 diagnostic: "smtp; 250 2.0.0 ok".into(), at: now };
//!             let results = recipients.into_iter().map(|r| (r, Outcome::Delivered(done.clone()))).collect();
//!             queue.finish_attempt(&id, results, now).unwrap();
//!         }
//!         Output::Save { .. } => { /* write the entry */ }
//!         Output::Remove { id } => assert_eq!(id, "q1"),
//!         Output::Notify { .. } => unreachable!("nothing failed"),
//!     }
//! }
//! assert!(queue.is_empty());
//! ```
#![cfg_attr(not(feature = "std"), no_std)]
#![warn(missing_docs, unreachable_pub)]

extern crate alloc;

pub mod dsn;
mod entry;
pub mod mta_sts;
mod policy;
mod queue;
pub mod route;
pub mod srs;

pub use entry::{Entry, Notify, Outcome, Recipient, RecipientState, Report, Return};
pub use policy::RetryPolicy;
pub use queue::{NoticeKind, Output, Queue, QueueError};
