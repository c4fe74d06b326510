//! Certificates on the wire and their verification.
//!
//! - [`CommitCertificate`]: > 2/3 of the height's voting power precommitted one checkpoint
//!   id in one round. It is what makes a checkpoint final, what catch-up serves, and what an
//!   offline node checks, height by height, against each height's validator set.
//! - [`PolkaCertificate`]: > 2/3 prevoted one id in one round (Malachite publishes it with
//!   re-proposals and, from round 10 on, when locking).
//! - [`RoundCertificate`]: justifies entering a round (`Skip`: > 1/3 of votes of a higher
//!   round; `Precommit`: > 2/3 precommits of the previous round).
//!
//! Signatures are stored sorted strictly by validator key (one canonical encoding, no
//! duplicates). Verification rebuilds each vote (votes carry no extension) and checks its
//! signature under the network id, then sums power with u128 arithmetic.

use arc_malachitebft_core_types as mtypes;
use bincode::{Decode, Encode};
use chorus_protocol::ids::Hash32;
use chorus_protocol::keys::{Keypair, PublicKey, Signature};
use mtypes::{NilOrVal, Round, VoteType};

use super::context::{CheckpointContext, CheckpointHeight, ValidatorAddress, Vote, VoteKind};
use super::error::{CertificateError, ShapeError};
use super::limits::{MAX_HEIGHT, MAX_ROUND, MAX_VALIDATORS};
use super::signing::{SignatureCache, sign_vote, vote_sign_bytes};
use super::validators::ValidatorSet;
use super::value::CheckpointId;

type Ctx = CheckpointContext;

/// One validator's signature in a commit or polka certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode)]
pub struct CommitSig {
    /// The signer.
    pub validator: PublicKey,
    /// Its signature over the vote rebuilt from the certificate.
    pub signature: Signature,
}

/// Proof that a checkpoint id was decided: precommits of > 2/3 of the power for it in one
/// round.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct CommitCertificate {
    /// Height.
    pub height: u64,
    /// The round of the precommits.
    pub round: u32,
    /// The decided checkpoint id.
    pub value: CheckpointId,
    /// The precommit signatures, strictly ascending by validator.
    pub signatures: Vec<CommitSig>,
}

/// Proof of a polka: prevotes of > 2/3 of the power for one id in one round.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct PolkaCertificate {
    /// Height.
    pub height: u64,
    /// Round of the prevotes.
    pub round: u32,
    /// The checkpoint id.
    pub value: CheckpointId,
    /// The prevote signatures, strictly ascending by validator.
    pub signatures: Vec<CommitSig>,
}

/// Which round certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode)]
pub enum RoundCertificateKind {
    /// > 1/3 of the power voted in the certificate's round: skip to it.
    Skip,
    /// > 2/3 of the power precommitted (anything) in the certificate's round: enter the next.
    Precommit,
}

/// One vote inside a round certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode)]
pub struct RoundSig {
    /// Prevote or precommit.
    pub kind: VoteKind,
    /// The id voted for, or nil.
    pub value: Option<CheckpointId>,
    /// The signer.
    pub validator: PublicKey,
    /// The signature.
    pub signature: Signature,
}

/// Justification for entering a round.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct RoundCertificate {
    /// Height.
    pub height: u64,
    /// Round of the votes.
    pub round: u32,
    /// Skip or precommit-any.
    pub kind: RoundCertificateKind,
    /// The votes, strictly ascending by validator.
    pub signatures: Vec<RoundSig>,
}

fn check_header(height: u64, round: u32, count: usize) -> Result<(), ShapeError> {
    if height == 0 || height > MAX_HEIGHT {
        return Err(ShapeError::HeightOutOfRange(height));
    }
    if round > MAX_ROUND {
        return Err(ShapeError::RoundOutOfRange);
    }
    if count > MAX_VALIDATORS {
        return Err(ShapeError::TooManySignatures(count));
    }
    Ok(())
}

fn check_sorted<'a>(keys: impl Iterator<Item = &'a PublicKey>) -> Result<(), ShapeError> {
    let keys: Vec<_> = keys.collect();
    if keys.windows(2).any(|w| w[0] >= w[1]) {
        return Err(ShapeError::SignaturesNotSorted);
    }
    Ok(())
}

fn precommit(height: u64, round: u32, value: NilOrVal<CheckpointId>, key: PublicKey) -> Vote {
    Vote {
        height: CheckpointHeight(height),
        round: Round::new(round),
        kind: VoteType::Precommit,
        value,
        validator: ValidatorAddress(key),
    }
}

