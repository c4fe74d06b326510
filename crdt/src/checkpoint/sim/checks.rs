//! Invariant checkers of the simulator, one per property.

use std::collections::{BTreeMap, BTreeSet};

use arc_malachitebft_core_types::{NilOrVal, VoteType};
use chorus_protocol::keys::PublicKey;

use crate::checkpoint::catchup::DecidedCheckpoint;
use crate::checkpoint::evidence::Step;
use crate::checkpoint::messages::ConsensusMessage;
use crate::checkpoint::value::CheckpointId;

/// A broken invariant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Violation {
    /// Agreement: two nodes decided different checkpoints at one height.
    ConflictingDecision {
        /// Height.
        height: u64,
        /// First decider and its id.
        first: (usize, CheckpointId),
        /// Conflicting decider and its id.
        second: (usize, CheckpointId),
    },
    /// An honest key signed two different messages in one `(height, round, step)`.
    DoubleSign {
        /// The key.
        validator: PublicKey,
        /// Height.
        height: u64,
        /// Round.
        round: u32,
        /// Step.
        step: Step,
    },
    /// A node's decided checkpoint does not extend its previous one.
    BrokenChain {
        /// The node.
        node: usize,
        /// Height.
        height: u64,
    },
}

/// What a signed message says in its slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Said {
    Vote(Option<CheckpointId>),
    Proposal(CheckpointId, Option<u32>),
}

/// Agreement, chain linkage and no-double-signing, checked on every event.
#[derive(Debug, Default)]
pub struct Checker {
    decided: BTreeMap<u64, (usize, CheckpointId)>,
    signed: BTreeMap<(PublicKey, u64, u32, Step), Said>,
    /// Keys whose double signing is expected (byzantine).
    pub byzantine: BTreeSet<PublicKey>,
    /// Everything found so far.
    pub violations: Vec<Violation>,
}

impl Checker {
    /// A node emitted `Decided(d)`; `previous` is its decision at `d.height() - 1`, if any.
    pub fn on_decided(
        &mut self,
        node: usize,
        d: &DecidedCheckpoint,
        previous: Option<&DecidedCheckpoint>,
    ) {
        let height = d.height();
        let id = d.id();
        match self.decided.get(&height) {
            None => {
                self.decided.insert(height, (node, id));
            }
            Some(&(first_node, first_id)) if first_id != id => {
                self.violations.push(Violation::ConflictingDecision {
                    height,
                    first: (first_node, first_id),
                    second: (node, id),
                });
            }
            Some(_) => {}
        }
        if let Some(prev) = previous
            && d.checkpoint.previous != prev.id().0
        {
            self.violations
                .push(Violation::BrokenChain { node, height });
        }
    }

    /// A signed message went out on the wire.
    pub fn on_wire(&mut self, msg: &ConsensusMessage) {
        let (key, height, round, step, said) = match msg {
            ConsensusMessage::Vote(v) => (
                v.vote.validator.0,
                v.vote.height.0,
                v.vote.round.as_u32().unwrap_or(0),
                match v.vote.kind {
                    VoteType::Prevote => Step::Prevote,
                    VoteType::Precommit => Step::Precommit,
                },
                Said::Vote(match v.vote.value {
                    NilOrVal::Nil => None,
                    NilOrVal::Val(id) => Some(id),
                }),
            ),
            ConsensusMessage::Proposal(p) => (
                p.proposal.proposer.0,
                p.proposal.height.0,
                p.proposal.round.as_u32().unwrap_or(0),
                Step::Proposal,
                Said::Proposal(p.proposal.value.id(), p.proposal.pol_round.as_u32()),
            ),
            _ => return,
        };
        if self.byzantine.contains(&key) {
            return;
        }
        match self.signed.get(&(key, height, round, step)) {
            None => {
                self.signed.insert((key, height, round, step), said);
            }
            Some(prev) if *prev != said => self.violations.push(Violation::DoubleSign {
                validator: key,
                height,
                round,
                step,
            }),
            Some(_) => {}
        }
    }

    /// The id decided at `height`, if any node decided it.
    pub fn decided_id(&self, height: u64) -> Option<CheckpointId> {
        self.decided.get(&height).map(|(_, id)| *id)
    }
}
