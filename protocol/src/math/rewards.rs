//! Reward fractions, smoothed fractions, entropies, forecast utility χ, normalization γ and the
//! split of a topic's reward between inferers, forecasters and reputers (spec §2.4, §3.3–3.5,
//! allora-chain `module/rewards/worker_rewards.go`, `reputer_rewards.go`, `rewards_internal.go`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::error::{MathError, finite};
use super::util::{ema, phi, std_dev};

/// `EntropyForSingleParticipant`: the entropy of a task with one participant.
pub const ENTROPY_FOR_SINGLE_PARTICIPANT: f64 = 0.173286795139986;

/// Reward parameters (fixture values in [`Default`]; the v0.6 chain defaults differ for
/// `p_reward_inference` = 1 and `p_reward_reputer` = 3, see spec §3.9).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RewardParams {
    /// `PRewardInference` (fixture 3).
    pub p_reward_inference: f64,
    /// `PRewardForecast` (3).
    pub p_reward_forecast: f64,
    /// `PRewardReputer` (fixture 1).
    pub p_reward_reputer: f64,
    /// `CRewardInference` (0.75).
    pub c_reward_inference: f64,
    /// `CRewardForecast` (0.75).
    pub c_reward_forecast: f64,
    /// `TaskRewardAlpha` (0.1): EMA of the fractions and of τ.
    pub task_reward_alpha: f64,
    /// β, `BetaEntropy` (0.25).
    pub beta_entropy: f64,
    /// Topic ε (0.01): the reward mapping's σ_T + ε and the equal-split cutoff.
    pub epsilon: f64,
    /// `MaxSamplesToScaleScores` (10).
    pub max_samples_to_scale_scores: usize,
}

impl Default for RewardParams {
    fn default() -> Self {
        RewardParams {
            p_reward_inference: 3.0,
            p_reward_forecast: 3.0,
            p_reward_reputer: 1.0,
            c_reward_inference: 0.75,
            c_reward_forecast: 0.75,
            task_reward_alpha: 0.1,
            beta_entropy: 0.25,
            epsilon: 0.01,
            max_samples_to_scale_scores: 10,
        }
    }
}

/// `GetMappingFunctionValues`: `M_l = φ_p(T_l / (σ_T + ε))` with σ_T = |sample std of the
/// score history|; every M_l = 1 (equal split) when σ_T < ε.
///
/// `history` is the last `MaxSamplesToScaleScores` stored scores of the task (newest block
/// first, this block included: single scores, not epochs).
pub fn mapping_values(scores: &[f64], history: &[f64], p: f64, c: f64, epsilon: f64) -> Vec<f64> {
    let sigma = std_dev(history).abs();
    if sigma < epsilon {
        return vec![1.0; scores.len()];
    }
    scores
        .iter()
        .map(|&t| phi(p, c, t / (sigma + epsilon)))
        .collect()
}

/// `GetScoreFractions`: `u_l = M_l / Σ M`.
///
/// Errors: empty, non-finite scores, Σ M == 0.
pub fn score_fractions(
    scores: &[f64],
    history: &[f64],
    p: f64,
    c: f64,
    epsilon: f64,
) -> Result<Vec<f64>, MathError> {
    if scores.is_empty() {
        return Err(MathError::Empty("no scores"));
    }
    for &v in scores.iter().chain(history) {
        finite("score", v)?;
    }
    let m = mapping_values(scores, history, p, c, epsilon);
    let total = m.iter().fold(0.0, |a, x| a + x);
    if total == 0.0 || !total.is_finite() {
        return Err(MathError::DivisionByZero("sum of mapped scores"));
    }
    Ok(m.iter().map(|x| x / total).collect())
}

/// [`score_fractions`] on keyed scores.
pub fn score_fractions_keyed<K: Ord + Clone>(
    scores: &BTreeMap<K, f64>,
    history: &[f64],
    p: f64,
    c: f64,
    epsilon: f64,
) -> Result<BTreeMap<K, f64>, MathError> {
    let v: Vec<f64> = scores.values().copied().collect();
    let u = score_fractions(&v, history, p, c, epsilon)?;
    Ok(scores.keys().cloned().zip(u).collect())
}

