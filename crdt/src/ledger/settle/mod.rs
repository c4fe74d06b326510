//! The mechanism of a topic, applied to finalized windows: the network inference when a worker
//! window is finalized, and the settlement (network losses, regrets, reputer consensus, scores,
//! rewards, payouts) when the reputer window of that epoch is finalized.
//!
//! All the mathematics is `chorus_protocol::math` (Allora v0.6, or the topic's
//! [`MechanismVersion`]); this module only chooses the inputs from the ledger and applies the
//! outputs. Workers are keyed by the lowercase hex of
//! their public key (hex order = key order).
//!
//! Rules that are ours (Allora has blocks and a chain; we have windows and checkpoints):
//! - an entry counts only if its author is registered for the role when the window is
//!   finalized, and pays the data-sending fee (an author who cannot pay is left out);
//! - at most `max_top_inferers_to_reward` inferers (and forecasters) count per epoch, ranked by
//!   their EMA score, newcomers at the topic's last score quantile (`allora-mad`: at the lowest
//!   candidate EMA − 2σ, returning actors penalised for missed epochs), ties by key;
//! - reputers count if their stake authority is at least `required_minimum_stake`; at most
//!   `max_top_reputers_to_reward`, ranked by stake;
//! - the topic reward of an epoch is the topic's reward pool divided by the number of its epochs
//!   settled at this height; integer payouts are floored and the remainder stays in the pool;
//! - inferers and forecasters are paid liquid; a reputer's reward is added to its stake, the
//!   delegators' part (pro rata to delegated stake) to their delegations.

use std::collections::{BTreeMap, BTreeSet};

use chorus_protocol::ids::{Amount, TopicId};
use chorus_protocol::inference::NetworkInference;
use chorus_protocol::keys::PublicKey;
use chorus_protocol::math::losses::ValueBundle as MathBundle;
use chorus_protocol::math::mechanism::MechanismVersion;
use chorus_protocol::math::outliers::OutlierMetrics;
use chorus_protocol::math::payout::{RemainderPolicy, delegator_split, split_amount};
use chorus_protocol::math::regrets::{
    InitialRegretParams, NetworkRegrets, updated_topic_initial_regret,
};
use chorus_protocol::math::reputer::ReputerParams;
use chorus_protocol::math::rewards::RewardParams;
use chorus_protocol::math::scores::{initial_ema_score, liveness_penalty};
use chorus_protocol::math::settle_io::{
    PayoutsOut, SettleJsonInput, SettleJsonOutput, SettleParams, TaskMaps, settle,
};
use chorus_protocol::math::synthesis::{SynthesisInput, synthesize_bundle};
use chorus_protocol::math::util::quantile;
use chorus_protocol::messages::{ValueBundle, WorkerValue};
use chorus_protocol::params::ModuleParams;
use serde::{Deserialize, Serialize};

use super::state::{ReputerStake, TopicState};
use super::{Ledger, LedgerEvent, ScoredActor, SignedEntry};

mod counted;

pub use counted::CountedWorkers;
use counted::{CountedReputer, counted_reputers, stake_weighted_median};

/// What a finalized worker window left for its settlement.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// The network inference bundle computed when the window was finalized.
    pub bundle: Option<NetworkInference>,
    /// The outlier-resistant bundle when it differs from `bundle` (some inference was an
    /// outlier; `chorus_protocol::math::outliers`); `None`: it is `bundle`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outlier_bundle: Option<NetworkInference>,
    /// Forecasters that submitted forecasts.
    pub forecasters: Vec<String>,
}

/// One value per actor (by hex key) of each task.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PerTask<V> {
    /// Inferers.
    pub inferer: BTreeMap<String, V>,
    /// Forecasters.
    pub forecaster: BTreeMap<String, V>,
    /// Reputers.
    pub reputer: BTreeMap<String, V>,
}

impl<V> Default for PerTask<V> {
    fn default() -> Self {
        PerTask {
            inferer: BTreeMap::new(),
            forecaster: BTreeMap::new(),
            reputer: BTreeMap::new(),
        }
    }
}

/// EMA scores per task.
pub type EmaScores = PerTask<f64>;

/// The last epoch each actor was scored in, per task (`allora-mad` only; empty for v0.6).
pub type ScoredEpochs = PerTask<u64>;

