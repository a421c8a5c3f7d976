//! Message authentication as a receiver does it: SPF (ptt-spf), DKIM
//! (ptt-dkim) and DMARC (ptt-dmarc), with every DNS question of the
//! Sans-IO evaluators answered by the resolver (the questions of one round
//! concurrently, SPF and DKIM side by side), and the
//! `Authentication-Results` field that records the verdicts (RFC 8601).
//!
//! Used by `ptt auth check` and by the local receiver of `ptt up`.

use std::net::IpAddr;

use ptt_dkim::{SignatureResult, Verifier, VerifyPolicy};
use ptt_dmarc::authres::{AuthenticationResults, MethodResult, claims_authserv_id, items};
use ptt_dmarc::eval::{
    self as dmarc, AuthInput, DkimOutcome, DkimResult, Evaluation, SpfOutcome, Verdict,
};
use ptt_dmarc::psl::PublicSuffixList;
use ptt_dns::{Answer, Query, Step};
use ptt_spf::{Identity, Request, SpfOutput};

use crate::dns::{Resolver, evaluate};

/// What the SMTP session knows about the sender.
#[derive(Debug, Clone)]
pub(crate) struct Envelope {
    /// The client's address.
    pub(crate) ip: IpAddr,
    /// The HELO/EHLO name.
    pub(crate) helo: String,
    /// The MAIL FROM address, empty for the null sender.
    pub(crate) mail_from: String,
}

/// The verdicts on one message.
#[derive(Debug)]
pub(crate) struct Authentication {
    /// SPF for MAIL FROM (or HELO for the null sender).
    pub(crate) spf: SpfOutput,
    /// The `Received-SPF` field, CRLF-terminated.
    pub(crate) received_spf: String,
    /// One result per DKIM-Signature.
    pub(crate) dkim: Vec<SignatureResult>,
    /// What DMARC was given (for the aggregate report).
    pub(crate) input: AuthInput,
    /// DMARC for the RFC 5322.From domain.
    pub(crate) dmarc: Verdict,
    /// Why DMARC could not evaluate the From field (its permerror).
    pub(crate) from_problem: Option<String>,
}

impl Authentication {
    /// The `Authentication-Results` field for `authserv_id`, CRLF-terminated.
    pub(crate) fn header_field(&self, authserv_id: &str) -> Result<String, String> {
        let mut ar = AuthenticationResults::new(authserv_id)
            .map_err(|e| format!("authserv-id {authserv_id:?}: {e}"))?;
        let spf = spf_outcome(&self.spf);
        ar.push(
            items::spf(&spf, Some(&self.spf.sender))
                .or_else(|_| items::spf(&spf, None))
                .or_else(|_| MethodResult::new("spf", spf.result.as_str()))
                .map_err(|e| e.to_string())?,
        );
        if self.dkim.is_empty() {
            ar.push(MethodResult::new("dkim", "none").map_err(|e| e.to_string())?);
        }
        for outcome in dkim_outcomes(&self.dkim) {
            let item = items::dkim(&outcome)
                .or_else(|_| MethodResult::new("dkim", outcome.result.as_str()))
                .map_err(|e| e.to_string())?;
            ar.push(item);
        }
        ar.push(
            items::dmarc(&self.dmarc)
                .or_else(|_| MethodResult::new("dmarc", self.dmarc.result.as_str()))
                .map_err(|e| e.to_string())?,
        );
        Ok(ar.to_header_field())
    }

    /// Each method's result as `Authentication-Results` names it: SPF,
    /// one per DKIM signature (`none` without any), DMARC.
    pub(crate) fn results(&self) -> Vec<(&'static str, String)> {
        let mut out = vec![("spf", spf_outcome(&self.spf).result.as_str().to_string())];
        if self.dkim.is_empty() {
            out.push(("dkim", "none".into()));
        }
        for outcome in dkim_outcomes(&self.dkim) {
            out.push(("dkim", outcome.result.as_str().to_string()));
        }
        out.push(("dmarc", self.dmarc.result.as_str().to_string()));
        out
    }
}

