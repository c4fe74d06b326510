//! A deterministic, virtual-time network of replicas (tests and `chorus-testbeds sim`).
//!
//! Every node is a [`Replica`] with a simulated store (what it persisted), its timers and a
//! clock skew. What the harness models:
//!
//! - **Latency, loss, duplication, reordering** ([`NetConfig`]): each message gets a seeded
//!   uniform delay in `[min_delay_ms, max_delay_ms]`, so messages between two nodes overtake
//!   each other freely; a `reorder` fraction are stragglers delayed by up to four times the
//!   largest delay more; a `loss` fraction is dropped, a `duplicate` fraction delivered twice.
//! - **Gossip relay**: a node relays every gossip message its replica accepted to all its
//!   peers (gossipsub forwarding after validation; the replica ignores what it already holds,
//!   so each node relays a message once). Consensus messages are not relayed: the engine sends
//!   them to every peer and re-broadcasts its latest votes on a timer.
//! - **Anti-entropy** is the replica's own ([`super::antientropy`]): the simulator carries its
//!   requests and answers like any message (latency, loss, partitions) and tells each replica
//!   which peers it is connected to (`Input::PeerUp`/`PeerDown` on partitions, heals, crashes
//!   and restarts), exactly as the node does. It has no anti-entropy of its own.
//! - **Partitions and heals** ([`Sim::partition`], [`Sim::set_links`], [`Sim::heal`]):
//!   messages are dropped at send time between nodes that cannot talk.
//! - **Crash and restart** ([`Sim::crash`], [`Sim::start`]): a crash loses everything not
//!   persisted; a restart rebuilds the replica from its [`SimStore`] (ledger snapshot,
//!   decided checkpoints, WAL, envelopes).
//! - **Clock skew** ([`Sim::set_skew`]): a node's clock is the global time plus its skew;
//!   its inputs carry its own time and its timers fire when its own clock reaches them.
//! - **Byzantine behaviours** ([`SimRoles`], [`byzantine`]): equivocating workers and
//!   validators, bad-root proposers, garbage peers, and colluding equivocators as *twins*
//!   (one key, two replicas; [`Sim::add_twin`]) in two halves of a split network.
//!
//! The same seed gives the same trace, byte for byte ([`Sim::trace`]). [`Sim::step`] processes
//! one thing at a time (a delivery, a timer, or a tick of every node) so a driver can check
//! invariants after each; what happened is in [`Sim::take_events`].

pub mod byzantine;
mod carry;
mod genesis;
mod rng;
mod roles;

pub use genesis::{SIM_GENESIS_MS, SIM_MAX_CLOCK_SKEW_MS, SIM_PERIOD_MS, SIM_TOPIC, sim_genesis};

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, VecDeque};

use chorus_protocol::genesis::Genesis;
use chorus_protocol::ids::{Hash32, MessageId};
use chorus_protocol::keys::{Keypair, PublicKey};
use chorus_protocol::validation::ChannelKind;

pub use rng::SimRng;
pub use roles::{SimRoles, sim_truth};

use super::wire::{Request, RequestId, Response};
use super::{Input, Outcome, Replica, ReplicaConfig, Restore};
use crate::checkpoint::{CheckpointId, DecidedCheckpoint, TimerId, WalRecord};
use crate::ledger::Ledger;
use crate::window::WindowKey;

/// Network behaviour.
#[derive(Clone, Debug, PartialEq)]
pub struct NetConfig {
    /// Smallest one-way latency (ms).
    pub min_delay_ms: u64,
    /// Largest one-way latency (ms).
    pub max_delay_ms: u64,
    /// Probability a message is lost.
    pub loss: f64,
    /// Probability a message is delivered twice.
    pub duplicate: f64,
    /// Probability a message is a straggler, delayed by up to `4 × max_delay_ms` more.
    pub reorder: f64,
    /// Node tick (ms).
    pub tick_ms: u64,
    /// Whether nodes relay the gossip messages they accept (gossipsub forwarding).
    pub relay: bool,
}

impl Default for NetConfig {
    fn default() -> Self {
        NetConfig {
            min_delay_ms: 2,
            max_delay_ms: 30,
            loss: 0.0,
            duplicate: 0.0,
            reorder: 0.0,
            tick_ms: 20,
            relay: true,
        }
    }
}

