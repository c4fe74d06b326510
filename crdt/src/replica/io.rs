//! What flows in and out of a replica: its tunables, inputs, effects and events.

use chorus_protocol::ids::{Hash32, MessageId, TopicId};
use chorus_protocol::inference::NetworkInference;
use chorus_protocol::messages::Payload;
use chorus_protocol::validation::ChannelKind;

use super::PeerKey;
use super::antientropy::AntiEntropyConfig;
use super::wire::{InboundId, Request, RequestId, Response, StoreQuery};
use crate::checkpoint::{CheckpointId, DecidedCheckpoint, TimeoutConfig, TimerId, WalRecord};
use crate::ledger::LedgerEvent;
use crate::window::WindowKey;

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
    /// Anti-entropy tunables.
    pub anti_entropy: AntiEntropyConfig,
    /// Seeds the choice of anti-entropy peers and windows (the node draws it at start, the
    /// simulator derives it from its seed): not predictable by a peer, repeatable in tests.
    pub seed: u64,
    /// A checkpoint the operator trusts, `(height, id)`: a chain whose checkpoint of that
    /// height has another id is not followed (weak subjectivity).
    pub trusted_checkpoint: Option<(u64, Hash32)>,
}

impl ReplicaConfig {
    /// The trusted checkpoint's id, if `d` is of its height and has another id.
    pub fn contradicts_trusted(&self, d: &crate::checkpoint::DecidedCheckpoint) -> Option<Hash32> {
        self.trusted_checkpoint
            .filter(|(height, id)| *height == d.height() && *id != d.id().0)
            .map(|(_, id)| id)
    }
}

