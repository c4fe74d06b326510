//! `chorus-testbeds store-writer`: the child process of the store-level crash test. It opens a
//! node store (`chorus_node::store::ops`) and writes batches of signed envelopes as fast as it
//! can, the way the node does: some batches without durability (gossip: visible at once,
//! on disk with the next durable commit) and some durable (acknowledged). After each durable
//! commit returns it prints the ids that are now acknowledged (that batch and every earlier
//! non-durable one), one hex id per line, flushed. The parent kills it with SIGKILL at a random
//! moment, reopens the store and checks every printed id.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use chorus_crdt::window::WindowKey;
use chorus_node::store::ops;
use chorus_protocol::envelope::Envelope;
use chorus_protocol::ids::{Amount, Hash32};
use chorus_protocol::keys::{Keypair, PublicKey};
use chorus_protocol::messages::{Payload, Transfer};
use clap::Args;

/// Envelopes per batch.
const BATCH: u64 = 16;
/// A bound on the run (the parent kills it long before).
const MAX_BATCHES: u64 = 100_000;

/// `store-writer` flags.
#[derive(Debug, Args)]
pub struct StoreWriterArgs {
    /// The store file.
    #[arg(long)]
    pub store: PathBuf,
    /// First sequence number (distinct per run so ids never repeat).
    #[arg(long, default_value_t = 0)]
    pub from: u64,
}

/// The network id the crash test uses for its stores.
pub fn network() -> Hash32 {
    Hash32::of(b"chorus-testbeds crash store")
}

/// Envelope number `k`: a transfer signed by a fixed key.
pub fn envelope(k: u64) -> Vec<u8> {
    let key = Keypair::from_seed(&[7; 32]);
    let payload = Payload::Transfer(Transfer {
        nonce: k + 1,
        to: PublicKey(*blake3::hash(&k.to_le_bytes()).as_bytes()),
        amount: Amount(u128::from(k) + 1),
    });
    Envelope::seal(&key, &network(), &payload).to_bytes()
}

/// Run the writer until killed (or `MAX_BATCHES`).
pub fn run(args: StoreWriterArgs) -> anyhow::Result<std::process::ExitCode> {
    let db = ops::open(&args.store, &network()).context("opening the store")?;
    let stdout = std::io::stdout();
    let mut pending: Vec<Hash32> = vec![];
    let mut k = args.from;
    for b in 0..MAX_BATCHES {
        let items: Vec<(WindowKey, Vec<u8>)> = (0..BATCH)
            .map(|j| {
                (
                    WindowKey::Ledger {
                        period: (k + j) / 1_000,
                    },
                    envelope(k + j),
                )
            })
            .collect();
        k += BATCH;
        // Two of three batches durable, like a mix of API submissions and gossip.
        let durable = b % 3 != 2;
        ops::put_envelopes(&db, &items, durable)?;
        pending.extend(items.iter().map(|(_, bytes)| Hash32::of(bytes)));
        if durable {
            let mut out = stdout.lock();
            for id in pending.drain(..) {
                writeln!(out, "{}", id.to_hex())?;
            }
            out.flush()?;
        }
    }
    Ok(std::process::ExitCode::SUCCESS)
}
