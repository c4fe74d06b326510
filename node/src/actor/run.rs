//! The actor's loop and the execution of replica effects.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chorus_crdt::checkpoint::{ConsensusMessage, TimerId, TimerKind, WalRecord};
use chorus_crdt::proof::Variant;
use chorus_crdt::replica::wire::{MAX_PAGE_BYTES, Request, RequestId, Response, StoreQuery};
use chorus_crdt::replica::{Effect, Input, Replica, ReplicaEvent};
use chorus_crdt::window::{Phase, WindowKey};
use chorus_protocol::codec;
use chorus_protocol::ids::{Hash32, TopicId};
use chorus_protocol::keys::PublicKey;
use chorus_protocol::messages::Payload;
use chorus_protocol::validation::ChannelKind;
use futures::StreamExt;
use tokio::sync::{broadcast, mpsc, oneshot, watch};

use super::handle::{Command, InferenceEvent, Query, SubmitResult};
use super::network::NetDriver;
use super::read_model::ReadModel;
use super::views::{NodeFacts, OutlierResistant};
use crate::api::types::Submission;
use crate::clock::Clock;
use crate::metrics::NodeMetrics;
use crate::roles::{RoleOutput, RoleView};
use crate::store::{Store, ops, stats};

/// Ledger snapshots are written every this many heights (and at height 1).
const LEDGER_SNAPSHOT_EVERY: u64 = 16;

pub(super) struct ActorParts {
    pub net: NetDriver,
    pub replica: Replica,
    pub store: Store,
    pub metrics: Arc<NodeMetrics>,
    pub inferences: broadcast::Sender<InferenceEvent>,
    pub ledger_events: super::handle::LedgerLog,
    pub view: watch::Sender<Arc<RoleView>>,
    pub clock: Clock,
    pub tick: Duration,
    pub wal: Vec<WalRecord>,
    pub network_name: String,
    /// The (topic, role) pairs this node runs, for `status`.
    pub configured: Vec<(u64, &'static str)>,
    /// How long finalized history is kept.
    pub retention: crate::store::prune::Retention,
    /// When the store is compacted in the background.
    pub compaction: crate::store::stats::CompactPolicy,
}

pub(super) struct Actor {
    pub(super) p: ActorParts,
    pub(super) timers: BTreeMap<TimerId, u64>,
    pub(super) pending_persist: Vec<(WindowKey, Vec<u8>)>,
    pub(super) pending_wal: bool,
    /// What the API reads besides the replica.
    pub(super) read: ReadModel,
    pub(super) submit_waiters: Vec<(Hash32, oneshot::Sender<SubmitResult>)>,
    pub(super) dirty: bool,
    pub(super) next_store_stats: u64,
    /// Retention passes: where the last one stopped in the window table, and the height it ran at.
    pub(super) prune: super::prune::PruneState,
}

impl Actor {
    pub(super) fn new(p: ActorParts) -> Self {
        let now = p.clock.now_ms();
        Actor {
            timers: BTreeMap::new(),
            pending_persist: vec![],
            pending_wal: false,
            read: ReadModel::new(now).with_configured(p.configured.clone()),
            submit_waiters: vec![],
            dirty: false,
            next_store_stats: now,
            prune: super::prune::PruneState::new(p.compaction, now),
            p,
        }
    }

    pub(super) fn now(&self) -> u64 {
        self.p.clock.now_ms()
    }

    pub(super) async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        mut roles: mpsc::Receiver<RoleOutput>,
        first: Vec<Effect>,
    ) {
        self.subscribe_channels();
        self.p.net.redial(self.now());
        self.carry_out(first).await;
        self.publish_view();
        let mut tick = tokio::time::interval(self.p.tick);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // On a stepped clock every step is also a tick: what became due runs at once.
        let mut steps = self.p.clock.clone();
        loop {
            let next_timer = self.timers.values().min().copied();
            let timer_sleep = async {
                match next_timer {
                    Some(at) => self.p.clock.sleep_until(at).await,
                    None => futures::future::pending().await,
                }
            };
            tokio::select! {
                _ = tick.tick() => self.handle_tick().await,
                _ = steps.moved() => self.handle_tick().await,
                _ = timer_sleep => self.handle_timers().await,
                cmd = commands.recv() => match cmd {
                    Some(Command::Shutdown(done)) => {
                        self.flush().await;
                        let _ = done.send(());
                        return;
                    }
                    Some(c) => self.handle_command(c).await,
                    None => {
                        self.flush().await;
                        return;
                    }
                },
                Some(out) = roles.recv() => self.handle_role(out).await,
                ev = self.p.net.swarm.select_next_some() => {
                    if let Some(input) = self.p.net.on_event(ev, self.now()) {
                        self.input(input).await;
                    }
                }
            }
        }
    }

