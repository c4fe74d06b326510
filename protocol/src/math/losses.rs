//! Value bundles and stake-weighted network losses (spec §2.1–2.2, allora-chain
//! `inference_synthesis/network_losses.go: CalcNetworkLosses`).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::error::{MathError, finite};

/// Allora's `ValueBundle` restricted to its numbers: one value for the combined and the naive
/// inference and one per worker for the other fields. Reputers report log10 losses in this shape;
/// the network losses have the same shape.
///
/// `one_out_inferer_forecaster_values` is keyed `forecaster → withheld inferer → value`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound(
    serialize = "K: Serialize + Ord",
    deserialize = "K: Deserialize<'de> + Ord"
))]
pub struct ValueBundle<K> {
    /// Value (loss) of the combined network inference I_i.
    pub combined_value: f64,
    /// Per forecaster k: value of the forecast-implied inference I_ik.
    #[serde(default)]
    pub forecaster_values: BTreeMap<K, f64>,
    /// Per inferer j: value of I_ij.
    #[serde(default)]
    pub inferer_values: BTreeMap<K, f64>,
    /// Value (loss) of the naive network inference I⁻_i.
    pub naive_value: f64,
    /// Per forecaster k: value of the one-in inference I⁺_{ki}.
    #[serde(default)]
    pub one_in_forecaster_values: BTreeMap<K, f64>,
    /// Per withheld forecaster k′: value of I⁻_{k′i}.
    #[serde(default)]
    pub one_out_forecaster_values: BTreeMap<K, f64>,
    /// Per forecaster k, per withheld inferer j′: value of I⁻_{j′ik}.
    #[serde(default)]
    pub one_out_inferer_forecaster_values: BTreeMap<K, BTreeMap<K, f64>>,
    /// Per withheld inferer j′: value of I⁻_{j′i}.
    #[serde(default)]
    pub one_out_inferer_values: BTreeMap<K, f64>,
}

impl<K> ValueBundle<K> {
    /// A bundle with only the combined and naive values.
    pub fn new(combined_value: f64, naive_value: f64) -> Self {
        ValueBundle {
            combined_value,
            naive_value,
            inferer_values: BTreeMap::new(),
            forecaster_values: BTreeMap::new(),
            one_out_inferer_values: BTreeMap::new(),
            one_out_forecaster_values: BTreeMap::new(),
            one_in_forecaster_values: BTreeMap::new(),
            one_out_inferer_forecaster_values: BTreeMap::new(),
        }
    }

    /// Calls `f` on every number of the bundle.
    pub fn for_each_value(&self, mut f: impl FnMut(f64)) {
        f(self.combined_value);
        f(self.naive_value);
        for m in [
            &self.inferer_values,
            &self.forecaster_values,
            &self.one_out_inferer_values,
            &self.one_out_forecaster_values,
            &self.one_in_forecaster_values,
        ] {
            m.values().for_each(|&v| f(v));
        }
        for m in self.one_out_inferer_forecaster_values.values() {
            m.values().for_each(|&v| f(v));
        }
    }

    /// Error if any number is NaN or infinite.
    pub fn check_finite(&self, what: &str) -> Result<(), MathError> {
        let mut bad = None;
        self.for_each_value(|v| {
            if bad.is_none() && !v.is_finite() {
                bad = Some(v);
            }
        });
        match bad {
            Some(value) => Err(MathError::NonFinite {
                what: what.to_string(),
                value,
            }),
            None => Ok(()),
        }
    }
}

