//! The ledger: a deterministic state machine over finalized windows.
//!
//! Each checkpoint height `h` covers the checkpoint period `[t_h, t_h + P)` with
//! `t_h = genesis_time + h·P`. Applying height `h` ([`Ledger::apply`]) takes the finalized
//! content of the windows that [`Ledger::windows_due`] named before the height started and
//! applies, in this fixed order:
//! 1. ledger messages, sorted by (author, nonce) — transfers, fees, stakes, bonds,
//!    registrations, topics, governance; then evidence, sorted by id (slashing);
//! 2. worker windows (inferences of an epoch, recorded for its settlement);
//! 3. reputer windows (the epoch's settlement: losses, regrets, scores, rewards);
//! 4. emission for the period (validators by bond, topics by weight) and fee-revenue drip;
//! 5. releases of unbonded stake that are due; governance tallies that are due.
//!
//! Its root is blake3 over its canonical encoding. Invariants: total supply = genesis +
//! minted − slashed (checked by [`Ledger::check_supply`]); balances never go negative (amounts
//! are unsigned and every debit is checked).

mod emission;
mod error;
mod governance;
pub mod settle;
mod slashing;
pub mod state;
mod tx;
mod window_state;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};

use chorus_protocol::genesis::Genesis;
use chorus_protocol::ids::{Amount, Hash32, TopicId};
use chorus_protocol::keys::PublicKey;
use chorus_protocol::messages::{Evidence, Payload};
use chorus_protocol::params::ModuleParams;
use serde::{Deserialize, Serialize};

pub use error::{LedgerError, TxError};
pub use settle::{CountedWorkers, EmaScores, EpochRecord, Mechanism, PerTask, ScoredEpochs};
pub use state::{
    Account, Proposal, ProposalOutcome, Release, ReputerStake, Supply, TopicState, Validator,
};
pub use window_state::WindowState;

use crate::window::{Phase, WindowKey};

/// One finalized, signed entry as the ledger sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct SignedEntry {
    /// Its author.
    pub author: PublicKey,
    /// Its message id.
    pub id: Hash32,
    /// Its payload.
    pub payload: Payload,
}

/// The finalized content of one checkpoint height.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HeightInput {
    /// Effective entries of the ledger window of this period.
    pub ledger: Vec<SignedEntry>,
    /// Effective entries of each finalized topic window.
    pub windows: BTreeMap<WindowKey, Vec<SignedEntry>>,
}

/// Verifies consensus-vote evidence (implemented by the checkpoint module): returns the
/// validator that signed both votes if the evidence proves a double vote.
pub trait EvidenceVerifier {
    /// The offender and the offence's id (one id per equivocated slot, whatever pair of
    /// messages shows it), if `evidence` is a valid proof.
    fn offence(&self, evidence: &Evidence) -> Option<(PublicKey, Hash32)>;
}

/// A verifier that accepts no consensus evidence (for tests without consensus).
pub struct NoConsensusEvidence;

impl EvidenceVerifier for NoConsensusEvidence {
    fn offence(&self, _: &Evidence) -> Option<(PublicKey, Hash32)> {
        None
    }
}

/// One actor's part in a settled epoch ([`LedgerEvent::Scored`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScoredActor {
    /// The actor.
    pub who: PublicKey,
    /// `inferer`, `forecaster` or `reputer`.
    pub role: String,
    /// Its instant score this epoch: the one-out score for workers (T_ij: how much the
    /// network loss grows without it), the consensus score for reputers (T_m).
    pub score: f64,
    /// Its EMA score after this epoch (what sortition and the leaderboard use).
    pub ema_score: f64,
    /// Its share of the role's reward this epoch (u_ij, v_ik, w_m).
    pub reward_fraction: f64,
    /// Inferers: its raw weight in the epoch's network inference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<f64>,
}

