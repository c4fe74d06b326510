//! Network regrets: the nine kinds, their EMA update after the ground truth and the topic initial
//! regret (spec §1.7, allora-chain `inference_synthesis/network_regrets.go`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::error::{MathError, finite};
use super::losses::ValueBundle;
use super::util::{ema, quantile, std_dev};

/// All stored regrets of a topic (the state the synthesis reads and the update writes).
///
/// Nested maps are keyed `outer → inner`:
/// * `one_out_inferer_inferer[j′][j]` = `OneOutInfererInfererNetworkRegret(j′, j)`,
/// * `one_out_inferer_forecaster[j′][k]`, `one_out_forecaster_inferer[k′][j]`,
///   `one_out_forecaster_forecaster[k′][k]` likewise (withheld worker first),
/// * `one_in_forecaster[k][j]` = `OneInForecasterNetworkRegret(k, j)` and `one_in_forecaster[k][k]`
///   the forecaster's own one-in regret.
///
/// A regret that is missing falls back to the topic's `InitialRegret`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound(
    serialize = "K: Serialize + Ord",
    deserialize = "K: Deserialize<'de> + Ord"
))]
pub struct NetworkRegrets<K> {
    /// R_ik, `ForecasterNetworkRegret(k)`.
    #[serde(default)]
    pub forecaster: BTreeMap<K, f64>,
    /// R_ij, `InfererNetworkRegret(j)`.
    #[serde(default)]
    pub inferer: BTreeMap<K, f64>,
    /// R⁻_ij, `NaiveInfererNetworkRegret(j)`.
    #[serde(default)]
    pub naive: BTreeMap<K, f64>,
    /// `[forecaster][inferer or the forecaster itself]`.
    #[serde(default)]
    pub one_in_forecaster: BTreeMap<K, BTreeMap<K, f64>>,
    /// `[withheld forecaster][forecaster]`.
    #[serde(default)]
    pub one_out_forecaster_forecaster: BTreeMap<K, BTreeMap<K, f64>>,
    /// `[withheld forecaster][inferer]`.
    #[serde(default)]
    pub one_out_forecaster_inferer: BTreeMap<K, BTreeMap<K, f64>>,
    /// `[withheld inferer][forecaster]`.
    #[serde(default)]
    pub one_out_inferer_forecaster: BTreeMap<K, BTreeMap<K, f64>>,
    /// `[withheld inferer][inferer]`.
    #[serde(default)]
    pub one_out_inferer_inferer: BTreeMap<K, BTreeMap<K, f64>>,
}

impl<K> Default for NetworkRegrets<K> {
    fn default() -> Self {
        NetworkRegrets {
            inferer: BTreeMap::new(),
            forecaster: BTreeMap::new(),
            naive: BTreeMap::new(),
            one_out_inferer_inferer: BTreeMap::new(),
            one_out_inferer_forecaster: BTreeMap::new(),
            one_out_forecaster_inferer: BTreeMap::new(),
            one_out_forecaster_forecaster: BTreeMap::new(),
            one_in_forecaster: BTreeMap::new(),
        }
    }
}

impl<K: Ord> NetworkRegrets<K> {
    fn flat(&self) -> [&BTreeMap<K, f64>; 3] {
        [&self.inferer, &self.forecaster, &self.naive]
    }
    fn nested(&self) -> [&BTreeMap<K, BTreeMap<K, f64>>; 5] {
        [
            &self.one_out_inferer_inferer,
            &self.one_out_inferer_forecaster,
            &self.one_out_forecaster_inferer,
            &self.one_out_forecaster_forecaster,
            &self.one_in_forecaster,
        ]
    }

    /// Number of stored regrets (all kinds).
    pub fn len(&self) -> usize {
        self.flat().iter().map(|m| m.len()).sum::<usize>()
            + self
                .nested()
                .iter()
                .flat_map(|m| m.values())
                .map(|m| m.len())
                .sum::<usize>()
    }

    /// True if no regret is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Error if any regret is NaN or infinite.
    pub fn check_finite(&self) -> Result<(), MathError> {
        for m in self.flat() {
            for v in m.values() {
                finite("regret", *v)?;
            }
        }
        for m in self.nested() {
            for inner in m.values() {
                for v in inner.values() {
                    finite("regret", *v)?;
                }
            }
        }
        Ok(())
    }
}

fn get1<K: Ord>(m: &BTreeMap<K, f64>, k: &K, default: f64) -> f64 {
    m.get(k).copied().unwrap_or(default)
}

