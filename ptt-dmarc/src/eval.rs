//! Sans-IO DMARC evaluation: policy discovery (RFC 7489 6.6.3), identifier
//! alignment (3.1), and the policy and disposition (6.6.4, with DMARCbis
//! `np` and `t`).
//!
//! The SPF and DKIM results come in as plain values of this crate
//! ([`SpfOutcome`], [`DkimOutcome`]), so that the caller can feed them from
//! any implementation. The evaluator then asks DNS questions one at a time
//! through [`Evaluation::poll`] and takes the answers through
//! [`Evaluation::answer`], in the shape every ptt evaluator shares
//! (ptt-dns):
//!
//! 1. `TXT _dmarc.<author domain>`;
//! 2. if no DMARC record is there and the author domain is not its own
//!    organizational domain, `TXT _dmarc.<organizational domain>`;
//! 3. only when DMARC failed, the record came from the organizational domain
//!    and it has an `np` tag: `A <author domain>`, to learn whether the
//!    author domain exists (NXDOMAIN means it does not; DMARCbis 4.7).
//!
//! At most three questions, so DMARC can never be used to make the receiver
//! flood DNS.
//!
//! ```
//! use ptt_dmarc::eval::*;
//! use ptt_dmarc::psl::PublicSuffixList;
//! use ptt_dmarc::Policy;
//!
//! let psl = PublicSuffixList::builtin();
//! let input = AuthInput {
//!     spf: Some(SpfOutcome::mail_from(SpfResult::Pass, "bounces.example.com")),
//!     dkim: vec![DkimOutcome::new(DkimResult::Fail, "example.com")],
//! };
//! let mut eval = Evaluation::new(&psl, "news.example.com", input, 42).unwrap();
//! let verdict = loop {
//!     match eval.poll() {
//!         Step::Query(q) => {
//!             let answer = match q.name.as_str() {
//!                 "_dmarc.example.com" => Answer::txt("v=DMARC1; p=reject"),
//!                 _ => Answer::NxDomain,
//!             };
//!             eval.answer(&q, answer);
//!         }
//!         Step::Wait => unreachable!("each question is answered at once here"),
//!         Step::Done(verdict) => break *verdict,
//!     }
//! };
//! assert_eq!(verdict.result, DmarcResult::Pass); // relaxed SPF alignment
//! assert_eq!(verdict.disposition, Policy::None);
//! ```

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

use crate::psl::{PublicSuffixList, to_ascii_name};
use crate::record::{Alignment, DmarcRecord, Policy, RecordError, is_dmarc_record};

/// An SPF result (RFC 7208 2.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SpfResult {
    /// `none`.
    None,
    /// `neutral`.
    Neutral,
    /// `pass`.
    Pass,
    /// `fail`.
    Fail,
    /// `softfail`.
    SoftFail,
    /// `temperror`.
    TempError,
    /// `permerror`.
    PermError,
}

impl SpfResult {
    /// The result keyword as in RFC 7208 and RFC 8601.
    pub fn as_str(self) -> &'static str {
        match self {
            SpfResult::None => "none",
            SpfResult::Neutral => "neutral",
            SpfResult::Pass => "pass",
            SpfResult::Fail => "fail",
            SpfResult::SoftFail => "softfail",
            SpfResult::TempError => "temperror",
            SpfResult::PermError => "permerror",
        }
    }

    /// Parses a result keyword (case-insensitive).
    pub fn parse(s: &str) -> Option<SpfResult> {
        Some(match s.to_ascii_lowercase().as_str() {
            "none" => SpfResult::None,
            "neutral" => SpfResult::Neutral,
            "pass" => SpfResult::Pass,
            "fail" => SpfResult::Fail,
            "softfail" => SpfResult::SoftFail,
            "temperror" => SpfResult::TempError,
            "permerror" => SpfResult::PermError,
            _ => return None,
        })
    }
}

impl fmt::Display for SpfResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which identity SPF checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SpfScope {
    /// The RFC 5321 MAIL FROM domain.
    MailFrom,
    /// The HELO/EHLO name (used when MAIL FROM is null).
    Helo,
}

impl SpfScope {
    /// `mfrom` or `helo`, as in aggregate reports.
    pub fn as_str(self) -> &'static str {
        match self {
            SpfScope::MailFrom => "mfrom",
            SpfScope::Helo => "helo",
        }
    }
}

