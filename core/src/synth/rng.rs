//! SplitMix64: a tiny, fast, seedable generator. Output depends only on the seed, on every
//! target, so a chain generated on a microcontroller, in a browser and on a server is the same.

use alloc::vec::Vec;

/// A SplitMix64 stream.
#[derive(Clone, Debug)]
pub(crate) struct Rng(u64);

impl Rng {
    /// A stream derived from `seed` and a `stream` label, so independent streams drawn from one
    /// seed do not overlap in any useful way.
    pub(crate) fn new(seed: u64, stream: u64) -> Self {
        let mut r = Rng(seed ^ stream.wrapping_mul(0xd1b5_4a32_d192_ed03));
        // Mix once so nearby seeds start far apart.
        r.next_u64();
        r
    }

    /// The next 64 random bits.
    #[inline]
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix(self.0)
    }

    /// A value in `0..n` (`0` when `n == 0`). Multiply-shift: a bias below 2^-32 for the
    /// ranges used here, which no test can observe.
    #[inline]
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// True with probability `per_mille / 1000`.
    #[inline]
    pub(crate) fn per_mille(&mut self, per_mille: u32) -> bool {
        self.below(1000) < u64::from(per_mille)
    }

    /// Appends `n` random bytes.
    pub(crate) fn fill(&mut self, out: &mut Vec<u8>, n: usize) {
        let mut left = n;
        while left >= 8 {
            out.extend_from_slice(&self.next_u64().to_le_bytes());
            left -= 8;
        }
        if left > 0 {
            out.extend_from_slice(&self.next_u64().to_le_bytes()[..left]);
        }
    }
}

/// The SplitMix64 finaliser: a bijection of `u64` with good avalanche. Also used to derive
/// stable per-actor bytes (addresses) without drawing from a stream.
#[inline]
pub(crate) fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream() {
        let mut a = Rng::new(7, 1);
        let mut b = Rng::new(7, 1);
        for _ in 0..100 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
    }

    #[test]
    fn streams_and_seeds_differ() {
        let a: Vec<u64> = (0..4).scan(Rng::new(7, 1), |r, _| Some(r.next_u64())).collect();
        let b: Vec<u64> = (0..4).scan(Rng::new(7, 2), |r, _| Some(r.next_u64())).collect();
        let c: Vec<u64> = (0..4).scan(Rng::new(8, 1), |r, _| Some(r.next_u64())).collect();
        assert_ne!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn below_stays_in_range_and_covers_it() {
        let mut r = Rng::new(3, 0);
        let mut seen = [false; 7];
        for _ in 0..1000 {
            let v = r.below(7);
            assert!(v < 7);
            seen[v as usize] = true;
        }
        assert!(seen.iter().all(|s| *s));
        assert_eq!(r.below(0), 0);
    }

    #[test]
    fn per_mille_rate_is_close() {
        let mut r = Rng::new(5, 0);
        let hits = (0..100_000).filter(|_| r.per_mille(250)).count();
        assert!((23_000..27_000).contains(&hits), "{hits}");
        assert!(!(0..1000).any(|_| r.per_mille(0)));
    }

    #[test]
    fn fill_appends_exactly() {
        let mut r = Rng::new(1, 0);
        let mut out = alloc::vec![9u8];
        r.fill(&mut out, 13);
        assert_eq!(out.len(), 14);
        assert_eq!(out[0], 9);
    }
}
