//! `chorus devnet`: a local network of real nodes replaying hourly EUR/USD bars, with a
//! report that compares the network's inference against every worker.
//!
//! One bar is one epoch: at epoch `e` every model has seen bars `0..=e` and predicts the
//! target of bar `e + 1`; reputers learn that truth one epoch later (the ground-truth lag) and
//! report losses; checkpoints finalize everything. By default the nodes run on one stepped
//! clock that the devnet moves only when every node holds what the next event needs
//! ([`stepped`]): a run is reproducible byte for byte and as fast as the CPU allows. With
//! `--epoch-ms` (and for `--processes` or `--keep`) the clock is the real clock, with epochs of
//! that many milliseconds: hours of market data replayed in minutes, with whatever timing costs.
//!
//! The run, by concern: [`plan`] (who runs what, tunables from the epoch length), [`network`]
//! (starting the nodes, in this process or as processes), [`stepped`] (the stepped clock),
//! [`follow`] (following node 0 through the epochs and the finality tail), [`results`] (checks,
//! report rows, printing), [`report`] (tables, CSV, plots).

mod follow;
mod network;
mod observe;
mod plan;
mod procs;
mod replay;
pub mod report;
mod results;
mod stepped;
#[cfg(test)]
mod tests;

use crate::output::outln;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use chorus_node::models::{Bars, Target};
use chorus_protocol::ids::TopicId;
use chorus_protocol::topic::MechanismVersion;
use clap::{Args, ValueEnum};

use crate::output::{BadInput, Output};
use chorus_node::clock::Clock;
use network::Network;
use plan::DevnetPlan;
use report::write_report;
use results::{Checks, Summary, Timing};
use stepped::{Schedule, Stepper};

/// The shipped data: hourly EUR/USD bars (provenance: `data/README.md`).
const EURUSD: &str = include_str!("../../../data/eurusd_1h.csv");

/// Epochs before the report starts scoring by default (regrets need 1/alpha_regret epochs to
/// become experienced; the topic is a plain mean before that).
const WARMUP: u64 = 100;

/// Shortest `--epoch-ms`: shorter epochs leave bundles no time to cross a loaded local
/// network.
pub const MIN_EPOCH_MS: u64 = 50;

/// Longest `--epoch-ms` (10 minutes): even the shortest run (10 epochs) takes over an hour and
/// a half at this length; the plan's timeouts are checked up to here.
pub const MAX_EPOCH_MS: u64 = 600_000;

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
    /// Run on the wall clock with epochs of this many milliseconds of real time (50 to
    /// 600000). Without it the network runs on a stepped clock (see the module doc); with
    /// `--processes` or `--keep` the default is 200.
    #[arg(long)]
    epoch_ms: Option<u64>,
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
    /// The topics' mechanism version: `allora-v0.6` or `allora-mad` (docs/mechanism.md).
    #[arg(long, default_value = "allora-v0.6")]
    mechanism: MechanismVersion,
    /// No network: run the same plan through the nodes' ledger code one checkpoint per epoch,
    /// every bundle on time (deterministic and CPU-bound; README, "The devnet").
    #[arg(long, conflicts_with_all = ["processes", "keep"])]
    replay: bool,
    /// The topics run commit-reveal: workers publish a commitment in the first quarter of each
    /// epoch and reveal their bundle in the next half (README, "Commit-reveal").
    #[arg(long, conflicts_with = "replay")]
    commit_reveal: bool,
    /// Add a copycat worker on its own node: it publishes the latest inference it can see
    /// from the best-scoring inferer (README, "Commit-reveal").
    #[arg(long, conflicts_with = "replay")]
    copycat: bool,
}

/// Wall-clock epoch length when `--processes` or `--keep` runs without `--epoch-ms`, and of
/// the replay (its results do not depend on it).
pub const WALL_EPOCH_MS: u64 = 200;

/// Epoch length of the stepped clock (ms of its time, not real time): like a real topic's
/// minute, so every timeout and the anti-entropy period fit well within a step.
pub const STEPPED_EPOCH_MS: u64 = 60_000;