/// One position of the reputer loss vector (see [`loss_vectors`]).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum LossEntry<K> {
    /// `combined_value`.
    Combined,
    /// `naive_value`.
    Naive,
    /// `inferer_values[j]`.
    Inferer(K),
    /// `forecaster_values[k]`.
    Forecaster(K),
    /// `one_out_inferer_forecaster_values[forecaster][withheld]`.
    OneOutInfererForecaster {
        /// Forecaster k.
        forecaster: K,
        /// Withheld inferer j′.
        withheld: K,
    },
    /// `one_out_inferer_values[j′]`.
    OneOutInferer(K),
    /// `one_out_forecaster_values[k′]`.
    OneOutForecaster(K),
    /// `one_in_forecaster_values[k]`.
    OneInForecaster(K),
}

/// Stake-weighted network losses, `CalcNetworkLosses`.
///
/// For every entry separately, `L = Σ_m S_m·L_m / Σ_m S_m` over the reputers `m` (in key order)
/// that report that entry. Entries whose stakes sum to 0 are dropped; the combined and naive
/// values need a positive total stake.
///
/// Errors: no bundles, a bundle without a stake, a negative or non-finite stake, a non-finite
/// value, total stake 0.
pub fn network_losses<R: Ord, K: Ord + Clone>(
    bundles: &BTreeMap<R, ValueBundle<K>>,
    stakes: &BTreeMap<R, f64>,
) -> Result<ValueBundle<K>, MathError> {
    if bundles.is_empty() {
        return Err(MathError::Empty("no reputer loss bundles"));
    }
    let mut list: Vec<(f64, &ValueBundle<K>)> = Vec::with_capacity(bundles.len());
    for (r, b) in bundles {
        let s = *stakes
            .get(r)
            .ok_or_else(|| MathError::LengthMismatch("a reputer bundle has no stake".into()))?;
        finite("reputer stake", s)?;
        if s < 0.0 {
            return Err(MathError::InvalidParameter {
                name: "stake",
                reason: format!("must be >= 0, got {s}"),
            });
        }
        b.check_finite("reported loss")?;
        list.push((s, b));
    }

    let scalar = |get: &dyn Fn(&ValueBundle<K>) -> f64| -> Result<f64, MathError> {
        let (mut num, mut den) = (0.0, 0.0);
        for (s, b) in &list {
            num += s * get(b);
            den += s;
        }
        if den == 0.0 {
            return Err(MathError::DivisionByZero("total reputer stake is zero"));
        }
        Ok(num / den)
    };
    let combined = scalar(&|b| b.combined_value)?;
    let naive = scalar(&|b| b.naive_value)?;

    let mut out = ValueBundle::new(combined, naive);
    out.inferer_values = per_worker(&list, |b| Some(&b.inferer_values));
    out.forecaster_values = per_worker(&list, |b| Some(&b.forecaster_values));
    out.one_out_inferer_values = per_worker(&list, |b| Some(&b.one_out_inferer_values));
    out.one_out_forecaster_values = per_worker(&list, |b| Some(&b.one_out_forecaster_values));
    out.one_in_forecaster_values = per_worker(&list, |b| Some(&b.one_in_forecaster_values));
    let forecasters: BTreeSet<&K> = list
        .iter()
        .flat_map(|(_, b)| b.one_out_inferer_forecaster_values.keys())
        .collect();
    for k in forecasters {
        let m = per_worker(&list, |b| b.one_out_inferer_forecaster_values.get(k));
        if !m.is_empty() {
            out.one_out_inferer_forecaster_values.insert(k.clone(), m);
        }
    }
    Ok(out)
}

