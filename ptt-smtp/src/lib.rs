//! Sans-IO SMTP session machines: a [`Server`] and a [`Client`] that turn
//! bytes into events and decisions into bytes, with no networking code and
//! no clock. The caller owns the socket, the TLS and the time.
//!
//! A server session, driven by hand (a real driver reads the socket where
//! this example pushes bytes):
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use ptt_smtp::server::{Event, Input, Output, Server, ServerConfig};
//! use ptt_smtp::Reply;
//!
//! let now = Duration::ZERO; // any monotonic clock, as a Duration since an origin
//! let config = Arc::new(ServerConfig { hostname: "mx.example.org".into(), ..Default::default() });
//! let mut server = Server::new(config, now, false);
//! server.handle_input(Input::Receive(now, b"EHLO client.example\r\n\
//!     MAIL FROM:<a@example.net>\r\nRCPT TO:<b@example.org>\r\nRCPT TO:<c@example.com>\r\nDATA\r\n"));
//! server.handle_input(Input::Receive(now, b"Subject: hi\r\n\r\n..dot\r\n.\r\nQUIT\r\n"));
//! let (mut wire, mut message) = (Vec::new(), Vec::new());
//! loop {
//!     match server.poll_output() {
//!         Output::Transmit(bytes) => wire.extend(bytes),
//!         Output::Event(Event::Rcpt { to, .. }) if to.to_string() != "<b@example.org>" => {
//!             server.refuse(Reply::new(550, None, "no such user")).unwrap()
//!         }
//!         Output::Event(Event::DataChunk(bytes)) => message.extend(bytes),
//!         Output::Event(e) if e.needs_answer() => server.accept().unwrap(),
//!         Output::Event(_) => {}
//!         Output::Close => break,
//!         Output::StartTls | Output::Timeout(_) => unreachable!(),
//!     }
//! }
//! assert_eq!(message, b"Subject: hi\r\n\r\n.dot\r\n");
//! let wire = String::from_utf8(wire).unwrap();
//! assert!(wire.contains("550 no such user\r\n354 "));
//! assert!(wire.ends_with("250 2.0.0 OK\r\n221 2.0.0 Bye\r\n"));
//! ```
//!
//! The shape follows str0m and quinn-proto: [`server::Server::handle_input`]
//! takes bytes, timeouts and "TLS is up"; [`server::Server::poll_output`]
//! returns bytes to send, events, "start TLS now", "close", or the time of
//! the next timeout. Events that need a decision (HELO/EHLO, AUTH, MAIL,
//! RCPT, end of data, VRFY) are answered with
//! [`server::Server::accept`] or [`server::Server::refuse`]; the machine
//! holds further pipelined commands until then.
//!
//! The [`client::Client`] has the same shape. Without default features the
//! crate is `no_std` with `alloc`.
#![cfg_attr(not(feature = "std"), no_std)]
#![warn(missing_docs, unreachable_pub)]

extern crate alloc;

pub mod address;
pub mod client;
pub mod command;
pub mod data;
pub mod reply;
pub mod sasl;
pub mod server;

#[cfg(test)]
mod tests;

pub use address::{AddressError, Domain, ForwardPath, Mailbox, ReversePath};
pub use client::{Client, ClientConfig, ClientEvent, Message, TlsMode, TransactionResult};
pub use command::{Command, CommandError, MailParams, RcptParams};
pub use reply::{EnhancedCode, Reply, ReplyError, ReplyParser};
pub use sasl::{Credentials, Mechanism};
pub use server::{Event, Server, ServerConfig};

/// A point in time: the caller's monotonic clock, as the time elapsed since
/// an origin of its choosing (e.g. `Instant::now() - start`).
pub type Time = core::time::Duration;
