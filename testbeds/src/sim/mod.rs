//! The deterministic simulator: N pure replicas (`chorus_crdt::replica::sim`), a seeded RNG,
//! virtual time, scripted faults and byzantine behaviours, invariants after every step.
//!
//! - [`config`]: what a run is ([`SimConfig`]) and its flags.
//! - [`scenario`]: what each seed draws (network, skews, partition, crashes, attackers) and
//!   the timeline (faults, then liveness, drain and convergence phases).
//! - [`runner`]: one seed, step by step, with the checkers.
//! - [`invariants`]: agreement, convergence, supply, liveness (one per file).
//! - [`hostile`]: the hostile automerge author, at the window level.
//! - [`report`]: per-seed reports and the summary.
//! - [`cli`]: the `chorus-testbeds sim` command.
//!
//! Reproduce a seed: `cargo run --release -p chorus-testbeds -- sim --first-seed S --seeds 1`
//! with the same other flags; the trace digest is the same on every run.

pub mod churn;
pub mod cli;
pub mod config;
pub mod hostile;
pub mod invariants;
pub mod report;
pub mod runner;
pub mod scenario;
pub mod spam;

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

pub use config::{ConfigError, SimArgs, SimConfig};
pub use report::{SeedReport, Summary};
pub use runner::{Finished, run_seed, run_seed_full, run_seed_observed};

/// Run every seed of `config` on `config.jobs` threads; the reports come back in seed order
/// and do not depend on the number of threads.
pub fn run(config: &SimConfig) -> (Vec<SeedReport>, Summary) {
    let started = Instant::now();
    let next = AtomicU64::new(0);
    let reports = Mutex::new(Vec::with_capacity(config.seeds as usize));
    std::thread::scope(|scope| {
        for _ in 0..config.jobs.max(1) {
            scope.spawn(|| {
                loop {
                    let k = next.fetch_add(1, Ordering::Relaxed);
                    if k >= config.seeds {
                        break;
                    }
                    let report = run_seed(config, config.first_seed + k);
                    if let Ok(mut v) = reports.lock() {
                        v.push(report);
                    }
                }
            });
        }
    });
    let mut reports = reports.into_inner().unwrap_or_default();
    reports.sort_by_key(|r| r.seed);
    let summary = Summary::new(config, &reports, started.elapsed().as_secs_f64());
    (reports, summary)
}
