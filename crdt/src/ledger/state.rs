//! The ledger's state: plain data, serialisable, hashed into the ledger root.

use std::collections::{BTreeMap, BTreeSet};

use chorus_protocol::ids::{Amount, Hash32, TopicId};
use chorus_protocol::keys::PublicKey;
use chorus_protocol::messages::{GovernanceAction, VoteOption};
use chorus_protocol::topic::TopicSpec;
use serde::{Deserialize, Serialize};

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
