//! Sans-IO validation of an Authenticated Received Chain (RFC 8617 §5.2).
//!
//! [`ArcVerifier`] is fed the header block, then the body in chunks; it
//! then asks for the DKIM key records it needs ([`ArcVerifier::poll`]
//! gives them one by one, then the verdict), which the caller looks up
//! (all at once, concurrently if it likes) and hands back with
//! [`ArcVerifier::answer`].

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

use crate::chain::{self, ArcHeader, ArcSet, ChainError};
use crate::dkim_glue::{self, BodyHasher, PublicKey};
use crate::header::{Algorithm, Canon, ChainStatus};
use crate::message::{self, Field};

pub use ptt_dkim::{Answer, Query, QueryType};

/// What the validator wants next: the TXT record of a key (every key of
/// the chain is asked at once; ask them concurrently), [`Step::Wait`] for
/// the body's end or the answers, or [`Step::Done`] with the verdict.
pub type Step = ptt_dns::Step<ArcVerdict>;

/// The key query for `s=selector`, `d=domain`.
fn key_query(selector: &str, domain: &str) -> Query {
    Query::new(
        &alloc::format!("{selector}._domainkey.{}", domain.to_ascii_lowercase()),
        QueryType::Txt,
    )
}

/// Why a chain failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ArcFailure {
    /// The chain's structure is invalid (RFC 8617 §5.2 steps 1 to 3).
    #[error("{0}")]
    Structure(#[from] ChainError),
    /// The body hash of the most recent AMS does not match.
    #[error("ARC-Message-Signature i={instance}: body hash mismatch")]
    BodyHash {
        /// The AMS instance.
        instance: u32,
    },
    /// A signature did not verify.
    #[error("{header} i={instance}: {reason}")]
    Signature {
        /// Which header field.
        header: ArcHeader,
        /// Its instance.
        instance: u32,
        /// Why (key or crypto).
        reason: String,
    },
}

/// The result of validating a chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArcVerdict {
    /// The Chain Validation Status.
    pub status: ChainStatus,
    /// How many ARC Sets the message has (0 when none, or when the chain
    /// is broken before the sets could be counted).
    pub sets: u32,
    /// For `pass`: the instance of the oldest AMS that still validates, or
    /// 0 when all do (RFC 8617 §5.2 step 5).
    pub oldest_pass: Option<u32>,
    /// For `fail`: why.
    pub failure: Option<ArcFailure>,
    /// The sealers' `(d=, s=)` by instance, oldest first (for reports).
    pub sealers: Vec<(String, String)>,
}

impl ArcVerdict {
    fn none() -> Self {
        ArcVerdict {
            status: ChainStatus::None,
            sets: 0,
            oldest_pass: None,
            failure: None,
            sealers: Vec::new(),
        }
    }

    fn fail(sets: u32, failure: ArcFailure) -> Self {
        ArcVerdict {
            status: ChainStatus::Fail,
            sets,
            oldest_pass: None,
            failure: Some(failure),
            sealers: Vec::new(),
        }
    }

    /// The `arc=` result for an Authentication-Results header field, e.g.
    /// `arc=pass header.oldest-pass=0` (RFC 8617 §6), with the reason of a
    /// failure as a comment.
    pub fn auth_result(&self) -> String {
        match (&self.status, &self.failure) {
            (ChainStatus::Pass, _) => alloc::format!(
                "arc=pass header.oldest-pass={}",
                self.oldest_pass.unwrap_or(0)
            ),
            (ChainStatus::Fail, Some(why)) => {
                let reason: String = why
                    .to_string()
                    .chars()
                    .map(|c| match c {
                        '(' | ')' | ';' | '\\' | '"' => ' ',
                        c if c.is_control() => ' ',
                        c => c,
                    })
                    .collect();
                alloc::format!("arc=fail ({})", reason.trim())
            }
            (status, _) => alloc::format!("arc={status}"),
        }
    }
}

impl fmt::Display for ArcVerdict {
    /// `cv=pass (2 sets, oldest-pass=0)`, `cv=none (no ARC sets)` or
    /// `cv=fail (<why>)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.status {
            ChainStatus::None => write!(f, "cv=none (no ARC sets)"),
            ChainStatus::Pass => write!(
                f,
                "cv=pass ({} set{}, oldest-pass={})",
                self.sets,
                if self.sets == 1 { "" } else { "s" },
                self.oldest_pass.unwrap_or(0)
            ),
            ChainStatus::Fail => match &self.failure {
                Some(why) => write!(f, "cv=fail ({why})"),
                None => write!(f, "cv=fail"),
            },
        }
    }
}

/// A body hash being computed for one AMS canonicalization and length.
struct BodyJob {
    canon: Canon,
    limit: Option<u64>,
    hasher: BodyHasher,
    result: Option<Vec<u8>>,
}

