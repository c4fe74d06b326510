//! The node actor: one task owns the libp2p swarm, the replica (windows, ledger, consensus)
//! and the storage handle; a `select!` loop delegates each event to a `handle_*` method; the
//! [`NodeHandle`] sends it commands. Roles run as their own tasks and send payloads back.
//!
//! Channel capacities and overflow policies:
//! - commands: [`handle::COMMAND_QUEUE`], backpressure;
//! - role outputs: [`ROLE_QUEUE`], backpressure (roles wait);
//! - inference stream: [`handle::INFERENCE_EVENTS`] per subscriber, drop oldest;
//! - storage: `store::STORE_QUEUE`, backpressure.
//!
//! Durability: envelopes received by gossip are written in one durable transaction per tick;
//! before anything this node signs leaves it (a broadcast, a consensus message), every pending
//! write and WAL record is made durable first. A submission through the API is answered only
//! after it is on disk ("acknowledged means persisted").

pub mod handle;
mod network;
mod proofs;
mod prune;
mod read_model;
mod run;
pub mod views;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chorus_crdt::checkpoint::{DecidedCheckpoint, WalRecord};
use chorus_crdt::ledger::Ledger;
use chorus_crdt::replica::{Replica, ReplicaConfig, Restore};
use chorus_protocol::codec;
use chorus_protocol::genesis::Genesis;
use chorus_protocol::ids::NetworkId;
use chorus_protocol::keys::Keypair;
use libp2p::{Multiaddr, PeerId};
use tokio::sync::{broadcast, mpsc, watch};
use tokio::task::JoinSet;
use tracing::Instrument;

pub use handle::{
    Answer, Command, InferenceEvent, LedgerLog, LedgerRecord, NodeHandle, Progress, Query,
    QueryError, StatementsQuery, SubmitResult,
};

use crate::clock::Clock;
use crate::metrics::NodeMetrics;
use crate::net::{NetOptions, build_swarm};
use crate::roles::{ReputerTask, RoleOutput, RoleView, WorkerTask, run_reputer, run_worker};
use crate::store::{Store, StoreError, StoreThread, ops};

/// Payloads from roles waiting for the actor.
pub const ROLE_QUEUE: usize = 256;

/// Everything a node needs to start.
pub struct NodeSetup {
    /// The network's genesis.
    pub genesis: Genesis,
    /// The node's key (also its libp2p identity).
    pub key: Keypair,
    /// Where the store lives.
    pub data_dir: PathBuf,
    /// The store's page cache, bytes.
    pub store_cache_bytes: usize,
    /// Transport and discovery.
    pub net: NetOptions,
    /// Listen addresses.
    pub listen: Vec<Multiaddr>,
    /// Peers to dial (and redial with backoff).
    pub bootstrap: Vec<Multiaddr>,
    /// Largest redial backoff.
    pub max_backoff: Duration,
    /// Replica tunables (consensus timeouts, validator or not).
    pub replica: ReplicaConfig,
    /// Event-loop tick.
    pub tick: Duration,
    /// How long finalized history is kept.
    pub retention: crate::store::prune::Retention,
    /// When the store is compacted in the background.
    pub compaction: crate::store::stats::CompactPolicy,
    /// Worker roles.
    pub workers: Vec<WorkerTask>,
    /// Reputer roles.
    pub reputers: Vec<ReputerTask>,
    /// The clock.
    pub clock: Clock,
}

/// A started node.
pub struct RunningNode {
    /// The handle.
    pub handle: NodeHandle,
    /// Its peer id.
    pub peer_id: PeerId,
    /// Addresses it listens on (resolved ports).
    pub listen: Vec<Multiaddr>,
    /// The actor and role tasks; the actor's result is the node's.
    pub tasks: JoinSet<()>,
    /// The storage thread (join after the tasks end to be sure everything is written).
    pub store_thread: StoreThread,
}

