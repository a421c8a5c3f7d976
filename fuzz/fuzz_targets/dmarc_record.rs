//! DMARC record parser: never panics; a record that parses prints to text
//! that parses back to the same record; the lenient parse agrees with the
//! strict one whenever the strict one succeeds. The bytes are also served as
//! the TXT answer of a whole DMARC evaluation, which must ask at most three
//! questions.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ptt_dmarc::DmarcRecord;
use ptt_dmarc::eval::{Answer, AuthInput, Evaluation, QueryType, SpfOutcome, SpfResult};
use ptt_dmarc::psl::PublicSuffixList;
use std::sync::OnceLock;

static PSL: OnceLock<PublicSuffixList> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(record) = DmarcRecord::parse(text) {
        let printed = record.to_string();
        assert_eq!(
            DmarcRecord::parse(&printed).as_ref(),
            Ok(&record),
            "{printed}"
        );
        let (lenient, warnings) = DmarcRecord::parse_lenient(text).expect("lenient");
        assert_eq!(lenient, record);
        assert!(warnings.is_empty());
    }
    let psl = PSL.get_or_init(PublicSuffixList::builtin);
    let input = AuthInput {
        spf: Some(SpfOutcome::mail_from(SpfResult::Fail, "fuzz.example")),
        dkim: vec![],
    };
    let sample = data.first().copied().unwrap_or(0).into();
    let eval = Evaluation::new(psl, "a.b.fuzz.example.co.uk", input, sample).expect("valid domain");
    let mut asked = 0;
    let _ = eval.run(|q| {
        asked += 1;
        assert!(asked <= 3, "more than three questions");
        match q.qtype {
            QueryType::Txt => Answer::txt(&text),
            _ => Answer::NxDomain,
        }
    });
});
