//! Randomness for the binaries (the Sans-IO crates take it as input): key
//! seeds, tokens, DMARC `pct` sampling. Read from the kernel's CSPRNG.

use std::io::Read as _;

/// Fills `buf` from `/dev/urandom`.
pub(crate) fn fill(buf: &mut [u8]) -> std::io::Result<()> {
    std::fs::File::open("/dev/urandom")?.read_exact(buf)
}

/// 32 random bytes, or a one-line error.
pub(crate) fn bytes32() -> Result<[u8; 32], String> {
    let mut out = [0u8; 32];
    fill(&mut out).map_err(|e| format!("reading /dev/urandom: {e}"))?;
    Ok(out)
}

/// A uniformly random number in `0..n` (`n` > 0), 0 if the kernel's
/// generator cannot be read.
pub(crate) fn below(n: u32) -> u32 {
    let mut b = [0u8; 8];
    if fill(&mut b).is_err() {
        return 0;
    }
    // 64 random bits reduced to a small range: the bias is below 2^-32.
    (u64::from_le_bytes(b) % u64::from(n.max(1))) as u32
}
