//! ARC, the Authenticated Received Chain (RFC 8617): chain validation and
//! sealing, Sans-IO.
//!
//! This crate does no networking and reads no clock: key records are asked
//! for and handed in by the caller ([`verify::ArcVerifier::poll`] /
//! [`verify::ArcVerifier::answer`], the shape of ptt-dns every ptt
//! evaluator shares), and the seal's timestamp is an
//! argument. Canonicalization, body hashing and the signatures are
//! ptt-dkim's (an ARC-Message-Signature is verified as a DKIM signature).
//!
//! ```
//! use ptt_arc::header::ChainStatus;
//! use ptt_arc::seal::{SealOutcome, Sealer};
//! use ptt_arc::verify::{ArcVerifier, Answer};
//! use ptt_dkim::{KeyKind, generate_key};
//!
//! // This hop's key, published at arc._domainkey.lists.example.org.
//! let key = generate_key(KeyKind::Ed25519, [7; 32]).unwrap().key;
//! let record = key.key_record().to_string();
//!
//! let message = b"From: alice@example.org\r\nTo: list@lists.example.org\r\n\
//!     Subject: hi\r\nAuthentication-Results: lists.example.org; spf=pass\r\n\
//!     \r\nHello.\r\n";
//!
//! // Validate the incoming chain (none yet), then seal.
//! let verdict = ArcVerifier::from_message(message).verdict().unwrap();
//! assert_eq!(verdict.status, ChainStatus::None);
//! let sealer = Sealer::new(&key, "lists.example.org", "arc", "lists.example.org").unwrap();
//! let SealOutcome::Sealed(set) = sealer.seal(message, &verdict, 1_700_000_000).unwrap() else {
//!     unreachable!("a chain with cv=none can be sealed")
//! };
//! let sealed = set.prepend_to(message);
//!
//! // The next hop validates it: one key query, answered from "DNS".
//! let next = ArcVerifier::from_message(&sealed);
//! let verdict = ptt_dns::run(next, |query| {
//!     assert_eq!(query.name, "arc._domainkey.lists.example.org");
//!     Answer::Txt(vec![record.clone().into_bytes()])
//! });
//! assert_eq!(verdict.status, ChainStatus::Pass);
//! assert_eq!(verdict.to_string(), "cv=pass (1 set, oldest-pass=0)");
//! ```
//!
//! Modules: [`header`] (the three header fields, `parse` and `Display`),
//! [`tags`] (the strict tag-list syntax), [`chain`] (collecting the sets,
//! structure and `cv=` rules), [`verify`] (validation), [`seal`] (sealing),
//! [`authres`] (the AAR payload from Authentication-Results), [`message`]
//! (header splitting).
#![cfg_attr(not(feature = "std"), no_std)]
#![warn(missing_docs, unreachable_pub)]

extern crate alloc;

pub mod authres;
pub mod chain;
pub mod dkim_glue;
pub mod header;
pub mod message;
pub mod seal;
pub mod tags;
pub mod verify;

pub use dkim_glue::SigningKey;
