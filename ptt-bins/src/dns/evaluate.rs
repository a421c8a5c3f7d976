//! Every Sans-IO evaluator's DNS questions answered by the [`Resolver`],
//! through one adapter ([`drive`]): ptt-spf, ptt-dkim, ptt-dmarc and
//! ptt-arc all have ptt-dns's shape (`poll()` a `Step`, `answer()` an
//! `Answer`), and the questions handed out before a `Wait` are asked
//! concurrently.

use hickory_proto::rr::{RData, RecordType};
use ptt_dkim::{SignatureResult, Verifier, VerifyPolicy};
use ptt_dns::{Answer, Evaluator, Query, QueryType, Step};
use ptt_spf::{Request, SpfOutput, SpfResult};

use super::{Lookup, Resolver, txt_joined};

/// The resolver's outcome as every evaluator takes it.
pub(crate) fn answer_of(qtype: QueryType, lookup: Lookup) -> Answer {
    let records = match lookup {
        Lookup::Found(records) => records,
        Lookup::NoRecords => return Answer::NoRecords,
        Lookup::NxDomain => return Answer::NxDomain,
        Lookup::Failed(why) => return Answer::TempError(why),
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

pub(crate) fn record_type(qtype: QueryType) -> RecordType {
    match qtype {
        QueryType::Txt => RecordType::TXT,
        QueryType::A => RecordType::A,
        QueryType::Aaaa => RecordType::AAAA,
        QueryType::Mx => RecordType::MX,
        QueryType::Ptr => RecordType::PTR,
    }
}

/// Looks `query` up.
pub(crate) async fn ask(resolver: &Resolver, query: &Query) -> Answer {
    let name = query.name.trim_end_matches('.');
    answer_of(
        query.qtype,
        resolver.lookup(name, record_type(query.qtype)).await,
    )
}

/// Drives any evaluator to its end: the questions of each round asked
/// concurrently, then answered. `None` when it waits with nothing asked
/// (it wants input the driver does not have).
pub(crate) async fn drive<E: Evaluator>(
    resolver: &Resolver,
    evaluator: &mut E,
) -> Option<E::Output> {
    let mut open: Vec<Query> = Vec::new();
    loop {
        match evaluator.poll() {
            Step::Query(q) => open.push(q),
            Step::Wait if open.is_empty() => return None,
            Step::Wait => {
                let answers =
                    futures_util::future::join_all(open.iter().map(|q| ask(resolver, q))).await;
                for (q, answer) in open.drain(..).zip(answers) {
                    evaluator.answer(&q, answer);
                }
            }
            Step::Done(out) => return Some(out),
        }
    }
}

/// SPF for `request`.
pub(crate) async fn spf(resolver: &Resolver, request: Request) -> SpfOutput {
    let mut ev = ptt_spf::Evaluator::new(request.clone());
    match drive(resolver, &mut ev).await {
        Some(out) => out,
        // Not reached: SPF asks before it waits.
        None => spf_stalled(&request),
    }
}

/// SPF's result for `request` when its evaluation stopped without one:
/// a temperror that says so.
pub(crate) fn spf_stalled(request: &Request) -> SpfOutput {
    SpfOutput {
        result: SpfResult::TempError,
        identity: request.identity(),
        domain: request.domain(),
        sender: request.sender(),
        mechanism: None,
        problem: Some("the evaluation stalled".into()),
        explanation: None,
    }
}

/// The receiver's DKIM verifier at `now`: default policy, the parsed keys
/// `resolver` keeps.
pub(crate) fn dkim_verifier(resolver: &Resolver, now: u64) -> Verifier {
    Verifier::new(VerifyPolicy::default(), now).with_key_cache(resolver.dkim_keys())
}

/// Verifies every DKIM-Signature, answering the key questions as they come.
pub(crate) async fn dkim(resolver: &Resolver, message: &[u8], now: u64) -> Vec<SignatureResult> {
    let mut verifier = dkim_verifier(resolver, now);
    verifier.update(message);
    verifier.end();
    // The results are the verifier's, whether it ended or stalled (a key
    // never answered is a temperror, never a pass).
    if drive(resolver, &mut verifier).await.is_none() {
        verifier.give_up();
    }
    verifier.into_results()
}

/// Validates the ARC chain of `message` (RFC 8617 §5.2), asking every key
/// question at once.
pub(crate) async fn arc(resolver: &Resolver, message: &[u8]) -> ptt_arc::verify::ArcVerdict {
    let mut verifier = ptt_arc::verify::ArcVerifier::from_message(message);
    match drive(resolver, &mut verifier).await {
        Some(verdict) => verdict,
        // Not reached: the whole message was given. Never a pass.
        None => ptt_arc::verify::ArcVerdict {
            status: ptt_arc::header::ChainStatus::Fail,
            sets: 0,
            oldest_pass: None,
            failure: None,
            sealers: Vec::new(),
        },
    }
}
