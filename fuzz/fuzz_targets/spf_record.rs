//! SPF record parser: never panics, and whatever parses prints to a record
//! that parses back to the same value. The bytes also go through a whole
//! evaluation where every name answers with the input as its TXT record.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ptt_spf::{Answer, Evaluator, QueryType, Request, SpfRecord};

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(record) = SpfRecord::parse(text)
    {
        let printed = record.to_string();
        assert_eq!(
            SpfRecord::parse(&printed).as_ref(),
            Ok(&record),
            "{printed}"
        );
    }
    let request = Request::mail_from([192, 0, 2, 1].into(), "a@fuzz.example", "h.example");
    let mut asked = 0u32;
    let _ = Evaluator::run(request, |q| {
        asked += 1;
        assert!(asked < 1000, "runaway evaluation");
        match q.qtype {
            QueryType::Txt => Answer::Txt(vec![data.to_vec()]),
            QueryType::A => Answer::A(vec![[192, 0, 2, 2].into()]),
            QueryType::Mx => Answer::Mx(vec!["mx.fuzz.example".into()]),
            _ => Answer::NxDomain,
        }
    });
});
