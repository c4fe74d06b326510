//! The network driver: the libp2p swarm and everything that is about connections rather than
//! protocol — dialing and redialing bootstrap peers with jittered backoff, graylisting peers
//! whose score fell too low, rate-limiting inbound requests, subscriptions, and carrying the
//! replica's requests and answers (correlated by id) as bytes. Protocol policy (what to ask
//! whom, and what an answer means) is the replica's; this module turns swarm events into
//! replica inputs and replica effects into swarm calls.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use chorus_crdt::replica::wire::{InboundId, Request, RequestId, Response};
use chorus_crdt::replica::{Input, Offence, Outcome, PeerKey};
use chorus_protocol::ids::{Hash32, NetworkId};
use chorus_protocol::rng::SplitMix64;
use chorus_protocol::validation::{Channel, ChannelKind};
use libp2p::gossipsub::{self, IdentTopic, MessageAcceptance, MessageId};
use libp2p::request_response::{self, OutboundRequestId, ResponseChannel};
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId, Swarm};

use crate::metrics::NodeMetrics;
use crate::net::behaviour::{Behaviour, BehaviourEvent};
use crate::net::peer_id_of;
use crate::net::penalties::PenaltyBook;
use crate::net::scoring::GRAYLIST_THRESHOLD;

/// Requests served per peer per second before the rest are refused.
pub(super) const RPC_RATE_PER_PEER: u32 = 200;
/// Peers whose request rate is tracked at once (beyond, the stale entries are dropped).
const RATE_PEERS: usize = 4_096;
/// Application-score penalty per unit of offence weight.
const APP_PENALTY: f64 = 20.0;
/// First redial delay of a bootstrap peer; it doubles up to the configured maximum.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// Inbound requests waiting for the replica's (or the store's) answer; beyond, new ones are
/// refused (libp2p also times them out).
const MAX_INBOUND: usize = 4_096;

/// The public key inside an ed25519 peer id.
pub fn peer_key(peer: &PeerId) -> Option<PublicKey> {
    let mh = peer.as_ref();
    if mh.code() != 0 {
        return None;
    }
    let pk = libp2p::identity::PublicKey::try_decode_protobuf(mh.digest()).ok()?;
    let ed = pk.try_into_ed25519().ok()?;
    Some(PublicKey(ed.to_bytes()))
}

use chorus_protocol::keys::PublicKey;

/// The metrics label of a channel kind.
pub(super) fn kind_label(kind: ChannelKind) -> &'static str {
    match kind {
        ChannelKind::Workers(_) => "workers",
        ChannelKind::Reputers(_) => "reputers",
        ChannelKind::Ledger => "ledger",
        ChannelKind::Consensus => "consensus",
    }
}

/// One bootstrap address and when to dial it next.
struct Redial {
    addr: Multiaddr,
    at_ms: u64,
    backoff: Duration,
}

/// The network driver's state.
pub(super) struct NetDriver {
    pub(super) swarm: Swarm<Behaviour>,
    network: NetworkId,
    metrics: Arc<NodeMetrics>,
    listen: Vec<Multiaddr>,
    bootstrap: Vec<Redial>,
    max_backoff: Duration,
    jitter: SplitMix64,
    subscribed: BTreeSet<String>,
    rpc_rate: BTreeMap<PeerId, (u64, u32)>,
    outbound: BTreeMap<OutboundRequestId, RequestId>,
    /// When each sync request left (for the sync round-trip histogram).
    sync_sent: BTreeMap<OutboundRequestId, std::time::Instant>,
    inbound: BTreeMap<u64, ResponseChannel<Response>>,
    next_inbound: u64,
    /// Decaying penalties and expiring graylisting.
    book: PenaltyBook<PeerId>,
}

impl NetDriver {
    pub(super) fn new(
        swarm: Swarm<Behaviour>,
        network: NetworkId,
        metrics: Arc<NodeMetrics>,
        listen: Vec<Multiaddr>,
        bootstrap: Vec<Multiaddr>,
        max_backoff: Duration,
        seed: u64,
    ) -> Self {
        NetDriver {
            swarm,
            network,
            metrics,
            listen,
            bootstrap: bootstrap
                .into_iter()
                .map(|addr| Redial {
                    addr,
                    at_ms: 0,
                    backoff: FIRST_BACKOFF,
                })
                .collect(),
            max_backoff,
            jitter: SplitMix64::seeded(seed),
            subscribed: BTreeSet::new(),
            rpc_rate: BTreeMap::new(),
            outbound: BTreeMap::new(),
            sync_sent: BTreeMap::new(),
            inbound: BTreeMap::new(),
            next_inbound: 0,
            book: PenaltyBook::default(),
        }
    }

    /// Addresses we listen on.
    pub(super) fn listen(&self) -> &[Multiaddr] {
        &self.listen
    }

    /// Connected peers.
    pub(super) fn peer_count(&self) -> usize {
        self.swarm.connected_peers().count()
    }