/// Replica tunables for one-second checkpoint periods on a LAN-like simulated network:
/// consensus timeouts scaled to the period, anti-entropy rounds every half period (delays
/// stay under half a second). Each node's seed is derived from the simulator's.
pub fn replica_config() -> ReplicaConfig {
    ReplicaConfig {
        propose_grace_ms: 100,
        timeouts: crate::checkpoint::TimeoutConfig {
            propose_ms: 500,
            propose_delta_ms: 100,
            prevote_ms: 200,
            prevote_delta_ms: 100,
            precommit_ms: 200,
            precommit_delta_ms: 100,
            rebroadcast_ms: 1_000,
            max_ms: 5_000,
        },
        validator: true,
        anti_entropy: super::AntiEntropyConfig {
            round_ms: 500,
            request_timeout_ms: 1_000,
        },
        seed: 0,
        trusted_checkpoint: None,
    }
}

/// What a node persisted.
#[derive(Clone, Debug, Default)]
pub struct SimStore {
    /// Envelopes by window.
    pub envelopes: BTreeMap<WindowKey, Vec<Vec<u8>>>,
    /// Decided checkpoints.
    pub decided: BTreeMap<u64, DecidedCheckpoint>,
    /// WAL.
    pub wal: Vec<WalRecord>,
    /// Latest ledger snapshot.
    pub ledger: Option<(u64, Vec<u8>)>,
    /// Head lists of finalized windows, by window id.
    pub heads: BTreeMap<Hash32, Vec<Hash32>>,
}

/// One simulated node.
pub struct SimNode {
    /// Its key.
    pub key: Keypair,
    /// The replica (None while crashed).
    pub replica: Option<Replica>,
    /// What it persisted.
    pub store: SimStore,
    /// Armed timers, at deadlines on this node's clock.
    pub timers: BTreeMap<TimerId, u64>,
    /// Clock offset (ms) added to the global time for this node ([`Sim::set_skew`]).
    pub skew_ms: i64,
    /// Partition group (nodes talk only within their group, unless links are set).
    pub group: u32,
    /// Epochs already submitted per topic (worker) / reported (reputer).
    pub submitted: BTreeSet<(chorus_protocol::ids::TopicId, u64, bool)>,
    /// The node this one is a twin of (same key), if any.
    pub twin_of: Option<usize>,
    next_garbage: u64,
    recent: VecDeque<(ChannelKind, Vec<u8>)>,
    /// Requests from peers not answered yet: inbound id → (requesting node, its request id).
    inbound: BTreeMap<u64, (usize, RequestId)>,
    next_inbound: u64,
    /// The peers its replica was told it is connected to.
    told: BTreeSet<PublicKey>,
}

#[derive(Clone, Debug)]
enum Delivery {
    Gossip {
        to: usize,
        from: usize,
        channel: ChannelKind,
        bytes: Vec<u8>,
    },
    Request {
        to: usize,
        from: usize,
        id: RequestId,
        request: Request,
    },
    Response {
        to: usize,
        from: usize,
        id: RequestId,
        response: Response,
    },
}

/// Counters of a run (summed over runs with `+=`).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct SimStats {
    /// Messages sent.
    pub sent: u64,
    /// Messages lost (loss, partitions, crashed receivers).
    pub lost: u64,
    /// Faults reported by replicas.
    pub faults: u64,
    /// Bundles submitted by workers and reputers.
    pub submitted: u64,
    /// Heights finalized (max over nodes).
    pub finalized: u64,
    /// Gossip messages relayed.
    pub relayed: u64,
    /// Gossip messages a replica rejected (penalised).
    pub rejected: u64,
    /// Consensus-layer or fetch misbehaviour penalties replicas raised.
    pub penalized: u64,
    /// Conflicting votes forged by equivocating validators.
    pub forged_votes: u64,
    /// Proposals sent with a bad root.
    pub forged_proposals: u64,
    /// Garbage messages sent.
    pub garbage_sent: u64,
    /// Reconciliations asked for before late proposals.
    pub reconciles: u64,
    /// Turns to propose passed up by replicas whose clock is off from their peers'.
    pub clock_off_passes: u64,
    /// Votes sent for heights far above the sender's (claims to be ahead nothing backs).
    pub forged_ahead: u64,
}

