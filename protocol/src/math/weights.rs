//! Regret-informed weights (spec §1.3, allora-chain `inference_synthesis/weight.go`).

use super::error::MathError;
use super::util::{exp, std_dev};

/// The v0.6 weight function `CalcWeightFromNormalizedRegret` with its thresholds precomputed.
///
/// ```text
/// if r > c + 6.75/p:       r = c + 6.75/p                      (cap)
/// if r_max < c − 8.25/p:   r = r − r_max + (c − 8.25/p)        (anchor; r_max is the UNcapped max)
/// if r < c − 17.25/p:      w = 0                               (zero-cut, after the anchor)
/// else                     w = φ′_p(r) = p / (exp(p·(c − r)) + 1)
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WeightFunction {
    /// p (topic `PNorm`).
    pub p: f64,
    /// c (module `CNorm`).
    pub c: f64,
    /// c + 6.75/p.
    pub cap: f64,
    /// c − 8.25/p.
    pub anchor: f64,
    /// c − 17.25/p.
    pub cut: f64,
}

impl WeightFunction {
    /// Precomputes the thresholds for `p`, `c`.
    pub fn new(p: f64, c: f64) -> Self {
        WeightFunction {
            p,
            c,
            cap: c + 6.75 / p,
            anchor: c - 8.25 / p,
            cut: c - 17.25 / p,
        }
    }

    /// Applies cap, anchor and zero-cut to a normalized regret; `None` means weight 0.
    #[inline]
    pub fn adjusted(&self, r: f64, r_max: f64) -> Option<f64> {
        let mut r = r;
        if r > self.cap {
            r = self.cap;
        }
        if r_max < self.anchor {
            r = r - r_max + self.anchor;
        }
        if r < self.cut { None } else { Some(r) }
    }

    /// The weight of normalized regret `r` given the maximum normalized regret `r_max`.
    #[inline]
    pub fn weight(&self, r: f64, r_max: f64) -> f64 {
        match self.adjusted(r, r_max) {
            None => 0.0,
            Some(r) => self.p / (exp(self.p * (self.c - r)) + 1.0),
        }
    }
}

/// `CalcWeightFromNormalizedRegret(r, r_max, p, c)`; see [`WeightFunction`].
pub fn weight_from_normalized_regret(r: f64, r_max: f64, p: f64, c: f64) -> f64 {
    WeightFunction::new(p, c).weight(r, r_max)
}

/// Result of [`regret_weights`].
#[derive(Debug, Clone, PartialEq)]
pub struct RegretWeights {
    /// σ = |sample std of the regrets| (0 for one regret).
    pub sigma: f64,
    /// R̂_l = R_l / (σ + ε), in input order.
    pub normalized: Vec<f64>,
    /// max R̂ (uncapped).
    pub max_normalized: f64,
    /// w_l, in input order.
    pub weights: Vec<f64>,
}

/// `calcWeightsGivenWorkers`: σ, normalized regrets, their max and the weights of a regret list
/// (inferers first, then forecasters, each in key order — the order only matters for the last bit
/// of σ).
///
/// Errors: empty list ([`MathError::Empty`]).
pub fn regret_weights(
    regrets: &[f64],
    p: f64,
    c: f64,
    epsilon: f64,
) -> Result<RegretWeights, MathError> {
    if regrets.is_empty() {
        return Err(MathError::Empty("no regrets to calculate weights"));
    }
    let sigma = std_dev(regrets).abs();
    let s = sigma + epsilon;
    let normalized: Vec<f64> = regrets.iter().map(|r| r / s).collect();
    let mut max_normalized = normalized[0];
    for &r in &normalized[1..] {
        if r > max_normalized {
            max_normalized = r;
        }
    }
    let f = WeightFunction::new(p, c);
    let weights = normalized
        .iter()
        .map(|&r| f.weight(r, max_normalized))
        .collect();
    Ok(RegretWeights {
        sigma,
        normalized,
        max_normalized,
        weights,
    })
}

/// Running Σ w·v and Σ w of `calcWeightedInference` / `accumulateWeights` (skips w == 0 and NaN).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct WeightedSum {
    /// Σ w·v.
    pub numerator: f64,
    /// Σ w.
    pub denominator: f64,
}

impl WeightedSum {
    /// Adds `w·v` unless `w` is 0 or NaN.
    #[inline]
    pub fn add(&mut self, w: f64, v: f64) {
        if w == 0.0 || w.is_nan() {
            return;
        }
        self.numerator += w * v;
        self.denominator += w;
    }

    /// Σ w·v / max(Σ w, ε_safe) (network inferences).
    #[inline]
    pub fn value_safe(&self, epsilon_safe_div: f64) -> f64 {
        let d = if self.denominator < epsilon_safe_div {
            epsilon_safe_div
        } else {
            self.denominator
        };
        self.numerator / d
    }

    /// Σ w·v / Σ w, `None` if Σ w == 0 (forecast-implied inferences, no ε_safe).
    #[inline]
    pub fn value_strict(&self) -> Option<f64> {
        if self.denominator == 0.0 {
            None
        } else {
            Some(self.numerator / self.denominator)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_p3() {
        let f = WeightFunction::new(3.0, 0.75);
        assert_eq!(f.cap, 3.0);
        assert_eq!(f.anchor, -2.0);
        assert_eq!(f.cut, -5.0);
        // cap
        assert_eq!(f.weight(10.0, 10.0), f.weight(3.0, 10.0));
        // anchor: max -> -2
        assert_eq!(f.weight(-3.0, -3.0), f.weight(-2.0, -2.0));
        // cut after anchor
        assert_eq!(f.weight(-7.01, -2.0), 0.0);
        assert_eq!(f.weight(-10.0, -6.0), f.weight(-6.0, -2.0));
        assert_eq!(f.weight(-6.0, -2.0), 0.0);
    }

    #[test]
    fn empty_is_error() {
        assert!(regret_weights(&[], 3.0, 0.75, 0.01).is_err());
        let w = regret_weights(&[1.0], 3.0, 0.75, 0.01).unwrap();
        assert_eq!(w.sigma, 0.0);
        assert_eq!(w.normalized, vec![100.0]);
    }
}
