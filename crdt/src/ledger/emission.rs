//! Emission per checkpoint period, topic weights and fee-revenue drip, releases.
//!
//! Each period mints `emission_per_period` and distributes it together with the fees the
//! treasury collected (Allora's ecosystem account): `validators_vs_allora_percent_reward` of it
//! to the validator set by bond (liquid; `Ledger::active_bonds`), the rest to active topics by
//! weight into their reward pools, paid out when their epochs settle. Integer remainders stay in the treasury for the next
//! period, so no token is created or lost.
//!
//! Topic weight (Allora §3.7): `ŵ = S^μ · (C / epoch_length)^ν` with S the topic's stake and C
//! its fee revenue in base units, epoch length in Allora blocks (ms / 5000); `w = EMA(α, ŵ,
//! w_prev)`, zero if C is zero. A topic whose weight is below `min_topic_weight` is inactive
//! and gets no emission. Fee revenue drips by `C · period / week` each period.

use std::collections::BTreeMap;

use chorus_protocol::ids::{Amount, TopicId};
use chorus_protocol::params::ALLORA_BLOCK_MS;

use super::{Ledger, LedgerEvent};
use chorus_protocol::math::payout::{RemainderPolicy, split_amount};

/// Allora's weeks per month (`BlocksPerMonth / 4.345` blocks per week).
const WEEKS_PER_MONTH: f64 = 4.345;

impl Ledger {
    /// The current weight of a topic (EMA update not yet stored).
    pub fn topic_weight(&self, id: TopicId) -> f64 {
        let Some(t) = self.topics.get(&id) else {
            return 0.0;
        };
        if t.fee_revenue.0 == 0 {
            return 0.0;
        }
        let p = &self.params;
        let stake = t.total_stake().0 as f64;
        let blocks = (t.spec.epoch_length_ms as f64 / ALLORA_BLOCK_MS as f64).max(1e-9);
        let fees = t.fee_revenue.0 as f64 / blocks;
        let raw = libm::pow(stake, p.topic_reward_stake_importance)
            * libm::pow(fees, p.topic_reward_fee_revenue_importance);
        match t.weight {
            None => raw,
            Some(prev) if prev == raw => raw,
            Some(prev) => p.topic_reward_alpha * raw + (1.0 - p.topic_reward_alpha) * prev,
        }
    }

    pub(super) fn emit(&mut self, _height: u64, events: &mut Vec<LedgerEvent>) {
        let minted = self.params.emission_per_period;
        self.supply.minted = Amount(self.supply.minted.0 + minted.0);
        let budget = self.treasury.0 + minted.0;
        self.treasury = Amount::ZERO;

        // The validator set by bond (bonded accounts waiting outside the set earn nothing).
        let to_validators =
            (budget as f64 * self.params.validators_vs_allora_percent_reward) as u128;
        let to_validators = to_validators.min(budget);
        let bonds: BTreeMap<_, f64> = self
            .active_bonds()
            .into_iter()
            .map(|(k, b)| (k, b.0 as f64))
            .collect();
        let (shares, rest_v) = split(to_validators, &bonds);
        let paid_v: u128 = shares.values().sum();
        for (k, amount) in shares.into_iter().filter(|(_, a)| *a > 0) {
            self.credit(k, Amount(amount));
            let a = self.accounts.entry(k).or_default();
            a.rewards = Amount(a.rewards.0 + amount);
        }

        // Topics by weight.
        let ids: Vec<TopicId> = self.topics.keys().copied().collect();
        let mut weights = BTreeMap::new();
        for id in ids {
            let w = self.topic_weight(id);
            let min = self.params.min_topic_weight;
            if let Some(t) = self.topics.get_mut(&id) {
                t.weight = Some(w);
                t.active = w >= min;
                if t.active {
                    weights.insert(id, w);
                }
            }
        }
        let cap = usize::try_from(self.params.max_active_topics_per_period).unwrap_or(usize::MAX);
        if weights.len() > cap {
            let mut ranked: Vec<(TopicId, f64)> = weights.iter().map(|(k, v)| (*k, *v)).collect();
            ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            weights = ranked.into_iter().take(cap).collect();
        }
        let to_topics = budget - to_validators;
        let (shares, rest_t) = split(to_topics, &weights);
        let paid_t: u128 = shares.values().sum();
        for (id, amount) in shares.into_iter().filter(|(_, a)| *a > 0) {
            if let Some(t) = self.topics.get_mut(&id) {
                t.reward_pool = Amount(t.reward_pool.0 + amount);
            }
        }
        self.treasury = Amount(rest_v + rest_t);
        events.push(LedgerEvent::Emission {
            minted,
            validators: Amount(paid_v),
            topics: Amount(paid_t),
        });

        // Fee-revenue drip.
        let week_ms = self.params.month_ms as f64 / WEEKS_PER_MONTH;
        let fraction = (self.params.checkpoint_period_ms as f64 / week_ms).min(1.0);
        for t in self.topics.values_mut() {
            let c = t.fee_revenue.0 as f64;
            let left = (c - c * fraction).max(0.0);
            t.fee_revenue = Amount((left as u128).min(t.fee_revenue.0));
        }
    }

    pub(super) fn release_due(&mut self, now: u64) {
        let (due, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut self.releases)
            .into_iter()
            .partition(|r| r.at_ms <= now);
        self.releases = keep;
        for r in due {
            self.credit(r.owner, r.amount);
        }
    }
}

/// Split `total` by weights; every unit not handed out is returned as the remainder.
fn split<K: Ord + Clone>(total: u128, weights: &BTreeMap<K, f64>) -> (BTreeMap<K, u128>, u128) {
    match split_amount(total, weights, RemainderPolicy::ToPool) {
        Ok(p) => (p.amounts, p.remainder),
        // No positive weight (or too many actors): nothing is distributed.
        Err(_) => (BTreeMap::new(), total),
    }
}
