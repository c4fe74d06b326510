//! Property tests: every wire type round-trips; arbitrary bytes never panic a decoder, the
//! genesis loader or the validator.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use chorus_protocol::codec::{self, DecodeError};
use chorus_protocol::envelope::Envelope;
use chorus_protocol::genesis::Genesis;
use chorus_protocol::ids::{Amount, Hash32, TopicId};
use chorus_protocol::keys::PublicKey;
use chorus_protocol::messages::*;
use chorus_protocol::validation::{Channel, ChannelKind, validate};
use proptest::prelude::*;

fn any_pk() -> impl Strategy<Value = PublicKey> {
    any::<u8>().prop_map(common::pk)
}

fn finite() -> impl Strategy<Value = f64> {
    prop_oneof![-1e6..1e6f64, Just(0.0), Just(-0.0), Just(f64::MIN_POSITIVE)]
}

fn any_f64() -> impl Strategy<Value = f64> {
    prop_oneof![finite(), Just(f64::NAN), Just(f64::INFINITY), any::<f64>()]
}

fn worker_values() -> impl Strategy<Value = Vec<WorkerValue>> {
    prop::collection::vec(
        (any_pk(), any_f64()).prop_map(|(worker, value)| WorkerValue { worker, value }),
        0..6,
    )
}

fn value_bundle() -> impl Strategy<Value = ValueBundle> {
    (
        any_f64(),
        prop::option::of(any_f64()),
        worker_values(),
        worker_values(),
        worker_values(),
        worker_values(),
        worker_values(),
        prop::collection::vec(
            (any_pk(), worker_values()).prop_map(|(forecaster, values)| {
                OneOutInfererForecasterValues { forecaster, values }
            }),
            0..3,
        ),
    )
        .prop_map(|(c, n, i, f, ooi, oof, oif, ooif)| ValueBundle {
            combined_value: c,
            naive_value: n,
            inferer_values: i,
            forecaster_values: f,
            one_out_inferer_values: ooi,
            one_out_forecaster_values: oof,
            one_in_forecaster_values: oif,
            one_out_inferer_forecaster_values: ooif,
        })
}

fn amount() -> impl Strategy<Value = Amount> {
    any::<u128>().prop_map(Amount)
}

fn payload() -> impl Strategy<Value = Payload> {
    let topic = any::<u64>().prop_map(TopicId);
    prop_oneof![
        (any::<u64>(), amount(), ".{0,40}", any_f64()).prop_map(|(nonce, fee, name, p)| {
            let mut spec = common::spec();
            spec.name = name;
            spec.p_norm = p;
            Payload::CreateTopic(CreateTopic { nonce, spec, fee })
        }),
        (any::<u64>(), topic.clone(), any::<bool>()).prop_map(|(nonce, topic, w)| {
            Payload::Register(Registration {
                nonce,
                topic,
                role: if w { Role::Worker } else { Role::Reputer },
            })
        }),
        (
            topic.clone(),
            any::<u64>(),
            prop::option::of(any_f64()),
            worker_values()
        )
            .prop_map(
                |(topic, epoch, inference, f)| Payload::WorkerBundle(WorkerBundle {
                    topic,
                    epoch,
                    inference,
                    forecasts: f
                        .into_iter()
                        .map(|v| ForecastElement {
                            inferer: v.worker,
                            value: v.value
                        })
                        .collect(),
                })
            ),
        (topic.clone(), any::<u64>(), any_f64(), value_bundle()).prop_map(
            |(topic, epoch, ground_truth, losses)| Payload::ReputerBundle(ReputerBundle {
                topic,
                epoch,
                ground_truth,
                losses
            })
        ),
        (any::<u64>(), any_pk(), amount())
            .prop_map(|(nonce, to, amount)| Payload::Transfer(Transfer { nonce, to, amount })),
        (any::<u64>(), topic.clone(), amount()).prop_map(|(nonce, topic, amount)| {
            Payload::FundTopic(FundTopic {
                nonce,
                topic,
                amount,
            })
        }),
        (any::<u64>(), topic.clone(), any_pk(), amount()).prop_map(
            |(nonce, topic, reputer, amount)| {
                Payload::Unstake(StakeChange {
                    nonce,
                    topic,
                    reputer,
                    amount,
                })
            }
        ),
        (any::<u64>(), amount())
            .prop_map(|(nonce, amount)| Payload::Bond(BondChange { nonce, amount })),
        (any::<u64>(), ".{0,20}", ".{0,20}", any_f64()).prop_map(
            |(nonce, title, description, x)| {
                Payload::Propose(GovernanceProposal {
                    nonce,
                    title,
                    description,
                    action: GovernanceAction::SetParams {
                        changes: vec![("learning_rate".into(), ParamValue::Real(x))],
                    },
                })
            }
        ),
        (any::<u64>(), any::<[u8; 32]>()).prop_map(|(nonce, h)| Payload::Vote(GovernanceVote {
            nonce,
            proposal: Hash32(h),
            option: VoteOption::Abstain,
        })),
        (
            prop::collection::vec(any::<u8>(), 0..64),
            prop::collection::vec(any::<u8>(), 0..64)
        )
            .prop_map(|(first, second)| Payload::Evidence(Evidence {
                kind: EvidenceKind::LedgerNonce,
                first,
                second
            })),
    ]
}

/// Bit-level equality (NaN == NaN with the same bits).
fn same(a: &Payload, b: &Payload) -> bool {
    codec::encode(a) == codec::encode(b)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn payload_round_trips(p in payload()) {
        let bytes = codec::encode(&p);
        let back: Payload = codec::decode(&bytes).unwrap();
        prop_assert!(same(&p, &back));
    }

    #[test]
    fn envelope_round_trips(p in payload(), seed in any::<u8>()) {
        let env = Envelope::seal(&common::key(seed), &common::network(), &p);
        let back = Envelope::from_bytes(&env.to_bytes()).unwrap();
        prop_assert_eq!(&back, &env);
        prop_assert!(same(&back.open(&common::network()).unwrap(), &p));
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        let _ = codec::decode::<Payload>(&bytes);
        let _ = Envelope::from_bytes(&bytes);
        let view = common::StaticView::default().index();
        for kind in [ChannelKind::Ledger, ChannelKind::Workers(TopicId(1)), ChannelKind::Reputers(TopicId(1))] {
            let _ = validate(&bytes, &Channel { network: common::network(), kind }, 1_000_000, &view);
        }
    }

    #[test]
    fn mutated_envelopes_never_panic_and_never_verify_differently(p in payload(), pos in any::<usize>(), bit in 0u8..8) {
        let env = Envelope::seal(&common::key(1), &common::network(), &p);
        let mut bytes = env.to_bytes();
        let i = pos % bytes.len();
        bytes[i] ^= 1 << bit;
        if let Ok(m) = Envelope::from_bytes(&bytes) {
            // Any change to a decodable envelope breaks its signature.
            prop_assert!(m.open(&common::network()).is_err());
        }
    }

    #[test]
    fn arbitrary_genesis_text_never_panics(text in ".{0,300}") {
        let _ = Genesis::from_toml_str(&text);
    }

    #[test]
    fn truncation_is_an_error(p in payload(), cut in any::<usize>()) {
        let bytes = codec::encode(&p);
        let cut = cut % bytes.len();
        let r = codec::decode::<Payload>(&bytes[..cut]);
        prop_assert!(r.is_err());
        let too_large = matches!(r, Err(DecodeError::TooLarge { .. }));
        prop_assert!(!too_large);
    }
}
