//! `chorus-testbeds flood-attacker`: a libp2p peer (built with the node's own swarm builder)
//! that connects to the given nodes and floods the ledger channel with transfers that claim a
//! registered account's key but carry the attacker's signature (invalid: the validator rejects
//! them at the signature step, a REJECT that counts against the peer's score).
//!
//! It waits until it is connected to every target (at most 15 s), then publishes `--rate`
//! messages per second for `--seconds` seconds, in bursts every 10 ms, redialling the targets
//! every 500 ms, and prints one JSON line: what it tried, what gossipsub took, how many peers
//! it had, when it first had none left, and how long the connections it re-opened after that
//! lived (a node that blocked it closes them right after the handshake).

use std::time::{Duration, Instant};

use anyhow::Context;
use chorus_protocol::envelope::Envelope;
use chorus_protocol::ids::{Amount, Hash32};
use chorus_protocol::keys::{Keypair, PublicKey};
use chorus_protocol::messages::{Payload, Transfer};
use chorus_protocol::validation::{Channel, ChannelKind};
use clap::Args;
use futures::StreamExt;
use libp2p::gossipsub::IdentTopic;
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId};

/// Burst interval: 10 ms (100 bursts per second).
const BURST: Duration = Duration::from_millis(10);
/// Redial interval of targets that dropped us.
const REDIAL: Duration = Duration::from_millis(500);
/// Most messages ever sent in one run (10k/s for 60 s): the loop is bounded whatever the flags.
const MAX_MESSAGES: u64 = 600_000;

/// `flood-attacker` flags.
#[derive(Debug, Args)]
pub struct AttackerArgs {
    /// Nodes to attack (multiaddr with /p2p/ suffix; loopback only), repeatable.
    #[arg(long = "target", required = true)]
    pub targets: Vec<Multiaddr>,
    /// The network id (hex).
    #[arg(long)]
    pub network: String,
    /// The public key (hex) the forged messages claim.
    #[arg(long)]
    pub victim: String,
    /// Messages per second.
    #[arg(long, default_value_t = 10_000)]
    pub rate: u64,
    /// Seconds of flooding.
    #[arg(long, default_value_t = 15)]
    pub seconds: u64,
    /// Seed of the attacker's key.
    #[arg(long, default_value_t = 0xAB)]
    pub seed: u8,
}

/// Only loopback targets: tests and tools never send traffic elsewhere.
fn loopback_only(targets: &[Multiaddr]) -> anyhow::Result<()> {
    use libp2p::multiaddr::Protocol;
    for t in targets {
        let ok = t.iter().any(|p| match p {
            Protocol::Ip4(ip) => ip.is_loopback(),
            Protocol::Ip6(ip) => ip.is_loopback(),
            _ => false,
        });
        anyhow::ensure!(ok, "{t}: the attacker only targets loopback addresses");
    }
    Ok(())
}

fn peer_of(a: &Multiaddr) -> Option<PeerId> {
    a.iter().find_map(|p| match p {
        libp2p::multiaddr::Protocol::P2p(id) => Some(id),
        _ => None,
    })
}

