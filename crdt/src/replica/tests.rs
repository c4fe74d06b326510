#![allow(clippy::unwrap_used)]

use chorus_protocol::genesis::Genesis;
use chorus_protocol::ids::TopicId;
use chorus_protocol::keys::Keypair;

use super::ReplicaConfig;
use super::sim::{NetConfig, Sim, SimRoles, sim_genesis};
use crate::ledger::Ledger;

/// The topic of [`genesis`].
pub(crate) const TOPIC: TopicId = TopicId(1);
/// Inside the worker window of epoch 2 (`[1 002 000, 1 002 500)`, skew 100).
pub(crate) const LIVE: u64 = 1_002_100;
/// After that window closed, before anything finalized it.
pub(crate) const LATE: u64 = 1_002_700;

/// The worker window of `epoch` of [`TOPIC`].
pub(crate) fn worker_window(epoch: u64) -> crate::window::WindowKey {
    crate::window::WindowKey::Topic {
        topic: TOPIC,
        epoch,
        phase: crate::window::Phase::Workers,
    }
}

/// The running nodes' applied heights differ by at most `within`.
fn assert_heights_within(s: &Sim, within: u64, what: &str) {
    let hs: Vec<u64> = s
        .ledger_roots()
        .into_iter()
        .flatten()
        .map(|r| r.0)
        .collect();
    let spread = hs.iter().max().unwrap() - hs.iter().min().unwrap();
    assert!(spread <= within, "{what}: heights {hs:?}");
}

pub(crate) fn keys(n: u8) -> Vec<Keypair> {
    (1..=n).map(|i| Keypair::from_seed(&[i; 32])).collect()
}

/// 6 nodes: 0–3 validators; 0, 1, 2, 4 workers; 3 and 5 reputers.
pub(crate) fn genesis(keys: &[Keypair]) -> Genesis {
    let bonds = [100_000; 4];
    sim_genesis("replica-test", keys, &bonds, |i| i == 3 || i == 5)
}

pub(crate) fn roles() -> SimRoles {
    let mut r = SimRoles::default();
    for (i, noise) in [(0, 0.01), (1, 0.02), (2, 0.05), (4, 0.1)] {
        r.workers.insert(i, noise);
    }
    r.reputers.insert(3);
    r.reputers.insert(5);
    r
}

pub(crate) fn config() -> ReplicaConfig {
    super::sim::replica_config()
}

fn sim(seed: u64, net: NetConfig) -> Sim {
    let k = keys(6);
    Sim::new(genesis(&k), k, roles(), net, config(), seed).unwrap()
}

fn agree(s: &Sim) -> (u64, chorus_protocol::ids::Hash32) {
    let roots: Vec<_> = s.ledger_roots().into_iter().flatten().collect();
    let min = roots.iter().map(|r| r.0).min().unwrap();
    // Everyone at the same height has the same root.
    let mut by_height = std::collections::BTreeMap::new();
    for (h, r) in &roots {
        assert_eq!(
            *by_height.entry(*h).or_insert(*r),
            *r,
            "diverged at height {h}"
        );
    }
    (min, roots[0].1)
}

#[test]
fn six_replicas_finalize_settle_and_agree() {
    let mut s = sim(1, NetConfig::default());
    s.run_until(1_000_000 + 20_000);
    assert!(s.faults.is_empty(), "{:?}", s.faults);
    let (height, _) = agree(&s);
    assert!(height >= 15, "only {height} heights applied");
    let roots = s.ledger_roots();
    let l = s.nodes[0].replica.as_ref().unwrap().ledger();
    l.check_supply().unwrap();
    let m = &l.topics[&TopicId(1)].mechanism;
    assert!(m.previous_network_loss.is_some(), "no epoch settled");
    assert_eq!(m.regrets.inferer.len(), 4);
    assert_eq!(
        m.ema.inferer.len(),
        4,
        "inferers were never scored: {:?}",
        m.ema
    );
    let worker = s.nodes[1].key.public();
    assert!(l.accounts[&worker].rewards.0 > 0, "a worker earned nothing");
    let rewarded = l.accounts.values().filter(|a| a.rewards.0 > 0).count();
    assert!(rewarded >= 6, "rewards reached {rewarded} accounts");
    // Every node that is at the same height has the same root (checked in `agree`).
    assert!(roots.iter().all(Option::is_some));
    // Clocks agree: every replica has an estimate and nobody passed up a turn.
    for n in &s.nodes {
        let offset = n.replica.as_ref().unwrap().clock_offset_ms();
        assert!(offset.is_some_and(|o| o.abs() <= 100), "{offset:?}");
    }
    assert_eq!(s.stats.clock_off_passes, 0);
}

