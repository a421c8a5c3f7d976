//! Interop with the Python `authres` package (pip `authres`, an independent
//! RFC 8601 implementation): it parses what we write, and we parse what it
//! writes, and both sides must see the same methods, results, reasons and
//! properties.

use ptt_dmarc::authres::{AuthenticationResults, MethodResult};
use serde_json::{Value, json};

const PARSE: &str = r#"
import authres, authres.dmarc
ctx = authres.FeatureContext(authres.dmarc)
out = []
for text in json.load(sys.stdin):
    h = ctx.parse(text)
    out.append({"id": h.authserv_id, "results": [
        {"method": r.method, "result": r.result, "reason": r.reason,
         "props": [[p.type, p.name, p.value] for p in r.properties]}
        for r in h.results]})
print(json.dumps(out))
"#;

const WRITE: &str = r#"
import authres, authres.dmarc
A = authres
headers = [
    A.AuthenticationResultsHeader(authserv_id='test.example.org', version=1),
    A.AuthenticationResultsHeader(authserv_id='example.com', results=[
        A.SPFAuthenticationResult(result='pass', smtp_mailfrom='example.net')]),
    A.AuthenticationResultsHeader(authserv_id='example.com', results=[
        A.DKIMAuthenticationResult(result='pass', result_comment='good signature',
            header_d='mail-router.example.net', header_a='rsa-sha256', header_s='default'),
        A.DKIMAuthenticationResult(result='fail', header_d='newyork.example.com',
            reason='bad signature')]),
    A.AuthenticationResultsHeader(authserv_id='mx.example.org', results=[
        authres.dmarc.DMARCAuthenticationResult(result='fail', header_from='example.com', policy='reject'),
        A.SMTPAUTHAuthenticationResult(result='pass', result_comment='cram-md5',
            smtp_auth='sender@example.net'),
        A.IPRevAuthenticationResult(result='pass', policy_iprev='192.0.2.200')]),
]
print(json.dumps([str(h) for h in headers]))
"#;

fn ours(a: &AuthenticationResults) -> Value {
    json!({"id": a.authserv_id(), "results": a.results().iter().map(|r| json!({
        "method": r.method(), "result": r.result(), "reason": r.reason(),
        "props": r.properties().iter().map(|p| json!([p.ptype(), p.name(), p.value()])).collect::<Vec<_>>(),
    })).collect::<Vec<_>>()})
}

fn python(script: &str, input: &Value) -> Value {
    let out = ptt_testkit::python::run(script, json!({"txt": {}}), input.to_string().as_bytes());
    assert!(
        out.status.success(),
        "python authres failed (pip package authres): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("json from python")
}

#[test]
fn authres_reads_what_we_write() {
    let mut fields = Vec::new();
    let mut a = AuthenticationResults::new("mx.example.org").unwrap();
    a.push(
        MethodResult::new("spf", "softfail")
            .unwrap()
            .with_comment("mx.example.org: 192.0.2.1 is not permitted")
            .unwrap()
            .with_property("smtp", "mailfrom", "bounce@example.net")
            .unwrap(),
    );
    a.push(
        MethodResult::new("dkim", "fail")
            .unwrap()
            .with_reason("body hash did not verify")
            .unwrap()
            .with_property("header", "d", "example.com")
            .unwrap()
            .with_property("header", "i", "@example.com")
            .unwrap()
            .with_property("header", "s", "sel-2026")
            .unwrap(),
    );
    a.push(
        MethodResult::new("dmarc", "fail")
            .unwrap()
            .with_comment("p=REJECT dis=QUARANTINE")
            .unwrap()
            .with_property("header", "from", "example.com")
            .unwrap(),
    );
    fields.push(a.clone());
    fields.push(AuthenticationResults::new("mx.example.org").unwrap());
    let mut b = AuthenticationResults::new("relay.example.net").unwrap();
    b.push(
        MethodResult::new("iprev", "pass")
            .unwrap()
            .with_property("policy", "iprev", "192.0.2.200")
            .unwrap(),
    );
    fields.push(b);

    let texts: Vec<String> = fields
        .iter()
        .flat_map(|f| {
            [
                format!("Authentication-Results: {f}"),
                f.to_header_field().trim_end().to_string(),
            ]
        })
        .collect();
    let theirs = python(PARSE, &json!(texts));
    let expected: Vec<Value> = fields.iter().flat_map(|f| [ours(f), ours(f)]).collect();
    assert_eq!(theirs, Value::Array(expected), "{texts:#?}");
}

#[test]
fn we_read_what_authres_writes() {
    let texts = python(WRITE, &json!(null));
    let texts: Vec<String> = serde_json::from_value(texts).unwrap();
    assert_eq!(texts.len(), 4);
    let theirs = python(PARSE, &json!(texts));
    for (i, text) in texts.iter().enumerate() {
        let a = AuthenticationResults::parse(text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
        assert_eq!(ours(&a), theirs[i], "{text}");
        println!("{text}");
    }
    // Their DMARC item names the policy; check one value end to end.
    let a = AuthenticationResults::parse(&texts[3]).unwrap();
    let dmarc = a.method("dmarc").next().unwrap();
    assert_eq!(dmarc.property("header", "from"), Some("example.com"));
    assert_eq!(dmarc.result(), "fail");
}
