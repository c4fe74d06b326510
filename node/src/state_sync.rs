//! Certified state sync for a node's store: instead of replaying every window since genesis
//! (or since it went away), a node asks a peer for its newest ledger snapshot and the
//! certificate chain that vouches for it (`Request::State`), checks both with
//! [`chorus_crdt::state_proof::verify_state`] from the genesis or from its trusted checkpoint,
//! and writes the snapshot, its certificate and the validator-set changes into its store in one
//! transaction. The node then starts from that height the way it restarts after a stop (the
//! restore path checks the snapshot's root against the certificate again) and follows the
//! network live by catch-up.
//!
//! The peer is a stranger: nothing it sends is kept unless it verifies, and a store already at
//! that height or later is left as it is. Entries of windows finalized before the snapshot are
//! not fetched: their effects are in the ledger.

use std::path::Path;
use std::time::Duration;

use chorus_crdt::checkpoint::CheckpointId;
use chorus_crdt::ledger::Ledger;
use chorus_crdt::proof::{ProofError, Trust, set_entries};
use chorus_crdt::replica::wire::{MAX_PAGE_BYTES, Request, Response};
use chorus_crdt::state_proof::{StateProof, VerifiedState, certified_height, verify_state};
use chorus_protocol::codec;
use chorus_protocol::genesis::Genesis;
use chorus_protocol::ids::Hash32;
use chorus_protocol::keys::Keypair;
use libp2p::{Multiaddr, PeerId};

use crate::join::{JoinError, ask, response_name};
use crate::store::{StoreError, ops};

/// How often a peer that answers "busy" is asked again.
const BUSY_RETRIES: usize = 8;

/// How often a fetch in parts starts again when the peer replaced its snapshot meanwhile.
const STATE_RESTARTS: usize = 3;

/// The largest ledger snapshot fetched (a peer announcing more is refused before any part is
/// asked for); 10 topics × 100 workers made a 5.9 MB snapshot (BENCHMARKS.md).
pub const MAX_STATE_BYTES: usize = 1 << 30;

/// Why no state was installed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SyncError {
    /// The peer could not be asked, refused or answered something else.
    #[error(transparent)]
    Join(Box<JoinError>),
    /// The peer's snapshot or certificate chain does not verify.
    #[error("{peer} served a state that does not verify: {error} (nothing was written)")]
    BadState {
        /// The peer (its id).
        peer: String,
        /// What failed.
        error: ProofError,
    },
    /// The genesis's own validator set does not build.
    #[error("the genesis: {0}")]
    Genesis(String),
    /// The store.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The genesis is older than the validator unbonding period and no trusted checkpoint was
    /// given: a chain verified from the genesis validators proves nothing then.
    #[error(
        "the genesis is {age_ms} ms old, older than the validator unbonding period \
         ({unbonding_ms} ms): validators that have since unbonded could sign another history. \
         Give a trusted checkpoint (\"<height>:<checkpoint id>\" from `GET \
         /v1/checkpoints/latest` of a node you trust: --trusted-checkpoint, or [node] \
         trusted_checkpoint)"
    )]
    NeedsTrustedCheckpoint {
        /// Age of the genesis.
        age_ms: u64,
        /// The unbonding period.
        unbonding_ms: u64,
    },
    /// The installing task did not finish.
    #[error("installing the state: {0}")]
    Task(String),
}

impl From<JoinError> for SyncError {
    fn from(e: JoinError) -> Self {
        SyncError::Join(Box::new(e))
    }
}

/// A state fetched and verified (not yet installed).
#[derive(Debug)]
pub struct Fetched {
    /// The peer that served it.
    pub peer: PeerId,
    /// The verified state.
    pub state: VerifiedState,
    /// The snapshot's bytes (what is stored).
    pub snapshot: Vec<u8>,
}

