//! ptt-arc: ARC (Authenticated Received Chain, RFC 8617) chain validation
//! and sealing.
#![cfg_attr(not(feature = "std"), no_std)]
#![warn(missing_docs, unreachable_pub)]

extern crate alloc;

pub mod authres;
pub mod chain;
pub mod header;
pub mod message;
pub mod tags;