/// `CalculateReputerRewardFractions`: `w_m = (S_m·T_m)^p / Σ (S·T)^p` (instant scores, stakes at
/// reward time).
pub fn reputer_reward_fractions(
    stakes: &[f64],
    scores: &[f64],
    p_reward: f64,
) -> Result<Vec<f64>, MathError> {
    if stakes.len() != scores.len() {
        return Err(MathError::LengthMismatch("stakes and scores".into()));
    }
    if stakes.is_empty() {
        return Err(MathError::Empty("no reputers"));
    }
    let mut raw = Vec::with_capacity(stakes.len());
    let mut total = 0.0;
    for (&s, &t) in stakes.iter().zip(scores) {
        finite("stake", s)?;
        finite("reputer score", t)?;
        let x = s * t;
        let x = if p_reward == 1.0 {
            x
        } else {
            libm::pow(x, p_reward)
        };
        total += x;
        raw.push(x);
    }
    if total == 0.0 || !total.is_finite() {
        return Err(MathError::DivisionByZero("sum of reputer (stake·score)^p"));
    }
    Ok(raw.iter().map(|x| x / total).collect())
}

/// Smoothed fractions of one task ([`smoothed_fractions`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound(
    serialize = "K: Serialize + Ord",
    deserialize = "K: Deserialize<'de> + Ord"
))]
pub struct SmoothedFractions<K> {
    /// f̃_l = EMA(α, u_l, f_prev_l) (un-normalized).
    pub ema: BTreeMap<K, f64>,
    /// f_l = f̃_l / Σ f̃ (stored as the next epoch's previous fractions).
    pub normalized: BTreeMap<K, f64>,
    /// N_eff = 1 / Σ f̃² (on the un-normalized values).
    pub n_eff: f64,
    /// H = −Σ f ln f · (N_eff/N)^β; [`ENTROPY_FOR_SINGLE_PARTICIPANT`] for N = 1, 0 for N = 0.
    pub entropy: f64,
}

/// `getInferenceOrForecastTaskEntropy` / `GetReputerTaskEntropy`: EMA-smoothed fractions, N_eff
/// and the modified entropy of one task. Actors without a previous fraction start at their
/// instant fraction (`noPrior`).
pub fn smoothed_fractions<K: Ord + Clone>(
    instant: &BTreeMap<K, f64>,
    previous: &BTreeMap<K, f64>,
    alpha: f64,
    beta: f64,
) -> Result<SmoothedFractions<K>, MathError> {
    for &v in instant.values().chain(previous.values()) {
        finite("reward fraction", v)?;
    }
    let ema_map: BTreeMap<K, f64> = instant
        .iter()
        .map(|(k, &u)| {
            let f = match previous.get(k) {
                Some(&p) => ema(alpha, u, p, false),
                None => u,
            };
            (k.clone(), f)
        })
        .collect();
    let n = ema_map.len();
    let sum = ema_map.values().fold(0.0, |a, x| a + x);
    let sum_sq = ema_map.values().fold(0.0, |a, x| a + x * x);
    let normalized: BTreeMap<K, f64> = if sum != 0.0 {
        ema_map.iter().map(|(k, &f)| (k.clone(), f / sum)).collect()
    } else {
        ema_map.clone()
    };
    let n_eff = if sum_sq != 0.0 { 1.0 / sum_sq } else { 0.0 };
    let entropy = match n {
        0 => 0.0,
        1 => ENTROPY_FOR_SINGLE_PARTICIPANT,
        _ => {
            let h = normalized
                .values()
                .fold(0.0, |a, &f| if f > 0.0 { a - f * libm::log(f) } else { a });
            h * libm::pow(n_eff / n as f64, beta)
        }
    };
    Ok(SmoothedFractions {
        ema: ema_map,
        normalized,
        n_eff,
        entropy,
    })
}

/// `ForecastingPerformanceScore`: `T_i = L⁻_i − L_i` (naive minus combined log loss).
pub fn forecasting_performance_score(naive_loss: f64, combined_loss: f64) -> f64 {
    naive_loss - combined_loss
}

/// Result of [`forecasting_utility`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ForecastingUtility {
    /// τ_i (stored as `PreviousForecasterScoreRatio`).
    pub tau: f64,
    /// χ.
    pub chi: f64,
}

