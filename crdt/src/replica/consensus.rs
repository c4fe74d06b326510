//! The replica's side of checkpoint consensus: turning engine effects into replica effects,
//! building our proposals, deciding the validity of others', and applying decided checkpoints
//! to the ledger.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use chorus_protocol::ids::{Hash32, TopicId};
use chorus_protocol::inference::NetworkInference;
use chorus_protocol::validation::ChannelKind;

use super::{
    Certified, Effect, MAX_PREPARED, Offence, Outcome, PeerKey, Replica, ReplicaError,
    ReplicaEvent, validator_set,
};
use crate::checkpoint::limits::MAX_WINDOW_ENTRIES;
use crate::checkpoint::{
    self, Checkpoint, CheckpointId, ConsensusMessage, DecidedCheckpoint, PeerId, Screen,
    ValidatorSet, WindowHead,
};
use crate::ledger::settle::EpochRecord;
use crate::ledger::{HeightInput, Ledger, LedgerEvent, SignedEntry};
use crate::proof::Finalized;
use crate::window::WindowKey;

/// Why a checkpoint's content could not be derived yet.
enum Content {
    /// Every referenced change is held: the ledger after applying it, and what it did.
    Ready(Box<Ledger>, Vec<LedgerEvent>),
    /// Some changes are missing: fetch these windows.
    Missing(Vec<WindowKey>),
    /// The lists of some windows' heads are unknown: ask for them (window id, root).
    MissingHeads(Vec<(Hash32, Hash32)>),
    /// The checkpoint names the wrong windows or cannot be applied.
    Invalid(String),
}

/// The evidence verifier for consensus votes of this network.
pub(super) struct VoteEvidence(pub(super) Hash32);

impl crate::ledger::EvidenceVerifier for VoteEvidence {
    fn offence(
        &self,
        evidence: &chorus_protocol::messages::Evidence,
    ) -> Option<(chorus_protocol::keys::PublicKey, Hash32)> {
        checkpoint::verify_vote_evidence(&self.0, evidence)
            .ok()
            .map(|e| (e.validator, e.offence_id()))
    }
}

impl Replica {
    pub(super) fn consensus_bytes(
        &mut self,
        from: PeerKey,
        bytes: &[u8],
        now_ms: u64,
        out: &mut Vec<Effect>,
    ) {
        if let Some(message) = decode_consensus(from, bytes, out) {
            self.consensus_message(from, message, now_ms, out);
        }
    }

    fn consensus_message(
        &mut self,
        from: PeerKey,
        message: ConsensusMessage,
        now_ms: u64,
        out: &mut Vec<Effect>,
    ) {
        let effects = self.engine.handle(
            checkpoint::Input::Message {
                from: PeerId(from),
                message,
            },
            now_ms,
        );
        self.engine_effects(effects, now_ms, out);
    }

    /// A consensus message from gossip: screened before it is reported (and so relayed), see
    /// [`checkpoint::Screen`]. Only the peer that sent what it should have refused is blamed.
    pub(super) fn consensus_gossip(
        &mut self,
        from: PeerKey,
        bytes: &[u8],
        now_ms: u64,
        out: &mut Vec<Effect>,
    ) {
        let report = |outcome, reason| Effect::Report {
            id: Hash32::of(bytes),
            from,
            outcome,
            reason,
            channel: ChannelKind::Consensus,
        };
        let Some(message) = decode_consensus(from, bytes, out) else {
            out.push(report(Outcome::Reject, "malformed"));
            return;
        };
        match self.engine.screen(&message) {
            Screen::Relay => {
                out.push(report(Outcome::Accept, ""));
                self.consensus_message(from, message, now_ms, out);
            }
            Screen::Hold(reason) => {
                out.push(report(Outcome::Ignore, reason));
                self.consensus_message(from, message, now_ms, out);
            }
            Screen::Refuse(offence) => {
                out.push(report(Outcome::Reject, offence.reason()));
                out.push(Effect::Penalize {
                    peer: from,
                    offence: Offence::Consensus(offence),
                });
            }
        }
    }

