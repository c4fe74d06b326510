//! Inference synthesis (spec §1, allora-chain `inference_synthesis/`): forecast-implied
//! inferences, the combined network inference, the naive, one-out and one-in inferences, the
//! raw weights and a confidence interval.
//!
//! Two entry points:
//! * [`synthesize_combined`] — the fast path consumers wait for: forecast-implied inferences, the
//!   weights and the combined value, O(F·I) weight evaluations.
//! * [`synthesize_bundle`] — everything reputers score. Dominated by the one-out inferer values,
//!   whose forecast-implied inferences are recomputed for every withheld inferer (F·I² weight
//!   evaluations). Those recomputations share work: σ of the forecasted regrets without one
//!   element comes from the full set's mean and sum of squared deviations with one-out subtraction
//!   (for forecasts of more than [`EXACT_SIGMA_MAX_ELEMENTS`] elements; smaller ones, and any
//!   case where the subtraction would lose precision, use the direct two-pass sum) and the maximum
//!   from the top two.
//!
//!   Up to [`EXACT_SIGMA_MAX_ELEMENTS`] elements per forecast (Allora caps forecasts at 12) every
//!   weight is evaluated exactly as in the straightforward computation, with
//!   [`super::util::exp`] (libm's algorithm inlined, bit-identical to `libm::exp`): the bundle is
//!   **bit-identical** to [`synthesize_bundle_reference`]. Larger forecasts (only in stress
//!   sizes) use a throughput kernel: `r = R·(1/s)`, the table-driven
//!   [`super::util::exp_approx_unchecked`] (≤ 4 ulp from libm, pure IEEE arithmetic) and one
//!   division per four weights (batch inversion); they agree with the reference to ~1e-15
//!   relative (tested ≤ 1e-12). Every path is deterministic: same input, same bits, on every
//!   machine.
//!
//! Special cases (spec §1.2, §7): one inference → combined = that value, no weights; no previous
//! network loss → combined = median of the inferences, no forecaster/one-out/one-in values;
//! `initial_regret == 0` → "all inferers new": the combined, naive and one-out values are plain
//! means of the inferers and forecast-implied inferences are medians.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::error::{MathError, finite};
use super::regrets::NetworkRegrets;
use super::util::{cmp_f64, exp, exp_approx_unchecked, median};
use super::weights::{WeightFunction, WeightedSum, regret_weights};

/// The percentiles (in %) of [`NetworkInferences::confidence_interval_values`]: ±2σ, ±1σ and the
/// median of a normal distribution.
pub const CONFIDENCE_PERCENTILES: [f64; 5] = [2.28, 15.87, 50.0, 84.13, 97.72];

/// Synthesis parameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SynthesisParams {
    /// p (topic `PNorm`, 2.5 ≤ p ≤ 4.5 on chain; any p > 0 accepted here).
    pub p_norm: f64,
    /// c (module `CNorm`, default 0.75).
    pub c_norm: f64,
    /// ε (topic `Epsilon`, > 0).
    pub epsilon: f64,
    /// ε_safe (module `EpsilonSafeDiv`, default 1e-7, ≥ 0).
    pub epsilon_safe_div: f64,
}

impl Default for SynthesisParams {
    /// The fixture's values: p = 3, c = 0.75, ε = 0.01, ε_safe = 1e-7.
    fn default() -> Self {
        SynthesisParams {
            p_norm: 3.0,
            c_norm: 0.75,
            epsilon: 0.01,
            epsilon_safe_div: 1e-7,
        }
    }
}

impl SynthesisParams {
    /// Checks p > 0, ε > 0, ε_safe ≥ 0, all finite.
    pub fn validate(&self) -> Result<(), MathError> {
        let check = |name: &'static str, v: f64, ok: bool, rule: &str| {
            if v.is_finite() && ok {
                Ok(())
            } else {
                Err(MathError::InvalidParameter {
                    name,
                    reason: format!("must be finite and {rule}, got {v}"),
                })
            }
        };
        check("p_norm", self.p_norm, self.p_norm > 0.0, "> 0")?;
        check("c_norm", self.c_norm, true, "")?;
        check("epsilon", self.epsilon, self.epsilon > 0.0, "> 0")?;
        check(
            "epsilon_safe_div",
            self.epsilon_safe_div,
            self.epsilon_safe_div >= 0.0,
            ">= 0",
        )
    }
}

