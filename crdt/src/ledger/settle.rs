//! The mechanism of a topic, applied to finalized windows: the network inference when a worker
//! window is finalized, and the settlement (network losses, regrets, reputer consensus, scores,
//! rewards, payouts) when the reputer window of that epoch is finalized.
//!
//! All the mathematics is `chorus_protocol::math` (Allora v0.6); this module only chooses the
//! inputs from the ledger and applies the outputs. Workers are keyed by the lowercase hex of
//! their public key (hex order = key order).
//!
//! Rules that are ours (Allora has blocks and a chain; we have windows and checkpoints):
//! - an entry counts only if its author is registered for the role when the window is
//!   finalized, and pays the data-sending fee (an author who cannot pay is left out);
//! - at most `max_top_inferers_to_reward` inferers (and forecasters) count per epoch, ranked by
//!   their EMA score, newcomers at the topic's last score quantile, ties by key;
//! - reputers count if their stake authority is at least `required_minimum_stake`; at most
//!   `max_top_reputers_to_reward`, ranked by stake;
//! - the topic reward of an epoch is the topic's reward pool divided by the number of its epochs
//!   settled at this height; integer payouts are floored and the remainder stays in the pool;
//! - inferers and forecasters are paid liquid; a reputer's reward is added to its stake, the
//!   delegators' part (pro rata to delegated stake) to their delegations.

use std::collections::BTreeMap;

use chorus_protocol::ids::{Amount, TopicId};
use chorus_protocol::keys::PublicKey;
use chorus_protocol::math::losses::ValueBundle as MathBundle;
use chorus_protocol::math::payout::delegator_split;
use chorus_protocol::math::regrets::{
    InitialRegretParams, NetworkRegrets, updated_topic_initial_regret,
};
use chorus_protocol::math::reputer::ReputerParams;
use chorus_protocol::math::rewards::RewardParams;
use chorus_protocol::math::settle_io::{SettleJsonInput, SettleParams, TaskMaps, settle};
use chorus_protocol::math::synth_io::SynthJsonOutput;
use chorus_protocol::math::synthesis::{SynthesisInput, SynthesisParams, synthesize_bundle};
use chorus_protocol::math::util::quantile;
use chorus_protocol::messages::{Payload, ValueBundle, WorkerValue};
use serde::{Deserialize, Serialize};

use super::{Ledger, LedgerEvent, SignedEntry};

/// What a finalized worker window left for its settlement.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// The network inference bundle computed when the window was finalized.
    pub bundle: Option<SynthJsonOutput>,
    /// Forecasters that submitted forecasts.
    pub forecasters: Vec<String>,
}

/// EMA scores per task.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EmaScores {
    /// Inferers.
    pub inferer: BTreeMap<String, f64>,
    /// Forecasters.
    pub forecaster: BTreeMap<String, f64>,
    /// Reputers.
    pub reputer: BTreeMap<String, f64>,
}

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
    pub last_inference: Option<(u64, SynthJsonOutput)>,
}

