//! `chorus-testbeds bench …`: the numbers of `BENCHMARKS.md` (section "Testbeds"), each
//! printed with what it is relative to, measured within one run.
//!
//! - `ingest`: the ingest pipeline (decode + verify + validate + store + merge) vs raw ed25519
//!   `verify_strict`, alternating rounds ([`ingest`]);
//! - `inference`: network inference available on every node after window close, p50/p99, at
//!   each `--nodes` size ([`latency`]);
//! - `finality`: checkpoint finality at each `--validators` size ([`latency`]);
//! - `catchup`: catch-up entries per second vs ingest entries per second (scenario 6 and
//!   `ingest` in one run);
//! - `footprint`: RSS per node following topics × workers, disk bytes per stored entry vs the
//!   raw envelope ([`footprint`]);
//! - `all`: everything with the defaults.

pub mod footprint;
pub mod ingest;
pub mod latency;
pub mod publisher;

use std::process::ExitCode;

use clap::{Args, ValueEnum};

use crate::report::Report;

/// Which benchmark.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Which {
    /// Ingest pipeline vs raw verify.
    Ingest,
    /// Inference availability after window close.
    Inference,
    /// Checkpoint finality.
    Finality,
    /// Catch-up vs ingest entries per second.
    Catchup,
    /// RSS and disk per node.
    Footprint,
    /// Everything.
    All,
}

/// `bench` flags.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Which benchmark.
    #[arg(value_enum)]
    pub which: Which,
    /// Envelopes per ingest round.
    #[arg(long, default_value_t = 1_000)]
    pub envelopes: usize,
    /// Ingest rounds (median).
    #[arg(long, default_value_t = 15)]
    pub rounds: usize,
    /// Network sizes of the inference benchmark.
    #[arg(long, value_delimiter = ',', default_value = "10,50")]
    pub nodes: Vec<usize>,
    /// Inferers in the inference benchmark.
    #[arg(long, default_value_t = 10)]
    pub workers: usize,
    /// Validator counts of the finality benchmark.
    #[arg(long, value_delimiter = ',', default_value = "4,20,50")]
    pub validators: Vec<usize>,
    /// Epoch length = checkpoint period of the inference and finality networks (ms).
    #[arg(long, default_value_t = 1_000)]
    pub period_ms: u64,
    /// Epochs (or heights) measured per size.
    #[arg(long, default_value_t = 20)]
    pub epochs: u64,
    /// Catch-up: epochs offline, topics, workers.
    #[arg(long, value_delimiter = ',', default_value = "200,4,10")]
    pub catchup: Vec<u64>,
    /// Footprint: topics, workers per topic, epochs.
    #[arg(long, value_delimiter = ',', default_value = "10,100,120")]
    pub footprint: Vec<u64>,
    /// Footprint: epoch length in ms (default and least: 1 s, 0.6 ms per bundle beyond 1 666
    /// bundles an epoch). Gossipsub keeps per-message records for two minutes, so the message
    /// rate, not only the size, sets part of the memory.
    #[arg(long)]
    pub footprint_epoch_ms: Option<u64>,
    /// The `chorus` binary (footprint; default: the one next to this executable).
    #[arg(long)]
    pub chorus_bin: Option<std::path::PathBuf>,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// Run the benchmarks.
pub async fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    let mut report = Report::new("bench");
    report.metric(
        "profile",
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
    );
    report.metric("cpus", crate::scenarios::cpus() as u64);
    let all = args.which == Which::All;
    let mut ingest_rate = None;
    if all || matches!(args.which, Which::Ingest | Which::Catchup) {
        ingest_rate = Some(ingest(&args, &mut report).await?);
    }
    if all || args.which == Which::Inference {
        inference(&args, &mut report).await?;
    }
    if all || args.which == Which::Finality {
        finality(&args, &mut report).await?;
    }
    if all || args.which == Which::Catchup {
        catchup(&args, ingest_rate, &mut report).await?;
    }
    if all || args.which == Which::Footprint {
        footprint(&args, &mut report).await?;
    }
    Ok(report.finish(args.json))
}

