//! ptt-spam: a statistical (Bayesian) spam filter.
//!
//! A message is decoded with `mail-parser` and cut into tokens (body words
//! and their orthogonal sparse bigrams, URL hosts, selected headers with a
//! prefix); each token's spamminess is Robinson's f(w) from its counts in a
//! [`TokenDb`], and the evidence is combined with Fisher's inverse
//! chi-square, as bogofilter and rspamd do. Attachments with an executable
//! or script extension make a message spam on their own.
//!
//! ```
//! use ptt_spam::{classify, Class, Params, TokenDb, Tokenizer, Verdict};
//!
//! let tokenizer = Tokenizer::default();
//! let mut db = TokenDb::new();
//! let spam = b"Subject: cheap pills\n\nBuy cheap pills now, best price online";
//! let ham = b"Subject: meeting notes\n\nThe notes of Tuesday's meeting are attached";
//! for _ in 0..20 {
//!     db.train(tokenizer.tokenize(spam).hashes(), Class::Spam);
//!     db.train(tokenizer.tokenize(ham).hashes(), Class::Ham);
//! }
//! let new = tokenizer.tokenize(b"Subject: pills\n\ncheap pills, best price");
//! let result = classify(&db, &new, &Params::default());
//! assert_eq!(result.verdict, Verdict::Spam);
//! assert!(result.headers().starts_with("X-Spam-Status: Yes, score="));
//!
//! // Stores are one file, written atomically and checked on load.
//! let bytes = db.to_bytes();
//! assert_eq!(TokenDb::from_bytes(&bytes).unwrap(), db);
//! ```
//!
//! The crate does no I/O but [`store::load`] and [`store::save`] (feature
//! `std`). Without `std` it is `no_std` + `alloc` and offers the token
//! table and its byte format only: the MIME parser and the floating-point
//! functions of the classifier need the standard library.
#![cfg_attr(not(feature = "std"), no_std)]
#![warn(missing_docs, unreachable_pub)]

extern crate alloc;

#[cfg(feature = "std")]
mod classify;
mod db;
mod hash;
#[cfg(feature = "std")]
mod mapped;
pub mod store;
#[cfg(feature = "std")]
pub mod tokenize;

#[cfg(feature = "std")]
pub use classify::{
    Classification, Clue, Params, SpamStatus, StatusError, Verdict, VerdictError, classify,
};
pub use db::{Counts, TokenDb};
pub use hash::hash_bytes;
pub use store::FormatError;
#[cfg(feature = "std")]
pub use tokenize::{Limits, Tokenizer, Tokens};

/// The OSB window of a default tokenizer and a new database: each body word
/// is paired with the word before it. Chosen on mail from a later period
/// than the training corpus, with the same flags for both: window 2 gave
/// 3.3 points more correct verdicts than window 5 and flagged no ham
/// (window 5 flagged one), at twice the speed; random folds, which mix
/// periods, favour it too (see the README).
pub const DEFAULT_OSB_WINDOW: usize = 2;

/// The widest OSB window: each body word with each of the 4 before it
/// (rspamd's). Stores written before the window was recorded in their
/// header hold this window, and still read as such.
pub const MAX_OSB_WINDOW: usize = 5;

/// What a message is trained as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    /// Spam.
    Spam,
    /// Not spam.
    Ham,
}
