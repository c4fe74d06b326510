//! What the simulator does with a replica's effects, and how it delivers messages: the
//! simulated host, doing what the node does with the same effects.

use chorus_protocol::ids::Hash32;
use chorus_protocol::validation::ChannelKind;

use super::super::wire::{InboundId, Request, RequestId, Response, StoreQuery};
use super::super::{Effect, Input, Outcome, ReplicaEvent};
use super::{Delivery, Sim, SimEvent};
use crate::checkpoint::{ConsensusMessage, TimerKind};

impl Sim {
    /// Hand node `i` one input now and carry out what it does.
    pub(crate) fn input(&mut self, i: usize, input: Input) {
        if let Some(effects) = self.handle_now(i, input) {
            self.carry_out(i, effects);
        }
    }

    /// Node `i`'s replica's effects of one input now (`None` when it is down); not carried out.
    pub(super) fn handle_now(&mut self, i: usize, input: Input) -> Option<Vec<Effect>> {
        let now = self.local_now(i);
        Some(self.nodes.get_mut(i)?.replica.as_mut()?.handle(input, now))
    }

    pub(super) fn carry_out(&mut self, i: usize, effects: Vec<Effect>) {
        for e in effects {
            match e {
                Effect::Broadcast {
                    channel: ChannelKind::Consensus,
                    bytes,
                } => self.broadcast_consensus(i, bytes),
                Effect::Broadcast { channel, bytes } => self.broadcast(i, None, channel, &bytes),
                Effect::Request { id, to, request } => self.request(i, id, &to, request),
                Effect::Respond { id, response } => self.respond(i, id, response),
                Effect::Serve { id, query } => {
                    let response = self.serve(i, query);
                    self.respond(i, id, response);
                }
                Effect::ServeCatchUp { peer, height } => self.serve_catch_up(i, &peer, height),
                Effect::Event(ev) => self.event(i, ev),
                Effect::Report { id, outcome, .. } => {
                    if outcome == Outcome::Reject {
                        self.stats.rejected += 1;
                    }
                    self.last_report = Some((id, outcome));
                }
                Effect::Penalize { .. } => self.stats.penalized += 1,
                other => self.store_effect(i, other),
            }
        }
    }

    /// Persistence and timers.
    fn store_effect(&mut self, i: usize, e: Effect) {
        let node = &mut self.nodes[i];
        match e {
            Effect::Persist(items) => {
                for (k, b) in items {
                    let v = node.store.envelopes.entry(k).or_default();
                    if !v.contains(&b) {
                        v.push(b);
                    }
                }
            }
            Effect::WalAppend(r) => node.store.wal.push(r),
            Effect::WalTruncate { keep_from_height } => {
                node.store.wal.retain(|r| r.height >= keep_from_height)
            }
            Effect::PersistDecided(d) => {
                node.store.decided.insert(d.height(), d);
            }
            Effect::PersistHeads(lists) => node.store.heads.extend(lists),
            Effect::PersistLedger { height, bytes } => node.store.ledger = Some((height, bytes)),
            Effect::ScheduleTimer { id, at_ms } => {
                node.timers.insert(id, at_ms);
            }
            Effect::CancelTimer(id) => {
                node.timers.remove(&id);
            }
            Effect::CancelAllTimers => node
                .timers
                .retain(|id, _| matches!(id.kind, TimerKind::CatchUp | TimerKind::Start)),
            _ => {}
        }
    }

    /// A request to the node(s) holding `to`: consensus messages reach every replica with
    /// that key (twins share one), other requests the first reachable one (a session or a
    /// fetch is with one replica).
    fn request(
        &mut self,
        i: usize,
        id: RequestId,
        to: &chorus_protocol::keys::PublicKey,
        request: Request,
    ) {
        let targets = self.nodes_of(i, to);
        let targets = match request {
            Request::Consensus(_) => targets,
            _ => targets.into_iter().take(1).collect(),
        };
        for j in targets {
            self.send_request(i, j, id, request.clone());
        }
    }

