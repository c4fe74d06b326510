//! `chorus devnet`: a local network of real nodes replaying hourly EUR/USD bars, with a
//! report that compares the network's inference against every worker.
//!
//! One bar is one epoch: at epoch `e` every model has seen bars `0..=e` and predicts the
//! target of bar `e + 1`; reputers learn that truth one epoch later (the ground-truth lag) and
//! report losses; checkpoints finalize everything. The clock is the real clock, with epochs of
//! `--epoch-ms` milliseconds (default 200): hours of market data replayed in minutes.

mod observe;
mod procs;
pub mod report;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use chorus_crdt::checkpoint::TimeoutConfig;
use chorus_crdt::ledger::LedgerEvent;
use chorus_crdt::replica::ReplicaConfig;
use chorus_node::localnet::{LocalNet, LocalPlan, LocalReputer, LocalTopic, LocalWorker, node_key};
use chorus_node::models::{
    Bars, BuiltinSpec, ForecasterSpec, ModelSpec, Target, TruthSpec, default_set,
};
use chorus_protocol::ids::{Amount, TopicId};
use chorus_protocol::params::ModuleParams;
use chorus_protocol::topic::{LossMethod, TopicSpec};
use clap::{Args, ValueEnum};
use serde::Serialize;

use crate::output::{BadInput, Output};
use observe::{Observed, Source};
use procs::Procs;
use report::{EpochRecord, TopicRun, WorkerInfo, write_report};

/// The shipped data: hourly EUR/USD bars (provenance: `data/README.md`).
const EURUSD: &str = include_str!("../../../data/eurusd_1h.csv");

/// Epochs before the report starts scoring by default (regrets need 1/alpha_regret epochs to
/// become experienced; the topic is a plain mean before that).
const WARMUP: u64 = 100;

/// Which prediction problem.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum TargetArg {
    /// Next bar's ln(high/low).
    Range,
    /// Next bar's close.
    Close,
    /// Next bar's log return.
    Return,
}

impl TargetArg {
    fn target(self) -> Target {
        match self {
            TargetArg::Range => Target::Range,
            TargetArg::Close => Target::Close,
            TargetArg::Return => Target::Return,
        }
    }

    fn name(self) -> &'static str {
        match self {
            TargetArg::Range => "range",
            TargetArg::Close => "close",
            TargetArg::Return => "return",
        }
    }
}

/// `chorus devnet` flags.
#[derive(Debug, Args)]
pub struct DevnetArgs {
    /// Epochs to run (`all`: the whole file).
    #[arg(long, default_value = "1000")]
    epochs: String,
    /// Bars to replay (CSV with a header and at least `close`; `high`, `low` for the range
    /// target; optional `time`/`date`). Default: the shipped hourly EUR/USD bars.
    #[arg(long)]
    data: Option<PathBuf>,
    /// One topic of this target instead of the default pair (range and close).
    #[arg(long, value_enum)]
    target: Option<TargetArg>,
    /// Regret EMA α of the topics.
    #[arg(long, default_value_t = 0.01)]
    alpha_regret: f64,
    /// p of the weight function.
    #[arg(long, default_value_t = 3.0)]
    p_norm: f64,
    /// Nodes (≥ 8): the last 3 are reputers, the 2 before forecasters, the rest inferers (at
    /// most 9 models); the first 4 are validators.
    #[arg(long, default_value_t = 14)]
    nodes: usize,
    /// Epoch length in milliseconds of real time.
    #[arg(long, default_value_t = 200)]
    epoch_ms: u64,
    /// Seed of the node keys.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Output directory (data, report).
    #[arg(long, short)]
    out: Option<PathBuf>,
    /// Leave the network running at the end and print every node's REST URL (Ctrl-C stops
    /// it).
    #[arg(long)]
    keep: bool,
    /// Run every node as its own OS process (`chorus node run` with generated configs),
    /// watched through node 0's REST API, instead of all nodes in this process.
    #[arg(long)]
    processes: bool,
    /// Epochs excluded from the scores at the start (the mechanism learns meanwhile).
    #[arg(long, default_value_t = WARMUP)]
    warmup: u64,
}