/// Everything the synthesis of one epoch reads.
#[derive(Debug, Clone, PartialEq)]
pub struct SynthesisInput<K> {
    /// Parameters.
    pub params: SynthesisParams,
    /// The topic's `InitialRegret`: the fallback of every missing regret; 0 means every inferer
    /// is new.
    pub initial_regret: f64,
    /// L_{i−1}, the previous network combined log10 loss; `None` if no loss was ever stored.
    pub previous_network_loss: Option<f64>,
    /// I_ij per inferer.
    pub inferences: BTreeMap<K, f64>,
    /// Forecasted log10 losses L_ijk: `forecasts[k][j]`.
    pub forecasts: BTreeMap<K, BTreeMap<K, f64>>,
    /// Stored regrets of the previous epoch.
    pub regrets: NetworkRegrets<K>,
}

/// Which branch of `GetNetworkInferences` produced the values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SynthesisCase {
    /// Exactly one inference (`calcNetworkInferencesSingle`).
    Single,
    /// No previous network loss: median of the inferences (`calcNetworkInferencesMultipleByMedian`).
    Median,
    /// Regret-weighted (`CalcNetworkInferences`); `all_inferers_new` when `initial_regret == 0`.
    Weighted {
        /// `topic.InitialRegret == 0`.
        all_inferers_new: bool,
    },
}

/// The fast-path result: what consumers of the network inference need.
#[derive(Debug, Clone, PartialEq)]
pub struct CombinedInference<K> {
    /// Branch taken.
    pub case: SynthesisCase,
    /// I_i.
    pub combined_value: f64,
    /// I_ik (forecasters without a forecast-implied inference are absent).
    pub forecaster_values: BTreeMap<K, f64>,
    /// Raw (unnormalized) inferer weights of the combined value.
    pub inferer_weights: BTreeMap<K, f64>,
    /// Raw (unnormalized) forecaster weights of the combined value.
    pub forecaster_weights: BTreeMap<K, f64>,
}

/// The full synthesis result (Allora's network-inference `ValueBundle` plus weights and a
/// confidence interval).
#[derive(Debug, Clone, PartialEq)]
pub struct NetworkInferences<K> {
    /// Branch taken.
    pub case: SynthesisCase,
    /// I_i.
    pub combined_value: f64,
    /// I⁻_i; `None` iff there is no previous network loss.
    pub naive_value: Option<f64>,
    /// I_ij (the inputs).
    pub inferer_values: BTreeMap<K, f64>,
    /// I_ik.
    pub forecaster_values: BTreeMap<K, f64>,
    /// I⁻_{j′i} per withheld inferer (≥ 2 inferers and a previous loss).
    pub one_out_inferer_values: BTreeMap<K, f64>,
    /// I⁻_{k′i} per withheld forecaster (only with ≥ 2 forecasters).
    pub one_out_forecaster_values: BTreeMap<K, f64>,
    /// I⁺_{ki} per forecaster (only with ≥ 2 forecasters).
    pub one_in_forecaster_values: BTreeMap<K, f64>,
    /// I⁻_{j′ik}: `[forecaster k][withheld inferer j′]`, the forecast-implied inference of k
    /// recomputed without j′ (the v0.6 chain leaves these empty; the simulator defines them).
    pub one_out_inferer_forecaster_values: BTreeMap<K, BTreeMap<K, f64>>,
    /// Raw inferer weights of the combined value.
    pub inferer_weights: BTreeMap<K, f64>,
    /// Raw forecaster weights of the combined value.
    pub forecaster_weights: BTreeMap<K, f64>,
    /// Values at [`CONFIDENCE_PERCENTILES`] of the weighted distribution of the inferences; see
    /// [`weighted_percentiles`].
    pub confidence_interval_values: Vec<f64>,
}

// ---------------------------------------------------------------------------------------------
// Preparation: keys → indices.