#[test]
fn the_same_seed_gives_the_same_trace() {
    let run = |seed| {
        let mut s = sim(
            seed,
            NetConfig {
                loss: 0.02,
                ..NetConfig::default()
            },
        );
        s.run_until(1_000_000 + 8_000);
        s.trace()
    };
    assert_eq!(run(7), run(7));
    assert_ne!(run(7), run(8));
}

#[test]
fn a_crashed_replica_restarts_from_its_store_and_catches_up() {
    let mut s = sim(3, NetConfig::default());
    s.run_until(1_000_000 + 6_000);
    s.crash(2);
    s.run_until(1_000_000 + 12_000);
    s.start(2).unwrap();
    s.run_until(1_000_000 + 22_000);
    assert!(s.faults.is_empty(), "{:?}", s.faults);
    let (height, _) = agree(&s);
    assert!(height >= 15, "only {height}");
    assert_heights_within(&s, 2, "after the restart");
}

#[test]
fn a_partitioned_minority_heals_and_converges() {
    let mut s = sim(5, NetConfig::default());
    s.run_until(1_000_000 + 5_000);
    // Validators 0,1,2 (3/4 of stake) keep finalizing; node 3 and 5 are cut off.
    s.partition(&[0, 0, 0, 1, 0, 1]);
    s.run_until(1_000_000 + 12_000);
    s.heal();
    s.run_until(1_000_000 + 25_000);
    assert!(s.faults.is_empty(), "{:?}", s.faults);
    assert_heights_within(&s, 2, "");
    agree(&s);
}

#[test]
fn an_equivocating_worker_is_excluded_everywhere_alike() {
    let k = keys(6);
    let mut r = roles();
    r.equivocating_workers.insert(4);
    let mut s = Sim::new(genesis(&k), k, r, NetConfig::default(), config(), 9).unwrap();
    s.run_until(1_000_000 + 12_000);
    assert!(s.faults.is_empty(), "{:?}", s.faults);
    agree(&s);
    let l = s.nodes[0].replica.as_ref().unwrap().ledger();
    let m = &l.topics[&TopicId(1)].mechanism;
    let equivocator = s.nodes[4].key.public().to_hex();
    // Peers that hold both versions (by gossip or reconciliation) report the evidence, which
    // spreads the conflict to every window before the proposer finalizes it.
    assert!(!l.evidence.is_empty(), "no evidence reached the ledger");
    assert!(
        !m.regrets.inferer.contains_key(&equivocator),
        "equivocator was counted"
    );
    // Each offence reported once network-wide (every node saw it; the first-ranked reported).
    let mut reports: std::collections::BTreeMap<chorus_protocol::ids::Hash32, usize> =
        Default::default();
    for bytes in s.nodes[0].store.envelopes.values().flatten() {
        let env = chorus_protocol::envelope::Envelope::from_bytes(bytes).unwrap();
        if let Ok(chorus_protocol::messages::Payload::Evidence(ev)) = env.payload_unverified()
            && let Some(id) = l.offence_id(&ev, &super::consensus::VoteEvidence(l.network))
        {
            reports.insert(id, reports.get(&id).copied().unwrap_or(0) + 1);
        }
    }
    println!("evidence messages per offence: {reports:?}");
    assert!(!reports.is_empty());
    assert!(reports.values().all(|n| *n == 1), "{reports:?}");
}

