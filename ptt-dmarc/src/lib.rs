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
//! # Wiring into a receiver
//!
//! The SPF and DKIM results come in as this crate's plain types, so any
//! SPF/DKIM implementation plugs in with a `match` on its result enum:
//!
//! ```
//! use ptt_dmarc::authres::{AuthenticationResults, items};
//! use ptt_dmarc::eval::*;
//! use ptt_dmarc::psl::PublicSuffixList;
//!
//! let psl = PublicSuffixList::builtin(); // once, at start-up
//! let spf = SpfOutcome::mail_from(SpfResult::Pass, "bounces.example.com");
//! let dkim = vec![DkimOutcome::new(DkimResult::Pass, "example.com").with_selector("s1")];
//! let input = AuthInput { spf: Some(spf.clone()), dkim: dkim.clone() };
//! let sample = 17; // random in 0..100, drawn by the caller
//! let verdict = Evaluation::new(&psl, "example.com", input, sample)
//!     .unwrap()
//!     .run(|q| match (q.qtype, q.name.as_str()) {
//!         // A real receiver asks its resolver here (TXT, or A for `np`).
//!         (QueryType::Txt, "_dmarc.example.com") => Answer::txt("v=DMARC1; p=reject"),
//!         _ => Answer::NxDomain,
//!     });
//! let mut ar = AuthenticationResults::new("mx.example.org").unwrap();
//! ar.push(items::spf(&spf, Some("alice@bounces.example.com")).unwrap());
//! for d in &dkim {
//!     ar.push(items::dkim(d).unwrap());
//! }
//! ar.push(items::dmarc(&verdict).unwrap());
//! assert_eq!(
//!     ar.to_header_field(),
//!     "Authentication-Results: mx.example.org;\r\n\
//!      \tspf=pass smtp.mailfrom=alice@bounces.example.com;\r\n\
//!      \tdkim=pass header.d=example.com header.s=s1;\r\n\
//!      \tdmarc=pass (p=REJECT dis=NONE) header.from=example.com\r\n"
//! );
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
pub mod from;
pub mod psl;
pub mod record;
pub mod report;

pub use record::{Alignment, DmarcRecord, Policy, RecordError, ReportUri};
