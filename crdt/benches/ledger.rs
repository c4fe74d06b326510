//! Ledger apply of one checkpoint period with 10 topics × 100 workers × 10 reputers: every
//! topic finalizes a worker window (100 bundles, 10 of them with 12 forecast elements) and a
//! reputer window (10 loss bundles over the whole value bundle of an earlier epoch), so the
//! period synthesizes 10 network inferences and settles 10 epochs (regrets, reputer consensus,
//! scores, rewards).
//!
//! `cargo bench -p chorus-crdt --bench ledger`

#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;

use chorus_crdt::ledger::{HeightInput, Ledger, NoConsensusEvidence, SignedEntry};
use chorus_crdt::replica::duties::loss_bundle;
use chorus_crdt::window::{Phase, WindowKey};
use chorus_protocol::envelope::Envelope;
use chorus_protocol::genesis::{
    Genesis, GenesisBalance, GenesisRegistration, GenesisStake, GenesisTopic, GenesisValidator,
    Token,
};
use chorus_protocol::ids::{Amount, TopicId};
use chorus_protocol::keys::{Keypair, PublicKey};
use chorus_protocol::messages::{ForecastElement, Payload, ReputerBundle, Role, WorkerBundle};
use chorus_protocol::params::ModuleParams;
use chorus_protocol::topic::{LossMethod, TopicSpec};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};

const TOPICS: u64 = 10;
const WORKERS: u32 = 100;
const FORECASTERS: u32 = 10;
const REPUTERS: u32 = 10;

fn key(tag: u8, i: u32) -> Keypair {
    let mut seed = [tag; 32];
    seed[..4].copy_from_slice(&i.to_le_bytes());
    Keypair::from_seed(&seed)
}

fn spec() -> TopicSpec {
    TopicSpec::new("bench", LossMethod::Mse, 0, 1_000, 500, 1_000)
}

struct World {
    ledger: Ledger,
    workers: Vec<Keypair>,
    reputers: Vec<Keypair>,
}

fn world() -> World {
    let workers: Vec<Keypair> = (0..WORKERS).map(|i| key(1, i)).collect();
    let reputers: Vec<Keypair> = (0..REPUTERS).map(|i| key(2, i)).collect();
    let validator = key(3, 0);
    let mut g = Genesis {
        network: "ledger-bench".into(),
        genesis_time_ms: 0,
        token: Token {
            symbol: "CHR".into(),
            decimals: 0,
        },
        balances: vec![GenesisBalance {
            address: validator.public(),
            amount: Amount(1_000_000),
        }],
        validators: vec![GenesisValidator {
            address: validator.public(),
            bond: Amount(1_000),
            name: "v".into(),
        }],
        reputer_stakes: vec![],
        registrations: vec![],
        params: ModuleParams {
            checkpoint_period_ms: 1_000,
            min_epoch_length_ms: 100,
            emission_per_period: Amount(1_000_000_000),
            max_clock_skew_ms: 0,
            min_topic_weight: 0.0,
            ..ModuleParams::default()
        },
        topics: vec![],
    };
    for k in workers.iter().chain(&reputers) {
        g.balances.push(GenesisBalance {
            address: k.public(),
            amount: Amount(1_000_000),
        });
    }
    for t in 1..=TOPICS {
        let topic = TopicId(t);
        g.topics.push(GenesisTopic {
            id: topic,
            creator: validator.public(),
            spec: spec(),
            fee_revenue: Amount(75_000),
        });
        for w in &workers {
            g.registrations.push(GenesisRegistration {
                topic,
                address: w.public(),
                role: Role::Worker,
            });
        }
        for (i, r) in reputers.iter().enumerate() {
            g.registrations.push(GenesisRegistration {
                topic,
                address: r.public(),
                role: Role::Reputer,
            });
            g.reputer_stakes.push(GenesisStake {
                topic,
                reputer: r.public(),
                delegator: None,
                amount: Amount(10_000 + 1_000 * i as u128),
            });
        }
    }
    World {
        ledger: Ledger::from_genesis(&g).unwrap(),
        workers,
        reputers,
    }
}

