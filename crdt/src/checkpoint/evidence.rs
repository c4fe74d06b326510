//! Equivocation: detecting two conflicting signed messages of one validator, and the
//! portable evidence the ledger slashes on.
//!
//! **Format.** `chorus_protocol::messages::Evidence { kind: ConsensusVote, first, second }`
//! where `first` and `second` are the canonical bytes of two [`ConsensusMessage`]s, both
//! `Vote` or both `Proposal`, ordered `first < second` bytewise (one canonical form per pair,
//! so the ledger can deduplicate by content). They conflict when they are signed by the same
//! validator for the same `(height, round, step)` and differ in what they vote for (a vote's
//! id-or-nil; a proposal's checkpoint id or POL round).
//!
//! **Verification** ([`verify_vote_evidence`]) needs only the network id and the bytes: it
//! decodes both messages, checks slot equality and conflict, and verifies both signatures
//! under the signer's public key. The ledger must additionally check that the signer was a
//! validator at that height (the proof names the height) before slashing.

use std::collections::{BTreeMap, BTreeSet};

use arc_malachitebft_core_types::{NilOrVal, VoteType};
use chorus_protocol::ids::Hash32;
use chorus_protocol::keys::PublicKey;
use chorus_protocol::messages::{Evidence, EvidenceKind};

use super::error::EvidenceError;
use super::limits::MAX_TRACKED_SIGNATURES;
use super::messages::{ConsensusMessage, ProposalMessage, VoteMessage};
use super::signing::{verify_proposal, verify_vote};
use super::value::CheckpointId;

/// The step a signed message belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Step {
    /// A proposal.
    Proposal,
    /// A prevote.
    Prevote,
    /// A precommit.
    Precommit,
}

/// What a verified piece of evidence proves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Equivocation {
    /// The validator that signed both messages.
    pub validator: PublicKey,
    /// Height of both messages.
    pub height: u64,
    /// Round of both messages.
    pub round: u32,
    /// Step of both messages.
    pub step: Step,
}

impl Equivocation {
    /// The offence's id: the same for every pair of messages that shows this validator signed
    /// twice in this (height, round, step), so it is punished once.
    pub fn offence_id(&self) -> Hash32 {
        let step: u8 = match self.step {
            Step::Proposal => 0,
            Step::Prevote => 1,
            Step::Precommit => 2,
        };
        Hash32::of_parts(
            "chorus/offence/consensus/v1",
            &[
                self.validator.as_bytes(),
                &self.height.to_le_bytes(),
                &self.round.to_le_bytes(),
                &[step],
            ],
        )
    }
}

/// The slot of a signed message and what it says in that slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Slot {
    validator: PublicKey,
    height: u64,
    round: Option<u32>,
    step: Step,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Content {
    Vote(Option<CheckpointId>),
    Proposal(CheckpointId, Option<u32>),
}

fn vote_slot(v: &VoteMessage) -> (Slot, Content) {
    let step = match v.vote.kind {
        VoteType::Prevote => Step::Prevote,
        VoteType::Precommit => Step::Precommit,
    };
    let content = match v.vote.value {
        NilOrVal::Nil => Content::Vote(None),
        NilOrVal::Val(id) => Content::Vote(Some(id)),
    };
    (
        Slot {
            validator: v.vote.validator.0,
            height: v.vote.height.0,
            round: v.vote.round.as_u32(),
            step,
        },
        content,
    )
}

fn proposal_slot(p: &ProposalMessage) -> (Slot, Content) {
    let pr = &p.proposal;
    (
        Slot {
            validator: pr.proposer.0,
            height: pr.height.0,
            round: pr.round.as_u32(),
            step: Step::Proposal,
        },
        Content::Proposal(pr.value.id(), pr.pol_round.as_u32()),
    )
}

fn slot_of(msg: &ConsensusMessage) -> Option<(Slot, Content)> {
    match msg {
        ConsensusMessage::Vote(v) => Some(vote_slot(v)),
        ConsensusMessage::Proposal(p) => Some(proposal_slot(p)),
        _ => None,
    }
}

