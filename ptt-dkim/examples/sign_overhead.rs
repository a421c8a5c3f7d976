//! ptt-dkim's own work in signing the DKIM bench's 4 KB message (relaxed
//! body and header canonicalization, hashing, base64, building and folding
//! the field), without the RSA operation: an Ed25519 key signs the message,
//! and the bare Ed25519 operation (the same key signing the 32-byte digest)
//! is subtracted. Best of many batches, so that other load on the machine
//! shows as little as possible; a batch calls once at each of 64 stack
//! depths (`ptt_testkit::stack_offset`), so that where the stack happens
//! to sit does not decide the figure. With aws-lc-rs it also signs with a fresh
//! RSA-2048 key beside the raw RSA operation on 32 bytes and on the whole
//! message (the criterion bench's two floors), in interleaved rounds, which
//! drift less than criterion runs one after the other, each call at the
//! next depth, as in the criterion bench.
//!
//! `cargo run --release -p ptt-dkim --example sign_overhead [iterations]`
//! (with `loop` as the argument it signs forever, with `body-loop` it hashes
//! the body forever, for `perf record`).

use std::hint::black_box;

use ptt_dkim::{BodyHasher, Canonicalization, Signer, SignerConfig, SigningKey};
use ptt_testkit::bench_mail::{SIGNED_HEADERS, dkim_message};
use ptt_testkit::stack_offset::{STACK_OFFSETS, time_at_depths};

/// The DKIM bench's configuration: its `h=`, no over-signing, a fixed `t=`.
fn config() -> SignerConfig {
    let mut cfg = SignerConfig::new("example.com", "ed");
    cfg.headers = SIGNED_HEADERS.iter().map(|h| h.to_string()).collect();
    cfg.oversign = false;
    cfg.timestamp = Some(1_763_769_600);
    cfg
}

/// Nanoseconds per call of `f`: the best of `batches` batches, each a call
/// at every stack depth of `ptt_testkit::stack_offset` in turn.
fn best(batches: usize, mut f: impl FnMut()) -> f64 {
    let mut best = f64::MAX;
    for _ in 0..batches {
        let t = time_at_depths(0, STACK_OFFSETS, &mut f);
        best = best.min(t.as_nanos() as f64 / STACK_OFFSETS as f64);
    }
    best
}

