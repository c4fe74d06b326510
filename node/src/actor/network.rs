//! The actor's network side: swarm events, the rpc protocol (serving and answers),
//! anti-entropy rounds, graylisting and redialing.

use std::time::Duration;

use chorus_crdt::replica::{Effect, Input};
use chorus_crdt::window::WindowKey;
use chorus_protocol::ids::Hash32;
use chorus_protocol::validation::Channel;
use libp2p::PeerId;
use libp2p::gossipsub;
use libp2p::request_response::{self, ResponseChannel};
use libp2p::swarm::SwarmEvent;

use super::run::{Actor, MAX_FETCHES_PER_ROUND, Pending, RPC_RATE_PER_PEER, kind_label, peer_key};
use crate::net::behaviour::BehaviourEvent;
use crate::net::rpc::{MAX_CATCHUP, Request, Response};
use crate::net::scoring::GRAYLIST_THRESHOLD;
use crate::store::ops;

/// Peers asked at once by a reconciliation before a late proposal.
pub(super) const MAX_RECONCILE_PEERS: usize = 64;

impl Actor {
    pub(super) fn random_peer(&self) -> Option<PeerId> {
        let peers: Vec<PeerId> = self.p.swarm.connected_peers().copied().collect();
        if peers.is_empty() {
            return None;
        }
        let i = (self.now() as usize) % peers.len();
        peers.get(i).copied()
    }

    pub(super) fn anti_entropy(&mut self) {
        let Some(peer) = self.random_peer() else {
            return;
        };
        // One reconciliation round at a time, only of windows that stopped changing.
        if self
            .requests
            .values()
            .any(|r| matches!(r, Pending::Roots(_) | Pending::Sync(_)))
        {
            return;
        }
        let keys = self.p.replica.closed_window_keys(self.now());
        if keys.is_empty() {
            return;
        }
        let keys: Vec<WindowKey> = keys.into_iter().take(crate::net::rpc::MAX_ROOTS).collect();
        let id = self
            .p
            .swarm
            .behaviour_mut()
            .rpc
            .send_request(&peer, Request::Roots(keys.clone()));
        self.requests.insert(id, Pending::Roots(keys));
    }

    /// Compare `windows`' roots with every connected peer now (up to
    /// [`MAX_RECONCILE_PEERS`]); the answers start syncs of the windows that differ.
    pub(super) fn reconcile(&mut self, mut windows: Vec<WindowKey>) {
        windows.truncate(crate::net::rpc::MAX_ROOTS);
        if windows.is_empty() {
            return;
        }
        let peers: Vec<PeerId> = self
            .p
            .swarm
            .connected_peers()
            .copied()
            .take(MAX_RECONCILE_PEERS)
            .collect();
        for peer in peers {
            let id = self
                .p
                .swarm
                .behaviour_mut()
                .rpc
                .send_request(&peer, Request::Roots(windows.clone()));
            self.requests.insert(id, Pending::Roots(windows.clone()));
        }
    }

    pub(super) fn graylist(&mut self) {
        let peers: Vec<PeerId> = self.p.swarm.connected_peers().copied().collect();
        for p in peers {
            let score = self.p.swarm.behaviour().gossipsub.peer_score(&p);
            if score.is_some_and(|s| s < GRAYLIST_THRESHOLD) {
                tracing::warn!(peer = %p, ?score, "graylisted: disconnecting and blocking");
                self.p.swarm.behaviour_mut().blocked.block_peer(p);
                let _ = self.p.swarm.disconnect_peer_id(p);
                self.p.metrics.dropped("graylisted_peers");
            }
        }
    }

    pub(super) fn redial_bootstrap(&mut self) {
        let now = self.now();
        let max = self.p.max_backoff;
        for (i, addr) in self.p.bootstrap.clone().into_iter().enumerate() {
            let connected = addr.iter().any(|p| match p {
                libp2p::multiaddr::Protocol::P2p(peer) => self.p.swarm.is_connected(&peer),
                _ => false,
            });
            let Some((at, backoff)) = self.redial.get(&i).copied() else {
                continue;
            };
            if connected {
                self.redial.insert(i, (now + 2_000, Duration::from_secs(1)));
                continue;
            }
            if now >= at {
                let _ = self.p.swarm.dial(addr);
                let next = (backoff * 2).min(max);
                self.redial
                    .insert(i, (now + backoff.as_millis() as u64, next));
            }
        }
    }