/// The stepped run's genesis time (ms of its clock): any fixed value, so checkpoint ids repeat.
const STEPPED_GENESIS_MS: u64 = 1_700_000_000_000;

impl DevnetArgs {
    /// Whether the network runs on the stepped clock: in-process, no `--epoch-ms`, no
    /// `--keep` (a kept network runs on by itself).
    fn stepped(&self) -> bool {
        self.epoch_ms.is_none() && !self.processes && !self.keep && !self.replay
    }

    /// The topics' epoch length (and checkpoint period), ms.
    fn epoch_length_ms(&self) -> u64 {
        match self.epoch_ms {
            Some(ms) => ms,
            None if self.stepped() => STEPPED_EPOCH_MS,
            None => WALL_EPOCH_MS,
        }
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The checked inputs of a run.
struct Inputs {
    /// Output directory.
    dir: PathBuf,
    /// The bars' CSV file.
    data: PathBuf,
    bars: Bars,
    /// Epochs to run.
    epochs: u64,
    targets: Vec<TargetArg>,
}

/// Run the devnet.
pub fn run(args: DevnetArgs, out: &Output) -> anyhow::Result<()> {
    let inputs = inputs(&args)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(run_async(args, out, inputs))
}

/// Check the flags, make the output directory, load the bars.
fn inputs(args: &DevnetArgs) -> anyhow::Result<Inputs> {
    if args.nodes < 8 || args.nodes > 64 {
        return Err(BadInput(format!("--nodes must be in 8..=64, got {}", args.nodes)).into());
    }
    if let Some(ms) = args.epoch_ms
        && !(MIN_EPOCH_MS..=MAX_EPOCH_MS).contains(&ms)
    {
        return Err(BadInput(format!(
            "--epoch-ms must be in {MIN_EPOCH_MS}..={MAX_EPOCH_MS} (50 ms to 10 minutes), got {ms}"
        ))
        .into());
    }
    let dir = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("devnet-{}", now_ms())));
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
    Ok(Inputs {
        dir,
        data,
        bars,
        epochs,
        targets,
    })
}