fn signature_ok(network: &Hash32, msg: &ConsensusMessage) -> bool {
    match msg {
        ConsensusMessage::Vote(v) => {
            verify_vote(network, &v.vote, &v.signature, &v.vote.validator.0)
        }
        ConsensusMessage::Proposal(p) => {
            verify_proposal(network, &p.proposal, &p.signature, &p.proposal.proposer.0)
        }
        _ => false,
    }
}

/// Build canonical evidence from two conflicting signed messages (any order).
pub fn vote_evidence(a: &ConsensusMessage, b: &ConsensusMessage) -> Evidence {
    let (x, y) = (a.to_bytes(), b.to_bytes());
    let (first, second) = if x <= y { (x, y) } else { (y, x) };
    Evidence {
        kind: EvidenceKind::ConsensusVote,
        first,
        second,
    }
}

/// Verify consensus equivocation evidence on `network`; returns who equivocated where.
pub fn verify_vote_evidence(
    network: &Hash32,
    evidence: &Evidence,
) -> Result<Equivocation, EvidenceError> {
    if evidence.kind != EvidenceKind::ConsensusVote {
        return Err(EvidenceError::WrongKind);
    }
    if evidence.first >= evidence.second {
        return Err(EvidenceError::NotCanonicalOrder);
    }
    let a = ConsensusMessage::decode(&evidence.first)?;
    let b = ConsensusMessage::decode(&evidence.second)?;
    let (Some((sa, ca)), Some((sb, cb))) = (slot_of(&a), slot_of(&b)) else {
        return Err(EvidenceError::NotSignedMessages);
    };
    if sa != sb {
        return Err(EvidenceError::DifferentSlot);
    }
    if ca == cb {
        return Err(EvidenceError::NotConflicting);
    }
    if !signature_ok(network, &a) || !signature_ok(network, &b) {
        return Err(EvidenceError::BadSignature);
    }
    Ok(Equivocation {
        validator: sa.validator,
        height: sa.height,
        round: sa.round.unwrap_or(0),
        step: sa.step,
    })
}

/// (height, round, step, validator): messages of different heights never conflict (messages
/// of the next height can arrive before this node moves to it).
type SlotKey = (u64, Option<u32>, Step, PublicKey);

/// Remembers, for the current height, the first verified signed message of each validator in
/// each `(round, step)`, and turns a later conflicting one into evidence (once per slot).
#[derive(Debug, Default)]
pub struct EquivocationDetector {
    first: BTreeMap<SlotKey, (Content, ConsensusMessage)>,
    reported: BTreeSet<SlotKey>,
    /// Messages not tracked because the table was full.
    pub untracked: u64,
}

impl EquivocationDetector {
    /// Forget everything (new height).
    pub fn clear(&mut self) {
        self.first.clear();
        self.reported.clear();
    }

