//! The SHA-256 compression of the body hash (FIPS 180-4 §6.2).
//!
//! The body hash compresses a block at a time, between 64-byte steps of
//! the relaxed canonicalization, so that the two run side by side. A call into the sha2 crate per block costs the chaining state's
//! load, shuffle into the order the SHA extensions work on, and store; on
//! a CPU with the SHA extensions the state is kept here in that order
//! from the first block to the last, and the rounds are built into the
//! canonicalization loop. Elsewhere, sha2's compression is used.

/// SHA-256's initial chaining state (FIPS 180-4 §5.3.3).
const INIT: [u32; 8] = [
    0x6a09_e667,
    0xbb67_ae85,
    0x3c6e_f372,
    0xa54f_f53a,
    0x510e_527f,
    0x9b05_688c,
    0x1f83_d9ab,
    0x5be0_cd19,
];

/// A SHA-256 block.
pub(crate) const BLOCK: usize = 64;

/// A SHA-256 chaining state, in the order its compression works on.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ChainState {
    /// With the SHA extensions: the words as `ABEF` then `CDGH`, each
    /// from the lowest lane up (`F, E, B, A, H, G, D, C`); else in FIPS
    /// order.
    words: [u32; 8],
    /// Whether this CPU has the SHA extensions (checked once, at `new`).
    #[cfg(all(feature = "std", target_arch = "x86_64"))]
    sha_ni: bool,
}

impl ChainState {
    /// The initial state.
    pub(crate) fn new() -> Self {
        #[cfg(all(feature = "std", target_arch = "x86_64"))]
        if sha_ni::available() {
            return ChainState {
                // SAFETY: the CPU has the features the function is built
                // for.
                #[allow(unsafe_code)]
                words: unsafe { sha_ni::to_lanes(&INIT) },
                sha_ni: true,
            };
        }
        ChainState {
            words: INIT,
            #[cfg(all(feature = "std", target_arch = "x86_64"))]
            sha_ni: false,
        }
    }

    /// Compresses the whole 64-byte blocks of `data`; returns how many
    /// bytes that was.
    #[inline(always)]
    pub(crate) fn compress(&mut self, data: &[u8]) -> usize {
        #[cfg(all(feature = "std", target_arch = "x86_64"))]
        if self.sha_ni {
            // SAFETY: `sha_ni` is only set where the CPU has the features.
            #[allow(unsafe_code)]
            return unsafe { sha_ni::compress(&mut self.words, data) };
        }
        let mut done = 0;
        for block in data.chunks_exact(BLOCK) {
            sha2::compress256(&mut self.words, core::slice::from_ref(block.into()));
            done += BLOCK;
        }
        done
    }

    /// The hash, once `rest` (under a block: what followed the compressed
    /// blocks) is padded with a 1 bit, zeros and `total`, the message's
    /// length in bytes (FIPS 180-4 §5.1.1).
    pub(crate) fn finalize(mut self, rest: &[u8], total: u64) -> [u8; 32] {
        let mut tail = [0u8; 2 * BLOCK];
        let rest = rest.get(..BLOCK - 1).unwrap_or(rest);
        tail[..rest.len()].copy_from_slice(rest);
        tail[rest.len()] = 0x80;
        let end = if rest.len() + 9 <= BLOCK {
            BLOCK
        } else {
            2 * BLOCK
        };
        tail[end - 8..end].copy_from_slice(&total.wrapping_mul(8).to_be_bytes());
        self.compress(&tail[..end]);
        let words = self.fips_words();
        let mut out = [0u8; 32];
        for (word, bytes) in words.iter().zip(out.chunks_exact_mut(4)) {
            bytes.copy_from_slice(&word.to_be_bytes());
        }
        out
    }

    /// The state in FIPS order.
    fn fips_words(&self) -> [u32; 8] {
        #[cfg(all(feature = "std", target_arch = "x86_64"))]
        if self.sha_ni {
            // SAFETY: `sha_ni` is only set where the CPU has the features.
            #[allow(unsafe_code)]
            return unsafe { sha_ni::from_lanes(&self.words) };
        }
        self.words
    }
}

/// The compression on the x86 SHA extensions: four rounds per message
/// vector, two per `sha256rnds2`, the message schedule by `sha256msg1` and
/// `sha256msg2` (Intel's SHA extensions paper, 2013, describes the
/// scheme); chosen at run time.
#[cfg(all(feature = "std", target_arch = "x86_64"))]
#[allow(unsafe_code)]
mod sha_ni {
    use core::arch::x86_64::{
        __m128i, _mm_add_epi32, _mm_alignr_epi8, _mm_blend_epi16, _mm_loadu_si128, _mm_set_epi64x,
        _mm_setzero_si128, _mm_sha256msg1_epu32, _mm_sha256msg2_epu32, _mm_sha256rnds2_epu32,
        _mm_shuffle_epi8, _mm_shuffle_epi32, _mm_storeu_si128,
    };

