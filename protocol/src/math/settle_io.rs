//! The `chorus settle` JSON: everything computed once the ground truth is known — network
//! losses, new regrets, reputer scores and listening coefficients, worker scores, reward
//! fractions, smoothed fractions, entropies, τ, χ, γ, task rewards and per-actor rewards.
//! The format is documented in `docs/settle.md`; field names follow allora-chain where it has
//! one. Output is printed like [`super::synth_io`] (sorted keys, one-space indent, Python float
//! repr).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::error::MathError;
use super::json::{classify_parse_error, to_pretty_json};
use super::losses::{ValueBundle, network_losses};
use super::payout::{RemainderPolicy, split_amount};
use super::regrets::{NetworkRegrets, update_regrets};
use super::reputer::{ReputerParams, reputer_scores_keyed};
use super::rewards::{
    RewardParams, TaskRewards, forecasting_performance_score, forecasting_utility,
    normalization_factor, reputer_reward_fractions, rewards_per_actor, score_fractions_keyed,
    smoothed_fractions, task_rewards,
};
use super::scores::{forecaster_scores, inferer_scores};

/// Errors of [`settle_json`]; the CLI maps every one to exit code 2.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum SettleError {
    /// The input is not valid JSON or not of the expected shape.
    #[error("bad JSON input: {0}")]
    BadJson(String),
    /// A number is NaN or infinite (e.g. `1e999`).
    #[error("non-finite number in input: {0}")]
    NonFinite(String),
    /// No reputer value bundle.
    #[error("no reputer value bundles in input")]
    NoReputers,
    /// A parameter is out of range, a stake is missing, or another math error.
    #[error("invalid input: {0}")]
    Invalid(String),
}

impl From<MathError> for SettleError {
    fn from(e: MathError) -> Self {
        match e {
            MathError::NonFinite { .. } => SettleError::NonFinite(e.to_string()),
            MathError::Empty("no reputer loss bundles") | MathError::Empty("no reputer losses") => {
                SettleError::NoReputers
            }
            other => SettleError::Invalid(other.to_string()),
        }
    }
}

fn default_alpha_regret() -> f64 {
    0.1
}

/// Parameters of the settle step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SettleParams {
    /// Topic `AlphaRegret` (default 0.1).
    #[serde(default = "default_alpha_regret")]
    pub alpha_regret: f64,
    /// Topic `InitialRegret`: the previous regret of workers without one (default 0).
    #[serde(default)]
    pub initial_regret: f64,
    /// Reputer gradient-descent parameters (v0.6 defaults).
    #[serde(default)]
    pub reputer: ReputerParams,
    /// Reward parameters (defaults: the fixture's values, see [`RewardParams`]).
    #[serde(default)]
    pub rewards: RewardParams,
}

impl Default for SettleParams {
    fn default() -> Self {
        SettleParams {
            alpha_regret: default_alpha_regret(),
            initial_regret: 0.0,
            reputer: ReputerParams::default(),
            rewards: RewardParams::default(),
        }
    }
}

/// Previous smoothed reward fractions per task.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TaskMaps {
    /// Forecast task.
    #[serde(default)]
    pub forecaster: BTreeMap<String, f64>,
    /// Inference task.
    #[serde(default)]
    pub inferer: BTreeMap<String, f64>,
    /// Reputer task.
    #[serde(default)]
    pub reputer: BTreeMap<String, f64>,
}