/// Ingest: the validate → store → merge pipeline against raw signature verification; returns
/// the pipeline's rate (envelopes/s).
async fn ingest(args: &BenchArgs, report: &mut Report) -> anyhow::Result<f64> {
    let rounds = if args.which == Which::Catchup {
        args.rounds.min(5)
    } else {
        args.rounds
    };
    let envelopes = args.envelopes;
    let r = tokio::task::spawn_blocking(move || ingest::measure(envelopes, rounds)).await??;
    report.metric("ingest_envelopes_per_round", r.envelopes as u64);
    report.metric("ingest_envelope_bytes", r.envelope_bytes as u64);
    report.metric("ingest_rounds", r.rounds as u64);
    report.metric("raw_verify_per_s", r.raw_verify_per_s.round());
    report.metric(
        "raw_verify_parsed_keys_per_s",
        r.raw_verify_parsed_per_s.round(),
    );
    report.metric("pipeline_per_s", r.pipeline_per_s.round());
    report.metric("pipeline_without_store_per_s", r.no_store_per_s.round());
    report.metric("batch_verify_per_s", r.batch_verify_per_s.round());
    report.metric(
        "pipeline_vs_raw_verify",
        (r.ratio() * 100.0).round() / 100.0,
    );
    report.metric(
        "pipeline_time_pct_validate_store_merge",
        vec![
            round1(r.share_validate * 100.0),
            round1(r.share_store * 100.0),
            round1(r.share_merge * 100.0),
        ],
    );
    report.check(
        "ingest pipeline ≥ 0.5× raw verify",
        r.ratio() >= 0.5,
        format!(
            "{:.0}/s vs {:.0}/s = {:.2}× (without the store {:.2}×; batch verify alone \
             {:.2}×; against verification with keys decompressed beforehand {:.2}×)",
            r.pipeline_per_s,
            r.raw_verify_per_s,
            r.ratio(),
            r.no_store_per_s / r.raw_verify_per_s,
            r.batch_verify_per_s / r.raw_verify_per_s,
            r.pipeline_per_s / r.raw_verify_parsed_per_s
        ),
    );
    Ok(r.pipeline_per_s)
}

/// Inference latency at each `--nodes`.
async fn inference(args: &BenchArgs, report: &mut Report) -> anyhow::Result<()> {
    for n in &args.nodes {
        let (local, fin) =
            latency::inference(*n, args.workers, args.epochs, args.period_ms).await?;
        report.metric(
            &format!("inference_{n}_nodes_local"),
            serde_json::to_value(&local)?,
        );
        report.metric(
            &format!("inference_{n}_nodes_finalized"),
            serde_json::to_value(&fin)?,
        );
        report.check(
            &format!("inference on every node at {n} nodes"),
            local.missing == 0 && fin.missing == 0,
            format!(
                "after window close + {} ms skew allowance: p50 {} ms, p99 {} ms; finalized \
                 after window close: p50 {} ms, p99 {} ms ({} samples)",
                local.protocol_wait_ms,
                local.p50_ms,
                local.p99_ms,
                fin.p50_ms,
                fin.p99_ms,
                local.samples
            ),
        );
    }
    Ok(())
}

/// Finality latency at each `--validators`.
async fn finality(args: &BenchArgs, report: &mut Report) -> anyhow::Result<()> {
    for v in &args.validators {
        let l = latency::finality(*v, args.epochs, args.period_ms).await?;
        report.metric(
            &format!("finality_{v}_validators"),
            serde_json::to_value(&l)?,
        );
        report.check(
            &format!("finality at {v} validators"),
            l.missing == 0,
            format!(
                "period end → applied on each validator: p50 {} ms, p99 {} ms (includes the \
                 {} ms skew + grace wait before the height starts; {} samples)",
                l.p50_ms, l.p99_ms, l.protocol_wait_ms, l.samples
            ),
        );
    }
    Ok(())
}

