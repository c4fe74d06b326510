//! Networking: the libp2p behaviour (gossipsub with our validator and scoring,
//! request-response, identify, ping, optional Kademlia and mDNS) and the RPC protocol.

pub mod behaviour;
pub mod ip_limits;
pub mod penalties;
pub mod rpc;
pub mod scoring;

pub use behaviour::{Behaviour, NetOptions, build_swarm, peer_id_of};
