//! The weighted network inferences (`CalcNetworkInferences`): weights from regrets, the
//! combined value with its forecast-implied inferences, and the confidence interval of the
//! weighted distribution.

use std::collections::BTreeMap;

use super::forecast_implied::forecast_implied_full;
use super::{
    CONFIDENCE_PERCENTILES, CombinedInference, Prepared, SynthesisCase, SynthesisInput,
    lookup_sorted,
};
use crate::math::error::MathError;
use crate::math::util::cmp_f64;
use crate::math::weights::{WeightedSum, regret_weights};

/// Weights and value of one weighted network inference.
pub(super) struct Combo {
    /// Raw weights in accumulation order (inferers then forecasters).
    weights: Vec<f64>,
    /// Σ w·v / max(Σ w, ε_safe).
    pub(super) value: f64,
    /// (weight, value) pairs; `None` = no value (skipped).
    pairs: Vec<(f64, Option<f64>)>,
}

/// Weights from `regrets` (aligned with `values`; `None` = no value → skipped in the sum) and
/// the network value Σ w·v / max(Σ w, ε_safe). With all inferers new: plain mean of the first
/// `n_inferers` values.
pub(super) fn weighted_value(
    p: &Prepared<'_, impl Ord>,
    regrets: &[f64],
    values: Vec<Option<f64>>,
    n_inferers: usize,
) -> Result<Combo, MathError> {
    let rw = regret_weights(regrets, &p.rule)?;
    let mut acc = WeightedSum::default();
    if p.all_new {
        for v in values.iter().take(n_inferers).flatten() {
            acc.add(1.0, *v);
        }
    } else {
        for (w, v) in rw.weights.iter().zip(&values) {
            if let Some(v) = v {
                acc.add(*w, *v);
            }
        }
    }
    let value = acc.value_safe(p.params.epsilon_safe_div);
    let pairs = rw.weights.iter().copied().zip(values).collect();
    Ok(Combo {
        weights: rw.weights,
        value,
        pairs,
    })
}

pub(super) fn regrets_for<K: Ord>(
    p: &Prepared<'_, K>,
    inferer_map: Option<&BTreeMap<K, f64>>,
    inferers: &[&K],
    forecaster_map: Option<&BTreeMap<K, f64>>,
    forecasters: &[&K],
) -> Result<Vec<f64>, MathError> {
    let mut r = Vec::with_capacity(inferers.len() + forecasters.len());
    lookup_sorted(inferers, inferer_map, p.initial_regret, &mut r);
    lookup_sorted(forecasters, forecaster_map, p.initial_regret, &mut r);
    if let Some(bad) = r.iter().find(|v| !v.is_finite()) {
        return Err(MathError::NonFinite {
            what: "regret".into(),
            value: *bad,
        });
    }
    Ok(r)
}

/// Values at `percentiles` (in %) of the weighted distribution of `(value, weight)` pairs.
///
/// Definition: pairs with weight ≤ 0 or non-finite are dropped; the rest are sorted by value
/// (ties keep their input order), weights are normalized to sum 1, and pair i sits at the
/// cumulative position `P_i = Σ_{l<i} w_l + w_i/2` (the midpoint of its weight; for equal weights
/// this is the Hazen plotting position (i + ½)/n). The value at percentile q is the linear
/// interpolation of the values between the two positions around q/100, and the first (last) value
/// below the first (above the last) position. No positive weight → empty result.
pub fn weighted_percentiles(pairs: &[(f64, f64)], percentiles: &[f64]) -> Vec<f64> {
    let mut v: Vec<(f64, f64)> = pairs
        .iter()
        .copied()
        .filter(|&(x, w)| x.is_finite() && w.is_finite() && w > 0.0)
        .collect();
    if v.is_empty() {
        return Vec::new();
    }
    v.sort_by(|a, b| cmp_f64(&a.0, &b.0));
    let total = v.iter().fold(0.0, |a, &(_, w)| a + w);
    let mut pos = Vec::with_capacity(v.len());
    let mut cum = 0.0;
    for &(_, w) in &v {
        let wn = w / total;
        pos.push(cum + wn / 2.0);
        cum += wn;
    }
    percentiles
        .iter()
        .map(|&q| {
            let x = q / 100.0;
            if x <= pos[0] {
                return v[0].0;
            }
            let last = v.len() - 1;
            if x >= pos[last] {
                return v[last].0;
            }
            // first i with pos[i + 1] > x
            let i = pos.partition_point(|&pp| pp <= x) - 1;
            let (p0, p1) = (pos[i], pos[i + 1]);
            let t = (x - p0) / (p1 - p0);
            v[i].0 + t * (v[i + 1].0 - v[i].0)
        })
        .collect()
}

