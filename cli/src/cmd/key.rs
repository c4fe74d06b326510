//! `chorus key new|show`.

use std::path::PathBuf;

use anyhow::Context;
use chorus_protocol::keyfile::{read_key_file, write_key_file};
use chorus_protocol::keys::{Keypair, SEED_LEN};
use clap::Subcommand;
use serde::Serialize;
use zeroize::Zeroizing;

use crate::output::Output;

/// Key commands.
#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Generate a new key from the OS random generator and write it (mode 0600).
    New {
        /// Where to write the key file (must not exist).
        #[arg(long, short)]
        out: PathBuf,
    },
    /// Show the address of a key file.
    Show {
        /// The key file.
        #[arg(long, short)]
        key: PathBuf,
        /// Print the libp2p peer id of a node running with this key instead (what others put
        /// after `/p2p/` in their `bootstrap` addresses).
        #[arg(long)]
        peer_id: bool,
    },
}

#[derive(Serialize)]
struct KeyInfo {
    address: String,
    short: String,
    peer_id: String,
    path: String,
}

/// A fresh keypair from the operating system's random generator.
pub fn generate() -> anyhow::Result<Keypair> {
    let mut seed = Zeroizing::new([0u8; SEED_LEN]);
    getrandom::fill(seed.as_mut()).map_err(|e| anyhow::anyhow!("OS random generator: {e}"))?;
    Ok(Keypair::from_seed(&seed))
}

/// Run a key command.
pub fn run(cmd: KeyCommand, out: &Output) -> anyhow::Result<()> {
    let (kp, path, show_peer) = match cmd {
        KeyCommand::New { out: path } => {
            let kp = generate()?;
            write_key_file(&path, &kp).context("writing the new key")?;
            (kp, path, false)
        }
        KeyCommand::Show { key, peer_id } => (read_key_file(&key)?, key, peer_id),
    };
    let peer_id = chorus_node::net::peer_id_of(&kp.public())
        .map(|p| p.to_string())
        .unwrap_or_default();
    let info = KeyInfo {
        address: kp.public().to_hex(),
        short: kp.public().short(),
        peer_id,
        path: path.display().to_string(),
    };
    let text = if show_peer {
        &info.peer_id
    } else {
        &info.address
    };
    out.print(text, &info)
}