/// The `chorus settle` input document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SettleJsonInput {
    /// Parameters.
    #[serde(default)]
    pub params: SettleParams,
    /// Reported log10 losses per reputer (`ReputerValueBundle.ValueBundle`).
    pub reputer_value_bundles: BTreeMap<String, ValueBundle<String>>,
    /// `StakeReputerAuthority` per reputer.
    pub reputer_stakes: BTreeMap<String, f64>,
    /// Regrets stored after the previous epoch.
    #[serde(default)]
    pub previous_regrets: NetworkRegrets<String>,
    /// Stored listening coefficients (missing = 1).
    #[serde(default)]
    pub listening_coefficients: BTreeMap<String, f64>,
    /// Earlier inferer scores, single scores newest first (this epoch's are prepended).
    #[serde(default)]
    pub inferer_score_history: Vec<f64>,
    /// Earlier forecaster scores, newest first.
    #[serde(default)]
    pub forecaster_score_history: Vec<f64>,
    /// Smoothed fractions stored after the previous epoch.
    #[serde(default)]
    pub previous_smoothed_fractions: TaskMaps,
    /// τ_{i−1} (`PreviousForecasterScoreRatio`, default 0).
    #[serde(default)]
    pub previous_forecaster_score_ratio: f64,
    /// E_{t,i}: the topic's reward for this epoch.
    pub topic_reward: f64,
    /// Optional integer amount (base units) to pay out in proportion to the per-actor rewards.
    #[serde(default)]
    pub topic_reward_base_units: Option<u128>,
}

/// Entropies of the three tasks.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Entropies {
    /// G_i.
    pub forecaster: f64,
    /// F_i.
    pub inferer: f64,
    /// H_i.
    pub reputer: f64,
}

/// Task rewards U, V, W.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TaskRewardsOut {
    /// V_i.
    pub forecasters: f64,
    /// U_i.
    pub inferers: f64,
    /// W_i.
    pub reputers: f64,
}

/// Integer payouts (only with `topic_reward_base_units`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PayoutsOut {
    /// Per forecaster.
    pub forecasters: BTreeMap<String, u128>,
    /// Per inferer.
    pub inferers: BTreeMap<String, u128>,
    /// Undistributed base units (floor rounding; back to the pool).
    pub remainder: u128,
    /// Per reputer (before the delegator split).
    pub reputers: BTreeMap<String, u128>,
}

/// The `chorus settle` output document (fields in alphabetical order = printed order).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SettleJsonOutput {
    /// Ŝ_m at the coefficients that produced the scores.
    pub adjusted_stakes: BTreeMap<String, f64>,
    /// χ.
    pub chi: f64,
    /// F, G, H.
    pub entropies: Entropies,
    /// v_ik.
    pub forecaster_reward_fractions: BTreeMap<String, f64>,
    /// V_ik.
    pub forecaster_rewards: BTreeMap<String, f64>,
    /// τ_i.
    pub forecaster_score_ratio: f64,
    /// T_ik.
    pub forecaster_scores: BTreeMap<String, f64>,
    /// T_i = L⁻_i − L_i.
    pub forecaster_task_score: f64,
    /// γ.
    pub gamma: f64,
    /// u_ij.
    pub inferer_reward_fractions: BTreeMap<String, f64>,
    /// U_ij.
    pub inferer_rewards: BTreeMap<String, f64>,
    /// T_ij.
    pub inferer_scores: BTreeMap<String, f64>,
    /// New listening coefficients.
    pub listening_coefficients: BTreeMap<String, f64>,
    /// Stake-weighted network losses.
    pub network_losses: ValueBundle<String>,
    /// Integer payouts, if requested.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payouts: Option<PayoutsOut>,
    /// Updated regrets (previous ones with this epoch's updates).
    pub regrets: NetworkRegrets<String>,
    /// w_m.
    pub reputer_reward_fractions: BTreeMap<String, f64>,
    /// W_im (before the delegator split).
    pub reputer_rewards: BTreeMap<String, f64>,
    /// T_m.
    pub reputer_scores: BTreeMap<String, f64>,
    /// Smoothed (normalized) fractions, to store for the next epoch.
    pub smoothed_fractions: TaskMaps,
    /// U, V, W.
    pub task_rewards: TaskRewardsOut,
}

fn history(current: &BTreeMap<String, f64>, earlier: &[f64], n: usize) -> Vec<f64> {
    current
        .values()
        .copied()
        .chain(earlier.iter().copied())
        .take(n)
        .collect()
}

