//! Simulated networks: agreement, validity, liveness and fault scenarios.

use crate::checkpoint::sim::{Behaviour, Harness, NetConfig, Rng, SimApp, Violation};
use crate::checkpoint::*;

const STEPS: u64 = 400_000;

/// Every listed node decided the same chain for `1..=upto`, and it links.
fn assert_same_chain(h: &Harness, nodes: &[usize], upto: u64) {
    for height in 1..=upto {
        let ids: Vec<_> = nodes
            .iter()
            .map(|&n| h.nodes[n].chain.get(&height).map(DecidedCheckpoint::id))
            .collect();
        assert!(
            ids.iter().all(|id| id.is_some() && *id == ids[0]),
            "height {height}: {ids:?}"
        );
    }
    for &n in nodes {
        let chain = &h.nodes[n].chain;
        for height in 2..=upto {
            assert_eq!(
                chain[&height].checkpoint.previous,
                chain[&(height - 1)].id().0,
                "node {n} height {height}"
            );
        }
    }
}

fn assert_clean(h: &Harness) {
    assert!(
        h.checker.violations.is_empty(),
        "{:?}",
        h.checker.violations
    );
    for (i, n) in h.nodes.iter().enumerate() {
        assert!(n.faults.is_empty(), "node {i}: {:?}", n.faults);
    }
}

fn all(n: usize) -> Vec<usize> {
    (0..n).collect()
}

#[test]
fn four_equal_validators_decide_twenty_heights() {
    let mut h = Harness::new(4, &[], 1);
    h.start(&[]);
    h.run_until(|h| h.all_decided(20), STEPS).unwrap();
    assert_clean(&h);
    assert_same_chain(&h, &all(4), 20);
    // Every certificate verifies against the set, and every checkpoint is valid.
    let set = &h.valsets[0].1;
    for d in h.nodes[0].chain.values() {
        assert!(d.verify(&h.config.network, set).is_ok());
        assert!(SimApp::new(0).validate(&d.checkpoint));
    }
}

#[test]
fn unequal_stakes_count_by_stake_not_by_heads() {
    // 70 % of the stake alone is more than 2/3: one validator decides alone.
    let mut h = Harness::new(4, &[70, 10, 10, 10], 2);
    h.start(&[1, 2, 3]);
    h.run_until(|h| h.decided_by(&[0], 3), STEPS).unwrap();
    assert_clean(&h);

    // 30 + 20 + 10 = 60 % is not enough: three of four validators stall ...
    let mut h = Harness::new(4, &[40, 30, 20, 10], 3);
    h.start(&[0]);
    h.run_for(60_000);
    assert!(h.nodes.iter().all(|n| n.chain.is_empty()));
    // ... until the big one arrives.
    h.start(&[]);
    h.run_until(|h| h.all_decided(5), STEPS).unwrap();
    assert_clean(&h);
    assert_same_chain(&h, &all(4), 5);

    // Everyone online, skewed stakes: the big validator proposes most heights.
    let mut h = Harness::new(4, &[55, 25, 15, 5], 4);
    h.start(&[]);
    h.run_until(|h| h.all_decided(12), STEPS).unwrap();
    assert_clean(&h);
    assert_same_chain(&h, &all(4), 12);
}