impl std::ops::AddAssign<&SimStats> for SimStats {
    fn add_assign(&mut self, o: &SimStats) {
        self.sent += o.sent;
        self.lost += o.lost;
        self.faults += o.faults;
        self.submitted += o.submitted;
        self.finalized += o.finalized;
        self.relayed += o.relayed;
        self.rejected += o.rejected;
        self.penalized += o.penalized;
        self.forged_votes += o.forged_votes;
        self.forged_proposals += o.forged_proposals;
        self.garbage_sent += o.garbage_sent;
        self.reconciles += o.reconciles;
        self.clock_off_passes += o.clock_off_passes;
        self.forged_ahead += o.forged_ahead;
    }
}

/// Something that happened, for checkers ([`Sim::take_events`]).
#[derive(Clone, Debug, PartialEq)]
pub enum SimEvent {
    /// Node `node` applied the checkpoint of `height`.
    Finalized {
        /// The node.
        node: usize,
        /// Consensus height.
        height: u64,
        /// Checkpoint id.
        id: CheckpointId,
        /// Ledger root after it.
        ledger_root: Hash32,
        /// Global virtual time.
        at_ms: u64,
    },
    /// A node broadcast a signed proposal (after its byzantine hooks).
    Proposed {
        /// The node.
        node: usize,
        /// Consensus height.
        height: u64,
        /// The proposed checkpoint's id.
        id: CheckpointId,
    },
    /// A replica reported a fault of its own (not a peer's).
    Fault {
        /// The node.
        node: usize,
        /// What it said.
        fault: String,
        /// Global virtual time.
        at_ms: u64,
    },
    /// An honest node's bundle was accepted by its own replica and gossiped.
    Submitted {
        /// The node.
        node: usize,
        /// The window it joined.
        window: WindowKey,
        /// The change hash of its entry (what a checkpoint's heads name).
        change: Hash32,
        /// Global virtual time.
        at_ms: u64,
    },
}

/// Node 0's view of what inference proofs need ([`crate::proof`]).
#[derive(Clone, Debug, Default)]
pub struct ProofLog {
    /// Height → the bundles it finalized.
    pub bundles: BTreeMap<
        u64,
        Vec<(
            chorus_protocol::ids::TopicId,
            u64,
            chorus_protocol::inference::NetworkInference,
        )>,
    >,
    /// Height → the outlier-resistant bundles among them that differ from the regular ones.
    pub outlier_bundles: BTreeMap<u64, Vec<crate::proof::Finalized>>,
    /// Checkpoint height → the validator set it commits to (the set of the height after it).
    pub committed_sets: BTreeMap<u64, Vec<crate::proof::ProofValidator>>,
}

/// The simulation.
pub struct Sim {
    /// Global virtual time (ms).
    pub now: u64,
    /// Nodes.
    pub nodes: Vec<SimNode>,
    /// Roles.
    pub roles: SimRoles,
    /// When true, nodes submit nothing new (drain phase).
    pub roles_paused: bool,
    /// Network behaviour.
    pub net: NetConfig,
    /// Counters.
    pub stats: SimStats,
    /// Fault messages seen.
    pub faults: Vec<String>,
    /// Finalization times: (node, height) → ms.
    pub finalized_at: BTreeMap<(usize, u64), u64>,
    /// What node 0 learned at each finalized height, for proof checks: the bundles it
    /// finalized, and the validator set the next checkpoint commits to (keyed by
    /// that checkpoint's height).
    pub proof_log: ProofLog,
    genesis: Genesis,
    /// `genesis.network_id()`, computed once (it encodes the whole genesis).
    network: chorus_protocol::ids::NetworkId,
    config: ReplicaConfig,
    seed: u64,
    rng: SimRng,
    /// Deliveries due, by (time, sequence number); the deliveries themselves in `in_flight`.
    queue: BinaryHeap<Reverse<(u64, u64)>>,
    in_flight: BTreeMap<u64, Delivery>,
    seq: u64,
    next_tick: u64,
    trace: blake3::Hasher,
    /// Explicit connectivity (`links[a][b]`), overriding groups while set.
    links: Option<Vec<Vec<bool>>>,
    events: Vec<SimEvent>,
    last_report: Option<(MessageId, Outcome)>,
}