/// Runs SPF, DKIM and DMARC on `message` (the whole message, CRLF line ends).
///
/// `receiver` names this host in `Received-SPF`; `now` is the Unix time for
/// DKIM's `t=`/`x=`; `sample` is a random number for DMARC `pct`.
pub(crate) async fn authenticate(
    resolver: &Resolver,
    psl: &PublicSuffixList,
    message: &[u8],
    envelope: &Envelope,
    receiver: &str,
    now: u64,
    sample: u32,
) -> Authentication {
    let verifier = evaluate::dkim_verifier(resolver, now);
    let mut authenticator =
        Authenticator::new(psl, message, envelope, receiver, now, sample, verifier);
    match evaluate::drive(resolver, &mut authenticator).await {
        Some(auth) => auth,
        // Not reached: the authenticator never waits without a question out.
        None => authenticator.stalled(),
    }
}

/// Who asked a question the [`Authenticator`] handed out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Asker {
    Spf,
    Dkim,
    Dmarc,
}

/// Where an [`Authenticator`] is.
enum Phase {
    /// SPF and DKIM, their questions side by side.
    SpfAndDkim,
    /// DMARC, once both have their results.
    Dmarc(Box<Evaluation>),
    /// Handed out.
    Done,
}

/// SPF, DKIM and DMARC on one message as one Sans-IO evaluator (the
/// [`ptt_dns::Evaluator`] shape): SPF's and DKIM's questions come out side
/// by side, DMARC's once both are done; [`authenticate`] drives it with the
/// resolver, and a loop without tokio can drive it with its own DNS.
pub(crate) struct Authenticator<'a> {
    psl: &'a PublicSuffixList,
    request: Request,
    from: Result<String, String>,
    sample: u32,
    spf: ptt_spf::Evaluator,
    spf_out: Option<SpfOutput>,
    dkim: Verifier,
    dkim_done: bool,
    input: Option<AuthInput>,
    from_problem: Option<String>,
    phase: Phase,
    /// Questions out, with who asked.
    asked: Vec<(Query, Asker)>,
}

impl<'a> Authenticator<'a> {
    /// An authentication of `message` as sent with `envelope`; `verifier`
    /// is the DKIM verifier to use (with its policy, time and key cache).
    pub(crate) fn new(
        psl: &'a PublicSuffixList,
        message: &[u8],
        envelope: &Envelope,
        receiver: &str,
        now: u64,
        sample: u32,
        mut verifier: Verifier,
    ) -> Self {
        let request = if envelope.mail_from.is_empty() {
            Request::helo(envelope.ip, &envelope.helo)
        } else {
            Request::mail_from(envelope.ip, &envelope.mail_from, &envelope.helo)
        }
        .with_receiver(receiver)
        .with_timestamp(now);
        verifier.update(message);
        verifier.end();
        Authenticator {
            psl,
            spf: ptt_spf::Evaluator::new(request.clone()),
            request,
            from: from_domain(message),
            sample,
            spf_out: None,
            dkim: verifier,
            dkim_done: false,
            input: None,
            from_problem: None,
            phase: Phase::SpfAndDkim,
            asked: Vec::new(),
        }
    }

    fn waiting_on(&self, asker: Asker) -> bool {
        self.asked.iter().any(|(_, a)| *a == asker)
    }

    /// SPF and DKIM: the next question of either, or DMARC's start once
    /// both are done.
    fn poll_spf_and_dkim(&mut self) -> Option<Step<Authentication>> {
        if self.spf_out.is_none() {
            match self.spf.poll() {
                Step::Query(q) => {
                    self.asked.push((q.clone(), Asker::Spf));
                    return Some(Step::Query(q));
                }
                Step::Done(out) => self.spf_out = Some(out),
                Step::Wait if self.waiting_on(Asker::Spf) => {}
                // Not reached: SPF asks before it waits.
                Step::Wait => self.spf_out = Some(evaluate::spf_stalled(&self.request)),
            }
        }
        if !self.dkim_done {
            match self.dkim.poll() {
                Step::Query(q) => {
                    self.asked.push((q.clone(), Asker::Dkim));
                    return Some(Step::Query(q));
                }
                Step::Done(()) => self.dkim_done = true,
                Step::Wait if self.waiting_on(Asker::Dkim) => {}
                // Not reached: the verifier asks before it waits. A key
                // never answered is a temperror, never a pass.
                Step::Wait => {
                    self.dkim.give_up();
                    self.dkim_done = true;
                }
            }
        }
        let spf = self.spf_out.as_ref()?;
        if !self.dkim_done {
            return None;
        }
        let input = AuthInput {
            spf: Some(spf_outcome(spf)),
            dkim: dkim_outcomes(self.dkim.results()),
        };
        // DMARC starts, or is a permerror for the From domain (none when
        // the From field has none), with what was wrong.
        let start = match &self.from {
            Ok(domain) => Evaluation::new(self.psl, domain, input.clone(), self.sample)
                .map_err(|e| (e.to_string(), domain.clone())),
            Err(why) => Err((why.clone(), String::new())),
        };
        self.input = Some(input);
        match start {
            Ok(evaluation) => {
                self.phase = Phase::Dmarc(Box::new(evaluation));
                None
            }
            Err((problem, domain)) => {
                self.from_problem = Some(problem);
                Some(Step::Done(self.finish(Evaluation::permerror(&domain))))
            }
        }
    }