    fn subscribe_channels(&mut self) {
        let mut kinds = vec![ChannelKind::Ledger, ChannelKind::Consensus];
        for id in self.p.replica.ledger().topics.keys() {
            kinds.push(ChannelKind::Workers(*id));
            kinds.push(ChannelKind::Reputers(*id));
        }
        self.p.net.subscribe(kinds);
    }

    fn publish_view(&mut self) {
        let ledger = self.p.replica.ledger();
        let mut v = RoleView {
            max_clock_skew_ms: ledger.params.max_clock_skew_ms,
            ..RoleView::default()
        };
        for (id, t) in &ledger.topics {
            v.topics.insert(*id, t.spec.clone());
            v.workers.insert(*id, t.workers.clone());
            v.reputers.insert(*id, t.reputers.clone());
            for (e, rec) in &t.mechanism.pending {
                if let Some(b) = &rec.bundle {
                    v.pending.insert((*id, *e), Arc::new(b.clone()));
                    if let Some(w) = self.p.replica.reputer_window(*id, *e) {
                        v.reputer_windows.insert((*id, *e), w);
                    }
                }
            }
        }
        self.p.view.send_replace(Arc::new(v));
    }

    pub(super) async fn input(&mut self, input: Input) {
        let now = self.now();
        let effects = self.p.replica.handle(input, now);
        self.carry_out(effects).await;
    }

    async fn handle_tick(&mut self) {
        self.input(Input::Tick).await;
        self.write_behind().await;
        let now = self.now();
        self.p.net.graylist(now);
        self.p.net.redial(now);
        if now >= self.next_store_stats {
            self.next_store_stats = now + 10_000;
            let path = self.p.store.path().to_owned();
            let stats = self
                .p
                .store
                .call(move |db| {
                    let disk = std::fs::metadata(&path).map(|m| stats::disk_bytes(&m));
                    Ok((ops::stats(db)?, disk))
                })
                .await;
            if let Ok((st, Ok(file_bytes))) = stats {
                self.p
                    .metrics
                    .set_store_size(file_bytes, st.envelope_bytes, st.envelopes);
            }
        }
        self.p.metrics.set_connected_peers(self.p.net.peer_count());
        self.p
            .metrics
            .clock_offset(self.p.replica.clock_offset_ms().unwrap_or(0));
        self.prune_pass().await;
        self.compact_pass();
    }

