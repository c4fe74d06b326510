//! Byzantine behaviours of simulated nodes, as hooks on what their honest replica sends.
//!
//! - **Equivocating validator**: every vote its engine broadcasts is paired with a conflicting
//!   vote for the same `(height, round, step)` (nil ↔ a made-up checkpoint id), signed with
//!   its key; each peer receives one of the two at random, on every (re-)broadcast. Honest
//!   engines that see both turn them into evidence, which the ledger slashes.
//! - **Bad-root proposer**: every proposal its engine broadcasts goes out with the checkpoint's
//!   ledger root altered and the proposal re-signed (the signature is valid; the content is
//!   not). Honest validators re-derive the root, find it wrong and prevote nil.
//! - **Garbage peer**: every [`GARBAGE_EVERY_MS`] it sends each peer, on every channel
//!   (each topic's worker and reputer channel, the ledger channel, the consensus channel, a
//!   direct consensus message, an automerge sync message, an unsolicited window response),
//!   either random bytes or a mutated copy of a real message it received (bit flip,
//!   truncation, extension, overwrite); it answers window fetches with the same. None of it
//!   may crash, stall or corrupt a peer.
//!
//! - **Forged "ahead"**: every vote its engine broadcasts is followed by a vote of its own,
//!   validly signed, for [`FORGED_AHEAD`] heights above. Peers must not be pinned by the claim:
//!   catch-up requests rotate over the peers that claim to be ahead, and a claim is only a
//!   reason to ask, never a height.
//!
//! Equivocating workers are in [`super::roles`]; colluding equivocators (one key, two
//! engines) are [`Sim::add_twin`] with [`Sim::set_links`]; hostile automerge authors craft
//! sync messages outside the sim and send them with [`Sim::inject_sync`].

use std::collections::VecDeque;

use arc_malachitebft_core_types::NilOrVal;
use chorus_protocol::ids::Hash32;
use chorus_protocol::validation::ChannelKind;

use super::super::wire::{Request, RequestId};
use super::{Delivery, Sim, SimRng};
use crate::checkpoint::context::Proposal;
use crate::checkpoint::messages::{ProposalMessage, VoteMessage};
use crate::checkpoint::signing::{sign_proposal, sign_vote};
use crate::checkpoint::value::CheckpointValue;
use crate::checkpoint::{Checkpoint, CheckpointId, ConsensusMessage};
use crate::window::WindowKey;

/// How far above its real height a forging validator claims to vote.
pub const FORGED_AHEAD: u64 = 1_000;
/// Interval between two bursts of a garbage peer (virtual ms).
pub const GARBAGE_EVERY_MS: u64 = 250;
/// Real messages a garbage peer keeps to mutate (the most recent ones).
pub const GARBAGE_SAMPLES: usize = 32;
/// Largest random garbage message (bytes).
const GARBAGE_MAX_LEN: u64 = 600;

/// A copy of `bytes` with one random mutation.
pub fn mutate(bytes: &[u8], rng: &mut SimRng) -> Vec<u8> {
    let mut out = bytes.to_vec();
    if out.is_empty() {
        let n = rng.range(1, 64) as usize;
        return rng.bytes(n);
    }
    let at = rng.range(0, out.len() as u64 - 1) as usize;
    match rng.range(0, 4) {
        0 => out[at] ^= 1 << rng.range(0, 7),
        1 => out.truncate(at),
        2 => {
            let n = rng.range(1, 32) as usize;
            out.extend(rng.bytes(n));
        }
        3 => {
            let end = (at + 8).min(out.len());
            out[at..end].fill(0xFF);
        }
        _ => {
            let b = rng.next_u64() as u8;
            out.insert(at, b);
        }
    }
    out
}

