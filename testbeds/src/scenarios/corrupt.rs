//! `chorus-testbeds corrupt`: one validator's store is damaged, one record at a time, between
//! two runs of its `chorus node run` process.
//!
//! `--validators` validator processes on loopback (1 s epochs, one topic). Once every node has
//! applied a few heights, the last validator is stopped (SIGTERM) and its store file kept.
//! Then, for each of the newest WAL record (its double-sign guard is rebuilt from the WAL), the
//! newest certificate and the newest ledger snapshot: the kept file is put back, one byte of
//! that record is flipped (its last), and the process is started on it.
//!
//! Pass, for each damaged record: the process exits on its own with a non-zero status within
//! `--timeout` seconds, without ever answering `/v1/status`, and its log names the table, the
//! store file and that it refuses to start (a silent drop of a WAL record would disarm the
//! guard against signing a second vote). Then the undamaged file is put back: the validator
//! starts, catches up and signs again; the network kept finalizing throughout, every node ends
//! at one height, and nobody was slashed (no validator signed two votes for one slot).

use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use chorus_node::store::schema::{CERTIFICATES, LEDGER, WAL};
use clap::Args;
use redb::{ReadableTable, TableHandle};

use super::wait_for;
use crate::procs::cluster::{Cluster, RunDir, chorus_bin, loopback_endpoints};
use crate::procs::plan::{NetSpec, write_data};
use crate::report::Report;