fn get2<K: Ord>(m: &BTreeMap<K, BTreeMap<K, f64>>, a: &K, b: &K, default: f64) -> f64 {
    m.get(a).and_then(|x| x.get(b)).copied().unwrap_or(default)
}

/// `ComputeAndBuildEMRegret`: `CalcEma(α, L_A − L_B, R_prev, false)`.
pub fn regret_ema(alpha_regret: f64, loss_a: f64, loss_b: f64, previous: f64) -> f64 {
    ema(alpha_regret, loss_a - loss_b, previous, false)
}

/// `GetCalcSetNetworkRegrets`: the regrets after the network losses of this epoch are known.
///
/// Returns a copy of `previous` in which every regret that the loss bundle allows to compute is
/// replaced by `CalcEma(α, L_A − L_B, R_prev, false)`, `R_prev` falling back to `initial_regret`
/// (see the table of spec §1.7). Pairs `(j′, j)` with `j = j′` and `(k′, k)` with `k = k′` are
/// computed and stored like the chain does (never read by the synthesis).
///
/// Errors: `alpha_regret` outside (0, 1], non-finite inputs.
pub fn update_regrets<K: Ord + Clone>(
    previous: &NetworkRegrets<K>,
    losses: &ValueBundle<K>,
    alpha_regret: f64,
    initial_regret: f64,
) -> Result<NetworkRegrets<K>, MathError> {
    if !(alpha_regret > 0.0 && alpha_regret <= 1.0) {
        return Err(MathError::InvalidParameter {
            name: "alpha_regret",
            reason: format!("must be in (0, 1], got {alpha_regret}"),
        });
    }
    finite("initial_regret", initial_regret)?;
    losses.check_finite("network loss")?;
    previous.check_finite()?;
    let a = alpha_regret;
    let ir = initial_regret;
    let mut out = previous.clone();
    let l_i = losses.combined_value;
    let l_naive = losses.naive_value;

    for (j, &l) in &losses.inferer_values {
        let r = regret_ema(a, l_i, l, get1(&previous.inferer, j, ir));
        out.inferer.insert(j.clone(), r);
        let r = regret_ema(a, l_naive, l, get1(&previous.naive, j, ir));
        out.naive.insert(j.clone(), r);
    }
    for (k, &l) in &losses.forecaster_values {
        let r = regret_ema(a, l_i, l, get1(&previous.forecaster, k, ir));
        out.forecaster.insert(k.clone(), r);
    }
    for (jw, &l_out) in &losses.one_out_inferer_values {
        for (j, &l) in &losses.inferer_values {
            let r = regret_ema(
                a,
                l_out,
                l,
                get2(&previous.one_out_inferer_inferer, jw, j, ir),
            );
            out.one_out_inferer_inferer
                .entry(jw.clone())
                .or_default()
                .insert(j.clone(), r);
        }
        for (k, per_withheld) in &losses.one_out_inferer_forecaster_values {
            if let Some(&l) = per_withheld.get(jw) {
                let r = regret_ema(
                    a,
                    l_out,
                    l,
                    get2(&previous.one_out_inferer_forecaster, jw, k, ir),
                );
                out.one_out_inferer_forecaster
                    .entry(jw.clone())
                    .or_default()
                    .insert(k.clone(), r);
            }
        }
    }
    for (kw, &l_out) in &losses.one_out_forecaster_values {
        for (j, &l) in &losses.inferer_values {
            let r = regret_ema(
                a,
                l_out,
                l,
                get2(&previous.one_out_forecaster_inferer, kw, j, ir),
            );
            out.one_out_forecaster_inferer
                .entry(kw.clone())
                .or_default()
                .insert(j.clone(), r);
        }
        for (k, &l) in &losses.forecaster_values {
            let r = regret_ema(
                a,
                l_out,
                l,
                get2(&previous.one_out_forecaster_forecaster, kw, k, ir),
            );
            out.one_out_forecaster_forecaster
                .entry(kw.clone())
                .or_default()
                .insert(k.clone(), r);
        }
    }
    for (k, &l_in) in &losses.one_in_forecaster_values {
        for (j, &l) in &losses.inferer_values {
            let r = regret_ema(a, l_in, l, get2(&previous.one_in_forecaster, k, j, ir));
            out.one_in_forecaster
                .entry(k.clone())
                .or_default()
                .insert(j.clone(), r);
        }
        if let Some(&l) = losses.forecaster_values.get(k) {
            let r = regret_ema(a, l_in, l, get2(&previous.one_in_forecaster, k, k, ir));
            out.one_in_forecaster
                .entry(k.clone())
                .or_default()
                .insert(k.clone(), r);
        }
    }
    Ok(out)
}

