//! The replica as gossip validation sees it: finalized registrations, stakes, topics and
//! nonces from the ledger; seen slots from the open windows.

use chorus_protocol::ids::{Amount, MessageId, NetworkId, TopicId};
use chorus_protocol::keys::{KeyError, PublicKey, VerifyingKey};
use chorus_protocol::messages::Role;
use chorus_protocol::params::ModuleParams;
use chorus_protocol::topic::TopicSpec;
use chorus_protocol::validation::{Slot, ValidationView};

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

    fn last_nonce(&self, author: &PublicKey) -> u64 {
        self.ledger
            .accounts
            .get(author)
            .map(|a| a.nonce)
            .unwrap_or(0)
    }
}
