//! Certified state sync: what a node far behind (or new) fetches instead of replaying every
//! window since genesis, and how it checks it without trusting the peer that served it.
//!
//! A peer answers with its newest ledger snapshot (the bytes of [`Ledger::to_snapshot`]) and a
//! [`StateProof`]: the checkpoint of the snapshot's height with its commit certificate, and the
//! validator-set changes from the asker's trust anchor up to it — the same chain an
//! [`InferenceProof`](crate::proof::InferenceProof) carries ([`proof::follow_chain`]).
//! [`verify_state`] checks, with no network access: the certificate carries > 2/3 of the power
//! of the set that signed that height, that set follows from the anchor (the genesis, or a
//! trusted checkpoint) through the listed changes, each certified by the set before it; and the
//! snapshot decodes to a ledger whose root is the checkpoint's `ledger_root`. A snapshot that is
//! one byte off, a chain that leaves a change out or a certificate of too little power is
//! refused, and nothing of it may be kept.
//!
//! What it does not give: the envelopes of the windows finalized before the snapshot (their
//! effects are in the ledger; the windows stay available from peers that keep them), and
//! protection against validators that unbonded long ago signing another history from genesis —
//! as for any light client, a trusted checkpoint newer than the unbonding period closes that.

use chorus_protocol::ids::Hash32;
use serde::{Deserialize, Serialize};

use crate::checkpoint::{DecidedCheckpoint, ValidatorSet};
use crate::ledger::Ledger;
use crate::proof::{self, Anchor, ProofError, SetChange, Trust};

/// The `format` of a state proof document.
pub const STATE_PROOF_FORMAT: &str = "chorus-state-proof/v1";

/// The certificate chain that vouches for a ledger snapshot (which travels beside it).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StateProof {
    /// [`STATE_PROOF_FORMAT`].
    pub format: String,
    /// The network id (hex).
    pub network: Hash32,
    /// The canonical encoding of the checkpoint whose `ledger_root` the snapshot must have,
    /// with its commit certificate ([`DecidedCheckpoint`], hex).
    pub decided: String,
    /// The trusted checkpoint the changes start from (absent when they start from genesis).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anchor: Option<Anchor>,
    /// Every checkpoint after the anchor (and before the snapshot's) whose committed validator
    /// set differs from the one before it, in height order.
    pub validator_changes: Vec<SetChange>,
}

/// A verified snapshot: the state, the checkpoint that certifies it, and the validator-set
/// changes followed (a node keeps them to serve proofs of later checkpoints).
#[derive(Clone, Debug)]
pub struct VerifiedState {
    /// The checkpoint (and certificate) of the snapshot's height.
    pub decided: DecidedCheckpoint,
    /// The decoded state; its root is `decided.checkpoint.ledger_root`.
    pub ledger: Ledger,
    /// Power that signed the certificate (0 when the checkpoint is the trusted one).
    pub signed_power: u64,
    /// Total power of the set that signed it (0 likewise).
    pub total_power: u64,
    /// The listed changes: (height of the checkpoint that committed the set, the set).
    pub changes: Vec<(u64, ValidatorSet)>,
}

impl VerifiedState {
    /// The snapshot's height.
    pub fn height(&self) -> u64 {
        self.decided.height()
    }
}

/// The height of the state `proof` vouches for, once its certificate chain verifies from
/// `trust` (what [`verify_state`] checks besides the snapshot): an asker checks it before it
/// fetches a large snapshot in parts.
///
/// # Errors
/// As [`verify_state`], but never [`ProofError::StateMismatch`].
pub fn certified_height(proof: &StateProof, trust: &Trust) -> Result<u64, ProofError> {
    Ok(verified_chain(proof, trust)?.0.height())
}