/// The evolving state of a topic's mechanism.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Mechanism {
    /// All nine regret kinds.
    pub regrets: NetworkRegrets<String>,
    /// The topic's initial regret (0: every inferer is new).
    pub initial_regret: f64,
    /// L_{i−1}: the last settled network combined log10 loss.
    pub previous_network_loss: Option<f64>,
    /// Reputer listening coefficients.
    pub listening_coefficients: BTreeMap<String, f64>,
    /// Last individual inferer scores, newest first.
    pub inferer_score_history: Vec<f64>,
    /// Last individual forecaster scores, newest first.
    pub forecaster_score_history: Vec<f64>,
    /// Smoothed reward fractions.
    pub smoothed: TaskMaps,
    /// τ (`PreviousForecasterScoreRatio`).
    pub forecaster_score_ratio: f64,
    /// EMA scores (merit sortition).
    pub ema: EmaScores,
    /// Quantile of the last instant inferer scores (newcomers' rank).
    pub inferer_quantile_score: f64,
    /// Times each worker was paid (experience for the initial regret).
    pub inferer_inclusions: BTreeMap<String, u64>,
    /// Same for forecasters.
    pub forecaster_inclusions: BTreeMap<String, u64>,
    /// Finalized worker windows awaiting settlement, by epoch.
    pub pending: BTreeMap<u64, EpochRecord>,
    /// The last finalized network inference (epoch, bundle).
    pub last_inference: Option<(u64, NetworkInference)>,
    /// Median and EMA'd MAD of the inferences, for the outlier-resistant inference.
    #[serde(default)]
    pub outliers: OutlierMetrics,
    /// `allora-mad`: the last epoch each actor was scored in (liveness penalties).
    #[serde(default)]
    pub last_scored: ScoredEpochs,
}

/// Epochs of finalized worker windows kept waiting for their reputer window.
const MAX_PENDING_EPOCHS: usize = 1_024;

/// The network inference bundle of a synthesis input.
fn network_inference(input: &SynthesisInput<String>) -> Result<NetworkInference, String> {
    synthesize_bundle(input)
        .map_err(|e| e.to_string())
        .and_then(|n| NetworkInference::from_synthesis(n).map_err(|e| e.to_string()))
}

fn hex(k: &PublicKey) -> String {
    k.to_hex()
}

fn to_math(b: &ValueBundle, allowed: &dyn Fn(&str) -> bool) -> MathBundle<String> {
    let pick = |v: &[WorkerValue]| -> BTreeMap<String, f64> {
        v.iter()
            .map(|w| (hex(&w.worker), w.value))
            .filter(|(k, _)| allowed(k))
            .collect()
    };
    let mut m = MathBundle::new(b.combined_value, b.naive_value.unwrap_or(b.combined_value));
    m.inferer_values = pick(&b.inferer_values);
    m.forecaster_values = pick(&b.forecaster_values);
    m.one_out_inferer_values = pick(&b.one_out_inferer_values);
    m.one_out_forecaster_values = pick(&b.one_out_forecaster_values);
    m.one_in_forecaster_values = pick(&b.one_in_forecaster_values);
    m.one_out_inferer_forecaster_values = b
        .one_out_inferer_forecaster_values
        .iter()
        .filter(|f| allowed(&hex(&f.forecaster)))
        .map(|f| (hex(&f.forecaster), pick(&f.values)))
        .collect();
    if m.inferer_values.len() <= 1 {
        m.one_out_inferer_values.clear();
    }
    m
}

impl Ledger {
    fn charge_data_fee(&mut self, who: &PublicKey) -> bool {
        self.collect_fee(who, self.params.data_sending_fee).is_ok()
    }