/// Catch-up rate of a node that was offline (the catchup scenario), against the ingest rate.
async fn catchup(
    args: &BenchArgs,
    ingest_rate: Option<f64>,
    report: &mut Report,
) -> anyhow::Result<()> {
    let (e, t, w) = match args.catchup.as_slice() {
        [e, t, w] => (*e, *t as usize, *w as usize),
        _ => anyhow::bail!("--catchup EPOCHS,TOPICS,WORKERS"),
    };
    let mut sub = Report::new("catchup");
    crate::scenarios::catchup::run_inner(
        crate::scenarios::catchup::CatchupArgs {
            epochs: e,
            topics: t,
            workers: w,
            epoch_ms: 1_000,
            timeout: 1_800,
            state_sync: false,
            json: false,
        },
        &mut sub,
    )
    .await?;
    let rate = sub
        .get_metric("entries_per_second")
        .and_then(serde_json::Value::as_f64)
        .unwrap_or(f64::NAN);
    for k in ["catch_up_seconds", "entries_fetched", "heights_per_second"] {
        if let Some(v) = sub.get_metric(k) {
            report.metric(&format!("catchup_{k}"), v.clone());
        }
    }
    report.metric("catchup_entries_per_s", rate);
    for f in sub.failures() {
        report.note(format!("catch-up run: {f}"));
    }
    if let Some(i) = ingest_rate {
        report.metric("catchup_vs_ingest", (rate / i * 1000.0).round() / 1000.0);
    }
    report.check(
        "catch-up measured",
        sub.passing(),
        format!(
            "{e} epochs × {t} topics × {w} workers: {rate:.0} entries/s caught up{}",
            ingest_rate
                .map(|i| format!(" vs {i:.0}/s ingest = {:.3}×", rate / i))
                .unwrap_or_default()
        ),
    );
    Ok(())
}

/// Memory and store footprint of a long run.
async fn footprint(args: &BenchArgs, report: &mut Report) -> anyhow::Result<()> {
    let (t, w, e) = match args.footprint.as_slice() {
        [t, w, e] => (*t as usize, *w as usize, *e),
        _ => anyhow::bail!("--footprint TOPICS,WORKERS,EPOCHS"),
    };
    let f = footprint::measure(
        (t, w, e),
        args.footprint_epoch_ms,
        args.chorus_bin.as_deref(),
    )
    .await?;
    report.metric("footprint", serde_json::to_value(&f)?);
    report.check(
        "footprint measured",
        f.finalized_share > 0.9
            && f.unpublished == 0
            && f.bundle_share >= 0.99
            && f.state_sync.is_some(),
        format!(
            "{t} topics × {w} workers, {e} epochs of {} ms: RSS validator {} MiB (peak {}), \
             follower {} MiB (peak {}); {} B on disk per stored entry = {}× the raw envelope \
             ({} envelopes; file length {} B per entry = {}×; {} background compactions took \
             {} s); {:.1} % of the bundles published finalized ({} not published); \
             {:.1} % of the top inferers in the finalized inferences; the follower's B per \
             envelope by table: {}; {} B per entry after compaction ({} s); a newcomer's \
             state sync: {}",
            f.epoch_ms,
            f.rss_end_mib[0],
            f.rss_peak_mib[0],
            f.rss_end_mib[1],
            f.rss_peak_mib[1],
            f.disk_bytes_per_entry,
            f.disk_overhead,
            f.envelopes,
            f.bytes_per_entry,
            f.overhead,
            f.background_compactions,
            f.background_compaction_seconds,
            round1(f.bundle_share * 100.0),
            f.unpublished,
            round1(f.finalized_share * 100.0),
            footprint::where_bytes_go(&f),
            f.compacted_bytes_per_entry,
            f.compact_seconds,
            f.state_sync
                .as_ref()
                .map_or("failed".to_string(), |s| format!(
                    "height {}, {} KiB in {} part(s), {} s",
                    s.height,
                    s.snapshot_bytes / 1024,
                    s.parts,
                    s.seconds
                ))
        ),
    );
    Ok(())
}