/// Sum the power of correctly signed, distinct validators' votes; fail on the first bad one.
fn tally(
    network: &Hash32,
    set: &ValidatorSet,
    votes: impl Iterator<Item = (Vote, Signature)>,
    cache: &mut SignatureCache,
) -> Result<u64, CertificateError> {
    let mut seen = std::collections::BTreeSet::new();
    let mut power: u64 = 0;
    for (vote, signature) in votes {
        let key = vote.validator.0;
        if !seen.insert(key) {
            return Err(CertificateError::DuplicateSigner(key));
        }
        let Some(validator) = set.get(&key) else {
            return Err(CertificateError::UnknownValidator(key));
        };
        if !cache.verify(&key, &signature, &vote_sign_bytes(network, &vote)) {
            return Err(CertificateError::BadSignature(key));
        }
        // The set's total fits in a u64 (≤ u64::MAX / 4), so a sum of distinct members does.
        power = power.saturating_add(validator.power);
    }
    Ok(power)
}

/// Signatures in the canonical order: ascending by validator, one per validator (the first).
fn canonical<T>(mut signatures: Vec<T>, validator: impl Fn(&T) -> PublicKey) -> Vec<T> {
    signatures.sort_by_key(&validator);
    signatures.dedup_by(|a, b| validator(a) == validator(b));
    signatures
}

/// A certificate made of signed votes, checked vote by vote against a validator set.
pub trait VoteCertificate {
    /// The rebuilt votes with their signatures (for evidence detection and tests).
    fn votes(&self) -> impl Iterator<Item = (Vote, Signature)> + '_;

    /// Whether `signed` power of `set` is what the certificate claims (default: > 2/3).
    fn is_enough(&self, set: &ValidatorSet, signed: u64) -> bool {
        set.is_quorum(signed)
    }

    /// Checks of the votes' kinds before any signature is checked (default: none).
    fn check_kinds(&self) -> Result<(), CertificateError> {
        Ok(())
    }

    /// Verify against the validator set of the certificate's height: the kinds, every
    /// signature valid and distinct, and the signers hold the power the certificate claims.
    fn verify_cached(
        &self,
        network: &Hash32,
        set: &ValidatorSet,
        cache: &mut SignatureCache,
    ) -> Result<(), CertificateError> {
        self.check_kinds()?;
        let signed = tally(network, set, self.votes(), cache)?;
        if self.is_enough(set, signed) {
            Ok(())
        } else {
            Err(CertificateError::NotEnoughPower {
                signed,
                total: set.total_power(),
            })
        }
    }
}

impl CommitCertificate {
    /// The certificate `signers` make by precommitting `value` at `(height, round)` on
    /// `network` (signatures sorted by key): what a decided round yields, built offline (tools,
    /// tests, benchmarks).
    pub fn sign(
        network: &Hash32,
        (height, round): (u64, u32),
        value: CheckpointId,
        signers: &[&Keypair],
    ) -> Self {
        let signatures = signers.iter().map(|kp| {
            let vote = precommit(height, round, NilOrVal::Val(value), kp.public());
            (ValidatorAddress(kp.public()), sign_vote(kp, network, &vote))
        });
        CommitCertificate {
            height,
            round,
            value,
            signatures: commit_sigs(signatures),
        }
    }

    /// Structural checks: ranges, at most [`MAX_VALIDATORS`] signatures, strictly sorted.
    pub fn check_shape(&self) -> Result<(), ShapeError> {
        check_header(self.height, self.round, self.signatures.len())?;
        check_sorted(self.signatures.iter().map(|s| &s.validator))
    }

    /// Verify against the validator set of `self.height`: every signature valid and distinct,
    /// and the signers hold > 2/3 of the power.
    pub fn verify(&self, network: &Hash32, set: &ValidatorSet) -> Result<(), CertificateError> {
        self.verify_cached(network, set, &mut SignatureCache::new(0))
    }

    /// From Malachite's certificate (signatures sorted; `None` if the round is nil).
    pub fn from_malachite(c: &mtypes::CommitCertificate<Ctx>) -> Option<Self> {
        let signatures = c.commit_signatures.iter().map(|s| (s.address, s.signature));
        Some(CommitCertificate {
            height: c.height.0,
            round: c.round.as_u32()?,
            value: c.value_id,
            signatures: commit_sigs(signatures),
        })
    }

    /// As Malachite's extended certificate (no extensions), for `SyncValueResponse`.
    pub fn to_malachite_extended(&self) -> mtypes::ExtendedCommitCertificate<Ctx> {
        mtypes::ExtendedCommitCertificate {
            height: CheckpointHeight(self.height),
            round: Round::new(self.round),
            value_id: self.value,
            commit_signatures: self
                .signatures
                .iter()
                .map(|s| {
                    mtypes::ExtendedCommitSignature::new(
                        ValidatorAddress(s.validator),
                        s.signature,
                        None,
                    )
                })
                .collect(),
        }
    }
}