impl Sim {
    /// Send the consensus bytes node `i`'s engine broadcasts, through its byzantine hooks.
    pub(super) fn broadcast_consensus(&mut self, i: usize, bytes: Vec<u8>) {
        let me = self.nodes[i].key.public();
        let equivocate = self.roles.equivocating_validators.contains(&i);
        let bad_root = self.roles.bad_root_proposers.contains(&i);
        let ahead = self.roles.forging_ahead.contains(&i);
        let mut primary = bytes;
        let mut alternative = None;
        let mut extra = None;
        if equivocate || bad_root || ahead {
            match ConsensusMessage::decode(&primary) {
                Ok(ConsensusMessage::Vote(v)) if equivocate && v.vote.validator.0 == me => {
                    alternative = Some(self.conflicting_vote(i, &v));
                    self.stats.forged_votes += 1;
                }
                Ok(ConsensusMessage::Vote(v)) if ahead && v.vote.validator.0 == me => {
                    extra = Some(self.vote_ahead(i, &v));
                    self.stats.forged_ahead += 1;
                }
                Ok(ConsensusMessage::Proposal(p)) if bad_root && p.proposal.proposer.0 == me => {
                    primary = self.bad_root_proposal(i, &p);
                    self.stats.forged_proposals += 1;
                }
                _ => {}
            }
        }
        // Proposals are the first variant of `ConsensusMessage` (tag byte 0): decode only
        // those, to record who proposed what.
        if primary.first() == Some(&0)
            && let Ok(ConsensusMessage::Proposal(p)) = ConsensusMessage::decode(&primary)
        {
            self.events.push(super::SimEvent::Proposed {
                node: i,
                height: p.proposal.height.0,
                id: p.proposal.value.id(),
            });
        }
        for j in 0..self.nodes.len() {
            if j == i {
                continue;
            }
            let bytes = match &alternative {
                Some(alt) if self.rng.chance(0.5) => alt.clone(),
                _ => primary.clone(),
            };
            self.send(
                Delivery::Gossip {
                    to: j,
                    from: i,
                    channel: ChannelKind::Consensus,
                    bytes,
                },
                i,
                j,
            );
            if let Some(bytes) = &extra {
                self.send(
                    Delivery::Gossip {
                        to: j,
                        from: i,
                        channel: ChannelKind::Consensus,
                        bytes: bytes.clone(),
                    },
                    i,
                    j,
                );
            }
        }
    }

    /// Node `i`'s vote moved [`FORGED_AHEAD`] heights up, signed with its key.
    fn vote_ahead(&mut self, i: usize, v: &VoteMessage) -> Vec<u8> {
        let mut vote = v.vote.clone();
        vote.height = crate::checkpoint::context::CheckpointHeight(vote.height.0 + FORGED_AHEAD);
        vote.value = NilOrVal::Nil;
        let signature = sign_vote(&self.nodes[i].key, &self.network, &vote);
        ConsensusMessage::Vote(VoteMessage { vote, signature }).to_bytes()
    }

    /// The conflicting twin of one of node `i`'s votes, signed with its key.
    fn conflicting_vote(&mut self, i: usize, v: &VoteMessage) -> Vec<u8> {
        let mut vote = v.vote.clone();
        vote.value = match vote.value {
            NilOrVal::Nil => NilOrVal::Val(CheckpointId(Hash32::of_parts(
                "chorus/sim/forged-vote",
                &[&vote.height.0.to_le_bytes(), &vote.validator.0.0],
            ))),
            NilOrVal::Val(_) => NilOrVal::Nil,
        };
        let signature = sign_vote(&self.nodes[i].key, &self.network, &vote);
        ConsensusMessage::Vote(VoteMessage { vote, signature }).to_bytes()
    }

    /// Node `i`'s proposal with a wrong root, re-signed with its key: by height, the ledger
    /// root, the inference root or the validator-set digest.
    fn bad_root_proposal(&mut self, i: usize, p: &ProposalMessage) -> Vec<u8> {
        let mut checkpoint: Checkpoint = p.proposal.value.checkpoint().clone();
        let root = match checkpoint.height % 3 {
            0 => &mut checkpoint.ledger_root,
            1 => &mut checkpoint.inferences,
            _ => &mut checkpoint.validators,
        };
        *root = Hash32::of_parts("chorus/sim/bad-root", &[&root.0]);
        let proposal = Proposal {
            value: CheckpointValue::new(checkpoint),
            ..p.proposal.clone()
        };
        let signature = sign_proposal(&self.nodes[i].key, &self.network, &proposal);
        ConsensusMessage::Proposal(ProposalMessage {
            proposal,
            signature,
        })
        .to_bytes()
    }

