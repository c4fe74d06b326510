//! Verifiable inference: what a checkpoint commits to about the network inferences it
//! finalizes, the proof a node serves for one of them, and its offline verification.
//!
//! **Commitment.** Each [`Checkpoint`] carries `inferences`, the Merkle root
//! ([`chorus_protocol::merkle`], RFC 6962 with BLAKE3) over one leaf per network inference the
//! checkpoint finalizes, in (topic, epoch, variant) order, and `validators`, the digest of the
//! validator set of the next height. Both are re-derived and checked by every validator before
//! it votes, like the ledger root, so a commit certificate (> 2/3 of the stake) vouches for them.
//!
//! **Leaf.** `leaf_hash(u64_le(19) ‖ "chorus/inference/v1" ‖ u64_le(topic) ‖ u64_le(epoch) ‖
//! variant (1 byte) ‖ bundle)`, where `bundle` is the canonical encoding of the
//! [`NetworkInference`] ([`bundle_bytes`]; its first 8 bytes are the combined value, an IEEE-754
//! f64 little endian).
//!
//! **Proof.** An [`InferenceProof`] holds the bundle, its Merkle path, the checkpoint and its
//! commit certificate, and the validator-set changes from the trust anchor up to the
//! checkpoint. [`verify`] checks, with no network access: the bundle decodes canonically; the
//! path leads from its leaf to the checkpoint's `inferences`; the certificate is for that
//! checkpoint and carries > 2/3 of the power of the set that signed that height; and that set
//! follows from the anchor (the genesis validators, or a trusted checkpoint) through the listed
//! changes, each certified by the set before it. docs/api.md describes every byte.
//!
//! **Trust.** As for any light client: the listed changes are where the committed set changed;
//! a proof that leaves a change out is refused unless > 2/3 of the power of an earlier set
//! signed the forged checkpoint. A trusted checkpoint newer than the validators you no longer
//! trust closes that (long-range) door.

use chorus_protocol::codec::{self, Wire};
use chorus_protocol::ids::{Hash32, TopicId};
use chorus_protocol::inference::NetworkInference;
use chorus_protocol::keys::PublicKey;
use chorus_protocol::merkle;
use serde::{Deserialize, Serialize};

use crate::checkpoint::{
    Checkpoint, CheckpointId, CommitCertificate, DecidedCheckpoint, ValidatorSet,
};

/// Domain of an inference leaf.
pub const LEAF_DOMAIN: &str = "chorus/inference/v1";

/// The `format` of a proof document.
pub const PROOF_FORMAT: &str = "chorus-inference-proof/v1";

/// Largest bundle a proof may carry (a 1000-inferer, 1000-forecaster bundle is far below).
pub const MAX_BUNDLE_BYTES: usize = 64 << 20;

/// Most validator-set changes a proof may list.
pub const MAX_LINKS: usize = 100_000;

/// Which bundle of a (topic, epoch) a leaf holds.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Variant {
    /// The network inference of the topic's mechanism.
    #[default]
    Regular,
    /// The outlier-resistant inference (inferences far from the median dropped).
    OutlierResistant,
}

impl Variant {
    /// The byte the leaf carries.
    pub fn tag(self) -> u8 {
        match self {
            Variant::Regular => 0,
            Variant::OutlierResistant => 1,
        }
    }

    /// Whether this is [`Variant::Regular`] (serde's skip test).
    pub fn is_regular(&self) -> bool {
        *self == Variant::Regular
    }

    /// The name used in URLs and documents.
    pub fn name(self) -> &'static str {
        match self {
            Variant::Regular => "regular",
            Variant::OutlierResistant => "outlier_resistant",
        }
    }
}

impl std::str::FromStr for Variant {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "regular" => Ok(Variant::Regular),
            "outlier_resistant" => Ok(Variant::OutlierResistant),
            other => Err(format!(
                "unknown variant {other:?} (expected regular or outlier_resistant)"
            )),
        }
    }
}

/// The canonical encoding of a bundle (bincode under [`codec::config`], serde field order; the
/// same bytes the ledger root hashes).
pub fn bundle_bytes(bundle: &NetworkInference) -> Vec<u8> {
    bincode::serde::encode_to_vec(bundle, codec::config()).unwrap_or_default()
}

