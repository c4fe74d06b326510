//! What a run reports: one [`SeedReport`] per seed, and the [`Summary`] over all of them
//! (text or JSON).

use chorus_crdt::replica::sim::SimStats;
use serde::Serialize;

use super::churn::ChurnReport;
use super::config::SimConfig;
use super::hostile::HostileReport;
use super::invariants::Violation;
use super::invariants::liveness::LivenessStats;
use super::spam::SpamReport;

/// The outcome of one seed.
#[derive(Clone, Debug)]
pub struct SeedReport {
    /// The seed.
    pub seed: u64,
    /// Trace digest (hex): equal for equal seeds.
    pub trace: String,
    /// Violations of claimed invariants.
    pub violations: Vec<Violation>,
    /// Violations of invariants not claimed in this configuration (byzantine stake ≥ 1/3).
    pub unclaimed: Vec<Violation>,
    /// Heights at which two different checkpoints were finalized.
    pub forks: usize,
    /// Lowest ledger height among the checked nodes at the end.
    pub height: u64,
    /// Tokens slashed (evidence of equivocation), per the reference node's ledger.
    pub slashed: u128,
    /// Per height: first application minus the end of its period (ms).
    pub checkpoint_latencies: Vec<u64>,
    /// Per finalized honest entry: first application of its checkpoint minus submission (ms).
    pub entry_latencies: Vec<u64>,
    /// Entry counts.
    pub liveness: LivenessStats,
    /// Virtual time from the end of the drain until every checked node was identical.
    pub converged_after_ms: Option<u64>,
    /// Message counters.
    pub stats: SimStats,
    /// The hostile-author gauntlet.
    pub hostile: HostileReport,
    /// Spam from fresh keys (unfunded ledger messages, unregistered bundles).
    pub spam: SpamReport,
    /// Validator churn beyond the cap.
    pub churn: ChurnReport,
    /// Simulator steps.
    pub steps: u64,
    /// What the seed drew.
    pub description: Vec<String>,
    /// Wall time (ms).
    pub wall_ms: f64,
}

impl SeedReport {
    /// A seed that could not run to the end.
    pub fn failed(seed: u64, invariant: &'static str, detail: String) -> Self {
        SeedReport {
            seed,
            trace: String::new(),
            violations: vec![Violation {
                invariant,
                at_ms: 0,
                detail,
            }],
            unclaimed: vec![],
            forks: 0,
            height: 0,
            slashed: 0,
            checkpoint_latencies: vec![],
            entry_latencies: vec![],
            liveness: LivenessStats::default(),
            converged_after_ms: None,
            stats: SimStats::default(),
            hostile: HostileReport::default(),
            spam: SpamReport::default(),
            churn: ChurnReport::default(),
            steps: 0,
            description: vec![],
            wall_ms: 0.0,
        }
    }
}

/// Violations listed per seed line.
const LINE_VIOLATIONS: usize = 5;

impl SeedReport {
    /// One line: seed, verdict, height, trace, what it drew, violations.
    pub fn line(&self) -> String {
        let mut s = format!(
            "seed {}: {} height {} trace {} wall {:.0} ms | {}",
            self.seed,
            if self.violations.is_empty() {
                "ok"
            } else {
                "FAIL"
            },
            self.height,
            self.trace.get(..16).unwrap_or(""),
            self.wall_ms,
            self.description.join("; ")
        );
        let all: Vec<&Violation> = self.violations.iter().chain(&self.unclaimed).collect();
        for v in all.iter().take(LINE_VIOLATIONS) {
            s.push_str(&format!("\n    {v}"));
        }
        if all.len() > LINE_VIOLATIONS {
            s.push_str(&format!(
                "\n    ... and {} more",
                all.len() - LINE_VIOLATIONS
            ));
        }
        s
    }
}

/// p50 / p99 / max of a sample.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Percentiles {
    /// Median.
    pub p50: u64,
    /// 99th percentile.
    pub p99: u64,
    /// Largest.
    pub max: u64,
    /// Sample size.
    pub n: usize,
}