/// What [`sync_store`] did.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Synced {
    /// The peer whose state was taken.
    pub peer: String,
    /// The snapshot's height.
    pub height: u64,
    /// The checkpoint of that height.
    pub checkpoint: String,
    /// Its ledger root (the snapshot's).
    pub ledger_root: String,
    /// Power that signed its certificate, and the set's total (0 and 0: the trusted one).
    pub signed_power: u64,
    /// Total power of that set.
    pub total_power: u64,
    /// Validator-set changes followed from the anchor.
    pub changes: usize,
    /// Bytes of the snapshot.
    pub snapshot_bytes: usize,
    /// The store's height before (0: empty).
    pub previous_height: u64,
    /// Whether it was written (false: the store was already at that height or later).
    pub installed: bool,
}

/// Weak subjectivity: a state (the ledger's, or the genesis when there is none) older than
/// the validator unbonding period at `now_ms` proves nothing by its validators' signatures,
/// who may have unbonded and signed another history since. `Some((age_ms, unbonding_ms))` when
/// it is that old. The one rule a node start, a state sync's genesis anchor and a store's own
/// anchor follow.
pub fn older_than_unbonding(
    genesis: &Genesis,
    ledger: Option<&Ledger>,
    now_ms: u64,
) -> Option<(u64, u64)> {
    let (state_ms, unbonding_ms) = match ledger {
        Some(l) => (
            l.period_start(l.next_height),
            l.params.validator_unbonding_ms,
        ),
        None => (
            genesis.genesis_time_ms,
            genesis.params.validator_unbonding_ms,
        ),
    };
    let age_ms = now_ms.saturating_sub(state_ms);
    (age_ms > unbonding_ms).then_some((age_ms, unbonding_ms))
}

/// What the asker trusts at `now_ms`: a checkpoint by height and id, or the genesis's
/// validators — only while the genesis is younger than the validator unbonding period: after
/// that, validators that have since unbonded could sign another history at no cost (a
/// long-range fork), and only a checkpoint from outside tells the real chain from theirs.
pub fn trust_of(
    genesis: &Genesis,
    trusted: Option<(u64, Hash32)>,
    now_ms: u64,
) -> Result<Trust, SyncError> {
    Ok(match trusted {
        Some((height, id)) => Trust::Checkpoint { height, id },
        None => {
            if let Some((age_ms, unbonding_ms)) = older_than_unbonding(genesis, None, now_ms) {
                return Err(SyncError::NeedsTrustedCheckpoint {
                    age_ms,
                    unbonding_ms,
                });
            }
            let ledger =
                Ledger::from_genesis(genesis).map_err(|e| SyncError::Genesis(e.to_string()))?;
            Trust::Genesis {
                network: genesis.network_id(),
                validators: chorus_crdt::replica::validator_set(&ledger)
                    .map_err(|e| SyncError::Genesis(e.to_string()))?,
            }
        }
    })
}

/// Ask `bootstrap` for its newest state and verify it from the genesis or `trusted` (a peer
/// answering "busy" is asked again a few times). A snapshot larger than one response comes in
/// parts, fetched once the certificate chain has verified.
pub async fn fetch_state(
    bootstrap: &Multiaddr,
    genesis: &Genesis,
    trusted: Option<(u64, Hash32)>,
    key: &Keypair,
    timeout: Duration,
) -> Result<Fetched, SyncError> {
    fetch_state_in_parts(bootstrap, genesis, trusted, key, timeout, MAX_PAGE_BYTES).await
}

/// [`fetch_state`], asking for at most `part` snapshot bytes per answer. A peer that replaced
/// its snapshot meanwhile (it keeps only the newest) refuses the next part: the fetch starts
/// again from its new state, a few times.
pub async fn fetch_state_in_parts(
    bootstrap: &Multiaddr,
    genesis: &Genesis,
    trusted: Option<(u64, Hash32)>,
    key: &Keypair,
    timeout: Duration,
    part: usize,
) -> Result<Fetched, SyncError> {
    let mut restarts = 0;
    loop {
        match fetch_once(bootstrap, genesis, trusted, key, timeout, part).await {
            Err(Restart::Replaced(e)) if restarts < STATE_RESTARTS => {
                restarts += 1;
                tracing::info!(error = %e, restarts, "the peer's snapshot changed: fetching its new state");
            }
            Err(Restart::Replaced(e) | Restart::Failed(e)) => return Err(e),
            Ok(fetched) => return Ok(fetched),
        }
    }
}

