//! Real peers for ptt's tests, started on `127.0.0.1` with free ports and
//! stopped when dropped.
//!
//! ptt tests its protocol crates and servers against independent
//! implementations instead of mocks: BIND `named` with a TSIG key that allows
//! RFC 2136 UPDATE, an aiosmtpd sink (plain or STARTTLS) that records what it
//! received, Postfix `smtp-sink`, `swaks`, and dkimpy / pyspf through
//! `python3`.
//!
//! A peer that is not installed is a test failure whose message names the
//! Debian or pip package to install (`.ci/test` installs them all); it is never
//! skipped silently. Shared conformance data is found through the
//! `PTT_SHARED` environment variable (see [`shared`]).
//!
//! ```no_run
//! let dns = ptt_testkit::Bind::start("test.", &[("@", "TXT", "\"hello\"")]);
//! dns.nsupdate(&["update add x.test. 300 TXT \"v=spf1 -all\""]).unwrap();
//! assert_eq!(dns.dig("x.test.", "TXT"), vec!["\"v=spf1 -all\"".to_string()]);
//! ```
#![warn(missing_docs, unreachable_pub)]

pub mod bench_mail;
mod bind;
pub mod dns_zones;
pub mod dnssec;
pub mod https;
mod named;
mod process;
pub mod python;
pub mod shared;
mod smtp;
pub mod stack_offset;
mod tls;

pub use bind::{Bind, TsigKey};
pub use process::{Peer, free_port, require_program, wait_for_tcp};
pub use shared::{SharedData, shared_suite};
pub use smtp::{AiosmtpdSink, PostfixSink, ReceivedMessage, SinkTls, swaks};
pub use tls::{SignedCert, TestCert};
