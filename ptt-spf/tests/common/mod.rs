#![allow(dead_code)] // each test binary uses a different part of this module
//! The openspf.org test-suite format (shared by the RFC 7208 and RFC 4408
//! suites): YAML scenarios with `tests` and `zonedata`, and a resolver that
//! answers the evaluator's questions from the zone data the way the suite's
//! reference harness (pyspf's `testspf.py`) does.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ptt_spf::{Answer, Evaluator, Query, QueryType, Request, SpfResult};
use serde_yaml::Value;

/// One record of the zone data.
#[derive(Debug, Clone)]
pub enum Rr {
    /// `TIMEOUT`: any query for the name times out (unless a record of the
    /// type asked came before it).
    Timeout,
    /// A record: type and data.
    Data(String, RData),
}

#[derive(Debug, Clone)]
pub enum RData {
    Text(Vec<Vec<u8>>),
    Name(String),
    Mx(String),
    Ip(IpAddr),
    Timeout,
}

/// One test case.
#[derive(Debug, Clone)]
pub struct Case {
    pub scenario: String,
    pub name: String,
    pub helo: String,
    pub host: IpAddr,
    pub mailfrom: String,
    pub results: Vec<SpfResult>,
    pub explanation: Option<String>,
}

pub struct Scenario {
    pub description: String,
    pub zone: BTreeMap<String, Vec<Rr>>,
    pub cases: Vec<Case>,
}

fn text_bytes(s: &str) -> Vec<u8> {
    // The suite writes raw bytes as \xNN escapes: map chars up to U+00FF back
    // to those bytes, as pydns hands pyspf bytes.
    s.chars()
        .flat_map(|c| {
            let n = u32::from(c);
            if n <= 0xff {
                vec![n as u8]
            } else {
                c.to_string().into_bytes()
            }
        })
        .collect()
}

fn scalar(v: &Value) -> String {
    let v = match v {
        Value::Tagged(t) => &t.value,
        v => v,
    };
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => panic!("expected a scalar, got {other:?}"),
    }
}

fn rdata(rtype: &str, v: &Value) -> Option<RData> {
    if let Value::String(s) = v {
        if s == "NONE" {
            return None;
        }
        if s == "TIMEOUT" {
            return Some(RData::Timeout);
        }
    }
    Some(match rtype {
        "TXT" | "SPF" => match v {
            Value::Sequence(parts) => {
                RData::Text(parts.iter().map(|p| text_bytes(&scalar(p))).collect())
            }
            other => RData::Text(vec![text_bytes(&scalar(other))]),
        },
        "A" | "AAAA" => RData::Ip(scalar(v).parse().expect("address in zonedata")),
        "MX" => match v {
            Value::Sequence(p) if p.len() == 2 => RData::Mx(scalar(&p[1])),
            other => panic!("bad MX {other:?}"),
        },
        "PTR" | "CNAME" => RData::Name(scalar(v)),
        other => panic!("unknown type {other}"),
    })
}

/// Reads every scenario of a suite file.
pub fn load(path: &std::path::Path) -> Vec<Scenario> {
    let text = std::fs::read_to_string(path).expect("read suite");
    let mut out = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(&text) {
        let v: Value = serde::Deserialize::deserialize(doc).expect("YAML document");
        let description = v["description"].as_str().unwrap_or_default().to_string();
        let mut zone = BTreeMap::new();
        if let Value::Mapping(z) = &v["zonedata"] {
            for (name, entries) in z {
                let name = scalar(name).to_ascii_lowercase();
                let mut rrs = Vec::new();
                // As the reference harness: SPF records are served as TXT too,
                // unless the name has TXT records (or "TXT: NONE").
                let mut has_txt = false;
                let mut spf_as_txt = Vec::new();
                for entry in entries.as_sequence().expect("zonedata entries") {
                    match entry {
                        Value::String(s) if s == "TIMEOUT" => rrs.push(Rr::Timeout),
                        Value::Mapping(m) => {
                            for (t, val) in m {
                                let t = scalar(t);
                                if t == "TXT" {
                                    has_txt = true;
                                }
                                let Some(data) = rdata(&t, val) else { continue };
                                if t == "SPF" {
                                    spf_as_txt.push(Rr::Data("TXT".into(), data.clone()));
                                }
                                rrs.push(Rr::Data(t, data));
                            }
                        }
                        other => panic!("bad zonedata entry {other:?}"),
                    }
                }
                if !has_txt {
                    rrs.extend(spf_as_txt);
                }
                zone.insert(name, rrs);
            }
        }
        let mut cases = Vec::new();
        if let Value::Mapping(tests) = &v["tests"] {
            for (name, t) in tests {
                let results = match &t["result"] {
                    Value::Sequence(rs) => rs.iter().map(|r| scalar(r).parse().unwrap()).collect(),
                    r => vec![scalar(r).parse().unwrap()],
                };
                cases.push(Case {
                    scenario: description.clone(),
                    name: scalar(name),
                    helo: scalar(&t["helo"]),
                    host: scalar(&t["host"]).parse().expect("host IP"),
                    mailfrom: scalar(&t["mailfrom"]),
                    results,
                    explanation: t.get("explanation").map(scalar),
                });
            }
        }
        out.push(Scenario {
            description,
            zone,
            cases,
        });
    }
    out
}

