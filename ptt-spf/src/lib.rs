//! ptt-spf: Sender Policy Framework (RFC 7208) without I/O.
//!
//! The evaluator is fully deterministic: it has no networking code, reads no
//! clock and keeps no global state. It yields DNS questions ([`Query`]: a name
//! and a type) and takes their answers ([`Answer`]: records, NXDOMAIN, or an
//! error, which becomes `temperror`); the caller does the lookups, with
//! whatever resolver, cache and timeouts it has, and may run several at once.
//!
//! ```
//! use ptt_spf::{Answer, Evaluator, QueryType, ReceivedSpf, Request, SpfResult};
//!
//! let request = Request::mail_from("192.0.2.10".parse().unwrap(), "alice@example.org", "mx.example.org")
//!     .with_receiver("mx.example.net");
//! let out = Evaluator::run(request.clone(), |q| match (q.name.as_str(), q.qtype) {
//!     ("example.org", QueryType::Txt) => Answer::Txt(vec![b"v=spf1 a:mail.example.org -all".to_vec()]),
//!     ("mail.example.org", QueryType::A) => Answer::A(vec!["192.0.2.10".parse().unwrap()]),
//!     _ => Answer::NxDomain,
//! });
//! assert_eq!(out.result, SpfResult::Pass);
//! let header = ReceivedSpf::new(&request, &out).to_string().replace("\r\n\t", " ");
//! assert!(header.starts_with("Received-SPF: pass (mx.example.net: domain of alice@example.org"));
//! ```
//!
//! What is here:
//! - [`SpfRecord`]: parse and print a record (every mechanism and modifier),
//!   with errors ([`RecordError`]) that name the offending term.
//! - [`MacroString`]: macros with transformers and delimiters, expanded from
//!   [`MacroValues`].
//! - [`Evaluator`]: `check_host()` for the `MAIL FROM` and `HELO` identities,
//!   with the RFC's limits (10 DNS-querying terms, 2 void lookups, 10 names
//!   per `mx`/`ptr`), `redirect=` and `exp=` explanations.
//! - [`ReceivedSpf`]: the `Received-SPF` header field, safe against injection.
//!
//! Without the default `std` feature the crate is `no_std` and needs only
//! `alloc`.
#![no_std]
#![warn(missing_docs, unreachable_pub)]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

mod eval;
mod header;
mod macros;
mod record;

pub use eval::{
    Answer, Evaluator, Identity, MAX_DNS_TERMS, MAX_NAMES_PER_LOOKUP, MAX_VOID_LOOKUPS, Query,
    QueryType, Request, SpfOutput, SpfResult, Step, UnknownResult, reverse_name,
};
pub use header::ReceivedSpf;
pub use macros::{
    DELIMITERS, MacroContext, MacroError, MacroExpand, MacroLetter, MacroPart, MacroString,
    MacroValues,
};
pub use record::{
    Directive, DualCidr, Mechanism, Modifier, Qualifier, RecordError, SpfRecord, Term,
    is_spf_record, parse_term,
};
