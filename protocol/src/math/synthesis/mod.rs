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
//! network loss → combined = median of the inferences, no forecaster/one-out/one-in values
//! (`allora-mad`: the inferences weighted without forecasters);
//! `initial_regret == 0` → "all inferers new": the combined, naive and one-out values are plain
//! means of the inferers and forecast-implied inferences are medians.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::error::{MathError, finite};
use super::mechanism::MechanismVersion;
use super::regrets::NetworkRegrets;
use super::util::median;
use super::weights::{WeightFunction, WeightRule, mad_regret_scale};

mod combined;
mod forecast_implied;
mod one_out;

pub use combined::weighted_percentiles;
pub use forecast_implied::{EXACT_SIGMA_MAX_ELEMENTS, forecast_implied_inferences};

use combined::{ci_or_constant, combined_inference, combined_parts, naive_value};
use one_out::{ForecasterValues, OneOutImplied, forecaster_values, one_out_inferer_values};

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
    /// Which generation of the weights ([`MechanismVersion`]; `allora-v0.6` when absent).
    #[serde(default)]
    pub mechanism: MechanismVersion,
}

impl Default for SynthesisParams {
    /// The fixture's values: p = 3, c = 0.75, ε = 0.01, ε_safe = 1e-7.
    fn default() -> Self {
        SynthesisParams {
            p_norm: 3.0,
            c_norm: 0.75,
            epsilon: 0.01,
            epsilon_safe_div: 1e-7,
            mechanism: MechanismVersion::AlloraV06,
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
    /// I⁻_i; `None` in the median case (and for one inference without a previous network loss).
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
    /// The v0.6 weight function (the exact and large-forecast kernels).
    wf: WeightFunction,
    /// Regrets → weights, with the epoch's network scale for `allora-mad`.
    rule: WeightRule,
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

impl<K> Prepared<'_, K> {
    /// Whether the shared one-out kernels apply: they reuse σ and the v0.6 weight function
    /// across recomputations; `allora-mad` recomputes each one from its definition.
    fn v06_kernels(&self) -> bool {
        self.rule.version == MechanismVersion::AlloraV06
    }
}

/// Keys to indices. Without `l_prev` (no network loss yet) forecasters take no part.
fn prepare<K: Ord>(input: &SynthesisInput<K>, l_prev: Option<f64>) -> Prepared<'_, K> {
    let inferers: Vec<&K> = input.inferences.keys().collect();
    let values: Vec<f64> = input.inferences.values().copied().collect();
    let all_new = input.initial_regret == 0.0;
    let mut forecasters = Vec::new();
    let mut elems = Vec::new();
    // without a network loss there are no forecasted regrets
    if let Some(l_prev) = l_prev {
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
    }
    let mut rule = WeightRule {
        version: input.params.mechanism,
        p: input.params.p_norm,
        c: input.params.c_norm,
        epsilon: input.params.epsilon,
        network_scale: 0.0,
    };
    if rule.version == MechanismVersion::AlloraMad {
        // one scale for the epoch: the stored network regrets of everyone taking part (a
        // missing regret reads as the initial regret), as allora-chain stores it at the last
        // reputer close and reuses it for every weighting
        let mut regrets = Vec::with_capacity(inferers.len() + forecasters.len());
        lookup_sorted(
            &inferers,
            Some(&input.regrets.inferer),
            input.initial_regret,
            &mut regrets,
        );
        lookup_sorted(
            &forecasters,
            Some(&input.regrets.forecaster),
            input.initial_regret,
            &mut regrets,
        );
        rule.network_scale = mad_regret_scale(&regrets, input.params.epsilon);
    }
    Prepared {
        params: input.params,
        wf: WeightFunction::new(input.params.p_norm, input.params.c_norm),
        rule,
        initial_regret: input.initial_regret,
        all_new,
        inferers,
        values,
        forecasters,
        elems,
    }
}

/// The branches without weights: one inference, or (`allora-v0.6` only) no network loss yet —
/// `allora-mad` then weights the inferences alone.
fn unweighted_case<K>(input: &SynthesisInput<K>) -> Option<SynthesisCase> {
    match (
        input.inferences.len(),
        input.previous_network_loss,
        input.params.mechanism,
    ) {
        (1, _, _) => Some(SynthesisCase::Single),
        (_, None, MechanismVersion::AlloraV06) => Some(SynthesisCase::Median),
        _ => None,
    }
}

/// The fast path: forecast-implied inferences, raw weights and the combined value I_i.
///
/// O(F·I) weight evaluations; everything else of the bundle is skipped. The combined value is
/// bit-identical to [`synthesize_bundle`]'s.
pub fn synthesize_combined<K: Ord + Clone>(
    input: &SynthesisInput<K>,
) -> Result<CombinedInference<K>, MathError> {
    validate(input)?;
    if let Some(case) = unweighted_case(input) {
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
    let p = prepare(input, input.previous_network_loss);
    let c = combined_parts(&p, input, true)?;
    Ok(combined_inference(&p, &c))
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

/// The bundle of the single and median cases: the combined value only.
fn unweighted_bundle<K: Clone>(
    input: &SynthesisInput<K>,
    case: SynthesisCase,
    combined_value: f64,
    confidence_interval_values: Vec<f64>,
) -> NetworkInferences<K> {
    NetworkInferences {
        case,
        combined_value,
        naive_value: None,
        inferer_values: input.inferences.clone(),
        forecaster_values: BTreeMap::new(),
        one_out_inferer_values: BTreeMap::new(),
        one_out_forecaster_values: BTreeMap::new(),
        one_in_forecaster_values: BTreeMap::new(),
        one_out_inferer_forecaster_values: BTreeMap::new(),
        inferer_weights: BTreeMap::new(),
        forecaster_weights: BTreeMap::new(),
        confidence_interval_values,
    }
}

fn bundle_impl<K: Ord + Clone>(
    input: &SynthesisInput<K>,
    fast: bool,
) -> Result<NetworkInferences<K>, MathError> {
    validate(input)?;
    let vals: Vec<f64> = input.inferences.values().copied().collect();
    if vals.len() == 1 {
        let ci = vec![vals[0]; CONFIDENCE_PERCENTILES.len()];
        let mut out = unweighted_bundle(input, SynthesisCase::Single, vals[0], ci);
        out.naive_value = input.previous_network_loss.map(|_| vals[0]);
        return Ok(out);
    }
    if unweighted_case(input) == Some(SynthesisCase::Median) {
        let combined = median(&vals);
        let pairs: Vec<(f64, f64)> = vals.iter().map(|&v| (v, 1.0)).collect();
        let ci = ci_or_constant(&pairs, combined);
        return Ok(unweighted_bundle(
            input,
            SynthesisCase::Median,
            combined,
            ci,
        ));
    }

    let p = prepare(input, input.previous_network_loss);
    let c = combined_parts(&p, input, fast)?;
    let fk_keys: Vec<&K> = c.kept.iter().map(|&fk| p.forecasters[fk]).collect();
    let combined = combined_inference(&p, &c);
    let naive_value = Some(naive_value(&p, input)?);
    let one_out = OneOutImplied::new(&p, &c, fast);
    let one_out_inferer_values = one_out_inferer_values(&p, input, &fk_keys, &one_out)?;
    let forecasters = if fk_keys.len() >= 2 {
        forecaster_values(&p, input, &c, &fk_keys)?
    } else {
        ForecasterValues {
            one_out: BTreeMap::new(),
            one_in: BTreeMap::new(),
        }
    };
    Ok(NetworkInferences {
        case: combined.case,
        combined_value: combined.combined_value,
        naive_value,
        inferer_values: input.inferences.clone(),
        forecaster_values: combined.forecaster_values,
        one_out_inferer_values,
        one_out_forecaster_values: forecasters.one_out,
        one_in_forecaster_values: forecasters.one_in,
        one_out_inferer_forecaster_values: one_out.by_forecaster(&p, &fk_keys),
        inferer_weights: combined.inferer_weights,
        forecaster_weights: combined.forecaster_weights,
        confidence_interval_values: ci_or_constant(&c.ci_pairs, c.combined),
    })
}
