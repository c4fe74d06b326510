//! Forecast-implied inferences I_ik (`CalcForecastImpliedInferences`): the straightforward
//! definition, the exact kernel shared by every one-out recomputation of a forecast (one-out σ
//! and maximum from shared statistics), and the throughput kernel of forecasts larger than
//! [`EXACT_SIGMA_MAX_ELEMENTS`] elements.

use std::collections::BTreeMap;

use super::{Prepared, SynthesisInput, SynthesisParams, prepare, validate};
use crate::math::error::MathError;
use crate::math::regrets::NetworkRegrets;
use crate::math::util::{exp, exp_approx_unchecked, median};
use crate::math::weights::{WeightFunction, WeightedSum, regret_weights};

/// Forecast-implied inference of one forecaster with inferer `withheld` (an index into the
/// inferers) removed from the weight computation — the straightforward definition
/// (`CalcForecastImpliedInferences` with `Inferers = remaining`).
pub(super) fn forecast_implied_reference(
    p: &Prepared<'_, impl Ord>,
    fk: usize,
    withheld: Option<usize>,
) -> Option<f64> {
    let e = &p.elems[fk];
    if e.is_empty() {
        return None;
    }
    if p.all_new {
        // the withheld inferer stays in the median (full InfererToInference map)
        let vals: Vec<f64> = e.iter().map(|&(j, _)| p.values[j]).collect();
        return Some(median(&vals));
    }
    if e.len() == 1 {
        // weight 1, even if it is the withheld inferer
        let mut acc = WeightedSum::default();
        acc.add(1.0, p.values[e[0].0]);
        return acc.value_strict();
    }
    let kept: Vec<(usize, f64)> = e
        .iter()
        .copied()
        .filter(|&(j, _)| Some(j) != withheld)
        .collect();
    let regrets: Vec<f64> = kept.iter().map(|&(_, r)| r).collect();
    let rw = regret_weights(&regrets, &p.rule).ok()?;
    let mut acc = WeightedSum::default();
    for (i, &(j, _)) in kept.iter().enumerate() {
        acc.add(rw.weights[i], p.values[j]);
    }
    acc.value_strict()
}

/// Forecast-implied inference of one forecaster over all its elements; forecasts with more than
/// [`EXACT_SIGMA_MAX_ELEMENTS`] elements use the large-forecast kernel ([`accumulate_large`]).
pub(super) fn forecast_implied_full(
    p: &Prepared<'_, impl Ord>,
    fk: usize,
    fast: bool,
) -> Option<f64> {
    let e = &p.elems[fk];
    if !fast || !p.v06_kernels() || p.all_new || e.len() <= EXACT_SIGMA_MAX_ELEMENTS {
        return forecast_implied_reference(p, fk, None);
    }
    let rs: Vec<f64> = e.iter().map(|&(_, r)| r).collect();
    let vs: Vec<f64> = e.iter().map(|&(j, _)| p.values[j]).collect();
    let s = crate::math::util::std_dev(&rs).abs() + p.params.epsilon;
    let mut max = rs[0];
    for &r in &rs[1..] {
        if r > max {
            max = r;
        }
    }
    let mut acc = WeightedSum::default();
    accumulate_large(&rs, &vs, s, max / s, &p.wf, &mut acc);
    acc.value_strict()
}

/// Per-forecaster statistics shared by all one-out recomputations.
struct OneOutStats {
    n: usize,
    mean: f64,
    m2: f64,
    max1_idx: usize,
    max1: f64,
    max2: f64,
}

fn one_out_stats(rs: &[f64]) -> OneOutStats {
    let n = rs.len();
    let mean = rs.iter().fold(0.0, |a, &r| a + r) / n as f64;
    let m2 = rs.iter().fold(0.0, |a, &r| {
        let d = r - mean;
        a + d * d
    });
    let mut max1_idx = 0;
    let mut max1 = rs[0];
    for (i, &r) in rs.iter().enumerate().skip(1) {
        if r > max1 {
            max1 = r;
            max1_idx = i;
        }
    }
    let mut max2 = f64::NEG_INFINITY;
    for (i, &r) in rs.iter().enumerate() {
        if i != max1_idx && r > max2 {
            max2 = r;
        }
    }
    OneOutStats {
        n,
        mean,
        m2,
        max1_idx,
        max1,
        max2,
    }
}

/// Forecasts with at most this many elements get the exact two-pass σ for every withheld
/// inferer (bit-identical to the straightforward computation; Allora caps forecasts at
/// `MaxElementsPerForecast` = 12 elements). Larger ones use the one-out update of the running
/// statistics.
pub const EXACT_SIGMA_MAX_ELEMENTS: usize = 64;

