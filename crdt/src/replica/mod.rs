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

mod consensus;
pub mod duties;
mod ingest;
#[cfg(any(test, feature = "sim"))]
pub mod sim;
mod sync;
mod view;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};

use chorus_protocol::genesis::Genesis;
use chorus_protocol::ids::{Hash32, MessageId, NetworkId, TopicId};
use chorus_protocol::keys::{Keypair, PublicKey};
use chorus_protocol::math::synth_io::SynthJsonOutput;
use chorus_protocol::messages::Payload;
use chorus_protocol::validation::{ChannelKind, Slot};

use crate::checkpoint::{
    Checkpoint, CheckpointId, DecidedCheckpoint, Engine, EngineConfig, EngineError, Persisted,
    StartSchedule, TimeoutConfig, TimerId, ValidatorSet, WalRecord,
};
use crate::ledger::{Ledger, LedgerError, LedgerEvent};
use crate::window::{Window, WindowKey};

/// A peer, named by its key (the node maps it to a libp2p peer id).
pub type PeerKey = PublicKey;

/// Tunables of a replica.
#[derive(Clone, Debug, PartialEq)]
pub struct ReplicaConfig {
    /// Wait after a period ends before proposing its checkpoint (ms), on top of the clock-skew
    /// allowance: lets the last entries of the period arrive.
    pub propose_grace_ms: u64,
    /// Consensus timeouts.
    pub timeouts: TimeoutConfig,
    /// Whether this replica takes part in consensus as a validator (it must also be bonded).
    pub validator: bool,
}

impl Default for ReplicaConfig {
    fn default() -> Self {
        ReplicaConfig {
            // One gossip round trip on a LAN with margin.
            propose_grace_ms: 200,
            timeouts: TimeoutConfig::default(),
            validator: true,
        }
    }
}

/// What flows into a replica.
#[derive(Clone, Debug)]
pub enum Input {
    /// A gossip message on one of our channels.
    Gossip {
        /// The channel kind.
        channel: ChannelKind,
        /// The message bytes (an envelope, or a consensus message on the consensus channel).
        bytes: Vec<u8>,
        /// The peer that delivered it.
        from: PeerKey,
    },
    /// A consensus message sent to us directly (catch-up).
    Direct {
        /// Sender.
        from: PeerKey,
        /// Bytes.
        bytes: Vec<u8>,
    },
    /// Sign this payload with our key and publish it.
    Publish(Payload),
    /// Publish an envelope someone signed (e.g. posted to the REST API by the CLI).
    PublishSigned(Vec<u8>),
    /// A consensus timer fired.
    Timer(TimerId),
    /// Periodic work: flush windows, local inferences, proposals. Call every few tens of ms.
    Tick,
    /// An automerge sync message for a window from a peer (request or reply).
    SyncMessage {
        /// The peer.
        from: PeerKey,
        /// The window.
        window: WindowKey,
        /// The message.
        bytes: Vec<u8>,
    },
    /// Envelopes of a window, fetched from a peer.
    WindowEntries {
        /// The window.
        window: WindowKey,
        /// Envelope bytes.
        envelopes: Vec<Vec<u8>>,
        /// Who sent them.
        from: PeerKey,
    },
}

/// What a gossip message turned out to be (for gossipsub's validation report).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Valid: relay.
    Accept,
    /// Drop without penalty.
    Ignore,
    /// Drop and penalise.
    Reject,
}

/// Something the node (or simulator) should know about.
#[derive(Clone, Debug, PartialEq)]
pub enum ReplicaEvent {
    /// A worker window closed here: this replica's own network inference (before
    /// finalization; consumers see it at once).
    LocalInference {
        /// Topic.
        topic: TopicId,
        /// Epoch.
        epoch: u64,
        /// Combined value.
        combined: f64,
        /// Inferers counted.
        inferers: usize,
    },
    /// A checkpoint was applied.
    Finalized {
        /// Consensus height.
        height: u64,
        /// Its id.
        id: CheckpointId,
        /// The ledger root after it.
        ledger_root: Hash32,
        /// What the ledger did.
        events: Vec<LedgerEvent>,
        /// The finalized network inference bundle of each `NetworkInference` event, taken
        /// when this height was applied (later heights settle and drop them from the ledger).
        bundles: Vec<(TopicId, u64, SynthJsonOutput)>,
    },
    /// Our gossip submission was accepted (locally) or refused.
    Submitted {
        /// Message id.
        id: MessageId,
        /// The kind of payload.
        kind: &'static str,
        /// Refusal reason, if refused.
        refused: Option<String>,
    },
    /// Something is wrong inside this replica (not a peer's fault).
    Fault(String),
}

