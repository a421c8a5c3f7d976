//! Conformance: the aggregate-report samples of Stalwart's mail-auth
//! (`conformance/stalwart-mail-auth-resources/resources/dmarc-feedback/`):
//! `NNN.xml` reports and `NNN.eml` messages carrying them (zip, gzip), each
//! with the content mail-auth reads from it in `NNN.json`. Our parse is
//! mapped to that JSON shape and every key of the expected JSON must match
//! (keys mail-auth has and we do not model, such as `version_published`,
//! must be null there).
//!
//! Documented exceptions (path in the JSON, our value, reason):
//! * `005.json` `/record/0/row/policy_evaluated/reason/0/type_`: we read
//!   `sampled_out` as `SampledOut`, a PolicyOverrideType of RFC 7489's schema;
//!   mail-auth maps it to `Other` because the DMARCbis reporting draft
//!   dropped it.

use ptt_dmarc::Alignment;
use ptt_dmarc::Policy;
use ptt_dmarc::eval::{DkimResult, SpfResult, SpfScope};
use ptt_dmarc::report::{
    DiscoveryMethod, Disposition, Extension, Feedback, OverrideType, from_message,
};
use serde_json::{Value, json};

const EXCEPTIONS: &[(&str, &str, &str)] = &[(
    "005.json",
    "/record/0/row/policy_evaluated/reason/0/type_",
    "\"SampledOut\"",
)];

fn alignment(a: Option<Alignment>) -> &'static str {
    match a {
        None => "Unspecified",
        Some(Alignment::Relaxed) => "Relaxed",
        Some(Alignment::Strict) => "Strict",
    }
}

fn policy(p: Option<Policy>) -> &'static str {
    match p {
        None => "Unspecified",
        Some(Policy::None) => "None",
        Some(Policy::Quarantine) => "Quarantine",
        Some(Policy::Reject) => "Reject",
    }
}

fn dkim_result(r: DkimResult) -> &'static str {
    match r {
        DkimResult::None => "None",
        DkimResult::Pass => "Pass",
        DkimResult::Fail => "Fail",
        DkimResult::Policy => "Policy",
        DkimResult::Neutral => "Neutral",
        DkimResult::TempError => "TempError",
        DkimResult::PermError => "PermError",
    }
}

fn spf_result(r: SpfResult) -> &'static str {
    match r {
        SpfResult::None => "None",
        SpfResult::Neutral => "Neutral",
        SpfResult::Pass => "Pass",
        SpfResult::Fail => "Fail",
        SpfResult::SoftFail => "SoftFail",
        SpfResult::TempError => "TempError",
        SpfResult::PermError => "PermError",
    }
}

fn extensions(e: &[Extension]) -> Value {
    e.iter()
        .map(|e| json!({"name": e.name, "definition": e.definition}))
        .collect()
}

fn pass(b: bool) -> &'static str {
    if b { "Pass" } else { "Fail" }
}