/// σ of `rs` without element `q` (sample std). Up to [`EXACT_SIGMA_MAX_ELEMENTS`] elements, or when
/// the one-out subtraction would cancel (the removed element carries more than half of the sum of
/// squared deviations): the direct two-pass sum, bit-identical to [`crate::math::util::std_dev`] of the
/// remaining elements. Otherwise from the shared mean and sum of squared deviations:
/// `M2' = M2 − (r_q − mean)²·n/(n−1)`, `σ' = sqrt(M2'/(n−2))`.
fn one_out_sigma(rs: &[f64], st: &OneOutStats, q: usize) -> f64 {
    let n1 = st.n - 1;
    if n1 <= 1 {
        return 0.0;
    }
    if st.n > EXACT_SIGMA_MAX_ELEMENTS {
        let d = rs[q] - st.mean;
        let m2p = st.m2 - d * d * (st.n as f64 / n1 as f64);
        if m2p >= 0.5 * st.m2 {
            return (m2p / (n1 - 1) as f64).sqrt().abs();
        }
    }
    // direct two-pass over the remaining elements
    let mut s = 0.0;
    for (i, &r) in rs.iter().enumerate() {
        if i != q {
            s += r;
        }
    }
    let m = s / n1 as f64;
    let mut ss = 0.0;
    for (i, &r) in rs.iter().enumerate() {
        if i != q {
            let d = r - m;
            ss += d * d;
        }
    }
    (ss / (n1 - 1) as f64).sqrt().abs()
}

/// Σ w·v over `rs[i]`, `vs[i]` with w = φ′(adjusted(r/s)) (the loop of [`WeightFunction::weight`]
/// with the anchor branch hoisted; same operations).
#[inline]
fn accumulate_fast(
    rs: &[f64],
    vs: &[f64],
    s: f64,
    r_max: f64,
    wf: &WeightFunction,
    acc: &mut WeightedSum,
) {
    let (p, c) = (wf.p, wf.c);
    if r_max < wf.anchor {
        for (&r, &v) in rs.iter().zip(vs) {
            let mut r = r / s;
            if r > wf.cap {
                r = wf.cap;
            }
            r = r - r_max + wf.anchor;
            if r >= wf.cut {
                let w = p / (exp(p * (c - r)) + 1.0);
                acc.add(w, v);
            }
        }
    } else {
        for (&r, &v) in rs.iter().zip(vs) {
            let mut r = r / s;
            if r > wf.cap {
                r = wf.cap;
            }
            if r >= wf.cut {
                let w = p / (exp(p * (c - r)) + 1.0);
                acc.add(w, v);
            }
        }
    }
}

/// The large-forecast variant of [`accumulate_fast`] (more than [`EXACT_SIGMA_MAX_ELEMENTS`]
/// elements): `r = R·(1/s)` instead of `R/s`, [`crate::math::util::exp_approx_unchecked`] instead of
/// the exact exp, one division per four weights (`p/(u₁u₂u₃u₄)` times partial products) and
/// pairwise block sums. Each weight differs from the exact one by a few ulp; the
/// forecast-implied value by ~1e-16 relative. Every weight reaching the sum is in (0, p] (finite
/// exponent), so the zero/NaN skip of [`WeightedSum::add`] is replaced by an exact 0 mask.
#[inline]
fn accumulate_large(
    rs: &[f64],
    vs: &[f64],
    s: f64,
    r_max: f64,
    wf: &WeightFunction,
    acc: &mut WeightedSum,
) {
    let inv_s = 1.0 / s;
    let (p, c) = (wf.p, wf.c);
    let (mut num, mut den) = (acc.numerator, acc.denominator);
    let anchored = r_max < wf.anchor;
    // u = 1 + e^{p(c − r)}; elements below the cut are masked to weight 0 (their exponent is
    // clamped to 40 so that products of four u stay finite: valid exponents are ≤ p(c − cut))
    let u_of = |r: f64| -> (f64, bool) {
        let mut r = r * inv_s;
        if r > wf.cap {
            r = wf.cap;
        }
        if anchored {
            r = r - r_max + wf.anchor;
        }
        let mut x = p * (c - r);
        if x > 40.0 {
            x = 40.0;
        }
        (exp_approx_unchecked(x) + 1.0, r >= wf.cut)
    };
    // blocks of four: one division for four weights (Montgomery's batch inversion) and one
    // addition per block to the running sums
    let mut rc = rs.chunks_exact(4);
    let mut vc = vs.chunks_exact(4);
    for (r4, v4) in (&mut rc).zip(&mut vc) {
        let (u1, k1) = u_of(r4[0]);
        let (u2, k2) = u_of(r4[1]);
        let (u3, k3) = u_of(r4[2]);
        let (u4, k4) = u_of(r4[3]);
        let a12 = u1 * u2;
        let a123 = a12 * u3;
        let inv = p / (a123 * u4); // p / (u1 u2 u3 u4)
        let w4 = inv * a123;
        let inv4 = inv * u4; // p / (u1 u2 u3)
        let w3 = inv4 * a12;
        let inv3 = inv4 * u3; // p / (u1 u2)
        let w2 = inv3 * u1;
        let w1 = inv3 * u2;
        let w1 = if k1 { w1 } else { 0.0 };
        let w2 = if k2 { w2 } else { 0.0 };
        let w3 = if k3 { w3 } else { 0.0 };
        let w4 = if k4 { w4 } else { 0.0 };
        num += (w1 * v4[0] + w2 * v4[1]) + (w3 * v4[2] + w4 * v4[3]);
        den += (w1 + w2) + (w3 + w4);
    }
    for (&r, &v) in rc.remainder().iter().zip(vc.remainder()) {
        let (u, keep) = u_of(r);
        let w = if keep { p / u } else { 0.0 };
        num += w * v;
        den += w;
    }
    acc.numerator = num;
    acc.denominator = den;
}

