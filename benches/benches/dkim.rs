//! DKIM sign and verify of a 4 KB and a 100 KB message, RSA-2048 and
//! Ed25519, with ptt-dkim, with Stalwart's mail-auth (0.6.1, ring) and with
//! the raw signature operation alone (the floor: one RSASSA-PKCS1-v1_5
//! SHA-256 or Ed25519 sign/verify of 32 bytes, same backend as ptt-dkim), in
//! the same run. RSA signing also has the raw operation over the message
//! itself (which hashes the message once, as any signer must). One criterion
//! group per message size. For the 4 KB RSA signing target, ptt-dkim and
//! each floor are also timed alternating call for call (`alternating`), so
//! that what ran just before falls alike on both. Every call runs at the
//! next of 64 stack depths (`cycled`), since aws-lc-rs's RSA operation is
//! up to 40% slower at some depths.
//!
//! Backend: ptt-dkim and the raw operation use the `ptt-benches` feature
//! (`aws-lc-rs` by default, the production build); mail-auth 0.6 is always on
//! ring. For the same-backend comparison:
//! `cargo bench -p ptt-benches --no-default-features --features ring --bench dkim`.
//!
//! Key records come from memory in both: ptt-dkim gets the TXT answer text
//! and keeps the parsed key in its key cache (as the receiver does; a row
//! without the cache parses the record per message), mail-auth its resolver
//! cache (holding the parsed key). The verify bound is the raw verify plus
//! SHA-256 of the canonical body; each verification is also timed paired
//! call for call with its bound (`paired_verify`), and the ratio of the two totals
//! printed (`bound / ptt-dkim, timed call for call`). Every signature made in a
//! benchmark is checked before timing, and every verification asserts `pass`
//! inside the timed closure, so a failing path cannot be measured.

#[path = "common/mail_auth_keys.rs"]
mod mail_auth_keys;

use std::cell::Cell;
use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use criterion::measurement::WallTime;
use criterion::{Bencher, BenchmarkGroup, Criterion, criterion_group, criterion_main};
use ptt_testkit::stack_offset::{STACK_OFFSETS, at_stack_offset, time_at_depths};
// mail-auth 0.6: 0.15 needs mail-parser 1.0 (rustc 1.98), and 0.7 pins a
// hickory-resolver alpha that clashes with ptt-bins' 0.26.
use mail_auth::common::crypto::{Ed25519Key, RsaKey, Sha256};
use mail_auth::common::headers::HeaderWriter as _;
use mail_auth::dkim::{Canonicalization as MaCanon, DkimSigner};
use mail_auth::{AuthenticatedMessage, DkimResult, MessageAuthenticator, Parameters};
use mail_auth_06 as mail_auth;
use mail_auth_keys::TxtCache;
use ptt_dkim::{
    Answer, SharedKeyCache, Signer, SignerConfig, SigningKey, Step, Verifier, VerifyPolicy,
    verify_message,
};
use ptt_testkit::bench_mail::{SIGNED_HEADERS, dkim_message};

#[cfg(feature = "aws-lc-rs")]
use aws_lc_rs as raw;
#[cfg(all(feature = "ring", not(feature = "aws-lc-rs")))]
use ring as raw;
#[cfg(not(any(feature = "aws-lc-rs", feature = "ring")))]
compile_error!("the dkim bench needs a crypto backend: feature aws-lc-rs (default) or ring");

/// The backend of the raw operation; must be ptt-dkim's.
const RAW: &str = if cfg!(feature = "aws-lc-rs") {
    "aws-lc-rs"
} else {
    "ring"
};

use raw::rand::SystemRandom;
use raw::signature::{self as sig, Ed25519KeyPair, KeyPair as _, RsaKeyPair, UnparsedPublicKey};

/// `t=` of ptt's signatures (mail-auth sets its own clock's time, so the
/// verifications run at the clock's time).
const T: u64 = 1_763_769_600;
const DOMAIN: &str = "example.com";
const RSA_SEL: &str = "rsa";
const ED_SEL: &str = "ed";

fn ptt_config(selector: &str) -> SignerConfig {
    let mut cfg = SignerConfig::new(DOMAIN, selector);
    cfg.headers = SIGNED_HEADERS.iter().map(|h| h.to_string()).collect();
    // mail-auth does not over-sign; the same h= for both.
    cfg.oversign = false;
    cfg.timestamp = Some(T);
    cfg
}

