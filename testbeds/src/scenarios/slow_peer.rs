//! Scenario 5, `chorus-testbeds slow-peer`: one peer that reads at 1 KB/s.
//!
//! `--nodes` honest `chorus node run` processes on loopback (4 validators, one topic, an
//! inferer on every node, 2 reputers) plus one more node, the slow peer (no roles), whose only
//! way in is a throttling TCP proxy in this process: it dials the first half of the honest
//! nodes through the proxy (the others never learn its address), and the proxy forwards what
//! the honest nodes send it at `--rate` bytes per second in total (1 KB/s by default), reading
//! no faster than that, so the honest nodes' socket buffers fill and their own bounded queues
//! towards that peer take the rest. The run lasts `--seconds` after a `--warmup`.
//!
//! Measured every 5 s: each honest process's RSS (`/proc/<pid>/status`), its
//! `chorus_queue_drops_total`, and the proxy's counters.
//!
//! Pass: for every honest node connected to the slow peer, its peak RSS growth over the soak
//! (relative to its RSS when the soak began) exceeds the mean peak growth of the honest nodes
//! that are not connected to it (the control group: same work, no slow peer) by at most 10
//! percentage points (the absolute growth of every node is reported too); every honest node
//! keeps finalizing (heights advance and agree at the end).
//! "Queues stay bounded" shows as flat RSS; the queue-drop counters say what the bounded
//! queues dropped.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use chorus_node::api::client::metric_sum;
use chorus_node::api::types::Status;
use clap::Args;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use super::rss_bytes;
use crate::procs;
use crate::procs::check::{self, Observer};
use crate::procs::cluster::{Cluster, RunDir, chorus_bin, loopback_endpoints};
use crate::procs::plan::{NetSpec, write_data};
use crate::report::Report;

/// Bytes the slow peer must have read for the run to count (1 s at the default rate).
const MIN_BYTES_TO_SLOW_PEER: u64 = 1_024;
/// Largest allowed RSS growth beyond the control group (fraction).
const MAX_RSS_DRIFT: f64 = 0.10;
/// Bytes forwarded per step of the throttle.
const CHUNK: usize = 256;

/// `slow-peer` flags.
#[derive(Debug, Args)]
pub struct SlowPeerArgs {
    /// Honest nodes.
    #[arg(long, default_value_t = 6)]
    pub nodes: usize,
    /// Seconds of soak after the warm-up (600 for the full run).
    #[arg(long, default_value_t = 600)]
    pub seconds: u64,
    /// Seconds of warm-up before the soak (RSS at its end is the reference).
    #[arg(long, default_value_t = 60)]
    pub warmup: u64,
    /// Bytes per second the slow peer reads (in total).
    #[arg(long, default_value_t = 1_024)]
    pub rate: u64,
    /// The `chorus` binary (default: the one next to this executable).
    #[arg(long)]
    pub chorus_bin: Option<std::path::PathBuf>,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Counters of the throttling proxy.
#[derive(Debug, Default)]
struct ProxyStats {
    connections: AtomicU64,
    down_bytes: AtomicU64,
    up_bytes: AtomicU64,
}

/// A token bucket shared by every proxied connection: `rate` bytes per second in total.
struct Throttle {
    rate: u64,
    next: tokio::sync::Mutex<tokio::time::Instant>,
}

impl Throttle {
    async fn take(&self, bytes: usize) {
        let cost = Duration::from_secs_f64(bytes as f64 / self.rate.max(1) as f64);
        let at = {
            let mut next = self.next.lock().await;
            let now = tokio::time::Instant::now();
            let at = (*next).max(now);
            *next = at + cost;
            at
        };
        tokio::time::sleep_until(at).await;
    }
}

/// One proxied connection: up (slow peer → node) unthrottled, down (node → slow peer) through
/// the throttle, reading only what it may forward.
async fn pump(
    slow: TcpStream,
    target: String,
    throttle: Arc<Throttle>,
    stats: Arc<ProxyStats>,
) -> anyhow::Result<()> {
    let node = TcpStream::connect(&target).await?;
    let (mut sr, mut sw) = slow.into_split();
    let (mut nr, mut nw) = node.into_split();
    let up_stats = stats.clone();
    let up = async move {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = sr.read(&mut buf).await?;
            if n == 0 {
                return anyhow::Ok(());
            }
            nw.write_all(&buf[..n]).await?;
            up_stats.up_bytes.fetch_add(n as u64, Ordering::Relaxed);
        }
    };
    let down = async move {
        let mut buf = vec![0u8; CHUNK];
        loop {
            throttle.take(CHUNK).await;
            let n = nr.read(&mut buf).await?;
            if n == 0 {
                return anyhow::Ok(());
            }
            sw.write_all(&buf[..n]).await?;
            stats.down_bytes.fetch_add(n as u64, Ordering::Relaxed);
        }
    };
    tokio::select! {
        r = up => r,
        r = down => r,
    }
}