/// A bundle from its canonical encoding: exactly one encoding is accepted.
pub fn bundle_from_bytes(bytes: &[u8]) -> Result<NetworkInference, ProofError> {
    if bytes.len() > MAX_BUNDLE_BYTES {
        return Err(ProofError::Malformed(format!(
            "bundle of {} bytes exceeds {MAX_BUNDLE_BYTES}",
            bytes.len()
        )));
    }
    let config = codec::config().with_limit::<MAX_BUNDLE_BYTES>();
    let (bundle, read): (NetworkInference, usize) =
        bincode::serde::decode_from_slice(bytes, config)
            .map_err(|e| ProofError::Malformed(format!("bundle: {e}")))?;
    if read != bytes.len() || bundle_bytes(&bundle) != bytes {
        return Err(ProofError::Malformed(
            "bundle: not its canonical encoding".into(),
        ));
    }
    Ok(bundle)
}

/// The leaf hash of one finalized bundle.
pub fn inference_leaf(topic: TopicId, epoch: u64, variant: Variant, bundle: &[u8]) -> Hash32 {
    let mut bytes = Vec::with_capacity(8 + LEAF_DOMAIN.len() + 17 + bundle.len());
    bytes.extend_from_slice(&(LEAF_DOMAIN.len() as u64).to_le_bytes());
    bytes.extend_from_slice(LEAF_DOMAIN.as_bytes());
    bytes.extend_from_slice(&topic.0.to_le_bytes());
    bytes.extend_from_slice(&epoch.to_le_bytes());
    bytes.push(variant.tag());
    bytes.extend_from_slice(bundle);
    merkle::leaf_hash(&bytes)
}

/// One leaf of a checkpoint's inference tree.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Leaf {
    /// Topic.
    pub topic: TopicId,
    /// Epoch.
    pub epoch: u64,
    /// Which bundle.
    pub variant: Variant,
    /// [`inference_leaf`].
    pub hash: Hash32,
}

/// The leaves of the given finalized bundles, in tree order (topic, epoch, variant).
pub fn leaves<'a>(
    bundles: impl IntoIterator<Item = (TopicId, u64, Variant, &'a NetworkInference)>,
) -> Vec<Leaf> {
    let mut out: Vec<Leaf> = bundles
        .into_iter()
        .map(|(topic, epoch, variant, b)| Leaf {
            topic,
            epoch,
            variant,
            hash: inference_leaf(topic, epoch, variant, &bundle_bytes(b)),
        })
        .collect();
    out.sort();
    out
}

/// A finalized bundle: (topic, epoch, bundle).
pub type Finalized = (TopicId, u64, NetworkInference);

/// The leaves of a checkpoint that finalized `regular` bundles, of which `outlier_resistant`
/// lists the outlier-resistant bundles that differ from the regular one: two leaves per
/// (topic, epoch), the outlier-resistant leaf holding the regular bundle when nothing was
/// dropped.
pub fn checkpoint_leaves(regular: &[Finalized], outlier_resistant: &[Finalized]) -> Vec<Leaf> {
    leaves(regular.iter().flat_map(|(t, e, b)| {
        let or = outlier_resistant
            .iter()
            .find(|(ot, oe, _)| ot == t && oe == e)
            .map_or(b, |(_, _, ob)| ob);
        [
            (*t, *e, Variant::Regular, b),
            (*t, *e, Variant::OutlierResistant, or),
        ]
    }))
}

/// The root a checkpoint commits to for these leaves (in tree order).
pub fn root(leaves: &[Leaf]) -> Hash32 {
    merkle::root(&leaves.iter().map(|l| l.hash).collect::<Vec<_>>())
}

/// One validator of a set in a proof.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProofValidator {
    /// Public key (hex).
    pub key: PublicKey,
    /// Voting power.
    pub power: u64,
}

/// A validator set as a proof lists it.
pub fn set_entries(set: &ValidatorSet) -> Vec<ProofValidator> {
    set.validators()
        .iter()
        .map(|v| ProofValidator {
            key: *v.public_key(),
            power: v.power,
        })
        .collect()
}

pub(crate) fn set_from_entries(entries: &[ProofValidator]) -> Result<ValidatorSet, ProofError> {
    ValidatorSet::from_powers(entries.iter().map(|v| (v.key, v.power)))
        .map_err(|e| ProofError::Malformed(format!("validator set: {e}")))
}

/// A decided checkpoint after which the committed validator set changed, with that set.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetChange {
    /// The canonical encoding of the checkpoint and its commit certificate
    /// ([`DecidedCheckpoint`], hex).
    pub decided: String,
    /// The set of height `checkpoint.height + 1` (its digest is `checkpoint.validators`).
    pub validators: Vec<ProofValidator>,
}

/// The trusted checkpoint a proof's validator changes start from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Anchor {
    /// The checkpoint's canonical encoding (hex).
    pub checkpoint: String,
    /// The set of height `checkpoint.height + 1` (its digest is `checkpoint.validators`).
    pub validators: Vec<ProofValidator>,
}

