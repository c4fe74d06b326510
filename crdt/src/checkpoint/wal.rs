//! The write-ahead log: record types and their mapping to Malachite inputs.
//!
//! **Contract with the host.**
//! - Every `Effect::WalAppend(record)` is appended to durable storage *before* any later
//!   effect of the same batch that sends bytes (`Broadcast`, `SendTo`) is carried out. The
//!   engine emits the record of each of its own signatures before the effect that sends it,
//!   so a signature that left the node is always in the log. (Simplest host: fsync when a
//!   network effect follows a `WalAppend`.)
//! - The log holds the records of one height. On `Effect::WalTruncate { keep_from_height }`
//!   (emitted after the `Decided` of the previous height) the host drops records of lower
//!   heights, after it has durably stored that `Decided`.
//! - On restart the host passes the log and its decided history to `Engine::restore`, which
//!   replays the records of the height after the last decided one through Malachite (which
//!   re-derives, and re-uses, every message this node signed) and rebuilds the double-sign
//!   guard from them.
//!
//! Records are the inputs Malachite asks to persist: received and own votes and proposals,
//! proposed values with their validity, elapsed consensus timeouts and polka certificates.

use arc_malachitebft_core_types as mtypes;
use bincode::{Decode, Encode};
use chorus_protocol::codec::{self, Wire};
use chorus_protocol::ids::Hash32;
use chorus_protocol::keys::PublicKey;
use mtypes::{Timeout, TimeoutKind, Validity, ValueOrigin};

use super::certificate::PolkaCertificate;
use super::context::{
    CheckpointContext, CheckpointHeight, ValidatorAddress, round_from_wire, round_to_wire,
};
use super::limits::MAX_WAL_RECORD_SIZE;
use super::messages::{ProposalMessage, VoteMessage};
use super::value::CheckpointValue;

type Ctx = CheckpointContext;
type MInput = arc_malachitebft_core_consensus::Input<Ctx>;

/// A persisted consensus timeout kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode)]
pub enum WalTimeout {
    /// Propose timeout.
    Propose,
    /// Prevote timeout.
    Prevote,
    /// Precommit timeout.
    Precommit,
}

/// One persisted consensus input.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub enum WalEntry {
    /// A verified vote (ours or a peer's).
    Vote(VoteMessage),
    /// A verified proposal (ours or a peer's).
    Proposal(ProposalMessage),
    /// A proposed value and its validity verdict.
    ProposedValue {
        /// Round of the proposal it came with.
        round: Option<u32>,
        /// Its POL round.
        valid_round: Option<u32>,
        /// The proposer.
        proposer: PublicKey,
        /// The checkpoint.
        value: CheckpointValue,
        /// The verdict.
        valid: bool,
        /// Whether it came from catch-up (sync) rather than consensus gossip.
        from_sync: bool,
    },
    /// An elapsed consensus timeout.
    Timeout {
        /// Its round.
        round: Option<u32>,
        /// Its kind.
        kind: WalTimeout,
    },
    /// A verified polka certificate.
    PolkaCertificate(PolkaCertificate),
}

/// One WAL record: an entry of one height.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct WalRecord {
    /// The height the entry belongs to.
    pub height: u64,
    /// The entry.
    pub entry: WalEntry,
}

impl Wire for WalRecord {
    const MAX_SIZE: usize = MAX_WAL_RECORD_SIZE;
    const NAME: &'static str = "WalRecord";
}

impl WalRecord {
    /// Canonical bytes (what the host stores).
    pub fn to_bytes(&self) -> Vec<u8> {
        codec::encode(self)
    }