/// Listen on a loopback port for the slow peer and forward to `target`.
async fn proxy(
    listener: TcpListener,
    target: String,
    throttle: Arc<Throttle>,
    stats: Arc<ProxyStats>,
) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((s, _)) = accepted else { continue };
                stats.connections.fetch_add(1, Ordering::Relaxed);
                conns.spawn(pump(s, target.clone(), throttle.clone(), stats.clone()));
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

/// Run the scenario.
pub async fn run(args: SlowPeerArgs) -> anyhow::Result<ExitCode> {
    let json = args.json;
    Ok(Report::run("slow-peer", json, async |report| {
        run_inner(args, report).await
    })
    .await)
}

fn mib(b: u64) -> f64 {
    (b as f64 / (1 << 20) as f64 * 10.0).round() / 10.0
}

async fn run_inner(args: SlowPeerArgs, report: &mut Report) -> anyhow::Result<()> {
    if !(2..=32).contains(&args.nodes) || args.seconds == 0 || args.seconds > 3_600 {
        bail!("--nodes must be in 2..=32 and --seconds in 1..=3600");
    }
    let bin = chorus_bin(args.chorus_bin.as_deref())?;
    let honest = args.nodes;
    let slow = honest; // the last node
    let dir = RunDir::new(None, "chorus-slow-peer-")?;
    let data = write_data(&dir.path)?;
    let mut spec = NetSpec::new(
        "chorus-slow-peer",
        honest + 1,
        Duration::from_millis(3_000 + 250 * honest as u64),
    );
    spec.observers = 1;
    spec.workers = honest;
    let plan = spec.plan(&data, dir.path.clone());
    let mut cluster = Cluster::create(plan, loopback_endpoints(honest + 1)?, bin, dir, "info")?;
    // The slow peer reaches the first half of the honest nodes through the proxy only.
    let connected: Vec<usize> = (0..honest.div_ceil(2)).collect();
    let control: Vec<usize> = (honest.div_ceil(2)..honest).collect();
    let throttle = Arc::new(Throttle {
        rate: args.rate,
        next: tokio::sync::Mutex::new(tokio::time::Instant::now()),
    });
    let stats = Arc::new(ProxyStats::default());
    let mut proxies = JoinSet::new();
    let mut via = vec![];
    for i in &connected {
        let l = TcpListener::bind("127.0.0.1:0").await?;
        let port = l.local_addr()?.port();
        let n = &cluster.nodes[*i];
        via.push(format!("/ip4/127.0.0.1/tcp/{port}/p2p/{}", n.peer_id));
        proxies.spawn(proxy(
            l,
            format!("127.0.0.1:{}", n.endpoint.p2p_port),
            throttle.clone(),
            stats.clone(),
        ));
    }
    cluster.bootstrap.insert(slow, via);
    cluster.hidden.insert(slow);
    cluster.write_configs("info")?;
    cluster.start_all()?;
    for i in 0..=honest {
        cluster.wait_ready(i, Duration::from_secs(60)).await?;
    }
    let apis: Vec<String> = (0..honest).map(|i| cluster.nodes[i].api()).collect();
    let pids: Vec<u32> = (0..honest)
        .map(|i| cluster.nodes[i].pid().context("node not running"))
        .collect::<anyhow::Result<_>>()?;
    tokio::time::sleep(Duration::from_secs(args.warmup)).await;
    let rss0: Vec<u64> = pids.iter().map(|p| rss_bytes(*p).unwrap_or(0)).collect();
    let h0 = check::statuses(&apis)
        .await
        .iter()
        .filter_map(|s| s.as_ref().map(|s| s.height))
        .min()
        .unwrap_or(0);
    let mut obs = Observer::default();
    let samples = soak(&mut cluster, &apis, &pids, args.seconds, &mut obs).await?;
    check_rss(&rss0, &samples, &connected, &control, &stats, report);
    let mut drops = vec![];
    for a in &apis {
        let page = match procs::api(a) {
            Ok(node) => node.get_text("/metrics").await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        drops.push(metric_sum(&page, "chorus_queue_drops_total", &[]));
    }
    report.metric("queue_drops_per_node", drops);
    let conv = check::converge(&apis, Duration::from_secs(30), &mut obs).await;
    let progressed = conv.as_ref().is_ok_and(|h| h.height > h0);
    report.check(
        "the honest nodes keep finalizing and agree",
        progressed && obs.conflicts.is_empty(),
        match &conv {
            Ok(h) => format!("height {h0} → {} on every honest node", h.height),
            Err(e) => e.clone(),
        },
    );
    let slow_status = procs::get::<Status>(&cluster.nodes[slow].api(), "/v1/status").await;
    report.metric("slow_peer_height", slow_status.map_or(0, |s| s.height));
    proxies.abort_all();
    Ok(())
}

/// RSS samples of every honest node every 5 s for `seconds`, recording heads and failing if a
/// node exits.
async fn soak(
    cluster: &mut Cluster,
    apis: &[String],
    pids: &[u32],
    seconds: u64,
    obs: &mut Observer,
) -> anyhow::Result<BTreeMap<usize, Vec<u64>>> {
    let t0 = Instant::now();
    let mut samples: BTreeMap<usize, Vec<u64>> = BTreeMap::new();
    while t0.elapsed() < Duration::from_secs(seconds) {
        tokio::time::sleep(Duration::from_secs(5)).await;
        for (i, p) in pids.iter().enumerate() {
            samples
                .entry(i)
                .or_default()
                .push(rss_bytes(*p).unwrap_or(0));
        }
        for (i, s) in check::statuses(apis).await.iter().enumerate() {
            if let Some(h) = s.as_ref().map(check::Head::of) {
                obs.record(i, h);
            }
        }
        if let Some((i, st)) = cluster.reap_exited().into_iter().next() {
            bail!("node {i} exited during the soak: {st}");
        }
    }
    Ok(samples)
}

/// The nodes serving the slow peer grow no more than the control group.
fn check_rss(
    rss0: &[u64],
    samples: &BTreeMap<usize, Vec<u64>>,
    connected: &[usize],
    control: &[usize],
    stats: &ProxyStats,
    report: &mut Report,
) {
    let growth = |i: usize| -> f64 {
        let end = samples.get(&i).and_then(|v| v.last()).copied().unwrap_or(0);
        end as f64 / rss0[i].max(1) as f64 - 1.0
    };
    let peak = |i: usize| -> f64 {
        let max = samples
            .get(&i)
            .and_then(|v| v.iter().max())
            .copied()
            .unwrap_or(0);
        max as f64 / rss0[i].max(1) as f64 - 1.0
    };
    // Without a control group, the reference is no growth at all.
    let control_growth = if control.is_empty() {
        0.0
    } else {
        control.iter().map(|i| peak(*i)).sum::<f64>() / control.len() as f64
    };
    let mut worst_excess: f64 = 0.0;
    let mut lines = vec![];
    for (i, start) in rss0.iter().enumerate() {
        let g = growth(i);
        let p = peak(i);
        let tag = if connected.contains(&i) {
            "slow-peer"
        } else {
            "control"
        };
        lines.push(format!(
            "node {i} ({tag}): {} → {} MiB ({:+.1} %, peak {:+.1} %)",
            mib(*start),
            mib(samples.get(&i).and_then(|v| v.last()).copied().unwrap_or(0)),
            g * 100.0,
            p * 100.0
        ));
        if connected.contains(&i) {
            worst_excess = worst_excess.max(p - control_growth);
        }
    }
    report.metric(
        "rss_mib_start",
        rss0.iter().map(|b| mib(*b)).collect::<Vec<_>>(),
    );
    report.metric(
        "control_growth_pct",
        (control_growth * 1000.0).round() / 10.0,
    );
    report.metric(
        "worst_excess_growth_pct",
        (worst_excess * 1000.0).round() / 10.0,
    );
    report.metric(
        "proxy_connections",
        stats.connections.load(Ordering::Relaxed),
    );
    report.metric(
        "proxy_bytes_to_slow_peer",
        stats.down_bytes.load(Ordering::Relaxed),
    );
    report.metric(
        "proxy_bytes_from_slow_peer",
        stats.up_bytes.load(Ordering::Relaxed),
    );
    // Without this the RSS check would pass for a slow peer that never connected.
    let (conns, down) = (
        stats.connections.load(Ordering::Relaxed),
        stats.down_bytes.load(Ordering::Relaxed),
    );
    report.check(
        "the slow peer was connected and read from",
        conns >= 1 && down >= MIN_BYTES_TO_SLOW_PEER,
        format!(
            "{conns} proxied connections, {down} bytes to the slow peer (at least \
             {MIN_BYTES_TO_SLOW_PEER})"
        ),
    );
    report.check(
        "RSS of the nodes serving the slow peer stays within 10 % of the control group",
        worst_excess <= MAX_RSS_DRIFT,
        format!(
            "{}; control group peak {:+.1} %",
            lines.join("; "),
            control_growth * 100.0
        ),
    );
}
