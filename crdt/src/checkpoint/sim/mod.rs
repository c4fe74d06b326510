//! A deterministic, virtual-time, in-memory network of checkpoint engines.
//!
//! The harness plays every node's host: it carries out effects in order (the WAL and the
//! decided chain are "persisted" in memory), delivers messages with seeded random delays,
//! loss, duplication and reordering, fires timers in virtual time, and answers the
//! application's requests with a [`SimApp`]. Faults are scripted: crash (optionally right
//! after a vote reached the WAL, before it was sent) and restart from the persisted state,
//! partitions, offline nodes, byzantine proposers and voters, and *twins* (two engines with one
//! key, each in its own partition — how colluding equivocators are modelled).
//!
//! Every event and effect is folded into a trace digest: the same seed gives the same digest.
//! [`Checker`] watches agreement, chain linkage and double signing on every event.
//!
//! ```
//! use chorus_crdt::checkpoint::sim::Harness;
//! let mut h = Harness::new(4, &[], 7);
//! h.start(&[]);
//! h.run_until(|h| h.all_decided(2), 100_000).unwrap();
//! assert!(h.checker.violations.is_empty());
//! ```

mod app;
mod checks;
mod rng;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, VecDeque};

use arc_malachitebft_core_types::{NilOrVal, VoteType};
use chorus_protocol::ids::{Amount, Hash32};
use chorus_protocol::keys::{Keypair, PublicKey};
use chorus_protocol::messages::Evidence;

pub use app::{SimApp, derive_ledger_root};
pub use checks::{Checker, Violation};
pub use rng::Rng;

use super::catchup::{DecidedCheckpoint, PeerId};
use super::engine::{
    Effect, Engine, EngineConfig, EngineFault, Input, Persisted, TimerId, TimerKind,
};
use super::messages::{ConsensusMessage, VoteMessage};
use super::signing::sign_vote;
use super::validators::ValidatorSet;
use super::value::CheckpointId;
use super::wal::{WalEntry, WalRecord};

/// Network behaviour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NetConfig {
    /// Smallest delivery delay.
    pub min_delay_ms: u64,
    /// Largest delivery delay (uniform in between: reorders freely).
    pub max_delay_ms: u64,
    /// Probability of losing a message, per mille.
    pub drop_per_mille: u32,
    /// Probability of delivering a message twice, per mille.
    pub dup_per_mille: u32,
}

impl Default for NetConfig {
    fn default() -> Self {
        NetConfig {
            min_delay_ms: 5,
            max_delay_ms: 50,
            drop_per_mille: 0,
            dup_per_mille: 0,
        }
    }
}

/// What a node does besides running the honest engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Behaviour {
    /// Nothing else.
    Honest,
    /// Every vote it sends is followed by a conflicting vote signed with the same key.
    Equivocator,
}

/// One simulated endpoint (a node, or one of a pair of twins).
pub struct Node {
    /// The node's key (twins share one).
    pub keypair: Keypair,
    /// The engine; `None` while crashed or offline.
    pub engine: Option<Engine>,
    /// The persisted WAL.
    pub wal: Vec<WalRecord>,
    /// The persisted decided chain.
    pub chain: BTreeMap<u64, DecidedCheckpoint>,
    /// The application.
    pub app: SimApp,
    /// Extra behaviour.
    pub behaviour: Behaviour,
    /// Armed timers: deadline and generation (a re-arm or cancel invalidates queued fires).
    timers: BTreeMap<TimerId, u64>,
    timer_generation: u64,
    /// Evidence the node's engine emitted.
    pub evidence: Vec<Evidence>,
    /// Faults the node's engine emitted.
    pub faults: Vec<EngineFault>,
    /// Virtual time of each decision.
    pub decided_at: BTreeMap<u64, u64>,
    /// Crash right after the next WAL append of an own vote (before anything else of that
    /// batch is carried out).
    pub crash_after_own_vote: bool,
}