    /// Finalize the worker window of `(topic, epoch)`: choose the counted bundles, charge their
    /// data fees, compute the network inference, keep it for the settlement.
    pub(super) fn finalize_worker_window(
        &mut self,
        topic: TopicId,
        epoch: u64,
        entries: &[SignedEntry],
        events: &mut Vec<LedgerEvent>,
    ) {
        let Some(counted) = self.counted_workers(topic, epoch, entries) else {
            return;
        };
        // Everyone counted pays the data-sending fee; who cannot pay is left out.
        let mut unpaid = BTreeSet::new();
        for (h, k) in &counted.keys {
            if !self.charge_data_fee(k) {
                unpaid.insert(h.clone());
            }
        }
        let Some(input) = self.epoch_synthesis_input(topic, counted, &unpaid) else {
            return;
        };
        let Some(t) = self.topics.get_mut(&topic) else {
            return;
        };
        let mut record = EpochRecord {
            bundle: None,
            outlier_bundle: None,
            forecasters: input.forecasts.keys().cloned().collect(),
        };
        if !input.inferences.is_empty() {
            let values: Vec<f64> = input.inferences.values().copied().collect();
            t.mechanism.outliers.update(&values, t.spec.outlier_alpha);
            let (metrics, threshold) = (t.mechanism.outliers, t.spec.outlier_threshold);
            let kept: BTreeMap<String, f64> = input
                .inferences
                .iter()
                .filter(|(_, v)| metrics.keeps(**v, threshold))
                .map(|(k, v)| (k.clone(), *v))
                .collect();
            // Synthesized again only when something was dropped (and something is left).
            if !kept.is_empty() && kept.len() != input.inferences.len() {
                let filtered = SynthesisInput {
                    inferences: kept,
                    ..input.clone()
                };
                match network_inference(&filtered) {
                    Ok(b) => record.outlier_bundle = Some(b),
                    Err(reason) => events.push(LedgerEvent::MechanismError {
                        topic,
                        epoch,
                        reason: format!("outlier-resistant inference: {reason}"),
                    }),
                }
            }
            let bundle = network_inference(&input);
            match bundle {
                Ok(out) => {
                    events.push(LedgerEvent::NetworkInference {
                        topic,
                        epoch,
                        combined: out.combined_value,
                        naive: out.naive_value,
                    });
                    t.mechanism.last_inference = Some((epoch, out.clone()));
                    record.bundle = Some(out);
                }
                Err(reason) => events.push(LedgerEvent::MechanismError {
                    topic,
                    epoch,
                    reason,
                }),
            }
        }
        t.mechanism.pending.insert(epoch, record);
        while t.mechanism.pending.len() > MAX_PENDING_EPOCHS {
            t.mechanism.pending.pop_first();
        }
    }

    /// Settle the epoch whose reputer window of `(topic, epoch)` is finalized: choose the
    /// counted reputers, run the settlement, update the mechanism, pay out.
    pub(super) fn finalize_reputer_window(
        &mut self,
        topic: TopicId,
        epoch: u64,
        entries: &[SignedEntry],
        epochs_settling: u128,
        events: &mut Vec<LedgerEvent>,
    ) {
        let params = self.params.clone();
        let Some(t) = self.topics.get_mut(&topic) else {
            return;
        };
        let Some(record) = t.mechanism.pending.remove(&epoch) else {
            return;
        };
        let Some(bundle) = record.bundle else {
            return;
        };
        let reputers = counted_reputers(t, &params, topic, epoch, entries);
        if reputers.is_empty() {
            return;
        }
        let workers: BTreeSet<String> = bundle
            .inferer_values
            .keys()
            .map(PublicKey::to_hex)
            .chain(record.forecasters.iter().cloned())
            .collect();
        let reward = t.reward_pool.0 / epochs_settling.max(1);
        let out = match settle(&settle_input(t, &params, &reputers, &workers, reward)) {
            Ok(o) => o,
            Err(e) => {
                events.push(LedgerEvent::MechanismError {
                    topic,
                    epoch,
                    reason: e.to_string(),
                });
                return;
            }
        };
        update_mechanism(t, &params, &out, epoch);
        events.push(LedgerEvent::Scored {
            topic,
            epoch,
            actors: scored_actors(&t.mechanism.ema, &out, &bundle, &reputers),
            ground_truth: stake_weighted_median(&reputers),
            network_loss: Some(out.network_losses.combined_value),
        });
        let Some(payouts) = out.payouts else {
            return;
        };
        let reputer_keys: BTreeMap<String, PublicKey> =
            reputers.iter().map(|r| (hex(&r.key), r.key)).collect();
        self.pay_out(topic, epoch, &payouts, &reputer_keys, events);
    }

