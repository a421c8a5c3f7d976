//! Aggregate report readers (XML, and email with gzip/zip attachments):
//! never panic, and a report that reads writes XML that reads again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ptt_dmarc::report::{Feedback, from_message};

fuzz_target!(|data: &[u8]| {
    if let Ok(feedback) = Feedback::parse_xml(data) {
        let xml = feedback.to_xml();
        Feedback::parse_xml(xml.as_bytes()).expect("our own XML reads back");
    }
    let _ = from_message(data);
});