#[cfg(feature = "spf")]
impl From<ptt_spf::SpfResult> for SpfResult {
    /// ptt-spf's result as DMARC's input (feature `spf`): no string in
    /// between, so a renamed variant is a compile error, not a permerror.
    fn from(result: ptt_spf::SpfResult) -> Self {
        match result {
            ptt_spf::SpfResult::None => SpfResult::None,
            ptt_spf::SpfResult::Neutral => SpfResult::Neutral,
            ptt_spf::SpfResult::Pass => SpfResult::Pass,
            ptt_spf::SpfResult::Fail => SpfResult::Fail,
            ptt_spf::SpfResult::SoftFail => SpfResult::SoftFail,
            ptt_spf::SpfResult::TempError => SpfResult::TempError,
            ptt_spf::SpfResult::PermError => SpfResult::PermError,
        }
    }
}

#[cfg(feature = "dkim")]
impl From<&ptt_dkim::Verdict> for DkimResult {
    /// A ptt-dkim signature verdict as DMARC's input (feature `dkim`).
    fn from(verdict: &ptt_dkim::Verdict) -> Self {
        match verdict {
            ptt_dkim::Verdict::Pass => DkimResult::Pass,
            ptt_dkim::Verdict::Fail(_) => DkimResult::Fail,
            ptt_dkim::Verdict::Policy(_) => DkimResult::Policy,
            ptt_dkim::Verdict::TempError(_) => DkimResult::TempError,
            // PermError, and whatever ptt-dkim adds later: not a pass.
            _ => DkimResult::PermError,
        }
    }
}

/// The SPF check the receiver ran, as DMARC needs it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SpfOutcome {
    /// The result.
    pub result: SpfResult,
    /// The domain that was checked.
    pub domain: String,
    /// Which identity the domain came from.
    pub scope: SpfScope,
}

impl SpfOutcome {
    /// A MAIL FROM check.
    pub fn mail_from(result: SpfResult, domain: &str) -> SpfOutcome {
        SpfOutcome {
            result,
            domain: domain.to_string(),
            scope: SpfScope::MailFrom,
        }
    }

    /// A HELO check (for a null MAIL FROM).
    pub fn helo(result: SpfResult, domain: &str) -> SpfOutcome {
        SpfOutcome {
            result,
            domain: domain.to_string(),
            scope: SpfScope::Helo,
        }
    }
}

/// A DKIM signature verification result (RFC 8601 2.7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DkimResult {
    /// `none`.
    None,
    /// `pass`.
    Pass,
    /// `fail`.
    Fail,
    /// `policy`.
    Policy,
    /// `neutral`.
    Neutral,
    /// `temperror`.
    TempError,
    /// `permerror`.
    PermError,
}

impl DkimResult {
    /// The result keyword.
    pub fn as_str(self) -> &'static str {
        match self {
            DkimResult::None => "none",
            DkimResult::Pass => "pass",
            DkimResult::Fail => "fail",
            DkimResult::Policy => "policy",
            DkimResult::Neutral => "neutral",
            DkimResult::TempError => "temperror",
            DkimResult::PermError => "permerror",
        }
    }

    /// Parses a result keyword (case-insensitive).
    pub fn parse(s: &str) -> Option<DkimResult> {
        Some(match s.to_ascii_lowercase().as_str() {
            "none" => DkimResult::None,
            "pass" => DkimResult::Pass,
            "fail" => DkimResult::Fail,
            "policy" => DkimResult::Policy,
            "neutral" => DkimResult::Neutral,
            "temperror" => DkimResult::TempError,
            "permerror" => DkimResult::PermError,
            _ => return None,
        })
    }
}

impl fmt::Display for DkimResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One DKIM signature's result, as DMARC needs it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DkimOutcome {
    /// The result.
    pub result: DkimResult,
    /// The signing domain (`d=`).
    pub domain: String,
    /// The selector (`s=`), for reports.
    pub selector: Option<String>,
}

impl DkimOutcome {
    /// A result for signing domain `domain`, without selector.
    pub fn new(result: DkimResult, domain: &str) -> DkimOutcome {
        DkimOutcome {
            result,
            domain: domain.to_string(),
            selector: None,
        }
    }

    /// Sets the selector.
    pub fn with_selector(mut self, selector: &str) -> DkimOutcome {
        self.selector = Some(selector.to_string());
        self
    }
}

/// The authentication results DMARC works from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuthInput {
    /// SPF (MAIL FROM, or HELO for a null sender); `None` when not checked.
    pub spf: Option<SpfOutcome>,
    /// Every DKIM signature's result.
    pub dkim: Vec<DkimOutcome>,
}

pub use ptt_dns::{Answer, Query, QueryType};

