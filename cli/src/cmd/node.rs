//! `chorus node run` and `chorus config validate`.

use std::path::PathBuf;

use anyhow::Context;
use chorus_node::actor::{NodeSetup, spawn};
use chorus_node::api;
use chorus_node::clock::Clock;
use chorus_node::config::Config;
use chorus_protocol::genesis::Genesis;
use chorus_protocol::keyfile::read_key_file;
use clap::{Args, Subcommand};

use crate::output::{BadInput, Output};

/// `chorus node …`.
#[derive(Debug, Subcommand)]
pub enum NodeCommand {
    /// Run a node from a config file until Ctrl-C or SIGTERM.
    Run(RunArgs),
}

/// `chorus node run` flags.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The node's TOML config.
    #[arg(long, short)]
    config: PathBuf,
}

/// `chorus config …`.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Check a config file and explain every problem.
    Validate {
        /// The file.
        file: PathBuf,
    },
    /// Convert an allora-offchain-node config.json into a Chorus node config (workers,
    /// reputers; a line for everything that does not map).
    ImportAllora {
        /// The Allora config.json.
        file: PathBuf,
        /// Write the config here (refused if it exists) instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

/// Load and validate a config; every problem becomes one bad-input error.
pub(super) fn load(path: &std::path::Path) -> anyhow::Result<Config> {
    let cfg = Config::load(path).map_err(|e| BadInput(e.to_string()))?;
    cfg.validate().map_err(|e| {
        BadInput(format!(
            "{} has {} problem(s):\n  - {}",
            path.display(),
            e.problems.len(),
            e.problems.join("\n  - ")
        ))
    })?;
    Ok(cfg)
}

/// Run a config command.
pub fn config(cmd: ConfigCommand, out: &Output) -> anyhow::Result<()> {
    let file = match cmd {
        ConfigCommand::Validate { file } => file,
        ConfigCommand::ImportAllora { file, out: to } => {
            return super::import::run(&file, to.as_ref(), out);
        }
    };
    load(&file)?;
    out.print(
        &format!("{}: ok", file.display()),
        &serde_json::json!({"file": file.display().to_string(), "ok": true}),
    )
}

fn init_logs(cfg: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&cfg.log.level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if cfg.log.format == "json" {
        let _ = builder.json().try_init();
    } else {
        let _ = builder.try_init();
    }
}

/// No genesis file, a network id and bootstrap peers: ask the peers in turn for the genesis,
/// keep the first that hashes to the id, and write it where the config says.
async fn fetch_genesis(cfg: &Config, key: &chorus_protocol::keys::Keypair) -> anyhow::Result<()> {
    let id = cfg.network_id().context("[node] network_id")?;
    let mut tried = vec![];
    for addr in &cfg.network.bootstrap {
        let addr: chorus_node::join::Multiaddr = addr
            .parse()
            .map_err(|e| BadInput(format!("[network] bootstrap {addr:?}: {e}")))?;
        let timeout = std::time::Duration::from_secs(30);
        match chorus_node::join::fetch_genesis(&addr, id, key, timeout).await {
            Ok(genesis) => {
                let text = genesis.to_toml_string()?;
                std::fs::write(&cfg.node.genesis, text)
                    .with_context(|| format!("writing {}", cfg.node.genesis.display()))?;
                tracing::info!(
                    from = %addr,
                    file = %cfg.node.genesis.display(),
                    "genesis fetched and checked against the network id"
                );
                return Ok(());
            }
            Err(e) => tried.push(format!("{addr}: {e}")),
        }
    }
    anyhow::bail!(
        "no genesis of network {} from the bootstrap peers ({})",
        id.to_hex(),
        tried.join("; ")
    )
}

/// Far behind a bootstrap peer (`[node] state_sync_heights`): install its certified state
/// before starting. A peer that cannot be asked or serves nothing that verifies is logged and
/// the node starts from its own store (it then replays); a store that cannot be read stops it.
async fn state_sync_at_start(cfg: &Config, genesis: &Genesis) -> anyhow::Result<()> {
    let mut peers = vec![];
    for addr in &cfg.network.bootstrap {
        peers.push(
            addr.parse::<chorus_node::join::Multiaddr>()
                .map_err(|e| BadInput(format!("[network] bootstrap {addr:?}: {e}")))?,
        );
    }
    // Only a connection identity: the node's own key is for the node.
    let key = super::key::generate()?;
    let path = cfg.node.data_dir.join("node.redb");
    std::fs::create_dir_all(&cfg.node.data_dir)
        .with_context(|| format!("creating {}", cfg.node.data_dir.display()))?;
    let started = std::time::Instant::now();
    match chorus_node::state_sync::sync_if_behind(
        &path,
        genesis,
        &peers,
        cfg.trusted_checkpoint(),
        &key,
        cfg.node.state_sync_heights,
        std::time::Duration::from_secs(10),
    )
    .await
    {
        Ok(None) => {}
        Ok(Some(s)) => tracing::info!(
            peer = %s.peer,
            height = s.height,
            previous = s.previous_height,
            bytes = s.snapshot_bytes,
            installed = s.installed,
            ms = started.elapsed().as_millis() as u64,
            "certified state installed (state sync)"
        ),
        Err(errors) => {
            if let Some(store) = errors.iter().find_map(|e| match e {
                chorus_node::state_sync::SyncError::Store(s) => Some(s.to_string()),
                _ => None,
            }) {
                anyhow::bail!("{}: {store}", path.display());
            }
            // A peer that serves a state that does not verify is worth a warning; one that is
            // not up yet (a network starting together) is not.
            for e in &errors {
                match e {
                    chorus_node::state_sync::SyncError::BadState { .. } => {
                        tracing::warn!(error = %e, "state sync at start: replaying instead");
                    }
                    _ => tracing::info!(error = %e, "state sync at start: replaying instead"),
                }
            }
        }
    }
    Ok(())
}

/// Run a node command.
pub fn node(cmd: NodeCommand) -> anyhow::Result<()> {
    let NodeCommand::Run(args) = cmd;
    let cfg = load(&args.config)?;
    init_logs(&cfg);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run(cfg))
}