#[test]
fn lost_window_fetches_are_asked_again() {
    // Node 5 is cut off while the others finalize (and drop) windows; after the heal it
    // catches up through a lossy network that loses some of its fetches. Once the network is
    // clean it must apply every decided checkpoint: a lost fetch must not stall it forever.
    for seed in 1..=3 {
        let mut s = sim(seed, NetConfig::default());
        s.run_until(1_000_000 + 4_000);
        s.partition(&[0, 0, 0, 0, 0, 1]);
        s.run_until(1_000_000 + 10_000);
        s.heal();
        s.net.loss = 0.3;
        s.run_until(1_000_000 + 14_000);
        s.net.loss = 0.0;
        s.run_until(1_000_000 + 24_000);
        assert_heights_within(&s, 2, &format!("seed {seed}"));
        agree(&s);
    }
}

#[test]
fn every_validator_restarts_from_its_ledger_snapshot() {
    // All four validators crash and restart from their stores: nobody is ahead to catch up
    // from, so each must resume from its own snapshot and decided chain.
    let mut s = sim(11, NetConfig::default());
    s.run_until(1_000_000 + 6_500);
    let before: Vec<u64> = (0..4)
        .map(|i| s.nodes[i].replica.as_ref().unwrap().ledger().next_height)
        .collect();
    for i in 0..4 {
        let (_, bytes) = s.nodes[i].store.ledger.clone().unwrap();
        let restored = Ledger::from_snapshot(&bytes).unwrap();
        assert_eq!(
            restored.root(),
            s.nodes[i].replica.as_ref().unwrap().ledger().root(),
            "a snapshot must restore the exact ledger"
        );
        s.crash(i);
    }
    s.run_until(1_000_000 + 9_000);
    for (i, height) in before.iter().enumerate() {
        s.start(i).unwrap();
        let r = s.nodes[i].replica.as_ref().unwrap();
        assert_eq!(r.ledger().next_height, *height, "node {i} restored");
    }
    s.run_until(1_000_000 + 20_000);
    assert!(s.faults.is_empty(), "{:?}", s.faults);
    let (height, _) = agree(&s);
    assert!(height >= 15, "only {height} heights applied");
}

#[test]
fn a_validator_restarted_right_after_a_slash_keeps_the_validator_set_of_its_height() {
    // Validator 3 equivocates; its evidence slashes its bond at some height n. Bonds take
    // effect two heights later, so height n + 1 still runs with the bonds from before n. A
    // validator restarted from its snapshot of n must run n + 1 with that same set. Evidence
    // needs one honest node to receive both of a pair of forged votes (each goes to half the
    // nodes at random), so some seeds never produce it: the first seeds that do are used.
    let mut restarted = 0;
    for seed in 4..12 {
        if restarted > 0 {
            break;
        }
        let k = keys(6);
        let mut r = roles();
        r.equivocating_validators.insert(3);
        let mut s = Sim::new(genesis(&k), k, r, NetConfig::default(), config(), seed).unwrap();
        restarted += restart_after_slash(&mut s);
        s.run_until(1_000_000 + 34_000);
        assert!(s.faults.is_empty(), "{:?}", s.faults);
        agree(&s);
        if restarted > 0 {
            assert!(
                proofs_verify_from_genesis(&s) >= 1,
                "no validator-set change"
            );
        }
    }
    assert!(restarted > 0, "no slash changed the bonds");
}

#[test]
fn a_proposal_with_a_wrong_inference_root_or_validator_digest_is_never_decided() {
    // Validator 1 proposes checkpoints whose ledger root, inference root or validator-set
    // digest (by height) is wrong; honest validators re-derive all three and refuse them, so
    // every decided checkpoint commits to what was really finalized.
    let k = keys(6);
    let mut r = roles();
    r.bad_root_proposers.insert(1);
    let mut s = Sim::new(genesis(&k), k, r, NetConfig::default(), config(), 3).unwrap();
    s.run_until(1_000_000 + 30_000);
    assert!(s.stats.forged_proposals >= 3, "{:?}", s.stats);
    agree(&s);
    proofs_verify_from_genesis(&s);
}

