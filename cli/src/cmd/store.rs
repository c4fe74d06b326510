//! `chorus store export|import|stats|compact`: a node's finalized history to and from a
//! portable archive (`chorus_node::store::archive`), where its store's bytes go and giving its
//! free pages back (`chorus_node::store::stats`), with the node stopped.

use std::path::{Path, PathBuf};

use anyhow::Context;
use chorus_node::config::Config;
use chorus_node::store::{Database, StoreError, archive, ops};
use chorus_protocol::genesis::Genesis;
use clap::{Args, Subcommand};

use crate::output::{BadInput, Output};

/// `chorus store …`.
#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Write the decided checkpoints of a height range, their head lists and their windows'
    /// envelopes to an archive file (keep history the retention would prune).
    Export(ExportArgs),
    /// Read an archive into the node's store: every certificate is checked against the
    /// validator sets this node recorded, every envelope against its certified head list.
    Import(ImportArgs),
    /// Rows and bytes per table of the node's store, against the bytes of its envelopes.
    Stats(StatsArgs),
    /// Give the store's free pages back to the file system (after pruning, or to measure).
    Compact(StatsArgs),
    /// Fetch a peer's newest ledger state with the certificate chain that vouches for it,
    /// verify it from the genesis (or `[node] trusted_checkpoint`) and install it, so a node
    /// that was away starts there instead of replaying every window (the node must be stopped).
    Sync(SyncArgs),
}

/// `chorus store sync` flags.
#[derive(Debug, Args)]
pub struct SyncArgs {
    /// The node's TOML config (its data directory, genesis, bootstrap peers, trusted checkpoint).
    #[arg(long, short)]
    config: PathBuf,
    /// Peers to ask (default: the config's `[network] bootstrap`), in turn.
    #[arg(long = "from", value_name = "MULTIADDR")]
    from: Vec<chorus_node::join::Multiaddr>,
    /// Give up on a peer after this many seconds.
    #[arg(long, default_value_t = 30, value_name = "SECONDS")]
    timeout_secs: u64,
}

/// `chorus store stats` flags.
#[derive(Debug, Args)]
pub struct StatsArgs {
    /// The node's TOML config (its data directory and genesis).
    #[arg(long, short)]
    config: PathBuf,
}

/// `chorus store export` flags.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The node's TOML config (its data directory and genesis).
    #[arg(long, short)]
    config: PathBuf,
    /// First height.
    #[arg(long, default_value_t = 1)]
    from: u64,
    /// Last height (default: the newest stored).
    #[arg(long)]
    to: Option<u64>,
    /// The archive to write (refused if it exists).
    #[arg(long)]
    out: PathBuf,
}

/// `chorus store import` flags.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The node's TOML config (its data directory and genesis).
    #[arg(long, short)]
    config: PathBuf,
    /// The archive.
    file: PathBuf,
}

/// The node's store, opened for this command: the node must be stopped.
fn open_store(cfg: &Config) -> anyhow::Result<(Database, chorus_protocol::ids::NetworkId)> {
    let text = std::fs::read_to_string(&cfg.node.genesis)
        .with_context(|| format!("reading {}", cfg.node.genesis.display()))?;
    let network = Genesis::from_toml_str(&text)
        .map_err(|e| BadInput(format!("{}: {e}", cfg.node.genesis.display())))?
        .network_id();
    let path = cfg.node.data_dir.join("node.redb");
    if !path.exists() {
        return Err(BadInput(format!("no store at {}", path.display())).into());
    }
    let db = ops::open(&path, &network).map_err(|e: StoreError| {
        if e.to_string().to_lowercase().contains("already open") {
            anyhow::Error::new(BadInput(format!(
                "{} is in use: stop the node first",
                path.display()
            )))
        } else {
            anyhow::Error::new(e).context(format!("opening {}", path.display()))
        }
    })?;
    Ok((db, network))
}

/// Run a store command.
pub fn run(cmd: StoreCommand, out: &Output) -> anyhow::Result<()> {
    match cmd {
        StoreCommand::Export(a) => export(&a, out),
        StoreCommand::Import(a) => import(&a, out),
        StoreCommand::Stats(a) => stats(&a, out),
        StoreCommand::Compact(a) => compact(&a, out),
        StoreCommand::Sync(a) => sync(&a, out),
    }
}