enum State {
    /// Nothing to check: the verdict is known from the header block.
    Decided(ArcVerdict),
    /// The sets parsed; hashing the body, then waiting for keys.
    Checking {
        sets: Vec<ArcSet>,
        bodies: Vec<BodyJob>,
        body_done: bool,
        keys: Vec<(Query, Option<Answer>)>,
        /// How many of `keys` [`ArcVerifier::poll`] has handed out.
        asked: usize,
    },
}

/// A Sans-IO ARC chain validator for one message.
///
/// ```
/// use ptt_arc::verify::ArcVerifier;
/// use ptt_arc::header::ChainStatus;
///
/// let msg = b"From: a@example.org\r\nSubject: hi\r\n\r\nbody\r\n";
/// let mut v = ArcVerifier::from_message(msg);
/// // No ARC set: no question, and the verdict at once.
/// let ptt_arc::verify::Step::Done(verdict) = v.poll() else { unreachable!() };
/// assert_eq!(verdict.status, ChainStatus::None);
/// ```
pub struct ArcVerifier {
    header: Vec<u8>,
    fields: Vec<Field>,
    state: State,
}

impl ArcVerifier {
    /// Starts validating a message whose header block (up to and including
    /// the empty line, or the whole header when there is no body) is
    /// `header`. Feed the body with [`body`](Self::body) and
    /// [`body_end`](Self::body_end).
    pub fn new(header: &[u8]) -> ArcVerifier {
        let (fields, _) = message::split(header);
        let header = header.to_vec();
        let state = match chain::collect(&header, &fields) {
            Err(e) => State::Decided(ArcVerdict::fail(
                chain::highest_instance(&header, &fields),
                e.into(),
            )),
            Ok(sets) if sets.is_empty() => State::Decided(ArcVerdict::none()),
            Ok(sets) => {
                let mut bodies: Vec<BodyJob> = Vec::new();
                let mut keys: Vec<(Query, Option<Answer>)> = Vec::new();
                let mut want = |selector: &str, domain: &str| {
                    let q = key_query(selector, domain);
                    if !keys.iter().any(|(k, _)| *k == q) {
                        keys.push((q, None));
                    }
                };
                for set in sets.iter().rev() {
                    want(&set.ams.parsed.selector, &set.ams.parsed.domain);
                    want(&set.seal.parsed.selector, &set.seal.parsed.domain);
                    let ams = &set.ams.parsed;
                    let canon = ams.canonicalization.1;
                    if !bodies
                        .iter()
                        .any(|b| b.canon == canon && b.limit == ams.body_length)
                    {
                        bodies.push(BodyJob {
                            canon,
                            limit: ams.body_length,
                            hasher: BodyHasher::new(canon, ams.body_length),
                            result: None,
                        });
                    }
                }
                State::Checking {
                    sets,
                    bodies,
                    body_done: false,
                    keys,
                    asked: 0,
                }
            }
        };
        ArcVerifier {
            header,
            fields,
            state,
        }
    }

    /// Validates a whole message (header and body) held in memory; then
    /// answer what [`poll`](Self::poll) asks.
    pub fn from_message(message: &[u8]) -> ArcVerifier {
        let (_, body_start) = message::split(message);
        let mut v = ArcVerifier::new(message.get(..body_start).unwrap_or_default());
        v.body(message.get(body_start..).unwrap_or_default());
        v.body_end();
        v
    }

    /// Feeds a chunk of the body (bytes after the empty line, as sent).
    pub fn body(&mut self, chunk: &[u8]) {
        if let State::Checking {
            bodies,
            body_done: false,
            ..
        } = &mut self.state
        {
            for job in bodies {
                job.hasher.update(chunk);
            }
        }
    }

    /// Ends the body.
    pub fn body_end(&mut self) {
        if let State::Checking {
            bodies, body_done, ..
        } = &mut self.state
            && !*body_done
        {
            for job in bodies.iter_mut() {
                let hasher =
                    core::mem::replace(&mut job.hasher, BodyHasher::new(job.canon, job.limit));
                job.result = Some(hasher.finish());
            }
            *body_done = true;
        }
    }

    /// What to do next: a key to look up, [`Step::Wait`] (the body has
    /// not ended, or answers are missing), or the verdict.
    pub fn poll(&mut self) -> Step {
        if let State::Checking { keys, asked, .. } = &mut self.state
            && let Some((q, _)) = keys.get(*asked)
        {
            *asked += 1;
            return Step::Query(q.clone());
        }
        match self.verdict() {
            Some(v) => Step::Done(v),
            None => Step::Wait,
        }
    }

    /// Hands in the answer to a query [`poll`](Self::poll) gave.
    pub fn answer(&mut self, query: &Query, answer: Answer) {
        if let State::Checking { keys, .. } = &mut self.state
            && let Some((_, slot)) = keys.iter_mut().find(|(q, _)| q.key() == query.key())
        {
            *slot = Some(answer);
        }
    }

