//! Every Sans-IO evaluator's DNS questions answered by the [`Resolver`], in
//! one place: SPF ([`spf`]), DKIM ([`dkim`]) and DMARC ([`dmarc`]). The
//! questions of one round are asked concurrently.

use hickory_proto::rr::{RData, RecordType};
use ptt_dkim::{SignatureResult, Verifier, VerifyPolicy};
use ptt_dmarc::eval::{self as dmarc_eval, Evaluation, Verdict};
use ptt_spf::{Answer, Evaluator, Query, QueryType, Request, SpfOutput, Step};

use super::{Lookup, Resolver, key_answer, txt_joined};

/// Turns a resolver outcome into the evaluator's answer.
pub(crate) fn spf_answer(qtype: QueryType, lookup: Lookup) -> Answer {
    let records = match lookup {
        Lookup::Found(records) => records,
        Lookup::NoRecords => return Answer::NoRecords,
        Lookup::NxDomain => return Answer::NxDomain,
        Lookup::Failed(_) => return Answer::Error,
    };
    let name = |n: &hickory_proto::rr::Name| {
        let s = n.to_ascii();
        s.strip_suffix('.').unwrap_or(&s).to_string()
    };
    match qtype {
        QueryType::Txt => Answer::Txt(
            records
                .iter()
                .filter_map(|r| match r {
                    RData::TXT(t) => Some(txt_joined(t)),
                    _ => None,
                })
                .collect(),
        ),
        QueryType::A => Answer::A(
            records
                .iter()
                .filter_map(|r| match r {
                    RData::A(a) => Some(a.0),
                    _ => None,
                })
                .collect(),
        ),
        QueryType::Aaaa => Answer::Aaaa(
            records
                .iter()
                .filter_map(|r| match r {
                    RData::AAAA(a) => Some(a.0),
                    _ => None,
                })
                .collect(),
        ),
        QueryType::Mx => {
            let mut mx: Vec<_> = records
                .iter()
                .filter_map(|r| match r {
                    RData::MX(m) => Some((m.preference, name(&m.exchange))),
                    _ => None,
                })
                .collect();
            mx.sort();
            Answer::Mx(mx.into_iter().map(|(_, n)| n).collect())
        }
        QueryType::Ptr => Answer::Ptr(
            records
                .iter()
                .filter_map(|r| match r {
                    RData::PTR(p) => Some(name(&p.0)),
                    _ => None,
                })
                .collect(),
        ),
    }
}

fn record_type(qtype: QueryType) -> RecordType {
    match qtype {
        QueryType::Txt => RecordType::TXT,
        QueryType::A => RecordType::A,
        QueryType::Aaaa => RecordType::AAAA,
        QueryType::Mx => RecordType::MX,
        QueryType::Ptr => RecordType::PTR,
    }
}

/// Drives an evaluation with the resolver, asking each round's questions
/// concurrently.
pub(crate) async fn spf(resolver: &Resolver, request: Request) -> SpfOutput {
    let mut ev = Evaluator::new(request);
    let mut open: Vec<Query> = Vec::new();
    loop {
        match ev.poll() {
            Step::Query(q) => open.push(q),
            Step::Wait => {
                let lookups = open
                    .iter()
                    .map(|q| resolver.lookup(&q.name, record_type(q.qtype)));
                let results = futures_util::future::join_all(lookups).await;
                for (q, lookup) in open.drain(..).zip(results) {
                    let answer = spf_answer(q.qtype, lookup);
                    ev.answer(&q, answer);
                }
            }
            Step::Done(out) => return out,
        }
    }
}

/// Verifies every DKIM-Signature, answering the key questions as they come.
pub(crate) async fn dkim(resolver: &Resolver, message: &[u8], now: u64) -> Vec<SignatureResult> {
    let mut verifier = Verifier::new(VerifyPolicy::default(), now);
    verifier.update(message);
    verifier.end();
    let mut asked = Vec::new();
    loop {
        match verifier.poll() {
            ptt_dkim::Output::NeedTxt(query) => asked.push(query.name),
            ptt_dkim::Output::Wait if !asked.is_empty() => {
                let lookups = asked.iter().map(|n| resolver.lookup(n, RecordType::TXT));
                let answers = futures_util::future::join_all(lookups).await;
                for (name, lookup) in asked.drain(..).zip(answers) {
                    verifier.answer(&name, key_answer(lookup));
                }
            }
            ptt_dkim::Output::Wait | ptt_dkim::Output::Done => {
                return verifier.into_results();
            }
        }
    }
}

pub(crate) async fn dmarc(resolver: &Resolver, mut evaluation: Evaluation) -> Verdict {
    loop {
        match evaluation.poll() {
            dmarc_eval::Step::Done(verdict) => return *verdict,
            dmarc_eval::Step::Query(query) => {
                let rtype = match query.kind {
                    dmarc_eval::QueryKind::Txt => RecordType::TXT,
                    dmarc_eval::QueryKind::A => RecordType::A,
                };
                let answer = match resolver.lookup(&query.name, rtype).await {
                    Lookup::Found(records) => dmarc_eval::Answer::Txt(
                        records
                            .iter()
                            .map(|r| match r {
                                RData::TXT(txt) => {
                                    String::from_utf8_lossy(&txt_joined(txt)).into_owned()
                                }
                                other => other.to_string(),
                            })
                            .collect(),
                    ),
                    Lookup::NoRecords => dmarc_eval::Answer::NoRecords,
                    Lookup::NxDomain => dmarc_eval::Answer::NxDomain,
                    Lookup::Failed(_) => dmarc_eval::Answer::TempError,
                };
                if evaluation.handle_answer(answer).is_err() {
                    // Cannot happen: a question is pending after Step::Query.
                    return Evaluation::permerror(evaluation.organizational_domain());
                }
            }
        }
    }
}

/// Validates the ARC chain of `message` (RFC 8617 §5.2), asking each
/// round's key questions concurrently.
pub(crate) async fn arc(resolver: &Resolver, message: &[u8]) -> ptt_arc::verify::ArcVerdict {
    let mut verifier = ptt_arc::verify::ArcVerifier::from_message(message);
    loop {
        if let Some(verdict) = verifier.verdict() {
            return verdict;
        }
        let queries = verifier.queries();
        let answers = futures_util::future::join_all(
            queries
                .iter()
                .map(|q| resolver.lookup(q.name.trim_end_matches('.'), RecordType::TXT)),
        )
        .await;
        for (q, lookup) in queries.iter().zip(answers) {
            verifier.answer(q, key_answer(lookup));
        }
    }
}
