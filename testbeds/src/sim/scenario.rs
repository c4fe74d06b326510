//! One seed's scenario: the genesis and roles every seed shares, and the faults the seed
//! draws (network quality, clock skews, a partition, crashes, byzantine behaviours), as a
//! timed plan of actions.
//!
//! Timeline (virtual time from genesis; 1 epoch = 1 checkpoint period = 1 s):
//!
//! | phase | from | to | what |
//! |---|---|---|---|
//! | warm-up | 0 | 2 s | no partition, crash or twin split yet |
//! | faults | 2 s | `epochs` s | the seed's partition, crashes, byzantine behaviours, hostile sync messages every 2 s |
//! | liveness | `epochs` s | +3 s | healed, restarted, no loss; twins retired, other byzantine nodes go on |
//! | drain | +3 s | +6 s | nobody submits anything new; the attackers stop |
//! | convergence | +6 s | ≤ +36 s | run until every checked node is identical and current (violation if not by then) |

use std::collections::BTreeSet;

use chorus_crdt::replica::ReplicaConfig;
use chorus_crdt::replica::sim::{
    NetConfig, SIM_GENESIS_MS, SIM_MAX_CLOCK_SKEW_MS, SIM_PERIOD_MS, SIM_TOPIC, SimRng, SimRoles,
    sim_genesis,
};
use chorus_protocol::genesis::Genesis;
use chorus_protocol::ids::{Hash32, TopicId};
use chorus_protocol::keys::Keypair;

use super::config::SimConfig;
pub use super::config::ValidatorAttack;

/// Genesis time of every simulated network (ms).
pub const GENESIS_MS: u64 = SIM_GENESIS_MS;
/// Checkpoint period = epoch length (ms).
pub const PERIOD_MS: u64 = SIM_PERIOD_MS;
/// The clock-skew allowance of the genesis (ms); node skews stay within ± half of it.
pub const MAX_CLOCK_SKEW_MS: u64 = SIM_MAX_CLOCK_SKEW_MS;
/// Warm-up before the first partition, crash or twin split (ms).
pub const WARMUP_MS: u64 = 2_000;
/// Liveness phase after the faults end, with submissions (ms).
pub const LIVENESS_MS: u64 = 3_000;
/// Drain: no new submissions (ms).
pub const DRAIN_MS: u64 = 3_000;
/// Longest wait for convergence after the drain (ms). Generous: a height whose round-0
/// polka was split by an equivocating voter waits until a validator that saw it proposes
/// (or until round 10, where Malachite publishes every new lock), which can take many rounds
/// of growing timeouts.
pub const CONVERGE_MS: u64 = 30_000;
/// Bond of an honest validator.
pub const HONEST_BOND: u128 = 100_000;
/// The one simulated topic.
pub const TOPIC: TopicId = SIM_TOPIC;

/// A scripted fault.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Split the nodes into groups.
    Partition(Vec<u32>),
    /// Clone every twin-attacking validator into a twin; honest nodes in `world_a` talk with
    /// the originals, the others with the twins.
    TwinSplit {
        /// Honest nodes of the first half.
        world_a: BTreeSet<usize>,
    },
    /// Remove the partition or split.
    Heal,
    /// Crash a node.
    Crash(usize),
    /// Restart a crashed node from its store.
    Restart(usize),
    /// End of the fault phase: heal, restart everything, stop loss, duplication and
    /// stragglers, retire the twins. Byzantine nodes stay byzantine.
    EndFaults,
    /// Stop submitting, stop attacking (drain).
    PauseRoles,
    /// A byzantine node sends a random honest replica a crafted automerge sync message full
    /// of hostile changes for one of its open worker windows.
    HostileSync,
    /// A byzantine node gossips validly signed spam from fresh keys (unfunded ledger messages,
    /// unregistered worker bundles) to every honest replica, and syncs the bundles to one.
    Spam,
    /// An honest non-validator publishes a bond or unbond ([`super::churn`]).
    Churn(usize, super::churn::Step),
}