/// The proof's checkpoint, with the power that signed it and its set's total, once the chain
/// verifies from `trust`.
fn verified_chain(
    proof: &StateProof,
    trust: &Trust,
) -> Result<(DecidedCheckpoint, u64, u64), ProofError> {
    if proof.format != STATE_PROOF_FORMAT {
        return Err(ProofError::Malformed(format!(
            "format {:?}, expected {STATE_PROOF_FORMAT:?}",
            proof.format
        )));
    }
    let decided: DecidedCheckpoint = proof::decode_wire("decided", &proof.decided)?;
    decided
        .checkpoint
        .check_shape()
        .map_err(|e| ProofError::Malformed(format!("checkpoint: {e}")))?;
    let (signed_power, total_power) = proof::follow_chain(
        proof.network,
        trust,
        proof.anchor.as_ref(),
        &proof.validator_changes,
        &decided.checkpoint,
        &decided.certificate,
    )?;
    Ok((decided, signed_power, total_power))
}

/// Verify `snapshot` and its `proof` from `trust` (see the module docs for what is checked).
pub fn verify_state(
    proof: &StateProof,
    snapshot: &[u8],
    trust: &Trust,
) -> Result<VerifiedState, ProofError> {
    let (decided, signed_power, total_power) = verified_chain(proof, trust)?;
    let ledger = Ledger::from_snapshot(snapshot)
        .map_err(|e| ProofError::Malformed(format!("snapshot: {e}")))?;
    let found = ledger.root();
    if found != decided.checkpoint.ledger_root {
        return Err(ProofError::StateMismatch {
            height: decided.height(),
            found,
            certified: decided.checkpoint.ledger_root,
        });
    }
    let mut changes = vec![];
    for change in &proof.validator_changes {
        let d: DecidedCheckpoint =
            proof::decode_wire("validator_changes.decided", &change.decided)?;
        changes.push((d.height(), proof::set_from_entries(&change.validators)?));
    }
    Ok(VerifiedState {
        decided,
        ledger,
        signed_power,
        total_power,
        changes,
    })
}

#[cfg(test)]
mod tests {
    use chorus_protocol::codec;
    use chorus_protocol::genesis::Genesis;
    use chorus_protocol::keys::Keypair;

    use super::*;
    use crate::checkpoint::{Checkpoint, CommitCertificate};
    use crate::proof::set_entries;
    use crate::replica::sim::sim_genesis;

    fn keys() -> Vec<Keypair> {
        (1..=5u8).map(|i| Keypair::from_seed(&[i; 32])).collect()
    }

    fn decided(network: &Hash32, cp: Checkpoint, signers: &[&Keypair]) -> String {
        let certificate = CommitCertificate::sign(network, (cp.height, 0), cp.id(), signers);
        hex::encode(codec::encode(&DecidedCheckpoint {
            checkpoint: cp,
            certificate,
        }))
    }

    struct Example {
        genesis: Genesis,
        proof: StateProof,
        snapshot: Vec<u8>,
        checkpoints: Vec<Checkpoint>,
        sets: [ValidatorSet; 2],
    }

    /// Four genesis validators sign heights 1 and 2; checkpoint 2 commits to a set with a
    /// fifth validator, which (with three of the first four) signs height 3, the snapshot's.
    fn example() -> Example {
        let k = keys();
        let genesis = sim_genesis("state-example", &k[..4], &[100_000; 4], |_| false);
        let network = genesis.network_id();
        let ledger = Ledger::from_genesis(&genesis).unwrap();
        let s1 = crate::replica::validator_set(&ledger).unwrap();
        let s3 = ValidatorSet::from_powers(
            s1.validators()
                .iter()
                .map(|v| (*v.public_key(), v.power))
                .chain([(k[4].public(), 200_000)]),
        )
        .unwrap();
        let none = proof::root(&[]);
        let cp =
            |height: u64, previous: Hash32, ledger_root: Hash32, validators: Hash32| Checkpoint {
                height,
                previous,
                windows: vec![],
                ledger_root,
                inferences: none,
                validators,
            };
        let other_root = Hash32::of_parts("example/ledger", &[b"1"]);
        let cp1 = cp(1, network, other_root, s1.digest());
        let cp2 = cp(2, cp1.id().0, other_root, s3.digest());
        let cp3 = cp(3, cp2.id().0, ledger.root(), s3.digest());
        let proof = StateProof {
            format: STATE_PROOF_FORMAT.into(),
            network,
            decided: decided(&network, cp3.clone(), &[&k[1], &k[2], &k[3], &k[4]]),
            anchor: None,
            validator_changes: vec![SetChange {
                decided: decided(&network, cp2.clone(), &[&k[0], &k[1], &k[2]]),
                validators: set_entries(&s3),
            }],
        };
        Example {
            snapshot: ledger.to_snapshot().unwrap(),
            genesis,
            proof,
            checkpoints: vec![cp1, cp2, cp3],
            sets: [s1, s3],
        }
    }

