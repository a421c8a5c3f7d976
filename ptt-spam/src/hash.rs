//! The stable 64-bit token hash.
//!
//! Token stores written by one build are read by another, so the hash must not
//! depend on the platform, the process or the standard library's `Hasher`:
//! it is a small multiply-rotate hash over 8-byte words with a SplitMix64
//! finalizer, little-endian everywhere.

const K: u64 = 0x9E37_79B9_7F4A_7C15;
const K2: u64 = 0xC2B2_AE3D_27D4_EB4F;

/// The SplitMix64 finalizer: every input bit affects every output bit.
#[inline]
pub(crate) const fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Hashes `bytes` under `seed` (the seed keeps token namespaces apart).
#[inline]
pub fn hash_bytes(seed: u64, bytes: &[u8]) -> u64 {
    let mut s = Stream::new(seed, bytes.len() as u64);
    let whole = bytes.len() - bytes.len() % 8;
    s.words(&bytes[..whole]);
    s.finish(&bytes[whole..])
}

/// [`hash_bytes`] fed in pieces of whole 8-byte words (for checksumming a
/// file as it is read); the total length must be known up front.
pub(crate) struct Stream {
    h: u64,
}

impl Stream {
    #[inline]
    pub(crate) fn new(seed: u64, total_len: u64) -> Self {
        Stream {
            h: seed ^ total_len.wrapping_mul(K),
        }
    }

    /// Feeds whole words; a trailing partial word is ignored (callers pass
    /// multiples of 8 and the remainder to [`Stream::finish`]).
    #[inline]
    pub(crate) fn words(&mut self, bytes: &[u8]) {
        let mut h = self.h;
        for chunk in bytes.chunks_exact(8) {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            h = (h ^ u64::from_le_bytes(word))
                .wrapping_mul(K)
                .rotate_left(29);
        }
        self.h = h;
    }

    /// Feeds one word (the same as 8 bytes to [`Stream::words`]).
    #[cfg(feature = "std")]
    #[inline]
    pub(crate) fn word(&mut self, word: u64) {
        self.h = (self.h ^ word).wrapping_mul(K).rotate_left(29);
    }

    #[inline]
    pub(crate) fn finish(self, rest: &[u8]) -> u64 {
        let mut h = self.h;
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            for (dst, src) in word.iter_mut().zip(rest) {
                *dst = *src;
            }
            h = (h ^ u64::from_le_bytes(word))
                .wrapping_mul(K2)
                .rotate_left(31);
        }
        nonzero(mix(h))
    }
}

/// Combines two word hashes at distance `distance` into an OSB token hash.
#[cfg(feature = "std")]
#[inline]
pub(crate) fn pair(first: u64, second: u64, distance: u32) -> u64 {
    let h = first.wrapping_mul(K)
        ^ second.rotate_left(23).wrapping_mul(K2)
        ^ u64::from(distance).wrapping_mul(0xD6E8_FEB8_6659_FD93);
    nonzero(mix(h))
}

/// Zero marks an empty slot in the token table, so no token hashes to it.
#[inline]
const fn nonzero(h: u64) -> u64 {
    if h == 0 { 1 } else { h }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_values() {
        // Stored databases depend on these exact values.
        assert_eq!(hash_bytes(0, b""), hash_bytes(0, b""));
        assert_ne!(hash_bytes(0, b"viagra"), hash_bytes(1, b"viagra"));
        assert_ne!(hash_bytes(0, b"abcdefgh1"), hash_bytes(0, b"abcdefgh2"));
        assert_ne!(pair(1, 2, 1), pair(2, 1, 1));
        assert_ne!(pair(1, 2, 1), pair(1, 2, 2));
        assert_eq!(hash_bytes(7, b"free money"), 4_491_904_867_462_496_123);
    }
}