/// Runs the settle computation on a parsed input.
pub fn settle(input: &SettleJsonInput) -> Result<SettleJsonOutput, SettleError> {
    let p = &input.params;
    let rp = &p.rewards;
    check_input(input)?;
    let losses = network_losses(&input.reputer_value_bundles, &input.reputer_stakes)?;
    let regrets = update_regrets(
        &input.previous_regrets,
        &losses,
        p.alpha_regret,
        p.initial_regret,
    )?;
    let (rep, _) = reputer_scores_keyed(
        &input.reputer_value_bundles,
        &input.reputer_stakes,
        &input.listening_coefficients,
        &p.reputer,
    )?;
    let t_inf = inferer_scores(&losses);
    let t_fc = forecaster_scores(&losses);
    let u = worker_fractions(
        &t_inf,
        &input.inferer_score_history,
        rp,
        rp.p_reward_inference,
        rp.c_reward_inference,
    )?;
    let v = worker_fractions(
        &t_fc,
        &input.forecaster_score_history,
        rp,
        rp.p_reward_forecast,
        rp.c_reward_forecast,
    )?;
    let w = reputer_fractions(&rep.scores, &input.reputer_stakes, rp.p_reward_reputer)?;
    let prev = &input.previous_smoothed_fractions;
    let sf = smoothed_fractions(&u, &prev.inferer, rp.task_reward_alpha, rp.beta_entropy)?;
    let sg = smoothed_fractions(&v, &prev.forecaster, rp.task_reward_alpha, rp.beta_entropy)?;
    let sh = smoothed_fractions(&w, &prev.reputer, rp.task_reward_alpha, rp.beta_entropy)?;
    let f = sf.entropy;
    // G = 0 without forecasters or with at most one inferer (spec §3.4)
    let g = if v.is_empty() || losses.inferer_values.len() <= 1 {
        0.0
    } else {
        sg.entropy
    };
    let h = sh.entropy;
    let ti = forecasting_performance_score(losses.naive_value, losses.combined_value);
    let fu = forecasting_utility(
        ti,
        &t_inf.values().copied().collect::<Vec<_>>(),
        input.previous_forecaster_score_ratio,
        rp.task_reward_alpha,
    );
    let (gamma, tr) = task_rewards_or_none(input.topic_reward, f, g, h, fu.chi)?;
    let inferer_rewards = rewards_per_actor(&u, tr.inferers);
    let forecaster_rewards = rewards_per_actor(&v, tr.forecasters);
    let reputer_rewards = rewards_per_actor(&w, tr.reputers);
    let payouts = match input.topic_reward_base_units {
        None => None,
        Some(total) => Some(payouts(
            total,
            &forecaster_rewards,
            &inferer_rewards,
            &reputer_rewards,
        )?),
    };
    Ok(SettleJsonOutput {
        adjusted_stakes: rep.adjusted_stakes,
        chi: fu.chi,
        entropies: Entropies {
            forecaster: g,
            inferer: f,
            reputer: h,
        },
        forecaster_reward_fractions: v,
        forecaster_rewards,
        forecaster_score_ratio: fu.tau,
        forecaster_scores: t_fc,
        forecaster_task_score: ti,
        gamma,
        inferer_reward_fractions: u,
        inferer_rewards,
        inferer_scores: t_inf,
        listening_coefficients: rep.coefficients,
        network_losses: losses,
        payouts,
        regrets,
        reputer_reward_fractions: w,
        reputer_rewards,
        reputer_scores: rep.scores,
        smoothed_fractions: TaskMaps {
            inferer: sf.normalized,
            forecaster: sg.normalized,
            reputer: sh.normalized,
        },
        task_rewards: TaskRewardsOut {
            forecasters: tr.forecasters,
            inferers: tr.inferers,
            reputers: tr.reputers,
        },
    })
}

/// At least one reputer bundle; every history value, ratio, reward and regret parameter
/// finite.
fn check_input(input: &SettleJsonInput) -> Result<(), SettleError> {
    let p = &input.params;
    if input.reputer_value_bundles.is_empty() {
        return Err(SettleError::NoReputers);
    }
    for v in input
        .inferer_score_history
        .iter()
        .chain(&input.forecaster_score_history)
        .chain([
            &input.previous_forecaster_score_ratio,
            &input.topic_reward,
            &p.initial_regret,
            &p.alpha_regret,
        ])
    {
        super::error::finite("input number", *v)?;
    }
    Ok(())
}