pub(super) fn ci_or_constant(pairs: &[(f64, f64)], fallback: f64) -> Vec<f64> {
    let ci = weighted_percentiles(pairs, &CONFIDENCE_PERCENTILES);
    if ci.is_empty() {
        vec![fallback; CONFIDENCE_PERCENTILES.len()]
    } else {
        ci
    }
}

pub(super) struct CombinedParts {
    pub(super) case: SynthesisCase,
    pub(super) combined: f64,
    /// forecast-implied values per retained forecaster index (all Some after filtering)
    pub(super) fi: Vec<Option<f64>>,
    /// indices (into p.forecasters) of forecasters with a forecast-implied value
    pub(super) kept: Vec<usize>,
    pub(super) inferer_weights: Vec<f64>,
    pub(super) forecaster_weights: Vec<f64>,
    pub(super) ci_pairs: Vec<(f64, f64)>,
}

pub(super) fn combined_parts<K: Ord>(
    p: &Prepared<'_, K>,
    input: &SynthesisInput<K>,
    fast: bool,
) -> Result<CombinedParts, MathError> {
    let fi_all: Vec<Option<f64>> = (0..p.forecasters.len())
        .map(|fk| forecast_implied_full(p, fk, fast))
        .collect();
    let kept: Vec<usize> = (0..fi_all.len())
        .filter(|&fk| fi_all[fk].is_some())
        .collect();
    let fk_keys: Vec<&K> = kept.iter().map(|&fk| p.forecasters[fk]).collect();
    let fi: Vec<Option<f64>> = kept.iter().map(|&fk| fi_all[fk]).collect();
    let regrets = regrets_for(
        p,
        Some(&input.regrets.inferer),
        &p.inferers,
        Some(&input.regrets.forecaster),
        &fk_keys,
    )?;
    let mut values: Vec<Option<f64>> = p.values.iter().map(|&v| Some(v)).collect();
    values.extend(fi.iter().copied());
    let ni = p.inferers.len();
    let combo = weighted_value(p, &regrets, values, ni)?;
    let ci_pairs: Vec<(f64, f64)> = if p.all_new {
        p.values.iter().map(|&v| (v, 1.0)).collect()
    } else {
        combo
            .pairs
            .iter()
            .filter_map(|&(w, v)| v.map(|v| (v, w)))
            .collect()
    };
    Ok(CombinedParts {
        case: SynthesisCase::Weighted {
            all_inferers_new: p.all_new,
        },
        combined: combo.value,
        fi,
        kept,
        inferer_weights: combo.weights[..ni].to_vec(),
        forecaster_weights: combo.weights[ni..].to_vec(),
        ci_pairs,
    })
}

/// The fast-path result of the weighted case: the combined value, the forecast-implied
/// inferences and the raw weights, by key.
pub(super) fn combined_inference<K: Ord + Clone>(
    p: &Prepared<'_, K>,
    c: &CombinedParts,
) -> CombinedInference<K> {
    CombinedInference {
        case: c.case,
        combined_value: c.combined,
        forecaster_values: c
            .kept
            .iter()
            .zip(&c.fi)
            .filter_map(|(&fk, v)| v.map(|v| (p.forecasters[fk].clone(), v)))
            .collect(),
        inferer_weights: p
            .inferers
            .iter()
            .map(|k| (*k).clone())
            .zip(c.inferer_weights.iter().copied())
            .collect(),
        forecaster_weights: c
            .kept
            .iter()
            .map(|&fk| p.forecasters[fk].clone())
            .zip(c.forecaster_weights.iter().copied())
            .collect(),
    }
}

/// The naive network inference I⁻_i: inferers only, weighted by the naive regrets.
pub(super) fn naive_value<K: Ord>(
    p: &Prepared<'_, K>,
    input: &SynthesisInput<K>,
) -> Result<f64, MathError> {
    let regrets = regrets_for(p, Some(&input.regrets.naive), &p.inferers, None, &[])?;
    let values: Vec<Option<f64>> = p.values.iter().map(|&v| Some(v)).collect();
    Ok(weighted_value(p, &regrets, values, p.inferers.len())?.value)
}
