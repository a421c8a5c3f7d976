//! Sans-IO verification: the [`Verifier`] takes the message as it streams,
//! asks for key records, takes the answers, and gives one result per
//! signature.

use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt;

use sha2::{Digest as _, Sha256};

use crate::canon::{BodyHash, BodyHasher, header_hash, header_hash_input, split_header_fields};
use crate::crypto::{Backend, CryptoError, Selected};
use crate::head::HeadSplitter;
use crate::key::{DkimKeyRecord, KeyRecordError, PublicKey};
use crate::keys::{self, KeyCache, VerifyingKey};
use crate::signature::{Algorithm, Canonicalization, DkimSignature, SignatureError};
use crate::tag::{parse_tag_list, same_name};

/// Why a signature did not pass.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Reason {
    /// The body does not hash to `bh=`.
    #[error("body hash mismatch")]
    BodyHashMismatch,
    /// The header signature does not verify with the key.
    #[error("signature mismatch")]
    SignatureMismatch,
    /// The key record has an empty `p=`.
    #[error("key revoked")]
    KeyRevoked,
    /// `x=` is in the past.
    #[error("expired (x={expiration}, now {now})")]
    Expired {
        /// `x=`.
        expiration: u64,
        /// The time given to the verifier.
        now: u64,
    },
    /// `t=` is in the future beyond the allowed clock skew.
    #[error("signed in the future (t={timestamp}, now {now})")]
    TimestampInFuture {
        /// `t=`.
        timestamp: u64,
        /// The time given to the verifier.
        now: u64,
    },
    /// `x=` is before `t=`.
    #[error("x= is before t=")]
    ExpiresBeforeSigned,
    /// `rsa-sha1` is never valid (RFC 8301).
    #[error("rsa-sha1 is not acceptable (RFC 8301)")]
    Sha1NotAllowed,
    /// An RSA key shorter than 1024 bits (RFC 8301).
    #[error("RSA key of {bits} bits is too short (RFC 8301)")]
    KeyTooSmall {
        /// The modulus size.
        bits: usize,
    },
    /// `k=` of the key does not match `a=`.
    #[error("key type {key} does not match a={algorithm}")]
    KeyTypeMismatch {
        /// `k=`.
        key: String,
        /// `a=`.
        algorithm: Algorithm,
    },
    /// The key's `h=` does not allow the hash of `a=`.
    #[error("key h= does not allow {0}")]
    HashNotAllowed(&'static str),
    /// The key's `s=` does not include email.
    #[error("key s= does not allow email")]
    ServiceNotEmail,
    /// The key has `t=s` and `i=` is in a subdomain of `d=`.
    #[error("key t=s requires i= in exactly d=")]
    StrictIdentity,
    /// `i=` is not in `d=` or a subdomain.
    #[error("i= is not in the domain d=")]
    IdentityOutsideDomain,
    /// `h=` does not include From.
    #[error("From is not signed")]
    FromNotSigned,
    /// `q=` has no method we can use.
    #[error("unsupported query method q={0}")]
    QueryMethod(String),
    /// `l=` is present and the policy refuses it.
    #[error("l={0} refused by policy")]
    BodyLengthRefused(u64),
    /// `l=` is larger than the canonical body.
    #[error("l={length} is more than the body ({body} bytes)")]
    BodyShorterThanLength {
        /// `l=`.
        length: u64,
        /// The canonical body length.
        body: u64,
    },
    /// The signature field does not parse.
    #[error("{0}")]
    Syntax(SignatureError),
    /// The key record does not parse or its key is unusable.
    #[error("{0}")]
    KeySyntax(KeyRecordError),
    /// No key record at the name (NXDOMAIN or no TXT).
    #[error("no key record")]
    NoKey,
    /// The DNS lookup failed for now.
    #[error("DNS error: {0}")]
    Dns(String),
    /// The crypto backend could not be used.
    #[error("{0}")]
    Crypto(CryptoError),
    /// More signatures than the policy checks.
    #[error("more signatures than the policy checks")]
    TooManySignatures,
    /// The header block exceeds the configured limit.
    #[error("header block larger than {0} bytes")]
    HeaderTooLarge(usize),
}

/// The outcome of one signature, named as in `Authentication-Results`
/// (RFC 8601).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Verdict {
    /// The signature verified.
    Pass,
    /// The signature was checked and is not valid.
    Fail(Reason),
    /// The signature is not acceptable under the verification policy.
    Policy(Reason),
    /// The signature cannot be checked: syntax, key record, missing key.
    PermError(Reason),
    /// A DNS error; checking later may succeed.
    TempError(Reason),
}