/// Interval between two hostile sync messages during the fault phase (ms).
pub const HOSTILE_SYNC_EVERY_MS: u64 = 2_000;

/// Everything one seed runs.
pub struct Scenario {
    /// The genesis.
    pub genesis: Genesis,
    /// One key per node.
    pub keys: Vec<Keypair>,
    /// Roles, with the byzantine ones.
    pub roles: SimRoles,
    /// Network quality during the fault phase.
    pub net: NetConfig,
    /// Replica tuning.
    pub replica: ReplicaConfig,
    /// Clock skew per node (ms).
    pub skews: Vec<i64>,
    /// Timed actions, ascending (absolute virtual ms).
    pub plan: Vec<(u64, Action)>,
    /// Byzantine validators and what they do.
    pub attacks: Vec<(usize, ValidatorAttack)>,
    /// Nodes that send hostile messages (byzantine validators and authors, garbage peers):
    /// their submissions are not held to the liveness invariant.
    pub byzantine: BTreeSet<usize>,
    /// Validator bond per node (0 for non-validators).
    pub bonds: Vec<u128>,
    /// End of the fault phase.
    pub faults_end_ms: u64,
    /// Start of the drain.
    pub drain_ms: u64,
    /// Start of the convergence wait.
    pub converge_from_ms: u64,
    /// Convergence deadline.
    pub converge_by_ms: u64,
    /// What the seed drew, for reports.
    pub description: Vec<String>,
    /// Honest non-validators that bond during the fault phase ([`super::churn`]).
    pub churners: Vec<usize>,
}

/// The key of node `i` (the same in every seed).
pub fn node_key(i: usize) -> Keypair {
    let h = Hash32::of_parts("chorus/testbeds/sim/node-key", &[&(i as u64).to_le_bytes()]);
    Keypair::from_seed(&h.0)
}

/// Node `i` is a reputer if `i % 3 == 2`, a worker otherwise.
pub fn is_reputer(i: usize) -> bool {
    i % 3 == 2
}

/// Consensus timeouts scaled for 1 s checkpoint periods on a LAN-like simulated network
/// (the simulator's own tunables).
pub fn replica_config() -> ReplicaConfig {
    chorus_crdt::replica::sim::replica_config()
}

/// The genesis of a network of `nodes` nodes whose first validators have `bonds`.
pub fn genesis(keys: &[Keypair], bonds: &[u128]) -> Genesis {
    sim_genesis("chorus-testbeds-sim", keys, bonds, is_reputer)
}

/// `n` distinct indices from `pool`, drawn by `rng`.
fn pick(rng: &mut SimRng, pool: &[usize], n: usize) -> Vec<usize> {
    let mut pool = pool.to_vec();
    let mut out = vec![];
    while out.len() < n && !pool.is_empty() {
        let i = rng.range(0, pool.len() as u64 - 1) as usize;
        out.push(pool.swap_remove(i));
    }
    out.sort_unstable();
    out
}

/// Byzantine validators and bonds: `k = round(F·V)` validators (at least 1 if `F > 0`, at most
/// `V − 1`) share exactly the fraction `F` of the total bond.
fn bonds(config: &SimConfig, rng: &mut SimRng) -> (Vec<u128>, Vec<usize>) {
    let v = config.validators;
    let f = config.byzantine_stake;
    let mut bonds = vec![0u128; config.nodes];
    for b in bonds.iter_mut().take(v) {
        *b = HONEST_BOND;
    }
    if f <= 0.0 {
        return (bonds, vec![]);
    }
    let k = ((f * v as f64).round() as usize).clamp(1, v - 1);
    let validators: Vec<usize> = (0..v).collect();
    let byzantine = pick(rng, &validators, k);
    let honest_total = (v - k) as f64 * HONEST_BOND as f64;
    let byzantine_total = f / (1.0 - f) * honest_total;
    let each = ((byzantine_total / k as f64).round() as u128).max(1);
    for &i in &byzantine {
        bonds[i] = each;
    }
    (bonds, byzantine)
}