/// Our report in mail-auth's JSON shape.
fn to_json(f: &Feedback) -> Value {
    let m = &f.metadata;
    let p = &f.policy;
    json!({
        "version": f.version.as_deref().map_or(0.0, |v| v.parse::<f64>().unwrap_or(-1.0)),
        "report_metadata": {
            "org_name": m.org_name, "email": m.email,
            "extra_contact_info": m.extra_contact_info, "report_id": m.report_id,
            "date_range": {"begin": m.begin, "end": m.end},
            "error": m.errors, "generator": m.generator,
        },
        "policy_published": {
            "domain": p.domain, "version_published": null,
            "adkim": alignment(p.adkim), "aspf": alignment(p.aspf),
            "p": policy(p.p), "sp": policy(p.sp), "np": policy(p.np),
            "testing": p.testing.unwrap_or(false),
            "discovery_method": match p.discovery_method {
                None => "Unspecified",
                Some(DiscoveryMethod::Psl) => "Psl",
                Some(DiscoveryMethod::Treewalk) => "Treewalk",
            },
            "fo": p.fo,
        },
        "record": f.records.iter().map(|r| json!({
            "row": {
                "source_ip": r.source_ip.to_string(),
                "count": r.count,
                "policy_evaluated": {
                    "disposition": match r.policy_evaluated.disposition {
                        Disposition::None => "None",
                        Disposition::Pass => "Pass",
                        Disposition::Quarantine => "Quarantine",
                        Disposition::Reject => "Reject",
                    },
                    "dkim": pass(r.policy_evaluated.dkim_pass),
                    "spf": pass(r.policy_evaluated.spf_pass),
                    "reason": r.policy_evaluated.reasons.iter().map(|x| json!({
                        "type_": match x.kind {
                            OverrideType::Forwarded => "Forwarded",
                            OverrideType::SampledOut => "SampledOut",
                            OverrideType::TrustedForwarder => "TrustedForwarder",
                            OverrideType::MailingList => "MailingList",
                            OverrideType::LocalPolicy => "LocalPolicy",
                            OverrideType::Other => "Other",
                        },
                        "comment": x.comment,
                    })).collect::<Vec<_>>(),
                },
            },
            "identifiers": {
                "envelope_to": r.identifiers.envelope_to,
                "envelope_from": r.identifiers.envelope_from.clone().unwrap_or_default(),
                "header_from": r.identifiers.header_from,
            },
            "auth_results": {
                "dkim": r.dkim.iter().map(|d| json!({
                    "domain": d.domain, "selector": d.selector.clone().unwrap_or_default(),
                    "result": dkim_result(d.result), "human_result": d.human_result,
                })).collect::<Vec<_>>(),
                "spf": r.spf.iter().map(|s| json!({
                    "domain": s.domain,
                    "scope": match s.scope {
                        None => "Unspecified",
                        Some(SpfScope::MailFrom) => "MailFrom",
                        Some(SpfScope::Helo) => "Helo",
                    },
                    "result": spf_result(s.result), "human_result": s.human_result,
                })).collect::<Vec<_>>(),
            },
            "extensions": extensions(&r.extensions),
        })).collect::<Vec<_>>(),
        "extensions": extensions(&f.extensions),
    })
}

/// Every key of `expected` must be in `actual` with an equal value; numbers
/// compare as f64. Differences are pushed as (path, expected, actual).
fn compare(
    path: &str,
    expected: &Value,
    actual: &Value,
    diffs: &mut Vec<(String, String, String)>,
) {
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => {
            for (k, ev) in e {
                let p = format!("{path}/{k}");
                match a.get(k) {
                    Some(av) => compare(&p, ev, av, diffs),
                    None => diffs.push((p, ev.to_string(), "missing".into())),
                }
            }
        }
        (Value::Array(e), Value::Array(a)) if e.len() == a.len() => {
            for (i, (ev, av)) in e.iter().zip(a).enumerate() {
                compare(&format!("{path}/{i}"), ev, av, diffs);
            }
        }
        (Value::Number(e), Value::Number(a)) if e.as_f64() == a.as_f64() => {}
        (e, a) if e == a => {}
        (e, a) => diffs.push((path.to_string(), e.to_string(), a.to_string())),
    }
}

#[test]
fn dmarc_feedback() {
    let Some(dir) = ptt_testkit::shared_suite(
        "conformance/stalwart-mail-auth-resources/resources/dmarc-feedback",
    ) else {
        return;
    };
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".xml") || n.ends_with(".eml"))
        .collect();
    names.sort();
    let (mut passed, mut failed) = (0, 0);
    for name in &names {
        let path = dir.join(name);
        let json_name = format!("{}.json", &name[..name.len() - 4]);
        let expected: Value =
            serde_json::from_slice(&std::fs::read(dir.join(&json_name)).unwrap()).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let parsed = if name.ends_with(".xml") {
            Feedback::parse_xml(&bytes).map(|f| vec![f])
        } else {
            from_message(&bytes)
        };
        let feedback = match parsed {
            Ok(mut v) if v.len() == 1 => v.remove(0),
            Ok(v) => {
                failed += 1;
                println!("FAIL {name}: {} reports found, expected 1", v.len());
                continue;
            }
            Err(e) => {
                failed += 1;
                println!("FAIL {name}: {e}");
                continue;
            }
        };
        let mut diffs = Vec::new();
        compare("", &expected, &to_json(&feedback), &mut diffs);
        diffs.retain(|(p, _, ours)| {
            !EXCEPTIONS
                .iter()
                .any(|(f, ep, ev)| *f == json_name && p == ep && ours == ev)
        });
        if diffs.is_empty() {
            passed += 1;
        } else {
            failed += 1;
            println!("FAIL {name}: {diffs:#?}");
        }
    }
    println!("dmarc-feedback: {passed} passed, {failed} failed");
    assert_eq!(failed, 0);
    assert_eq!(passed, 10, "the suite has 5 XML reports and 5 messages");
}