async fn run_async(args: DevnetArgs, out: &Output, inputs: Inputs) -> anyhow::Result<()> {
    if args.replay {
        return run_replay(args, out, inputs).await;
    }
    let t_start = Instant::now();
    let Inputs {
        dir,
        data,
        bars,
        epochs,
        targets,
    } = inputs;
    let stepped = args.stepped();
    let (clock, driver) = match stepped {
        true => {
            let (clock, driver) = Clock::stepped(STEPPED_GENESIS_MS - 1);
            (clock, Some(driver))
        }
        false => (Clock::system(), None),
    };
    // On the wall clock: time to start every node and let them connect before epoch 0
    // (processes take longer). A stepped clock waits for them instead.
    let genesis_time = match stepped {
        true => STEPPED_GENESIS_MS,
        false => now_ms() + if args.processes { 10_000 } else { 4_000 },
    };
    let plan = DevnetPlan::new(&args, &data, &targets, genesis_time, plan::data_root(&dir))?;
    if !out.json {
        let pace = match stepped {
            true => "on a stepped clock (each step as soon as every node holds what it needs)"
                .to_string(),
            false => format!("of {} ms", plan.epoch_ms),
        };
        outln!(
            "devnet: {} nodes{} (4 validators, {} inferers, 2 forecasters, 3 reputers{}), {} topic(s){}, {epochs} epochs {pace}; output in {}",
            plan.local.nodes,
            if args.processes {
                ", one OS process each"
            } else {
                ""
            },
            plan.inferers,
            if args.copycat { ", a copycat" } else { "" },
            plan.topics.len(),
            if args.commit_reveal {
                " with commit-reveal"
            } else {
                ""
            },
            dir.display()
        )?;
    }
    let mut net = Network::start(&plan.local, args.processes, &dir.join("logs"), clock).await?;
    let t_up = Instant::now();
    let until_genesis = genesis_time.saturating_sub(now_ms()) as f64 / 1000.0;
    let topic_ids: Vec<TopicId> = plan.topics.iter().map(|p| p.id).collect();
    let mut observed = net.node0().watch(&topic_ids).await?;
    let stepper = match driver {
        Some(driver) => {
            let stepper = Stepper::new(driver, net.local_handles()?, Schedule::of(&plan)?);
            Some(tokio::spawn(stepper.run(epochs)))
        }
        None => None,
    };
    let followed = follow::epochs(
        &mut net,
        &mut observed,
        &plan,
        &bars,
        epochs,
        out.json,
        stepper.as_ref(),
    )
    .await;
    let mut seen = match (followed, stepper.as_ref()) {
        (Ok(seen), _) => seen,
        (Err(e), None) => return Err(e),
        (Err(e), Some(_)) => return Err(stepper_error(e, stepper).await),
    };
    let t_epochs_done = Instant::now();
    let steps = match stepper {
        Some(handle) => {
            let steps = handle.await.context("the stepped clock")??;
            follow::drain(&mut seen, &mut observed);
            Some(steps)
        }
        None => {
            follow::finality_tail(&mut seen, &mut observed, plan.epoch_ms).await;
            None
        }
    };
    let t_tail_done = Instant::now();
    let checks = Checks::run(&net, &plan.topics).await?;
    let checkpoints_finalized = seen.last_height;
    let runs = results::topic_runs(net.node0(), &plan.topics, seen).await;
    let files = write_report(&dir.join("report"), &runs, args.warmup)?;
    let seconds = t_start.elapsed().as_secs_f64();
    let start = t_up.duration_since(t_start).as_secs_f64();
    let timing = match &steps {
        Some(steps) => Timing {
            clock: "stepped",
            start,
            until_genesis: steps.connect_seconds,
            epochs: (t_epochs_done.duration_since(t_up).as_secs_f64() - steps.connect_seconds)
                .max(0.0),
            finality_tail: t_tail_done.duration_since(t_epochs_done).as_secs_f64(),
            report: t_tail_done.elapsed().as_secs_f64(),
        },
        None => {
            let epochs_paced = (epochs * plan.epoch_ms) as f64 / 1000.0;
            let running = t_epochs_done.duration_since(t_up).as_secs_f64();
            Timing {
                clock: "wall",
                start,
                until_genesis,
                epochs: epochs_paced,
                finality_tail: (t_tail_done.duration_since(t_up).as_secs_f64()
                    - until_genesis
                    - epochs_paced)
                    .max(running - until_genesis - epochs_paced)
                    .max(0.0),
                report: t_tail_done.elapsed().as_secs_f64(),
            }
        }
    };
    let summary = Summary {
        mode: "network",
        mechanism: args.mechanism.name(),
        epochs,
        checkpoints_finalized,
        supply_conserved: checks.supply_conserved,
        warmup_epochs: args.warmup,
        nodes_agree: checks.nodes_agree,
        seconds,
        timing: Some(timing),
        stepped: steps,
        topics: files.summaries.clone(),
        report: files.path_texts(),
    };
    results::print(out, &summary, &files, &checks)?;
    if args.keep {
        net.keep_running(&plan.local).await?;
    }
    net.shutdown().await;
    let root = &plan.local.data_root;
    if root.starts_with("/dev/shm") {
        let _ = std::fs::remove_dir_all(root);
    }
    checks.verdict()?;
    if let Some(steps) = &summary.stepped {
        // on a stepped clock nothing may be late: every epoch complete and settled
        if let Some(first) = steps.expired.first() {
            anyhow::bail!(
                "{} step(s) of the stepped clock were given up after {} s (first: {first})",
                steps.expired.len(),
                stepped::STEP_BOUND.as_secs()
            );
        }
        every_epoch_complete_and_settled(&plan.topics, &summary.topics, None, epochs)?;
    }
    Ok(())
}

