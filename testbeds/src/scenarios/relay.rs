//! `chorus-testbeds relay`: hostile consensus messages enter a line of honest nodes at one end.
//!
//! `--nodes` honest nodes run in this process ([`LocalNet`], loopback TCP) connected as a line
//! (node `i` to node `i − 1` and `i + 1` only), validators 0–3 at one end, 1 s epochs. After a
//! warm-up an attacker (a bare libp2p peer built with the node's swarm builder, subscribed to
//! the consensus channel) connects to node 0 only and publishes `--garbage` random-byte
//! messages and `--forged` votes of the current height signed with validator 1's key and one
//! bit flipped, one every 100 ms.
//!
//! Before consensus gossip was screened, node 0 accepted and relayed such messages and node 1
//! blamed node 0 for them: one attacker could cut the honest line apart. Pass:
//! - the attack happened: node 0 rejected at least one consensus message;
//! - node 0 graylisted exactly one peer, and the attacker has no connection left;
//! - no other node rejected a consensus message, penalised or graylisted anyone (nothing was
//!   relayed);
//! - no honest link dropped (every node keeps its line neighbours), and every node applied at
//!   least 3 more heights after the attack.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use arc_malachitebft_core_types::{NilOrVal, Round, VoteType};
use chorus_crdt::checkpoint::ConsensusMessage;
use chorus_crdt::checkpoint::context::{CheckpointHeight, ValidatorAddress, Vote};
use chorus_crdt::checkpoint::messages::VoteMessage;
use chorus_crdt::checkpoint::signing::sign_vote;
use chorus_node::api::client::metric_sum;
use chorus_node::localnet::{LocalNet, node_key};
use chorus_protocol::ids::NetworkId;
use chorus_protocol::keys::Keypair;
use chorus_protocol::rng::SplitMix64;
use clap::Args;
use futures::StreamExt;
use libp2p::gossipsub;
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId};

use super::{graylisted, metrics_of, wait_for};
use crate::procs::cluster::RunDir;
use crate::procs::plan::{NetSpec, write_data};
use crate::report::Report;