/// Valid distinct precommits of > 2/3 of the power.
impl VoteCertificate for CommitCertificate {
    /// The rebuilt signed precommits.
    fn votes(&self) -> impl Iterator<Item = (Vote, Signature)> + '_ {
        self.signatures.iter().map(|s| {
            (
                precommit(
                    self.height,
                    self.round,
                    NilOrVal::Val(self.value),
                    s.validator,
                ),
                s.signature,
            )
        })
    }
}

/// Commit or polka signatures from Malachite's, in the canonical order.
fn commit_sigs(signatures: impl Iterator<Item = (ValidatorAddress, Signature)>) -> Vec<CommitSig> {
    let signatures = signatures
        .map(|(address, signature)| CommitSig {
            validator: address.0,
            signature,
        })
        .collect();
    canonical(signatures, |s: &CommitSig| s.validator)
}

impl PolkaCertificate {
    /// Structural checks.
    pub fn check_shape(&self) -> Result<(), ShapeError> {
        check_header(self.height, self.round, self.signatures.len())?;
        check_sorted(self.signatures.iter().map(|s| &s.validator))
    }

    /// From Malachite's certificate.
    pub fn from_malachite(c: &mtypes::PolkaCertificate<Ctx>) -> Option<Self> {
        let signatures = c.polka_signatures.iter().map(|s| (s.address, s.signature));
        Some(PolkaCertificate {
            height: c.height.0,
            round: c.round.as_u32()?,
            value: c.value_id,
            signatures: commit_sigs(signatures),
        })
    }

    /// To Malachite's certificate.
    pub fn to_malachite(&self) -> mtypes::PolkaCertificate<Ctx> {
        mtypes::PolkaCertificate {
            height: CheckpointHeight(self.height),
            round: Round::new(self.round),
            value_id: self.value,
            polka_signatures: self
                .signatures
                .iter()
                .map(|s| mtypes::PolkaSignature::new(ValidatorAddress(s.validator), s.signature))
                .collect(),
        }
    }
}

/// Valid distinct prevotes of > 2/3 of the power.
impl VoteCertificate for PolkaCertificate {
    /// The rebuilt prevotes with their signatures.
    fn votes(&self) -> impl Iterator<Item = (Vote, Signature)> + '_ {
        self.signatures.iter().map(|s| {
            let mut v = precommit(
                self.height,
                self.round,
                NilOrVal::Val(self.value),
                s.validator,
            );
            v.kind = VoteType::Prevote;
            (v, s.signature)
        })
    }
}

impl RoundCertificate {
    /// Structural checks.
    pub fn check_shape(&self) -> Result<(), ShapeError> {
        check_header(self.height, self.round, self.signatures.len())?;
        check_sorted(self.signatures.iter().map(|s| &s.validator))
    }

    /// From Malachite's certificate.
    pub fn from_malachite(c: &mtypes::RoundCertificate<Ctx>) -> Option<Self> {
        let signatures = c
            .round_signatures
            .iter()
            .map(|s| RoundSig {
                kind: s.vote_type.into(),
                value: match s.value_id {
                    NilOrVal::Nil => None,
                    NilOrVal::Val(id) => Some(id),
                },
                validator: s.address.0,
                signature: s.signature,
            })
            .collect();
        let signatures = canonical(signatures, |s: &RoundSig| s.validator);
        Some(RoundCertificate {
            height: c.height.0,
            round: c.round.as_u32()?,
            kind: match c.cert_type {
                mtypes::RoundCertificateType::Skip => RoundCertificateKind::Skip,
                mtypes::RoundCertificateType::Precommit => RoundCertificateKind::Precommit,
            },
            signatures,
        })
    }

    /// To Malachite's certificate.
    pub fn to_malachite(&self) -> mtypes::RoundCertificate<Ctx> {
        mtypes::RoundCertificate {
            height: CheckpointHeight(self.height),
            round: Round::new(self.round),
            cert_type: match self.kind {
                RoundCertificateKind::Skip => mtypes::RoundCertificateType::Skip,
                RoundCertificateKind::Precommit => mtypes::RoundCertificateType::Precommit,
            },
            round_signatures: self
                .signatures
                .iter()
                .map(|s| {
                    mtypes::RoundSignature::new(
                        s.kind.into(),
                        s.value.map_or(NilOrVal::Nil, NilOrVal::Val),
                        ValidatorAddress(s.validator),
                        s.signature,
                    )
                })
                .collect(),
        }
    }
}

