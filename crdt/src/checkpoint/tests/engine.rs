//! One engine driven by hand: the exact effects it emits.

use arc_malachitebft_core_types::VoteType;
use chorus_protocol::ids::Hash32;

use super::fixture::*;
use crate::checkpoint::wal::WalEntry;
use crate::checkpoint::*;

fn timer(height: u64, round: u32, kind: TimerKind) -> TimerId {
    TimerId {
        height,
        round,
        kind,
    }
}

fn vote_msg(m: &ConsensusMessage) -> crate::checkpoint::messages::VoteMessage {
    match m {
        ConsensusMessage::Vote(v) => v.clone(),
        _ => panic!("not a vote"),
    }
}

fn proposal_msg(m: &ConsensusMessage) -> crate::checkpoint::messages::ProposalMessage {
    match m {
        ConsensusMessage::Proposal(p) => p.clone(),
        _ => panic!("not a proposal"),
    }
}

#[test]
fn a_fresh_validator_arms_its_timers() {
    let f = Fixture::new(4);
    let (_, effects) = f.engine(f.non_proposer(1));
    assert_eq!(
        effects,
        vec![
            Effect::WalTruncate {
                keep_from_height: 1
            },
            Effect::CancelAllTimers,
            Effect::CancelAllTimers,
            Effect::ScheduleTimer {
                id: timer(1, 0, TimerKind::Rebroadcast),
                at_ms: 5_000
            },
            Effect::ScheduleTimer {
                id: timer(1, 0, TimerKind::Propose),
                at_ms: 3_000
            },
        ]
    );
}

#[test]
fn the_proposer_asks_for_a_value_then_persists_before_sending() {
    let f = Fixture::new(4);
    let p = f.proposer(1, 0);
    let (mut e, effects) = f.engine(p);
    assert_eq!(
        effects.last(),
        Some(&Effect::NeedValue {
            height: 1,
            round: 0,
            deadline_ms: 3_000
        })
    );
    let cp = f.checkpoint(1);
    let effects = e.handle(
        Input::ProposeValue {
            height: 1,
            round: 0,
            checkpoint: cp.clone(),
        },
        10,
    );
    let proposal = proposal_msg(&f.proposal(p, 0, &cp));
    let prevote = vote_msg(&f.vote(p, 1, 0, VoteType::Prevote, Some(cp.id())));
    let cancel = Effect::CancelTimer(timer(1, 0, TimerKind::Propose));
    assert_eq!(effects.len(), 8, "{effects:#?}");
    assert!(
        matches!(&effects[0], Effect::WalAppend(r) if matches!(r.entry, WalEntry::ProposedValue { valid: true, .. }))
    );
    assert_eq!(effects[1], cancel);
    assert_eq!(
        effects[2],
        Effect::WalAppend(WalRecord {
            height: 1,
            entry: WalEntry::Proposal(proposal.clone())
        })
    );
    assert_eq!(effects[3], cancel);
    assert_eq!(
        effects[4],
        Effect::WalAppend(WalRecord {
            height: 1,
            entry: WalEntry::Vote(prevote.clone())
        })
    );
    assert_eq!(
        effects[5],
        Effect::Broadcast(ConsensusMessage::Vote(prevote))
    );
    assert_eq!(
        effects[6],
        Effect::ScheduleTimer {
            id: timer(1, 0, TimerKind::Rebroadcast),
            at_ms: 5_010
        }
    );
    assert_eq!(
        effects[7],
        Effect::Broadcast(ConsensusMessage::Proposal(proposal))
    );
    assert_persisted_before_sent(&[], &effects, &f.keys[p].public());
}