impl Scenario {
    /// The scenario of `seed` under `config` (deterministic).
    pub fn new(config: &SimConfig, seed: u64) -> Scenario {
        let mut rng = SimRng::seeded(seed ^ 0x5CE7_A410);
        let n = config.nodes;
        let keys: Vec<Keypair> = (0..n).map(node_key).collect();
        let (bonds, byzantine_validators) = bonds(config, &mut rng);
        let genesis = genesis(&keys, &bonds);
        let mut roles = SimRoles::default();
        for i in 0..n {
            if is_reputer(i) {
                roles.reputers.insert(i);
            } else {
                roles.workers.insert(i, 0.01 * (1 + i % 10) as f64);
            }
        }
        let faults_end_ms = GENESIS_MS + config.epochs * PERIOD_MS;
        let drain_ms = faults_end_ms + LIVENESS_MS;
        let converge_from_ms = drain_ms + DRAIN_MS;
        let mut s = Scenario {
            genesis,
            keys,
            roles,
            net: NetConfig::default(),
            replica: replica_config(),
            skews: vec![0; n],
            plan: vec![],
            attacks: vec![],
            byzantine: BTreeSet::new(),
            bonds,
            faults_end_ms,
            drain_ms,
            converge_from_ms,
            converge_by_ms: converge_from_ms + CONVERGE_MS,
            description: vec![],
            churners: vec![],
        };
        s.plan.push((faults_end_ms, Action::EndFaults));
        s.plan.push((drain_ms, Action::PauseRoles));
        if config.calm {
            s.description.push("calm".into());
            return s;
        }
        s.draw_network(&mut rng);
        s.draw_attacks(config, &mut rng, &byzantine_validators);
        s.draw_partition(config, &mut rng);
        s.draw_crashes(&mut rng);
        s.draw_authors(config, &mut rng);
        s.draw_churn(config, &mut rng);
        if !s.byzantine.is_empty() {
            let mut t = GENESIS_MS + WARMUP_MS;
            while t < s.faults_end_ms {
                s.plan.push((t, Action::HostileSync));
                t += HOSTILE_SYNC_EVERY_MS;
            }
            let mut t = GENESIS_MS + WARMUP_MS + super::spam::SPAM_EVERY_MS / 2;
            while t < s.faults_end_ms {
                s.plan.push((t, Action::Spam));
                t += super::spam::SPAM_EVERY_MS;
            }
        }
        s.plan.sort_by_key(|(t, _)| *t);
        s
    }

    fn draw_network(&mut self, rng: &mut SimRng) {
        let min = rng.range(1, 5);
        self.net = NetConfig {
            min_delay_ms: min,
            max_delay_ms: rng.range(20, 80),
            loss: rng.range(0, 50) as f64 / 1000.0,
            duplicate: rng.range(0, 50) as f64 / 1000.0,
            reorder: rng.range(0, 50) as f64 / 1000.0,
            ..NetConfig::default()
        };
        let half = (MAX_CLOCK_SKEW_MS / 2) as i64;
        for s in &mut self.skews {
            *s = rng.range(0, 2 * half as u64) as i64 - half;
        }
        self.description.push(format!(
            "net {}..{} ms, loss {:.3}, dup {:.3}, reorder {:.3}; skews {:?} ms",
            self.net.min_delay_ms,
            self.net.max_delay_ms,
            self.net.loss,
            self.net.duplicate,
            self.net.reorder,
            self.skews
        ));
    }