/// Valid distinct votes of > 1/3 (skip) or precommits of > 2/3 (precommit) of the power.
impl VoteCertificate for RoundCertificate {
    fn is_enough(&self, set: &ValidatorSet, signed: u64) -> bool {
        match self.kind {
            RoundCertificateKind::Skip => set.is_one_third(signed),
            RoundCertificateKind::Precommit => set.is_quorum(signed),
        }
    }

    /// A precommit certificate holds precommits only.
    fn check_kinds(&self) -> Result<(), CertificateError> {
        if self.kind == RoundCertificateKind::Precommit
            && self.signatures.iter().any(|s| s.kind == VoteKind::Prevote)
        {
            return Err(CertificateError::WrongVoteType);
        }
        Ok(())
    }

    /// The rebuilt votes with their signatures.
    fn votes(&self) -> impl Iterator<Item = (Vote, Signature)> + '_ {
        self.signatures.iter().map(|s| {
            let value = s.value.map_or(NilOrVal::Nil, NilOrVal::Val);
            let mut v = precommit(self.height, self.round, value, s.validator);
            v.kind = s.kind.into();
            (v, s.signature)
        })
    }
}

/// Map our verification error to Malachite's, to resume its certificate checks.
pub(crate) fn to_malachite_error(e: CertificateError) -> mtypes::CertificateError<Ctx> {
    match e {
        CertificateError::UnknownValidator(k) => {
            mtypes::CertificateError::UnknownValidator(ValidatorAddress(k))
        }
        CertificateError::DuplicateSigner(k) => {
            mtypes::CertificateError::DuplicateVote(ValidatorAddress(k))
        }
        CertificateError::WrongVoteType => {
            mtypes::CertificateError::InvalidVoteType(ValidatorAddress(PublicKey([0; 32])))
        }
        CertificateError::NotEnoughPower { signed, total } => {
            mtypes::CertificateError::NotEnoughVotingPower {
                signed,
                total,
                expected: total / 3 * 2 + 1,
            }
        }
        CertificateError::BadSignature(_) | CertificateError::Mismatch => {
            mtypes::CertificateError::VerificationError(None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(n: u8) -> Vec<Keypair> {
        (1..=n).map(|i| Keypair::from_seed(&[i; 32])).collect()
    }

    fn cert(net: &Hash32, signers: &[Keypair], value: CheckpointId) -> CommitCertificate {
        let signers: Vec<&Keypair> = signers.iter().collect();
        CommitCertificate::sign(net, (5, 2), value, &signers)
    }

    #[test]
    fn commit_certificate_needs_more_than_two_thirds() {
        let net = Hash32([3; 32]);
        let ks = keys(4);
        let set = ValidatorSet::from_powers(ks.iter().map(|k| (k.public(), 10))).unwrap();
        let id = CheckpointId(Hash32([7; 32]));
        assert!(cert(&net, &ks[..3], id).verify(&net, &set).is_ok());
        assert_eq!(
            cert(&net, &ks[..2], id).verify(&net, &set),
            Err(CertificateError::NotEnoughPower {
                signed: 20,
                total: 40
            })
        );
        // Wrong network: signatures fail.
        assert!(matches!(
            cert(&Hash32([4; 32]), &ks[..3], id).verify(&net, &set),
            Err(CertificateError::BadSignature(_))
        ));
        // Tampered value.
        let mut c = cert(&net, &ks[..3], id);
        c.value = CheckpointId(Hash32([8; 32]));
        assert!(matches!(
            c.verify(&net, &set),
            Err(CertificateError::BadSignature(_))
        ));
        // Duplicate signer.
        let mut c = cert(&net, &ks[..3], id);
        let first = c.signatures[0];
        c.signatures.push(first);
        assert!(matches!(
            c.verify(&net, &set),
            Err(CertificateError::DuplicateSigner(_))
        ));
        assert_eq!(c.check_shape(), Err(ShapeError::SignaturesNotSorted));
        // Unknown signer.
        let outsider = Keypair::from_seed(&[99; 32]);
        let c = cert(&net, &[outsider], id);
        assert!(matches!(
            c.verify(&net, &set),
            Err(CertificateError::UnknownValidator(_))
        ));
    }

    #[test]
    fn malachite_round_trip() {
        let net = Hash32([3; 32]);
        let ks = keys(3);
        let c = cert(&net, &ks, CheckpointId(Hash32([7; 32])));
        let ext = c.to_malachite_extended();
        let back = CommitCertificate::from_malachite(&ext.trim_vote_extensions()).unwrap();
        assert_eq!(back, c);
    }
}