impl Verdict {
    /// `pass`, `fail`, `policy`, `permerror` or `temperror`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail(_) => "fail",
            Verdict::Policy(_) => "policy",
            Verdict::PermError(_) => "permerror",
            Verdict::TempError(_) => "temperror",
        }
    }

    /// The reason, unless it passed.
    pub fn reason(&self) -> Option<&Reason> {
        match self {
            Verdict::Pass => None,
            Verdict::Fail(r)
            | Verdict::Policy(r)
            | Verdict::PermError(r)
            | Verdict::TempError(r) => Some(r),
        }
    }

    fn classify(reason: Reason) -> Self {
        use Reason::*;
        match reason {
            BodyHashMismatch
            | SignatureMismatch
            | KeyRevoked
            | Expired { .. }
            | TimestampInFuture { .. }
            | Sha1NotAllowed
            | KeyTooSmall { .. }
            | BodyShorterThanLength { .. } => Verdict::Fail(reason),
            BodyLengthRefused(_) => Verdict::Policy(reason),
            Dns(_) => Verdict::TempError(reason),
            _ => Verdict::PermError(reason),
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.reason() {
            None => f.write_str("pass"),
            Some(r) => write!(f, "{} ({r})", self.as_str()),
        }
    }
}

/// The result for one `DKIM-Signature` field, in message order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureResult {
    /// The parsed signature, unless it did not parse.
    pub signature: Option<DkimSignature>,
    /// `d=` (read leniently when the signature did not parse).
    pub domain: Option<String>,
    /// `s=` (read leniently when the signature did not parse).
    pub selector: Option<String>,
    /// The verdict and its reason.
    pub verdict: Verdict,
    /// RSA modulus size, when a key was loaded.
    pub key_bits: Option<usize>,
    /// Flag: an RSA key of 1024 bits or less verified (RFC 8301 allows it
    /// for verifying, not for signing).
    pub weak_key: bool,
    /// Flag: the key record says `t=y` (testing).
    pub testing: bool,
    /// Canonical body bytes beyond `l=`: content that nobody signed.
    pub unsigned_body_bytes: u64,
}

impl fmt::Display for SignatureResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "dkim={}", self.verdict.as_str())?;
        if let Some(r) = self.verdict.reason() {
            write!(f, " ({r})")?;
        }
        if let Some(d) = &self.domain {
            write!(f, " header.d={d}")?;
        }
        if let Some(s) = &self.selector {
            write!(f, " header.s={s}")?;
        }
        if let Some(sig) = &self.signature {
            write!(f, " header.a={}", sig.algorithm)?;
            if let Some(i) = &sig.identity {
                write!(f, " header.i={i}")?;
            }
        }
        if let Some(bits) = self.key_bits {
            write!(
                f,
                " ({bits}-bit key{})",
                if self.weak_key { ", weak" } else { "" }
            )?;
        }
        if self.testing {
            f.write_str(" (testing)")?;
        }
        if self.unsigned_body_bytes > 0 {
            write!(
                f,
                " ({} body bytes after l= unsigned)",
                self.unsigned_body_bytes
            )?;
        }
        Ok(())
    }
}

/// How `l=` is treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BodyLengthPolicy {
    /// Verify the first `l=` bytes and report the rest as unsigned
    /// ([`SignatureResult::unsigned_body_bytes`]).
    #[default]
    Honour,
    /// A signature with `l=` gets the verdict `policy`.
    Refuse,
}

/// Verification policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyPolicy {
    /// How `l=` is treated.
    pub body_length: BodyLengthPolicy,
    /// Seconds that `t=` may be in the future.
    pub clock_skew: u64,
    /// Signatures checked per message; more get `permerror`.
    pub max_signatures: usize,
    /// Largest header block accepted.
    pub max_header_bytes: usize,
}

impl Default for VerifyPolicy {
    fn default() -> Self {
        VerifyPolicy {
            body_length: BodyLengthPolicy::Honour,
            clock_skew: 300,
            max_signatures: 16,
            max_header_bytes: 1 << 20,
        }
    }
}

pub use ptt_dns::{Answer, Query, QueryType};

/// What the verifier needs next: the TXT records of a key
/// (`SELECTOR._domainkey.DOMAIN`; each name is asked once, and the
/// questions may be answered in any order, also while the body is still
/// being fed), [`Step::Wait`] for more of the message or the answers, or
/// [`Step::Done`] once every signature has a result
/// ([`Verifier::results`]).
pub type Step = ptt_dns::Step<()>;