/// Why one fetch ended without a state.
enum Restart {
    /// A part was refused (the snapshot was replaced?): worth starting again.
    Replaced(SyncError),
    /// Anything else.
    Failed(SyncError),
}

impl From<SyncError> for Restart {
    fn from(e: SyncError) -> Self {
        Restart::Failed(e)
    }
}

async fn fetch_once(
    bootstrap: &Multiaddr,
    genesis: &Genesis,
    trusted: Option<(u64, Hash32)>,
    key: &Keypair,
    timeout: Duration,
    part: usize,
) -> Result<Fetched, Restart> {
    let trust = trust_of(genesis, trusted, crate::clock::Clock::system().now_ms())?;
    let part = u32::try_from(part.clamp(1, MAX_PAGE_BYTES)).unwrap_or(u32::MAX);
    let request = Request::State {
        trusted: trusted.map(|(h, _)| h),
        first: part,
    };
    let (peer, response) = ask_until_served(bootstrap, key, request, timeout, "state").await?;
    let Response::State {
        proof,
        mut snapshot,
        total,
    } = response
    else {
        return Err(unexpected(peer, &response, "a state request").into());
    };
    let bad = |error: ProofError| SyncError::BadState {
        peer: peer.to_string(),
        error,
    };
    let proof: StateProof = serde_json::from_slice(&proof)
        .map_err(|e| bad(ProofError::Malformed(format!("state proof: {e}"))))?;
    let network = genesis.network_id();
    if proof.network != network {
        return Err(bad(ProofError::WrongNetwork {
            expected: network,
            found: proof.network,
        })
        .into());
    }
    if total > MAX_STATE_BYTES as u64 || snapshot.len() as u64 > total {
        return Err(bad(ProofError::Malformed(format!(
            "a snapshot of {total} bytes ({} sent; at most {MAX_STATE_BYTES})",
            snapshot.len()
        )))
        .into());
    }
    if (snapshot.len() as u64) < total {
        // Only a certified state is worth fetching in parts.
        let height = certified_height(&proof, &trust).map_err(bad)?;
        while (snapshot.len() as u64) < total {
            let want = (total - snapshot.len() as u64).min(u64::from(part));
            let request = Request::StatePart {
                height,
                offset: snapshot.len() as u64,
                max: want as u32,
            };
            let (peer, response) =
                match ask_until_served(bootstrap, key, request, timeout, "state part").await {
                    Ok(answer) => answer,
                    Err(e @ SyncError::Join(_)) => return Err(Restart::Replaced(e)),
                    Err(e) => return Err(e.into()),
                };
            match response {
                Response::StatePart(bytes) if !bytes.is_empty() && bytes.len() as u64 <= want => {
                    snapshot.extend_from_slice(&bytes);
                }
                Response::StatePart(bytes) => {
                    return Err(bad(ProofError::Malformed(format!(
                        "a snapshot part of {} bytes where 1 to {want} were asked",
                        bytes.len()
                    )))
                    .into());
                }
                other => return Err(unexpected(peer, &other, "a state part request").into()),
            }
        }
    }
    let state = verify_state(&proof, &snapshot, &trust).map_err(bad)?;
    Ok(Fetched {
        peer,
        state,
        snapshot,
    })
}

/// Ask `bootstrap`, again a few times while it answers "busy"; a refusal is an error.
async fn ask_until_served(
    bootstrap: &Multiaddr,
    key: &Keypair,
    request: Request,
    timeout: Duration,
    what: &str,
) -> Result<(PeerId, Response), SyncError> {
    let mut attempt = 0;
    loop {
        let (peer, response) = ask(bootstrap, key, request.clone(), timeout, what).await?;
        match response {
            Response::Refused(reason) if reason.starts_with("busy") && attempt < BUSY_RETRIES => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(
                    chorus_crdt::replica::STATE_SERVE_INTERVAL_MS + 100,
                ))
                .await;
            }
            Response::Refused(reason) => return Err(JoinError::Refused { peer, reason }.into()),
            other => return Ok((peer, other)),
        }
    }
}