    /// Subscribe to these channels (once each), with their scoring parameters.
    pub(super) fn subscribe(&mut self, kinds: impl IntoIterator<Item = ChannelKind>) {
        for kind in kinds {
            let topic = topic_name(self.network, kind);
            if self.subscribed.insert(topic.to_string()) {
                let gs = &mut self.swarm.behaviour_mut().gossipsub;
                let _ = gs.subscribe(&topic);
                let _ = gs.set_topic_params(topic, crate::net::scoring::topic_params());
            }
        }
    }

    /// Dial the bootstrap peers that are due: not connected, and their backoff (doubled
    /// after each attempt up to the maximum, with ±25 % jitter) has passed.
    pub(super) fn redial(&mut self, now_ms: u64) {
        for i in 0..self.bootstrap.len() {
            let connected = self.bootstrap[i].addr.iter().any(|p| match p {
                libp2p::multiaddr::Protocol::P2p(peer) => self.swarm.is_connected(&peer),
                _ => false,
            });
            let jitter = 0.75 + 0.5 * self.jitter.unit();
            let r = &mut self.bootstrap[i];
            if connected {
                r.at_ms = now_ms.saturating_add(2_000);
                r.backoff = FIRST_BACKOFF;
                continue;
            }
            if now_ms >= r.at_ms {
                let _ = self.swarm.dial(r.addr.clone());
                r.at_ms = now_ms.saturating_add((r.backoff.as_millis() as f64 * jitter) as u64);
                r.backoff = (r.backoff * 2).min(self.max_backoff);
            }
        }
    }

    /// Decay the penalties, lift expired graylisting, then disconnect and block (for
    /// [`GRAYLIST_MS`](crate::net::penalties::GRAYLIST_MS)) the peers whose gossip score fell
    /// below the graylist threshold.
    pub(super) fn graylist(&mut self, now_ms: u64) {
        for (p, penalty) in self.book.decay(now_ms) {
            self.swarm
                .behaviour_mut()
                .gossipsub
                .set_application_score(&p, -penalty);
        }
        for p in self.book.expired(now_ms) {
            tracing::info!(peer = %p, "graylisting expired: unblocked");
            self.swarm.behaviour_mut().blocked.unblock_peer(p);
        }
        let peers: Vec<PeerId> = self.swarm.connected_peers().copied().collect();
        for p in peers {
            let score = self.swarm.behaviour().gossipsub.peer_score(&p);
            if score.is_some_and(|s| s < GRAYLIST_THRESHOLD) && !self.book.is_blocked(&p) {
                tracing::warn!(peer = %p, ?score, "graylisted: disconnecting and blocking");
                self.book.block(&p, now_ms);
                self.swarm.behaviour_mut().blocked.block_peer(p);
                let _ = self.swarm.disconnect_peer_id(p);
                self.metrics.dropped("graylisted_peers");
            }
        }
    }

    /// Gossip `bytes` on a channel.
    pub(super) fn publish(&mut self, channel: ChannelKind, bytes: Vec<u8>) {
        let topic = topic_name(self.network, channel);
        let kind = kind_label(channel);
        match self.swarm.behaviour_mut().gossipsub.publish(topic, bytes) {
            Ok(_) => self.metrics.published(kind),
            Err(e) => tracing::debug!(error = %e, channel = kind, "publish failed"),
        }
    }

    /// Tell gossipsub what a message turned out to be.
    pub(super) fn report(
        &mut self,
        id: Hash32,
        from: &PeerKey,
        outcome: Outcome,
        reason: &'static str,
        channel: ChannelKind,
    ) {
        let (acceptance, label) = match outcome {
            Outcome::Accept => (MessageAcceptance::Accept, "accept"),
            Outcome::Ignore => (MessageAcceptance::Ignore, "ignore"),
            Outcome::Reject => (MessageAcceptance::Reject, "reject"),
        };
        self.metrics.validation(kind_label(channel), label, reason);
        if let Some(peer) = peer_id_of(from) {
            self.swarm
                .behaviour_mut()
                .gossipsub
                .report_message_validation_result(&MessageId::new(&id.0), &peer, acceptance);
        }
    }

    /// Raise a peer's (decaying) penalty by its offence's weight; its application score is
    /// minus the penalty.
    pub(super) fn penalize(&mut self, peer: &PeerKey, offence: &Offence, now_ms: u64) {
        tracing::info!(peer = %peer.short(), %offence, kind = offence.kind(), "peer penalized");
        self.metrics.penalized(offence.kind());
        if let Some(p) = peer_id_of(peer) {
            let penalty = self.book.add(&p, APP_PENALTY * offence.weight(), now_ms);
            self.swarm
                .behaviour_mut()
                .gossipsub
                .set_application_score(&p, -penalty);
        }
    }

    /// Send the replica's request; a peer we cannot address fails it at once.
    pub(super) fn send_request(
        &mut self,
        id: RequestId,
        to: &PeerKey,
        request: Request,
    ) -> Option<Input> {
        let Some(peer) = peer_id_of(to) else {
            return Some(Input::RequestFailed(id));
        };
        let sync = matches!(request, Request::Sync { .. });
        let out = self.swarm.behaviour_mut().rpc.send_request(&peer, request);
        self.outbound.insert(out, id);
        if sync {
            self.sync_sent.insert(out, std::time::Instant::now());
        }
        None
    }

