//! The libp2p behaviour of a node and how its swarm is built.

// `#[derive(NetworkBehaviour)]` generates an undocumented event enum.
#![allow(missing_docs)]

use std::time::Duration;

use libp2p::core::transport::{MemoryTransport, Transport};
use libp2p::core::upgrade::Version;
use libp2p::gossipsub::{self, MessageAuthenticity, MessageId, ValidationMode};
use libp2p::swarm::{NetworkBehaviour, behaviour::toggle::Toggle};
use libp2p::{
    StreamProtocol, Swarm, SwarmBuilder, allow_block_list, connection_limits, identify, kad, mdns,
    noise, ping, request_response, tcp, yamux,
};

use super::ip_limits::IpLimits;
use super::rpc::{PROTOCOL, RpcCodec};
use super::scoring;

/// Largest gossip message on the wire. Our own per-kind caps (≤ 256 KiB envelopes) are
/// enforced by the validator; this only bounds the transport (and must stay ≥ 64 KiB).
pub const MAX_TRANSMIT_SIZE: usize = 512 * 1024;
/// Concurrent request-response streams per connection (yamux allows 512; stay well below).
pub const MAX_RPC_STREAMS: usize = 64;

/// Every protocol a node speaks.
#[derive(NetworkBehaviour)]
pub struct Behaviour {
    /// Connections in total, pending, and per peer.
    pub limits: connection_limits::Behaviour,
    /// Inbound connections per remote address.
    pub ip_limits: IpLimits,
    /// Peers we refuse (graylisted, misbehaving).
    pub blocked: allow_block_list::Behaviour<allow_block_list::BlockedPeers>,
    /// Signed-envelope gossip.
    pub gossipsub: gossipsub::Behaviour,
    /// Sync, catch-up, fetch.
    pub rpc: request_response::Behaviour<RpcCodec>,
    /// Peer info exchange.
    pub identify: identify::Behaviour,
    /// Liveness.
    pub ping: ping::Behaviour,
    /// Peer discovery beyond a LAN.
    pub kad: Toggle<kad::Behaviour<kad::store::MemoryStore>>,
    /// LAN discovery (off by default: it multicasts beyond loopback).
    pub mdns: Toggle<mdns::tokio::Behaviour>,
}

/// Transport and discovery options.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetOptions {
    /// Use the in-process memory transport instead of TCP.
    pub memory: bool,
    /// Enable Kademlia.
    pub kademlia: bool,
    /// Enable mDNS.
    pub mdns: bool,
    /// Whitelist loopback from IP-colocation scoring (local testbeds).
    pub local: bool,
    /// Gossipsub heartbeat.
    pub heartbeat: Duration,
    /// Established connections in total (inbound and outbound).
    pub max_connections: u32,
    /// Established inbound connections per remote IP address (loopback exempt when `local`).
    pub max_connections_per_ip: u32,
}

/// Connections one peer id may hold with us at once.
pub const MAX_CONNECTIONS_PER_PEER: u32 = 2;
/// Inbound connections still in their handshake at once.
pub const MAX_PENDING_INBOUND: u32 = 64;

impl Default for NetOptions {
    fn default() -> Self {
        NetOptions {
            memory: false,
            kademlia: false,
            mdns: false,
            local: true,
            heartbeat: Duration::from_millis(700),
            max_connections: 256,
            max_connections_per_ip: 8,
        }
    }
}

/// Errors building the swarm.
#[derive(Debug, thiserror::Error)]
#[error("building the libp2p swarm: {0}")]
pub struct BuildError(pub String);

fn gossipsub_config(opts: &NetOptions) -> Result<gossipsub::Config, BuildError> {
    gossipsub::ConfigBuilder::default()
        .heartbeat_interval(opts.heartbeat)
        .validation_mode(ValidationMode::Anonymous)
        .validate_messages()
        .message_id_fn(|m: &gossipsub::Message| {
            MessageId::from(blake3::hash(&m.data).as_bytes().to_vec())
        })
        .max_transmit_size(MAX_TRANSMIT_SIZE)
        // Measured here: 1 s queues drop messages under bursts; our traffic is bursty per epoch.
        .forward_queue_duration(Duration::from_secs(10))
        .publish_queue_duration(Duration::from_secs(10))
        // A message comes back only from a peer's message cache (5 heartbeats, 3.5 s) or a
        // re-publish; a message id seen is remembered for a minute. The cache costs some 80 B
        // per message (9.5 MiB at 60 s in `bench footprint`, 1 000 bundles per second).
        .duplicate_cache_time(Duration::from_secs(60))
        // IDONTWANT (gossipsub v1.2) for every message, not only above 1 000 bytes: on
        // receipt a node tells its mesh peers not to forward the message back. Ours are
        // small (~200 B with framing, the id 32 B) but numerous, and each duplicate costs a
        // decode, a hash and, in libp2p's peer scoring, a set of the peers that delivered it,
        // kept 120 s: peer scoring's records at the heap peak went from 72–75 to 56–63 MiB at
        // 1 000 messages per second (`bench footprint`, BENCHMARKS.md).
        .idontwant_message_size_threshold(0)
        .build()
        .map_err(|e| BuildError(e.to_string()))
}