/// Something the ledger did, for logs, the REST API and reports.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum LedgerEvent {
    /// A ledger message took effect.
    Applied {
        /// Author.
        author: PublicKey,
        /// Message id.
        id: Hash32,
        /// Kind.
        kind: String,
    },
    /// A ledger message was refused (its nonce is still consumed).
    Refused {
        /// Author.
        author: PublicKey,
        /// Message id.
        id: Hash32,
        /// Why.
        reason: String,
    },
    /// A bond or stake was slashed.
    Slashed {
        /// Offender.
        offender: PublicKey,
        /// Amount burned.
        amount: Amount,
    },
    /// Emission of a period.
    Emission {
        /// Minted.
        minted: Amount,
        /// Paid to validators.
        validators: Amount,
        /// Allocated to topics.
        topics: Amount,
    },
    /// A reward was paid.
    Reward {
        /// Topic.
        topic: TopicId,
        /// Epoch.
        epoch: u64,
        /// Recipient.
        to: PublicKey,
        /// Amount.
        amount: Amount,
        /// Role it was paid for (`inferer`, `forecaster`, `reputer`, `delegator`).
        role: String,
        /// The owner the liquid reward went to, when `to` has one (`SetOwner`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        paid_to: Option<PublicKey>,
    },
    /// The network inference of a finalized worker window.
    NetworkInference {
        /// Topic.
        topic: TopicId,
        /// Epoch.
        epoch: u64,
        /// Combined value.
        combined: f64,
        /// Naive value.
        naive: Option<f64>,
    },
    /// An epoch was settled: every scored actor's score, for per-epoch statements. Comes
    /// before the epoch's `Reward` events.
    Scored {
        /// Topic.
        topic: TopicId,
        /// Epoch.
        epoch: u64,
        /// One line per (actor, role), in role then key order.
        actors: Vec<ScoredActor>,
        /// The ground truth the counted reputers reported: the stake-weighted median of their
        /// reports (what consumers plot the network inference against).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ground_truth: Option<f64>,
        /// The network's combined loss of the epoch (the reputers' consensus; log10 unless
        /// the topic allows negative losses).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        network_loss: Option<f64>,
    },
    /// The mechanism could not process an epoch (bad inputs); nothing was paid.
    MechanismError {
        /// Topic.
        topic: TopicId,
        /// Epoch.
        epoch: u64,
        /// Why.
        reason: String,
    },
    /// A governance proposal was tallied.
    Tallied {
        /// Proposal id.
        proposal: Hash32,
        /// Whether it passed.
        passed: bool,
    },
}

/// The whole replicated ledger.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Ledger {
    /// The network (verifies evidence envelopes).
    pub network: Hash32,
    /// Genesis time (ms).
    pub genesis_time_ms: u64,
    /// Next height to apply.
    pub next_height: u64,
    /// Module parameters (governance may change them).
    pub params: ModuleParams,
    /// Accounts.
    pub accounts: BTreeMap<PublicKey, Account>,
    /// Validators.
    pub validators: BTreeMap<PublicKey, Validator>,
    /// Topics.
    pub topics: BTreeMap<TopicId, TopicState>,
    /// Pending releases of unbonded stake, in order of arrival.
    pub releases: Vec<Release>,
    /// Fees collected and not yet distributed (Allora's ecosystem account).
    pub treasury: Amount,
    /// Governance proposals by id.
    pub proposals: BTreeMap<Hash32, Proposal>,
    /// Evidence already acted upon.
    pub evidence: BTreeSet<Hash32>,
    /// Supply accounting.
    pub supply: Supply,
    /// The validator set's bonds ([`Ledger::active_bonds`]) as they were before the last
    /// applied height: they define the validator set of consensus height `next_height + 1`
    /// (bonds take effect two heights after the height that changed them), which a node
    /// restarting from this state needs.
    #[serde(default)]
    pub bonds_before_last: Vec<(PublicKey, Amount)>,
    /// Owners of worker and reputer keys (`SetOwner`): an owner receives the liquid rewards
    /// its keys earn. A key absent here owns itself.
    #[serde(default)]
    pub owners: BTreeMap<PublicKey, PublicKey>,
}