#[test]
fn a_validator_set_change_takes_effect_at_its_height() {
    // Node 4 bonds nothing at first (zero stake: not a validator, it only follows).
    let mut h = Harness::new(5, &[100, 100, 100, 100, 0], 12);
    h.start(&[]);
    h.run_until(|h| h.all_decided(2), STEPS).unwrap();
    // The ledger applied checkpoint 2: node 4 bonded 300, validators from height 4 on.
    let bonds: Vec<_> = h
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let stake = if i == 4 { 300 } else { 100 };
            (n.keypair.public(), chorus_protocol::ids::Amount(stake))
        })
        .collect();
    let new_set = ValidatorSet::from_bonds(&bonds).unwrap();
    h.update_validator_set(4, new_set.clone());
    h.run_until(|h| h.all_decided(8), STEPS).unwrap();
    assert_clean(&h);
    assert_same_chain(&h, &all(5), 8);
    let old_set = h.valsets[0].1.clone();
    let newcomer = h.nodes[4].keypair.public();
    for (height, d) in &h.nodes[0].chain {
        let set = if *height >= 4 { &new_set } else { &old_set };
        assert!(d.verify(&h.config.network, set).is_ok(), "height {height}");
        if *height < 4 {
            assert!(
                d.certificate
                    .signatures
                    .iter()
                    .all(|s| s.validator != newcomer)
            );
        }
    }
    // 300 of 700 is more than 1/3: from height 4 on nothing is final without the newcomer.
    for height in 4..=8 {
        let d = &h.nodes[0].chain[&height];
        assert!(
            d.certificate
                .signatures
                .iter()
                .any(|s| s.validator == newcomer)
        );
    }
}

#[test]
fn three_of_four_decide_with_one_offline() {
    let mut h = Harness::new(4, &[], 5);
    h.start(&[3]);
    h.run_until(|h| h.decided_by(&[0, 1, 2], 10), STEPS)
        .unwrap();
    assert_clean(&h);
    assert_same_chain(&h, &[0, 1, 2], 10);
    // Two of four offline (1/2 of the stake): no progress, and no harm.
    let mut h = Harness::new(4, &[], 6);
    h.start(&[2, 3]);
    h.run_for(60_000);
    assert!(h.nodes.iter().all(|n| n.chain.is_empty()));
    assert_clean(&h);
}

#[test]
fn an_invalid_proposal_is_rejected_and_a_later_round_decides() {
    let mut h = Harness::new(4, &[], 7);
    h.nodes[0].app.propose_invalid = true;
    h.start(&[]);
    h.run_until(|h| h.all_decided(15), STEPS).unwrap();
    assert_clean(&h);
    assert_same_chain(&h, &all(4), 15);
    let set = h.valsets[0].1.clone();
    let bad_key = h.nodes[0].keypair.public();
    let mut bad_heights = 0;
    for (height, d) in &h.nodes[1].chain {
        assert!(
            SimApp::new(0).validate(&d.checkpoint),
            "height {height} decided an invalid checkpoint"
        );
        if set.proposer(*height, 0).public_key() == &bad_key {
            bad_heights += 1;
            assert!(
                d.certificate.round >= 1,
                "height {height} decided in round 0"
            );
        }
    }
    assert!(
        bad_heights > 0,
        "the seed must make the byzantine node a round-0 proposer"
    );
}

#[test]
fn an_equivocating_voter_is_caught_with_portable_evidence() {
    let mut h = Harness::new(4, &[], 8);
    h.nodes[0].behaviour = Behaviour::Equivocator;
    h.mark_byzantine(&[0]);
    h.start(&[]);
    h.run_until(|h| h.all_decided(5), STEPS).unwrap();
    assert_clean(&h);
    assert_same_chain(&h, &[1, 2, 3], 5);
    let culprit = h.nodes[0].keypair.public();
    for n in 1..4 {
        let evidence = &h.nodes[n].evidence;
        assert!(!evidence.is_empty(), "honest node {n} reported nothing");
        for e in evidence {
            let proof = verify_vote_evidence(&h.config.network, e).unwrap();
            assert_eq!(proof.validator, culprit);
        }
    }
}