    pub(super) async fn handle_swarm(&mut self, ev: SwarmEvent<BehaviourEvent>) {
        match ev {
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(gossipsub::Event::Message {
                propagation_source,
                message,
                ..
            })) => {
                let channel = Channel::parse(message.topic.as_str());
                let (Some(channel), Some(from)) = (channel, peer_key(&propagation_source)) else {
                    return;
                };
                self.p.metrics.received(kind_label(channel.kind));
                self.input(Input::Gossip {
                    channel: channel.kind,
                    bytes: message.data,
                    from,
                })
                .await;
            }
            SwarmEvent::Behaviour(BehaviourEvent::Rpc(ev)) => self.handle_rpc(ev).await,
            SwarmEvent::Behaviour(BehaviourEvent::Identify(
                libp2p::identify::Event::Received { peer_id, info, .. },
            )) => {
                if let Some(kad) = self.p.swarm.behaviour_mut().kad.as_mut() {
                    for a in info.listen_addrs {
                        kad.add_address(&peer_id, a);
                    }
                }
            }
            SwarmEvent::NewListenAddr { address, .. } if !self.p.listen.contains(&address) => {
                self.p.listen.push(address);
            }
            _ => {}
        }
    }

    pub(super) async fn handle_rpc(&mut self, ev: request_response::Event<Request, Response>) {
        use request_response::{Event, Message};
        match ev {
            Event::Message {
                peer,
                message:
                    Message::Request {
                        request, channel, ..
                    },
                ..
            } => self.serve(peer, request, channel).await,
            Event::Message {
                peer,
                message:
                    Message::Response {
                        request_id,
                        response,
                    },
                ..
            } => {
                let pending = self.requests.remove(&request_id);
                let Some(from) = peer_key(&peer) else {
                    return;
                };
                match (pending, response) {
                    (Some(Pending::WindowEntries(window)), Response::Envelopes(envelopes)) => {
                        self.input(Input::WindowEntries {
                            window,
                            envelopes,
                            from,
                        })
                        .await;
                    }
                    (Some(Pending::Roots(keys)), Response::Roots(roots)) => {
                        let mut fetch = vec![];
                        for (key, theirs) in keys.iter().zip(roots) {
                            let ours = self.p.replica.window(key).map(|w| w.root());
                            if theirs.is_some() && theirs != ours {
                                fetch.push(*key);
                            }
                        }
                        // Reconcile each differing window with automerge sync (validated).
                        for window in fetch.into_iter().take(MAX_FETCHES_PER_ROUND) {
                            if let Some(message) = self.p.replica.sync_open(from, window) {
                                let id = self
                                    .p
                                    .swarm
                                    .behaviour_mut()
                                    .rpc
                                    .send_request(&peer, Request::Sync { window, message });
                                self.requests.insert(id, Pending::Sync(window));
                            }
                        }
                    }
                    (Some(Pending::Sync(window)), Response::Sync(Some(bytes))) => {
                        let t0 = std::time::Instant::now();
                        self.input(Input::SyncMessage {
                            from,
                            window,
                            bytes,
                        })
                        .await;
                        self.p.metrics.sync_latency(t0.elapsed());
                    }
                    (Some(Pending::Sync(window)), _) => self.p.replica.sync_close(from, window),
                    _ => {}
                }
            }
            Event::OutboundFailure { request_id, .. } => {
                self.requests.remove(&request_id);
            }
            _ => {}
        }
    }

    pub(super) async fn serve(
        &mut self,
        peer: PeerId,
        request: Request,
        channel: ResponseChannel<Response>,
    ) {
        let second = self.now() / 1_000;
        let count = self.rpc_rate.entry(peer).or_insert((second, 0));
        if count.0 != second {
            *count = (second, 0);
        }
        count.1 += 1;
        if count.1 > RPC_RATE_PER_PEER {
            self.p.metrics.dropped("rpc_rate_limited");
            let _ = self
                .p
                .swarm
                .behaviour_mut()
                .rpc
                .send_response(channel, Response::Refused("rate limited".into()));
            return;
        }
        if self.rpc_rate.len() > 4_096 {
            self.rpc_rate.retain(|_, (s, _)| *s == second);
        }
        let response = match request {
            Request::Roots(keys) => Response::Roots(
                keys.iter()
                    .take(crate::net::rpc::MAX_ROOTS)
                    .map(|k| self.p.replica.window(k).map(|w| w.root()))
                    .collect(),
            ),
            Request::WindowEntries(key) => {
                let wid = key.id();
                match self
                    .p
                    .store
                    .call(move |db| ops::window_envelopes(db, &wid))
                    .await
                {
                    Ok(envelopes) => Response::Envelopes(envelopes),
                    Err(e) => Response::Refused(e.to_string()),
                }
            }
            Request::Fetch(ids) => {
                let ids: Vec<Hash32> = ids.into_iter().take(crate::net::rpc::MAX_FETCH).collect();
                match self
                    .p
                    .store
                    .call(move |db| {
                        let mut out = vec![];
                        for id in &ids {
                            if let Some(b) = ops::envelope(db, id)? {
                                out.push(b);
                            }
                        }
                        Ok(out)
                    })
                    .await
                {
                    Ok(envelopes) => Response::Envelopes(envelopes),
                    Err(e) => Response::Refused(e.to_string()),
                }
            }
            Request::CatchUp { from, max } => {
                let max = max.min(MAX_CATCHUP) as usize;
                match self
                    .p
                    .store
                    .call(move |db| ops::certificates_from(db, from))
                    .await
                {
                    Ok(v) => {
                        Response::Checkpoints(v.into_iter().take(max).map(|(_, b)| b).collect())
                    }
                    Err(e) => Response::Refused(e.to_string()),
                }
            }
            Request::Consensus(bytes) => {
                if let Some(from) = peer_key(&peer) {
                    self.input(Input::Direct { from, bytes }).await;
                }
                Response::Consensus(vec![])
            }
            Request::Sync { window, message } => match peer_key(&peer) {
                None => Response::Refused("unknown peer key".into()),
                Some(from) => {
                    let now = self.now();
                    let effects = self.p.replica.handle(
                        Input::SyncMessage {
                            from,
                            window,
                            bytes: message,
                        },
                        now,
                    );
                    let mut reply = None;
                    let mut rest = Vec::with_capacity(effects.len());
                    for e in effects {
                        match e {
                            Effect::SyncReply {
                                to,
                                message,
                                window: w,
                            } if to == from && w == window && reply.is_none() => {
                                reply = Some(message);
                            }
                            other => rest.push(other),
                        }
                    }
                    self.carry_out(rest).await;
                    Response::Sync(reply.flatten())
                }
            },
        };
        let _ = self
            .p
            .swarm
            .behaviour_mut()
            .rpc
            .send_response(channel, response);
    }
}