/// Every checkpoint node 0 decided commits to the root of the bundles it finalized and to the
/// set that signed the next height; a proof of each bundle, listing the set changes as a node
/// does, verifies from the genesis alone. Returns the number of set changes seen.
fn proofs_verify_from_genesis(s: &Sim) -> usize {
    use crate::checkpoint::ValidatorSet;
    use crate::proof::{self, InferenceProof, SetChange, Trust, Variant};
    use chorus_protocol::merkle;
    let log = &s.proof_log;
    let decided = &s.nodes[0].store.decided;
    let network = s.genesis().network_id();
    let genesis_set = super::validator_set(&Ledger::from_genesis(s.genesis()).unwrap()).unwrap();
    let genesis_entries = proof::set_entries(&genesis_set);
    // The set checkpoint h commits to (that of height h + 1): the genesis set for h = 1.
    let committed_by = |h: u64| -> Vec<proof::ProofValidator> {
        if h == 0 || h == 1 {
            genesis_entries.clone()
        } else {
            log.committed_sets[&h].clone()
        }
    };
    let set_at = |h: u64| committed_by(h - 1);
    let mut changes: Vec<SetChange> = vec![];
    let mut proved = 0;
    for (h, d) in decided {
        let set = ValidatorSet::from_powers(set_at(*h).iter().map(|v| (v.key, v.power))).unwrap();
        d.certificate.verify(&network, &set).unwrap();
        let committed = &committed_by(*h);
        let digest = ValidatorSet::from_powers(committed.iter().map(|v| (v.key, v.power)))
            .unwrap()
            .digest();
        assert_eq!(d.checkpoint.validators, digest, "height {h}");
        let bundles = &log.bundles[h];
        let outliers = &log.outlier_bundles[h];
        let leaves = proof::checkpoint_leaves(bundles, outliers);
        assert_eq!(d.checkpoint.inferences, proof::root(&leaves), "height {h}");
        let hashes: Vec<_> = leaves.iter().map(|l| l.hash).collect();
        for (i, l) in leaves.iter().enumerate() {
            let find = |list: &[proof::Finalized]| {
                list.iter()
                    .find(|(t, e, _)| *t == l.topic && *e == l.epoch)
                    .map(|(_, _, b)| b.clone())
            };
            let b = match l.variant {
                Variant::Regular => find(bundles).unwrap(),
                Variant::OutlierResistant => find(outliers).or_else(|| find(bundles)).unwrap(),
            };
            let b = &b;
            let doc = InferenceProof {
                format: proof::PROOF_FORMAT.into(),
                network,
                topic_id: l.topic.0,
                epoch: l.epoch,
                variant: l.variant,
                combined_value: b.combined_value,
                bundle: hex::encode(proof::bundle_bytes(b)),
                leaf_index: i as u64,
                leaf_count: hashes.len() as u64,
                path: merkle::path(&hashes, i).unwrap(),
                decided: hex::encode(chorus_protocol::codec::encode(d)),
                anchor: None,
                validator_changes: changes.clone(),
            };
            let trust = Trust::Genesis {
                network,
                validators: genesis_set.clone(),
            };
            let v = proof::verify(&doc, &trust).unwrap_or_else(|e| panic!("height {h}: {e}"));
            assert_eq!(v.bundle, *b);
            proved += 1;
        }
        if *committed != set_at(*h) {
            changes.push(SetChange {
                decided: hex::encode(chorus_protocol::codec::encode(d)),
                validators: committed.clone(),
            });
        }
    }
    assert!(proved > 0, "no bundle was proved");
    changes.len()
}

/// Restart node 0 right after a height that changed the bonds (at most twice in 30 s), and
/// check it runs the next height with the validator set of before: how many restarts.
fn restart_after_slash(s: &mut Sim) -> usize {
    let mut t = 1_000_000;
    let mut restarted = 0;
    while t < 1_000_000 + 30_000 && restarted < 2 {
        t += 10;
        s.run_until(t);
        let Some(r) = s.nodes[0].replica.as_ref() else {
            continue;
        };
        let l = r.ledger();
        let changed = !l.bonds_before_last.is_empty() && l.bonds_before_last != l.active_bonds();
        if !changed || r.consensus_height() != l.next_height + 1 {
            continue;
        }
        let before = r.engine().validator_set().clone();
        s.crash(0);
        s.start(0).unwrap();
        let after = s.nodes[0]
            .replica
            .as_ref()
            .unwrap()
            .engine()
            .validator_set();
        assert_eq!(*after, before, "restarted with another validator set");
        restarted += 1;
    }
    restarted
}

