//! A deterministic, virtual-time network of replicas (tests and `chorus-testbeds sim`).
//!
//! Every node is a [`Replica`] with a simulated store (what it persisted), its timers and an
//! optional clock skew. Messages between nodes get a seeded random latency and may be lost,
//! duplicated or reordered; nodes can be partitioned, crashed (losing everything not persisted)
//! and restarted from their store. Roles are driven by [`SimRoles`]: workers submit an inference
//! for every epoch, reputers report losses of every finalized network inference. The same seed
//! gives the same trace, byte for byte ([`Sim::trace`]).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};

use chorus_protocol::genesis::Genesis;
use chorus_protocol::ids::{Hash32, TopicId};
use chorus_protocol::keys::{Keypair, PublicKey};
use chorus_protocol::messages::{Payload, ReputerBundle, WorkerBundle};
use chorus_protocol::validation::ChannelKind;

use super::duties::loss_bundle;
use super::{Effect, Input, Replica, ReplicaConfig, ReplicaEvent, Restore};
use crate::checkpoint::{DecidedCheckpoint, TimerId, WalRecord};
use crate::ledger::Ledger;
use crate::window::WindowKey;

/// A small deterministic generator (splitmix64).
#[derive(Clone, Debug)]
pub struct SimRng(u64);

impl SimRng {
    /// Seeded.
    pub fn new(seed: u64) -> Self {
        SimRng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    /// Next 64 bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        lo + self.next_u64() % (hi - lo + 1)
    }
}

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
    /// Node tick (ms).
    pub tick_ms: u64,
    /// Anti-entropy round interval per node (ms): compare open windows with a random peer.
    pub anti_entropy_ms: u64,
}

impl Default for NetConfig {
    fn default() -> Self {
        NetConfig {
            min_delay_ms: 2,
            max_delay_ms: 30,
            loss: 0.0,
            duplicate: 0.0,
            tick_ms: 20,
            anti_entropy_ms: 500,
        }
    }
}

/// What roles the simulated nodes play.
#[derive(Clone, Debug, Default)]
pub struct SimRoles {
    /// Nodes that submit an inference every epoch of every topic (node index → noise scale).
    pub workers: BTreeMap<usize, f64>,
    /// Nodes that report losses.
    pub reputers: BTreeSet<usize>,
    /// Nodes that send two different bundles per epoch (byzantine).
    pub equivocating_workers: BTreeSet<usize>,
}

/// The ground truth of an epoch in the simulation (deterministic, smooth).
pub fn sim_truth(topic: TopicId, epoch: u64) -> f64 {
    1.0 + 0.1 * libm::sin(epoch as f64 * 0.37 + topic.0 as f64)
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
    /// Armed timers.
    pub timers: BTreeMap<TimerId, u64>,
    /// Clock offset (ms) added to the global time for this node.
    pub skew_ms: i64,
    /// Partition group (nodes talk only within their group).
    pub group: u32,
    /// Epochs already submitted per topic (worker) / reported (reputer).
    pub submitted: BTreeSet<(TopicId, u64, bool)>,
    next_anti_entropy: u64,
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
    /// Messages lost.
    pub lost: u64,
    /// Faults reported by replicas.
    pub faults: u64,
    /// Worker bundles submitted.
    pub submitted: u64,
    /// Heights finalized (max over nodes).
    pub finalized: u64,
}