/// Picks the key record from a DNS answer: the first record that parses.
pub fn key_from_answer(answer: &Answer) -> Result<DkimKeyRecord, Reason> {
    first_record_that_parses(answer, DkimKeyRecord::parse)
}

/// What `parse` makes of the first record of `answer` that it accepts (a
/// temporary failure is `Dns`, no record `NoKey`, none that parses the
/// first record's error).
fn first_record_that_parses<T>(
    answer: &Answer,
    mut parse: impl FnMut(&[u8]) -> Result<T, KeyRecordError>,
) -> Result<T, Reason> {
    match answer {
        Answer::TempError(e) => Err(Reason::Dns(e.clone())),
        Answer::Txt(records) => {
            let mut first_err = None;
            for r in records {
                match parse(r) {
                    Ok(key) => return Ok(key),
                    Err(e) => {
                        first_err.get_or_insert(e);
                    }
                }
            }
            Err(first_err.map_or(Reason::NoKey, Reason::KeySyntax))
        }
        // No such name, no TXT record (or an answer of another type).
        _ => Err(Reason::NoKey),
    }
}

/// Checks a key record against a signature's algorithm (revoked, `k=`, `h=`,
/// `s=`, key size) and returns the usable key.
pub fn usable_key(record: &DkimKeyRecord, algorithm: Algorithm) -> Result<PublicKey, Reason> {
    let key = record.public_key();
    check_usable(record, key.as_ref(), algorithm)?;
    key.map_err(Reason::KeySyntax)
}

/// [`usable_key`]'s checks, on a key already decoded from `record`.
fn check_usable(
    record: &DkimKeyRecord,
    key: Result<&PublicKey, &KeyRecordError>,
    algorithm: Algorithm,
) -> Result<(), Reason> {
    if record.is_revoked() {
        return Err(Reason::KeyRevoked);
    }
    if !record.allows_email() {
        return Err(Reason::ServiceNotEmail);
    }
    if !record.allows_hash(algorithm.hash_name()) {
        return Err(Reason::HashNotAllowed(algorithm.hash_name()));
    }
    let key = key.map_err(|e| Reason::KeySyntax(e.clone()))?;
    let key_type = match *key {
        PublicKey::Rsa { bits, .. } => {
            if bits < 1024 {
                return Err(Reason::KeyTooSmall { bits });
            }
            "rsa"
        }
        PublicKey::Ed25519(_) => "ed25519",
    };
    if key_type != algorithm.key_type() {
        return Err(Reason::KeyTypeMismatch {
            key: record.key_type.clone(),
            algorithm,
        });
    }
    Ok(())
}

/// The key of the first record of `answer` that parses (as
/// [`key_from_answer`]), taken from `cache` or parsed and kept there.
fn verifying_key_from_answer(
    answer: &Answer,
    cache: Option<&dyn KeyCache>,
) -> Result<Arc<VerifyingKey>, Reason> {
    first_record_that_parses(answer, |r| {
        let key = keys::lookup(cache, r);
        match key.record() {
            Ok(_) => Ok(key),
            Err(e) => Err(e.clone()),
        }
    })
}

/// Verifies a header signature: `data` is the header hash input (see
/// [`header_hash_input`](crate::header_hash_input)).
pub fn verify_signature(
    key: &PublicKey,
    algorithm: Algorithm,
    data: &[u8],
    signature: &[u8],
) -> Result<(), Reason> {
    let ok = match (key, algorithm) {
        (_, Algorithm::RsaSha1) => return Err(Reason::Sha1NotAllowed),
        (PublicKey::Rsa { der, .. }, Algorithm::RsaSha256) => {
            Selected::rsa_verify(der, data, signature)
        }
        (PublicKey::Ed25519(pk), Algorithm::Ed25519Sha256) => {
            Selected::ed25519_verify(pk, &Sha256::digest(data), signature)
        }
        (PublicKey::Rsa { .. }, _) | (PublicKey::Ed25519(_), _) => {
            return Err(Reason::KeyTypeMismatch {
                key: String::from(match key {
                    PublicKey::Rsa { .. } => "rsa",
                    PublicKey::Ed25519(_) => "ed25519",
                }),
                algorithm,
            });
        }
    };
    match ok {
        Ok(true) => Ok(()),
        Ok(false) => Err(Reason::SignatureMismatch),
        Err(e) => Err(Reason::Crypto(e)),
    }
}