#[test]
fn late_proposals_after_a_partition_keep_both_sides_entries() {
    use std::collections::{BTreeMap, BTreeSet};

    use chorus_protocol::envelope::Envelope;
    use chorus_protocol::ids::Hash32;

    use crate::window::{Phase, Window, WindowKey};

    // Validators split 2/2 (nodes 0, 1 | 2, 3), so nothing finalizes during the partition,
    // and workers on both sides keep submitting. Anti-entropy is off: after the heal only the
    // reconciliation a late proposer asks for can bring the other side's entries to it.
    for seed in 1..=3 {
        let k = keys(6);
        let mut quiet = config();
        quiet.anti_entropy.round_ms = 3_600_000;
        let mut s = Sim::new(genesis(&k), k, roles(), NetConfig::default(), quiet, seed).unwrap();
        s.run_until(1_000_000 + 4_000);
        s.partition(&[0, 0, 1, 1, 0, 1]);
        s.run_until(1_000_000 + 12_000);
        let at_heal = s.stats.reconciles;
        s.heal();
        s.run_until(1_000_000 + 30_000);
        assert!(s.faults.is_empty(), "{:?}", s.faults);
        let (height, _) = agree(&s);
        assert!(height >= 25, "seed {seed}: only {height} heights applied");
        // Catching up the ~9 stalled heights holds about once per proposer, not per height.
        let after = s.stats.reconciles - at_heal;
        assert!(
            (1..=6).contains(&after),
            "seed {seed}: {after} reconciliations after the heal"
        );
        // Every worker entry any node accepted, by window.
        let network = s.genesis().network_id();
        let mut accepted: BTreeMap<WindowKey, BTreeSet<Hash32>> = BTreeMap::new();
        for n in &s.nodes {
            for (key, stored) in &n.store.envelopes {
                if !matches!(
                    key,
                    WindowKey::Topic {
                        phase: Phase::Workers,
                        ..
                    }
                ) {
                    continue;
                }
                let entries = stored.iter().map(|b| {
                    let env = Envelope::from_bytes(b).unwrap();
                    let payload = env.payload_unverified().unwrap();
                    (env, payload)
                });
                let w = Window::rebuild(*key, network, entries).unwrap();
                accepted.entry(*key).or_default().extend(w.heads());
            }
        }
        // What the decided checkpoints finalized.
        let mut finalized: BTreeMap<Hash32, BTreeSet<Hash32>> = BTreeMap::new();
        for d in s.nodes[0].store.decided.values() {
            for w in &d.checkpoint.windows {
                finalized
                    .entry(w.window)
                    .or_default()
                    .extend(s.nodes[0].store.heads.get(&w.window).into_iter().flatten());
            }
        }
        let mut checked = 0;
        for (key, heads) in &accepted {
            let Some(fin) = finalized.get(&key.id()) else {
                continue; // not finalized yet
            };
            let lost = heads.difference(fin).count();
            assert_eq!(
                lost, 0,
                "seed {seed}: {lost} accepted entries of {key:?} lost"
            );
            checked += heads.len();
        }
        assert!(checked >= 60, "seed {seed}: only {checked} entries checked");
    }
}