/// The simulation.
pub struct Sim {
    /// Global virtual time (ms).
    pub now: u64,
    /// Nodes.
    pub nodes: Vec<SimNode>,
    /// Roles.
    pub roles: SimRoles,
    /// Network behaviour.
    pub net: NetConfig,
    /// Counters.
    pub stats: SimStats,
    /// Fault messages seen.
    pub faults: Vec<String>,
    /// Finalization times: (node, height) → ms.
    pub finalized_at: BTreeMap<(usize, u64), u64>,
    genesis: Genesis,
    config: ReplicaConfig,
    rng: SimRng,
    queue: BinaryHeap<Reverse<(u64, u64, Delivery)>>,
    seq: u64,
    next_tick: u64,
    trace: blake3::Hasher,
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
            net,
            stats: SimStats::default(),
            faults: vec![],
            finalized_at: BTreeMap::new(),
            genesis,
            config,
            rng: SimRng::new(seed),
            queue: BinaryHeap::new(),
            seq: 0,
            next_tick: now,
            trace: blake3::Hasher::new(),
        };
        for key in keys {
            sim.nodes.push(SimNode {
                key,
                replica: None,
                store: SimStore::default(),
                timers: BTreeMap::new(),
                skew_ms: 0,
                group: 0,
                submitted: BTreeSet::new(),
                next_anti_entropy: now,
            });
        }
        for i in 0..sim.nodes.len() {
            sim.start(i)?;
        }
        Ok(sim)
    }

    fn local_now(&self, i: usize) -> u64 {
        (self.now as i64 + self.nodes[i].skew_ms).max(0) as u64
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
        self.trace.update(&[0xAA]);
    }

    /// Everyone in one group again.
    pub fn heal(&mut self) {
        for n in &mut self.nodes {
            n.group = 0;
        }
        self.trace.update(&[0xBB]);
    }

    /// A digest of everything that happened so far.
    pub fn trace(&self) -> Hash32 {
        Hash32(*self.trace.clone().finalize().as_bytes())
    }

    fn send(&mut self, d: Delivery, from: usize, to: usize) {
        self.stats.sent += 1;
        if self.nodes[from].group != self.nodes[to].group || self.nodes[to].replica.is_none() {
            self.stats.lost += 1;
            return;
        }
        if self.rng.unit() < self.net.loss {
            self.stats.lost += 1;
            return;
        }
        let copies = if self.rng.unit() < self.net.duplicate {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let delay = self.rng.range(self.net.min_delay_ms, self.net.max_delay_ms);
            self.seq += 1;
            self.queue
                .push(Reverse((self.now + delay, self.seq, d.clone())));
        }
    }

    fn carry_out(&mut self, i: usize, effects: Vec<Effect>) {
        for e in effects {
            match e {
                Effect::Broadcast { channel, bytes } => {
                    for j in 0..self.nodes.len() {
                        if j != i {
                            self.send(
                                Delivery::Gossip {
                                    to: j,
                                    from: i,
                                    channel,
                                    bytes: bytes.clone(),
                                },
                                i,
                                j,
                            );
                        }
                    }
                }
                Effect::SendConsensus { to, bytes } => {
                    if let Some(j) = self.index_of(&to) {
                        self.send(
                            Delivery::Direct {
                                to: j,
                                from: i,
                                bytes,
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
                    if let (Some(j), Some(bytes)) = (self.index_of(&to), message) {
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
                Effect::FetchWindow { window, from } => {
                    let server = from.and_then(|k| self.index_of(&k)).unwrap_or_else(|| {
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
                    if let (Some(j), Some(d)) = (
                        self.index_of(&peer),
                        self.nodes[i].store.decided.get(&height).cloned(),
                    ) {
                        let msg = crate::checkpoint::ConsensusMessage::CatchUpResponse(d);
                        self.send(
                            Delivery::Direct {
                                to: j,
                                from: i,
                                bytes: msg.to_bytes(),
                            },
                            i,
                            j,
                        );
                    }
                }
                Effect::Event(ReplicaEvent::Finalized {
                    height,
                    ledger_root,
                    ..
                }) => {
                    self.finalized_at.insert((i, height), self.now);
                    self.stats.finalized = self.stats.finalized.max(height);
                    self.trace.update(&[0xF1, i as u8]);
                    self.trace.update(&height.to_le_bytes());
                    self.trace.update(&ledger_root.0);
                }
                Effect::Event(ReplicaEvent::Fault(f)) => {
                    self.stats.faults += 1;
                    self.faults.push(format!("node {i}: {f}"));
                }
                Effect::Report { .. } | Effect::Penalize { .. } | Effect::Event(_) => {}
            }
        }
    }

    fn index_of(&self, key: &PublicKey) -> Option<usize> {
        self.nodes.iter().position(|n| n.key.public() == *key)
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
                let from = self.nodes[from].key.public();
                self.trace.update(&[1, to as u8]);
                self.trace.update(&bytes[..bytes.len().min(16)]);
                self.input(
                    to,
                    Input::Gossip {
                        channel,
                        bytes,
                        from,
                    },
                );
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
                // The server answers from its store (entries persist across restarts).
                let envelopes = self.nodes[server]
                    .store
                    .envelopes
                    .get(&window)
                    .cloned()
                    .unwrap_or_default();
                if self.nodes[server].replica.is_some() {
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
    }

    fn roles(&mut self, i: usize) {
        let now = self.local_now(i);
        let node = &mut self.nodes[i];
        let me = node.key.public();
        let submitted = &mut node.submitted;
        let Some(r) = node.replica.as_ref() else {
            return;
        };
        let mut publish = vec![];
        let mut equivocate = vec![];
        let ledger = r.ledger();
        if let Some(noise) = self.roles.workers.get(&i).copied() {
            for (id, t) in &ledger.topics {
                if !t.workers.contains(&me) {
                    continue;
                }
                let Some(e) = t.spec.epoch_at(now) else {
                    continue;
                };
                let (open, close) = t.spec.worker_window(e);
                if now < open + (close - open) / 4 || now >= close {
                    continue;
                }
                if !submitted.insert((*id, e, true)) {
                    continue;
                }
                let z = libm::sin((i as f64 + 1.0) * 12.9898 + e as f64 * 78.233);
                let value = sim_truth(*id, e) + noise * z;
                let bundle = |v: f64| {
                    Payload::WorkerBundle(WorkerBundle {
                        topic: *id,
                        epoch: e,
                        inference: Some(v),
                        forecasts: vec![],
                    })
                };
                if self.roles.equivocating_workers.contains(&i) {
                    // Byzantine: two different signed bundles, each to half of the peers.
                    equivocate.push((*id, bundle(value), bundle(value + 1.0)));
                } else {
                    publish.push(bundle(value));
                }
            }
        }
        if self.roles.reputers.contains(&i) {
            for (id, t) in &ledger.topics {
                if !t.reputers.contains(&me) {
                    continue;
                }
                for (e, rec) in &t.mechanism.pending {
                    let (open, close) = t.spec.reputer_window(*e);
                    if now < open || now >= close {
                        continue;
                    }
                    let Some(bundle) = &rec.bundle else { continue };
                    if !submitted.insert((*id, *e, false)) {
                        continue;
                    }
                    let truth = sim_truth(*id, *e);
                    if let Ok(losses) = loss_bundle(bundle, truth, &t.spec.loss) {
                        publish.push(Payload::ReputerBundle(ReputerBundle {
                            topic: *id,
                            epoch: *e,
                            ground_truth: truth,
                            losses,
                        }));
                    }
                }
            }
        }
        for p in publish {
            self.stats.submitted += 1;
            self.input(i, Input::Publish(p));
        }
        let network = self.genesis.network_id();
        for (topic, a, b) in equivocate {
            let key = self.nodes[i].key.clone();
            let ea = chorus_protocol::envelope::Envelope::seal(&key, &network, &a).to_bytes();
            let eb = chorus_protocol::envelope::Envelope::seal(&key, &network, &b).to_bytes();
            for j in (0..self.nodes.len()).filter(|j| *j != i) {
                let bytes = if j % 2 == 0 { ea.clone() } else { eb.clone() };
                self.send(
                    Delivery::Gossip {
                        to: j,
                        from: i,
                        channel: ChannelKind::Workers(topic),
                        bytes,
                    },
                    i,
                    j,
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
        let mut differ = vec![];
        for key in a.window_keys() {
            let ra = a.window(&key).map(|w| w.root());
            let rb = b.window(&key).map(|w| w.root());
            if ra != rb {
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

    /// Advance virtual time until `until_ms`, processing everything due.
    pub fn run_until(&mut self, until_ms: u64) {
        while self.now < until_ms {
            let next_msg = self.queue.peek().map(|Reverse((t, _, _))| *t);
            let next_timer = self
                .nodes
                .iter()
                .enumerate()
                .filter(|(_, n)| n.replica.is_some())
                .flat_map(|(i, n)| n.timers.iter().map(move |(id, at)| (*at, i, *id)))
                .min();
            let mut t = self.next_tick.min(until_ms);
            if let Some(m) = next_msg {
                t = t.min(m);
            }
            if let Some((at, _, _)) = next_timer {
                t = t.min(at);
            }
            self.now = self.now.max(t);
            if self.now >= until_ms {
                break;
            }
            if next_msg == Some(self.now) {
                if let Some(Reverse((_, _, d))) = self.queue.pop() {
                    self.deliver(d);
                }
                continue;
            }
            if let Some((at, i, id)) = next_timer
                && at <= self.now
            {
                self.nodes[i].timers.remove(&id);
                self.input(i, Input::Timer(id));
                continue;
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
                }
            }
        }
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
