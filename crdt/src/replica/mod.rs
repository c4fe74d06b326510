//! The replica: one peer's whole replicated state as a pure state machine.
//!
//! `Replica::handle(input, now) -> effects`. It owns the open windows, the ledger (everything
//! finalized so far) and the checkpoint consensus engine. The node turns its effects into IO
//! (gossip, request-response, redb, timers); the simulator turns them into simulated messages.
//! No clock, no RNG, no IO: time is an argument, randomness does not exist here.
//!
//! Flow of an entry: gossip bytes → [`chorus_protocol::validation::validate`] against this
//! replica's view → the entry joins its window (and is persisted, and relayed) → when the
//! checkpoint of the window's period is decided, the entries at the finalized heads are applied
//! to the ledger, which yields the network inference, scores and rewards.
//!
//! Checkpoint heights: consensus height `H ≥ 1` finalizes ledger period `H − 1` (the windows
//! that [`Ledger::windows_due`] names before period `H − 1` is applied).

mod admission;
mod antientropy;
mod clock;
mod consensus;
pub mod duties;
mod evidence;
mod heads;
mod ingest;
mod io;
#[cfg(any(test, feature = "sim"))]
pub mod sim;
mod sync;
mod view;
pub mod wire;

pub use antientropy::{AntiEntropyConfig, MAX_RECONCILE_PEERS, SYNCS_PER_ROUND};
pub use clock::{MIN_CLOCK_SAMPLES, TIME_EVERY_MS};
pub use evidence::{EVIDENCE_STEP_MS, MAX_EVIDENCE_RANK};
pub use io::{Effect, Input, Offence, Outcome, ReplicaConfig, ReplicaEvent};
pub use sync::{MAX_SYNC_SESSIONS, MAX_SYNC_SESSIONS_PER_PEER};

#[cfg(test)]
mod admission_tests;
#[cfg(test)]
mod antientropy_tests;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};

use chorus_protocol::genesis::Genesis;
use chorus_protocol::ids::{Hash32, MessageId, NetworkId, TopicId};
use chorus_protocol::keys::{Keypair, PublicKey};
use chorus_protocol::validation::{ChannelKind, Slot};

use crate::checkpoint::{
    Checkpoint, CheckpointId, DecidedCheckpoint, Engine, EngineConfig, EngineError, Persisted,
    StartSchedule, ValidatorSet, WalRecord,
};
use crate::ledger::{Ledger, LedgerError, LedgerEvent};
use crate::window::{Window, WindowKey};

/// A peer, named by its key (the node maps it to a libp2p peer id).
pub type PeerKey = PublicKey;

/// Why a replica could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReplicaError {
    /// The genesis or a stored ledger is inconsistent.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// The consensus engine refused its inputs.
    #[error("consensus: {0}")]
    Engine(#[from] EngineError),
    /// No validator can be formed from the genesis bonds.
    #[error("validator set: {0}")]
    ValidatorSet(String),
    /// The stored chain does not extend the trusted checkpoint.
    #[error(
        "the stored checkpoint of height {height} is {found}, the trusted checkpoint is {trusted}: \
         this store follows another chain"
    )]
    NotTrusted {
        /// The height.
        height: u64,
        /// The stored checkpoint's id.
        found: Hash32,
        /// The trusted id.
        trusted: Hash32,
    },
}

/// What a restarted replica starts from (all optional).
#[derive(Clone, Debug, Default)]
pub struct Restore {
    /// The newest ledger snapshot and the consensus height it is at.
    pub ledger: Option<(u64, Ledger)>,
    /// Decided checkpoints after the snapshot (ascending), and recent ones before it.
    pub decided: Vec<DecidedCheckpoint>,
    /// The consensus WAL.
    pub wal: Vec<WalRecord>,
    /// Envelopes of windows not yet finalized (by window).
    pub envelopes: Vec<(WindowKey, Vec<u8>)>,
    /// Stored head lists (by window id) of the windows the decided checkpoints after the
    /// snapshot finalized (`Effect::PersistHeads`); any missing are asked of peers.
    pub heads: Vec<(Hash32, Vec<Hash32>)>,
}

/// What a decided checkpoint fixes of a window not applied yet.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Certified {
    /// Only the root: its list is being asked for.
    Root(Hash32),
    /// The list (it hashes to the certified root).
    Heads(BTreeSet<Hash32>),
}

/// Bound on the change hashes of all head lists held at once (32 MiB): the lists of a few
/// heights of 10 topics × 2 phases × 1000 workers fit many times over; a hostile proposer's
/// made-up lists cannot grow it further (its proposal then stays unvalidated).
const MAX_HEAD_LIST_HASHES: usize = 1 << 20;

/// Bound on proposals validated or built but not yet decided (each holds a ledger copy).
const MAX_PREPARED: usize = 8;