    async fn handle_timers(&mut self) {
        let now = self.now();
        let due: Vec<TimerId> = self
            .timers
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            self.timers.remove(&id);
            self.input(Input::Timer(id)).await;
        }
    }

    /// Queue pending envelope writes (not yet durable: they become durable with the next
    /// durable commit; peers' envelopes can be fetched again after a crash).
    async fn write_behind(&mut self) {
        let statements = self.read.take_pending_statements();
        if !statements.is_empty() {
            let _ = self
                .p
                .store
                .enqueue("statements", move |db| ops::put_statements(db, &statements))
                .await;
        }
        let sets = self.read.take_pending_validator_sets();
        if !sets.is_empty() {
            let _ = self
                .p
                .store
                .enqueue("validator sets", move |db| {
                    sets.iter()
                        .try_for_each(|(h, b)| ops::put_validator_set(db, *h, b))
                })
                .await;
        }
        let items = self.read.take_pending_inferences();
        if !items.is_empty() {
            let _ = self
                .p
                .store
                .enqueue("inferences", move |db| ops::put_inferences(db, &items))
                .await;
        }
        if !self.pending_persist.is_empty() {
            let items = std::mem::take(&mut self.pending_persist);
            let _ = self
                .p
                .store
                .enqueue("envelopes", move |db| ops::put_envelopes(db, &items, false))
                .await;
        }
    }

    /// Make every pending write and the WAL durable, then answer waiting submissions. Called
    /// before anything this node signs leaves it.
    async fn flush(&mut self) {
        let items = std::mem::take(&mut self.pending_persist);
        let wal = std::mem::take(&mut self.pending_wal).then(|| {
            self.p
                .wal
                .iter()
                .map(WalRecord::to_bytes)
                .collect::<Vec<_>>()
        });
        if items.is_empty() && wal.is_none() && self.submit_waiters.is_empty() && !self.dirty {
            return;
        }
        self.dirty = false;
        let result = self
            .p
            .store
            .call(move |db| {
                if let Some(records) = wal {
                    ops::wal_replace(db, &records)?;
                }
                // A durable commit also makes every earlier non-durable one durable.
                ops::put_envelopes(db, &items, true)
            })
            .await;
        if let Err(e) = &result {
            tracing::error!(error = %e, "durable write failed");
        }
        for (id, tx) in std::mem::take(&mut self.submit_waiters) {
            let _ = tx.send(SubmitResult {
                id,
                accepted: result.is_ok(),
                reason: result.as_ref().err().map(|e| e.to_string()),
            });
        }
    }

    pub(super) async fn carry_out(&mut self, effects: Vec<Effect>) {
        for e in effects {
            self.effect(e).await;
        }
    }

    async fn effect(&mut self, e: Effect) {
        match e {
            Effect::Report {
                id,
                from,
                outcome,
                reason,
                channel,
            } => self.p.net.report(id, &from, outcome, reason, channel),
            Effect::Broadcast { channel, bytes } => {
                // Nothing we sign leaves before what precedes it is durable.
                self.flush().await;
                self.p.net.publish(channel, bytes);
            }
            Effect::Request { id, to, request } => {
                if matches!(request, Request::Consensus(_)) {
                    self.flush().await;
                }
                if let Some(failed) = self.p.net.send_request(id, &to, request) {
                    Box::pin(self.input(failed)).await;
                }
            }
            Effect::Respond { id, response } => self.p.net.respond(id, response),
            Effect::Serve { id, query } => {
                let response = self.serve(query).await;
                self.p.net.respond(id, response);
            }
            Effect::ServeCatchUp { peer, height } => self.serve_catch_up(peer, height).await,
            Effect::Penalize { peer, offence } => {
                let now = self.now();
                self.p.net.penalize(&peer, &offence, now)
            }
            Effect::Event(ev) => self.event(ev),
            other => self.persist_effect(other).await,
        }
    }

    /// Storage and timer effects.
    async fn persist_effect(&mut self, e: Effect) {
        match e {
            Effect::Persist(items) => {
                for (key, _) in &items {
                    if let WindowKey::Topic {
                        topic,
                        phase: Phase::Workers,
                        ..
                    } = key
                    {
                        self.p.metrics.inference_received(*topic);
                    }
                }
                self.pending_persist.extend(items);
                self.dirty = true;
            }
            Effect::WalAppend(r) => {
                self.p.wal.push(r);
                self.pending_wal = true;
            }
            Effect::WalTruncate { keep_from_height } => {
                self.p.wal.retain(|r| r.height >= keep_from_height);
                self.pending_wal = true;
            }
            Effect::PersistDecided(d) => {
                let height = d.height();
                let bytes = codec::encode(&d);
                let _ = self
                    .p
                    .store
                    .enqueue("certificate", move |db| {
                        ops::put_certificate(db, height, &bytes)
                    })
                    .await;
            }
            Effect::PersistHeads(lists) => {
                let _ = self
                    .p
                    .store
                    .enqueue("heads", move |db| ops::put_heads(db, &lists))
                    .await;
            }
            // A snapshot every few heights: decided checkpoints after it re-apply at restart.
            Effect::PersistLedger { height, bytes }
                if height % LEDGER_SNAPSHOT_EVERY == 0 || height == 1 =>
            {
                let _ = self
                    .p
                    .store
                    .enqueue("ledger", move |db| ops::put_ledger(db, height, &bytes))
                    .await;
            }
            Effect::ScheduleTimer { id, at_ms } => {
                self.timers.insert(id, at_ms);
            }
            Effect::CancelTimer(id) => {
                self.timers.remove(&id);
            }
            Effect::CancelAllTimers => self
                .timers
                .retain(|id, _| matches!(id.kind, TimerKind::CatchUp | TimerKind::Start)),
            _ => {}
        }
    }

    /// A peer's request answered from the store.
    async fn serve(&mut self, query: StoreQuery) -> Response {
        let answer = match query {
            StoreQuery::WindowEnvelopes(key) => self.envelope_page(key.id(), None).await,
            StoreQuery::WindowEnvelopesAfter { window, after } => {
                self.envelope_page(window.id(), Some(after)).await
            }
            StoreQuery::Envelopes(ids) => self
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
                .map(Response::Envelopes),
            StoreQuery::Heads(wanted) => self
                .p
                .store
                .call(move |db| {
                    let mut out = vec![];
                    for (window, root) in &wanted {
                        let list = ops::heads(db, window)?
                            .filter(|l| chorus_crdt::window::root_of(l) == *root);
                        out.push(list);
                    }
                    Ok(out)
                })
                .await
                .map(Response::Heads),
            StoreQuery::Certificates { from, max } => self
                .p
                .store
                .call(move |db| ops::certificates_page(db, from, max as usize))
                .await
                .map(|v| Response::Checkpoints(v.into_iter().map(|(_, b)| b).collect())),
            StoreQuery::State { trusted, first } => {
                let network = self.p.replica.network();
                self.p
                    .store
                    .call(move |db| super::proofs::build_state(db, network, trusted))
                    .await
                    .map(|built| super::proofs::state_answer(built, first))
            }
            StoreQuery::StatePart {
                height,
                offset,
                max,
            } => {
                self.p
                    .store
                    .call(move |db| super::proofs::state_part(db, height, offset, max))
                    .await
            }
        };
        answer.unwrap_or_else(|e| Response::Refused(e.to_string()))
    }

    /// One page of a window's stored envelopes as an answer: the last page as `Envelopes`, an
    /// earlier one as `EnvelopePage` (its asker comes back for the next).
    async fn envelope_page(
        &mut self,
        window: Hash32,
        after: Option<Hash32>,
    ) -> Result<Response, crate::store::StoreError> {
        self.p
            .store
            .call(move |db| ops::window_envelopes_page(db, &window, after, MAX_PAGE_BYTES))
            .await
            .map(|(envelopes, next)| match next {
                Some(next) => Response::EnvelopePage { envelopes, next },
                None => Response::Envelopes(envelopes),
            })
    }

    /// Send a peer that asked for an old height its decided checkpoint, from the store.
    async fn serve_catch_up(&mut self, peer: PublicKey, height: u64) {
        let bytes = self
            .p
            .store
            .call(move |db| ops::certificate(db, height))
            .await
            .ok()
            .flatten();
        let Some(d) = bytes.and_then(|b| codec::decode(&b).ok()) else {
            return;
        };
        let msg = ConsensusMessage::CatchUpResponse(d).to_bytes();
        // A reply nobody waits for: its id correlates nothing.
        let _ = self
            .p
            .net
            .send_request(RequestId(u64::MAX), &peer, Request::Consensus(msg));
    }

    fn event(&mut self, ev: ReplicaEvent) {
        let now = self.now();
        match ev {
            ReplicaEvent::LocalInference {
                topic,
                epoch,
                bundle,
            } => {
                let combined_value = bundle.combined_value;
                self.read.local_inference(topic, epoch, *bundle);
                tracing::info!(
                    topic = topic.0,
                    epoch,
                    combined_value,
                    "worker window closed: local network inference"
                );
                let _ = self.p.inferences.send(InferenceEvent {
                    topic,
                    epoch,
                    combined_value,
                    naive_value: None,
                    finalized: false,
                    checkpoint_height: None,
                    time_ms: now,
                });
            }
            ReplicaEvent::Finalized {
                height,
                events,
                bundles,
                outlier_bundles,
                next_validators,
                ..
            } => {
                // The set checkpoint `height + 1` will commit to, kept where it changes: the
                // validator-set changes an inference proof lists.
                self.read.committed_validators(height + 1, next_validators);
                let leaves = super::proofs::leaf_paths(&bundles, &outlier_bundles);
                self.p.metrics.checkpoint(height);
                tracing::info!(
                    height,
                    events = events.len(),
                    inferences = bundles.len(),
                    "checkpoint applied"
                );
                // Finality latency: from the end of the period this height finalizes.
                let period_end = self.p.replica.ledger().period_end(height.saturating_sub(1));
                self.p
                    .metrics
                    .finality_latency(Duration::from_millis(now.saturating_sub(period_end)));
                let me = self.p.replica.public_key();
                self.read.ledger_events(&me, height, &events);
                let events = Arc::new(events);
                self.p.ledger_events.publish(super::handle::LedgerRecord {
                    height,
                    events: events.clone(),
                });
                for e in events.iter() {
                    if let chorus_crdt::ledger::LedgerEvent::NetworkInference {
                        topic,
                        epoch,
                        combined,
                        naive,
                    } = e
                    {
                        // The bundle as of this height: the replica may have applied later
                        // heights in the same input (catch-up), which settle and drop it.
                        let bundle = bundles
                            .iter()
                            .find(|(t, e, _)| t == topic && e == epoch)
                            .map(|(_, _, b)| b.clone());
                        if let Some(bundle) = bundle {
                            let leaf = |v| leaves.get(&(*topic, *epoch, v)).cloned();
                            let outlier_resistant =
                                leaf(Variant::OutlierResistant).map(|leaf| OutlierResistant {
                                    bundle: outlier_bundles
                                        .iter()
                                        .find(|(t, e, _)| t == topic && e == epoch)
                                        .map(|(_, _, b)| b.clone()),
                                    leaf,
                                });
                            self.read.finalized_inference(
                                *topic,
                                *epoch,
                                height,
                                bundle,
                                leaf(Variant::Regular),
                                outlier_resistant,
                            );
                        }
                        let _ = self.p.inferences.send(InferenceEvent {
                            topic: *topic,
                            epoch: *epoch,
                            combined_value: *combined,
                            naive_value: *naive,
                            finalized: true,
                            checkpoint_height: Some(height),
                            time_ms: now,
                        });
                    }
                }
                self.subscribe_channels();
                self.publish_view();
            }
            ReplicaEvent::Submitted { id, kind, refused } => {
                let _ = id;
                let s = submission(None, None, kind, refused, now);
                self.read.submission((0, kind), s);
            }
            ReplicaEvent::Fault(f) => {
                tracing::error!(fault = %f, "replica fault");
            }
            ReplicaEvent::Stalled { height, reason } => {
                tracing::error!(
                    height,
                    %reason,
                    "STALLED: this node cannot apply a checkpoint the network decided; it \
                     applies nothing more (restore a backup of the data directory, or move it \
                     away and resync from peers)"
                );
                self.p.metrics.stalled(height);
            }
            ReplicaEvent::ClockOff {
                height,
                round,
                offset_ms,
            } => {
                tracing::warn!(
                    height,
                    round,
                    offset_ms,
                    "this node's clock is off from its peers' by more than the network allows:                      passing up the turn to propose (check the host's time synchronisation)"
                );
                self.p.metrics.proposal_passed();
            }
            ReplicaEvent::Reconciling { windows, peers } => {
                tracing::info!(windows, peers, "late proposal: reconciling closed windows");
            }
        }
    }

    async fn handle_role(&mut self, out: RoleOutput) {
        match out {
            RoleOutput::Publish(payload) => {
                let payload = *payload;
                let (topic, epoch) = match &payload {
                    Payload::ReputerBundle(b) => (Some(b.topic.0), Some(b.epoch)),
                    p => p
                        .worker_epoch()
                        .map_or((None, None), |(t, e)| (Some(t.0), Some(e))),
                };
                let kind = payload.kind_name();
                let now = self.now();
                let effects = self.p.replica.handle(Input::Publish(payload), now);
                let refused = effects.iter().find_map(|e| match e {
                    Effect::Event(ReplicaEvent::Submitted { refused, .. }) => Some(refused.clone()),
                    _ => None,
                });
                self.carry_out(effects).await;
                let refused = refused.flatten();
                match &refused {
                    None => {
                        tracing::info!(?topic, ?epoch, kind, "submission published");
                        if let Some(t) = topic {
                            match kind {
                                "worker_bundle" | "worker_reveal" => {
                                    self.p.metrics.inference_published(TopicId(t))
                                }
                                "reputer_bundle" => self.p.metrics.losses_published(TopicId(t)),
                                _ => {}
                            }
                        }
                    }
                    Some(reason) => {
                        tracing::info!(?topic, ?epoch, kind, %reason, "submission refused")
                    }
                }
                let s = submission(topic, epoch, kind, refused, now);
                self.read.submission((topic.unwrap_or(0), kind), s);
            }
            RoleOutput::Skipped {
                topic,
                epoch,
                kind,
                reason,
            } => {
                let reason = Some(format!("skipped: {reason}"));
                let s = submission(Some(topic.0), Some(epoch), kind, reason, self.now());
                self.read.submission((topic.0, kind), s);
            }
        }
    }

    async fn handle_command(&mut self, c: Command) {
        match c {
            Command::Query(q, reply) => {
                let answer = match (self.read.needs_store(&q), q) {
                    // A long scan must not hold up gossip and consensus: answered by its own
                    // task from the store.
                    (_, Query::Statements(sq)) => {
                        let store = self.p.store.clone();
                        tokio::spawn(async move {
                            let _ = reply.send(ReadModel::stored_statements(&store, sq).await);
                        });
                        return;
                    }
                    (
                        _,
                        Query::InferenceProof {
                            topic,
                            epoch,
                            trusted,
                            variant,
                        },
                    ) => {
                        let (replica, store) = (&self.p.replica, &self.p.store);
                        self.read
                            .stored_proof(replica, store, (topic, epoch, trusted, variant))
                            .await
                    }
                    (Some(key), _) => {
                        let (replica, store) = (&self.p.replica, &self.p.store);
                        ReadModel::stored_inference(replica, store, key).await
                    }
                    (None, q) => {
                        let now = self.now();
                        let net = &self.p.net;
                        let facts = || NodeFacts {
                            network: self.p.network_name.clone(),
                            peer_id: net.swarm.local_peer_id().to_string(),
                            peers: net.peer_count(),
                            listen: net.listen().iter().map(|a| a.to_string()).collect(),
                        };
                        self.read.answer(&self.p.replica, facts, q, now)
                    }
                };
                let _ = reply.send(answer);
            }
            Command::Submit(bytes, reply) => {
                let id = Hash32::of(&bytes);
                self.read.submitted_envelope(&bytes);
                let now = self.now();
                let effects = self.p.replica.handle(Input::PublishSigned(bytes), now);
                let refused = effects.iter().find_map(|e| match e {
                    Effect::Event(ReplicaEvent::Submitted { refused, .. }) => Some(refused.clone()),
                    _ => None,
                });
                self.carry_out(effects).await;
                match refused.flatten() {
                    None => {
                        self.submit_waiters.push((id, reply));
                        self.flush().await;
                    }
                    Some(reason) => {
                        let _ = reply.send(SubmitResult {
                            id,
                            accepted: false,
                            reason: Some(reason),
                        });
                    }
                }
            }
            Command::Shutdown(done) => {
                self.flush().await;
                let _ = done.send(());
            }
        }
    }
}

/// One submission as `status` shows it.
fn submission(
    topic: Option<u64>,
    epoch: Option<u64>,
    kind: &'static str,
    refused: Option<String>,
    time_ms: u64,
) -> Submission {
    Submission {
        topic,
        epoch,
        kind: kind.into(),
        accepted: refused.is_none(),
        reason: refused,
        time_ms,
    }
}
