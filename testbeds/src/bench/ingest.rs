//! Ingest pipeline vs raw ed25519 verification, in alternating rounds of one run.
//!
//! The pipeline is what a node does with a gossiped worker bundle: the replica's
//! `Input::Gossip` (decode, size and canonical checks, window, registration, uniqueness,
//! signature, semantics), the resulting `Persist` written to a redb store in one
//! write-behind transaction per tick-sized batch (as the actor does), and the replica's
//! `Tick` that applies the batch to the window's automerge document (merge). The reference is
//! `verify_strict` of the same envelopes' signatures, one by one. Each round uses a fresh
//! replica and store (setup not timed); the figure is the median of the rounds.

use std::time::Instant;

use anyhow::{Context, bail};
use chorus_crdt::replica::{Effect, Input, Replica, ReplicaConfig, Restore};
use chorus_node::localnet::node_key;
use chorus_node::store::ops;
use chorus_protocol::envelope::{Envelope, signing_bytes};
use chorus_protocol::genesis::{Genesis, GenesisBalance, GenesisRegistration};
use chorus_protocol::ids::{Amount, TopicId};
use chorus_protocol::keys::Keypair;
use chorus_protocol::messages::{ForecastElement, Payload, Role, WorkerBundle};
use chorus_protocol::validation::ChannelKind;

use crate::procs::plan::NetSpec;

/// Envelopes per tick-sized batch (a 50 ms tick at ~1 300 envelopes/s).
const BATCH: usize = 64;

/// What one run measured.
#[derive(Debug, Clone)]
pub struct IngestResult {
    /// Envelopes per round.
    pub envelopes: usize,
    /// Envelope size (bytes).
    pub envelope_bytes: usize,
    /// Median raw `verify_strict` per second, from the envelope's key bytes (decompression
    /// included, as for a verifier without a key cache).
    pub raw_verify_per_s: f64,
    /// Median raw `verify_strict` per second with every key decompressed beforehand.
    pub raw_verify_parsed_per_s: f64,
    /// Median pipeline envelopes per second.
    pub pipeline_per_s: f64,
    /// Median pipeline without the store (validate + merge only).
    pub no_store_per_s: f64,
    /// Batch verification of the same envelopes, per second.
    pub batch_verify_per_s: f64,
    /// Rounds.
    pub rounds: usize,
    /// Share of the pipeline's time in `Input::Gossip` (decode, validate, verify, window
    /// insert).
    pub share_validate: f64,
    /// Share in the store writes.
    pub share_store: f64,
    /// Share in `Input::Tick` (the batch applied to the automerge document).
    pub share_merge: f64,
}

impl IngestResult {
    /// Pipeline / raw verify.
    pub fn ratio(&self) -> f64 {
        self.pipeline_per_s / self.raw_verify_per_s
    }
}

struct Fixture {
    genesis: Genesis,
    node: Keypair,
    envelopes: Vec<Vec<u8>>,
    now_ms: u64,
}

/// A genesis with `workers` registered, funded workers in topic 1 and their bundles for one
/// epoch (one inference and three forecast elements each, like the protocol's envelope bench).
fn fixture(workers: usize) -> Fixture {
    let mut spec = NetSpec::new("chorus-bench-ingest", 1, std::time::Duration::ZERO);
    spec.start_ms = 1_700_000_000_000;
    spec.workers = 0;
    spec.reputers = 0;
    let plan = spec.plan(std::path::Path::new("unused.csv"), "unused".into());
    let mut genesis = plan.genesis();
    let keys: Vec<Keypair> = (0..workers).map(|i| node_key(0xBE7C, i)).collect();
    for k in &keys {
        genesis.balances.push(GenesisBalance {
            address: k.public(),
            amount: Amount(1_000_000),
        });
        genesis.registrations.push(GenesisRegistration {
            topic: TopicId(1),
            address: k.public(),
            role: Role::Worker,
        });
    }
    let network = genesis.network_id();
    let epoch = 3;
    let topic = spec.topic_spec(0);
    let now_ms = topic.worker_window(epoch).0 + 10;
    let envelopes = keys
        .iter()
        .enumerate()
        .map(|(i, k)| {
            let mut forecasts: Vec<ForecastElement> = (1..=3)
                .map(|j| ForecastElement {
                    inferer: keys[(i + j) % keys.len()].public(),
                    value: -2.0 - j as f64 / 10.0,
                })
                .filter(|f| f.inferer != k.public())
                .collect();
            forecasts.sort_by_key(|f| f.inferer);
            let payload = Payload::WorkerBundle(WorkerBundle {
                topic: TopicId(1),
                epoch,
                inference: Some(0.001 + i as f64 * 1e-6),
                forecasts,
            });
            Envelope::seal(k, &network, &payload).to_bytes()
        })
        .collect();
    Fixture {
        genesis,
        node: node_key(spec.seed, 0),
        envelopes,
        now_ms,
    }
}