/// [`verify_signature`] with the backend's parsed key when the cached key
/// has one.
fn verify_with(
    key: &VerifyingKey,
    public: &PublicKey,
    algorithm: Algorithm,
    signed: &SignedData,
    signature: &[u8],
) -> Result<(), Reason> {
    use SignedData::{Digest, Input};
    let verified = match (key.parsed(), public, algorithm, signed) {
        (Some(parsed), PublicKey::Rsa { .. }, Algorithm::RsaSha256, Digest(digest)) => {
            Selected::verify_parsed_rsa_digest(parsed, digest, signature)
        }
        (Some(parsed), PublicKey::Rsa { .. }, Algorithm::RsaSha256, Input(data)) => {
            Selected::verify_parsed(parsed, data, signature)
        }
        // RFC 8463: Ed25519 signs the SHA-256 of the data.
        (Some(parsed), PublicKey::Ed25519(_), Algorithm::Ed25519Sha256, Digest(digest)) => {
            Selected::verify_parsed(parsed, digest, signature)
        }
        // The data itself is kept only for RSA (on ring); anything else
        // with it takes the unparsed way, which hashes it for Ed25519.
        (_, _, _, Input(data)) => return verify_signature(public, algorithm, data, signature),
        (_, PublicKey::Rsa { der, .. }, Algorithm::RsaSha256, Digest(digest)) => {
            Selected::rsa_verify_digest(der, digest, signature)
        }
        (_, PublicKey::Ed25519(pk), Algorithm::Ed25519Sha256, Digest(digest)) => {
            Selected::ed25519_verify(pk, digest, signature)
        }
        // A key of the other type, or rsa-sha1: refused there, with the
        // reason.
        (_, _, _, Digest(_)) => return verify_signature(public, algorithm, &[], signature),
    };
    match verified {
        Ok(true) => Ok(()),
        Ok(false) => Err(Reason::SignatureMismatch),
        Err(e) => Err(Reason::Crypto(e)),
    }
}

/// True when `sub` is `domain` or a subdomain of it (ASCII case ignored).
///
/// ```
/// use ptt_dkim::is_same_or_subdomain;
/// assert!(is_same_or_subdomain("Mail.Example.COM.", "example.com"));
/// assert!(is_same_or_subdomain("example.com", "EXAMPLE.com."));
/// assert!(!is_same_or_subdomain("badexample.com", "example.com"));
/// assert!(!is_same_or_subdomain("com", "example.com"));
/// ```
pub fn is_same_or_subdomain(sub: &str, domain: &str) -> bool {
    // Compared in place: a verification asks this of every signature.
    let s = sub.trim_end_matches('.').as_bytes();
    let d = domain.trim_end_matches('.').as_bytes();
    match s.len().checked_sub(d.len()) {
        Some(0) => s.eq_ignore_ascii_case(d),
        Some(extra) => {
            s.get(extra - 1) == Some(&b'.')
                && s.get(extra..).is_some_and(|t| t.eq_ignore_ascii_case(d))
        }
        None => false,
    }
}

/// A signature waiting for its key and body hash (the signature itself
/// is in its [`SignatureResult`]).
struct Pending {
    signed: SignedData,
    hasher: usize,
    query: usize,
}

/// What a signature's check verifies `b=` against.
enum SignedData {
    /// The SHA-256 of the header hash input: what Ed25519 signs (RFC 8463)
    /// and an RSA signature's digest, hashed as it was canonicalized.
    Digest([u8; 32]),
    /// The header hash input itself, for a backend that hashes it (ring's
    /// RSA).
    Input(Vec<u8>),
}

enum Slot {
    Pending(Pending),
    Decided,
}

/// One key's TXT question, and its answer once given.
struct KeyLookup {
    name: String,
    asked: bool,
    answer: Option<Answer>,
}

/// The body hashers of a message: the first inline (a hasher holds a
/// 1 KB block buffer; on the heap it would be an allocation large enough
/// to make malloc sort its free lists, for each message), more on the heap.
#[derive(Default)]
struct Hashers {
    first: Option<Hasher>,
    more: Vec<Hasher>,
}

impl Hashers {
    fn iter(&self) -> impl Iterator<Item = &Hasher> {
        self.first.iter().chain(&self.more)
    }

    fn iter_mut(&mut self) -> impl Iterator<Item = &mut Hasher> {
        self.first.iter_mut().chain(&mut self.more)
    }