async fn run(cfg: Config) -> anyhow::Result<()> {
    let key = read_key_file(&cfg.node.key)?;
    if cfg.fetches_genesis() {
        fetch_genesis(&cfg, &key).await?;
    }
    let text = std::fs::read_to_string(&cfg.node.genesis)
        .with_context(|| format!("reading {}", cfg.node.genesis.display()))?;
    let genesis = Genesis::from_toml_str(&text)?;
    let state_sync = cfg.node.state_sync_heights > 0 && !cfg.network.bootstrap.is_empty();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        if state_sync {
            state_sync_at_start(&cfg, &genesis).await?;
        }
        let setup = NodeSetup::from_config(&cfg, genesis.clone(), key.clone(), Clock::system())?;
        let mut node = spawn(setup).await?;
        tracing::info!(peer = %node.peer_id, listen = ?node.listen, "node started");
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let api_task = if cfg.api.enabled {
            let token = api::auth::load_or_create_token(&cfg.api.admin_token_file)
                .with_context(|| format!("admin token {}", cfg.api.admin_token_file.display()))?;
            let listener = tokio::net::TcpListener::bind(&cfg.api.listen)
                .await
                .with_context(|| format!("binding the API to {}", cfg.api.listen))?;
            tracing::info!(addr = %cfg.api.listen, "REST API listening");
            let router = api::router(node.handle.clone(), token);
            Some(tokio::spawn(api::serve(listener, router, async move {
                let _ = stop_rx.await;
            })))
        } else {
            None
        };
        let behind = far_behind(&cfg, &genesis, &node.handle, state_sync);
        let resync = tokio::select! {
            _ = tokio::signal::ctrl_c() => false,
            _ = term.recv() => false,
            _ = node.tasks.join_next() => {
                tracing::error!("a node task ended unexpectedly");
                false
            }
            _ = behind => true,
        };
        tracing::info!("stopping");
        let _ = stop_tx.send(());
        if let Some(t) = api_task {
            let _ = t.await;
        }
        node.stop().await;
        if !resync {
            return Ok(());
        }
        tracing::warn!(
            heights = cfg.node.state_sync_heights,
            "far behind a bootstrap peer while running: restarting from its certified state"
        );
    }
}

/// Resolves once a bootstrap peer is `[node] state_sync_heights` ahead of the running node
/// (one peer asked in turn every [`behind_check_every`]); never when state sync is off. A node that was
/// suspended or cut off for long then restarts from a peer's certified state instead of
/// replaying every window, which may no longer be possible once peers pruned them.
async fn far_behind(
    cfg: &Config,
    genesis: &Genesis,
    node: &chorus_node::actor::NodeHandle,
    state_sync: bool,
) {
    if !state_sync {
        return std::future::pending().await;
    }
    let peers: Vec<chorus_node::join::Multiaddr> = cfg
        .network
        .bootstrap
        .iter()
        .filter_map(|a| a.parse().ok())
        .collect();
    // Only a connection identity: the node's own key is for the node.
    let Ok(key) = super::key::generate() else {
        return std::future::pending().await;
    };
    let every = behind_check_every(genesis.params.checkpoint_period_ms);
    // One peer per check, in turn: a check is a connection, and a network of many nodes
    // should not open one to every bootstrap peer every few seconds.
    for peer in peers.iter().cycle() {
        tokio::time::sleep(every).await;
        let Ok(p) = node.progress(vec![]).await else {
            continue;
        };
        let wanted = p.height.saturating_add(cfg.node.state_sync_heights);
        let timeout = std::time::Duration::from_secs(10);
        let reached = chorus_node::state_sync::peer_reaches(peer, &key, wanted, timeout).await;
        if matches!(reached, Ok(true)) {
            return;
        }
    }
    std::future::pending().await
}

/// How often a running node asks whether a peer is far ahead: every 8 checkpoint periods, at
/// least every 5 s and at most every 10 minutes.
fn behind_check_every(checkpoint_period_ms: u64) -> std::time::Duration {
    std::time::Duration::from_millis(checkpoint_period_ms.saturating_mul(8).clamp(5_000, 600_000))
}
