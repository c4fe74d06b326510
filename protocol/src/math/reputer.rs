//! Reputer consensus scores and listening coefficients (spec §2.3, allora-chain
//! `GetAllReputersOutput`, `GetAllConsensusScores`, `GetAdjustedStake`,
//! `GetStakeWeightedLossMatrix`, `GetConsensusScore`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::error::{MathError, finite};
use super::losses::{LossEntry, ValueBundle, loss_vectors};

/// Module parameters of the reputer gradient descent (v0.6 defaults in [`Default`]).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ReputerParams {
    /// η, `LearningRate` (0.05).
    pub learning_rate: f64,
    /// `GradientDescentMaxIters` (10).
    pub gradient_descent_max_iters: u64,
    /// `MaxGradientThreshold` (0.001).
    pub max_gradient_threshold: f64,
    /// `MinStakeFraction` (0.5).
    pub min_stake_fraction: f64,
    /// ε_rep, `EpsilonReputer` (0.01).
    pub epsilon_reputer: f64,
    /// ε, `EpsilonSafeDiv` (1e-7), used when the consensus norm is 0.
    pub epsilon_safe_div: f64,
}

impl Default for ReputerParams {
    fn default() -> Self {
        ReputerParams {
            learning_rate: 0.05,
            gradient_descent_max_iters: 10,
            max_gradient_threshold: 0.001,
            min_stake_fraction: 0.5,
            epsilon_reputer: 0.01,
            epsilon_safe_div: 1e-7,
        }
    }
}

fn sum_weighted(weights: &[f64], values: &[f64]) -> f64 {
    weights
        .iter()
        .zip(values)
        .fold(0.0, |acc, (w, v)| acc + w * v)
}

/// `GetAdjustedStake` for every reputer: `Ŝ_m = min(N·a_m·S_m / Σ_m′ a_m′·S_m′, 1)`.
///
/// Errors: `Σ a·S == 0`.
pub fn adjusted_stakes(stakes: &[f64], coefficients: &[f64]) -> Result<Vec<f64>, MathError> {
    if stakes.len() != coefficients.len() || stakes.is_empty() {
        return Err(MathError::LengthMismatch(
            "stakes and listening coefficients must have the same non-zero length".into(),
        ));
    }
    let denominator = sum_weighted(coefficients, stakes);
    if denominator == 0.0 {
        return Err(MathError::DivisionByZero("sum of listened stakes is zero"));
    }
    let n = stakes.len() as f64;
    Ok(stakes
        .iter()
        .zip(coefficients)
        .map(|(s, a)| {
            let f = n * a * s / denominator;
            if f < 1.0 { f } else { 1.0 }
        })
        .collect())
}

/// `GetStakeWeightedLossMatrix`: the consensus vector `C_j = Σ Ŝ_m·V_mj / Σ Ŝ_m` over the
/// reputers with a non-NaN entry, and for each entry the "most distant" value (the one with the
/// largest `C_j − V_mj`, i.e. the smallest log-loss), used for NaN entries in the score.
///
/// Errors: an entry whose reporters all have adjusted stake 0.
pub fn consensus(losses: &[Vec<f64>], adjusted: &[f64]) -> Result<(Vec<f64>, Vec<f64>), MathError> {
    let n_entries = losses.first().map_or(0, |v| v.len());
    let mut c = Vec::with_capacity(n_entries);
    let mut most_distant = Vec::with_capacity(n_entries);
    for j in 0..n_entries {
        let mut total = 0.0;
        for (m, v) in losses.iter().enumerate() {
            if !v[j].is_nan() {
                total += adjusted[m];
            }
        }
        if total == 0.0 {
            return Err(MathError::DivisionByZero(
                "no adjusted stake reports a loss entry",
            ));
        }
        let mut sum = 0.0;
        for (m, v) in losses.iter().enumerate() {
            if !v[j].is_nan() {
                sum += v[j] * adjusted[m] / total;
            }
        }
        let mut max_distance = -1.0;
        let mut distant = f64::NAN;
        for v in losses {
            if v[j].is_nan() {
                continue;
            }
            let d = sum - v[j];
            if d > max_distance {
                max_distance = d;
                distant = v[j];
            }
        }
        c.push(sum);
        most_distant.push(distant);
    }
    Ok((c, most_distant))
}