impl Node {
    /// A new endpoint, not started.
    fn new(keypair: Keypair, app: SimApp) -> Node {
        Node {
            keypair,
            engine: None,
            wal: Vec::new(),
            chain: BTreeMap::new(),
            app,
            behaviour: Behaviour::Honest,
            timers: BTreeMap::new(),
            timer_generation: 0,
            evidence: Vec::new(),
            faults: Vec::new(),
            decided_at: BTreeMap::new(),
            crash_after_own_vote: false,
        }
    }

    fn peer(&self) -> PeerId {
        PeerId(self.keypair.public())
    }
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum EventKind {
    Deliver {
        to: usize,
        from: usize,
        bytes: Vec<u8>,
    },
    Timer {
        node: usize,
        id: TimerId,
        generation: u64,
    },
}

/// Why [`Harness::run_until`] stopped without the predicate holding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stuck {
    /// `max_steps` events processed.
    StepLimit,
    /// No event left to process.
    Quiescent,
}

/// The simulator.
pub struct Harness {
    /// All endpoints.
    pub nodes: Vec<Node>,
    /// Network behaviour.
    pub net: NetConfig,
    /// Virtual time.
    pub now_ms: u64,
    /// Engine configuration (shared).
    pub config: EngineConfig,
    /// Validator sets `(from_height, set)`.
    pub valsets: Vec<(u64, ValidatorSet)>,
    /// Invariants.
    pub checker: Checker,
    /// Events processed.
    pub steps: u64,
    rng: Rng,
    queue: BinaryHeap<Reverse<(u64, u64, EventKind)>>,
    seq: u64,
    /// Endpoint groups; messages between different groups are lost. Empty: no partition.
    groups: Vec<BTreeSet<usize>>,
    trace: blake3::Hasher,
}

impl Harness {
    /// `n` validators with the given stakes (empty: 100 each), network id and genesis
    /// derived from `seed`, every node started at time 0.
    pub fn new(n: usize, stakes: &[u128], seed: u64) -> Harness {
        let keys: Vec<Keypair> = (0..n)
            .map(|i| {
                let mut seed_bytes = [0u8; 32];
                seed_bytes[..8].copy_from_slice(&(i as u64 + 1).to_le_bytes());
                seed_bytes[8] = 0xc5;
                Keypair::from_seed(&seed_bytes)
            })
            .collect();
        let bonds: Vec<(PublicKey, Amount)> = keys
            .iter()
            .enumerate()
            .map(|(i, k)| (k.public(), Amount(stakes.get(i).copied().unwrap_or(100))))
            .collect();
        let set = match ValidatorSet::from_bonds(&bonds) {
            Ok(set) => set,
            Err(e) => panic!("bad stakes: {e}"),
        };
        let mut config = EngineConfig::new(
            Hash32::of_parts("chorus/sim/network", &[&seed.to_le_bytes()]),
            Hash32::of_parts("chorus/sim/genesis", &[&seed.to_le_bytes()]),
        );
        config.catch_up_retry_ms = 500;
        config.catch_up_grace_ms = 300;
        let mut h = Harness {
            nodes: Vec::new(),
            net: NetConfig::default(),
            now_ms: 0,
            config,
            valsets: vec![(1, set)],
            checker: Checker::default(),
            steps: 0,
            rng: Rng::new(seed),
            queue: BinaryHeap::new(),
            seq: 0,
            groups: Vec::new(),
            trace: blake3::Hasher::new(),
        };
        for (i, keypair) in keys.into_iter().enumerate() {
            h.nodes.push(Node::new(keypair, SimApp::new(i as u64)));
        }
        h
    }

    /// Start every endpoint that is not running, except those listed as offline.
    pub fn start(&mut self, offline: &[usize]) {
        for n in 0..self.nodes.len() {
            if !offline.contains(&n) && self.nodes[n].engine.is_none() {
                self.restart(n);
            }
        }
    }

    /// Add a twin of endpoint `of`: same key, its own engine and application (`salt`).
    /// The twin is not started. Returns its index.
    pub fn add_twin(&mut self, of: usize, salt: u64) -> usize {
        let keypair = self.nodes[of].keypair.clone();
        self.nodes.push(Node::new(keypair, SimApp::new(salt)));
        self.nodes.len() - 1
    }

