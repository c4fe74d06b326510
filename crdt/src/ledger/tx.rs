//! Ledger messages: transfers, fees, stakes, bonds, registrations, topics and governance. Each
//! message either takes effect completely or is refused with a [`TxError`]; a refused message
//! still consumes its nonce, so it can never be replayed. Evidence is applied after them
//! (`slashing`).

use chorus_protocol::ids::{Amount, Hash32, TopicId};
use chorus_protocol::keys::PublicKey;
use chorus_protocol::messages::{
    BondChange, CreateTopic, FundTopic, GovernanceProposal, GovernanceVote, Payload, Registration,
    SetOwner, StakeChange, Transfer,
};

use super::state::{Proposal, Release, TopicState};
use super::{EvidenceVerifier, Ledger, LedgerEvent, SignedEntry, TxError};

impl Ledger {
    pub(super) fn apply_ledger_messages(
        &mut self,
        entries: &[SignedEntry],
        now: u64,
        verifier: &dyn EvidenceVerifier,
        events: &mut Vec<LedgerEvent>,
    ) {
        let mut txs: Vec<&SignedEntry> = entries
            .iter()
            .filter(|e| !matches!(e.payload, Payload::Evidence(_)))
            .collect();
        txs.sort_by_key(|e| (e.author, e.payload.nonce().unwrap_or(0), e.id));
        for e in txs {
            let nonce = e.payload.nonce().unwrap_or(0);
            let account = self.accounts.entry(e.author).or_default();
            let result = if nonce <= account.nonce {
                Err(TxError::StaleNonce {
                    nonce,
                    last: account.nonce,
                })
            } else {
                account.nonce = nonce;
                self.apply_tx(e, now)
            };
            events.push(match result {
                Ok(()) => LedgerEvent::Applied {
                    author: e.author,
                    id: e.id,
                    kind: e.payload.kind_name().into(),
                },
                Err(reason) => LedgerEvent::Refused {
                    author: e.author,
                    id: e.id,
                    reason: reason.to_string(),
                },
            });
        }
        let mut evidence: Vec<&SignedEntry> = entries
            .iter()
            .filter(|e| matches!(e.payload, Payload::Evidence(_)))
            .collect();
        evidence.sort_by_key(|e| e.id);
        for e in evidence {
            if let Payload::Evidence(ev) = &e.payload {
                self.apply_evidence(e, ev, verifier, events);
            }
        }
    }

    fn topic_mut(&mut self, id: TopicId) -> Result<&mut TopicState, TxError> {
        self.topics.get_mut(&id).ok_or(TxError::UnknownTopic(id))
    }

    fn apply_tx(&mut self, e: &SignedEntry, now: u64) -> Result<(), TxError> {
        let who = e.author;
        match &e.payload {
            Payload::CreateTopic(m) => self.create_topic(who, m, now),
            Payload::Register(m) => self.register(who, m),
            Payload::Unregister(m) => self.unregister(who, m),
            Payload::Transfer(m) => self.transfer(who, m),
            Payload::FundTopic(m) => self.fund_topic(who, m),
            Payload::Stake(m) => self.stake(who, m),
            Payload::Unstake(m) => self.unstake(who, m, now),
            Payload::Bond(m) => self.bond(who, m),
            Payload::Unbond(m) => self.unbond(who, m, now),
            Payload::Propose(m) => self.propose(who, e.id, m),
            Payload::Vote(m) => self.vote(who, m),
            Payload::SetOwner(m) => self.set_owner(who, m),
            Payload::WorkerBundle(_)
            | Payload::WorkerCommit(_)
            | Payload::WorkerReveal(_)
            | Payload::ReputerBundle(_)
            | Payload::Evidence(_) => Err(TxError::NotALedgerMessage),
        }
    }

    /// A new topic, its id derived from the author and nonce; the fee goes to the treasury
    /// and counts as the topic's fee revenue.
    fn create_topic(&mut self, who: PublicKey, m: &CreateTopic, now: u64) -> Result<(), TxError> {
        m.spec.validate(&self.params)?;
        if m.fee < self.params.create_topic_fee {
            return Err(TxError::CreateTopicFeeTooLow);
        }
        if m.spec.start_ms < now {
            return Err(TxError::TopicStartInPast);
        }
        let id = TopicId::derived(&who, m.nonce);
        if self.topics.contains_key(&id) {
            return Err(TxError::TopicExists(id));
        }
        self.collect_fee(&who, m.fee)?;
        self.topics
            .insert(id, TopicState::new(m.spec.clone(), who, m.fee));
        Ok(())
    }

    /// Register the author for a role, for the registration fee.
    fn register(&mut self, who: PublicKey, m: &Registration) -> Result<(), TxError> {
        let fee = self.params.registration_fee;
        if self.topic_mut(m.topic)?.members(m.role).contains(&who) {
            return Err(TxError::AlreadyRegistered);
        }
        self.collect_fee(&who, fee)?;
        let t = self.topic_mut(m.topic)?;
        t.fee_revenue = Amount(t.fee_revenue.0 + fee.0);
        t.members_mut(m.role).insert(who);
        Ok(())
    }

    fn unregister(&mut self, who: PublicKey, m: &Registration) -> Result<(), TxError> {
        if self.topic_mut(m.topic)?.members_mut(m.role).remove(&who) {
            Ok(())
        } else {
            Err(TxError::NotRegistered)
        }
    }

    fn transfer(&mut self, who: PublicKey, m: &Transfer) -> Result<(), TxError> {
        self.debit(&who, m.amount)?;
        self.credit(m.to, m.amount);
        Ok(())
    }

