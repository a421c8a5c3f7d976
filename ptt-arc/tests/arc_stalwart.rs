//! The ARC messages of Stalwart's mail-auth test resources
//! (`conformance/stalwart-mail-auth-resources/resources/arc/*.txt`): key
//! records as "name value" lines, an empty line, then a real sealed
//! message (Google; an ed25519/RSA chain). Every one must validate as
//! `pass`.

mod common;

use std::collections::BTreeMap;

use common::{TxtMap, verify};
use ptt_arc::header::ChainStatus;
use ptt_arc::message::to_crlf;

#[test]
fn stalwart_arc_chains() {
    let Some(dir) =
        ptt_testkit::shared_suite("conformance/stalwart-mail-auth-resources/resources/arc")
    else {
        return;
    };
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("read dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    files.sort();
    assert!(!files.is_empty());
    let (mut passed, mut failed) = (0, 0);
    for path in files {
        let raw = std::fs::read(&path).expect("read");
        let text = String::from_utf8_lossy(&raw).replace("\r\n", "\n");
        let (records, message) = text
            .split_once("\n\n")
            .expect("records, blank line, message");
        let mut map = BTreeMap::new();
        for line in records.lines() {
            let (name, value) = line.split_once(' ').expect("name value");
            map.insert(name.to_string(), value.to_string());
        }
        let verdict = verify(&to_crlf(message.as_bytes()), &TxtMap(map));
        if verdict.status == ChainStatus::Pass {
            passed += 1;
        } else {
            failed += 1;
            println!("FAIL {}: {verdict}", path.display());
        }
    }
    println!("stalwart arc: {passed} passed, {failed} failed");
    assert_eq!(failed, 0);
}
