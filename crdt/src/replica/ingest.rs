//! Entries arriving: gossip, our own publications, evidence, fetched windows (each through
//! the one admission function); local inferences at window close.

use chorus_protocol::envelope::Envelope;
use chorus_protocol::ids::Hash32;
use chorus_protocol::inference::NetworkInference;
use chorus_protocol::math::synthesis::synthesize_combined;
use chorus_protocol::messages::{Evidence, EvidenceKind, Payload};
use chorus_protocol::validation::{self, ChannelKind, IgnoreReason, RejectReason};

use super::admission::{Admitted, PersistBatch, Refusal, Route};
use super::{Effect, Offence, Outcome, PeerKey, Replica, ReplicaEvent};
use crate::ledger::SignedEntry;
use crate::window::{Insert, Phase, WindowKey, entry_from_parts};

/// The gossip channel of a payload.
pub fn channel_of(payload: &Payload) -> ChannelKind {
    if let Some((topic, _)) = payload.worker_epoch() {
        return ChannelKind::Workers(topic);
    }
    match payload {
        Payload::ReputerBundle(b) => ChannelKind::Reputers(b.topic),
        _ => ChannelKind::Ledger,
    }
}

impl Replica {
    /// An envelope from our own store (admitted before it was persisted): back into its
    /// window without checks.
    pub(super) fn restore_envelope(&mut self, key: WindowKey, bytes: &[u8]) {
        let Ok(envelope) = Envelope::from_bytes(bytes) else {
            return;
        };
        let Ok(payload) = envelope.payload_unverified() else {
            return;
        };
        if let Ok(entry) = entry_from_parts(&key, envelope, bytes.to_vec(), payload) {
            self.insert(Admitted { key, entry });
        }
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
        let (outcome, reason) = match self.admit_live(channel, bytes, now_ms, out) {
            Ok(Insert::New) => (Outcome::Accept, ""),
            Ok(Insert::Conflict) => (Outcome::Ignore, IgnoreReason::Equivocation.as_str()),
            Ok(Insert::Duplicate) => (Outcome::Ignore, IgnoreReason::Duplicate.as_str()),
            Err(Refusal::Ignore(r)) => (Outcome::Ignore, r.as_str()),
            Err(Refusal::Reject(r)) => (Outcome::Reject, r.as_str()),
        };
        out.push(Effect::Report {
            id,
            from,
            outcome,
            reason,
            channel,
        });
    }

    /// Admit an envelope by the live route (gossip or a publication): it must be on its
    /// channel; evidence teaches its window the conflict it proves.
    fn admit_live(
        &mut self,
        channel: ChannelKind,
        bytes: &[u8],
        now_ms: u64,
        out: &mut Vec<Effect>,
    ) -> Result<Insert, Refusal> {
        let (_, payload) = validation::decode(bytes).map_err(Refusal::Reject)?;
        if !validation::channel_carries(channel, &payload) {
            return Err(Refusal::Reject(RejectReason::WrongChannel));
        }
        let mut persist = vec![];
        let result = self.admit(bytes, Route::Live, now_ms, &mut persist, out);
        if let (Ok((_, Insert::New)), Payload::Evidence(ev)) = (&result, &payload) {
            self.learn_conflict(ev, now_ms, &mut persist, out);
        }
        if !persist.is_empty() {
            out.push(Effect::Persist(persist));
        }
        result.map(|(_, insert)| insert)
    }

    /// Evidence of a worker's or reputer's two bundles: both join their window while it is
    /// live, so the conflict (and the exclusion of its author) is visible here before the
    /// window is finalized, even if gossip only brought us one of them.
    fn learn_conflict(
        &mut self,
        ev: &Evidence,
        now_ms: u64,
        persist: &mut PersistBatch,
        out: &mut Vec<Effect>,
    ) {
        if !matches!(
            ev.kind,
            EvidenceKind::WorkerBundle | EvidenceKind::ReputerBundle
        ) {
            return;
        }
        for bytes in [&ev.first, &ev.second] {
            let _ = self.admit(bytes, Route::Evidence, now_ms, persist, out);
        }
    }