/// `GetConsensusScore`: `T_m = 1 / (‖V_m − C‖₂ / ‖C‖₂ + ε_rep)`, NaN entries replaced by the
/// most distant value; `‖C‖₂ == 0` is replaced by `epsilon_safe_div`.
pub fn consensus_score(
    losses: &[f64],
    consensus: &[f64],
    most_distant: &[f64],
    epsilon_reputer: f64,
    epsilon_safe_div: f64,
) -> f64 {
    let mut norm = consensus.iter().fold(0.0, |a, c| a + c * c).sqrt();
    if norm == 0.0 {
        norm = epsilon_safe_div;
    }
    let mut d2 = 0.0;
    for (i, &l) in losses.iter().enumerate() {
        let l = if l.is_nan() { most_distant[i] } else { l };
        let d = l - consensus[i];
        d2 += d * d;
    }
    1.0 / (d2.sqrt() / norm + epsilon_reputer)
}

/// `GetAllConsensusScores`: scores of all reputers with adjusted stakes from `coefficients`.
pub fn consensus_scores(
    losses: &[Vec<f64>],
    stakes: &[f64],
    coefficients: &[f64],
    params: &ReputerParams,
) -> Result<Vec<f64>, MathError> {
    let adjusted = adjusted_stakes(stakes, coefficients)?;
    let (c, distant) = consensus(losses, &adjusted)?;
    Ok(losses
        .iter()
        .map(|v| {
            consensus_score(
                v,
                &c,
                &distant,
                params.epsilon_reputer,
                params.epsilon_safe_div,
            )
        })
        .collect())
}

/// Result of [`reputer_scores`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReputerOutput {
    /// T_m, computed with the coefficients from the start of the last iteration (Go returns
    /// `scores`, not `scores2`).
    pub scores: Vec<f64>,
    /// New listening coefficients a_m.
    pub coefficients: Vec<f64>,
    /// Ŝ_m at the coefficients that produced `scores`.
    pub adjusted_stakes: Vec<f64>,
    /// Gradient-descent iterations run.
    pub iterations: u64,
}

fn check_inputs(
    losses: &[Vec<f64>],
    stakes: &[f64],
    coefficients: &[f64],
) -> Result<(), MathError> {
    if losses.is_empty() {
        return Err(MathError::Empty("no reputer losses"));
    }
    if losses.len() != stakes.len() || stakes.len() != coefficients.len() {
        return Err(MathError::LengthMismatch(format!(
            "{} loss vectors, {} stakes, {} coefficients",
            losses.len(),
            stakes.len(),
            coefficients.len()
        )));
    }
    let len = losses[0].len();
    if losses.iter().any(|v| v.len() != len) {
        return Err(MathError::LengthMismatch(
            "loss vectors of different lengths".into(),
        ));
    }
    for v in losses {
        // NaN marks a missing entry; infinities are errors
        if v.iter().any(|x| x.is_infinite()) {
            return Err(MathError::NonFinite {
                what: "reputer loss".into(),
                value: f64::INFINITY,
            });
        }
    }
    for (&s, &a) in stakes.iter().zip(coefficients) {
        finite("reputer stake", s)?;
        finite("listening coefficient", a)?;
        if s < 0.0 {
            return Err(MathError::InvalidParameter {
                name: "stake",
                reason: format!("must be >= 0, got {s}"),
            });
        }
    }
    Ok(())
}