impl Percentiles {
    /// Nearest-rank percentiles of `v`.
    pub fn of(mut v: Vec<u64>) -> Self {
        if v.is_empty() {
            return Percentiles::default();
        }
        v.sort_unstable();
        let at = |q: f64| v[((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
        Percentiles {
            p50: at(0.50),
            p99: at(0.99),
            max: v[v.len() - 1],
            n: v.len(),
        }
    }
}

/// A violation with its seed.
#[derive(Clone, Debug, Serialize)]
pub struct SeedViolation {
    /// The seed (reproduce with `--first-seed SEED --seeds 1`).
    pub seed: u64,
    /// The violation.
    #[serde(flatten)]
    pub violation: Violation,
}

/// The summary of a run.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    /// Seeds run.
    pub seeds_run: u64,
    /// First seed.
    pub first_seed: u64,
    /// Nodes.
    pub nodes: usize,
    /// Validators.
    pub validators: usize,
    /// Byzantine stake fraction.
    pub byzantine_stake: f64,
    /// Whether agreement, convergence and liveness are claimed (byzantine stake < 1/3).
    pub safety_claimed: bool,
    /// Violations of claimed invariants.
    pub violations: usize,
    /// Seeds with a violation of a claimed invariant.
    pub failing_seeds: Vec<u64>,
    /// Violations of unclaimed invariants (byzantine stake ≥ 1/3).
    pub unclaimed_violations: usize,
    /// Seeds in which two different checkpoints were finalized at one height.
    pub forked_seeds: Vec<u64>,
    /// Heights finalized, summed over seeds (lowest checked node of each seed).
    pub finalized_heights: u64,
    /// Lowest final height of any seed.
    pub min_final_height: u64,
    /// First application of each height after its period ended (ms).
    pub checkpoint_finality_ms: Percentiles,
    /// Honest entry: submission to first application of its checkpoint (ms).
    pub entry_finality_ms: Percentiles,
    /// Honest entries.
    pub entries: LivenessStats,
    /// Hostile changes offered to windows, and refused.
    pub hostile_changes: (u64, u64),
    /// Crafted sync messages sent to live replicas, and the hostile changes in them.
    pub hostile_sync: (u64, u64),
    /// Spam from fresh keys, summed over seeds (none of it may be held anywhere).
    pub spam: SpamReport,
    /// Validator churn beyond the cap, summed over seeds.
    pub churn: ChurnReport,
    /// Seeds that ran churn.
    pub churn_seeds: u64,
    /// The simulator's counters summed over seeds.
    pub messages: SimStats,
    /// Slowest convergence after the drain (ms).
    pub max_convergence_ms: u64,
    /// Simulator steps.
    pub steps: u64,
    /// Wall time (s).
    pub wall_secs: f64,
    /// Seeds per second of wall time.
    pub seeds_per_sec: f64,
    /// The first violations (at most 20).
    pub first_violations: Vec<SeedViolation>,
}

impl Summary {
    /// Summarise `reports` (any order) of a run of `config` that took `wall_secs`.
    pub fn new(config: &SimConfig, reports: &[SeedReport], wall_secs: f64) -> Self {
        let mut entries = LivenessStats::default();
        let mut messages = SimStats::default();
        let mut hostile = (0, 0);
        let mut hostile_sync = (0, 0);
        let mut spam = SpamReport::default();
        let mut churn = ChurnReport::default();
        let mut churn_seeds = 0;
        let mut first_violations = vec![];
        for r in reports {
            entries.submitted += r.liveness.submitted;
            entries.eligible += r.liveness.eligible;
            entries.late += r.liveness.late;
            entries.finalized += r.liveness.finalized;
            entries.eligible_finalized += r.liveness.eligible_finalized;
            entries.censored += r.liveness.censored;
            messages += &r.stats;
            hostile.0 += r.hostile.offered;
            hostile.1 += r.hostile.refused;
            hostile_sync.0 += r.hostile.sync_messages;
            hostile_sync.1 += r.hostile.sync_changes;
            spam += r.spam;
            churn += r.churn;
            churn_seeds += u64::from(r.churn.bonds + r.churn.unbonds + r.churn.not_sent > 0);
            for v in &r.violations {
                if first_violations.len() < 20 {
                    first_violations.push(SeedViolation {
                        seed: r.seed,
                        violation: v.clone(),
                    });
                }
            }
        }
        Summary {
            seeds_run: reports.len() as u64,
            first_seed: config.first_seed,
            nodes: config.nodes,
            validators: config.validators,
            byzantine_stake: config.byzantine_stake,
            safety_claimed: config.safety_claimed(),
            violations: reports.iter().map(|r| r.violations.len()).sum(),
            failing_seeds: reports
                .iter()
                .filter(|r| !r.violations.is_empty())
                .map(|r| r.seed)
                .collect(),
            unclaimed_violations: reports.iter().map(|r| r.unclaimed.len()).sum(),
            forked_seeds: reports
                .iter()
                .filter(|r| r.forks > 0)
                .map(|r| r.seed)
                .collect(),
            finalized_heights: reports.iter().map(|r| r.height).sum(),
            min_final_height: reports.iter().map(|r| r.height).min().unwrap_or(0),
            checkpoint_finality_ms: Percentiles::of(
                reports
                    .iter()
                    .flat_map(|r| r.checkpoint_latencies.iter().copied())
                    .collect(),
            ),
            entry_finality_ms: Percentiles::of(
                reports
                    .iter()
                    .flat_map(|r| r.entry_latencies.iter().copied())
                    .collect(),
            ),
            entries,
            hostile_changes: hostile,
            hostile_sync,
            spam,
            churn,
            churn_seeds,
            messages,
            max_convergence_ms: reports
                .iter()
                .filter_map(|r| r.converged_after_ms)
                .max()
                .unwrap_or(0),
            steps: reports.iter().map(|r| r.steps).sum(),
            wall_secs,
            seeds_per_sec: reports.len() as f64 / wall_secs.max(1e-9),
            first_violations,
        }
    }

    /// Whether the run passed (no violation of a claimed invariant).
    pub fn passed(&self) -> bool {
        self.violations == 0
    }

    /// Human-readable lines.
    pub fn text(&self) -> String {
        let mut out = String::new();
        let line = |out: &mut String, s: String| {
            out.push_str(&s);
            out.push('\n');
        };
        line(
            &mut out,
            format!(
                "sim: {} seeds from {} ({} nodes, {} validators, byzantine stake {:.3}): {}",
                self.seeds_run,
                self.first_seed,
                self.nodes,
                self.validators,
                self.byzantine_stake,
                if self.passed() { "PASS" } else { "FAIL" }
            ),
        );
        line(
            &mut out,
            format!(
                "violations: {} in seeds {:?}",
                self.violations, self.failing_seeds
            ),
        );
        if !self.safety_claimed {
            line(
                &mut out,
                format!(
                    "safety NOT claimed (byzantine stake >= 1/3): {} unclaimed violations, forks in {} seeds {:?}",
                    self.unclaimed_violations,
                    self.forked_seeds.len(),
                    self.forked_seeds
                ),
            );
        }
        line(
            &mut out,
            format!(
                "finalized heights: {} in total, at least {} per seed",
                self.finalized_heights, self.min_final_height
            ),
        );
        let p = self.checkpoint_finality_ms;
        line(
            &mut out,
            format!(
                "checkpoint finality after period end: p50 {} ms, p99 {} ms, max {} ms ({} heights)",
                p.p50, p.p99, p.max, p.n
            ),
        );
        let p = self.entry_finality_ms;
        line(
            &mut out,
            format!(
                "entry finality after submission: p50 {} ms, p99 {} ms, max {} ms",
                p.p50, p.p99, p.max
            ),
        );
        let e = &self.entries;
        line(
            &mut out,
            format!(
                "honest entries: {} submitted, {} finalized; {} eligible, {} of them finalized, {} censored by byzantine proposers; {} sent after their window's close (best effort)",
                e.submitted, e.finalized, e.eligible, e.eligible_finalized, e.censored, e.late
            ),
        );
        let m = &self.messages;
        line(
            &mut out,
            format!(
                "messages: {} sent, {} lost, {} relayed, {} rejected, {} penalties; forged {} votes, {} proposals, {} votes far ahead; {} garbage; hostile changes refused {}/{} by windows, {} in {} sync messages to replicas, none held",
                m.sent,
                m.lost,
                m.relayed,
                m.rejected,
                m.penalized,
                m.forged_votes,
                m.forged_proposals,
                m.forged_ahead,
                m.garbage_sent,
                self.hostile_changes.1,
                self.hostile_changes.0,
                self.hostile_sync.1,
                self.hostile_sync.0
            ),
        );
        let sp = &self.spam;
        line(
            &mut out,
            format!(
                "spam from fresh keys: {} unfunded ledger messages, {} unregistered bundles and {} \
                 junk evidence messages gossiped to every honest replica, {} bundles and {} NaN \
                 bundles of a registered worker in {} sync messages; none held",
                sp.unfunded_ledger,
                sp.unregistered_bundles,
                sp.junk_evidence,
                sp.sync_changes,
                sp.nan_by_sync,
                sp.sync_messages
            ),
        );
        let ch = &self.churn;
        line(
            &mut out,
            format!(
                "validator churn in {} seeds: {} bonds and {} unbonds published ({} not sent: \
                 node down); the set changed {} times, bonded accounts waited outside it after \
                 {} heights, a churner was in it after {}",
                self.churn_seeds,
                ch.bonds,
                ch.unbonds,
                ch.not_sent,
                ch.set_changes,
                ch.beyond_cap_heights,
                ch.churner_in_set_heights
            ),
        );
        line(
            &mut out,
            format!(
                "wall: {:.1} s, {:.2} seeds/s, {} steps; slowest convergence {} ms",
                self.wall_secs, self.seeds_per_sec, self.steps, self.max_convergence_ms
            ),
        );
        for v in &self.first_violations {
            line(&mut out, format!("  seed {}: {}", v.seed, v.violation));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let p = Percentiles::of((1..=100).collect());
        assert_eq!((p.p50, p.p99, p.max, p.n), (50, 99, 100, 100));
        assert_eq!(Percentiles::of(vec![]).n, 0);
        assert_eq!(Percentiles::of(vec![7]).p99, 7);
    }
}
