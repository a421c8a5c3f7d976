//! Randomness for the binaries (the Sans-IO crates take it as input): key
//! seeds, tokens, DMARC `pct` sampling. Read from the kernel's CSPRNG.

use std::fs::File;
use std::io::Read as _;
use std::sync::OnceLock;

/// `/dev/urandom`, opened at the first use and kept: the services ask for
/// randomness per message (queue ids), and a read is one system call
/// where an open, a read and a close were three.
static URANDOM: OnceLock<File> = OnceLock::new();

/// Fills `buf` from `/dev/urandom`.
pub(crate) fn fill(buf: &mut [u8]) -> std::io::Result<()> {
    let file = match URANDOM.get() {
        Some(file) => file,
        None => {
            let opened = File::open("/dev/urandom")?;
            // A thread that opened it at the same time keeps its own.
            URANDOM.get_or_init(|| opened)
        }
    };
    let mut reader: &File = file;
    reader.read_exact(buf)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_differ_and_threads_share_the_open_file() {
        let a = bytes32().unwrap();
        let b = bytes32().unwrap();
        assert_ne!(a, b);
        assert_ne!(a, [0u8; 32]);
        let threads: Vec<_> = (0..8)
            .map(|_| {
                std::thread::spawn(|| (0..100).map(|_| bytes32().unwrap()).collect::<Vec<_>>())
            })
            .collect();
        let mut all: Vec<[u8; 32]> = threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 800, "every read is fresh");
        assert!(URANDOM.get().is_some(), "opened once and kept");
        assert!((0..1000).all(|_| below(7) < 7));
    }
}