/// Least time between two state proofs served (`Request::State`), whoever asks.
pub const STATE_SERVE_INTERVAL_MS: u64 = 500;

/// Most snapshot parts served (`Request::StatePart`, up to `MAX_PAGE_BYTES` each) per
/// [`STATE_SERVE_INTERVAL_MS`], whoever asks: 64 MiB a second.
pub const STATE_PARTS_PER_INTERVAL: u32 = 4;

/// A reconciliation asked for before a late proposal.
#[derive(Debug)]
struct Reconciliation {
    /// The turn to propose it was for.
    height: u64,
    /// Its round.
    round: u32,
    /// When it was asked for.
    at_ms: u64,
    /// The windows it covered.
    windows: BTreeSet<WindowKey>,
}

/// The consensus identity of a replica that must not vote: derived from its key, in no
/// validator set.
fn observer_key(key: &Keypair) -> Keypair {
    let seed = key.seed();
    Keypair::from_seed(&Hash32::of_parts("chorus/replica/observer", &[&seed[..]]).0)
}

/// One peer's replicated state.
pub struct Replica {
    network: NetworkId,
    /// The genesis's canonical encoding (served to newcomers, `Request::Genesis`).
    genesis: std::sync::Arc<[u8]>,
    /// When a state proof was last handed to the store to serve (`Request::State`): one per
    /// [`STATE_SERVE_INTERVAL_MS`], whoever asks, so newcomers cannot make it read snapshots
    /// without pause.
    state_served_ms: Option<u64>,
    /// Snapshot parts handed to the store to serve: (start of the interval, parts in it).
    state_parts: (u64, u32),
    key: Keypair,
    config: ReplicaConfig,
    ledger: Ledger,
    windows: BTreeMap<WindowKey, Window>,
    slots: BTreeMap<Slot, MessageId>,
    /// Decompressed keys of recent signers (gossip validation).
    keys: chorus_protocol::keys::KeyCache,
    engine: Engine,
    /// Decided checkpoints waiting to be applied (entries still being fetched), by height.
    decided_queue: BTreeMap<u64, DecidedCheckpoint>,
    /// A decided height that does not apply here, and why (the replica is stuck before it).
    stalled: Option<(u64, String)>,
    /// What those checkpoints fix, by window id: such a window admits only the listed heads
    /// (nothing while only the root is known and the list is being asked for).
    certified: BTreeMap<Hash32, Certified>,
    /// Head lists this replica proposed, validated, fetched or restored, by window and root
    /// (a checkpoint names only roots); those of finalized windows are persisted and dropped.
    head_lists: BTreeMap<(Hash32, Hash32), std::sync::Arc<Vec<Hash32>>>,
    /// Proposals waiting for entries before their validity can be decided.
    validations: BTreeMap<(u64, CheckpointId), (Checkpoint, PeerKey)>,
    /// Our pending turn to propose: (height, round).
    need_value: Option<(u64, u32)>,
    /// The last reconciliation asked for before a late proposal.
    last_reconcile: Option<Reconciliation>,
    /// When we applied the last decision.
    last_decision_at: Option<u64>,
    /// When decisions resumed after a pause longer than a propose timeout (or started).
    resumed_at: Option<u64>,
    /// Ledger states derived for checkpoints we built or validated, by id.
    prepared: BTreeMap<CheckpointId, (Ledger, Vec<LedgerEvent>)>,
    /// The id of the last applied checkpoint (the genesis hash before the first).
    tip: Hash32,
    /// Epochs whose local inference was already computed, per topic.
    inferred: BTreeMap<TopicId, u64>,
    /// Anti-entropy: peers, pending requests, fetches.
    ae: antientropy::AntiEntropy,
    /// Automerge sync sessions, per peer and window.
    sync_sessions: BTreeMap<(PeerKey, WindowKey), sync::Session>,
    /// Slots whose conflict this replica already reported, with their window (forgotten when
    /// the window is dropped: a finalized window admits nothing more, so nothing is reported
    /// twice, and the set stays bounded by the open windows).
    reported_conflicts: BTreeMap<Slot, WindowKey>,
    /// Offences seen and ours to report ([`evidence`]).
    offences: evidence::Offences,
    /// Peers' clock offsets ([`clock`]).
    clock: clock::ClockOffsets,
    /// When this replica applied the checkpoint that finalized each pending epoch's bundle
    /// (`now_ms`), for [`Replica::reputer_window`]; kept while the epoch is pending.
    bundles_applied_at: BTreeMap<(TopicId, u64), u64>,
}

impl std::fmt::Debug for Replica {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replica")
            .field("me", &self.key.public())
            .field("ledger_height", &self.ledger.next_height)
            .field("windows", &self.windows.len())
            .finish()
    }
}