    /// Answer a peer's request.
    pub(super) fn respond(&mut self, id: InboundId, response: Response) {
        if let Some(channel) = self.inbound.remove(&id.0) {
            let _ = self
                .swarm
                .behaviour_mut()
                .rpc
                .send_response(channel, response);
        }
    }

    /// What a swarm event means for the replica, if anything.
    pub(super) fn on_event(
        &mut self,
        ev: SwarmEvent<BehaviourEvent>,
        now_ms: u64,
    ) -> Option<Input> {
        match ev {
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(gossipsub::Event::Message {
                propagation_source,
                message,
                ..
            })) => {
                let channel = Channel::parse(message.topic.as_str())?;
                let from = peer_key(&propagation_source)?;
                self.metrics.received(kind_label(channel.kind));
                Some(Input::Gossip {
                    channel: channel.kind,
                    bytes: message.data,
                    from,
                })
            }
            SwarmEvent::Behaviour(BehaviourEvent::Rpc(ev)) => self.on_rpc(ev, now_ms),
            SwarmEvent::Behaviour(BehaviourEvent::Identify(
                libp2p::identify::Event::Received { peer_id, info, .. },
            )) => {
                if let Some(kad) = self.swarm.behaviour_mut().kad.as_mut() {
                    for a in info.listen_addrs {
                        kad.add_address(&peer_id, a);
                    }
                }
                None
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                num_established,
                ..
            } if num_established.get() == 1 => peer_key(&peer_id).map(Input::PeerUp),
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established: 0,
                ..
            } => peer_key(&peer_id).map(Input::PeerDown),
            SwarmEvent::NewListenAddr { address, .. } => {
                if !self.listen.contains(&address) {
                    self.listen.push(address);
                }
                None
            }
            _ => None,
        }
    }

    fn on_rpc(
        &mut self,
        ev: request_response::Event<Request, Response>,
        now_ms: u64,
    ) -> Option<Input> {
        use request_response::{Event, Message};
        match ev {
            Event::Message {
                peer,
                message:
                    Message::Request {
                        request, channel, ..
                    },
                ..
            } => self.inbound_request(peer, request, channel, now_ms),
            Event::Message {
                peer,
                message:
                    Message::Response {
                        request_id,
                        response,
                    },
                ..
            } => {
                if let Some(t0) = self.sync_sent.remove(&request_id) {
                    self.metrics.sync_latency(t0.elapsed());
                }
                let id = self.outbound.remove(&request_id)?;
                Some(Input::Response {
                    id,
                    from: peer_key(&peer)?,
                    response,
                })
            }
            Event::OutboundFailure { request_id, .. } => {
                self.sync_sent.remove(&request_id);
                self.outbound.remove(&request_id).map(Input::RequestFailed)
            }
            _ => None,
        }
    }

    /// A peer's request: refused over its rate or when too many wait, else for the replica.
    fn inbound_request(
        &mut self,
        peer: PeerId,
        request: Request,
        channel: ResponseChannel<Response>,
        now_ms: u64,
    ) -> Option<Input> {
        let refuse = |swarm: &mut Swarm<Behaviour>, channel, why: &str| {
            let _ = swarm
                .behaviour_mut()
                .rpc
                .send_response(channel, Response::Refused(why.into()));
        };
        let second = now_ms / 1_000;
        if self.rpc_rate.len() > RATE_PEERS {
            self.rpc_rate.retain(|_, (s, _)| *s == second);
        }
        let count = self.rpc_rate.entry(peer).or_insert((second, 0));
        if count.0 != second {
            *count = (second, 0);
        }
        count.1 += 1;
        if count.1 > RPC_RATE_PER_PEER {
            self.metrics.dropped("rpc_rate_limited");
            refuse(&mut self.swarm, channel, "rate limited");
            return None;
        }
        let Some(from) = peer_key(&peer) else {
            refuse(&mut self.swarm, channel, "unknown peer key");
            return None;
        };
        if self.inbound.len() >= MAX_INBOUND {
            self.metrics.dropped("rpc_overloaded");
            refuse(&mut self.swarm, channel, "overloaded");
            return None;
        }
        self.next_inbound += 1;
        self.inbound.insert(self.next_inbound, channel);
        Some(Input::Request {
            from,
            id: InboundId(self.next_inbound),
            request,
        })
    }
}

fn topic_name(network: Hash32, kind: ChannelKind) -> IdentTopic {
    IdentTopic::new(Channel { network, kind }.name())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_ids_and_keys_convert_both_ways() {
        let k = chorus_protocol::keys::Keypair::from_seed(&[5; 32]).public();
        let p = peer_id_of(&k).unwrap_or_else(PeerId::random);
        assert_eq!(peer_key(&p), Some(k));
    }
}
