//! `chorus genesis new`: a devnet genesis and its validator keys.

use std::fs;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use chorus_protocol::genesis::{Genesis, GenesisBalance, GenesisValidator, Token};
use chorus_protocol::ids::Amount;
use chorus_protocol::keyfile::write_key_file;
use chorus_protocol::params::ModuleParams;
use clap::Subcommand;
use serde::Serialize;

use crate::output::{BadInput, Output};

/// Whole tokens given to each validator's account at genesis, besides its bond.
const DEVNET_BALANCE_TOKENS: u128 = 1_000_000;
/// Whole tokens bonded by each devnet validator.
const DEVNET_BOND_TOKENS: u128 = 100_000;
/// Decimals of the devnet token.
const DEVNET_DECIMALS: u8 = 18;

/// Genesis commands.
#[derive(Debug, Subcommand)]
pub enum GenesisCommand {
    /// Write DIR/genesis.toml and DIR/keys/validator-<i>.key for a new devnet.
    New {
        /// Number of validators (each gets a key, a bond and a balance).
        #[arg(long, default_value_t = 4)]
        validators: u32,
        /// Output directory (created; must not already hold a genesis).
        #[arg(long, short)]
        out: PathBuf,
        /// Network name.
        #[arg(long, default_value = "chorus-devnet")]
        network: String,
        /// Genesis time, unix milliseconds (default: now).
        #[arg(long)]
        genesis_time_ms: Option<u64>,
    },
}

#[derive(Serialize)]
struct GenesisInfo {
    network: String,
    network_id: String,
    genesis: String,
    validators: Vec<ValidatorInfo>,
}

#[derive(Serialize)]
struct ValidatorInfo {
    address: String,
    key: String,
}

/// Run a genesis command.
pub fn run(cmd: GenesisCommand, out: &Output) -> anyhow::Result<()> {
    let GenesisCommand::New {
        validators,
        out: dir,
        network,
        genesis_time_ms,
    } = cmd;
    if validators == 0 || validators > 1000 {
        return Err(BadInput(format!(
            "--validators must be in 1..=1000, got {validators}"
        ))
        .into());
    }
    let genesis_path = dir.join("genesis.toml");
    if genesis_path.exists() {
        return Err(BadInput(format!("{} already exists", genesis_path.display())).into());
    }
    let keys_dir = dir.join("keys");
    let unit = 10u128.pow(u32::from(DEVNET_DECIMALS));
    let mut genesis = Genesis {
        network,
        genesis_time_ms: match genesis_time_ms {
            Some(t) => t,
            None => u64::try_from(SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis())?,
        },
        token: Token {
            symbol: "CHR".into(),
            decimals: DEVNET_DECIMALS,
        },
        balances: vec![],
        validators: vec![],
        reputer_stakes: vec![],
        registrations: vec![],
        params: ModuleParams::default(),
        topics: vec![],
    };
    // Everything is built and checked before anything is written: a refused genesis leaves
    // no key behind, and the command can be rerun as it was meant.
    let mut keys = vec![];
    for i in 0..validators {
        let kp = super::key::generate()?;
        let path = keys_dir.join(format!("validator-{i}.key"));
        if path.exists() {
            return Err(BadInput(format!("{} already exists", path.display())).into());
        }
        genesis.balances.push(GenesisBalance {
            address: kp.public(),
            amount: Amount(DEVNET_BALANCE_TOKENS * unit),
        });
        genesis.validators.push(GenesisValidator {
            address: kp.public(),
            bond: Amount(DEVNET_BOND_TOKENS * unit),
            name: format!("validator-{i}"),
        });
        keys.push((path, kp));
    }
    genesis
        .validate()
        .map_err(|e| BadInput(format!("the genesis would be invalid: {e}")))?;
    let toml = genesis.to_toml_string()?;
    fs::create_dir_all(&keys_dir).with_context(|| format!("creating {}", keys_dir.display()))?;
    let mut infos = vec![];
    for (path, kp) in &keys {
        write_key_file(path, kp)?;
        infos.push(ValidatorInfo {
            address: kp.public().to_hex(),
            key: path.display().to_string(),
        });
    }
    fs::write(&genesis_path, toml)
        .with_context(|| format!("writing {}", genesis_path.display()))?;
    let info = GenesisInfo {
        network: genesis.network.clone(),
        network_id: genesis.network_id().to_hex(),
        genesis: genesis_path.display().to_string(),
        validators: infos,
    };
    let text = format!(
        "wrote {} (network id {}) and {} validator keys in {}",
        info.genesis,
        info.network_id,
        validators,
        keys_dir.display()
    );
    out.print(&text, &info)
}