/// The validator set the ledger's bonds give.
///
/// The network's `max_validators` largest bonds take part ([`Ledger::active_bonds`]); any
/// number of accounts may bond, the others wait outside the set, so bonding never freezes it.
pub fn validator_set(ledger: &Ledger) -> Result<ValidatorSet, ReplicaError> {
    ValidatorSet::from_bonds(&ledger.active_bonds())
        .map_err(|e| ReplicaError::ValidatorSet(e.to_string()))
}

impl Replica {
    /// Start a replica from a genesis (and what it persisted before, if anything). Returns the
    /// replica and its first effects (timers, maybe a proposal request).
    pub fn new(
        genesis: &Genesis,
        key: Keypair,
        config: ReplicaConfig,
        restore: Restore,
        now_ms: u64,
    ) -> Result<(Replica, Vec<Effect>), ReplicaError> {
        let network = genesis.network_id();
        let genesis_ledger = Ledger::from_genesis(genesis)?;
        let (ledger, decided) = match restore.ledger {
            Some((_, l)) => (l, restore.decided),
            None => (genesis_ledger.clone(), restore.decided),
        };
        if let Some((d, trusted)) = decided
            .iter()
            .find_map(|d| config.contradicts_trusted(d).map(|t| (d, t)))
        {
            return Err(ReplicaError::NotTrusted {
                height: d.height(),
                found: d.id().0,
                trusted,
            });
        }
        // Validator sets: the genesis set from height 1. Bonds take effect two heights after
        // the height that changed them (`finish_height`), so a ledger that applied heights
        // 1..=n gives the set of n + 2 on; n + 1 runs with the bonds from before height n.
        let mut sets = vec![(1, validator_set(&genesis_ledger)?)];
        if ledger.next_height > 0 {
            if !ledger.bonds_before_last.is_empty() {
                let before = ValidatorSet::from_bonds(&ledger.bonds_before_last)
                    .map_err(|e| ReplicaError::ValidatorSet(e.to_string()))?;
                sets.push((ledger.next_height + 1, before));
            }
            sets.push((ledger.next_height + 2, validator_set(&ledger)?));
        }
        // Height H finalizes period H − 1: it starts when that period has ended, plus the
        // clock-skew allowance and the grace for late gossip.
        let params = &genesis_ledger.params;
        let engine_config = EngineConfig {
            timeouts: config.timeouts,
            start_schedule: Some(StartSchedule {
                first_ms: genesis_ledger
                    .period_end(0)
                    .saturating_add(params.max_clock_skew_ms)
                    .saturating_add(config.propose_grace_ms),
                period_ms: params.checkpoint_period_ms,
            }),
            // `finish_height` supplies the set of every height two ahead.
            await_each_set: true,
            ..EngineConfig::new(network, network)
        };
        let applied = ledger.next_height; // consensus heights 1..=applied are applied
        // The engine resumes after the last decided height (even if the ledger snapshot is
        // older: the decided queue re-applies those heights below).
        let persisted = Persisted {
            decided: decided.clone(),
            wal: restore.wal,
        };
        // A replica not configured as a validator follows consensus under a key outside every
        // validator set: it verifies and applies decisions but never signs, even when its own
        // key is bonded.
        let engine_key = if config.validator {
            key.clone()
        } else {
            observer_key(&key)
        };
        let (engine, engine_effects) =
            Engine::restore(engine_config, engine_key, sets, persisted, now_ms)?;
        // The last applied checkpoint (the engine may have decided later ones, re-applied
        // from the decided queue below).
        let tip = decided
            .iter()
            .find(|d| d.height() == applied)
            .map(|d| d.id().0)
            .unwrap_or(network);
        let ae = antientropy::AntiEntropy::new(config.anti_entropy, config.seed);
        let mut r = Replica {
            network,
            genesis: chorus_protocol::codec::encode(genesis).into(),
            state_served_ms: None,
            state_parts: (0, 0),
            key,
            config,
            ledger,
            windows: BTreeMap::new(),
            slots: BTreeMap::new(),
            keys: Default::default(),
            engine,
            decided_queue: BTreeMap::new(),
            stalled: None,
            certified: BTreeMap::new(),
            head_lists: BTreeMap::new(),
            validations: BTreeMap::new(),
            need_value: None,
            last_reconcile: None,
            last_decision_at: None,
            resumed_at: None,
            prepared: BTreeMap::new(),
            tip,
            inferred: BTreeMap::new(),
            ae,
            sync_sessions: BTreeMap::new(),
            reported_conflicts: BTreeMap::new(),
            offences: Default::default(),
            clock: Default::default(),
            bundles_applied_at: BTreeMap::new(),
        };
        // Registered workers and reputers sign every epoch: decompress their keys once.
        r.keys.admit(
            r.ledger
                .topics
                .values()
                .flat_map(|t| t.workers.iter().chain(t.reputers.iter())),
        );
        for (key, bytes) in restore.envelopes {
            r.restore_envelope(key, &bytes);
        }
        for (key, mut heads) in restore.heads {
            heads.sort();
            heads.dedup();
            r.keep_head_list(key, heads);
        }
        for d in decided.into_iter().filter(|d| d.height() > applied) {
            r.queue_decided(d);
        }
        let mut out = vec![];
        r.engine_effects(engine_effects, now_ms, &mut out);
        r.apply_decided_queue(now_ms, &mut out);
        Ok((r, out))
    }

