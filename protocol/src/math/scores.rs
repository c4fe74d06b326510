//! Worker performance scores, EMA scores and merit sortition (spec §3.1–3.2, allora-chain
//! `module/rewards/scores.go`, `keeper/ema_scores.go`, `actor_utils/sort.go`).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::error::MathError;
use super::losses::ValueBundle;
use super::mechanism::LAMBDA_INITIAL_SCORE;
use super::util::{cmp_f64, ema, quantile, std_dev};

/// `GenerateInferenceScores`: `T_ij = L⁻_{ji} − L_i` (one-out loss minus combined loss) for every
/// inferer with a one-out value; with exactly one inferer value in the bundle its score is 0.
pub fn inferer_scores<K: Ord + Clone>(losses: &ValueBundle<K>) -> BTreeMap<K, f64> {
    if losses.inferer_values.len() == 1 {
        return losses
            .inferer_values
            .keys()
            .map(|k| (k.clone(), 0.0))
            .collect();
    }
    losses
        .one_out_inferer_values
        .iter()
        .map(|(k, &l)| (k.clone(), l - losses.combined_value))
        .collect()
}

/// `GetfUniqueAgg`: f⁺ = 1 / 2^(N_f − 1).
pub fn f_unique_agg(num_forecasters: usize) -> f64 {
    1.0 / libm::pow(2.0, num_forecasters as f64 - 1.0)
}

/// `GenerateForecastScores`: `T⁻_ik = L⁻_{ki} − L_i`, `T⁺_ik = L⁻_i − L⁺_{ki}`,
/// `T_ik = f⁺·T⁺_ik + (1 − f⁺)·T⁻_ik` with f⁺ from the number of one-out forecaster values; with
/// exactly one forecaster value in the bundle its score is 0. Forecasters need both a one-in and
/// a one-out value.
pub fn forecaster_scores<K: Ord + Clone>(losses: &ValueBundle<K>) -> BTreeMap<K, f64> {
    if losses.forecaster_values.len() == 1 {
        return losses
            .forecaster_values
            .keys()
            .map(|k| (k.clone(), 0.0))
            .collect();
    }
    let f = f_unique_agg(losses.one_out_forecaster_values.len());
    losses
        .one_in_forecaster_values
        .iter()
        .filter_map(|(k, &l_in)| {
            let l_out = *losses.one_out_forecaster_values.get(k)?;
            let t_out = l_out - losses.combined_value;
            let t_in = losses.naive_value - l_in;
            Some((k.clone(), f * t_in + (1.0 - f) * t_out))
        })
        .collect()
}

/// EMA score update (`CalcEma(MeritSortitionAlpha, value, previous, firstTime)`). An active actor
/// passes its instant score, a passive one the topic's previous quantile; `previous == None` is
/// the first time.
pub fn ema_score(alpha: f64, value: f64, previous: Option<f64>) -> f64 {
    match previous {
        None => value,
        Some(p) => ema(alpha, value, p, false),
    }
}

/// The top `n` keys by score, descending (`FindTopNByScoreDesc`). Ties are broken by key order
/// (ascending) — deterministic, where the chain uses an RNG seeded with the block height.
/// Non-finite scores sort last.
pub fn top_n<K: Ord + Clone>(scores: &BTreeMap<K, f64>, n: usize) -> Vec<K> {
    let mut v: Vec<(&K, f64)> = scores
        .iter()
        .map(|(k, &s)| (k, if s.is_finite() { s } else { f64::NEG_INFINITY }))
        .collect();
    // stable sort on the score keeps key order among equal scores
    v.sort_by(|a, b| cmp_f64(&b.1, &a.1));
    v.into_iter().take(n).map(|(k, _)| k.clone()).collect()
}

/// One epoch of merit sortition (the sortition simulator of allora-chain's fixtures).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SortitionEpoch<K: Ord> {
    /// Active set: top `n` by previous EMA.
    pub active: BTreeSet<K>,
    /// Quantile of the active actors' instant scores.
    pub quantile: f64,
    /// Updated EMA of every participant.
    pub ema: BTreeMap<K, f64>,
}