    /// Remember a real message a garbage peer received, to mutate later.
    pub(super) fn sample(&mut self, i: usize, channel: ChannelKind, bytes: &[u8]) {
        if !self.roles.garbage_peers.contains(&i) {
            return;
        }
        let recent = &mut self.nodes[i].recent;
        if recent.len() >= GARBAGE_SAMPLES {
            recent.pop_front();
        }
        recent.push_back((channel, bytes.to_vec()));
    }

    /// One garbage message for `channel`: random bytes, or a mutated real message.
    fn garbage_for(&mut self, i: usize, channel: Option<ChannelKind>) -> Vec<u8> {
        let recent: &VecDeque<(ChannelKind, Vec<u8>)> = &self.nodes[i].recent;
        let candidates: Vec<&Vec<u8>> = recent
            .iter()
            .filter(|(c, _)| channel.is_none_or(|k| *c == k))
            .map(|(_, b)| b)
            .collect();
        if !candidates.is_empty() && self.rng.chance(0.7) {
            let pick = self.rng.range(0, candidates.len() as u64 - 1) as usize;
            let original = candidates[pick].clone();
            mutate(&original, &mut self.rng)
        } else {
            let n = self.rng.range(0, GARBAGE_MAX_LEN) as usize;
            self.rng.bytes(n)
        }
    }

    /// A burst of garbage from node `i` to every peer on every channel.
    pub(super) fn spew_garbage(&mut self, i: usize) {
        let mut channels = vec![ChannelKind::Ledger, ChannelKind::Consensus];
        for t in &self.genesis.topics {
            channels.push(ChannelKind::Workers(t.id));
            channels.push(ChannelKind::Reputers(t.id));
        }
        for j in 0..self.nodes.len() {
            if j == i {
                continue;
            }
            for channel in &channels {
                let bytes = self.garbage_for(i, Some(*channel));
                self.stats.garbage_sent += 1;
                self.send(
                    Delivery::Gossip {
                        to: j,
                        from: i,
                        channel: *channel,
                        bytes,
                    },
                    i,
                    j,
                );
            }
            let bytes = self.garbage_for(i, Some(ChannelKind::Consensus));
            self.stats.garbage_sent += 1;
            self.send_request(i, j, RequestId(u64::MAX), Request::Consensus(bytes));
            let windows = self.nodes[j]
                .replica
                .as_ref()
                .map(|r| r.window_keys())
                .unwrap_or_default();
            if !windows.is_empty() {
                let pick = self.rng.range(0, windows.len() as u64 - 1) as usize;
                let window = windows[pick];
                let n = self.rng.range(0, GARBAGE_MAX_LEN) as usize;
                let message = self.rng.bytes(n);
                self.stats.garbage_sent += 1;
                self.send_request(i, j, RequestId(u64::MAX), Request::Sync { window, message });
            }
        }
    }

    /// What a garbage peer answers to a window fetch: garbage and mutated envelopes.
    pub(super) fn garbage_envelopes(&mut self, i: usize, window: &WindowKey) -> Vec<Vec<u8>> {
        let channel = match window {
            WindowKey::Topic {
                topic,
                phase: crate::window::Phase::Workers,
                ..
            } => ChannelKind::Workers(*topic),
            WindowKey::Topic { topic, .. } => ChannelKind::Reputers(*topic),
            WindowKey::Ledger { .. } => ChannelKind::Ledger,
        };
        let n = self.rng.range(1, 4);
        self.stats.garbage_sent += n;
        (0..n).map(|_| self.garbage_for(i, Some(channel))).collect()
    }
}
