//! `chorus`: one binary for every role of a Chorus network.
//!
//! Parses flags with clap, turns them into validated inputs in one step, runs the command, and
//! prints errors as one line with their cause chain (exit code 1, or 2 for bad input).

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cmd;
mod devnet;
mod malloc;
mod output;

/// Chorus: a peer-to-peer, self-improving inference network (Allora's mechanism, no chain).
#[derive(Debug, Parser)]
#[command(name = "chorus", version, about, long_about = None)]
struct Cli {
    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create or show ed25519 keys (one key is a node's whole identity).
    #[command(subcommand)]
    Key(cmd::key::KeyCommand),
    /// Create a network's genesis.
    #[command(subcommand)]
    Genesis(cmd::genesis::GenesisCommand),
    /// Run a local network of real nodes replaying hourly EUR/USD bars, then report how the
    /// network's inference compares with every worker.
    Devnet(devnet::DevnetArgs),
    /// The network inference of one epoch (Allora v0.6 synthesis): JSON in, JSON out.
    Synth(cmd::math::SynthArgs),
    /// Losses, regrets, scores and rewards of one epoch after the ground truth: JSON in, JSON out.
    Settle(cmd::math::InputArgs),
    /// Join a running network from one address and its id: fetch and check its genesis, make a
    /// key and a node config.
    Join(cmd::join::JoinArgs),
    /// Run a node.
    #[command(subcommand)]
    Node(cmd::node::NodeCommand),
    /// Check configuration files.
    #[command(subcommand)]
    Config(cmd::node::ConfigCommand),
    /// A stopped node's store: export or import finalized history.
    #[command(subcommand)]
    Store(cmd::store::StoreCommand),
    /// Commands that talk to a running node's REST API (--node URL).
    #[command(flatten)]
    Api(cmd::api::ApiCommand),
}

/// Warnings by default; gossipsub's "not publishing a message that has already been
/// published" (the consensus engine re-broadcasts its votes on a timer, and gossipsub keeps
/// one copy) is not one.
const DEFAULT_LOG_FILTER: &str = "warn,libp2p_gossipsub::behaviour=error";

fn init_default_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT_LOG_FILTER)),
        )
        .with_writer(std::io::stderr)
        .try_init();
}

fn main() -> ExitCode {
    malloc::configure();
    let cli = Cli::parse();
    // Logs go to stderr; `RUST_LOG` chooses what (default: warnings and errors). A node
    // configures its own logging from its config file.
    if !matches!(cli.command, Command::Node(_)) {
        init_default_logs();
    }
    let out = output::Output { json: cli.json };
    let result = match cli.command {
        Command::Node(c) => cmd::node::node(c),
        Command::Config(c) => cmd::node::config(c, &out),
        Command::Store(c) => cmd::store::run(c, &out),
        Command::Key(c) => cmd::key::run(c, &out),
        Command::Genesis(c) => cmd::genesis::run(c, &out),
        Command::Join(a) => cmd::join::run(&a, &out),
        Command::Devnet(a) => devnet::run(a, &out),
        Command::Synth(a) => cmd::math::synth(a),
        Command::Settle(a) => cmd::math::settle(a),
        Command::Api(c) => cmd::api::run(c, &out),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) if output::is_stdout_closed(&err) => ExitCode::SUCCESS,
        Err(err) => {
            let code = if output::is_bad_input(&err) { 2 } else { 1 };
            out.error(&err);
            ExitCode::from(code)
        }
    }
}
