//! Running a call at each of [`STACK_OFFSETS`] stack depths, 64 bytes
//! apart, so that a benchmark's figure does not hang on where the stack
//! happens to be.
//!
//! aws-lc-rs's RSA operation is up to 40% slower when the stack lies in
//! one 128-byte window (of every 4,096 bytes) against the addresses it
//! works on, a 4K-aliasing effect: seen here as 310-328 us against 230 us
//! for an RSA-2048 signature called from 2,688-2,784 bytes deeper. Where
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

/// Calls `f` with the stack `64 * (k % 64)` bytes deeper than `k = 0` does.
pub fn at_stack_offset(k: usize, f: &mut dyn FnMut()) {
    match k % STACK_OFFSETS {
        0 => at_depth::<0>(f),
        1 => at_depth::<64>(f),
        2 => at_depth::<128>(f),
        3 => at_depth::<192>(f),
        4 => at_depth::<256>(f),
        5 => at_depth::<320>(f),
        6 => at_depth::<384>(f),
        7 => at_depth::<448>(f),
        8 => at_depth::<512>(f),
        9 => at_depth::<576>(f),
        10 => at_depth::<640>(f),
        11 => at_depth::<704>(f),
        12 => at_depth::<768>(f),
        13 => at_depth::<832>(f),
        14 => at_depth::<896>(f),
        15 => at_depth::<960>(f),
        16 => at_depth::<1024>(f),
        17 => at_depth::<1088>(f),
        18 => at_depth::<1152>(f),
        19 => at_depth::<1216>(f),
        20 => at_depth::<1280>(f),
        21 => at_depth::<1344>(f),
        22 => at_depth::<1408>(f),
        23 => at_depth::<1472>(f),
        24 => at_depth::<1536>(f),
        25 => at_depth::<1600>(f),
        26 => at_depth::<1664>(f),
        27 => at_depth::<1728>(f),
        28 => at_depth::<1792>(f),
        29 => at_depth::<1856>(f),
        30 => at_depth::<1920>(f),
        31 => at_depth::<1984>(f),
        32 => at_depth::<2048>(f),
        33 => at_depth::<2112>(f),
        34 => at_depth::<2176>(f),
        35 => at_depth::<2240>(f),
        36 => at_depth::<2304>(f),
        37 => at_depth::<2368>(f),
        38 => at_depth::<2432>(f),
        39 => at_depth::<2496>(f),
        40 => at_depth::<2560>(f),
        41 => at_depth::<2624>(f),
        42 => at_depth::<2688>(f),
        43 => at_depth::<2752>(f),
        44 => at_depth::<2816>(f),
        45 => at_depth::<2880>(f),
        46 => at_depth::<2944>(f),
        47 => at_depth::<3008>(f),
        48 => at_depth::<3072>(f),
        49 => at_depth::<3136>(f),
        50 => at_depth::<3200>(f),
        51 => at_depth::<3264>(f),
        52 => at_depth::<3328>(f),
        53 => at_depth::<3392>(f),
        54 => at_depth::<3456>(f),
        55 => at_depth::<3520>(f),
        56 => at_depth::<3584>(f),
        57 => at_depth::<3648>(f),
        58 => at_depth::<3712>(f),
        59 => at_depth::<3776>(f),
        60 => at_depth::<3840>(f),
        61 => at_depth::<3904>(f),
        62 => at_depth::<3968>(f),
        63 => at_depth::<4032>(f),
        _ => unreachable!("k % 64 is below 64"),
    }
}
