//! ptt-dns: the DNS questions and answers of ptt's Sans-IO evaluators
//! (ptt-spf, ptt-dkim, ptt-dmarc, ptt-arc), in one shape, so that one
//! adapter answers them all.
//!
//! Every evaluator is an [`Evaluator`]: [`poll`](Evaluator::poll) gives
//! the next [`Step`] — a [`Query`] to look up, [`Step::Wait`] while the
//! questions handed out are unanswered, or [`Step::Done`] with the
//! result — and [`answer`](Evaluator::answer) takes an [`Answer`]. The
//! questions handed out before a `Wait` may be asked concurrently, and
//! answered in any order. An answer says "records", "no record of that
//! type", "no such name" or "temporary failure", the same way everywhere.
//!
//! ```
//! use ptt_dns::{Answer, Evaluator, Query, QueryType, Step};
//!
//! /// A toy evaluator: is there a TXT record at `name`?
//! struct HasTxt { name: String, asked: bool, found: Option<bool> }
//!
//! impl Evaluator for HasTxt {
//!     type Output = bool;
//!     fn poll(&mut self) -> Step<bool> {
//!         match (self.found, self.asked) {
//!             (Some(found), _) => Step::Done(found),
//!             (None, false) => {
//!                 self.asked = true;
//!                 Step::Query(Query::new(&self.name, QueryType::Txt))
//!             }
//!             (None, true) => Step::Wait,
//!         }
//!     }
//!     fn answer(&mut self, _query: &Query, answer: Answer) {
//!         self.found = Some(matches!(answer, Answer::Txt(r) if !r.is_empty()));
//!     }
//! }
//!
//! let found = ptt_dns::run(
//!     HasTxt { name: "example.org".into(), asked: false, found: None },
//!     |q| match q.name.as_str() {
//!         "example.org" => Answer::Txt(vec![b"v=spf1 -all".to_vec()]),
//!         _ => Answer::NxDomain,
//!     },
//! );
//! assert!(found);
//! ```
//!
//! The crate is `no_std` (with `alloc`) and has no dependency.
#![no_std]
#![warn(missing_docs, unreachable_pub)]

extern crate alloc;

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::net::{Ipv4Addr, Ipv6Addr};

/// A record type an evaluator asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum QueryType {
    /// TXT (SPF, DKIM keys, DMARC policies, explanations).
    Txt,
    /// A.
    A,
    /// AAAA.
    Aaaa,
    /// MX.
    Mx,
    /// PTR (the name is under `in-addr.arpa` or `ip6.arpa`).
    Ptr,
}

impl QueryType {
    /// The type's mnemonic (`TXT`, `A`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            QueryType::Txt => "TXT",
            QueryType::A => "A",
            QueryType::Aaaa => "AAAA",
            QueryType::Mx => "MX",
            QueryType::Ptr => "PTR",
        }
    }
}

/// A DNS question: a name (without the final dot) and a type.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Query {
    /// The name (compare it case-insensitively).
    pub name: String,
    /// The type.
    pub qtype: QueryType,
}

impl Query {
    /// A question for `name`'s `qtype` records.
    pub fn new(name: &str, qtype: QueryType) -> Query {
        Query {
            name: String::from(name),
            qtype,
        }
    }

    /// The name lower-cased with the type: two questions with the same key
    /// are the same question.
    pub fn key(&self) -> (String, QueryType) {
        (self.name.to_ascii_lowercase(), self.qtype)
    }
}

impl fmt::Display for Query {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.name, self.qtype.as_str())
    }
}

/// The answer to a [`Query`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// TXT records, each one's character-strings joined (no separator).
    Txt(Vec<Vec<u8>>),
    /// A records.
    A(Vec<Ipv4Addr>),
    /// AAAA records.
    Aaaa(Vec<Ipv6Addr>),
    /// MX exchanges (their names, most preferred first).
    Mx(Vec<String>),
    /// PTR names.
    Ptr(Vec<String>),
    /// NOERROR with no record of the type asked (NODATA).
    NoRecords,
    /// NXDOMAIN (RCODE 3): the name does not exist.
    NxDomain,
    /// A timeout, SERVFAIL or any other failure, with what happened.
    TempError(String),
}

impl Answer {
    /// Whether the answer holds no record: NODATA, NXDOMAIN, or an empty
    /// list (RFC 7208 §4.6.4's "void lookup"; a failure is not void).
    pub fn is_void(&self) -> bool {
        match self {
            Answer::NoRecords | Answer::NxDomain => true,
            Answer::Txt(v) => v.is_empty(),
            Answer::A(v) => v.is_empty(),
            Answer::Aaaa(v) => v.is_empty(),
            Answer::Mx(v) | Answer::Ptr(v) => v.is_empty(),
            Answer::TempError(_) => false,
        }
    }

    /// One TXT record (a test's or a cache's answer).
    pub fn txt(record: &str) -> Answer {
        Answer::Txt(alloc::vec![record.as_bytes().to_vec()])
    }
}

/// What an evaluator wants next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step<T> {
    /// Look this up and hand the answer to [`Evaluator::answer`]. Several
    /// queries may be handed out before any answer is needed; ask them
    /// concurrently.
    Query(Query),
    /// Every open query has been handed out: wait for their answers.
    Wait,
    /// The evaluation is over.
    Done(T),
}

/// A Sans-IO evaluation that asks DNS questions.
pub trait Evaluator {
    /// What it comes to.
    type Output;

    /// The next thing to do.
    fn poll(&mut self) -> Step<Self::Output>;

    /// Hands in the answer to a query [`poll`](Self::poll) gave.
    fn answer(&mut self, query: &Query, answer: Answer);
}

/// Runs `evaluator` to its end with a synchronous resolver (tests, tools,
/// zone files): each question is answered as soon as it is asked.
pub fn run<E: Evaluator>(mut evaluator: E, mut resolve: impl FnMut(&Query) -> Answer) -> E::Output {
    loop {
        match evaluator.poll() {
            Step::Query(q) => {
                let answer = resolve(&q);
                evaluator.answer(&q, answer);
            }
            // Every question handed out has been answered above.
            Step::Wait => continue,
            Step::Done(out) => return out,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn void_answers_and_keys() {
        assert!(Answer::NxDomain.is_void());
        assert!(Answer::Mx(Vec::new()).is_void());
        assert!(!Answer::TempError("timeout".into()).is_void());
        assert!(!Answer::txt("v=spf1 -all").is_void());
        let a = Query::new("Example.ORG", QueryType::Txt);
        assert_eq!(a.key(), Query::new("example.org", QueryType::Txt).key());
        assert_eq!(alloc::format!("{a}"), "Example.ORG TXT");
    }
}