/// Reward fractions of inferers or forecasters from this epoch's scores and the earlier ones
/// (the newest `max_samples_to_scale_scores`); none without scores.
fn worker_fractions(
    scores: &BTreeMap<String, f64>,
    earlier: &[f64],
    rp: &RewardParams,
    p_reward: f64,
    c_reward: f64,
) -> Result<BTreeMap<String, f64>, MathError> {
    if scores.is_empty() {
        return Ok(BTreeMap::new());
    }
    let samples = history(scores, earlier, rp.max_samples_to_scale_scores);
    score_fractions_keyed(scores, &samples, p_reward, c_reward, rp.epsilon)
}

/// Reward fractions of reputers from their scores and stakes (a missing stake counts as 0).
fn reputer_fractions(
    scores: &BTreeMap<String, f64>,
    stakes: &BTreeMap<String, f64>,
    p_reward: f64,
) -> Result<BTreeMap<String, f64>, MathError> {
    let stake: Vec<f64> = scores
        .keys()
        .map(|r| stakes.get(r).copied().unwrap_or(0.0))
        .collect();
    let values: Vec<f64> = scores.values().copied().collect();
    Ok(scores
        .keys()
        .cloned()
        .zip(reputer_reward_fractions(&stake, &values, p_reward)?)
        .collect())
}

/// γ and the task rewards of the topic reward; nothing is paid when no worker task carries
/// entropy.
fn task_rewards_or_none(
    topic_reward: f64,
    f: f64,
    g: f64,
    h: f64,
    chi: f64,
) -> Result<(f64, TaskRewards), MathError> {
    match normalization_factor(f, g, chi) {
        Ok(gamma) => Ok((gamma, task_rewards(topic_reward, f, g, h, chi, gamma)?)),
        // No worker task carries entropy (no worker could be scored, e.g. the first epoch after
        // the median path): nothing is paid for this epoch, but losses, regrets, reputer
        // coefficients and scores above still update, as on chain where closing the reputer
        // nonce and paying rewards are separate steps.
        Err(MathError::DivisionByZero(_)) => Ok((
            0.0,
            TaskRewards {
                inferers: 0.0,
                forecasters: 0.0,
                reputers: 0.0,
            },
        )),
        Err(e) => Err(e),
    }
}

/// Integer payouts of `total` base units: one split over all actors, shares = their f64
/// rewards (negative ones count as 0); the remainder stays in the pool.
fn payouts(
    total: u128,
    forecasters: &BTreeMap<String, f64>,
    inferers: &BTreeMap<String, f64>,
    reputers: &BTreeMap<String, f64>,
) -> Result<PayoutsOut, MathError> {
    let mut shares = BTreeMap::new();
    for (tag, m) in [("f", forecasters), ("i", inferers), ("r", reputers)] {
        for (k, x) in m {
            shares.insert((tag, k.clone()), x.max(0.0));
        }
    }
    let split = split_amount(total, &shares, RemainderPolicy::ToPool)?;
    let pick = |tag: &str| -> BTreeMap<String, u128> {
        split
            .amounts
            .iter()
            .filter(|((t, _), _)| *t == tag)
            .map(|((_, k), a)| (k.clone(), *a))
            .collect()
    };
    Ok(PayoutsOut {
        forecasters: pick("f"),
        inferers: pick("i"),
        remainder: split.remainder,
        reputers: pick("r"),
    })
}

/// Parses a `chorus settle` input document.
pub fn parse_settle_input(input: &str) -> Result<SettleJsonInput, SettleError> {
    serde_json::from_str(input).map_err(|e| {
        let (msg, non_finite) = classify_parse_error(&e);
        if non_finite {
            SettleError::NonFinite(msg)
        } else {
            SettleError::BadJson(msg)
        }
    })
}

/// `chorus settle`: input JSON → output JSON (pretty, sorted keys, no trailing newline).
pub fn settle_json(input: &str) -> Result<String, SettleError> {
    let parsed = parse_settle_input(input)?;
    let out = settle(&parsed)?;
    to_pretty_json(&out).map_err(|e| SettleError::Invalid(e.to_string()))
}
