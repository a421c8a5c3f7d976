//! The openspf.org RFC 7208 test suite (pyspf's `rfc7208-tests.yml`): every
//! one of its 203 cases must pass. Where a case lists several results, any
//! of them passes, as the suite's schema says.

mod common;

#[test]
fn rfc7208_suite() {
    let Some(dir) = ptt_testkit::shared_suite("conformance/spf-rfc7208") else {
        return;
    };
    let scenarios = common::load(&dir.join("rfc7208-tests.yml"));
    let total: usize = scenarios.iter().map(|s| s.cases.len()).sum();
    assert_eq!(total, 203, "the suite holds 203 cases");
    let (_passed, failed) = common::run_suite("spf-rfc7208", &scenarios, |_, out| out.accepted);
    for (name, why) in &failed {
        println!("FAILED {name}: {why}");
    }
    assert!(failed.is_empty(), "{} cases failed", failed.len());
}
