//! Helpers shared by the conformance runners and interop tests.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;

use ptt_dkim::{Answer, CrlfNormalizer, SignatureResult, VerifyPolicy, verify_message};

/// A file's bytes with bare LF turned into CRLF (the suites store LF files).
pub fn read_crlf(path: &Path) -> Vec<u8> {
    let raw = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    crlf(&raw)
}

pub fn crlf(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    CrlfNormalizer::new().update(raw, &mut out);
    out
}

/// Verifies with TXT records from a map (names without the final dot);
/// a missing name is NXDOMAIN.
pub fn verify_with(
    message: &[u8],
    now: u64,
    records: &BTreeMap<String, String>,
) -> Vec<SignatureResult> {
    verify_message(message, now, VerifyPolicy::default(), |name| match records
        .get(&name.to_ascii_lowercase())
    {
        Some(r) => Answer::Txt(vec![r.trim_end().as_bytes().to_vec()]),
        None => Answer::NxDomain,
    })
}

/// Counts and prints a suite's tally; panics on any failure.
pub struct Tally {
    suite: &'static str,
    passed: usize,
    failed: Vec<String>,
}

impl Tally {
    pub fn new(suite: &'static str) -> Self {
        Tally {
            suite,
            passed: 0,
            failed: Vec::new(),
        }
    }

    pub fn check(&mut self, name: &str, ok: bool, detail: impl std::fmt::Display) {
        if ok {
            self.passed += 1;
        } else {
            println!("FAIL {name}: {detail}");
            self.failed.push(name.to_string());
        }
    }

    pub fn finish(self) {
        println!(
            "{}: {} passed, {} failed",
            self.suite,
            self.passed,
            self.failed.len()
        );
        assert!(
            self.failed.is_empty(),
            "{} failed: {:?}",
            self.suite,
            self.failed
        );
        assert!(self.passed > 0, "{}: nothing ran", self.suite);
    }
}

pub fn summary(results: &[SignatureResult]) -> String {
    results
        .iter()
        .map(|r| r.to_string())
        .collect::<Vec<_>>()
        .join(" | ")
}
