//! # chorus-node
//!
//! The running peer. The protocol lives in the pure replica (`chorus_crdt::replica`): it
//! decides what to validate, store, relay, ask and answer; this crate interprets its effects
//! as IO and feeds it what happens, and adds what only a running process has (models, a clock,
//! a disk, sockets, an API).
//!
//! ```text
//!            gossip, requests, connections              effects (sends, answers, writes, timers)
//!  libp2p ─────────────► network driver ──► Input ──► Replica ──► Effect ──► actor ──► driver / store
//!  swarm   ◄───────────── (actor/network.rs)         (chorus_crdt)            (actor/run.rs)
//!                                                                    │
//!  roles (worker, reputer tasks) ── payloads ──► actor ◄── commands ── API handle (REST, SSE)
//!                                                 │
//!                                       read model (history, submissions, status)
//! ```
//!
//! - [`actor`]: one task owns the replica, the network driver and the store handle; a
//!   `select!` loop hands each event to a `handle_*` method and carries out the replica's
//!   effects in order (anything this node signs leaves only after what precedes it is
//!   durable). [`actor::NodeHandle`] is the cloneable handle the API and tests use.
//! - the network driver (`actor/network.rs`): the libp2p swarm, dialing and redialing with
//!   jittered backoff, graylisting, inbound rate limits, and request/response correlation by
//!   the replica's ids. It holds no protocol policy (anti-entropy is the replica's).
//! - [`net`]: the libp2p behaviour, the request-response framing, peer scoring.
//! - [`store`]: the redb store on its own thread (envelopes, windows, certificates, WAL,
//!   ledger snapshots, inferences, evidence, peers).
//! - [`roles`] and [`models`]: worker and reputer duties as tasks; worker models (built-in,
//!   HTTP, command), loss forecasters, truth sources.
//! - [`api`]: REST, the live streams (SSE) and Prometheus [`metrics`].
//! - [`config`] and [`setup`]: the node's TOML configuration, its validation, and the one
//!   conversion into the [`actor::NodeSetup`] a node starts from (shared by `chorus node run`,
//!   the devnet and [`localnet`]).
//! - [`clock`]: the wall clock, with an offset for tests and replays.
//!
//! Logs: `tracing`, a span per node task (`node{id}` › `actor`, `worker{topic}`,
//! `reputer{topic}`); info lines for submissions, closed windows and applied checkpoints,
//! debug for the rest; `RUST_LOG` selects.

pub mod actor;
pub mod api;
pub mod clock;
pub mod config;
pub mod join;
pub mod localnet;
pub mod metrics;
pub mod models;
pub mod net;
pub mod roles;
pub mod setup;
pub mod state_sync;
pub mod store;