/// Parameters of the topic initial regret (`CalcTopicInitialRegret`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct InitialRegretParams {
    /// `InitialRegretQuantile` (default 0.25).
    pub quantile: f64,
    /// `PNormSafeDiv` (default 8.25).
    pub p_norm_safe_div: f64,
    /// Topic `PNorm`.
    pub p_norm: f64,
    /// Module `CNorm`.
    pub c_norm: f64,
    /// Topic `Epsilon`.
    pub epsilon: f64,
}

impl Default for InitialRegretParams {
    /// The v0.6 defaults with the fixture's topic values (p = 3, c = 0.75, ε = 0.01).
    fn default() -> Self {
        InitialRegretParams {
            quantile: 0.25,
            p_norm_safe_div: 8.25,
            p_norm: 3.0,
            c_norm: 0.75,
            epsilon: 0.01,
        }
    }
}

/// `CalcTopicInitialRegret`:
/// `Quantile_q(R) + (c − PNormSafeDiv/p)·(StdDev(R) + ε)`; `None` for an empty set (the
/// stored value then stays unchanged).
pub fn topic_initial_regret(regrets: &[f64], params: &InitialRegretParams) -> Option<f64> {
    if regrets.is_empty() {
        return None;
    }
    let q = quantile(regrets, params.quantile);
    let offset = params.c_norm - params.p_norm_safe_div / params.p_norm;
    Some(q + offset * (std_dev(regrets).abs() + params.epsilon))
}

/// `isExperiencedActor`: not new and paid at least `1/α_regret` times.
pub fn is_experienced(new_participant: bool, inclusions: u64, alpha_regret: f64) -> bool {
    !new_participant && (inclusions as f64) >= 1.0 / alpha_regret
}

/// The topic initial-regret step at the end of `GetCalcSetNetworkRegrets`.
///
/// Collects the updated inferer regrets (key order) and then the forecaster regrets of workers
/// that are experienced: they had a stored regret before this update (`previous`) and their
/// inclusion count is ≥ 1/α. Returns the new `InitialRegret`, or `None` if no worker is
/// experienced.
pub fn updated_topic_initial_regret<K: Ord>(
    previous: &NetworkRegrets<K>,
    updated: &NetworkRegrets<K>,
    losses: &ValueBundle<K>,
    inferer_inclusions: &BTreeMap<K, u64>,
    forecaster_inclusions: &BTreeMap<K, u64>,
    alpha_regret: f64,
    params: &InitialRegretParams,
) -> Option<f64> {
    let mut set = Vec::new();
    for j in losses.inferer_values.keys() {
        let new_participant = !previous.inferer.contains_key(j);
        let n = inferer_inclusions.get(j).copied().unwrap_or(0);
        if is_experienced(new_participant, n, alpha_regret)
            && let Some(&r) = updated.inferer.get(j)
        {
            set.push(r);
        }
    }
    for k in losses.forecaster_values.keys() {
        let new_participant = !previous.forecaster.contains_key(k);
        let n = forecaster_inclusions.get(k).copied().unwrap_or(0);
        if is_experienced(new_participant, n, alpha_regret)
            && let Some(&r) = updated.forecaster.get(k)
        {
            set.push(r);
        }
    }
    topic_initial_regret(&set, params)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initial_regret_formula() {
        let p = InitialRegretParams::default();
        assert_eq!(topic_initial_regret(&[], &p), None);
        // one value: quantile = value, std = 0 -> value + (-2)(0 + 0.01)
        assert!((topic_initial_regret(&[-1.0], &p).unwrap() - (-1.02)).abs() < 1e-15);
        let r = [-1.0, -2.0, -3.0, -4.0];
        // q25 (numpy) = -3.25; std = 1.2909944487358056
        let expect = -3.25 + (-2.0) * (1.2909944487358056 + 0.01);
        assert!((topic_initial_regret(&r, &p).unwrap() - expect).abs() < 1e-14);
        assert!(is_experienced(false, 10, 0.1));
        assert!(!is_experienced(false, 9, 0.1));
        assert!(!is_experienced(true, 100, 0.1));
    }

    #[test]
    fn bad_alpha() {
        let p: NetworkRegrets<String> = NetworkRegrets::default();
        let l = ValueBundle::new(0.0, 0.0);
        assert!(update_regrets(&p, &l, 0.0, 0.0).is_err());
        assert!(update_regrets(&p, &l, 1.5, 0.0).is_err());
    }
}
