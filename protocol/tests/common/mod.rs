//! Shared fixtures for the protocol tests: deterministic keys, a sample of every payload kind,
//! and a serializable validation view.

#![allow(dead_code, clippy::unwrap_used)]

use std::collections::BTreeMap;

use chorus_protocol::ids::{Amount, Hash32, MessageId, NetworkId, TopicId};
use chorus_protocol::keys::{Keypair, PublicKey};
use chorus_protocol::messages::*;
use chorus_protocol::params::ModuleParams;
use chorus_protocol::topic::{LossMethod, TopicSpec};
use chorus_protocol::validation::{Funds, Slot, ValidationView};
use serde::{Deserialize, Serialize};

/// Deterministic keypair number `i`.
pub fn key(i: u8) -> Keypair {
    Keypair::from_seed(&[i; 32])
}

/// A public key with a given seed.
pub fn pk(i: u8) -> PublicKey {
    key(i).public()
}

/// The test network id.
pub fn network() -> NetworkId {
    Hash32([0x42; 32])
}

/// A topic spec starting at t = 1_000_000 ms with 60 s epochs.
pub fn spec() -> TopicSpec {
    TopicSpec {
        metadata: "next bar ln(high/low)".into(),
        ..TopicSpec::new(
            "EUR/USD 1h range",
            LossMethod::Mse,
            1_000_000,
            60_000,
            30_000,
            60_000,
        )
    }
}

/// Workers sorted by key.
pub fn sorted_pks(seeds: &[u8]) -> Vec<PublicKey> {
    let mut v: Vec<PublicKey> = seeds.iter().map(|&s| pk(s)).collect();
    v.sort();
    v
}

/// A full loss bundle over the given inferers and forecasters.
pub fn value_bundle(inferers: &[PublicKey], forecasters: &[PublicKey]) -> ValueBundle {
    let wv = |ks: &[PublicKey], base: f64| -> Vec<WorkerValue> {
        ks.iter()
            .enumerate()
            .map(|(i, k)| WorkerValue {
                worker: *k,
                value: base - i as f64 * 0.125,
            })
            .collect()
    };
    ValueBundle {
        combined_value: -3.5,
        naive_value: Some(-3.25),
        inferer_values: wv(inferers, -2.0),
        forecaster_values: wv(forecasters, -3.0),
        one_out_inferer_values: wv(inferers, -3.4),
        one_out_forecaster_values: wv(forecasters, -3.45),
        one_in_forecaster_values: wv(forecasters, -3.3),
        one_out_inferer_forecaster_values: forecasters
            .iter()
            .map(|f| OneOutInfererForecasterValues {
                forecaster: *f,
                values: wv(inferers, -2.9),
            })
            .collect(),
    }
}

/// One sample of every payload kind, with a stable name.
pub fn sample_payloads() -> Vec<(&'static str, Payload)> {
    let inferers = sorted_pks(&[11, 12, 13]);
    let forecasters = sorted_pks(&[14]);
    vec![
        (
            "create_topic",
            Payload::CreateTopic(CreateTopic {
                nonce: 1,
                spec: spec(),
                fee: Amount(75_000),
            }),
        ),
        (
            "register",
            Payload::Register(Registration {
                nonce: 2,
                topic: TopicId(1),
                role: Role::Worker,
            }),
        ),
        (
            "unregister",
            Payload::Unregister(Registration {
                nonce: 3,
                topic: TopicId(1),
                role: Role::Reputer,
            }),
        ),
        (
            "worker_bundle",
            Payload::WorkerBundle(WorkerBundle {
                topic: TopicId(1),
                epoch: 7,
                inference: Some(0.0012345),
                forecasts: inferers
                    .iter()
                    .map(|k| ForecastElement {
                        inferer: *k,
                        value: -4.5,
                    })
                    .collect(),
            }),
        ),
        (
            "reputer_bundle",
            Payload::ReputerBundle(ReputerBundle {
                topic: TopicId(1),
                epoch: 7,
                ground_truth: 0.0011,
                losses: value_bundle(&inferers, &forecasters),
            }),
        ),
        (
            "transfer",
            Payload::Transfer(Transfer {
                nonce: 4,
                to: pk(2),
                amount: Amount(u128::MAX),
            }),
        ),
        (
            "fund_topic",
            Payload::FundTopic(FundTopic {
                nonce: 5,
                topic: TopicId(1),
                amount: Amount(1_000),
            }),
        ),
        (
            "stake",
            Payload::Stake(StakeChange {
                nonce: 6,
                topic: TopicId(1),
                reputer: pk(3),
                amount: Amount(10_000),
            }),
        ),
        (
            "unstake",
            Payload::Unstake(StakeChange {
                nonce: 7,
                topic: TopicId(1),
                reputer: pk(3),
                amount: Amount(1),
            }),
        ),
        (
            "bond",
            Payload::Bond(BondChange {
                nonce: 8,
                amount: Amount(5_000_000),
            }),
        ),
        (
            "unbond",
            Payload::Unbond(BondChange {
                nonce: 9,
                amount: Amount(1),
            }),
        ),
        (
            "propose",
            Payload::Propose(GovernanceProposal {
                nonce: 10,
                title: "lower alpha".into(),
                description: "slower regrets".into(),
                action: GovernanceAction::UpdateTopic {
                    topic: TopicId(1),
                    changes: vec![("alpha_regret".into(), ParamValue::Real(0.01))],
                },
            }),
        ),
        (
            "vote",
            Payload::Vote(GovernanceVote {
                nonce: 11,
                proposal: Hash32([9; 32]),
                option: VoteOption::Yes,
            }),
        ),
        (
            "evidence",
            Payload::Evidence(Evidence {
                kind: EvidenceKind::ConsensusVote,
                first: vec![1, 2, 3],
                second: vec![1, 2, 4],
            }),
        ),
        (
            "set_owner",
            Payload::SetOwner(SetOwner {
                nonce: 12,
                actor: key(3).public(),
                owner: key(4).public(),
            }),
        ),
    ]
}

