//! # chorus-crdt
//!
//! Replicated state without a chain: per-window automerge documents of signed entries, the
//! deterministic ledger derived from finalized windows, and stake-weighted checkpoints.
//! Pure: no tokio, libp2p or redb; time comes in as an argument.
//!
//! (Under construction: see the project's issues.)