/// Proof that a bundle is the finalized network inference of (topic, epoch).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InferenceProof {
    /// [`PROOF_FORMAT`].
    pub format: String,
    /// The network id (hex): what the validators' signatures are bound to.
    pub network: Hash32,
    /// Topic.
    pub topic_id: u64,
    /// Epoch.
    pub epoch: u64,
    /// Which bundle.
    pub variant: Variant,
    /// The combined value, for reading; the verifier checks it equals the bundle's.
    pub combined_value: f64,
    /// The bundle's canonical encoding (hex).
    pub bundle: String,
    /// The leaf's index in the checkpoint's inference tree.
    pub leaf_index: u64,
    /// The number of leaves of that tree.
    pub leaf_count: u64,
    /// Sibling hashes from the leaf up (hex).
    pub path: Vec<Hash32>,
    /// The canonical encoding of the checkpoint that finalized the bundle and its commit
    /// certificate ([`DecidedCheckpoint`], hex).
    pub decided: String,
    /// The trusted checkpoint the changes start from (absent when they start from genesis).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anchor: Option<Anchor>,
    /// Every checkpoint after the anchor (and before the proved one) whose committed validator
    /// set differs from the one before it, in height order.
    pub validator_changes: Vec<SetChange>,
}

/// What a verifier starts from.
#[derive(Clone, Debug)]
pub enum Trust {
    /// The genesis: its network id and validator set (the set of heights 1 and 2).
    Genesis {
        /// Network id.
        network: Hash32,
        /// Genesis validator set.
        validators: ValidatorSet,
    },
    /// A checkpoint the verifier trusts by id.
    Checkpoint {
        /// Its height.
        height: u64,
        /// Its id.
        id: Hash32,
    },
}

/// A verified proof's content.
#[derive(Clone, Debug, PartialEq)]
pub struct Verified {
    /// Topic.
    pub topic: TopicId,
    /// Epoch.
    pub epoch: u64,
    /// Which bundle.
    pub variant: Variant,
    /// The bundle.
    pub bundle: NetworkInference,
    /// The checkpoint that finalized it.
    pub height: u64,
    /// Its id.
    pub checkpoint: CheckpointId,
    /// Power that signed it, and the set's total.
    pub signed_power: u64,
    /// Total power of the set that signed it.
    pub total_power: u64,
    /// Validator-set changes followed.
    pub changes: usize,
}

/// Why a proof does not verify.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ProofError {
    /// The document or one of its encodings is malformed.
    #[error("malformed proof: {0}")]
    Malformed(String),
    /// The proof is for another network than the trusted one.
    #[error("the proof is for network {found}, the genesis is {expected}")]
    WrongNetwork {
        /// The genesis's network id.
        expected: Hash32,
        /// The proof's.
        found: Hash32,
    },
    /// The bundle is not the one the checkpoint commits to.
    #[error("the bundle is not in the checkpoint's inference tree: {0}")]
    NotCommitted(String),
    /// A certificate does not certify its checkpoint with the expected validator set.
    #[error("the certificate of checkpoint {height} does not verify: {reason}")]
    Certificate {
        /// Height of the checkpoint.
        height: u64,
        /// Why.
        reason: String,
    },
    /// A listed validator set is not the one its checkpoint commits to.
    #[error("the validator set listed after checkpoint {0} is not the one it commits to")]
    WrongValidatorSet(u64),
    /// The trusted checkpoint does not match the proof.
    #[error("trusted checkpoint: {0}")]
    Untrusted(String),
    /// A ledger snapshot whose root is not the one its checkpoint certifies.
    #[error(
        "the snapshot's root {} is not the root {} checkpoint {height} certifies",
        found.to_hex(),
        certified.to_hex()
    )]
    StateMismatch {
        /// Height of the checkpoint.
        height: u64,
        /// The snapshot's root.
        found: Hash32,
        /// The certified root.
        certified: Hash32,
    },
}

fn unhex(field: &str, s: &str) -> Result<Vec<u8>, ProofError> {
    hex::decode(s).map_err(|e| ProofError::Malformed(format!("{field}: not hex: {e}")))
}

pub(crate) fn decode_wire<T: Wire>(field: &str, s: &str) -> Result<T, ProofError> {
    codec::decode::<T>(&unhex(field, s)?)
        .map_err(|e| ProofError::Malformed(format!("{field}: {e}")))
}