#[derive(Serialize)]
struct Summary {
    epochs: u64,
    checkpoints_finalized: u64,
    supply_conserved: bool,
    nodes_agree: bool,
    warmup_epochs: u64,
    seconds: f64,
    timing: Timing,
    topics: Vec<report::TopicSummary>,
    report: Vec<String>,
}

/// Where the wall time of a run went (s).
#[derive(Serialize)]
struct Timing {
    /// Keys, genesis, starting the nodes and their connections.
    start: f64,
    /// Idle until the genesis time (the nodes' first epoch).
    until_genesis: f64,
    /// The epochs, paced by the clock: `epochs × epoch_ms`.
    epochs_paced: f64,
    /// Beyond the pacing until the last epoch was finalized (finality and settlement lag).
    finality_tail: f64,
    /// Agreement and supply checks, tables, CSV and plots.
    report: f64,
}

impl Timing {
    fn line(&self) -> String {
        format!(
            "where the time went: start {:.1} s, until genesis {:.1} s, epochs {:.1} s (paced by \
             the clock), finality tail {:.1} s, checks and report {:.1} s",
            self.start, self.until_genesis, self.epochs_paced, self.finality_tail, self.report
        )
    }
}

struct TopicPlan {
    id: TopicId,
    name: String,
    target: TargetArg,
    workers: BTreeMap<String, (String, String)>, // hex key -> (name, model)
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn topic_spec(name: &str, start: u64, epoch_ms: u64, args: &DevnetArgs) -> TopicSpec {
    TopicSpec {
        name: name.into(),
        metadata: "replayed hourly bars, one bar per epoch".into(),
        loss: LossMethod::Mse,
        start_ms: start,
        epoch_length_ms: epoch_ms,
        // Most of the epoch: bundles travel through a loaded local network of many nodes.
        submission_window_ms: epoch_ms * 3 / 4,
        ground_truth_lag_ms: epoch_ms,
        p_norm: args.p_norm,
        alpha_regret: args.alpha_regret,
        epsilon: 0.01,
        merit_sortition_alpha: 0.1,
        active_inferer_quantile: 0.25,
        active_forecaster_quantile: 0.25,
        active_reputer_quantile: 0.25,
        allow_negative: false,
    }
}

/// Where the nodes' stores go: a tmpfs when the machine has one (fsync is free there, and a
/// devnet's state is disposable), else `<out>/nodes`.
fn data_root(out: &std::path::Path) -> PathBuf {
    let shm = PathBuf::from("/dev/shm");
    if shm.is_dir() {
        let dir = shm.join(format!("chorus-devnet-{}-{}", std::process::id(), now_ms()));
        if std::fs::create_dir_all(&dir).is_ok() {
            return dir;
        }
    }
    out.join("nodes")
}

/// Run the devnet.
pub fn run(args: DevnetArgs, out: &Output) -> anyhow::Result<()> {
    if args.nodes < 8 || args.nodes > 64 {
        return Err(BadInput(format!("--nodes must be in 8..=64, got {}", args.nodes)).into());
    }
    if args.epoch_ms < 50 {
        return Err(BadInput("--epoch-ms must be at least 50".into()).into());
    }
    let start = now_ms();
    let dir = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("devnet-{start}")));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let data = match &args.data {
        Some(p) => p.clone(),
        None => {
            let p = dir.join("eurusd_1h.csv");
            std::fs::write(&p, EURUSD).with_context(|| format!("writing {}", p.display()))?;
            p
        }
    };
    let bars = Bars::load_csv(&data).map_err(|e| BadInput(format!("{}: {e}", data.display())))?;
    let max_epochs = (bars.len() as u64).saturating_sub(2);
    let epochs = match args.epochs.as_str() {
        "all" => max_epochs,
        n => n
            .parse::<u64>()
            .map_err(|_| BadInput(format!("--epochs: not a number or `all`: {n}")))?
            .min(max_epochs),
    };
    if epochs < 10 {
        return Err(BadInput(format!("only {epochs} epochs: use at least 10")).into());
    }
    let targets: Vec<TargetArg> = match args.target {
        Some(t) => vec![t],
        None => vec![TargetArg::Range, TargetArg::Close],
    };
    for t in &targets {
        bars.check_target(t.target())
            .map_err(|e| BadInput(format!("{}: {e}", data.display())))?;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(run_async(args, out, dir, data, bars, epochs, targets))
}