/// Run the attacker; prints its JSON summary on stdout.
pub async fn run(args: AttackerArgs) -> anyhow::Result<std::process::ExitCode> {
    loopback_only(&args.targets)?;
    let network: Hash32 = hex::decode(&args.network)
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .map(Hash32)
        .context("--network: 64 hex characters")?;
    let victim: PublicKey = args
        .victim
        .parse()
        .map_err(|_| anyhow::anyhow!("--victim: 64 hex characters"))?;
    let me = Keypair::from_seed(&[args.seed; 32]);
    let mut swarm = chorus_node::net::build_swarm(&me, &Default::default())?;
    let topic = IdentTopic::new(
        Channel {
            network,
            kind: ChannelKind::Ledger,
        }
        .name(),
    );
    swarm.behaviour_mut().gossipsub.subscribe(&topic)?;
    for t in &args.targets {
        let _ = swarm.dial(t.clone());
    }
    let target_peers: Vec<PeerId> = args.targets.iter().filter_map(peer_of).collect();
    let total = (args.rate * args.seconds).min(MAX_MESSAGES);
    let per_burst = (args.rate / 100).max(1);

    let t0 = Instant::now();
    let mut connected_max = 0usize;
    let mut attempted = 0u64;
    let mut accepted_by_gossipsub = 0u64;
    let mut publish_errors = 0u64;
    let mut flood_start: Option<Instant> = None;
    let mut all_lost: Option<f64> = None;
    let mut reconnections = 0u64;
    let mut longest_reconnection_ms = 0.0f64;
    let mut opened: std::collections::BTreeMap<libp2p::swarm::ConnectionId, Instant> =
        std::collections::BTreeMap::new();
    let mut connections_closed = 0u64;
    let mut dial_failures = 0u64;
    let mut next_burst = Instant::now();
    let mut next_redial = Instant::now() + REDIAL;
    loop {
        tokio::select! {
            ev = swarm.select_next_some() => match ev {
                SwarmEvent::ConnectionEstablished { connection_id, .. } if all_lost.is_some() => {
                    reconnections += 1;
                    opened.insert(connection_id, Instant::now());
                }
                SwarmEvent::ConnectionClosed { connection_id, .. } => {
                    connections_closed += 1;
                    if let Some(t) = opened.remove(&connection_id) {
                        longest_reconnection_ms =
                            longest_reconnection_ms.max(t.elapsed().as_secs_f64() * 1e3);
                    }
                    if swarm.connected_peers().count() == 0
                        && all_lost.is_none()
                        && let Some(s) = flood_start {
                        all_lost = Some(s.elapsed().as_secs_f64());
                    }
                }
                SwarmEvent::OutgoingConnectionError { .. } => dial_failures += 1,
                _ => {}
            },
            _ = tokio::time::sleep_until(next_burst.into()) => {
                next_burst += BURST;
                let peers = swarm.connected_peers().count();
                connected_max = connected_max.max(peers);
                if Instant::now() >= next_redial {
                    next_redial = Instant::now() + REDIAL;
                    for t in &args.targets {
                        if peer_of(t).is_some_and(|p| !swarm.is_connected(&p)) {
                            let _ = swarm.dial(t.clone());
                        }
                    }
                }
                match flood_start {
                    None => {
                        let all = target_peers.iter().all(|p| swarm.is_connected(p));
                        // Connected everywhere (plus a second for subscriptions to spread), or
                        // give up waiting after 15 s and flood whoever is there.
                        if (all && t0.elapsed() > Duration::from_secs(1))
                            || t0.elapsed() > Duration::from_secs(15)
                        {
                            flood_start = Some(Instant::now());
                        }
                    }
                    Some(s) => {
                        if attempted >= total || s.elapsed() >= Duration::from_secs(args.seconds) {
                            break;
                        }
                        for _ in 0..per_burst {
                            let k = attempted;
                            attempted += 1;
                            let payload = Payload::Transfer(Transfer {
                                nonce: k % 1_024 + 1,
                                to: PublicKey(*blake3::hash(&k.to_le_bytes()).as_bytes()),
                                amount: Amount(u128::from(k) + 1),
                            });
                            let mut env = Envelope::seal(&me, &network, &payload);
                            env.signer = victim;
                            match swarm.behaviour_mut().gossipsub.publish(topic.clone(), env.to_bytes()) {
                                Ok(_) => accepted_by_gossipsub += 1,
                                Err(_) => publish_errors += 1,
                            }
                        }
                    }
                }
            }
        }
    }
    let flood_s = flood_start.map_or(0.0, |s| s.elapsed().as_secs_f64());
    let summary = serde_json::json!({
        "attacker_peer_id": swarm.local_peer_id().to_string(),
        "targets": args.targets.len(),
        "connected_max": connected_max,
        "connected_at_end": swarm.connected_peers().count(),
        "flood_seconds": flood_s,
        "attempted": attempted,
        "attempted_per_second": if flood_s > 0.0 { attempted as f64 / flood_s } else { 0.0 },
        "published": accepted_by_gossipsub,
        "publish_errors": publish_errors,
        "connections_closed": connections_closed,
        "dial_failures": dial_failures,
        "all_peers_lost_after_s": all_lost,
        "reconnections_after_loss": reconnections,
        "longest_reconnection_ms": longest_reconnection_ms,
        "reconnections_still_open": opened.len(),
    });
    println!("{summary}");
    Ok(std::process::ExitCode::SUCCESS)
}