#[test]
fn a_validator_asks_the_app_and_prevotes_its_verdict() {
    let f = Fixture::new(4);
    let v = f.non_proposer(1);
    let p = f.proposer(1, 0);
    let cp = f.checkpoint(1);
    let me = f.keys[v].public();

    for valid in [true, false] {
        let (mut e, _) = f.engine(v);
        let proposal = f.proposal(p, 0, &cp);
        let effects = e.handle(f.from(p, proposal.clone()), 10);
        assert_eq!(
            effects,
            vec![
                Effect::ValidateCheckpoint {
                    height: 1,
                    round: 0,
                    proposer: f.keys[p].public(),
                    checkpoint: cp.clone()
                },
                Effect::WalAppend(WalRecord {
                    height: 1,
                    entry: WalEntry::Proposal(proposal_msg(&proposal))
                }),
            ]
        );
        let effects = e.handle(
            Input::ValueValidity {
                height: 1,
                id: cp.id(),
                valid,
            },
            20,
        );
        let prevote = vote_msg(&f.vote(v, 1, 0, VoteType::Prevote, valid.then(|| cp.id())));
        assert_eq!(
            effects[2..],
            [
                Effect::WalAppend(WalRecord {
                    height: 1,
                    entry: WalEntry::Vote(prevote.clone())
                }),
                Effect::Broadcast(ConsensusMessage::Vote(prevote)),
                Effect::ScheduleTimer {
                    id: timer(1, 0, TimerKind::Rebroadcast),
                    at_ms: 5_020
                },
            ],
            "valid = {valid}"
        );
        assert!(matches!(&effects[0], Effect::WalAppend(r)
            if matches!(r.entry, WalEntry::ProposedValue { valid: x, .. } if x == valid)));
        assert_persisted_before_sent(&[], &effects, &me);
    }
}

#[test]
fn a_checkpoint_on_another_chain_is_refused_without_asking_the_app() {
    let f = Fixture::new(4);
    let v = f.non_proposer(1);
    let p = f.proposer(1, 0);
    let (mut e, _) = f.engine(v);
    let mut cp = f.checkpoint(1);
    cp.previous = Hash32([9; 32]);
    let effects = e.handle(f.from(p, f.proposal(p, 0, &cp)), 10);
    assert!(
        !effects
            .iter()
            .any(|x| matches!(x, Effect::ValidateCheckpoint { .. })),
        "{effects:#?}"
    );
    assert_eq!(
        own_votes(&effects, &f.keys[v].public())
            .iter()
            .map(|(r, k, id, _)| (*r, *k, *id))
            .collect::<Vec<_>>(),
        vec![(0, VoteType::Prevote, None)]
    );
}

/// Run `engines` (of fixture `f`) until each decides height 1 on checkpoint `cp`: the
/// decisions.
fn decide_height_one(
    f: &Fixture,
    engines: &mut [Engine],
    cp: &Checkpoint,
) -> Vec<Option<DecidedCheckpoint>> {
    let p = f.proposer(1, 0);
    // Round 0: the proposal reaches everyone, everyone validates it.
    let mut inbox: Vec<(usize, ConsensusMessage)> = Vec::new();
    let mut outbox = engines[p].handle(
        Input::ProposeValue {
            height: 1,
            round: 0,
            checkpoint: cp.clone(),
        },
        1,
    );
    let mut decided = vec![None; 4];
    let mut t = 2;
    loop {
        for fx in outbox.drain(..) {
            if let Effect::Broadcast(m) = fx {
                inbox.push((p, m));
            }
        }
        if inbox.is_empty() {
            break;
        }
        let batch: Vec<_> = std::mem::take(&mut inbox);
        for (from, m) in batch {
            for to in 0..4 {
                if to == from {
                    continue;
                }
                t += 1;
                let mut fx = engines[to].handle(f.from(from, m.clone()), t);
                let mut i = 0;
                while i < fx.len() {
                    if let Effect::ValidateCheckpoint { checkpoint, .. } = &fx[i] {
                        let more = engines[to].handle(
                            Input::ValueValidity {
                                height: 1,
                                id: checkpoint.id(),
                                valid: true,
                            },
                            t,
                        );
                        fx.extend(more);
                    }
                    i += 1;
                }
                for e in fx {
                    match e {
                        Effect::Broadcast(m) => inbox.push((to, m)),
                        Effect::Decided(d) => decided[to] = Some(d),
                        _ => {}
                    }
                }
            }
        }
    }
    decided
}

