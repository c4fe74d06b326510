//! Our Malachite `Context`: the concrete types the Tendermint core runs on.
//!
//! | Malachite item | ours |
//! |---|---|
//! | `Height` | [`CheckpointHeight`] (`u64`, first height 1) |
//! | `Address` | [`ValidatorAddress`] (the ed25519 public key) |
//! | `Value` / `Id` | [`CheckpointValue`] / [`CheckpointId`] |
//! | `Proposal` | [`Proposal`] (carries the whole checkpoint) |
//! | `ProposalPart` | [`NoPart`] (uninhabited: we never stream parts) |
//! | `Vote` | [`Vote`] (no extensions) |
//! | `Validator(Set)` | [`Validator`], [`ValidatorSet`] |
//! | `SigningScheme` | [`Ed25519`] (chorus keys, `verify_strict`) |
//! | `Timeouts` | Malachite's `LinearTimeouts` (unused by the core; see `EngineConfig`) |
//! | `Extension` | `()` (vote extensions disabled) |
//!
//! Votes and proposals encode with bincode (manual impls, because Malachite's `Round` and
//! `NilOrVal` have no bincode support): a round is an `Option<u32>` (`None` = Malachite's
//! `Round::Nil`), a vote's value an `Option<CheckpointId>` (`None` = nil).

use std::fmt;

use arc_malachitebft_core_types as mtypes;
use bincode::de::Decoder;
use bincode::enc::Encoder;
use bincode::error::{DecodeError, EncodeError};
use bincode::{Decode, Encode};
use chorus_protocol::keys::{Keypair, PublicKey, Signature};
use mtypes::{NilOrVal, Round, SignedExtension, VoteType};

use super::validators::{Validator, ValidatorSet};
use super::value::{CheckpointId, CheckpointValue};

/// The Malachite context of checkpoint consensus. Stateless: proposer selection lives in the
/// validator set.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CheckpointContext;

/// A consensus height (checkpoint period). Height 1 is the first checkpoint.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Encode, Decode)]
pub struct CheckpointHeight(pub u64);

impl fmt::Display for CheckpointHeight {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl mtypes::Height for CheckpointHeight {
    const ZERO: Self = CheckpointHeight(0);
    const INITIAL: Self = CheckpointHeight(1);

    fn increment_by(&self, n: u64) -> Self {
        CheckpointHeight(self.0.saturating_add(n))
    }

    fn decrement_by(&self, n: u64) -> Option<Self> {
        self.0.checked_sub(n).map(CheckpointHeight)
    }

    fn as_u64(&self) -> u64 {
        self.0
    }
}

/// A validator's address: its ed25519 public key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Encode, Decode)]
pub struct ValidatorAddress(pub PublicKey);

impl fmt::Display for ValidatorAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.short())
    }
}

impl mtypes::Address for ValidatorAddress {}

/// Encode a Malachite round as `Option<u32>`.
pub(crate) fn round_to_wire(round: Round) -> Option<u32> {
    round.as_u32()
}

/// Decode a Malachite round from `Option<u32>`.
pub(crate) fn round_from_wire(round: Option<u32>) -> Round {
    round.map_or(Round::Nil, Round::new)
}

/// The two vote steps, as encoded on the wire (`0` prevote, `1` precommit).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Encode, Decode)]
pub enum VoteKind {
    /// Prevote.
    Prevote,
    /// Precommit.
    Precommit,
}

impl From<VoteType> for VoteKind {
    fn from(t: VoteType) -> Self {
        match t {
            VoteType::Prevote => VoteKind::Prevote,
            VoteType::Precommit => VoteKind::Precommit,
        }
    }
}

impl From<VoteKind> for VoteType {
    fn from(k: VoteKind) -> Self {
        match k {
            VoteKind::Prevote => VoteType::Prevote,
            VoteKind::Precommit => VoteType::Precommit,
        }
    }
}

/// A prevote or precommit of one validator (unsigned).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vote {
    /// Height.
    pub height: CheckpointHeight,
    /// Round (always defined for votes that pass decoding).
    pub round: Round,
    /// Prevote or precommit.
    pub kind: VoteType,
    /// The checkpoint id voted for, or nil.
    pub value: NilOrVal<CheckpointId>,
    /// The voter.
    pub validator: ValidatorAddress,
}