    pub(super) fn engine_effects(
        &mut self,
        effects: Vec<checkpoint::Effect>,
        now_ms: u64,
        out: &mut Vec<Effect>,
    ) {
        use checkpoint::Effect as E;
        // Answers that feed the engine again (a value, a verdict, the next height) wait until
        // this batch is out: their effects must follow it, or the WAL records would no longer
        // be in the order the engine processed them (and a replay after a crash diverges).
        let (mut propose, mut validate, mut apply) = (false, false, false);
        for effect in effects {
            match effect {
                E::WalAppend(r) => out.push(Effect::WalAppend(r)),
                E::WalTruncate { keep_from_height } => {
                    out.push(Effect::WalTruncate { keep_from_height })
                }
                E::Broadcast(m) => out.push(Effect::Broadcast {
                    channel: ChannelKind::Consensus,
                    bytes: m.to_bytes(),
                }),
                E::SendTo { peer, message } => {
                    self.send_consensus(peer.0, message.to_bytes(), now_ms, out)
                }
                E::ScheduleTimer { id, at_ms } => out.push(Effect::ScheduleTimer { id, at_ms }),
                E::CancelTimer(id) => out.push(Effect::CancelTimer(id)),
                E::CancelAllTimers => out.push(Effect::CancelAllTimers),
                E::NeedValue { height, round, .. } => {
                    self.need_value = Some((height, round));
                    propose = true;
                }
                E::ValidateCheckpoint {
                    height,
                    proposer,
                    checkpoint,
                    ..
                } => {
                    let id = checkpoint.id();
                    self.validations
                        .insert((height, id), (checkpoint, proposer));
                    validate = true;
                }
                E::Decided(d) => {
                    out.push(Effect::PersistDecided(d.clone()));
                    self.queue_decided(d);
                    apply = true;
                }
                E::Evidence(ev) => self.schedule_evidence(ev, now_ms, out),
                E::Misbehaviour { peer, offence } => out.push(Effect::Penalize {
                    peer: peer.0,
                    offence: Offence::Consensus(offence),
                }),
                E::CatchUpMiss { peer, height } => out.push(Effect::ServeCatchUp {
                    peer: peer.0,
                    height,
                }),
                E::Fault(f) => out.push(Effect::Event(ReplicaEvent::Fault(format!("{f:?}")))),
            }
        }
        if apply {
            self.apply_decided_queue(now_ms, out);
        }
        if propose {
            self.try_propose(now_ms, out);
        }
        if validate {
            self.retry_validations(now_ms, out);
        }
    }

    /// The windows a checkpoint of consensus height `height` must cover, by id; `None` if the
    /// ledger is not at the period before it yet.
    fn due_windows(&self, height: u64) -> Option<BTreeMap<Hash32, WindowKey>> {
        (self.ledger.next_height + 1 == height).then(|| {
            self.ledger
                .windows_due()
                .into_iter()
                .map(|k| (k.id(), k))
                .collect()
        })
    }

    /// Gather the finalized content a checkpoint names: every window due, with the entries at
    /// its heads (their list first: known, ours, or asked for by root).
    fn collect(&mut self, cp: &Checkpoint) -> Result<HeightInput, Content> {
        let Some(due) = self.due_windows(cp.height) else {
            return Err(Content::Invalid(format!(
                "ledger is at period {}, checkpoint {} needs period {}",
                self.ledger.next_height,
                cp.height,
                cp.height.saturating_sub(1)
            )));
        };
        if cp.windows.len() != due.len() || cp.windows.iter().any(|w| !due.contains_key(&w.window))
        {
            return Err(Content::Invalid(
                "the checkpoint does not name exactly the due windows".into(),
            ));
        }
        let mut unlisted = vec![];
        let mut lists = Vec::with_capacity(cp.windows.len());
        for head in &cp.windows {
            match self.head_list(due[&head.window], head) {
                Some(list) => lists.push(list),
                None => unlisted.push((head.window, head.root)),
            }
        }
        if !unlisted.is_empty() {
            return Err(Content::MissingHeads(unlisted));
        }
        let mut missing = vec![];
        let mut input = HeightInput::default();
        for (head, heads) in cp.windows.iter().zip(lists) {
            let key = due[&head.window];
            let entries = match self.windows.get(&key) {
                None if heads.is_empty() => vec![],
                None => {
                    missing.push(key);
                    continue;
                }
                Some(w) => match w.effective_entries(&heads) {
                    Err(_) => {
                        missing.push(key);
                        continue;
                    }
                    Ok(entries) => entries
                        .into_iter()
                        .map(|e| SignedEntry {
                            author: e.envelope.signer,
                            id: e.message_id(),
                            payload: e.payload.clone(),
                        })
                        .collect(),
                },
            };
            match key {
                WindowKey::Ledger { .. } => input.ledger = entries,
                WindowKey::Topic { .. } => {
                    input.windows.insert(key, entries);
                }
            }
        }
        if missing.is_empty() {
            Ok(input)
        } else {
            Err(Content::Missing(missing))
        }
    }

