#![allow(clippy::unwrap_used)]

use chorus_protocol::envelope::Envelope;
use chorus_protocol::genesis::{Genesis, GenesisBalance, GenesisTopic, GenesisValidator, Token};
use chorus_protocol::ids::{Amount, Hash32, TopicId};
use chorus_protocol::keys::{Keypair, PublicKey};
use chorus_protocol::messages::*;
use chorus_protocol::params::ModuleParams;
use chorus_protocol::topic::{LossMethod, MechanismVersion, TopicSpec};

use super::*;

mod pinned;

fn kp(i: u8) -> Keypair {
    Keypair::from_seed(&[i; 32])
}

fn pk(i: u8) -> PublicKey {
    kp(i).public()
}

fn spec(start: u64) -> TopicSpec {
    TopicSpec::new("t", LossMethod::Mse, start, 1_000, 500, 1_000)
}

fn genesis() -> Genesis {
    let params = ModuleParams {
        checkpoint_period_ms: 1_000,
        min_epoch_length_ms: 100,
        emission_per_period: Amount(1_000_000),
        max_clock_skew_ms: 0,
        remove_stake_delay_ms: 3_000,
        validator_unbonding_ms: 2_000,
        governance_voting_periods: 2,
        min_topic_weight: 0.0,
        min_validator_bond: Amount(50),
        ..ModuleParams::default()
    };
    Genesis {
        network: "ledger-test".into(),
        genesis_time_ms: 0,
        token: Token {
            symbol: "CHR".into(),
            decimals: 0,
        },
        balances: (1..=5)
            .map(|i| GenesisBalance {
                address: pk(i),
                amount: Amount(1_000_000),
            })
            .collect(),
        validators: vec![
            GenesisValidator {
                address: pk(1),
                bond: Amount(300),
                name: "a".into(),
            },
            GenesisValidator {
                address: pk(2),
                bond: Amount(100),
                name: "b".into(),
            },
        ],
        reputer_stakes: vec![],
        registrations: vec![],
        params,
        topics: vec![GenesisTopic {
            id: TopicId(1),
            creator: pk(1),
            spec: spec(0),
            fee_revenue: Amount(75_000),
        }],
    }
}

fn entry(l: &Ledger, k: &Keypair, p: Payload) -> SignedEntry {
    let env = Envelope::seal(k, &l.network, &p);
    SignedEntry {
        author: k.public(),
        id: env.id(),
        payload: p,
    }
}

fn apply(l: &mut Ledger, ledger: Vec<SignedEntry>) -> Vec<LedgerEvent> {
    let h = l.next_height;
    let ev = l
        .apply(
            h,
            &HeightInput {
                ledger,
                windows: Default::default(),
            },
            &NoConsensusEvidence,
        )
        .unwrap();
    l.check_supply().unwrap();
    ev
}

