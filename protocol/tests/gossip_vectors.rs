//! Gossip validation test vectors, shipped as data files in `tests/vectors/gossip/`.
//!
//! Each file holds the message bytes (hex), the channel name, the time, the validator's view of
//! the state, and the expected outcome and reason. `checks_every_vector` runs them all against
//! `validate` and requires at least 40 vectors covering every reject reason. The cases are
//! built by `cases()` below; `CHORUS_BLESS=1 cargo test -p chorus-protocol --test
//! gossip_vectors` rewrites the files (review the diff: the files are the specification).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::vec_init_then_push)]

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;

use chorus_protocol::codec;
use chorus_protocol::envelope::{Envelope, signing_bytes};
use chorus_protocol::ids::{Amount, Hash32, TopicId};
use chorus_protocol::keys::Keypair;
use chorus_protocol::messages::*;
use chorus_protocol::validation::{
    Channel, ChannelKind, IgnoreReason, RejectReason, Verdict, validate,
};
use common::{StaticView, key, network, pk, sorted_pks, spec};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Vector {
    name: String,
    description: String,
    channel: String,
    now_ms: u64,
    state: StaticView,
    bytes: String,
    expect: String,
    reason: String,
}

const NOW: u64 = 1_130_000; // inside epoch 2's worker window and epoch 1's reputer window

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/gossip")
}

fn base_state() -> StaticView {
    let mut s = StaticView::default();
    s.topics.insert(1, spec());
    s.topics.insert(2, spec());
    for w in [11, 12, 13, 14] {
        s.registrations.push((1, Role::Worker, pk(w)));
    }
    for r in [21, 22] {
        s.registrations.push((1, Role::Reputer, pk(r)));
    }
    s.stakes.push((1, pk(21), Amount(20_000)));
    s.stakes.push((1, pk(22), Amount(5_000)));
    s.nonces.push((pk(1), 5));
    // Ledger authors hold funds (an account that holds nothing is ignored: `cannot_pay`).
    for k in [1, 3, 5] {
        s.funds.push((pk(k), Amount(10_000_000), Amount::ZERO));
    }
    s
}

fn workers(t: u64) -> String {
    Channel {
        network: network(),
        kind: ChannelKind::Workers(TopicId(t)),
    }
    .name()
}

fn reputers(t: u64) -> String {
    Channel {
        network: network(),
        kind: ChannelKind::Reputers(TopicId(t)),
    }
    .name()
}

fn ledger() -> String {
    Channel {
        network: network(),
        kind: ChannelKind::Ledger,
    }
    .name()
}

fn seal(k: &Keypair, p: &Payload) -> Vec<u8> {
    Envelope::seal(k, &network(), p).to_bytes()
}

/// Sign arbitrary payload bytes (for payloads our encoder would never produce).
fn seal_raw(k: &Keypair, payload: Vec<u8>) -> Vec<u8> {
    let signature = k.sign(&signing_bytes(&network(), &payload));
    codec::encode(&Envelope {
        payload,
        signer: k.public(),
        signature,
    })
}

fn bundle(epoch: u64, inference: Option<f64>, forecast_seeds: &[u8]) -> Payload {
    Payload::WorkerBundle(WorkerBundle {
        topic: TopicId(1),
        epoch,
        inference,
        forecasts: sorted_pks(forecast_seeds)
            .into_iter()
            .map(|inferer| ForecastElement {
                inferer,
                value: -3.0,
            })
            .collect(),
    })
}

fn losses(epoch: u64) -> ReputerBundle {
    ReputerBundle {
        topic: TopicId(1),
        epoch,
        ground_truth: 0.0042,
        losses: common::value_bundle(&sorted_pks(&[11, 12, 13]), &sorted_pks(&[14])),
    }
}

fn transfer(nonce: u64, to: u8, amount: u128) -> Payload {
    Payload::Transfer(Transfer {
        nonce,
        to: pk(to),
        amount: Amount(amount),
    })
}

