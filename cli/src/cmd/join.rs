//! `chorus join`: everything a newcomer needs from one address and the network id: the genesis
//! (fetched from that peer and checked against the id, `chorus_node::join`), the peer's newest
//! ledger state with the certificate chain that vouches for it (`chorus_node::state_sync`:
//! verified from the genesis validators or a trusted checkpoint, so the node starts there
//! instead of replaying every window), a new key and a node config that bootstraps from the
//! peer. Nothing is written unless all of it checks out.

use std::fs;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use chorus_node::join::{JoinError, Multiaddr, fetch_genesis};
use chorus_node::state_sync::{SyncError, fetch_state, install};
use chorus_protocol::genesis::Genesis;
use chorus_protocol::ids::NetworkId;
use chorus_protocol::keyfile::write_key_file;
use clap::Args;

use crate::output::{BadInput, Output};

/// Arguments of `chorus join`.
#[derive(Debug, Args)]
pub struct JoinArgs {
    /// A node of the network: `/ip4/<ip>/tcp/<port>/p2p/<peer id>`.
    #[arg(long, value_name = "MULTIADDR")]
    pub bootstrap: Multiaddr,
    /// The network's id (64 hex digits, as `chorus status` or `GET /v1/status` shows it):
    /// the genesis the peer serves must hash to it.
    #[arg(long, value_name = "HEX")]
    pub network_id: NetworkId,
    /// The new node's directory: genesis.toml, node.key and node.toml are written there.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Where the new node listens for peers.
    #[arg(
        long,
        default_value = "/ip4/0.0.0.0/tcp/4001",
        value_name = "MULTIADDR"
    )]
    pub listen: Multiaddr,
    /// Where the new node serves its REST API and dashboard.
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR")]
    pub api: std::net::SocketAddr,
    /// Give up on the peer after this many seconds.
    #[arg(long, default_value_t = 30, value_name = "SECONDS")]
    pub timeout_secs: u64,
    /// Do not fetch the peer's newest certified state: the node replays every window from
    /// genesis (slower; keeps the whole history of windows).
    #[arg(long)]
    pub from_genesis: bool,
    /// Verify the fetched state from this checkpoint (`<height>:<checkpoint id>`, as
    /// `GET /v1/checkpoints/latest` of a node you trust shows it) instead of from the genesis
    /// validators; written to the config as `[node] trusted_checkpoint`.
    #[arg(long, value_name = "HEIGHT:ID")]
    pub trusted_checkpoint: Option<String>,
}

const FILES: [&str; 3] = ["genesis.toml", "node.key", "node.toml"];

/// The node config `chorus join` writes (paths relative to the config's directory).
fn config_text(args: &JoinArgs, genesis: &Genesis) -> String {
    format!(
        "# Written by `chorus join` for network \"{name}\" ({id}).\n\
         # Add roles ([[worker]], [[reputer]], [validator]) as in examples/node/*.toml.\n\
         \n\
         [node]\n\
         data_dir = \"data\"\n\
         key = \"node.key\"\n\
         genesis = \"genesis.toml\"\n\
         {trusted}\
         \n\
         [network]\n\
         listen = [\"{listen}\"]\n\
         bootstrap = [\"{bootstrap}\"]\n\
         \n\
         [api]\n\
         listen = \"{api}\"\n",
        name = genesis.network.escape_debug(),
        id = genesis.network_id(),
        listen = args.listen,
        bootstrap = args.bootstrap,
        api = args.api,
        trusted = args
            .trusted_checkpoint
            .as_ref()
            .map(|t| format!("trusted_checkpoint = \"{t}\"\n"))
            .unwrap_or_default(),
    )
}