fn refused(ev: &[LedgerEvent]) -> Vec<String> {
    ev.iter()
        .filter_map(|e| match e {
            LedgerEvent::Refused { reason, .. } => Some(reason.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn transfers_move_tokens_and_overdrafts_are_refused() {
    let mut l = Ledger::from_genesis(&genesis()).unwrap();
    let t1 = entry(
        &l,
        &kp(3),
        Payload::Transfer(Transfer {
            nonce: 1,
            to: pk(9),
            amount: Amount(600_000),
        }),
    );
    let t2 = entry(
        &l,
        &kp(3),
        Payload::Transfer(Transfer {
            nonce: 2,
            to: pk(9),
            amount: Amount(600_000),
        }),
    );
    let ev = apply(&mut l, vec![t2, t1]);
    assert_eq!(l.balance(&pk(9)), Amount(600_000));
    assert_eq!(l.balance(&pk(3)), Amount(400_000));
    assert_eq!(refused(&ev).len(), 1);
    assert!(refused(&ev)[0].contains("insufficient"));
    // The refused message consumed nonce 2: replaying it is stale.
    let again = entry(
        &l,
        &kp(3),
        Payload::Transfer(Transfer {
            nonce: 2,
            to: pk(9),
            amount: Amount(1),
        }),
    );
    let ev = apply(&mut l, vec![again]);
    assert!(refused(&ev)[0].contains("stale"));
}

#[test]
fn emission_pays_validators_by_bond_and_topics_by_weight() {
    let mut l = Ledger::from_genesis(&genesis()).unwrap();
    let r = entry(
        &l,
        &kp(4),
        Payload::Register(Registration {
            nonce: 1,
            topic: TopicId(1),
            role: Role::Reputer,
        }),
    );
    apply(&mut l, vec![r]);
    let s = entry(
        &l,
        &kp(4),
        Payload::Stake(StakeChange {
            nonce: 2,
            topic: TopicId(1),
            reputer: pk(4),
            amount: Amount(50_000),
        }),
    );
    apply(&mut l, vec![s]);
    // Validators got a quarter of each period's budget, 3:1 by bond.
    let v1 = l.accounts[&pk(1)].rewards.0;
    let v2 = l.accounts[&pk(2)].rewards.0;
    assert!(v1 > 0 && v2 > 0);
    assert!((v1 as f64 / v2 as f64 - 3.0).abs() < 1e-3);
    assert!(l.topics[&TopicId(1)].reward_pool.0 > 0);
    assert_eq!(l.supply.minted, Amount(2_000_000));
}

#[test]
fn unstake_and_unbond_release_after_their_delays() {
    let mut l = Ledger::from_genesis(&genesis()).unwrap();
    let r = entry(
        &l,
        &kp(4),
        Payload::Register(Registration {
            nonce: 1,
            topic: TopicId(1),
            role: Role::Reputer,
        }),
    );
    let s = entry(
        &l,
        &kp(4),
        Payload::Stake(StakeChange {
            nonce: 2,
            topic: TopicId(1),
            reputer: pk(4),
            amount: Amount(10_000),
        }),
    );
    let d = entry(
        &l,
        &kp(5),
        Payload::Stake(StakeChange {
            nonce: 1,
            topic: TopicId(1),
            reputer: pk(4),
            amount: Amount(5_000),
        }),
    );
    apply(&mut l, vec![r, s]);
    // (Delegation comes a period later: within a period, messages apply in author order.)
    apply(&mut l, vec![d]);
    assert_eq!(
        l.topics[&TopicId(1)].stakes[&pk(4)].authority(),
        Amount(15_000)
    );
    let before = l.balance(&pk(5));
    let u = entry(
        &l,
        &kp(5),
        Payload::Unstake(StakeChange {
            nonce: 2,
            topic: TopicId(1),
            reputer: pk(4),
            amount: Amount(5_000),
        }),
    );
    apply(&mut l, vec![u]);
    assert_eq!(
        l.topics[&TopicId(1)].stakes[&pk(4)].authority(),
        Amount(10_000)
    );
    assert_eq!(l.balance(&pk(5)), before);
    for _ in 0..3 {
        apply(&mut l, vec![]);
    }
    assert_eq!(l.balance(&pk(5)), Amount(before.0 + 5_000));
    // Unbond: the last bonded stake cannot leave.
    let u1 = entry(
        &l,
        &kp(2),
        Payload::Unbond(BondChange {
            nonce: 1,
            amount: Amount(100),
        }),
    );
    apply(&mut l, vec![u1]);
    assert!(!l.validators.contains_key(&pk(2)));
    let u2 = entry(
        &l,
        &kp(1),
        Payload::Unbond(BondChange {
            nonce: 1,
            amount: Amount(300),
        }),
    );
    let ev = apply(&mut l, vec![u2]);
    assert!(refused(&ev)[0].contains("last bonded"));
}

#[test]
fn registration_fees_and_topic_creation() {
    let mut l = Ledger::from_genesis(&genesis()).unwrap();
    let now = l.period_end(0);
    let c = entry(
        &l,
        &kp(3),
        Payload::CreateTopic(CreateTopic {
            nonce: 1,
            spec: spec(now + 10_000),
            fee: Amount(80_000),
        }),
    );
    let w = entry(
        &l,
        &kp(3),
        Payload::Register(Registration {
            nonce: 2,
            topic: TopicId(1),
            role: Role::Worker,
        }),
    );
    let w2 = entry(
        &l,
        &kp(3),
        Payload::Register(Registration {
            nonce: 3,
            topic: TopicId(1),
            role: Role::Worker,
        }),
    );
    let ev = apply(&mut l, vec![c, w, w2]);
    let id = TopicId::derived(&pk(3), 1);
    assert!(l.topics.contains_key(&id));
    assert!(l.topics[&TopicId(1)].workers.contains(&pk(3)));
    assert_eq!(refused(&ev), vec!["already registered".to_string()]);
    assert_eq!(l.balance(&pk(3)), Amount(1_000_000 - 80_000 - 200));
    let late = entry(
        &l,
        &kp(3),
        Payload::CreateTopic(CreateTopic {
            nonce: 4,
            spec: spec(0),
            fee: Amount(80_000),
        }),
    );
    let ev = apply(&mut l, vec![late]);
    assert!(refused(&ev)[0].contains("past"));
}

#[test]
fn governance_changes_parameters_when_stake_says_yes() {
    let mut l = Ledger::from_genesis(&genesis()).unwrap();
    let p = entry(
        &l,
        &kp(1),
        Payload::Propose(GovernanceProposal {
            nonce: 1,
            title: "faster".into(),
            description: String::new(),
            action: GovernanceAction::SetParams {
                changes: vec![("learning_rate".into(), ParamValue::Real(0.2))],
            },
        }),
    );
    let pid = p.id;
    let bad = entry(
        &l,
        &kp(2),
        Payload::Propose(GovernanceProposal {
            nonce: 1,
            title: "broken".into(),
            description: String::new(),
            action: GovernanceAction::SetParams {
                changes: vec![("no_such".into(), ParamValue::Int(1))],
            },
        }),
    );
    let bid = bad.id;
    apply(&mut l, vec![p, bad]);
    let v1 = entry(
        &l,
        &kp(1),
        Payload::Vote(GovernanceVote {
            nonce: 2,
            proposal: pid,
            option: VoteOption::Yes,
        }),
    );
    let v2 = entry(
        &l,
        &kp(2),
        Payload::Vote(GovernanceVote {
            nonce: 2,
            proposal: pid,
            option: VoteOption::No,
        }),
    );
    let v3 = entry(
        &l,
        &kp(1),
        Payload::Vote(GovernanceVote {
            nonce: 3,
            proposal: bid,
            option: VoteOption::Yes,
        }),
    );
    apply(&mut l, vec![v1, v2, v3]);
    apply(&mut l, vec![]);
    assert_eq!(l.params.learning_rate, 0.2);
    let out = l.proposals[&bid].outcome.clone().unwrap();
    assert!(out.passed && out.error.unwrap().contains("unknown field"));
}

/// A ledger where key 4 is a reputer of topic 1 with 100 000 staked.
fn reputer_4_staked() -> Ledger {
    let mut l = Ledger::from_genesis(&genesis()).unwrap();
    let r = entry(
        &l,
        &kp(4),
        Payload::Register(Registration {
            nonce: 1,
            topic: TopicId(1),
            role: Role::Reputer,
        }),
    );
    let s = entry(
        &l,
        &kp(4),
        Payload::Stake(StakeChange {
            nonce: 2,
            topic: TopicId(1),
            reputer: pk(4),
            amount: Amount(100_000),
        }),
    );
    apply(&mut l, vec![r, s]);
    l
}

#[test]
fn reputer_equivocation_evidence_slashes_and_counts_once() {
    let mut l = reputer_4_staked();
    let bundle = |gt: f64| {
        Payload::ReputerBundle(ReputerBundle {
            topic: TopicId(1),
            epoch: 3,
            ground_truth: gt,
            losses: ValueBundle::default(),
        })
    };
    let a = Envelope::seal(&kp(4), &l.network, &bundle(1.0));
    let b = Envelope::seal(&kp(4), &l.network, &bundle(2.0));
    let ev = Payload::Evidence(Evidence {
        kind: EvidenceKind::ReputerBundle,
        first: a.to_bytes(),
        second: b.to_bytes(),
    });
    let e1 = entry(&l, &kp(5), ev.clone());
    let events = apply(&mut l, vec![e1]);
    assert!(
        events
            .iter()
            .any(|e| matches!(e, LedgerEvent::Slashed { amount, .. } if *amount == Amount(5_000)))
    );
    assert_eq!(l.topics[&TopicId(1)].stakes[&pk(4)].own, Amount(95_000));
    let e2 = entry(&l, &kp(3), ev);
    apply(&mut l, vec![e2]);
    assert_eq!(l.topics[&TopicId(1)].stakes[&pk(4)].own, Amount(95_000));
    assert_eq!(l.supply.slashed, Amount(5_000));
}

/// One offence is punished once whatever pair of messages shows it (three conflicting bundles
/// give three pairs), and evidence that proves nothing is refused and recorded nowhere.
#[test]
fn an_offence_is_slashed_once_and_invalid_evidence_is_refused() {
    let mut l = reputer_4_staked();
    let network = l.network;
    let bundle = |who: u8, gt: f64| {
        Envelope::seal(
            &kp(who),
            &network,
            &Payload::ReputerBundle(ReputerBundle {
                topic: TopicId(1),
                epoch: 3,
                ground_truth: gt,
                losses: ValueBundle::default(),
            }),
        )
        .to_bytes()
    };
    let evidence = |first: Vec<u8>, second: Vec<u8>| {
        Payload::Evidence(Evidence {
            kind: EvidenceKind::ReputerBundle,
            first,
            second,
        })
    };
    let (a, b, c) = (bundle(4, 1.0), bundle(4, 2.0), bundle(4, 3.0));
    let pairs = vec![
        entry(&l, &kp(5), evidence(a.clone(), b.clone())),
        entry(&l, &kp(3), evidence(a.clone(), c.clone())),
        entry(&l, &kp(2), evidence(b, c)),
    ];
    let events = apply(&mut l, pairs);
    let slashed: Vec<Amount> = events
        .iter()
        .filter_map(|e| match e {
            LedgerEvent::Slashed { amount, .. } => Some(*amount),
            _ => None,
        })
        .collect();
    assert_eq!(slashed, vec![Amount(5_000)], "{events:?}");
    assert_eq!(l.topics[&TopicId(1)].stakes[&pk(4)].own, Amount(95_000));
    assert_eq!(l.supply.slashed, Amount(5_000));
    let used = events
        .iter()
        .filter(|e| matches!(e, LedgerEvent::Refused { reason, .. } if reason == "evidence already used"))
        .count();
    assert_eq!(used, 2);
    // Two bundles of two different reputers prove nothing.
    let recorded = l.evidence.len();
    let bogus = entry(&l, &kp(5), evidence(a, bundle(5, 9.0)));
    let events = apply(&mut l, vec![bogus]);
    assert!(
        events.iter().any(|e| matches!(e, LedgerEvent::Refused { reason, .. } if reason == "evidence does not prove an offence")),
        "{events:?}"
    );
    assert_eq!(l.evidence.len(), recorded);
    assert_eq!(l.supply.slashed, Amount(5_000));
}

#[test]
fn windows_due_follow_the_clock_and_are_finalized_once() {
    let mut l = Ledger::from_genesis(&genesis()).unwrap();
    // Period 0 ends at 1000: epoch 0's worker window [0, 500) is due.
    let due = l.windows_due();
    assert!(due.contains(&WindowKey::Topic {
        topic: TopicId(1),
        epoch: 0,
        phase: Phase::Workers
    }));
    assert!(!due.iter().any(|k| matches!(
        k,
        WindowKey::Topic {
            phase: Phase::Reputers,
            ..
        }
    )));
    apply(&mut l, vec![]);
    let due = l.windows_due();
    assert!(due.contains(&WindowKey::Topic {
        topic: TopicId(1),
        epoch: 1,
        phase: Phase::Workers
    }));
    assert!(due.contains(&WindowKey::Topic {
        topic: TopicId(1),
        epoch: 0,
        phase: Phase::Reputers
    }));
    assert!(!due.contains(&WindowKey::Topic {
        topic: TopicId(1),
        epoch: 0,
        phase: Phase::Workers
    }));
    // A window that is not due is refused.
    let mut input = HeightInput::default();
    input.windows.insert(
        WindowKey::Topic {
            topic: TopicId(1),
            epoch: 9,
            phase: Phase::Workers,
        },
        vec![],
    );
    assert!(matches!(
        l.apply(1, &input, &NoConsensusEvidence),
        Err(LedgerError::UnexpectedWindow(_))
    ));
    assert!(matches!(
        l.apply(5, &HeightInput::default(), &NoConsensusEvidence),
        Err(LedgerError::WrongHeight { .. })
    ));
}

#[test]
fn same_inputs_give_the_same_root() {
    let run = || {
        let mut l = Ledger::from_genesis(&genesis()).unwrap();
        for i in 1..=5u64 {
            let t = entry(
                &l,
                &kp(3),
                Payload::Transfer(Transfer {
                    nonce: i,
                    to: pk(4),
                    amount: Amount(i as u128),
                }),
            );
            apply(&mut l, vec![t]);
        }
        l.root()
    };
    assert_eq!(run(), run());
    let l = Ledger::from_genesis(&genesis()).unwrap();
    assert_ne!(l.root(), run());
    assert_ne!(Hash32::default(), l.root());
}

mod settlement {
    use super::*;
    use chorus_protocol::genesis::{GenesisRegistration, GenesisStake};

    fn world() -> (Ledger, Vec<Keypair>, Vec<Keypair>) {
        world_with(MechanismVersion::AlloraV06)
    }

    fn world_with(mechanism: MechanismVersion) -> (Ledger, Vec<Keypair>, Vec<Keypair>) {
        let mut g = genesis();
        g.topics[0].spec.mechanism = mechanism;
        let workers: Vec<Keypair> = (10..13).map(kp).collect();
        let reputers: Vec<Keypair> = (20..22).map(kp).collect();
        for w in &workers {
            g.registrations.push(GenesisRegistration {
                topic: TopicId(1),
                address: w.public(),
                role: Role::Worker,
            });
            g.balances.push(chorus_protocol::genesis::GenesisBalance {
                address: w.public(),
                amount: Amount(10_000),
            });
        }
        for (i, r) in reputers.iter().enumerate() {
            g.registrations.push(GenesisRegistration {
                topic: TopicId(1),
                address: r.public(),
                role: Role::Reputer,
            });
            g.balances.push(chorus_protocol::genesis::GenesisBalance {
                address: r.public(),
                amount: Amount(10_000),
            });
            g.reputer_stakes.push(GenesisStake {
                topic: TopicId(1),
                reputer: r.public(),
                delegator: None,
                amount: Amount(20_000 + 10_000 * i as u128),
            });
        }
        // A delegator on the first reputer.
        g.reputer_stakes.push(GenesisStake {
            topic: TopicId(1),
            reputer: reputers[0].public(),
            delegator: Some(pk(5)),
            amount: Amount(5_000),
        });
        (Ledger::from_genesis(&g).unwrap(), workers, reputers)
    }

    fn truth(e: u64) -> f64 {
        1.0 + (e as f64 * 0.7).sin() * 0.1
    }

    /// Worker i predicts the truth with error (i+1)·0.01; worker 2 also forecasts.
    fn worker_entries(l: &Ledger, ws: &[Keypair], e: u64) -> Vec<SignedEntry> {
        worker_entries_with(l, ws, e, |_, v| v)
    }

    /// [`worker_entries`] with worker i's inference `v` replaced by `value(i, v)`.
    fn worker_entries_with(
        l: &Ledger,
        ws: &[Keypair],
        e: u64,
        value: impl Fn(usize, f64) -> f64,
    ) -> Vec<SignedEntry> {
        let mut inferers: Vec<PublicKey> = ws.iter().map(|w| w.public()).collect();
        inferers.sort();
        ws.iter()
            .enumerate()
            .map(|(i, w)| {
                let forecasts = if i == 2 {
                    inferers
                        .iter()
                        .map(|k| ForecastElement {
                            inferer: *k,
                            value: -3.0,
                        })
                        .collect()
                } else {
                    vec![]
                };
                entry(
                    l,
                    w,
                    Payload::WorkerBundle(WorkerBundle {
                        topic: TopicId(1),
                        epoch: e,
                        inference: Some(value(i, truth(e) + (i as f64 + 1.0) * 0.01)),
                        forecasts,
                    }),
                )
            })
            .collect()
    }

    /// Reputers report the log10 squared error of every value of the finalized bundle.
    fn reputer_entries(l: &Ledger, rs: &[Keypair], e: u64) -> Vec<SignedEntry> {
        let Some(rec) = l.topics[&TopicId(1)].mechanism.pending.get(&e) else {
            return vec![];
        };
        let Some(b) = &rec.bundle else { return vec![] };
        let y = truth(e);
        let loss = |v: f64| ((v - y).powi(2)).max(1e-12).log10();
        let wv = |m: &chorus_protocol::inference::Values| -> Vec<WorkerValue> {
            m.iter()
                .map(|(k, v)| WorkerValue {
                    worker: *k,
                    value: loss(*v),
                })
                .collect()
        };
        let losses = ValueBundle {
            combined_value: loss(b.combined_value),
            naive_value: b.naive_value.map(loss),
            inferer_values: wv(&b.inferer_values),
            forecaster_values: wv(&b.forecaster_values),
            one_out_inferer_values: wv(&b.one_out_inferer_values),
            one_out_forecaster_values: wv(&b.one_out_forecaster_values),
            one_in_forecaster_values: wv(&b.one_in_forecaster_values),
            one_out_inferer_forecaster_values: b
                .one_out_inferer_forecaster_values
                .iter()
                .map(|(f, m)| OneOutInfererForecasterValues {
                    forecaster: *f,
                    values: wv(m),
                })
                .collect(),
        };
        rs.iter()
            .map(|r| {
                entry(
                    l,
                    r,
                    Payload::ReputerBundle(ReputerBundle {
                        topic: TopicId(1),
                        epoch: e,
                        ground_truth: y,
                        losses: losses.clone(),
                    }),
                )
            })
            .collect()
    }

    pub(super) fn run(epochs: u64) -> (Ledger, Vec<LedgerEvent>) {
        let (l, ws, rs) = world();
        run_from(l, &ws, &rs, epochs)
    }

    fn run_from(
        mut l: Ledger,
        ws: &[Keypair],
        rs: &[Keypair],
        epochs: u64,
    ) -> (Ledger, Vec<LedgerEvent>) {
        let mut all = vec![];
        let first = l.next_height;
        for h in first..first + epochs {
            let mut input = HeightInput::default();
            for key in l.windows_due() {
                if let WindowKey::Topic { epoch, phase, .. } = key {
                    let entries = match phase {
                        Phase::Workers => worker_entries(&l, ws, epoch),
                        Phase::Reputers => reputer_entries(&l, rs, epoch),
                    };
                    input.windows.insert(key, entries);
                }
            }
            all.extend(l.apply(h, &input, &NoConsensusEvidence).unwrap());
            l.check_supply().unwrap();
        }
        (l, all)
    }

    /// Commit-reveal: a reveal counts only when its author's commitment among the window's
    /// entries matches it; a plain bundle never counts in such a topic, and commitments and
    /// reveals never count in a topic without it.
    #[test]
    fn under_commit_reveal_only_reveals_matching_their_commitment_count() {
        let (mut l, ws, _) = world();
        let plain = worker_entries(&l, &ws, 0);
        let mut entries = vec![];
        for (i, (w, e)) in ws.iter().zip(&plain).enumerate() {
            let Payload::WorkerBundle(b) = &e.payload else {
                unreachable!()
            };
            let salt = Hash32([i as u8 + 1; 32]);
            let commitment = commitment_of(b, &salt);
            let commit = WorkerCommit {
                topic: TopicId(1),
                epoch: 0,
                commitment,
            };
            let mut revealed = b.clone();
            if i == 1 {
                // Worker 1 reveals another value than it committed to, and also sends the
                // plain bundle.
                revealed.inference = revealed.inference.map(|v| v + 1.0);
                entries.push(e.clone());
            }
            entries.push(entry(&l, w, Payload::WorkerCommit(commit)));
            let reveal = WorkerReveal {
                bundle: revealed,
                salt,
            };
            assert_eq!(reveal.commitment() == commitment, i != 1);
            entries.push(entry(&l, w, Payload::WorkerReveal(reveal)));
        }
        let keys = |l: &Ledger, entries: &[SignedEntry]| -> Vec<PublicKey> {
            let counted = l.counted_workers(TopicId(1), 0, entries).unwrap();
            counted.keys.values().copied().collect()
        };
        let sorted = |mut v: Vec<PublicKey>| {
            v.sort();
            v
        };
        let all = sorted(ws.iter().map(|w| w.public()).collect());
        assert_eq!(
            keys(&l, &plain),
            all,
            "without commit-reveal plain bundles count"
        );
        let expected = sorted(vec![ws[0].public(), ws[2].public()]);
        l.topics.get_mut(&TopicId(1)).unwrap().spec.reveal_window_ms = 300;
        assert_eq!(keys(&l, &entries), expected);
        assert_eq!(keys(&l, &plain), vec![], "plain bundles never count");
        // Reveals without their commitments count nothing.
        let reveals_only: Vec<SignedEntry> = entries
            .iter()
            .filter(|e| matches!(e.payload, Payload::WorkerReveal(_)))
            .cloned()
            .collect();
        assert_eq!(keys(&l, &reveals_only), vec![]);
        // The same entries in a topic without commit-reveal: only worker 1's plain bundle.
        l.topics.get_mut(&TopicId(1)).unwrap().spec.reveal_window_ms = 0;
        assert_eq!(keys(&l, &entries), vec![ws[1].public()]);
    }

    /// Allora's outlier-resistant inference: an inference far beyond 11 MADs of the epoch's
    /// median is left out of a second bundle; epochs without outliers keep one bundle.
    #[test]
    fn an_outlier_is_left_out_of_the_outlier_resistant_bundle() {
        let (mut l, ws, rs) = world();
        let outlier_epoch = 6;
        let liar = ws[1].public();
        let mut checked = 0;
        for h in 0..14 {
            let mut input = HeightInput::default();
            for key in l.windows_due() {
                if let WindowKey::Topic { epoch, phase, .. } = key {
                    let entries = match phase {
                        Phase::Workers => worker_entries_with(&l, &ws, epoch, |i, v| {
                            if epoch == outlier_epoch && i == 1 {
                                1_000.0
                            } else {
                                v
                            }
                        }),
                        Phase::Reputers => reputer_entries(&l, &rs, epoch),
                    };
                    input.windows.insert(key, entries);
                }
            }
            l.apply(h, &input, &NoConsensusEvidence).unwrap();
            let m = &l.topics[&TopicId(1)].mechanism;
            if let Some(rec) = m.pending.get(&outlier_epoch)
                && rec.bundle.is_some()
            {
                let regular = rec.bundle.as_ref().unwrap();
                let resistant = rec
                    .outlier_bundle
                    .as_ref()
                    .expect("an outlier-resistant bundle");
                assert_eq!(regular.inferer_values[&liar], 1_000.0);
                assert!(!resistant.inferer_values.contains_key(&liar));
                assert_eq!(resistant.inferer_values.len(), ws.len() - 1);
                let y = truth(outlier_epoch);
                assert!(
                    (resistant.combined_value - y).abs() < 0.05,
                    "{} vs truth {y}",
                    resistant.combined_value
                );
                assert!((regular.combined_value - y).abs() > 1.0);
                // The median of (v0, 1000, v2) is the larger honest value; the MAD's EMA moved.
                assert!(
                    m.outliers.mad > 0.0 && m.outliers.median < 2.0,
                    "{:?}",
                    m.outliers
                );
                checked += 1;
            }
            for (e, rec) in &m.pending {
                if *e != outlier_epoch {
                    assert_eq!(rec.outlier_bundle, None, "epoch {e}");
                }
            }
        }
        assert!(checked > 0, "the outlier epoch was never finalized");
    }

    /// An owner named by a worker receives its liquid rewards; the earner keeps its rewards
    /// record and the events say where the tokens went.
    #[test]
    fn an_owner_receives_its_workers_rewards() {
        let (mut l, ws, rs) = world();
        let owner = pk(99);
        let worker = ws[0].public();
        let set = entry(
            &l,
            &ws[0],
            Payload::SetOwner(SetOwner {
                nonce: 1,
                actor: worker,
                owner,
            }),
        );
        let mut input = HeightInput::default();
        input.ledger.push(set);
        let ev = l
            .apply(l.next_height, &input, &NoConsensusEvidence)
            .unwrap();
        assert!(
            ev.iter()
                .any(|e| matches!(e, LedgerEvent::Applied { kind, .. } if kind == "set_owner")),
            "{ev:?}"
        );
        let before = (l.balance(&worker), l.balance(&owner));
        let (l, events) = run_from(l, &ws, &rs, 30);
        let mut earned = 0u128;
        for e in &events {
            if let LedgerEvent::Reward {
                to,
                amount,
                role,
                paid_to,
                ..
            } = e
                && *to == worker
            {
                assert_eq!(*paid_to, Some(owner), "{role}");
                earned += amount.0;
            }
        }
        assert!(earned > 0, "the worker earned nothing");
        // Its own balance only paid data fees; the owner got every token it earned.
        assert!(l.balance(&worker) <= before.0);
        assert_eq!(l.balance(&owner).0, before.1.0 + earned);
        assert_eq!(l.accounts[&worker].rewards.0, earned);
    }

    #[test]
    fn epochs_settle_pay_rewards_and_conserve_supply() {
        let (l, events) = run(30);
        let inferences = events
            .iter()
            .filter(|e| matches!(e, LedgerEvent::NetworkInference { .. }))
            .count();
        assert_eq!(inferences, 30);
        assert!(
            !events
                .iter()
                .any(|e| matches!(e, LedgerEvent::MechanismError { .. })),
            "{events:?}"
        );
        let m = &l.topics[&TopicId(1)].mechanism;
        assert_eq!(m.regrets.inferer.len(), 3);
        assert!(m.previous_network_loss.is_some());
        let paid: Vec<(PublicKey, u128, String)> = events
            .iter()
            .filter_map(|e| match e {
                LedgerEvent::Reward {
                    to, amount, role, ..
                } => Some((*to, amount.0, role.clone())),
                _ => None,
            })
            .collect();
        for role in ["inferer", "forecaster", "reputer", "delegator"] {
            assert!(paid.iter().any(|p| p.2 == role), "no {role} reward");
        }
        // The most accurate worker (error 0.01) earned the most as an inferer.
        let by = |k: PublicKey| {
            paid.iter()
                .filter(|p| p.0 == k && p.2 == "inferer")
                .map(|p| p.1)
                .sum::<u128>()
        };
        let (best, worst) = (by(kp(10).public()), by(kp(12).public()));
        assert!(best > worst, "best {best} worst {worst}");
    }

    /// An `allora-mad` topic weighs with its own rule (the best worker weighs exactly 1) and
    /// pulls the EMA score of a worker that skipped epochs toward the newcomer score by exactly
    /// `liveness_penalty` before its returning score enters the EMA.
    #[test]
    fn an_allora_mad_topic_weighs_its_own_way_and_penalises_absence() {
        use chorus_protocol::math::scores::{initial_ema_score, liveness_penalty};
        let (mut l, ws, rs) = world_with(MechanismVersion::AlloraMad);
        let (v06, _) = run(14);
        let absent = ws[0].public();
        let (away, back) = (4..8, 8);
        let alpha = l.topics[&TopicId(1)].spec.merit_sortition_alpha;
        let mut checked = 0;
        for h in 0..14 {
            let mut input = HeightInput::default();
            for key in l.windows_due() {
                if let WindowKey::Topic { epoch, phase, .. } = key {
                    let mut entries = match phase {
                        Phase::Workers => worker_entries(&l, &ws, epoch),
                        Phase::Reputers => reputer_entries(&l, &rs, epoch),
                    };
                    if phase == Phase::Workers && away.contains(&epoch) {
                        entries.retain(|e| e.author != absent);
                    }
                    input.windows.insert(key, entries);
                }
            }
            let before = l.topics[&TopicId(1)].mechanism.clone();
            let events = l.apply(h, &input, &NoConsensusEvidence).unwrap();
            for e in &events {
                assert!(!matches!(e, LedgerEvent::MechanismError { .. }), "{e:?}");
                let LedgerEvent::Scored { epoch, actors, .. } = e else {
                    continue;
                };
                let weights: Vec<f64> = actors.iter().filter_map(|a| a.weight).collect();
                if weights.len() > 1 && before.previous_network_loss.is_some() {
                    let best = weights.iter().copied().fold(f64::MIN, f64::max);
                    assert_eq!(best, 1.0, "epoch {epoch}: {weights:?}");
                }
                if *epoch != back {
                    continue;
                }
                let hexed = absent.to_hex();
                let me = actors
                    .iter()
                    .find(|a| a.who == absent && a.role == "inferer")
                    .expect("the returning worker is scored");
                assert_eq!(before.last_scored.inferer[&hexed], away.start - 1);
                let known: Vec<f64> = actors
                    .iter()
                    .filter(|a| a.role == "inferer")
                    .filter_map(|a| before.ema.inferer.get(&a.who.to_hex()).copied())
                    .collect();
                let missed = back - away.start;
                let penalized = liveness_penalty(
                    alpha,
                    initial_ema_score(&known),
                    before.ema.inferer[&hexed],
                    missed,
                );
                assert_ne!(penalized, before.ema.inferer[&hexed]);
                let want = alpha * me.score + (1.0 - alpha) * penalized;
                assert_eq!(me.ema_score, want);
                checked += 1;
            }
        }
        assert_eq!(checked, 1, "the returning epoch was settled once");
        let m = &l.topics[&TopicId(1)].mechanism;
        assert!(m.last_scored.inferer.len() == 3 && m.last_scored.reputer.len() == 2);
        let v06 = &v06.topics[&TopicId(1)].mechanism;
        assert!(
            v06.last_scored.inferer.is_empty(),
            "v0.6 keeps no liveness state"
        );
        assert_ne!(
            m.last_inference.as_ref().map(|(_, b)| b.combined_value),
            v06.last_inference.as_ref().map(|(_, b)| b.combined_value)
        );
    }

    #[test]
    fn settlement_is_deterministic() {
        let (a, ea) = run(12);
        let (b, eb) = run(12);
        assert_eq!(a.root(), b.root());
        assert_eq!(ea, eb);
    }
}

#[test]
fn a_snapshot_restores_the_exact_ledger() {
    // The root encoding (bincode) cannot be decoded (`Amount` reads with `deserialize_any`,
    // `LossMethod` is internally tagged, `ParamValue` untagged); snapshots must round-trip.
    let mut l = Ledger::from_genesis(&genesis()).unwrap();
    let values = vec![
        ("a".into(), ParamValue::Int(7)),
        ("b".into(), ParamValue::Real(0.1 + 0.2)),
        ("c".into(), ParamValue::Real(2.0)),
        ("d".into(), ParamValue::Amount(Amount(u128::MAX))),
        ("e".into(), ParamValue::Flag(true)),
    ];
    let p = entry(
        &l,
        &kp(1),
        Payload::Propose(GovernanceProposal {
            nonce: 1,
            title: "everything".into(),
            description: String::new(),
            action: GovernanceAction::SetParams { changes: values },
        }),
    );
    apply(&mut l, vec![p]);
    if let Some(t) = l.topics.values_mut().next() {
        t.spec.loss = LossMethod::Huber { delta: 0.3 };
        t.weight = Some(1.0 / 3.0);
    }
    assert!(
        bincode::serde::decode_from_slice::<Ledger, _>(
            &bincode::serde::encode_to_vec(&l, chorus_protocol::codec::config()).unwrap(),
            chorus_protocol::codec::config()
        )
        .is_err(),
        "if bincode learns to decode the ledger, snapshots may go back to it"
    );
    let back = Ledger::from_snapshot(&l.to_snapshot().unwrap()).unwrap();
    assert_eq!(back, l);
    assert_eq!(back.root(), l.root());
    assert!(Ledger::from_snapshot(b"{").is_err());
}

/// Who may name a key's owner: the key while it has none, then only its owner (who may hand
/// it on, or give it back by naming the key itself).
#[test]
fn only_the_key_or_its_owner_names_its_owner() {
    let mut l = Ledger::from_genesis(&genesis()).unwrap();
    let (actor, owner, other) = (kp(1), kp(2), kp(3));
    let set = |l: &Ledger, signer: &Keypair, nonce: u64, to: PublicKey| {
        entry(
            l,
            signer,
            Payload::SetOwner(SetOwner {
                nonce,
                actor: actor.public(),
                owner: to,
            }),
        )
    };
    // A stranger cannot claim a key that has no owner.
    let ev = {
        let e = set(&l, &other, 1, other.public());
        apply(&mut l, vec![e])
    };
    assert_eq!(
        refused(&ev),
        vec!["only the key itself (while it has no owner) or its owner can name its owner"]
    );
    assert_eq!(l.owner_of(&actor.public()), actor.public());
    // The key names its owner; then the key itself can no longer change it.
    {
        let e = set(&l, &actor, 1, owner.public());
        apply(&mut l, vec![e])
    };
    assert_eq!(l.owner_of(&actor.public()), owner.public());
    let ev = {
        let e = set(&l, &actor, 2, actor.public());
        apply(&mut l, vec![e])
    };
    assert_eq!(refused(&ev).len(), 1);
    assert_eq!(l.owner_of(&actor.public()), owner.public());
    // The owner hands it on; the new owner gives it back to the key.
    {
        let e = set(&l, &owner, 1, other.public());
        apply(&mut l, vec![e])
    };
    assert_eq!(l.owner_of(&actor.public()), other.public());
    {
        let e = set(&l, &other, 2, actor.public());
        apply(&mut l, vec![e])
    };
    assert_eq!(l.owner_of(&actor.public()), actor.public());
    assert!(l.owners.is_empty());
}

/// A bond is zero or at least `min_validator_bond` (50 here): a dust bond is refused, and so
/// is an unbond that would leave dust; bonding up to the minimum, or unbonding all, works.
#[test]
fn bonds_below_the_minimum_are_refused() {
    let mut l = Ledger::from_genesis(&genesis()).unwrap();
    let bond = |nonce, amount| {
        Payload::Bond(BondChange {
            nonce,
            amount: Amount(amount),
        })
    };
    let unbond = |nonce, amount| {
        Payload::Unbond(BondChange {
            nonce,
            amount: Amount(amount),
        })
    };
    let before = l.balance(&pk(3));
    let dust = entry(&l, &kp(3), bond(1, 49));
    let ev = apply(&mut l, vec![dust]);
    assert_eq!(
        refused(&ev),
        vec![
            "a bond of 49 is below the minimum 50 (unbond all of it, or keep at least the minimum)"
        ]
    );
    assert!(!l.validators.contains_key(&pk(3)));
    assert_eq!(l.balance(&pk(3)), before, "a refused bond costs nothing");
    let enough = entry(&l, &kp(3), bond(2, 50));
    assert!(refused(&apply(&mut l, vec![enough])).is_empty());
    assert_eq!(l.validators[&pk(3)].bond, Amount(50));
    // pk(2) has 100 bonded: leaving 30 is refused, leaving 50 or nothing is not.
    let to_dust = entry(&l, &kp(2), unbond(1, 70));
    assert_eq!(refused(&apply(&mut l, vec![to_dust])).len(), 1);
    assert_eq!(l.validators[&pk(2)].bond, Amount(100));
    let to_min = entry(&l, &kp(2), unbond(2, 50));
    assert!(refused(&apply(&mut l, vec![to_min])).is_empty());
    let all = entry(&l, &kp(2), unbond(3, 50));
    assert!(refused(&apply(&mut l, vec![all])).is_empty());
    assert!(!l.validators.contains_key(&pk(2)));
}

/// With `max_validators = 2` and three bonded accounts, the smallest bond waits outside the
/// set: it earns none of the validators' emission and is not in the set a restarting node
/// rebuilds (`bonds_before_last`); a larger bond enters and evicts the smallest, unbonding
/// brings the evicted one back.
#[test]
fn bonds_beyond_max_validators_wait_outside_the_set() {
    let mut g = genesis();
    g.params.max_validators = 2;
    let mut l = Ledger::from_genesis(&g).unwrap();
    let bond = |nonce, amount| {
        Payload::Bond(BondChange {
            nonce,
            amount: Amount(amount),
        })
    };
    let keys = |b: Vec<(PublicKey, Amount)>| b.into_iter().map(|(k, _)| k).collect::<Vec<_>>();
    let sorted = |mut v: Vec<PublicKey>| {
        v.sort();
        v
    };
    // pk(3) bonds 60 < pk(2)'s 100: bonded, outside the set.
    let e = entry(&l, &kp(3), bond(1, 60));
    assert!(refused(&apply(&mut l, vec![e])).is_empty());
    assert_eq!(l.bonds().len(), 3);
    assert_eq!(keys(l.active_bonds()), sorted(vec![pk(1), pk(2)]));
    let paid = |l: &Ledger, i| l.accounts.get(&pk(i)).map_or(0, |a| a.rewards.0);
    let waiting = paid(&l, 3);
    let (p1, p2) = (paid(&l, 1), paid(&l, 2));
    apply(&mut l, vec![]);
    assert_eq!(paid(&l, 3), waiting, "a bond outside the set earns nothing");
    assert!(paid(&l, 1) > p1 && paid(&l, 2) > p2);
    assert_eq!(
        keys(l.bonds_before_last.clone()),
        sorted(vec![pk(1), pk(2)])
    );
    // pk(3) raises its bond to 160 > 100: it enters, pk(2) waits.
    let e = entry(&l, &kp(3), bond(2, 100));
    assert!(refused(&apply(&mut l, vec![e])).is_empty());
    assert_eq!(keys(l.active_bonds()), sorted(vec![pk(1), pk(3)]));
    let set = crate::replica::validator_set(&l).unwrap();
    assert!(set.get(&pk(2)).is_none() && set.get(&pk(3)).is_some());
    // pk(3) unbonds everything: pk(2) is back.
    let e = entry(
        &l,
        &kp(3),
        Payload::Unbond(BondChange {
            nonce: 3,
            amount: Amount(160),
        }),
    );
    assert!(refused(&apply(&mut l, vec![e])).is_empty());
    assert_eq!(keys(l.active_bonds()), sorted(vec![pk(1), pk(2)]));
    assert_eq!(
        keys(l.bonds_before_last.clone()),
        sorted(vec![pk(1), pk(3)])
    );
}