/// A peer answered `asked` with another kind of answer.
fn unexpected(peer: PeerId, response: &Response, asked: &str) -> SyncError {
    JoinError::Malformed {
        peer,
        reason: format!("a {} answer to {asked}", response_name(response)),
    }
    .into()
}

/// Write a verified state into the store at `path` (created if missing): nothing if the store
/// is already at its height or later.
pub fn install(path: &Path, genesis: &Genesis, fetched: &Fetched) -> Result<Synced, SyncError> {
    let db = ops::open(path, &genesis.network_id())?;
    let previous_height = ops::latest_ledger(&db)?.map_or(0, |(h, _)| h);
    let state = &fetched.state;
    let sets: Vec<(u64, Vec<u8>)> = state
        .changes
        .iter()
        .filter_map(|(h, set)| {
            serde_json::to_vec(&set_entries(set))
                .ok()
                .map(|json| (*h, json))
        })
        .collect();
    let installed = ops::install_state(
        &db,
        state.height(),
        &codec::encode(&state.decided),
        &fetched.snapshot,
        &sets,
    )?;
    let checkpoint: CheckpointId = state.decided.id();
    Ok(Synced {
        peer: fetched.peer.to_string(),
        height: state.height(),
        checkpoint: checkpoint.0.to_hex(),
        ledger_root: state.decided.checkpoint.ledger_root.to_hex(),
        signed_power: state.signed_power,
        total_power: state.total_power,
        changes: state.changes.len(),
        snapshot_bytes: fetched.snapshot.len(),
        previous_height,
        installed,
    })
}

/// Fetch the newest state from the first of `bootstraps` that serves one that verifies, and
/// install it in the store at `path`. The errors of every peer tried are in the last error.
pub async fn sync_store(
    path: &Path,
    genesis: &Genesis,
    bootstraps: &[Multiaddr],
    trusted: Option<(u64, Hash32)>,
    key: &Keypair,
    timeout: Duration,
) -> Result<Synced, Vec<SyncError>> {
    let mut errors = vec![];
    for addr in bootstraps {
        match fetch_state(addr, genesis, trusted, key, timeout).await {
            Ok(fetched) => {
                let path = path.to_path_buf();
                let genesis = genesis.clone();
                let done =
                    tokio::task::spawn_blocking(move || install(&path, &genesis, &fetched)).await;
                match done {
                    Ok(Ok(synced)) => return Ok(synced),
                    Ok(Err(e)) => errors.push(e),
                    Err(e) => errors.push(SyncError::Task(e.to_string())),
                }
            }
            Err(e) => errors.push(e),
        }
    }
    Err(errors)
}

/// Whether `bootstrap` holds a decided checkpoint at `height` or later (one cheap
/// `Request::CatchUp` for one certificate, not a snapshot).
pub async fn peer_reaches(
    bootstrap: &Multiaddr,
    key: &Keypair,
    height: u64,
    timeout: Duration,
) -> Result<bool, SyncError> {
    let (peer, response) = ask(
        bootstrap,
        key,
        Request::CatchUp {
            from: height,
            max: 1,
        },
        timeout,
        "checkpoint",
    )
    .await?;
    match response {
        Response::Checkpoints(list) => Ok(!list.is_empty()),
        Response::Refused(reason) => Err(JoinError::Refused { peer, reason }.into()),
        other => Err(JoinError::Malformed {
            peer,
            reason: format!("a {} answer to a catch-up request", response_name(&other)),
        }
        .into()),
    }
}

/// The store's own newest checkpoint as a trust anchor: its height and id, if the store holds a
/// ledger snapshot with its certificate and that state is not older than the validator
/// unbonding period at `now_ms` ([`older_than_unbonding`]). A node that was away a few days
/// anchors its state sync there, even when the genesis is too old to be an anchor.
pub fn own_anchor(
    path: &Path,
    genesis: &Genesis,
    now_ms: u64,
) -> Result<Option<(u64, Hash32)>, StoreError> {
    Ok(read_store(path, genesis, now_ms)?.1)
}