/// Times `f`, each call at the next stack depth of
/// [`ptt_testkit::stack_offset`]: aws-lc-rs's RSA operation is up to 40%
/// slower at one depth in 32, and which depth that is depends on what
/// else the process has called, so a bench run at one fixed depth is a
/// lottery. Every function here, ptt-dkim, mail-auth and the floors, gets
/// the same even mix of depths.
///
/// A sample runs whole cycles of depths (the time is scaled back to the
/// calls criterion asked for), so that no sample has more or fewer slow
/// depths than another.
fn cycled<O>(b: &mut Bencher<'_>, mut f: impl FnMut() -> O) {
    b.iter_custom(|iters| {
        let calls = whole_cycles(iters);
        time_at_depths(0, calls as usize, &mut || {
            black_box(f());
        })
        .mul_f64(iters as f64 / calls as f64)
    })
}

/// `iters` rounded up to whole cycles of [`STACK_OFFSETS`] depths.
fn whole_cycles(iters: u64) -> u64 {
    iters.div_ceil(STACK_OFFSETS as u64) * STACK_OFFSETS as u64
}

/// `iters` calls of `measured` alternating call for call with `other`,
/// which runs before it on even calls and after it on odd ones, so that
/// each side follows itself and the other equally often; each pair runs at
/// the next stack depth, as in [`cycled`]. Returns the time of each side
/// (`measured`, `other`), scaled to `iters` calls.
fn alternate(iters: u64, measured: &dyn Fn(), other: &dyn Fn()) -> (Duration, Duration) {
    // Whole cycles of depths, each depth once with `other` before and
    // once with it after.
    let calls = 2 * whole_cycles(iters.div_ceil(2));
    let (mut on_measured, mut on_other) = (Duration::ZERO, Duration::ZERO);
    for k in 0..calls {
        let depth = (k / 2) as usize;
        let time = |f: &dyn Fn()| {
            let start = Instant::now();
            at_stack_offset(depth, &mut || f());
            start.elapsed()
        };
        if k % 2 == 0 {
            on_other += time(other);
            on_measured += time(measured);
        } else {
            on_measured += time(measured);
            on_other += time(other);
        }
    }
    let scale = iters as f64 / calls as f64;
    (on_measured.mul_f64(scale), on_other.mul_f64(scale))
}

/// Times `measured` while it alternates call for call with `other`
/// ([`alternate`]).
fn alternating(b: &mut Bencher<'_>, measured: impl Fn(), other: impl Fn()) {
    b.iter_custom(|iters| alternate(iters, &measured, &other).0)
}

/// A benchmark `verify ALG, paired` that times ptt-dkim's verification
/// alternating call for call with its bound ([`alternate`]), then prints
/// the ratio of the two sides' totals (nothing when the benchmark was
/// filtered out). That ratio is the two under the same conditions to the
/// microsecond: the benchmarks of each side alone run seconds apart, and on
/// a shared machine what else runs differs between them.
fn paired_verify(
    g: &mut BenchmarkGroup<'_, WallTime>,
    group: &str,
    alg: &str,
    ptt: impl Fn(),
    bound: impl Fn(),
) {
    let totals = Cell::new((Duration::ZERO, Duration::ZERO));
    g.bench_function(
        format!("verify {alg}, paired: ptt-dkim (with the bound)"),
        |b| {
            b.iter_custom(|iters| {
                let (on_ptt, on_bound) = alternate(iters, &ptt, &bound);
                let (bound_total, ptt_total) = totals.get();
                totals.set((bound_total + on_bound, ptt_total + on_ptt));
                on_ptt
            })
        },
    );
    let (bound_total, ptt_total) = totals.get();
    if !ptt_total.is_zero() {
        println!(
            "{group}/verify {alg}: bound / ptt-dkim, timed call for call = {:.3}\n",
            bound_total.as_secs_f64() / ptt_total.as_secs_f64()
        );
    }
}

fn ptt_sign(key: &SigningKey, config: &SignerConfig, msg: &[u8]) -> String {
    let mut signer = Signer::new(key, config).expect("signer");
    signer.update(msg);
    signer.finish().expect("sign")
}

