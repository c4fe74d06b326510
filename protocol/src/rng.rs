//! The project's one seeded generator (SplitMix64) and its helpers.
//!
//! Deterministic and not cryptographic: the same seed gives the same sequence on every
//! machine. Used wherever a choice must be reproducible from an input — the replica's choice of
//! anti-entropy peers and windows (seeded by the node at start, by the simulator from its
//! seed), the simulator's network, the testbeds' fault schedules, the built-in models' noise.
//! Pure code never reads ambient randomness: a seed is always an argument.
//!
//! SplitMix64 (Steele, Lea, Flood 2014) passes BigCrush with one `u64` of state, and its
//! mixing function gives random access ([`normal_at`]: the noise of index `t` is a pure
//! function of `(seed, t)`).

/// The SplitMix64 increment (the golden ratio in 64 bits).
const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

/// One SplitMix64 step applied to `x` (a good 64-bit mixing function).
pub fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(GOLDEN);
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
    box_muller(unit_open(a), unit_open(b))
}

fn box_muller(u1: f64, u2: f64) -> f64 {
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// A sequential SplitMix64 generator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator whose state starts at `seed`.
    pub fn new(seed: u64) -> Self {
        SplitMix64 { state: seed }
    }

    /// A generator whose state starts at `seed` mixed with the increment (so that small
    /// seeds such as 0, 1, 2 do not start from small states).
    pub fn seeded(seed: u64) -> Self {
        SplitMix64::new(seed ^ GOLDEN)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GOLDEN);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `lo..=hi` (`lo` if the range is empty).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        lo + self.next_u64() % (hi - lo + 1)
    }

    /// Uniform in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && self.unit() < p
    }

    /// True with probability `per_mille / 1000`.
    pub fn chance_per_mille(&mut self, per_mille: u32) -> bool {
        self.next_u64() % 1000 < u64::from(per_mille)
    }

    /// `n` random bytes.
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(n + 8);
        while out.len() < n {
            out.extend_from_slice(&self.next_u64().to_le_bytes());
        }
        out.truncate(n);
        out
    }

    /// The next standard normal deviate (Box–Muller, one of the pair).
    pub fn next_normal(&mut self) -> f64 {
        let u1 = unit_open(self.next_u64());
        let u2 = unit_open(self.next_u64());
        box_muller(u1, u2)
    }

    /// `items` in a random order (Fisher–Yates).
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            items.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sequence_is_splitmix64() {
        // Reference values of SplitMix64 from state 0 (Vigna's splitmix64.c).
        let mut r = SplitMix64::new(0);
        assert_eq!(r.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(r.next_u64(), 0x6E78_9E6A_A1B9_65F4);
        assert_eq!(splitmix64(0), 0xE220_A839_7B1D_CDAF);
        let mut s = SplitMix64::seeded(5);
        let mut t = SplitMix64::new(5 ^ GOLDEN);
        assert_eq!(s.next_u64(), t.next_u64());
    }

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
    fn helpers_stay_in_range() {
        let mut r = SplitMix64::seeded(1);
        for _ in 0..1_000 {
            assert!((3..=9).contains(&r.range(3, 9)));
            assert!(r.below(4) < 4);
            assert!((0.0..1.0).contains(&r.unit()));
        }
        assert_eq!(r.range(5, 5), 5);
        assert_eq!(r.below(0), 0);
        assert!(!r.chance(0.0));
        assert_eq!(r.bytes(13).len(), 13);
        let mut v: Vec<u32> = (0..50).collect();
        r.shuffle(&mut v);
        let mut sorted = v.clone();
        sorted.sort();
        assert_eq!(sorted, (0..50).collect::<Vec<_>>());
        assert_ne!(v, sorted);
    }
}
