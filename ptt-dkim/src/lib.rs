//! DKIM signing and verification (RFC 6376), with `ed25519-sha256`
//! (RFC 8463) and the RFC 8301 rules (`rsa-sha1` never valid, RSA keys of
//! 1024 bits or less refused for signing and flagged when verifying).
//!
//! The crate is Sans-IO: it has no networking code and does not read the
//! clock. The [`Verifier`] takes the message as it streams, asks for the key
//! records it needs ([`Step::Query`], the shape every ptt evaluator
//! shares, from ptt-dns) and takes the answers
//! ([`Verifier::answer`]); the time to check `t=`/`x=` against is passed in.
//! Body hashes are computed incrementally with constant memory
//! ([`BodyHasher`]), so a server signs or verifies while DATA arrives.
//!
//! ```
//! use ptt_dkim::{Answer, Signer, SignerConfig, SigningKey, VerifyPolicy, verify_message};
//!
//! let key = SigningKey::from_ed25519_seed(&[7; 32]).unwrap();
//! let message = b"From: alice@example.com\r\nTo: bob@example.net\r\nSubject: hi\r\n\r\nHello.\r\n";
//!
//! let config = SignerConfig::new("example.com", "sel");
//! let mut signer = Signer::new(&key, &config).unwrap();
//! signer.update(message);
//! let field = signer.finish().unwrap();
//! let signed = [field.as_bytes(), message].concat();
//!
//! let record = key.key_record().to_string();
//! let results = verify_message(&signed, 1_700_000_000, VerifyPolicy::default(), |name| {
//!     assert_eq!(name, "sel._domainkey.example.com");
//!     Answer::txt(&record)
//! });
//! assert_eq!(results[0].verdict.as_str(), "pass");
//! ```
//!
//! The building blocks are public for ARC (RFC 8617), which reuses them:
//! [`parse_tag_list`], [`split_header_fields`], [`canonicalize_header`],
//! [`header_hash_input`], [`BodyHasher`], [`SigningKey::sign`],
//! [`key_from_answer`], [`usable_key`] and [`verify_signature`].
//!
//! Features: `std` (default), `aws-lc-rs` (default; the crypto backend) and
//! `ring` (the other backend; with `--no-default-features --features ring`
//! the crate is `no_std` + `alloc`). With no backend the parsers,
//! canonicalization and hashing work and every signature check reports
//! [`CryptoError::Unsupported`].
#![cfg_attr(not(any(feature = "std", test)), no_std)]
#![warn(missing_docs, unreachable_pub)]
#![deny(unsafe_code)]

extern crate alloc;

mod canon;
mod crypto;
mod der;
mod head;
mod key;
mod keys;
mod sha256;
mod sign;
mod signature;
mod tag;
mod verify;

pub use canon::{
    BodyCanonicalizer, BodyHash, BodyHasher, BodySink, CrlfNormalizer, HeaderField, SINK_WINDOW,
    canonicalize_body, canonicalize_header, header_hash_input, select_signed_headers,
    split_header_fields,
};
pub use crypto::{BACKEND, CryptoError};
pub use key::{DkimKeyRecord, KeyRecordError, PublicKey};
#[cfg(feature = "std")]
pub use keys::SharedKeyCache;
pub use keys::{CACHED_RECORD_MAX, KeyCache, VerifyingKey};
pub use sign::{
    DEFAULT_SIGNED_HEADERS, GeneratedKey, KeyKind, SignError, Signer, SignerConfig, SigningKey,
    generate_key, pem_encode, sign_fields,
};
pub use signature::{
    Algorithm, Canonicalization, DkimSignature, HeaderNames, HeaderNamesIter, SignatureError,
};
pub use tag::{Tag, TagListError, parse_tag_list, parse_tag_list_strict};
pub use verify::{
    Answer, BodyLengthPolicy, Query, QueryType, Reason, SignatureResult, Step, Verdict, Verifier,
    VerifyPolicy, is_same_or_subdomain, key_from_answer, usable_key, verify_message,
    verify_signature,
};