/// One step of the evaluation: a question (TXT for a DMARC record, or A
/// only to learn whether the author domain exists), [`Step::Wait`] until
/// its answer, or the verdict. One question at a time: each depends on the
/// answer before.
pub type Step = ptt_dns::Step<alloc::boxed::Box<Verdict>>;

/// The DMARC result (RFC 7489 11.2 / RFC 8601).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DmarcResult {
    /// No DMARC record was found (or several, RFC 7489 6.6.3 step 4).
    None,
    /// An aligned SPF or DKIM pass.
    Pass,
    /// No aligned pass.
    Fail,
    /// A DNS error prevented discovery; try again later.
    TempError,
    /// The author domain is not a valid domain name.
    PermError,
}

impl DmarcResult {
    /// The result keyword.
    pub fn as_str(self) -> &'static str {
        match self {
            DmarcResult::None => "none",
            DmarcResult::Pass => "pass",
            DmarcResult::Fail => "fail",
            DmarcResult::TempError => "temperror",
            DmarcResult::PermError => "permerror",
        }
    }
}

impl fmt::Display for DmarcResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which tag of the record gave the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PolicySource {
    /// `p`: the record is the author domain's own.
    Domain,
    /// `sp` (or `p` when absent): the organizational domain's record for a
    /// subdomain.
    Subdomain,
    /// `np` (DMARCbis): for a subdomain that does not exist.
    NonExistent,
}

/// Why no policy applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoPolicy {
    /// No `v=DMARC1` record at either name.
    NotFound,
    /// More than one `v=DMARC1` record at `name`.
    MultipleRecords {
        /// The `_dmarc.` name.
        name: String,
    },
}

/// Everything the receiver needs from DMARC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// The result for `Authentication-Results` and reports.
    pub result: DmarcResult,
    /// The disposition the receiver should apply (`none` when DMARC passed
    /// or no policy applies).
    pub disposition: Policy,
    /// The RFC 5322.From domain, in ASCII form.
    pub from_domain: String,
    /// Where the policy record was found (without `_dmarc.`).
    pub policy_domain: Option<String>,
    /// The record in force.
    pub record: Option<DmarcRecord>,
    /// Tags of the record that were ignored (bad values, duplicates).
    pub record_warnings: Vec<RecordError>,
    /// The policy requested by the record (before `pct`/`t` sampling).
    pub requested: Option<Policy>,
    /// Which tag the requested policy came from.
    pub source: Option<PolicySource>,
    /// True when `pct` (or `t=y`) exempted this failing message, so that
    /// the disposition is one step below the requested policy.
    pub sampled_out: bool,
    /// An SPF pass aligned with the From domain.
    pub spf_aligned: bool,
    /// The signing domain of the first DKIM pass aligned with the From
    /// domain.
    pub dkim_aligned: Option<String>,
    /// Why no policy applied, when `result` is `none`.
    pub no_policy: Option<NoPolicy>,
}

impl Verdict {
    /// True when DKIM produced an aligned pass.
    pub fn is_dkim_aligned(&self) -> bool {
        self.dkim_aligned.is_some()
    }
}

/// Misuse of the evaluator or bad input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EvalError {
    /// The From domain is not a domain name.
    #[error("invalid From domain {domain:?}")]
    InvalidDomain {
        /// The offending domain.
        domain: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    AskAuthor,
    AskOrg,
    AskExists(DmarcRecord, Vec<RecordError>),
    Done(Verdict),
}

/// One message's DMARC evaluation. See the [module docs](self).
#[derive(Debug, Clone)]
pub struct Evaluation {
    from: String,
    org: String,
    /// The first aligned DKIM pass domain, per alignment mode.
    dkim_relaxed: Option<String>,
    dkim_strict: Option<String>,
    spf_relaxed: bool,
    spf_strict: bool,
    sample: u32,
    state: State,
    /// The question of `state` has been handed out.
    asked: bool,
}

/// Whether `domain` is aligned with `from` in `mode`, given both
/// organizational domains. Both must be in ASCII form.
pub fn aligned(psl: &PublicSuffixList, from: &str, domain: &str, mode: Alignment) -> bool {
    let (Some(a), Some(b)) = (
        to_ascii_name(from.strip_suffix('.').unwrap_or(from)),
        to_ascii_name(domain.strip_suffix('.').unwrap_or(domain)),
    ) else {
        return false;
    };
    match mode {
        Alignment::Strict => a == b,
        Alignment::Relaxed => {
            a == b || psl.organizational_domain(&a) == psl.organizational_domain(&b)
        }
    }
}