#[test]
fn four_engines_decide_and_the_certificate_verifies() {
    let f = Fixture::new(4);
    let cp = f.checkpoint(3);
    let mut engines: Vec<Engine> = (0..4).map(|i| f.engine(i).0).collect();
    let decided = decide_height_one(&f, &mut engines, &cp);
    for (i, d) in decided.iter().enumerate() {
        let d = d.as_ref().expect("decided");
        assert_eq!(d.checkpoint, cp);
        assert!(d.verify(&f.config.network, &f.set).is_ok());
        assert!(
            d.verify(&Hash32([1; 32]), &f.set).is_err(),
            "bound to the network"
        );
        assert_eq!(engines[i].height(), 2);
        assert_eq!(engines[i].tip(), Some(d));
    }
}

#[test]
fn conflicting_votes_become_verifiable_evidence() {
    let f = Fixture::new(4);
    let v = f.non_proposer(1);
    let x = (v + 1) % 4;
    let (mut e, _) = f.engine(v);
    let a = f.vote(x, 1, 0, VoteType::Prevote, None);
    let b = f.vote(
        x,
        1,
        0,
        VoteType::Prevote,
        Some(CheckpointId(Hash32([4; 32]))),
    );
    let first = e.handle(f.from(x, a), 5);
    assert!(!first.iter().any(|e| matches!(e, Effect::Evidence(_))));
    let second = e.handle(f.from(x, b), 6);
    let evidence: Vec<_> = second
        .iter()
        .filter_map(|e| match e {
            Effect::Evidence(ev) => Some(ev.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(evidence.len(), 1, "{second:#?}");
    let proof = verify_vote_evidence(&f.config.network, &evidence[0]).unwrap();
    assert_eq!(proof.validator, f.keys[x].public());
    assert_eq!(proof.height, 1);
    assert_eq!(e.stats().evidence, 1);
}

#[test]
fn two_proposals_of_one_proposer_in_one_round_are_evidence() {
    let f = Fixture::new(4);
    let v = f.non_proposer(1);
    let p = f.proposer(1, 0);
    let (mut e, _) = f.engine(v);
    let mut effects = e.handle(f.from(p, f.proposal(p, 0, &f.checkpoint(1))), 5);
    effects.extend(e.handle(f.from(p, f.proposal(p, 0, &f.checkpoint(2))), 6));
    let evidence: Vec<_> = effects
        .iter()
        .filter_map(|e| match e {
            Effect::Evidence(ev) => Some(ev.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(evidence.len(), 1);
    let proof = verify_vote_evidence(&f.config.network, &evidence[0]).unwrap();
    assert_eq!(proof.validator, f.keys[p].public());
    assert_eq!(proof.step, evidence::Step::Proposal);
}

#[test]
fn a_forged_signature_is_penalized_and_ignored() {
    let f = Fixture::new(4);
    let v = f.non_proposer(1);
    let x = (v + 1) % 4;
    let (mut e, _) = f.engine(v);
    let mut forged = vote_msg(&f.vote(x, 1, 0, VoteType::Prevote, None));
    forged.signature.0[0] ^= 1;
    let effects = e.handle(f.from(x, ConsensusMessage::Vote(forged)), 5);
    assert_eq!(
        effects,
        vec![Effect::Misbehaviour {
            peer: f.peer(x),
            offence: Offence::BadSignature
        }]
    );
}

#[test]
fn a_lagging_node_asks_once_per_retry_interval() {
    let f = Fixture::new(4);
    let v = f.non_proposer(1);
    let x = (v + 1) % 4;
    let (mut e, _) = f.engine(v);
    // One height ahead: a grace period first (the precommits are probably on the way).
    let grace = f.config.catch_up_grace_ms;
    let retry = f.config.catch_up_retry_ms;
    let catch_up = timer(1, 0, TimerKind::CatchUp);
    let next = f.vote(x, 2, 0, VoteType::Prevote, None);
    assert_eq!(
        e.handle(f.from(x, next), 50),
        vec![Effect::ScheduleTimer {
            id: catch_up,
            at_ms: 50 + grace
        }]
    );
    let ask = Effect::SendTo {
        peer: f.peer(x),
        message: ConsensusMessage::CatchUpRequest { height: 1 },
    };
    // Two heights ahead: ask at once, and re-check after the retry interval.
    let ahead = f.vote(x, 3, 0, VoteType::Prevote, None);
    assert_eq!(
        e.handle(f.from(x, ahead.clone()), 100),
        vec![
            ask.clone(),
            Effect::ScheduleTimer {
                id: catch_up,
                at_ms: 100 + retry
            }
        ]
    );
    assert!(e.handle(f.from(x, ahead), 200).is_empty(), "rate-limited");
    // The timer retries while still behind.
    let again = e.handle(Input::TimerFired(catch_up), 100 + retry);
    assert_eq!(again[0], ask);
}

#[test]
fn a_commit_quorum_for_an_unseen_checkpoint_triggers_catch_up() {
    let f = Fixture::new(4);
    let v = f.non_proposer(1);
    let (mut e, _) = f.engine(v);
    let unseen = CheckpointId(Hash32([6; 32]));
    let others: Vec<usize> = (0..4).filter(|&i| i != v).collect();
    let mut effects = Vec::new();
    for &i in &others {
        effects = e.handle(
            f.from(i, f.vote(i, 1, 0, VoteType::Precommit, Some(unseen))),
            10,
        );
    }
    // Two precommits are not a quorum; the third is: ask its signer.
    let last = *others.last().unwrap();
    assert!(
        effects.contains(&Effect::SendTo {
            peer: f.peer(last),
            message: ConsensusMessage::CatchUpRequest { height: 1 }
        }),
        "{effects:#?}"
    );
    assert_eq!(e.stats().catch_up_requests, 1);
}

#[test]
fn a_catch_up_response_needs_a_quorum_certificate() {
    let f = Fixture::new(4);
    let v = f.non_proposer(1);
    let cp = f.checkpoint(5);
    let signers: Vec<usize> = (0..4).filter(|&i| i != v).collect();
    let cert = |who: &[usize]| {
        let mut signatures: Vec<certificate::CommitSig> = who
            .iter()
            .map(
                |&i| match f.vote(i, 1, 0, VoteType::Precommit, Some(cp.id())) {
                    ConsensusMessage::Vote(m) => certificate::CommitSig {
                        validator: f.keys[i].public(),
                        signature: m.signature,
                    },
                    _ => unreachable!(),
                },
            )
            .collect();
        signatures.sort_by_key(|s| s.validator);
        DecidedCheckpoint {
            checkpoint: cp.clone(),
            certificate: CommitCertificate {
                height: 1,
                round: 0,
                value: cp.id(),
                signatures,
            },
        }
    };
    // Two of four: not enough.
    let (mut e, _) = f.engine(v);
    let weak = cert(&signers[..2]);
    let effects = e.handle(
        f.from(signers[0], ConsensusMessage::CatchUpResponse(weak)),
        10,
    );
    assert_eq!(
        effects,
        vec![Effect::Misbehaviour {
            peer: f.peer(signers[0]),
            offence: Offence::BadCatchUp
        }]
    );
    assert_eq!(e.height(), 1);
    // Three of four: decided via catch-up, next height started.
    let strong = cert(&signers);
    let effects = e.handle(
        f.from(
            signers[0],
            ConsensusMessage::CatchUpResponse(strong.clone()),
        ),
        20,
    );
    assert!(
        effects.contains(&Effect::Decided(strong.clone())),
        "{effects:#?}"
    );
    let decided_at = effects
        .iter()
        .position(|x| matches!(x, Effect::Decided(_)))
        .unwrap();
    let truncate_at = effects
        .iter()
        .position(|x| {
            *x == Effect::WalTruncate {
                keep_from_height: 2,
            }
        })
        .unwrap();
    assert!(
        decided_at < truncate_at,
        "Decided is emitted before WalTruncate"
    );
    assert_eq!(e.height(), 2);
    assert_eq!(e.stats().decided_via_catch_up, 1);
    // And now it serves height 1 to others, once per interval.
    let ask = f.from(signers[1], ConsensusMessage::CatchUpRequest { height: 1 });
    assert_eq!(
        e.handle(ask.clone(), 30),
        vec![Effect::SendTo {
            peer: f.peer(signers[1]),
            message: ConsensusMessage::CatchUpResponse(strong)
        }]
    );
    assert!(e.handle(ask, 31).is_empty());
}

/// Crash right after the own prevote reached the WAL (it was never sent), restart from the
/// WAL, and drive the same and different inputs: the node only ever sends the one prevote it
/// recorded, with the recorded signature.
#[test]
fn restart_from_the_wal_never_signs_a_second_prevote() {
    let f = Fixture::new(4);
    let v = f.non_proposer(1);
    let p = f.proposer(1, 0);
    let me = f.keys[v].public();
    let cp = f.checkpoint(1);
    let (mut e, first) = f.engine(v);
    let mut wal = wal_records(&first);
    let mut effects = e.handle(f.from(p, f.proposal(p, 0, &cp)), 10);
    effects.extend(e.handle(
        Input::ValueValidity {
            height: 1,
            id: cp.id(),
            valid: true,
        },
        20,
    ));
    // Crash: keep what reached the WAL up to and including our own prevote, lose the rest.
    let cut = effects
        .iter()
        .position(|x| matches!(x, Effect::WalAppend(r) if matches!(&r.entry, WalEntry::Vote(v) if v.vote.validator.0 == me)))
        .unwrap();
    wal.extend(wal_records(&effects[..=cut]));
    let recorded = match &wal.last().unwrap().entry {
        WalEntry::Vote(v) => v.clone(),
        _ => unreachable!(),
    };
    drop(e);

    let (mut e, restored) = Engine::restore(
        f.config.clone(),
        f.keys[v].clone(),
        vec![(1, f.set.clone())],
        Persisted {
            decided: vec![],
            wal: wal.clone(),
        },
        1_000,
    )
    .unwrap();
    let mut sent = own_votes(&restored, &me);
    assert_eq!(
        sent,
        vec![(0, VoteType::Prevote, Some(cp.id()), recorded.signature)],
        "the recorded prevote is re-sent as is"
    );
    assert!(
        !restored
            .iter()
            .any(|x| matches!(x, Effect::ValidateCheckpoint { .. })),
        "the recorded verdict is not asked for again"
    );
    assert_persisted_before_sent(&wal, &restored, &me);

    // Same inputs again, then conflicting ones: another proposal in round 0, our propose
    // timeout, nil prevotes of the others.
    let other = f.checkpoint(2);
    let mut all = Vec::new();
    all.extend(e.handle(f.from(p, f.proposal(p, 0, &cp)), 1_100));
    all.extend(e.handle(f.from(p, f.proposal(p, 0, &other)), 1_200));
    all.extend(e.handle(
        Input::ValueValidity {
            height: 1,
            id: other.id(),
            valid: true,
        },
        1_300,
    ));
    all.extend(e.handle(Input::TimerFired(timer(1, 0, TimerKind::Propose)), 3_000));
    for i in (0..4).filter(|&i| i != v) {
        all.extend(e.handle(f.from(i, f.vote(i, 1, 0, VoteType::Prevote, None)), 3_100));
    }
    sent.extend(own_votes(&all, &me));
    let prevotes_r0: std::collections::BTreeSet<_> = sent
        .iter()
        .filter(|(r, k, _, _)| *r == 0 && *k == VoteType::Prevote)
        .map(|(_, _, id, sig)| (*id, *sig))
        .collect();
    assert_eq!(
        prevotes_r0.len(),
        1,
        "exactly one round-0 prevote ever leaves: {prevotes_r0:?}"
    );
    // The nil polka makes it precommit nil in round 0 — a new step, signed once.
    assert!(
        sent.iter()
            .any(|(r, k, id, _)| *r == 0 && *k == VoteType::Precommit && id.is_none())
    );
}

/// The guard below Malachite's replay: a WAL holding our prevote for A but not the
/// proposal that led to it. Malachite's state does not know it already prevoted; when a
/// different proposal B arrives it asks to sign a prevote for B, and the guard answers with
/// the recorded prevote for A instead.
#[test]
fn the_double_sign_guard_refuses_a_conflicting_prevote() {
    let f = Fixture::new(4);
    let v = f.non_proposer(1);
    let p = f.proposer(1, 0);
    let me = f.keys[v].public();
    let a = f.checkpoint(1);
    let b = f.checkpoint(2);
    let recorded = vote_msg(&f.vote(v, 1, 0, VoteType::Prevote, Some(a.id())));
    let wal = vec![WalRecord {
        height: 1,
        entry: WalEntry::Vote(recorded.clone()),
    }];
    let (mut e, _) = Engine::restore(
        f.config.clone(),
        f.keys[v].clone(),
        vec![(1, f.set.clone())],
        Persisted {
            decided: vec![],
            wal,
        },
        0,
    )
    .unwrap();
    let mut effects = e.handle(f.from(p, f.proposal(p, 0, &b)), 10);
    effects.extend(e.handle(
        Input::ValueValidity {
            height: 1,
            id: b.id(),
            valid: true,
        },
        20,
    ));
    let sent = own_votes(&effects, &me);
    assert!(
        sent.iter().all(|(r, k, id, sig)| *r != 0
            || *k != VoteType::Prevote
            || (*id == Some(a.id()) && *sig == recorded.signature)),
        "{sent:?}"
    );
    assert_eq!(e.stats().guard_refusals, 1);
}

#[test]
fn restore_rejects_a_broken_history() {
    let f = Fixture::new(4);
    let cp = f.checkpoint(1);
    let mut second = f.checkpoint(1);
    second.height = 2;
    second.previous = Hash32([9; 32]);
    let d = |cp: &Checkpoint| DecidedCheckpoint {
        checkpoint: cp.clone(),
        certificate: CommitCertificate {
            height: cp.height,
            round: 0,
            value: cp.id(),
            signatures: vec![],
        },
    };
    let err = Engine::restore(
        f.config.clone(),
        f.keys[0].clone(),
        vec![(1, f.set.clone())],
        Persisted {
            decided: vec![d(&cp), d(&second)],
            wal: vec![],
        },
        0,
    )
    .unwrap_err();
    assert_eq!(err, EngineError::BrokenHistory(2));
}

/// With `await_each_set` (the replica's setting) a decided height's successor waits for its
/// own validator set instead of running with the newest older one; without it, it starts at
/// once with the set of height 1.
#[test]
fn a_height_waits_for_its_own_validator_set_when_asked_to() {
    for await_each_set in [false, true] {
        let mut f = Fixture::new(4);
        f.config.await_each_set = await_each_set;
        let cp = f.checkpoint(3);
        let mut engines: Vec<Engine> = (0..4).map(|i| f.engine(i).0).collect();
        let decided = decide_height_one(&f, &mut engines, &cp);
        assert!(decided.iter().all(Option::is_some));
        for e in &mut engines {
            if await_each_set {
                assert_eq!(e.height(), 1, "height 2 started without its set");
                e.handle(
                    Input::ValidatorSet {
                        from_height: 2,
                        set: f.set.clone(),
                    },
                    1_000,
                );
            }
            assert_eq!(e.height(), 2);
        }
    }
}