    pub(super) fn send_request(&mut self, from: usize, to: usize, id: RequestId, request: Request) {
        self.send(
            Delivery::Request {
                to,
                from,
                id,
                request,
            },
            from,
            to,
        );
    }

    /// Node `i` answers the request it knows as `id`.
    fn respond(&mut self, i: usize, id: InboundId, response: Response) {
        if let Some((to, rid)) = self.nodes[i].inbound.remove(&id.0) {
            self.send(
                Delivery::Response {
                    to,
                    from: i,
                    id: rid,
                    response,
                },
                i,
                to,
            );
        }
    }

    /// A store read, answered from node `i`'s simulated store; a garbage peer answers window
    /// fetches with garbage.
    fn serve(&mut self, i: usize, query: StoreQuery) -> Response {
        let store = &self.nodes[i].store;
        match query {
            StoreQuery::WindowEnvelopes(window) if self.roles.garbage_peers.contains(&i) => {
                Response::Envelopes(self.garbage_envelopes(i, &window))
            }
            StoreQuery::WindowEnvelopesAfter { window, after } => Response::Envelopes(
                store
                    .envelopes
                    .get(&window)
                    .into_iter()
                    .flatten()
                    .filter(|b| Hash32::of(b) > after)
                    .cloned()
                    .collect(),
            ),
            StoreQuery::WindowEnvelopes(window) => {
                Response::Envelopes(store.envelopes.get(&window).cloned().unwrap_or_default())
            }
            StoreQuery::Envelopes(ids) => Response::Envelopes(
                store
                    .envelopes
                    .values()
                    .flatten()
                    .filter(|b| ids.contains(&Hash32::of(b)))
                    .cloned()
                    .collect(),
            ),
            StoreQuery::Heads(wanted) => Response::Heads(
                wanted
                    .iter()
                    .map(|(w, root)| {
                        store
                            .heads
                            .get(w)
                            .filter(|l| crate::window::root_of(l) == *root)
                            .cloned()
                    })
                    .collect(),
            ),
            StoreQuery::Certificates { from, max } => Response::Checkpoints(
                store
                    .decided
                    .range(from..)
                    .take(max as usize)
                    .map(|(_, d)| chorus_protocol::codec::encode(d))
                    .collect(),
            ),
            // Certified state sync runs before a node starts (`chorus join`, `chorus store
            // sync`), never between running replicas.
            StoreQuery::State { .. } | StoreQuery::StatePart { .. } => {
                Response::Refused("no state sync in the simulator".into())
            }
        }
    }

    fn serve_catch_up(&mut self, i: usize, peer: &chorus_protocol::keys::PublicKey, height: u64) {
        if let Some(d) = self.nodes[i].store.decided.get(&height).cloned() {
            let bytes = ConsensusMessage::CatchUpResponse(d).to_bytes();
            for j in self.nodes_of(i, peer) {
                self.send_request(i, j, RequestId(u64::MAX), Request::Consensus(bytes.clone()));
            }
        }
    }

