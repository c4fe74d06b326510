//! Ledger messages: transfers, fees, stakes, bonds, registrations, topics, governance and
//! evidence. Each message either takes effect completely or is refused with a reason; a refused
//! message still consumes its nonce, so it can never be replayed.

use std::collections::BTreeSet;

use chorus_protocol::envelope::Envelope;
use chorus_protocol::ids::{Amount, TopicId};
use chorus_protocol::keys::PublicKey;
use chorus_protocol::math::payout::mul_div_floor;
use chorus_protocol::messages::{EvidenceKind, Payload, Role};
use chorus_protocol::validation::Slot;

use super::state::{Proposal, Release, TopicState};
use super::{EvidenceVerifier, Ledger, LedgerEvent, SignedEntry};

type TxResult = Result<(), String>;

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
                Err(format!("stale nonce {nonce} (last {})", account.nonce))
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
                    reason,
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

    fn topic_mut(&mut self, id: TopicId) -> Result<&mut TopicState, String> {
        self.topics
            .get_mut(&id)
            .ok_or_else(|| format!("unknown topic {id}"))
    }

    fn apply_tx(&mut self, e: &SignedEntry, now: u64) -> TxResult {
        let who = e.author;
        match &e.payload {
            Payload::CreateTopic(m) => {
                m.spec.validate(&self.params).map_err(|e| e.to_string())?;
                if m.fee < self.params.create_topic_fee {
                    return Err("fee below the create-topic fee".into());
                }
                if m.spec.start_ms < now {
                    return Err("topic start is in the past".into());
                }
                let id = TopicId::derived(&who, m.nonce);
                if self.topics.contains_key(&id) {
                    return Err(format!("topic {id} exists"));
                }
                self.debit(&who, m.fee)?;
                self.treasury = Amount(self.treasury.0 + m.fee.0);
                self.topics.insert(
                    id,
                    TopicState {
                        spec: m.spec.clone(),
                        creator: who,
                        workers: BTreeSet::new(),
                        reputers: BTreeSet::new(),
                        stakes: Default::default(),
                        fee_revenue: m.fee,
                        weight: None,
                        reward_pool: Amount::ZERO,
                        next_worker_epoch: 0,
                        next_reputer_epoch: 0,
                        active: true,
                        mechanism: Default::default(),
                    },
                );
                Ok(())
            }
            Payload::Register(m) => {
                let fee = self.params.registration_fee;
                let t = self.topic_mut(m.topic)?;
                let set = match m.role {
                    Role::Worker => &t.workers,
                    Role::Reputer => &t.reputers,
                };
                if set.contains(&who) {
                    return Err("already registered".into());
                }
                self.debit(&who, fee)?;
                self.treasury = Amount(self.treasury.0 + fee.0);
                let t = self.topic_mut(m.topic)?;
                t.fee_revenue = Amount(t.fee_revenue.0 + fee.0);
                match m.role {
                    Role::Worker => t.workers.insert(who),
                    Role::Reputer => t.reputers.insert(who),
                };
                Ok(())
            }
            Payload::Unregister(m) => {
                let t = self.topic_mut(m.topic)?;
                let removed = match m.role {
                    Role::Worker => t.workers.remove(&who),
                    Role::Reputer => t.reputers.remove(&who),
                };
                if removed {
                    Ok(())
                } else {
                    Err("not registered".into())
                }
            }
            Payload::Transfer(m) => {
                self.debit(&who, m.amount)?;
                self.credit(m.to, m.amount);
                Ok(())
            }
            Payload::FundTopic(m) => {
                self.topic_mut(m.topic)?;
                self.debit(&who, m.amount)?;
                self.treasury = Amount(self.treasury.0 + m.amount.0);
                let t = self.topic_mut(m.topic)?;
                t.fee_revenue = Amount(t.fee_revenue.0 + m.amount.0);
                Ok(())
            }
            Payload::Stake(m) => {
                let t = self.topic_mut(m.topic)?;
                if !t.reputers.contains(&m.reputer) {
                    return Err("stake target is not a registered reputer".into());
                }
                self.debit(&who, m.amount)?;
                let t = self.topic_mut(m.topic)?;
                let s = t.stakes.entry(m.reputer).or_default();
                if m.reputer == who {
                    s.own = Amount(s.own.0 + m.amount.0);
                } else {
                    let d = s.delegated.entry(who).or_default();
                    *d = Amount(d.0 + m.amount.0);
                }
                Ok(())
            }
            Payload::Unstake(m) => {
                let delay = self.params.remove_stake_delay_ms;
                let t = self.topic_mut(m.topic)?;
                let s = t
                    .stakes
                    .get_mut(&m.reputer)
                    .ok_or_else(|| "no stake on that reputer".to_string())?;
                let slot = if m.reputer == who {
                    &mut s.own
                } else {
                    s.delegated
                        .get_mut(&who)
                        .ok_or_else(|| "no delegation on that reputer".to_string())?
                };
                *slot = slot
                    .checked_sub(m.amount)
                    .ok_or_else(|| format!("only {slot} staked"))?;
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
            Payload::Bond(m) => {
                self.debit(&who, m.amount)?;
                let v = self.validators.entry(who).or_default();
                v.bond = Amount(v.bond.0 + m.amount.0);
                Ok(())
            }
            Payload::Unbond(m) => {
                let total: u128 = self.validators.values().map(|v| v.bond.0).sum();
                let v = self
                    .validators
                    .get_mut(&who)
                    .ok_or_else(|| "not a validator".to_string())?;
                let left = v
                    .bond
                    .checked_sub(m.amount)
                    .ok_or_else(|| format!("only {} bonded", v.bond))?;
                if total - m.amount.0 == 0 {
                    return Err("the last bonded stake cannot leave".into());
                }
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
            Payload::Propose(m) => {
                let ends = self.next_height + self.params.governance_voting_periods;
                self.proposals.insert(
                    e.id,
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
            Payload::Vote(m) => {
                let p = self
                    .proposals
                    .get_mut(&m.proposal)
                    .ok_or_else(|| "unknown proposal".to_string())?;
                if p.outcome.is_some() {
                    return Err("voting has ended".into());
                }
                p.votes.insert(who, m.option);
                Ok(())
            }
            Payload::WorkerBundle(_) | Payload::ReputerBundle(_) | Payload::Evidence(_) => {
                Err("not a ledger message".into())
            }
        }
    }

    fn apply_evidence(
        &mut self,
        e: &SignedEntry,
        ev: &chorus_protocol::messages::Evidence,
        verifier: &dyn EvidenceVerifier,
        events: &mut Vec<LedgerEvent>,
    ) {
        let key = match Slot::of(e.author, &e.payload) {
            Slot::Evidence { content, .. } => content,
            _ => e.id,
        };
        if self.evidence.contains(&key) {
            events.push(LedgerEvent::Refused {
                author: e.author,
                id: e.id,
                reason: "evidence already used".into(),
            });
            return;
        }
        let offender = match ev.kind {
            EvidenceKind::ConsensusVote => verifier.offender(ev),
            EvidenceKind::ReputerBundle => envelope_offender(ev, &self.network),
            // Workers and ledger authors hold no stake: their entries are already excluded
            // from the window by the equivocation rule; the evidence is recorded only.
            EvidenceKind::WorkerBundle | EvidenceKind::LedgerNonce => None,
        };
        self.evidence.insert(key);
        let ppm = u128::from(self.params.slash_fraction_ppm);
        let Some(offender) = offender else {
            events.push(LedgerEvent::Applied {
                author: e.author,
                id: e.id,
                kind: "evidence".into(),
            });
            return;
        };
        let mut burned = 0u128;
        if ev.kind == EvidenceKind::ConsensusVote {
            if let Some(v) = self.validators.get_mut(&offender) {
                let cut = mul_div_floor(v.bond.0, ppm, 1_000_000).unwrap_or(0);
                v.bond = Amount(v.bond.0 - cut);
                v.slashed_count += 1;
                burned += cut;
            }
        } else {
            for t in self.topics.values_mut() {
                if let Some(s) = t.stakes.get_mut(&offender) {
                    let cut = mul_div_floor(s.own.0, ppm, 1_000_000).unwrap_or(0);
                    s.own = Amount(s.own.0 - cut);
                    burned += cut;
                }
            }
        }
        self.supply.slashed = Amount(self.supply.slashed.0 + burned);
        events.push(LedgerEvent::Slashed {
            offender,
            amount: Amount(burned),
        });
    }
}

/// The signer of two conflicting envelopes in an evidence message (already checked by gossip
/// validation; checked again because the ledger trusts nothing).
fn envelope_offender(
    ev: &chorus_protocol::messages::Evidence,
    network: &chorus_protocol::ids::NetworkId,
) -> Option<PublicKey> {
    let a = Envelope::from_bytes(&ev.first).ok()?;
    let b = Envelope::from_bytes(&ev.second).ok()?;
    if a.signer != b.signer || a == b {
        return None;
    }
    let (pa, pb) = (a.open(network).ok()?, b.open(network).ok()?);
    (Slot::of(a.signer, &pa) == Slot::of(b.signer, &pb)).then_some(a.signer)
}