#[allow(clippy::too_many_arguments)]
async fn run_async(
    args: DevnetArgs,
    out: &Output,
    dir: PathBuf,
    data: PathBuf,
    bars: Bars,
    epochs: u64,
    targets: Vec<TargetArg>,
) -> anyhow::Result<()> {
    let t_start = Instant::now();
    let n = args.nodes;
    let reputer_nodes = [n - 3, n - 2, n - 1];
    let forecaster_nodes = [n - 5, n - 4];
    let inferer_nodes: Vec<usize> = (0..(n - 5).min(9)).collect();
    // Time to start every node and let them connect before epoch 0 (processes take longer).
    let genesis_time = now_ms() + if args.processes { 10_000 } else { 4_000 };
    let mut topics = vec![];
    let mut plans = vec![];
    for (i, t) in targets.iter().enumerate() {
        let id = TopicId(i as u64 + 1);
        let name = format!("EUR/USD 1h {}", t.name());
        let truth = TruthSpec::Csv {
            path: data.clone(),
            target: t.target(),
        };
        let mut workers = vec![];
        let mut names = BTreeMap::new();
        for (node, (model_name, model)) in inferer_nodes.iter().zip(default_set(t.target())) {
            let label = format!("w{node}");
            names.insert(
                node_key(args.seed, *node).public().to_hex(),
                (label.clone(), model_name.clone()),
            );
            workers.push(LocalWorker {
                node: *node,
                name: label,
                model: Some(ModelSpec::Builtin(BuiltinSpec {
                    target: t.target(),
                    model,
                })),
                forecaster: None,
                data: Some(data.clone()),
                truth: None,
            });
        }
        for (k, node) in forecaster_nodes.iter().enumerate() {
            let label = format!("f{k}");
            names.insert(
                node_key(args.seed, *node).public().to_hex(),
                (
                    label.clone(),
                    if k == 0 {
                        "ema-loss"
                    } else {
                        "regime-ema-loss"
                    }
                    .into(),
                ),
            );
            workers.push(LocalWorker {
                node: *node,
                name: label,
                model: None,
                forecaster: Some(if k == 0 {
                    ForecasterSpec::Ema {
                        alpha: 0.1,
                        loss_floor: 1e-12,
                    }
                } else {
                    serde_json::from_value(serde_json::json!({"kind": "regime_ema"}))?
                }),
                data: Some(data.clone()),
                truth: Some(truth.clone()),
            });
        }
        let unit = 10u128.pow(18);
        let reputers = reputer_nodes
            .iter()
            .zip([50_000u128, 30_000, 20_000])
            .map(|(node, stake)| LocalReputer {
                node: *node,
                stake: Amount(stake * unit),
                truth: truth.clone(),
            })
            .collect();
        topics.push(LocalTopic {
            id,
            spec: topic_spec(&name, genesis_time, args.epoch_ms, &args),
            workers,
            reputers,
        });
        plans.push(TopicPlan {
            id,
            name,
            target: *t,
            workers: names,
        });
    }
    let period = args.epoch_ms;
    let plan = LocalPlan {
        name: "chorus-devnet".into(),
        seed: args.seed,
        nodes: n,
        validators: (0..4.min(n)).collect(),
        topics,
        params: ModuleParams {
            checkpoint_period_ms: period,
            min_epoch_length_ms: 1,
            // All nodes share one clock; the allowance absorbs gossip delay under load.
            max_clock_skew_ms: (period / 5).max(20),
            ..ModuleParams::default()
        },
        genesis_time_ms: genesis_time,
        data_root: data_root(&dir),
        memory: false,
        replica: ReplicaConfig {
            propose_grace_ms: (period / 5).max(20),
            timeouts: TimeoutConfig {
                propose_ms: (period * 3).max(500),
                propose_delta_ms: period,
                prevote_ms: period.max(200),
                prevote_delta_ms: period / 2,
                precommit_ms: period.max(200),
                precommit_delta_ms: period / 2,
                rebroadcast_ms: (period * 5).max(1_000),
                max_ms: 30_000,
            },
            validator: true,
            ..ReplicaConfig::default()
        },
        tick: Duration::from_millis((period / 8).clamp(10, 50)),
        store_cache_bytes: chorus_node::store::ops::DEFAULT_CACHE_BYTES,
        decimals: 18,
    };
    if !out.json {
        println!(
            "devnet: {n} nodes{} (4 validators, {} inferers, 2 forecasters, 3 reputers), {} topic(s), {epochs} epochs of {} ms; output in {}",
            if args.processes {
                ", one OS process each"
            } else {
                ""
            },
            inferer_nodes.len(),
            plans.len(),
            args.epoch_ms,
            dir.display()
        );
    }
    let mut local: Option<LocalNet> = None;
    let mut procs: Option<Procs> = None;
    let sources: Vec<Source> = if args.processes {
        let bin = std::env::current_exe().context("locating the chorus executable")?;
        let mut p = Procs::start(&plan, &bin, &dir.join("logs"))?;
        p.wait_ready(Duration::from_secs(60)).await?;
        let clients = p.clients()?;
        procs = Some(p);
        clients.into_iter().map(Source::Remote).collect()
    } else {
        let net = LocalNet::start(plan.clone()).await?;
        let handles = (0..n)
            .map(|i| net.handle(i).map(|h| Source::Local(h.clone())))
            .collect::<Option<Vec<_>>>()
            .context("a node is not running")?;
        local = Some(net);
        handles
    };
    let t_up = Instant::now();
    let until_genesis = genesis_time.saturating_sub(now_ms()) as f64 / 1000.0;
    let node0 = &sources[0];
    let topic_ids: Vec<TopicId> = plans.iter().map(|p| p.id).collect();
    let mut observed = node0.watch(&topic_ids).await?;
    let mut replay: BTreeMap<TopicId, chorus_node::models::Replay> = BTreeMap::new();
    for p in &plans {
        replay.insert(
            p.id,
            chorus_node::models::Replay::new(bars.clone(), p.target.target())?,
        );
    }
    let mut records: BTreeMap<TopicId, BTreeMap<u64, EpochRecord>> = BTreeMap::new();
    let mut rewards: BTreeMap<(TopicId, u64), BTreeMap<String, u128>> = BTreeMap::new();
    let mut last_height = 0u64;
    let debug = std::env::var_os("CHORUS_DEVNET_DEBUG").is_some();
    // The run fails only if finalization stalls (a loaded machine just makes it slower).
    const STALL: Duration = Duration::from_secs(60);
    let mut last_progress = Instant::now() + Duration::from_secs(30);
    let mut last_alive_check = Instant::now();
    let done = |records: &BTreeMap<TopicId, BTreeMap<u64, EpochRecord>>| {
        plans.iter().all(|p| {
            records
                .get(&p.id)
                .and_then(|m| m.last_key_value())
                .is_some_and(|(e, _)| *e + 1 >= epochs)
        })
    };
    while !done(&records) {
        if Instant::now() > last_progress + STALL {
            bail!(
                "finalization stalled: no epoch finalized for {} s",
                STALL.as_secs()
            );
        }
        if let Some(p) = procs.as_mut()
            && last_alive_check.elapsed() > Duration::from_secs(2)
        {
            p.check_alive()?;
            last_alive_check = Instant::now();
        }
        let next = match tokio::time::timeout(Duration::from_secs(1), observed.recv()).await {
            Err(_) => continue,
            Ok(None) => bail!("node 0 stopped"),
            Ok(Some(o)) => o,
        };
        match next {
            Observed::Inference(ev) if ev.finalized && ev.epoch < epochs => {
                last_progress = Instant::now();
                let Some(plan) = plans.iter().find(|p| p.id == ev.topic) else {
                    continue;
                };
                let truth = replay.get(&ev.topic).and_then(|r| r.truth(ev.epoch));
                let rec = record(node0, plan, ev.epoch, truth, ev.checkpoint_height).await;
                if !out.json {
                    println!(
                        "[{:5}] epoch {:5}  truth {:>12.6e}  network {:>12.6e}  checkpoint {}",
                        plan.target.name(),
                        ev.epoch,
                        truth.unwrap_or(f64::NAN),
                        ev.combined_value,
                        ev.checkpoint_height.unwrap_or(0),
                    );
                }
                if let Some(rec) = rec {
                    records.entry(ev.topic).or_default().insert(ev.epoch, rec);
                }
            }
            Observed::Inference(_) => {}
            Observed::Ledger { height, events } => {
                last_height = last_height.max(height);
                for e in &events {
                    match e {
                        LedgerEvent::Reward {
                            topic,
                            epoch,
                            to,
                            amount,
                            ..
                        } => {
                            *rewards
                                .entry((*topic, *epoch))
                                .or_default()
                                .entry(to.to_hex())
                                .or_default() += amount.0;
                        }
                        LedgerEvent::MechanismError {
                            topic,
                            epoch,
                            reason,
                        } => {
                            eprintln!("devnet: topic {topic} epoch {epoch}: {reason}");
                        }
                        other => {
                            if debug
                                && !matches!(
                                    other,
                                    LedgerEvent::Emission { .. }
                                        | LedgerEvent::NetworkInference { .. }
                                )
                            {
                                eprintln!("devnet: height {height}: {other:?}");
                            }
                        }
                    }
                }
            }
            Observed::Lagged(n) => {
                eprintln!("devnet: missed {n} events from node 0 (falling behind)");
            }
            Observed::Closed(why) => bail!("{why}"),
        }
    }
    let t_epochs_done = Instant::now();
    // Rewards of the last epochs are paid a checkpoint later: give them a moment.
    tokio::time::sleep(Duration::from_millis(args.epoch_ms * 3)).await;
    while let Ok(o) = observed.try_recv() {
        let Observed::Ledger { height, events } = o else {
            continue;
        };
        last_height = last_height.max(height);
        for e in events {
            if let LedgerEvent::Reward {
                topic,
                epoch,
                to,
                amount,
                ..
            } = e
            {
                *rewards
                    .entry((topic, epoch))
                    .or_default()
                    .entry(to.to_hex())
                    .or_default() += amount.0;
            }
        }
    }
    let nodes_agree = agree(&sources).await;
    let status = node0.status().await?;
    if std::env::var_os("CHORUS_DEVNET_DEBUG").is_some() {
        for p in &plans {
            eprintln!("scores {}: {}", p.id, node0.scores(p.id).await?);
            eprintln!("topic {}: {}", p.id, node0.topic(p.id).await?);
        }
        eprintln!("status: {status}");
        for (i, src) in sources.iter().enumerate() {
            let st = src.status().await?;
            eprintln!(
                "node {i}: height {} submissions {}",
                st["height"], st["submissions"]
            );
        }
        if let Source::Local(h) = node0 {
            for line in h.metrics().encode().lines() {
                if line.contains("validation_outcomes") && !line.starts_with('#') {
                    eprintln!("{line}");
                }
            }
        }
    }
    let supply_conserved = status["supply"]["conserved"].as_bool().unwrap_or(false);
    let mut runs = vec![];
    for p in &plans {
        let scores = node0.scores(p.id).await.ok();
        let mut run = TopicRun {
            name: p.name.clone(),
            target: p.target.name().into(),
            workers: p
                .workers
                .values()
                .map(|(name, model)| WorkerInfo::new(name.clone(), model.clone()))
                .collect(),
            records: vec![],
            score_ema: BTreeMap::new(),
            token_decimals: 18,
        };
        if let Some(s) = scores {
            for field in ["inferers", "forecasters"] {
                if let Some(m) = s[field].as_object() {
                    for (k, v) in m {
                        if let (Some((name, _)), Some(v)) = (p.workers.get(k), v.as_f64()) {
                            run.score_ema.insert(name.clone(), v);
                        }
                    }
                }
            }
        }
        for (epoch, mut rec) in records.remove(&p.id).unwrap_or_default() {
            if let Some(r) = rewards.get(&(p.id, epoch)) {
                for (k, amount) in r {
                    if let Some((name, _)) = p.workers.get(k) {
                        rec.rewards.insert(name.clone(), *amount);
                    }
                }
            }
            run.records.push(rec);
        }
        runs.push(run);
    }
    let files = write_report(&dir.join("report"), &runs, args.warmup)?;
    let seconds = t_start.elapsed().as_secs_f64();
    let epochs_paced = (epochs * args.epoch_ms) as f64 / 1000.0;
    let running = t_epochs_done.duration_since(t_up).as_secs_f64();
    let timing = Timing {
        start: t_up.duration_since(t_start).as_secs_f64(),
        until_genesis,
        epochs_paced,
        finality_tail: (running - until_genesis - epochs_paced).max(0.0),
        report: t_epochs_done.elapsed().as_secs_f64(),
    };
    if out.json {
        let summary = Summary {
            epochs,
            checkpoints_finalized: last_height,
            supply_conserved,
            warmup_epochs: args.warmup,
            nodes_agree,
            seconds,
            timing,
            topics: files.summaries.clone(),
            report: files
                .paths()
                .iter()
                .map(|p| p.display().to_string())
                .collect(),
        };
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        println!();
        println!("{}", files.tables());
        println!(
            "supply check: {} (genesis {} + minted {} - slashed {} = total {})",
            if supply_conserved {
                "conserved"
            } else {
                "BROKEN"
            },
            status["supply"]["genesis"].as_str().unwrap_or("?"),
            status["supply"]["minted"].as_str().unwrap_or("?"),
            status["supply"]["slashed"].as_str().unwrap_or("?"),
            status["supply"]["total"].as_str().unwrap_or("?"),
        );
        println!(
            "nodes agree: {}",
            if nodes_agree {
                "yes (same height and ledger root on every node)"
            } else {
                "NO"
            }
        );
        println!("checkpoints finalized: {last_height}; wall time {seconds:.1} s");
        println!("{}", timing.line());
        println!("report files:");
        for p in files.paths() {
            println!("  {}", p.display());
        }
    }
    if args.keep {
        keep_running(&plan, local.as_ref(), procs.as_ref()).await?;
    }
    let root = plan.data_root.clone();
    if let Some(net) = local {
        net.shutdown().await;
    }
    if let Some(mut p) = procs {
        tokio::task::block_in_place(|| p.shutdown(Duration::from_secs(10)));
    }
    if root.starts_with("/dev/shm") {
        let _ = std::fs::remove_dir_all(&root);
    }
    if !supply_conserved {
        bail!("supply was not conserved");
    }
    if !nodes_agree {
        bail!("the nodes did not agree on the ledger");
    }
    Ok(())
}