/// What flows out of a replica. Carry out in order: a `WalAppend` must be durable before any
/// later `Broadcast`/`SendConsensus`; `Persist` before the entries count as acknowledged.
#[derive(Clone, Debug)]
pub enum Effect {
    /// Tell gossip what a message was.
    Report {
        /// Gossip message id (blake3 of the bytes).
        id: MessageId,
        /// The delivering peer.
        from: PeerKey,
        /// The outcome.
        outcome: Outcome,
        /// The validation reason (`""` for accepted), for metrics.
        reason: &'static str,
        /// The channel it arrived on.
        channel: ChannelKind,
    },
    /// Gossip bytes on a channel.
    Broadcast {
        /// Channel.
        channel: ChannelKind,
        /// Bytes.
        bytes: Vec<u8>,
    },
    /// Send consensus bytes to one peer.
    SendConsensus {
        /// Peer.
        to: PeerKey,
        /// Bytes.
        bytes: Vec<u8>,
    },
    /// Persist envelopes with their windows (acknowledged once done).
    Persist(Vec<(WindowKey, Vec<u8>)>),
    /// Persist a consensus WAL record (before any later send).
    WalAppend(WalRecord),
    /// WAL records below this height may go.
    WalTruncate {
        /// Lowest height to keep.
        keep_from_height: u64,
    },
    /// Persist a decided checkpoint with its certificate.
    PersistDecided(DecidedCheckpoint),
    /// Persist a ledger snapshot (after applying `height`, a consensus height).
    PersistLedger {
        /// Consensus height.
        height: u64,
        /// The ledger snapshot (`Ledger::to_snapshot`; decode with `Ledger::from_snapshot`).
        bytes: Vec<u8>,
    },
    /// Arm a timer.
    ScheduleTimer {
        /// Id.
        id: TimerId,
        /// Deadline.
        at_ms: u64,
    },
    /// Disarm a timer.
    CancelTimer(TimerId),
    /// Disarm every timer.
    CancelAllTimers,
    /// Our next automerge sync message for a window to a peer (`None`: we are done). In reply
    /// to a request, send it as the response; otherwise as a new request.
    SyncReply {
        /// The peer.
        to: PeerKey,
        /// The window.
        window: WindowKey,
        /// The message, or `None` when this side has nothing more to say.
        message: Option<Vec<u8>>,
    },
    /// Compare these windows' roots with every connected peer now and sync the ones that
    /// differ (we are about to propose a late checkpoint: after a partition or a stall, the
    /// other side's entries must reach the proposal).
    Reconcile {
        /// The windows the proposal will finalize.
        windows: Vec<WindowKey>,
    },
    /// Fetch every envelope a peer holds for a window (answer with `Input::WindowEntries`).
    FetchWindow {
        /// The window.
        window: WindowKey,
        /// A peer that should have it (`None`: any).
        from: Option<PeerKey>,
    },
    /// Answer a catch-up request from storage (height older than what is in memory).
    ServeCatchUp {
        /// Peer.
        peer: PeerKey,
        /// Height.
        height: u64,
    },
    /// A peer misbehaved at the consensus layer.
    Penalize {
        /// Peer.
        peer: PeerKey,
        /// What it did.
        reason: String,
    },
    /// An event.
    Event(ReplicaEvent),
}

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
}

/// Bound on proposals validated or built but not yet decided (each holds a ledger copy).
const MAX_PREPARED: usize = 8;