fn behaviour(
    key: &libp2p::identity::Keypair,
    opts: &NetOptions,
) -> Result<Behaviour, Box<dyn std::error::Error + Send + Sync>> {
    let peer_id = key.public().to_peer_id();
    let mut gossipsub =
        gossipsub::Behaviour::new(MessageAuthenticity::Anonymous, gossipsub_config(opts)?)?;
    gossipsub.with_peer_score(scoring::params(opts.local), scoring::thresholds())?;
    let rpc = request_response::Behaviour::new(
        [(PROTOCOL, request_response::ProtocolSupport::Full)],
        request_response::Config::default()
            .with_request_timeout(Duration::from_secs(20))
            .with_max_concurrent_streams(MAX_RPC_STREAMS),
    );
    let identify =
        identify::Behaviour::new(identify::Config::new("/chorus/1.0.0".into(), key.public()));
    let kad = opts.kademlia.then(|| {
        let mut k = kad::Behaviour::with_config(
            peer_id,
            kad::store::MemoryStore::new(peer_id),
            kad::Config::new(StreamProtocol::new("/chorus/kad/1.0.0")),
        );
        k.set_mode(Some(kad::Mode::Server));
        k
    });
    let mdns = if opts.mdns {
        Some(mdns::tokio::Behaviour::new(
            mdns::Config::default(),
            peer_id,
        )?)
    } else {
        None
    };
    let limits = connection_limits::ConnectionLimits::default()
        .with_max_established(Some(opts.max_connections))
        .with_max_established_per_peer(Some(MAX_CONNECTIONS_PER_PEER))
        .with_max_pending_incoming(Some(MAX_PENDING_INBOUND));
    Ok(Behaviour {
        limits: connection_limits::Behaviour::new(limits),
        ip_limits: IpLimits::new(opts.max_connections_per_ip, opts.local),
        blocked: allow_block_list::Behaviour::default(),
        gossipsub,
        rpc,
        identify,
        ping: ping::Behaviour::default(),
        kad: Toggle::from(kad),
        mdns: Toggle::from(mdns),
    })
}

/// Build a swarm for `key` (the node's ed25519 key, also its peer id).
pub fn build_swarm(
    key: &chorus_protocol::keys::Keypair,
    opts: &NetOptions,
) -> Result<Swarm<Behaviour>, BuildError> {
    let mut seed = *key.seed();
    let id = libp2p::identity::Keypair::ed25519_from_bytes(&mut seed)
        .map_err(|e| BuildError(e.to_string()))?;
    let idle = Duration::from_secs(3600);
    let err = |e: &dyn std::fmt::Display| BuildError(e.to_string());
    if opts.memory {
        let swarm = SwarmBuilder::with_existing_identity(id)
            .with_tokio()
            .with_other_transport(|key| {
                Ok::<_, Box<dyn std::error::Error + Send + Sync>>(
                    MemoryTransport::default()
                        .upgrade(Version::V1)
                        .authenticate(noise::Config::new(key)?)
                        .multiplex(yamux::Config::default()),
                )
            })
            .map_err(|e| err(&e))?
            .with_behaviour(|key| behaviour(key, opts))
            .map_err(|e| err(&e))?
            .with_swarm_config(|c| c.with_idle_connection_timeout(idle))
            .build();
        Ok(swarm)
    } else {
        let builder = SwarmBuilder::with_existing_identity(id)
            .with_tokio()
            .with_tcp(
                tcp::Config::default().nodelay(true),
                noise::Config::new,
                yamux::Config::default,
            )
            .map_err(|e| err(&e))?;
        #[cfg(feature = "quic")]
        let builder = builder.with_quic();
        let swarm = builder
            .with_behaviour(|key| behaviour(key, opts))
            .map_err(|e| err(&e))?
            .with_swarm_config(|c| c.with_idle_connection_timeout(idle))
            .build();
        Ok(swarm)
    }
}

/// The libp2p peer id of a Chorus key.
pub fn peer_id_of(key: &chorus_protocol::keys::PublicKey) -> Option<libp2p::PeerId> {
    libp2p::identity::ed25519::PublicKey::try_from_bytes(key.as_bytes())
        .ok()
        .map(|k| libp2p::identity::PublicKey::from(k).to_peer_id())
}
