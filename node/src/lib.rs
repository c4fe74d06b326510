//! # chorus-node
//!
//! The running peer: one actor owning the libp2p swarm and the pure state machines, redb
//! storage on its own thread, roles, REST API.
//!
//! - [`models`]: worker models (built-in, HTTP, command), loss forecasters, truth sources.
//! - [`config`]: the node's TOML configuration and its validation.
//! - [`setup`]: a config, a genesis and a key into the [`actor::NodeSetup`] a node starts
//!   from (shared by `chorus node run` and [`localnet`]).
//! - [`store`]: the redb store on its own thread (envelopes, windows, certificates, WAL,
//!   ledger snapshots, evidence, peers).

pub mod actor;
pub mod api;
pub mod clock;
pub mod config;
pub mod localnet;
pub mod metrics;
pub mod models;
pub mod net;
pub mod roles;
pub mod setup;
pub mod store;
