//! `chorus-testbeds`: the multi-process testbed, the reliability scenarios and the benchmarks
//! (and the simulator). Every command prints a summary (`--json`: one JSON document) and exits
//! 0 when it passes (or was skipped, e.g. without root for network namespaces), 1 when a check
//! fails, 2 for bad arguments. See `docs/testbeds.md`.

mod bench;
mod procs;
mod report;
mod scenarios;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Chorus testbeds.
#[derive(Debug, Parser)]
#[command(name = "chorus-testbeds", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Deterministic simulator: N replicas in virtual time, seeded faults and byzantine
    /// behaviours, invariants after every step (docs/simulator.md).
    Sim(chorus_testbeds::sim::SimArgs),
    /// N `chorus node run` processes on loopback; kill -9 and restart nodes; check agreement.
    Procs(procs::run::ProcsArgs),
    /// Scenario 1: an attacker process floods 20 nodes with invalid signatures.
    Flood(scenarios::flood::FloodArgs),
    /// Scenario 2: 20 nodes in network namespaces split 10/10, then healed (root only).
    Partition(scenarios::partition::PartitionArgs),
    /// Scenario 3: kill -9 during writes (store level and node level); no acknowledged entry
    /// lost, no double-sign after restart.
    Crash(scenarios::crash::CrashArgs),
    /// The store-level writer of `crash` (started by it, killed at random).
    #[command(hide = true)]
    StoreWriter(scenarios::store_writer::StoreWriterArgs),
    /// Scenario 4: a validator signs two checkpoints at one height; detection and slashing.
    Equivocation(scenarios::equivocation::EquivocationArgs),
    /// Scenario 5: one peer reads at 1 KB/s for 10 minutes; RSS of the others stays flat.
    SlowPeer(scenarios::slow_peer::SlowPeerArgs),
    /// Scenario 6: a node offline for many epochs catches up (windows, certificates, ledger).
    Catchup(scenarios::catchup::CatchupArgs),
    /// Hostile consensus messages enter a line of honest nodes at one end: only the attacker
    /// is graylisted, no honest link drops.
    Relay(scenarios::relay::RelayArgs),
    /// One height finalizes every bundle of 10 topics × 1 000 workers (processes, loopback).
    Scale(scenarios::scale::ScaleArgs),
    /// A validator's store damaged one record at a time (WAL, certificate, ledger snapshot):
    /// the process refuses to start and names it; undamaged, it catches up.
    Corrupt(scenarios::corrupt::CorruptArgs),
    /// A stranger joins a running network with one address and the network id (`chorus join`),
    /// is funded, registers as a worker, bonds, signs checkpoints and is counted in the network
    /// inference.
    Join(scenarios::join::JoinArgs),
    /// Two histories from one genesis (the genesis validators sign a fork): a newcomer that
    /// trusts a checkpoint of the real chain refuses the fork and follows the real chain; one
    /// that trusts nothing refuses a genesis older than the unbonding period.
    Longrange(scenarios::longrange::LongRangeArgs),
    /// Validly signed junk from strangers (unfunded ledger spam, equivocating pairs, junk
    /// evidence, a NaN bundle and unregistered bundles by sync): finality keeps its pace and
    /// nothing of it is stored.
    Junk(scenarios::junk::JunkArgs),
    /// Benchmarks (BENCHMARKS.md, section Testbeds).
    Bench(bench::BenchArgs),
    /// The attacker of `flood` (started by it, in its own process).
    #[command(hide = true)]
    FloodAttacker(scenarios::attacker::AttackerArgs),
}

fn init_logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Run `f` on a multi-threaded runtime; Ctrl-C and SIGTERM end it through the normal exit
/// path, so every guard (child processes, network namespaces) is dropped.
fn block_on<F>(f: F) -> ExitCode
where
    F: std::future::Future<Output = anyhow::Result<ExitCode>>,
{
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("chorus-testbeds: {e}");
            return ExitCode::from(1);
        }
    };
    runtime.block_on(async {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("chorus-testbeds: {e}");
                    return ExitCode::from(1);
                }
            };
        tokio::select! {
            r = f => match r {
                Ok(code) => code,
                Err(e) => {
                    eprintln!("chorus-testbeds: {e:#}");
                    ExitCode::from(1)
                }
            },
            _ = tokio::signal::ctrl_c() => {
                eprintln!("chorus-testbeds: interrupted");
                ExitCode::from(130)
            }
            _ = term.recv() => {
                eprintln!("chorus-testbeds: terminated");
                ExitCode::from(143)
            }
        }
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The simulator reports through its summary; Malachite's warnings about the byzantine
    // traffic it injects on purpose would drown it (set `RUST_LOG` in `debug_seed` instead).
    if !matches!(cli.command, Command::Sim(_)) {
        init_logs();
    }
    match cli.command {
        Command::Sim(a) => chorus_testbeds::sim::cli::main(&a),
        Command::Procs(a) => block_on(procs::run::run(a)),
        Command::Flood(a) => block_on(scenarios::flood::run(a)),
        Command::Partition(a) => block_on(scenarios::partition::run(a)),
        Command::Crash(a) => block_on(scenarios::crash::run(a)),
        Command::StoreWriter(a) => match scenarios::store_writer::run(a) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("chorus-testbeds store-writer: {e:#}");
                ExitCode::from(1)
            }
        },
        Command::Equivocation(a) => block_on(scenarios::equivocation::run(a)),
        Command::SlowPeer(a) => block_on(scenarios::slow_peer::run(a)),
        Command::Catchup(a) => block_on(scenarios::catchup::run(a)),
        Command::Relay(a) => block_on(scenarios::relay::run(a)),
        Command::Scale(a) => block_on(scenarios::scale::run(a)),
        Command::Corrupt(a) => block_on(scenarios::corrupt::run(a)),
        Command::Join(a) => block_on(scenarios::join::run(a)),
        Command::Longrange(a) => block_on(scenarios::longrange::run(a)),
        Command::Junk(a) => block_on(scenarios::junk::run(a)),
        Command::Bench(a) => block_on(bench::run(a)),
        Command::FloodAttacker(a) => block_on(scenarios::attacker::run(a)),
    }
}
