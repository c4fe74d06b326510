//! Regret-informed weights (spec §1.3, allora-chain `inference_synthesis/weight.go`), in the
//! two mechanism versions ([`MechanismVersion`]):
//!
//! * `allora-v0.6`: S = σ(R) + ε over the regrets being weighted; w = φ′_p of the capped,
//!   anchored normalized regret ([`WeightFunction`]).
//! * `allora-mad`: S = |1.4826 · MAD(R)| + ε ([`mad_regret_scale`]), computed once per epoch over
//!   the network regrets and shared by every weighting of the epoch; w = φ′(r̂)/φ′(r̂_max) =
//!   [`exp1_div_exp1`]`(−p(r̂_max − c), −p(r̂ − c))` ([`logistic_ratio_weight`]).

use super::error::MathError;
use super::mechanism::{MAD_TO_STD_DEV, MechanismVersion};
use super::outliers::median_absolute_deviation;
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

/// `Exp1DivExp1(a, b) = (eᵃ + 1)/(eᵇ + 1)` (allora-chain `math.Exp1DivExp1`), evaluated in the
/// branch that cannot overflow: a positive exponent is factored out (`eᵃ(e⁻ᵃ + 1)`), so only
/// the ratio itself can be out of range. NaN in, NaN out.
pub fn exp1_div_exp1(a: f64, b: f64) -> f64 {
    match (a > 0.0, b > 0.0) {
        (false, false) => (exp(a) + 1.0) / (exp(b) + 1.0),
        (true, false) => exp(a) * (exp(-a) + 1.0) / (exp(b) + 1.0),
        (false, true) => exp(-b) * (exp(a) + 1.0) / (exp(-b) + 1.0),
        (true, true) => exp(a - b) * (exp(-a) + 1.0) / (exp(-b) + 1.0),
    }
}

/// The `allora-mad` weight of normalized regret `r` when the best is `r_max`:
/// φ′_{p,c}(r)/φ′_{p,c}(r_max) = `exp1_div_exp1(−p(r_max − c), −p(r − c))`. The best worker
/// gets exactly 1, every other a weight in (0, 1]; there is no cap, anchor or cut.
#[inline]
pub fn logistic_ratio_weight(r: f64, r_max: f64, p: f64, c: f64) -> f64 {
    exp1_div_exp1(-p * (r_max - c), -p * (r - c))
}

/// `CalcRegretScalePlusEpsilon`: |1.4826 · MAD(R)| + ε, where MAD is the median of |R − median R|
/// (even counts: mean of the middle two). More than half the regrets equal gives MAD = 0 and
/// S = ε; no regrets gives ε.
pub fn mad_regret_scale(regrets: &[f64], epsilon: f64) -> f64 {
    let mad = median_absolute_deviation(regrets).map_or(0.0, |(_, mad)| mad);
    (MAD_TO_STD_DEV * mad).abs() + epsilon
}

/// How regrets become weights: the mechanism version and the topic's p, c and ε.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WeightRule {
    /// Which weight function and scale.
    pub version: MechanismVersion,
    /// p (topic `PNorm`).
    pub p: f64,
    /// c (`CNorm`).
    pub c: f64,
    /// ε (topic `Epsilon`).
    pub epsilon: f64,
    /// `allora-mad` only: the epoch's network regret scale S (ε included) that every weighting
    /// uses; 0 computes S from the regrets being weighted. Ignored by `allora-v0.6`.
    pub network_scale: f64,
}

impl WeightRule {
    /// The `allora-v0.6` rule.
    pub fn v06(p: f64, c: f64, epsilon: f64) -> Self {
        WeightRule {
            version: MechanismVersion::AlloraV06,
            p,
            c,
            epsilon,
            network_scale: 0.0,
        }
    }

    /// The divisor S of `regrets`.
    pub fn scale(&self, regrets: &[f64]) -> f64 {
        match self.version {
            MechanismVersion::AlloraV06 => std_dev(regrets).abs() + self.epsilon,
            MechanismVersion::AlloraMad if self.network_scale > 0.0 => self.network_scale,
            MechanismVersion::AlloraMad => mad_regret_scale(regrets, self.epsilon),
        }
    }
}

/// Result of [`regret_weights`].
#[derive(Debug, Clone, PartialEq)]
pub struct RegretWeights {
    /// S: the regrets' divisor (σ + ε, or the MAD scale with ε).
    pub scale: f64,
    /// R̂_l = R_l / S, in input order.
    pub normalized: Vec<f64>,
    /// max R̂ (uncapped).
    pub max_normalized: f64,
    /// w_l, in input order.
    pub weights: Vec<f64>,
}

/// `calcWeightsGivenWorkers`: the scale, normalized regrets, their max and the weights of a
/// regret list (inferers first, then forecasters, each in key order — the order only matters
/// for the last bit of σ).
///
/// Errors: empty list ([`MathError::Empty`]).
pub fn regret_weights(regrets: &[f64], rule: &WeightRule) -> Result<RegretWeights, MathError> {
    if regrets.is_empty() {
        return Err(MathError::Empty("no regrets to calculate weights"));
    }
    let scale = rule.scale(regrets);
    let normalized: Vec<f64> = regrets.iter().map(|r| r / scale).collect();
    let mut max_normalized = normalized[0];
    for &r in &normalized[1..] {
        if r > max_normalized {
            max_normalized = r;
        }
    }
    let weights = match rule.version {
        MechanismVersion::AlloraV06 => {
            let f = WeightFunction::new(rule.p, rule.c);
            normalized
                .iter()
                .map(|&r| f.weight(r, max_normalized))
                .collect()
        }
        MechanismVersion::AlloraMad => normalized
            .iter()
            .map(|&r| logistic_ratio_weight(r, max_normalized, rule.p, rule.c))
            .collect(),
    };
    Ok(RegretWeights {
        scale,
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
        for version in MechanismVersion::ALL {
            let rule = WeightRule {
                version,
                ..WeightRule::v06(3.0, 0.75, 0.01)
            };
            assert!(regret_weights(&[], &rule).is_err());
            let w = regret_weights(&[1.0], &rule).unwrap();
            assert_eq!(w.scale, 0.01);
            assert_eq!(w.normalized, vec![100.0]);
        }
    }
}