impl Evaluation {
    /// Starts an evaluation for the RFC 5322.From domain `from_domain`.
    ///
    /// `sample` is a uniformly random number in `0..100` drawn by the caller
    /// for `pct` sampling (larger values are taken modulo 100): the policy is
    /// applied when `sample < pct`.
    pub fn new(
        psl: &PublicSuffixList,
        from_domain: &str,
        input: AuthInput,
        sample: u32,
    ) -> Result<Evaluation, EvalError> {
        let bad = || EvalError::InvalidDomain {
            domain: from_domain.to_string(),
        };
        let from =
            to_ascii_name(from_domain.strip_suffix('.').unwrap_or(from_domain)).ok_or_else(bad)?;
        let org = psl.organizational_domain(&from).ok_or_else(bad)?;
        let spf_pass = input
            .spf
            .as_ref()
            .filter(|s| s.result == SpfResult::Pass)
            .map(|s| s.domain.as_str());
        let spf_strict = spf_pass.is_some_and(|d| aligned(psl, &from, d, Alignment::Strict));
        let spf_relaxed = spf_pass.is_some_and(|d| aligned(psl, &from, d, Alignment::Relaxed));
        let pass = |mode| {
            input
                .dkim
                .iter()
                .filter(|d| d.result == DkimResult::Pass)
                .find(|d| aligned(psl, &from, &d.domain, mode))
                .and_then(|d| to_ascii_name(d.domain.strip_suffix('.').unwrap_or(&d.domain)))
        };
        Ok(Evaluation {
            dkim_strict: pass(Alignment::Strict),
            dkim_relaxed: pass(Alignment::Relaxed),
            spf_strict,
            spf_relaxed,
            from,
            org,
            sample: sample % 100,
            state: State::AskAuthor,
            asked: false,
        })
    }

    /// A verdict that does not need DNS: the From domain was invalid.
    pub fn permerror(from_domain: &str) -> Verdict {
        Verdict {
            result: DmarcResult::PermError,
            disposition: Policy::None,
            from_domain: from_domain.to_string(),
            policy_domain: None,
            record: None,
            record_warnings: Vec::new(),
            requested: None,
            source: None,
            sampled_out: false,
            spf_aligned: false,
            dkim_aligned: None,
            no_policy: None,
        }
    }

    /// The organizational domain of the From domain.
    pub fn organizational_domain(&self) -> &str {
        &self.org
    }

    /// The question the current state asks (none once done).
    fn question(&self) -> Option<Query> {
        match &self.state {
            State::AskAuthor => Some(Query::new(
                &alloc::format!("_dmarc.{}", self.from),
                QueryType::Txt,
            )),
            State::AskOrg => Some(Query::new(
                &alloc::format!("_dmarc.{}", self.org),
                QueryType::Txt,
            )),
            State::AskExists(..) => Some(Query::new(&self.from, QueryType::A)),
            State::Done(_) => None,
        }
    }

    /// The next question (once), [`Step::Wait`] until it is answered, or
    /// the verdict.
    pub fn poll(&mut self) -> Step {
        if let State::Done(v) = &self.state {
            return Step::Done(alloc::boxed::Box::new(v.clone()));
        }
        if self.asked {
            return Step::Wait;
        }
        self.asked = true;
        match self.question() {
            Some(q) => Step::Query(q),
            None => Step::Wait,
        }
    }

    /// Takes the answer to the question [`poll`](Self::poll) gave; an
    /// answer to any other question is ignored.
    pub fn answer(&mut self, query: &Query, answer: Answer) {
        if self.question().is_none_or(|q| q.key() != query.key()) {
            return;
        }
        self.asked = false;
        let state = core::mem::replace(&mut self.state, State::AskAuthor);
        self.state = match state {
            State::AskAuthor => self.after_txt(answer, true),
            State::AskOrg => self.after_txt(answer, false),
            State::AskExists(record, warnings) => {
                let exists = !matches!(answer, Answer::NxDomain);
                let source = if exists {
                    PolicySource::Subdomain
                } else {
                    PolicySource::NonExistent
                };
                State::Done(self.verdict(record, warnings, false, Some(source)))
            }
            done @ State::Done(_) => done,
        };
    }

    /// Drives the evaluation to the end with a synchronous resolver.
    pub fn run(self, resolve: impl FnMut(&Query) -> Answer) -> Verdict {
        *ptt_dns::run(self, resolve)
    }