    /// The verdicts, DMARC's given.
    fn finish(&mut self, dmarc: Verdict) -> Authentication {
        self.phase = Phase::Done;
        let spf = self
            .spf_out
            .take()
            .unwrap_or_else(|| evaluate::spf_stalled(&self.request));
        let mut received_spf = ptt_spf::ReceivedSpf::new(&self.request, &spf).to_string();
        if !received_spf.ends_with("\r\n") {
            received_spf.push_str("\r\n");
        }
        Authentication {
            spf,
            received_spf,
            dkim: std::mem::replace(&mut self.dkim, Verifier::new(VerifyPolicy::default(), 0))
                .into_results(),
            input: self.input.take().unwrap_or_default(),
            dmarc,
            from_problem: self.from_problem.take(),
        }
    }

    /// What there is when the driver gives up on the questions out: SPF
    /// temperror if it has no result, DKIM's results as they are, DMARC
    /// permerror.
    pub(crate) fn stalled(mut self) -> Authentication {
        self.dkim.give_up();
        let org = match &self.phase {
            Phase::Dmarc(evaluation) => evaluation.organizational_domain().to_string(),
            _ => String::new(),
        };
        self.finish(Evaluation::permerror(&org))
    }
}

impl ptt_dns::Evaluator for Authenticator<'_> {
    type Output = Authentication;

    fn poll(&mut self) -> Step<Authentication> {
        if matches!(self.phase, Phase::SpfAndDkim) {
            if let Some(step) = self.poll_spf_and_dkim() {
                return step;
            }
            if matches!(self.phase, Phase::SpfAndDkim) {
                return Step::Wait;
            }
        }
        let waiting = self.waiting_on(Asker::Dmarc);
        let Phase::Dmarc(evaluation) = &mut self.phase else {
            return Step::Wait;
        };
        match evaluation.poll() {
            Step::Query(q) => {
                self.asked.push((q.clone(), Asker::Dmarc));
                Step::Query(q)
            }
            Step::Done(verdict) => Step::Done(self.finish(*verdict)),
            Step::Wait if waiting => Step::Wait,
            // Not reached: DMARC asks before it waits.
            Step::Wait => {
                let org = evaluation.organizational_domain().to_string();
                Step::Done(self.finish(Evaluation::permerror(&org)))
            }
        }
    }

    /// Hands the answer to everyone who asked that question (names
    /// compared without case), so that a driver that asks a question once
    /// for several askers serves them all.
    fn answer(&mut self, query: &Query, answer: Answer) {
        let same = |q: &Query| q.qtype == query.qtype && q.name.eq_ignore_ascii_case(&query.name);
        let askers: Vec<(Query, Asker)> = self
            .asked
            .iter()
            .filter(|(q, _)| same(q))
            .cloned()
            .collect();
        self.asked.retain(|(q, _)| !same(q));
        for (asked, asker) in askers {
            match asker {
                Asker::Spf => self.spf.answer(&asked, answer.clone()),
                Asker::Dkim => self.dkim.answer(&asked, answer.clone()),
                Asker::Dmarc => {
                    if let Phase::Dmarc(evaluation) = &mut self.phase {
                        evaluation.answer(&asked, answer.clone());
                    }
                }
            }
        }
    }
}

fn spf_outcome(spf: &SpfOutput) -> SpfOutcome {
    let result = dmarc::SpfResult::from(spf.result);
    match spf.identity {
        Identity::Helo => SpfOutcome::helo(result, &spf.domain),
        Identity::MailFrom => SpfOutcome::mail_from(result, &spf.domain),
    }
}

fn dkim_outcomes(results: &[SignatureResult]) -> Vec<DkimOutcome> {
    results
        .iter()
        .map(|r| {
            let result = DkimResult::from(&r.verdict);
            let outcome = DkimOutcome::new(result, r.domain.as_deref().unwrap_or_default());
            match &r.selector {
                Some(s) => outcome.with_selector(s),
                None => outcome,
            }
        })
        .collect()
}

