//! Who counts in an epoch: the workers of a worker window (registered, with a bundle, at most
//! `max_top_*_to_reward` ranked by EMA score — merit sortition, with `allora-mad`'s newcomer
//! score and liveness penalty), the synthesis input built from them, and the reputers of a
//! reputer window (registered, staked, the largest stakes).

use std::collections::{BTreeMap, BTreeSet};

use chorus_protocol::ids::{Hash32, TopicId};
use chorus_protocol::keys::PublicKey;
use chorus_protocol::math::mechanism::MechanismVersion;
use chorus_protocol::math::scores::{initial_ema_score, liveness_penalty};
use chorus_protocol::math::synthesis::{SynthesisInput, SynthesisParams};
use chorus_protocol::messages::{Payload, ValueBundle, WorkerBundle};
use chorus_protocol::params::ModuleParams;

use super::super::state::TopicState;
use super::super::{Ledger, SignedEntry};
use super::hex;

/// How a topic ranks its actors by EMA score for merit sortition: `allora-v0.6` ranks a
/// newcomer at the topic's last score quantile; `allora-mad` ranks it at the lowest candidate's
/// EMA score minus two standard deviations of the candidates' EMA scores, and pulls a returning
/// actor's EMA toward that score for every epoch it missed.
struct Ranking<'a> {
    ema: &'a BTreeMap<String, f64>,
    /// `allora-mad`: last scored epochs and the epoch being ranked.
    liveness: Option<(&'a BTreeMap<String, u64>, u64)>,
    alpha: f64,
    newcomer: f64,
}

impl<'a> Ranking<'a> {
    fn new<'c>(
        t: &'a TopicState,
        ema: &'a BTreeMap<String, f64>,
        last: &'a BTreeMap<String, u64>,
        candidates: impl Iterator<Item = &'c String>,
        epoch: u64,
    ) -> Self {
        let alpha = t.spec.merit_sortition_alpha;
        match t.spec.mechanism {
            MechanismVersion::AlloraV06 => Ranking {
                ema,
                liveness: None,
                alpha,
                newcomer: t.mechanism.inferer_quantile_score,
            },
            MechanismVersion::AlloraMad => {
                let known: Vec<f64> = candidates.filter_map(|k| ema.get(k).copied()).collect();
                Ranking {
                    ema,
                    liveness: Some((last, epoch)),
                    alpha,
                    newcomer: initial_ema_score(&known),
                }
            }
        }
    }

    /// The EMA score `k` is ranked by in this epoch.
    fn score(&self, k: &String) -> f64 {
        let Some(&s) = self.ema.get(k) else {
            return self.newcomer;
        };
        match self.liveness {
            None => s,
            Some((last, epoch)) => {
                let missed = last
                    .get(k)
                    .map_or(0, |&l| epoch.saturating_sub(l.saturating_add(1)));
                liveness_penalty(self.alpha, self.newcomer, s, missed)
            }
        }
    }
}

/// The workers of an epoch that count, before data fees ([`Ledger::counted_workers`]).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CountedWorkers {
    /// Inferers and their inference.
    inferers: Vec<(String, f64)>,
    /// Forecasters and their forecasts by inferer.
    forecasters: Vec<(String, BTreeMap<String, f64>)>,
    /// The key of every counted worker, by hex.
    pub keys: BTreeMap<String, PublicKey>,
}

impl Ledger {
    /// The workers of a worker window's effective `entries` that count for `(topic, epoch)`
    /// (`None`: unknown topic). With [`Ledger::epoch_synthesis_input`], the one way the
    /// synthesis input of an epoch is built: by the settlement when the window is finalized,
    /// and by the replica for its live inference when the window closes.
    pub fn counted_workers(
        &self,
        topic: TopicId,
        epoch: u64,
        entries: &[SignedEntry],
    ) -> Option<CountedWorkers> {
        let t = self.topics.get(&topic)?;
        Some(counted_workers(t, &self.params, topic, epoch, entries))
    }

    /// Whether `who` can pay the data-sending fee now (what the settlement will charge).
    pub fn can_pay_data_fee(&self, who: &PublicKey) -> bool {
        self.balance(who) >= self.params.data_sending_fee
    }

