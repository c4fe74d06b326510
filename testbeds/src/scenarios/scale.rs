//! `chorus-testbeds scale`: one height finalizes every bundle of `--topics` × `--workers`.
//!
//! Two `chorus node run` processes on loopback (node 0: the validator and every topic's
//! reputer; node 1: a follower), `--workers` worker keys registered in every topic by the
//! genesis, and a publisher in this process that signs one bundle per worker, topic and epoch
//! and gossips them, paced over the first three quarters of each worker window
//! ([`crate::bench::publisher`]). All topics share one epoch clock, so the checkpoint that
//! closes an epoch's worker windows finalizes `topics × workers` bundles at one height.
//!
//! Checkpoints used to list every head, and a proposal was refused beyond 8 192 of them: an
//! honest network of 10 topics × 1 000 workers could not finalize at all (issue 14, C1). They
//! now name each window by root and entry count.
//!
//! Pass:
//! - every bundle was handed to gossip before its window closed (else the run measures the
//!   publisher, not the network);
//! - on both nodes, the certificates finalized **exactly** `workers` bundles in every worker
//!   window of every topic and epoch published;
//! - one height finalized at least `topics × workers` entries (the windows of one epoch);
//! - both nodes reached the same last height and it kept advancing to the end;
//! - neither node penalised or graylisted anyone, and both stayed connected to each other and
//!   to the publisher.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::bail;
use chorus_node::api::client::metric_sum;
use clap::Args;

use crate::bench::footprint::{publish_epochs, start};
use crate::bench::publisher::{Finalized, Publisher, finalized_bundles};
use crate::procs::plan::now_ms;
use crate::report::Report;