fn truth(topic: TopicId, e: u64) -> f64 {
    1.0 + ((e + topic.0) as f64 * 0.7).sin() * 0.1
}

fn signed(l: &Ledger, k: &Keypair, payload: Payload) -> SignedEntry {
    let env = Envelope::seal(k, &l.network, &payload);
    SignedEntry {
        author: k.public(),
        id: env.id(),
        payload,
    }
}

/// Worker i errs by (i + 1)·0.001; the first FORECASTERS also forecast 12 inferers.
fn worker_entries(w: &World, topic: TopicId, e: u64) -> Vec<SignedEntry> {
    let mut inferers: Vec<PublicKey> = w.workers.iter().map(Keypair::public).collect();
    inferers.sort();
    w.workers
        .iter()
        .enumerate()
        .map(|(i, k)| {
            let forecasts = if (i as u32) < FORECASTERS {
                inferers
                    .iter()
                    .skip(i)
                    .take(12)
                    .enumerate()
                    .map(|(j, inferer)| ForecastElement {
                        inferer: *inferer,
                        value: -3.0 - j as f64 * 0.1,
                    })
                    .collect()
            } else {
                vec![]
            };
            signed(
                &w.ledger,
                k,
                Payload::WorkerBundle(WorkerBundle {
                    topic,
                    epoch: e,
                    inference: Some(truth(topic, e) + (i as f64 + 1.0) * 0.001),
                    forecasts,
                }),
            )
        })
        .collect()
}

/// Every reputer reports the log10 squared error of every value of the finalized bundle (the
/// node's own [`loss_bundle`]).
fn reputer_entries(w: &World, topic: TopicId, e: u64) -> Vec<SignedEntry> {
    let Some(b) = w.ledger.topics[&topic]
        .mechanism
        .pending
        .get(&e)
        .and_then(|r| r.bundle.as_ref())
    else {
        return vec![];
    };
    let y = truth(topic, e);
    let losses = loss_bundle(b, y, &LossMethod::Mse).unwrap();
    w.reputers
        .iter()
        .map(|k| {
            signed(
                &w.ledger,
                k,
                Payload::ReputerBundle(ReputerBundle {
                    topic,
                    epoch: e,
                    ground_truth: y,
                    losses: losses.clone(),
                }),
            )
        })
        .collect()
}

/// The content of the next period: every window due, filled.
fn next_input(w: &World) -> HeightInput {
    let mut input = HeightInput::default();
    for key in w.ledger.windows_due() {
        if let WindowKey::Topic {
            topic,
            epoch,
            phase,
        } = key
        {
            let entries = match phase {
                Phase::Workers => worker_entries(w, topic, epoch),
                Phase::Reputers => reputer_entries(w, topic, epoch),
            };
            input.windows.insert(key, entries);
        }
    }
    input
}

fn bench(c: &mut Criterion) {
    let mut w = world();
    // Warm up until every period finalizes a worker and a reputer window per topic and the
    // mechanism has history (regrets, EMA scores, previous network losses).
    for h in 0..8 {
        let input = next_input(&w);
        w.ledger.apply(h, &input, &NoConsensusEvidence).unwrap();
    }
    let h = w.ledger.next_height;
    let input = next_input(&w);
    let (workers, reputers) = input.windows.iter().fold((0, 0), |(a, b), (k, v)| match k {
        WindowKey::Topic {
            phase: Phase::Workers,
            ..
        } => (a + v.len(), b),
        _ => (a, b + v.len()),
    });
    assert_eq!(workers, (TOPICS * u64::from(WORKERS)) as usize);
    assert_eq!(reputers, (TOPICS * u64::from(REPUTERS)) as usize);
    let mut g = c.benchmark_group("ledger");
    g.sample_size(10);
    g.bench_function(
        "apply one period, 10 topics × 100 workers × 10 reputers",
        |b| {
            b.iter_batched(
                || w.ledger.clone(),
                |mut l| {
                    black_box(l.apply(h, &input, &NoConsensusEvidence).unwrap());
                    l
                },
                BatchSize::LargeInput,
            )
        },
    );
    g.bench_function("root of that ledger", |b| {
        b.iter(|| black_box(w.ledger.root()))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
