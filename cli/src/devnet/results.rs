//! The end of a run: the checks (every node on the same ledger, supply conserved), the report
//! rows handed to [`super::report`], and what is printed (tables and paths, or one `--json`
//! summary object).

use crate::output::outln;
use std::collections::BTreeMap;

use anyhow::bail;
use chorus_node::api::types;
use serde::Serialize;
use serde_json::Value;

use super::follow::Followed;
use super::network::Network;
use super::observe::Source;
use super::plan::TopicPlan;
use super::report::{self, ReportFiles, TopicRun, WorkerInfo};
use crate::output::Output;

/// The `--json` summary.
#[derive(Serialize)]
pub(super) struct Summary {
    /// `network` (real nodes) or `replay` (`--replay`: the ledger code, no network).
    pub mode: &'static str,
    /// The topics' mechanism version.
    pub mechanism: &'static str,
    pub epochs: u64,
    pub checkpoints_finalized: u64,
    pub supply_conserved: bool,
    pub nodes_agree: bool,
    pub warmup_epochs: u64,
    pub seconds: f64,
    /// Where a networked run's time went (absent for a replay).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timing: Option<Timing>,
    /// What the stepped clock did (absent on the wall clock and for a replay).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stepped: Option<super::stepped::Stepped>,
    pub topics: Vec<report::TopicSummary>,
    pub report: Vec<String>,
}

/// Where the wall time of a run went (s).
#[derive(Serialize)]
pub(super) struct Timing {
    /// `stepped` (the devnet moved the nodes' clock) or `wall` (`--epoch-ms`).
    pub clock: &'static str,
    /// Keys, genesis, starting the nodes.
    pub start: f64,
    /// Until epoch 0: idle until the genesis time on the wall clock; the nodes connecting on
    /// the stepped clock.
    pub until_genesis: f64,
    /// The epochs: `epochs × epoch_ms` on the wall clock (paced), the time the nodes took on
    /// the stepped clock (CPU-bound).
    pub epochs: f64,
    /// After the epochs until the last one settled (the wall clock: beyond the pacing).
    pub finality_tail: f64,
    /// Agreement and supply checks, tables, CSV and plots.
    pub report: f64,
}

impl Timing {
    fn line(&self) -> String {
        let (genesis, paced) = match self.clock {
            "stepped" => ("connecting", "as fast as the nodes went"),
            _ => ("until genesis", "paced by the clock"),
        };
        format!(
            "where the time went: start {:.1} s, {genesis} {:.1} s, epochs {:.1} s ({paced}), \
             finality tail {:.1} s, checks and report {:.1} s",
            self.start, self.until_genesis, self.epochs, self.finality_tail, self.report
        )
    }
}

/// The end-of-run checks, and node 0's status they read.
pub(super) struct Checks {
    /// Every node reports the same height and ledger root.
    pub nodes_agree: bool,
    /// Node 0's total supply is genesis + minted - slashed.
    pub supply_conserved: bool,
    /// Node 0's `/v1/status`.
    status: types::Status,
}

impl Checks {
    /// Ask every node; with `CHORUS_DEVNET_DEBUG`, also print node 0's scores, topics,
    /// status and validation counters, and every node's height.
    pub async fn run(net: &Network, topics: &[TopicPlan]) -> anyhow::Result<Checks> {
        let nodes_agree = net.agree().await;
        let status = net.node0().status().await?;
        if std::env::var_os("CHORUS_DEVNET_DEBUG").is_some() {
            debug_dump(net, topics, &status).await?;
        }
        Ok(Checks {
            nodes_agree,
            supply_conserved: status.supply.conserved,
            status,
        })
    }

    /// An error if a check failed.
    pub fn verdict(&self) -> anyhow::Result<()> {
        if !self.supply_conserved {
            bail!("supply was not conserved");
        }
        if !self.nodes_agree {
            bail!("the nodes did not agree on the ledger");
        }
        Ok(())
    }
}

/// A document as one line of JSON (keys sorted, as the node sends them).
fn json<T: Serialize>(doc: &T) -> Value {
    serde_json::to_value(doc).unwrap_or_default()
}