/// `ForecastingUtility`: `M = max(0, max_j T_ij)`,
/// `τ_i = EMA(α, (T_i − min(0, M)) / |M|, τ_{i−1})`; if M = 0: T_i = 0 → χ = 0.5 and τ = 0,
/// otherwise |M| is replaced by |T_i|. χ = 0.1 if τ < 0, 0.4·τ + 0.1 if 0 ≤ τ < 1, else 0.5.
pub fn forecasting_utility(
    forecasting_performance_score: f64,
    inferer_scores: &[f64],
    previous_tau: f64,
    alpha: f64,
) -> ForecastingUtility {
    let t = forecasting_performance_score;
    let m = inferer_scores
        .iter()
        .fold(0.0, |m: f64, &s| if s > m { s } else { m });
    let denominator = if m == 0.0 {
        if t == 0.0 {
            return ForecastingUtility { tau: 0.0, chi: 0.5 };
        }
        t.abs()
    } else {
        m.abs()
    };
    let min0 = if m < 0.0 { m } else { 0.0 };
    let ratio = (t - min0) / denominator;
    let tau = ema(alpha, ratio, previous_tau, false);
    let chi = if tau < 0.0 {
        0.1
    } else if tau < 1.0 {
        0.4 * tau + 0.1
    } else {
        0.5
    };
    ForecastingUtility { tau, chi }
}

/// `NormalizationFactor`: `γ = (F + G) / ((1 − χ)·F + χ·G)`.
pub fn normalization_factor(
    entropy_inference: f64,
    entropy_forecast: f64,
    chi: f64,
) -> Result<f64, MathError> {
    let d = (1.0 - chi) * entropy_inference + chi * entropy_forecast;
    if d == 0.0 {
        return Err(MathError::DivisionByZero("(1 − χ)·F + χ·G"));
    }
    Ok((entropy_inference + entropy_forecast) / d)
}

/// The three task rewards of a topic.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TaskRewards {
    /// U_i = (1 − χ)·γ·F·E / (F + G + H).
    pub inferers: f64,
    /// V_i = χ·γ·G·E / (F + G + H).
    pub forecasters: f64,
    /// W_i = H·E / (F + G + H).
    pub reputers: f64,
}

/// `GetRewardFor{Inference,Forecasting,Reputer}TaskInTopic`. U + V + W = E up to rounding.
///
/// `G` must be 0 when there are no forecasters or at most one inferer (spec §3.4).
pub fn task_rewards(
    topic_reward: f64,
    entropy_inference: f64,
    entropy_forecast: f64,
    entropy_reputer: f64,
    chi: f64,
    gamma: f64,
) -> Result<TaskRewards, MathError> {
    let (f, g, h, e) = (
        entropy_inference,
        entropy_forecast,
        entropy_reputer,
        topic_reward,
    );
    for (name, v) in [
        ("F", f),
        ("G", g),
        ("H", h),
        ("E", e),
        ("chi", chi),
        ("gamma", gamma),
    ] {
        finite(name, v)?;
    }
    let total = f + g + h;
    if total == 0.0 {
        return Err(MathError::DivisionByZero("F + G + H"));
    }
    Ok(TaskRewards {
        inferers: (1.0 - chi) * gamma * f * e / total,
        forecasters: chi * gamma * g * e / total,
        reputers: h * e / total,
    })
}

/// `GetRewardPerWorker` / `GetRewardPerReputer`: `reward_l = fraction_l · task_reward`.
pub fn rewards_per_actor<K: Ord + Clone>(
    fractions: &BTreeMap<K, f64>,
    task_reward: f64,
) -> BTreeMap<K, f64> {
    fractions
        .iter()
        .map(|(k, &f)| (k.clone(), f * task_reward))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chi_branches() {
        assert_eq!(
            forecasting_utility(0.0, &[-1.0], 0.3, 0.1),
            ForecastingUtility { tau: 0.0, chi: 0.5 }
        );
        let u = forecasting_utility(-1.0, &[-1.0], 0.0, 0.1);
        assert!(u.tau < 0.0 && u.chi == 0.1);
        let u = forecasting_utility(0.5, &[1.0], 0.5, 0.1);
        assert!((u.tau - 0.5).abs() < 1e-15 && (u.chi - 0.3).abs() < 1e-15);
        assert_eq!(normalization_factor(1.0, 1.0, 0.5).unwrap(), 2.0);
    }

    #[test]
    fn equal_split_below_epsilon() {
        assert_eq!(
            mapping_values(&[1.0, 2.0], &[1.0, 1.0], 3.0, 0.75, 0.01),
            vec![1.0, 1.0]
        );
        let f = score_fractions(&[1.0, 2.0], &[1.0, 1.0], 3.0, 0.75, 0.01).unwrap();
        assert_eq!(f, vec![0.5, 0.5]);
    }
}