    fn get(&self, index: usize) -> Option<&Hasher> {
        self.iter().nth(index)
    }

    /// Adds `hasher`; returns its index.
    fn push(&mut self, hasher: Hasher) -> usize {
        if self.first.is_none() {
            self.first = Some(hasher);
            return 0;
        }
        self.more.push(hasher);
        self.more.len()
    }
}

struct Hasher {
    canon: Canonicalization,
    limit: Option<u64>,
    state: Option<BodyHasher>,
    result: Option<BodyHash>,
}

/// The Sans-IO DKIM verifier for one message.
///
/// ```
/// use ptt_dkim::{Answer, Step, Verifier, VerifyPolicy};
/// let msg = b"From: a@example.com\r\nDKIM-Signature: v=1; a=rsa-sha256; d=example.com;\r\n s=sel; h=from; bh=AAAA; b=AAAA\r\n\r\nHi\r\n";
/// let mut v = Verifier::new(VerifyPolicy::default(), 1_700_000_000);
/// v.update(msg);
/// v.end();
/// loop {
///     match v.poll() {
///         Step::Query(q) => {
///             assert_eq!(q.name, "sel._domainkey.example.com");
///             v.answer(&q, Answer::NxDomain);
///         }
///         Step::Wait => unreachable!("all input given, all questions answered"),
///         Step::Done(()) => break,
///     }
/// }
/// assert_eq!(v.results()[0].verdict.as_str(), "permerror");
/// ```
pub struct Verifier {
    policy: VerifyPolicy,
    now: u64,
    head: HeadSplitter,
    headers_done: bool,
    ended: bool,
    slots: Vec<Slot>,
    results: Vec<SignatureResult>,
    hashers: Hashers,
    queries: Vec<KeyLookup>,
    error: Option<Reason>,
    keys: Option<Arc<dyn KeyCache>>,
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("now", &self.now)
            .field("signatures", &self.results.len())
            .field("ended", &self.ended)
            .finish_non_exhaustive()
    }
}

/// The result of a signature field that was not parsed: a permerror for
/// `reason`, with `d=` and `s=` read leniently for the report.
fn unparsed(mut result: SignatureResult, value: &[u8], reason: Reason) -> SignatureResult {
    result.domain = lenient_tag(value, "d");
    result.selector = lenient_tag(value, "s");
    result.verdict = Verdict::PermError(reason);
    result
}

fn lenient_tag(value: &[u8], name: &str) -> Option<String> {
    // d= and s= for the report even when the whole list did not parse.
    value.split(|b| *b == b';').find_map(|spec| {
        let s = String::from_utf8_lossy(spec);
        let (k, v) = s.split_once('=')?;
        (k.trim() == name).then(|| v.split_whitespace().collect::<String>())
    })
}

impl Verifier {
    /// A verifier for one message, checking `t=`/`x=` against `now`
    /// (seconds since the epoch).
    pub fn new(policy: VerifyPolicy, now: u64) -> Self {
        Verifier {
            head: HeadSplitter::new(policy.max_header_bytes),
            policy,
            now,
            headers_done: false,
            ended: false,
            slots: Vec::new(),
            results: Vec::new(),
            hashers: Hashers::default(),
            queries: Vec::new(),
            error: None,
            keys: None,
        }
    }

    /// Takes parsed keys from `cache`, and keeps the ones it parses there
    /// (see [`SharedKeyCache`](crate::SharedKeyCache)).
    pub fn with_key_cache(mut self, cache: Arc<dyn KeyCache>) -> Self {
        self.keys = Some(cache);
        self
    }

    /// Feeds the next bytes of the message (CRLF line ends).
    pub fn update(&mut self, data: &[u8]) {
        if self.ended || self.error.is_some() {
            return;
        }
        if self.headers_done {
            self.feed_body(data);
            return;
        }
        // The whole header block in the first piece: read in place.
        if let Some((head, body)) = self.head.split_first(data) {
            self.on_headers(head);
            self.feed_body(body);
            return;
        }
        match self.head.push(data) {
            Ok(Some(body)) => {
                let head = self.head.take();
                self.on_headers(head.head());
                self.feed_body(body);
            }
            Ok(None) => {}
            Err(limit) => self.error = Some(Reason::HeaderTooLarge(limit)),
        }
    }

    fn feed_body(&mut self, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        for h in self.hashers.iter_mut() {
            if let Some(s) = &mut h.state {
                s.update(data);
            }
        }
    }