impl Sim {
    /// A network of one node per key, all starting at `genesis_time_ms`.
    pub fn new(
        genesis: Genesis,
        keys: Vec<Keypair>,
        roles: SimRoles,
        net: NetConfig,
        config: ReplicaConfig,
        seed: u64,
    ) -> Result<Sim, super::ReplicaError> {
        let now = genesis.genesis_time_ms;
        let mut sim = Sim {
            now,
            nodes: vec![],
            roles,
            roles_paused: false,
            net,
            stats: SimStats::default(),
            faults: vec![],
            finalized_at: BTreeMap::new(),
            proof_log: ProofLog::default(),
            network: genesis.network_id(),
            genesis,
            config,
            seed,
            rng: SimRng::seeded(seed),
            queue: BinaryHeap::new(),
            in_flight: BTreeMap::new(),
            seq: 0,
            next_tick: now,
            trace: blake3::Hasher::new(),
            links: None,
            events: vec![],
            last_report: None,
        };
        for key in keys {
            sim.push_node(key, None);
        }
        for i in 0..sim.nodes.len() {
            sim.start(i)?;
        }
        Ok(sim)
    }

    fn push_node(&mut self, key: Keypair, twin_of: Option<usize>) -> usize {
        self.nodes.push(SimNode {
            key,
            replica: None,
            store: SimStore::default(),
            timers: BTreeMap::new(),
            skew_ms: 0,
            group: 0,
            submitted: BTreeSet::new(),
            twin_of,
            next_garbage: self.now,
            recent: VecDeque::new(),
            inbound: BTreeMap::new(),
            next_inbound: 0,
            told: BTreeSet::new(),
        });
        self.nodes.len() - 1
    }

    /// The genesis.
    pub fn genesis(&self) -> &Genesis {
        &self.genesis
    }

    /// A second replica with node `of`'s key, started now from a copy of `of`'s store and
    /// with its clock (a cloned validator: the two sign different things for one slot once
    /// they see different things). Returns its index. Put the two in different halves with
    /// [`Sim::set_links`] or [`Sim::partition`].
    pub fn add_twin(&mut self, of: usize) -> Result<usize, super::ReplicaError> {
        let key = self.nodes[of].key.clone();
        let i = self.push_node(key, Some(of));
        self.nodes[i].store = self.nodes[of].store.clone();
        self.nodes[i].skew_ms = self.nodes[of].skew_ms;
        self.nodes[i].submitted = self.nodes[of].submitted.clone();
        self.trace.update(&[0xD1, of as u8, i as u8]);
        self.start(i)?;
        Ok(i)
    }

    fn local_now(&self, i: usize) -> u64 {
        (self.now as i64 + self.nodes[i].skew_ms).max(0) as u64
    }

    /// Set node `i`'s clock offset from the global time (ms).
    pub fn set_skew(&mut self, i: usize, skew_ms: i64) {
        self.nodes[i].skew_ms = skew_ms;
        self.trace.update(&[0xAD, i as u8]);
        self.trace.update(&skew_ms.to_le_bytes());
    }

    /// (Re)start node `i` from its store.
    pub fn start(&mut self, i: usize) -> Result<(), super::ReplicaError> {
        let now = self.local_now(i);
        let store = &self.nodes[i].store;
        let ledger = store
            .ledger
            .as_ref()
            .and_then(|(h, bytes)| Ledger::from_snapshot(bytes).ok().map(|l| (*h, l)));
        let applied = ledger.as_ref().map_or(0, |(h, _)| *h);
        let restore = Restore {
            ledger,
            decided: store
                .decided
                .values()
                .filter(|d| d.height() + 256 > applied)
                .cloned()
                .collect(),
            wal: store.wal.clone(),
            envelopes: store
                .envelopes
                .iter()
                .flat_map(|(k, v)| v.iter().map(move |b| (*k, b.clone())))
                .collect(),
            heads: store.heads.iter().map(|(w, l)| (*w, l.clone())).collect(),
        };
        let config = ReplicaConfig {
            seed: chorus_protocol::rng::splitmix64(self.seed ^ (i as u64).wrapping_mul(0x100)),
            ..self.config.clone()
        };
        let (replica, effects) = Replica::new(
            &self.genesis,
            self.nodes[i].key.clone(),
            config,
            restore,
            now,
        )?;
        self.nodes[i].replica = Some(replica);
        self.nodes[i].timers.clear();
        self.nodes[i].inbound.clear();
        self.nodes[i].told.clear();
        self.trace.update(&[0xCD, i as u8]);
        self.carry_out(i, effects);
        self.update_peers();
        Ok(())
    }