    fn after_txt(&mut self, answer: Answer, at_author: bool) -> State {
        let name = if at_author { &self.from } else { &self.org };
        let records: Vec<String> = match answer {
            Answer::Txt(txt) => txt
                .iter()
                .map(|t| String::from_utf8_lossy(t).into_owned())
                .filter(|t| is_dmarc_record(t))
                .collect(),
            Answer::TempError(_) => {
                let mut v = self.no_policy(None);
                v.result = DmarcResult::TempError;
                return State::Done(v);
            }
            // NODATA, NXDOMAIN (or records of another type): none here.
            _ => Vec::new(),
        };
        match records.as_slice() {
            [] => {
                if at_author && self.org != self.from {
                    State::AskOrg
                } else {
                    State::Done(self.no_policy(Some(NoPolicy::NotFound)))
                }
            }
            [one] => {
                let Ok((record, warnings)) = DmarcRecord::parse_lenient(one) else {
                    // is_dmarc_record() checked v=DMARC1 already.
                    return State::Done(self.no_policy(Some(NoPolicy::NotFound)));
                };
                if at_author {
                    return State::Done(self.verdict(
                        record,
                        warnings,
                        true,
                        Some(PolicySource::Domain),
                    ));
                }
                // The organizational domain's record, for a subdomain.
                let failed = !self.passes(&record);
                if failed && record.np.is_some() && record.np != Some(record.subdomain_policy()) {
                    State::AskExists(record, warnings)
                } else {
                    State::Done(self.verdict(
                        record,
                        warnings,
                        false,
                        Some(PolicySource::Subdomain),
                    ))
                }
            }
            _ => State::Done(self.no_policy(Some(NoPolicy::MultipleRecords {
                name: alloc::format!("_dmarc.{name}"),
            }))),
        }
    }

    fn passes(&self, record: &DmarcRecord) -> bool {
        self.spf_ok(record) || self.dkim_ok(record).is_some()
    }

    fn spf_ok(&self, record: &DmarcRecord) -> bool {
        match record.aspf() {
            Alignment::Strict => self.spf_strict,
            Alignment::Relaxed => self.spf_relaxed,
        }
    }

    fn dkim_ok(&self, record: &DmarcRecord) -> Option<String> {
        match record.adkim() {
            Alignment::Strict => self.dkim_strict.clone(),
            Alignment::Relaxed => self.dkim_relaxed.clone(),
        }
    }

    fn no_policy(&self, why: Option<NoPolicy>) -> Verdict {
        Verdict {
            result: DmarcResult::None,
            disposition: Policy::None,
            from_domain: self.from.clone(),
            policy_domain: None,
            record: None,
            record_warnings: Vec::new(),
            requested: None,
            source: None,
            sampled_out: false,
            spf_aligned: false,
            dkim_aligned: None,
            no_policy: why,
        }
    }

