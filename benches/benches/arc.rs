//! ARC: validate a 4 KB message that carries one ARC set, then seal it
//! (the work of one forwarding hop), with ptt-arc and with Stalwart's
//! mail-auth (0.6.1) in the same run. The floor for both is two RSA-2048
//! verifications (AMS and AS of set 1) plus two RSA-2048 signatures (AMS and
//! AS of set 2). Key records come from memory in both: ptt-arc's Sans-IO
//! answers, mail-auth's resolver cache.

#[path = "common/mail_auth_keys.rs"]
mod mail_auth_keys;

use std::collections::HashMap;
use std::hint::black_box;

use base64::Engine as _;
use criterion::{Criterion, criterion_group, criterion_main};
// mail-auth 0.6: the workspace's mail-auth 0.15 needs mail-parser 1.0 (rustc 1.98),
// and 0.7 pins a hickory-resolver alpha that clashes with ptt-bins' 0.26.
use mail_auth::arc::ArcSealer;
use mail_auth::common::crypto::{RsaKey, Sha256};
use mail_auth::common::headers::HeaderWriter as _;
use mail_auth::{
    AuthenticatedMessage, AuthenticationResults, DkimResult, MessageAuthenticator, Parameters,
};
use mail_auth_06 as mail_auth;
use mail_auth_keys::TxtCache;
use ptt_arc::seal::{SealOutcome, Sealer};
use ptt_arc::verify::{Answer, ArcVerifier};
use ptt_dkim::{KeyKind, generate_key};

const T: u64 = 1_763_769_600;

/// A 4 KB message (header and a plain-text body), hop 1's AR on top.
fn message() -> Vec<u8> {
    ptt_testkit::bench_mail::plain_text_message(
        "Authentication-Results: mx.hop1.example; spf=pass smtp.mailfrom=alice@origin.example;\r\n\
         \tdkim=none; dmarc=none\r\n\
         From: Alice <alice@origin.example>\r\n\
         To: list@hop1.example\r\n\
         Subject: ARC benchmark message\r\n\
         Date: Sun, 22 Nov 2026 00:00:00 +0000\r\n\
         Message-ID: <bench@origin.example>\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=us-ascii\r\n\
         \r\n",
        4096,
    )
}

struct Hop {
    key: ptt_dkim::SigningKey,
    pem: String,
    record: String,
    domain: &'static str,
    selector: &'static str,
    srv_id: &'static str,
}

fn hop(n: u8, domain: &'static str, selector: &'static str, srv_id: &'static str) -> Hop {
    // ring (`--no-default-features --features ring`) cannot generate RSA keys.
    let generated = generate_key(KeyKind::Rsa2048, [n; 32])
        .or_else(|_| {
            let pem = ptt_benches::rsa2048_pkcs8_pem();
            ptt_dkim::SigningKey::from_pem(pem.as_bytes())
                .map(|key| ptt_dkim::GeneratedKey { pem, key })
        })
        .expect("RSA key");
    Hop {
        record: generated.key.key_record().to_string(),
        key: generated.key,
        pem: generated.pem,
        domain,
        selector,
        srv_id,
    }
}