struct Case {
    name: &'static str,
    description: &'static str,
    channel: String,
    now_ms: u64,
    state: StaticView,
    bytes: Vec<u8>,
    /// (outcome, reason) names.
    expect: (&'static str, &'static str),
}

fn case(
    name: &'static str,
    description: &'static str,
    channel: String,
    bytes: Vec<u8>,
    expect: Option<Result<IgnoreReason, RejectReason>>,
) -> Case {
    Case {
        name,
        description,
        channel,
        now_ms: NOW,
        state: base_state(),
        bytes,
        expect: match expect {
            None => ("accept", ""),
            Some(Ok(r)) => ("ignore", r.as_str()),
            Some(Err(r)) => ("reject", r.as_str()),
        },
    }
}

fn cases() -> Vec<Case> {
    use IgnoreReason as I;
    use RejectReason as R;
    let w = key(11);
    let mut v = vec![];

    // ---- accepted ----
    v.push(case(
        "accept-worker-bundle",
        "inference plus sorted forecasts of registered inferers",
        workers(1),
        seal(&w, &bundle(2, Some(0.0031), &[12, 13])),
        None,
    ));
    v.push(case(
        "accept-inference-only",
        "an inferer without forecasts",
        workers(1),
        seal(&w, &bundle(2, Some(0.0031), &[])),
        None,
    ));
    v.push(case(
        "accept-forecast-only",
        "a pure forecaster (no inference)",
        workers(1),
        seal(&key(14), &bundle(2, None, &[11, 12, 13])),
        None,
    ));
    v.push(case(
        "accept-reputer-bundle",
        "losses for epoch 1 inside its reputer window by a staked reputer",
        reputers(1),
        seal(&key(21), &Payload::ReputerBundle(losses(1))),
        None,
    ));
    v.push(case(
        "accept-transfer",
        "next nonce after the last finalized one",
        ledger(),
        seal(&key(1), &transfer(6, 2, 10)),
        None,
    ));
    let mut c = case(
        "accept-worker-within-skew",
        "after the window closes but within the clock-skew allowance",
        workers(1),
        seal(&w, &bundle(1, Some(0.1), &[])),
        None,
    );
    c.now_ms = 1_090_000 + 999;
    v.push(c);
    for (name, p) in common::sample_payloads() {
        let p = match p {
            Payload::WorkerBundle(_) | Payload::ReputerBundle(_) | Payload::Evidence(_) => continue,
            Payload::Transfer(t) => Payload::Transfer(Transfer {
                amount: Amount(5),
                ..t
            }),
            other => other,
        };
        let desc = match name {
            "create_topic" => "a valid topic definition with the creation fee",
            "register" => "register as a worker in a known topic",
            "unregister" => "unregister from a known topic",
            "transfer" => "a plain transfer",
            "fund_topic" => "fund a known topic",
            "stake" => "stake on a reputer",
            "unstake" => "start unstaking",
            "bond" => "bond as a validator",
            "unbond" => "start unbonding",
            "propose" => "a topic-update proposal",
            "vote" => "a governance vote",
            "set_owner" => "a key names its owner",
            _ => "a ledger message",
        };
        let mut st = base_state();
        st.nonces.push((pk(3), 0));
        let name: &'static str =
            Box::leak(format!("accept-{}", name.replace('_', "-")).into_boxed_str());
        let mut c = case(name, desc, ledger(), seal(&key(3), &p), None);
        c.state = st;
        v.push(c);
    }
    let a = Envelope::seal(&w, &network(), &bundle(2, Some(1.0), &[]));
    let b = Envelope::seal(&w, &network(), &bundle(2, Some(2.0), &[]));
    let evidence = |kind, first: &Envelope, second: &Envelope| {
        Payload::Evidence(Evidence {
            kind,
            first: first.to_bytes(),
            second: second.to_bytes(),
        })
    };
    v.push(case(
        "accept-evidence",
        "two different bundles of one worker for one epoch",
        ledger(),
        seal(&key(5), &evidence(EvidenceKind::WorkerBundle, &a, &b)),
        None,
    ));

    // ---- ignored ----
    let held = seal(&w, &bundle(2, Some(0.0031), &[]));
    let mut c = case(
        "ignore-duplicate",
        "the same envelope is already held",
        workers(1),
        held.clone(),
        Some(Ok(I::Duplicate)),
    );
    c.state.seen_envelopes.push(hex::encode(&held));
    v.push(c);
    let mut c = case(
        "ignore-equivocation",
        "a second, validly signed, different bundle for a held slot",
        workers(1),
        seal(&w, &bundle(2, Some(0.5), &[])),
        Some(Ok(I::Equivocation)),
    );
    c.state.seen_envelopes.push(hex::encode(&held));
    v.push(c);
    let mut p = bundle(2, Some(0.1), &[]);
    if let Payload::WorkerBundle(b) = &mut p {
        b.topic = TopicId(9);
    }
    v.push(case(
        "ignore-unknown-topic",
        "a bundle for a topic this node does not know (yet)",
        workers(9),
        seal(&w, &p),
        Some(Ok(I::UnknownTopic)),
    ));
    v.push(case(
        "ignore-too-early",
        "a bundle for a future epoch",
        workers(1),
        seal(&w, &bundle(5, Some(0.1), &[])),
        Some(Ok(I::TooEarly)),
    ));
    v.push(case(
        "ignore-too-late",
        "a bundle for a past epoch",
        workers(1),
        seal(&w, &bundle(0, Some(0.1), &[])),
        Some(Ok(I::TooLate)),
    ));
    v.push(case(
        "ignore-unregistered-worker",
        "the author is not a registered worker (maybe not finalized yet)",
        workers(1),
        seal(&key(30), &bundle(2, Some(0.1), &[])),
        Some(Ok(I::NotRegistered)),
    ));
    v.push(case(
        "ignore-unregistered-reputer",
        "the author is not a registered reputer",
        reputers(1),
        seal(&key(23), &Payload::ReputerBundle(losses(1))),
        Some(Ok(I::NotRegistered)),
    ));
    v.push(case(
        "ignore-insufficient-stake",
        "the reputer's stake is below the required minimum",
        reputers(1),
        seal(&key(22), &Payload::ReputerBundle(losses(1))),
        Some(Ok(I::InsufficientStake)),
    ));
    v.push(case(
        "ignore-reputer-too-early",
        "losses before the ground-truth lag has passed",
        reputers(1),
        seal(&key(21), &Payload::ReputerBundle(losses(2))),
        Some(Ok(I::TooEarly)),
    ));
    v.push(case(
        "ignore-forecast-unknown-inferer",
        "a forecast about an unregistered inferer",
        workers(1),
        seal(&w, &bundle(2, Some(0.1), &[12, 40])),
        Some(Ok(I::UnknownWorker)),
    ));
    let mut l = losses(1);
    l.losses = common::value_bundle(&sorted_pks(&[11, 12, 41]), &[]);
    v.push(case(
        "ignore-losses-unknown-worker",
        "losses for an unregistered worker",
        reputers(1),
        seal(&key(21), &Payload::ReputerBundle(l)),
        Some(Ok(I::UnknownWorker)),
    ));
    v.push(case(
        "ignore-stale-nonce",
        "a nonce at or below the last finalized one",
        ledger(),
        seal(&key(1), &transfer(5, 2, 10)),
        Some(Ok(I::StaleNonce)),
    ));
    v.push(case(
        "ignore-nonce-too-far",
        "a nonce beyond the allowed gap",
        ledger(),
        seal(&key(1), &transfer(5 + 1025, 2, 10)),
        Some(Ok(I::NonceTooFarAhead)),
    ));
    v.push(case(
        "ignore-cannot-pay",
        "a transfer from a key that holds nothing (fresh keys cannot spam the ledger)",
        ledger(),
        seal(&key(4), &transfer(1, 2, 10)),
        Some(Ok(I::CannotPay)),
    ));
    v.push(case(
        "ignore-cannot-pay-more-than-held",
        "a transfer of more than the author's liquid balance",
        ledger(),
        seal(&key(1), &transfer(6, 2, 10_000_001)),
        Some(Ok(I::CannotPay)),
    ));
    let mut c = case(
        "accept-unbond-with-only-a-bond",
        "an account whose tokens are all bonded may still unbond (it spends nothing)",
        ledger(),
        seal(
            &key(6),
            &Payload::Unbond(chorus_protocol::messages::BondChange {
                nonce: 1,
                amount: Amount(10),
            }),
        ),
        None,
    );
    c.state.funds.push((pk(6), Amount::ZERO, Amount(100)));
    v.push(c);
    v.push(case(
        "ignore-register-unknown-topic",
        "registration for an unknown topic",
        ledger(),
        seal(
            &key(1),
            &Payload::Register(Registration {
                nonce: 6,
                topic: TopicId(9),
                role: Role::Worker,
            }),
        ),
        Some(Ok(I::UnknownTopic)),
    ));
    let x = Envelope::seal(&key(15), &network(), &bundle(2, Some(1.0), &[]));
    let y = Envelope::seal(&key(15), &network(), &bundle(2, Some(2.0), &[]));
    v.push(case(
        "ignore-evidence-offender-holds-nothing",
        "two bundles of a key registered nowhere, reported: nothing is at stake",
        ledger(),
        seal(&key(5), &evidence(EvidenceKind::WorkerBundle, &x, &y)),
        Some(Ok(I::OffenderHoldsNothing)),
    ));

    // ---- rejected ----
    v.push(case(
        "reject-too-large",
        "bytes beyond the envelope cap",
        workers(1),
        vec![0u8; 256 * 1024 + 1],
        Some(Err(R::TooLarge)),
    ));
    v.push(case(
        "reject-garbage",
        "random bytes",
        workers(1),
        b"\xff\xfe garbage".to_vec(),
        Some(Err(R::Malformed)),
    ));
    let mut t = seal(&w, &bundle(2, Some(0.1), &[]));
    t.truncate(t.len() - 10);
    v.push(case(
        "reject-truncated",
        "a truncated envelope",
        workers(1),
        t,
        Some(Err(R::Malformed)),
    ));
    let mut tr = seal(&w, &bundle(2, Some(0.1), &[]));
    tr.push(0);
    v.push(case(
        "reject-trailing-bytes",
        "a valid envelope followed by an extra byte",
        workers(1),
        tr,
        Some(Err(R::Malformed)),
    ));
    let good = seal(&w, &bundle(2, Some(0.1), &[]));
    let mut nc = vec![251u8, good[0], 0];
    nc.extend_from_slice(&good[1..]);
    v.push(case(
        "reject-non-canonical",
        "the payload length written as a 3-byte varint",
        workers(1),
        nc,
        Some(Err(R::NonCanonical)),
    ));
    let mut c = case(
        "reject-wrong-network",
        "a channel of another network",
        workers(1),
        seal(&w, &bundle(2, Some(0.1), &[])),
        Some(Err(R::WrongNetwork)),
    );
    c.channel = Channel {
        network: Hash32([1; 32]),
        kind: ChannelKind::Workers(TopicId(1)),
    }
    .name();
    v.push(c);
    v.push(case(
        "reject-bundle-on-ledger",
        "a worker bundle on the ledger channel",
        ledger(),
        seal(&w, &bundle(2, Some(0.1), &[])),
        Some(Err(R::WrongChannel)),
    ));
    v.push(case(
        "reject-bundle-other-topic",
        "a topic-1 bundle on topic 2's channel",
        workers(2),
        seal(&w, &bundle(2, Some(0.1), &[])),
        Some(Err(R::WrongChannel)),
    ));
    v.push(case(
        "reject-ledger-on-worker-channel",
        "a transfer on a worker channel",
        workers(1),
        seal(&key(1), &transfer(6, 2, 1)),
        Some(Err(R::WrongChannel)),
    ));
    let mut env = Envelope::seal(&w, &network(), &bundle(2, Some(0.1), &[]));
    env.signature.0[5] ^= 0x20;
    v.push(case(
        "reject-bad-signature",
        "a flipped bit in the signature",
        workers(1),
        env.to_bytes(),
        Some(Err(R::BadSignature)),
    ));
    let other = Envelope::seal(&w, &Hash32([1; 32]), &bundle(2, Some(0.1), &[]));
    v.push(case(
        "reject-signed-for-other-network",
        "signed for another network id",
        workers(1),
        other.to_bytes(),
        Some(Err(R::BadSignature)),
    ));
    let mut forged = Envelope::seal(&key(30), &network(), &bundle(2, Some(0.1), &[]));
    forged.signer = w.public();
    v.push(case(
        "reject-forged-author",
        "signed by one key, claiming a registered worker",
        workers(1),
        forged.to_bytes(),
        Some(Err(R::BadSignature)),
    ));
    let mut forged2 = Envelope::seal(&key(30), &network(), &bundle(2, Some(0.7), &[]));
    forged2.signer = w.public();
    let mut c = case(
        "reject-forged-equivocation",
        "a forged second bundle for a held slot",
        workers(1),
        forged2.to_bytes(),
        Some(Err(R::BadSignature)),
    );
    c.state.seen_envelopes.push(hex::encode(&held));
    v.push(c);
    v.push(case(
        "reject-nan-inference",
        "a NaN inference",
        workers(1),
        seal(&w, &bundle(2, Some(f64::NAN), &[])),
        Some(Err(R::NonFinite)),
    ));
    let mut p = bundle(2, Some(0.1), &[12]);
    if let Payload::WorkerBundle(b) = &mut p {
        b.forecasts[0].value = f64::INFINITY;
    }
    v.push(case(
        "reject-infinite-forecast",
        "an infinite forecasted loss",
        workers(1),
        seal(&w, &p),
        Some(Err(R::NonFinite)),
    ));
    let mut l = losses(1);
    l.losses.combined_value = f64::NEG_INFINITY;
    v.push(case(
        "reject-infinite-loss",
        "an infinite loss in a reputer bundle",
        reputers(1),
        seal(&key(21), &Payload::ReputerBundle(l)),
        Some(Err(R::NonFinite)),
    ));
    let mut l = losses(1);
    l.ground_truth = f64::NAN;
    v.push(case(
        "reject-nan-ground-truth",
        "a NaN ground truth",
        reputers(1),
        seal(&key(21), &Payload::ReputerBundle(l)),
        Some(Err(R::NonFinite)),
    ));
    v.push(case(
        "reject-empty-bundle",
        "neither inference nor forecasts",
        workers(1),
        seal(&w, &bundle(2, None, &[])),
        Some(Err(R::EmptyBundle)),
    ));
    let many: Vec<u8> = (100..113).collect();
    let mut st = base_state();
    for s in &many {
        st.registrations.push((1, Role::Worker, pk(*s)));
    }
    let mut c = case(
        "reject-too-many-forecasts",
        "13 forecast elements (the cap is 12)",
        workers(1),
        seal(&w, &bundle(2, Some(0.1), &many)),
        Some(Err(R::TooManyElements)),
    );
    c.state = st;
    v.push(c);
    let mut p = bundle(2, Some(0.1), &[12, 13]);
    if let Payload::WorkerBundle(b) = &mut p {
        b.forecasts.reverse();
    }
    v.push(case(
        "reject-unsorted-forecasts",
        "forecast elements not sorted by inferer",
        workers(1),
        seal(&w, &p),
        Some(Err(R::Unsorted)),
    ));
    let mut p = bundle(2, Some(0.1), &[12]);
    if let Payload::WorkerBundle(b) = &mut p {
        let e = b.forecasts[0].clone();
        b.forecasts.push(e);
    }
    v.push(case(
        "reject-duplicate-forecast",
        "the same inferer twice in a forecast",
        workers(1),
        seal(&w, &p),
        Some(Err(R::Unsorted)),
    ));
    let mut l = losses(1);
    l.losses.inferer_values.reverse();
    v.push(case(
        "reject-unsorted-losses",
        "inferer losses not sorted by worker",
        reputers(1),
        seal(&key(21), &Payload::ReputerBundle(l)),
        Some(Err(R::Unsorted)),
    ));
    let mut l = losses(1);
    let one = l.losses.inferer_values[0].clone();
    l.losses.inferer_values = vec![one; 1025];
    v.push(case(
        "reject-too-many-losses",
        "1025 entries in one loss list",
        reputers(1),
        seal(&key(21), &Payload::ReputerBundle(l)),
        Some(Err(R::TooManyElements)),
    ));
    let mut s = spec();
    s.p_norm = 10.0;
    v.push(case(
        "reject-invalid-topic",
        "p_norm outside [2.5, 4.5]",
        ledger(),
        seal(
            &key(1),
            &Payload::CreateTopic(CreateTopic {
                nonce: 6,
                spec: s,
                fee: Amount(75_000),
            }),
        ),
        Some(Err(R::InvalidTopic)),
    ));
    v.push(case(
        "reject-fee-too-low",
        "topic creation fee below the minimum",
        ledger(),
        seal(
            &key(1),
            &Payload::CreateTopic(CreateTopic {
                nonce: 6,
                spec: spec(),
                fee: Amount(74_999),
            }),
        ),
        Some(Err(R::FeeTooLow)),
    ));
    v.push(case(
        "reject-zero-transfer",
        "a transfer of nothing",
        ledger(),
        seal(&key(1), &transfer(6, 2, 0)),
        Some(Err(R::ZeroAmount)),
    ));
    v.push(case(
        "reject-zero-stake",
        "a stake of nothing",
        ledger(),
        seal(
            &key(1),
            &Payload::Stake(StakeChange {
                nonce: 6,
                topic: TopicId(1),
                reputer: pk(21),
                amount: Amount(0),
            }),
        ),
        Some(Err(R::ZeroAmount)),
    ));
    v.push(case(
        "reject-self-transfer",
        "a transfer to oneself",
        ledger(),
        seal(&key(1), &transfer(6, 1, 3)),
        Some(Err(R::SelfTransfer)),
    ));
    v.push(case(
        "reject-empty-title",
        "a proposal without a title",
        ledger(),
        seal(
            &key(1),
            &Payload::Propose(GovernanceProposal {
                nonce: 6,
                title: String::new(),
                description: String::new(),
                action: GovernanceAction::Text,
            }),
        ),
        Some(Err(R::InvalidProposal)),
    ));
    v.push(case(
        "reject-oversize-ledger-payload",
        "a proposal beyond the 16 KiB ledger payload cap",
        ledger(),
        seal(
            &key(1),
            &Payload::Propose(GovernanceProposal {
                nonce: 6,
                title: "t".into(),
                description: "x".repeat(17_000),
                action: GovernanceAction::Text,
            }),
        ),
        Some(Err(R::TooLarge)),
    ));
    v.push(case(
        "reject-evidence-identical",
        "evidence whose two messages are the same",
        ledger(),
        seal(&key(5), &evidence(EvidenceKind::WorkerBundle, &a, &a)),
        Some(Err(R::BadEvidence)),
    ));
    let c2 = Envelope::seal(&key(12), &network(), &bundle(2, Some(2.0), &[]));
    v.push(case(
        "reject-evidence-two-signers",
        "evidence from two different signers",
        ledger(),
        seal(&key(5), &evidence(EvidenceKind::WorkerBundle, &a, &c2)),
        Some(Err(R::BadEvidence)),
    ));
    let d = Envelope::seal(&w, &network(), &bundle(3, Some(2.0), &[]));
    v.push(case(
        "reject-evidence-two-slots",
        "evidence of two messages for different epochs",
        ledger(),
        seal(&key(5), &evidence(EvidenceKind::WorkerBundle, &a, &d)),
        Some(Err(R::BadEvidence)),
    ));
    v.push(case(
        "reject-zero-nonce",
        "nonce 0 is never valid",
        ledger(),
        seal(&key(1), &transfer(0, 2, 1)),
        Some(Err(R::ZeroNonce)),
    ));
    let mut bad_payload = codec::encode(&transfer(6, 2, 1));
    bad_payload[0] = 200;
    v.push(case(
        "reject-unknown-payload-kind",
        "a correctly signed payload of unknown kind",
        ledger(),
        seal_raw(&key(1), bad_payload),
        Some(Err(R::Malformed)),
    ));
    v.extend(commit_reveal_cases());
    v
}