    /// Derive the ledger a checkpoint leads to and check its root.
    fn derive(&mut self, cp: &Checkpoint) -> Content {
        let input = match self.collect(cp) {
            Ok(i) => i,
            Err(c) => return c,
        };
        let mut next = self.ledger.clone();
        match next.apply(cp.height - 1, &input, &VoteEvidence(self.network)) {
            Ok(_) if next.root() != cp.ledger_root => {
                Content::Invalid("ledger root does not match".into())
            }
            Ok(events) => match commitments(&self.ledger, &next, &events) {
                (inferences, _) if inferences != cp.inferences => {
                    Content::Invalid("inference root does not match".into())
                }
                (_, validators) if validators != cp.validators => {
                    Content::Invalid("validator-set digest does not match".into())
                }
                _ => Content::Ready(Box::new(next), events),
            },
            Err(e) => Content::Invalid(e.to_string()),
        }
    }

    /// Build our proposal for `height` once its period has ended (plus grace).
    pub(super) fn try_propose(&mut self, now_ms: u64, out: &mut Vec<Effect>) {
        let Some((height, round)) = self.need_value else {
            return;
        };
        if height != self.engine.height() {
            self.need_value = None;
            return;
        }
        if self.clock_off() {
            // A proposal built on our clock would come early (or late) for everyone else:
            // the round passes to the next proposer.
            self.need_value = None;
            out.push(Effect::Event(ReplicaEvent::ClockOff {
                height,
                round,
                offset_ms: self.clock_offset_ms().unwrap_or(0),
            }));
            return;
        }
        let period = height - 1;
        let ready_at = self
            .ledger
            .period_end(period)
            .saturating_add(self.ledger.params.max_clock_skew_ms)
            .saturating_add(self.config.propose_grace_ms);
        if now_ms < ready_at || self.ledger.next_height != period {
            return;
        }
        let Some(due) = self.due_windows(height) else {
            return;
        };
        if self.wait_for_reconcile(height, round, ready_at, &due, now_ms, out) {
            return;
        }
        let mut windows = Vec::with_capacity(due.len());
        for (id, key) in &due {
            let mut heads = self
                .windows
                .get_mut(key)
                .map(|w| {
                    w.flush();
                    w.heads()
                })
                .unwrap_or_default();
            // A window that grew past the cap by sync finalizes its first heads by hash.
            heads.truncate(MAX_WINDOW_ENTRIES);
            windows.push(WindowHead::new(*id, &heads));
            if !heads.is_empty() && self.keep_head_list(*id, heads).is_none() {
                out.push(Effect::Event(ReplicaEvent::Fault(format!(
                    "cannot keep the heads of checkpoint {height}: over the bound"
                ))));
                return;
            }
        }
        windows.sort();
        let mut cp = Checkpoint {
            height,
            previous: self.tip,
            windows,
            ledger_root: Hash32::default(),
            inferences: Hash32::default(),
            validators: Hash32::default(),
        };
        let input = match self.collect(&cp) {
            Ok(i) => i,
            Err(_) => {
                out.push(Effect::Event(ReplicaEvent::Fault(format!(
                    "cannot gather the content of checkpoint {height}"
                ))));
                return;
            }
        };
        let mut next = self.ledger.clone();
        let events = match next.apply(period, &input, &VoteEvidence(self.network)) {
            Ok(events) => events,
            Err(e) => {
                out.push(Effect::Event(ReplicaEvent::Fault(format!(
                    "cannot build checkpoint {height}: {e}"
                ))));
                return;
            }
        };
        cp.ledger_root = next.root();
        (cp.inferences, cp.validators) = commitments(&self.ledger, &next, &events);
        self.remember(cp.id(), next, events);
        self.need_value = None;
        let effects = self.engine.handle(
            checkpoint::Input::ProposeValue {
                height,
                round,
                checkpoint: cp,
            },
            now_ms,
        );
        self.engine_effects(effects, now_ms, out);
    }