/// The error of a run whose following failed while a stepped clock ran: the clock's own error
/// if it ended with one (it is the cause), else `e`.
async fn stepper_error(e: anyhow::Error, stepper: Option<follow::StepperTask>) -> anyhow::Error {
    let Some(handle) = stepper else {
        return e;
    };
    if !handle.is_finished() {
        handle.abort();
        return e;
    }
    match handle.await {
        Ok(Err(cause)) => cause.context("the stepped clock stopped"),
        _ => e,
    }
}

/// An error unless every scored epoch of every topic had every worker's bundle and settled
/// (and, given `settled` counts per topic, all `epochs` settled).
fn every_epoch_complete_and_settled(
    topics: &[plan::TopicPlan],
    summaries: &[report::TopicSummary],
    settled: Option<&std::collections::BTreeMap<TopicId, u64>>,
    epochs: u64,
) -> anyhow::Result<()> {
    for (p, s) in topics.iter().zip(summaries) {
        let all_settled = match settled {
            Some(settled) => settled.get(&p.id).copied().unwrap_or(0) == epochs,
            None => s.settled_epochs == s.scored_epochs,
        };
        if !all_settled || s.complete_epochs != s.scored_epochs {
            anyhow::bail!(
                "{}: {} of {} scored epochs complete, {} settled{}",
                p.name,
                s.complete_epochs,
                s.scored_epochs,
                s.settled_epochs,
                settled
                    .and_then(|m| m.get(&p.id))
                    .map(|n| format!(" ({n} of {epochs} epochs settled in all)"))
                    .unwrap_or_default()
            );
        }
    }
    Ok(())
}

/// `--replay`: the plan through the ledger code without a network ([`replay`]).
async fn run_replay(args: DevnetArgs, out: &Output, inputs: Inputs) -> anyhow::Result<()> {
    let t_start = Instant::now();
    let Inputs {
        dir,
        data,
        bars,
        epochs,
        targets,
    } = inputs;
    // a fixed genesis time: the replay never reads the clock, so its report is reproducible
    let plan = DevnetPlan::new(&args, &data, &targets, REPLAY_GENESIS_MS, dir.join("nodes"))?;
    if !out.json {
        outln!(
            "devnet replay: no network; {} inferers, 2 forecasters, 3 reputers, {} topic(s) ({}), {epochs} epochs; output in {}",
            plan.inferers,
            plan.topics.len(),
            args.mechanism,
            dir.display()
        )?;
    }
    let replayed = replay::run(&plan, &bars, epochs, out.json).await?;
    let t_replayed = Instant::now();
    let mut seen = replayed.seen;
    let runs: Vec<_> = plan
        .topics
        .iter()
        .map(|p| {
            let ema = replayed
                .ledger
                .topics
                .get(&p.id)
                .map(|t| {
                    let e = &t.mechanism.ema;
                    e.inferer
                        .iter()
                        .chain(&e.forecaster)
                        .map(|(k, v)| (k.clone(), *v))
                        .collect()
                })
                .unwrap_or_default();
            results::topic_run(p, &mut seen, &ema)
        })
        .collect();
    let files = write_report(&dir.join("report"), &runs, args.warmup)?;
    let supply_conserved = replayed.ledger.check_supply().is_ok();
    let summary = Summary {
        mode: "replay",
        mechanism: args.mechanism.name(),
        epochs,
        checkpoints_finalized: replayed.ledger.next_height,
        supply_conserved,
        nodes_agree: true,
        warmup_epochs: args.warmup,
        seconds: t_start.elapsed().as_secs_f64(),
        timing: None,
        stepped: None,
        topics: files.summaries.clone(),
        report: files.path_texts(),
    };
    results::print_replay(out, &summary, &files, t_replayed.duration_since(t_start))?;
    if !supply_conserved {
        anyhow::bail!("supply was not conserved");
    }
    // every bundle was on time: every epoch must have finalized every worker and settled
    every_epoch_complete_and_settled(
        &plan.topics,
        &summary.topics,
        Some(&replayed.settled),
        epochs,
    )
}

/// The replay's genesis time (ms): any fixed value; epochs are counted from it.
const REPLAY_GENESIS_MS: u64 = 1_700_000_000_000;
