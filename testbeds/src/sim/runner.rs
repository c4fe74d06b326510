//! One seed: build the scenario, drive the simulator step by step through its plan, feed
//! the invariant checkers after every step, and check everything once more at the end.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Instant;

use chorus_crdt::checkpoint::CheckpointId;
use chorus_crdt::replica::sim::{Sim, SimEvent, SimRng};
use chorus_crdt::window::{Phase, WindowKey};
use chorus_protocol::ids::Hash32;

use super::churn::{self, ChurnReport};
use super::config::SimConfig;
use super::hostile::{self, HostileReport};
use super::invariants::Violation;
use super::invariants::agreement::Agreement;
use super::invariants::convergence;
use super::invariants::liveness::{Finalized, Liveness, Submission};
use super::invariants::supply::Supply;
use super::report::SeedReport;
use super::scenario::{Action, GENESIS_MS, PERIOD_MS, Scenario, TOPIC, ValidatorAttack, node_key};
use super::spam::{self, SpamReport};

/// How often (virtual ms) convergence is re-checked while waiting for it.
const CONVERGENCE_CHECK_MS: u64 = 20;

/// Run one seed; a panic anywhere becomes a violation of its own.
pub fn run_seed(config: &SimConfig, seed: u64) -> SeedReport {
    run_seed_full(config, seed).0
}

/// The end state of a seed, for tests that look inside.
pub struct Finished {
    /// What the seed drew.
    pub scenario: Scenario,
    /// The simulator at the end.
    pub sim: Sim,
}

/// Run one seed and keep its end state (`None` if it panicked or could not start).
pub fn run_seed_full(config: &SimConfig, seed: u64) -> (SeedReport, Option<Finished>) {
    run_seed_observed(config, seed, &mut |_| {})
}

/// [`run_seed_full`], calling `observe` after every step (debugging: print what you need).
pub fn run_seed_observed(
    config: &SimConfig,
    seed: u64,
    observe: &mut dyn FnMut(&Sim),
) -> (SeedReport, Option<Finished>) {
    let started = Instant::now();
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        Runner::new(config, seed).map(|r| r.run(observe))
    }));
    let (mut report, finished) = match outcome {
        Ok(Ok((report, finished))) => (report, Some(finished)),
        Ok(Err(e)) => (SeedReport::failed(seed, "setup", e), None),
        Err(panic) => {
            let msg = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown panic".into());
            (SeedReport::failed(seed, "panic", msg), None)
        }
    };
    report.wall_ms = started.elapsed().as_secs_f64() * 1000.0;
    (report, finished)
}

struct Runner<'a> {
    config: &'a SimConfig,
    seed: u64,
    s: Scenario,
    sim: Sim,
    /// Nodes whose state the checkers compare (everyone but twins).
    checked: Vec<bool>,
    /// (original, twin) pairs.
    twins: Vec<(usize, usize)>,
    agreement: Agreement,
    supply: Supply,
    liveness: Liveness,
    /// Earliest time (ms since genesis) each height was applied by a checked node.
    first_applied: BTreeMap<u64, u64>,
    violations: Vec<Violation>,
    genesis_supply: u128,
    converged_at: Option<u64>,
    /// Who proposed each checkpoint (by id).
    proposers: BTreeMap<CheckpointId, BTreeSet<usize>>,
    /// Hashes of the hostile changes sent to live replicas (must never show up anywhere).
    hostile_hashes: BTreeMap<Hash32, String>,
    /// Hostile sync messages sent, and hostile changes in them.
    hostile_sent: (u64, u64),
    /// What the spammers sent.
    spam: SpamReport,
    /// What the churners did and the validator set went through.
    churn: ChurnReport,
    /// The validator set after the last height seen applied.
    last_set: Option<Vec<chorus_protocol::keys::PublicKey>>,
    rng: SimRng,
    next_convergence_check: u64,
    steps: u64,
}