    /// A proposal made more than a propose timeout after its period was ready comes after a
    /// stall (a partition, lost validators): entries of peers we could not hear may still be
    /// missing here. Reconcile every closed window with every peer (up to a bound), and hold
    /// the proposal for a quarter of the propose timeout while the syncs complete. One such
    /// reconciliation after the network resumed deciding (see `resumed_at`) serves the later
    /// late proposals whose windows it covered, so catching up many heights holds once, not
    /// at every height. True while holding.
    fn wait_for_reconcile(
        &mut self,
        height: u64,
        round: u32,
        ready_at: u64,
        due: &BTreeMap<Hash32, WindowKey>,
        now_ms: u64,
        out: &mut Vec<Effect>,
    ) -> bool {
        let propose_ms = self.config.timeouts.propose_ms;
        if now_ms <= ready_at.saturating_add(propose_ms) {
            return false;
        }
        if let Some(last) = &self.last_reconcile {
            if last.height == height && last.round == round {
                return now_ms < last.at_ms.saturating_add(propose_ms / 4);
            }
            if self.resumed_at.is_some_and(|resumed| last.at_ms >= resumed)
                && due.values().all(|k| last.windows.contains(k))
            {
                return false;
            }
        }
        // Every window that has closed, held here or not (the other side may hold entries of
        // a window we never saw), bounded like a roots request.
        let mut windows: BTreeSet<WindowKey> = self
            .ledger
            .windows_closed_by(now_ms, super::antientropy::MAX_PERIODS)
            .into_iter()
            .collect();
        windows.extend(self.closed_window_keys(now_ms));
        windows.extend(due.values().copied());
        self.reconcile(windows.iter().copied().collect(), now_ms, out);
        self.last_reconcile = Some(super::Reconciliation {
            height,
            round,
            at_ms: now_ms,
            windows,
        });
        true
    }

    fn remember(&mut self, id: CheckpointId, ledger: Ledger, events: Vec<LedgerEvent>) {
        self.prepared.insert(id, (ledger, events));
        while self.prepared.len() > MAX_PREPARED {
            self.prepared.pop_first();
        }
    }

    /// Decide every pending validation we can (all changes held, or provably invalid); ask
    /// for what is missing.
    pub(super) fn retry_validations(&mut self, now_ms: u64, out: &mut Vec<Effect>) {
        let pending: Vec<((u64, CheckpointId), (Checkpoint, PeerKey))> = self
            .validations
            .iter()
            .map(|(k, v)| (*k, v.clone()))
            .collect();
        for ((height, id), (cp, proposer)) in pending {
            if height < self.engine.height() {
                self.validations.remove(&(height, id));
                continue;
            }
            if self.ledger.next_height + 1 < height {
                continue; // our ledger is behind; wait until it catches up
            }
            let valid = match self.derive(&cp) {
                Content::Ready(ledger, events) => {
                    self.remember(id, *ledger, events);
                    true
                }
                Content::Invalid(_) => false,
                Content::Missing(keys) => {
                    for key in keys {
                        self.fetch_window(key, Some(proposer), now_ms, out);
                    }
                    continue;
                }
                Content::MissingHeads(wanted) => {
                    self.fetch_heads(wanted, Some(proposer), now_ms, out);
                    continue;
                }
            };
            self.validations.remove(&(height, id));
            let effects = self.engine.handle(
                checkpoint::Input::ValueValidity { height, id, valid },
                now_ms,
            );
            self.engine_effects(effects, now_ms, out);
        }
    }