/// `--keep`: print every node's REST URL (serving the API of in-process nodes first) and wait
/// for Ctrl-C.
async fn keep_running(
    plan: &LocalPlan,
    local: Option<&LocalNet>,
    procs: Option<&Procs>,
) -> anyhow::Result<()> {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut servers = tokio::task::JoinSet::new();
    let mut urls = vec![];
    if let Some(net) = local {
        for i in 0..plan.nodes {
            let Some(handle) = net.handle(i) else {
                continue;
            };
            let token_file = plan.data_root.join(format!("node-{i}")).join("admin.token");
            let token = chorus_node::api::auth::load_or_create_token(&token_file)
                .with_context(|| format!("admin token {}", token_file.display()))?;
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            urls.push((format!("http://{}", listener.local_addr()?), token_file));
            let router = chorus_node::api::router(handle.clone(), token);
            let mut stop = stop_rx.clone();
            servers.spawn(chorus_node::api::serve(listener, router, async move {
                let _ = stop.wait_for(|s| *s).await;
            }));
        }
    }
    if let Some(p) = procs {
        for (api, dir) in p.apis.iter().zip(&p.dirs) {
            urls.push((api.clone(), dir.join("admin.token")));
        }
    }
    println!();
    println!("the network keeps running; REST APIs (admin token files beside them):");
    for (i, (url, token)) in urls.iter().enumerate() {
        println!("  node {i:2}  {url}   {}", token.display());
    }
    if let Some((url, _)) = urls.first() {
        println!("try:");
        println!("  chorus topic watch 1 --node {url}");
        println!("  curl {url}/v1/topics/1/inference");
        println!("  curl -N '{url}/v1/events?kinds=reward'");
    }
    println!("press Ctrl-C to stop it");
    tokio::signal::ctrl_c().await?;
    let _ = stop_tx.send(true);
    while servers.join_next().await.is_some() {}
    Ok(())
}

