//! Typed errors of the checkpoint consensus.

use chorus_protocol::codec::DecodeError;
use chorus_protocol::keys::PublicKey;

/// A decoded message or value violates a structural rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ShapeError {
    /// Height 0 or above [`super::limits::MAX_HEIGHT`].
    #[error("height {0} out of range")]
    HeightOutOfRange(u64),
    /// Round above [`super::limits::MAX_ROUND`], or a missing round where one is required.
    #[error("round out of range")]
    RoundOutOfRange,
    /// More than [`super::limits::MAX_WINDOWS`] windows.
    #[error("{0} windows exceed the cap")]
    TooManyWindows(usize),
    /// Window ids not strictly ascending.
    #[error("window heads are not strictly sorted by window id")]
    WindowsNotSorted,
    /// A window with more finalized entries than [`super::limits::MAX_WINDOW_ENTRIES`].
    #[error("a window with {0} entries exceeds the cap")]
    TooManyEntries(usize),
    /// A window of no entries whose root is not the empty list's.
    #[error("an empty window's root is not the root of no heads")]
    BadHeads,
    /// More signatures than [`super::limits::MAX_VALIDATORS`].
    #[error("{0} signatures exceed the cap")]
    TooManySignatures(usize),
    /// Certificate signatures not strictly ascending by validator.
    #[error("certificate signatures are not strictly sorted by validator")]
    SignaturesNotSorted,
    /// A proposal whose checkpoint is for another height.
    #[error("proposal for height {proposal} carries a checkpoint for height {checkpoint}")]
    HeightMismatch {
        /// Height of the proposal.
        proposal: u64,
        /// Height inside the checkpoint.
        checkpoint: u64,
    },
    /// A proposal whose POL round is not below its round.
    #[error("proposal POL round is not below its round")]
    BadPolRound,
}

/// Bytes that are not a valid consensus message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MessageError {
    /// The codec refused the bytes (size, malformed, trailing, non-canonical).
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// The value decodes but breaks a structural rule.
    #[error(transparent)]
    Shape(#[from] ShapeError),
}

/// A validator set cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ValidatorSetError {
    /// No validator with non-zero voting power.
    #[error("no validator with non-zero voting power")]
    Empty,
    /// The same key bonded twice.
    #[error("validator {0:?} listed twice")]
    Duplicate(PublicKey),
    /// More than [`super::limits::MAX_VALIDATORS`] validators.
    #[error("{0} validators exceed the cap")]
    TooMany(usize),
    /// The total stake does not fit in a u128.
    #[error("total stake overflows u128")]
    StakeOverflow,
}

/// A commit certificate does not prove a decision.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CertificateError {
    /// The certificate is for another height or value than claimed.
    #[error("certificate does not match the checkpoint (height or id)")]
    Mismatch,
    /// A signer is not in the height's validator set.
    #[error("signer {0:?} is not a validator at this height")]
    UnknownValidator(PublicKey),
    /// A signer appears twice.
    #[error("signer {0:?} appears twice")]
    DuplicateSigner(PublicKey),
    /// A signature does not verify.
    #[error("signature of {0:?} does not verify")]
    BadSignature(PublicKey),
    /// The valid signatures hold at most 2/3 (or 1/3 for a skip certificate) of the power.
    #[error("signed power {signed} of {total} is not enough")]
    NotEnoughPower {
        /// Power of the valid signatures.
        signed: u64,
        /// Total power of the set.
        total: u64,
    },
    /// A precommit round certificate contains a prevote.
    #[error("precommit round certificate contains a prevote")]
    WrongVoteType,
}

/// Evidence that does not prove equivocation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EvidenceError {
    /// Not of kind `ConsensusVote`.
    #[error("evidence is not of kind ConsensusVote")]
    WrongKind,
    /// One of the two messages does not decode.
    #[error("evidence message does not decode: {0}")]
    Decode(#[from] MessageError),
    /// The messages are not both votes or both proposals.
    #[error("evidence messages are not two signed votes or two signed proposals")]
    NotSignedMessages,
    /// The two messages are not ordered `first < second` bytewise (one canonical form).
    #[error("evidence messages are not in canonical order")]
    NotCanonicalOrder,
    /// Different signers, heights, rounds or steps.
    #[error("messages are not for the same signer, height, round and step")]
    DifferentSlot,
    /// Same slot, but the messages do not conflict (same value).
    #[error("messages do not conflict")]
    NotConflicting,
    /// A signature does not verify.
    #[error("a signature does not verify")]
    BadSignature,
}

/// The engine cannot be built or restored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// No validator set is known for the height the engine must run.
    #[error("no validator set known for height {0}")]
    NoValidatorSet(u64),
    /// The decided history handed to `restore` is not a contiguous chain.
    #[error("decided history is not a contiguous chain at height {0}")]
    BrokenHistory(u64),
    /// A configuration value is out of range.
    #[error("invalid configuration: {0}")]
    BadConfig(&'static str),
}
