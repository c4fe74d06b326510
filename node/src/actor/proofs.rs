//! Inference proofs ([`chorus_crdt::proof`]): the Merkle paths kept with each finalized
//! bundle, and the proof document assembled from the store for
//! `GET /v1/topics/{id}/inference?proof=true`.

use std::collections::BTreeMap;

use chorus_crdt::checkpoint::DecidedCheckpoint;
use chorus_crdt::ledger::Ledger;
use chorus_crdt::proof::{
    self, Anchor, Finalized, InferenceProof, PROOF_FORMAT, ProofValidator, SetChange, Variant,
};
use chorus_crdt::replica::wire::{MAX_PAGE_BYTES, MAX_RESPONSE, Response};
use chorus_crdt::state_proof::{STATE_PROOF_FORMAT, StateProof};
use chorus_protocol::codec;
use chorus_protocol::genesis::Genesis;
use chorus_protocol::ids::{Hash32, TopicId};
use chorus_protocol::merkle;
use redb::Database;

use super::StartError;
use super::handle::QueryError;
use super::views::{LeafPath, StoredInference};
use crate::store::{StoreError, ops};

/// The place of each bundle (both variants) of one height in that height's inference tree.
pub(super) fn leaf_paths(
    bundles: &[Finalized],
    outlier_resistant: &[Finalized],
) -> BTreeMap<(TopicId, u64, Variant), LeafPath> {
    let leaves = proof::checkpoint_leaves(bundles, outlier_resistant);
    let hashes: Vec<Hash32> = leaves.iter().map(|l| l.hash).collect();
    leaves
        .iter()
        .enumerate()
        .filter_map(|(i, l)| {
            let path = merkle::path(&hashes, i)?;
            Some((
                (l.topic, l.epoch, l.variant),
                LeafPath {
                    index: i as u64,
                    count: hashes.len() as u64,
                    path,
                },
            ))
        })
        .collect()
}

/// The genesis validator set as the `validator_sets` table holds it.
pub(super) fn genesis_set_bytes(genesis: &Genesis) -> Result<Vec<u8>, StartError> {
    let ledger = Ledger::from_genesis(genesis)
        .map_err(|e| StartError::Replica(chorus_crdt::replica::ReplicaError::from(e)))?;
    let set = chorus_crdt::replica::validator_set(&ledger)?;
    Ok(serde_json::to_vec(&proof::set_entries(&set)).unwrap_or_default())
}

fn not_found(what: String) -> Result<InferenceProof, QueryError> {
    Err(QueryError::NotFound(what))
}

fn decided_at(
    db: &Database,
    height: u64,
) -> Result<Option<(DecidedCheckpoint, Vec<u8>)>, StoreError> {
    Ok(ops::certificate(db, height)?.and_then(|bytes| {
        codec::decode::<DecidedCheckpoint>(&bytes)
            .ok()
            .map(|d| (d, bytes))
    }))
}

fn set_of(bytes: &[u8]) -> Option<Vec<ProofValidator>> {
    serde_json::from_slice(bytes).ok()
}

/// The proof of `(topic, epoch)`'s finalized bundle, from genesis or from the checkpoint at
/// `trusted`. The outer error is the store's; the inner one is the answer's.
pub(super) fn build(
    db: &Database,
    network: Hash32,
    (topic, epoch, variant): (TopicId, u64, Variant),
    trusted: Option<u64>,
) -> Result<Result<InferenceProof, QueryError>, StoreError> {
    let stored: Option<StoredInference> =
        ops::inference(db, topic.0, epoch)?.and_then(|b| serde_json::from_slice(&b).ok());
    let Some(stored) = stored else {
        return Ok(not_found(format!(
            "no finalized inference of topic {} at epoch {epoch} on this node",
            topic.0
        )));
    };
    let (Some(height), Some((bundle, Some(leaf)))) = (
        stored.height.filter(|_| stored.finalized),
        stored.bundle_of(variant),
    ) else {
        return Ok(not_found(format!(
            "the {} inference of topic {} at epoch {epoch} is not finalized yet",
            variant.name(),
            topic.0
        )));
    };
    let (combined_value, leaf) = (bundle.combined_value, leaf.clone());
    let Some((decided, decided_bytes)) = decided_at(db, height)? else {
        return Ok(not_found(format!("checkpoint {height} is not stored here")));
    };
    let bundle = proof::bundle_bytes(bundle);
    let leaf_hash = proof::inference_leaf(topic, epoch, variant, &bundle);
    if merkle::root_from_path(leaf_hash, leaf.index, leaf.count, &leaf.path)
        != Some(decided.checkpoint.inferences)
    {
        tracing::error!(
            topic = topic.0,
            epoch,
            height,
            "the stored inference does not match its checkpoint's inference root"
        );
        return Ok(Err(QueryError::Unavailable));
    }
    if let Some(h) = trusted.filter(|h| *h > height) {
        return Ok(Err(QueryError::Invalid(format!(
            "the trusted checkpoint ({h}) is newer than the one that finalized this \
             inference ({height}); trust an older one or the genesis"
        ))));
    }
    let (anchor, validator_changes) = match chain_to(db, height, trusted)? {
        Ok(chain) => chain,
        Err(e) => return Ok(Err(e)),
    };
    Ok(Ok(InferenceProof {
        format: PROOF_FORMAT.into(),
        network,
        topic_id: topic.0,
        epoch,
        variant,
        combined_value,
        bundle: hex::encode(&bundle),
        leaf_index: leaf.index,
        leaf_count: leaf.count,
        path: leaf.path,
        decided: hex::encode(decided_bytes),
        anchor,
        validator_changes,
    }))
}