fn sync(a: &SyncArgs, out: &Output) -> anyhow::Result<()> {
    let cfg = super::node::load(&a.config)?;
    let text = std::fs::read_to_string(&cfg.node.genesis)
        .with_context(|| format!("reading {}", cfg.node.genesis.display()))?;
    let genesis = Genesis::from_toml_str(&text)
        .map_err(|e| BadInput(format!("{}: {e}", cfg.node.genesis.display())))?;
    let peers = if a.from.is_empty() {
        cfg.network
            .bootstrap
            .iter()
            .map(|s| {
                s.parse()
                    .map_err(|e| BadInput(format!("[network] bootstrap {s:?}: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?
    } else {
        a.from.clone()
    };
    if peers.is_empty() {
        return Err(BadInput("no peer to ask: give --from or [network] bootstrap".into()).into());
    }
    // Only a connection identity: the node's own key stays where it is.
    let key = super::key::generate()?;
    std::fs::create_dir_all(&cfg.node.data_dir)
        .with_context(|| format!("creating {}", cfg.node.data_dir.display()))?;
    let path = cfg.node.data_dir.join("node.redb");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let started = std::time::Instant::now();
    let synced = runtime
        .block_on(chorus_node::state_sync::sync_store(
            &path,
            &genesis,
            &peers,
            cfg.trusted_checkpoint(),
            &key,
            std::time::Duration::from_secs(a.timeout_secs),
        ))
        .map_err(|errors| {
            let all: Vec<String> = errors.iter().map(ToString::to_string).collect();
            anyhow::anyhow!(
                "no peer gave a state that verifies (nothing was written): {}",
                all.join("; ")
            )
        })?;
    let verdict = if synced.installed {
        format!(
            "installed (the store was at height {})",
            synced.previous_height
        )
    } else {
        format!(
            "not installed: the store is already at height {}",
            synced.previous_height
        )
    };
    out.print(
        &format!(
            "state of height {} from {}: checkpoint {}, {} KiB, {} validator-set changes, \
             {}/{} of the power signed; {verdict} in {:.1} s",
            synced.height,
            synced.peer,
            synced.checkpoint,
            synced.snapshot_bytes / 1024,
            synced.changes,
            synced.signed_power,
            synced.total_power,
            started.elapsed().as_secs_f64()
        ),
        &synced,
    )
}

/// Bytes in KiB with one decimal.
fn kib(b: u64) -> String {
    format!("{:.1}", b as f64 / 1024.0)
}

fn compact(a: &StatsArgs, out: &Output) -> anyhow::Result<()> {
    let cfg = super::node::load(&a.config)?;
    let (mut db, _) = open_store(&cfg)?;
    let path = cfg.node.data_dir.join("node.redb");
    let size = || std::fs::metadata(&path).map_or(0, |m| chorus_node::store::stats::disk_bytes(&m));
    let before = size();
    let passes = chorus_node::store::stats::compact(&mut db)?;
    drop(db);
    let after = size();
    out.print(
        &format!(
            "{}: {} KiB -> {} KiB ({passes} passes)",
            path.display(),
            kib(before),
            kib(after)
        ),
        &serde_json::json!({
            "file": path.display().to_string(),
            "bytes_before": before,
            "bytes_after": after,
            "passes": passes,
        }),
    )
}

fn stats(a: &StatsArgs, out: &Output) -> anyhow::Result<()> {
    let cfg = super::node::load(&a.config)?;
    let (db, _) = open_store(&cfg)?;
    let path = cfg.node.data_dir.join("node.redb");
    let meta = std::fs::metadata(&path).with_context(|| format!("reading {}", path.display()))?;
    // What the file occupies on disk: redb extends it by doubling its length, sparsely.
    let (file_bytes, length) = (chorus_node::store::stats::disk_bytes(&meta), meta.len());
    let u = chorus_node::store::stats::usage_of(&db, file_bytes)?;
    let envelopes = u.rows("envelopes");
    let per = |b: u64| {
        if envelopes == 0 {
            "-".to_string()
        } else {
            format!("{:.0}", b as f64 / envelopes as f64)
        }
    };
    let mut text = format!(
        "{:<15} {:>10} {:>12} {:>12} {:>12} {:>10}\n",
        "table", "rows", "stored KiB", "btree KiB", "unused KiB", "B/envelope"
    );
    for t in &u.tables {
        text.push_str(&format!(
            "{:<15} {:>10} {:>12} {:>12} {:>12} {:>10}\n",
            t.table,
            t.rows,
            kib(t.stored_bytes),
            kib(t.metadata_bytes),
            kib(t.fragmented_bytes),
            per(t.total())
        ));
    }
    text.push_str(&format!(
        "{:<15} {:>10} {:>12} {:>12} {:>12} {:>10}\n",
        "free/other",
        "",
        "",
        "",
        kib(u.other_bytes()),
        per(u.other_bytes())
    ));
    let ratio = if u.envelope_bytes == 0 {
        "-".to_string()
    } else {
        format!("{:.2}", file_bytes as f64 / u.envelope_bytes as f64)
    };
    text.push_str(&format!(
        "file {} KiB on disk (length {} KiB) for {envelopes} envelopes of {} KiB: {} B per \
         envelope, {ratio}× the envelopes",
        kib(file_bytes),
        kib(length),
        kib(u.envelope_bytes),
        per(file_bytes),
    ));
    out.print(
        &text,
        &serde_json::json!({
            "file": path.display().to_string(),
            "file_bytes": file_bytes,
            "file_length": length,
            "envelope_bytes": u.envelope_bytes,
            "other_bytes": u.other_bytes(),
            "tables": u.tables,
        }),
    )
}

fn export(a: &ExportArgs, out: &Output) -> anyhow::Result<()> {
    let cfg = super::node::load(&a.config)?;
    if a.out.exists() {
        return Err(BadInput(format!("{} exists; not overwritten", a.out.display())).into());
    }
    let (db, network) = open_store(&cfg)?;
    let newest = ops::last_certificate_height(&db)?;
    let to = a.to.unwrap_or(newest);
    if a.from == 0 || a.from > to {
        return Err(BadInput(format!("--from {} is not in 1..={to}", a.from)).into());
    }
    let file = std::fs::File::create_new(&a.out)
        .with_context(|| format!("creating {}", a.out.display()))?;
    let mut w = std::io::BufWriter::new(file);
    let s = archive::export(&db, &network, a.from, to, &mut w)?;
    report(out, "exported", &a.out, a.from, to, &s)
}

fn import(a: &ImportArgs, out: &Output) -> anyhow::Result<()> {
    let cfg = super::node::load(&a.config)?;
    let file =
        std::fs::File::open(&a.file).with_context(|| format!("opening {}", a.file.display()))?;
    let (db, network) = open_store(&cfg)?;
    let mut r = std::io::BufReader::new(file);
    let s = archive::import(&db, &network, &mut r).map_err(|e| match e {
        archive::ArchiveError::Refused(why) => {
            anyhow::Error::new(BadInput(format!("{}: {why}", a.file.display())))
        }
        e => anyhow::Error::new(e),
    })?;
    if !cfg.store.archive {
        eprintln!(
            "note: [store] archive is false: the retention will prune imported history older \
             than retention_days again"
        );
    }
    report(out, "imported", &a.file, 0, 0, &s)
}

fn report(
    out: &Output,
    what: &str,
    file: &Path,
    from: u64,
    to: u64,
    s: &archive::Summary,
) -> anyhow::Result<()> {
    let range = if to > 0 {
        format!(" (heights {from}..={to})")
    } else {
        String::new()
    };
    out.print(
        &format!(
            "{what} {} heights, {} windows, {} envelopes{range}; {} skipped ({})",
            s.heights,
            s.windows,
            s.envelopes,
            s.skipped,
            file.display()
        ),
        &serde_json::json!({ "file": file.display().to_string(), what: s }),
    )
}
