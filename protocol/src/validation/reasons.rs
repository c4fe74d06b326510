//! Why a message was ignored or rejected: the reason codes of verdicts, metrics and logs.

use std::fmt;

/// Why a message was ignored (not penalised).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum IgnoreReason {
    /// Already held, same bytes.
    Duplicate,
    /// A different validly signed message for a held slot: keep both as evidence.
    Equivocation,
    /// Topic unknown here (maybe not finalized yet).
    UnknownTopic,
    /// Before its window opens.
    TooEarly,
    /// After its window closed.
    TooLate,
    /// Author not registered (maybe not finalized yet).
    NotRegistered,
    /// Reputer stake below the minimum (maybe not finalized yet).
    InsufficientStake,
    /// A named worker is not registered (maybe not finalized yet).
    UnknownWorker,
    /// Nonce already used.
    StaleNonce,
    /// Nonce too far ahead of the last finalized one.
    NonceTooFarAhead,
    /// A ledger message whose author cannot pay what it spends (or, for a message that
    /// spends nothing, holds nothing at all) as of the finalized state: spam from fresh keys
    /// is not relayed.
    CannotPay,
    /// Its window is already finalized here.
    WindowFinalized,
    /// A decided checkpoint fixes its window's content, and it is not part of it (or the
    /// list of what it fixes is still being fetched).
    NotCertified,
    /// Its window holds the most entries a window may (`MAX_WINDOW_ENTRIES`).
    WindowFull,
    /// Evidence against a key with nothing at stake where it offended (a worker or reputer
    /// not registered in the topic, an account holding nothing; maybe not finalized yet).
    OffenderHoldsNothing,
    /// A worker message of the wrong kind for its topic: a plain bundle in a commit-reveal
    /// topic, a commitment or reveal in a topic without commit-reveal.
    WrongPhase,
}

/// Why a message was rejected (provably invalid; the relayer is penalised).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RejectReason {
    /// Larger than the cap of its kind.
    TooLarge,
    /// Bytes do not decode.
    Malformed,
    /// Bytes decode but are not canonical.
    NonCanonical,
    /// Arrived on another network's channel.
    WrongNetwork,
    /// The payload does not belong on this channel.
    WrongChannel,
    /// The signature does not verify.
    BadSignature,
    /// A value is NaN or infinite.
    NonFinite,
    /// A bundle with nothing in it.
    EmptyBundle,
    /// More elements than allowed.
    TooManyElements,
    /// A list is not strictly sorted by key (or repeats a key).
    Unsorted,
    /// A topic definition is invalid.
    InvalidTopic,
    /// A fee below the required minimum.
    FeeTooLow,
    /// A zero amount.
    ZeroAmount,
    /// A transfer to oneself.
    SelfTransfer,
    /// A governance proposal that is malformed.
    InvalidProposal,
    /// Evidence that proves nothing.
    BadEvidence,
    /// Nonce 0 is never valid.
    ZeroNonce,
    /// Offered for a window it does not belong to.
    WrongWindow,
}

macro_rules! reason_names {
    ($ty:ty { $($variant:ident => $name:literal),* $(,)? }) => {
        impl $ty {
            /// Stable snake_case name (metrics labels, test vectors).
            pub fn as_str(&self) -> &'static str {
                match self { $(Self::$variant => $name),* }
            }
            /// Parse a name made by `as_str`.
            pub fn from_name(name: &str) -> Option<Self> {
                match name { $($name => Some(Self::$variant),)* _ => None }
            }
        }
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

reason_names!(IgnoreReason {
    Duplicate => "duplicate",
    Equivocation => "equivocation",
    UnknownTopic => "unknown_topic",
    TooEarly => "too_early",
    TooLate => "too_late",
    NotRegistered => "not_registered",
    InsufficientStake => "insufficient_stake",
    UnknownWorker => "unknown_worker",
    StaleNonce => "stale_nonce",
    NonceTooFarAhead => "nonce_too_far_ahead",
    CannotPay => "cannot_pay",
    WindowFinalized => "window_finalized",
    NotCertified => "not_certified",
    WindowFull => "window_full",
    OffenderHoldsNothing => "offender_holds_nothing",
    WrongPhase => "wrong_phase",
});

reason_names!(RejectReason {
    TooLarge => "too_large",
    Malformed => "malformed",
    NonCanonical => "non_canonical",
    WrongNetwork => "wrong_network",
    WrongChannel => "wrong_channel",
    BadSignature => "bad_signature",
    NonFinite => "non_finite",
    EmptyBundle => "empty_bundle",
    TooManyElements => "too_many_elements",
    Unsorted => "unsorted",
    InvalidTopic => "invalid_topic",
    FeeTooLow => "fee_too_low",
    ZeroAmount => "zero_amount",
    SelfTransfer => "self_transfer",
    InvalidProposal => "invalid_proposal",
    BadEvidence => "bad_evidence",
    ZeroNonce => "zero_nonce",
    WrongWindow => "wrong_window",
});