    /// Queue a decided checkpoint for applying; its windows now admit only what it fixes
    /// (nothing until the list of its heads is known).
    pub(super) fn queue_decided(&mut self, d: DecidedCheckpoint) {
        if d.height() <= self.ledger.next_height {
            return;
        }
        for w in &d.checkpoint.windows {
            let certified = if w.entries == 0 {
                Certified::Heads(BTreeSet::new())
            } else {
                match self.head_lists.get(&(w.window, w.root)) {
                    Some(list) => Certified::Heads(list.iter().copied().collect()),
                    None => Certified::Root(w.root),
                }
            };
            self.certified.insert(w.window, certified);
        }
        self.decided_queue.insert(d.height(), d);
    }

    /// The next decided checkpoint leaves the queue (applied or dropped).
    fn unqueue_decided(&mut self) -> Option<DecidedCheckpoint> {
        let (_, d) = self.decided_queue.pop_first()?;
        for w in &d.checkpoint.windows {
            self.certified.remove(&w.window);
        }
        Some(d)
    }

    /// Apply decided checkpoints in height order as far as their entries are held.
    pub(super) fn apply_decided_queue(&mut self, now_ms: u64, out: &mut Vec<Effect>) {
        // Stalled: the height that does not apply would be derived again for nothing.
        if self.stalled.is_some() {
            return;
        }
        while let Some((&height, _)) = self.decided_queue.first_key_value() {
            if height <= self.ledger.next_height {
                self.unqueue_decided();
                continue;
            }
            if height != self.ledger.next_height + 1 {
                return;
            }
            let Some(d) = self.decided_queue.get(&height).cloned() else {
                return;
            };
            let id = d.id();
            if let Some(trusted) = self.config.contradicts_trusted(&d) {
                let reason = format!(
                    "decided checkpoint {height} is {}, the trusted checkpoint is {}: this chain \
                     does not extend it",
                    id.0.to_hex(),
                    trusted.to_hex()
                );
                self.stall(height, reason, out);
                return;
            }
            let (next, events) = match self.prepared.remove(&id) {
                Some(p) => p,
                None => match self.derive(&d.checkpoint) {
                    Content::Ready(l, e) => (*l, e),
                    Content::Missing(keys) => {
                        for key in keys {
                            self.fetch_window(key, None, now_ms, out);
                        }
                        return;
                    }
                    Content::MissingHeads(_) => {
                        self.fetch_certified_heads(now_ms, out);
                        return;
                    }
                    Content::Invalid(reason) => {
                        // A checkpoint > 2/3 of the stake certified does not apply to this
                        // node's state: it cannot go on, and must say so (once), not drop it.
                        let reason =
                            format!("decided checkpoint {height} does not apply here: {reason}");
                        self.stall(height, reason, out);
                        return;
                    }
                },
            };
            self.unqueue_decided();
            self.finish_height(d, next, events, now_ms, out);
        }
    }

    /// Stop applying at `height` and say why, once.
    fn stall(&mut self, height: u64, reason: String, out: &mut Vec<Effect>) {
        if self.stalled.is_none() {
            out.push(Effect::Event(ReplicaEvent::Fault(reason.clone())));
            out.push(Effect::Event(ReplicaEvent::Stalled {
                height,
                reason: reason.clone(),
            }));
            self.stalled = Some((height, reason));
        }
    }

