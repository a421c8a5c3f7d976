//! Running a call at each of [`STACK_OFFSETS`] stack depths, 64 bytes
//! apart, so that a benchmark's figure does not hang on where the stack
//! happens to be.
//!
//! aws-lc-rs's RSA operation is up to 40% slower when the stack lies in
//! one 128-byte window (of every 4,096 bytes) against the addresses it
//! works on, a 4K-aliasing effect: seen here as 310-328 us against 230 us
//! for an RSA-2048 signature called 2,688-2,784 bytes deeper than the
//! caller's own frame (one process, one key). Where
//! that window falls depends on everything called before, so two benches
//! of the same operation, or the same bench after an unrelated change, can
//! differ by that much. Cycling the depth call by call gives each measured
//! function the same mix of depths, the bad window included.
//!
//! ```
//! let mut calls = 0;
//! for k in 0..ptt_testkit::stack_offset::STACK_OFFSETS {
//!     ptt_testkit::stack_offset::at_stack_offset(k, &mut || calls += 1);
//! }
//! assert_eq!(calls, 64);
//! ```

use std::hint::black_box;
use std::mem::MaybeUninit;

/// The number of depths [`at_stack_offset`] cycles through: 64 steps of 64
/// bytes cover one 4,096-byte page.
pub const STACK_OFFSETS: usize = 64;

#[inline(never)]
fn at_depth<const PAD: usize>(f: &mut dyn FnMut()) {
    // Reserved, never read: the call below runs PAD bytes deeper.
    let pad = MaybeUninit::<[u8; PAD]>::uninit();
    black_box(&pad);
    f();
    black_box(&pad);
}

/// Times `calls` calls of `f`, the `i`-th at depth `first + i` (as
/// [`at_stack_offset`] counts them).
pub fn time_at_depths(first: usize, calls: usize, f: &mut dyn FnMut()) -> std::time::Duration {
    let start = std::time::Instant::now();
    for depth in first..first + calls {
        at_stack_offset(depth, f);
    }
    start.elapsed()
}

/// Calls `f` with the stack `64 * (k % 64)` bytes deeper than `k = 0` does
/// (every depth has a pad, of 32 to 4,064 bytes, so that all have one
/// frame layout and none needs a stack probe).
pub fn at_stack_offset(k: usize, f: &mut dyn FnMut()) {
    match k % STACK_OFFSETS {
        0 => at_depth::<32>(f),
        1 => at_depth::<96>(f),
        2 => at_depth::<160>(f),
        3 => at_depth::<224>(f),
        4 => at_depth::<288>(f),
        5 => at_depth::<352>(f),
        6 => at_depth::<416>(f),
        7 => at_depth::<480>(f),
        8 => at_depth::<544>(f),
        9 => at_depth::<608>(f),
        10 => at_depth::<672>(f),
        11 => at_depth::<736>(f),
        12 => at_depth::<800>(f),
        13 => at_depth::<864>(f),
        14 => at_depth::<928>(f),
        15 => at_depth::<992>(f),
        16 => at_depth::<1056>(f),
        17 => at_depth::<1120>(f),
        18 => at_depth::<1184>(f),
        19 => at_depth::<1248>(f),
        20 => at_depth::<1312>(f),
        21 => at_depth::<1376>(f),
        22 => at_depth::<1440>(f),
        23 => at_depth::<1504>(f),
        24 => at_depth::<1568>(f),
        25 => at_depth::<1632>(f),
        26 => at_depth::<1696>(f),
        27 => at_depth::<1760>(f),
        28 => at_depth::<1824>(f),
        29 => at_depth::<1888>(f),
        30 => at_depth::<1952>(f),
        31 => at_depth::<2016>(f),
        32 => at_depth::<2080>(f),
        33 => at_depth::<2144>(f),
        34 => at_depth::<2208>(f),
        35 => at_depth::<2272>(f),
        36 => at_depth::<2336>(f),
        37 => at_depth::<2400>(f),
        38 => at_depth::<2464>(f),
        39 => at_depth::<2528>(f),
        40 => at_depth::<2592>(f),
        41 => at_depth::<2656>(f),
        42 => at_depth::<2720>(f),
        43 => at_depth::<2784>(f),
        44 => at_depth::<2848>(f),
        45 => at_depth::<2912>(f),
        46 => at_depth::<2976>(f),
        47 => at_depth::<3040>(f),
        48 => at_depth::<3104>(f),
        49 => at_depth::<3168>(f),
        50 => at_depth::<3232>(f),
        51 => at_depth::<3296>(f),
        52 => at_depth::<3360>(f),
        53 => at_depth::<3424>(f),
        54 => at_depth::<3488>(f),
        55 => at_depth::<3552>(f),
        56 => at_depth::<3616>(f),
        57 => at_depth::<3680>(f),
        58 => at_depth::<3744>(f),
        59 => at_depth::<3808>(f),
        60 => at_depth::<3872>(f),
        61 => at_depth::<3936>(f),
        62 => at_depth::<4000>(f),
        63 => at_depth::<4064>(f),
        _ => unreachable!("k % 64 is below 64"),
    }
}
