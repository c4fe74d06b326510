//! The CI run of the simulator: 100 seeds of the default configuration (6 nodes, 4
//! validators, a quarter of the stake byzantine, a 5 s partition, crashes, loss, skew,
//! byzantine authors), every claimed invariant checked after every step. Seeds run on two
//! threads. The command-line equivalent:
//! `cargo run --release -p chorus-testbeds -- sim --seeds 100 --epochs 15`.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use chorus_testbeds::sim::{self, SimConfig};

#[test]
fn one_hundred_seeds_keep_every_invariant() {
    // 15 epochs of faults (the command's default is 20): about 24 s of virtual time per seed,
    // so that the debug build runs the 100 seeds in about a minute on two free cores.
    let config = SimConfig {
        seeds: 100,
        jobs: 2,
        epochs: 15,
        ..SimConfig::default()
    };
    let (reports, summary) = sim::run(&config);
    let text = summary.text();
    eprintln!("{text}");
    for r in reports.iter().filter(|r| !r.violations.is_empty()) {
        eprintln!("{}", r.line());
    }
    assert_eq!(summary.seeds_run, 100);
    assert!(summary.passed(), "{text}");
    // The run did something: heights finalized in every seed, entries finalized, the
    // byzantine behaviours fired.
    assert!(summary.min_final_height >= 15, "{text}");
    assert!(summary.entries.eligible > 1_000, "{text}");
    let e = &summary.entries;
    assert_eq!(e.eligible, e.eligible_finalized + e.censored);
    let m = &summary.messages;
    assert!(
        m.forged_votes > 0 && m.forged_proposals > 0 && m.garbage_sent > 0,
        "{text}"
    );
    assert!(summary.hostile_changes.0 > 0);
    assert_eq!(summary.hostile_changes.0, summary.hostile_changes.1);
    // Spam from fresh keys arrived in every burst (none of it held: the seeds passed). Each
    // burst is SPAM_KEYS keys × SPAM_NONCES ledger messages and one bundle per topic: the
    // counts are whole bursts.
    let sp = &summary.spam;
    let per_burst = (sim::spam::SPAM_KEYS as u64) * sim::spam::SPAM_NONCES;
    assert!(sp.unfunded_ledger > 0, "{text}");
    assert_eq!(sp.unfunded_ledger % per_burst, 0, "{text}");
    assert!(sp.unregistered_bundles > 0 && sp.sync_changes > 0, "{text}");
    assert!(sp.junk_evidence > 0, "{text}");
    assert!(sp.sync_changes <= sp.unregistered_bundles, "{text}");
    // The byzantine worker's NaN bundles went by sync (none held: the seeds passed).
    assert!(sp.nan_by_sync > 0, "{text}");
    // Validator churn beyond the cap happened (drawn in about half of the seeds): bonds
    // waited outside the set, churners entered it and left it.
    let ch = &summary.churn;
    assert!(summary.churn_seeds > 10, "{text}");
    assert!(ch.bonds > 0 && ch.unbonds > 0, "{text}");
    assert!(ch.beyond_cap_heights > 0 && ch.set_changes > 0, "{text}");
    assert!(ch.churner_in_set_heights > 0, "{text}");
}