    /// Decode stored bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, codec::DecodeError> {
        codec::decode(bytes)
    }

    /// Check a record read back from storage: a vote or proposal must carry its signer's
    /// valid signature on `network`. The WAL re-arms the double-sign guard with this node's own
    /// signed messages, so a record damaged on disk must stop the start, not be replayed (a
    /// flipped byte that still decodes fails its signature).
    ///
    /// # Errors
    /// What is wrong, for the operator.
    pub fn check(&self, network: &Hash32) -> Result<(), String> {
        let ok = match &self.entry {
            WalEntry::Vote(v) => {
                super::signing::verify_vote(network, &v.vote, &v.signature, &v.vote.validator.0)
            }
            WalEntry::Proposal(p) => super::signing::verify_proposal(
                network,
                &p.proposal,
                &p.signature,
                &p.proposal.proposer.0,
            ),
            WalEntry::ProposedValue { .. }
            | WalEntry::Timeout { .. }
            | WalEntry::PolkaCertificate(_) => true,
        };
        if ok {
            Ok(())
        } else {
            Err(format!(
                "a signed message of height {} whose signature does not verify",
                self.height
            ))
        }
    }

    /// blake3 of the canonical bytes (identifies a record).
    pub fn digest(&self) -> Hash32 {
        Hash32::of(&self.to_bytes())
    }

    /// The record of a Malachite input, or `None` for inputs that are never persisted.
    pub fn from_input(height: u64, input: &MInput) -> Option<WalRecord> {
        let entry = match input {
            MInput::Vote(v) => WalEntry::Vote(VoteMessage::from_malachite(v)),
            MInput::Proposal(p) => WalEntry::Proposal(ProposalMessage::from_malachite(p)),
            MInput::ProposedValue(pv, origin) => WalEntry::ProposedValue {
                round: round_to_wire(pv.round),
                valid_round: round_to_wire(pv.valid_round),
                proposer: pv.proposer.0,
                value: pv.value.clone(),
                valid: pv.validity.is_valid(),
                from_sync: origin.is_sync(),
            },
            MInput::TimeoutElapsed(t) => WalEntry::Timeout {
                round: round_to_wire(t.round),
                kind: match t.kind {
                    TimeoutKind::Propose => WalTimeout::Propose,
                    TimeoutKind::Prevote => WalTimeout::Prevote,
                    TimeoutKind::Precommit => WalTimeout::Precommit,
                    TimeoutKind::Rebroadcast | TimeoutKind::FinalizeHeight(_) => return None,
                },
            },
            MInput::PolkaCertificate(c) => {
                WalEntry::PolkaCertificate(PolkaCertificate::from_malachite(c)?)
            }
            MInput::StartHeight(..)
            | MInput::RoundCertificate(_)
            | MInput::Propose(_)
            | MInput::SyncValueResponse(_) => return None,
        };
        Some(WalRecord { height, entry })
    }

    /// The Malachite input to replay.
    pub fn to_input(&self) -> MInput {
        match &self.entry {
            WalEntry::Vote(v) => MInput::Vote(v.to_malachite()),
            WalEntry::Proposal(p) => MInput::Proposal(p.to_malachite()),
            WalEntry::ProposedValue {
                round,
                valid_round,
                proposer,
                value,
                valid,
                from_sync,
            } => MInput::ProposedValue(
                arc_malachitebft_core_consensus::ProposedValue {
                    height: CheckpointHeight(self.height),
                    round: round_from_wire(*round),
                    valid_round: round_from_wire(*valid_round),
                    proposer: ValidatorAddress(*proposer),
                    value: value.clone(),
                    validity: Validity::from_bool(*valid),
                },
                if *from_sync {
                    ValueOrigin::Sync
                } else {
                    ValueOrigin::Consensus
                },
            ),
            WalEntry::Timeout { round, kind } => MInput::TimeoutElapsed(Timeout::new(
                round_from_wire(*round),
                match kind {
                    WalTimeout::Propose => TimeoutKind::Propose,
                    WalTimeout::Prevote => TimeoutKind::Prevote,
                    WalTimeout::Precommit => TimeoutKind::Precommit,
                },
            )),
            WalEntry::PolkaCertificate(c) => MInput::PolkaCertificate(c.to_malachite()),
        }
    }
}