/// A validation view stored as plain data (JSON in the vector files).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct StaticView {
    /// Topics by id.
    pub topics: BTreeMap<u64, TopicSpec>,
    /// (topic, role, key) registrations.
    pub registrations: Vec<(u64, Role, PublicKey)>,
    /// (topic, reputer, stake).
    pub stakes: Vec<(u64, PublicKey, Amount)>,
    /// Envelopes already held: (envelope hex) — their slots are computed on load.
    pub seen_envelopes: Vec<String>,
    /// (author, last finalized nonce).
    pub nonces: Vec<(PublicKey, u64)>,
    /// (account, liquid balance, locked amount); absent accounts hold nothing.
    #[serde(default)]
    pub funds: Vec<(PublicKey, Amount, Amount)>,
    /// Parameter overrides; defaults otherwise.
    #[serde(default)]
    pub params: Option<ModuleParams>,
    #[serde(skip)]
    pub seen: BTreeMap<Slot, MessageId>,
    #[serde(skip)]
    pub default_params: ModuleParams,
}

impl StaticView {
    /// Fill the derived index of seen slots.
    pub fn index(mut self) -> Self {
        for h in &self.seen_envelopes {
            let bytes = hex::decode(h).unwrap();
            let env = chorus_protocol::Envelope::from_bytes(&bytes).unwrap();
            let payload = env.payload_unverified().unwrap();
            self.seen
                .insert(Slot::of(env.signer, &payload), Hash32::of(&bytes));
        }
        self.default_params = ModuleParams::default();
        self
    }
}

impl ValidationView for StaticView {
    fn network(&self) -> NetworkId {
        network()
    }
    fn params(&self) -> &ModuleParams {
        self.params.as_ref().unwrap_or(&self.default_params)
    }
    fn topic(&self, id: TopicId) -> Option<&TopicSpec> {
        self.topics.get(&id.0)
    }
    fn is_registered(&self, topic: TopicId, role: Role, key: &PublicKey) -> bool {
        self.registrations
            .iter()
            .any(|(t, r, k)| *t == topic.0 && *r == role && k == key)
    }
    fn reputer_stake(&self, topic: TopicId, key: &PublicKey) -> Amount {
        self.stakes
            .iter()
            .find(|(t, k, _)| *t == topic.0 && k == key)
            .map(|s| s.2)
            .unwrap_or(Amount::ZERO)
    }
    fn seen(&self, slot: &Slot) -> Option<MessageId> {
        self.seen.get(slot).copied()
    }
    fn consensus_evidence_ok(&self, _: &chorus_protocol::messages::Evidence) -> bool {
        // The vectors carry no consensus votes (this crate cannot decode them).
        false
    }
    fn funds(&self, key: &PublicKey) -> Funds {
        self.funds
            .iter()
            .find(|(k, _, _)| k == key)
            .map(|(_, liquid, locked)| Funds {
                liquid: *liquid,
                locked: *locked,
            })
            .unwrap_or_default()
    }
    fn last_nonce(&self, author: &PublicKey) -> u64 {
        self.nonces
            .iter()
            .find(|(k, _)| k == author)
            .map(|n| n.1)
            .unwrap_or(0)
    }
}
