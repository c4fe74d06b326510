//! Memory and disk of nodes following `topics` × `workers` (processes, loopback).
//!
//! Two `chorus node run` processes: node 0 (the only validator and the reputer of every
//! topic) and node 1 (no role: it only follows). `workers` synthetic worker keys are
//! registered (and funded) in every topic; a publisher in this process (a bare libp2p swarm
//! built with the node's builder) signs one bundle per worker, topic and epoch just after each
//! worker window opens and gossips them to both nodes. After `epochs` epochs both nodes stop
//! (SIGTERM) and their stores are measured.
//!
//! Reported: RSS of each node at the end and at its peak (`/proc/<pid>/status`), the store
//! file size, envelopes stored, their raw bytes, bytes per stored entry and the ratio to the
//! raw envelope, and the share of bundles that made it into the finalized inferences.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use chorus_node::api::types::Inference;
use chorus_node::localnet::node_key;
use chorus_protocol::envelope::Envelope;
use chorus_protocol::genesis::{GenesisBalance, GenesisRegistration};
use chorus_protocol::ids::{Amount, TopicId};
use chorus_protocol::keys::Keypair;
use chorus_protocol::messages::{Payload, Role, WorkerBundle};
use chorus_protocol::validation::{Channel, ChannelKind};
use futures::StreamExt;
use libp2p::Multiaddr;
use libp2p::gossipsub::IdentTopic;

use crate::procs;
use crate::procs::cluster::{Cluster, RunDir, chorus_bin, loopback_endpoints};
use crate::procs::plan::{NetSpec, now_ms, write_data};
use crate::scenarios::rss_bytes;

/// What the run measured.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Footprint {
    /// Topics.
    pub topics: usize,
    /// Workers per topic.
    pub workers: usize,
    /// Epochs run.
    pub epochs: u64,
    /// Bundles published.
    pub published: u64,
    /// RSS at the end, MiB (validator, follower).
    pub rss_end_mib: [f64; 2],
    /// Peak RSS, MiB.
    pub rss_peak_mib: [f64; 2],
    /// RSS after the first 10 epochs, MiB.
    pub rss_early_mib: [f64; 2],
    /// Store file bytes (validator, follower).
    pub store_bytes: [u64; 2],
    /// Envelopes stored (follower).
    pub envelopes: u64,
    /// Raw bytes of those envelopes.
    pub raw_bytes: u64,
    /// Store bytes per stored envelope (follower).
    pub bytes_per_entry: f64,
    /// Store bytes / raw envelope bytes (follower).
    pub overhead: f64,
    /// Inferers in the finalized inference of the last epochs, over min(workers,
    /// `max_top_inferers_to_reward`) (node 1, topic 1).
    pub finalized_share: f64,
}

fn mib(b: u64) -> f64 {
    (b as f64 / (1 << 20) as f64 * 10.0).round() / 10.0
}

/// Envelopes and their raw bytes in a closed store.
fn store_contents(path: &std::path::Path) -> anyhow::Result<(u64, u64)> {
    use chorus_node::store::schema::ENVELOPES;
    use redb::{ReadableDatabase, ReadableTable};
    let db = redb::Database::open(path)?;
    let tx = db.begin_read()?;
    let table = tx.open_table(ENVELOPES)?;
    let (mut n, mut bytes) = (0u64, 0u64);
    for row in table.iter()? {
        let (_, v) = row?;
        n += 1;
        bytes += v.value().len() as u64;
    }
    Ok((n, bytes))
}