    fn draw_attacks(&mut self, config: &SimConfig, rng: &mut SimRng, byzantine: &[usize]) {
        let fork = !config.safety_claimed();
        for &i in byzantine {
            let drawn = match rng.range(0, 3) {
                0 => ValidatorAttack::Equivocate,
                1 => ValidatorAttack::BadRoot,
                2 => ValidatorAttack::ForgedAhead,
                _ if config.partition_secs > 0 => ValidatorAttack::Twin,
                _ => ValidatorAttack::Equivocate,
            };
            let attack = match config.attack {
                Some(a) => a,
                None if fork => ValidatorAttack::Twin,
                None => drawn,
            };
            match attack {
                ValidatorAttack::Equivocate => {
                    self.roles.equivocating_validators.insert(i);
                }
                ValidatorAttack::BadRoot => {
                    self.roles.bad_root_proposers.insert(i);
                }
                ValidatorAttack::Twin => {}
                ValidatorAttack::FastClock => {
                    self.skews[i] = 4 * MAX_CLOCK_SKEW_MS as i64;
                }
                ValidatorAttack::ForgedAhead => {
                    self.roles.forging_ahead.insert(i);
                }
            }
            self.byzantine.insert(i);
            self.attacks.push((i, attack));
        }
        if !self.attacks.is_empty() {
            let total: u128 = self.bonds.iter().sum();
            let byz: u128 = byzantine.iter().map(|&i| self.bonds[i]).sum();
            self.description.push(format!(
                "byzantine validators {:?} ({:.3} of stake)",
                self.attacks,
                byz as f64 / total as f64
            ));
        }
    }

    fn twins(&self) -> bool {
        self.attacks
            .iter()
            .any(|(_, a)| *a == ValidatorAttack::Twin)
    }

    fn draw_partition(&mut self, config: &SimConfig, rng: &mut SimRng) {
        let n = self.keys.len();
        let fault_start = GENESIS_MS + WARMUP_MS;
        let fork = !config.safety_claimed();
        let (start, end) = if fork {
            (fault_start, self.faults_end_ms)
        } else {
            if config.partition_secs == 0 || self.faults_end_ms <= fault_start {
                return;
            }
            let len = config.partition_secs * 1_000;
            let latest = self.faults_end_ms.saturating_sub(len).max(fault_start);
            let start = rng.range(fault_start, latest);
            (start, (start + len).min(self.faults_end_ms))
        };
        if self.twins() {
            // Honest nodes alternate between the halves in a random order, validators first,
            // so that each half gets half of the honest stake.
            let honest: Vec<usize> = (0..n).filter(|i| !self.byzantine.contains(i)).collect();
            let (vals, others): (Vec<usize>, Vec<usize>) =
                honest.into_iter().partition(|&i| self.bonds[i] > 0);
            let vals = shuffle(rng, vals);
            let others = shuffle(rng, others);
            let mut world_a = BTreeSet::new();
            for (k, i) in vals.iter().chain(others.iter()).enumerate() {
                if k % 2 == 0 {
                    world_a.insert(*i);
                }
            }
            self.description.push(format!(
                "twin split {}..{} ms: honest half {:?} with the originals",
                start - GENESIS_MS,
                end - GENESIS_MS,
                world_a
            ));
            self.plan.push((start, Action::TwinSplit { world_a }));
        } else {
            let mut groups: Vec<u32> = (0..n).map(|_| rng.range(0, 1) as u32).collect();
            if groups.iter().all(|g| *g == groups[0]) {
                let flip = rng.range(0, n as u64 - 1) as usize;
                groups[flip] ^= 1;
            }
            self.description.push(format!(
                "partition {}..{} ms: groups {:?}",
                start - GENESIS_MS,
                end - GENESIS_MS,
                groups
            ));
            self.plan.push((start, Action::Partition(groups)));
        }
        if end < self.faults_end_ms {
            self.plan.push((end, Action::Heal));
        }
    }

    fn draw_crashes(&mut self, rng: &mut SimRng) {
        let n = self.keys.len();
        let fault_start = GENESIS_MS + WARMUP_MS;
        if self.faults_end_ms <= fault_start + 1_000 {
            return;
        }
        let count = rng.range(0, 2) as usize;
        let all: Vec<usize> = (0..n).collect();
        for i in pick(rng, &all, count) {
            let at = rng.range(fault_start, self.faults_end_ms - 1_000);
            let down = rng.range(1_000, 6_000);
            self.description.push(format!(
                "crash node {i} at {} ms for {down} ms",
                at - GENESIS_MS
            ));
            self.plan.push((at, Action::Crash(i)));
            if at + down < self.faults_end_ms {
                self.plan.push((at + down, Action::Restart(i)));
            }
        }
    }

