//! SplitMix64: the one small deterministic generator of the crate (synthetic weights, the
//! duplicate finder's hyperplanes, random test inputs). The same numbers on every target and
//! in `scripts/make_fixtures.py`, without a dependency.

const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

/// The output for one state: SplitMix64's finaliser.
#[inline]
fn finish(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The `i`-th output (from 0) of the stream seeded by `seed`, without stepping through the
/// ones before it: `SplitMix64(seed)`'s `i + 1`-th `next_u64`.
#[inline]
pub fn at(seed: u64, i: u64) -> u64 {
    finish(seed.wrapping_add((i + 1).wrapping_mul(GOLDEN)))
}

/// From the top 24 bits of `z`: a value in [-1, 1).
#[inline]
pub fn signed_unit(z: u64) -> f32 {
    (z >> 40) as f32 * (1.0 / 16_777_216.0) * 2.0 - 1.0
}

/// A SplitMix64 stream; the field is its state (the seed to start with).
#[derive(Debug, Clone)]
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(GOLDEN);
        finish(self.0)
    }

    /// Uniform in [-1, 1).
    pub fn signed(&mut self) -> f32 {
        signed_unit(self.next_u64())
    }

    /// Uniform in (0, 1], 53 bits.
    pub fn unit(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 1.0) / (1u64 << 53) as f64
    }

    /// Standard normal (Box–Muller).
    pub fn gaussian(&mut self) -> f64 {
        let (u, v) = (self.unit(), self.unit());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }

    /// In `lo..=hi`.
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next_u64() % (hi - lo + 1) as u64) as usize
    }

    /// `len` values uniform in [-scale, scale).
    pub fn vec(&mut self, len: usize, scale: f32) -> Vec<f32> {
        (0..len).map(|_| self.signed() * scale).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_is_the_stream_without_stepping() {
        let mut s = SplitMix64(42);
        for i in 0..100 {
            assert_eq!(s.next_u64(), at(42, i));
        }
    }

    #[test]
    fn known_first_outputs() {
        // SplitMix64's published first output for seed 0.
        assert_eq!(SplitMix64(0).next_u64(), 0xE220_A839_7B1D_CDAF);
        let v = SplitMix64(1).vec(1000, 1.0);
        assert!(v.iter().all(|x| (-1.0..1.0).contains(x)));
    }
}
