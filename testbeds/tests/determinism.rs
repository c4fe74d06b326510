//! The same seed gives the same run: trace digest and every reported number, whatever the
//! number of threads.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use chorus_testbeds::sim::{self, SimConfig, run_seed};

fn config() -> SimConfig {
    SimConfig {
        epochs: 10,
        equivocating_worker: Some(true),
        garbage_peer: Some(true),
        ..SimConfig::default()
    }
}

#[test]
fn the_same_seed_twice_gives_an_identical_trace() {
    let c = config();
    let a = run_seed(&c, 7);
    let b = run_seed(&c, 7);
    assert!(!a.trace.is_empty());
    assert_eq!(a.trace, b.trace);
    assert_eq!(a.steps, b.steps);
    assert_eq!(a.height, b.height);
    assert_eq!(a.checkpoint_latencies, b.checkpoint_latencies);
    assert_eq!(a.entry_latencies, b.entry_latencies);
    assert_eq!(a.stats, b.stats);
    assert_eq!(a.description, b.description);
    let other = run_seed(&c, 8);
    assert_ne!(a.trace, other.trace);
}

#[test]
fn threads_do_not_change_the_results() {
    let one = SimConfig {
        seeds: 4,
        first_seed: 20,
        jobs: 1,
        ..config()
    };
    let two = SimConfig {
        jobs: 2,
        ..one.clone()
    };
    let (a, _) = sim::run(&one);
    let (b, _) = sim::run(&two);
    let traces = |v: &[sim::SeedReport]| {
        v.iter()
            .map(|r| (r.seed, r.trace.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(traces(&a), traces(&b));
}