    /// The synthesis input of an epoch from its counted workers, leaving out those in
    /// `unpaid` (by hex key) and forecasts of inferers that do not count (`None`: unknown
    /// topic). Its `inferences` may be empty.
    pub fn epoch_synthesis_input(
        &self,
        topic: TopicId,
        counted: CountedWorkers,
        unpaid: &BTreeSet<String>,
    ) -> Option<SynthesisInput<String>> {
        let t = self.topics.get(&topic)?;
        let inferences: BTreeMap<String, f64> = counted
            .inferers
            .into_iter()
            .filter(|(k, _)| !unpaid.contains(k))
            .collect();
        let forecasts = counted
            .forecasters
            .into_iter()
            .filter(|(k, _)| !unpaid.contains(k))
            .map(|(k, m)| {
                let m: BTreeMap<String, f64> = m
                    .into_iter()
                    .filter(|(j, _)| inferences.contains_key(j))
                    .collect();
                (k, m)
            })
            .filter(|(_, m)| !m.is_empty())
            .collect();
        Some(synthesis_input(t, &self.params, inferences, forecasts))
    }
}

/// The bundles of `(topic, epoch)` among a worker window's `entries`, by author. Without
/// commit-reveal, the plain bundles; with it, each revealed bundle whose author's commitment
/// among the same entries equals the reveal's: a reveal without a commitment, or not
/// matching it, does not count (the epoch is missed), and plain bundles never count.
pub fn worker_bundles(
    entries: &[SignedEntry],
    topic: TopicId,
    epoch: u64,
    commit_reveal: bool,
) -> Vec<(&PublicKey, &WorkerBundle)> {
    let here = |b: &WorkerBundle| b.topic == topic && b.epoch == epoch;
    if !commit_reveal {
        return entries
            .iter()
            .filter_map(|e| match &e.payload {
                Payload::WorkerBundle(b) if here(b) => Some((&e.author, b)),
                _ => None,
            })
            .collect();
    }
    let commitments: BTreeMap<&PublicKey, &Hash32> = entries
        .iter()
        .filter_map(|e| match &e.payload {
            Payload::WorkerCommit(c) if c.topic == topic && c.epoch == epoch => {
                Some((&e.author, &c.commitment))
            }
            _ => None,
        })
        .collect();
    entries
        .iter()
        .filter_map(|e| match &e.payload {
            Payload::WorkerReveal(r)
                if here(&r.bundle) && commitments.get(&e.author) == Some(&&r.commitment()) =>
            {
                Some((&e.author, &r.bundle))
            }
            _ => None,
        })
        .collect()
}

/// The workers of `(topic, epoch)` that count: registered authors with a bundle; at most
/// `max_top_inferers_to_reward` inferers and `max_top_forecasters_to_reward` forecasters.
fn counted_workers(
    t: &TopicState,
    params: &ModuleParams,
    topic: TopicId,
    epoch: u64,
    entries: &[SignedEntry],
) -> CountedWorkers {
    let cap = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
    let mech = &t.mechanism;
    // Candidates: registered authors with a bundle, in key order.
    let mut bundles: Vec<(&PublicKey, &WorkerBundle)> =
        worker_bundles(entries, topic, epoch, t.spec.commit_reveal())
            .into_iter()
            .filter(|(a, _)| t.workers.contains(a))
            .collect();
    bundles.sort_by_key(|(a, _)| **a);
    let inferers: Vec<(String, f64)> = bundles
        .iter()
        .filter_map(|(a, b)| b.inference.map(|v| (hex(a), v)))
        .collect();
    let rank = Ranking::new(
        t,
        &mech.ema.inferer,
        &mech.last_scored.inferer,
        inferers.iter().map(|(k, _)| k),
        epoch,
    );
    let inferers = keep_top(inferers, cap(params.max_top_inferers_to_reward), &rank);
    let forecasters: Vec<(String, BTreeMap<String, f64>)> = bundles
        .iter()
        .filter(|(_, b)| !b.forecasts.is_empty())
        .map(|(a, b)| {
            let forecasts = b
                .forecasts
                .iter()
                .map(|f| (hex(&f.inferer), f.value))
                .collect();
            (hex(a), forecasts)
        })
        .collect();
    let rank = Ranking::new(
        t,
        &mech.ema.forecaster,
        &mech.last_scored.forecaster,
        forecasters.iter().map(|(k, _)| k),
        epoch,
    );
    let forecasters = keep_top(
        forecasters,
        cap(params.max_top_forecasters_to_reward),
        &rank,
    );
    let keys = bundles
        .iter()
        .map(|(a, _)| (hex(a), **a))
        .filter(|(h, _)| {
            inferers.iter().any(|(k, _)| k == h) || forecasters.iter().any(|(k, _)| k == h)
        })
        .collect();
    CountedWorkers {
        inferers,
        forecasters,
        keys,
    }
}