impl Ledger {
    /// The ledger at genesis.
    pub fn from_genesis(g: &Genesis) -> Result<Ledger, LedgerError> {
        g.validate()
            .map_err(|e| LedgerError::Genesis(e.to_string()))?;
        let mut l = Ledger {
            network: g.network_id(),
            genesis_time_ms: g.genesis_time_ms,
            next_height: 0,
            params: g.params.clone(),
            accounts: BTreeMap::new(),
            validators: BTreeMap::new(),
            topics: BTreeMap::new(),
            releases: vec![],
            treasury: Amount::ZERO,
            proposals: BTreeMap::new(),
            evidence: BTreeSet::new(),
            supply: Supply {
                genesis: g.total_supply().unwrap_or_default(),
                ..Supply::default()
            },
            bonds_before_last: vec![],
            owners: BTreeMap::new(),
        };
        for b in &g.balances {
            l.accounts.entry(b.address).or_default().balance = b.amount;
        }
        for v in &g.validators {
            l.validators.insert(
                v.address,
                Validator {
                    bond: v.bond,
                    name: v.name.clone(),
                    slashed_count: 0,
                },
            );
        }
        for t in &g.topics {
            l.topics.insert(
                t.id,
                TopicState::new(t.spec.clone(), t.creator, t.fee_revenue),
            );
        }
        for r in &g.registrations {
            if let Some(t) = l.topics.get_mut(&r.topic) {
                t.members_mut(r.role).insert(r.address);
            }
        }
        for s in &g.reputer_stakes {
            if let Some(t) = l.topics.get_mut(&s.topic) {
                t.stakes
                    .entry(s.reputer)
                    .or_default()
                    .add(s.delegator, s.amount);
            }
        }
        Ok(l)
    }

    /// Start (ms) of checkpoint period `h`.
    pub fn period_start(&self, h: u64) -> u64 {
        self.genesis_time_ms
            .saturating_add(h.saturating_mul(self.params.checkpoint_period_ms))
    }

    /// End (ms) of checkpoint period `h`: the ledger's clock while applying `h`.
    pub fn period_end(&self, h: u64) -> u64 {
        self.period_start(h.saturating_add(1))
    }

    /// The checkpoint period containing time `now_ms`.
    pub fn period_at(&self, now_ms: u64) -> u64 {
        now_ms.saturating_sub(self.genesis_time_ms) / self.params.checkpoint_period_ms.max(1)
    }

    /// The windows the next height finalizes: its ledger period, and every topic window whose
    /// close (plus the clock-skew allowance) falls within the period. Deterministic in the
    /// ledger state, so proposer and validators agree on it.
    pub fn windows_due(&self) -> Vec<WindowKey> {
        let h = self.next_height;
        self.windows_closing(vec![WindowKey::Ledger { period: h }], self.period_end(h))
    }

    /// Every window not finalized yet that has closed, with the clock-skew allowance, by
    /// `now_ms`: what the coming heights will finalize, as far as time has gone (at most
    /// `limit` ledger periods). For reconciliation before a late proposal, not for consensus.
    pub fn windows_closed_by(&self, now_ms: u64, limit: u64) -> Vec<WindowKey> {
        let skew = self.params.max_clock_skew_ms;
        let ledger = (self.next_height..self.next_height.saturating_add(limit))
            .take_while(|p| self.period_end(*p).saturating_add(skew) <= now_ms)
            .map(|period| WindowKey::Ledger { period })
            .collect();
        self.windows_closing(ledger, now_ms)
    }

    /// `out` plus every topic window not finalized yet whose close plus the clock-skew
    /// allowance is at or before `end`, sorted.
    fn windows_closing(&self, mut out: Vec<WindowKey>, end: u64) -> Vec<WindowKey> {
        let skew = self.params.max_clock_skew_ms;
        for (id, t) in &self.topics {
            for phase in [Phase::Workers, Phase::Reputers] {
                let mut epoch = t.next_epoch(phase);
                while t.window_close(phase, epoch).saturating_add(skew) <= end {
                    out.push(WindowKey::Topic {
                        topic: *id,
                        epoch,
                        phase,
                    });
                    epoch += 1;
                }
            }
        }
        out.sort();
        out
    }