/// What a start needs of the store at `path`, in one read: the height of its newest ledger
/// snapshot (0: none, or no store; a missing store is not created) and its [`own_anchor`].
fn read_store(
    path: &Path,
    genesis: &Genesis,
    now_ms: u64,
) -> Result<(u64, Option<(u64, Hash32)>), StoreError> {
    if !path.exists() {
        return Ok((0, None));
    }
    let db = ops::open(path, &genesis.network_id())?;
    let Some((height, bytes)) = ops::latest_ledger(&db)? else {
        return Ok((0, None));
    };
    let young = Ledger::from_snapshot(&bytes)
        .is_ok_and(|l| older_than_unbonding(genesis, Some(&l), now_ms).is_none());
    let decided = if young {
        ops::certificate(&db, height)?
            .and_then(|b| codec::decode::<chorus_crdt::checkpoint::DecidedCheckpoint>(&b).ok())
    } else {
        None
    };
    Ok((height, decided.map(|d| (height, d.id().0))))
}

/// Which of `bootstraps` have a certified checkpoint at `height` ([`peer_reaches`]), and the
/// errors of those that could not be asked. All peers at once: one that does not answer
/// costs `timeout` once, not once per peer.
pub async fn peers_reaching(
    bootstraps: &[Multiaddr],
    key: &Keypair,
    height: u64,
    timeout: Duration,
) -> (Vec<Multiaddr>, Vec<SyncError>) {
    let answers = futures::future::join_all(
        bootstraps
            .iter()
            .map(|addr| peer_reaches(addr, key, height, timeout)),
    )
    .await;
    let mut ahead = vec![];
    let mut errors = vec![];
    for (addr, answer) in bootstraps.iter().zip(answers) {
        match answer {
            Ok(true) => ahead.push(addr.clone()),
            Ok(false) => {}
            Err(e) => errors.push(e),
        }
    }
    (ahead, errors)
}

/// At a node's start: if one of `bootstraps` is `min_heights` or more ahead of the store at
/// `path`, install its certified state (the first that verifies); `Ok(None)` when no peer is
/// that far ahead (the node replays the few heights it missed). Without a `trusted`
/// checkpoint the chain is verified from the store's own newest checkpoint when it is young
/// enough ([`own_anchor`]), else from the genesis.
pub async fn sync_if_behind(
    path: &Path,
    genesis: &Genesis,
    bootstraps: &[Multiaddr],
    trusted: Option<(u64, Hash32)>,
    key: &Keypair,
    min_heights: u64,
    timeout: Duration,
) -> Result<Option<Synced>, Vec<SyncError>> {
    let (local, anchor) = read_store(path, genesis, crate::clock::Clock::system().now_ms())
        .map_err(|e| vec![e.into()])?;
    let wanted = local.saturating_add(min_heights);
    let (ahead, errors) = peers_reaching(bootstraps, key, wanted, timeout).await;
    if ahead.is_empty() {
        return if errors.len() == bootstraps.len() && !errors.is_empty() {
            Err(errors)
        } else {
            Ok(None)
        };
    }
    match sync_store(path, genesis, &ahead, trusted.or(anchor), key, timeout).await {
        Ok(synced) => Ok(Some(synced)),
        // The store's own anchor is older than what the peers keep (they pruned its
        // certificate): verify from the genesis instead, which `trust_of` allows only while
        // the genesis is younger than the unbonding period. A configured trusted checkpoint is
        // never replaced.
        Err(errors)
            if trusted.is_none()
                && anchor.is_some()
                && errors.iter().all(
                    |e| matches!(e, SyncError::Join(j) if matches!(**j, JoinError::Refused { .. })),
                ) =>
        {
            sync_store(path, genesis, &ahead, None, key, timeout)
                .await
                .map(Some)
        }
        Err(errors) => Err(errors),
    }
}