impl<'a> Runner<'a> {
    fn new(config: &'a SimConfig, seed: u64) -> Result<Self, String> {
        let s = Scenario::new(config, seed);
        let genesis_supply = s
            .genesis
            .total_supply()
            .ok_or("the genesis supply overflows")?
            .0;
        let mut sim = Sim::new(
            s.genesis.clone(),
            s.keys.clone(),
            s.roles.clone(),
            s.net.clone(),
            s.replica.clone(),
            seed,
        )
        .map_err(|e| e.to_string())?;
        for (i, skew) in s.skews.iter().enumerate() {
            sim.set_skew(i, *skew);
        }
        let n = s.keys.len();
        Ok(Runner {
            config,
            seed,
            sim,
            checked: vec![true; n],
            twins: vec![],
            agreement: Agreement::default(),
            supply: Supply::default(),
            liveness: Liveness::new(n),
            first_applied: BTreeMap::new(),
            violations: vec![],
            genesis_supply,
            converged_at: None,
            proposers: BTreeMap::new(),
            hostile_hashes: BTreeMap::new(),
            hostile_sent: (0, 0),
            spam: SpamReport::default(),
            churn: ChurnReport::default(),
            last_set: None,
            rng: SimRng::seeded(seed ^ 0x5EED_4057),
            next_convergence_check: s.converge_from_ms,
            steps: 0,
            s,
        })
    }

