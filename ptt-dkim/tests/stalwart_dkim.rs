//! Conformance runner over `stalwart-mail-auth-resources/resources/dkim/`:
//! each file holds "name record" lines, an empty line, then a signed message
//! (LF line ends, turned into CRLF); every signature must pass.
//!
//! The messages were verified by mail-auth at their signing time, and one
//! (005) has `x=` a day after `t=`: the runner checks each message at a fixed
//! time just after its latest `t=` (that is the point of passing time in).

mod common;

use std::collections::BTreeMap;

use common::{Tally, crlf, summary, verify_with};
use ptt_dkim::Verdict;

#[test]
fn stalwart_dkim() {
    let Some(root) =
        ptt_testkit::shared_suite("conformance/stalwart-mail-auth-resources/resources/dkim")
    else {
        return;
    };
    let mut t = Tally::new("stalwart-mail-auth-resources/dkim");
    let mut files: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    files.sort();
    for path in files {
        let raw = std::fs::read(&path).unwrap();
        let split = raw.windows(2).position(|w| w == b"\n\n").unwrap();
        let mut records = BTreeMap::new();
        for line in String::from_utf8_lossy(&raw[..split]).lines() {
            let (name, value) = line.split_once(' ').unwrap();
            records.insert(name.to_ascii_lowercase(), value.to_string());
        }
        let message = crlf(&raw[split + 2..]);
        // The latest t= of the message, plus a minute.
        let parsed = ptt_dkim::split_header_fields(
            &message[..message.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 2],
        )
        .iter()
        .filter(|f| f.is("dkim-signature"))
        .filter_map(|f| ptt_dkim::DkimSignature::parse(f.value()).ok())
        .filter_map(|s| s.timestamp)
        .max()
        .unwrap_or(1_700_000_000);
        let res = verify_with(&message, parsed + 60, &records);
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        t.check(
            &name,
            !res.is_empty() && res.iter().all(|r| r.verdict == Verdict::Pass),
            summary(&res),
        );
    }
    t.finish();
}
