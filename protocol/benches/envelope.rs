//! Envelope ingest cost against raw ed25519, measured in one run as ratios.
//!
//! `cargo bench -p chorus-protocol --bench envelope`
//!
//! Prints operations per second for: raw `verify_strict` of a 64-byte-class message, envelope
//! decode + verify + payload decode (what validation spends per message), gossip `validate` on
//! an accepted worker bundle, and batch verification of 64 envelopes; then each as a ratio to
//! raw `verify_strict`. Rounds alternate between the measurements so that machine noise hits
//! all of them alike; the median round is reported.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use chorus_protocol::codec;
use chorus_protocol::envelope::{Envelope, signing_bytes, verify_batch};
use chorus_protocol::ids::{Amount, Hash32, MessageId, NetworkId, TopicId};
use chorus_protocol::keys::{Keypair, PublicKey};
use chorus_protocol::messages::{ForecastElement, Payload, Role, WorkerBundle};
use chorus_protocol::params::ModuleParams;
use chorus_protocol::topic::{LossMethod, TopicSpec};
use chorus_protocol::validation::{Channel, ChannelKind, Slot, ValidationView, validate};

const ROUNDS: usize = 15;
const ROUND_TIME: Duration = Duration::from_millis(200);

struct View {
    params: ModuleParams,
    spec: TopicSpec,
}

impl ValidationView for View {
    fn network(&self) -> NetworkId {
        Hash32([7; 32])
    }
    fn params(&self) -> &ModuleParams {
        &self.params
    }
    fn topic(&self, _: TopicId) -> Option<&TopicSpec> {
        Some(&self.spec)
    }
    fn is_registered(&self, _: TopicId, _: Role, _: &PublicKey) -> bool {
        true
    }
    fn reputer_stake(&self, _: TopicId, _: &PublicKey) -> Amount {
        Amount(u128::MAX)
    }
    fn seen(&self, _: &Slot) -> Option<MessageId> {
        None
    }
    fn last_nonce(&self, _: &PublicKey) -> u64 {
        0
    }
    fn consensus_evidence_ok(&self, _: &chorus_protocol::messages::Evidence) -> bool {
        true
    }
    fn funds(&self, _: &PublicKey) -> chorus_protocol::validation::Funds {
        chorus_protocol::validation::Funds {
            liquid: Amount(u128::MAX),
            locked: Amount::ZERO,
        }
    }
}

/// Run `f` repeatedly for about `ROUND_TIME`; return operations per second.
fn rate(ops_per_call: usize, mut f: impl FnMut()) -> f64 {
    let start = Instant::now();
    let mut calls = 0usize;
    while start.elapsed() < ROUND_TIME {
        f();
        calls += 1;
    }
    (calls * ops_per_call) as f64 / start.elapsed().as_secs_f64()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let network = Hash32([7; 32]);
    let keys: Vec<Keypair> = (0..64u8)
        .map(|i| Keypair::from_seed(&[i + 1; 32]))
        .collect();
    let mut inferers: Vec<PublicKey> = keys[..3].iter().map(Keypair::public).collect();
    inferers.sort();
    let payload = Payload::WorkerBundle(WorkerBundle {
        topic: TopicId(1),
        epoch: 0,
        inference: Some(0.00123),
        forecasts: inferers
            .iter()
            .map(|k| ForecastElement {
                inferer: *k,
                value: -3.2,
            })
            .collect(),
    });
    let envs: Vec<Envelope> = keys
        .iter()
        .map(|k| Envelope::seal(k, &network, &payload))
        .collect();
    let bytes: Vec<Vec<u8>> = envs.iter().map(Envelope::to_bytes).collect();
    let env_refs: Vec<&Envelope> = envs.iter().collect();
    let msg = signing_bytes(&network, &envs[0].payload);
    let view = View {
        params: ModuleParams::default(),
        spec: TopicSpec::new("bench", LossMethod::Mse, 0, 60_000, 60_000, 60_000),
    };
    let channel = Channel {
        network,
        kind: ChannelKind::Workers(TopicId(1)),
    };

    let (mut raw, mut open, mut val, mut batch, mut decode) =
        (vec![], vec![], vec![], vec![], vec![]);
    let mut i = 0usize;
    for _ in 0..ROUNDS {
        raw.push(rate(1, || {
            envs[0]
                .signer
                .verify_strict(black_box(&msg), &envs[0].signature)
                .unwrap();
        }));
        open.push(rate(1, || {
            i = (i + 1) % bytes.len();
            let env = Envelope::from_bytes(black_box(&bytes[i])).unwrap();
            black_box(env.open(&network).unwrap());
        }));
        val.push(rate(1, || {
            i = (i + 1) % bytes.len();
            let v = validate(black_box(&bytes[i]), &channel, 1_000, &view);
            assert_eq!(v.outcome(), "accept");
        }));
        batch.push(rate(64, || {
            verify_batch(&network, black_box(&env_refs)).unwrap();
        }));
        decode.push(rate(1, || {
            i = (i + 1) % bytes.len();
            let env = Envelope::from_bytes(black_box(&bytes[i])).unwrap();
            black_box(codec::decode::<Payload>(&env.payload).unwrap());
        }));
    }
    let (raw, open, val, batch, decode) = (
        median(raw),
        median(open),
        median(val),
        median(batch),
        median(decode),
    );
    println!(
        "envelope bench ({ROUNDS} alternating rounds of {ROUND_TIME:?}, median; {} B envelopes)",
        bytes[0].len()
    );
    println!("  raw ed25519 verify_strict      {raw:>10.0} /s   1.00x");
    println!(
        "  envelope decode only           {decode:>10.0} /s  {:>5.2}x",
        decode / raw
    );
    println!(
        "  envelope decode+verify+decode  {open:>10.0} /s  {:>5.2}x",
        open / raw
    );
    println!(
        "  gossip validate (accept path)  {val:>10.0} /s  {:>5.2}x",
        val / raw
    );
    println!(
        "  batch verify, 64 envelopes     {batch:>10.0} /s  {:>5.2}x",
        batch / raw
    );
}
