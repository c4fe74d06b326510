//! Pinned outputs: a fixed history of every ledger message kind (accepted and refused) and a
//! fixed settlement history must keep the exact root and events they have. A change to these
//! values is a change of the replicated state machine, never a refactor.

use super::*;

/// Hex of blake3 over the JSON of `events` (what the node's API and store hold).
fn events_digest(events: &[LedgerEvent]) -> String {
    Hash32::of_parts(
        "chorus/test/events",
        &[&serde_json::to_vec(events).unwrap()],
    )
    .to_hex()
}

fn stake(nonce: u64, reputer: PublicKey, amount: u128) -> StakeChange {
    StakeChange {
        nonce,
        topic: TopicId(1),
        reputer,
        amount: Amount(amount),
    }
}

fn register(nonce: u64, topic: u64, role: Role) -> Registration {
    Registration {
        nonce,
        topic: TopicId(topic),
        role,
    }
}

fn transfer(nonce: u64, amount: u128) -> Payload {
    Payload::Transfer(Transfer {
        nonce,
        to: pk(9),
        amount: Amount(amount),
    })
}

/// Every ledger message kind: the topic, registrations and transfers at height 0, stakes and
/// bonds on them at height 1, a vote after the tally at height 3.
fn message_history() -> (Ledger, Vec<LedgerEvent>) {
    let mut l = Ledger::from_genesis(&genesis()).unwrap();
    let now = l.period_end(0);
    let mut nameless = spec(now + 10_000);
    nameless.name = String::new();
    let create = |nonce, spec, fee| {
        Payload::CreateTopic(CreateTopic {
            nonce,
            spec,
            fee: Amount(fee),
        })
    };
    let fund = |nonce, topic| {
        Payload::FundTopic(FundTopic {
            nonce,
            topic: TopicId(topic),
            amount: Amount(1_000),
        })
    };
    let bond = |nonce, amount| BondChange {
        nonce,
        amount: Amount(amount),
    };
    let by_three = [
        create(1, spec(now + 10_000), 80_000),
        create(2, spec(now + 10_000), 1),
        create(3, spec(0), 80_000),
        create(4, nameless, 80_000),
        Payload::Register(register(5, 1, Role::Worker)),
        Payload::Register(register(6, 1, Role::Worker)),
        Payload::Register(register(7, 99, Role::Worker)),
        Payload::Unregister(register(8, 1, Role::Reputer)),
        transfer(9, 10),
        transfer(10, 1_000_000_000_000),
        transfer(10, 5),
        Payload::Register(register(11, 1, Role::Reputer)),
        Payload::Stake(stake(12, pk(3), 1_000)),
        Payload::Unregister(register(13, 1, Role::Worker)),
    ];
    let by_four = [
        Payload::Stake(stake(1, pk(3), 500)),
        Payload::Stake(stake(2, pk(4), 500)),
        fund(3, 1),
        fund(4, 77),
        Payload::Unbond(bond(5, 1)),
        Payload::Unstake(stake(6, pk(9), 1)),
        Payload::Unstake(stake(7, pk(3), 1_000_000)),
        Payload::Unstake(stake(8, pk(3), 500)),
    ];
    let by_five = [
        Payload::Bond(bond(1, 100)),
        Payload::Unbond(bond(2, 1_000_000_000)),
        Payload::Unbond(bond(3, 50)),
        Payload::Unstake(stake(4, pk(3), 1)),
    ];
    let propose = Payload::Propose(GovernanceProposal {
        nonce: 1,
        title: "text".into(),
        description: String::new(),
        action: GovernanceAction::Text,
    });
    let vote = |nonce, proposal| {
        Payload::Vote(GovernanceVote {
            nonce,
            proposal,
            option: VoteOption::Yes,
        })
    };
    let mut first: Vec<SignedEntry> = by_three.into_iter().map(|p| entry(&l, &kp(3), p)).collect();
    let proposal = entry(&l, &kp(1), propose);
    let id = proposal.id;
    first.push(proposal);
    first.push(entry(&l, &kp(2), vote(1, Hash32::of(b"no such proposal"))));
    first.push(entry(&l, &kp(6), transfer(1, 1)));
    let mut events = apply(&mut l, first);
    let mut second: Vec<SignedEntry> = by_four.into_iter().map(|p| entry(&l, &kp(4), p)).collect();
    second.extend(by_five.into_iter().map(|p| entry(&l, &kp(5), p)));
    second.push(entry(&l, &kp(1), vote(2, id)));
    events.extend(apply(&mut l, second));
    events.extend(apply(&mut l, vec![]));
    let late = entry(&l, &kp(2), vote(2, id));
    events.extend(apply(&mut l, vec![late]));
    (l, events)
}

#[test]
fn every_refusal_reason_of_a_fixed_history() {
    let (_, events) = message_history();
    assert_eq!(
        refused(&events),
        [
            "unknown proposal",
            "insufficient balance: has 0, needs 1",
            "fee below the create-topic fee",
            "topic start is in the past",
            "topic field `name`: must be 1..=255 bytes",
            "already registered",
            "unknown topic 99",
            "not registered",
            // Two transfers with nonce 10 apply in message-id order; ids depend on the
            // network id (so on the genesis parameters): here the transfer of more than the
            // account holds comes first (refused, its nonce consumed), then the other is stale.
            "insufficient balance: has 919790, needs 1000000000000",
            "stale nonce 10 (last 10)",
            "only 100 bonded",
            "no delegation on that reputer",
            "stake target is not a registered reputer",
            "unknown topic 77",
            "not a validator",
            "no stake on that reputer",
            "only 500 staked",
            "voting has ended",
        ]
    );
}