fn raw_verify(f: &Fixture, envs: &[Envelope]) -> anyhow::Result<f64> {
    let network = f.genesis.network_id();
    let msgs: Vec<Vec<u8>> = envs
        .iter()
        .map(|e| signing_bytes(&network, &e.payload))
        .collect();
    let t = Instant::now();
    for (e, m) in envs.iter().zip(&msgs) {
        e.signer
            .verify_strict(m, &e.signature)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    Ok(envs.len() as f64 / t.elapsed().as_secs_f64())
}

fn raw_verify_parsed(f: &Fixture, envs: &[Envelope]) -> anyhow::Result<f64> {
    let network = f.genesis.network_id();
    let items: Vec<(chorus_protocol::keys::VerifyingKey, Vec<u8>)> = envs
        .iter()
        .map(|e| {
            Ok((
                e.signer.verifying_key()?,
                signing_bytes(&network, &e.payload),
            ))
        })
        .collect::<Result<_, chorus_protocol::keys::KeyError>>()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let t = Instant::now();
    for ((key, m), e) in items.iter().zip(envs) {
        chorus_protocol::keys::verify_strict_with(key, m, &e.signature)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    Ok(envs.len() as f64 / t.elapsed().as_secs_f64())
}

fn batch_verify(f: &Fixture, envs: &[Envelope]) -> anyhow::Result<f64> {
    let network = f.genesis.network_id();
    let t = Instant::now();
    for chunk in envs.chunks(BATCH) {
        let refs: Vec<&Envelope> = chunk.iter().collect();
        chorus_protocol::envelope::verify_batch(&network, &refs)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    Ok(envs.len() as f64 / t.elapsed().as_secs_f64())
}

/// Where one pipeline round spent its time (seconds).
#[derive(Debug, Clone, Copy, Default)]
struct Split {
    gossip: f64,
    store: f64,
    tick: f64,
}

fn pipeline(f: &Fixture, store: Option<&redb::Database>) -> anyhow::Result<(f64, Split)> {
    let (mut replica, _) = Replica::new(
        &f.genesis,
        f.node.clone(),
        ReplicaConfig::default(),
        Restore::default(),
        f.now_ms,
    )?;
    let from = node_key(0xF00D, 0).public();
    let channel = ChannelKind::Workers(TopicId(1));
    let mut accepted = 0usize;
    let mut refused: std::collections::BTreeMap<&'static str, usize> = Default::default();
    let mut split = Split::default();
    let t = Instant::now();
    for chunk in f.envelopes.chunks(BATCH) {
        let mut items = vec![];
        let tg = Instant::now();
        for bytes in chunk {
            for e in replica.handle(
                Input::Gossip {
                    channel,
                    bytes: bytes.clone(),
                    from,
                },
                f.now_ms,
            ) {
                match e {
                    Effect::Persist(p) => {
                        accepted += p.len();
                        items.extend(p);
                    }
                    Effect::Report { reason, .. } if !reason.is_empty() => {
                        *refused.entry(reason).or_insert(0usize) += 1;
                    }
                    _ => {}
                }
            }
        }
        split.gossip += tg.elapsed().as_secs_f64();
        let ts = Instant::now();
        if let Some(db) = store {
            ops::put_envelopes(db, &items, false)?;
        }
        split.store += ts.elapsed().as_secs_f64();
        let tt = Instant::now();
        replica.handle(Input::Tick, f.now_ms);
        split.tick += tt.elapsed().as_secs_f64();
    }
    let ts = Instant::now();
    if let Some(db) = store {
        // The durable commit that makes the write-behind batches durable.
        ops::put_envelopes(db, &[], true)?;
    }
    split.store += ts.elapsed().as_secs_f64();
    let rate = f.envelopes.len() as f64 / t.elapsed().as_secs_f64();
    if accepted != f.envelopes.len() {
        bail!(
            "the replica accepted {accepted} of {} envelopes; refused: {refused:?}",
            f.envelopes.len()
        );
    }
    Ok((rate, split))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Measure with `workers` envelopes per round, `rounds` alternating rounds.
pub fn measure(workers: usize, rounds: usize) -> anyhow::Result<IngestResult> {
    let f = fixture(workers);
    let envs: Vec<Envelope> = f
        .envelopes
        .iter()
        .map(|b| Envelope::from_bytes(b))
        .collect::<Result<_, _>>()
        .context("decoding the fixture")?;
    let dir = tempfile::Builder::new()
        .prefix("chorus-bench-ingest-")
        .tempdir()?;
    let (mut raw, mut full, mut bare, mut batch) = (vec![], vec![], vec![], vec![]);
    let mut parsed = vec![];
    let mut splits: Vec<Split> = vec![];
    for r in 0..rounds {
        raw.push(raw_verify(&f, &envs)?);
        parsed.push(raw_verify_parsed(&f, &envs)?);
        let db = ops::open(
            &dir.path().join(format!("r{r}.redb")),
            &f.genesis.network_id(),
        )?;
        let (rate, split) = pipeline(&f, Some(&db))?;
        full.push(rate);
        splits.push(split);
        drop(db);
        bare.push(pipeline(&f, None)?.0);
        batch.push(batch_verify(&f, &envs)?);
    }
    Ok(IngestResult {
        envelopes: workers,
        envelope_bytes: f.envelopes.first().map_or(0, Vec::len),
        raw_verify_per_s: median(raw),
        raw_verify_parsed_per_s: median(parsed),
        pipeline_per_s: median(full),
        no_store_per_s: median(bare),
        batch_verify_per_s: median(batch),
        rounds,
        share_validate: median(
            splits
                .iter()
                .map(|s| s.gossip / (s.gossip + s.store + s.tick))
                .collect(),
        ),
        share_store: median(
            splits
                .iter()
                .map(|s| s.store / (s.gossip + s.store + s.tick))
                .collect(),
        ),
        share_merge: median(
            splits
                .iter()
                .map(|s| s.tick / (s.gossip + s.store + s.tick))
                .collect(),
        ),
    })
}
