//! # chorus-crdt
//!
//! Replicated state without a chain. What flows in: validated envelopes from gossip, sync
//! messages from peers, finalized checkpoints, the time as an argument. What flows out: window
//! roots and sync messages, the ledger's state and root, checkpoint decisions.
//!
//! - [`window`]: one automerge document per (topic, epoch, phase) and per ledger period, of
//!   single-writer entries derived from signed envelopes; change validation; anti-entropy.
//! - [`ledger`]: the deterministic state machine over finalized windows (balances, stakes,
//!   bonds, registrations, topics, governance, emission, slashing), with its root.
//!
//! - [`checkpoint`]: stake-weighted checkpoint consensus over Malachite's sans-IO Tendermint
//!   core (effects as data, WAL, catch-up, evidence).
//! - [`proof`] and [`state_proof`]: what a checkpoint certificate vouches for, checked
//!   offline: one network inference, or a whole ledger snapshot (certified state sync).
//! - [`replica`]: one peer's whole replicated state as a pure state machine (windows + ledger +
//!   consensus), driven by the node and by the simulator.
//!
//! Pure: no tokio, libp2p or redb; no clock or RNG.

pub mod checkpoint;
pub mod ledger;
pub mod proof;
pub mod replica;
pub mod state_proof;
pub mod window;