#[test]
fn a_crash_between_wal_and_send_never_double_signs() {
    for seed in 10..30 {
        let mut h = Harness::new(4, &[], seed);
        h.net = NetConfig {
            min_delay_ms: 1,
            max_delay_ms: 80,
            drop_per_mille: 20,
            dup_per_mille: 20,
        };
        h.start(&[]);
        h.run_until(|h| h.all_decided(2), STEPS).unwrap();
        let victim = (seed % 4) as usize;
        h.nodes[victim].crash_after_own_vote = true;
        h.run_until(|h| h.nodes[victim].engine.is_none(), STEPS)
            .unwrap();
        let lost_vote = h.own_votes_in_wal(victim).pop().expect("a recorded vote");
        h.run_for(2_000);
        h.restart(victim);
        let target = h.nodes[victim].engine.as_ref().unwrap().height() + 3;
        h.run_until(|h| h.all_decided(target), STEPS).unwrap();
        assert_clean(&h);
        assert_same_chain(&h, &all(4), target);
        // The vote that never left before the crash is still the only one of its slot.
        assert!(
            h.own_votes_in_wal(victim)
                .iter()
                .chain(std::iter::once(&lost_vote))
                .all(|v| v.vote.height.0 != lost_vote.vote.height.0
                    || v.vote.round != lost_vote.vote.round
                    || v.vote.kind != lost_vote.vote.kind
                    || *v == lost_vote)
        );
    }
}

#[test]
fn a_partitioned_node_catches_up_to_the_identical_chain() {
    let mut h = Harness::new(4, &[], 9);
    h.start(&[]);
    h.run_until(|h| h.all_decided(2), STEPS).unwrap();
    h.partition(&[&[0, 1, 2], &[3]]);
    h.run_until(|h| h.decided_by(&[0, 1, 2], 9), STEPS).unwrap();
    let behind = h.nodes[3].chain.len() as u64;
    assert!(
        behind <= 3,
        "the isolated node cannot decide alone: {behind}"
    );
    h.heal();
    h.run_until(|h| h.all_decided(12), STEPS).unwrap();
    assert_clean(&h);
    assert_same_chain(&h, &all(4), 12);
    let stats = h.nodes[3].engine.as_ref().unwrap().stats();
    assert!(
        stats.decided_via_catch_up >= 9 - behind - 1,
        "caught up by certificates: {stats:?}"
    );
    let set = h.valsets[0].1.clone();
    for d in h.nodes[3].chain.values() {
        assert!(d.verify(&h.config.network, &set).is_ok());
    }
}

/// Negative control: with half of the stake colluding (two twins per byzantine key, one in
/// each half of a partitioned network), two honest nodes decide different checkpoints. The
/// checker must see it — this test *expects* the safety violation.
#[test]
fn colluders_with_a_third_or_more_break_safety_and_the_checker_sees_it() {
    for seed in 40..43 {
        let mut h = Harness::new(4, &[], seed);
        let t0 = h.add_twin(0, 1_000);
        let t1 = h.add_twin(1, 1_001);
        h.mark_byzantine(&[0, 1]);
        h.partition(&[&[0, 1, 2], &[t0, t1, 3]]);
        h.start(&[]);
        h.run_until(|h| h.decided_by(&[2, 3], 1), STEPS).unwrap();
        assert!(
            h.checker
                .violations
                .iter()
                .any(|v| matches!(v, Violation::ConflictingDecision { height: 1, .. })),
            "seed {seed}: expected a conflicting decision, got {:?}",
            h.checker.violations
        );
        assert_ne!(h.decisions(1)[2], h.decisions(1)[3]);
    }
    // Control: one colluder (1/4 of the stake) with the same twin trick cannot split.
    let mut h = Harness::new(4, &[], 44);
    let t0 = h.add_twin(0, 1_000);
    h.mark_byzantine(&[0]);
    h.partition(&[&[0, 1, 2], &[t0, 3]]);
    h.start(&[]);
    h.run_for(30_000);
    h.heal();
    h.run_until(|h| h.decided_by(&[1, 2, 3], 3), STEPS).unwrap();
    assert!(
        h.checker.violations.is_empty(),
        "{:?}",
        h.checker.violations
    );
}

fn lossy_run(seed: u64) -> Harness {
    let mut h = Harness::new(4, &[], seed);
    h.net = NetConfig {
        min_delay_ms: 1,
        max_delay_ms: 120,
        drop_per_mille: 50,
        dup_per_mille: 50,
    };
    h.nodes[1].behaviour = Behaviour::Equivocator;
    h.mark_byzantine(&[1]);
    h.start(&[]);
    h.run_until(|h| h.all_decided(4), STEPS).unwrap();
    h
}

