//! The one-out and one-in network inferences: each inferer withheld (I⁻_{j′i}, with every
//! forecast-implied inference recomputed without it, I⁻_{j′ik}), each forecaster withheld
//! (I⁻_{k′i}) and each forecaster alone with the inferers (I⁺_{ki}).

use std::collections::BTreeMap;

use super::combined::{CombinedParts, regrets_for, weighted_value};
use super::forecast_implied::{forecast_implied_reference, one_out_forecast_implied_fast};
use super::{Prepared, SynthesisInput};
use crate::math::error::MathError;
use crate::math::weights::WeightedSum;

/// The forecast-implied inferences of the kept forecasters recomputed without each inferer:
/// `[withheld inferer j′][kept forecaster f]`. A forecast without an element on j′ (or whose
/// value does not change) keeps its full value.
pub(super) struct OneOutImplied {
    /// Kept forecasters (the row length).
    nf: usize,
    values: Vec<Option<f64>>,
}

impl OneOutImplied {
    /// Recompute with the exact shared kernel (`fast`, `allora-v0.6`) or from scratch.
    pub(super) fn new<K: Ord>(p: &Prepared<'_, K>, c: &CombinedParts, fast: bool) -> Self {
        let (ni, nf) = (p.inferers.len(), c.kept.len());
        let mut values: Vec<Option<f64>> = Vec::with_capacity(ni * nf);
        for _ in 0..ni {
            values.extend(c.fi.iter().copied());
        }
        for (f, &fk) in c.kept.iter().enumerate() {
            if fast && p.v06_kernels() {
                one_out_forecast_implied_fast(p, fk, |j, v| values[j * nf + f] = v);
            } else {
                for &(j, _) in &p.elems[fk] {
                    values[j * nf + f] = forecast_implied_reference(p, fk, Some(j));
                }
            }
        }
        OneOutImplied { nf, values }
    }

    /// The kept forecasters' values without inferer `j`.
    fn without(&self, j: usize) -> &[Option<f64>] {
        &self.values[j * self.nf..(j + 1) * self.nf]
    }

    /// I⁻_{j′ik} as `[forecaster k][withheld inferer j′]`.
    pub(super) fn by_forecaster<K: Ord + Clone>(
        &self,
        p: &Prepared<'_, K>,
        fk_keys: &[&K],
    ) -> BTreeMap<K, BTreeMap<K, f64>> {
        fk_keys
            .iter()
            .enumerate()
            .map(|(f, k)| {
                let m: BTreeMap<K, f64> = (0..p.inferers.len())
                    .filter_map(|j| self.without(j)[f].map(|v| (p.inferers[j].clone(), v)))
                    .collect();
                ((*k).clone(), m)
            })
            .collect()
    }
}

/// I⁻_{j′i} per withheld inferer j′: the plain mean of the others when all inferers are new,
/// otherwise the weighted value of the others and of the forecast-implied inferences without
/// j′, under j′'s one-out regrets.
pub(super) fn one_out_inferer_values<K: Ord + Clone>(
    p: &Prepared<'_, K>,
    input: &SynthesisInput<K>,
    fk_keys: &[&K],
    one_out: &OneOutImplied,
) -> Result<BTreeMap<K, f64>, MathError> {
    let ni = p.inferers.len();
    let mut out = BTreeMap::new();
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
                p,
                input.regrets.one_out_inferer_inferer.get(key),
                &rest,
                input.regrets.one_out_inferer_forecaster.get(key),
                fk_keys,
            )?;
            let mut values: Vec<Option<f64>> = p
                .values
                .iter()
                .enumerate()
                .filter(|&(j, _)| j != jw)
                .map(|(_, &v)| Some(v))
                .collect();
            values.extend(one_out.without(jw).iter().copied());
            weighted_value(p, &regrets, values, ni - 1)?.value
        };
        out.insert(key.clone(), value);
    }
    Ok(out)
}

/// The network inferences without, or with only, each forecaster.
pub(super) struct ForecasterValues<K> {
    /// I⁻_{k′i} per withheld forecaster.
    pub(super) one_out: BTreeMap<K, f64>,
    /// I⁺_{ki} per forecaster.
    pub(super) one_in: BTreeMap<K, f64>,
}

/// Per kept forecaster k′ (at least two): the one-out value I⁻_{k′i} (the others, under k′'s
/// one-out regrets) and the one-in value I⁺_{ki} (the inferers and k alone, under its one-in
/// regrets).
pub(super) fn forecaster_values<K: Ord + Clone>(
    p: &Prepared<'_, K>,
    input: &SynthesisInput<K>,
    c: &CombinedParts,
    fk_keys: &[&K],
) -> Result<ForecasterValues<K>, MathError> {
    let ni = p.inferers.len();
    let (mut one_out, mut one_in) = (BTreeMap::new(), BTreeMap::new());
    let inferer_values: Vec<Option<f64>> = p.values.iter().map(|&v| Some(v)).collect();
    let mut others: Vec<&K> = Vec::with_capacity(fk_keys.len().saturating_sub(1));
    for (f, kw) in fk_keys.iter().enumerate() {
        others.clear();
        others.extend(
            fk_keys
                .iter()
                .enumerate()
                .filter(|&(g, _)| g != f)
                .map(|(_, k)| *k),
        );
        let regrets = regrets_for(
            p,
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
        let v = weighted_value(p, &regrets, values, ni)?.value;
        one_out.insert((*kw).clone(), v);

        let regrets_in = input.regrets.one_in_forecaster.get(*kw);
        let regrets = regrets_for(p, regrets_in, &p.inferers, regrets_in, &[*kw])?;
        let mut values = inferer_values.clone();
        values.push(c.fi[f]);
        let v = weighted_value(p, &regrets, values, ni)?.value;
        one_in.insert((*kw).clone(), v);
    }
    Ok(ForecasterValues { one_out, one_in })
}