async fn debug_dump(
    net: &Network,
    topics: &[TopicPlan],
    status: &types::Status,
) -> anyhow::Result<()> {
    let node0 = net.node0();
    for p in topics {
        eprintln!("scores {}: {}", p.id, json(&node0.scores(p.id).await?));
        eprintln!("topic {}: {}", p.id, json(&node0.topic(p.id).await?));
    }
    eprintln!("status: {}", json(status));
    for (i, src) in net.sources.iter().enumerate() {
        let st = src.status().await?;
        eprintln!(
            "node {i}: height {} submissions {}",
            st.height,
            json(&st.submissions)
        );
    }
    if let Source::Local(h) = node0 {
        for line in h.metrics().encode().lines() {
            if line.contains("validation_outcomes") && !line.starts_with('#') {
                eprintln!("{line}");
            }
        }
    }
    Ok(())
}

/// The report input of every topic: the rows `seen`, their rewards, and node 0's score EMAs.
pub(super) async fn topic_runs(
    node0: &Source,
    topics: &[TopicPlan],
    mut seen: Followed,
) -> Vec<TopicRun> {
    let mut runs = vec![];
    for p in topics {
        let mut ema = BTreeMap::new();
        if let Ok(s) = node0.scores(p.id).await {
            ema.extend(s.inferers.into_iter().chain(s.forecasters));
        }
        runs.push(topic_run(p, &mut seen, &ema));
    }
    runs
}

/// The report input of topic `p`: its rows in `seen` with their rewards, and the score EMAs
/// `ema` (by hex key) of its workers.
pub(super) fn topic_run(
    p: &TopicPlan,
    seen: &mut Followed,
    ema: &BTreeMap<String, f64>,
) -> TopicRun {
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
    for (k, v) in ema {
        if let Some((name, _)) = p.workers.get(k) {
            run.score_ema.insert(name.clone(), *v);
        }
    }
    for (epoch, mut rec) in seen.records.remove(&p.id).unwrap_or_default() {
        if let Some(r) = seen.rewards.get(&(p.id, epoch)) {
            for (k, amount) in r {
                if let Some((name, _)) = p.workers.get(k) {
                    rec.rewards.insert(name.clone(), *amount);
                }
            }
        }
        run.records.push(rec);
    }
    run
}

/// Print the summary: one JSON object with `--json`, else the tables, the checks, the timing
/// and the report's paths.
pub(super) fn print(
    out: &Output,
    summary: &Summary,
    files: &ReportFiles,
    checks: &Checks,
) -> anyhow::Result<()> {
    if out.json {
        outln!("{}", serde_json::to_string_pretty(summary)?)?;
        return Ok(());
    }
    let supply = &checks.status.supply;
    outln!()?;
    outln!("{}", files.tables())?;
    outln!(
        "supply check: {} (genesis {} + minted {} - slashed {} = total {})",
        if checks.supply_conserved {
            "conserved"
        } else {
            "BROKEN"
        },
        supply.genesis,
        supply.minted,
        supply.slashed,
        supply.total,
    )?;
    outln!(
        "nodes agree: {}",
        if checks.nodes_agree {
            "yes (same height and ledger root on every node)"
        } else {
            "NO"
        }
    )?;
    outln!(
        "checkpoints finalized: {}; wall time {:.1} s",
        summary.checkpoints_finalized,
        summary.seconds
    )?;
    if let Some(t) = &summary.timing {
        outln!("{}", t.line())?;
    }
    print_paths(files)
}

/// Print a replay's summary: one JSON object with `--json`, else the tables, the supply check
/// and the report's paths.
pub(super) fn print_replay(
    out: &Output,
    summary: &Summary,
    files: &ReportFiles,
    replay: std::time::Duration,
) -> anyhow::Result<()> {
    if out.json {
        outln!("{}", serde_json::to_string_pretty(summary)?)?;
        return Ok(());
    }
    outln!()?;
    outln!("{}", files.tables())?;
    outln!(
        "supply check: {}",
        if summary.supply_conserved {
            "conserved"
        } else {
            "BROKEN"
        }
    )?;
    outln!(
        "heights applied: {}; replay {:.1} s, report {:.1} s",
        summary.checkpoints_finalized,
        replay.as_secs_f64(),
        (summary.seconds - replay.as_secs_f64()).max(0.0)
    )?;
    print_paths(files)
}

/// The report's paths, one per line.
fn print_paths(files: &ReportFiles) -> anyhow::Result<()> {
    outln!("report files:")?;
    for p in files.paths() {
        outln!("  {}", p.display())?;
    }
    Ok(())
}
