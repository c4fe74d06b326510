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
    },
}

#[derive(Serialize)]
struct KeyInfo {
    address: String,
    short: String,
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
    let (kp, path) = match cmd {
        KeyCommand::New { out: path } => {
            let kp = generate()?;
            write_key_file(&path, &kp).context("writing the new key")?;
            (kp, path)
        }
        KeyCommand::Show { key } => (read_key_file(&key)?, key),
    };
    let info = KeyInfo {
        address: kp.public().to_hex(),
        short: kp.public().short(),
        path: path.display().to_string(),
    };
    out.print(&info.address, &info)
}