/// Stake-weighted mean per worker over the reputers that report the worker.
fn per_worker<'b, K: Ord + Clone + 'b>(
    list: &[(f64, &'b ValueBundle<K>)],
    get: impl Fn(&'b ValueBundle<K>) -> Option<&'b BTreeMap<K, f64>>,
) -> BTreeMap<K, f64> {
    let mut acc: BTreeMap<K, (f64, f64)> = BTreeMap::new();
    for (s, b) in list {
        if let Some(m) = get(b) {
            for (k, v) in m {
                let e = acc.entry(k.clone()).or_insert((0.0, 0.0));
                e.0 += s * v;
                e.1 += s;
            }
        }
    }
    acc.into_iter()
        .filter(|(_, (_, d))| *d != 0.0)
        .map(|(k, (n, d))| (k, n / d))
        .collect()
}

/// The layout of the reputer loss vectors: the union of the entries of all bundles, in
/// `ExtractValues` order (combined, naive, inferers, forecasters, one-out inferer–forecaster by
/// forecaster then withheld inferer, one-out inferers, one-out forecasters, one-in forecasters).
pub fn loss_layout<'a, K: Ord + Clone + 'a>(
    bundles: impl IntoIterator<Item = &'a ValueBundle<K>>,
) -> Vec<LossEntry<K>> {
    let mut inf = BTreeSet::new();
    let mut fc = BTreeSet::new();
    let mut oo_if = BTreeSet::new();
    let mut oo_i = BTreeSet::new();
    let mut oo_f = BTreeSet::new();
    let mut oi = BTreeSet::new();
    for b in bundles {
        inf.extend(b.inferer_values.keys().cloned());
        fc.extend(b.forecaster_values.keys().cloned());
        for (k, m) in &b.one_out_inferer_forecaster_values {
            for j in m.keys() {
                oo_if.insert((k.clone(), j.clone()));
            }
        }
        oo_i.extend(b.one_out_inferer_values.keys().cloned());
        oo_f.extend(b.one_out_forecaster_values.keys().cloned());
        oi.extend(b.one_in_forecaster_values.keys().cloned());
    }
    let mut v = vec![LossEntry::Combined, LossEntry::Naive];
    v.extend(inf.into_iter().map(LossEntry::Inferer));
    v.extend(fc.into_iter().map(LossEntry::Forecaster));
    v.extend(oo_if.into_iter().map(
        |(forecaster, withheld)| LossEntry::OneOutInfererForecaster {
            forecaster,
            withheld,
        },
    ));
    v.extend(oo_i.into_iter().map(LossEntry::OneOutInferer));
    v.extend(oo_f.into_iter().map(LossEntry::OneOutForecaster));
    v.extend(oi.into_iter().map(LossEntry::OneInForecaster));
    v
}

/// The value of one layout entry in a bundle, NaN if absent (`EnsureWorkerPresence`).
pub fn loss_entry<K: Ord>(b: &ValueBundle<K>, e: &LossEntry<K>) -> f64 {
    let get = |m: &BTreeMap<K, f64>, k: &K| m.get(k).copied().unwrap_or(f64::NAN);
    match e {
        LossEntry::Combined => b.combined_value,
        LossEntry::Naive => b.naive_value,
        LossEntry::Inferer(k) => get(&b.inferer_values, k),
        LossEntry::Forecaster(k) => get(&b.forecaster_values, k),
        LossEntry::OneOutInfererForecaster {
            forecaster,
            withheld,
        } => b
            .one_out_inferer_forecaster_values
            .get(forecaster)
            .and_then(|m| m.get(withheld))
            .copied()
            .unwrap_or(f64::NAN),
        LossEntry::OneOutInferer(k) => get(&b.one_out_inferer_values, k),
        LossEntry::OneOutForecaster(k) => get(&b.one_out_forecaster_values, k),
        LossEntry::OneInForecaster(k) => get(&b.one_in_forecaster_values, k),
    }
}

/// Loss vectors of the reputers (in the order of `bundles`), one entry per [`loss_layout`]
/// position; entries a reputer did not report are NaN.
pub fn loss_vectors<'a, K: Ord + Clone + 'a>(
    bundles: &[&'a ValueBundle<K>],
) -> (Vec<LossEntry<K>>, Vec<Vec<f64>>) {
    let layout = loss_layout(bundles.iter().copied());
    let vectors = bundles
        .iter()
        .map(|b| layout.iter().map(|e| loss_entry(b, e)).collect())
        .collect();
    (layout, vectors)
}