/// `scale` flags.
#[derive(Debug, Args)]
pub struct ScaleArgs {
    /// Topics.
    #[arg(long, default_value_t = 10)]
    pub topics: usize,
    /// Workers registered in every topic.
    #[arg(long, default_value_t = 1_000)]
    pub workers: usize,
    /// Epochs published.
    #[arg(long, default_value_t = 3)]
    pub epochs: u64,
    /// Epoch length = checkpoint period (ms); default 1 s, 0.6 ms per bundle beyond 1 666
    /// bundles an epoch (6 s at 10 × 1 000).
    #[arg(long)]
    pub epoch_ms: Option<u64>,
    /// The `chorus` binary (default: the one next to this executable).
    #[arg(long)]
    pub chorus_bin: Option<std::path::PathBuf>,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Run the scenario.
pub async fn run(args: ScaleArgs) -> anyhow::Result<ExitCode> {
    let json = args.json;
    Ok(Report::run("scale", json, async |report| run_inner(args, report).await).await)
}

async fn run_inner(args: ScaleArgs, report: &mut Report) -> anyhow::Result<()> {
    if !(1..=64).contains(&args.topics)
        || !(1..=1_000).contains(&args.workers)
        || !(1..=100).contains(&args.epochs)
    {
        bail!("--topics in 1..=64, --workers in 1..=1000, --epochs in 1..=100");
    }
    let (topics, workers) = (args.topics as u64, args.workers as u64);
    let epoch_ms = args
        .epoch_ms
        .unwrap_or_else(|| crate::bench::footprint::epoch_ms(args.topics, args.workers));
    if !(500..=60_000).contains(&epoch_ms) {
        bail!("--epoch-ms in 500..=60000");
    }
    report.metric("epoch_ms", epoch_ms);
    let (mut cluster, spec, keys, _pids) = start(
        args.topics,
        args.workers,
        epoch_ms,
        args.chorus_bin.as_deref(),
    )
    .await?;
    let network = cluster.genesis.network_id();
    let targets = cluster.p2p_addrs();
    let mut publisher = Publisher::new(network, topics, &targets)?;
    let topic = spec.topic_spec(0);
    let first = topic.epoch_at(now_ms()).map_or(1, |e| e + 1);
    let last = first + args.epochs - 1;
    let t0 = std::time::Instant::now();
    publish_epochs(&mut publisher, &topic, &keys, first..=last, |_| {}).await;
    report.metric("published", publisher.published);
    report.metric(
        "publish_s",
        (t0.elapsed().as_secs_f64() * 10.0).round() / 10.0,
    );
    report.check(
        "every bundle published",
        publisher.dropped == 0 && publisher.published == topics * workers * args.epochs,
        format!(
            "{} of {} bundles handed to gossip before their window closed ({} offers refused \
             while the connections' queues were full)",
            publisher.published,
            topics * workers * args.epochs,
            publisher.refused
        ),
    );
    // The last epoch's worker windows close, then its checkpoint: wait 4 epochs.
    publisher
        .run_for(Duration::from_millis(4 * spec.epoch_ms))
        .await;
    // Heights run one per checkpoint period from the genesis: at the stop, near height
    // (elapsed / period); 3 periods of slack for the last ones in flight.
    let expected = now_ms().saturating_sub(spec.start_ms) / spec.params().checkpoint_period_ms;
    // Neither node may punish the other for the load: honest peers keep their link.
    let mut problems = vec![];
    for i in 0..2 {
        let page = crate::procs::api(&cluster.nodes[i].api())?
            .get_text("/metrics")
            .await?;
        let penalties = metric_sum(&page, "chorus_peer_penalties_total", &[]);
        let graylisted = super::graylisted(&page);
        let peers = metric_sum(&page, "chorus_connected_peers", &[]);
        report.metric(&format!("node{i}_penalties"), penalties);
        report.metric(&format!("node{i}_graylisted"), graylisted);
        if penalties > 0.0 || graylisted > 0.0 || peers < 2.0 {
            problems.push(format!(
                "node {i}: {penalties} penalties, {graylisted} peers graylisted, {peers} peers \
                 connected (the other node and the publisher)"
            ));
        }
    }
    report.check_none(
        "no honest peer punished",
        &problems,
        "no penalty, nobody graylisted, both nodes connected to each other and the publisher",
    );
    for i in 0..2 {
        cluster.terminate(i, Duration::from_secs(20))?;
    }
    let mut last_heights = vec![];
    for (i, name) in ["validator", "follower"].iter().enumerate() {
        let f = finalized_bundles(
            &cluster.nodes[i].store_path(),
            &network,
            topics,
            first..=last,
        )?;
        check_store(report, name, &f, topics, workers);
        last_heights.push(f.last_height);
    }
    report.check(
        "heights kept up with the clock",
        last_heights.iter().all(|h| *h + 3 >= expected) && last_heights[0] == last_heights[1],
        format!(
            "last heights {last_heights:?}, the clock's height ≈ {expected} at the stop \
             (both must agree, within 3 of it)"
        ),
    );
    if !report.passing() {
        report.note(format!(
            "the run directory (configs, stores, node logs) is kept: {}",
            cluster.keep_dir().display()
        ));
    }
    Ok(())
}

/// One stopped node's certificates: every worker window whole, one height holding an epoch.
fn check_store(report: &mut Report, name: &str, f: &Finalized, topics: u64, workers: u64) {
    let short: Vec<String> = f
        .bundles
        .iter()
        .filter(|(_, n)| u64::from(**n) != workers)
        .map(|((t, e), n)| format!("topic {t} epoch {e}: {n}"))
        .collect();
    report.check_none(
        &format!("{name}: every bundle finalized"),
        &short,
        format!(
            "{} worker windows × {workers} bundles, each finalized whole",
            f.bundles.len()
        ),
    );
    report.check(
        &format!("{name}: one height finalized a whole epoch"),
        f.max_height_entries.0 >= topics * workers,
        format!(
            "height {} finalized {} entries (an epoch is {})",
            f.max_height_entries.1,
            f.max_height_entries.0,
            topics * workers
        ),
    );
    report.metric(
        &format!("{name}_max_height_entries"),
        f.max_height_entries.0,
    );
    report.metric(&format!("{name}_last_height"), f.last_height);
}
