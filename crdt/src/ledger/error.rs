//! The ledger's errors: why a height could not be applied ([`LedgerError`]) and why a ledger
//! message was refused ([`TxError`]).

use chorus_protocol::ids::{Amount, TopicId};
use chorus_protocol::topic::TopicError;

use crate::window::WindowKey;

/// Why a height could not be applied.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum LedgerError {
    /// Heights must be applied in order.
    #[error("expected height {expected}, got {got}")]
    WrongHeight {
        /// Next height.
        expected: u64,
        /// Offered height.
        got: u64,
    },
    /// The input names windows that are not due at this height.
    #[error("window {0:?} is not due at this height")]
    UnexpectedWindow(WindowKey),
    /// The genesis is inconsistent.
    #[error("genesis: {0}")]
    Genesis(String),
    /// A snapshot does not decode.
    #[error("ledger snapshot: {0}")]
    Snapshot(String),
}

/// Why a ledger message (or a piece of evidence) was refused.
///
/// Its `Display` is the reason recorded in [`super::LedgerEvent::Refused`], which nodes serve
/// and store: the strings are part of the replicated output and must not change.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum TxError {
    /// The nonce is not above the author's last one.
    #[error("stale nonce {nonce} (last {last})")]
    StaleNonce {
        /// The message's nonce.
        nonce: u64,
        /// The author's last applied nonce.
        last: u64,
    },
    /// The payer has no account.
    #[error("no such account")]
    NoSuchAccount,
    /// The payer's balance is below the amount.
    #[error("insufficient balance: has {has}, needs {needs}")]
    InsufficientBalance {
        /// Liquid balance.
        has: Amount,
        /// Amount to pay.
        needs: Amount,
    },
    /// No topic has this id.
    #[error("unknown topic {0}")]
    UnknownTopic(TopicId),
    /// The topic definition breaks a rule.
    #[error(transparent)]
    InvalidTopic(#[from] TopicError),
    /// The fee offered is below the create-topic fee.
    #[error("fee below the create-topic fee")]
    CreateTopicFeeTooLow,
    /// The topic would start before the ledger's clock.
    #[error("topic start is in the past")]
    TopicStartInPast,
    /// A topic with the derived id exists.
    #[error("topic {0} exists")]
    TopicExists(TopicId),
    /// The author already has the role in the topic.
    #[error("already registered")]
    AlreadyRegistered,
    /// The author does not have the role in the topic.
    #[error("not registered")]
    NotRegistered,
    /// Stake can only be put on a registered reputer.
    #[error("stake target is not a registered reputer")]
    StakeTargetNotReputer,
    /// The reputer has no stake in the topic.
    #[error("no stake on that reputer")]
    NoStake,
    /// The author has not delegated to the reputer.
    #[error("no delegation on that reputer")]
    NoDelegation,
    /// Unstaking more than is staked.
    #[error("only {staked} staked")]
    InsufficientStake {
        /// What is staked.
        staked: Amount,
    },
    /// The author has no bond.
    #[error("not a validator")]
    NotAValidator,
    /// Unbonding more than is bonded.
    #[error("only {bonded} bonded")]
    InsufficientBond {
        /// What is bonded.
        bonded: Amount,
    },
    /// Unbonding would leave no validator.
    #[error("the last bonded stake cannot leave")]
    LastBond,
    /// The bond would be above zero but below the network's `min_validator_bond`.
    #[error(
        "a bond of {bond} is below the minimum {min} (unbond all of it, or keep at least the minimum)"
    )]
    BondBelowMinimum {
        /// The bond it would leave.
        bond: Amount,
        /// `min_validator_bond`.
        min: Amount,
    },
    /// No proposal has this id.
    #[error("unknown proposal")]
    UnknownProposal,
    /// The proposal was tallied.
    #[error("voting has ended")]
    VotingEnded,
    /// `SetOwner` signed by neither the actor (while it has no owner) nor its owner.
    #[error("only the key itself (while it has no owner) or its owner can name its owner")]
    NotOwner,
    /// A worker bundle, reputer bundle or evidence among ledger messages.
    #[error("not a ledger message")]
    NotALedgerMessage,
    /// The evidence was already acted upon.
    #[error("evidence already used")]
    EvidenceAlreadyUsed,
    /// The evidence does not prove an offence (it does not decode, the two messages are not
    /// of one slot by one signer, or a signature does not verify).
    #[error("evidence does not prove an offence")]
    InvalidEvidence,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each variant's reason, byte for byte as the ledger has always recorded it.
    #[test]
    fn every_refusal_reads_as_its_recorded_reason() {
        let topic_error = TopicError::Invalid {
            field: "name",
            reason: "must be 1..=255 bytes".into(),
        };
        let cases: Vec<(TxError, &str)> = vec![
            (
                TxError::StaleNonce { nonce: 3, last: 7 },
                "stale nonce 3 (last 7)",
            ),
            (TxError::NoSuchAccount, "no such account"),
            (
                TxError::InsufficientBalance {
                    has: Amount(5),
                    needs: Amount(12),
                },
                "insufficient balance: has 5, needs 12",
            ),
            (TxError::UnknownTopic(TopicId(42)), "unknown topic 42"),
            (
                TxError::InvalidTopic(topic_error),
                "topic field `name`: must be 1..=255 bytes",
            ),
            (
                TxError::CreateTopicFeeTooLow,
                "fee below the create-topic fee",
            ),
            (TxError::TopicStartInPast, "topic start is in the past"),
            (TxError::TopicExists(TopicId(9)), "topic 9 exists"),
            (TxError::AlreadyRegistered, "already registered"),
            (TxError::NotRegistered, "not registered"),
            (
                TxError::StakeTargetNotReputer,
                "stake target is not a registered reputer",
            ),
            (TxError::NoStake, "no stake on that reputer"),
            (TxError::NoDelegation, "no delegation on that reputer"),
            (
                TxError::InsufficientStake {
                    staked: Amount(500),
                },
                "only 500 staked",
            ),
            (TxError::NotAValidator, "not a validator"),
            (
                TxError::InsufficientBond {
                    bonded: Amount(100),
                },
                "only 100 bonded",
            ),
            (TxError::LastBond, "the last bonded stake cannot leave"),
            (
                TxError::BondBelowMinimum {
                    bond: Amount(5),
                    min: Amount(10),
                },
                "a bond of 5 is below the minimum 10 (unbond all of it, or keep at least the minimum)",
            ),
            (TxError::UnknownProposal, "unknown proposal"),
            (TxError::VotingEnded, "voting has ended"),
            (
                TxError::NotOwner,
                "only the key itself (while it has no owner) or its owner can name its owner",
            ),
            (TxError::NotALedgerMessage, "not a ledger message"),
            (TxError::EvidenceAlreadyUsed, "evidence already used"),
            (
                TxError::InvalidEvidence,
                "evidence does not prove an offence",
            ),
        ];
        for (error, reason) in cases {
            assert_eq!(error.to_string(), reason, "{error:?}");
        }
    }
}