    use super::BLOCK;

    /// The round constants (FIPS 180-4 §4.2.2).
    const K: [u32; 64] = [
        0x428a_2f98,
        0x7137_4491,
        0xb5c0_fbcf,
        0xe9b5_dba5,
        0x3956_c25b,
        0x59f1_11f1,
        0x923f_82a4,
        0xab1c_5ed5,
        0xd807_aa98,
        0x1283_5b01,
        0x2431_85be,
        0x550c_7dc3,
        0x72be_5d74,
        0x80de_b1fe,
        0x9bdc_06a7,
        0xc19b_f174,
        0xe49b_69c1,
        0xefbe_4786,
        0x0fc1_9dc6,
        0x240c_a1cc,
        0x2de9_2c6f,
        0x4a74_84aa,
        0x5cb0_a9dc,
        0x76f9_88da,
        0x983e_5152,
        0xa831_c66d,
        0xb003_27c8,
        0xbf59_7fc7,
        0xc6e0_0bf3,
        0xd5a7_9147,
        0x06ca_6351,
        0x1429_2967,
        0x27b7_0a85,
        0x2e1b_2138,
        0x4d2c_6dfc,
        0x5338_0d13,
        0x650a_7354,
        0x766a_0abb,
        0x81c2_c92e,
        0x9272_2c85,
        0xa2bf_e8a1,
        0xa81a_664b,
        0xc24b_8b70,
        0xc76c_51a3,
        0xd192_e819,
        0xd699_0624,
        0xf40e_3585,
        0x106a_a070,
        0x19a4_c116,
        0x1e37_6c08,
        0x2748_774c,
        0x34b0_bcb5,
        0x391c_0cb3,
        0x4ed8_aa4a,
        0x5b9c_ca4f,
        0x682e_6ff3,
        0x748f_82ee,
        0x78a5_636f,
        0x84c8_7814,
        0x8cc7_0208,
        0x90be_fffa,
        0xa450_6ceb,
        0xbef9_a3f7,
        0xc671_78f2,
    ];

    /// Whether this CPU has the features [`compress`] uses.
    pub(super) fn available() -> bool {
        std::is_x86_feature_detected!("sha")
            && std::is_x86_feature_detected!("sse2")
            && std::is_x86_feature_detected!("ssse3")
            && std::is_x86_feature_detected!("sse4.1")
    }

    #[inline]
    #[target_feature(enable = "sse2")]
    fn load(words: &[u32; 8], at: usize) -> __m128i {
        let half = words.get(at..at + 4).unwrap_or(&[0; 4]);
        // SAFETY: 16 readable bytes; the load is unaligned.
        unsafe { _mm_loadu_si128(half.as_ptr().cast()) }
    }

    #[inline]
    #[target_feature(enable = "sse2")]
    fn store(v: __m128i, out: &mut [u32; 8], at: usize) {
        if let Some(half) = out.get_mut(at..at + 4) {
            // SAFETY: 16 writable bytes; the store is unaligned.
            unsafe { _mm_storeu_si128(half.as_mut_ptr().cast(), v) };
        }
    }

    /// FIPS order (`A..H`) to the lanes of `ABEF` and `CDGH`.
    #[target_feature(enable = "sse2,ssse3,sse4.1")]
    pub(super) fn to_lanes(fips: &[u32; 8]) -> [u32; 8] {
        let badc = _mm_shuffle_epi32(load(fips, 0), 0xB1);
        let efgh = _mm_shuffle_epi32(load(fips, 4), 0x1B);
        let mut lanes = [0; 8];
        store(_mm_alignr_epi8(badc, efgh, 8), &mut lanes, 0);
        store(_mm_blend_epi16(efgh, badc, 0xF0), &mut lanes, 4);
        lanes
    }

    /// The lanes of `ABEF` and `CDGH` back to FIPS order.
    #[target_feature(enable = "sse2,ssse3,sse4.1")]
    pub(super) fn from_lanes(lanes: &[u32; 8]) -> [u32; 8] {
        let feba = _mm_shuffle_epi32(load(lanes, 0), 0x1B);
        let dchg = _mm_shuffle_epi32(load(lanes, 4), 0xB1);
        let mut fips = [0; 8];
        store(_mm_blend_epi16(feba, dchg, 0xF0), &mut fips, 0);
        store(_mm_alignr_epi8(dchg, feba, 8), &mut fips, 4);
        fips
    }

    /// The `i`th 16 bytes of `block` as four big-endian words.
    #[inline]
    #[target_feature(enable = "sse2,ssse3")]
    fn message(block: &[u8], i: usize, big_endian: __m128i) -> __m128i {
        let Some(bytes) = block.get(16 * i..16 * i + 16) else {
            return _mm_setzero_si128();
        };
        // SAFETY: 16 readable bytes; the load is unaligned.
        _mm_shuffle_epi8(
            unsafe { _mm_loadu_si128(bytes.as_ptr().cast()) },
            big_endian,
        )
    }