/// Check `certificate` certifies `checkpoint` under `set`; returns the signed power.
fn check_certified(
    network: &Hash32,
    checkpoint: &Checkpoint,
    certificate: &CommitCertificate,
    set: &ValidatorSet,
) -> Result<u64, ProofError> {
    let fail = |reason: String| ProofError::Certificate {
        height: checkpoint.height,
        reason,
    };
    if certificate.height != checkpoint.height || certificate.value != checkpoint.id() {
        return Err(fail(format!(
            "it certifies checkpoint {} at height {}, not {} at height {}",
            certificate.value.0,
            certificate.height,
            checkpoint.id().0,
            checkpoint.height
        )));
    }
    certificate.check_shape().map_err(|e| fail(e.to_string()))?;
    certificate
        .verify(network, set)
        .map_err(|e| fail(e.to_string()))?;
    Ok(certificate
        .signatures
        .iter()
        .map(|s| set.power_of(&s.validator))
        .sum())
}

/// Verify a proof from `trust` (see the module docs for what is checked).
pub fn verify(proof: &InferenceProof, trust: &Trust) -> Result<Verified, ProofError> {
    if proof.format != PROOF_FORMAT {
        return Err(ProofError::Malformed(format!(
            "format {:?}, expected {PROOF_FORMAT:?}",
            proof.format
        )));
    }
    let network = proof.network;
    let DecidedCheckpoint {
        checkpoint,
        certificate,
    } = decode_wire("decided", &proof.decided)?;
    checkpoint
        .check_shape()
        .map_err(|e| ProofError::Malformed(format!("checkpoint: {e}")))?;

    // The bundle and its place in the checkpoint's tree.
    let bytes = unhex("bundle", &proof.bundle)?;
    let bundle = bundle_from_bytes(&bytes)?;
    if bundle.combined_value.to_bits() != proof.combined_value.to_bits() {
        return Err(ProofError::Malformed(format!(
            "combined_value {} is not the bundle's {}",
            proof.combined_value, bundle.combined_value
        )));
    }
    let topic = TopicId(proof.topic_id);
    let leaf = inference_leaf(topic, proof.epoch, proof.variant, &bytes);
    match merkle::root_from_path(leaf, proof.leaf_index, proof.leaf_count, &proof.path) {
        Some(r) if r == checkpoint.inferences => {}
        Some(_) => {
            return Err(ProofError::NotCommitted(
                "the path leads to another root".into(),
            ));
        }
        None => {
            return Err(ProofError::NotCommitted(format!(
                "a path of {} hashes does not fit leaf {} of {}",
                proof.path.len(),
                proof.leaf_index,
                proof.leaf_count
            )));
        }
    }

    let (signed_power, total_power) = follow_chain(
        network,
        trust,
        proof.anchor.as_ref(),
        &proof.validator_changes,
        &checkpoint,
        &certificate,
    )?;
    Ok(Verified {
        topic,
        epoch: proof.epoch,
        variant: proof.variant,
        bundle,
        height: checkpoint.height,
        checkpoint: checkpoint.id(),
        signed_power,
        total_power,
        changes: proof.validator_changes.len(),
    })
}

