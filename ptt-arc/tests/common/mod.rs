//! Helpers shared by the conformance runners: a key lookup from a map of
//! TXT records, and driving the Sans-IO verifier to its verdict.

#![allow(dead_code)]

use std::collections::BTreeMap;

use ptt_arc::verify::{Answer, ArcVerdict, ArcVerifier, Query};

/// TXT records by name (case-insensitive, final dot ignored).
pub struct TxtMap(pub BTreeMap<String, String>);

impl TxtMap {
    pub fn answer(&self, q: &Query) -> Answer {
        let want = q.name.trim_end_matches('.').to_ascii_lowercase();
        match self
            .0
            .iter()
            .find(|(k, _)| k.trim_end_matches('.').eq_ignore_ascii_case(&want))
        {
            Some((_, v)) => Answer::Txt(vec![v.as_bytes().to_vec()]),
            None => Answer::NxDomain,
        }
    }
}

/// Validates `message` (CRLF), answering every key query from `txt`.
pub fn verify(message: &[u8], txt: &TxtMap) -> ArcVerdict {
    ptt_dns::run(ArcVerifier::from_message(message), |q| txt.answer(q))
}