/// ptt-dkim's verdict for the one signature of `signed`, the key record
/// given as the TXT answer and the parsed key kept in `keys` (as the
/// receiver keeps it).
fn ptt_verify(
    signed: &[u8],
    records: &HashMap<String, String>,
    keys: &Arc<SharedKeyCache>,
    now: u64,
) -> bool {
    let mut v = Verifier::new(VerifyPolicy::default(), now).with_key_cache(keys.clone());
    v.update(signed);
    v.end();
    while let Step::Query(q) = v.poll() {
        let answer = match records.get(&q.name) {
            Some(r) => Answer::txt(r.as_str()),
            None => Answer::NxDomain,
        };
        v.answer(&q, answer);
    }
    let results = v.results();
    results.len() == 1 && results[0].verdict.as_str() == "pass"
}

/// [`ptt_verify`] without a key cache: the key record parsed per message.
fn ptt_verify_uncached(signed: &[u8], records: &HashMap<String, String>, now: u64) -> bool {
    let results = verify_message(signed, now, VerifyPolicy::default(), |name| {
        match records.get(name) {
            Some(r) => Answer::txt(r.as_str()),
            None => Answer::NxDomain,
        }
    });
    results.len() == 1 && results[0].verdict.as_str() == "pass"
}

fn bench(c: &mut Criterion) {
    assert_eq!(
        ptt_dkim::BACKEND,
        RAW,
        "ptt-dkim and the raw floor must use the same backend"
    );

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs();

    // Keys: RSA-2048 from openssl (ring cannot generate RSA keys), Ed25519
    // from a fixed seed; the same key material for all three contenders.
    let rsa_pem = ptt_benches::rsa2048_pkcs8_pem();
    let rsa_der = base64::engine::general_purpose::STANDARD
        .decode(
            rsa_pem
                .lines()
                .filter(|l| !l.starts_with("-----"))
                .collect::<String>(),
        )
        .expect("PEM body");
    let seed = [7u8; 32];
    let ptt_rsa = SigningKey::from_pem(rsa_pem.as_bytes()).expect("ptt reads the RSA key");
    let ptt_ed = SigningKey::from_ed25519_seed(&seed).expect("ptt Ed25519 key");
    let raw_rsa = RsaKeyPair::from_pkcs8(&rsa_der).expect("raw RSA key");
    let raw_ed = Ed25519KeyPair::from_seed_unchecked(&seed).expect("raw Ed25519 key");
    let ed_public = raw_ed.public_key().as_ref().to_vec();
    let ma_rsa = RsaKey::<Sha256>::from_pkcs8_der(&rsa_der).expect("mail-auth RSA key");
    let ma_ed =
        Ed25519Key::from_seed_and_public_key(&seed, &ed_public).expect("mail-auth Ed25519 key");
    // Built once, as a signing service holds them (mail-auth's signers too).
    let (rsa_config, ed_config) = (ptt_config(RSA_SEL), ptt_config(ED_SEL));
    let ma_rsa_signer = DkimSigner::from_key(ma_rsa)
        .domain(DOMAIN)
        .selector(RSA_SEL)
        .headers(SIGNED_HEADERS)
        .header_canonicalization(MaCanon::Relaxed)
        .body_canonicalization(MaCanon::Relaxed);
    let ma_ed_signer = DkimSigner::from_key(ma_ed)
        .domain(DOMAIN)
        .selector(ED_SEL)
        .headers(SIGNED_HEADERS)
        .header_canonicalization(MaCanon::Relaxed)
        .body_canonicalization(MaCanon::Relaxed);

    let records: HashMap<String, String> = [(RSA_SEL, &ptt_rsa), (ED_SEL, &ptt_ed)]
        .into_iter()
        .map(|(sel, key)| {
            (
                format!("{sel}._domainkey.{DOMAIN}"),
                key.key_record().to_string(),
            )
        })
        .collect();
    let cache = TxtCache::with_key_records(&records);
    let keys = Arc::new(SharedKeyCache::new(16));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let authenticator = MessageAuthenticator::new_cloudflare().expect("mail-auth authenticator");
    let ma_verify = |signed: &[u8]| -> bool {
        rt.block_on(async {
            let parsed = AuthenticatedMessage::parse(signed).expect("parse");
            let out = authenticator
                .verify_dkim(Parameters::new(&parsed).with_txt_cache(&cache))
                .await;
            out.len() == 1 && out[0].result() == &DkimResult::Pass
        })
    };

    // The raw floor: one operation over a 32-byte input.
    let rng = SystemRandom::new();
    let modulus_len = ptt_rsa.bits().expect("RSA") / 8;
    let input = [0x5au8; 32];
    let raw_rsa_sign = |data: &[u8]| {
        let mut s = vec![0; modulus_len];
        raw_rsa
            .sign(&sig::RSA_PKCS1_SHA256, &rng, data, &mut s)
            .expect("raw RSA sign");
        s
    };
    let rsa_public = raw_rsa.public_key().as_ref().to_vec();
    let raw_rsa_sig = raw_rsa_sign(&input);
    let raw_rsa_verify = || {
        UnparsedPublicKey::new(&sig::RSA_PKCS1_2048_8192_SHA256, &rsa_public)
            .verify(&input, &raw_rsa_sig)
            .expect("raw RSA verify")
    };
    raw_rsa_verify();
    let raw_ed_sig = raw_ed.sign(&input);
    let raw_ed_verify = || {
        UnparsedPublicKey::new(&sig::ED25519, &ed_public)
            .verify(&input, raw_ed_sig.as_ref())
            .expect("raw Ed25519 verify")
    };
    raw_ed_verify();

    for (size, label) in [(4096, "4k"), (100 * 1024, "100k")] {
        let msg = dkim_message(size);
        assert!(msg.len() <= size && msg.len() > size - 100, "{}", msg.len());

        // Every signer's output verifies with both verifiers; the messages
        // to verify are ptt's signatures, the same bytes for both.
        let mut signed = Vec::new();
        for (key, config, name) in [
            (&ptt_rsa, &rsa_config, "rsa"),
            (&ptt_ed, &ed_config, "ed25519"),
        ] {
            let s = [ptt_sign(key, config, &msg).as_bytes(), &msg].concat();
            assert!(ptt_verify(&s, &records, &keys, now), "ptt {name} {label}");
            assert!(
                ptt_verify_uncached(&s, &records, now),
                "ptt uncached {name} {label}"
            );
            assert!(ma_verify(&s), "mail-auth verifies ptt {name} {label}");
            signed.push(s);
        }
        for (field, name) in [
            (
                ma_rsa_signer.sign(&msg).expect("ma sign").to_header(),
                "rsa",
            ),
            (
                ma_ed_signer.sign(&msg).expect("ma sign").to_header(),
                "ed25519",
            ),
        ] {
            let s = [field.as_bytes(), &msg].concat();
            assert!(
                ptt_verify(&s, &records, &keys, now),
                "ptt verifies mail-auth {name} {label}"
            );
            assert!(ma_verify(&s), "mail-auth {name} {label}");
        }
        let (rsa_signed, ed_signed) = (&signed[0], &signed[1]);
        // The verify bound: the raw verify plus SHA-256 of the canonical
        // body (relaxed, as signed), both with ptt-dkim's backend.
        let body_at = msg
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("the message has a body")
            + 4;
        let canonical_body =
            ptt_dkim::canonicalize_body(ptt_dkim::Canonicalization::Relaxed, &msg[body_at..]);
        let body_sha256 = || raw::digest::digest(&raw::digest::SHA256, black_box(&canonical_body));

        let mut g = c.benchmark_group(format!("dkim_{label}"));
        g.bench_function(format!("sign rsa2048: raw op ({RAW})"), |b| {
            cycled(b, || black_box(raw_rsa_sign(black_box(&input))))
        });
        // The floor as the issue words it: the raw operation over the
        // message itself (RSASSA-PKCS1-v1_5 hashes all of its input).
        g.bench_function(
            format!("sign rsa2048: raw op on the message ({RAW})"),
            |b| cycled(b, || black_box(raw_rsa_sign(black_box(&msg)))),
        );
        g.bench_function("sign rsa2048: ptt-dkim", |b| {
            cycled(b, || {
                black_box(ptt_sign(&ptt_rsa, &rsa_config, black_box(&msg)))
            })
        });
        g.bench_function("sign rsa2048: mail-auth (ring)", |b| {
            cycled(b, || {
                black_box(ma_rsa_signer.sign(black_box(&msg)).expect("sign"))
            })
        });
        // The 4 KB target (ptt-dkim at 0.98 of the raw RSA sign rate) is a
        // margin of 5 us in 235 us. Each side is also timed alternating
        // call for call with the other (`alternating`), so that neither is
        // measured after a different kind of work than the other; the two
        // benchmarks still run one after the other.
        if label == "4k" {
            let ptt = || {
                black_box(ptt_sign(&ptt_rsa, &rsa_config, black_box(&msg)));
            };
            for (floor_name, floor_input) in
                [("raw op", &input[..]), ("raw op on the message", &msg[..])]
            {
                let floor = || {
                    black_box(raw_rsa_sign(black_box(floor_input)));
                };
                g.bench_function(
                    format!("sign rsa2048, alternating: ptt-dkim (with the {floor_name})"),
                    |b| alternating(b, ptt, floor),
                );
                g.bench_function(
                    format!("sign rsa2048, alternating: {floor_name} ({RAW}, with ptt-dkim)"),
                    |b| alternating(b, floor, ptt),
                );
            }
        }
        g.bench_function(format!("sign ed25519: raw op ({RAW})"), |b| {
            cycled(b, || black_box(raw_ed.sign(black_box(&input))))
        });
        g.bench_function("sign ed25519: ptt-dkim", |b| {
            cycled(b, || {
                black_box(ptt_sign(&ptt_ed, &ed_config, black_box(&msg)))
            })
        });
        g.bench_function("sign ed25519: mail-auth (ring)", |b| {
            cycled(b, || {
                black_box(ma_ed_signer.sign(black_box(&msg)).expect("sign"))
            })
        });
        g.bench_function(format!("verify rsa2048: raw op ({RAW})"), |b| {
            cycled(b, raw_rsa_verify)
        });
        // The body's part of a verification, alone: ptt-dkim's streaming
        // relaxed canonicalization and hash, beside the hash of the
        // canonical body that the bound counts.
        g.bench_function(
            format!("body hash: SHA-256 of the canonical body ({RAW})"),
            |b| cycled(b, || black_box(body_sha256())),
        );
        g.bench_function(
            "body hash: ptt-dkim (relaxed canonicalization + SHA-256)",
            |b| {
                cycled(b, || {
                    let mut h =
                        ptt_dkim::BodyHasher::new(ptt_dkim::Canonicalization::Relaxed, None);
                    h.update(black_box(&msg[body_at..]));
                    black_box(h.finish())
                })
            },
        );
        let rsa_bound = || {
            raw_rsa_verify();
            black_box(body_sha256());
        };
        let rsa_ptt = || assert!(ptt_verify(black_box(rsa_signed), &records, &keys, now));
        g.bench_function(
            format!("verify rsa2048: bound (raw op + SHA-256 of the canonical body, {RAW})"),
            |b| cycled(b, rsa_bound),
        );
        g.bench_function("verify rsa2048: ptt-dkim", |b| cycled(b, rsa_ptt));
        paired_verify(
            &mut g,
            &format!("dkim_{label}"),
            "rsa2048",
            rsa_ptt,
            rsa_bound,
        );
        g.bench_function("verify rsa2048: ptt-dkim, no key cache", |b| {
            cycled(b, || {
                assert!(ptt_verify_uncached(black_box(rsa_signed), &records, now))
            })
        });
        g.bench_function("verify rsa2048: mail-auth (ring)", |b| {
            cycled(b, || assert!(ma_verify(black_box(rsa_signed))))
        });
        g.bench_function(format!("verify ed25519: raw op ({RAW})"), |b| {
            cycled(b, raw_ed_verify)
        });
        let ed_bound = || {
            raw_ed_verify();
            black_box(body_sha256());
        };
        let ed_ptt = || assert!(ptt_verify(black_box(ed_signed), &records, &keys, now));
        g.bench_function(
            format!("verify ed25519: bound (raw op + SHA-256 of the canonical body, {RAW})"),
            |b| cycled(b, ed_bound),
        );
        g.bench_function("verify ed25519: ptt-dkim", |b| cycled(b, ed_ptt));
        paired_verify(
            &mut g,
            &format!("dkim_{label}"),
            "ed25519",
            ed_ptt,
            ed_bound,
        );
        g.bench_function("verify ed25519: ptt-dkim, no key cache", |b| {
            cycled(b, || {
                assert!(ptt_verify_uncached(black_box(ed_signed), &records, now))
            })
        });
        g.bench_function("verify ed25519: mail-auth (ring)", |b| {
            cycled(b, || assert!(ma_verify(black_box(ed_signed))))
        });
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