    /// Split the endpoints into groups that cannot talk to each other (unlisted endpoints
    /// are isolated). Messages in flight across groups are lost at delivery.
    pub fn partition(&mut self, groups: &[&[usize]]) {
        self.groups = groups.iter().map(|g| g.iter().copied().collect()).collect();
    }

    /// Remove every partition.
    pub fn heal(&mut self) {
        self.groups.clear();
    }

    fn connected(&self, a: usize, b: usize) -> bool {
        self.groups.is_empty() || self.groups.iter().any(|g| g.contains(&a) && g.contains(&b))
    }

    /// Crash endpoint `n`: its engine and timers are gone; its WAL and chain stay.
    pub fn crash(&mut self, n: usize) {
        self.trace_event(n, "crash");
        let node = &mut self.nodes[n];
        node.engine = None;
        node.timers.clear();
    }

    /// (Re)start endpoint `n` from its persisted WAL and decided chain.
    pub fn restart(&mut self, n: usize) {
        self.trace_event(n, "start");
        let node = &self.nodes[n];
        let retention = self.config.decided_retention;
        let decided: Vec<DecidedCheckpoint> = node
            .chain
            .values()
            .rev()
            .take(retention)
            .rev()
            .cloned()
            .collect();
        let persisted = Persisted {
            decided,
            wal: node.wal.clone(),
        };
        match Engine::restore(
            self.config.clone(),
            node.keypair.clone(),
            self.valsets.clone(),
            persisted,
            self.now_ms,
        ) {
            Ok((engine, effects)) => {
                self.nodes[n].engine = Some(engine);
                self.apply(n, effects);
            }
            Err(e) => panic!("restore of node {n} failed: {e}"),
        }
    }

    /// Process events until `pred` holds (checked before each event).
    pub fn run_until(
        &mut self,
        mut pred: impl FnMut(&Harness) -> bool,
        max_steps: u64,
    ) -> Result<u64, Stuck> {
        let start = self.steps;
        loop {
            if pred(self) {
                return Ok(self.steps - start);
            }
            if self.steps - start >= max_steps {
                return Err(Stuck::StepLimit);
            }
            if !self.step() {
                return Err(Stuck::Quiescent);
            }
        }
    }

    /// Advance virtual time by `ms`, processing every event due meanwhile.
    pub fn run_for(&mut self, ms: u64) {
        let until = self.now_ms.saturating_add(ms);
        while let Some(Reverse((at, _, _))) = self.queue.peek() {
            if *at > until {
                break;
            }
            self.step();
        }
        self.now_ms = until;
    }

    /// Process the next event. Returns false if there is none.
    pub fn step(&mut self) -> bool {
        let Some(Reverse((at, _, event))) = self.queue.pop() else {
            return false;
        };
        self.now_ms = self.now_ms.max(at);
        self.steps += 1;
        match event {
            EventKind::Deliver { to, from, bytes } => {
                if !self.connected(from, to) || self.nodes[to].engine.is_none() {
                    return true;
                }
                let message = match ConsensusMessage::decode(&bytes) {
                    Ok(m) => m,
                    Err(e) => panic!("undecodable message on the wire: {e}"),
                };
                self.trace.update(&(to as u64).to_le_bytes());
                self.trace.update(&bytes);
                let input = Input::Message {
                    from: self.nodes[from].peer(),
                    message,
                };
                self.feed(to, input);
            }
            EventKind::Timer {
                node,
                id,
                generation,
            } => {
                if self.nodes[node].timers.get(&id) != Some(&generation) {
                    return true;
                }
                self.nodes[node].timers.remove(&id);
                self.trace_event(node, &format!("timer {id:?}"));
                self.feed(node, Input::TimerFired(id));
            }
        }
        true
    }

    fn feed(&mut self, n: usize, input: Input) {
        let now = self.now_ms;
        let Some(engine) = self.nodes[n].engine.as_mut() else {
            return;
        };
        let effects = engine.handle(input, now);
        self.apply(n, effects);
    }

    fn push(&mut self, at: u64, event: EventKind) {
        self.seq += 1;
        self.queue.push(Reverse((at, self.seq, event)));
    }

    fn trace_event(&mut self, n: usize, what: &str) {
        self.trace.update(&self.now_ms.to_le_bytes());
        self.trace.update(&(n as u64).to_le_bytes());
        self.trace.update(what.as_bytes());
    }