/// Merit sortition for one epoch: the active set is the top `n_active` participants by previous
/// EMA ([`top_n`]); `q`-quantile ([`quantile`]) of the active actors' instant scores; every
/// active actor's EMA moves toward its instant score and every passive one's toward that
/// quantile: `EMA = α·(score if active else quantile) + (1 − α)·EMA_prev`
/// (first time: the value itself).
///
/// `previous_ema` holds every participant (missing from it = first time, ranked last);
/// `scores` the instant score of each participant that would be active (missing → error if it
/// is selected).
pub fn sortition_epoch<K: Ord + Clone>(
    participants: &BTreeSet<K>,
    previous_ema: &BTreeMap<K, f64>,
    scores: &BTreeMap<K, f64>,
    n_active: usize,
    alpha: f64,
    q: f64,
) -> Result<SortitionEpoch<K>, MathError> {
    let ranked: BTreeMap<K, f64> = participants
        .iter()
        .map(|k| {
            (
                k.clone(),
                previous_ema.get(k).copied().unwrap_or(f64::NEG_INFINITY),
            )
        })
        .collect();
    let active: BTreeSet<K> = top_n(&ranked, n_active).into_iter().collect();
    let mut active_scores = Vec::with_capacity(active.len());
    for k in &active {
        active_scores.push(*scores.get(k).ok_or_else(|| {
            MathError::LengthMismatch("an active participant has no score".into())
        })?);
    }
    let qv = quantile(&active_scores, q);
    let ema_map = participants
        .iter()
        .map(|k| {
            let value = if active.contains(k) {
                scores.get(k).copied().unwrap_or(qv)
            } else {
                qv
            };
            (
                k.clone(),
                ema_score(alpha, value, previous_ema.get(k).copied()),
            )
        })
        .collect();
    Ok(SortitionEpoch {
        active,
        quantile: qv,
        ema: ema_map,
    })
}

/// `CalculateTopicInitialEmaScore` (`allora-mad`): the EMA score a newcomer starts from, the
/// lowest of `scores` minus λ = 2 sample standard deviations of them; 0 without scores, the
/// score itself for one.
pub fn initial_ema_score(scores: &[f64]) -> f64 {
    let Some(min) = scores.iter().copied().reduce(f64::min) else {
        return 0.0;
    };
    min - LAMBDA_INITIAL_SCORE * std_dev(scores)
}

/// `NCalcEma` of the liveness penalty (`allora-mad`, `CalculateLivenessPenaltyTo*`): an actor
/// that missed `missed` epochs has its EMA score pulled toward `asymptote` (the newcomer score)
/// as if it had scored `asymptote` in each: `(1 − α)ⁿ · score + (1 − (1 − α)ⁿ) · asymptote`.
/// No missed epoch, or a score already at the asymptote, leaves it unchanged.
pub fn liveness_penalty(alpha: f64, asymptote: f64, score: f64, missed: u64) -> f64 {
    if missed == 0 || score == asymptote {
        return score;
    }
    // saturating: 2³¹ missed epochs pull any score to the asymptote
    let n = i32::try_from(missed).unwrap_or(i32::MAX);
    let keep = libm::pow(1.0 - alpha, f64::from(n));
    keep * score + (1.0 - keep) * asymptote
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_n_ties_by_key() {
        let m: BTreeMap<&str, f64> = [("b", 1.0), ("a", 1.0), ("c", 2.0), ("d", f64::NAN)]
            .into_iter()
            .collect();
        assert_eq!(top_n(&m, 2), vec!["c", "a"]);
        assert_eq!(top_n(&m, 10), vec!["c", "a", "b", "d"]);
    }

    #[test]
    fn single_worker_scores_zero() {
        let mut b: ValueBundle<&str> = ValueBundle::new(-1.0, -0.5);
        b.inferer_values.insert("a", -2.0);
        b.one_out_inferer_values.insert("a", -3.0);
        assert_eq!(inferer_scores(&b)["a"], 0.0);
        assert_eq!(f_unique_agg(3), 0.25);
    }
}