    /// Handle one input at time `now_ms`.
    pub fn handle(&mut self, input: Input, now_ms: u64) -> Vec<Effect> {
        let mut out = vec![];
        match input {
            Input::Gossip {
                channel,
                bytes,
                from,
            } => {
                if channel == ChannelKind::Consensus {
                    self.consensus_gossip(from, &bytes, now_ms, &mut out);
                } else {
                    self.gossip(channel, &bytes, from, now_ms, &mut out);
                }
            }
            Input::Publish(payload) => self.publish(payload, now_ms, &mut out),
            Input::PublishSigned(bytes) => self.publish_signed(bytes, now_ms, &mut out),
            Input::Timer(id) => {
                let effects = self
                    .engine
                    .handle(crate::checkpoint::Input::TimerFired(id), now_ms);
                self.engine_effects(effects, now_ms, &mut out);
            }
            Input::Tick => self.tick(now_ms, &mut out),
            Input::PeerUp(peer) => self.peer_up(peer),
            Input::PeerDown(peer) => self.peer_down(peer),
            Input::Request { from, id, request } => {
                self.on_request(from, id, request, now_ms, &mut out)
            }
            Input::Response { id, from, response } => {
                self.on_response(id, from, response, now_ms, &mut out)
            }
            Input::RequestFailed(id) => self.request_failed(id),
        }
        out
    }

    /// Our key.
    pub fn public_key(&self) -> PublicKey {
        self.key.public()
    }

    /// The network.
    pub fn network(&self) -> NetworkId {
        self.network
    }

    /// The decided height this replica cannot apply, and why: it is stuck before it (a state
    /// that differs from what > 2/3 of the stake certified; restore a backup or resync).
    pub fn stalled(&self) -> Option<(u64, &str)> {
        self.stalled.as_ref().map(|(h, r)| (*h, r.as_str()))
    }

    /// `[open, close)` of the reputer window of `epoch` in `topic` for reports arriving here
    /// live: the topic's own window, closing an epoch after this replica applied the
    /// checkpoint that finalized the epoch's bundle if that is later. Reputers can report only
    /// once they have the finalized bundle; when checkpoints run late (load, a partition that
    /// healed), a fixed close would refuse every report of the epochs they finalized late, and
    /// those epochs would never be scored or paid. What this replica admits is its own call
    /// (it need not agree with its peers): what is finalized is what a checkpoint names, and
    /// the height that finalizes the window still comes when the topic says.
    pub fn reputer_window(&self, topic: TopicId, epoch: u64) -> Option<(u64, u64)> {
        let t = self.ledger.topics.get(&topic)?;
        let (open, close) = t.spec.reputer_window(epoch);
        let close = match self.bundles_applied_at.get(&(topic, epoch)) {
            Some(at) => close.max(at.saturating_add(t.spec.epoch_length_ms)),
            None => close,
        };
        Some((open, close))
    }

    /// Everything finalized so far.
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// The next consensus height to decide.
    pub fn consensus_height(&self) -> u64 {
        self.engine.height()
    }

    /// The id of the last applied checkpoint.
    pub fn tip(&self) -> Hash32 {
        self.tip
    }

    /// The engine (read-only: decided history, stats).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// An open window.
    pub fn window(&self, key: &WindowKey) -> Option<&Window> {
        self.windows.get(key)
    }

    /// Keys of the open windows.
    pub fn window_keys(&self) -> Vec<WindowKey> {
        self.windows.keys().copied().collect()
    }

    /// Held windows whose submission period (plus the skew allowance) is over and that are not
    /// finalized: their content should no longer change, so peers reconcile them.
    pub fn closed_window_keys(&self, now_ms: u64) -> Vec<WindowKey> {
        self.windows
            .keys()
            .filter(|k| self.ledger.window_state(k, now_ms) == crate::ledger::WindowState::Closed)
            .copied()
            .collect()
    }

    fn tick(&mut self, now_ms: u64, out: &mut Vec<Effect>) {
        for w in self.windows.values_mut() {
            w.flush();
        }
        self.local_inferences(now_ms, out);
        self.report_due_evidence(now_ms, out);
        self.anti_entropy_tick(now_ms, out);
        self.try_propose(now_ms, out);
        self.retry_validations(now_ms, out);
        self.apply_decided_queue(now_ms, out);
    }
}