    fn from_genesis(e: &Example) -> Trust {
        Trust::Genesis {
            network: e.genesis.network_id(),
            validators: e.sets[0].clone(),
        }
    }

    fn refused(proof: &StateProof, snapshot: &[u8], trust: &Trust) -> ProofError {
        verify_state(proof, snapshot, trust).expect_err("must be refused")
    }

    #[test]
    fn a_certified_snapshot_verifies_from_genesis() {
        let e = example();
        let v = verify_state(&e.proof, &e.snapshot, &from_genesis(&e)).unwrap();
        assert_eq!(v.height(), 3);
        assert_eq!(v.ledger.root(), e.checkpoints[2].ledger_root);
        assert_eq!((v.signed_power, v.total_power), (500_000, 600_000));
        assert_eq!(v.changes.len(), 1);
        assert_eq!(v.changes[0].0, 2);
        assert_eq!(v.changes[0].1.digest(), e.sets[1].digest());
    }

    #[test]
    fn a_snapshot_that_is_not_the_certified_state_is_refused() {
        let e = example();
        let t = from_genesis(&e);
        // Another state that decodes: the genesis ledger with one more token somewhere.
        let mut ledger = Ledger::from_snapshot(&e.snapshot).unwrap();
        ledger.next_height += 1;
        let other = ledger.to_snapshot().unwrap();
        assert!(matches!(
            refused(&e.proof, &other, &t),
            ProofError::StateMismatch { height: 3, .. }
        ));
        // Bytes that do not decode, an empty snapshot, a truncated one.
        for bad in [
            b"not json".to_vec(),
            vec![],
            e.snapshot[..e.snapshot.len() / 2].to_vec(),
        ] {
            assert!(matches!(
                refused(&e.proof, &bad, &t),
                ProofError::Malformed(_)
            ));
        }
    }

    #[test]
    fn a_chain_that_does_not_verify_is_refused() {
        let e = example();
        let t = from_genesis(&e);
        let k = keys();
        // The change left out: the genesis set does not know the fifth signer.
        let mut p = e.proof.clone();
        p.validator_changes.clear();
        assert!(matches!(
            refused(&p, &e.snapshot, &t),
            ProofError::Certificate { height: 3, .. }
        ));
        // A listed set that is not the committed one.
        let mut p = e.proof.clone();
        p.validator_changes[0].validators[0].power += 1;
        assert_eq!(
            refused(&p, &e.snapshot, &t),
            ProofError::WrongValidatorSet(2)
        );
        // The snapshot's checkpoint signed by one validator only (the attacker's own key).
        let mut p = e.proof.clone();
        p.decided = decided(&e.genesis.network_id(), e.checkpoints[2].clone(), &[&k[4]]);
        assert!(matches!(
            refused(&p, &e.snapshot, &t),
            ProofError::Certificate { height: 3, .. }
        ));
        // Another network's genesis.
        let other = sim_genesis("another", &k[..4], &[100_000; 4], |_| false);
        let t2 = Trust::Genesis {
            network: other.network_id(),
            validators: e.sets[0].clone(),
        };
        assert!(matches!(
            refused(&e.proof, &e.snapshot, &t2),
            ProofError::WrongNetwork { .. }
        ));
        // Another format.
        let mut p = e.proof.clone();
        p.format = proof::PROOF_FORMAT.into();
        assert!(matches!(
            refused(&p, &e.snapshot, &t),
            ProofError::Malformed(_)
        ));
    }