    fn finish_height(
        &mut self,
        d: DecidedCheckpoint,
        next: Ledger,
        events: Vec<LedgerEvent>,
        now_ms: u64,
        out: &mut Vec<Effect>,
    ) {
        let height = d.height();
        // The first decision after a pause longer than a propose timeout marks the network
        // deciding again: reconciliations from before it may have missed a partitioned side.
        let gap = self
            .last_decision_at
            .is_none_or(|t| now_ms > t.saturating_add(self.config.timeouts.propose_ms));
        if gap {
            self.resumed_at = Some(now_ms);
        }
        self.last_decision_at = Some(now_ms);
        // The lists are all known: the height derived. Persisted before the ledger snapshot
        // (a restart re-applies the heights after it with them), then forgotten here, with
        // any other list for these windows.
        let finalized: BTreeMap<Hash32, Arc<Vec<Hash32>>> = d
            .checkpoint
            .windows
            .iter()
            .filter_map(|w| Some((w.window, self.head_lists.get(&(w.window, w.root))?.clone())))
            .collect();
        let persist: Vec<(Hash32, Vec<Hash32>)> = finalized
            .iter()
            .filter(|(_, l)| !l.is_empty())
            .map(|(w, l)| (*w, l.to_vec()))
            .collect();
        if !persist.is_empty() {
            out.push(Effect::PersistHeads(persist));
        }
        self.head_lists
            .retain(|(w, _), _| !finalized.contains_key(w));
        for e in &events {
            if let LedgerEvent::NetworkInference { topic, epoch, .. } = e {
                self.bundles_applied_at.insert((*topic, *epoch), now_ms);
            }
        }
        self.bundles_applied_at.retain(|(topic, epoch), _| {
            next.topics
                .get(topic)
                .is_some_and(|t| t.mechanism.pending.contains_key(epoch))
        });
        self.ledger = next;
        self.tip = d.id().0;
        self.prepared
            .retain(|_, (l, _)| l.next_height > self.ledger.next_height);
        // Drop finalized windows; ledger entries that missed their period get another chance.
        let keys: Vec<WindowKey> = self.windows.keys().copied().collect();
        let mut carry = vec![];
        for key in keys {
            // Finalized, or of a topic that no longer exists.
            let done = self.ledger.is_finalized(&key).unwrap_or(true);
            if !done {
                continue;
            }
            if let Some(w) = self.windows.remove(&key) {
                let kept: BTreeSet<Hash32> = finalized
                    .get(&key.id())
                    .map(|l| l.iter().copied().collect())
                    .unwrap_or_default();
                for e in w.entries() {
                    self.slots.remove(&chorus_protocol::validation::Slot::of(
                        e.envelope.signer,
                        &e.payload,
                    ));
                    if matches!(key, WindowKey::Ledger { .. }) && !kept.contains(&e.hash()) {
                        carry.push((e.envelope.clone(), e.payload.clone()));
                    }
                }
            }
        }
        // Reports of dropped windows are forgotten (a finalized window admits nothing more).
        let windows = &self.windows;
        self.reported_conflicts
            .retain(|_, k| windows.contains_key(k));
        for (env, payload) in carry {
            let nonce_ok = payload
                .nonce()
                .is_none_or(|n| n > self.ledger.accounts.get(&env.signer).map_or(0, |a| a.nonce));
            // Evidence of an offence the ledger already acted upon would be refused: carrying
            // it on would keep it in every next window of this node alone, forever.
            let acted_upon = match &payload {
                chorus_protocol::messages::Payload::Evidence(ev) => self
                    .ledger
                    .offence_acted_upon(ev, &VoteEvidence(self.network)),
                _ => false,
            };
            if nonce_ok && !acted_upon {
                let key = WindowKey::Ledger {
                    period: self.ledger.next_height.max(self.ledger.period_at(now_ms)),
                };
                let bytes = env.to_bytes();
                if let Ok(entry) =
                    crate::window::entry_from_parts(&key, env, bytes.clone(), payload)
                {
                    self.insert(super::admission::Admitted { key, entry });
                    out.push(Effect::Persist(vec![(key, bytes)]));
                }
            }
        }
        // Validator sets change two heights after the bonds that define them.
        let next_set = validator_set(&self.ledger);
        match self.ledger.to_snapshot() {
            Ok(bytes) => out.push(Effect::PersistLedger { height, bytes }),
            // The previous snapshot stays; the heights since re-apply from the store.
            Err(e) => out.push(Effect::Event(ReplicaEvent::Fault(format!(
                "the ledger of height {height} does not encode; not persisted: {e}"
            )))),
        }
        let (bundles, outlier_bundles) = finalized_bundles(&self.ledger, &events);
        let next_validators = next_set
            .as_ref()
            .map(crate::proof::set_entries)
            .unwrap_or_default();
        out.push(Effect::Event(ReplicaEvent::Finalized {
            height,
            id: d.id(),
            ledger_root: self.ledger.root(),
            events,
            bundles,
            outlier_bundles,
            next_validators,
        }));
        // Only now, with this height's snapshot and event out: the set may start a height
        // that waited for it, whose effects can apply the next decided height at once.
        self.hand_over_set(height, next_set, now_ms, out);
        // A proposal request may have been waiting for this ledger.
        self.try_propose(now_ms, out);
        self.retry_validations(now_ms, out);
    }