    /// Ends the message.
    pub fn end(&mut self) {
        if self.ended {
            return;
        }
        if !self.headers_done && self.error.is_none() {
            self.head.finish();
            let head = self.head.take();
            self.on_headers(head.head());
        }
        for h in self.hashers.iter_mut() {
            if let Some(s) = h.state.as_mut() {
                h.result = Some(s.finish_in_place());
                h.state = None;
            }
        }
        self.ended = true;
    }

    fn decide(&mut self, idx: usize, verdict: Verdict) {
        if let Some(r) = self.results.get_mut(idx) {
            r.verdict = verdict;
        }
        if let Some(s) = self.slots.get_mut(idx) {
            *s = Slot::Decided;
        }
    }

    fn on_headers(&mut self, head: &[u8]) {
        self.headers_done = true;
        let fields = split_header_fields(head);
        // Room for every signature's result at once (a result is some
        // 400 bytes: growth would start at four).
        let signatures = fields.iter().filter(|f| f.is("dkim-signature")).count();
        self.results.reserve_exact(signatures);
        self.slots.reserve_exact(signatures);
        // A key question per checked signature at most (growth would
        // start at four).
        self.queries
            .reserve_exact(signatures.min(self.policy.max_signatures));
        let mut count = 0;
        for field in fields.iter().filter(|f| f.is("dkim-signature")) {
            count += 1;
            let value = field.value();
            // d= and s= are read leniently only for a field that does not
            // parse ([`unparsed`]); a parsed one gives them below.
            let mut result = SignatureResult {
                signature: None,
                domain: None,
                selector: None,
                verdict: Verdict::Pass,
                key_bits: None,
                weak_key: false,
                testing: false,
                unsigned_body_bytes: 0,
            };
            if count > self.policy.max_signatures {
                self.results
                    .push(unparsed(result, value, Reason::TooManySignatures));
                self.slots.push(Slot::Decided);
                continue;
            }
            let tags = match parse_tag_list(value) {
                Ok(t) => t,
                Err(e) => {
                    self.results
                        .push(unparsed(result, value, Reason::Syntax(e.into())));
                    self.slots.push(Slot::Decided);
                    continue;
                }
            };
            let sig = match DkimSignature::from_tags(&tags, true) {
                Ok(s) => s,
                Err(e) => {
                    self.results
                        .push(unparsed(result, value, Reason::Syntax(e)));
                    self.slots.push(Slot::Decided);
                    continue;
                }
            };
            result.domain = Some(sig.domain.clone());
            result.selector = Some(sig.selector.clone());
            if let Err(reason) = self.precheck(&sig) {
                result.verdict = Verdict::classify(reason);
                result.signature = Some(sig);
                self.results.push(result);
                self.slots.push(Slot::Decided);
                continue;
            }
            let b_span = tags
                .iter()
                .find(|t| same_name(t.name, "b"))
                .map(|t| t.full_span.clone())
                .unwrap_or_default();
            let signed =
                if sig.algorithm == Algorithm::Ed25519Sha256 || Selected::RSA_VERIFIES_DIGEST {
                    SignedData::Digest(header_hash(
                        sig.header_canon,
                        &fields,
                        &sig.headers,
                        field,
                        b_span,
                    ))
                } else {
                    SignedData::Input(header_hash_input(
                        sig.header_canon,
                        &fields,
                        &sig.headers,
                        field,
                        b_span,
                    ))
                };
            let same = self
                .hashers
                .iter()
                .position(|h| h.canon == sig.body_canon && h.limit == sig.body_length);
            let hasher = match same {
                Some(i) => i,
                None => self.hashers.push(Hasher {
                    canon: sig.body_canon,
                    limit: sig.body_length,
                    state: Some(BodyHasher::new(sig.body_canon, sig.body_length)),
                    result: None,
                }),
            };
            let name = sig.key_name();
            let query = match self
                .queries
                .iter()
                .position(|q| q.name.eq_ignore_ascii_case(&name))
            {
                Some(i) => i,
                None => {
                    self.queries.push(KeyLookup {
                        name,
                        asked: false,
                        answer: None,
                    });
                    self.queries.len() - 1
                }
            };
            // The signature is kept once, in its result; the pending check
            // reads it there.
            result.signature = Some(sig);
            self.results.push(result);
            self.slots.push(Slot::Pending(Pending {
                signed,
                hasher,
                query,
            }));
        }
    }

