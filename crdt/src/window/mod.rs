//! Windows: one automerge document per (topic, epoch, phase) and per ledger period.
//!
//! Every entry is a single-writer, single-put change derived from a signed envelope
//! ([`change`]). A window holds its applied entries, queues newly validated ones and applies
//! them in batches ([`Window::flush`]), exposes its heads and root (blake3 over the sorted
//! change hashes; with no deps every change is a head), and answers which entries count at a
//! given set of finalized heads ([`Window::effective_entries`]), excluding authors who
//! equivocated by a fixed rule. Anti-entropy between peers is in [`sync`].
//!
//! ```
//! use chorus_crdt::window::{Window, WindowKey, Phase};
//! use chorus_protocol::{Envelope, Hash32, Keypair, TopicId};
//! use chorus_protocol::messages::{Payload, WorkerBundle};
//! let net = Hash32([1; 32]);
//! let key = WindowKey::Topic { topic: TopicId(1), epoch: 0, phase: Phase::Workers };
//! let payload = Payload::WorkerBundle(WorkerBundle { topic: TopicId(1), epoch: 0, inference: Some(1.0), forecasts: vec![] });
//! let env = Envelope::seal(&Keypair::from_seed(&[1; 32]), &net, &payload);
//! let mut w = Window::new(key, net);
//! w.insert_envelope(env, payload).unwrap();
//! w.flush();
//! assert_eq!(w.heads().len(), 1);
//! ```

pub mod change;
pub mod key;
pub mod sync;

use std::collections::{BTreeMap, BTreeSet};

use automerge::Automerge;
use chorus_protocol::envelope::Envelope;
use chorus_protocol::ids::{Hash32, NetworkId};
use chorus_protocol::keys::PublicKey;
use chorus_protocol::messages::Payload;

pub use change::{
    ChangeError, Entry, actor_of, build_change, entry_from_envelope, entry_from_parts,
    parse_change, validate_change,
};
pub use key::{Phase, WindowKey, slot_key};

/// blake3 over the sorted heads of a window: its root. Order-independent, stable across
/// save/load, computable without automerge.
pub fn root_of(heads: &[Hash32]) -> Hash32 {
    let mut sorted = heads.to_vec();
    sorted.sort();
    sorted.dedup();
    let mut h = blake3::Hasher::new();
    h.update(b"chorus/window-root/v1");
    h.update(&(sorted.len() as u64).to_le_bytes());
    for head in &sorted {
        h.update(&head.0);
    }
    Hash32(*h.finalize().as_bytes())
}

/// What inserting an entry did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Insert {
    /// A new entry, queued for the next flush.
    New,
    /// Already held.
    Duplicate,
    /// A new entry whose slot already holds a different one: both are kept (evidence).
    Conflict,
}

/// The outcome of a flush.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlushReport {
    /// Entries applied.
    pub applied: usize,
    /// Entries automerge refused (never happens for validated entries; counted, dropped).
    pub refused: usize,
    /// Whether the batch failed and entries were applied one at a time.
    pub fell_back: bool,
}

/// Finalized heads name changes this window does not hold.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("window is missing {} finalized change(s)", .0.len())]
pub struct Missing(pub Vec<Hash32>);

/// One replicated window.
#[derive(Clone, Debug)]
pub struct Window {
    key: WindowKey,
    network: NetworkId,
    doc: Automerge,
    applied: BTreeMap<Hash32, Entry>,
    pending: BTreeMap<Hash32, Entry>,
    by_slot: BTreeMap<String, BTreeSet<Hash32>>,
}

impl Window {
    /// An empty window.
    pub fn new(key: WindowKey, network: NetworkId) -> Self {
        Window {
            key,
            network,
            doc: Automerge::new(),
            applied: BTreeMap::new(),
            pending: BTreeMap::new(),
            by_slot: BTreeMap::new(),
        }
    }

    /// Rebuild a window from stored envelopes (the source of truth), applied in one batch.
    pub fn rebuild(
        key: WindowKey,
        network: NetworkId,
        envelopes: impl IntoIterator<Item = (Envelope, Payload)>,
    ) -> Result<Self, ChangeError> {
        let mut w = Window::new(key, network);
        for (env, payload) in envelopes {
            w.insert_envelope(env, payload)?;
        }
        w.flush();
        Ok(w)
    }

    /// The key.
    pub fn key(&self) -> &WindowKey {
        &self.key
    }

    /// The network.
    pub fn network(&self) -> &NetworkId {
        &self.network
    }

    /// Queue an entry.
    pub fn insert(&mut self, entry: Entry) -> Insert {
        let hash = entry.hash();
        if self.applied.contains_key(&hash) || self.pending.contains_key(&hash) {
            return Insert::Duplicate;
        }
        let slot = self.by_slot.entry(entry.slot.clone()).or_default();
        let conflict = !slot.is_empty();
        slot.insert(hash);
        self.pending.insert(hash, entry);
        if conflict {
            Insert::Conflict
        } else {
            Insert::New
        }
    }

    /// Queue the entry of an envelope that gossip validation already verified.
    pub fn insert_envelope(
        &mut self,
        envelope: Envelope,
        payload: Payload,
    ) -> Result<Insert, ChangeError> {
        Ok(self.insert(entry_from_envelope(&self.key, envelope, payload)?))
    }

