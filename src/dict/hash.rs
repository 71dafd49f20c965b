//! SipHash-1-3 over a key's bytes, keyed by two words stored in the dict header.
//!
//! Every process must hash a key to the same bucket, so the hash cannot use a
//! per-process random seed the way `std`'s `RandomState` does. The key is chosen
//! once, at creation: fixed (the default, reproducible across runs) or random
//! ([`crate::DictOptions::random_seed`]), and stored in the region for every
//! opener to read. Written from the SipHash paper's description (Aumasson and
//! Bernstein, 2012): 1 compression round per 8-byte word, 3 finalization rounds.

#[derive(Clone, Copy)]
struct State {
    v0: u64,
    v1: u64,
    v2: u64,
    v3: u64,
}

impl State {
    #[inline]
    fn round(&mut self) {
        self.v0 = self.v0.wrapping_add(self.v1);
        self.v1 = self.v1.rotate_left(13) ^ self.v0;
        self.v0 = self.v0.rotate_left(32);
        self.v2 = self.v2.wrapping_add(self.v3);
        self.v3 = self.v3.rotate_left(16) ^ self.v2;
        self.v0 = self.v0.wrapping_add(self.v3);
        self.v3 = self.v3.rotate_left(21) ^ self.v0;
        self.v2 = self.v2.wrapping_add(self.v1);
        self.v1 = self.v1.rotate_left(17) ^ self.v2;
        self.v2 = self.v2.rotate_left(32);
    }

    #[inline]
    fn absorb<const C: usize>(&mut self, m: u64) {
        self.v3 ^= m;
        for _ in 0..C {
            self.round();
        }
        self.v0 ^= m;
    }
}

/// SipHash-1-3 of `bytes` under the key `(k0, k1)`.
#[inline]
pub(crate) fn sip13(k0: u64, k1: u64, bytes: &[u8]) -> u64 {
    sip::<1, 3>(k0, k1, bytes)
}

/// SipHash-c-d: `C` rounds per word, `D` finalization rounds.
#[inline]
fn sip<const C: usize, const D: usize>(k0: u64, k1: u64, bytes: &[u8]) -> u64 {
    let mut s = State {
        v0: k0 ^ 0x736f_6d65_7073_6575,
        v1: k1 ^ 0x646f_7261_6e64_6f6d,
        v2: k0 ^ 0x6c79_6765_6e65_7261,
        v3: k1 ^ 0x7465_6462_7974_6573,
    };
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        s.absorb::<C>(u64::from_le_bytes(w));
    }
    let rest = chunks.remainder();
    let mut last = [0u8; 8];
    last[..rest.len()].copy_from_slice(rest);
    // The final word carries the length's low byte in its top byte.
    let m = u64::from_le_bytes(last) | ((bytes.len() as u64 & 0xff) << 56);
    s.absorb::<C>(m);
    s.v2 ^= 0xff;
    for _ in 0..D {
        s.round();
    }
    s.v0 ^ s.v1 ^ s.v2 ^ s.v3
}

#[cfg(test)]
mod tests {
    use super::{sip, sip13};

    #[test]
    fn rounds_match_std_siphash_2_4() {
        // std's (deprecated) SipHasher is SipHash-2-4 over the written bytes: the
        // same state machine with other round counts checks ours.
        #[allow(deprecated)]
        fn std_sip24(k0: u64, k1: u64, bytes: &[u8]) -> u64 {
            use std::hash::Hasher;
            let mut h = std::hash::SipHasher::new_with_keys(k0, k1);
            h.write(bytes);
            h.finish()
        }
        let data: Vec<u8> = (0u8..=64).collect();
        for len in 0..data.len() {
            for (k0, k1) in [(0, 0), (0x0706_0504_0302_0100, 0x0f0e_0d0c_0b0a_0908)] {
                assert_eq!(
                    sip::<2, 4>(k0, k1, &data[..len]),
                    std_sip24(k0, k1, &data[..len])
                );
            }
        }
    }

    #[test]
    fn deterministic_and_key_sensitive() {
        let a = sip13(1, 2, b"count");
        assert_eq!(a, sip13(1, 2, b"count"));
        assert_ne!(a, sip13(1, 3, b"count"));
        assert_ne!(a, sip13(1, 2, b"counu"));
        // Length is part of the hash: trailing zero bytes change it.
        assert_ne!(sip13(0, 0, b"a"), sip13(0, 0, b"a\0"));
        assert_ne!(sip13(0, 0, b""), sip13(0, 0, b"\0"));
    }

    #[test]
    fn spreads_small_integers() {
        // Consecutive integer keys must not land in consecutive buckets.
        let mut buckets = [0u32; 64];
        for i in 0u64..6400 {
            buckets[(sip13(0, 0, &i.to_le_bytes()) & 63) as usize] += 1;
        }
        let (min, max) = (buckets.iter().min(), buckets.iter().max());
        assert!(min >= Some(&50) && max <= Some(&160), "{buckets:?}");
    }
}