/// Topic 1 under commit-reveal: commitments in the submission window `[S, S + 30 s)`, reveals
/// in the reveal phase `[S + 30 s, S + 50 s)` (epoch 2: S = 1 120 000).
fn commit_reveal_cases() -> Vec<Case> {
    use IgnoreReason as I;
    use RejectReason as R;
    let w = key(11);
    let cr_state = || {
        let mut st = base_state();
        st.topics.insert(
            1,
            chorus_protocol::topic::TopicSpec {
                reveal_window_ms: 20_000,
                ..spec()
            },
        );
        st
    };
    let Payload::WorkerBundle(b2) = bundle(2, Some(0.0031), &[12, 13]) else {
        unreachable!()
    };
    let salt = Hash32([9; 32]);
    let commit = |epoch, topic| {
        Payload::WorkerCommit(WorkerCommit {
            topic: TopicId(topic),
            epoch,
            commitment: commitment_of(&b2, &salt),
        })
    };
    let reveal = |inference: f64| {
        Payload::WorkerReveal(WorkerReveal {
            bundle: WorkerBundle {
                inference: Some(inference),
                ..b2.clone()
            },
            salt,
        })
    };
    let in_reveal_phase = 1_120_000 + 35_000;
    let mut v = vec![];
    let mut push = |name, description, channel, bytes, now_ms: Option<u64>, expect| {
        let mut c = case(name, description, channel, bytes, expect);
        c.state = cr_state();
        c.now_ms = now_ms.unwrap_or(NOW);
        v.push(c);
    };
    push(
        "accept-worker-commit",
        "a commitment inside the submission window of a commit-reveal topic",
        workers(1),
        seal(&w, &commit(2, 1)),
        None,
        None,
    );
    push(
        "accept-worker-reveal",
        "a reveal inside the reveal phase of a commit-reveal topic",
        workers(1),
        seal(&w, &reveal(0.0031)),
        Some(in_reveal_phase),
        None,
    );
    push(
        "ignore-plain-bundle-under-commit-reveal",
        "a plain bundle in a commit-reveal topic (anyone could copy it)",
        workers(1),
        seal(&w, &bundle(2, Some(0.0031), &[])),
        None,
        Some(Ok(I::WrongPhase)),
    );
    push(
        "ignore-reveal-during-submission",
        "a reveal before the submission window closed",
        workers(1),
        seal(&w, &reveal(0.0031)),
        None,
        Some(Ok(I::TooEarly)),
    );
    push(
        "ignore-reveal-after-phase",
        "a reveal after the reveal phase closed (and the clock-skew allowance)",
        workers(1),
        seal(&w, &reveal(0.0031)),
        Some(1_120_000 + 50_000 + 1_001),
        Some(Ok(I::TooLate)),
    );
    push(
        "ignore-commit-after-submission",
        "a commitment in the reveal phase",
        workers(1),
        seal(&w, &commit(2, 1)),
        Some(in_reveal_phase),
        Some(Ok(I::TooLate)),
    );
    push(
        "ignore-commit-without-commit-reveal",
        "a commitment in a topic without commit-reveal",
        workers(2),
        seal(&w, &commit(2, 2)),
        None,
        Some(Ok(I::WrongPhase)),
    );
    push(
        "reject-reveal-non-finite",
        "a reveal whose bundle holds a NaN",
        workers(1),
        seal(&w, &reveal(f64::NAN)),
        Some(in_reveal_phase),
        Some(Err(R::NonFinite)),
    );
    push(
        "reject-commit-wrong-channel",
        "a commitment on the reputer channel",
        reputers(1),
        seal(&w, &commit(2, 1)),
        None,
        Some(Err(R::WrongChannel)),
    );
    v
}

