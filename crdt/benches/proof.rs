//! Inference proofs (`chorus_crdt::proof`): the size of the proof of a 1000-inferer bundle and
//! the time `proof::verify` takes for it, with 4 and with 100 validators signing.
//!
//! `cargo bench -p chorus-crdt --bench proof` (sizes are printed before the timings)

#![allow(missing_docs, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::hint::black_box;

use chorus_crdt::checkpoint::{Checkpoint, CommitCertificate, DecidedCheckpoint, ValidatorSet};
use chorus_crdt::proof::{self, InferenceProof, Trust, Variant};
use chorus_protocol::codec;
use chorus_protocol::ids::{Hash32, TopicId};
use chorus_protocol::inference::NetworkInference;
use chorus_protocol::keys::Keypair;
use chorus_protocol::math::synthesis::{SynthesisInput, SynthesisParams, synthesize_bundle};
use chorus_protocol::merkle;
use criterion::{Criterion, criterion_group, criterion_main};

const INFERERS: u32 = 1000;
/// Bundles finalized by the same checkpoint (10 topics): the proof's path has 4 hashes.
const LEAVES: u64 = 10;

fn key(tag: u8, i: u32) -> Keypair {
    let mut seed = [tag; 32];
    seed[..4].copy_from_slice(&i.to_le_bytes());
    Keypair::from_seed(&seed)
}

fn bundle() -> NetworkInference {
    let input = SynthesisInput {
        params: SynthesisParams::default(),
        initial_regret: 0.0,
        previous_network_loss: Some(-1.0),
        inferences: (0..INFERERS)
            .map(|i| (key(1, i).public().to_hex(), 1.0 + f64::from(i) / 1e4))
            .collect(),
        forecasts: BTreeMap::new(),
        regrets: Default::default(),
    };
    NetworkInference::from_synthesis(synthesize_bundle(&input).unwrap()).unwrap()
}

fn proof_for(validators: u32, b: &NetworkInference) -> (InferenceProof, Trust) {
    let network = Hash32([7; 32]);
    let keys: Vec<Keypair> = (0..validators).map(|i| key(2, i)).collect();
    let set = ValidatorSet::from_powers(keys.iter().map(|k| (k.public(), 100))).unwrap();
    let tree = proof::leaves((0..LEAVES).map(|t| (TopicId(t), 5, Variant::Regular, b)));
    let hashes: Vec<Hash32> = tree.iter().map(|l| l.hash).collect();
    let checkpoint = Checkpoint {
        height: 9,
        previous: Hash32([1; 32]),
        windows: vec![],
        ledger_root: Hash32([2; 32]),
        inferences: merkle::root(&hashes),
        validators: set.digest(),
    };
    let signers: Vec<&Keypair> = keys.iter().collect();
    let certificate = CommitCertificate::sign(&network, (9, 0), checkpoint.id(), &signers);
    let proof = InferenceProof {
        format: proof::PROOF_FORMAT.into(),
        network,
        topic_id: 3,
        epoch: 5,
        variant: Variant::Regular,
        combined_value: b.combined_value,
        bundle: hex::encode(proof::bundle_bytes(b)),
        leaf_index: 3,
        leaf_count: LEAVES,
        path: merkle::path(&hashes, 3).unwrap(),
        decided: hex::encode(codec::encode(&DecidedCheckpoint {
            checkpoint,
            certificate,
        })),
        anchor: None,
        validator_changes: vec![],
    };
    let trust = Trust::Genesis {
        network,
        validators: set,
    };
    (proof, trust)
}

fn bench(c: &mut Criterion) {
    let b = bundle();
    let bundle_bytes = proof::bundle_bytes(&b).len();
    for validators in [4, 100] {
        let (p, trust) = proof_for(validators, &b);
        proof::verify(&p, &trust).unwrap();
        let json = serde_json::to_string_pretty(&p).unwrap();
        println!(
            "proof of a {INFERERS}-inferer bundle, {validators} validators: bundle {bundle_bytes} B, \
             proof file {} B ({} B without the bundle)",
            json.len(),
            json.len() - p.bundle.len()
        );
        c.bench_function(
            &format!("verify proof ({INFERERS} inferers, {validators} validators)"),
            |bench| bench.iter(|| proof::verify(black_box(&p), &trust).unwrap()),
        );
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
