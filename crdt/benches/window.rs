//! Validate + apply of one entry into a worker window already holding 100 or 1000 entries:
//! from a local envelope (`insert_envelope` + `flush`) and from a peer's raw change
//! (`receive_change`, which rebuilds the change from the envelope and compares bytes, then
//! `flush`), one at a time and in batches of 64 (one `flush` per batch, as the node's tick
//! does). Each iteration starts from a fresh copy of the window (made, and dropped, outside
//! the timing).
//!
//! `cargo bench -p chorus-crdt --bench window`

#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;

use chorus_crdt::window::{Phase, Window, WindowKey};
use chorus_protocol::envelope::Envelope;
use chorus_protocol::ids::{Hash32, TopicId};
use chorus_protocol::keys::{Keypair, PublicKey};
use chorus_protocol::messages::{ForecastElement, Payload, WorkerBundle};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};

const NETWORK: Hash32 = Hash32([7; 32]);
const BATCH: usize = 64;

fn key() -> WindowKey {
    WindowKey::Topic {
        topic: TopicId(1),
        epoch: 9,
        phase: Phase::Workers,
    }
}

/// Worker `i`'s bundle (one inference, three forecast elements) and its envelope.
fn sealed(i: u32, inferers: &[PublicKey]) -> (Envelope, Payload) {
    let mut seed = [0u8; 32];
    seed[..4].copy_from_slice(&i.to_le_bytes());
    seed[31] = 1;
    let payload = Payload::WorkerBundle(WorkerBundle {
        topic: TopicId(1),
        epoch: 9,
        inference: Some(1.0 + f64::from(i) * 1e-4),
        forecasts: inferers
            .iter()
            .map(|k| ForecastElement {
                inferer: *k,
                value: -3.0,
            })
            .collect(),
    });
    (
        Envelope::seal(&Keypair::from_seed(&seed), &NETWORK, &payload),
        payload,
    )
}

/// A window holding `n` entries, and `BATCH` more envelopes with their raw changes.
fn fixture(n: u32) -> (Window, Vec<(Envelope, Payload)>, Vec<Vec<u8>>) {
    let inferers: Vec<PublicKey> = (0..3)
        .map(|i| Keypair::from_seed(&[i + 100; 32]).public())
        .collect();
    let window = Window::rebuild(key(), NETWORK, (0..n).map(|i| sealed(i, &inferers))).unwrap();
    let more: Vec<(Envelope, Payload)> = (n..n + BATCH as u32)
        .map(|i| sealed(i, &inferers))
        .collect();
    let source = Window::rebuild(key(), NETWORK, more.clone()).unwrap();
    let raw = source
        .entries()
        .map(|e| e.change.raw_bytes().to_vec())
        .collect();
    (window, more, raw)
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("window");
    g.sample_size(20);
    for n in [100u32, 1000] {
        let (window, more, raw) = fixture(n);
        g.bench_function(format!("envelope one, window of {n}"), |b| {
            b.iter_batched(
                || (window.clone(), more[0].clone()),
                |(mut w, (env, payload))| {
                    w.insert_envelope(env, payload).unwrap();
                    black_box(w.flush());
                    w
                },
                BatchSize::LargeInput,
            )
        });
        g.bench_function(format!("change one, window of {n}"), |b| {
            b.iter_batched(
                || window.clone(),
                |mut w| {
                    w.receive_change(&raw[0]).unwrap();
                    black_box(w.flush());
                    w
                },
                BatchSize::LargeInput,
            )
        });
        g.bench_function(format!("change batch of {BATCH}, window of {n}"), |b| {
            b.iter_batched(
                || window.clone(),
                |mut w| {
                    for r in &raw {
                        w.receive_change(r).unwrap();
                    }
                    black_box(w.flush());
                    w
                },
                BatchSize::LargeInput,
            )
        });
        g.bench_function(format!("change {BATCH} one by one, window of {n}"), |b| {
            b.iter_batched(
                || window.clone(),
                |mut w| {
                    for r in &raw {
                        w.receive_change(r).unwrap();
                        black_box(w.flush());
                    }
                    w
                },
                BatchSize::LargeInput,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