/// Looks up `map[key]` for every key of `keys` (ascending) by a merge walk; `default` if absent.
fn lookup_sorted<K: Ord>(
    keys: &[&K],
    map: Option<&BTreeMap<K, f64>>,
    default: f64,
    out: &mut Vec<f64>,
) {
    match map {
        None => out.extend(std::iter::repeat_n(default, keys.len())),
        Some(m) => {
            let mut it = m.iter().peekable();
            for k in keys {
                let mut found = default;
                while let Some((mk, mv)) = it.peek() {
                    match (*mk).cmp(*k) {
                        std::cmp::Ordering::Less => {
                            it.next();
                        }
                        std::cmp::Ordering::Equal => {
                            found = **mv;
                            it.next();
                            break;
                        }
                        std::cmp::Ordering::Greater => break,
                    }
                }
                out.push(found);
            }
        }
    }
}

struct Prepared<'a, K> {
    params: SynthesisParams,
    wf: WeightFunction,
    initial_regret: f64,
    all_new: bool,
    inferers: Vec<&'a K>,
    values: Vec<f64>,
    /// Forecasters with ≥ 1 element on an inferer that has an inference.
    forecasters: Vec<&'a K>,
    /// Per forecaster: (inferer index, forecasted regret R_ijk = L_{i−1} − L_ijk) in inferer order.
    elems: Vec<Vec<(usize, f64)>>,
}

fn validate<K>(input: &SynthesisInput<K>) -> Result<(), MathError>
where
    K: Ord,
{
    input.params.validate()?;
    finite("initial_regret", input.initial_regret)?;
    if let Some(l) = input.previous_network_loss {
        finite("previous_network_loss", l)?;
    }
    if input.inferences.is_empty() {
        return Err(MathError::Empty("no inferences"));
    }
    if let Some(v) = input.inferences.values().find(|v| !v.is_finite()) {
        return Err(MathError::NonFinite {
            what: "inference".into(),
            value: *v,
        });
    }
    for f in input.forecasts.values() {
        if let Some(v) = f.values().find(|v| !v.is_finite()) {
            return Err(MathError::NonFinite {
                what: "forecasted loss".into(),
                value: *v,
            });
        }
    }
    // regrets are checked where they are read (regrets_for): the one-out maps hold O(I²)
    // entries and the fast path must not touch them
    Ok(())
}

fn prepare<K: Ord>(input: &SynthesisInput<K>, l_prev: f64) -> Prepared<'_, K> {
    let inferers: Vec<&K> = input.inferences.keys().collect();
    let values: Vec<f64> = input.inferences.values().copied().collect();
    let all_new = input.initial_regret == 0.0;
    let mut forecasters = Vec::new();
    let mut elems = Vec::new();
    for (k, f) in &input.forecasts {
        // merge walk of the forecast's elements with the sorted inferers
        let mut e = Vec::new();
        let mut it = f.iter().peekable();
        for (idx, j) in inferers.iter().enumerate() {
            while let Some((fj, fv)) = it.peek() {
                match (*fj).cmp(*j) {
                    std::cmp::Ordering::Less => {
                        it.next();
                    }
                    std::cmp::Ordering::Equal => {
                        e.push((idx, l_prev - **fv));
                        it.next();
                        break;
                    }
                    std::cmp::Ordering::Greater => break,
                }
            }
        }
        if !e.is_empty() {
            forecasters.push(k);
            elems.push(e);
        }
    }
    Prepared {
        params: input.params,
        wf: WeightFunction::new(input.params.p_norm, input.params.c_norm),
        initial_regret: input.initial_regret,
        all_new,
        inferers,
        values,
        forecasters,
        elems,
    }
}

// ---------------------------------------------------------------------------------------------
// Forecast-implied inferences.

/// Forecast-implied inference of one forecaster with inferer `withheld` (an index into the
/// inferers) removed from the weight computation — the straightforward definition
/// (`CalcForecastImpliedInferences` with `Inferers = remaining`).
fn forecast_implied_reference(
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
    let rw = regret_weights(&regrets, p.params.p_norm, p.params.c_norm, p.params.epsilon).ok()?;
    let mut acc = WeightedSum::default();
    for (i, &(j, _)) in kept.iter().enumerate() {
        acc.add(rw.weights[i], p.values[j]);
    }
    acc.value_strict()
}