impl RunningNode {
    /// Stop the node: flush its storage, end its tasks, join its storage thread.
    pub async fn stop(mut self) {
        self.handle.shutdown().await;
        self.tasks.abort_all();
        while self.tasks.join_next().await.is_some() {}
        drop(self.handle);
        let thread = self.store_thread;
        let _ = tokio::task::spawn_blocking(move || thread.join()).await;
    }
}

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// Storage.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The replica.
    #[error("replica: {0}")]
    Replica(#[from] chorus_crdt::replica::ReplicaError),
    /// The store holds a record that does not decode or check out: the node refuses to start
    /// rather than drop it.
    #[error(
        "{path}: {error}; the node refuses to start rather than drop it (restore a backup of \
         the data directory, or move it away to start over and catch up from peers)"
    )]
    Restore {
        /// The store file.
        path: PathBuf,
        /// What is wrong (in the message itself, not repeated as a source).
        error: StoreError,
    },
    /// The node's state is older than the validator unbonding period and no trusted
    /// checkpoint is configured.
    #[error(
        "this node's state is {age_ms} ms old, older than the validator unbonding period \
         ({unbonding_ms} ms): validators that have since unbonded could show it another history. \
         Set [node] trusted_checkpoint = \"<height>:<checkpoint id>\" from a source you trust \
         (`GET /v1/checkpoints/latest` of a node you trust: its height and id)"
    )]
    NeedsTrustedCheckpoint {
        /// Age of the state.
        age_ms: u64,
        /// The unbonding period.
        unbonding_ms: u64,
    },
    /// libp2p.
    #[error("network: {0}")]
    Net(String),
    /// Data directory.
    #[error("data directory {path}: {source}")]
    DataDir {
        /// Path.
        path: PathBuf,
        /// Error.
        source: std::io::Error,
    },
}

/// Weak subjectivity: validators that unbonded longer ago than the unbonding period can sign
/// another history at no cost, so a node whose state is that old must be told which chain is
/// real (`[node] trusted_checkpoint`).
fn too_old(genesis: &Genesis, restore: &Restore, now_ms: u64) -> Option<StartError> {
    let ledger = restore.ledger.as_ref().map(|(_, l)| l);
    crate::state_sync::older_than_unbonding(genesis, ledger, now_ms).map(
        |(age_ms, unbonding_ms)| StartError::NeedsTrustedCheckpoint {
            age_ms,
            unbonding_ms,
        },
    )
}

/// A seed from the operating system (the clock's nanoseconds if it has none).
fn random_seed() -> u64 {
    let mut b = [0u8; 8];
    match getrandom::fill(&mut b) {
        Ok(()) => u64::from_le_bytes(b),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64),
    }
}

/// What the store holds for a restart. A record that does not decode or check out stops the
/// start (never dropped in silence): a WAL record re-arms the double-sign guard, a certificate
/// is served to peers, and the ledger snapshot must have the root its checkpoint certifies.
fn restore_from_store(store: &Store, network: NetworkId) -> Result<Restore, StoreError> {
    store.call_blocking(move |db| {
        let corrupt = |table, reason| StoreError::Corrupt { table, reason };
        let ledger = match ops::latest_ledger(db)? {
            None => None,
            Some((h, bytes)) => Some((
                h,
                Ledger::from_snapshot(&bytes)
                    .map_err(|e| corrupt("ledger", format!("snapshot of height {h}: {e}")))?,
            )),
        };
        let applied = ledger.as_ref().map_or(0, |(h, _)| *h);
        let mut decided: Vec<DecidedCheckpoint> = vec![];
        for (h, bytes) in ops::certificates_from(db, applied.saturating_sub(255))? {
            let d: DecidedCheckpoint = codec::decode(&bytes)
                .map_err(|e| corrupt("certificates", format!("height {h}: {e}")))?;
            if d.height() != h {
                return Err(corrupt(
                    "certificates",
                    format!("the record of height {h} holds height {}", d.height()),
                ));
            }
            d.check_integrity(&network)
                .map_err(|e| corrupt("certificates", format!("height {h}: {e}")))?;
            // History before a gap is not the engine's: a certified state installed over an
            // older store (`state_sync`) leaves the heights in between out.
            if decided
                .last()
                .is_some_and(|p: &DecidedCheckpoint| p.height() + 1 != h)
            {
                decided.clear();
            }
            decided.push(d);
        }
        if let Some((h, l)) = &ledger
            && let Some(d) = decided.iter().find(|d| d.height() == *h)
            && l.root() != d.checkpoint.ledger_root
        {
            return Err(corrupt(
                "ledger",
                format!(
                    "the snapshot of height {h} has root {}, its checkpoint certifies {}",
                    l.root().to_hex(),
                    d.checkpoint.ledger_root.to_hex()
                ),
            ));
        }
        let mut wal = vec![];
        for (seq, bytes) in ops::wal_records(db)? {
            let record = WalRecord::from_bytes(&bytes)
                .map_err(|e| corrupt("wal", format!("record {seq}: {e}")))?;
            record
                .check(&network)
                .map_err(|e| corrupt("wal", format!("record {seq}: {e}")))?;
            wal.push(record);
        }
        let mut envelopes = vec![];
        for key in ops::window_keys(db)? {
            // Kept unless finalized: a topic the snapshot does not know yet may be created by
            // a decided height that re-applies below.
            let open = ledger
                .as_ref()
                .is_none_or(|(_, l)| l.is_finalized(&key) != Some(true));
            // A height decided but not yet in the snapshot (crash between the two writes)
            // re-applies from these: its windows are still open for the snapshot's ledger.
            if open {
                for bytes in ops::window_envelopes(db, &key.id())? {
                    envelopes.push((key, bytes));
                }
            }
        }
        // The lists of the windows the heights after the snapshot finalized (those decided
        // but never applied here were not stored: asked of peers).
        let mut heads = vec![];
        for d in decided.iter().filter(|d| d.height() > applied) {
            for w in d.checkpoint.windows.iter().filter(|w| w.entries > 0) {
                if let Some(list) = ops::heads(db, &w.window)?
                    && w.is_list(&list)
                {
                    heads.push((w.window, list));
                }
            }
        }
        Ok(Restore {
            ledger,
            decided,
            wal,
            envelopes,
            heads,
        })
    })
}