/// `corrupt` flags.
#[derive(Debug, Args)]
pub struct CorruptArgs {
    /// Validators (the last one's store is damaged; at least 4, so the others keep > 2/3).
    #[arg(long, default_value_t = 4)]
    pub validators: usize,
    /// How long a damaged start may take to refuse (s).
    #[arg(long, default_value_t = 30)]
    pub timeout: u64,
    /// The `chorus` binary (default: the one next to this executable).
    #[arg(long)]
    pub chorus_bin: Option<std::path::PathBuf>,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Run the scenario.
pub async fn run(args: CorruptArgs) -> anyhow::Result<ExitCode> {
    let json = args.json;
    Ok(Report::run("corrupt", json, async |report| {
        run_inner(args, report).await
    })
    .await)
}

/// Flip one bit of the last byte of the newest record of `table`; returns its key.
fn flip_newest(path: &Path, table: redb::TableDefinition<u64, &[u8]>) -> anyhow::Result<u64> {
    let db = redb::Database::open(path)?;
    let tx = db.begin_write()?;
    let key = {
        let mut t = tx.open_table(table)?;
        let (key, mut bytes) = {
            let (k, v) = t
                .last()?
                .with_context(|| format!("no {} record to damage", table.name()))?;
            (k.value(), v.value().to_vec())
        };
        if let Some(b) = bytes.last_mut() {
            *b ^= 1;
        }
        t.insert(key, bytes.as_slice())?;
        key
    };
    tx.commit()?;
    Ok(key)
}

/// The lowest height over nodes `0..n` (a node that does not answer counts as 0).
async fn min_height(cluster: &Cluster, n: usize) -> u64 {
    let mut min = u64::MAX;
    for i in 0..n {
        min = min.min(cluster.status(i).await.map_or(0, |s| s.height));
    }
    min
}

async fn wait_heights(cluster: &Cluster, n: usize, at_least: u64, within: Duration) -> bool {
    wait_for(within, || async {
        min_height(cluster, n).await >= at_least
    })
    .await
}

async fn run_inner(args: CorruptArgs, report: &mut Report) -> anyhow::Result<()> {
    if !(4..=16).contains(&args.validators) || !(5..=600).contains(&args.timeout) {
        bail!("--validators in 4..=16, --timeout in 5..=600");
    }
    let n = args.validators;
    let victim = n - 1;
    let dir = RunDir::new(None, "chorus-corrupt-")?;
    let data = write_data(&dir.path)?;
    let spec = NetSpec::new("chorus-corrupt", n, Duration::from_secs(4));
    let plan = spec.plan(&data, dir.path.clone());
    let bin = chorus_bin(args.chorus_bin.as_deref())?;
    let mut cluster = Cluster::create(plan, loopback_endpoints(n)?, bin, dir, "warn")?;
    cluster.start_all()?;
    for i in 0..n {
        cluster.wait_ready(i, Duration::from_secs(60)).await?;
    }
    if !wait_heights(&cluster, n, 4, Duration::from_secs(60)).await {
        bail!("the network did not apply 4 heights within 60 s");
    }
    cluster.terminate(victim, Duration::from_secs(20))?;
    let store = cluster.nodes[victim].store_path();
    let original = std::fs::read(&store).context("reading the stopped validator's store")?;
    let log = cluster.nodes[victim].dir.join("node.log");
    let others_before = min_height(&cluster, victim).await;
    let tables = [
        ("wal", WAL),
        ("certificates", CERTIFICATES),
        ("ledger", LEDGER),
    ];
    for (name, table) in tables {
        std::fs::write(&store, &original)?;
        let key = flip_newest(&store, table)?;
        let log_len = std::fs::metadata(&log).map_or(0, |m| m.len()) as usize;
        cluster.start(victim)?;
        let t0 = Instant::now();
        let (mut exited, mut answered) = (None, false);
        while t0.elapsed() < Duration::from_secs(args.timeout) {
            if let Some((_, status)) = cluster
                .reap_exited()
                .into_iter()
                .find(|(j, _)| *j == victim)
            {
                exited = Some(status);
                break;
            }
            answered |= cluster.status(victim).await.is_ok();
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if exited.is_none() {
            cluster.terminate(victim, Duration::from_secs(10))?;
        }
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let said = text.get(log_len..).unwrap_or_default().trim().to_string();
        let named = said.contains(&format!("corrupt record in {name}"))
            && said.contains("node.redb")
            && said.contains("refuses to start");
        let failed = exited
            .as_deref()
            .is_some_and(|s| !s.contains("exit status: 0"));
        report.check(
            &format!("damaged {name} record refused"),
            failed && named && !answered,
            format!(
                "record {key} of {name}, one bit flipped: exited {} after {:.1} s, answered \
                 /v1/status: {answered}; it said: {}",
                exited.as_deref().unwrap_or("— still running, killed"),
                t0.elapsed().as_secs_f64(),
                said.lines().last().unwrap_or("nothing")
            ),
        );
    }
    // The others go on without it (3 of 4 hold > 2/3), then the undamaged store: the
    // validator starts and catches up.
    wait_heights(&cluster, victim, others_before + 3, Duration::from_secs(30)).await;
    let others_now = min_height(&cluster, victim).await;
    std::fs::write(&store, &original)?;
    cluster.start(victim)?;
    cluster.wait_ready(victim, Duration::from_secs(60)).await?;
    report.metric(
        "heights_while_stopped",
        others_now.saturating_sub(others_before),
    );
    report.check(
        "the others kept finalizing",
        others_now >= others_before + 3,
        format!("the other validators went from height {others_before} to {others_now}"),
    );
    let target = others_now + 3;
    let rejoined = wait_heights(&cluster, n, target, Duration::from_secs(60)).await;
    let mut heights = vec![];
    let mut slashed = vec![];
    for i in 0..n {
        let s = cluster.status(i).await?;
        heights.push(s.height);
        slashed.push(s.supply.slashed.0);
    }
    report.check(
        "the undamaged store starts and catches up",
        rejoined,
        format!("every node at height ≥ {target} within 60 s: {heights:?}"),
    );
    report.check(
        "nobody signed twice",
        slashed.iter().all(|s| *s == 0),
        format!("slashed per node's ledger: {slashed:?}"),
    );
    if !report.passing() {
        report.note(format!(
            "the run directory (configs, stores, node logs) is kept: {}",
            cluster.keep_dir().display()
        ));
    }
    for i in 0..n {
        cluster.terminate(i, Duration::from_secs(20))?;
    }
    Ok(())
}
