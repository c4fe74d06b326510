//! The ledger's state: plain data, serialisable, hashed into the ledger root.

use std::collections::{BTreeMap, BTreeSet};

use chorus_protocol::ids::{Amount, Hash32, TopicId};
use chorus_protocol::keys::PublicKey;
use chorus_protocol::messages::{GovernanceAction, Role, VoteOption};
use chorus_protocol::topic::TopicSpec;
use serde::{Deserialize, Serialize};

use crate::window::Phase;

/// A liquid account.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Account {
    /// Liquid balance.
    pub balance: Amount,
    /// Highest ledger nonce applied (nonces must increase; gaps are allowed).
    pub nonce: u64,
    /// Total rewards ever received (liquid and staked), for `chorus rewards`.
    pub rewards: Amount,
}

/// Stake released at a time.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Release {
    /// Who gets it.
    pub owner: PublicKey,
    /// Time (ms, checkpoint clock) at which it becomes liquid.
    pub at_ms: u64,
    /// Amount.
    pub amount: Amount,
}

/// A validator.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Validator {
    /// Bonded amount (voting power is proportional).
    pub bond: Amount,
    /// Human name from genesis.
    pub name: String,
    /// Times it was slashed.
    pub slashed_count: u64,
}

/// A reputer's stake in a topic.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ReputerStake {
    /// Staked by the reputer itself.
    pub own: Amount,
    /// Staked upon it by delegators.
    pub delegated: BTreeMap<PublicKey, Amount>,
}

impl ReputerStake {
    /// Own + delegated (Allora's StakeReputerAuthority).
    pub fn authority(&self) -> Amount {
        let d: u128 = self.delegated.values().map(|a| a.0).sum();
        Amount(self.own.0.saturating_add(d))
    }

    /// Delegated total.
    pub fn delegated_total(&self) -> Amount {
        Amount(self.delegated.values().map(|a| a.0).sum())
    }

    /// Add `amount`: to the reputer's own stake (`delegator` `None`) or to `delegator`'s
    /// delegation.
    pub fn add(&mut self, delegator: Option<PublicKey>, amount: Amount) {
        let slot = match delegator {
            None => &mut self.own,
            Some(d) => self.delegated.entry(d).or_default(),
        };
        *slot = Amount(slot.0 + amount.0);
    }
}

/// A topic and everything the ledger tracks about it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TopicState {
    /// Definition.
    pub spec: TopicSpec,
    /// Creator.
    pub creator: PublicKey,
    /// Registered workers.
    pub workers: BTreeSet<PublicKey>,
    /// Registered reputers.
    pub reputers: BTreeSet<PublicKey>,
    /// Reputer stakes.
    pub stakes: BTreeMap<PublicKey, ReputerStake>,
    /// Fee revenue C_t (a weight input; the coins go to the treasury).
    pub fee_revenue: Amount,
    /// Previous topic weight (EMA), `None` before the first.
    pub weight: Option<f64>,
    /// Emission allocated to this topic and not yet paid out.
    pub reward_pool: Amount,
    /// Rewards paid in this topic so far, per recipient (every role; reputers' and
    /// delegators' into their stake).
    pub rewards_paid: BTreeMap<PublicKey, Amount>,
    /// Next epoch whose worker window a checkpoint finalizes.
    pub next_worker_epoch: u64,
    /// Next epoch whose reputer window a checkpoint finalizes.
    pub next_reputer_epoch: u64,
    /// Whether the topic is active (weight ≥ min topic weight, or not yet weighed).
    pub active: bool,
    /// Regrets, scores, EMAs and pending epochs of the mechanism.
    pub mechanism: super::settle::Mechanism,
}

impl TopicState {
    /// A new active topic: no registrations, stake, pool or mechanism history yet.
    pub fn new(spec: TopicSpec, creator: PublicKey, fee_revenue: Amount) -> TopicState {
        TopicState {
            spec,
            creator,
            workers: BTreeSet::new(),
            reputers: BTreeSet::new(),
            stakes: BTreeMap::new(),
            fee_revenue,
            weight: None,
            reward_pool: Amount::ZERO,
            rewards_paid: BTreeMap::new(),
            next_worker_epoch: 0,
            next_reputer_epoch: 0,
            active: true,
            mechanism: Default::default(),
        }
    }

    /// The keys registered for `role`.
    pub fn members(&self, role: Role) -> &BTreeSet<PublicKey> {
        match role {
            Role::Worker => &self.workers,
            Role::Reputer => &self.reputers,
        }
    }

    /// The keys registered for `role`, to change.
    pub fn members_mut(&mut self, role: Role) -> &mut BTreeSet<PublicKey> {
        match role {
            Role::Worker => &mut self.workers,
            Role::Reputer => &mut self.reputers,
        }
    }

    /// The next epoch whose `phase` window a checkpoint finalizes.
    pub fn next_epoch(&self, phase: Phase) -> u64 {
        match phase {
            Phase::Workers => self.next_worker_epoch,
            Phase::Reputers => self.next_reputer_epoch,
        }
    }

    /// [`TopicState::next_epoch`], to advance.
    pub fn next_epoch_mut(&mut self, phase: Phase) -> &mut u64 {
        match phase {
            Phase::Workers => &mut self.next_worker_epoch,
            Phase::Reputers => &mut self.next_reputer_epoch,
        }
    }

    /// When the `phase` window of `epoch` closes (ms).
    pub fn window_close(&self, phase: Phase, epoch: u64) -> u64 {
        match phase {
            Phase::Workers => self.spec.worker_window(epoch).1,
            Phase::Reputers => self.spec.reputer_window(epoch).1,
        }
    }

    /// All stake in the topic (Allora's GetTopicStake).
    pub fn total_stake(&self) -> Amount {
        Amount(self.stakes.values().map(|s| s.authority().0).sum())
    }
}

/// A governance proposal.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Proposal {
    /// Who proposed it.
    pub proposer: PublicKey,
    /// Title.
    pub title: String,
    /// What happens if it passes.
    pub action: GovernanceAction,
    /// Last checkpoint height at which votes count.
    pub voting_ends: u64,
    /// Each voter's latest choice.
    pub votes: BTreeMap<PublicKey, VoteOption>,
    /// Outcome once tallied.
    pub outcome: Option<ProposalOutcome>,
}

/// A tallied proposal.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProposalOutcome {
    /// Stake for.
    pub yes: Amount,
    /// Stake against.
    pub no: Amount,
    /// Stake abstaining.
    pub abstain: Amount,
    /// Whether it passed (and its action was applied).
    pub passed: bool,
    /// Why the action failed to apply, if it passed but could not.
    pub error: Option<String>,
}

/// Totals for the supply invariant.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Supply {
    /// Supply at genesis.
    pub genesis: Amount,
    /// Minted by emission since.
    pub minted: Amount,
    /// Burned by slashing since.
    pub slashed: Amount,
}

/// Evidence already punished (by content hash).
pub type EvidenceSet = BTreeSet<Hash32>;

/// Map of topics.
pub type Topics = BTreeMap<TopicId, TopicState>;
