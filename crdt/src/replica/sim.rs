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
//! - **Anti-entropy**: every `anti_entropy_ms` each node compares the roots of the open windows
//!   that it or a random peer holds and fetches every window whose roots differ.
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
mod rng;
mod roles;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, VecDeque};

use chorus_protocol::genesis::Genesis;
use chorus_protocol::ids::{Hash32, MessageId};
use chorus_protocol::keys::{Keypair, PublicKey};
use chorus_protocol::validation::ChannelKind;

pub use rng::SimRng;
pub use roles::{SimRoles, sim_truth};

use super::{Effect, Input, Outcome, Replica, ReplicaConfig, ReplicaEvent, Restore};
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
    /// Anti-entropy round interval per node (ms): compare open windows with a random peer.
    pub anti_entropy_ms: u64,
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
            anti_entropy_ms: 500,
            relay: true,
        }
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
    next_anti_entropy: u64,
    next_garbage: u64,
    recent: VecDeque<(ChannelKind, Vec<u8>)>,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Delivery {
    Gossip {
        to: usize,
        from: usize,
        channel: ChannelKind,
        bytes: Vec<u8>,
    },
    Direct {
        to: usize,
        from: usize,
        bytes: Vec<u8>,
    },
    Entries {
        to: usize,
        from: usize,
        window: WindowKey,
        envelopes: Vec<Vec<u8>>,
    },
    Fetch {
        server: usize,
        client: usize,
        window: WindowKey,
    },
    Sync {
        to: usize,
        from: usize,
        window: WindowKey,
        bytes: Vec<u8>,
    },
}