/// Answers a query from the zone data.
pub fn resolve(zone: &BTreeMap<String, Vec<Rr>>, q: &Query) -> Answer {
    resolve_depth(zone, &q.name, q.qtype, 0)
}

fn resolve_depth(
    zone: &BTreeMap<String, Vec<Rr>>,
    name: &str,
    qtype: QueryType,
    depth: u32,
) -> Answer {
    if depth > 8 {
        return Answer::TempError("timeout".into()); // a CNAME loop
    }
    let mut labels = Vec::new();
    for label in name.split('.') {
        if label.len() > 63 {
            return Answer::TempError("timeout".into());
        }
        if !label.is_empty() {
            labels.push(label);
        }
    }
    let name = labels.join(".").to_ascii_lowercase();
    let Some(rrs) = zone.get(&name) else {
        return if name.starts_with("error.") {
            Answer::TempError("timeout".into())
        } else {
            Answer::NxDomain
        };
    };
    let want = qtype.as_str();
    let mut seen = false;
    let mut txt = Vec::new();
    let mut v4 = Vec::<Ipv4Addr>::new();
    let mut v6 = Vec::<Ipv6Addr>::new();
    let mut names = Vec::new();
    for rr in rrs {
        match rr {
            Rr::Timeout => {
                if !seen {
                    return Answer::TempError("timeout".into());
                }
                break;
            }
            Rr::Data(t, data) => {
                if let (true, RData::Name(target)) = (t == "CNAME", data) {
                    return resolve_depth(zone, target, qtype, depth + 1);
                }
                if t != want {
                    continue;
                }
                seen = true;
                match data {
                    RData::Timeout => return Answer::TempError("timeout".into()),
                    RData::Text(parts) => txt.push(parts.concat()),
                    RData::Ip(IpAddr::V4(a)) => v4.push(*a),
                    RData::Ip(IpAddr::V6(a)) => v6.push(*a),
                    RData::Name(n) | RData::Mx(n) => names.push(n.clone()),
                }
            }
        }
    }
    if !seen {
        return Answer::NoRecords;
    }
    match qtype {
        QueryType::Txt => Answer::Txt(txt),
        QueryType::A => Answer::A(v4),
        QueryType::Aaaa => Answer::Aaaa(v6),
        QueryType::Mx => Answer::Mx(names),
        QueryType::Ptr => Answer::Ptr(names),
    }
}

/// What one case gave.
pub struct Outcome {
    pub result: SpfResult,
    pub problem: Option<String>,
    /// The result is one of those the case accepts (and the explanation,
    /// where the case has one, is as expected).
    pub accepted: bool,
    /// The result is the first (preferred) one the case lists.
    pub preferred: bool,
    pub explanation_error: Option<String>,
}

/// Runs one case.
pub fn run_case(zone: &BTreeMap<String, Vec<Rr>>, case: &Case) -> Outcome {
    let request = Request::mail_from(case.host, &case.mailfrom, &case.helo);
    let out = Evaluator::run(request, |q| resolve(zone, q));
    let mut explanation_error = None;
    if let Some(expected) = &case.explanation {
        let got = out.explanation.as_deref().unwrap_or("DEFAULT");
        if got != expected {
            explanation_error = Some(format!("explanation {got:?}, expected {expected:?}"));
        }
    }
    Outcome {
        result: out.result,
        problem: out.problem,
        accepted: case.results.contains(&out.result) && explanation_error.is_none(),
        preferred: case.results.first() == Some(&out.result),
        explanation_error,
    }
}

/// Runs a whole suite: prints `<suite>: N passed, N failed` and returns the
/// failed cases with the reasons. `judge` says whether an outcome passes.
pub fn run_suite(
    suite: &str,
    scenarios: &[Scenario],
    judge: impl Fn(&Case, &Outcome) -> bool,
) -> (usize, Vec<(String, String)>) {
    let mut passed = 0;
    let mut failed = Vec::new();
    for s in scenarios {
        for case in &s.cases {
            let out = run_case(&s.zone, case);
            if judge(case, &out) {
                passed += 1;
            } else {
                let why = out.explanation_error.clone().unwrap_or_else(|| {
                    format!(
                        "expected {:?}, got {} ({:?})",
                        case.results, out.result, out.problem
                    )
                });
                failed.push((case.name.clone(), format!("[{}] {why}", case.scenario)));
            }
        }
    }
    println!("{suite}: {passed} passed, {} failed", failed.len());
    (passed, failed)
}