    /// Pay an epoch's payouts: inferers and forecasters liquid, reputers and their delegators
    /// into their stakes; the topic's pool pays for all of it. Reward events come reputers
    /// first, in key order, each followed by its delegators, then inferers, then forecasters.
    fn pay_out(
        &mut self,
        topic: TopicId,
        epoch: u64,
        payouts: &PayoutsOut,
        reputer_keys: &BTreeMap<String, PublicKey>,
        events: &mut Vec<LedgerEvent>,
    ) {
        let Some(t) = self.topics.get_mut(&topic) else {
            return;
        };
        let liquid = worker_rewards(&mut t.mechanism, payouts);
        let mut staked = vec![];
        for (k, amount) in &payouts.reputers {
            let (Some(pk), true) = (reputer_keys.get(k), *amount > 0) else {
                continue;
            };
            if let Some(stake) = t.stakes.get_mut(pk) {
                staked.extend(stake_reward(stake, *pk, *amount));
            }
        }
        let mut paid = 0u128;
        let owners = &self.owners;
        for (r, is_liquid) in staked
            .iter()
            .map(|r| (r, false))
            .chain(liquid.iter().map(|r| (r, true)))
        {
            paid += r.amount;
            let total = t.rewards_paid.entry(r.to).or_default();
            *total = Amount(total.0 + r.amount);
            events.push(LedgerEvent::Reward {
                topic,
                epoch,
                to: r.to,
                amount: Amount(r.amount),
                role: r.role.into(),
                paid_to: owners.get(&r.to).copied().filter(|_| is_liquid),
            });
        }
        t.reward_pool = Amount(t.reward_pool.0.saturating_sub(paid));
        // Liquid rewards go to the earner's owner (itself if it has none); staked ones stay in
        // the stake they were earned on.
        for r in &liquid {
            self.credit(self.owner_of(&r.to), Amount(r.amount));
        }
        for r in liquid.iter().chain(&staked) {
            let a = self.accounts.entry(r.to).or_default();
            a.rewards = Amount(a.rewards.0 + r.amount);
        }
    }
}