    /// Observe a message whose signature has been verified. Returns evidence the first time a
    /// conflict in its slot is seen.
    pub fn observe(&mut self, msg: &ConsensusMessage) -> Option<Evidence> {
        let (slot, content) = slot_of(msg)?;
        let key = (slot.height, slot.round, slot.step, slot.validator);
        match self.first.get(&key) {
            None => {
                if self.first.len() < MAX_TRACKED_SIGNATURES {
                    self.first.insert(key, (content, msg.clone()));
                } else {
                    self.untracked += 1;
                }
                None
            }
            Some((c, _)) if *c == content => None,
            Some((_, earlier)) => {
                if !self.reported.insert(key) {
                    return None;
                }
                Some(vote_evidence(earlier, msg))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::context::{CheckpointHeight, ValidatorAddress, Vote};
    use crate::checkpoint::signing::sign_vote;
    use arc_malachitebft_core_types::Round;
    use chorus_protocol::keys::Keypair;

    fn signed(kp: &Keypair, net: &Hash32, value: NilOrVal<CheckpointId>) -> ConsensusMessage {
        let vote = Vote {
            height: CheckpointHeight(4),
            round: Round::new(1),
            kind: VoteType::Precommit,
            value,
            validator: ValidatorAddress(kp.public()),
        };
        let signature = sign_vote(kp, net, &vote);
        ConsensusMessage::Vote(VoteMessage { vote, signature })
    }

    #[test]
    fn votes_of_different_heights_never_conflict() {
        let net = Hash32([1; 32]);
        let kp = Keypair::from_seed(&[2; 32]);
        let a = signed(&kp, &net, NilOrVal::Val(CheckpointId(Hash32([5; 32]))));
        let ConsensusMessage::Vote(mut next) =
            signed(&kp, &net, NilOrVal::Val(CheckpointId(Hash32([6; 32]))))
        else {
            unreachable!()
        };
        next.vote.height = CheckpointHeight(5);
        next.signature = sign_vote(&kp, &net, &next.vote);
        let mut d = EquivocationDetector::default();
        assert!(d.observe(&a).is_none());
        assert!(d.observe(&ConsensusMessage::Vote(next)).is_none());
    }

    #[test]
    fn detector_reports_once_and_evidence_verifies() {
        let net = Hash32([1; 32]);
        let kp = Keypair::from_seed(&[2; 32]);
        let a = signed(&kp, &net, NilOrVal::Nil);
        let b = signed(&kp, &net, NilOrVal::Val(CheckpointId(Hash32([5; 32]))));
        let mut d = EquivocationDetector::default();
        assert!(d.observe(&a).is_none());
        assert!(d.observe(&a).is_none(), "a duplicate is no conflict");
        let ev = d.observe(&b).expect("conflict");
        assert!(d.observe(&b).is_none(), "reported once");
        assert_eq!(
            ev,
            vote_evidence(&b, &a),
            "order-independent canonical form"
        );
        let proof = verify_vote_evidence(&net, &ev).unwrap();
        assert_eq!(proof.validator, kp.public());
        assert_eq!(
            (proof.height, proof.round, proof.step),
            (4, 1, Step::Precommit)
        );
        // Another network: signatures do not verify.
        assert_eq!(
            verify_vote_evidence(&Hash32([9; 32]), &ev),
            Err(EvidenceError::BadSignature)
        );
    }

    #[test]
    fn bogus_evidence_is_rejected() {
        let net = Hash32([1; 32]);
        let kp = Keypair::from_seed(&[2; 32]);
        let other = Keypair::from_seed(&[3; 32]);
        let a = signed(&kp, &net, NilOrVal::Nil);
        let same = vote_evidence(&a, &a);
        assert_eq!(
            verify_vote_evidence(&net, &same),
            Err(EvidenceError::NotCanonicalOrder)
        );
        let b = signed(&other, &net, NilOrVal::Val(CheckpointId(Hash32([5; 32]))));
        assert_eq!(
            verify_vote_evidence(&net, &vote_evidence(&a, &b)),
            Err(EvidenceError::DifferentSlot)
        );
        let mut swapped = vote_evidence(
            &a,
            &signed(&kp, &net, NilOrVal::Val(CheckpointId(Hash32([5; 32])))),
        );
        std::mem::swap(&mut swapped.first, &mut swapped.second);
        assert_eq!(
            verify_vote_evidence(&net, &swapped),
            Err(EvidenceError::NotCanonicalOrder)
        );
        let garbage = Evidence {
            kind: EvidenceKind::ConsensusVote,
            first: vec![0xff],
            second: vec![0xff, 0xff],
        };
        assert!(matches!(
            verify_vote_evidence(&net, &garbage),
            Err(EvidenceError::Decode(_))
        ));
        let wrong_kind = Evidence {
            kind: EvidenceKind::LedgerNonce,
            ..vote_evidence(&a, &b)
        };
        assert_eq!(
            verify_vote_evidence(&net, &wrong_kind),
            Err(EvidenceError::WrongKind)
        );
    }
}