/// `chorus join --bootstrap ADDR --network-id HEX --out DIR`.
pub fn run(args: &JoinArgs, out: &Output) -> anyhow::Result<()> {
    if let Some(existing) = FILES.iter().map(|f| args.out.join(f)).find(|p| p.exists()) {
        return Err(BadInput(format!(
            "{} already exists: join into a new directory (nothing was written)",
            existing.display()
        ))
        .into());
    }
    let key = super::key::generate()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let genesis = runtime
        .block_on(fetch_genesis(
            &args.bootstrap,
            args.network_id,
            &key,
            Duration::from_secs(args.timeout_secs),
        ))
        .map_err(|e| match e {
            JoinError::NoPeerId(_) => anyhow::Error::from(BadInput(e.to_string())),
            e => e.into(),
        })?;
    let trusted = match &args.trusted_checkpoint {
        None => None,
        Some(t) => Some(
            chorus_node::config::parse_trusted_checkpoint(t).ok_or_else(|| {
                BadInput(format!(
                    "--trusted-checkpoint {t:?}: expected <height>:<64 hex digits>"
                ))
            })?,
        ),
    };
    // The newest certified state, verified before anything is written.
    let fetched = if args.from_genesis {
        None
    } else {
        match runtime.block_on(fetch_state(
            &args.bootstrap,
            &genesis,
            trusted,
            &key,
            Duration::from_secs(args.timeout_secs),
        )) {
            Ok(f) => Some(f),
            // No state to give (nothing finalized yet, or too large for one answer): the node
            // replays from genesis, which is only slower.
            Err(SyncError::Join(e)) if matches!(*e, JoinError::Refused { .. }) => {
                let reason = e.to_string();
                eprintln!(
                    "note: the peer has no state to give ({reason}): the node will replay from \
                     genesis"
                );
                None
            }
            Err(e) => {
                return Err(anyhow::Error::from(e).context(
                    "nothing was written; try another --bootstrap, or --from-genesis to replay",
                ));
            }
        }
    };
    // The file must give the same id when the node reads it back.
    let toml = genesis.to_toml_string()?;
    let reread = Genesis::from_toml_str(&toml)?;
    anyhow::ensure!(
        reread.network_id() == args.network_id,
        "the genesis does not survive its TOML form (nothing was written)"
    );
    fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    let config = args.out.join("node.toml");
    fs::write(args.out.join("genesis.toml"), &toml)?;
    write_key_file(&args.out.join("node.key"), &key)?;
    fs::write(&config, config_text(args, &genesis))?;
    let cfg = chorus_node::config::Config::load(&config)
        .with_context(|| format!("the written {} does not load", config.display()))?;
    let synced =
        match &fetched {
            Some(f) => {
                let path = cfg.node.data_dir.join("node.redb");
                std::fs::create_dir_all(&cfg.node.data_dir)?;
                Some(install(&path, &genesis, f).with_context(|| {
                    format!("installing the fetched state into {}", path.display())
                })?)
            }
            None => None,
        };
    let state_line = match &synced {
        Some(s) => format!(
            "state of height {} (checkpoint {}, {} KiB) verified from {} ({} validator-set \
             changes, {}/{} of the power signed) and installed\n",
            s.height,
            &s.checkpoint[..16],
            s.snapshot_bytes / 1024,
            if trusted.is_some() {
                "the trusted checkpoint"
            } else {
                "the genesis"
            },
            s.changes,
            s.signed_power,
            s.total_power
        ),
        None => "no state fetched: the node replays from genesis\n".into(),
    };
    let address = key.public().to_hex();
    let text = format!(
        "joined \"{name}\" ({id}): genesis checked against the id, from {bootstrap}\n\
         {state_line}\
         wrote {dir}/genesis.toml, {dir}/node.key (address {address}), {dir}/node.toml\n\
         next:\n  \
           chorus node run --config {dir}/node.toml\n  \
           # someone with tokens funds the new address:\n  \
           chorus transfer {address} 1_000_000 --key <their key> --node <their node>\n  \
           # then, against your node (admin token in {dir}/data/admin.token):\n  \
           chorus register 1 worker --key {dir}/node.key --wait\n  \
           chorus bond 100_000 --key {dir}/node.key --wait",
        name = genesis.network,
        id = genesis.network_id(),
        bootstrap = args.bootstrap,
        dir = args.out.display(),
    );
    out.print(
        &text,
        &serde_json::json!({
            "network": genesis.network,
            "network_id": genesis.network_id(),
            "address": address,
            "dir": args.out,
            "config": config,
            "state": synced,
        }),
    )
}
