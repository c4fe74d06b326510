//! The one admission function. Every entry that joins a window — by gossip, a local
//! publication, sync, fetch, evidence or catch-up — passes [`Replica::admit`]:
//!
//! 1. decode (size, canonical envelope and payload);
//! 2. its window: the one its payload names (gossip, evidence), or the one the peer named,
//!    which must accept it (sync, fetch);
//! 3. a window whose content a decided checkpoint fixes admits exactly the entries whose
//!    change hashes it certified (authenticated by hash, no other check: the ledger may be
//!    behind the certificate), and nothing while the list of those hashes is being fetched;
//!    a window holding [`MAX_WINDOW_ENTRIES`] admits nothing more by gossip (twice that by
//!    sync and fetch, so what a proposal names can always be fetched);
//! 4. otherwise the window's [`WindowState`]: finalized, unknown or not yet open admits
//!    nothing; open or closed runs the gossip checks
//!    ([`chorus_protocol::validation::admit`]: registration and stake, uniqueness, signature,
//!    semantics), with the arrival time judged only for gossip and publications;
//! 5. a second valid entry for a held slot is kept as a visible conflict and reported as
//!    evidence.
//!
//! A refusal is an [`Refusal::Ignore`] (maybe valid, not now) or a [`Refusal::Reject`]
//! (provably invalid); whoever offered a rejected entry is penalised, whatever the path.

use chorus_protocol::envelope::Envelope;
use chorus_protocol::ids::Hash32;
use chorus_protocol::messages::{Evidence, EvidenceKind, Payload, PayloadClass};
use chorus_protocol::validation::{self, Arrival, IgnoreReason, RejectReason, Slot, Verdict};

use super::{Certified, Effect, Replica};
use crate::checkpoint::limits::MAX_WINDOW_ENTRIES;
use crate::ledger::WindowState;
use crate::window::{Entry, Insert, Window, WindowKey, entry_from_parts};

/// How an entry reached this replica.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// Gossip or a publication: the window follows from the payload, and the arrival time
    /// must fall inside it.
    Live,
    /// A peer offered it for this window (sync): it must belong there; it is judged
    /// whenever it arrives, as long as the window has opened and is not finalized.
    Into(WindowKey),
    /// Fetched for this window because a proposal or a decided checkpoint names its content:
    /// as [`Route::Into`], but a commit-reveal commitment is taken after its submission window
    /// too (the proposer held it in time by its clock; refusing it would leave the proposal
    /// unverifiable and stall finality, see [`Arrival::Named`]).
    Fetched(WindowKey),
    /// One of the two messages inside evidence of an equivocation.
    Evidence,
}

/// Why an entry was not admitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Maybe valid, but not here or not now: dropped without penalty.
    Ignore(IgnoreReason),
    /// Provably invalid: dropped, and whoever offered it is penalised.
    Reject(RejectReason),
}

/// An entry that passed, with its window, not inserted yet.
pub(super) struct Admitted {
    pub key: WindowKey,
    pub entry: Entry,
}

/// Entries admitted from one batch (a sync message, a fetched window), for one `Persist`.
pub(super) type PersistBatch = Vec<(WindowKey, Vec<u8>)>;

impl Replica {
    /// The window a payload joins on the live route: the one it names; ledger messages join
    /// the current period, or the first one not finalized yet.
    fn live_window(&self, payload: &Payload, now_ms: u64) -> WindowKey {
        match WindowKey::of(payload, self.ledger.period_at(now_ms)) {
            WindowKey::Ledger { period } => WindowKey::Ledger {
                period: period.max(self.ledger.next_height),
            },
            key => key,
        }
    }

