//! Entries arriving: gossip, our own publications, fetched windows; local inferences at
//! window close.

use chorus_protocol::envelope::Envelope;
use chorus_protocol::ids::Hash32;
use chorus_protocol::math::synth_io::SynthJsonOutput;
use chorus_protocol::math::synthesis::{SynthesisInput, SynthesisParams, synthesize_combined};
use chorus_protocol::messages::{Evidence, EvidenceKind, Payload, PayloadClass};
use chorus_protocol::validation::{Channel, ChannelKind, IgnoreReason, Slot, Verdict, validate};

use super::{Effect, Outcome, PeerKey, Replica, ReplicaEvent};
use crate::window::{Insert, Phase, Window, WindowKey, entry_from_parts};

/// The gossip channel of a payload.
pub fn channel_of(payload: &Payload) -> ChannelKind {
    match payload {
        Payload::WorkerBundle(b) => ChannelKind::Workers(b.topic),
        Payload::ReputerBundle(b) => ChannelKind::Reputers(b.topic),
        _ => ChannelKind::Ledger,
    }
}

impl Replica {
    /// The window an accepted payload joins, or `None` if that window is already finalized.
    fn window_for(&self, payload: &Payload, now_ms: u64) -> Option<WindowKey> {
        let key = WindowKey::of(payload, self.ledger.period_at(now_ms));
        match key {
            WindowKey::Topic {
                topic,
                epoch,
                phase,
            } => {
                let t = self.ledger.topics.get(&topic)?;
                let next = match phase {
                    Phase::Workers => t.next_worker_epoch,
                    Phase::Reputers => t.next_reputer_epoch,
                };
                (epoch >= next).then_some(key)
            }
            // Ledger messages join the current period, or the first one not yet finalized.
            WindowKey::Ledger { period } => Some(WindowKey::Ledger {
                period: period.max(self.ledger.next_height),
            }),
        }
    }

    /// Add a verified envelope to its window; index its slot. Returns what the window did.
    pub(super) fn add_entry(
        &mut self,
        key: WindowKey,
        envelope: Envelope,
        payload: Payload,
    ) -> Option<Insert> {
        let bytes = envelope.to_bytes();
        self.add_entry_bytes(key, envelope, bytes, payload)
    }

    /// [`Replica::add_entry`] with the envelope's canonical bytes at hand.
    pub(super) fn add_entry_bytes(
        &mut self,
        key: WindowKey,
        envelope: Envelope,
        bytes: Vec<u8>,
        payload: Payload,
    ) -> Option<Insert> {
        let slot = Slot::of(envelope.signer, &payload);
        let id = Hash32::of(&bytes);
        let network = self.network;
        let w = self
            .windows
            .entry(key)
            .or_insert_with(|| Window::new(key, network));
        let entry = entry_from_parts(&key, envelope, bytes, payload).ok()?;
        let result = w.insert(entry);
        if result == Insert::New {
            self.slots.entry(slot).or_insert(id);
        }
        Some(result)
    }

    pub(super) fn restore_envelope(&mut self, key: WindowKey, bytes: &[u8]) {
        let Ok(env) = Envelope::from_bytes(bytes) else {
            return;
        };
        let Ok(payload) = env.payload_unverified() else {
            return;
        };
        self.add_entry_bytes(key, env, bytes.to_vec(), payload);
    }

    pub(super) fn gossip(
        &mut self,
        channel: ChannelKind,
        bytes: &[u8],
        from: PeerKey,
        now_ms: u64,
        out: &mut Vec<Effect>,
    ) {
        let id = Hash32::of(bytes);
        let kind = channel;
        let channel = Channel {
            network: self.network,
            kind: channel,
        };
        let (outcome, reason) = match validate(bytes, &channel, now_ms, &*self) {
            Verdict::Accept(a) => {
                let Some(key) = self.window_for(&a.payload, now_ms) else {
                    out.push(Effect::Report {
                        id,
                        from,
                        outcome: Outcome::Ignore,
                        reason: "window_finalized",
                        channel: kind,
                    });
                    return;
                };
                if let Payload::Evidence(ev) = &a.payload {
                    self.learn_conflict(ev, now_ms, out);
                }
                self.add_entry_bytes(key, a.envelope, bytes.to_vec(), a.payload);
                out.push(Effect::Persist(vec![(key, bytes.to_vec())]));
                (Outcome::Accept, "")
            }
            Verdict::Ignore(IgnoreReason::Equivocation, Some(second)) => {
                self.equivocation(*second, bytes, now_ms, out);
                (Outcome::Ignore, IgnoreReason::Equivocation.as_str())
            }
            Verdict::Ignore(r, _) => (Outcome::Ignore, r.as_str()),
            Verdict::Reject(r) => (Outcome::Reject, r.as_str()),
        };
        out.push(Effect::Report {
            id,
            from,
            outcome,
            reason,
            channel: kind,
        });
    }