fn main() {
    let arg = std::env::args().nth(1);
    let msg = dkim_message(4096);
    let key = SigningKey::from_ed25519_seed(&[7; 32]).expect("key");
    let config = config();
    let sign = || {
        let mut s = Signer::new(&key, &config).expect("signer");
        s.update(black_box(&msg));
        black_box(s.finish().expect("sign"));
    };
    if arg.as_deref() == Some("loop") {
        loop {
            sign();
        }
    }
    if arg.as_deref() == Some("body-loop") {
        // The relaxed body hash alone, for `perf record`.
        let body = &msg[msg.len() - 3840..];
        loop {
            let mut h = BodyHasher::new(Canonicalization::Relaxed, None);
            h.update(black_box(body));
            black_box(h.finish());
        }
    }
    let batches = arg.and_then(|a| a.parse().ok()).unwrap_or(200);
    let body_start = msg
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(0, |p| p + 4);
    let body = &msg[body_start..];

    let full = best(batches, sign);
    // The bare operation: SigningKey::sign hashes its input, so give it 32
    // bytes (one SHA-256 block, as the digest it stands for).
    let raw = best(batches, || {
        black_box(key.sign(black_box(&[1u8; 32])).expect("sign"));
    });
    let body_hash = best(batches, || {
        let mut h = BodyHasher::new(Canonicalization::Relaxed, None);
        h.update(black_box(body));
        black_box(h.finish());
    });
    let sha = best(batches, || {
        use sha2::Digest as _;
        black_box(sha2::Sha256::digest(black_box(body)));
    });
    // RSA-2048 (aws-lc-rs generates the key; ring cannot): the whole
    // signing against the criterion bench's two floors.
    #[cfg(feature = "aws-lc-rs")]
    if let Ok(rsa) = ptt_dkim::generate_key(ptt_dkim::KeyKind::Rsa2048, [0; 32]) {
        let rsa = rsa.key;
        let mut ptt = || {
            let mut s = Signer::new(&rsa, &config).expect("signer");
            s.update(black_box(&msg));
            black_box(s.finish().expect("sign"));
        };
        // The two floors: the RSA operation alone (32 bytes in, as the
        // digest it stands for), and the raw operation over the message
        // itself (RSASSA-PKCS1-v1_5 hashes its whole input), which is the
        // least any signer of this message does.
        let mut bare = || {
            black_box(rsa.sign(black_box(&[1u8; 32])).expect("sign"));
        };
        let mut on_message = || {
            black_box(rsa.sign(black_box(&msg)).expect("sign"));
        };
        // Interleaved: each round times a batch of each, so that the
        // machine's drift (other load, frequency) hits all alike, in an
        // order rotated every round, since what ran just before a batch
        // shows in its time. Every call runs at the next stack depth
        // (`ptt_testkit::stack_offset`): aws-lc-rs's RSA operation is up to
        // 40% slower at one depth in 32, and which one depends on what was
        // called before, so without this one side can lose the lottery.
        const BATCH: usize = 8;
        let rounds = batches / 2 + 1;
        let mut times: [Vec<f64>; 3] = Default::default();
        let runs: [&mut dyn FnMut(); 3] = [&mut ptt, &mut bare, &mut on_message];
        for round in 0..rounds {
            for k in 0..3 {
                let which = (round + k) % 3;
                let t = time_at_depths(round * BATCH, BATCH, &mut *runs[which]);
                times[which].push(t.as_nanos() as f64 / BATCH as f64);
            }
        }
        let [p, r, m] = &times;
        let best = |v: &[f64]| v.iter().copied().fold(f64::MAX, f64::min);
        let total = |v: &[f64]| v.iter().sum::<f64>();
        let median_ratio = |floor: &[f64]| {
            let mut ratios: Vec<f64> = floor.iter().zip(p).map(|(f, p)| f / p).collect();
            ratios.sort_by(f64::total_cmp);
            ratios[ratios.len() / 2]
        };
        println!(
            "RSA-2048, {rounds} interleaved rounds of {BATCH} calls: best batch ptt-dkim sign {:.1} us, \
             raw op on 32 bytes {:.1} us, raw op on the message {:.1} us",
            best(p) / 1e3,
            best(r) / 1e3,
            best(m) / 1e3,
        );
        println!(
            "  rate ratio to the raw op on 32 bytes / on the message: over all rounds {:.3} / {:.3}, \
             median of the rounds {:.3} / {:.3}, best batches {:.3} / {:.3}",
            total(r) / total(p),
            total(m) / total(p),
            median_ratio(r),
            median_ratio(m),
            best(r) / best(p),
            best(m) / best(p),
        );
    }
    #[cfg(feature = "aws-lc-rs")]
    {
        let aws = best(batches, || {
            black_box(aws_lc_rs::digest::digest(
                &aws_lc_rs::digest::SHA256,
                black_box(body),
            ));
        });
        println!("aws-lc-rs SHA-256 of the body {:.2} us", aws / 1e3);
    }
    println!(
        "4 KB message ({} bytes, body {}): ptt-dkim Ed25519 sign {:.2} us, bare Ed25519 sign {:.2} us, \
         ptt-dkim's own work {:.2} us (of which relaxed body hash {:.2} us; plain SHA-256 of the body {:.2} us)",
        msg.len(),
        body.len(),
        full / 1e3,
        raw / 1e3,
        (full - raw) / 1e3,
        body_hash / 1e3,
        sha / 1e3,
    );
}