#[test]
fn checks_every_vector() {
    if std::env::var_os("CHORUS_BLESS").is_some() {
        let d = dir();
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        for (i, c) in cases().into_iter().enumerate() {
            let vec = Vector {
                name: c.name.into(),
                description: c.description.into(),
                channel: c.channel,
                now_ms: c.now_ms,
                state: c.state,
                bytes: hex::encode(&c.bytes),
                expect: c.expect.0.into(),
                reason: c.expect.1.into(),
            };
            let path = d.join(format!("{:03}-{}.json", i + 1, c.name));
            std::fs::write(path, serde_json::to_string_pretty(&vec).unwrap() + "\n").unwrap();
        }
    }
    let mut files: Vec<_> = std::fs::read_dir(dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(files.len() >= 40, "only {} vectors", files.len());
    let mut reject_reasons = BTreeSet::new();
    let mut outcomes = BTreeSet::new();
    for f in &files {
        let v: Vector = serde_json::from_str(&std::fs::read_to_string(f).unwrap()).unwrap();
        let state = v.state.index();
        let channel = Channel::parse(&v.channel).unwrap();
        let bytes = hex::decode(&v.bytes).unwrap();
        let verdict = validate(&bytes, &channel, v.now_ms, &state);
        assert_eq!(
            (verdict.outcome(), verdict.reason()),
            (v.expect.as_str(), v.reason.as_str()),
            "vector {}: {}",
            f.display(),
            v.description
        );
        if v.expect == "reject" {
            reject_reasons.insert(v.reason.clone());
        }
        outcomes.insert(v.expect.clone());
    }
    // Every reject path has at least one vector.
    let all = [
        "too_large",
        "malformed",
        "non_canonical",
        "wrong_network",
        "wrong_channel",
        "bad_signature",
        "non_finite",
        "empty_bundle",
        "too_many_elements",
        "unsorted",
        "invalid_topic",
        "fee_too_low",
        "zero_amount",
        "self_transfer",
        "invalid_proposal",
        "bad_evidence",
        "zero_nonce",
    ];
    for r in all {
        assert!(RejectReason::from_name(r).is_some());
        assert!(
            reject_reasons.contains(r),
            "no vector for reject reason {r}"
        );
    }
    assert_eq!(outcomes.len(), 3);
}

#[test]
fn accepted_messages_carry_their_payload_and_id() {
    let bytes = seal(&key(11), &bundle(2, Some(0.25), &[]));
    let Verdict::Accept(a) = validate(
        &bytes,
        &Channel::parse(&workers(1)).unwrap(),
        NOW,
        &base_state().index(),
    ) else {
        panic!("expected accept");
    };
    assert_eq!(a.id, Hash32::of(&bytes));
    assert!(
        matches!(a.payload, Payload::WorkerBundle(WorkerBundle { inference: Some(x), .. }) if x == 0.25)
    );
}