#[test]
fn a_fixed_message_history_keeps_its_root_and_events() {
    // Re-pinned when topics gained `token` (a TopicSpec is ledger state and a created topic's
    // event carries it), `rewards_paid` and `owners`; both again when topics gained the
    // outlier parameters (in the created topic's event) and their mechanism the outlier metrics;
    // both when the parameters gained `min_validator_bond` (a new network id reorders the two
    // nonce-10 transfers); both when topics gained `mechanism` (in the created topic's event);
    // both when topics gained `reveal_window_ms` (in the created topic's event); both when the
    // parameters gained `max_validators` (the nonce-10 transfers swapped order again).
    let (l, events) = message_history();
    assert_eq!(
        l.root().to_hex(),
        "60614adb68782120e10cb3dc7b7d28f0a7c78c2bd19233f19a6df74fe2c46bb9"
    );
    assert_eq!(
        events_digest(&events),
        "a38a313388834d31eba5028a0268374c116f21c421a3339440c256cf385cb778"
    );
}

#[test]
fn a_fixed_settlement_history_keeps_its_root_and_events() {
    // Events re-pinned when settlement began to emit `Scored`; the root when topics gained
    // `token`, `rewards_paid` and `owners`, and again with the outlier parameters and metrics
    // (the events did not change: nothing in this history is an outlier); the events when
    // `Scored` gained the epoch's ground truth and network loss; the root when the parameters
    // gained `min_validator_bond`; the root (not the events: v0.6 settles as before) when
    // topics gained `mechanism` and their mechanism state `last_scored`; the root when topics
    // gained `reveal_window_ms`; the root when the parameters gained `max_validators`.
    let (l, events) = super::settlement::run(12);
    assert_eq!(
        l.root().to_hex(),
        "df0837c05ea0616d6d4e59a5db2724c89c4057810796d0cf9d4e9ca450708ff3"
    );
    assert_eq!(
        events_digest(&events),
        "c445e33c125e160e308e9491abfca658c5458c20c3f9b6b2f66006e3d317554b"
    );
}

/// Every settled epoch says who was scored how: each actor paid a worker or reputer reward in
/// an epoch has a `Scored` line for that role, and each role's reward fractions sum to 1.
#[test]
fn settled_epochs_say_who_was_scored_and_how() {
    let (_, events) = super::settlement::run(12);
    let mut scored = 0;
    for e in &events {
        let LedgerEvent::Scored {
            topic,
            epoch,
            actors,
            ground_truth,
            network_loss,
        } = e
        else {
            continue;
        };
        scored += 1;
        // Both reputers report the truth of the settlement world: the median is that value.
        let truth = 1.0 + (*epoch as f64 * 0.7).sin() * 0.1;
        assert_eq!(*ground_truth, Some(truth), "epoch {epoch}");
        assert!(network_loss.is_some_and(f64::is_finite), "epoch {epoch}");
        for role in ["inferer", "forecaster", "reputer"] {
            let fractions: Vec<f64> = actors
                .iter()
                .filter(|a| a.role == role)
                .map(|a| a.reward_fraction)
                .collect();
            if !fractions.is_empty() {
                let sum: f64 = fractions.iter().sum();
                assert!((sum - 1.0).abs() < 1e-9, "{role} fractions sum to {sum}");
            }
        }
        assert!(
            actors
                .iter()
                .all(|a| a.score.is_finite() && a.ema_score.is_finite())
        );
        assert!(
            actors
                .iter()
                .filter(|a| a.role == "inferer")
                .all(|a| a.weight.is_some())
        );
        for r in events.iter().filter_map(|x| match x {
            LedgerEvent::Reward {
                topic: t,
                epoch: ep,
                to,
                role,
                ..
            } if t == topic && ep == epoch && role != "delegator" => Some((to, role)),
            _ => None,
        }) {
            assert!(
                actors.iter().any(|a| &a.who == r.0 && &a.role == r.1),
                "a {} reward without a score line",
                r.1
            );
        }
    }
    assert!(scored >= 5, "only {scored} settled epochs");
}

/// A topic's `rewards_paid` is exactly the sum of its `Reward` events, per recipient.
#[test]
fn rewards_paid_per_topic_add_up_to_the_reward_events() {
    let (l, events) = super::settlement::run(12);
    let mut expected: BTreeMap<(TopicId, PublicKey), u128> = BTreeMap::new();
    for e in &events {
        if let LedgerEvent::Reward {
            topic, to, amount, ..
        } = e
        {
            *expected.entry((*topic, *to)).or_default() += amount.0;
        }
    }
    assert!(!expected.is_empty());
    let mut held: BTreeMap<(TopicId, PublicKey), u128> = BTreeMap::new();
    for (id, t) in &l.topics {
        for (who, a) in &t.rewards_paid {
            held.insert((*id, *who), a.0);
        }
    }
    assert_eq!(held, expected);
}
