//! Conformance runner over the RFC examples: RFC 8463 Appendix A (the
//! ed25519 `b=` reproduced exactly with the RFC 8032 §7.1 test key, and both
//! signatures verified) and the RFC 6376 §3.4.6 canonicalization example.
//! The texts are quoted from the RFCs (no shared data needed).

mod common;

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use common::{Tally, summary, verify_with};
use ptt_dkim::{
    BodyHasher, Canonicalization, DkimSignature, SigningKey, Verdict, canonicalize_body,
    canonicalize_header, header_hash_input, parse_tag_list, split_header_fields,
};

// RFC 8463 A.1 (the RFC 6376 Appendix A message), CRLF line ends.
const MESSAGE: &str = "From: Joe SixPack <joe@football.example.com>\r\nTo: Suzie Q <suzie@shopping.example.net>\r\nSubject: Is dinner ready?\r\nDate: Fri, 11 Jul 2003 21:00:37 -0700 (PDT)\r\nMessage-ID: <20030712040037.46341.5F8J@football.example.com>\r\n\r\nHi.\r\n\r\nWe lost the game.  Are you hungry yet?\r\n\r\nJoe.\r\n";

// RFC 8463 A.3, the two signature fields.
const ED_SIG: &str = "DKIM-Signature: v=1; a=ed25519-sha256; c=relaxed/relaxed;\r\n d=football.example.com; i=@football.example.com;\r\n q=dns/txt; s=brisbane; t=1528637909; h=from : to :\r\n subject : date : message-id : from : subject : date;\r\n bh=2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=;\r\n b=/gCrinpcQOoIfuHNQIbq4pgh9kyIK3AQUdt9OdqQehSwhEIug4D11Bus\r\n Fa3bT3FY5OsU7ZbnKELq+eXdp1Q1Dw==\r\n";
const RSA_SIG: &str = "DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed;\r\n d=football.example.com; i=@football.example.com;\r\n q=dns/txt; s=test; t=1528637909; h=from : to : subject :\r\n date : message-id : from : subject : date;\r\n bh=2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=;\r\n b=F45dVWDfMbQDGHJFlXUNB2HKfbCeLRyhDXgFpEL8GwpsRe0IeIixNTe3\r\n DhCVlUrSjV4BwcVcOF6+FF3Zo9Rpo1tFOeS9mPYQTnGdaSGsgeefOsk2Jz\r\n dA+L10TeYt9BgDfQNZtKdN1WO//KgIqXP7OdEFE4LjFYNcUxZQ4FADY+8=\r\n";

// RFC 8463 A.2 key records.
const ED_KEY: &str = "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=";
const RSA_KEY: &str = "v=DKIM1; k=rsa; p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDkHlOQoBTzWRiGs5V6NpP3idY6Wk08a5qhdR6wy5bdOKb2jLQiY/J16JYi0Qvx/byYzCNb3W91y3FutACDfzwQ/BC/e/8uBsCR+yz1Lxj+PL6lHvqMKrM3rG4hstT5QjvHO9PzoxZyVYLzBfO2EeC3Ip3G+2kryOTIKT+l/K4w3QIDAQAB";