#[test]
fn the_wal_records_a_verdict_after_the_proposal_it_judges() {
    use crate::checkpoint::wal::WalEntry;

    // A replay after a crash feeds the WAL back in order: a peer's proposed value (with our
    // verdict) recorded before the proposal itself makes the replay re-derive our prevote
    // out of turn, diverge, and stall that validator.
    let mut s = sim(5, NetConfig::default());
    let mut checked = 0;
    for second in 1..=10 {
        s.run_until(1_000_000 + second * 1_000);
        for n in &s.nodes {
            let me = n.key.public();
            let wal = &n.store.wal;
            for (k, r) in wal.iter().enumerate() {
                let WalEntry::ProposedValue {
                    round,
                    proposer,
                    value,
                    from_sync: false,
                    ..
                } = &r.entry
                else {
                    continue;
                };
                if *proposer == me {
                    continue;
                }
                checked += 1;
                assert!(
                    wal[..k].iter().any(|p| p.height == r.height
                        && matches!(&p.entry, WalEntry::Proposal(m)
                            if m.proposal.round.as_u32() == *round
                                && m.proposal.value.id() == value.id())),
                    "height {}: a verdict was persisted before its proposal",
                    r.height
                );
            }
        }
    }
    assert!(checked > 0);
}

#[test]
fn bonded_keys_of_replicas_configured_as_non_validators_never_sign() {
    use crate::checkpoint::wal::WalEntry;

    // Nodes 0–3 hold bonds, but every replica runs with `validator: false`: nobody may vote
    // or propose, so nothing is decided (with `validator: true` the same run finalizes).
    let k = keys(6);
    let config = ReplicaConfig {
        validator: false,
        ..config()
    };
    let mut s = Sim::new(genesis(&k), k, roles(), NetConfig::default(), config, 2).unwrap();
    s.run_until(1_000_000 + 6_000);
    for (i, n) in s.nodes.iter().enumerate() {
        let signed = n
            .store
            .wal
            .iter()
            .filter(|r| matches!(r.entry, WalEntry::Vote(_) | WalEntry::Proposal(_)))
            .count();
        assert_eq!(signed, 0, "node {i} recorded {signed} votes or proposals");
        assert!(n.store.decided.is_empty(), "node {i} decided a checkpoint");
    }
    let mut s = sim(2, NetConfig::default());
    s.run_until(1_000_000 + 6_000);
    assert!(!s.nodes[0].store.decided.is_empty());
}

/// A decided checkpoint of height 1 with an empty, uncertified value and `ledger_root`.
fn bogus_decided(
    g: &Genesis,
    ledger_root: chorus_protocol::ids::Hash32,
) -> crate::checkpoint::DecidedCheckpoint {
    use crate::checkpoint::{Checkpoint, CommitCertificate, DecidedCheckpoint};
    let checkpoint = Checkpoint {
        height: 1,
        previous: g.network_id(),
        ledger_root,
        windows: vec![],
        inferences: Default::default(),
        validators: Default::default(),
    };
    DecidedCheckpoint {
        certificate: CommitCertificate {
            height: 1,
            round: 0,
            value: checkpoint.id(),
            signatures: vec![],
        },
        checkpoint,
    }
}

/// A decided checkpoint that does not apply here (its ledger root is not what this replica
/// computes) puts the replica in a visible stalled state, once; it is not dropped in silence.
#[test]
fn a_decided_checkpoint_that_does_not_apply_stalls_the_replica_visibly() {
    use chorus_protocol::ids::Hash32;

    use super::{Effect, Input, Replica, ReplicaEvent, Restore};

    let keys = keys(6);
    let g = genesis(&keys);
    let d = bogus_decided(&g, Hash32([0xAB; 32]));
    let restore = Restore {
        decided: vec![d],
        ..Restore::default()
    };
    let stalls = |effects: &[Effect]| {
        effects
            .iter()
            .filter(|e| matches!(e, Effect::Event(ReplicaEvent::Stalled { height: 1, .. })))
            .count()
    };
    let (mut r, effects) = Replica::new(&g, keys[5].clone(), config(), restore, LIVE).unwrap();
    assert_eq!(stalls(&effects), 1);
    assert_eq!(r.stalled().map(|(h, _)| h), Some(1));
    let applied = r.ledger().next_height;
    let more = r.handle(Input::Tick, LIVE + 1_000);
    assert_eq!(stalls(&more), 0, "reported once");
    assert_eq!(r.stalled().map(|(h, _)| h), Some(1), "not dropped");
    assert_eq!(r.ledger().next_height, applied);
}