    /// The digest of everything that happened so far.
    pub fn trace_digest(&self) -> Hash32 {
        Hash32(*self.trace.clone().finalize().as_bytes())
    }

    fn send(&mut self, from: usize, to: usize, bytes: &[u8]) {
        if self.rng.chance_per_mille(self.net.drop_per_mille) {
            return;
        }
        let copies = if self.rng.chance_per_mille(self.net.dup_per_mille) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let delay = self.rng.range(self.net.min_delay_ms, self.net.max_delay_ms);
            let at = self.now_ms + delay;
            self.push(
                at,
                EventKind::Deliver {
                    to,
                    from,
                    bytes: bytes.to_vec(),
                },
            );
        }
    }

    fn broadcast(&mut self, from: usize, msg: &ConsensusMessage) {
        self.checker.on_wire(msg);
        let bytes = msg.to_bytes();
        for to in 0..self.nodes.len() {
            if to != from && self.connected(from, to) {
                self.send(from, to, &bytes);
            }
        }
    }

    /// The conflicting twin of a vote (nil ↔ a made-up id), signed with `keypair`.
    fn conflicting_vote(&mut self, keypair: &Keypair, v: &VoteMessage) -> ConsensusMessage {
        let mut vote = v.vote.clone();
        vote.value = match vote.value {
            NilOrVal::Nil => {
                NilOrVal::Val(CheckpointId(Hash32::of(&self.rng.next_u64().to_le_bytes())))
            }
            NilOrVal::Val(_) => NilOrVal::Nil,
        };
        let signature = sign_vote(keypair, &self.config.network, &vote);
        ConsensusMessage::Vote(VoteMessage { vote, signature })
    }

    /// Carry out effects of endpoint `n` in order, feeding the application's answers back.
    fn apply(&mut self, n: usize, effects: Vec<Effect>) {
        let mut queue: VecDeque<Effect> = effects.into();
        while let Some(effect) = queue.pop_front() {
            self.trace_event(n, &format!("{effect:?}"));
            match effect {
                Effect::WalAppend(record) => {
                    let own_vote = matches!(&record.entry,
                        WalEntry::Vote(v) if v.vote.validator.0 == self.nodes[n].keypair.public());
                    self.nodes[n].wal.push(record);
                    if own_vote && self.nodes[n].crash_after_own_vote {
                        self.nodes[n].crash_after_own_vote = false;
                        self.crash(n);
                        return;
                    }
                }
                Effect::WalTruncate { keep_from_height } => {
                    self.nodes[n].wal.retain(|r| r.height >= keep_from_height);
                }
                Effect::Broadcast(msg) => {
                    self.broadcast(n, &msg);
                    if self.nodes[n].behaviour == Behaviour::Equivocator
                        && let ConsensusMessage::Vote(v) = &msg
                        && v.vote.validator.0 == self.nodes[n].keypair.public()
                    {
                        let keypair = self.nodes[n].keypair.clone();
                        let other = self.conflicting_vote(&keypair, v);
                        self.broadcast(n, &other);
                    }
                }
                Effect::SendTo { peer, message } => {
                    let bytes = message.to_bytes();
                    let targets: Vec<usize> = (0..self.nodes.len())
                        .filter(|&to| {
                            to != n && self.nodes[to].peer() == peer && self.connected(n, to)
                        })
                        .collect();
                    for to in targets {
                        self.send(n, to, &bytes);
                    }
                }
                Effect::ScheduleTimer { id, at_ms } => {
                    let node = &mut self.nodes[n];
                    node.timer_generation += 1;
                    let generation = node.timer_generation;
                    node.timers.insert(id, generation);
                    self.push(
                        at_ms,
                        EventKind::Timer {
                            node: n,
                            id,
                            generation,
                        },
                    );
                }
                Effect::CancelTimer(id) => {
                    self.nodes[n].timers.remove(&id);
                }
                Effect::CancelAllTimers => self.nodes[n]
                    .timers
                    .retain(|id, _| id.kind == TimerKind::CatchUp),
                Effect::NeedValue { height, round, .. } => {
                    let previous = if height == 1 {
                        self.config.genesis
                    } else {
                        self.nodes[n]
                            .chain
                            .get(&(height - 1))
                            .map(|d| d.id().0)
                            .unwrap_or_default()
                    };
                    let checkpoint = self.nodes[n].app.propose(height, previous);
                    let input = Input::ProposeValue {
                        height,
                        round,
                        checkpoint,
                    };
                    queue.extend(self.handle_inline(n, input));
                }
                Effect::ValidateCheckpoint {
                    height, checkpoint, ..
                } => {
                    let valid = self.nodes[n].app.validate(&checkpoint);
                    let input = Input::ValueValidity {
                        height,
                        id: checkpoint.id(),
                        valid,
                    };
                    queue.extend(self.handle_inline(n, input));
                }
                Effect::Decided(d) => {
                    let height = d.height();
                    let previous = self.nodes[n]
                        .chain
                        .get(&(height.saturating_sub(1)))
                        .cloned();
                    self.checker.on_decided(n, &d, previous.as_ref());
                    self.nodes[n].decided_at.insert(height, self.now_ms);
                    self.nodes[n].chain.insert(height, d);
                }
                Effect::Evidence(e) => self.nodes[n].evidence.push(e),
                Effect::Misbehaviour { .. } => {}
                Effect::CatchUpMiss { peer, height } => {
                    // Serve from "storage".
                    if let Some(d) = self.nodes[n].chain.get(&height).cloned() {
                        queue.push_back(Effect::SendTo {
                            peer,
                            message: ConsensusMessage::CatchUpResponse(d),
                        });
                    }
                }
                Effect::Fault(f) => self.nodes[n].faults.push(f),
            }
        }
    }

    fn handle_inline(&mut self, n: usize, input: Input) -> Vec<Effect> {
        let now = self.now_ms;
        match self.nodes[n].engine.as_mut() {
            Some(engine) => engine.handle(input, now),
            None => Vec::new(),
        }
    }

    /// A new validator set from `from_height` on, as the ledger would decide it: recorded
    /// for restarts and fed to every running engine.
    pub fn update_validator_set(&mut self, from_height: u64, set: ValidatorSet) {
        self.valsets.push((from_height, set.clone()));
        for n in 0..self.nodes.len() {
            let input = Input::ValidatorSet {
                from_height,
                set: set.clone(),
            };
            self.feed(n, input);
        }
    }

    /// Mark endpoints' keys as byzantine (their double signing is not a violation).
    pub fn mark_byzantine(&mut self, nodes: &[usize]) {
        for &n in nodes {
            self.checker
                .byzantine
                .insert(self.nodes[n].keypair.public());
        }
    }

    /// Whether every running, honest endpoint has decided `height`.
    pub fn all_decided(&self, height: u64) -> bool {
        self.nodes.iter().all(|node| {
            node.engine.is_none()
                || self.checker.byzantine.contains(&node.keypair.public())
                || node.chain.contains_key(&height)
        })
    }

    /// Whether the listed endpoints have all decided `height`.
    pub fn decided_by(&self, nodes: &[usize], height: u64) -> bool {
        nodes
            .iter()
            .all(|&n| self.nodes[n].chain.contains_key(&height))
    }

    /// The decided id at `height` per endpoint (None: not decided).
    pub fn decisions(&self, height: u64) -> Vec<Option<CheckpointId>> {
        self.nodes
            .iter()
            .map(|n| n.chain.get(&height).map(DecidedCheckpoint::id))
            .collect()
    }

    /// Every signed own vote an endpoint has in its WAL, by `(height, round, step)`.
    pub fn own_votes_in_wal(&self, n: usize) -> Vec<VoteMessage> {
        let me = self.nodes[n].keypair.public();
        self.nodes[n]
            .wal
            .iter()
            .filter_map(|r| match &r.entry {
                WalEntry::Vote(v) if v.vote.validator.0 == me => Some(v.clone()),
                _ => None,
            })
            .collect()
    }
}

/// A prevote or precommit, for matching in tests.
pub fn is_precommit(v: &VoteMessage) -> bool {
    v.vote.kind == VoteType::Precommit
}
