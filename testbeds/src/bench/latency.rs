//! Latencies of an in-process network of real nodes (loopback TCP, one process):
//!
//! - **inference**: from the moment a node may compute an epoch's network inference (worker
//!   window close + the clock-skew allowance, the protocol's own wait) to the moment it has it
//!   (its inference stream event), over every node and epoch; and the same for the finalized
//!   inference, from the window's close;
//! - **finality**: from the end of a checkpoint period to the moment each node applied the
//!   checkpoint that decides it (ledger event stream), over every node and height. The
//!   protocol waits the skew allowance and the proposal grace after the period end before
//!   the height starts; that wait is part of the figure and reported separately.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use chorus_crdt::ledger::Ledger;
use chorus_node::localnet::LocalNet;

use crate::procs::cluster::RunDir;
use crate::procs::plan::{NetSpec, now_ms, write_data};
use crate::report::percentile;
use crate::scenarios::{InferenceLog, wait_for};

/// Percentiles of one measurement.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Latency {
    /// Nodes (or validators).
    pub nodes: usize,
    /// Samples.
    pub samples: usize,
    /// Median (ms).
    pub p50_ms: f64,
    /// 99th percentile (ms).
    pub p99_ms: f64,
    /// Samples expected but missing (a node that never produced the event).
    pub missing: usize,
    /// Fixed protocol wait included in the figure (ms).
    pub protocol_wait_ms: u64,
}

fn latency(nodes: usize, samples: &[f64], missing: usize, wait: u64) -> Latency {
    Latency {
        nodes,
        samples: samples.len(),
        p50_ms: percentile(samples, 50.0).unwrap_or(f64::NAN),
        p99_ms: percentile(samples, 99.0).unwrap_or(f64::NAN),
        missing,
        protocol_wait_ms: wait,
    }
}

async fn start(spec: &NetSpec, dir: &RunDir) -> anyhow::Result<LocalNet> {
    let data = write_data(&dir.path)?;
    let plan = spec.plan(&data, dir.path.clone());
    let net = LocalNet::start(plan)
        .await
        .context("starting the network")?;
    Ok(net)
}

/// Network inference availability at `nodes` nodes (`workers` inferers) over `epochs` epochs:
/// (local at window close, finalized).
pub async fn inference(
    nodes: usize,
    workers: usize,
    epochs: u64,
    period_ms: u64,
) -> anyhow::Result<(Latency, Latency)> {
    let dir = RunDir::new(None, "chorus-bench-inference-")?;
    let mut spec = NetSpec::new(
        "chorus-bench-inference",
        nodes,
        Duration::from_millis(2_000 + 120 * nodes as u64),
    );
    spec.workers = workers.min(nodes);
    spec.epoch_ms = period_ms;
    let net = start(&spec, &dir).await?;
    let log = InferenceLog::start(
        (0..nodes)
            .filter_map(|i| net.handle(i).map(|h| (i, h.clone())))
            .collect(),
    );
    let topic = spec.topic_spec(0);
    let skew = spec.params().max_clock_skew_ms;
    // Skip two epochs of start-up, measure `epochs`, wait for their finalization.
    let first = topic.epoch_at(now_ms()).map_or(2, |e| e.max(2));
    let last = first + epochs - 1;
    let done = wait_for(
        Duration::from_millis((epochs + 20) * spec.epoch_ms + 30_000),
        || {
            let log = &log;
            async move {
                let ev = log.snapshot();
                (0..nodes).all(|i| {
                    ev.iter()
                        .any(|s| s.node == i && s.finalized && s.epoch >= last)
                })
            }
        },
    )
    .await;
    let events = log.snapshot();
    net.shutdown().await;
    if !done {
        tracing::warn!("not every node finalized epoch {last}: reporting what arrived");
    }
    let (mut local, mut fin) = (vec![], vec![]);
    let (mut miss_l, mut miss_f) = (0, 0);
    let mut seen: BTreeMap<(usize, u64, bool), u64> = BTreeMap::new();
    for s in &events {
        seen.entry((s.node, s.epoch, s.finalized))
            .or_insert(s.time_ms);
    }
    for i in 0..nodes {
        for e in first..=last {
            let close = topic.worker_window(e).1;
            match seen.get(&(i, e, false)) {
                Some(t) => local.push(t.saturating_sub(close + skew) as f64),
                None => miss_l += 1,
            }
            match seen.get(&(i, e, true)) {
                Some(t) => fin.push(t.saturating_sub(close) as f64),
                None => miss_f += 1,
            }
        }
    }
    Ok((
        latency(nodes, &local, miss_l, skew),
        latency(nodes, &fin, miss_f, 0),
    ))
}

/// Checkpoint finality at `validators` validators (all nodes validate) over `heights` heights.
pub async fn finality(validators: usize, heights: u64, period_ms: u64) -> anyhow::Result<Latency> {
    let dir = RunDir::new(None, "chorus-bench-finality-")?;
    let mut spec = NetSpec::new(
        "chorus-bench-finality",
        validators,
        Duration::from_millis(2_000 + 120 * validators as u64),
    );
    spec.validators = validators;
    spec.workers = validators.min(4);
    spec.epoch_ms = period_ms;
    let net = start(&spec, &dir).await?;
    let ledger = Ledger::from_genesis(&net.genesis)?;
    let wait = spec.params().max_clock_skew_ms + spec.replica().propose_grace_ms;
    let seen: Arc<Mutex<BTreeMap<(usize, u64), u64>>> = Arc::default();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..validators {
        let Some(mut r) = net.handle(i).and_then(|h| h.subscribe_ledger()) else {
            continue;
        };
        let seen = seen.clone();
        tasks.spawn(async move {
            use tokio::sync::broadcast::error::RecvError;
            loop {
                match r.recv().await {
                    Ok(rec) => {
                        let t = now_ms();
                        if let Ok(mut m) = seen.lock() {
                            m.entry((i, rec.height)).or_insert(t);
                        }
                    }
                    Err(RecvError::Lagged(_)) => continue,
                    Err(RecvError::Closed) => return,
                }
            }
        });
    }
    // Heights 1–2 are start-up; measure the next `heights`.
    let from = 3u64;
    let to = from + heights - 1;
    let done = wait_for(
        Duration::from_millis((heights + 20) * spec.epoch_ms + 30_000),
        || {
            let done = seen
                .lock()
                .map(|m| (0..validators).all(|i| m.contains_key(&(i, to))))
                .unwrap_or(false);
            async move { done }
        },
    )
    .await;
    tasks.abort_all();
    let seen = seen.lock().map(|m| m.clone()).unwrap_or_default();
    net.shutdown().await;
    if !done {
        tracing::warn!("not every validator applied height {to}: reporting what arrived");
    }
    let mut samples = vec![];
    let mut missing = 0;
    for i in 0..validators {
        for h in from..=to {
            // Height h finalizes ledger period h − 1.
            let end = ledger.period_end(h - 1);
            match seen.get(&(i, h)) {
                Some(t) => samples.push(t.saturating_sub(end) as f64),
                None => missing += 1,
            }
        }
    }
    Ok(latency(validators, &samples, missing, wait))
}
