//! Helpers to drive one engine with hand-made, correctly signed messages.

use arc_malachitebft_core_types::{NilOrVal, Round, VoteType};
use chorus_protocol::ids::{Amount, Hash32};
use chorus_protocol::keys::Keypair;

use crate::checkpoint::context::{CheckpointHeight, Proposal, ValidatorAddress, Vote};
use crate::checkpoint::messages::{ProposalMessage, VoteMessage};
use crate::checkpoint::signing::{sign_proposal, sign_vote};
use crate::checkpoint::sim::derive_ledger_root;
use crate::checkpoint::value::CheckpointValue;
use crate::checkpoint::*;

pub struct Fixture {
    pub keys: Vec<Keypair>,
    pub set: ValidatorSet,
    pub config: EngineConfig,
}

impl Fixture {
    pub fn new(n: u8) -> Self {
        let keys: Vec<Keypair> = (1..=n).map(|i| Keypair::from_seed(&[i; 32])).collect();
        let bonds: Vec<_> = keys.iter().map(|k| (k.public(), Amount(100))).collect();
        Fixture {
            set: ValidatorSet::from_bonds(&bonds).unwrap(),
            config: EngineConfig::new(Hash32([7; 32]), Hash32([0; 32])),
            keys,
        }
    }

    pub fn index_of(&self, key: &chorus_protocol::keys::PublicKey) -> usize {
        self.keys.iter().position(|k| k.public() == *key).unwrap()
    }

    pub fn proposer(&self, height: u64, round: u32) -> usize {
        self.index_of(self.set.proposer(height, round).public_key())
    }

    /// A validator that is not the proposer of `(height, 0)` nor `(height, 1)`.
    pub fn non_proposer(&self, height: u64) -> usize {
        (0..self.keys.len())
            .find(|&i| i != self.proposer(height, 0) && i != self.proposer(height, 1))
            .unwrap()
    }

    pub fn engine(&self, i: usize) -> (Engine, Vec<Effect>) {
        Engine::new(
            self.config.clone(),
            self.keys[i].clone(),
            vec![(1, self.set.clone())],
            0,
        )
        .unwrap()
    }

    pub fn peer(&self, i: usize) -> PeerId {
        PeerId(self.keys[i].public())
    }

    /// A valid checkpoint for height 1 (salt varies the windows).
    pub fn checkpoint(&self, salt: u8) -> Checkpoint {
        let windows = vec![WindowHead::new(Hash32([1; 32]), &[Hash32([salt; 32])])];
        let previous = self.config.genesis;
        Checkpoint {
            height: 1,
            previous,
            ledger_root: derive_ledger_root(&previous, &windows),
            windows,
            inferences: Hash32::default(),
            validators: Hash32::default(),
        }
    }

    pub fn proposal(&self, i: usize, round: u32, cp: &Checkpoint) -> ConsensusMessage {
        let proposal = Proposal {
            height: CheckpointHeight(cp.height),
            round: Round::new(round),
            value: CheckpointValue::new(cp.clone()),
            pol_round: Round::Nil,
            proposer: ValidatorAddress(self.keys[i].public()),
        };
        let signature = sign_proposal(&self.keys[i], &self.config.network, &proposal);
        ConsensusMessage::Proposal(ProposalMessage {
            proposal,
            signature,
        })
    }

    pub fn vote(
        &self,
        i: usize,
        height: u64,
        round: u32,
        kind: VoteType,
        value: Option<CheckpointId>,
    ) -> ConsensusMessage {
        let vote = Vote {
            height: CheckpointHeight(height),
            round: Round::new(round),
            kind,
            value: value.map_or(NilOrVal::Nil, NilOrVal::Val),
            validator: ValidatorAddress(self.keys[i].public()),
        };
        let signature = sign_vote(&self.keys[i], &self.config.network, &vote);
        ConsensusMessage::Vote(VoteMessage { vote, signature })
    }

    pub fn from(&self, i: usize, message: ConsensusMessage) -> Input {
        Input::Message {
            from: self.peer(i),
            message,
        }
    }
}

/// The own signed votes broadcast in `effects`, as `(round, kind, value)`.
pub fn own_votes(
    effects: &[Effect],
    me: &chorus_protocol::keys::PublicKey,
) -> Vec<(
    u32,
    VoteType,
    Option<CheckpointId>,
    chorus_protocol::keys::Signature,
)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Broadcast(ConsensusMessage::Vote(v)) if v.vote.validator.0 == *me => Some((
                v.vote.round.as_u32().unwrap(),
                v.vote.kind,
                match v.vote.value {
                    NilOrVal::Nil => None,
                    NilOrVal::Val(id) => Some(id),
                },
                v.signature,
            )),
            _ => None,
        })
        .collect()
}

/// The WAL records appended in `effects`.
pub fn wal_records(effects: &[Effect]) -> Vec<WalRecord> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::WalAppend(r) => Some(r.clone()),
            _ => None,
        })
        .collect()
}

/// Every own signed message that is sent was appended to the WAL earlier (in `earlier` or
/// before it in `effects`).
pub fn assert_persisted_before_sent(
    earlier: &[WalRecord],
    effects: &[Effect],
    me: &chorus_protocol::keys::PublicKey,
) {
    use crate::checkpoint::wal::WalEntry;
    let mut wal: Vec<WalEntry> = earlier.iter().map(|r| r.entry.clone()).collect();
    for e in effects {
        match e {
            Effect::WalAppend(r) => wal.push(r.entry.clone()),
            Effect::Broadcast(ConsensusMessage::Vote(v)) if v.vote.validator.0 == *me => {
                assert!(
                    wal.contains(&WalEntry::Vote(v.clone())),
                    "vote sent before it was persisted: {v:?}"
                );
            }
            Effect::Broadcast(ConsensusMessage::Proposal(p)) if p.proposal.proposer.0 == *me => {
                assert!(
                    wal.contains(&WalEntry::Proposal(p.clone())),
                    "proposal sent before it was persisted"
                );
            }
            _ => {}
        }
    }
}