pub(crate) use ptt_dmarc::from::header_block;

/// The addresses of the single From field (see [`ptt_dmarc::from`]), or
/// what is wrong with it.
pub(crate) fn from_addresses(message: &[u8]) -> Result<Vec<String>, String> {
    ptt_dmarc::from::from_addresses(message).map_err(|e| e.to_string())
}

/// The domain of the single address of the single From field (RFC 7489
/// §6.6.1), or what is wrong with it.
pub(crate) fn from_domain(message: &[u8]) -> Result<String, String> {
    ptt_dmarc::from::from_domain(message).map_err(|e| e.to_string())
}

/// Whether `field` is an `Authentication-Results` claiming `authserv_id`
/// (RFC 8601 §5: a receiver removes forged results of its own before adding
/// its own).
pub(crate) fn is_forged_result(field: &ptt_dkim::HeaderField<'_>, authserv_id: &str) -> bool {
    field.name.eq_ignore_ascii_case(b"authentication-results")
        && claims_authserv_id(&String::from_utf8_lossy(field.value()), authserv_id)
}

/// `message` without the header fields `drop` picks; the body untouched.
pub(crate) fn without_fields(
    message: &[u8],
    drop: impl Fn(&ptt_dkim::HeaderField<'_>) -> bool,
) -> Vec<u8> {
    let head = header_block(message);
    let mut out = Vec::with_capacity(message.len());
    for field in ptt_dkim::split_header_fields(head) {
        if !drop(&field) {
            out.extend_from_slice(field.raw);
        }
    }
    out.extend_from_slice(&message[head.len()..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use ptt_dns::{Evaluator as _, QueryType};

    /// A message from example.com signed with Ed25519 (selector `ed`), and
    /// the key record to publish.
    fn signed_message() -> (Vec<u8>, String) {
        let key = ptt_dkim::SigningKey::from_ed25519_seed(&[7; 32]).expect("key");
        let mut config = ptt_dkim::SignerConfig::new("example.com", "ed");
        config.timestamp = Some(1_700_000_000);
        let body = b"From: Alice <alice@example.com>\r\nTo: bob@example.net\r\n\
Subject: hi\r\n\r\nHello.\r\n";
        let mut signer = ptt_dkim::Signer::new(&key, &config).expect("signer");
        signer.update(body);
        let field = signer.finish().expect("sign");
        (
            [field.as_bytes(), body].concat(),
            key.key_record().to_string(),
        )
    }

    fn envelope() -> Envelope {
        Envelope {
            ip: "192.0.2.1".parse().expect("ip"),
            helo: "mail.example.com".into(),
            mail_from: "alice@example.com".into(),
        }
    }

    /// The authenticator of the tests: receiver `mx.example.org`, DMARC
    /// sample 0, DKIM at `now`.
    fn authenticator<'a>(
        psl: &'a PublicSuffixList,
        message: &[u8],
        envelope: &Envelope,
        now: u64,
    ) -> Authenticator<'a> {
        let verifier = Verifier::new(VerifyPolicy::default(), now);
        Authenticator::new(psl, message, envelope, "mx.example.org", now, 0, verifier)
    }

    /// SPF's first question and DKIM's key question come out before the
    /// authenticator waits; once both are answered, DMARC asks, and the
    /// verdicts are those the records imply.
    #[test]
    fn spf_and_dkim_ask_side_by_side_then_dmarc() {
        let (message, key_record) = signed_message();
        let psl = PublicSuffixList::builtin();
        let mut auth = authenticator(&psl, &message, &envelope(), 1_700_000_100);
        let records = |q: &Query| -> Answer {
            match (q.name.as_str(), q.qtype) {
                ("example.com", QueryType::Txt) => Answer::txt("v=spf1 ip4:192.0.2.0/24 -all"),
                ("ed._domainkey.example.com", QueryType::Txt) => Answer::txt(key_record.as_str()),
                ("_dmarc.example.com", QueryType::Txt) => Answer::txt("v=DMARC1; p=reject"),
                _ => Answer::NxDomain,
            }
        };
        let mut first_round = Vec::new();
        while let Step::Query(q) = auth.poll() {
            first_round.push(q);
        }
        let names: Vec<&str> = first_round.iter().map(|q| q.name.as_str()).collect();
        assert_eq!(names, ["example.com", "ed._domainkey.example.com"]);
        for q in first_round {
            let answer = records(&q);
            auth.answer(&q, answer);
        }
        let result = ptt_dns::run(auth, records);
        assert_eq!(result.spf.result, ptt_spf::SpfResult::Pass);
        assert_eq!(result.dkim.len(), 1);
        assert_eq!(result.dkim[0].verdict.as_str(), "pass");
        assert_eq!(result.dmarc.result.as_str(), "pass");
        assert!(result.received_spf.starts_with("Received-SPF: pass"));
    }

    /// A driver that gives up with the questions out gets SPF temperror
    /// and the signature as temperror: never a pass without its key.
    #[test]
    fn giving_up_never_passes_a_signature_without_its_key() {
        let (message, _) = signed_message();
        let psl = PublicSuffixList::builtin();
        let mut auth = authenticator(&psl, &message, &envelope(), 1_700_000_100);
        while let Step::Query(_) = auth.poll() {}
        let result = auth.stalled();
        assert_eq!(result.spf.result, ptt_spf::SpfResult::TempError);
        assert_eq!(result.dkim[0].verdict.as_str(), "temperror");
        assert_ne!(result.dmarc.result.as_str(), "pass");
    }

    /// One answer serves every asker of the same question (name without
    /// case): SPF including the DKIM key's name asks what DKIM asks.
    #[test]
    fn one_answer_serves_every_asker_of_the_question() {
        let (message, key_record) = signed_message();
        let psl = PublicSuffixList::builtin();
        let mut auth = authenticator(
            &psl,
            &message,
            &Envelope {
                mail_from: "alice@ed._domainkey.example.com".into(),
                ..envelope()
            },
            1_700_000_100,
        );
        let mut asked = Vec::new();
        while let Step::Query(q) = auth.poll() {
            asked.push(q);
        }
        assert_eq!(asked.len(), 2);
        assert!(asked[0].name.eq_ignore_ascii_case(&asked[1].name));
        // One answer, to the name in other case, for both.
        let q = Query::new("ED._domainkey.EXAMPLE.com", QueryType::Txt);
        auth.answer(&q, Answer::txt(key_record.as_str()));
        let result = ptt_dns::run(auth, |q| match q.name.as_str() {
            "_dmarc.example.com" => Answer::txt("v=DMARC1; p=none"),
            other => panic!("{other} asked again"),
        });
        assert_eq!(result.dkim[0].verdict.as_str(), "pass");
        // The key record is no SPF record: SPF says none.
        assert_eq!(result.spf.result, ptt_spf::SpfResult::None);
    }

    /// An answer to a question nobody asked is dropped, and a From field
    /// that has no domain makes DMARC permerror without asking.
    #[test]
    fn unasked_answers_are_ignored_and_a_bad_from_is_a_permerror() {
        let psl = PublicSuffixList::builtin();
        let message = b"From: nobody\r\nSubject: x\r\n\r\nbody\r\n";
        let mut auth = authenticator(&psl, message, &envelope(), 1_700_000_000);
        auth.answer(
            &Query::new("_dmarc.example.com", QueryType::Txt),
            Answer::txt("v=DMARC1; p=none"),
        );
        let result = ptt_dns::run(auth, |q| match q.name.as_str() {
            "example.com" => Answer::txt("v=spf1 -all"),
            other => panic!("{other} was not to be asked"),
        });
        assert_eq!(result.spf.result, ptt_spf::SpfResult::Fail);
        assert!(result.dkim.is_empty());
        assert_eq!(result.dmarc.result.as_str(), "permerror");
        assert!(result.from_problem.is_some());
    }

    #[test]
    fn forged_results_of_our_id_are_removed_and_others_kept() {
        let message = b"Authentication-Results: mx.example.org; dkim=pass\r\n\
Authentication-Results: other.example; spf=pass\r\n\
Authentication-Results: MX.EXAMPLE.ORG;\r\n\tdmarc=pass\r\n\
Subject: hi\r\n\r\nAuthentication-Results: mx.example.org; in the body\r\n";
        let out = without_fields(message, |f| is_forged_result(f, "mx.example.org"));
        assert_eq!(
            out,
            b"Authentication-Results: other.example; spf=pass\r\nSubject: hi\r\n\r\n\
Authentication-Results: mx.example.org; in the body\r\n"
        );
    }
}
