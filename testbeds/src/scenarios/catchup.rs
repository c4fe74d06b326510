//! Scenario 6, `chorus-testbeds catchup`: a node offline for many epochs catches up.
//!
//! The network runs in this process ([`LocalNet`], loopback TCP): `--workers` nodes, each an
//! inferer in every one of `--topics` topics (the first also forecasts), 4 validators, 2
//! reputers per topic, plus one more node with no role that is stopped after the first
//! checkpoints and stays down for `--epochs` epochs. Then it restarts from its own store and
//! catches up: certificates (verified against each height's validator set), the windows they
//! finalize (fetched from peers), and the ledger replayed from them. With `--state-sync` its
//! store first takes node 0's newest certified ledger state (`chorus store sync`), so only
//! the heights after that snapshot are replayed.
//!
//! Pass: the node reaches the height the others had when it restarted, then agrees with them
//! (same height, ledger root and checkpoint chain head), and returns the same finalized
//! inferences for the last epochs it missed. Reported: how long the catch-up took, heights
//! and entries (envelopes added to its store) per second.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use chorus_node::actor::QueryError;
use chorus_node::api::types::Inference;
use chorus_node::localnet::LocalNet;
use chorus_protocol::ids::TopicId;
use clap::Args;

use super::wait_for;
use crate::procs::check::Head;
use crate::procs::cluster::RunDir;
use crate::procs::plan::{NetSpec, write_data};
use crate::report::Report;

