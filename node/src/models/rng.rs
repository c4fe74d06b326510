//! Deterministic pseudo-randomness (splitmix64) for the noisy model and the synthetic truth.
//!
//! Not cryptographic. Chosen because it is tiny, has no dependencies, and gives random access:
//! the noise of epoch `t` is a pure function of `(seed, t)`, so predictions never depend on how
//! often a model was asked.

/// One splitmix64 step applied to `x` (a good 64-bit mixing function).
pub fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Maps 64 random bits to a uniform number in the open interval (0, 1).
pub fn unit_open(bits: u64) -> f64 {
    ((bits >> 11) as f64 + 0.5) * (1.0 / (1u64 << 53) as f64)
}

/// A standard normal deviate that is a pure function of `(seed, index)` (Box–Muller).
pub fn normal_at(seed: u64, index: u64) -> f64 {
    let a = splitmix64(seed ^ splitmix64(index.wrapping_add(0xA076_1D64_78BD_642F)));
    let b = splitmix64(a ^ 0xE703_7ED1_A0B4_28DB);
    let u1 = unit_open(a);
    let u2 = unit_open(b);
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// A sequential splitmix64 generator.
#[derive(Debug, Clone)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// The next standard normal deviate (Box–Muller, one of the pair).
    pub fn next_normal(&mut self) -> f64 {
        let u1 = unit_open(self.next_u64());
        let u2 = unit_open(self.next_u64());
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_at_is_deterministic_and_roughly_standard() {
        let n = 20_000u64;
        let xs: Vec<f64> = (0..n).map(|i| normal_at(7, i)).collect();
        assert_eq!(xs[123], normal_at(7, 123));
        assert_ne!(normal_at(7, 1), normal_at(8, 1));
        let mean = xs.iter().sum::<f64>() / n as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
        assert!(mean.abs() < 0.03, "mean {mean}");
        assert!((var - 1.0).abs() < 0.05, "var {var}");
        assert!(xs.iter().all(|x| x.is_finite()));
    }

    #[test]
    fn sequential_generator_is_deterministic() {
        let mut a = SplitMix64::new(1);
        let mut b = SplitMix64::new(1);
        for _ in 0..100 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
        let z: Vec<f64> = (0..1000).map(|_| a.next_normal()).collect();
        assert!(z.iter().all(|x| x.is_finite()));
    }
}