    /// Crash node `i`: everything not persisted is lost.
    pub fn crash(&mut self, i: usize) {
        self.nodes[i].replica = None;
        self.nodes[i].timers.clear();
        self.trace.update(&[0xCC, i as u8]);
        self.update_peers();
    }

    /// Split the nodes into groups (`groups[i]` = group of node i).
    pub fn partition(&mut self, groups: &[u32]) {
        for (n, g) in self.nodes.iter_mut().zip(groups) {
            n.group = *g;
        }
        self.links = None;
        self.trace.update(&[0xAA]);
        for g in groups {
            self.trace.update(&g.to_le_bytes());
        }
        self.update_peers();
    }

    /// Explicit connectivity: `links[a][b]` says whether `a` can send to `b` (overrides the
    /// groups until [`Sim::heal`]). For splits that groups cannot express, e.g. twins that
    /// each reach one half of the honest nodes and all the other byzantine nodes.
    pub fn set_links(&mut self, links: Vec<Vec<bool>>) {
        self.trace.update(&[0xAB]);
        for row in &links {
            let bits: Vec<u8> = row.iter().map(|b| u8::from(*b)).collect();
            self.trace.update(&bits);
        }
        self.links = Some(links);
        self.update_peers();
    }

    /// Everyone in one group again.
    pub fn heal(&mut self) {
        for n in &mut self.nodes {
            n.group = 0;
        }
        self.links = None;
        self.trace.update(&[0xBB]);
        self.update_peers();
    }

    /// Whether `a` can send to `b` now.
    pub fn connected(&self, a: usize, b: usize) -> bool {
        match &self.links {
            Some(links) => links
                .get(a)
                .and_then(|row| row.get(b))
                .copied()
                .unwrap_or(false),
            None => self.nodes[a].group == self.nodes[b].group,
        }
    }

    /// A digest of everything that happened so far.
    pub fn trace(&self) -> Hash32 {
        Hash32(*self.trace.clone().finalize().as_bytes())
    }

    /// Deliver an automerge sync message for `window` from node `from` to node `to` (through
    /// the network: latency, loss, partitions apply). For hostile authors, whose crafted
    /// changes only the sync path carries.
    pub fn inject_sync(&mut self, from: usize, to: usize, window: WindowKey, bytes: Vec<u8>) {
        let request = Request::Sync {
            window,
            message: bytes,
        };
        self.send_request(from, to, RequestId(u64::MAX), request);
    }

    /// Deliver a gossip message on `channel` from node `from` to node `to` (through the
    /// network). For spammers, whose validly signed envelopes no honest replica publishes.
    pub fn inject_gossip(&mut self, from: usize, to: usize, channel: ChannelKind, bytes: Vec<u8>) {
        self.send(
            Delivery::Gossip {
                to,
                from,
                channel,
                bytes,
            },
            from,
            to,
        );
    }

    /// Node `i` signs `payload` with its key and publishes it through its replica, as a node
    /// publishes what its user submits (a ledger message, say). Whether the replica took it
    /// (`false` when the node is down or its replica refused the message).
    pub fn publish(&mut self, i: usize, payload: &chorus_protocol::messages::Payload) -> bool {
        let Some(node) = self.nodes.get(i) else {
            return false;
        };
        let bytes =
            chorus_protocol::envelope::Envelope::seal(&node.key, &self.network, payload).to_bytes();
        let Some(effects) = self.handle_now(i, super::Input::PublishSigned(bytes)) else {
            return false;
        };
        let taken = effects.iter().any(|e| {
            matches!(
                e,
                super::Effect::Event(super::ReplicaEvent::Submitted { refused: None, .. })
            )
        });
        self.carry_out(i, effects);
        taken
    }

    /// What happened since the last call.
    pub fn take_events(&mut self) -> Vec<SimEvent> {
        std::mem::take(&mut self.events)
    }

