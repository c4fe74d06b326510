//! The replica as gossip validation sees it: finalized registrations, stakes, topics and
//! nonces from the ledger; seen slots from the open windows.

use chorus_protocol::ids::{Amount, MessageId, NetworkId, TopicId};
use chorus_protocol::keys::{KeyError, PublicKey, VerifyingKey};
use chorus_protocol::messages::Role;
use chorus_protocol::params::ModuleParams;
use chorus_protocol::topic::TopicSpec;
use chorus_protocol::validation::{Funds, Slot, ValidationView};

use super::Replica;

impl ValidationView for Replica {
    fn network(&self) -> NetworkId {
        self.network
    }

    fn params(&self) -> &ModuleParams {
        &self.ledger.params
    }

    fn topic(&self, id: TopicId) -> Option<&TopicSpec> {
        self.ledger.topics.get(&id).map(|t| &t.spec)
    }

    fn reputer_window(&self, topic: TopicId, epoch: u64) -> Option<(u64, u64)> {
        Replica::reputer_window(self, topic, epoch)
    }

    fn is_registered(&self, topic: TopicId, role: Role, key: &PublicKey) -> bool {
        self.ledger.topics.get(&topic).is_some_and(|t| match role {
            Role::Worker => t.workers.contains(key),
            Role::Reputer => t.reputers.contains(key),
        })
    }

    fn reputer_stake(&self, topic: TopicId, key: &PublicKey) -> Amount {
        self.ledger
            .topics
            .get(&topic)
            .and_then(|t| t.stakes.get(key))
            .map(|s| s.authority())
            .unwrap_or_default()
    }

    fn seen(&self, slot: &Slot) -> Option<MessageId> {
        self.slots.get(slot).copied()
    }

    fn verifying_key(&self, key: &PublicKey) -> Result<VerifyingKey, KeyError> {
        self.keys.verifying_key(key)
    }

    fn consensus_evidence_ok(&self, evidence: &chorus_protocol::messages::Evidence) -> bool {
        crate::checkpoint::verify_vote_evidence(&self.network, evidence).is_ok()
    }

    fn funds(&self, key: &PublicKey) -> Funds {
        let l = &self.ledger;
        let liquid = l.accounts.get(key).map(|a| a.balance).unwrap_or_default();
        let mut locked = l.validators.get(key).map_or(0, |v| v.bond.0);
        for t in l.topics.values() {
            for (reputer, s) in &t.stakes {
                if reputer == key {
                    locked = locked.saturating_add(s.own.0);
                }
                if let Some(d) = s.delegated.get(key) {
                    locked = locked.saturating_add(d.0);
                }
            }
        }
        for r in l.releases.iter().filter(|r| r.owner == *key) {
            locked = locked.saturating_add(r.amount.0);
        }
        Funds {
            liquid,
            locked: Amount(locked),
        }
    }

    fn last_nonce(&self, author: &PublicKey) -> u64 {
        self.ledger
            .accounts
            .get(author)
            .map(|a| a.nonce)
            .unwrap_or(0)
    }
}