#[test]
fn the_same_seed_gives_the_same_trace() {
    let a = lossy_run(77);
    let b = lossy_run(77);
    assert_eq!(a.trace_digest(), b.trace_digest());
    assert_eq!(a.steps, b.steps);
    assert_eq!(a.now_ms, b.now_ms);
    let c = lossy_run(78);
    assert_ne!(a.trace_digest(), c.trace_digest());
}

/// One seeded run with a random network (delay, loss, duplication) and one random fault:
/// none, an offline validator, a crash and restart (right after a WAL append), an
/// equivocating voter, an invalid proposer, or a partition that heals. It must keep
/// agreement and chain linkage, never double-sign, and decide `heights` heights. Returns
/// the sum of decision rounds (how much the faults cost).
fn random_fault_run(seed: u64, n: usize, heights: u64) -> u64 {
    let mut rng = Rng::new(seed ^ 0x5eed);
    let mut h = Harness::new(n, &[], seed);
    let max_delay = rng.range(10, 200);
    h.net = NetConfig {
        min_delay_ms: 1,
        max_delay_ms: max_delay,
        drop_per_mille: rng.range(0, 100) as u32,
        dup_per_mille: rng.range(0, 50) as u32,
    };
    let faulty = rng.range(0, n as u64 - 1) as usize;
    let scenario = seed % 6;
    let mut offline = vec![];
    match scenario {
        1 => offline.push(faulty),
        3 => {
            h.nodes[faulty].behaviour = Behaviour::Equivocator;
            h.mark_byzantine(&[faulty]);
        }
        4 => h.nodes[faulty].app.propose_invalid = true,
        _ => {}
    }
    h.start(&offline);
    match scenario {
        2 => {
            h.nodes[faulty].crash_after_own_vote = true;
            h.run_until(|h| h.nodes[faulty].engine.is_none(), STEPS)
                .unwrap_or_else(|e| panic!("seed {seed}: no crash: {e:?}"));
            h.run_for(rng.range(0, 3_000));
            h.restart(faulty);
        }
        5 => {
            let others: Vec<usize> = (0..n).filter(|&i| i != faulty).collect();
            h.partition(&[&others, &[faulty]]);
            h.run_for(rng.range(1_000, 10_000));
            h.heal();
        }
        _ => {}
    }
    let honest: Vec<usize> = (0..n)
        .filter(|i| !(offline.contains(i) || (scenario == 3 && *i == faulty)))
        .collect();
    h.run_until(|h| h.decided_by(&honest, heights), STEPS)
        .unwrap_or_else(|e| panic!("seed {seed} scenario {scenario}: stuck: {e:?}"));
    assert!(
        h.checker.violations.is_empty(),
        "seed {seed} scenario {scenario}: {:?}",
        h.checker.violations
    );
    assert_same_chain(&h, &honest, heights);
    for &i in &honest {
        assert!(
            h.nodes[i].faults.is_empty(),
            "seed {seed}: {:?}",
            h.nodes[i].faults
        );
    }
    h.nodes[honest[0]]
        .chain
        .values()
        .map(|d| u64::from(d.certificate.round))
        .sum()
}

/// 200 seeds of [`random_fault_run`] with 4 validators.
#[test]
fn two_hundred_seeds_with_random_faults() {
    let rounds: u64 = (0..200).map(|seed| random_fault_run(seed, 4, 3)).sum();
    // Sanity: the faults did force extra rounds somewhere.
    assert!(rounds > 0);
}

/// Longer soak: `SOAK_SEEDS` (default 1000) seeds with 4 and 7 validators.
#[test]
#[ignore = "soak: minutes"]
fn soak_random_faults() {
    let seeds: u64 = std::env::var("SOAK_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000);
    for seed in 0..seeds {
        random_fault_run(seed + 10_000, 4, 5);
        random_fault_run(seed + 20_000, 7, 3);
    }
}