    fn send(&mut self, d: Delivery, from: usize, to: usize) {
        self.stats.sent += 1;
        if !self.connected(from, to) || self.nodes[to].replica.is_none() {
            self.stats.lost += 1;
            return;
        }
        if self.rng.chance(self.net.loss) {
            self.stats.lost += 1;
            return;
        }
        let copies = if self.rng.chance(self.net.duplicate) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let mut delay = self.rng.range(self.net.min_delay_ms, self.net.max_delay_ms);
            if self.rng.chance(self.net.reorder) {
                delay += self.rng.range(1, 4 * self.net.max_delay_ms.max(1));
            }
            self.seq += 1;
            self.queue.push(Reverse((self.now + delay, self.seq)));
            self.in_flight.insert(self.seq, d.clone());
        }
    }

    /// Gossip `bytes` from `i` to every other node except `except`.
    fn broadcast(&mut self, i: usize, except: Option<usize>, channel: ChannelKind, bytes: &[u8]) {
        for j in 0..self.nodes.len() {
            if j != i && Some(j) != except {
                self.send(
                    Delivery::Gossip {
                        to: j,
                        from: i,
                        channel,
                        bytes: bytes.to_vec(),
                    },
                    i,
                    j,
                );
            }
        }
    }

    /// Nodes holding `key` (twins share one), the ones `i` can reach first.
    fn nodes_of(&self, i: usize, key: &PublicKey) -> Vec<usize> {
        let mut v: Vec<usize> = (0..self.nodes.len())
            .filter(|&j| j != i && self.nodes[j].key.public() == *key)
            .collect();
        v.sort_by_key(|&j| !self.connected(i, j));
        v
    }

    /// The next timer due, as (global time, node, id): a node's timer fires when its own
    /// clock reaches the deadline.
    fn next_timer(&self) -> Option<(u64, usize, TimerId)> {
        self.nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| n.replica.is_some())
            .flat_map(|(i, n)| {
                n.timers.iter().map(move |(id, at)| {
                    let global = (*at as i64 - n.skew_ms).max(0) as u64;
                    (global, i, *id)
                })
            })
            .min()
    }

    /// Process the next thing due before `until_ms`: one delivery, one timer, or one tick of
    /// every node (roles, replica tick, anti-entropy, garbage). Returns false, with the clock
    /// at `until_ms`, once nothing is due before it.
    pub fn step(&mut self, until_ms: u64) -> bool {
        if self.now >= until_ms {
            return false;
        }
        let next_msg = self.queue.peek().map(|Reverse((t, _))| *t);
        let next_timer = self.next_timer();
        let mut t = self.next_tick.min(until_ms);
        if let Some(m) = next_msg {
            t = t.min(m);
        }
        if let Some((at, _, _)) = next_timer {
            t = t.min(at);
        }
        self.now = self.now.max(t);
        if self.now >= until_ms {
            return false;
        }
        if next_msg.is_some_and(|m| m <= self.now) {
            if let Some(d) = self
                .queue
                .pop()
                .and_then(|Reverse((_, seq))| self.in_flight.remove(&seq))
            {
                self.deliver(d);
            }
            return true;
        }
        if let Some((at, i, id)) = next_timer
            && at <= self.now
        {
            self.nodes[i].timers.remove(&id);
            self.input(i, Input::Timer(id));
            return true;
        }
        if self.next_tick <= self.now {
            self.next_tick = self.now + self.net.tick_ms;
            for i in 0..self.nodes.len() {
                self.roles(i);
                self.input(i, Input::Tick);
                if self.roles.garbage_peers.contains(&i)
                    && self.nodes[i].replica.is_some()
                    && self.nodes[i].next_garbage <= self.now
                {
                    self.nodes[i].next_garbage = self.now + byzantine::GARBAGE_EVERY_MS;
                    self.spew_garbage(i);
                }
            }
        }
        true
    }

    /// Advance virtual time until `until_ms`, processing everything due.
    pub fn run_until(&mut self, until_ms: u64) {
        while self.step(until_ms) {}
        self.now = self.now.max(until_ms);
    }

    /// The ledger root and the applied height of every running node.
    pub fn ledger_roots(&self) -> Vec<Option<(u64, Hash32)>> {
        self.nodes
            .iter()
            .map(|n| {
                n.replica
                    .as_ref()
                    .map(|r| (r.ledger().next_height, r.ledger().root()))
            })
            .collect()
    }
}