/// Whether every node reports the same height and ledger root (tried for a few seconds, since
/// nodes apply each checkpoint a few milliseconds apart).
async fn agree(sources: &[Source]) -> bool {
    for _ in 0..200 {
        let mut seen = vec![];
        for src in sources {
            if let Ok(s) = src.status().await {
                seen.push((s["height"].clone(), s["ledger_root"].clone()));
            }
        }
        if seen.len() == sources.len() && seen.iter().all(|s| *s == seen[0]) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    false
}

/// The report row of one finalized epoch, from node 0's finalized inference.
async fn record(
    node: &Source,
    plan: &TopicPlan,
    epoch: u64,
    truth: Option<f64>,
    height: Option<u64>,
) -> Option<EpochRecord> {
    let truth = truth?;
    let v = node.inference(plan.id, epoch).await.ok()?;
    let mut rec = EpochRecord::new(epoch, truth);
    rec.checkpoint_height = height;
    rec.combined = v["combined_value"].as_f64();
    rec.naive = v["naive_value"].as_f64();
    let name = |k: &str| plan.workers.get(k).map(|(n, _)| n.clone());
    if let Some(m) = v["inferer_values"].as_object() {
        for (k, x) in m {
            if let (Some(n), Some(x)) = (name(k), x.as_f64()) {
                rec.inferences.insert(n, x);
            }
        }
    }
    if let Some(m) = v["inferer_weights"].as_object() {
        let total: f64 = m.values().filter_map(|w| w.as_f64()).sum();
        for (k, w) in m {
            if let (Some(n), Some(w)) = (name(k), w.as_f64())
                && total > 0.0
            {
                rec.weights.insert(n, w / total);
            }
        }
    }
    let loss = |x: f64| libm::log10(((x - truth) * (x - truth)).max(1e-30));
    for (n, x) in &rec.inferences {
        rec.losses.insert(n.clone(), loss(*x));
    }
    if let Some(c) = rec.combined {
        rec.losses.insert("combined".into(), loss(c));
    }
    if let Some(c) = rec.naive {
        rec.losses.insert("naive".into(), loss(c));
    }
    Some(rec)
}