    fn run(mut self, observe: &mut dyn FnMut(&Sim)) -> (SeedReport, Finished) {
        let mut plan: VecDeque<(u64, Action)> = self.s.plan.clone().into();
        self.connectivity();
        'outer: loop {
            let target = plan
                .front()
                .map_or(self.s.converge_by_ms, |(t, _)| *t)
                .min(self.s.converge_by_ms);
            while self.sim.step(target) {
                self.steps += 1;
                self.after_step();
                observe(&self.sim);
                if self.converged_at.is_some() {
                    break 'outer;
                }
            }
            match plan.pop_front() {
                Some((_, action)) if self.sim.now < self.s.converge_by_ms => {
                    self.apply(action);
                    self.connectivity();
                }
                _ => break,
            }
        }
        self.finish()
    }

    fn checked_nodes(&self) -> Vec<usize> {
        (0..self.sim.nodes.len())
            .filter(|&i| self.checked.get(i).copied().unwrap_or(false))
            .collect()
    }

    fn after_step(&mut self) {
        for event in self.sim.take_events() {
            match event {
                SimEvent::Finalized {
                    node,
                    height,
                    id,
                    ledger_root,
                    at_ms,
                } => {
                    if !self.checked.get(node).copied().unwrap_or(false) {
                        continue;
                    }
                    let at_ms = at_ms - GENESIS_MS;
                    self.agreement
                        .on_finalized(node, height, id, ledger_root, at_ms);
                    if let Some(r) = self.sim.nodes[node].replica.as_ref() {
                        self.supply
                            .check(node, r.ledger(), self.genesis_supply, at_ms);
                    }
                    if !self.first_applied.contains_key(&height) {
                        self.observe_set(node);
                    }
                    let first = self.first_applied.entry(height).or_insert(at_ms);
                    *first = (*first).min(at_ms);
                }
                SimEvent::Proposed { node, id, .. } => {
                    self.proposers.entry(id).or_default().insert(node);
                }
                SimEvent::Fault { node, fault, at_ms } => {
                    // A byzantine node's own faults (e.g. a twin replaying votes its twin
                    // signed) are expected; an honest replica must never report one.
                    if self.checked.get(node).copied().unwrap_or(false)
                        && !self.twins.iter().any(|(o, _)| *o == node)
                    {
                        self.violations.push(Violation {
                            invariant: "replica-fault",
                            at_ms: at_ms - GENESIS_MS,
                            detail: format!("node {node}: {fault}"),
                        });
                    }
                }
                SimEvent::Submitted {
                    node,
                    window,
                    change,
                    at_ms,
                } => {
                    if self.s.byzantine.contains(&node) || node >= self.s.keys.len() {
                        continue;
                    }
                    let close_ms = close_of(&self.s, &window) - GENESIS_MS;
                    self.liveness.on_submitted(Submission {
                        node,
                        window,
                        change,
                        at_ms: at_ms - GENESIS_MS,
                        close_ms,
                    });
                }
            }
        }
        if self.sim.now >= self.next_convergence_check {
            self.next_convergence_check = self.sim.now + CONVERGENCE_CHECK_MS;
            if convergence::difference(&self.sim, &self.checked_nodes(), self.due_height())
                .is_none()
            {
                self.converged_at = Some(self.sim.now);
            }
        }
    }

    /// Heights that should be applied by now: every period that ended
    /// [`convergence::DUE_SLACK`] periods ago (height `H` finalizes period `H − 1`).
    fn due_height(&self) -> u64 {
        ((self.sim.now - GENESIS_MS) / PERIOD_MS).saturating_sub(convergence::DUE_SLACK)
    }

    fn apply(&mut self, action: Action) {
        match action {
            Action::Partition(groups) => self.sim.partition(&groups),
            Action::TwinSplit { world_a } => self.twin_split(&world_a),
            Action::Heal => self.sim.heal(),
            Action::Crash(i) => self.sim.crash(i),
            Action::Restart(i) => self.restart(i),
            Action::EndFaults => {
                self.sim.heal();
                for &(_, twin) in &self.twins {
                    self.sim.crash(twin);
                }
                for i in self.checked_nodes() {
                    if self.sim.nodes[i].replica.is_none() {
                        self.restart(i);
                    }
                }
                // Network faults end; byzantine nodes stay byzantine.
                self.sim.net.loss = 0.0;
                self.sim.net.duplicate = 0.0;
                self.sim.net.reorder = 0.0;
            }
            Action::HostileSync => self.hostile_sync(),
            Action::Spam => self.spam(),
            Action::Churn(node, step) => {
                let payload = step.payload();
                if !self.sim.publish(node, &payload) {
                    self.churn.not_sent += 1;
                } else if matches!(step, churn::Step::Leave) {
                    self.churn.unbonds += 1;
                } else {
                    self.churn.bonds += 1;
                }
            }
            Action::PauseRoles => {
                // Drain: nobody submits, and the attackers stop too, so that every node can
                // reach the same state (including the open windows).
                self.sim.roles_paused = true;
                let roles = &mut self.sim.roles;
                roles.equivocating_validators.clear();
                roles.bad_root_proposers.clear();
                roles.garbage_peers.clear();
                roles.equivocating_workers.clear();
                roles.forging_ahead.clear();
            }
        }
    }

    /// Count what the validator set went through, from the ledger of `node`, the first to
    /// apply a height ([`churn`]).
    fn observe_set(&mut self, node: usize) {
        let Some(r) = self.sim.nodes[node].replica.as_ref() else {
            return;
        };
        let ledger = r.ledger();
        let set: Vec<_> = ledger.active_bonds().into_iter().map(|(k, _)| k).collect();
        if ledger.bonds().len() > set.len() {
            self.churn.beyond_cap_heights += 1;
        }
        if self
            .s
            .churners
            .iter()
            .any(|&c| set.contains(&self.s.keys[c].public()))
        {
            self.churn.churner_in_set_heights += 1;
        }
        if self.last_set.as_ref().is_some_and(|last| *last != set) {
            self.churn.set_changes += 1;
        }
        self.last_set = Some(set);
    }

    /// A random byzantine node, and the honest checked replicas that run; `None` when either
    /// side is empty.
    fn attacker_and_targets(&mut self) -> Option<(usize, Vec<usize>)> {
        let from: Vec<usize> = self.s.byzantine.iter().copied().collect();
        let targets: Vec<usize> = self
            .checked_nodes()
            .into_iter()
            .filter(|i| !self.s.byzantine.contains(i) && self.sim.nodes[*i].replica.is_some())
            .collect();
        if from.is_empty() || targets.is_empty() {
            return None;
        }
        let from = from[self.rng.range(0, from.len() as u64 - 1) as usize];
        Some((from, targets))
    }

    /// A byzantine node sends a random honest running replica a crafted sync message for
    /// one of its open worker windows that holds entries.
    fn hostile_sync(&mut self) {
        let Some((from, targets)) = self.attacker_and_targets() else {
            return;
        };
        let to = targets[self.rng.range(0, targets.len() as u64 - 1) as usize];
        let Some(r) = self.sim.nodes[to].replica.as_ref() else {
            return;
        };
        let windows: Vec<WindowKey> = r
            .window_keys()
            .into_iter()
            .filter(|k| {
                matches!(
                    k,
                    WindowKey::Topic {
                        phase: Phase::Workers,
                        ..
                    }
                )
            })
            .filter(|k| r.window(k).is_some_and(|w| !w.is_empty()))
            .collect();
        if windows.is_empty() {
            return;
        }
        let key = windows[self.rng.range(0, windows.len() as u64 - 1) as usize];
        let Some(w) = r.window(&key) else {
            return;
        };
        let network = self.s.genesis.network_id();
        let hostile = self.sim.nodes[from].key.clone();
        match hostile::hostile_sync_message(w, &hostile, &network, &mut self.rng) {
            Ok((bytes, hashes)) => {
                self.hostile_sent.0 += 1;
                self.hostile_sent.1 += hashes.len() as u64;
                self.hostile_hashes.extend(hashes);
                self.sim.inject_sync(from, to, key, bytes);
            }
            Err(e) => self.violations.push(Violation {
                invariant: "hostile-author",
                at_ms: self.sim.now - GENESIS_MS,
                detail: format!("could not build a hostile sync message: {e}"),
            }),
        }
    }

    /// A byzantine node spams every honest running replica ([`spam`]); the changes the spam
    /// would be are remembered as hostile (never to be held or finalized anywhere).
    fn spam(&mut self) {
        let Some((from, targets)) = self.attacker_and_targets() else {
            return;
        };
        let own = self.sim.nodes[from].key.clone();
        let burst =
            match spam::burst(&self.s.genesis, self.sim.now, &mut self.rng).and_then(|mut b| {
                b.extend(spam::non_finite(&self.s.genesis, &own, self.sim.now)?);
                Ok(b)
            }) {
                Ok(b) => b,
                Err(e) => {
                    self.violations.push(Violation {
                        invariant: "hostile-author",
                        at_ms: self.sim.now - GENESIS_MS,
                        detail: format!("could not build spam: {e}"),
                    });
                    return;
                }
            };
        for m in &burst {
            self.hostile_hashes.insert(m.change, m.kind.name().into());
            if m.kind == spam::Kind::NonFinite {
                continue; // by sync only
            }
            for &to in &targets {
                self.sim.inject_gossip(from, to, m.channel, m.bytes.clone());
            }
            match m.kind {
                spam::Kind::Unfunded => self.spam.unfunded_ledger += 1,
                spam::Kind::Unregistered => self.spam.unregistered_bundles += 1,
                spam::Kind::EvidenceBytes
                | spam::Kind::EvidenceNonces
                | spam::Kind::EvidenceUnregistered => self.spam.junk_evidence += 1,
                spam::Kind::NonFinite => {}
            }
        }
        // The bundles again, by sync, to one replica holding their window.
        let to = targets[self.rng.range(0, targets.len() as u64 - 1) as usize];
        let mut by_window: BTreeMap<WindowKey, Vec<(spam::Kind, Vec<u8>)>> = BTreeMap::new();
        for m in &burst {
            if let Some(key) = m.window {
                by_window
                    .entry(key)
                    .or_default()
                    .push((m.kind, m.raw_change.clone()));
            }
        }
        for (key, changes) in by_window {
            let Some(w) = self.sim.nodes[to]
                .replica
                .as_ref()
                .and_then(|r| r.window(&key))
            else {
                continue;
            };
            let nan = changes
                .iter()
                .filter(|(k, _)| *k == spam::Kind::NonFinite)
                .count() as u64;
            let n = changes.len() as u64 - nan;
            let raw = changes.into_iter().map(|(_, c)| c).collect();
            match hostile::sync_message_carrying(w, raw) {
                Ok(bytes) => {
                    self.spam.sync_messages += 1;
                    self.spam.sync_changes += n;
                    self.spam.nan_by_sync += nan;
                    self.sim.inject_sync(from, to, key, bytes);
                }
                Err(e) => self.violations.push(Violation {
                    invariant: "hostile-author",
                    at_ms: self.sim.now - GENESIS_MS,
                    detail: format!("could not build a spam sync message: {e}"),
                }),
            }
        }
    }

    /// The list of change hashes a checkpoint's window head names, from the store of any node
    /// that applied its height (checked against the root); `None` while none has.
    fn head_list(&self, w: &chorus_crdt::checkpoint::WindowHead) -> Option<Vec<Hash32>> {
        if w.entries == 0 {
            return Some(vec![]);
        }
        self.sim
            .nodes
            .iter()
            .filter_map(|n| n.store.heads.get(&w.window))
            .find(|l| w.is_list(l))
            .cloned()
    }

    /// Whether any hostile change reached a window or a finalized head of a checked node.
    fn hostile_changes_held(&self) -> Option<String> {
        for i in self.checked_nodes() {
            let n = &self.sim.nodes[i];
            if let Some(r) = n.replica.as_ref() {
                for key in r.window_keys() {
                    if let Some(w) = r.window(&key)
                        && let Some((h, what)) =
                            self.hostile_hashes.iter().find(|(h, _)| w.contains(h))
                    {
                        return Some(format!(
                            "node {i} holds hostile change {} ({what}) in {key:?}",
                            h.short()
                        ));
                    }
                }
            }
            for d in n.store.decided.values() {
                for w in &d.checkpoint.windows {
                    if let Some((h, what)) = self
                        .head_list(w)
                        .iter()
                        .flatten()
                        .find_map(|h| self.hostile_hashes.get_key_value(h))
                    {
                        return Some(format!(
                            "node {i} finalized hostile change {} ({what}) at height {}",
                            h.short(),
                            d.height()
                        ));
                    }
                }
            }
        }
        None
    }

    fn restart(&mut self, i: usize) {
        if self.sim.nodes[i].replica.is_some() {
            return;
        }
        if let Err(e) = self.sim.start(i) {
            self.violations.push(Violation {
                invariant: "restart",
                at_ms: self.sim.now - GENESIS_MS,
                detail: format!("node {i} could not restart from its store: {e}"),
            });
        }
    }

    /// Clone every twin-attacking validator; originals and `world_a` in one half, twins and
    /// the other honest nodes in the other.
    fn twin_split(&mut self, world_a: &BTreeSet<usize>) {
        let originals: Vec<usize> = self
            .s
            .attacks
            .iter()
            .filter(|(_, a)| *a == ValidatorAttack::Twin)
            .map(|(i, _)| *i)
            .collect();
        for i in originals {
            match self.sim.add_twin(i) {
                Ok(t) => {
                    self.twins.push((i, t));
                    self.checked.push(false);
                }
                Err(e) => self.violations.push(Violation {
                    invariant: "restart",
                    at_ms: self.sim.now - GENESIS_MS,
                    detail: format!("twin of node {i} could not start: {e}"),
                }),
            }
        }
        let twins: BTreeSet<usize> = self.twins.iter().map(|(_, t)| *t).collect();
        let originals: BTreeSet<usize> = self.twins.iter().map(|(o, _)| *o).collect();
        let side = |x: usize| world_a.contains(&x) || originals.contains(&x);
        let n = self.sim.nodes.len();
        let links = (0..n)
            .map(|a| {
                (0..n)
                    .map(|b| side(a) == side(b) && !(twins.contains(&a) && originals.contains(&b)))
                    .collect()
            })
            .collect();
        self.sim.set_links(links);
    }

    /// Who is connected to > 2/3 of the stake through honest running validators.
    fn connectivity(&mut self) {
        let total: u128 = self.s.bonds.iter().sum();
        let n = self.sim.nodes.len();
        let honest_validators: Vec<usize> = (0..self.s.keys.len())
            .filter(|j| self.s.bonds[*j] > 0 && !self.s.byzantine.contains(j))
            .collect();
        let alive = |i: usize| self.sim.nodes[i].replica.is_some();
        let good: Vec<bool> = (0..n)
            .map(|i| {
                if !alive(i) {
                    return false;
                }
                let reach: u128 = honest_validators
                    .iter()
                    .filter(|&&j| {
                        alive(j)
                            && (i == j || (self.sim.connected(i, j) && self.sim.connected(j, i)))
                    })
                    .map(|&j| self.s.bonds[j])
                    .sum();
                reach * 3 > total * 2
            })
            .collect();
        self.liveness.connectivity(self.sim.now - GENESIS_MS, &good);
    }

    fn finish(mut self) -> (SeedReport, Finished) {
        let now = self.sim.now - GENESIS_MS;
        let checked = self.checked_nodes();
        if self.converged_at.is_none() {
            let why = convergence::difference(&self.sim, &checked, self.due_height())
                .unwrap_or_else(|| "converged only at the deadline".into());
            self.violations.push(Violation {
                invariant: "convergence",
                at_ms: now,
                detail: format!(
                    "not converged {} ms after the drain: {why}",
                    super::scenario::CONVERGE_MS
                ),
            });
        }
        let genesis_previous = self.s.genesis.network_id();
        for &i in &checked {
            self.agreement
                .check_chain(i, &self.sim.nodes[i].store.decided, genesis_previous, now);
            if let Some(r) = self.sim.nodes[i].replica.as_ref() {
                self.supply.check(i, r.ledger(), self.genesis_supply, now);
            }
        }
        // Where each window was finalized, from the first checked running node's chain.
        let mut finalized = Finalized::new();
        let reference = checked
            .iter()
            .copied()
            .find(|&i| self.sim.nodes[i].replica.is_some());
        if let Some(r) = reference {
            for (h, d) in &self.sim.nodes[r].store.decided {
                // Heads chosen by a byzantine proposer may omit honest entries (validators
                // accept any set of heads they can verify): those entries are censored.
                let byzantine = self.proposers.get(&d.id()).is_some_and(|ps| {
                    ps.iter().all(|p| {
                        self.s.byzantine.contains(p) || self.twins.iter().any(|(_, t)| t == p)
                    })
                });
                for w in &d.checkpoint.windows {
                    if let Some(list) = self.head_list(w) {
                        finalized.insert(w.window, (*h, list.into_iter().collect(), byzantine));
                    }
                }
            }
        }
        self.liveness.finish(&finalized, &self.first_applied, now);
        if let Some(what) = self.hostile_changes_held() {
            self.violations.push(Violation {
                invariant: "hostile-author",
                at_ms: now,
                detail: what,
            });
        }
        let mut hostile = self.hostile_author(now);
        hostile.sync_messages = self.hostile_sent.0;
        hostile.sync_changes = self.hostile_sent.1;
        let mut claimed = std::mem::take(&mut self.violations);
        claimed.append(&mut self.agreement.violations);
        claimed.append(&mut self.supply.violations);
        claimed.append(&mut self.liveness.violations);
        let mut unclaimed = vec![];
        if !self.config.safety_claimed() {
            // With ≥ 1/3 byzantine stake only supply (per node) and crash-freedom are claimed.
            let (keep, drop): (Vec<_>, Vec<_>) = claimed.into_iter().partition(|v| {
                matches!(
                    v.invariant,
                    "supply" | "panic" | "setup" | "restart" | "hostile-author"
                )
            });
            claimed = keep;
            unclaimed = drop;
        }
        let checkpoint_latencies = self
            .first_applied
            .iter()
            .map(|(h, at)| at.saturating_sub(h * PERIOD_MS))
            .collect();
        let height = checked
            .iter()
            .filter_map(|&i| self.sim.nodes[i].replica.as_ref())
            .map(|r| r.ledger().next_height)
            .min()
            .unwrap_or(0);
        let slashed = reference
            .and_then(|r| self.sim.nodes[r].replica.as_ref())
            .map_or(0, |r| r.ledger().supply.slashed.0);
        let report = SeedReport {
            seed: self.seed,
            slashed,
            trace: self.sim.trace().to_hex(),
            violations: claimed,
            unclaimed,
            forks: self.agreement.forks.len(),
            height,
            checkpoint_latencies,
            entry_latencies: std::mem::take(&mut self.liveness.latencies),
            liveness: self.liveness.stats.clone(),
            converged_after_ms: self
                .converged_at
                .map(|t| t.saturating_sub(self.s.converge_from_ms)),
            stats: self.sim.stats.clone(),
            hostile,
            spam: self.spam,
            churn: self.churn,
            steps: self.steps,
            description: self.s.description.clone(),
            wall_ms: 0.0,
        };
        (
            report,
            Finished {
                scenario: self.s,
                sim: self.sim,
            },
        )
    }

    /// The hostile-author gauntlet on the fullest worker window of a random checked node.
    fn hostile_author(&mut self, now: u64) -> HostileReport {
        let mut rng = SimRng::seeded(self.seed ^ 0x4057_11E5);
        let checked: Vec<usize> = self
            .checked_nodes()
            .into_iter()
            .filter(|i| !self.s.byzantine.contains(i))
            .collect();
        if checked.is_empty() {
            return HostileReport::default();
        }
        let node = checked[rng.range(0, checked.len() as u64 - 1) as usize];
        let best = self.sim.nodes[node]
            .store
            .envelopes
            .iter()
            .filter(|(k, _)| {
                matches!(k, WindowKey::Topic { phase: Phase::Workers, topic, .. } if *topic == TOPIC)
            })
            .max_by_key(|(k, v)| (v.len(), *k));
        let Some((key, envelopes)) = best else {
            return HostileReport::default();
        };
        let hostile = node_key(10_000 + self.seed as usize % 1_000);
        match hostile::gauntlet(
            *key,
            self.s.genesis.network_id(),
            envelopes,
            &hostile,
            &mut rng,
        ) {
            Ok(r) => r,
            Err(e) => {
                self.violations.push(Violation {
                    invariant: "hostile-author",
                    at_ms: now,
                    detail: format!("node {node}, {key:?}: {e}"),
                });
                HostileReport::default()
            }
        }
    }
}

/// When a topic window closes (ms).
fn close_of(s: &Scenario, window: &WindowKey) -> u64 {
    let spec = &s.genesis.topics[0].spec;
    match window {
        WindowKey::Topic {
            epoch,
            phase: Phase::Workers,
            ..
        } => spec.worker_window(*epoch).1,
        WindowKey::Topic { epoch, .. } => spec.reputer_window(*epoch).1,
        WindowKey::Ledger { .. } => 0,
    }
}