    /// Pay into the treasury as the topic's fee revenue.
    fn fund_topic(&mut self, who: PublicKey, m: &FundTopic) -> Result<(), TxError> {
        self.topic_mut(m.topic)?;
        self.collect_fee(&who, m.amount)?;
        let t = self.topic_mut(m.topic)?;
        t.fee_revenue = Amount(t.fee_revenue.0 + m.amount.0);
        Ok(())
    }

    /// Stake on a registered reputer: its own stake if the author is the reputer, otherwise a
    /// delegation.
    fn stake(&mut self, who: PublicKey, m: &StakeChange) -> Result<(), TxError> {
        if !self.topic_mut(m.topic)?.reputers.contains(&m.reputer) {
            return Err(TxError::StakeTargetNotReputer);
        }
        self.debit(&who, m.amount)?;
        let t = self.topic_mut(m.topic)?;
        let delegator = (m.reputer != who).then_some(who);
        t.stakes
            .entry(m.reputer)
            .or_default()
            .add(delegator, m.amount);
        Ok(())
    }

    /// Take stake off a reputer; it is released after `remove_stake_delay_ms`.
    fn unstake(&mut self, who: PublicKey, m: &StakeChange, now: u64) -> Result<(), TxError> {
        let delay = self.params.remove_stake_delay_ms;
        let t = self.topic_mut(m.topic)?;
        let s = t.stakes.get_mut(&m.reputer).ok_or(TxError::NoStake)?;
        let slot = if m.reputer == who {
            &mut s.own
        } else {
            s.delegated.get_mut(&who).ok_or(TxError::NoDelegation)?
        };
        *slot = slot
            .checked_sub(m.amount)
            .ok_or(TxError::InsufficientStake { staked: *slot })?;
        if m.reputer != who && s.delegated.get(&who) == Some(&Amount::ZERO) {
            s.delegated.remove(&who);
        }
        self.releases.push(Release {
            owner: who,
            at_ms: now.saturating_add(delay),
            amount: m.amount,
        });
        Ok(())
    }

    /// Bond stake (the bond must reach `min_validator_bond`: dust bonds would only grow the
    /// ledger).
    fn bond(&mut self, who: PublicKey, m: &BondChange) -> Result<(), TxError> {
        let before = self
            .validators
            .get(&who)
            .map(|v| v.bond)
            .unwrap_or_default();
        let after = Amount(before.0.saturating_add(m.amount.0));
        self.check_bond(after)?;
        self.debit(&who, m.amount)?;
        self.validators.entry(who).or_default().bond = after;
        Ok(())
    }

    /// A bond is zero or at least `min_validator_bond`.
    fn check_bond(&self, bond: Amount) -> Result<(), TxError> {
        let min = self.params.min_validator_bond;
        if bond != Amount::ZERO && bond < min {
            return Err(TxError::BondBelowMinimum { bond, min });
        }
        Ok(())
    }

    /// Take bond off a validator (never the last bonded stake); it is released after
    /// `validator_unbonding_ms`.
    fn unbond(&mut self, who: PublicKey, m: &BondChange, now: u64) -> Result<(), TxError> {
        let total: u128 = self.validators.values().map(|v| v.bond.0).sum();
        let bonded = self
            .validators
            .get(&who)
            .ok_or(TxError::NotAValidator)?
            .bond;
        let left = bonded
            .checked_sub(m.amount)
            .ok_or(TxError::InsufficientBond { bonded })?;
        if total - m.amount.0 == 0 {
            return Err(TxError::LastBond);
        }
        self.check_bond(left)?;
        let v = self
            .validators
            .get_mut(&who)
            .ok_or(TxError::NotAValidator)?;
        v.bond = left;
        if left == Amount::ZERO {
            self.validators.remove(&who);
        }
        self.releases.push(Release {
            owner: who,
            at_ms: now.saturating_add(self.params.validator_unbonding_ms),
            amount: m.amount,
        });
        Ok(())
    }

    /// A proposal, keyed by its message id; voting ends `governance_voting_periods` later.
    fn propose(
        &mut self,
        who: PublicKey,
        id: Hash32,
        m: &GovernanceProposal,
    ) -> Result<(), TxError> {
        let ends = self.next_height + self.params.governance_voting_periods;
        self.proposals.insert(
            id,
            Proposal {
                proposer: who,
                title: m.title.clone(),
                action: m.action.clone(),
                voting_ends: ends,
                votes: Default::default(),
                outcome: None,
            },
        );
        Ok(())
    }

    /// Names `m.actor`'s owner: the actor itself may while it has no owner, its owner may
    /// hand it over. Naming the actor itself removes the owner.
    fn set_owner(&mut self, who: PublicKey, m: &SetOwner) -> Result<(), TxError> {
        let allowed = match self.owners.get(&m.actor) {
            None => who == m.actor,
            Some(owner) => who == *owner,
        };
        if !allowed {
            return Err(TxError::NotOwner);
        }
        if m.owner == m.actor {
            self.owners.remove(&m.actor);
        } else {
            self.owners.insert(m.actor, m.owner);
        }
        Ok(())
    }

    /// The author's vote, replacing an earlier one, while the proposal is not tallied.
    fn vote(&mut self, who: PublicKey, m: &GovernanceVote) -> Result<(), TxError> {
        let p = self
            .proposals
            .get_mut(&m.proposal)
            .ok_or(TxError::UnknownProposal)?;
        if p.outcome.is_some() {
            return Err(TxError::VotingEnded);
        }
        p.votes.insert(who, m.option);
        Ok(())
    }
}