impl Encode for Vote {
    fn encode<E: Encoder>(&self, e: &mut E) -> Result<(), EncodeError> {
        self.height.encode(e)?;
        round_to_wire(self.round).encode(e)?;
        VoteKind::from(self.kind).encode(e)?;
        match &self.value {
            NilOrVal::Nil => None::<CheckpointId>.encode(e)?,
            NilOrVal::Val(id) => Some(*id).encode(e)?,
        }
        self.validator.encode(e)
    }
}

impl<C> Decode<C> for Vote {
    fn decode<D: Decoder<Context = C>>(d: &mut D) -> Result<Self, DecodeError> {
        let height = CheckpointHeight::decode(d)?;
        let round = round_from_wire(Option::<u32>::decode(d)?);
        let kind = VoteType::from(VoteKind::decode(d)?);
        let value = match Option::<CheckpointId>::decode(d)? {
            None => NilOrVal::Nil,
            Some(id) => NilOrVal::Val(id),
        };
        let validator = ValidatorAddress::decode(d)?;
        Ok(Vote {
            height,
            round,
            kind,
            value,
            validator,
        })
    }
}

bincode::impl_borrow_decode!(Vote);

impl mtypes::Vote<CheckpointContext> for Vote {
    fn height(&self) -> CheckpointHeight {
        self.height
    }

    fn round(&self) -> Round {
        self.round
    }

    fn value(&self) -> &NilOrVal<CheckpointId> {
        &self.value
    }

    fn take_value(self) -> NilOrVal<CheckpointId> {
        self.value
    }

    fn vote_type(&self) -> VoteType {
        self.kind
    }

    fn validator_address(&self) -> &ValidatorAddress {
        &self.validator
    }

    fn extension(&self) -> Option<&SignedExtension<CheckpointContext>> {
        None
    }

    fn take_extension(&mut self) -> Option<SignedExtension<CheckpointContext>> {
        None
    }

    /// Vote extensions are disabled (`VoteExtensionPolicy::Disabled`); an extension is dropped.
    fn extend(self, _extension: SignedExtension<CheckpointContext>) -> Self {
        self
    }
}

/// A proposal: the proposer's checkpoint for `(height, round)` (unsigned).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Proposal {
    /// Height.
    pub height: CheckpointHeight,
    /// Round.
    pub round: Round,
    /// The proposed checkpoint.
    pub value: CheckpointValue,
    /// The round of the polka this re-proposal relies on, or nil.
    pub pol_round: Round,
    /// The proposer.
    pub proposer: ValidatorAddress,
}

impl Encode for Proposal {
    fn encode<E: Encoder>(&self, e: &mut E) -> Result<(), EncodeError> {
        self.height.encode(e)?;
        round_to_wire(self.round).encode(e)?;
        self.value.encode(e)?;
        round_to_wire(self.pol_round).encode(e)?;
        self.proposer.encode(e)
    }
}

impl<C> Decode<C> for Proposal {
    fn decode<D: Decoder<Context = C>>(d: &mut D) -> Result<Self, DecodeError> {
        Ok(Proposal {
            height: CheckpointHeight::decode(d)?,
            round: round_from_wire(Option::<u32>::decode(d)?),
            value: CheckpointValue::decode(d)?,
            pol_round: round_from_wire(Option::<u32>::decode(d)?),
            proposer: ValidatorAddress::decode(d)?,
        })
    }
}

bincode::impl_borrow_decode!(Proposal);

impl mtypes::Proposal<CheckpointContext> for Proposal {
    fn height(&self) -> CheckpointHeight {
        self.height
    }

    fn round(&self) -> Round {
        self.round
    }

    fn value(&self) -> &CheckpointValue {
        &self.value
    }

    fn take_value(self) -> CheckpointValue {
        self.value
    }

    fn pol_round(&self) -> Round {
        self.pol_round
    }

    fn validator_address(&self) -> &ValidatorAddress {
        &self.proposer
    }
}

