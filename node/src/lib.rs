//! # chorus-node
//!
//! The running peer: one actor owning the libp2p swarm and the pure state machines, redb
//! storage on its own thread, roles, REST API. (Under construction: see the project's issues.)