    /// Apply the finalized content of the next height. Returns what happened.
    pub fn apply(
        &mut self,
        height: u64,
        input: &HeightInput,
        verifier: &dyn EvidenceVerifier,
    ) -> Result<Vec<LedgerEvent>, LedgerError> {
        if height != self.next_height {
            return Err(LedgerError::WrongHeight {
                expected: self.next_height,
                got: height,
            });
        }
        let due: BTreeSet<WindowKey> = self.windows_due().into_iter().collect();
        if let Some(k) = input.windows.keys().find(|k| !due.contains(k)) {
            return Err(LedgerError::UnexpectedWindow(*k));
        }
        self.bonds_before_last = self.active_bonds();
        let mut events = vec![];
        let now = self.period_end(height);
        self.apply_ledger_messages(&input.ledger, now, verifier, &mut events);
        // Worker windows before reputer windows; within a phase, in (topic, epoch) order.
        let mut settling: BTreeMap<TopicId, u128> = BTreeMap::new();
        for key in &due {
            if let WindowKey::Topic {
                topic,
                phase: Phase::Reputers,
                ..
            } = key
            {
                *settling.entry(*topic).or_default() += 1;
            }
        }
        for phase in [Phase::Workers, Phase::Reputers] {
            for key in &due {
                if let WindowKey::Topic {
                    topic,
                    epoch,
                    phase: p,
                } = *key
                    && p == phase
                {
                    let entries = input.windows.get(key).map(Vec::as_slice).unwrap_or(&[]);
                    let n = settling.get(&topic).copied().unwrap_or(1);
                    self.finalize_topic_window(topic, epoch, phase, entries, n, &mut events);
                    // Each settled epoch takes its share of what is left in the pool.
                    if phase == Phase::Reputers
                        && let Some(c) = settling.get_mut(&topic)
                    {
                        *c = c.saturating_sub(1).max(1);
                    }
                }
            }
        }
        self.emit(height, &mut events);
        self.release_due(now);
        self.tally_due(height, &mut events);
        self.next_height = height + 1;
        Ok(events)
    }

    fn finalize_topic_window(
        &mut self,
        topic: TopicId,
        epoch: u64,
        phase: Phase,
        entries: &[SignedEntry],
        epochs_settling: u128,
        events: &mut Vec<LedgerEvent>,
    ) {
        match phase {
            Phase::Workers => self.finalize_worker_window(topic, epoch, entries, events),
            Phase::Reputers => {
                self.finalize_reputer_window(topic, epoch, entries, epochs_settling, events)
            }
        }
        if let Some(t) = self.topics.get_mut(&topic) {
            let next = t.next_epoch_mut(phase);
            *next = (*next).max(epoch + 1);
        }
    }

    /// The bytes to persist to restart from this state ([`Ledger::from_snapshot`]).
    ///
    /// Not the root's encoding: the root hashes bincode, but bincode cannot decode several
    /// of the ledger's types (`Amount` reads with `deserialize_any` to take numbers and
    /// strings, `LossMethod` is internally tagged, `ParamValue` untagged), so a snapshot is
    /// JSON, whose floats round-trip exactly (`serde_json`'s `float_roundtrip`). A restorer
    /// can check the decoded ledger's root against the checkpoint of its height.
    ///
    /// # Errors
    /// The state does not encode (a bug: then nothing must be persisted in its place).
    pub fn to_snapshot(&self) -> Result<Vec<u8>, LedgerError> {
        serde_json::to_vec(self).map_err(|e| LedgerError::Snapshot(e.to_string()))
    }

    /// Decode a snapshot made by [`Ledger::to_snapshot`].
    pub fn from_snapshot(bytes: &[u8]) -> Result<Ledger, LedgerError> {
        serde_json::from_slice(bytes).map_err(|e| LedgerError::Snapshot(e.to_string()))
    }

