//! publicsuffix.org's `checkPublicSuffix` test list (tests/data/psl_tests.txt,
//! public domain, shipped in the `publicsuffix` 2.3.0 crate) run against the
//! compiled-in list.

use ptt_dmarc::psl::{PublicSuffixList, to_ascii_name};

#[test]
fn psl_tests() {
    let psl = PublicSuffixList::builtin();
    let text = include_str!("data/psl_tests.txt");
    let (mut passed, mut failed) = (0, 0);
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with("//") {
            continue;
        }
        let mut parts = line.split_whitespace();
        let (Some(input), Some(expected)) = (parts.next(), parts.next()) else {
            panic!("bad test line {line:?}");
        };
        // "null" input stands for no input at all: an empty name.
        let input = if input == "null" { "" } else { input };
        let expected = (expected != "null").then(|| to_ascii_name(expected).unwrap());
        // A leading dot is an empty label: not a domain.
        let got = psl.registrable_domain(input);
        if got == expected {
            passed += 1;
        } else {
            failed += 1;
            println!("FAIL {input:?}: expected {expected:?}, got {got:?}");
        }
    }
    println!("psl-tests: {passed} passed, {failed} failed");
    assert_eq!(failed, 0);
    assert!(passed > 70);
}