/// Forecast-implied inference of one forecaster over all its elements; forecasts with more than
/// [`EXACT_SIGMA_MAX_ELEMENTS`] elements use the large-forecast kernel ([`accumulate_large`]).
fn forecast_implied_full(p: &Prepared<'_, impl Ord>, fk: usize, fast: bool) -> Option<f64> {
    let e = &p.elems[fk];
    if !fast || p.all_new || e.len() <= EXACT_SIGMA_MAX_ELEMENTS {
        return forecast_implied_reference(p, fk, None);
    }
    let rs: Vec<f64> = e.iter().map(|&(_, r)| r).collect();
    let vs: Vec<f64> = e.iter().map(|&(j, _)| p.values[j]).collect();
    let s = super::util::std_dev(&rs).abs() + p.params.epsilon;
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
/// squared deviations): the direct two-pass sum, bit-identical to [`super::util::std_dev`] of the
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
/// elements): `r = R·(1/s)` instead of `R/s`, [`super::util::exp_approx_unchecked`] instead of
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
fn one_out_forecast_implied_fast(
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
/// `previous_network_loss` is L_{i−1} (forecasted regrets R_ijk = L_{i−1} − L_ijk); with
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
    let p = prepare(&input, previous_network_loss);
    Ok((0..p.forecasters.len())
        .filter_map(|fk| {
            forecast_implied_reference(&p, fk, None).map(|v| (p.forecasters[fk].clone(), v))
        })
        .collect())
}

// ---------------------------------------------------------------------------------------------
// Weighted network inferences.

/// Weights and value of one weighted network inference.
struct Combo {
    /// Raw weights in accumulation order (inferers then forecasters).
    weights: Vec<f64>,
    /// Σ w·v / max(Σ w, ε_safe).
    value: f64,
    /// (weight, value) pairs; `None` = no value (skipped).
    pairs: Vec<(f64, Option<f64>)>,
}

/// Weights from `regrets` (aligned with `values`; `None` = no value → skipped in the sum) and
/// the network value Σ w·v / max(Σ w, ε_safe). With all inferers new: plain mean of the first
/// `n_inferers` values.
fn weighted_value(
    p: &Prepared<'_, impl Ord>,
    regrets: &[f64],
    values: Vec<Option<f64>>,
    n_inferers: usize,
) -> Result<Combo, MathError> {
    let rw = regret_weights(regrets, p.params.p_norm, p.params.c_norm, p.params.epsilon)?;
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

fn regrets_for<K: Ord>(
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

fn ci_or_constant(pairs: &[(f64, f64)], fallback: f64) -> Vec<f64> {
    let ci = weighted_percentiles(pairs, &CONFIDENCE_PERCENTILES);
    if ci.is_empty() {
        vec![fallback; CONFIDENCE_PERCENTILES.len()]
    } else {
        ci
    }
}

struct CombinedParts {
    case: SynthesisCase,
    combined: f64,
    /// forecast-implied values per retained forecaster index (all Some after filtering)
    fi: Vec<Option<f64>>,
    /// indices (into p.forecasters) of forecasters with a forecast-implied value
    kept: Vec<usize>,
    inferer_weights: Vec<f64>,
    forecaster_weights: Vec<f64>,
    ci_pairs: Vec<(f64, f64)>,
}

fn combined_parts<K: Ord>(
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

/// The fast path: forecast-implied inferences, raw weights and the combined value I_i.
///
/// O(F·I) weight evaluations; everything else of the bundle is skipped. The combined value is
/// bit-identical to [`synthesize_bundle`]'s.
pub fn synthesize_combined<K: Ord + Clone>(
    input: &SynthesisInput<K>,
) -> Result<CombinedInference<K>, MathError> {
    validate(input)?;
    let (single_or_median, l_prev) = match (input.inferences.len(), input.previous_network_loss) {
        (1, _) => (Some(SynthesisCase::Single), 0.0),
        (_, None) => (Some(SynthesisCase::Median), 0.0),
        (_, Some(l)) => (None, l),
    };
    if let Some(case) = single_or_median {
        let vals: Vec<f64> = input.inferences.values().copied().collect();
        return Ok(CombinedInference {
            case,
            combined_value: if case == SynthesisCase::Single {
                vals[0]
            } else {
                median(&vals)
            },
            forecaster_values: BTreeMap::new(),
            inferer_weights: BTreeMap::new(),
            forecaster_weights: BTreeMap::new(),
        });
    }
    let p = prepare(input, l_prev);
    let c = combined_parts(&p, input, true)?;
    Ok(CombinedInference {
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
            .zip(c.inferer_weights)
            .collect(),
        forecaster_weights: c
            .kept
            .iter()
            .map(|&fk| p.forecasters[fk].clone())
            .zip(c.forecaster_weights)
            .collect(),
    })
}

/// The whole synthesis bundle with the optimized one-out recomputation (see the module docs).
pub fn synthesize_bundle<K: Ord + Clone>(
    input: &SynthesisInput<K>,
) -> Result<NetworkInferences<K>, MathError> {
    bundle_impl(input, true)
}

/// The whole synthesis bundle computed the straightforward way (every one-out forecast-implied
/// inference recomputed from scratch with `libm::exp`). Same result as [`synthesize_bundle`]
/// up to rounding (≈1e-15 relative); O(F·I²) with larger constants. Kept public as the
/// reference the optimized path is tested against.
pub fn synthesize_bundle_reference<K: Ord + Clone>(
    input: &SynthesisInput<K>,
) -> Result<NetworkInferences<K>, MathError> {
    bundle_impl(input, false)
}

fn bundle_impl<K: Ord + Clone>(
    input: &SynthesisInput<K>,
    fast: bool,
) -> Result<NetworkInferences<K>, MathError> {
    validate(input)?;
    let inferer_values = input.inferences.clone();
    let mut out = NetworkInferences {
        case: SynthesisCase::Single,
        combined_value: 0.0,
        naive_value: None,
        inferer_values,
        forecaster_values: BTreeMap::new(),
        one_out_inferer_values: BTreeMap::new(),
        one_out_forecaster_values: BTreeMap::new(),
        one_in_forecaster_values: BTreeMap::new(),
        one_out_inferer_forecaster_values: BTreeMap::new(),
        inferer_weights: BTreeMap::new(),
        forecaster_weights: BTreeMap::new(),
        confidence_interval_values: Vec::new(),
    };
    let vals: Vec<f64> = input.inferences.values().copied().collect();
    if vals.len() == 1 {
        out.combined_value = vals[0];
        out.naive_value = input.previous_network_loss.map(|_| vals[0]);
        out.confidence_interval_values = vec![vals[0]; CONFIDENCE_PERCENTILES.len()];
        return Ok(out);
    }
    let Some(l_prev) = input.previous_network_loss else {
        out.case = SynthesisCase::Median;
        out.combined_value = median(&vals);
        let pairs: Vec<(f64, f64)> = vals.iter().map(|&v| (v, 1.0)).collect();
        out.confidence_interval_values = ci_or_constant(&pairs, out.combined_value);
        return Ok(out);
    };

    let p = prepare(input, l_prev);
    let c = combined_parts(&p, input, fast)?;
    let ni = p.inferers.len();
    let fk_keys: Vec<&K> = c.kept.iter().map(|&fk| p.forecasters[fk]).collect();
    let nf = fk_keys.len();
    out.case = c.case;
    out.combined_value = c.combined;
    out.confidence_interval_values = ci_or_constant(&c.ci_pairs, c.combined);
    out.inferer_weights = p
        .inferers
        .iter()
        .map(|k| (*k).clone())
        .zip(c.inferer_weights.iter().copied())
        .collect();
    out.forecaster_weights = fk_keys
        .iter()
        .map(|k| (*k).clone())
        .zip(c.forecaster_weights.iter().copied())
        .collect();
    out.forecaster_values = fk_keys
        .iter()
        .zip(&c.fi)
        .filter_map(|(k, v)| v.map(|v| ((*k).clone(), v)))
        .collect();

    // naive: inferers only, naive regrets
    {
        let regrets = regrets_for(&p, Some(&input.regrets.naive), &p.inferers, None, &[])?;
        let values: Vec<Option<f64>> = p.values.iter().map(|&v| Some(v)).collect();
        out.naive_value = Some(weighted_value(&p, &regrets, values, ni)?.value);
    }

    // one-out forecast-implied values: fi_oo[j′ * nf + f] (f indexes the kept forecasters)
    let mut fi_oo: Vec<Option<f64>> = Vec::with_capacity(ni * nf);
    for _ in 0..ni {
        fi_oo.extend(c.fi.iter().copied());
    }
    for (f, &fk) in c.kept.iter().enumerate() {
        if fast {
            one_out_forecast_implied_fast(&p, fk, |j, v| fi_oo[j * nf + f] = v);
        } else {
            for &(j, _) in &p.elems[fk] {
                fi_oo[j * nf + f] = forecast_implied_reference(&p, fk, Some(j));
            }
        }
    }

    // one-out inferer values
    let mut rest: Vec<&K> = Vec::with_capacity(ni.saturating_sub(1));
    for jw in 0..ni {
        rest.clear();
        rest.extend(
            p.inferers
                .iter()
                .enumerate()
                .filter(|&(j, _)| j != jw)
                .map(|(_, k)| *k),
        );
        let key = p.inferers[jw];
        let value = if p.all_new {
            let mut acc = WeightedSum::default();
            for (j, &v) in p.values.iter().enumerate() {
                if j != jw {
                    acc.add(1.0, v);
                }
            }
            acc.value_safe(p.params.epsilon_safe_div)
        } else {
            let regrets = regrets_for(
                &p,
                input.regrets.one_out_inferer_inferer.get(key),
                &rest,
                input.regrets.one_out_inferer_forecaster.get(key),
                &fk_keys,
            )?;
            let mut values: Vec<Option<f64>> = p
                .values
                .iter()
                .enumerate()
                .filter(|&(j, _)| j != jw)
                .map(|(_, &v)| Some(v))
                .collect();
            values.extend(fi_oo[jw * nf..(jw + 1) * nf].iter().copied());
            weighted_value(&p, &regrets, values, ni - 1)?.value
        };
        out.one_out_inferer_values.insert(key.clone(), value);
    }
    for (f, k) in fk_keys.iter().enumerate() {
        let m: BTreeMap<K, f64> = (0..ni)
            .filter_map(|j| fi_oo[j * nf + f].map(|v| (p.inferers[j].clone(), v)))
            .collect();
        out.one_out_inferer_forecaster_values
            .insert((*k).clone(), m);
    }

    if nf >= 2 {
        let inferer_values: Vec<Option<f64>> = p.values.iter().map(|&v| Some(v)).collect();
        let mut others: Vec<&K> = Vec::with_capacity(nf - 1);
        for (f, kw) in fk_keys.iter().enumerate() {
            // one-out forecaster
            others.clear();
            others.extend(
                fk_keys
                    .iter()
                    .enumerate()
                    .filter(|&(g, _)| g != f)
                    .map(|(_, k)| *k),
            );
            let regrets = regrets_for(
                &p,
                input.regrets.one_out_forecaster_inferer.get(*kw),
                &p.inferers,
                input.regrets.one_out_forecaster_forecaster.get(*kw),
                &others,
            )?;
            let mut values = inferer_values.clone();
            values.extend(
                c.fi.iter()
                    .enumerate()
                    .filter(|&(g, _)| g != f)
                    .map(|(_, v)| *v),
            );
            let v = weighted_value(&p, &regrets, values, ni)?.value;
            out.one_out_forecaster_values.insert((*kw).clone(), v);

            // one-in forecaster
            let one_in = input.regrets.one_in_forecaster.get(*kw);
            let regrets = regrets_for(&p, one_in, &p.inferers, one_in, &[*kw])?;
            let mut values = inferer_values.clone();
            values.push(c.fi[f]);
            let v = weighted_value(&p, &regrets, values, ni)?.value;
            out.one_in_forecaster_values.insert((*kw).clone(), v);
        }
    }
    Ok(out)
}
