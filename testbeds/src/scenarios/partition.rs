//! Scenario 2, `chorus-testbeds partition`: `--nodes` `chorus node run` processes, each in its
//! own network namespace ([`super::netns`]), split in two halves for `--seconds`, then healed.
//!
//! Sides alternate by node index (even: side A, odd: side B), so the 4 validators (nodes 0–3,
//! equal bonds) split 2/2 and neither side holds more than 2/3 of the stake; the two reputers
//! (the last two nodes) split 1/1; every node is an inferer. Without root (or without `ip`)
//! the run is skipped with a message (exit code 0, outcome `skipped`). The simulator variant
//! of this scenario belongs to `chorus-testbeds sim`.
//!
//! Pass:
//! - no checkpoint is finalized without more than 2/3 of the stake: during the partition no
//!   node's ledger moves more than one height past where it was when the partition began (one
//!   decision may already have been in flight), and afterwards every node's latest checkpoint
//!   carries signatures of at least 3 of the 4 validators;
//! - within 30 s of the heal every node has the same checkpoint chain head, ledger height and
//!   ledger root, with the windows of the partition finalized (height ≥ the ledger period at
//!   the heal);
//! - neither side's entries are lost: every worker bundle a node accepted from its own worker
//!   in an epoch whose window lay inside the partition is in the finalized network inference
//!   of that epoch on every node.

use std::collections::BTreeSet;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::bail;
use chorus_node::api::types::{Inference, LatestCheckpoint};
use clap::Args;

use super::netns::{self, Lab};
use crate::procs;
use crate::procs::check::{self, Observer};
use crate::procs::cluster::{Cluster, Endpoint, RunDir, chorus_bin};
use crate::procs::plan::{NetSpec, now_ms, write_data};
use crate::report::Report;

/// Largest allowed time from heal to one finalized, identical state (s).
const MAX_HEAL_S: f64 = 30.0;