/// The proposal-part type. Uninhabited: the whole checkpoint travels inside the proposal, and
/// the host feeds the proposed value (with its own validity verdict) separately
/// (`ValuePayload::ProposalAndParts` without parts).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NoPart {}

impl mtypes::ProposalPart<CheckpointContext> for NoPart {
    fn is_first(&self) -> bool {
        match *self {}
    }

    fn is_last(&self) -> bool {
        match *self {}
    }
}

impl mtypes::Validator<CheckpointContext> for Validator {
    fn address(&self) -> &ValidatorAddress {
        &self.address
    }

    fn public_key(&self) -> &PublicKey {
        &self.address.0
    }

    fn voting_power(&self) -> u64 {
        self.power
    }
}

impl mtypes::ValidatorSet<CheckpointContext> for ValidatorSet {
    fn count(&self) -> usize {
        self.len()
    }

    fn total_voting_power(&self) -> u64 {
        self.total_power()
    }

    fn get_by_address(&self, address: &ValidatorAddress) -> Option<&Validator> {
        self.get(&address.0)
    }

    fn get_by_index(&self, index: usize) -> Option<&Validator> {
        self.get_index(index)
    }
}

/// Bytes that are not an ed25519 signature or public key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("expected {expected} bytes, got {got}")]
pub struct KeyBytesError {
    /// Expected length.
    pub expected: usize,
    /// Actual length.
    pub got: usize,
}

/// ed25519 with chorus keys (verification is always `verify_strict`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ed25519;

impl mtypes::SigningScheme for Ed25519 {
    type DecodingError = KeyBytesError;
    type Signature = Signature;
    type PublicKey = PublicKey;
    type PrivateKey = Keypair;

    fn decode_signature(bytes: &[u8]) -> Result<Signature, KeyBytesError> {
        let arr: [u8; 64] = bytes.try_into().map_err(|_| KeyBytesError {
            expected: 64,
            got: bytes.len(),
        })?;
        Ok(Signature(arr))
    }

    fn encode_signature(signature: &Signature) -> Vec<u8> {
        signature.0.to_vec()
    }

    fn decode_public_key(bytes: &[u8]) -> Result<PublicKey, KeyBytesError> {
        let arr: [u8; 32] = bytes.try_into().map_err(|_| KeyBytesError {
            expected: 32,
            got: bytes.len(),
        })?;
        Ok(PublicKey(arr))
    }

    fn encode_public_key(public_key: &PublicKey) -> Vec<u8> {
        public_key.0.to_vec()
    }
}

impl mtypes::Context for CheckpointContext {
    type Address = ValidatorAddress;
    type Height = CheckpointHeight;
    type ProposalPart = NoPart;
    type Proposal = Proposal;
    type Validator = Validator;
    type ValidatorSet = ValidatorSet;
    type Timeouts = mtypes::LinearTimeouts;
    type Value = CheckpointValue;
    type Vote = Vote;
    type Extension = ();
    type SigningScheme = Ed25519;

    fn select_proposer<'a>(
        &self,
        validator_set: &'a ValidatorSet,
        height: CheckpointHeight,
        round: Round,
    ) -> &'a Validator {
        validator_set.proposer(height.0, round.as_u32().unwrap_or(0))
    }

    fn new_proposal(
        &self,
        height: CheckpointHeight,
        round: Round,
        value: CheckpointValue,
        pol_round: Round,
        address: ValidatorAddress,
    ) -> Proposal {
        Proposal {
            height,
            round,
            value,
            pol_round,
            proposer: address,
        }
    }

    fn new_prevote(
        &self,
        height: CheckpointHeight,
        round: Round,
        value_id: NilOrVal<CheckpointId>,
        address: ValidatorAddress,
    ) -> Vote {
        Vote {
            height,
            round,
            kind: VoteType::Prevote,
            value: value_id,
            validator: address,
        }
    }

    fn new_precommit(
        &self,
        height: CheckpointHeight,
        round: Round,
        value_id: NilOrVal<CheckpointId>,
        address: ValidatorAddress,
    ) -> Vote {
        Vote {
            height,
            round,
            kind: VoteType::Precommit,
            value: value_id,
            validator: address,
        }
    }
}