/// `GetAllReputersOutput`: reputer scores and listening coefficients by gradient descent.
///
/// `losses[m]` is reputer m's loss vector (NaN = not reported; all vectors in the same order),
/// `stakes[m]` its `StakeReputerAuthority`, `initial_coefficients[m]` its stored listening
/// coefficient (1 for a new reputer). Follows the Go loop exactly (finite-difference gradient with
/// step ±0.001, clipping to [0, 1], the minimum listened stake fraction, the stop rule); see spec
/// §2.3. With `gradient_descent_max_iters == 0` the scores at the initial coefficients are
/// returned (Go would return zeros).
pub fn reputer_scores(
    losses: &[Vec<f64>],
    stakes: &[f64],
    initial_coefficients: &[f64],
    params: &ReputerParams,
) -> Result<ReputerOutput, MathError> {
    check_inputs(losses, stakes, initial_coefficients)?;
    let n = stakes.len();
    let eta = params.learning_rate;
    let mut coefficients = initial_coefficients.to_vec();
    let mut old = coefficients.clone();
    let mut i: u64 = 0;
    let mut max_gradient = 1.0;
    let mut new_scores: Option<Vec<f64>> = None;
    let sum_stakes = stakes.iter().fold(0.0, |a, s| a + s);
    if sum_stakes == 0.0 {
        return Err(MathError::DivisionByZero("total reputer stake is zero"));
    }
    while max_gradient >= params.max_gradient_threshold && i < params.gradient_descent_max_iters {
        old.copy_from_slice(&coefficients);
        let scores = consensus_scores(losses, stakes, &coefficients, params)?;
        let weighted = sum_weighted(&scores, stakes);
        let mut gradient = vec![0.0; n];
        let mut c2 = coefficients.clone();
        for l in 0..n {
            let d = if coefficients[l] == 1.0 {
                -0.001
            } else {
                0.001
            };
            c2[l] = coefficients[l] + d;
            let scores2 = consensus_scores(losses, stakes, &c2, params)?;
            c2[l] = coefficients[l];
            let weighted2 = sum_weighted(&scores2, stakes);
            gradient[l] = (1.0 - weighted / weighted2) / d;
        }
        new_scores = Some(scores);
        let new_coefficients: Vec<f64> = coefficients
            .iter()
            .zip(&gradient)
            .map(|(a, g)| {
                let x = a + eta * g;
                let x = if x > 0.0 { x } else { 0.0 };
                if x < 1.0 { x } else { 1.0 }
            })
            .collect();
        let fraction_old = sum_weighted(&old, stakes) / sum_stakes;
        let fraction_new = sum_weighted(&new_coefficients, stakes) / sum_stakes;
        if fraction_new < params.min_stake_fraction {
            for l in 0..n {
                let coeff_diff = new_coefficients[l] - old[l];
                let listened_diff = params.min_stake_fraction - fraction_old;
                let staked_diff = fraction_new - fraction_old;
                if staked_diff == 0.0 {
                    i = params.gradient_descent_max_iters;
                } else {
                    coefficients[l] = old[l] + coeff_diff * listened_diff / staked_diff;
                }
            }
        } else {
            coefficients = new_coefficients;
        }
        let max_abs = coefficients.iter().zip(&old).fold(0.0, |m: f64, (a, b)| {
            let d = (a - b).abs();
            if d > m { d } else { m }
        });
        max_gradient = max_abs / eta;
        i = i.saturating_add(1);
    }
    let (scores, at) = match new_scores {
        Some(s) => (s, old),
        None => (
            consensus_scores(losses, stakes, &coefficients, params)?,
            coefficients.clone(),
        ),
    };
    Ok(ReputerOutput {
        adjusted_stakes: adjusted_stakes(stakes, &at)?,
        scores,
        coefficients,
        iterations: i,
    })
}

/// Keyed result of [`reputer_scores_keyed`].
#[derive(Debug, Clone, PartialEq)]
pub struct KeyedReputerOutput<R> {
    /// T_m per reputer.
    pub scores: BTreeMap<R, f64>,
    /// New listening coefficient per reputer.
    pub coefficients: BTreeMap<R, f64>,
    /// Ŝ_m per reputer.
    pub adjusted_stakes: BTreeMap<R, f64>,
    /// Iterations run.
    pub iterations: u64,
}

/// [`reputer_scores`] on keyed bundles (`GenerateReputerScores`): loss vectors in
/// `ExtractValues` order over the union of all entries (`EnsureWorkerPresence`: missing = NaN),
/// reputers in key order, missing coefficients = 1.
///
/// Returns the output and the loss-vector layout.
pub fn reputer_scores_keyed<R: Ord + Clone, K: Ord + Clone>(
    bundles: &BTreeMap<R, ValueBundle<K>>,
    stakes: &BTreeMap<R, f64>,
    coefficients: &BTreeMap<R, f64>,
    params: &ReputerParams,
) -> Result<(KeyedReputerOutput<R>, Vec<LossEntry<K>>), MathError> {
    let keys: Vec<&R> = bundles.keys().collect();
    let refs: Vec<&ValueBundle<K>> = bundles.values().collect();
    let (layout, vectors) = loss_vectors(&refs);
    let mut s = Vec::with_capacity(keys.len());
    for r in &keys {
        s.push(
            *stakes
                .get(*r)
                .ok_or_else(|| MathError::LengthMismatch("a reputer bundle has no stake".into()))?,
        );
    }
    let a: Vec<f64> = keys
        .iter()
        .map(|r| coefficients.get(*r).copied().unwrap_or(1.0))
        .collect();
    let out = reputer_scores(&vectors, &s, &a, params)?;
    let zip = |v: &[f64]| {
        keys.iter()
            .map(|k| (*k).clone())
            .zip(v.iter().copied())
            .collect()
    };
    Ok((
        KeyedReputerOutput {
            scores: zip(&out.scores),
            coefficients: zip(&out.coefficients),
            adjusted_stakes: zip(&out.adjusted_stakes),
            iterations: out.iterations,
        },
        layout,
    ))
}