    /// K[4g..4g+4].
    #[inline]
    #[target_feature(enable = "sse2")]
    fn round_constants(g: usize) -> __m128i {
        let Some(k) = K.get(4 * g..4 * g + 4) else {
            return _mm_setzero_si128();
        };
        // SAFETY: 16 readable bytes; the load is unaligned.
        unsafe { _mm_loadu_si128(k.as_ptr().cast()) }
    }

    /// [`super::ChainState::compress`] on the SHA extensions, `lanes`
    /// holding `ABEF` and `CDGH`.
    #[inline]
    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    pub(super) fn compress(lanes: &mut [u32; 8], data: &[u8]) -> usize {
        // Each 32-bit word of a block is big-endian.
        let big_endian = _mm_set_epi64x(0x0c0d_0e0f_0809_0a0b, 0x0405_0607_0001_0203);
        let mut abef = load(lanes, 0);
        let mut cdgh = load(lanes, 4);
        let mut done = 0;
        for block in data.chunks_exact(BLOCK) {
            let (abef_before, cdgh_before) = (abef, cdgh);
            // Four rounds with the message vector `w` (W[4g..4g+4]), two
            // per instruction; the new ABEF lands in the register that
            // held CDGH, and the old ABEF is the new CDGH.
            macro_rules! rounds {
                ($w:expr, $g:expr) => {
                    let wk = _mm_add_epi32($w, round_constants($g));
                    cdgh = _mm_sha256rnds2_epu32(cdgh, abef, wk);
                    abef = _mm_sha256rnds2_epu32(abef, cdgh, _mm_shuffle_epi32(wk, 0x0E));
                };
            }
            // W[t] = σ1(W[t-2]) + W[t-7] + σ0(W[t-15]) + W[t-16], four at
            // a time, into the vector of W[t-16..].
            macro_rules! schedule {
                ($w16:ident, $w12:ident, $w8:ident, $w4:ident) => {
                    $w16 = _mm_sha256msg2_epu32(
                        _mm_add_epi32(
                            _mm_sha256msg1_epu32($w16, $w12),
                            _mm_alignr_epi8($w4, $w8, 4),
                        ),
                        $w4,
                    );
                };
            }
            let (mut w0, mut w1, mut w2, mut w3) = (
                message(block, 0, big_endian),
                message(block, 1, big_endian),
                message(block, 2, big_endian),
                message(block, 3, big_endian),
            );
            rounds!(w0, 0);
            rounds!(w1, 1);
            rounds!(w2, 2);
            rounds!(w3, 3);
            for g in [4, 8, 12] {
                schedule!(w0, w1, w2, w3);
                rounds!(w0, g);
                schedule!(w1, w2, w3, w0);
                rounds!(w1, g + 1);
                schedule!(w2, w3, w0, w1);
                rounds!(w2, g + 2);
                schedule!(w3, w0, w1, w2);
                rounds!(w3, g + 3);
            }
            abef = _mm_add_epi32(abef, abef_before);
            cdgh = _mm_add_epi32(cdgh, cdgh_before);
            done += BLOCK;
        }
        store(abef, lanes, 0);
        store(cdgh, lanes, 4);
        done
    }
}

#[cfg(test)]
mod tests {
    use sha2::{Digest as _, Sha256};

    use super::*;

    /// The same digest as sha2 for every length around the padding's
    /// edges and a few blocks, compressed in pieces of every block count.
    #[test]
    fn digests_match_sha2() {
        let data: alloc::vec::Vec<u8> = (0..1000u32).map(|i| (i * 7 + i / 13) as u8).collect();
        for len in (0..200).chain([511, 512, 513, 1000]) {
            let message = &data[..len];
            for (per_call, state) in [1, 2, 5]
                .into_iter()
                .flat_map(|n| both_paths().into_iter().map(move |s| (n, s)))
            {
                let mut state = state;
                let mut at = 0;
                while message.len() - at >= BLOCK {
                    let take = (per_call * BLOCK).min(message.len() - at);
                    at += state.compress(&message[at..at + take]);
                }
                let ours = state.finalize(&message[at..], len as u64);
                let want: [u8; 32] = Sha256::digest(message).into();
                assert_eq!(ours, want, "length {len}, {per_call} blocks per call");
            }
        }
    }

    /// The initial state on this CPU's path and, where that is the SHA
    /// extensions, on sha2's too.
    fn both_paths() -> alloc::vec::Vec<ChainState> {
        let here = ChainState::new();
        #[cfg(all(feature = "std", target_arch = "x86_64"))]
        if here.sha_ni {
            let sha2 = ChainState {
                words: INIT,
                sha_ni: false,
            };
            return alloc::vec![here, sha2];
        }
        alloc::vec![here]
    }

    /// The lanes' order round-trips.
    #[test]
    fn lanes_round_trip() {
        let state = ChainState::new();
        assert_eq!(state.fips_words(), INIT);
    }
}