    /// The verdict, once the body has ended and every query is answered
    /// (`None` before).
    pub fn verdict(&mut self) -> Option<ArcVerdict> {
        let verdict = match &self.state {
            State::Decided(v) => return Some(v.clone()),
            State::Checking {
                sets,
                bodies,
                body_done,
                keys,
                ..
            } => {
                if !*body_done || keys.iter().any(|(_, a)| a.is_none()) {
                    return None;
                }
                self.check(sets, bodies, keys)
            }
        };
        self.state = State::Decided(verdict.clone());
        Some(verdict)
    }

    fn key(
        keys: &[(Query, Option<Answer>)],
        selector: &str,
        domain: &str,
        algorithm: Algorithm,
    ) -> Result<PublicKey, String> {
        let q = key_query(selector, domain);
        let answer = keys
            .iter()
            .find(|(k, _)| *k == q)
            .and_then(|(_, a)| a.as_ref())
            .ok_or_else(|| alloc::format!("no answer for {}", q.name))?;
        dkim_glue::usable_key(answer, algorithm).map_err(|e| alloc::format!("key {}: {e}", q.name))
    }

    /// Verifies one AMS: body hash, then the header signature.
    fn check_ams(
        &self,
        set: &ArcSet,
        bodies: &[BodyJob],
        keys: &[(Query, Option<Answer>)],
    ) -> Result<(), ArcFailure> {
        let ams = &set.ams.parsed;
        let instance = set.instance;
        let computed = bodies
            .iter()
            .find(|b| b.canon == ams.canonicalization.1 && b.limit == ams.body_length)
            .and_then(|b| b.result.as_deref());
        if computed != Some(ams.body_hash.as_slice()) {
            return Err(ArcFailure::BodyHash { instance });
        }
        let fail = |reason: String| ArcFailure::Signature {
            header: ArcHeader::Ams,
            instance,
            reason,
        };
        let key = Self::key(keys, &ams.selector, &ams.domain, ams.algorithm).map_err(fail)?;
        let input = dkim_glue::signed_headers_input(
            &self.header,
            &self.fields,
            &ams.headers,
            ams.canonicalization.0,
            self.fields
                .get(set.ams.index)
                .map(|f| (self.header.as_slice(), f)),
        );
        dkim_glue::verify(&key, ams.algorithm, &input, &ams.signature).map_err(fail)
    }

    fn check(
        &self,
        sets: &[ArcSet],
        bodies: &[BodyJob],
        keys: &[(Query, Option<Answer>)],
    ) -> ArcVerdict {
        let n = sets.len() as u32;
        let Some(latest) = sets.last() else {
            return ArcVerdict::none();
        };
        // Step 4: the most recent AMS.
        if let Err(e) = self.check_ams(latest, bodies, keys) {
            return ArcVerdict::fail(n, e);
        }
        // Step 5: oldest-pass.
        let mut oldest_pass = 0;
        for set in sets.iter().rev().skip(1) {
            if self.check_ams(set, bodies, keys).is_err() {
                oldest_pass = set.instance + 1;
                break;
            }
        }
        // Step 6: every seal, newest first.
        for set in sets.iter().rev() {
            let seal = &set.seal.parsed;
            let fail = |reason: String| {
                ArcVerdict::fail(
                    n,
                    ArcFailure::Signature {
                        header: ArcHeader::Seal,
                        instance: set.instance,
                        reason,
                    },
                )
            };
            let key = match Self::key(keys, &seal.selector, &seal.domain, seal.algorithm) {
                Ok(k) => k,
                Err(e) => return fail(e),
            };
            let input = seal_input(
                &self.header,
                &self.fields,
                sets.get(..set.instance as usize).unwrap_or_default(),
            );
            if let Err(e) = dkim_glue::verify(&key, seal.algorithm, &input, &seal.signature) {
                return fail(e);
            }
        }
        ArcVerdict {
            status: ChainStatus::Pass,
            sets: n,
            oldest_pass: Some(oldest_pass),
            failure: None,
            sealers: sets
                .iter()
                .map(|s| (s.seal.parsed.domain.clone(), s.seal.parsed.selector.clone()))
                .collect(),
        }
    }
}

/// The data ARC-Seal `sets[last]` signs (RFC 8617 §5.1.1): the sets in
/// increasing instance order, each as AAR, AMS, AS, relaxed-canonicalized;
/// the last AS with its `b=` value emptied and no final CRLF.
pub(crate) fn seal_input(header: &[u8], fields: &[Field], sets: &[ArcSet]) -> Vec<u8> {
    let triples: Vec<[usize; 3]> = sets.iter().map(chain::triple).collect();
    let mut out = Vec::new();
    chain::sets_input(header, fields, &triples, true, &mut out);
    out
}

impl ptt_dns::Evaluator for ArcVerifier {
    type Output = ArcVerdict;
    fn poll(&mut self) -> Step {
        ArcVerifier::poll(self)
    }
    fn answer(&mut self, query: &Query, answer: Answer) {
        ArcVerifier::answer(self, query, answer)
    }
}
