//! The consensus wire messages and their one decode path.
//!
//! Every message travels as the canonical bincode encoding of [`ConsensusMessage`]
//! ([`ConsensusMessage::to_bytes`]). [`ConsensusMessage::decode`] refuses more than
//! [`MAX_MESSAGE_SIZE`] bytes before touching them, rejects malformed, trailing and
//! non-canonical input, then checks the structure (ranges, sorted lists, caps). It returns an
//! error for any garbage and never panics. Signatures are checked later, against the height's
//! validator set, by the engine.

use arc_malachitebft_core_types as mtypes;
use bincode::{Decode, Encode};
use chorus_protocol::codec::{self, Wire};
use chorus_protocol::keys::Signature;
use mtypes::{Proposal as _, Round};

use super::catchup::DecidedCheckpoint;
use super::certificate::{PolkaCertificate, RoundCertificate};
use super::context::{CheckpointContext, Proposal, Vote};
use super::error::{MessageError, ShapeError};
use super::limits::{MAX_HEIGHT, MAX_MESSAGE_SIZE, MAX_ROUND};

type Ctx = CheckpointContext;

/// A signed prevote or precommit.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct VoteMessage {
    /// The vote.
    pub vote: Vote,
    /// The voter's signature over `signing::vote_sign_bytes`.
    pub signature: Signature,
}

/// A signed proposal (carrying the whole checkpoint).
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct ProposalMessage {
    /// The proposal.
    pub proposal: Proposal,
    /// The proposer's signature over `signing::proposal_sign_bytes`.
    pub signature: Signature,
}

/// Every message of the checkpoint consensus.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub enum ConsensusMessage {
    /// A signed proposal (gossip).
    Proposal(ProposalMessage),
    /// A signed prevote or precommit (gossip).
    Vote(VoteMessage),
    /// A polka certificate (gossip; liveness).
    PolkaCertificate(PolkaCertificate),
    /// A round certificate (gossip; liveness).
    RoundCertificate(RoundCertificate),
    /// "Send me the decided checkpoint and commit certificate of this height" (request).
    CatchUpRequest {
        /// The height asked for.
        height: u64,
    },
    /// A decided checkpoint with its commit certificate (response).
    CatchUpResponse(DecidedCheckpoint),
}

impl Wire for ConsensusMessage {
    const MAX_SIZE: usize = MAX_MESSAGE_SIZE;
    const NAME: &'static str = "ConsensusMessage";
}

fn check_height(height: u64) -> Result<(), ShapeError> {
    if height == 0 || height > MAX_HEIGHT {
        return Err(ShapeError::HeightOutOfRange(height));
    }
    Ok(())
}

fn check_round(round: Round) -> Result<(), ShapeError> {
    match round.as_u32() {
        Some(r) if r <= MAX_ROUND => Ok(()),
        _ => Err(ShapeError::RoundOutOfRange),
    }
}

impl VoteMessage {
    /// Structural checks of the vote (signature not checked).
    pub fn check_shape(&self) -> Result<(), ShapeError> {
        check_height(self.vote.height.0)?;
        check_round(self.vote.round)
    }

    /// As Malachite's signed vote.
    pub fn to_malachite(&self) -> mtypes::SignedVote<Ctx> {
        mtypes::SignedMessage::new(self.vote.clone(), self.signature)
    }

    /// From Malachite's signed vote.
    pub fn from_malachite(v: &mtypes::SignedVote<Ctx>) -> Self {
        VoteMessage {
            vote: v.message.clone(),
            signature: v.signature,
        }
    }
}

impl ProposalMessage {
    /// Structural checks of the proposal and its checkpoint (signature not checked).
    pub fn check_shape(&self) -> Result<(), ShapeError> {
        let p = &self.proposal;
        check_height(p.height.0)?;
        check_round(p.round)?;
        if p.pol_round.is_defined() && p.pol_round >= p.round {
            return Err(ShapeError::BadPolRound);
        }
        let cp = p.value.checkpoint();
        if cp.height != p.height.0 {
            return Err(ShapeError::HeightMismatch {
                proposal: p.height.0,
                checkpoint: cp.height,
            });
        }
        cp.check_shape()
    }

    /// As Malachite's signed proposal.
    pub fn to_malachite(&self) -> mtypes::SignedProposal<Ctx> {
        mtypes::SignedMessage::new(self.proposal.clone(), self.signature)
    }

    /// From Malachite's signed proposal.
    pub fn from_malachite(p: &mtypes::SignedProposal<Ctx>) -> Self {
        ProposalMessage {
            proposal: p.message.clone(),
            signature: p.signature,
        }
    }
}

impl ConsensusMessage {
    /// The canonical bytes (what gossip carries and evidence embeds).
    pub fn to_bytes(&self) -> Vec<u8> {
        codec::encode(self)
    }

    /// Decode with size cap, canonical-form and structural checks. Never panics.
    pub fn decode(bytes: &[u8]) -> Result<Self, MessageError> {
        let msg: ConsensusMessage = codec::decode(bytes)?;
        msg.check_shape()?;
        Ok(msg)
    }

    /// Structural checks (ranges, caps, sorted lists).
    pub fn check_shape(&self) -> Result<(), ShapeError> {
        match self {
            ConsensusMessage::Proposal(p) => p.check_shape(),
            ConsensusMessage::Vote(v) => v.check_shape(),
            ConsensusMessage::PolkaCertificate(c) => c.check_shape(),
            ConsensusMessage::RoundCertificate(c) => c.check_shape(),
            ConsensusMessage::CatchUpRequest { height } => check_height(*height),
            ConsensusMessage::CatchUpResponse(d) => d.check_shape(),
        }
    }

    /// The consensus height the message is about.
    pub fn height(&self) -> u64 {
        match self {
            ConsensusMessage::Proposal(p) => p.proposal.height().0,
            ConsensusMessage::Vote(v) => v.vote.height.0,
            ConsensusMessage::PolkaCertificate(c) => c.height,
            ConsensusMessage::RoundCertificate(c) => c.height,
            ConsensusMessage::CatchUpRequest { height } => *height,
            ConsensusMessage::CatchUpResponse(d) => d.checkpoint.height,
        }
    }
}
