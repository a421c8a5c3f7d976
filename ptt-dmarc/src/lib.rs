//! DMARC for ptt: policy records, the organizational domain, Sans-IO policy
//! discovery and evaluation, `Authentication-Results` and aggregate reports.
//!
//! ```
//! use ptt_dmarc::{DmarcRecord, Policy, psl::PublicSuffixList};
//!
//! let record = DmarcRecord::parse("v=DMARC1; p=reject; sp=quarantine; np=reject").unwrap();
//! assert_eq!(record.subdomain_policy(), Policy::Quarantine);
//! assert_eq!(record.to_string(), "v=DMARC1; p=reject; sp=quarantine; np=reject");
//!
//! let psl = PublicSuffixList::builtin();
//! assert_eq!(psl.organizational_domain("mail.example.co.uk").unwrap(), "example.co.uk");
//! ```
//!
//! The crate is fully deterministic: it does no networking, reads no clock
//! and draws no random numbers; DNS answers, time and the `pct` sampling
//! value come in as arguments. Without the default `std` feature it is
//! `no_std` + `alloc` (the aggregate-report parser needs `std`).
#![no_std]
#![warn(missing_docs, unreachable_pub)]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

pub mod authres;
pub mod eval;
pub mod psl;
pub mod record;
pub mod report;

pub use record::{Alignment, DmarcRecord, Policy, RecordError, ReportUri};