    /// Give the engine the validator set of height `height + 2` (the ledger of `height`
    /// defines it). A ledger that gives no valid set (no bond with power left) keeps the
    /// running one: the engine waits for a set for every height, so one must come.
    fn hand_over_set(
        &mut self,
        height: u64,
        next_set: Result<ValidatorSet, ReplicaError>,
        now_ms: u64,
        out: &mut Vec<Effect>,
    ) {
        let set = match next_set {
            Ok(set) => set,
            Err(e) => {
                out.push(Effect::Event(ReplicaEvent::Fault(format!(
                    "the ledger of height {height} gives no validator set ({e}); height {} \
                     keeps the running one",
                    height + 2
                ))));
                self.engine.validator_set().clone()
            }
        };
        let effects = self.engine.handle(
            checkpoint::Input::ValidatorSet {
                from_height: height + 2,
                set,
            },
            now_ms,
        );
        self.engine_effects(effects, now_ms, out);
    }
}

/// The network inference bundles a height finalized, one per `NetworkInference` event, and
/// the outlier-resistant bundles among them that differ from the regular one; read from the
/// ledger that height led to (later heights settle and drop them).
fn finalized_bundles(after: &Ledger, events: &[LedgerEvent]) -> (Vec<Finalized>, Vec<Finalized>) {
    let records: Vec<(TopicId, u64, &EpochRecord)> = events
        .iter()
        .filter_map(|e| match e {
            LedgerEvent::NetworkInference { topic, epoch, .. } => after
                .topics
                .get(topic)
                .and_then(|t| t.mechanism.pending.get(epoch))
                .map(|r| (*topic, *epoch, r)),
            _ => None,
        })
        .collect();
    let pick = |f: fn(&EpochRecord) -> &Option<NetworkInference>| -> Vec<Finalized> {
        records
            .iter()
            .filter_map(|(t, e, r)| f(r).clone().map(|b| (*t, *e, b)))
            .collect()
    };
    (pick(|r| &r.bundle), pick(|r| &r.outlier_bundle))
}

/// What a checkpoint commits to besides its ledger root: the Merkle root over the bundles it
/// finalizes (both variants, [`crate::proof::checkpoint_leaves`]), and the digest of the
/// validator set of the next height (given by the ledger before it, `before`; see
/// [`crate::proof`]).
fn commitments(before: &Ledger, after: &Ledger, events: &[LedgerEvent]) -> (Hash32, Hash32) {
    let (bundles, outliers) = finalized_bundles(after, events);
    let leaves = crate::proof::checkpoint_leaves(&bundles, &outliers);
    let validators = validator_set(before)
        .map(|s| s.digest())
        .unwrap_or_default();
    (crate::proof::root(&leaves), validators)
}

/// A consensus message from `from`'s bytes; bytes that do not decode penalise `from`.
fn decode_consensus(
    from: PeerKey,
    bytes: &[u8],
    out: &mut Vec<Effect>,
) -> Option<ConsensusMessage> {
    ConsensusMessage::decode(bytes)
        .map_err(|e| {
            out.push(Effect::Penalize {
                peer: from,
                offence: Offence::MalformedConsensus(e.to_string()),
            });
        })
        .ok()
}