/// Run the measurement.
pub async fn measure(
    topics: usize,
    workers: usize,
    epochs: u64,
    bin: Option<&std::path::Path>,
) -> anyhow::Result<Footprint> {
    if topics == 0 || topics > 64 || workers == 0 || workers > 1_000 || epochs < 12 {
        bail!("topics in 1..=64, workers in 1..=1000, epochs ≥ 12");
    }
    let (mut cluster, spec, keys, pids) = start(topics, workers, bin).await?;
    let network = cluster.genesis.network_id();
    // The publisher.
    let me = Keypair::from_seed(&[0x77; 32]);
    let mut swarm = chorus_node::net::build_swarm(&me, &Default::default())?;
    let channels: Vec<IdentTopic> = (1..=topics as u64)
        .map(|t| {
            IdentTopic::new(
                Channel {
                    network,
                    kind: ChannelKind::Workers(TopicId(t)),
                }
                .name(),
            )
        })
        .collect();
    for c in &channels {
        swarm.behaviour_mut().gossipsub.subscribe(c)?;
    }
    let targets: Vec<Multiaddr> = cluster
        .nodes
        .iter()
        .filter_map(|n| n.p2p_addr().parse().ok())
        .collect();
    for t in &targets {
        let _ = swarm.dial(t.clone());
    }
    let topic = spec.topic_spec(0);
    let first = topic.epoch_at(now_ms()).map_or(1, |e| e + 1);
    let last = first + epochs - 1;
    let mut next_epoch = first;
    let mut published = 0u64;
    let mut peak = [0u64; 2];
    let mut early = [0u64; 2];
    let mut next_sample = Instant::now();
    loop {
        let open = topic.worker_window(next_epoch).0 + 30;
        let wake = open.saturating_sub(now_ms());
        tokio::select! {
            _ = swarm.select_next_some() => {}
            _ = tokio::time::sleep(Duration::from_millis(wake.min(100))) => {
                if Instant::now() >= next_sample {
                    next_sample = Instant::now() + Duration::from_secs(2);
                    for (i, p) in pids.iter().enumerate() {
                        peak[i] = peak[i].max(rss_bytes(*p).unwrap_or(0));
                    }
                }
                if now_ms() < open {
                    continue;
                }
                if next_epoch > last {
                    break;
                }
                for t in 1..=topics as u64 {
                    let channel = &channels[t as usize - 1];
                    for (j, k) in keys.iter().enumerate() {
                        let payload = Payload::WorkerBundle(WorkerBundle {
                            topic: TopicId(t),
                            epoch: next_epoch,
                            inference: Some(0.001 + (j as f64) * 1e-6 + (next_epoch as f64) * 1e-7),
                            forecasts: vec![],
                        });
                        let bytes = Envelope::seal(k, &network, &payload).to_bytes();
                        if swarm.behaviour_mut().gossipsub.publish(channel.clone(), bytes).is_ok() {
                            published += 1;
                        }
                    }
                }
                if next_epoch == first + 10 {
                    for (i, p) in pids.iter().enumerate() {
                        early[i] = rss_bytes(*p).unwrap_or(0);
                    }
                }
                next_epoch += 1;
            }
        }
    }
    // Let the last epochs finalize, then read the follower's view.
    tokio::time::sleep(Duration::from_millis(4 * spec.epoch_ms)).await;
    let end: Vec<u64> = pids.iter().map(|p| rss_bytes(*p).unwrap_or(0)).collect();
    for (i, e) in end.iter().enumerate() {
        peak[i] = peak[i].max(*e);
    }
    let api = cluster.nodes[1].api();
    let mut counted = 0usize;
    let mut asked = 0usize;
    for e in last.saturating_sub(5)..last.saturating_sub(1) {
        let path = format!("/v1/topics/1/inference?epoch={e}");
        if let Ok(v) = procs::get::<Inference>(&api, &path).await {
            counted += v.bundle.inferer_values.len();
        }
        // At most `max_top_inferers_to_reward` inferers count per epoch (ranked by score).
        asked += workers.min(spec.params().max_top_inferers_to_reward as usize);
    }
    for i in 0..2 {
        cluster.terminate(i, Duration::from_secs(20))?;
    }
    let stores: Vec<u64> = (0..2)
        .map(|i| crate::scenarios::file_size(&cluster.nodes[i].store_path()))
        .collect();
    let (envelopes, raw) = store_contents(&cluster.nodes[1].store_path())?;
    Ok(Footprint {
        topics,
        workers,
        epochs,
        published,
        rss_end_mib: [mib(end[0]), mib(end[1])],
        rss_peak_mib: [mib(peak[0]), mib(peak[1])],
        rss_early_mib: [mib(early[0]), mib(early[1])],
        store_bytes: [stores[0], stores[1]],
        envelopes,
        raw_bytes: raw,
        bytes_per_entry: (stores[1] as f64 / envelopes.max(1) as f64).round(),
        overhead: ((stores[1] as f64 / raw.max(1) as f64) * 100.0).round() / 100.0,
        finalized_share: (counted as f64 / asked.max(1) as f64 * 1000.0).round() / 1000.0,
    })
}

/// One validator and one follower whose genesis registers `workers` worker keys on every
/// topic; returns them, the network's spec, the worker keys and the two process ids.
async fn start(
    topics: usize,
    workers: usize,
    bin: Option<&std::path::Path>,
) -> anyhow::Result<(Cluster, NetSpec, Vec<Keypair>, Vec<u32>)> {
    let bin = chorus_bin(bin)?;
    let dir = RunDir::new(None, "chorus-bench-footprint-")?;
    let data = write_data(&dir.path)?;
    let mut spec = NetSpec::new("chorus-bench-footprint", 2, Duration::from_secs(5));
    spec.validators = 1;
    spec.topics = topics;
    spec.workers = 0;
    spec.reputers = 1;
    spec.observers = 1;
    let plan = spec.plan(&data, dir.path.clone());
    let mut cluster = Cluster::create(plan, loopback_endpoints(2)?, bin, dir, "warn")?;
    let keys: Vec<Keypair> = (0..workers).map(|j| node_key(0x5EED, j)).collect();
    let mut genesis = cluster.genesis.clone();
    for k in &keys {
        genesis.balances.push(GenesisBalance {
            address: k.public(),
            amount: Amount(1_000_000_000),
        });
        for t in 1..=topics as u64 {
            genesis.registrations.push(GenesisRegistration {
                topic: TopicId(t),
                address: k.public(),
                role: Role::Worker,
            });
        }
    }
    cluster.replace_genesis(genesis)?;
    cluster.start_all()?;
    for i in 0..2 {
        cluster.wait_ready(i, Duration::from_secs(60)).await?;
    }
    let pids: Vec<u32> = (0..2)
        .map(|i| cluster.nodes[i].pid().context("node not running"))
        .collect::<anyhow::Result<_>>()?;
    Ok((cluster, spec, keys, pids))
}