    fn precheck(&self, sig: &DkimSignature) -> Result<(), Reason> {
        if sig.algorithm == Algorithm::RsaSha1 {
            return Err(Reason::Sha1NotAllowed);
        }
        if !sig.headers.contains("from") {
            return Err(Reason::FromNotSigned);
        }
        if !is_same_or_subdomain(sig.identity_domain(), &sig.domain) {
            return Err(Reason::IdentityOutsideDomain);
        }
        if let Some(q) = &sig.query_methods
            && !q
                .split(':')
                .any(|m| m.trim().eq_ignore_ascii_case("dns/txt"))
        {
            return Err(Reason::QueryMethod(q.clone()));
        }
        if let (Some(t), Some(x)) = (sig.timestamp, sig.expiration)
            && x < t
        {
            return Err(Reason::ExpiresBeforeSigned);
        }
        if let Some(x) = sig.expiration
            && x < self.now
        {
            return Err(Reason::Expired {
                expiration: x,
                now: self.now,
            });
        }
        if let Some(t) = sig.timestamp
            && t > self.now.saturating_add(self.policy.clock_skew)
        {
            return Err(Reason::TimestampInFuture {
                timestamp: t,
                now: self.now,
            });
        }
        if let (Some(l), BodyLengthPolicy::Refuse) = (sig.body_length, self.policy.body_length) {
            return Err(Reason::BodyLengthRefused(l));
        }
        Ok(())
    }

    /// Gives the answer to a question [`poll`](Verifier::poll) asked.
    /// Answers to questions not asked are ignored.
    pub fn answer(&mut self, query: &Query, answer: Answer) {
        let name = query.name.trim_end_matches('.');
        if let Some(q) = self
            .queries
            .iter_mut()
            .find(|q| q.name.eq_ignore_ascii_case(name))
        {
            q.answer = Some(answer);
        }
    }

    /// What the verifier needs next.
    pub fn poll(&mut self) -> Step {
        if let Some(reason) = &self.error {
            if self.results.is_empty() || self.results.iter().all(|r| r.signature.is_some()) {
                let reason = reason.clone();
                self.results.clear();
                self.slots.clear();
                self.results.push(SignatureResult {
                    signature: None,
                    domain: None,
                    selector: None,
                    verdict: Verdict::PermError(reason),
                    key_bits: None,
                    weak_key: false,
                    testing: false,
                    unsigned_body_bytes: 0,
                });
            }
            return Step::Done(());
        }
        for q in &mut self.queries {
            if !q.asked {
                q.asked = true;
                return Step::Query(Query::new(&q.name, QueryType::Txt));
            }
        }
        if !self.ended {
            return Step::Wait;
        }
        let mut waiting = false;
        for idx in 0..self.slots.len() {
            let Slot::Pending(p) = &self.slots[idx] else {
                continue;
            };
            let Some(answer) = self.queries.get(p.query).and_then(|q| q.answer.as_ref()) else {
                waiting = true;
                continue;
            };
            let body = self.hashers.get(p.hasher).and_then(|h| h.result);
            let Some(sig) = self.results.get(idx).and_then(|r| r.signature.as_ref()) else {
                // Not reached: a pending slot's result holds its signature.
                // Never a pass without one.
                self.decide(idx, Verdict::classify(Reason::SignatureMismatch));
                continue;
            };
            let (verdict, bits, testing, unsigned) =
                check(sig, p, answer, body, self.keys.as_deref());
            if let Some(r) = self.results.get_mut(idx) {
                r.key_bits = bits;
                r.weak_key = bits.is_some_and(|b| b <= 1024);
                r.testing = testing;
                r.unsigned_body_bytes = unsigned;
            }
            self.decide(idx, verdict);
        }
        if waiting { Step::Wait } else { Step::Done(()) }
    }

    /// The results, one per `DKIM-Signature` field in message order (final
    /// once [`poll`](Verifier::poll) returned [`Step::Done`]).
    pub fn results(&self) -> &[SignatureResult] {
        &self.results
    }

    /// Gives up on the key questions still unanswered (a driver that
    /// timed out): every signature still waiting ends as `temperror`, so
    /// that no result reads `pass` without its key.
    pub fn give_up(&mut self) {
        for idx in 0..self.slots.len() {
            if matches!(self.slots[idx], Slot::Pending(_)) {
                let reason = Reason::Dns("no answer to the key query".into());
                self.decide(idx, Verdict::classify(reason));
            }
        }
    }

