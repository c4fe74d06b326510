//! Memory and disk of nodes following `topics` × `workers` (processes, loopback).
//!
//! Two `chorus node run` processes: node 0 (the only validator and the reputer of every
//! topic) and node 1 (no role: it only follows). `workers` synthetic worker keys are
//! registered (and funded) in every topic; a publisher in this process
//! ([`super::publisher`]) signs one bundle per worker, topic and epoch when each worker window
//! opens and gossips them to both nodes, paced over the window. Epochs last 1 s, longer beyond
//! 1 666 bundles an epoch ([`epoch_ms`]). After `epochs` epochs both nodes stop (SIGTERM) and
//! their stores are measured.
//!
//! Reported: RSS of each node at the end and at its peak (`/proc/<pid>/status`), the store
//! file size, envelopes stored, their raw bytes, bytes per stored entry and the ratio to the
//! raw envelope, the bundles the follower's certificates finalized (of those published), and
//! the share of the top inferers in the finalized inferences.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use chorus_node::api::client::metric_sum;
use chorus_node::api::types::Inference;
use chorus_node::localnet::node_key;
use chorus_node::store::stats::disk_bytes;
use chorus_protocol::genesis::{GenesisBalance, GenesisRegistration};
use chorus_protocol::ids::{Amount, TopicId};
use chorus_protocol::keys::Keypair;
use chorus_protocol::messages::Role;

use super::publisher::{Publisher, finalized_bundles};
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
    /// Epoch length (ms).
    pub epoch_ms: u64,
    /// Bundles published.
    pub published: u64,
    /// Bundles the publisher could not hand to gossipsub before their window closed.
    pub unpublished: u64,
    /// RSS at the end, MiB (validator, follower).
    pub rss_end_mib: [f64; 2],
    /// Peak RSS, MiB.
    pub rss_peak_mib: [f64; 2],
    /// RSS after the first 10 epochs, MiB.
    pub rss_early_mib: [f64; 2],
    /// Store file bytes (validator, follower): the file's length.
    pub store_bytes: [u64; 2],
    /// Store bytes on disk (validator, follower): the file's allocated blocks (redb extends
    /// its file by doubling its length, sparsely).
    pub disk_bytes: [u64; 2],
    /// Envelopes stored (follower).
    pub envelopes: u64,
    /// Raw bytes of those envelopes.
    pub raw_bytes: u64,
    /// Store bytes per stored envelope (follower).
    pub bytes_per_entry: f64,
    /// Store bytes / raw envelope bytes (follower).
    pub overhead: f64,
    /// Bytes on disk per stored envelope (follower).
    pub disk_bytes_per_entry: f64,
    /// Bytes on disk / raw envelope bytes (follower).
    pub disk_overhead: f64,
    /// Background compactions while the follower ran (`chorus_store_compactions_total`).
    pub background_compactions: u64,
    /// The storage thread's time in them, s (`chorus_store_compaction_seconds_sum`).
    pub background_compaction_seconds: f64,
    /// Inferers in the finalized inference of the last epochs, over min(workers,
    /// `max_top_inferers_to_reward`) (node 1, topic 1).
    pub finalized_share: f64,
    /// Bundles the follower's certificates finalized (every topic and epoch of the run).
    pub bundles_finalized: u64,
    /// `bundles_finalized / published`.
    pub bundle_share: f64,
    /// Where the follower's store bytes go, per table (`chorus store stats`).
    pub follower_tables: Vec<chorus_node::store::stats::TableUsage>,
    /// The follower's file bytes no table occupies (free pages, allocator state).
    pub follower_other_bytes: u64,
    /// Store bytes per stored envelope after `chorus store compact` (a copy of the follower's).
    pub compacted_bytes_per_entry: f64,
    /// How long that compaction took (s): what a background compaction would hold the
    /// storage thread for.
    pub compact_seconds: f64,
    /// A newcomer's certified state sync from the validator at the end (in parts past 8 MiB):
    /// the height, the snapshot's bytes and the seconds it took; `None` if it failed.
    pub state_sync: Option<StateSyncFigure>,
}

/// One certified state fetched and verified (not installed).
#[derive(Debug, Clone, serde::Serialize)]
pub struct StateSyncFigure {
    /// The state's height.
    pub height: u64,
    /// Snapshot bytes.
    pub snapshot_bytes: u64,
    /// Parts it came in (the first answer included).
    pub parts: u64,
    /// Seconds from the first request to the verified state.
    pub seconds: f64,
}

