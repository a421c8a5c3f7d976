//! Message authentication as a receiver does it: SPF (ptt-spf), DKIM
//! (ptt-dkim) and DMARC (ptt-dmarc), with every DNS question of the
//! Sans-IO evaluators answered by the resolver (the questions of one round
//! concurrently, SPF and DKIM side by side), and the
//! `Authentication-Results` field that records the verdicts (RFC 8601).
//!
//! Used by `ptt auth check` and by the local receiver of `ptt up`.

use std::net::IpAddr;

use ptt_dkim::SignatureResult;
use ptt_dmarc::authres::{AuthenticationResults, MethodResult, claims_authserv_id, items};
use ptt_dmarc::eval::{
    self as dmarc, AuthInput, DkimOutcome, DkimResult, Evaluation, SpfOutcome, Verdict,
};
use ptt_dmarc::psl::PublicSuffixList;
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
    let request = if envelope.mail_from.is_empty() {
        Request::helo(envelope.ip, &envelope.helo)
    } else {
        Request::mail_from(envelope.ip, &envelope.mail_from, &envelope.helo)
    }
    .with_receiver(receiver)
    .with_timestamp(now);
    let (spf, dkim) = tokio::join!(
        evaluate::spf(resolver, request.clone()),
        evaluate::dkim(resolver, message, now),
    );
    let mut received_spf = ptt_spf::ReceivedSpf::new(&request, &spf).to_string();
    if !received_spf.ends_with("\r\n") {
        received_spf.push_str("\r\n");
    }
    let input = AuthInput {
        spf: Some(spf_outcome(&spf)),
        dkim: dkim_outcomes(&dkim),
    };
    let (dmarc, from_problem) = match from_domain(message) {
        Ok(domain) => match Evaluation::new(psl, &domain, input.clone(), sample) {
            Ok(evaluation) => (evaluate::dmarc(resolver, evaluation).await, None),
            Err(e) => (Evaluation::permerror(&domain), Some(e.to_string())),
        },
        Err(why) => (Evaluation::permerror(""), Some(why)),
    };
    Authentication {
        spf,
        received_spf,
        dkim,
        input,
        dmarc,
        from_problem,
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