    /// A second, validly signed message for a held slot: keep it (a visible conflict that
    /// excludes its author from the window) and report the evidence.
    fn equivocation(&mut self, second: Envelope, bytes: &[u8], now_ms: u64, out: &mut Vec<Effect>) {
        let Ok(payload) = second.payload_unverified() else {
            return;
        };
        if matches!(payload, Payload::Evidence(_)) {
            return;
        }
        let Some(key) = self.window_for(&payload, now_ms) else {
            return;
        };
        if self.add_entry(key, second.clone(), payload.clone()) == Some(Insert::Conflict) {
            out.push(Effect::Persist(vec![(key, bytes.to_vec())]));
            self.report_conflict(key, &second, &payload, now_ms, out);
        }
    }

    /// A window now holds two different messages of one author for one slot: publish the
    /// evidence (once per slot; every peer may report it, the ledger acts on it once).
    pub(super) fn report_conflict(
        &mut self,
        key: WindowKey,
        second: &Envelope,
        payload: &Payload,
        now_ms: u64,
        out: &mut Vec<Effect>,
    ) {
        let slot = Slot::of(second.signer, payload);
        if !self.reported_conflicts.insert(slot) {
            return;
        }
        let second_bytes = second.to_bytes();
        let first = self.windows.get(&key).and_then(|w| {
            w.entries()
                .find(|e| {
                    Slot::of(e.envelope.signer, &e.payload) == slot
                        && e.envelope_bytes != second_bytes
                })
                .map(|e| e.envelope_bytes.clone())
        });
        let kind = match payload.class() {
            PayloadClass::Worker => EvidenceKind::WorkerBundle,
            PayloadClass::Reputer => EvidenceKind::ReputerBundle,
            PayloadClass::Ledger => EvidenceKind::LedgerNonce,
        };
        if let Some(first) = first {
            self.publish(
                Payload::Evidence(Evidence {
                    kind,
                    first,
                    second: second_bytes,
                }),
                now_ms,
                out,
            );
        }
    }

    /// Evidence of a worker's or reputer's two bundles: put both into their window while it is
    /// open, so the conflict (and the exclusion of its author) is visible here before the
    /// window is finalized, even if gossip only brought us one of them.
    fn learn_conflict(&mut self, ev: &Evidence, now_ms: u64, out: &mut Vec<Effect>) {
        if !matches!(
            ev.kind,
            EvidenceKind::WorkerBundle | EvidenceKind::ReputerBundle
        ) {
            return;
        }
        let mut persist = vec![];
        for bytes in [&ev.first, &ev.second] {
            let Ok(env) = Envelope::from_bytes(bytes) else {
                continue;
            };
            let Ok(payload) = env.open(&self.network) else {
                continue;
            };
            if payload.class() == PayloadClass::Ledger {
                continue;
            }
            if let Some(key) = self.window_for(&payload, now_ms)
                && matches!(
                    self.add_entry(key, env, payload),
                    Some(Insert::New | Insert::Conflict)
                )
            {
                persist.push((key, bytes.clone()));
            }
        }
        if !persist.is_empty() {
            out.push(Effect::Persist(persist));
        }
    }

    pub(super) fn publish(&mut self, payload: Payload, now_ms: u64, out: &mut Vec<Effect>) {
        let env = Envelope::seal(&self.key, &self.network, &payload);
        self.publish_signed(env.to_bytes(), now_ms, out);
    }

    pub(super) fn publish_signed(&mut self, bytes: Vec<u8>, now_ms: u64, out: &mut Vec<Effect>) {
        let id = Hash32::of(&bytes);
        let Ok(env) = Envelope::from_bytes(&bytes) else {
            out.push(Effect::Event(ReplicaEvent::Submitted {
                id,
                kind: "unknown",
                refused: Some("not an envelope".into()),
            }));
            return;
        };
        let kind_payload = env.payload_unverified();
        let channel = match &kind_payload {
            Ok(p) => channel_of(p),
            Err(_) => ChannelKind::Ledger,
        };
        let kind = kind_payload
            .as_ref()
            .map(Payload::kind_name)
            .unwrap_or("unknown");
        let verdict = validate(
            &bytes,
            &Channel {
                network: self.network,
                kind: channel,
            },
            now_ms,
            &*self,
        );
        let refused = match verdict {
            Verdict::Accept(a) => match self.window_for(&a.payload, now_ms) {
                Some(key) => {
                    self.add_entry(key, a.envelope, a.payload);
                    out.push(Effect::Persist(vec![(key, bytes.clone())]));
                    out.push(Effect::Broadcast { channel, bytes });
                    None
                }
                None => Some("its window is already finalized".to_string()),
            },
            Verdict::Ignore(r, _) => Some(format!("ignored: {r}")),
            Verdict::Reject(r) => Some(format!("rejected: {r}")),
        };
        out.push(Effect::Event(ReplicaEvent::Submitted { id, kind, refused }));
    }