/// A window fetch unanswered for this long is asked again (ms): the request or the response
/// may have been lost, or the peer may have gone away, and a decided checkpoint waiting for
/// the window must not wait forever. A few round trips.
const FETCH_RETRY_MS: u64 = 1_000;

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
    /// The latest local inference per topic.
    local_inference: BTreeMap<TopicId, (u64, SynthJsonOutput)>,
    /// Windows requested from peers and not yet answered, with when they were asked.
    fetching: BTreeMap<WindowKey, u64>,
    /// Automerge sync sessions, per peer and window.
    sync_sessions: BTreeMap<(PeerKey, WindowKey), crate::window::sync::SyncSession>,
    /// Slots whose conflict this replica already reported.
    reported_conflicts: BTreeSet<Slot>,
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
pub fn validator_set(ledger: &Ledger) -> Result<ValidatorSet, ReplicaError> {
    ValidatorSet::from_bonds(&ledger.bonds()).map_err(|e| ReplicaError::ValidatorSet(e.to_string()))
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
        let mut r = Replica {
            network,
            key,
            config,
            ledger,
            windows: BTreeMap::new(),
            slots: BTreeMap::new(),
            keys: Default::default(),
            engine,
            decided_queue: BTreeMap::new(),
            validations: BTreeMap::new(),
            need_value: None,
            last_reconcile: None,
            last_decision_at: None,
            resumed_at: None,
            prepared: BTreeMap::new(),
            tip,
            inferred: BTreeMap::new(),
            local_inference: BTreeMap::new(),
            fetching: BTreeMap::new(),
            sync_sessions: BTreeMap::new(),
            reported_conflicts: BTreeSet::new(),
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
        for d in decided.into_iter().filter(|d| d.height() > applied) {
            r.decided_queue.insert(d.height(), d);
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
                    self.consensus_bytes(from, &bytes, now_ms, &mut out);
                    out.push(Effect::Report {
                        id: Hash32::of(&bytes),
                        from,
                        outcome: Outcome::Accept,
                        reason: "",
                        channel,
                    });
                } else {
                    self.gossip(channel, &bytes, from, now_ms, &mut out);
                }
            }
            Input::Direct { from, bytes } => self.consensus_bytes(from, &bytes, now_ms, &mut out),
            Input::Publish(payload) => self.publish(payload, now_ms, &mut out),
            Input::PublishSigned(bytes) => self.publish_signed(bytes, now_ms, &mut out),
            Input::Timer(id) => {
                let effects = self
                    .engine
                    .handle(crate::checkpoint::Input::TimerFired(id), now_ms);
                self.engine_effects(effects, now_ms, &mut out);
            }
            Input::Tick => self.tick(now_ms, &mut out),
            Input::WindowEntries {
                window,
                envelopes,
                from,
            } => self.window_entries(window, envelopes, from, now_ms, &mut out),
            Input::SyncMessage {
                from,
                window,
                bytes,
            } => {
                let message = self.sync_message(from, window, &bytes, now_ms, &mut out);
                if message.is_none() {
                    self.sync_close(from, window);
                }
                out.push(Effect::SyncReply {
                    to: from,
                    window,
                    message,
                });
                self.retry_validations(now_ms, &mut out);
                self.apply_decided_queue(now_ms, &mut out);
            }
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

    /// Open windows whose submission period (plus the skew allowance) is over: their content
    /// should no longer change, so peers reconcile them (anti-entropy) before finalization.
    pub fn closed_window_keys(&self, now_ms: u64) -> Vec<WindowKey> {
        let skew = self.ledger.params.max_clock_skew_ms;
        self.windows
            .keys()
            .filter(|k| {
                let close = match **k {
                    WindowKey::Ledger { period } => self.ledger.period_end(period),
                    WindowKey::Topic {
                        topic,
                        epoch,
                        phase,
                    } => match self.ledger.topics.get(&topic) {
                        None => return false,
                        Some(t) => match phase {
                            crate::window::Phase::Workers => t.spec.worker_window(epoch).1,
                            crate::window::Phase::Reputers => t.spec.reputer_window(epoch).1,
                        },
                    },
                };
                close.saturating_add(skew) <= now_ms
            })
            .copied()
            .collect()
    }

    /// The latest local (not yet finalized) inference of a topic.
    pub fn local_inference(&self, topic: TopicId) -> Option<&(u64, SynthJsonOutput)> {
        self.local_inference.get(&topic)
    }

    fn tick(&mut self, now_ms: u64, out: &mut Vec<Effect>) {
        for w in self.windows.values_mut() {
            w.flush();
        }
        self.local_inferences(now_ms, out);
        self.try_propose(now_ms, out);
        self.retry_validations(now_ms, out);
        self.apply_decided_queue(now_ms, out);
    }
}