/// `catchup` flags.
#[derive(Debug, Args)]
pub struct CatchupArgs {
    /// Epochs the node is offline.
    #[arg(long, default_value_t = 1_000)]
    pub epochs: u64,
    /// Topics.
    #[arg(long, default_value_t = 10)]
    pub topics: usize,
    /// Inferers per topic (one node each, inferring in every topic).
    #[arg(long, default_value_t = 20)]
    pub workers: usize,
    /// Epoch length = checkpoint period (ms). The default lets the full size (21 nodes in one
    /// process, 220 envelopes per epoch each) keep pace on 2 cores; at 1000 ms it falls behind
    /// the clock there (see `network_lag_max_periods` in the report).
    #[arg(long, default_value_t = 2_500)]
    pub epoch_ms: u64,
    /// Longest catch-up allowed before the run fails (s).
    #[arg(long, default_value_t = 1_800)]
    pub timeout: u64,
    /// Before the restart, install node 0's certified state in the node's store (what
    /// `chorus store sync` does) instead of replaying every missed window.
    #[arg(long)]
    pub state_sync: bool,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Run the scenario.
pub async fn run(args: CatchupArgs) -> anyhow::Result<ExitCode> {
    let json = args.json;
    Ok(Report::run("catchup", json, async |report| {
        run_inner(args, report).await
    })
    .await)
}

/// Envelopes in a closed store.
pub fn count_envelopes(path: &std::path::Path) -> anyhow::Result<u64> {
    use chorus_node::store::schema::ENVELOPES;
    use redb::{ReadableDatabase, ReadableTableMetadata};
    let db = redb::Database::open(path)?;
    let tx = db.begin_read()?;
    Ok(tx.open_table(ENVELOPES)?.len()?)
}

async fn head(net: &LocalNet, i: usize) -> Option<Head> {
    let s = net.handle(i)?.status().await.ok()?;
    Some(Head::of(&s))
}

/// While the node is down: wait until node 0 has applied `target` heights, printing progress
/// every 30 s (a full run takes many minutes). Returns how far the network's finalized height
/// fell behind the clock at most, in periods: a network too big for the machine falls behind,
/// and its backlog of open windows then grows the memory of every node.
async fn follow_the_network(
    net: &LocalNet,
    target: u64,
    genesis_ms: u64,
    args: &CatchupArgs,
) -> anyhow::Result<u64> {
    let t0 = Instant::now();
    let deadline = Duration::from_millis(args.epochs * args.epoch_ms * 3 + 60_000);
    let mut printed = Instant::now();
    let mut lag_max = 0;
    loop {
        let height = head(net, 0).await.map_or(0, |h| h.height);
        if height >= target {
            return Ok(lag_max);
        }
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        // Height h is applied once period h - 1 is finalized.
        let period = now_ms.saturating_sub(genesis_ms) / args.epoch_ms.max(1);
        let lag = period.saturating_sub(height);
        lag_max = lag_max.max(lag);
        if t0.elapsed() > deadline {
            bail!("the network did not finalize {} more heights", args.epochs);
        }
        if printed.elapsed() >= Duration::from_secs(30) {
            printed = Instant::now();
            eprintln!(
                "catchup: {:.0} s offline, height {height} of {target}, {lag} period(s) behind \
                 the clock, RSS {} MiB",
                t0.elapsed().as_secs_f64(),
                super::rss_bytes(std::process::id()).unwrap_or(0) >> 20
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

pub async fn run_inner(args: CatchupArgs, report: &mut Report) -> anyhow::Result<()> {
    if args.epochs < 3 || args.epochs > 100_000 || args.topics == 0 || args.topics > 64 {
        bail!("--epochs must be in 3..=100000 and --topics in 1..=64");
    }
    if !(2..=64).contains(&args.workers) {
        bail!("--workers must be in 2..=64");
    }
    let dir = RunDir::new(None, "chorus-catchup-")?;
    let data = write_data(&dir.path)?;
    let nodes = args.workers + 1;
    let offline = nodes - 1;
    let mut spec = NetSpec::new(
        "chorus-catchup",
        nodes,
        Duration::from_millis(2_000 + 150 * nodes as u64),
    );
    spec.epoch_ms = args.epoch_ms;
    spec.topics = args.topics;
    spec.workers = args.workers;
    spec.observers = 1;
    let plan = spec.plan(&data, dir.path.clone());
    let genesis_ms = plan.genesis_time_ms;
    let bars = chorus_node::models::Bars::load_csv(&data).map_err(|e| anyhow::anyhow!("{e}"))?;
    if args.epochs + 20 > bars.len() as u64 {
        bail!(
            "the shipped bars cover {} epochs; --epochs {} is too many",
            bars.len(),
            args.epochs
        );
    }
    report.metric("epochs_offline", args.epochs);
    report.metric("topics", args.topics as u64);
    report.metric("workers_per_topic", args.workers as u64);
    let mut net = LocalNet::start(plan)
        .await
        .context("starting the network")?;
    let ok = wait_for(Duration::from_secs(60), || {
        let net = &net;
        async move { head(net, offline).await.is_some_and(|h| h.height >= 2) }
    })
    .await;
    if !ok {
        bail!("the network did not finalize 2 checkpoints within 60 s");
    }
    net.stop_node(offline).await;
    let store = dir.path.join(format!("node-{offline}")).join("node.redb");
    let envelopes_before = count_envelopes(&store)?;
    let h_stop = head(&net, 0).await.map_or(0, |h| h.height);
    let t_down = Instant::now();
    let target_height = h_stop + args.epochs;
    let lag_max = follow_the_network(&net, target_height, genesis_ms, &args).await?;
    report.metric("network_lag_max_periods", lag_max);
    report.metric("offline_seconds", t_down.elapsed().as_secs());
    let target = head(&net, 0).await.context("node 0")?;
    let t_up = Instant::now();
    let h_restart = if args.state_sync {
        install_state(&net, &store, report).await?
    } else {
        h_stop
    };
    net.start_node(offline)
        .await
        .context("restarting the node")?;
    let caught = wait_for(Duration::from_secs(args.timeout), || {
        let net = &net;
        let want = target.height;
        async move { head(net, offline).await.is_some_and(|h| h.height >= want) }
    })
    .await;
    let catch_up_s = t_up.elapsed().as_secs_f64();
    report.metric("height_at_stop", h_stop);
    report.metric("height_to_reach", target.height);
    report.metric("catch_up_seconds", (catch_up_s * 100.0).round() / 100.0);
    report.check(
        "the node catches up",
        caught,
        if caught {
            format!(
                "{} heights ({}..{}) in {catch_up_s:.1} s{}: {:.1} heights/s",
                target.height - h_stop,
                h_stop,
                target.height,
                if args.state_sync {
                    format!(", from the installed state of height {h_restart}")
                } else {
                    String::new()
                },
                (target.height - h_stop) as f64 / catch_up_s.max(1e-9)
            )
        } else {
            format!("not at height {} after {} s", target.height, args.timeout)
        },
    );
    // Agreement: one head on the restarted node and node 0.
    let agreed = wait_for(Duration::from_secs(30), || {
        let net = &net;
        async move {
            match (head(net, 0).await, head(net, offline).await) {
                (Some(a), Some(b)) => a == b,
                _ => false,
            }
        }
    })
    .await;
    let (a, b) = (head(&net, 0).await, head(&net, offline).await);
    report.check(
        "same ledger root and checkpoint chain as the others",
        agreed,
        format!("node 0: {a:?}; restarted node: {b:?}"),
    );
    check_inferences(&net, offline, args.topics as u64, report).await?;
    net.shutdown().await;
    let envelopes_after = count_envelopes(&store)?;
    let entries = envelopes_after.saturating_sub(envelopes_before);
    report.metric("entries_fetched", entries);
    report.metric(
        "entries_per_second",
        (entries as f64 / catch_up_s.max(1e-9)).round(),
    );
    report.metric(
        "heights_per_second",
        ((target.height - h_stop) as f64 / catch_up_s.max(1e-9) * 10.0).round() / 10.0,
    );
    report.note(
        "entries_fetched counts every envelope the node stored after its restart, including \
         the few live epochs between reaching the target height and the stop",
    );
    Ok(())
}

/// Install node 0's newest certified state in the stopped node's store
/// ([`chorus_node::state_sync::sync_store`], as `chorus store sync`); its height.
async fn install_state(
    net: &LocalNet,
    store: &std::path::Path,
    report: &mut Report,
) -> anyhow::Result<u64> {
    let addr = net.addrs[0].clone().context("node 0's address")?;
    let key = chorus_protocol::keys::Keypair::from_seed(&[0xc5; 32]);
    let t0 = Instant::now();
    let synced = chorus_node::state_sync::sync_store(
        store,
        &net.genesis,
        &[addr],
        None,
        &key,
        Duration::from_secs(30),
    )
    .await
    .map_err(|errors| {
        let all: Vec<String> = errors.iter().map(ToString::to_string).collect();
        anyhow::anyhow!("state sync failed: {}", all.join("; "))
    })?;
    let seconds = t0.elapsed().as_secs_f64();
    report.metric("state_height", synced.height);
    report.metric("state_bytes", synced.snapshot_bytes as u64);
    report.metric("state_sync_seconds", (seconds * 1000.0).round() / 1000.0);
    report.check(
        "the node's store takes node 0's certified state",
        synced.installed,
        format!(
            "height {} ({} KiB, {}/{} of the power signed, {} validator-set changes) in {seconds:.2} s; \
             the store was at {}",
            synced.height,
            synced.snapshot_bytes / 1024,
            synced.signed_power,
            synced.total_power,
            synced.changes,
            synced.previous_height
        ),
    );
    Ok(synced.height)
}

/// Finalized inferences of the last missed epochs, every topic: the same on node 0 and the
/// restarted node.
async fn check_inferences(
    net: &LocalNet,
    offline: usize,
    topics: u64,
    report: &mut Report,
) -> anyhow::Result<()> {
    let mut problems = vec![];
    let mut compared = 0;
    for t in 1..=topics {
        let mut last = u64::MAX;
        for i in [0, offline] {
            let h = net.handle(i).context("node")?;
            let l = h
                .topic(TopicId(t))
                .await
                .ok()
                .and_then(|v| v.last_finalized_epoch)
                .unwrap_or(0);
            last = last.min(l);
        }
        for e in last.saturating_sub(2)..=last {
            let x = net.handle(0).context("node 0")?;
            let x = x.inference(TopicId(t), Some(e)).await;
            let y = net.handle(offline).context("node")?;
            let y = y.inference(TopicId(t), Some(e)).await;
            let combined = |v: Result<Inference, QueryError>| {
                v.map(|v| (v.finalized, v.bundle.combined_value))
                    .map_err(|e| e.to_string())
            };
            match (combined(x), combined(y)) {
                (Ok((true, x)), Ok((true, y))) if x == y => compared += 1,
                (x, y) => problems.push(format!(
                    "topic {t} epoch {e}: {:?} vs {:?}",
                    x.map(|v| v.1),
                    y.map(|v| v.1)
                )),
            }
        }
    }
    report.check(
        "same finalized inferences",
        problems.is_empty() && compared > 0,
        if problems.is_empty() {
            format!("{compared} (topic, epoch) pairs identical")
        } else {
            problems.into_iter().take(5).collect::<Vec<_>>().join("; ")
        },
    );
    Ok(())
}