/// Check that `certificate` certifies `checkpoint` with > 2/3 of the power of the set that
/// signed its height, that set following from `trust` through `anchor` (needed when trusting
/// a checkpoint older than `checkpoint`) and the listed validator-set `changes`, each
/// certified by the set before it. Returns the signed and the total power (both 0 when
/// `checkpoint` is the trusted one itself).
pub fn follow_chain(
    network: Hash32,
    trust: &Trust,
    anchor: Option<&Anchor>,
    changes: &[SetChange],
    checkpoint: &Checkpoint,
    certificate: &CommitCertificate,
) -> Result<(u64, u64), ProofError> {
    if changes.len() > MAX_LINKS {
        return Err(ProofError::Malformed("too many validator changes".into()));
    }
    let (mut set, after) = match trust {
        Trust::Genesis {
            network: expected,
            validators,
        } => {
            if *expected != network {
                return Err(ProofError::WrongNetwork {
                    expected: *expected,
                    found: network,
                });
            }
            (validators.clone(), 0)
        }
        Trust::Checkpoint { height, id } => {
            if *height == checkpoint.height {
                if checkpoint.id().0 != *id {
                    return Err(ProofError::Untrusted(format!(
                        "the proof's checkpoint {} at height {height} is not the trusted {id}",
                        checkpoint.id().0
                    )));
                }
                return Ok((0, 0));
            }
            if *height > checkpoint.height {
                return Err(ProofError::Untrusted(format!(
                    "the trusted checkpoint ({height}) is newer than the proof's ({}); use \
                     --genesis or an older trusted checkpoint",
                    checkpoint.height
                )));
            }
            let anchor = anchor.ok_or_else(|| {
                ProofError::Untrusted(format!(
                    "the proof carries no anchor; fetch it with &trusted={height}"
                ))
            })?;
            let cp: Checkpoint = decode_wire("anchor.checkpoint", &anchor.checkpoint)?;
            if cp.height != *height || cp.id().0 != *id {
                return Err(ProofError::Untrusted(format!(
                    "the anchor is checkpoint {} at height {}, not the trusted {id} at {height}",
                    cp.id().0,
                    cp.height
                )));
            }
            let s = set_from_entries(&anchor.validators)?;
            if s.digest() != cp.validators {
                return Err(ProofError::WrongValidatorSet(cp.height));
            }
            (s, cp.height)
        }
    };
    let mut last = after;
    for change in changes {
        let DecidedCheckpoint {
            checkpoint: cp,
            certificate: cert,
        } = decode_wire("validator_changes.decided", &change.decided)?;
        if cp.height <= last || cp.height >= checkpoint.height {
            return Err(ProofError::Malformed(format!(
                "validator change at height {} is out of order (after {last}, before {})",
                cp.height, checkpoint.height
            )));
        }
        check_certified(&network, &cp, &cert, &set)?;
        let next = set_from_entries(&change.validators)?;
        if next.digest() != cp.validators {
            return Err(ProofError::WrongValidatorSet(cp.height));
        }
        set = next;
        last = cp.height;
    }
    let signed_power = check_certified(&network, checkpoint, certificate, &set)?;
    Ok((signed_power, set.total_power()))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use arc_malachitebft_core_types::{NilOrVal, Round, VoteType};
    use chorus_protocol::genesis::Genesis;
    use chorus_protocol::keys::Keypair;
    use chorus_protocol::math::synthesis::{SynthesisInput, SynthesisParams, synthesize_bundle};

    use super::*;
    use crate::checkpoint::context::{CheckpointHeight, ValidatorAddress, Vote};
    use crate::ledger::Ledger;
    use crate::replica::sim::sim_genesis;

    /// The shipped example: `examples/proof/` (regenerate with `CHORUS_BLESS=1`).
    const EXAMPLE_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/proof");

    fn keys() -> Vec<Keypair> {
        (1..=5u8).map(|i| Keypair::from_seed(&[i; 32])).collect()
    }

    fn bundle(shift: f64) -> NetworkInference {
        let k = keys();
        let input = SynthesisInput {
            params: SynthesisParams::default(),
            initial_regret: 0.0,
            previous_network_loss: Some(-1.0),
            inferences: k
                .iter()
                .enumerate()
                .map(|(i, k)| (k.public().to_hex(), shift + i as f64 / 8.0))
                .collect(),
            forecasts: BTreeMap::new(),
            regrets: Default::default(),
        };
        NetworkInference::from_synthesis(synthesize_bundle(&input).unwrap()).unwrap()
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
        proof: InferenceProof,
        /// Checkpoints 1..=3.
        checkpoints: Vec<Checkpoint>,
        sets: [ValidatorSet; 2],
    }

    /// Four genesis validators sign heights 1 and 2; checkpoint 2 commits to a set with a fifth
    /// validator, which (with three of the first four) signs height 3; height 3 finalizes three
    /// bundles, and the proof is for (topic 1, epoch 8).
    fn example() -> Example {
        let k = keys();
        let genesis = sim_genesis("proof-example", &k[..4], &[100_000; 4], |_| false);
        let network = genesis.network_id();
        let s1 = crate::replica::validator_set(&Ledger::from_genesis(&genesis).unwrap()).unwrap();
        let s3 = ValidatorSet::from_powers(
            s1.validators()
                .iter()
                .map(|v| (*v.public_key(), v.power))
                .chain([(k[4].public(), 200_000)]),
        )
        .unwrap();
        let bundles = [
            (1, 7, bundle(1.0)),
            (1, 8, bundle(2.0)),
            (2, 7, bundle(3.0)),
        ];
        let tree = leaves(
            bundles
                .iter()
                .map(|(t, e, b)| (TopicId(*t), *e, Variant::Regular, b)),
        );
        let cp =
            |height: u64, previous: Hash32, inferences: Hash32, validators: Hash32| Checkpoint {
                height,
                previous,
                windows: vec![],
                ledger_root: Hash32::of_parts("example/ledger", &[&height.to_le_bytes()]),
                inferences,
                validators,
            };
        let none = root(&[]);
        let cp1 = cp(1, network, none, s1.digest());
        let cp2 = cp(2, cp1.id().0, none, s3.digest());
        let cp3 = cp(3, cp2.id().0, root(&tree), s3.digest());
        let hashes: Vec<Hash32> = tree.iter().map(|l| l.hash).collect();
        let index = tree
            .iter()
            .position(|l| l.topic == TopicId(1) && l.epoch == 8)
            .unwrap();
        let proved = &bundles[1].2;
        let proof = InferenceProof {
            format: PROOF_FORMAT.into(),
            network,
            topic_id: 1,
            epoch: 8,
            variant: Variant::Regular,
            combined_value: proved.combined_value,
            bundle: hex::encode(bundle_bytes(proved)),
            leaf_index: index as u64,
            leaf_count: hashes.len() as u64,
            path: merkle::path(&hashes, index).unwrap(),
            decided: decided(&network, cp3.clone(), &[&k[1], &k[2], &k[3], &k[4]]),
            anchor: None,
            validator_changes: vec![SetChange {
                decided: decided(&network, cp2.clone(), &[&k[0], &k[1], &k[2]]),
                validators: set_entries(&s3),
            }],
        };
        Example {
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

    fn read(name: &str) -> String {
        std::fs::read_to_string(format!("{EXAMPLE_DIR}/{name}")).unwrap_or_default()
    }

    /// The shipped example is exactly what this code produces (so the documented format is the
    /// implemented one) and verifies from its genesis.
    #[test]
    fn the_shipped_example_is_current_and_verifies() {
        let e = example();
        let proof = serde_json::to_string_pretty(&e.proof).unwrap() + "\n";
        let genesis = e.genesis.to_toml_string().unwrap();
        if std::env::var_os("CHORUS_BLESS").is_some() {
            std::fs::create_dir_all(EXAMPLE_DIR).unwrap();
            std::fs::write(format!("{EXAMPLE_DIR}/proof.json"), &proof).unwrap();
            std::fs::write(format!("{EXAMPLE_DIR}/genesis.toml"), &genesis).unwrap();
        }
        assert_eq!(
            read("proof.json"),
            proof,
            "examples/proof/proof.json is stale"
        );
        assert_eq!(
            read("genesis.toml"),
            genesis,
            "examples/proof/genesis.toml is stale"
        );
        let shipped: InferenceProof = serde_json::from_str(&read("proof.json")).unwrap();
        let g = Genesis::from_toml_str(&read("genesis.toml")).unwrap();
        let validators = crate::replica::validator_set(&Ledger::from_genesis(&g).unwrap()).unwrap();
        let v = verify(
            &shipped,
            &Trust::Genesis {
                network: g.network_id(),
                validators,
            },
        )
        .unwrap();
        assert_eq!(
            (v.topic, v.epoch, v.height, v.changes),
            (TopicId(1), 8, 3, 1)
        );
        assert_eq!(v.bundle, bundle(2.0));
        // Three of the four genesis validators (100 000 each) and the new one (200 000).
        assert_eq!((v.signed_power, v.total_power), (500_000, 600_000));
        assert_eq!(v.checkpoint, e.checkpoints[2].id());
    }

    fn refused(proof: &InferenceProof, trust: &Trust) -> ProofError {
        verify(proof, trust).expect_err("a tampered proof must be refused")
    }

    #[test]
    fn a_tampered_value_is_refused() {
        let e = example();
        let t = from_genesis(&e);
        // Another value, re-encoded canonically: not the committed leaf.
        let mut b = bundle(2.0);
        b.combined_value += 1e-9;
        let mut p = e.proof.clone();
        p.bundle = hex::encode(bundle_bytes(&b));
        p.combined_value = b.combined_value;
        assert!(matches!(refused(&p, &t), ProofError::NotCommitted(_)));
        // The readable value disagreeing with the bundle.
        let mut p = e.proof.clone();
        p.combined_value += 1.0;
        assert!(matches!(refused(&p, &t), ProofError::Malformed(_)));
        // The same bundle claimed for another epoch, topic or variant.
        for f in [
            |p: &mut InferenceProof| p.epoch = 7,
            |p: &mut InferenceProof| p.topic_id = 2,
            |p: &mut InferenceProof| p.variant = Variant::OutlierResistant,
        ] {
            let mut p = e.proof.clone();
            f(&mut p);
            assert!(matches!(refused(&p, &t), ProofError::NotCommitted(_)));
        }
        // Bytes after the bundle (not its canonical encoding).
        let mut p = e.proof.clone();
        p.bundle.push_str("00");
        assert!(matches!(refused(&p, &t), ProofError::Malformed(_)));
    }

    #[test]
    fn a_tampered_path_is_refused() {
        let e = example();
        let t = from_genesis(&e);
        let mut p = e.proof.clone();
        p.path[0].0[5] ^= 1;
        assert!(matches!(refused(&p, &t), ProofError::NotCommitted(_)));
        let mut p = e.proof.clone();
        p.leaf_index = (p.leaf_index + 1) % p.leaf_count;
        assert!(matches!(refused(&p, &t), ProofError::NotCommitted(_)));
        let mut p = e.proof.clone();
        p.path.pop();
        assert!(matches!(refused(&p, &t), ProofError::NotCommitted(_)));
        let mut p = e.proof.clone();
        p.leaf_count = 1;
        assert!(matches!(refused(&p, &t), ProofError::NotCommitted(_)));
    }

    #[test]
    fn a_tampered_signature_or_checkpoint_is_refused() {
        let e = example();
        let t = from_genesis(&e);
        let k = keys();
        let network = e.genesis.network_id();
        // One signature flipped: the certificate no longer verifies.
        let mut d: DecidedCheckpoint =
            codec::decode(&hex::decode(&e.proof.decided).unwrap()).unwrap();
        d.certificate.signatures[0].signature.0[10] ^= 1;
        let mut p = e.proof.clone();
        p.decided = hex::encode(codec::encode(&d));
        assert!(matches!(
            refused(&p, &t),
            ProofError::Certificate { height: 3, .. }
        ));
        // Too little power: two of five.
        let mut p = e.proof.clone();
        p.decided = decided(&network, e.checkpoints[2].clone(), &[&k[1], &k[2]]);
        assert!(matches!(
            refused(&p, &t),
            ProofError::Certificate { height: 3, .. }
        ));
        // A checkpoint with another inference root, correctly signed by a minority only.
        let mut cp = e.checkpoints[2].clone();
        cp.inferences = Hash32([7; 32]);
        let mut p = e.proof.clone();
        p.decided = decided(&network, cp, &[&k[4]]);
        assert!(matches!(refused(&p, &t), ProofError::NotCommitted(_)));
        // A certificate of another checkpoint.
        let other = codec::decode::<DecidedCheckpoint>(
            &hex::decode(&e.proof.validator_changes[0].decided).unwrap(),
        )
        .unwrap();
        d = codec::decode(&hex::decode(&e.proof.decided).unwrap()).unwrap();
        d.certificate = other.certificate;
        let mut p = e.proof.clone();
        p.decided = hex::encode(codec::encode(&d));
        assert!(matches!(
            refused(&p, &t),
            ProofError::Certificate { height: 3, .. }
        ));
    }

    #[test]
    fn a_tampered_validator_set_is_refused() {
        let e = example();
        let t = from_genesis(&e);
        let k = keys();
        // A listed set that is not the committed one.
        let mut p = e.proof.clone();
        p.validator_changes[0].validators[0].power += 1;
        assert_eq!(refused(&p, &t), ProofError::WrongValidatorSet(2));
        // The change left out: the genesis set does not know the fifth signer.
        let mut p = e.proof.clone();
        p.validator_changes.clear();
        assert!(matches!(
            refused(&p, &t),
            ProofError::Certificate { height: 3, .. }
        ));
        // A made-up set of the attacker's own keys, with a change signed by them only.
        let network = e.genesis.network_id();
        let mut p = e.proof.clone();
        let mut cp2 = e.checkpoints[1].clone();
        let fake = ValidatorSet::from_powers([(k[4].public(), 1)]).unwrap();
        cp2.validators = fake.digest();
        p.validator_changes[0] = SetChange {
            decided: decided(&network, cp2, &[&k[4]]),
            validators: set_entries(&fake),
        };
        assert!(matches!(
            refused(&p, &t),
            ProofError::Certificate { height: 2, .. }
        ));
        // Another genesis (another network).
        let other = sim_genesis("another", &k[..4], &[100_000; 4], |_| false);
        let t2 = Trust::Genesis {
            network: other.network_id(),
            validators: e.sets[0].clone(),
        };
        assert!(matches!(
            refused(&e.proof, &t2),
            ProofError::WrongNetwork { .. }
        ));
        // Changes out of order or at the proved height.
        let mut p = e.proof.clone();
        p.validator_changes.push(p.validator_changes[0].clone());
        assert!(matches!(refused(&p, &t), ProofError::Malformed(_)));
    }

    #[test]
    fn a_trusted_checkpoint_anchors_the_proof() {
        let e = example();
        let (cp2, cp3) = (&e.checkpoints[1], &e.checkpoints[2]);
        // The proved checkpoint itself.
        let t = Trust::Checkpoint {
            height: 3,
            id: cp3.id().0,
        };
        assert_eq!(verify(&e.proof, &t).unwrap().height, 3);
        let wrong = Trust::Checkpoint {
            height: 3,
            id: Hash32([1; 32]),
        };
        assert!(matches!(
            refused(&e.proof, &wrong),
            ProofError::Untrusted(_)
        ));
        // Checkpoint 2 as the anchor: the set it commits to signs height 3.
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
        let v = verify(&p, &t).unwrap();
        assert_eq!((v.signed_power, v.total_power), (500_000, 600_000));
        // An anchor that is not the trusted checkpoint, or lists another set.
        let other = Trust::Checkpoint {
            height: 2,
            id: Hash32([2; 32]),
        };
        assert!(matches!(refused(&p, &other), ProofError::Untrusted(_)));
        let mut q = p.clone();
        q.anchor.as_mut().unwrap().validators = set_entries(&e.sets[0]);
        assert_eq!(refused(&q, &t), ProofError::WrongValidatorSet(2));
        // No anchor, or a trusted checkpoint newer than the proof.
        let mut q = p.clone();
        q.anchor = None;
        assert!(matches!(refused(&q, &t), ProofError::Untrusted(_)));
        let newer = Trust::Checkpoint {
            height: 4,
            id: cp3.id().0,
        };
        assert!(matches!(refused(&p, &newer), ProofError::Untrusted(_)));
    }

    /// The byte layouts docs/api.md gives a verifier in another language are the implemented
    /// ones: a precommit's sign bytes, a leaf, the validator-set digest, the bundle's first bytes.
    #[test]
    fn the_documented_byte_layouts_are_the_implemented_ones() {
        let e = example();
        let k = keys();
        let network = e.genesis.network_id();
        let cp = &e.checkpoints[2];
        let vote = Vote {
            height: CheckpointHeight(3),
            round: Round::new(300),
            kind: VoteType::Precommit,
            value: NilOrVal::Val(cp.id()),
            validator: ValidatorAddress(k[0].public()),
        };
        let mut doc = 25u64.to_le_bytes().to_vec();
        doc.extend_from_slice(b"chorus/checkpoint/vote/v1");
        doc.extend_from_slice(&network.0);
        // varint(3), Some, varint(300) = 251 + u16 LE, precommit, Some, id, key.
        doc.extend_from_slice(&[3, 1, 251, 44, 1, 1, 1]);
        doc.extend_from_slice(&cp.id().0.0);
        doc.extend_from_slice(k[0].public().as_bytes());
        assert_eq!(
            crate::checkpoint::signing::vote_sign_bytes(&network, &vote),
            doc
        );

        let b = bundle_bytes(&bundle(2.0));
        let mut leaf = vec![0x00];
        leaf.extend_from_slice(&19u64.to_le_bytes());
        leaf.extend_from_slice(b"chorus/inference/v1");
        leaf.extend_from_slice(&1u64.to_le_bytes());
        leaf.extend_from_slice(&8u64.to_le_bytes());
        leaf.push(0);
        leaf.extend_from_slice(&b);
        assert_eq!(
            inference_leaf(TopicId(1), 8, Variant::Regular, &b),
            Hash32(*blake3::hash(&leaf).as_bytes())
        );
        assert_eq!(&b[..8], &bundle(2.0).combined_value.to_le_bytes());

        let mut set = b"chorus/checkpoint/validator-set/v1".to_vec();
        for v in e.sets[1].validators() {
            set.extend_from_slice(v.public_key().as_bytes());
            set.extend_from_slice(&v.power.to_le_bytes());
        }
        assert_eq!(e.sets[1].digest(), Hash32(*blake3::hash(&set).as_bytes()));
        // Power descending, then key: the fifth validator (200 000) comes first.
        assert_eq!(*e.sets[1].validators()[0].public_key(), k[4].public());
    }

    #[test]
    fn malformed_documents_are_refused_as_malformed() {
        let e = example();
        let t = from_genesis(&e);
        for f in [
            |p: &mut InferenceProof| p.format = "v0".into(),
            |p: &mut InferenceProof| p.bundle = "zz".into(),
            |p: &mut InferenceProof| p.decided = "00".into(),
            |p: &mut InferenceProof| p.decided.push_str("00"),
            |p: &mut InferenceProof| p.validator_changes[0].decided.truncate(10),
            |p: &mut InferenceProof| p.validator_changes[0].validators.clear(),
        ] {
            let mut p = e.proof.clone();
            f(&mut p);
            assert!(matches!(refused(&p, &t), ProofError::Malformed(_)), "{p:?}");
        }
    }
}