/// `partition` flags.
#[derive(Debug, Args)]
pub struct PartitionArgs {
    /// Nodes (processes), split in two halves.
    #[arg(long, default_value_t = 20)]
    pub nodes: usize,
    /// Seconds of partition.
    #[arg(long, default_value_t = 60)]
    pub seconds: u64,
    /// Epoch length = checkpoint period (ms).
    #[arg(long, default_value_t = 1_000)]
    pub epoch_ms: u64,
    /// The `chorus` binary (default: the one next to this executable).
    #[arg(long)]
    pub chorus_bin: Option<std::path::PathBuf>,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Run the scenario.
pub async fn run(args: PartitionArgs) -> anyhow::Result<ExitCode> {
    let mut report = Report::new("partition");
    let json = args.json;
    if let Some(why) = netns::unavailable() {
        eprintln!("partition: skipped: {why}");
        report.skip(why);
        return Ok(report.finish(json));
    }
    let result = run_inner(args, &mut report).await;
    Ok(report.finish_run(result, json))
}

/// Accepted own worker bundles per (node, epoch), from polling every node's status.
async fn poll_submissions(apis: &[String], into: &mut BTreeSet<(usize, u64)>) {
    for (i, s) in check::statuses(apis).await.into_iter().enumerate() {
        let Some(s) = s else { continue };
        into.extend(
            check::accepted(&s, "worker_bundle")
                .filter_map(|sub| sub.epoch)
                .map(|e| (i, e)),
        );
    }
}

async fn run_inner(args: PartitionArgs, report: &mut Report) -> anyhow::Result<()> {
    if !(4..=40).contains(&args.nodes) || args.seconds == 0 || args.seconds > 600 {
        bail!("--nodes must be in 4..=40 and --seconds in 1..=600");
    }
    let mut run = start(&args, report).await?;
    let h_before = warm_up(&run.apis).await?;
    run.lab.partition()?;
    let t_part = now_ms();
    report.metric("height_at_partition", h_before);
    let (h_max_during, answered) = partitioned(&args, &mut run, h_before).await?;
    // At least one answer per node per second of partition (polls run every 250 ms).
    let min_answers = u32::try_from(args.seconds).unwrap_or(u32::MAX);
    run.lab.heal()?;
    let t_heal = now_ms();
    report.metric("max_height_during_partition", h_max_during);
    report.check(
        "no checkpoint finalized without > 2/3 of stake during the partition",
        h_max_during <= h_before + 1 && answered.iter().all(|a| *a >= min_answers),
        format!(
            "height {h_before} at the partition, at most {h_max_during} during it (2/2 \
             validators per side); status answers per node {answered:?} (at least \
             {min_answers} each)"
        ),
    );
    heal(&mut run, t_heal, report).await?;
    check_quorum(&run.apis, report).await;
    // Entries of both sides from inside the partition.
    let topic = run.spec.topic_spec(0);
    let e_from = topic.epoch_at(t_part).map_or(0, |e| e + 1);
    let e_to = topic.epoch_at(t_heal).map_or(0, |e| e.saturating_sub(1));
    check_entries(&run, e_from, e_to, report).await;
    if !report.passing() {
        let kept = run.cluster.keep_dir();
        report.note(format!("run directory kept: {}", kept.display()));
    }
    drop(run);
    Ok(())
}

/// The partitioned network under test.
struct Run {
    /// The nodes (dropped, and so stopped, before the namespaces).
    cluster: Cluster,
    lab: Lab,
    spec: NetSpec,
    apis: Vec<String>,
    /// The side of each node.
    sides: Vec<usize>,
    obs: Observer,
    /// Accepted own worker bundles per (node, epoch).
    submitted: BTreeSet<(usize, u64)>,
}

/// Create the namespaces, start every node in its own, wait until all answer.
async fn start(args: &PartitionArgs, report: &mut Report) -> anyhow::Result<Run> {
    let bin = chorus_bin(args.chorus_bin.as_deref())?;
    let n = args.nodes;
    let sides: Vec<usize> = (0..n).map(|i| i % 2).collect();
    let lab = Lab::create(&sides)?;
    report.note(format!(
        "{n} network namespaces chp{}-*, bridge chb{}; partition by blackhole routes",
        lab.tag(),
        lab.tag()
    ));
    let endpoints: Vec<Endpoint> = lab
        .nodes
        .iter()
        .map(|(ns, addr)| Endpoint {
            ip: addr.clone(),
            p2p_port: 4001,
            api_port: 8080,
            netns: Some(ns.clone()),
        })
        .collect();
    let dir = RunDir::new(None, "chorus-partition-")?;
    let data = write_data(&dir.path)?;
    let mut spec = NetSpec::new(
        "chorus-partition",
        n,
        Duration::from_millis(3_000 + 200 * n as u64),
    );
    spec.epoch_ms = args.epoch_ms;
    let plan = spec.plan(&data, dir.path.clone());
    let mut cluster = Cluster::create(plan, endpoints, bin, dir, "info")?;
    cluster.start_all()?;
    for i in 0..n {
        cluster.wait_ready(i, Duration::from_secs(60)).await?;
    }
    let apis: Vec<String> = cluster.nodes.iter().map(|c| c.api()).collect();
    Ok(Run {
        cluster,
        lab,
        spec,
        apis,
        sides,
        obs: Observer::default(),
        submitted: BTreeSet::new(),
    })
}

/// Normal operation first: wait for height 3; returns the highest height then.
async fn warm_up(apis: &[String]) -> anyhow::Result<u64> {
    // Normal operation first.
    let warm = super::wait_for(Duration::from_secs(90), || async move {
        check::statuses(apis)
            .await
            .iter()
            .all(|s| s.as_ref().is_some_and(|s| s.height >= 3))
    })
    .await;
    if !warm {
        bail!("the network did not reach height 3 before the partition");
    }
    let before = check::statuses(apis).await;
    let h_before = before
        .iter()
        .filter_map(|s| s.as_ref().map(|s| s.height))
        .max()
        .unwrap_or(0);
    Ok(h_before)
}

/// Watch the partitioned network for `--seconds`; returns the highest height seen.
/// The highest height any node reported during the partition, and how many status polls
/// each node answered (a height never asked cannot show a violation).
async fn partitioned(
    args: &PartitionArgs,
    run: &mut Run,
    h_before: u64,
) -> anyhow::Result<(u64, Vec<u32>)> {
    let tp = Instant::now();
    let mut h_max_during = h_before;
    let mut answered = vec![0u32; run.apis.len()];
    while tp.elapsed() < Duration::from_secs(args.seconds) {
        poll_submissions(&run.apis, &mut run.submitted).await;
        for (i, s) in check::statuses(&run.apis).await.iter().enumerate() {
            if let Some(h) = s.as_ref().map(check::Head::of) {
                h_max_during = h_max_during.max(h.height);
                answered[i] += 1;
                run.obs.record(i, h);
            }
        }
        if let Some((i, st)) = run.cluster.reap_exited().into_iter().next() {
            bail!("node {i} exited during the partition: {st}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Ok((h_max_during, answered))
}

/// Heal: one identical, finalized state within 30 s.
async fn heal(run: &mut Run, t_heal: u64, report: &mut Report) -> anyhow::Result<()> {
    let th = Instant::now();
    let n = run.apis.len();
    // Heal: one identical, finalized state within 30 s.
    let genesis_ledger = chorus_crdt::ledger::Ledger::from_genesis(&run.cluster.genesis)?;
    let period_at_heal = genesis_ledger.period_at(t_heal);
    let mut healed_after: Option<f64> = None;
    let mut last = String::new();
    while th.elapsed() < Duration::from_secs_f64(MAX_HEAL_S + 30.0) {
        poll_submissions(&run.apis, &mut run.submitted).await;
        let all = check::statuses(&run.apis).await;
        let heads: Vec<Option<check::Head>> = all
            .iter()
            .map(|s| s.as_ref().map(check::Head::of))
            .collect();
        for (i, h) in heads.iter().enumerate() {
            if let Some(h) = h {
                run.obs.record(i, h.clone());
            }
        }
        let same = heads.iter().all(|h| h.is_some() && *h == heads[0]);
        let height = heads[0].as_ref().map_or(0, |h| h.height);
        if same && height >= period_at_heal {
            healed_after = Some(th.elapsed().as_secs_f64());
            break;
        }
        last = heads
            .iter()
            .map(|h| h.as_ref().map_or("-".into(), |h| h.height.to_string()))
            .collect::<Vec<_>>()
            .join(",");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    report.metric("ledger_period_at_heal", period_at_heal);
    report.metric("heal_to_agreement_s", healed_after);
    report.check(
        "identical checkpoint chain and ledger root ≤ 30 s after heal",
        healed_after.is_some_and(|s| s <= MAX_HEAL_S) && run.obs.conflicts.is_empty(),
        match healed_after {
            Some(s) => format!(
                "all {n} nodes at one head with height ≥ {period_at_heal} after {s:.1} s; {} \
                 conflicting heads seen",
                run.obs.conflicts.len()
            ),
            None => format!("not within {:.0} s; heights: {last}", MAX_HEAL_S + 30.0),
        },
    );
    Ok(())
}

/// Quorum certificates.
async fn check_quorum(apis: &[String], report: &mut Report) {
    let n = apis.len();
    // Quorum certificates.
    let mut signers = vec![];
    for a in apis {
        if let Ok(v) = procs::get::<LatestCheckpoint>(a, "/v1/checkpoints/latest").await {
            signers.push(v.signers);
        }
    }
    report.check(
        "checkpoints carry > 2/3 of stake",
        signers.len() == n && signers.iter().all(|s| *s >= 3),
        format!("signers of each node's latest checkpoint: {signers:?} (of 4 equal bonds)"),
    );
}

/// Every entry accepted inside the partition is in the finalized inferences of every node.
async fn check_entries(run: &Run, e_from: u64, e_to: u64, report: &mut Report) {
    let (apis, sides, n) = (&run.apis, &run.sides, run.apis.len());
    let fin = super::wait_for(Duration::from_secs(30), || async move {
        check::min_finalized_epoch(apis, 1)
            .await
            .is_some_and(|e| e >= e_to)
    })
    .await;
    let addresses: Vec<_> = run.cluster.nodes.iter().map(|c| c.key.public()).collect();
    let mut missing = vec![];
    let mut checked = 0u64;
    let mut per_side = [0u64; 2];
    // (epoch, side) → (missing, accepted) as seen by node 0.
    let mut lost_at_0: std::collections::BTreeMap<(u64, usize), (u64, u64)> = Default::default();
    if fin && e_to >= e_from {
        for e in e_from..=e_to {
            let want: Vec<usize> = run
                .submitted
                .iter()
                .filter(|(_, se)| *se == e)
                .map(|(w, _)| *w)
                .collect();
            for (i, a) in apis.iter().enumerate() {
                let path = format!("/v1/topics/1/inference?epoch={e}");
                match procs::get::<Inference>(a, &path).await {
                    Ok(v) => {
                        for w in &want {
                            checked += 1;
                            let found = v.bundle.inferer_values.contains_key(&addresses[*w]);
                            if i == 0 {
                                let slot = lost_at_0.entry((e, sides[*w])).or_default();
                                slot.1 += 1;
                                if !found {
                                    slot.0 += 1;
                                }
                            }
                            if found {
                                if i == 0 {
                                    per_side[sides[*w]] += 1;
                                }
                            } else {
                                missing.push(format!(
                                    "epoch {e} node {i}: worker {w} (side {})",
                                    sides[*w]
                                ));
                            }
                        }
                    }
                    Err(err) => missing.push(format!("epoch {e} node {i}: {err:#}")),
                }
            }
        }
    }
    report.metric("partition_epochs", format!("{e_from}..={e_to}"));
    report.metric("entries_side_a", per_side[0]);
    report.metric("entries_side_b", per_side[1]);
    report.check(
        "entries from inside the partition are not lost",
        fin && missing.is_empty() && checked > 0,
        if !fin {
            format!("epochs up to {e_to} were not finalized everywhere within 30 s")
        } else if missing.is_empty() {
            format!(
                "{} entries of side A and {} of side B from epochs {e_from}..={e_to} finalized \
                 on all {n} nodes",
                per_side[0], per_side[1]
            )
        } else {
            format!(
                "{} (node, entry) pairs missing; on node 0, missing/accepted by (epoch, side): {}",
                missing.len(),
                lost_at_0
                    .iter()
                    .filter(|(_, (m, _))| *m > 0)
                    .map(|((e, side), (m, a))| format!(
                        "epoch {e} side {}: {m}/{a}",
                        if *side == 0 { "A" } else { "B" }
                    ))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        },
    );
}