    pub(super) fn window_entries(
        &mut self,
        window: WindowKey,
        envelopes: Vec<Vec<u8>>,
        from: PeerKey,
        now_ms: u64,
        out: &mut Vec<Effect>,
    ) {
        self.fetching.remove(&window);
        let finalized = match window {
            WindowKey::Topic {
                topic,
                epoch,
                phase,
            } => self.ledger.topics.get(&topic).is_none_or(|t| match phase {
                Phase::Workers => epoch < t.next_worker_epoch,
                Phase::Reputers => epoch < t.next_reputer_epoch,
            }),
            WindowKey::Ledger { period } => period < self.ledger.next_height,
        };
        if finalized {
            return;
        }
        let mut persist = vec![];
        let mut conflicts = vec![];
        let mut bad = 0usize;
        for bytes in envelopes {
            let ok = Envelope::from_bytes(&bytes)
                .ok()
                .and_then(|env| env.open(&self.network).ok().map(|p| (env, p)))
                .filter(|(_, p)| window.accepts(p));
            match ok {
                Some((env, payload)) => {
                    match self.add_entry(window, env.clone(), payload.clone()) {
                        Some(Insert::New) => persist.push((window, bytes)),
                        Some(Insert::Conflict) => {
                            persist.push((window, bytes));
                            conflicts.push((env, payload));
                        }
                        _ => {}
                    }
                }
                None => bad += 1,
            }
        }
        if bad > 0 {
            out.push(Effect::Penalize {
                peer: from,
                reason: format!("{bad} invalid envelope(s) in a window response"),
            });
        }
        if !persist.is_empty() {
            out.push(Effect::Persist(persist));
        }
        for (env, payload) in conflicts {
            self.report_conflict(window, &env, &payload, now_ms, out);
        }
        if let Some(w) = self.windows.get_mut(&window) {
            w.flush();
        }
        self.retry_validations(now_ms, out);
        self.apply_decided_queue(now_ms, out);
    }

    /// Compute this replica's own network inference for every worker window that closed.
    pub(super) fn local_inferences(&mut self, now_ms: u64, out: &mut Vec<Effect>) {
        let skew = self.ledger.params.max_clock_skew_ms;
        let topics: Vec<_> = self.ledger.topics.keys().copied().collect();
        for topic in topics {
            let Some(t) = self.ledger.topics.get(&topic) else {
                continue;
            };
            let Some(current) = t.spec.epoch_at(now_ms) else {
                continue;
            };
            let from = self
                .inferred
                .get(&topic)
                .map(|e| e + 1)
                .unwrap_or(t.next_worker_epoch)
                .max(t.next_worker_epoch);
            let mut done = None;
            for epoch in from..=current {
                if t.spec.worker_window(epoch).1.saturating_add(skew) > now_ms {
                    break;
                }
                done = Some(epoch);
                let key = WindowKey::Topic {
                    topic,
                    epoch,
                    phase: Phase::Workers,
                };
                let Some(w) = self.windows.get(&key) else {
                    continue;
                };
                let heads = w.heads();
                let Ok(entries) = w.effective_entries(&heads) else {
                    continue;
                };
                let mut input = SynthesisInput {
                    params: SynthesisParams {
                        p_norm: t.spec.p_norm,
                        c_norm: self.ledger.params.c_norm,
                        epsilon: t.spec.epsilon,
                        epsilon_safe_div: self.ledger.params.epsilon_safe_div,
                    },
                    initial_regret: t.mechanism.initial_regret,
                    previous_network_loss: t.mechanism.previous_network_loss,
                    inferences: Default::default(),
                    forecasts: Default::default(),
                    regrets: t.mechanism.regrets.clone(),
                };
                for e in &entries {
                    if !t.workers.contains(&e.envelope.signer) {
                        continue;
                    }
                    if let Payload::WorkerBundle(b) = &e.payload {
                        let k = e.envelope.signer.to_hex();
                        if let Some(v) = b.inference {
                            input.inferences.insert(k.clone(), v);
                        }
                        if !b.forecasts.is_empty() {
                            input.forecasts.insert(
                                k,
                                b.forecasts
                                    .iter()
                                    .map(|f| (f.inferer.to_hex(), f.value))
                                    .collect(),
                            );
                        }
                    }
                }
                for m in input.forecasts.values_mut() {
                    m.retain(|j, _| input.inferences.contains_key(j));
                }
                input.forecasts.retain(|_, m| !m.is_empty());
                if input.inferences.is_empty() {
                    continue;
                }
                if let Ok(c) = synthesize_combined(&input) {
                    out.push(Effect::Event(ReplicaEvent::LocalInference {
                        topic,
                        epoch,
                        combined: c.combined_value,
                        inferers: input.inferences.len(),
                    }));
                    let summary = SynthJsonOutput {
                        combined_value: c.combined_value,
                        confidence_interval_values: None,
                        forecaster_values: c.forecaster_values,
                        forecaster_weights: c.forecaster_weights,
                        inferer_values: input.inferences.clone(),
                        inferer_weights: c.inferer_weights,
                        naive_value: None,
                        one_in_forecaster_values: Default::default(),
                        one_out_forecaster_values: Default::default(),
                        one_out_inferer_forecaster_values: Default::default(),
                        one_out_inferer_values: Default::default(),
                    };
                    self.local_inference.insert(topic, (epoch, summary));
                }
            }
            if let Some(e) = done {
                self.inferred.insert(topic, e);
            }
        }
    }
}