    /// Judge a decoded envelope (`bytes`: its canonical encoding) arriving by `route`.
    pub(super) fn judge(
        &self,
        bytes: &[u8],
        envelope: Envelope,
        payload: Payload,
        route: Route,
        now_ms: u64,
    ) -> Result<Admitted, Refusal> {
        let key = match route {
            Route::Into(key) | Route::Fetched(key) if !key.accepts(&payload) => {
                return Err(Refusal::Reject(RejectReason::WrongWindow));
            }
            Route::Into(key) | Route::Fetched(key) => key,
            Route::Live | Route::Evidence => self.live_window(&payload, now_ms),
        };
        if let Some(certified) = self.certified_heads(&key) {
            let entry = entry_from_parts(&key, envelope, bytes.to_vec(), payload)
                .map_err(|_| Refusal::Reject(RejectReason::WrongWindow))?;
            return match certified {
                Certified::Heads(heads) if heads.contains(&entry.hash()) => {
                    Ok(Admitted { key, entry })
                }
                _ => Err(Refusal::Ignore(IgnoreReason::NotCertified)),
            };
        }
        // Gossip fills a window up to the cap; sync and fetch may go beyond (to twice the cap,
        // a memory bound), so entries a proposal names can always be fetched into a window
        // that filled here with others. A proposal lists at most the cap.
        let cap = match route {
            Route::Live => MAX_WINDOW_ENTRIES,
            Route::Into(_) | Route::Fetched(_) | Route::Evidence => 2 * MAX_WINDOW_ENTRIES,
        };
        if self
            .windows
            .get(&key)
            .is_some_and(|w| w.len() + w.pending_len() >= cap)
        {
            return Err(Refusal::Ignore(IgnoreReason::WindowFull));
        }
        match self.ledger.window_state(&key, now_ms) {
            WindowState::Finalized => return Err(Refusal::Ignore(IgnoreReason::WindowFinalized)),
            WindowState::UnknownTopic => return Err(Refusal::Ignore(IgnoreReason::UnknownTopic)),
            WindowState::NotOpen => return Err(Refusal::Ignore(IgnoreReason::TooEarly)),
            WindowState::Open | WindowState::Closed => {}
        }
        let arrival = match route {
            Route::Live => Arrival::Live(now_ms),
            Route::Fetched(_) => Arrival::Named,
            Route::Into(_) | Route::Evidence => Arrival::Reconciled(now_ms),
        };
        // The very same message admitted before, held in another window (a ledger message
        // a peer placed in an earlier or later period than we did): judged already, so it
        // joins this window too when a peer offers it there.
        if matches!(arrival, Arrival::Reconciled(_) | Arrival::Named)
            && self.slots.get(&Slot::of(envelope.signer, &payload)) == Some(&Hash32::of(bytes))
        {
            return entry_from_parts(&key, envelope, bytes.to_vec(), payload)
                .map(|entry| Admitted { key, entry })
                .map_err(|_| Refusal::Reject(RejectReason::WrongWindow));
        }
        let (envelope, payload) = match validation::admit(bytes, envelope, payload, arrival, self) {
            Verdict::Accept(a) => (a.envelope, a.payload),
            // A second valid message for a held slot: kept, a visible conflict. Gossip does
            // not keep a reporter's second evidence message for one offence (the offence is
            // known already); reconciliation must, since a peer's window may hold both and a
            // checkpoint may name them.
            Verdict::Ignore(IgnoreReason::Equivocation, Some(second)) => {
                match second.payload_unverified() {
                    Ok(p) if route != Route::Live || !matches!(p, Payload::Evidence(_)) => {
                        (*second, p)
                    }
                    _ => return Err(Refusal::Ignore(IgnoreReason::Equivocation)),
                }
            }
            Verdict::Ignore(r, _) => return Err(Refusal::Ignore(r)),
            Verdict::Reject(r) => return Err(Refusal::Reject(r)),
        };
        let entry = entry_from_parts(&key, envelope, bytes.to_vec(), payload)
            .map_err(|_| Refusal::Reject(RejectReason::WrongWindow))?;
        Ok(Admitted { key, entry })
    }

    /// Put an admitted entry into its window and index its slot: what the window did.
    pub(super) fn insert(&mut self, admitted: Admitted) -> Insert {
        let Admitted { key, entry } = admitted;
        let slot = Slot::of(entry.envelope.signer, &entry.payload);
        let id = entry.message_id();
        let network = self.network;
        let result = self
            .windows
            .entry(key)
            .or_insert_with(|| Window::new(key, network))
            .insert(entry);
        if result == Insert::New {
            self.slots.entry(slot).or_insert(id);
        }
        result
    }

    /// Admit one envelope's bytes arriving by `route`: judge it, insert it, queue it for
    /// persistence in `persist`, and report a conflict it reveals.
    pub(super) fn admit(
        &mut self,
        bytes: &[u8],
        route: Route,
        now_ms: u64,
        persist: &mut PersistBatch,
        out: &mut Vec<Effect>,
    ) -> Result<(WindowKey, Insert), Refusal> {
        let (envelope, payload) = validation::decode(bytes).map_err(Refusal::Reject)?;
        let admitted = self.judge(bytes, envelope, payload, route, now_ms)?;
        let key = admitted.key;
        let slot = Slot::of(admitted.entry.envelope.signer, &admitted.entry.payload);
        let class = admitted.entry.payload.class();
        if matches!(slot, Slot::Evidence { .. }) {
            self.evidence_seen(&admitted.entry.payload, now_ms);
        }
        let result = self.insert(admitted);
        if result != Insert::Duplicate {
            persist.push((key, bytes.to_vec()));
        }
        if result == Insert::Conflict {
            self.report_conflict(key, slot, class, bytes, now_ms, out);
        }
        Ok((key, result))
    }

    /// What a decided (not yet applied) checkpoint fixes for `key`, if any.
    fn certified_heads(&self, key: &WindowKey) -> Option<&Certified> {
        if self.certified.is_empty() {
            return None;
        }
        self.certified.get(&key.id())
    }

    /// A window now holds two different messages of one author for one slot: report the
    /// evidence at this replica's turn ([`super::evidence`]: once network-wide, while the
    /// first-ranked reporter is up).
    pub(super) fn report_conflict(
        &mut self,
        key: WindowKey,
        slot: Slot,
        class: PayloadClass,
        second: &[u8],
        now_ms: u64,
        out: &mut Vec<Effect>,
    ) {
        // Two evidence messages of one reporter for one offence prove nothing new.
        if matches!(slot, Slot::Evidence { .. })
            || self.reported_conflicts.insert(slot, key).is_some()
        {
            return;
        }
        let first = self.windows.get(&key).and_then(|w| {
            w.entries()
                .find(|e| {
                    Slot::of(e.envelope.signer, &e.payload) == slot && e.envelope_bytes != second
                })
                .map(|e| e.envelope_bytes.clone())
        });
        let kind = match class {
            PayloadClass::Worker => EvidenceKind::WorkerBundle,
            PayloadClass::Reputer => EvidenceKind::ReputerBundle,
            PayloadClass::Ledger => EvidenceKind::LedgerNonce,
        };
        if let Some(first) = first {
            let evidence = Evidence {
                kind,
                first,
                second: second.to_vec(),
            };
            self.schedule_evidence(evidence, now_ms, out);
        }
    }
}