/// Counters of a run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
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
    genesis: Genesis,
    /// `genesis.network_id()`, computed once (it encodes the whole genesis).
    network: chorus_protocol::ids::NetworkId,
    config: ReplicaConfig,
    rng: SimRng,
    queue: BinaryHeap<Reverse<(u64, u64, Delivery)>>,
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
            network: genesis.network_id(),
            genesis,
            config,
            rng: SimRng::new(seed),
            queue: BinaryHeap::new(),
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
            next_anti_entropy: self.now,
            next_garbage: self.now,
            recent: VecDeque::new(),
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
        };
        let (replica, effects) = Replica::new(
            &self.genesis,
            self.nodes[i].key.clone(),
            self.config.clone(),
            restore,
            now,
        )?;
        self.nodes[i].replica = Some(replica);
        self.nodes[i].timers.clear();
        self.trace.update(&[0xCD, i as u8]);
        self.carry_out(i, effects);
        Ok(())
    }

    /// Crash node `i`: everything not persisted is lost.
    pub fn crash(&mut self, i: usize) {
        self.nodes[i].replica = None;
        self.nodes[i].timers.clear();
        self.trace.update(&[0xCC, i as u8]);
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
    }

    /// Everyone in one group again.
    pub fn heal(&mut self) {
        for n in &mut self.nodes {
            n.group = 0;
        }
        self.links = None;
        self.trace.update(&[0xBB]);
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
        self.send(
            Delivery::Sync {
                to,
                from,
                window,
                bytes,
            },
            from,
            to,
        );
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
            self.queue
                .push(Reverse((self.now + delay, self.seq, d.clone())));
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

    fn carry_out(&mut self, i: usize, effects: Vec<Effect>) {
        for e in effects {
            match e {
                Effect::Broadcast {
                    channel: ChannelKind::Consensus,
                    bytes,
                } => self.broadcast_consensus(i, bytes),
                Effect::Broadcast { channel, bytes } => self.broadcast(i, None, channel, &bytes),
                Effect::SendConsensus { to, bytes } => {
                    for j in self.nodes_of(i, &to) {
                        self.send(
                            Delivery::Direct {
                                to: j,
                                from: i,
                                bytes: bytes.clone(),
                            },
                            i,
                            j,
                        );
                    }
                }
                Effect::Persist(items) => {
                    for (k, b) in items {
                        let v = self.nodes[i].store.envelopes.entry(k).or_default();
                        if !v.contains(&b) {
                            v.push(b);
                        }
                    }
                }
                Effect::WalAppend(r) => self.nodes[i].store.wal.push(r),
                Effect::WalTruncate { keep_from_height } => self.nodes[i]
                    .store
                    .wal
                    .retain(|r| r.height >= keep_from_height),
                Effect::PersistDecided(d) => {
                    self.nodes[i].store.decided.insert(d.height(), d);
                }
                Effect::PersistLedger { height, bytes } => {
                    self.nodes[i].store.ledger = Some((height, bytes));
                }
                Effect::ScheduleTimer { id, at_ms } => {
                    self.nodes[i].timers.insert(id, at_ms);
                }
                Effect::CancelTimer(id) => {
                    self.nodes[i].timers.remove(&id);
                }
                Effect::CancelAllTimers => {
                    use crate::checkpoint::TimerKind;
                    self.nodes[i]
                        .timers
                        .retain(|id, _| matches!(id.kind, TimerKind::CatchUp | TimerKind::Start));
                }
                Effect::SyncReply {
                    to,
                    window,
                    message,
                } => {
                    // A sync session is with one replica: the first reachable one with
                    // that key (twins share keys).
                    let peer = self.nodes_of(i, &to).first().copied();
                    if let (Some(j), Some(bytes)) = (peer, message) {
                        self.send(
                            Delivery::Sync {
                                to: j,
                                from: i,
                                window,
                                bytes,
                            },
                            i,
                            j,
                        );
                    }
                }
                Effect::Reconcile { windows } => {
                    self.stats.reconciles += 1;
                    let keys: BTreeSet<WindowKey> = windows.into_iter().collect();
                    for j in (0..self.nodes.len()).filter(|j| *j != i) {
                        self.fetch_differing(i, j, keys.clone());
                    }
                }
                Effect::FetchWindow { window, from } => {
                    let named = from.and_then(|k| self.nodes_of(i, &k).first().copied());
                    let server = named.unwrap_or_else(|| {
                        let n = self.nodes.len() as u64;
                        ((i as u64 + 1 + self.rng.range(0, n.saturating_sub(2))) % n) as usize
                    });
                    if server != i {
                        self.send(
                            Delivery::Fetch {
                                server,
                                client: i,
                                window,
                            },
                            i,
                            server,
                        );
                    }
                }
                Effect::ServeCatchUp { peer, height } => {
                    if let Some(d) = self.nodes[i].store.decided.get(&height).cloned() {
                        let bytes =
                            crate::checkpoint::ConsensusMessage::CatchUpResponse(d).to_bytes();
                        for j in self.nodes_of(i, &peer) {
                            self.send(
                                Delivery::Direct {
                                    to: j,
                                    from: i,
                                    bytes: bytes.clone(),
                                },
                                i,
                                j,
                            );
                        }
                    }
                }
                Effect::Event(ReplicaEvent::Finalized {
                    height,
                    id,
                    ledger_root,
                    events,
                    bundles,
                }) => {
                    // Every finalized inference comes with its bundle (what the node serves).
                    for e in &events {
                        if let crate::ledger::LedgerEvent::NetworkInference { topic, epoch, .. } = e
                            && !bundles.iter().any(|(t, ep, _)| t == topic && ep == epoch)
                        {
                            self.faults.push(format!(
                                "node {i}: height {height} finalized the inference of topic \
                                 {topic} epoch {epoch} without its bundle"
                            ));
                        }
                    }
                    self.finalized_at.insert((i, height), self.now);
                    self.stats.finalized = self.stats.finalized.max(height);
                    self.trace.update(&[0xF1, i as u8]);
                    self.trace.update(&height.to_le_bytes());
                    self.trace.update(&ledger_root.0);
                    self.events.push(SimEvent::Finalized {
                        node: i,
                        height,
                        id,
                        ledger_root,
                        at_ms: self.now,
                    });
                }
                Effect::Event(ReplicaEvent::Fault(f)) => {
                    self.stats.faults += 1;
                    self.faults.push(format!("node {i}: {f}"));
                    self.events.push(SimEvent::Fault {
                        node: i,
                        fault: f,
                        at_ms: self.now,
                    });
                }
                Effect::Report { id, outcome, .. } => {
                    if outcome == Outcome::Reject {
                        self.stats.rejected += 1;
                    }
                    self.last_report = Some((id, outcome));
                }
                Effect::Penalize { .. } => self.stats.penalized += 1,
                Effect::Event(_) => {}
            }
        }
    }

    fn input(&mut self, i: usize, input: Input) {
        let now = self.local_now(i);
        let Some(r) = self.nodes[i].replica.as_mut() else {
            return;
        };
        let effects = r.handle(input, now);
        self.carry_out(i, effects);
    }

    fn deliver(&mut self, d: Delivery) {
        match d {
            Delivery::Gossip {
                to,
                from,
                channel,
                bytes,
            } => {
                self.trace.update(&[1, to as u8]);
                self.trace.update(&bytes[..bytes.len().min(16)]);
                if self.nodes[to].replica.is_none() {
                    return;
                }
                self.sample(to, channel, &bytes);
                let from_key = self.nodes[from].key.public();
                self.last_report = None;
                self.input(
                    to,
                    Input::Gossip {
                        channel,
                        bytes: bytes.clone(),
                        from: from_key,
                    },
                );
                let accepted = matches!(self.last_report,
                    Some((id, Outcome::Accept)) if id == Hash32::of(&bytes));
                if self.net.relay && accepted && channel != ChannelKind::Consensus {
                    self.stats.relayed += 1;
                    self.broadcast(to, Some(from), channel, &bytes);
                }
            }
            Delivery::Direct { to, from, bytes } => {
                let from = self.nodes[from].key.public();
                self.trace.update(&[2, to as u8]);
                self.input(to, Input::Direct { from, bytes });
            }
            Delivery::Entries {
                to,
                from,
                window,
                envelopes,
            } => {
                let from = self.nodes[from].key.public();
                self.trace.update(&[3, to as u8]);
                self.input(
                    to,
                    Input::WindowEntries {
                        window,
                        envelopes,
                        from,
                    },
                );
            }
            Delivery::Sync {
                to,
                from,
                window,
                bytes,
            } => {
                let from = self.nodes[from].key.public();
                self.trace.update(&[4, to as u8]);
                self.input(
                    to,
                    Input::SyncMessage {
                        from,
                        window,
                        bytes,
                    },
                );
            }
            Delivery::Fetch {
                server,
                client,
                window,
            } => {
                if self.nodes[server].replica.is_none() {
                    return;
                }
                // The server answers from its store (entries persist across restarts); a
                // garbage peer answers with garbage.
                let envelopes = if self.roles.garbage_peers.contains(&server) {
                    self.garbage_envelopes(server, &window)
                } else {
                    self.nodes[server]
                        .store
                        .envelopes
                        .get(&window)
                        .cloned()
                        .unwrap_or_default()
                };
                self.send(
                    Delivery::Entries {
                        to: client,
                        from: server,
                        window,
                        envelopes,
                    },
                    server,
                    client,
                );
            }
        }
    }

    fn anti_entropy(&mut self, i: usize) {
        let n = self.nodes.len();
        if n < 2 || self.nodes[i].replica.is_none() {
            return;
        }
        let j = (i + 1 + self.rng.range(0, n as u64 - 2) as usize) % n;
        let (Some(a), Some(b)) = (
            self.nodes[i].replica.as_ref(),
            self.nodes[j].replica.as_ref(),
        ) else {
            return;
        };
        // Windows either side holds: a window we never heard of is fetched too.
        let keys: BTreeSet<WindowKey> =
            a.window_keys().into_iter().chain(b.window_keys()).collect();
        self.fetch_differing(i, j, keys);
    }

    /// Node `i` fetches from node `j` each of `keys` whose root differs there (the node's
    /// roots request and sync, collapsed into one fetch).
    fn fetch_differing(&mut self, i: usize, j: usize, keys: BTreeSet<WindowKey>) {
        let (Some(a), Some(b)) = (
            self.nodes[i].replica.as_ref(),
            self.nodes[j].replica.as_ref(),
        ) else {
            return;
        };
        let mut differ = vec![];
        for key in keys {
            let ra = a.window(&key).map(|w| w.root());
            let rb = b.window(&key).map(|w| w.root());
            if ra != rb && rb.is_some() {
                differ.push(key);
            }
        }
        for window in differ {
            self.send(
                Delivery::Fetch {
                    server: j,
                    client: i,
                    window,
                },
                i,
                j,
            );
        }
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
        let next_msg = self.queue.peek().map(|Reverse((t, _, _))| *t);
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
            if let Some(Reverse((_, _, d))) = self.queue.pop() {
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
                if self.nodes[i].next_anti_entropy <= self.now {
                    self.nodes[i].next_anti_entropy = self.now + self.net.anti_entropy_ms;
                    self.anti_entropy(i);
                }
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