/// A newcomer (a fresh key) fetches and verifies `bootstrap`'s certified state.
async fn state_sync_from(
    bootstrap: &libp2p::Multiaddr,
    genesis: &chorus_protocol::genesis::Genesis,
) -> anyhow::Result<StateSyncFigure> {
    let key = Keypair::from_seed(&[0x5a; 32]);
    let started = Instant::now();
    let fetched = chorus_node::state_sync::fetch_state(
        bootstrap,
        genesis,
        None,
        &key,
        Duration::from_secs(120),
    )
    .await?;
    let bytes = fetched.snapshot.len() as u64;
    let page = chorus_crdt::replica::wire::MAX_PAGE_BYTES as u64;
    Ok(StateSyncFigure {
        height: fetched.state.height(),
        snapshot_bytes: bytes,
        parts: bytes.div_ceil(page).max(1),
        seconds: (started.elapsed().as_secs_f64() * 100.0).round() / 100.0,
    })
}

/// The largest parts of a store, in bytes per envelope: `"inferences 535, envelopes 170, …"`.
pub fn where_bytes_go(f: &Footprint) -> String {
    let per = |b: u64| (b as f64 / f.envelopes.max(1) as f64).round();
    let mut parts: Vec<(String, f64)> = f
        .follower_tables
        .iter()
        .map(|t| (t.table.to_string(), per(t.total())))
        .chain([("free".to_string(), per(f.follower_other_bytes))])
        .filter(|(_, b)| *b >= 1.0)
        .collect();
    parts.sort_by(|a, b| b.1.total_cmp(&a.1));
    parts
        .iter()
        .map(|(t, b)| format!("{t} {b}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Publish one bundle per key, topic and epoch of `epochs`, each epoch's paced over the first
/// three quarters of its worker window (the publisher's module says why); `each_tick(epoch)` runs every
/// 10 ms with the epoch being published. Returns after the last epoch's bundles were offered
/// (or its worker window closed).
pub async fn publish_epochs(
    publisher: &mut Publisher,
    topic: &chorus_protocol::topic::TopicSpec,
    keys: &[Keypair],
    epochs: std::ops::RangeInclusive<u64>,
    mut each_tick: impl FnMut(u64),
) {
    const TICK: Duration = Duration::from_millis(10);
    for epoch in epochs {
        let (open, close) = topic.worker_window(epoch);
        // Sealed ahead of the window (10 000 signatures take a while), then wait for it,
        // keeping the connections alive.
        publisher.queue_epoch(keys, epoch);
        let wait = (open + 30).saturating_sub(now_ms());
        publisher.run_for(Duration::from_millis(wait)).await;
        // Offered by the clock, not per tick: a tick takes longer than `TICK` under load.
        let total = publisher.pending();
        let start = now_ms();
        let span = ((close - open) * 3 / 4).max(1);
        while publisher.pending() > 0 && now_ms() + 50 < close {
            let due = (total as u64 * (now_ms() - start + TICK.as_millis() as u64) / span)
                .min(total as u64) as usize;
            let offered = total - publisher.pending();
            publisher.offer(due.saturating_sub(offered));
            each_tick(epoch);
            publisher.run_for(TICK).await;
        }
        publisher.drop_pending();
    }
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
    (topics, workers, epochs): (usize, usize, u64),
    epoch_length_ms: Option<u64>,
    bin: Option<&std::path::Path>,
) -> anyhow::Result<Footprint> {
    if topics == 0 || topics > 64 || workers == 0 || workers > 1_000 || epochs < 12 {
        bail!("topics in 1..=64, workers in 1..=1000, epochs ≥ 12");
    }
    let least = epoch_ms(topics, workers);
    let length = epoch_length_ms.unwrap_or(least);
    if length < least || length > 600_000 {
        bail!("--footprint-epoch-ms in {least}..=600000 at {topics} × {workers}");
    }
    let (mut cluster, spec, keys, pids) = start(topics, workers, length, bin).await?;
    let network = cluster.genesis.network_id();
    let targets = cluster.p2p_addrs();
    let mut publisher = Publisher::new(network, topics as u64, &targets)?;
    let topic = spec.topic_spec(0);
    let first = topic.epoch_at(now_ms()).map_or(1, |e| e + 1);
    let last = first + epochs - 1;
    let mut peak = [0u64; 2];
    let mut early = [0u64; 2];
    let mut next_sample = Instant::now();
    publish_epochs(&mut publisher, &topic, &keys, first..=last, |epoch| {
        if Instant::now() >= next_sample {
            next_sample = Instant::now() + Duration::from_secs(2);
            for (i, p) in pids.iter().enumerate() {
                peak[i] = peak[i].max(rss_bytes(*p).unwrap_or(0));
            }
        }
        if epoch == first + 10 {
            for (i, p) in pids.iter().enumerate() {
                early[i] = rss_bytes(*p).unwrap_or(0);
            }
        }
    })
    .await;
    let published = publisher.published;
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
    let state_sync = match state_sync_from(&targets[0], &cluster.genesis).await {
        Ok(f) => Some(f),
        Err(e) => {
            eprintln!("state sync from the validator failed: {e:#}");
            None
        }
    };
    let page = procs::api(&api)?.get_text("/metrics").await?;
    let compactions = metric_sum(&page, "chorus_store_compactions_total", &[]) as u64;
    let compaction_seconds = metric_sum(&page, "chorus_store_compaction_seconds_sum", &[]);
    for i in 0..2 {
        cluster.terminate(i, Duration::from_secs(20))?;
    }
    let stores: Vec<u64> = (0..2)
        .map(|i| crate::scenarios::file_size(&cluster.nodes[i].store_path()))
        .collect();
    let disk: Vec<u64> = (0..2)
        .map(|i| std::fs::metadata(cluster.nodes[i].store_path()).map_or(0, |m| disk_bytes(&m)))
        .collect();
    let (envelopes, raw) = store_contents(&cluster.nodes[1].store_path())?;
    let usage = {
        let db = redb::Database::open(cluster.nodes[1].store_path())?;
        chorus_node::store::stats::usage_of(&db, disk[1])?
    };
    let (compacted, compact_seconds) = {
        let copy = cluster.dir.join("follower-compacted.redb");
        std::fs::copy(cluster.nodes[1].store_path(), &copy)?;
        let mut db = redb::Database::open(&copy)?;
        let started = Instant::now();
        chorus_node::store::stats::compact(&mut db)?;
        let seconds = started.elapsed().as_secs_f64();
        drop(db);
        (crate::scenarios::file_size(&copy), seconds)
    };
    let finalized: u64 = finalized_bundles(
        &cluster.nodes[1].store_path(),
        &network,
        topics as u64,
        first..=last,
    )?
    .bundles
    .values()
    .map(|n| u64::from(*n))
    .sum();
    Ok(Footprint {
        topics,
        workers,
        epochs,
        epoch_ms: spec.epoch_ms,
        published,
        unpublished: publisher.dropped,
        rss_end_mib: [mib(end[0]), mib(end[1])],
        rss_peak_mib: [mib(peak[0]), mib(peak[1])],
        rss_early_mib: [mib(early[0]), mib(early[1])],
        store_bytes: [stores[0], stores[1]],
        disk_bytes: [disk[0], disk[1]],
        envelopes,
        raw_bytes: raw,
        bytes_per_entry: (stores[1] as f64 / envelopes.max(1) as f64).round(),
        overhead: ((stores[1] as f64 / raw.max(1) as f64) * 100.0).round() / 100.0,
        disk_bytes_per_entry: (disk[1] as f64 / envelopes.max(1) as f64).round(),
        disk_overhead: ((disk[1] as f64 / raw.max(1) as f64) * 100.0).round() / 100.0,
        background_compactions: compactions,
        background_compaction_seconds: (compaction_seconds * 100.0).round() / 100.0,
        finalized_share: (counted as f64 / asked.max(1) as f64 * 1000.0).round() / 1000.0,
        bundles_finalized: finalized,
        bundle_share: (finalized as f64 / published.max(1) as f64 * 1000.0).round() / 1000.0,
        follower_other_bytes: usage.other_bytes(),
        compacted_bytes_per_entry: (compacted as f64 / envelopes.max(1) as f64).round(),
        compact_seconds: (compact_seconds * 100.0).round() / 100.0,
        state_sync,
        follower_tables: usage.tables,
    })
}

/// Epoch length (= checkpoint period) for `topics × workers` bundles per epoch: 1 s up to
/// 1 666 bundles, then 0.6 ms per bundle (6 s at 10 × 1 000), so that two nodes and the
/// publisher keep pace on 2 cores (ingest is ~12 000 envelopes/s on one core; BENCHMARKS.md).
pub fn epoch_ms(topics: usize, workers: usize) -> u64 {
    ((topics * workers) as u64 * 6 / 10).max(1_000)
}

/// One validator and one follower whose genesis registers `workers` worker keys on every
/// topic, epochs of `epoch_ms`; returns them, the network's spec, the worker keys and the two process ids.
pub(crate) async fn start(
    topics: usize,
    workers: usize,
    epoch_ms: u64,
    bin: Option<&std::path::Path>,
) -> anyhow::Result<(Cluster, NetSpec, Vec<Keypair>, Vec<u32>)> {
    let bin = chorus_bin(bin)?;
    let dir = RunDir::new(None, "chorus-bench-footprint-")?;
    let data = write_data(&dir.path)?;
    let mut spec = NetSpec::new("chorus-bench-footprint", 2, Duration::from_secs(5));
    spec.epoch_ms = epoch_ms;
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