/// More bonded accounts than a validator set holds: the set is the largest bonds (ties by key),
/// never an error that freezes the set or stops a restart.
#[test]
fn the_validator_set_is_the_largest_bonds_up_to_its_cap() {
    use chorus_protocol::ids::{Amount, Hash32};

    use crate::checkpoint::limits::MAX_VALIDATORS;
    use crate::ledger::Validator;

    let keys = keys(6);
    let mut l = Ledger::from_genesis(&genesis(&keys)).unwrap();
    l.params.max_validators = MAX_VALIDATORS as u64;
    let extra = MAX_VALIDATORS + 76;
    for i in 0..extra {
        let key = Keypair::from_seed(&Hash32::of(&(i as u64).to_le_bytes()).0).public();
        l.validators.insert(
            key,
            Validator {
                bond: Amount(1 + i as u128),
                ..Validator::default()
            },
        );
    }
    let set = super::validator_set(&l).unwrap();
    assert_eq!(set.len(), MAX_VALIDATORS);
    // The genesis validators (bond 100 000) and the largest of the others are in; the 80
    // smallest bonds (1..=80) are out.
    for k in &keys[..4] {
        assert!(set.get(&k.public()).is_some());
    }
    let smallest_in = l
        .validators
        .iter()
        .filter(|(k, _)| set.get(k).is_some())
        .map(|(_, v)| v.bond.0)
        .min()
        .unwrap();
    assert_eq!(smallest_in, 81);
}

/// Weak subjectivity: a store whose checkpoint of the trusted height has another id does not
/// start; the trusted id itself passes.
#[test]
fn a_stored_chain_that_does_not_extend_the_trusted_checkpoint_is_refused() {
    use chorus_protocol::ids::Hash32;

    use super::{Replica, ReplicaConfig, ReplicaError, Restore};

    let keys = keys(6);
    let g = genesis(&keys);
    let d = bogus_decided(&g, Hash32([0xCD; 32]));
    let start = |trusted: Hash32| {
        let config = ReplicaConfig {
            trusted_checkpoint: Some((1, trusted)),
            ..config()
        };
        let restore = Restore {
            decided: vec![d.clone()],
            ..Restore::default()
        };
        Replica::new(&g, keys[5].clone(), config, restore, LIVE).map(|_| ())
    };
    assert!(matches!(
        start(Hash32([1; 32])),
        Err(ReplicaError::NotTrusted { height: 1, .. })
    ));
    assert!(start(d.id().0).is_ok());
}

/// One height finalizes far more entries than a checkpoint could list (the old cap was 8 192
/// change hashes per checkpoint): the checkpoint names the window by root and count, and
/// every replica ends with the same list of 9 000 heads.
#[test]
fn a_height_of_nine_thousand_bundles_finalizes() {
    use chorus_protocol::envelope::Envelope;
    use chorus_protocol::genesis::{GenesisBalance, GenesisRegistration};
    use chorus_protocol::ids::Amount;
    use chorus_protocol::messages::{Payload, Role, WorkerBundle};

    const MANY: usize = 9_000;
    // Four validators, three of them workers, one reputer: every node clones, roots and
    // snapshots a ledger of 9 000 more accounts at every height, the cost of this test.
    let k = keys(4);
    let mut roles = SimRoles::default();
    roles.workers.extend([(0, 0.01), (1, 0.02), (2, 0.05)]);
    roles.reputers.insert(3);
    let mut g = genesis(&k);
    let many: Vec<Keypair> = (0..MANY as u32)
        .map(|i| Keypair::from_seed(&chorus_protocol::ids::Hash32::of(&i.to_le_bytes()).0))
        .collect();
    for w in &many {
        g.balances.push(GenesisBalance {
            address: w.public(),
            amount: Amount(1_000),
        });
        g.registrations.push(GenesisRegistration {
            topic: TOPIC,
            address: w.public(),
            role: Role::Worker,
        });
    }
    let network = g.network_id();
    // The publisher's broadcast reaches every peer; relaying would only add duplicates.
    let net = NetConfig {
        relay: false,
        ..NetConfig::default()
    };
    let mut s = Sim::new(g, k, roles, net, config(), 7).unwrap();
    s.run_until(LIVE);
    for (i, w) in many.iter().enumerate() {
        let payload = Payload::WorkerBundle(WorkerBundle {
            topic: TOPIC,
            epoch: 2,
            inference: Some(1.0 + i as f64 * 1e-6),
            forecasts: vec![],
        });
        let bytes = Envelope::seal(w, &network, &payload).to_bytes();
        s.input(i % 4, super::Input::PublishSigned(bytes));
    }
    s.run_until(LIVE + 3_000);
    let window = worker_window(2);
    let (height, head) = s.nodes[0]
        .store
        .decided
        .values()
        .find_map(|d| {
            let w = d
                .checkpoint
                .windows
                .iter()
                .find(|w| w.window == window.id())?;
            Some((d.height(), w.clone()))
        })
        .expect("epoch 2's worker window was finalized");
    assert!(head.entries as usize >= MANY, "{} entries", head.entries);
    for (i, n) in s.nodes.iter().enumerate() {
        let list = n.store.heads.get(&window.id());
        assert!(
            list.is_some_and(|l| head.is_list(l)),
            "node {i} has no list of the finalized heads"
        );
        let applied = n.replica.as_ref().unwrap().ledger().next_height;
        assert!(applied >= height, "node {i} applied {applied} < {height}");
    }
    agree(&s);
}