    /// Validate a change from a peer and queue it.
    pub fn receive_change(&mut self, raw: &[u8]) -> Result<Insert, ChangeError> {
        if let Ok(c) = automerge::Change::try_from(raw)
            && self.applied.contains_key(&Hash32(c.hash().0))
        {
            return Ok(Insert::Duplicate);
        }
        Ok(self.insert(validate_change(&self.key, &self.network, raw)?))
    }

    /// Apply everything queued, in one batch; if the batch fails, one at a time.
    pub fn flush(&mut self) -> FlushReport {
        let mut report = FlushReport::default();
        if self.pending.is_empty() {
            return report;
        }
        let pending = std::mem::take(&mut self.pending);
        let batch: Vec<automerge::Change> = pending.values().map(|e| e.change.clone()).collect();
        if self.doc.apply_changes(batch).is_ok() {
            report.applied = pending.len();
            self.applied.extend(pending);
            return report;
        }
        report.fell_back = true;
        for (hash, entry) in pending {
            if self.doc.apply_changes([entry.change.clone()]).is_ok() {
                report.applied += 1;
                self.applied.insert(hash, entry);
            } else {
                report.refused += 1;
                if let Some(s) = self.by_slot.get_mut(&entry.slot) {
                    s.remove(&hash);
                }
            }
        }
        report
    }

    /// Number of applied entries.
    pub fn len(&self) -> usize {
        self.applied.len()
    }

    /// Whether no entry is applied.
    pub fn is_empty(&self) -> bool {
        self.applied.is_empty()
    }

    /// Number of queued entries.
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// Sorted change hashes of the applied entries (= the document's heads).
    pub fn heads(&self) -> Vec<Hash32> {
        self.applied.keys().copied().collect()
    }

    /// The window root over the applied entries.
    pub fn root(&self) -> Hash32 {
        root_of(&self.heads())
    }

    /// Whether an entry with this change hash is applied or queued.
    pub fn contains(&self, hash: &Hash32) -> bool {
        self.applied.contains_key(hash) || self.pending.contains_key(hash)
    }

    /// An applied entry.
    pub fn entry(&self, hash: &Hash32) -> Option<&Entry> {
        self.applied.get(hash)
    }

    /// Applied entries in change-hash order.
    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.applied.values()
    }

    /// Heads of `finalized` this window does not hold.
    pub fn missing(&self, finalized: &[Hash32]) -> Vec<Hash32> {
        finalized
            .iter()
            .filter(|h| !self.applied.contains_key(h))
            .copied()
            .collect()
    }

    /// Slots with more than one applied entry, with their entries: equivocation evidence.
    pub fn conflicts(&self) -> Vec<(&str, Vec<&Entry>)> {
        self.by_slot
            .iter()
            .filter(|(_, hs)| hs.len() > 1)
            .map(|(slot, hs)| {
                (
                    slot.as_str(),
                    hs.iter().filter_map(|h| self.applied.get(h)).collect(),
                )
            })
            .filter(|(_, es): &(&str, Vec<&Entry>)| es.len() > 1)
            .collect()
    }

    /// The entries that count at the finalized `heads`, sorted by slot. Fixed rule for
    /// equivocation: an author with two different entries for one slot among these heads has
    /// every entry of this window excluded.
    pub fn effective_entries(&self, heads: &[Hash32]) -> Result<Vec<&Entry>, Missing> {
        let missing = self.missing(heads);
        if !missing.is_empty() {
            return Err(Missing(missing));
        }
        let chosen: Vec<&Entry> = heads.iter().filter_map(|h| self.applied.get(h)).collect();
        let mut per_slot: BTreeMap<&str, usize> = BTreeMap::new();
        for e in &chosen {
            *per_slot.entry(e.slot.as_str()).or_default() += 1;
        }
        let equivocators: BTreeSet<PublicKey> = chosen
            .iter()
            .filter(|e| per_slot.get(e.slot.as_str()).copied().unwrap_or(0) > 1)
            .map(|e| e.envelope.signer)
            .collect();
        let mut out: Vec<&Entry> = chosen
            .into_iter()
            .filter(|e| !equivocators.contains(&e.envelope.signer))
            .collect();
        out.sort_by(|a, b| a.slot.cmp(&b.slot));
        Ok(out)
    }

    /// Authors excluded at `heads` for equivocating.
    pub fn equivocators(&self, heads: &[Hash32]) -> BTreeSet<PublicKey> {
        let mut per_slot: BTreeMap<&str, BTreeSet<PublicKey>> = BTreeMap::new();
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for e in heads.iter().filter_map(|h| self.applied.get(h)) {
            *counts.entry(e.slot.as_str()).or_default() += 1;
            per_slot
                .entry(e.slot.as_str())
                .or_default()
                .insert(e.envelope.signer);
        }
        counts
            .into_iter()
            .filter(|(_, n)| *n > 1)
            .flat_map(|(s, _)| per_slot.remove(s).unwrap_or_default())
            .collect()
    }

    /// automerge's compressed document (for closed windows kept as bytes).
    pub fn save(&self) -> Vec<u8> {
        self.doc.save()
    }

    /// The automerge heads as the document reports them (equal to [`Window::heads`]).
    pub fn document_heads(&self) -> Vec<Hash32> {
        let mut v: Vec<Hash32> = self.doc.get_heads().iter().map(|h| Hash32(h.0)).collect();
        v.sort();
        v
    }
}

#[cfg(test)]
mod tests;