    /// blake3 over the canonical encoding of the whole state.
    pub fn root(&self) -> Hash32 {
        let bytes = bincode::serde::encode_to_vec(self, chorus_protocol::codec::config())
            .unwrap_or_default();
        Hash32::of_parts("chorus/ledger/v1", &[&bytes])
    }

    /// Who receives `actor`'s liquid rewards: its owner, or itself.
    pub fn owner_of(&self, actor: &PublicKey) -> PublicKey {
        self.owners.get(actor).copied().unwrap_or(*actor)
    }

    /// Every token in existence: balances, bonds, stakes, pending releases, topic pools and the
    /// treasury.
    pub fn total_tokens(&self) -> u128 {
        let accounts: u128 = self.accounts.values().map(|a| a.balance.0).sum();
        let bonds: u128 = self.validators.values().map(|v| v.bond.0).sum();
        let stakes: u128 = self
            .topics
            .values()
            .map(|t| t.total_stake().0 + t.reward_pool.0)
            .sum();
        let releases: u128 = self.releases.iter().map(|r| r.amount.0).sum();
        accounts + bonds + stakes + releases + self.treasury.0
    }

    /// Check total supply = genesis + minted − slashed.
    pub fn check_supply(&self) -> Result<(), String> {
        let expected = self.supply.genesis.0 + self.supply.minted.0 - self.supply.slashed.0;
        let actual = self.total_tokens();
        if expected == actual {
            Ok(())
        } else {
            Err(format!(
                "supply broken: genesis {} + minted {} - slashed {} = {expected}, but {actual} exist",
                self.supply.genesis, self.supply.minted, self.supply.slashed
            ))
        }
    }

    /// An account's balance.
    pub fn balance(&self, who: &PublicKey) -> Amount {
        self.accounts
            .get(who)
            .map(|a| a.balance)
            .unwrap_or_default()
    }

    /// Every bonded account's bond, by key (in the validator set or waiting outside it).
    pub fn bonds(&self) -> Vec<(PublicKey, Amount)> {
        self.validators
            .iter()
            .filter(|(_, v)| v.bond.0 > 0)
            .map(|(k, v)| (*k, v.bond))
            .collect()
    }

    /// The validator set's bonds, by key: the `max_validators` largest bonds (ties by key;
    /// never more than [`MAX_VALIDATOR_SET`](chorus_protocol::params::MAX_VALIDATOR_SET)).
    /// Any number of accounts may bond; the others wait outside the set, where their bond can
    /// be slashed and unbonded but neither votes nor earns the validators' emission.
    pub fn active_bonds(&self) -> Vec<(PublicKey, Amount)> {
        let cap = self
            .params
            .max_validators
            .min(chorus_protocol::params::MAX_VALIDATOR_SET);
        let mut bonds = self.bonds();
        if bonds.len() as u64 > cap {
            bonds.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            bonds.truncate(cap as usize);
            bonds.sort_by_key(|b| b.0);
        }
        bonds
    }

    fn credit(&mut self, who: PublicKey, amount: Amount) {
        let a = self.accounts.entry(who).or_default();
        a.balance = Amount(a.balance.0.saturating_add(amount.0));
    }

    fn debit(&mut self, who: &PublicKey, amount: Amount) -> Result<(), TxError> {
        let a = self.accounts.get_mut(who).ok_or(TxError::NoSuchAccount)?;
        a.balance = a
            .balance
            .checked_sub(amount)
            .ok_or(TxError::InsufficientBalance {
                has: a.balance,
                needs: amount,
            })?;
        Ok(())
    }

    /// Debit a fee from `who` into the treasury.
    fn collect_fee(&mut self, who: &PublicKey, fee: Amount) -> Result<(), TxError> {
        self.debit(who, fee)?;
        self.treasury = Amount(self.treasury.0 + fee.0);
        Ok(())
    }
}