/// Every scored actor of a settled epoch: inferers, forecasters, then reputers, each in key
/// order (keys that do not parse are left out: they cannot be counted).
fn scored_actors(
    ema: &EmaScores,
    out: &SettleJsonOutput,
    bundle: &NetworkInference,
    reputers: &[CountedReputer<'_>],
) -> Vec<ScoredActor> {
    let mut actors = vec![];
    let roles = [
        (
            "inferer",
            &out.inferer_scores,
            &out.inferer_reward_fractions,
            &ema.inferer,
        ),
        (
            "forecaster",
            &out.forecaster_scores,
            &out.forecaster_reward_fractions,
            &ema.forecaster,
        ),
        (
            "reputer",
            &out.reputer_scores,
            &out.reputer_reward_fractions,
            &ema.reputer,
        ),
    ];
    for (role, scores, fractions, emas) in roles {
        for (k, score) in scores {
            let who = match role {
                "reputer" => reputers.iter().find(|r| hex(&r.key) == *k).map(|r| r.key),
                _ => k.parse::<PublicKey>().ok(),
            };
            let Some(who) = who else {
                continue;
            };
            actors.push(ScoredActor {
                who,
                role: role.into(),
                score: *score,
                ema_score: emas.get(k).copied().unwrap_or(*score),
                reward_fraction: fractions.get(k).copied().unwrap_or(0.0),
                weight: (role == "inferer")
                    .then(|| bundle.inferer_weights.get(&who).copied())
                    .flatten(),
            });
        }
    }
    actors
}

/// `max_samples_to_scale_scores` as a count (10 if it does not fit).
fn max_samples(params: &ModuleParams) -> usize {
    usize::try_from(params.max_samples_to_scale_scores).unwrap_or(10)
}

/// The settlement's input: the counted reputers' losses of the workers that took part, their
/// stakes, the topic's mechanism state and `reward` base units to distribute.
fn settle_input(
    t: &TopicState,
    params: &ModuleParams,
    reputers: &[CountedReputer<'_>],
    workers: &BTreeSet<String>,
    reward: u128,
) -> SettleJsonInput {
    let allowed = |k: &str| workers.contains(k);
    let m = &t.mechanism;
    SettleJsonInput {
        params: SettleParams {
            alpha_regret: t.spec.alpha_regret,
            initial_regret: m.initial_regret,
            reputer: ReputerParams {
                learning_rate: params.learning_rate,
                gradient_descent_max_iters: params.gradient_descent_max_iters,
                max_gradient_threshold: params.max_gradient_threshold,
                min_stake_fraction: params.min_stake_fraction,
                epsilon_reputer: params.epsilon_reputer,
                epsilon_safe_div: params.epsilon_safe_div,
            },
            rewards: RewardParams {
                p_reward_inference: params.p_reward_inference,
                p_reward_forecast: params.p_reward_forecast,
                p_reward_reputer: params.p_reward_reputer,
                c_reward_inference: params.c_reward_inference,
                c_reward_forecast: params.c_reward_forecast,
                task_reward_alpha: params.task_reward_alpha,
                beta_entropy: params.beta_entropy,
                epsilon: t.spec.epsilon,
                max_samples_to_scale_scores: max_samples(params),
            },
        },
        reputer_value_bundles: reputers
            .iter()
            .map(|r| (hex(&r.key), to_math(r.losses, &allowed)))
            .collect(),
        reputer_stakes: reputers
            .iter()
            .map(|r| (hex(&r.key), r.stake as f64))
            .collect(),
        previous_regrets: m.regrets.clone(),
        listening_coefficients: m.listening_coefficients.clone(),
        inferer_score_history: m.inferer_score_history.clone(),
        forecaster_score_history: m.forecaster_score_history.clone(),
        previous_smoothed_fractions: m.smoothed.clone(),
        previous_forecaster_score_ratio: m.forecaster_score_ratio,
        topic_reward: reward as f64,
        topic_reward_base_units: Some(reward),
    }
}

/// Carry a settlement's outputs into the topic's mechanism: regrets and the initial regret,
/// network loss, listening coefficients, score histories, smoothed fractions, EMA scores (with
/// `allora-mad`'s liveness penalties) and the newcomers' quantile.
fn update_mechanism(t: &mut TopicState, params: &ModuleParams, out: &SettleJsonOutput, epoch: u64) {
    let spec = &t.spec;
    let irp = InitialRegretParams {
        quantile: params.initial_regret_quantile,
        p_norm_safe_div: params.p_norm_safe_div,
        p_norm: spec.p_norm,
        c_norm: params.c_norm,
        epsilon: spec.epsilon,
    };
    let m = &mut t.mechanism;
    if let Some(ir) = updated_topic_initial_regret(
        &m.regrets,
        &out.regrets,
        &out.network_losses,
        &m.inferer_inclusions,
        &m.forecaster_inclusions,
        spec.alpha_regret,
        &irp,
    ) && ir.is_finite()
    {
        m.initial_regret = ir;
    }
    m.regrets = out.regrets.clone();
    m.previous_network_loss = Some(out.network_losses.combined_value);
    m.listening_coefficients = out.listening_coefficients.clone();
    let keep = max_samples(params);
    prepend_scores(&out.inferer_scores, &mut m.inferer_score_history, keep);
    prepend_scores(
        &out.forecaster_scores,
        &mut m.forecaster_score_history,
        keep,
    );
    m.smoothed = out.smoothed_fractions.clone();
    m.forecaster_score_ratio = out.forecaster_score_ratio;
    let alpha = spec.merit_sortition_alpha;
    if spec.mechanism == MechanismVersion::AlloraMad {
        let last = &mut m.last_scored;
        penalize_missed(
            &mut m.ema.inferer,
            &mut last.inferer,
            &out.inferer_scores,
            alpha,
            epoch,
        );
        penalize_missed(
            &mut m.ema.forecaster,
            &mut last.forecaster,
            &out.forecaster_scores,
            alpha,
            epoch,
        );
        penalize_missed(
            &mut m.ema.reputer,
            &mut last.reputer,
            &out.reputer_scores,
            alpha,
            epoch,
        );
    }
    update_ema(&mut m.ema.inferer, &out.inferer_scores, alpha);
    update_ema(&mut m.ema.forecaster, &out.forecaster_scores, alpha);
    update_ema(&mut m.ema.reputer, &out.reputer_scores, alpha);
    let scores: Vec<f64> = out.inferer_scores.values().copied().collect();
    if !scores.is_empty() {
        let q = quantile(&scores, spec.active_inferer_quantile);
        if q.is_finite() {
            m.inferer_quantile_score = q;
        }
    }
}

/// Put this epoch's scores in front of the history, keeping the newest `keep`.
fn prepend_scores(new: &BTreeMap<String, f64>, history: &mut Vec<f64>, keep: usize) {
    let mut v: Vec<f64> = new.values().copied().collect();
    v.append(history);
    v.truncate(keep);
    *history = v;
}

/// `allora-mad`: before this epoch's scores enter the EMAs, pull the EMA of every scored actor
/// that missed epochs since its last score toward the newcomer score of the scored actors
/// ([`liveness_penalty`]), and record this epoch as their last.
fn penalize_missed(
    ema: &mut BTreeMap<String, f64>,
    last: &mut BTreeMap<String, u64>,
    scores: &BTreeMap<String, f64>,
    alpha: f64,
    epoch: u64,
) {
    let known: Vec<f64> = scores.keys().filter_map(|k| ema.get(k).copied()).collect();
    let asymptote = initial_ema_score(&known);
    for k in scores.keys() {
        if let (Some(s), Some(&l)) = (ema.get_mut(k), last.get(k)) {
            let missed = epoch.saturating_sub(l.saturating_add(1));
            let penalized = liveness_penalty(alpha, asymptote, *s, missed);
            if penalized.is_finite() {
                *s = penalized;
            }
        }
        last.insert(k.clone(), epoch);
    }
}

/// EMA of scores with weight `alpha` on the new score; a first score is taken as it is; a
/// non-finite result leaves the old value.
fn update_ema(ema: &mut BTreeMap<String, f64>, scores: &BTreeMap<String, f64>, alpha: f64) {
    for (k, v) in scores {
        let next = match ema.get(k) {
            None => *v,
            Some(p) => alpha * v + (1.0 - alpha) * p,
        };
        if next.is_finite() {
            ema.insert(k.clone(), next);
        }
    }
}

/// A reward paid in a settlement.
struct Reward {
    to: PublicKey,
    amount: u128,
    /// `inferer`, `forecaster`, `reputer` or `delegator`.
    role: &'static str,
}

/// The liquid rewards of inferers and forecasters (zero amounts skipped); each paid worker's
/// inclusion count goes up.
fn worker_rewards(m: &mut Mechanism, payouts: &PayoutsOut) -> Vec<Reward> {
    let mut rewards = vec![];
    for (role, paid, inclusions) in [
        ("inferer", &payouts.inferers, &mut m.inferer_inclusions),
        (
            "forecaster",
            &payouts.forecasters,
            &mut m.forecaster_inclusions,
        ),
    ] {
        for (k, amount) in paid {
            if *amount == 0 {
                continue;
            }
            if let Ok(to) = k.parse::<PublicKey>() {
                rewards.push(Reward {
                    to,
                    amount: *amount,
                    role,
                });
                *inclusions.entry(k.clone()).or_default() += 1;
            }
        }
    }
    rewards
}

/// Add a reputer's `amount` to stake: its part to its own stake, the delegators' part
/// (Allora's split by stake authority, then pro rata to delegations, floored; the remainder
/// stays in the pool) to their delegations. Returns the reputer's reward, then each
/// delegator's that is not zero.
fn stake_reward(stake: &mut ReputerStake, reputer: PublicKey, amount: u128) -> Vec<Reward> {
    let authority = stake.authority().0;
    let delegated = stake.delegated_total().0;
    let Ok((own, to_delegators)) = delegator_split(amount, delegated, authority) else {
        return vec![];
    };
    stake.own = Amount(stake.own.0 + own);
    let mut rewards = vec![Reward {
        to: reputer,
        amount: own,
        role: "reputer",
    }];
    let weights: BTreeMap<PublicKey, f64> = stake
        .delegated
        .iter()
        .map(|(d, a)| (*d, a.0 as f64))
        .collect();
    let Ok(split) = split_amount(to_delegators, &weights, RemainderPolicy::ToPool) else {
        return rewards;
    };
    for (d, a) in split.amounts {
        if a == 0 {
            continue;
        }
        if let Some(x) = stake.delegated.get_mut(&d) {
            *x = Amount(x.0 + a);
            rewards.push(Reward {
                to: d,
                amount: a,
                role: "delegator",
            });
        }
    }
    rewards
}