/// Epochs of finalized worker windows kept waiting for their reputer window.
const MAX_PENDING_EPOCHS: usize = 1_024;

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

    /// Finalize the worker window of `(topic, epoch)`: choose the counted bundles, compute the
    /// network inference, keep it for the settlement.
    pub(super) fn finalize_worker_window(
        &mut self,
        topic: TopicId,
        epoch: u64,
        entries: &[SignedEntry],
        events: &mut Vec<LedgerEvent>,
    ) {
        let Some(t) = self.topics.get(&topic) else {
            return;
        };
        let cap = usize::try_from(self.params.max_top_inferers_to_reward).unwrap_or(usize::MAX);
        let registered = t.workers.clone();
        let mech = &t.mechanism;
        let rank = |k: &String, ema: &BTreeMap<String, f64>| {
            ema.get(k).copied().unwrap_or(mech.inferer_quantile_score)
        };
        // Candidates: registered authors with a bundle, in key order.
        let mut bundles: Vec<(&PublicKey, &chorus_protocol::messages::WorkerBundle)> = entries
            .iter()
            .filter(|e| registered.contains(&e.author))
            .filter_map(|e| match &e.payload {
                Payload::WorkerBundle(b) if b.topic == topic && b.epoch == epoch => {
                    Some((&e.author, b))
                }
                _ => None,
            })
            .collect();
        bundles.sort_by_key(|(a, _)| **a);
        let mut inferers: Vec<(String, f64)> = bundles
            .iter()
            .filter_map(|(a, b)| b.inference.map(|v| (hex(a), v)))
            .collect();
        if inferers.len() > cap {
            inferers.sort_by(|a, b| {
                rank(&b.0, &mech.ema.inferer)
                    .total_cmp(&rank(&a.0, &mech.ema.inferer))
                    .then(a.0.cmp(&b.0))
            });
            inferers.truncate(cap);
        }
        let fcap = usize::try_from(self.params.max_top_forecasters_to_reward).unwrap_or(usize::MAX);
        let mut forecasters: Vec<(String, BTreeMap<String, f64>)> = bundles
            .iter()
            .filter(|(_, b)| !b.forecasts.is_empty())
            .map(|(a, b)| {
                (
                    hex(a),
                    b.forecasts
                        .iter()
                        .map(|f| (hex(&f.inferer), f.value))
                        .collect(),
                )
            })
            .collect();
        if forecasters.len() > fcap {
            forecasters.sort_by(|a, b| {
                rank(&b.0, &mech.ema.forecaster)
                    .total_cmp(&rank(&a.0, &mech.ema.forecaster))
                    .then(a.0.cmp(&b.0))
            });
            forecasters.truncate(fcap);
        }
        // Everyone counted pays the data-sending fee.
        let mut paying: BTreeMap<String, PublicKey> = BTreeMap::new();
        for (a, _) in &bundles {
            let h = hex(a);
            if inferers.iter().any(|(k, _)| *k == h) || forecasters.iter().any(|(k, _)| *k == h) {
                paying.insert(h, **a);
            }
        }
        let mut unpaid = vec![];
        for (h, k) in &paying {
            if !self.charge_data_fee(k) {
                unpaid.push(h.clone());
            }
        }
        inferers.retain(|(k, _)| !unpaid.contains(k));
        forecasters.retain(|(k, _)| !unpaid.contains(k));
        let inferences: BTreeMap<String, f64> = inferers.into_iter().collect();
        let forecasts: BTreeMap<String, BTreeMap<String, f64>> = forecasters
            .into_iter()
            .map(|(k, m)| {
                let m: BTreeMap<String, f64> = m
                    .into_iter()
                    .filter(|(j, _)| inferences.contains_key(j))
                    .collect();
                (k, m)
            })
            .filter(|(_, m)| !m.is_empty())
            .collect();
        let params = self.params.clone();
        let Some(t) = self.topics.get_mut(&topic) else {
            return;
        };
        let mut record = EpochRecord {
            bundle: None,
            forecasters: forecasts.keys().cloned().collect(),
        };
        if !inferences.is_empty() {
            let input = SynthesisInput {
                params: SynthesisParams {
                    p_norm: t.spec.p_norm,
                    c_norm: params.c_norm,
                    epsilon: t.spec.epsilon,
                    epsilon_safe_div: params.epsilon_safe_div,
                },
                initial_regret: t.mechanism.initial_regret,
                previous_network_loss: t.mechanism.previous_network_loss,
                inferences,
                forecasts,
                regrets: t.mechanism.regrets.clone(),
            };
            match synthesize_bundle(&input) {
                Ok(n) => {
                    let out = SynthJsonOutput::from_inferences(n, true);
                    events.push(LedgerEvent::NetworkInference {
                        topic,
                        epoch,
                        combined: out.combined_value,
                        naive: out.naive_value,
                    });
                    t.mechanism.last_inference = Some((epoch, out.clone()));
                    record.bundle = Some(out);
                }
                Err(e) => events.push(LedgerEvent::MechanismError {
                    topic,
                    epoch,
                    reason: e.to_string(),
                }),
            }
        }
        t.mechanism.pending.insert(epoch, record);
        while t.mechanism.pending.len() > MAX_PENDING_EPOCHS {
            t.mechanism.pending.pop_first();
        }
    }

    /// Settle the epoch whose reputer window of `(topic, epoch)` is finalized.
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
        let workers: std::collections::BTreeSet<String> = bundle
            .inferer_values
            .keys()
            .chain(record.forecasters.iter())
            .cloned()
            .collect();
        // Counted reputers: registered, enough stake, the largest stakes first.
        let mut reputers: Vec<(PublicKey, u128, &ValueBundle)> = entries
            .iter()
            .filter(|e| t.reputers.contains(&e.author))
            .filter_map(|e| match &e.payload {
                Payload::ReputerBundle(b) if b.topic == topic && b.epoch == epoch => {
                    let stake = t
                        .stakes
                        .get(&e.author)
                        .map(|s| s.authority().0)
                        .unwrap_or(0);
                    (stake >= params.required_minimum_stake.0 && stake > 0)
                        .then_some((e.author, stake, &b.losses))
                }
                _ => None,
            })
            .collect();
        reputers.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        reputers.truncate(usize::try_from(params.max_top_reputers_to_reward).unwrap_or(usize::MAX));
        let allowed = |k: &str| workers.contains(k);
        let bundles: BTreeMap<String, MathBundle<String>> = reputers
            .iter()
            .map(|(k, _, b)| (hex(k), to_math(b, &allowed)))
            .collect();
        let stakes: BTreeMap<String, f64> = reputers
            .iter()
            .map(|(k, s, _)| (hex(k), *s as f64))
            .collect();
        let reputer_keys: BTreeMap<String, PublicKey> =
            reputers.iter().map(|(k, _, _)| (hex(k), *k)).collect();
        if bundles.is_empty() {
            return;
        }
        let reward = t.reward_pool.0 / epochs_settling.max(1);
        let m = &t.mechanism;
        let input = SettleJsonInput {
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
                    max_samples_to_scale_scores: usize::try_from(
                        params.max_samples_to_scale_scores,
                    )
                    .unwrap_or(10),
                },
            },
            reputer_value_bundles: bundles,
            reputer_stakes: stakes,
            previous_regrets: m.regrets.clone(),
            listening_coefficients: m.listening_coefficients.clone(),
            inferer_score_history: m.inferer_score_history.clone(),
            forecaster_score_history: m.forecaster_score_history.clone(),
            previous_smoothed_fractions: m.smoothed.clone(),
            previous_forecaster_score_ratio: m.forecaster_score_ratio,
            topic_reward: reward as f64,
            topic_reward_base_units: Some(reward),
        };
        let out = match settle(&input) {
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
        // Mechanism state.
        let alpha = t.spec.alpha_regret;
        let irp = InitialRegretParams {
            quantile: params.initial_regret_quantile,
            p_norm_safe_div: params.p_norm_safe_div,
            p_norm: t.spec.p_norm,
            c_norm: params.c_norm,
            epsilon: t.spec.epsilon,
        };
        let m = &mut t.mechanism;
        if let Some(ir) = updated_topic_initial_regret(
            &m.regrets,
            &out.regrets,
            &out.network_losses,
            &m.inferer_inclusions,
            &m.forecaster_inclusions,
            alpha,
            &irp,
        ) && ir.is_finite()
        {
            m.initial_regret = ir;
        }
        m.regrets = out.regrets.clone();
        m.previous_network_loss = Some(out.network_losses.combined_value);
        m.listening_coefficients = out.listening_coefficients.clone();
        let keep = usize::try_from(params.max_samples_to_scale_scores).unwrap_or(10);
        let prepend = |new: &BTreeMap<String, f64>, old: &mut Vec<f64>| {
            let mut v: Vec<f64> = new.values().copied().collect();
            v.append(old);
            v.truncate(keep);
            *old = v;
        };
        prepend(&out.inferer_scores, &mut m.inferer_score_history);
        prepend(&out.forecaster_scores, &mut m.forecaster_score_history);
        m.smoothed = out.smoothed_fractions.clone();
        m.forecaster_score_ratio = out.forecaster_score_ratio;
        let sa = t.spec.merit_sortition_alpha;
        let ema = |map: &mut BTreeMap<String, f64>, scores: &BTreeMap<String, f64>| {
            for (k, v) in scores {
                let next = match map.get(k) {
                    None => *v,
                    Some(p) => sa * v + (1.0 - sa) * p,
                };
                if next.is_finite() {
                    map.insert(k.clone(), next);
                }
            }
        };
        ema(&mut m.ema.inferer, &out.inferer_scores);
        ema(&mut m.ema.forecaster, &out.forecaster_scores);
        ema(&mut m.ema.reputer, &out.reputer_scores);
        let scores: Vec<f64> = out.inferer_scores.values().copied().collect();
        if !scores.is_empty() {
            let q = quantile(&scores, t.spec.active_inferer_quantile);
            if q.is_finite() {
                m.inferer_quantile_score = q;
            }
        }
        // Payouts.
        let Some(p) = out.payouts else {
            return;
        };
        let mut paid = 0u128;
        let mut credits: Vec<(PublicKey, u128, &'static str)> = vec![];
        let mut staked_rewards: Vec<(PublicKey, u128)> = vec![];
        for (role, map) in [("inferer", &p.inferers), ("forecaster", &p.forecasters)] {
            for (k, amount) in map {
                if *amount == 0 {
                    continue;
                }
                if let Ok(pk) = k.parse::<PublicKey>() {
                    credits.push((pk, *amount, role));
                    let counter = if role == "inferer" {
                        &mut m.inferer_inclusions
                    } else {
                        &mut m.forecaster_inclusions
                    };
                    *counter.entry(k.clone()).or_default() += 1;
                }
            }
        }
        for (k, amount) in &p.reputers {
            let (Some(pk), true) = (reputer_keys.get(k), *amount > 0) else {
                continue;
            };
            let Some(stake) = t.stakes.get_mut(pk) else {
                continue;
            };
            let authority = stake.authority().0;
            let delegated = stake.delegated_total().0;
            let Ok((own, to_delegators)) = delegator_split(*amount, delegated, authority) else {
                continue;
            };
            stake.own = Amount(stake.own.0 + own);
            paid += own;
            staked_rewards.push((*pk, own));
            events.push(LedgerEvent::Reward {
                topic,
                epoch,
                to: *pk,
                amount: Amount(own),
                role: "reputer".into(),
            });
            let weights: BTreeMap<PublicKey, f64> = stake
                .delegated
                .iter()
                .map(|(d, a)| (*d, a.0 as f64))
                .collect();
            let split = chorus_protocol::math::payout::split_amount(
                to_delegators,
                &weights,
                chorus_protocol::math::payout::RemainderPolicy::ToPool,
            );
            if let Ok(split) = split {
                for (d, a) in split.amounts {
                    if a == 0 {
                        continue;
                    }
                    if let Some(x) = stake.delegated.get_mut(&d) {
                        *x = Amount(x.0 + a);
                        paid += a;
                        staked_rewards.push((d, a));
                        events.push(LedgerEvent::Reward {
                            topic,
                            epoch,
                            to: d,
                            amount: Amount(a),
                            role: "delegator".into(),
                        });
                    }
                }
            }
        }
        for (pk, amount, role) in &credits {
            paid += amount;
            events.push(LedgerEvent::Reward {
                topic,
                epoch,
                to: *pk,
                amount: Amount(*amount),
                role: (*role).into(),
            });
        }
        t.reward_pool = Amount(t.reward_pool.0.saturating_sub(paid));
        for (pk, amount, _) in credits {
            self.credit(pk, Amount(amount));
            let a = self.accounts.entry(pk).or_default();
            a.rewards = Amount(a.rewards.0 + amount);
        }
        for (pk, amount) in staked_rewards {
            let a = self.accounts.entry(pk).or_default();
            a.rewards = Amount(a.rewards.0 + amount);
        }
    }
}