/// `relay` flags.
#[derive(Debug, Args)]
pub struct RelayArgs {
    /// Honest nodes in the line (at least 5: validators 0–3 and one relay beyond them).
    #[arg(long, default_value_t = 10)]
    pub nodes: usize,
    /// Random-byte messages the attacker publishes.
    #[arg(long, default_value_t = 20)]
    pub garbage: u32,
    /// Votes with a bad signature the attacker publishes.
    #[arg(long, default_value_t = 20)]
    pub forged: u32,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Run the scenario.
pub async fn run(args: RelayArgs) -> anyhow::Result<ExitCode> {
    let json = args.json;
    Ok(Report::run("relay", json, async |report| run_inner(args, report).await).await)
}

/// Consensus messages node `i` rejected.
fn consensus_rejects(page: &str) -> f64 {
    metric_sum(
        page,
        "chorus_validation_outcomes_total",
        &["kind=\"consensus\"", "outcome=\"reject\""],
    )
}

/// Penalties node `i` gave peers (every offence).
fn penalties(page: &str) -> f64 {
    metric_sum(page, "chorus_peer_penalties_total", &[])
}

fn connected(page: &str) -> f64 {
    metric_sum(page, "chorus_connected_peers", &[])
}

/// Line neighbours of node `i` of `n`.
fn degree(i: usize, n: usize) -> f64 {
    if i == 0 || i + 1 == n { 1.0 } else { 2.0 }
}

async fn heights(net: &LocalNet) -> Vec<u64> {
    let mut out = vec![];
    for i in 0..net.nodes.len() {
        let h = match net.handle(i) {
            Some(h) => h.status().await.map(|s| s.height).unwrap_or(0),
            None => 0,
        };
        out.push(h);
    }
    out
}

async fn run_inner(args: RelayArgs, report: &mut Report) -> anyhow::Result<()> {
    if !(5..=32).contains(&args.nodes) {
        bail!("--nodes must be in 5..=32");
    }
    if args.garbage + args.forged == 0 || args.garbage > 1_000 || args.forged > 1_000 {
        bail!("--garbage and --forged must be at most 1000 each, and not both 0");
    }
    let n = args.nodes;
    let dir = RunDir::new(None, "chorus-relay-")?;
    let data = write_data(&dir.path)?;
    let spec = NetSpec::new(
        "chorus-relay",
        n,
        Duration::from_millis(2_000 + 150 * n as u64),
    );
    let mut plan = spec.plan(&data, dir.path.clone());
    plan.line = true;
    let net = LocalNet::start(plan)
        .await
        .context("starting the network")?;
    let ready = wait_for(Duration::from_secs(40), || {
        let net = &net;
        async move {
            (0..n).all(|i| connected(&metrics_of(net, i)) >= degree(i, n))
                && heights(net).await.iter().all(|h| *h >= 2)
        }
    })
    .await;
    if !ready {
        bail!("the honest line did not connect and finalize 2 heights within 40 s");
    }
    let before: Vec<(f64, f64)> = (0..n)
        .map(|i| {
            let page = metrics_of(&net, i);
            (consensus_rejects(&page), penalties(&page))
        })
        .collect();
    let h_before = heights(&net).await;
    report.metric("heights_before", h_before.clone());

    let target = net.addrs[0].clone().context("node 0 has no address")?;
    let validator = node_key(spec.seed, 1);
    let attacker = attack(
        &net.genesis.network_id(),
        &validator,
        target,
        h_before[0] + 1,
        &args,
    )
    .await?;
    for (k, v) in attacker.as_object().into_iter().flatten() {
        report.metric(&format!("attacker_{k}"), v.clone());
    }
    // Let anything relayed arrive and the chain move on.
    let target_heights: Vec<u64> = heights(&net).await.iter().map(|h| h + 3).collect();
    let advanced = wait_for(Duration::from_secs(30), || {
        let net = &net;
        let target = &target_heights;
        async move { heights(net).await.iter().zip(target).all(|(h, t)| h >= t) }
    })
    .await;
    let pages: Vec<String> = (0..n).map(|i| metrics_of(&net, i)).collect();
    let rejected: Vec<f64> = pages
        .iter()
        .zip(&before)
        .map(|(p, b)| consensus_rejects(p) - b.0)
        .collect();
    let penalised: Vec<f64> = pages
        .iter()
        .zip(&before)
        .map(|(p, b)| penalties(p) - b.1)
        .collect();
    report.metric("penalties_per_node", penalised.clone());
    let gray: Vec<f64> = pages.iter().map(|p| graylisted(p)).collect();
    let peers: Vec<f64> = pages.iter().map(|p| connected(p)).collect();
    report.metric("consensus_rejects_per_node", rejected.clone());
    report.metric("graylisted_per_node", gray.clone());
    report.metric("connected_peers_per_node", peers.clone());
    report.check(
        "the attack reached node 0",
        rejected[0] >= 1.0,
        format!("node 0 rejected {} consensus messages", rejected[0]),
    );
    let left = attacker["connected_at_end"].as_u64().unwrap_or(u64::MAX);
    report.check(
        "node 0 graylisted exactly one peer: the attacker",
        gray[0] == 1.0 && left == 0,
        format!(
            "node 0 graylisted {} peers; the attacker has {left} connections left",
            gray[0]
        ),
    );
    let relayed: Vec<usize> = (1..n)
        .filter(|&i| rejected[i] > 0.0 || penalised[i] > 0.0 || gray[i] > 0.0)
        .collect();
    report.check(
        "no other node saw a hostile message, penalised or graylisted anyone",
        relayed.is_empty(),
        if relayed.is_empty() {
            format!("nodes 1..{n}: 0 consensus rejects, 0 penalties, 0 graylisted")
        } else {
            format!("nodes {relayed:?} rejected, penalised or graylisted")
        },
    );
    let dropped: Vec<usize> = (0..n).filter(|&i| peers[i] < degree(i, n)).collect();
    report.check(
        "no honest link dropped and the chain moved on",
        dropped.is_empty() && advanced,
        format!(
            "nodes below their line degree: {dropped:?}; 3 more heights on every node: {advanced}"
        ),
    );
    net.shutdown().await;
    Ok(())
}

/// A vote of `height` by `validator` with one bit of its signature flipped.
fn forged_vote(network: &NetworkId, validator: &Keypair, height: u64, k: u32) -> Vec<u8> {
    let vote = Vote {
        height: CheckpointHeight(height),
        round: Round::new(k % 4),
        kind: VoteType::Prevote,
        value: NilOrVal::Nil,
        validator: ValidatorAddress(validator.public()),
    };
    let mut signature = sign_vote(validator, network, &vote);
    signature.0[(k as usize) % 64] ^= 1;
    ConsensusMessage::Vote(VoteMessage { vote, signature }).to_bytes()
}

/// Connect to `target` only, then publish the hostile messages (alternating, one per 100 ms),
/// keep polling 3 s more, and say what happened. Votes use the newest height seen on the
/// consensus channel (`start_height` until one is seen).
async fn attack(
    network: &NetworkId,
    validator: &Keypair,
    target: Multiaddr,
    start_height: u64,
    args: &RelayArgs,
) -> anyhow::Result<serde_json::Value> {
    let me = Keypair::from_seed(&[0xEE; 32]);
    let (mut swarm, topic) = super::consensus_swarm(&me, *network)?;
    swarm.dial(target.clone())?;
    let peer: Option<PeerId> = target.iter().find_map(|p| match p {
        libp2p::multiaddr::Protocol::P2p(id) => Some(id),
        _ => None,
    });
    let mut rng = SplitMix64::seeded(0x5EED);
    let mut height = start_height;
    let (mut garbage, mut forged, mut errors) = (0u32, 0u32, 0u32);
    let mut connected_at: Option<Instant> = None;
    let mut max_connected = 0usize;
    let mut done_at: Option<Instant> = None;
    let t0 = Instant::now();
    loop {
        tokio::select! {
            ev = swarm.select_next_some() => {
                if let SwarmEvent::Behaviour(chorus_node::net::behaviour::BehaviourEvent::Gossipsub(
                    gossipsub::Event::Message { message, .. },
                )) = ev
                    && let Ok(m) = ConsensusMessage::decode(&message.data)
                {
                    height = height.max(m.height());
                }
            }
            _ = tokio::time::sleep(Duration::from_millis(100)) => {
                max_connected = max_connected.max(swarm.connected_peers().count());
                if connected_at.is_none() && peer.is_some_and(|p| swarm.is_connected(&p)) {
                    connected_at = Some(Instant::now());
                }
                if t0.elapsed() > Duration::from_secs(60) {
                    break;
                }
                if let Some(d) = done_at {
                    if d.elapsed() > Duration::from_secs(3) {
                        break;
                    }
                    continue;
                }
                // Give the subscription a second to reach node 0.
                let Some(c) = connected_at else {
                    if t0.elapsed() > Duration::from_secs(15) {
                        bail!("the attacker could not connect to node 0 within 15 s");
                    }
                    continue;
                };
                if c.elapsed() < Duration::from_secs(1) {
                    continue;
                }
                let bytes = if (garbage <= forged && garbage < args.garbage) || forged >= args.forged {
                    garbage += 1;
                    let len = 64 + (rng.next_u64() % 192) as usize;
                    (0..len).map(|_| rng.next_u64() as u8).collect()
                } else {
                    forged += 1;
                    forged_vote(network, validator, height, forged)
                };
                if swarm.behaviour_mut().gossipsub.publish(topic.clone(), bytes).is_err() {
                    errors += 1;
                }
                if garbage >= args.garbage && forged >= args.forged {
                    done_at = Some(Instant::now());
                }
            }
        }
    }
    Ok(serde_json::json!({
        "garbage_sent": garbage,
        "forged_sent": forged,
        "publish_errors": errors,
        "max_connected": max_connected,
        "connected_at_end": swarm.connected_peers().count(),
    }))
}