impl Default for ReplicaConfig {
    fn default() -> Self {
        ReplicaConfig {
            // One gossip round trip on a LAN with margin.
            propose_grace_ms: 200,
            timeouts: TimeoutConfig::default(),
            validator: true,
            anti_entropy: AntiEntropyConfig::default(),
            seed: 0,
            trusted_checkpoint: None,
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
    /// Sign this payload with our key and publish it.
    Publish(Payload),
    /// Publish an envelope someone signed (e.g. posted to the REST API by the CLI).
    PublishSigned(Vec<u8>),
    /// A consensus timer fired.
    Timer(TimerId),
    /// Periodic work: flush windows, local inferences, proposals, anti-entropy rounds and
    /// request timeouts. Call every few tens of ms.
    Tick,
    /// A connection to a peer opened (the first one, if several).
    PeerUp(PeerKey),
    /// The last connection to a peer closed.
    PeerDown(PeerKey),
    /// A peer's request (answer with the `Effect::Respond` or `Effect::Serve` of this id).
    Request {
        /// The peer.
        from: PeerKey,
        /// The host's id of the request.
        id: InboundId,
        /// What it asks.
        request: Request,
    },
    /// The answer to one of our `Effect::Request`s.
    Response {
        /// Our request's id.
        id: RequestId,
        /// The peer that answered.
        from: PeerKey,
        /// The answer.
        response: Response,
    },
    /// One of our requests could not be sent or answered.
    RequestFailed(RequestId),
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
        /// The bundle (combined value, weights; the one-out values come with finalization).
        bundle: Box<NetworkInference>,
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
        bundles: Vec<(TopicId, u64, NetworkInference)>,
        /// The outlier-resistant bundles among them that differ from the regular one.
        outlier_bundles: Vec<(TopicId, u64, NetworkInference)>,
        /// The validator set of height `height + 2` (what checkpoint `height + 1` commits to),
        /// for the proofs a node serves.
        next_validators: Vec<crate::proof::ProofValidator>,
    },
    /// A late proposal waits while windows are reconciled with peers.
    Reconciling {
        /// Windows compared.
        windows: usize,
        /// Peers asked.
        peers: usize,
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
    /// Our turn to propose was passed up: our clock is farther from the peers' than the
    /// network allows ([`Replica::clock_off`](super::Replica::clock_off)).
    ClockOff {
        /// The height.
        height: u64,
        /// The round.
        round: u32,
        /// Peers' median clock minus ours, ms.
        offset_ms: i64,
    },
    /// Something is wrong inside this replica (not a peer's fault).
    Fault(String),
    /// A decided checkpoint does not apply to this replica's state: it applies nothing more
    /// until restarted (see [`Replica::stalled`](super::Replica::stalled)).
    Stalled {
        /// The height that does not apply.
        height: u64,
        /// Why.
        reason: String,
    },
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
    /// Send a request to one peer; its answer comes back as `Input::Response` with this id
    /// (or `Input::RequestFailed`).
    Request {
        /// Correlates the answer.
        id: RequestId,
        /// The peer.
        to: PeerKey,
        /// What to ask.
        request: Request,
    },
    /// Answer a peer's request.
    Respond {
        /// The request's id (from `Input::Request`).
        id: InboundId,
        /// The answer.
        response: Response,
    },
    /// Answer a peer's request from the store: run the query, send its result.
    Serve {
        /// The request's id (from `Input::Request`).
        id: InboundId,
        /// What to read.
        query: StoreQuery,
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
    /// Persist the head lists of the windows a height finalized (by window; strictly
    /// ascending change hashes; by window id), before its ledger snapshot: peers catching up ask for them
    /// by root ([`StoreQuery::Heads`]), and a restart re-applies stored heights with them.
    PersistHeads(Vec<(Hash32, Vec<Hash32>)>),
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
    /// Answer a catch-up request from storage (height older than what is in memory).
    ServeCatchUp {
        /// Peer.
        peer: PeerKey,
        /// Height.
        height: u64,
    },
    /// A peer sent something it should have refused itself.
    Penalize {
        /// Peer.
        peer: PeerKey,
        /// What it did.
        offence: Offence,
    },
    /// An event.
    Event(ReplicaEvent),
}

/// What a peer did wrong, kept typed all the way to its penalty (scored by kind,
/// [`Offence::weight`]).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Offence {
    /// Sync or fetch offered entries that fail admission provably (the first reason).
    InvalidEntries {
        /// How many.
        count: usize,
        /// The first rejection reason.
        reason: chorus_protocol::validation::RejectReason,
    },
    /// A sync message that cannot be used at all.
    MalformedSync(String),
    /// A head list that is not the one asked for (wrong root, count or order).
    BadHeads,
    /// A direct consensus message that does not decode.
    MalformedConsensus(String),
    /// Misbehaviour the consensus engine found.
    Consensus(crate::checkpoint::Offence),
}

impl Offence {
    /// The stable name of its kind (metrics, logs).
    pub fn kind(&self) -> &'static str {
        match self {
            Offence::InvalidEntries { .. } => "invalid_entries",
            Offence::MalformedSync(_) => "malformed_sync",
            Offence::BadHeads => "bad_heads",
            Offence::MalformedConsensus(_) => "malformed_consensus",
            Offence::Consensus(_) => "consensus",
        }
    }

    /// How heavily it counts against the peer, relative to one invalid gossip message: a
    /// batch of invalid entries counts per entry (capped), a malformed message once.
    pub fn weight(&self) -> f64 {
        match self {
            Offence::InvalidEntries { count, .. } => (*count).min(8) as f64,
            Offence::MalformedSync(_) | Offence::MalformedConsensus(_) | Offence::BadHeads => 1.0,
            Offence::Consensus(_) => 2.0,
        }
    }
}

impl std::fmt::Display for Offence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Offence::InvalidEntries { count, reason } => {
                write!(
                    f,
                    "{count} invalid entr{} ({reason})",
                    if *count == 1 { "y" } else { "ies" }
                )
            }
            Offence::MalformedSync(e) => write!(f, "sync message: {e}"),
            Offence::MalformedConsensus(e) => write!(f, "consensus message: {e}"),
            Offence::BadHeads => f.write_str("a head list that is not the one asked for"),
            Offence::Consensus(o) => write!(f, "consensus: {o:?}"),
        }
    }
}