/// Open the store, restore the replica, build the swarm, start listening and dialing, spawn
/// the actor and the role tasks.
pub async fn spawn(setup: NodeSetup) -> Result<RunningNode, StartError> {
    std::fs::create_dir_all(&setup.data_dir).map_err(|source| StartError::DataDir {
        path: setup.data_dir.clone(),
        source,
    })?;
    let network = setup.genesis.network_id();
    let (store, store_thread) = Store::open(
        &setup.data_dir.join("node.redb"),
        &network,
        setup.store_cache_bytes,
    )?;
    let store_path = setup.data_dir.join("node.redb");
    let clock = setup.clock;
    let restore = tokio::task::block_in_place(|| restore_from_store(&store, network))
        .map_err(|error| StartError::Restore {
            path: store_path,
            error,
        })
        .and_then(|r| {
            let old = setup.replica.trusted_checkpoint.is_none();
            match too_old(&setup.genesis, &r, clock.now_ms()) {
                Some(err) if old => Err(err),
                _ => Ok(r),
            }
        });
    let restore = match restore {
        Ok(r) => r,
        Err(e) => {
            // Close the file before saying why: the caller may repair it and start again.
            drop(store);
            tokio::task::block_in_place(|| store_thread.join());
            return Err(e);
        }
    };
    let wal = restore.wal.clone();
    // The genesis set heads the validator-set changes that inference proofs list.
    let genesis_set = proofs::genesis_set_bytes(&setup.genesis)?;
    store
        .call(move |db| ops::put_validator_set(db, 0, &genesis_set))
        .await?;
    let mut replica_config = setup.replica.clone();
    // Which peer and windows anti-entropy picks must not be predictable by a peer.
    replica_config.seed = random_seed();
    let (replica, first_effects) = Replica::new(
        &setup.genesis,
        setup.key.clone(),
        replica_config,
        restore,
        clock.now_ms(),
    )?;
    let mut swarm =
        build_swarm(&setup.key, &setup.net).map_err(|e| StartError::Net(e.to_string()))?;
    let metrics = Arc::new(NodeMetrics::default());
    for addr in &setup.listen {
        swarm
            .listen_on(addr.clone())
            .map_err(|e| StartError::Net(format!("listen on {addr}: {e}")))?;
    }
    // Wait for the listeners to report their addresses (ports chosen by the OS).
    let mut listen = vec![];
    while listen.len() < setup.listen.len() {
        use futures::StreamExt;
        match tokio::time::timeout(Duration::from_secs(5), swarm.select_next_some()).await {
            Ok(libp2p::swarm::SwarmEvent::NewListenAddr { address, .. }) => listen.push(address),
            Ok(_) => {}
            Err(_) => return Err(StartError::Net("listeners did not start".into())),
        }
    }
    let peer_id = *swarm.local_peer_id();
    let (commands_tx, commands_rx) = mpsc::channel(handle::COMMAND_QUEUE);
    let (inferences_tx, _) = broadcast::channel(handle::INFERENCE_EVENTS);
    let (roles_tx, roles_rx) = mpsc::channel::<RoleOutput>(ROLE_QUEUE);
    let (view_tx, view_rx) = watch::channel(Arc::new(RoleView::default()));
    let ledger_log = handle::LedgerLog::default();
    let handle = NodeHandle::new(commands_tx, inferences_tx.clone(), metrics.clone())
        .with_ledger_events(ledger_log.clone());
    let mut tasks = JoinSet::new();
    // Every task runs in a span naming the node (and its topic), so that the lines of many
    // nodes in one process (devnet, testbeds) can be told apart.
    let node_span = tracing::info_span!("node", id = %setup.key.public().short());
    let configured: Vec<(u64, &'static str)> = setup
        .workers
        .iter()
        .map(|w| (w.topic.0, "worker"))
        .chain(setup.reputers.iter().map(|r| (r.topic.0, "reputer")))
        .collect();
    for mut w in setup.workers {
        w.attach(&handle);
        let span = tracing::info_span!(parent: &node_span, "worker", topic = w.topic.0);
        let c = clock.clone();
        tasks.spawn(
            run_worker(w, view_rx.clone(), roles_tx.clone(), c, metrics.clone()).instrument(span),
        );
    }
    for r in setup.reputers {
        let span = tracing::info_span!(parent: &node_span, "reputer", topic = r.topic.0);
        let c = clock.clone();
        tasks.spawn(
            run_reputer(r, view_rx.clone(), roles_tx.clone(), c, metrics.clone()).instrument(span),
        );
    }
    drop(roles_tx);
    let net = network::NetDriver::new(
        swarm,
        network,
        metrics.clone(),
        listen.clone(),
        setup.bootstrap,
        setup.max_backoff,
        random_seed(),
    );
    let actor = run::Actor::new(run::ActorParts {
        net,
        replica,
        store,
        metrics,
        inferences: inferences_tx,
        ledger_events: ledger_log,
        view: view_tx,
        clock,
        tick: setup.tick,
        wal,
        network_name: setup.genesis.network.clone(),
        configured,
        retention: setup.retention,
        compaction: setup.compaction,
    });
    let span = tracing::info_span!(parent: &node_span, "actor");
    tasks.spawn(
        actor
            .run(commands_rx, roles_rx, first_effects)
            .instrument(span),
    );
    Ok(RunningNode {
        handle,
        peer_id,
        listen,
        tasks,
        store_thread,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn genesis(time_ms: u64) -> Genesis {
        let key = Keypair::from_seed(&[1; 32]);
        Genesis {
            network: "old".into(),
            genesis_time_ms: time_ms,
            token: chorus_protocol::genesis::Token {
                symbol: "CHR".into(),
                decimals: 0,
            },
            balances: vec![],
            validators: vec![chorus_protocol::genesis::GenesisValidator {
                address: key.public(),
                bond: chorus_protocol::ids::Amount(1),
                name: String::new(),
            }],
            reputer_stakes: vec![],
            registrations: vec![],
            params: Default::default(),
            topics: vec![],
        }
    }

    /// A node whose state is older than the unbonding period needs a trusted checkpoint; one
    /// within it does not.
    #[test]
    fn state_older_than_the_unbonding_period_needs_a_trusted_checkpoint() {
        let g = genesis(1_000);
        let unbonding = g.params.validator_unbonding_ms;
        let restore = Restore::default();
        assert!(too_old(&g, &restore, 1_000 + unbonding).is_none());
        let err = too_old(&g, &restore, 1_001 + unbonding).unwrap();
        assert!(err.to_string().contains("trusted_checkpoint"), "{err}");
    }
}