/// A validator whose clock runs 400 ms ahead (the network allows 100) learns it from its
/// peers' answers and passes up its turns to propose; the others see their own clocks as
/// fine, and the network goes on finalizing without its proposals.
#[test]
fn a_validator_whose_clock_is_off_passes_up_its_turns_to_propose() {
    let mut s = sim(11, NetConfig::default());
    s.set_skew(0, 400);
    s.run_until(1_000_000 + 25_000);
    assert!(s.faults.is_empty(), "{:?}", s.faults);
    let (height, _) = agree(&s);
    assert!(height >= 15, "only {height} heights applied");
    let fast = s.nodes[0].replica.as_ref().unwrap();
    let offset = fast.clock_offset_ms().unwrap();
    assert!((-450..=-350).contains(&offset), "offset {offset}");
    assert!(fast.clock_off());
    for n in &s.nodes[1..] {
        let r = n.replica.as_ref().unwrap();
        assert!(!r.clock_off(), "offset {:?}", r.clock_offset_ms());
    }
    // About one turn in four was node 0's once it knew (after ~15 s of time answers).
    assert!(
        s.stats.clock_off_passes >= 2,
        "passes {}",
        s.stats.clock_off_passes
    );
}

/// Checkpoints that run late must not cost the epochs they finalize late their settlement:
/// validators split 2/2 for 8 s (nothing finalizes), then heal, and the stalled heights are
/// decided in a burst. The reputers' reports of the epochs finalized after their nominal
/// reputer window closed are still admitted for an epoch after each bundle was applied
/// ([`super::Replica::reputer_window`]), so every worker is paid in as many epochs as in the
/// same run without the partition (34 of the 37 epochs whose reputer window was finalized;
/// with the topic's fixed close, 24: ten epochs lost).
#[test]
fn epochs_finalized_late_still_settle() {
    let run = |partition: bool| {
        let k = keys(6);
        let mut s = Sim::new(genesis(&k), k, roles(), NetConfig::default(), config(), 3).unwrap();
        s.run_until(1_000_000 + 4_000);
        if partition {
            s.partition(&[0, 0, 1, 1, 0, 1]);
        }
        s.run_until(1_000_000 + 12_000);
        s.heal();
        s.run_until(1_000_000 + 40_000);
        assert!(s.faults.is_empty(), "{:?}", s.faults);
        let l = s.nodes[0].replica.as_ref().unwrap().ledger();
        let t = &l.topics[&TOPIC];
        let paid: Vec<u64> = t.mechanism.inferer_inclusions.values().copied().collect();
        (paid, t.next_reputer_epoch)
    };
    let (calm, calm_windows) = run(false);
    let (split, split_windows) = run(true);
    assert_eq!(calm, vec![34; 4]);
    assert_eq!((split_windows, calm_windows), (37, 37));
    assert_eq!(split, calm, "the partition cost settlements");
}