    #[test]
    fn a_trusted_checkpoint_anchors_the_state() {
        let e = example();
        let cp2 = &e.checkpoints[1];
        let mut p = e.proof.clone();
        p.validator_changes.clear();
        p.anchor = Some(Anchor {
            checkpoint: hex::encode(cp2.to_bytes()),
            validators: set_entries(&e.sets[1]),
        });
        let t = Trust::Checkpoint {
            height: 2,
            id: cp2.id().0,
        };
        let v = verify_state(&p, &e.snapshot, &t).unwrap();
        assert_eq!((v.height(), v.signed_power), (3, 500_000));
        // A trusted checkpoint this chain does not lead from.
        let wrong = Trust::Checkpoint {
            height: 2,
            id: Hash32([7; 32]),
        };
        assert!(matches!(
            refused(&p, &e.snapshot, &wrong),
            ProofError::Untrusted(_)
        ));
    }

    /// The long-range fork: the genesis validators (keys 0..4) hand over to a new set (key 4
    /// alone) at checkpoint 2 and unbond; later they sign another history from genesis, in
    /// which they never left, up to a state of their choosing. From the genesis that forged
    /// chain verifies — which is why a genesis older than the unbonding period is no anchor
    /// (`chorus_node::state_sync::trust_of`); from a trusted checkpoint of the real chain it
    /// does not.
    #[test]
    fn a_long_range_fork_verifies_from_genesis_but_not_from_a_trusted_checkpoint() {
        let k = keys();
        let genesis = sim_genesis("long-range", &k[..4], &[100_000; 4], |_| false);
        let network = genesis.network_id();
        let ledger = Ledger::from_genesis(&genesis).unwrap();
        let old = crate::replica::validator_set(&ledger).unwrap();
        let new = ValidatorSet::from_powers([(k[4].public(), 100_000)]).unwrap();
        let none = proof::root(&[]);
        let cp = |height: u64, previous: Hash32, root: Hash32, validators: Hash32| Checkpoint {
            height,
            previous,
            windows: vec![],
            ledger_root: root,
            inferences: none,
            validators,
        };
        let elsewhere = Hash32::of_parts("long-range/ledger", &[b"real"]);
        // The real chain: 1 (old set), 2 commits the new set, 3 signed by it.
        let real1 = cp(1, network, elsewhere, old.digest());
        let real2 = cp(2, real1.id().0, elsewhere, new.digest());
        // The fork, all signed by the old keys: it never hands over, and its height 3 carries
        // a state the old validators chose.
        let mut forged_state = ledger.clone();
        forged_state.next_height = 3;
        let f1 = cp(1, network, elsewhere, old.digest());
        let f2 = cp(2, f1.id().0, elsewhere, old.digest());
        let f3 = cp(3, f2.id().0, forged_state.root(), old.digest());
        let old_keys: Vec<&Keypair> = k[..4].iter().collect();
        let forged = StateProof {
            format: STATE_PROOF_FORMAT.into(),
            network,
            decided: decided(&network, f3, &old_keys),
            anchor: None,
            validator_changes: vec![],
        };
        let snapshot = forged_state.to_snapshot().unwrap();
        let from_genesis = Trust::Genesis {
            network,
            validators: old.clone(),
        };
        assert!(
            verify_state(&forged, &snapshot, &from_genesis).is_ok(),
            "the old keys' fork verifies from genesis: only a trusted checkpoint tells"
        );
        // Trusting the real checkpoint 2: the fork must start from it (its anchor commits the
        // new set), and the old keys' signatures are then worthless.
        let trusted = Trust::Checkpoint {
            height: 2,
            id: real2.id().0,
        };
        let mut anchored = forged.clone();
        anchored.anchor = Some(Anchor {
            checkpoint: hex::encode(real2.to_bytes()),
            validators: set_entries(&new),
        });
        assert!(matches!(
            refused(&anchored, &snapshot, &trusted),
            ProofError::Certificate { height: 3, .. }
        ));
        // Or it names its own checkpoint 2 as the anchor: not the trusted one.
        let mut own = forged.clone();
        own.anchor = Some(Anchor {
            checkpoint: hex::encode(cp(2, f1.id().0, elsewhere, old.digest()).to_bytes()),
            validators: set_entries(&old),
        });
        assert!(matches!(
            refused(&own, &snapshot, &trusted),
            ProofError::Untrusted(_)
        ));
    }
}