    pub(super) fn publish(&mut self, payload: Payload, now_ms: u64, out: &mut Vec<Effect>) {
        let env = Envelope::seal(&self.key, &self.network, &payload);
        self.publish_signed(env.to_bytes(), now_ms, out);
    }

    pub(super) fn publish_signed(&mut self, bytes: Vec<u8>, now_ms: u64, out: &mut Vec<Effect>) {
        let id = Hash32::of(&bytes);
        let payload = Envelope::from_bytes(&bytes).and_then(|e| e.payload_unverified());
        let kind = payload
            .as_ref()
            .map(Payload::kind_name)
            .unwrap_or("unknown");
        let refused = match payload {
            Err(_) => Some("not an envelope".to_string()),
            Ok(p) => {
                let channel = channel_of(&p);
                match self.admit_live(channel, &bytes, now_ms, out) {
                    Ok(Insert::New) => {
                        out.push(Effect::Broadcast { channel, bytes });
                        None
                    }
                    Ok(Insert::Conflict) => Some("ignored: equivocation".to_string()),
                    Ok(Insert::Duplicate) => Some("ignored: duplicate".to_string()),
                    Err(Refusal::Ignore(IgnoreReason::WindowFinalized)) => {
                        Some("its window is already finalized".to_string())
                    }
                    Err(Refusal::Ignore(r)) => Some(format!("ignored: {r}")),
                    Err(Refusal::Reject(r)) => Some(format!("rejected: {r}")),
                }
            }
        };
        out.push(Effect::Event(ReplicaEvent::Submitted { id, kind, refused }));
    }

    /// Envelopes of `window` fetched from a peer: each admitted as if synced; the peer is
    /// penalised for every one provably invalid.
    pub(super) fn window_entries(
        &mut self,
        window: WindowKey,
        envelopes: Vec<Vec<u8>>,
        from: PeerKey,
        now_ms: u64,
        out: &mut Vec<Effect>,
    ) {
        let mut persist = vec![];
        let mut rejected = None;
        let mut bad = 0usize;
        for bytes in envelopes {
            if let Err(Refusal::Reject(r)) =
                self.admit(&bytes, Route::Fetched(window), now_ms, &mut persist, out)
            {
                bad += 1;
                rejected.get_or_insert(r);
            }
        }
        if let Some(reason) = rejected {
            out.push(Effect::Penalize {
                peer: from,
                offence: Offence::InvalidEntries { count: bad, reason },
            });
        }
        if !persist.is_empty() {
            out.push(Effect::Persist(persist));
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
                let entries: Vec<SignedEntry> = entries
                    .into_iter()
                    .map(|e| SignedEntry {
                        author: e.envelope.signer,
                        id: e.message_id(),
                        payload: e.payload.clone(),
                    })
                    .collect();
                // The settlement's own choice of workers, with who could pay the fee now.
                let Some(counted) = self.ledger.counted_workers(topic, epoch, &entries) else {
                    continue;
                };
                let unpaid = counted
                    .keys
                    .iter()
                    .filter(|(_, k)| !self.ledger.can_pay_data_fee(k))
                    .map(|(h, _)| h.clone())
                    .collect();
                let Some(input) = self.ledger.epoch_synthesis_input(topic, counted, &unpaid) else {
                    continue;
                };
                if input.inferences.is_empty() {
                    continue;
                }
                let bundle = synthesize_combined(&input).ok().and_then(|c| {
                    NetworkInference::provisional(
                        c.combined_value,
                        input.inferences,
                        c.inferer_weights,
                        c.forecaster_values,
                        c.forecaster_weights,
                    )
                    .ok()
                });
                if let Some(bundle) = bundle {
                    out.push(Effect::Event(ReplicaEvent::LocalInference {
                        topic,
                        epoch,
                        bundle: Box::new(bundle),
                    }));
                }
            }
            if let Some(e) = done {
                self.inferred.insert(topic, e);
            }
        }
    }
}