    fn event(&mut self, i: usize, ev: ReplicaEvent) {
        match ev {
            ReplicaEvent::Finalized {
                height,
                id,
                ledger_root,
                events,
                bundles,
                outlier_bundles,
                next_validators,
            } => {
                if i == 0 {
                    self.proof_log.bundles.insert(height, bundles.clone());
                    self.proof_log
                        .outlier_bundles
                        .insert(height, outlier_bundles);
                    self.proof_log
                        .committed_sets
                        .insert(height + 1, next_validators);
                }
                // Every finalized inference comes with its bundle (what the node serves).
                for e in &events {
                    if let crate::ledger::LedgerEvent::NetworkInference { topic, epoch, .. } = e
                        && !bundles.iter().any(|(t, ep, _)| t == topic && ep == epoch)
                    {
                        self.faults.push(format!(
                            "node {i}: height {height} finalized the inference of topic \
                             {topic} epoch {epoch} without its bundle"
                        ));
                    }
                }
                self.finalized_at.insert((i, height), self.now);
                self.stats.finalized = self.stats.finalized.max(height);
                self.trace.update(&[0xF1, i as u8]);
                self.trace.update(&height.to_le_bytes());
                self.trace.update(&ledger_root.0);
                self.events.push(SimEvent::Finalized {
                    node: i,
                    height,
                    id,
                    ledger_root,
                    at_ms: self.now,
                });
            }
            ReplicaEvent::Fault(f) => {
                self.stats.faults += 1;
                self.faults.push(format!("node {i}: {f}"));
                self.events.push(SimEvent::Fault {
                    node: i,
                    fault: f,
                    at_ms: self.now,
                });
            }
            ReplicaEvent::Reconciling { .. } => self.stats.reconciles += 1,
            ReplicaEvent::ClockOff { .. } => self.stats.clock_off_passes += 1,
            _ => {}
        }
    }

    pub(super) fn deliver(&mut self, d: Delivery) {
        match d {
            Delivery::Gossip {
                to,
                from,
                channel,
                bytes,
            } => self.deliver_gossip(to, from, channel, bytes),
            Delivery::Request {
                to,
                from,
                id,
                request,
            } => {
                self.trace.update(&[2, to as u8]);
                if self.nodes[to].replica.is_none() {
                    return;
                }
                let node = &mut self.nodes[to];
                node.next_inbound += 1;
                let inbound = InboundId(node.next_inbound);
                node.inbound.insert(inbound.0, (from, id));
                let from = self.nodes[from].key.public();
                self.input(
                    to,
                    Input::Request {
                        from,
                        id: inbound,
                        request,
                    },
                );
            }
            Delivery::Response {
                to,
                from,
                id,
                response,
            } => {
                self.trace.update(&[3, to as u8]);
                let from = self.nodes[from].key.public();
                self.input(to, Input::Response { id, from, response });
            }
        }
    }

    fn deliver_gossip(&mut self, to: usize, from: usize, channel: ChannelKind, bytes: Vec<u8>) {
        self.trace.update(&[1, to as u8]);
        self.trace.update(&bytes[..bytes.len().min(16)]);
        if self.nodes[to].replica.is_none() {
            return;
        }
        self.sample(to, channel, &bytes);
        let from_key = self.nodes[from].key.public();
        self.last_report = None;
        self.input(
            to,
            Input::Gossip {
                channel,
                bytes: bytes.clone(),
                from: from_key,
            },
        );
        let accepted = matches!(self.last_report,
            Some((id, Outcome::Accept)) if id == Hash32::of(&bytes));
        if self.net.relay && accepted && channel != ChannelKind::Consensus {
            self.stats.relayed += 1;
            self.broadcast(to, Some(from), channel, &bytes);
        }
    }

    /// Tell every running replica which peers it can talk to now (both directions), as the
    /// node does on connection events.
    pub(super) fn update_peers(&mut self) {
        for i in 0..self.nodes.len() {
            if self.nodes[i].replica.is_none() {
                continue;
            }
            let now: std::collections::BTreeSet<_> = (0..self.nodes.len())
                .filter(|&j| {
                    j != i
                        && self.nodes[j].replica.is_some()
                        && self.connected(i, j)
                        && self.connected(j, i)
                })
                .map(|j| self.nodes[j].key.public())
                .filter(|k| *k != self.nodes[i].key.public())
                .collect();
            let before = std::mem::take(&mut self.nodes[i].told);
            for gone in before.difference(&now) {
                self.input(i, Input::PeerDown(*gone));
            }
            for new in now.difference(&before) {
                self.input(i, Input::PeerUp(*new));
            }
            self.nodes[i].told = now;
        }
    }
}
