//! `chorus-testbeds procs`: N `chorus node run` processes on loopback, optional kill -9 and
//! restart of nodes mid-run, and the agreement check at the end.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;

use super::check::{self, Observer};
use super::cluster::{Cluster, RunDir, chorus_bin, loopback_endpoints};
use super::plan::{NetSpec, now_ms, write_data};
use crate::report::Report;

/// `procs` flags.
#[derive(Debug, Args)]
pub struct ProcsArgs {
    /// Nodes (processes).
    #[arg(long, default_value_t = 4)]
    pub nodes: usize,
    /// Epochs to run (one epoch = one checkpoint period).
    #[arg(long, default_value_t = 20)]
    pub epochs: u64,
    /// Kill -9 node NODE when the network reaches epoch EPOCH (repeatable); it restarts
    /// `--down` epochs later.
    #[arg(long, value_name = "NODE@EPOCH", value_parser = parse_kill)]
    pub kill: Vec<(usize, u64)>,
    /// Epochs a killed node stays down.
    #[arg(long, default_value_t = 3)]
    pub down: u64,
    /// Validators (the first nodes; default min(4, nodes)).
    #[arg(long)]
    pub validators: Option<usize>,
    /// Topics.
    #[arg(long, default_value_t = 1)]
    pub topics: usize,
    /// Epoch length (ms).
    #[arg(long, default_value_t = 1_000)]
    pub epoch_ms: u64,
    /// Seed of the node keys.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// The `chorus` binary (default: the one next to this executable).
    #[arg(long)]
    pub chorus_bin: Option<PathBuf>,
    /// Keep the run directory here (default: a temporary directory, deleted at the end).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Log filter of the nodes (their stderr goes to `node-<i>/node.log`).
    #[arg(long, default_value = "info")]
    pub log: String,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

fn parse_kill(s: &str) -> Result<(usize, u64), String> {
    let (n, e) = s
        .split_once('@')
        .ok_or_else(|| format!("{s:?}: expected NODE@EPOCH"))?;
    Ok((
        n.parse()
            .map_err(|_| format!("{n:?} is not a node index"))?,
        e.parse().map_err(|_| format!("{e:?} is not an epoch"))?,
    ))
}

/// A kill -9 and its restart.
#[derive(Debug)]
struct Outage {
    node: usize,
    at_epoch: u64,
    restart_epoch: u64,
    killed: Option<Instant>,
    restarted: Option<Instant>,
    /// Height the others had at the restart; caught up when the node reaches it.
    target: u64,
    caught_up_s: Option<f64>,
}

/// Run the command.
pub async fn run(args: ProcsArgs) -> anyhow::Result<ExitCode> {
    let json = args.json;
    Ok(Report::run("procs", json, async |report| run_inner(args, report).await).await)
}

async fn run_inner(args: ProcsArgs, report: &mut Report) -> anyhow::Result<()> {
    validate(&args)?;
    let (mut cluster, spec) = start(&args, report).await?;
    let apis: Vec<String> = cluster.nodes.iter().map(|n| n.api()).collect();
    let mut outages = planned_outages(&args);
    let mut obs = Observer::default();
    let crashed = drive(&args, &spec, &mut cluster, &apis, &mut outages, &mut obs).await?;
    report.check_none(
        "no node exited on its own",
        &crashed,
        "every process ran until the end",
    );
    let converged = check_agreement(&args, &apis, &mut obs, report).await;
    check_inferences(&spec, &apis, report).await;
    let statuses = check::statuses(&apis).await;
    let bad = check::supply_problems(&statuses);
    report.check(
        "supply conserved on every node",
        bad.is_empty(),
        if bad.is_empty() {
            "genesis + minted − slashed = total everywhere".to_string()
        } else {
            format!("nodes {bad:?}")
        },
    );
    check_outages(&outages, converged, report);
    stop(&args, &mut cluster, report)
}

fn validate(args: &ProcsArgs) -> anyhow::Result<()> {
    if args.nodes == 0 || args.nodes > 64 {
        bail!("--nodes must be in 1..=64");
    }
    if args.epoch_ms < 300 {
        bail!("--epoch-ms must be at least 300 (the node binary's consensus timeouts)");
    }
    for (n, e) in &args.kill {
        if *n >= args.nodes {
            bail!("--kill {n}@{e}: no node {n}");
        }
        if e + args.down + 4 > args.epochs {
            bail!(
                "--kill {n}@{e}: the node restarts at epoch {} and needs a few epochs to catch up \
                 before the end (--epochs {})",
                e + args.down,
                args.epochs
            );
        }
    }
    Ok(())
}

/// Write the run directory, start every node and wait until all answer.
async fn start(args: &ProcsArgs, report: &mut Report) -> anyhow::Result<(Cluster, NetSpec)> {
    let bin = chorus_bin(args.chorus_bin.as_deref())?;
    // Processes take a moment to start: epoch 0 begins after all of them answer.
    let lead = Duration::from_millis(3_000 + 250 * args.nodes as u64);
    let mut spec = NetSpec::new("chorus-procs", args.nodes, lead);
    spec.seed = args.seed;
    spec.epoch_ms = args.epoch_ms;
    spec.topics = args.topics.max(1);
    spec.validators = args.validators.unwrap_or(args.nodes.min(4)).min(args.nodes);
    let dir = RunDir::new(args.out.clone(), "chorus-procs-")?;
    let data = write_data(&dir.path)?;
    let plan = spec.plan(&data, dir.path.clone());
    let endpoints = loopback_endpoints(args.nodes)?;
    let mut cluster = Cluster::create(plan, endpoints, bin, dir, &args.log)?;
    report.metric("run_dir", cluster.dir.display().to_string());
    report.metric("nodes", args.nodes as u64);
    report.metric("validators", spec.validators as u64);
    report.metric("epochs", args.epochs);
    report.metric("epoch_ms", args.epoch_ms);

    let t_start = Instant::now();
    cluster.start_all()?;
    for i in 0..args.nodes {
        cluster.wait_ready(i, Duration::from_secs(60)).await?;
    }
    report.metric(
        "startup_s",
        (t_start.elapsed().as_secs_f64() * 10.0).round() / 10.0,
    );
    Ok((cluster, spec))
}

fn planned_outages(args: &ProcsArgs) -> Vec<Outage> {
    args.kill
        .iter()
        .map(|(node, e)| Outage {
            node: *node,
            at_epoch: *e,
            restart_epoch: e + args.down,
            killed: None,
            restarted: None,
            target: 0,
            caught_up_s: None,
        })
        .collect()
}

/// Run until `--epochs`, killing and restarting nodes as planned and recording every head;
/// returns the nodes that exited on their own.
async fn drive(
    args: &ProcsArgs,
    spec: &NetSpec,
    cluster: &mut Cluster,
    apis: &[String],
    outages: &mut [Outage],
    obs: &mut Observer,
) -> anyhow::Result<Vec<String>> {
    let topic = spec.topic_spec(0);
    let mut crashed = vec![];
    loop {
        let now = now_ms();
        let epoch = topic.epoch_at(now);
        if let Some(e) = epoch {
            for o in outages.iter_mut() {
                if o.killed.is_none() && e >= o.at_epoch {
                    tracing::info!(node = o.node, epoch = e, "kill -9");
                    cluster.kill9(o.node)?;
                    o.killed = Some(Instant::now());
                }
                if o.killed.is_some() && o.restarted.is_none() && e >= o.restart_epoch {
                    o.target = obs
                        .latest
                        .iter()
                        .filter(|(i, _)| **i != o.node)
                        .map(|(_, h)| h.height)
                        .max()
                        .unwrap_or(0);
                    tracing::info!(node = o.node, epoch = e, target = o.target, "restart");
                    cluster.start(o.node)?;
                    o.restarted = Some(Instant::now());
                }
            }
        }
        for (i, status) in cluster.reap_exited() {
            crashed.push(format!("node {i} exited on its own: {status}"));
        }
        let live: Vec<usize> = (0..args.nodes).filter(|i| cluster.is_running(*i)).collect();
        let live_apis: Vec<String> = live.iter().map(|i| apis[*i].clone()).collect();
        let answers = check::statuses(&live_apis).await;
        for (i, s) in live.iter().zip(answers) {
            if let Some(h) = s.as_ref().map(check::Head::of) {
                for o in outages.iter_mut() {
                    if o.node == *i
                        && o.caught_up_s.is_none()
                        && let Some(r) = o.restarted
                        && h.height >= o.target
                    {
                        o.caught_up_s = Some(r.elapsed().as_secs_f64());
                    }
                }
                obs.record(*i, h);
            }
        }
        if epoch.is_some_and(|e| e >= args.epochs) {
            break;
        }
        if !crashed.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(crashed)
}

/// Restarted nodes may still be catching up: wait for one common head, then check it.
async fn check_agreement(
    args: &ProcsArgs,
    apis: &[String],
    obs: &mut Observer,
    report: &mut Report,
) -> bool {
    // Restarted nodes may still be catching up: wait for one common head.
    let converged = check::converge(apis, Duration::from_secs(60), obs).await;
    match &converged {
        Ok(h) => report.check(
            "all nodes agree at the end",
            true,
            format!(
                "height {} ledger root {} tip {} on all {} nodes",
                h.height,
                &h.root[..12],
                &h.tip[..12],
                args.nodes
            ),
        ),
        Err(last) => report.check("all nodes agree at the end", false, last.clone()),
    };
    let ok = format!(
        "{} heights observed, one root and tip each",
        obs.heights_seen()
    );
    report.check_none("no conflicting heads at any height", &obs.conflicts, ok);
    if let Ok(h) = &converged {
        let want = args.epochs / 2;
        report.check(
            "checkpoints kept finalizing",
            h.height >= want,
            format!(
                "height {} after {} epochs (need ≥ {want})",
                h.height, args.epochs
            ),
        );
        report.metric("final_height", h.height);
    }
    converged.is_ok()
}

/// Finalized inferences of the last few epochs every node has.
async fn check_inferences(spec: &NetSpec, apis: &[String], report: &mut Report) {
    // Finalized inferences of the last few epochs every node has.
    for t in 0..spec.topics {
        let id = t as u64 + 1;
        match check::min_finalized_epoch(apis, id).await {
            Some(last) => {
                let epochs: Vec<u64> = (last.saturating_sub(4)..=last).collect();
                let (compared, problems) = check::compare_inferences(apis, id, &epochs).await;
                report.check(
                    &format!("topic {id}: same finalized inferences"),
                    problems.is_empty() && compared >= 3,
                    if problems.is_empty() {
                        format!("epochs {:?} identical on every node", epochs)
                    } else {
                        problems.join("; ")
                    },
                );
            }
            None => {
                report.check(
                    &format!("topic {id}: same finalized inferences"),
                    false,
                    "some node has no finalized epoch",
                );
            }
        }
    }
}

fn check_outages(outages: &[Outage], converged: bool, report: &mut Report) {
    for o in outages {
        let key = format!("node {} killed at epoch {}", o.node, o.at_epoch);
        match (o.restarted, o.caught_up_s) {
            (Some(_), Some(s)) => {
                report.check(
                    &format!("{key}: caught up"),
                    true,
                    format!(
                        "restarted at epoch {}, reached height {} in {s:.1} s",
                        o.restart_epoch, o.target
                    ),
                );
            }
            (Some(_), None) => {
                let ok = converged;
                report.check(
                    &format!("{key}: caught up"),
                    ok,
                    if ok {
                        "caught up while the run converged".to_string()
                    } else {
                        format!("never reached height {}", o.target)
                    },
                );
            }
            (None, _) => {
                report.check(&format!("{key}: caught up"), false, "never restarted");
            }
        }
    }
}

/// On failure keep the run directory and show log tails; then SIGTERM every node.
fn stop(args: &ProcsArgs, cluster: &mut Cluster, report: &mut Report) -> anyhow::Result<()> {
    if !report.passing() {
        let kept = cluster.keep_dir();
        report.note(format!(
            "run directory kept for inspection: {}",
            kept.display()
        ));
        for i in 0..args.nodes {
            let tail = cluster.log_tail(i, 3);
            if !tail.is_empty() {
                report.note(format!("node {i} log tail: {tail}"));
            }
        }
    }
    let stopped = (0..args.nodes)
        .map(|i| cluster.terminate(i, Duration::from_secs(15)))
        .collect::<anyhow::Result<Vec<bool>>>()
        .context("stopping the nodes")?;
    report.check(
        "clean stop on SIGTERM",
        stopped.iter().all(|s| *s),
        format!(
            "{}/{} nodes exited with status 0",
            stopped.iter().filter(|s| **s).count(),
            stopped.len()
        ),
    );
    Ok(())
}