    /// Takes the results.
    pub fn into_results(self) -> Vec<SignatureResult> {
        self.results
    }
}

fn check(
    sig: &DkimSignature,
    p: &Pending,
    answer: &Answer,
    body: Option<BodyHash>,
    cache: Option<&dyn KeyCache>,
) -> (Verdict, Option<usize>, bool, u64) {
    let cached = match verifying_key_from_answer(answer, cache) {
        Ok(k) => k,
        Err(reason) => return (Verdict::classify(reason), None, false, 0),
    };
    let Ok(record) = cached.record() else {
        return (Verdict::classify(Reason::NoKey), None, false, 0);
    };
    let testing = record.is_testing();
    if let Err(reason) = check_usable(record, cached.key(), sig.algorithm) {
        return (Verdict::classify(reason), None, testing, 0);
    }
    let Ok(key) = cached.key() else {
        return (Verdict::classify(Reason::NoKey), None, testing, 0);
    };
    let bits = match &key {
        PublicKey::Rsa { bits, .. } => Some(*bits),
        PublicKey::Ed25519(_) => None,
    };
    if record.is_strict() && !sig.identity_domain().eq_ignore_ascii_case(&sig.domain) {
        return (Verdict::classify(Reason::StrictIdentity), bits, testing, 0);
    }
    let Some(body) = body else {
        return (
            Verdict::classify(Reason::BodyHashMismatch),
            bits,
            testing,
            0,
        );
    };
    let mut unsigned = 0;
    if let Some(l) = sig.body_length {
        if l > body.canonical_len {
            let reason = Reason::BodyShorterThanLength {
                length: l,
                body: body.canonical_len,
            };
            return (Verdict::classify(reason), bits, testing, 0);
        }
        unsigned = body.canonical_len - l;
    }
    if body.hash[..] != sig.body_hash[..] {
        return (
            Verdict::classify(Reason::BodyHashMismatch),
            bits,
            testing,
            unsigned,
        );
    }
    match verify_with(&cached, key, sig.algorithm, &p.signed, &sig.signature) {
        Ok(()) => (Verdict::Pass, bits, testing, unsigned),
        Err(reason) => (Verdict::classify(reason), bits, testing, unsigned),
    }
}

/// Verifies a whole message held in memory, answering key questions from
/// `lookup` (a convenience over [`Verifier`] for tools and tests).
pub fn verify_message(
    message: &[u8],
    now: u64,
    policy: VerifyPolicy,
    mut lookup: impl FnMut(&str) -> Answer,
) -> Vec<SignatureResult> {
    let mut v = Verifier::new(policy, now);
    v.update(message);
    v.end();
    while let Step::Query(q) = v.poll() {
        let a = lookup(&q.name);
        v.answer(&q, a);
    }
    v.into_results()
}

impl ptt_dns::Evaluator for Verifier {
    /// The results stay in the verifier ([`Verifier::results`]).
    type Output = ();
    fn poll(&mut self) -> Step {
        Verifier::poll(self)
    }
    fn answer(&mut self, query: &Query, answer: Answer) {
        Verifier::answer(self, query, answer)
    }
}

#[cfg(test)]
mod tests {
    use alloc::string::String;

    use super::is_same_or_subdomain;

    /// The comparison in place answers as lowercasing both copies did,
    /// over names that differ in case, dots, length and non-ASCII bytes.
    #[test]
    fn subdomain_check_matches_the_lowercasing_one() {
        let lowercasing = |sub: &str, domain: &str| {
            let (s, d) = (sub.to_ascii_lowercase(), domain.to_ascii_lowercase());
            let (s, d) = (s.trim_end_matches('.'), d.trim_end_matches('.'));
            s == d || s.strip_suffix(d).is_some_and(|p| p.ends_with('.'))
        };
        let names = [
            "",
            ".",
            "..",
            "com",
            "COM.",
            "example.com",
            "Example.Com.",
            "a.example.com",
            "A.EXAMPLE.COM..",
            "aexample.com",
            "x.a.example.com",
            "exämple.com",
            "a.exämple.com",
            "ä.example.com",
            ".example.com",
            "example.com.a",
        ];
        for sub in names {
            for domain in names {
                assert_eq!(
                    is_same_or_subdomain(sub, domain),
                    lowercasing(sub, domain),
                    "{sub:?} under {domain:?}"
                );
            }
        }
        let long: String = "a.".repeat(100) + "example.com";
        assert!(is_same_or_subdomain(&long, "EXAMPLE.COM"));
    }
}