/// A proof's anchor and validator-set changes.
type Chain = (Option<Anchor>, Vec<SetChange>);

/// The chain a proof of the checkpoint at `height` lists: the anchor (the checkpoint at
/// `trusted` with the set it commits to; none from genesis or when `trusted` is `height`) and
/// every validator-set change after it and before `height`. `trusted` must not exceed `height`.
fn chain_to(
    db: &Database,
    height: u64,
    trusted: Option<u64>,
) -> Result<Result<Chain, QueryError>, StoreError> {
    let (anchor, after) = match trusted {
        None => (None, 0),
        Some(h) if h >= height => (None, h),
        Some(h) => {
            let Some((d, _)) = decided_at(db, h)? else {
                return Ok(Err(QueryError::NotFound(format!(
                    "checkpoint {h} is not stored here"
                ))));
            };
            let Some(validators) = ops::validator_set_at(db, h)?.and_then(|(_, b)| set_of(&b))
            else {
                return Ok(Err(QueryError::NotFound(format!(
                    "the validator set of height {h} is not stored"
                ))));
            };
            let anchor = Anchor {
                checkpoint: hex::encode(d.checkpoint.to_bytes()),
                validators,
            };
            (Some(anchor), h)
        }
    };
    let mut changes = vec![];
    if after + 1 < height {
        for (k, bytes) in ops::validator_sets(db, after + 1..=height - 1)? {
            let (Some((_, d)), Some(validators)) = (decided_at(db, k)?, set_of(&bytes)) else {
                return Ok(Err(QueryError::NotFound(format!(
                    "checkpoint {k} is not stored here"
                ))));
            };
            changes.push(SetChange {
                decided: hex::encode(d),
                validators,
            });
        }
    }
    Ok(Ok((anchor, changes)))
}

/// The newest stored ledger snapshot and the [`StateProof`] that vouches for it, the chain
/// listed from `trusted` (or genesis). The outer error is the store's; the inner one is the
/// answer's.
pub(super) fn build_state(
    db: &Database,
    network: Hash32,
    trusted: Option<u64>,
) -> Result<Result<(StateProof, Vec<u8>), QueryError>, StoreError> {
    let Some((height, snapshot)) = ops::latest_ledger(db)? else {
        return Ok(Err(QueryError::NotFound(
            "no ledger snapshot yet (nothing finalized)".into(),
        )));
    };
    if let Some(h) = trusted.filter(|h| *h > height) {
        return Ok(Err(QueryError::Invalid(format!(
            "the trusted checkpoint ({h}) is newer than this node's state ({height})"
        ))));
    }
    let Some((_, decided)) = decided_at(db, height)? else {
        return Ok(Err(QueryError::NotFound(format!(
            "the certificate of height {height} is not stored here"
        ))));
    };
    let (anchor, validator_changes) = match chain_to(db, height, trusted)? {
        Ok(chain) => chain,
        Err(e) => return Ok(Err(e)),
    };
    Ok(Ok((
        StateProof {
            format: STATE_PROOF_FORMAT.into(),
            network,
            decided: hex::encode(decided),
            anchor,
            validator_changes,
        },
        snapshot,
    )))
}

/// The answer to a state request: the proof as JSON beside the snapshot's first `first`
/// bytes (at most [`MAX_PAGE_BYTES`]; the asker fetches the rest by `StatePart`), or why
/// not.
pub(super) fn state_answer(
    built: Result<(StateProof, Vec<u8>), QueryError>,
    first: u32,
) -> Response {
    match built {
        Ok((proof, mut snapshot)) => match serde_json::to_vec(&proof) {
            Ok(proof) => {
                let total = snapshot.len() as u64;
                snapshot.truncate((first as usize).min(MAX_PAGE_BYTES));
                if proof.len() + snapshot.len() + 64 <= MAX_RESPONSE {
                    Response::State {
                        proof,
                        snapshot,
                        total,
                    }
                } else {
                    Response::Refused(format!(
                        "the state proof ({} bytes) does not fit one response \
                         ({MAX_RESPONSE}): catch up instead",
                        proof.len()
                    ))
                }
            }
            Err(e) => Response::Refused(format!("state proof: {e}")),
        },
        Err(e) => Response::Refused(e.to_string()),
    }
}

/// Bytes `offset..` (at most `max`, at most [`MAX_PAGE_BYTES`]) of the stored snapshot of
/// `height` as an answer, or a refusal when it was replaced (the asker starts again).
pub(super) fn state_part(
    db: &Database,
    height: u64,
    offset: u64,
    max: u32,
) -> Result<Response, StoreError> {
    let max = (max as usize).min(MAX_PAGE_BYTES);
    Ok(match ops::ledger_part(db, height, offset, max)? {
        Some(bytes) => Response::StatePart(bytes),
        None => Response::Refused(format!(
            "no snapshot of height {height} from byte {offset} here (replaced by a newer \
             one?): ask for the state again"
        )),
    })
}