    fn draw_authors(&mut self, config: &SimConfig, rng: &mut SimRng) {
        let n = self.keys.len();
        // Authors are picked among the non-validators (so that the honest stake stays what
        // `--byzantine-stake` says), keeping at least two honest nodes besides.
        let candidates: Vec<usize> = (0..n)
            .filter(|i| !self.byzantine.contains(i) && self.bonds[*i] == 0)
            .collect();
        if n - self.byzantine.len() < 4 || candidates.is_empty() {
            return;
        }
        let (worker, garbage) = (rng.chance(0.5), rng.chance(0.5));
        let worker = config.equivocating_worker.unwrap_or(worker);
        let garbage = config.garbage_peer.unwrap_or(garbage);
        if worker {
            let workers: Vec<usize> = candidates
                .iter()
                .copied()
                .filter(|i| !is_reputer(*i))
                .collect();
            if let Some(&w) = pick(rng, &workers, 1).first() {
                self.roles.equivocating_workers.insert(w);
                self.byzantine.insert(w);
                self.description.push(format!("equivocating worker {w}"));
            }
        }
        if garbage {
            let rest: Vec<usize> = candidates
                .iter()
                .copied()
                .filter(|i| !self.byzantine.contains(i))
                .collect();
            if let Some(&g) = pick(rng, &rest, 1).first() {
                self.roles.garbage_peers.insert(g);
                self.byzantine.insert(g);
                self.description.push(format!("garbage peer {g}"));
            }
        }
    }
}

impl Scenario {
    /// Churn ([`super::churn`]), drawn last so that it changes no earlier draw: every honest
    /// non-validator bonds below the set at a random time of the first two seconds of the
    /// fault phase; the first raises its bond 3 s later (entering the set) and unbonds 3–6 s
    /// after that. Steps past the fault phase are dropped. Only where safety is claimed (an
    /// honest churner entering the set never raises the byzantine share of it).
    fn draw_churn(&mut self, config: &SimConfig, rng: &mut SimRng) {
        use super::churn::Step;
        let drawn = rng.chance(0.5);
        if !config.churn.unwrap_or(drawn) || !config.safety_claimed() {
            return;
        }
        let n = self.keys.len();
        self.churners = (0..n)
            .filter(|i| !self.byzantine.contains(i) && self.bonds[*i] == 0)
            .collect();
        let fault_start = GENESIS_MS + WARMUP_MS;
        for (k, &c) in self.churners.iter().enumerate() {
            let wait = rng.range(fault_start, fault_start + 2_000);
            let mut steps = vec![(wait, Step::Wait)];
            if k == 0 {
                let enter = wait + 3_000;
                steps.push((enter, Step::Enter));
                steps.push((enter + rng.range(3_000, 6_000), Step::Leave));
            }
            let steps: Vec<(u64, Step)> = steps
                .into_iter()
                .filter(|(t, _)| *t < self.faults_end_ms)
                .collect();
            self.description.push(format!(
                "churn node {c}: {:?}",
                steps
                    .iter()
                    .map(|(t, s)| format!("{s:?} at {} ms", t - GENESIS_MS))
                    .collect::<Vec<_>>()
            ));
            for (t, step) in steps {
                self.plan.push((t, Action::Churn(c, step)));
            }
        }
    }
}

/// A seeded permutation.
fn shuffle(rng: &mut SimRng, mut v: Vec<usize>) -> Vec<usize> {
    for i in (1..v.len()).rev() {
        let j = rng.range(0, i as u64) as usize;
        v.swap(i, j);
    }
    v
}
