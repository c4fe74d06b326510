//! # Checkpoint consensus
//!
//! One decision per height (checkpoint period) among the bonded validators, by Malachite's
//! sans-IO Tendermint core (`arc-malachitebft-core-consensus = "=0.8.2"`) behind a small,
//! pure adapter.
//!
//! What flows in: consensus messages from peers, fired timers, the application's answers
//! (a checkpoint to propose, a validity verdict) and validator-set updates, each with the
//! current time. What flows out: effects as data — WAL records (persisted before any send
//! that follows them), broadcasts and direct sends, timers, requests to the application,
//! decided checkpoints with commit certificates, and equivocation evidence.
//!
//! - [`value`]: [`Checkpoint`] `{height, previous, windows, ledger_root, inferences,
//!   validators}`, id = blake3 of its canonical encoding.
//! - [`validators`]: stake → u64 voting power, canonical order, stake-weighted proposer.
//! - [`context`]: the Malachite `Context` (types and constructors).
//! - [`signing`]: domain-separated, network-bound sign bytes; ed25519 `verify_strict`.
//! - [`messages`]: the wire enum [`ConsensusMessage`] and its capped, canonical decode.
//! - [`certificate`]: commit / polka / round certificates and their verification.
//! - [`engine`]: [`Engine::handle`] (inputs → effects); [`handler`](self) answers Malachite.
//! - [`config`]: the engine's configuration (timeouts, catch-up, start schedule) and timer ids.
//! - [`wal`]: WAL records, the persistence contract, replay on restart.
//! - [`catchup`]: decided history, the catch-up protocol and its rate limits.
//! - [`evidence`]: conflict detection, portable evidence, [`verify_vote_evidence`].
//! - `sim` (feature `sim`, and in tests): a deterministic in-memory network of engines.
//!
//! ```
//! use chorus_crdt::checkpoint::*;
//! use chorus_protocol::{ids::{Amount, Hash32}, keys::Keypair};
//!
//! let keys: Vec<Keypair> = (1..=4u8).map(|i| Keypair::from_seed(&[i; 32])).collect();
//! let bonds: Vec<_> = keys.iter().map(|k| (k.public(), Amount(100))).collect();
//! let set = ValidatorSet::from_bonds(&bonds).unwrap();
//! let config = EngineConfig::new(Hash32([7; 32]), Hash32([0; 32]));
//! let (engine, effects) = Engine::new(config, keys[0].clone(), vec![(1, set)], 0).unwrap();
//! assert_eq!(engine.height(), 1);
//! // Timers are armed; the round-0 proposer is asked for a value.
//! assert!(effects.iter().any(|e| matches!(e, Effect::ScheduleTimer { .. })));
//! ```

pub mod catchup;
pub mod certificate;
pub mod config;
pub mod context;
pub mod engine;
pub mod error;
pub mod evidence;
mod handler;
pub mod limits;
pub mod messages;
mod screen;
pub mod signing;
pub mod validators;
pub mod value;
pub mod wal;

#[cfg(any(test, feature = "sim"))]
pub mod sim;

#[cfg(test)]
mod tests;

pub use catchup::{DecidedCheckpoint, PeerId};
pub use certificate::{CommitCertificate, VoteCertificate};
pub use engine::{
    Effect, Engine, EngineConfig, EngineFault, Input, Offence, Persisted, StartSchedule, Stats,
    TimeoutConfig, TimerId, TimerKind,
};
pub use error::{CertificateError, EngineError, EvidenceError, MessageError, ShapeError};
pub use evidence::{Equivocation, verify_vote_evidence};
pub use messages::ConsensusMessage;
pub use screen::Screen;
pub use validators::{MAX_TOTAL_POWER, ValidatorSet};
pub use value::{Checkpoint, CheckpointId, WindowHead};
pub use wal::WalRecord;