fn bench(c: &mut Criterion) {
    let hop1 = hop(1, "hop1.example", "arc1", "mx.hop1.example");
    let hop2 = hop(2, "hop2.example", "arc2", "mx.hop2.example");
    let records: HashMap<String, String> = [&hop1, &hop2]
        .iter()
        .map(|h| {
            (
                format!("{}._domainkey.{}", h.selector, h.domain),
                h.record.clone(),
            )
        })
        .collect();

    // One existing set, made by ptt-arc at hop 1.
    let plain = message();
    let verdict = ArcVerifier::from_message(&plain)
        .verdict()
        .expect("no chain");
    let sealer1 = Sealer::new(&hop1.key, hop1.domain, hop1.selector, hop1.srv_id).expect("sealer");
    let SealOutcome::Sealed(set) = sealer1.seal(&plain, &verdict, T).expect("seal") else {
        panic!("not sealed");
    };
    let mut input = set.prepend_to(&plain);
    input.splice(
        0..0,
        b"Authentication-Results: mx.hop2.example; spf=pass smtp.mailfrom=alice@origin.example\r\n"
            .iter()
            .copied(),
    );
    assert!(input.len() > 4096 && input.len() < 4096 + 2048);

    let sealer2 = Sealer::new(&hop2.key, hop2.domain, hop2.selector, hop2.srv_id).expect("sealer");
    let ptt_hop = |msg: &[u8]| {
        let verdict = ptt_dns::run(ArcVerifier::from_message(msg), |q| {
            match records.get(&q.name) {
                Some(r) => Answer::txt(r),
                None => Answer::NxDomain,
            }
        });
        assert_eq!(verdict.status, ptt_arc::header::ChainStatus::Pass);
        match sealer2.seal(msg, &verdict, T).expect("seal") {
            SealOutcome::Sealed(set) => set,
            _ => panic!("no new set: the chain failed"),
        }
    };

    // mail-auth: the same hop with the same keys and records.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let authenticator = MessageAuthenticator::new_cloudflare().expect("mail-auth authenticator");
    let cache = TxtCache::with_key_records(&records);
    let pkcs8: String = hop2
        .pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let pkcs8 = base64::engine::general_purpose::STANDARD
        .decode(pkcs8)
        .expect("PEM body");
    let ma_key = RsaKey::<Sha256>::from_pkcs8_der(&pkcs8).expect("mail-auth reads the key");
    let ma_sealer = ArcSealer::from_key(ma_key)
        .domain(hop2.domain)
        .selector(hop2.selector)
        .headers(ptt_testkit::bench_mail::SIGNED_HEADERS);
    let ma_hop = |msg: &[u8]| {
        rt.block_on(async {
            let parsed = AuthenticatedMessage::parse(msg).expect("parse");
            let arc = authenticator
                .verify_arc(Parameters::new(&parsed).with_txt_cache(&cache))
                .await;
            assert_eq!(arc.result(), &DkimResult::Pass);
            let results = AuthenticationResults::new(hop2.srv_id)
                .with_arc_result(&arc, "192.0.2.1".parse().expect("ip"));
            let set = ma_sealer
                .seal(&parsed, &results, &arc)
                .expect("mail-auth seal");
            set.to_header()
        })
    };

    // Both produce a set that the other side would have to accept: check
    // each once with ptt-arc before timing.
    let ours = ptt_hop(&input);
    let mut sealed = ours.prepend_to(&input);
    let again = ptt_dns::run(ArcVerifier::from_message(&sealed), |q| {
        Answer::txt(records.get(&q.name).map_or("", String::as_str))
    });
    assert_eq!(again.status, ptt_arc::header::ChainStatus::Pass);
    let theirs = ma_hop(&input);
    sealed = [theirs.as_bytes(), &input].concat();
    let again = ptt_dns::run(ArcVerifier::from_message(&sealed), |q| {
        Answer::txt(records.get(&q.name).map_or("", String::as_str))
    });
    assert_eq!(again.status, ptt_arc::header::ChainStatus::Pass);

    // The floor: the four RSA-2048 operations alone (two verifications,
    // two signatures) over header-sized data.
    let data = vec![b'x'; 1200];
    let sig = hop1.key.sign(&data).expect("sign");
    let public = hop1.key.key_record().public_key().expect("public key");
    let floor = || {
        for _ in 0..2 {
            ptt_dkim::verify_signature(&public, ptt_dkim::Algorithm::RsaSha256, &data, &sig)
                .expect("verify");
        }
        (
            hop2.key.sign(&data).expect("sign"),
            hop2.key.sign(&data).expect("sign"),
        )
    };

    let mut group = c.benchmark_group("arc_verify_and_seal_4k_one_set");
    group.bench_function("floor: 2 RSA-2048 verify + 2 sign", |b| {
        b.iter(|| black_box(floor()))
    });
    group.bench_function("ptt-arc", |b| {
        b.iter(|| black_box(ptt_hop(black_box(&input))))
    });
    group.bench_function("mail-auth", |b| {
        b.iter(|| black_box(ma_hop(black_box(&input))))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
