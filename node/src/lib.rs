//! # chorus-node
//!
//! The running peer: one actor owning the libp2p swarm and the pure state machines, redb
//! storage on its own thread, roles, REST API.
//!
//! - [`store`]: the redb store on its own thread (envelopes, windows, certificates, WAL,
//!   ledger snapshots, evidence, peers).

pub mod net;
pub mod store;