    fn verdict(
        &self,
        record: DmarcRecord,
        warnings: Vec<RecordError>,
        at_author: bool,
        source: Option<PolicySource>,
    ) -> Verdict {
        let spf_aligned = self.spf_ok(&record);
        let dkim_aligned = self.dkim_ok(&record);
        let pass = spf_aligned || dkim_aligned.is_some();
        let requested = match source {
            Some(PolicySource::Domain) | None => record.policy(),
            Some(PolicySource::Subdomain) => record.subdomain_policy(),
            Some(PolicySource::NonExistent) => record.nonexistent_policy(),
        };
        let (result, disposition, sampled_out) = if pass {
            (DmarcResult::Pass, Policy::None, false)
        } else if requested == Policy::None {
            (DmarcResult::Fail, Policy::None, false)
        } else if self.sample < u32::from(record.sampling_percent()) {
            (DmarcResult::Fail, requested, false)
        } else {
            (DmarcResult::Fail, requested.downgrade(), true)
        };
        Verdict {
            result,
            disposition,
            from_domain: self.from.clone(),
            policy_domain: Some(if at_author {
                self.from.clone()
            } else {
                self.org.clone()
            }),
            record: Some(record),
            record_warnings: warnings,
            requested: Some(requested),
            source,
            sampled_out,
            spf_aligned,
            dkim_aligned,
            no_policy: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::collections::BTreeMap;
    use alloc::vec;

    struct Zone {
        txt: BTreeMap<&'static str, Vec<&'static str>>,
        existing: Vec<&'static str>,
        asked: Vec<Query>,
    }

    impl Zone {
        fn new(records: &[(&'static str, &'static str)], existing: &[&'static str]) -> Zone {
            let mut txt: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
            for (name, value) in records {
                txt.entry(name).or_default().push(value);
            }
            Zone {
                txt,
                existing: existing.to_vec(),
                asked: Vec::new(),
            }
        }

        fn answer(&mut self, q: &Query) -> Answer {
            self.asked.push(q.clone());
            match q.qtype {
                QueryType::Txt => match self.txt.get(q.name.as_str()) {
                    Some(v) => Answer::Txt(v.iter().map(|s| s.as_bytes().to_vec()).collect()),
                    None => Answer::NxDomain,
                },
                QueryType::A => {
                    if self.existing.contains(&q.name.as_str()) {
                        Answer::A(vec![core::net::Ipv4Addr::new(192, 0, 2, 1)])
                    } else {
                        Answer::NxDomain
                    }
                }
                _ => Answer::NoRecords,
            }
        }
    }

    fn run(zone: &mut Zone, from: &str, input: AuthInput, sample: u32) -> Verdict {
        let psl = PublicSuffixList::builtin();
        Evaluation::new(&psl, from, input, sample)
            .unwrap()
            .run(|q| zone.answer(q))
    }

    fn spf(result: SpfResult, d: &str) -> AuthInput {
        AuthInput {
            spf: Some(SpfOutcome::mail_from(result, d)),
            dkim: vec![],
        }
    }

    fn dkim(result: DkimResult, d: &str) -> AuthInput {
        AuthInput {
            spf: Some(SpfOutcome::mail_from(SpfResult::Fail, "other.example")),
            dkim: vec![DkimOutcome::new(result, d)],
        }
    }

    /// Alignment × mode × (same domain, subdomain, parent, other org,
    /// sibling across a public suffix).
    #[test]
    fn alignment_table() {
        let psl = PublicSuffixList::builtin();
        use Alignment::*;
        let table: &[(&str, &str, Alignment, bool)] = &[
            ("example.com", "example.com", Strict, true),
            ("example.com", "EXAMPLE.com.", Strict, true),
            ("example.com", "mail.example.com", Strict, false),
            ("example.com", "mail.example.com", Relaxed, true),
            ("news.example.com", "example.com", Relaxed, true),
            ("news.example.com", "example.com", Strict, false),
            ("a.example.com", "b.example.com", Relaxed, true),
            ("example.com", "example.net", Relaxed, false),
            ("example.com", "badexample.com", Relaxed, false),
            ("example.co.uk", "other.co.uk", Relaxed, false),
            ("a.example.co.uk", "b.example.co.uk", Relaxed, true),
            ("co.uk", "example.co.uk", Relaxed, false),
            ("b.foo.ck", "c.foo.ck", Relaxed, false), // *.ck: foo.ck is a suffix
            ("x.b.foo.ck", "b.foo.ck", Relaxed, true),
            ("mail.www.ck", "www.ck", Relaxed, true), // !www.ck
            ("example.com", "", Relaxed, false),
        ];
        for &(from, d, mode, want) in table {
            assert_eq!(
                aligned(&psl, from, d, mode),
                want,
                "{from} vs {d} ({mode:?})"
            );
        }
    }

    /// Policy × subdomain × (pass/fail) with the questions asked.
    #[test]
    fn policy_table() {
        let records: &[(&str, &str)] = &[
            (
                "_dmarc.example.com",
                "v=DMARC1; p=reject; sp=quarantine; np=none",
            ),
            ("_dmarc.plain.example", "v=DMARC1; p=quarantine"),
            ("_dmarc.own.plain.example", "v=DMARC1; p=none"),
            (
                "_dmarc.strict.example",
                "v=DMARC1; p=reject; adkim=s; aspf=s",
            ),
            ("_dmarc.np.example", "v=DMARC1; p=none; np=reject"),
        ];
        let existing = [
            "example.com",
            "sub.example.com",
            "plain.example",
            "np.example",
            "real.np.example",
        ];
        use DmarcResult as R;
        use Policy as P;
        #[allow(clippy::type_complexity)]
        let table: &[(&str, AuthInput, R, P, Option<PolicySource>, usize)] = &[
            // Author domain's own record: p.
            (
                "example.com",
                spf(SpfResult::Pass, "example.com"),
                R::Pass,
                P::None,
                Some(PolicySource::Domain),
                1,
            ),
            (
                "example.com",
                spf(SpfResult::Fail, "example.com"),
                R::Fail,
                P::Reject,
                Some(PolicySource::Domain),
                1,
            ),
            (
                "example.com",
                spf(SpfResult::SoftFail, "example.com"),
                R::Fail,
                P::Reject,
                Some(PolicySource::Domain),
                1,
            ),
            (
                "example.com",
                dkim(DkimResult::Pass, "mail.example.com"),
                R::Pass,
                P::None,
                Some(PolicySource::Domain),
                1,
            ),
            (
                "example.com",
                dkim(DkimResult::Fail, "example.com"),
                R::Fail,
                P::Reject,
                Some(PolicySource::Domain),
                1,
            ),
            (
                "example.com",
                dkim(DkimResult::Pass, "example.net"),
                R::Fail,
                P::Reject,
                Some(PolicySource::Domain),
                1,
            ),
            // Existing subdomain: sp (and np asked about since it differs).
            (
                "sub.example.com",
                spf(SpfResult::Fail, "sub.example.com"),
                R::Fail,
                P::Quarantine,
                Some(PolicySource::Subdomain),
                3,
            ),
            (
                "sub.example.com",
                spf(SpfResult::Pass, "example.com"),
                R::Pass,
                P::None,
                Some(PolicySource::Subdomain),
                2,
            ),
            // Non-existent subdomain: np.
            (
                "ghost.example.com",
                spf(SpfResult::Fail, "x.example"),
                R::Fail,
                P::None,
                Some(PolicySource::NonExistent),
                3,
            ),
            (
                "ghost.np.example",
                spf(SpfResult::Fail, "x.example"),
                R::Fail,
                P::Reject,
                Some(PolicySource::NonExistent),
                3,
            ),
            (
                "real.np.example",
                spf(SpfResult::Fail, "x.example"),
                R::Fail,
                P::None,
                Some(PolicySource::Subdomain),
                3,
            ),
            // No sp, no np: p, and no existence question.
            (
                "deep.sub.plain.example",
                dkim(DkimResult::Fail, "plain.example"),
                R::Fail,
                P::Quarantine,
                Some(PolicySource::Subdomain),
                2,
            ),
            // A subdomain's own record wins over the organizational one.
            (
                "own.plain.example",
                spf(SpfResult::Fail, "own.plain.example"),
                R::Fail,
                P::None,
                Some(PolicySource::Domain),
                1,
            ),
            // Strict alignment.
            (
                "strict.example",
                spf(SpfResult::Pass, "mail.strict.example"),
                R::Fail,
                P::Reject,
                Some(PolicySource::Domain),
                1,
            ),
            (
                "strict.example",
                dkim(DkimResult::Pass, "strict.example"),
                R::Pass,
                P::None,
                Some(PolicySource::Domain),
                1,
            ),
            // No record anywhere.
            (
                "a.b.nowhere.example",
                spf(SpfResult::Fail, "nowhere.example"),
                R::None,
                P::None,
                None,
                2,
            ),
            (
                "nowhere.example",
                spf(SpfResult::Fail, "nowhere.example"),
                R::None,
                P::None,
                None,
                1,
            ),
        ];
        for (from, input, result, disposition, source, questions) in table {
            let mut zone = Zone::new(records, &existing);
            let v = run(&mut zone, from, input.clone(), 0);
            assert_eq!(
                (v.result, v.disposition, v.source),
                (*result, *disposition, *source),
                "{from} {input:?}"
            );
            assert_eq!(zone.asked.len(), *questions, "{from}: {:?}", zone.asked);
        }
    }

    #[test]
    fn pct_and_testing_downgrade() {
        let recs: &[(&str, &str)] = &[
            ("_dmarc.pct.example", "v=DMARC1; p=reject; pct=30"),
            ("_dmarc.q.example", "v=DMARC1; p=quarantine; pct=0"),
            ("_dmarc.t.example", "v=DMARC1; p=reject; t=y; pct=100"),
            ("_dmarc.bad.example", "v=DMARC1; p=reject; pct=300"),
        ];
        let fail = || spf(SpfResult::Fail, "x.example");
        let mut z = Zone::new(recs, &[]);
        for (sample, want, out) in [
            (0, Policy::Reject, false),
            (29, Policy::Reject, false),
            (30, Policy::Quarantine, true),
            (99, Policy::Quarantine, true),
            (129, Policy::Reject, false),
        ] {
            let v = run(&mut z, "pct.example", fail(), sample);
            assert_eq!(
                (v.disposition, v.sampled_out),
                (want, out),
                "sample {sample}"
            );
            assert_eq!(v.requested, Some(Policy::Reject));
        }
        let v = run(&mut z, "q.example", fail(), 0);
        assert_eq!((v.disposition, v.sampled_out), (Policy::None, true));
        let v = run(&mut z, "t.example", fail(), 0);
        assert_eq!(
            (v.disposition, v.sampled_out),
            (Policy::Reject.downgrade(), true)
        );
        // An invalid pct is ignored (the default 100 applies) and reported.
        let v = run(&mut z, "bad.example", fail(), 99);
        assert_eq!((v.disposition, v.sampled_out), (Policy::Reject, false));
        assert_eq!(v.record_warnings.len(), 1);
        // pct never matters when DMARC passes.
        let v = run(
            &mut z,
            "pct.example",
            spf(SpfResult::Pass, "pct.example"),
            99,
        );
        assert_eq!(
            (v.result, v.disposition, v.sampled_out),
            (DmarcResult::Pass, Policy::None, false)
        );
    }

    #[test]
    fn discovery_edge_cases() {
        // Non-DMARC TXT records are ignored; two DMARC records: no policy.
        let recs: &[(&str, &str)] = &[
            ("_dmarc.two.example", "v=DMARC1; p=reject"),
            ("_dmarc.two.example", "v=DMARC1; p=none"),
            ("_dmarc.spf.example", "v=spf1 -all"),
            ("_dmarc.spf.example", "v=DMARC1; p=reject"),
        ];
        let mut z = Zone::new(recs, &[]);
        let v = run(&mut z, "two.example", spf(SpfResult::Fail, "x.example"), 0);
        assert_eq!(v.result, DmarcResult::None);
        assert!(matches!(
            v.no_policy,
            Some(NoPolicy::MultipleRecords { .. })
        ));
        let v = run(&mut z, "spf.example", spf(SpfResult::Fail, "x.example"), 0);
        assert_eq!(
            (v.result, v.disposition),
            (DmarcResult::Fail, Policy::Reject)
        );
        // A temporary DNS error: temperror, nothing applied.
        let psl = PublicSuffixList::builtin();
        let v = Evaluation::new(&psl, "example.com", AuthInput::default(), 0)
            .unwrap()
            .run(|_| Answer::TempError("timeout".into()));
        assert_eq!(
            (v.result, v.disposition),
            (DmarcResult::TempError, Policy::None)
        );
        // Invalid From domain.
        assert!(Evaluation::new(&psl, "bad..example", AuthInput::default(), 0).is_err());
        assert!(Evaluation::new(&psl, "", AuthInput::default(), 0).is_err());
        // An answer to a question not asked, or a second one, is ignored.
        let mut e = Evaluation::new(&psl, "example.com", AuthInput::default(), 0).unwrap();
        let Step::Query(q) = e.poll() else {
            panic!("a question first")
        };
        assert_eq!(e.poll(), Step::Wait);
        e.answer(
            &Query::new("_dmarc.other.example", QueryType::Txt),
            Answer::NxDomain,
        );
        assert_eq!(e.poll(), Step::Wait);
        e.answer(&q, Answer::txt("v=DMARC1; p=none"));
        e.answer(&q, Answer::NxDomain);
        let Step::Done(v) = e.poll() else {
            panic!("done")
        };
        assert_eq!(v.result, DmarcResult::Fail);
        // DKIM temperror or SPF pass of another org never aligns.
        let mut z = Zone::new(&[("_dmarc.example.com", "v=DMARC1; p=reject")], &[]);
        let v = run(
            &mut z,
            "example.com",
            dkim(DkimResult::TempError, "example.com"),
            0,
        );
        assert_eq!(v.result, DmarcResult::Fail);
        assert_eq!(v.policy_domain.as_deref(), Some("example.com"));
    }
}

#[cfg(all(test, feature = "spf", feature = "dkim"))]
mod handoff_tests {
    use super::*;

    #[test]
    fn spf_and_dkim_results_convert_without_strings() {
        assert_eq!(
            SpfResult::from(ptt_spf::SpfResult::SoftFail),
            SpfResult::SoftFail
        );
        assert_eq!(
            SpfResult::from(ptt_spf::SpfResult::TempError),
            SpfResult::TempError
        );
        assert_eq!(DkimResult::from(&ptt_dkim::Verdict::Pass), DkimResult::Pass);
        let outcome = DkimOutcome::new(DkimResult::from(&ptt_dkim::Verdict::Pass), "example.org");
        assert_eq!(outcome.result, DkimResult::Pass);
    }
}

impl ptt_dns::Evaluator for Evaluation {
    type Output = alloc::boxed::Box<Verdict>;
    fn poll(&mut self) -> Step {
        Evaluation::poll(self)
    }
    fn answer(&mut self, query: &Query, answer: Answer) {
        Evaluation::answer(self, query, answer)
    }
}