/// Calls `put(j′, value)` with the forecast-implied inference of forecaster `fk` without inferer
/// j′, for every j′ in the forecast whose value changes (all-new medians and single-element
/// forecasts do not change).
pub(super) fn one_out_forecast_implied_fast(
    p: &Prepared<'_, impl Ord>,
    fk: usize,
    mut put: impl FnMut(usize, Option<f64>),
) {
    let e = &p.elems[fk];
    if p.all_new || e.len() == 1 {
        return;
    }
    let rs: Vec<f64> = e.iter().map(|&(_, r)| r).collect();
    let vs: Vec<f64> = e.iter().map(|&(j, _)| p.values[j]).collect();
    let st = one_out_stats(&rs);
    let eps = p.params.epsilon;
    let large = e.len() > EXACT_SIGMA_MAX_ELEMENTS;
    for q in 0..e.len() {
        let sigma = one_out_sigma(&rs, &st, q);
        let s = sigma + eps;
        let rmax_raw = if q == st.max1_idx { st.max2 } else { st.max1 };
        let r_max = rmax_raw / s;
        let mut acc = WeightedSum::default();
        if large {
            accumulate_large(&rs[..q], &vs[..q], s, r_max, &p.wf, &mut acc);
            accumulate_large(&rs[q + 1..], &vs[q + 1..], s, r_max, &p.wf, &mut acc);
        } else {
            accumulate_fast(&rs[..q], &vs[..q], s, r_max, &p.wf, &mut acc);
            accumulate_fast(&rs[q + 1..], &vs[q + 1..], s, r_max, &p.wf, &mut acc);
        }
        put(e[q].0, acc.value_strict());
    }
}

/// Forecast-implied inferences I_ik (`CalcForecastImpliedInferences`) for all inferers.
///
/// `previous_network_loss` is L_{i−1} (forecasted regrets R_ijk = L_{i−1} − L_ijk; `allora-mad`
/// scales each forecast by the MAD of its own regrets, as allora-chain does without a stored
/// network scale); with
/// `all_inferers_new` the value is the median of the forecast's inferers. Forecasters without
/// any element on an inferer that has an inference, or whose weights sum to 0, get no value.
pub fn forecast_implied_inferences<K: Ord + Clone>(
    params: &SynthesisParams,
    inferences: &BTreeMap<K, f64>,
    forecasts: &BTreeMap<K, BTreeMap<K, f64>>,
    previous_network_loss: f64,
    all_inferers_new: bool,
) -> Result<BTreeMap<K, f64>, MathError> {
    let input = SynthesisInput {
        params: *params,
        initial_regret: if all_inferers_new { 0.0 } else { 1.0 },
        previous_network_loss: Some(previous_network_loss),
        inferences: inferences.clone(),
        forecasts: forecasts.clone(),
        regrets: NetworkRegrets::default(),
    };
    if inferences.is_empty() {
        return Ok(BTreeMap::new());
    }
    validate(&input)?;
    let mut p = prepare(&input, Some(previous_network_loss));
    // no network regrets here: `allora-mad` scales each forecast's own regrets
    p.rule.network_scale = 0.0;
    Ok((0..p.forecasters.len())
        .filter_map(|fk| {
            forecast_implied_reference(&p, fk, None).map(|v| (p.forecasters[fk].clone(), v))
        })
        .collect())
}