/// The synthesis input of an epoch: the counted inferences and forecasts, the topic's
/// parameters and mechanism state.
fn synthesis_input(
    t: &TopicState,
    params: &ModuleParams,
    inferences: BTreeMap<String, f64>,
    forecasts: BTreeMap<String, BTreeMap<String, f64>>,
) -> SynthesisInput<String> {
    SynthesisInput {
        params: SynthesisParams {
            p_norm: t.spec.p_norm,
            c_norm: params.c_norm,
            epsilon: t.spec.epsilon,
            epsilon_safe_div: params.epsilon_safe_div,
            mechanism: t.spec.mechanism,
        },
        initial_regret: t.mechanism.initial_regret,
        previous_network_loss: t.mechanism.previous_network_loss,
        inferences,
        forecasts,
        regrets: t.mechanism.regrets.clone(),
    }
}

/// At most `cap` workers, the best by [`Ranking`] first, ties by key; the list is left as it
/// is when it fits.
fn keep_top<V>(
    mut workers: Vec<(String, V)>,
    cap: usize,
    ranking: &Ranking<'_>,
) -> Vec<(String, V)> {
    if workers.len() > cap {
        let rank = |k: &String| ranking.score(k);
        workers.sort_by(|a, b| rank(&b.0).total_cmp(&rank(&a.0)).then(a.0.cmp(&b.0)));
        workers.truncate(cap);
    }
    workers
}

/// A reputer whose bundle counts in a settlement.
pub(super) struct CountedReputer<'a> {
    /// Its key.
    pub(super) key: PublicKey,
    /// Stake authority (own + delegated), base units.
    pub(super) stake: u128,
    /// Its losses of the epoch's bundle.
    pub(super) losses: &'a ValueBundle,
    /// The ground truth it reported.
    pub(super) ground_truth: f64,
}

/// The stake-weighted median of the reputers' reported ground truths: the smallest report at
/// which the stake of reports at or below it reaches half the total; `None` without reports.
pub(super) fn stake_weighted_median(reputers: &[CountedReputer<'_>]) -> Option<f64> {
    let mut reports: Vec<(f64, u128)> =
        reputers.iter().map(|r| (r.ground_truth, r.stake)).collect();
    reports.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total: u128 = reports.iter().map(|r| r.1).sum();
    let mut below = 0u128;
    reports.into_iter().find_map(|(value, stake)| {
        below += stake;
        (below.saturating_mul(2) >= total).then_some(value)
    })
}

/// The reputers whose bundles count for `(topic, epoch)`: registered, with a positive stake
/// authority of at least `required_minimum_stake`; the `max_top_reputers_to_reward` largest
/// stakes, ties by key.
pub(super) fn counted_reputers<'a>(
    t: &TopicState,
    params: &ModuleParams,
    topic: TopicId,
    epoch: u64,
    entries: &'a [SignedEntry],
) -> Vec<CountedReputer<'a>> {
    let mut reputers: Vec<CountedReputer<'a>> = entries
        .iter()
        .filter(|e| t.reputers.contains(&e.author))
        .filter_map(|e| match &e.payload {
            Payload::ReputerBundle(b) if b.topic == topic && b.epoch == epoch => {
                let stake = t
                    .stakes
                    .get(&e.author)
                    .map(|s| s.authority().0)
                    .unwrap_or(0);
                (stake >= params.required_minimum_stake.0 && stake > 0).then_some(CountedReputer {
                    key: e.author,
                    stake,
                    losses: &b.losses,
                    ground_truth: b.ground_truth,
                })
            }
            _ => None,
        })
        .collect();
    reputers.sort_by(|a, b| b.stake.cmp(&a.stake).then(a.key.cmp(&b.key)));
    reputers.truncate(usize::try_from(params.max_top_reputers_to_reward).unwrap_or(usize::MAX));
    reputers
}