// RFC 8032 §7.1 TEST 1 secret key.
const RFC8032_SEED: &str = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn rfc_examples() {
    let mut t = Tally::new("rfc-examples");
    let seed: [u8; 32] = hex(RFC8032_SEED).try_into().unwrap();
    let key = SigningKey::from_ed25519_seed(&seed).unwrap();

    // The public key of the RFC 8032 key is the RFC 8463 A.2 record's p=.
    let rec = key.key_record();
    t.check(
        "RFC 8463 A.2 public key from the RFC 8032 secret key",
        B64.encode(&rec.public_key) == "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=",
        rec,
    );

    // Body hash.
    let body = &MESSAGE.as_bytes()[MESSAGE.find("\r\n\r\n").unwrap() + 4..];
    let mut h = BodyHasher::new(Canonicalization::Relaxed, None);
    h.update(body);
    let bh = B64.encode(h.finish().hash);
    t.check(
        "RFC 8463 A.3 bh=",
        bh == "2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=",
        &bh,
    );

    // Reproduce b= exactly: header data as a verifier builds it, signed with
    // the RFC 8032 key (Ed25519 is deterministic).
    let head = format!(
        "{ED_SIG}{}",
        &MESSAGE[..MESSAGE.find("\r\n\r\n").unwrap() + 2]
    );
    let fields = split_header_fields(head.as_bytes());
    let sig_field = fields[0];
    let tags = parse_tag_list(sig_field.value()).unwrap();
    let b = tags.iter().find(|t| t.name == "b").unwrap();
    let sig = DkimSignature::parse(sig_field.value()).unwrap();
    let data = header_hash_input(
        sig.header_canon,
        &fields,
        &sig.headers,
        &sig_field,
        b.full_span.clone(),
    );
    let produced = B64.encode(key.sign(&data).unwrap());
    let expected = String::from_utf8(b.value_without_whitespace()).unwrap();
    t.check(
        "RFC 8463 A.3 ed25519 b= reproduced exactly",
        produced == expected,
        format!("{produced} != {expected}"),
    );

    // Both signatures verify.
    let signed = format!("{ED_SIG}{RSA_SIG}{MESSAGE}");
    let records: BTreeMap<String, String> = [
        (
            "brisbane._domainkey.football.example.com".to_string(),
            ED_KEY.to_string(),
        ),
        (
            "test._domainkey.football.example.com".to_string(),
            RSA_KEY.to_string(),
        ),
    ]
    .into();
    let res = verify_with(signed.as_bytes(), 1_528_637_909 + 60, &records);
    t.check(
        "RFC 8463 A.3 both signatures verify",
        res.len() == 2 && res.iter().all(|r| r.verdict == Verdict::Pass),
        summary(&res),
    );
    t.check(
        "RFC 8463 rsa key flagged as 1024-bit",
        res[1].weak_key,
        summary(&res),
    );

    // A changed byte in a signed header fails both.
    let tampered = signed.replace("Is dinner ready?", "Is dinner ready!");
    let res = verify_with(tampered.as_bytes(), 1_528_637_909 + 60, &records);
    t.check(
        "RFC 8463 A.3 tampered Subject fails both",
        res.iter().all(|r| {
            matches!(
                r.verdict,
                Verdict::Fail(ptt_dkim::Reason::SignatureMismatch)
            )
        }),
        summary(&res),
    );

    // RFC 6376 §3.4.6 canonicalization example.
    let head = b"A: X\r\nB : Y\t\r\n\tZ  \r\n";
    let body = b" C \r\nD \t E\r\n\r\n\r\n";
    let mut relaxed = Vec::new();
    let mut simple = Vec::new();
    for f in split_header_fields(head) {
        canonicalize_header(Canonicalization::Relaxed, &f, &mut relaxed);
        canonicalize_header(Canonicalization::Simple, &f, &mut simple);
    }
    t.check(
        "RFC 6376 3.4.6 relaxed header",
        relaxed == b"a:X\r\nb:Y Z\r\n",
        String::from_utf8_lossy(&relaxed),
    );
    t.check(
        "RFC 6376 3.4.6 simple header",
        simple == head,
        String::from_utf8_lossy(&simple),
    );
    let rb = canonicalize_body(Canonicalization::Relaxed, body);
    t.check(
        "RFC 6376 3.4.6 relaxed body",
        rb == b" C\r\nD E\r\n",
        String::from_utf8_lossy(&rb),
    );
    let sb = canonicalize_body(Canonicalization::Simple, body);
    t.check(
        "RFC 6376 3.4.6 simple body",
        sb == b" C \r\nD \t E\r\n",
        String::from_utf8_lossy(&sb),
    );
    // RFC 6376 §3.4.3/§3.4.4 and errata 3192: empty body.
    let sha = |c| {
        let mut h = BodyHasher::new(c, None);
        h.update(b"");
        B64.encode(h.finish().hash)
    };
    t.check(
        "empty body simple = sha256(CRLF)",
        sha(Canonicalization::Simple) == "frcCV1k9oG9oKj3dpUqdJg1PxRT2RSN/XKdLCPjaYaY=",
        sha(Canonicalization::Simple),
    );
    t.check(
        "empty body relaxed = sha256('')",
        sha(Canonicalization::Relaxed) == "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=",
        sha(Canonicalization::Relaxed),
    );

    t.finish();
}
