//! Anti-entropy by automerge sync for one window with one peer: sessions, admitted receive,
//! replies. The node carries the messages over request-response (`Request::Sync`).

use std::collections::BTreeSet;

use chorus_protocol::validation::{RejectReason, Slot};

use super::admission::{Refusal, Route};
use super::{Effect, Offence, PeerKey, Replica, ReplicaEvent};
use crate::window::sync::SyncSession;
use crate::window::{Window, WindowKey};

/// Sync sessions kept (per peer and window); beyond this, one is dropped (see
/// [`MAX_SYNC_SESSIONS_PER_PEER`]).
pub const MAX_SYNC_SESSIONS: usize = 512;

/// Sync sessions one peer may hold. A peer at the cap loses its own least recently used
/// session to a new one; when all sessions are taken, the peer holding the most loses its
/// least recently used. So a peer that opens sessions for every window it can name (by
/// `Request::Sync`) never pushes out other peers' sessions beyond its share.
pub const MAX_SYNC_SESSIONS_PER_PEER: usize = 32;

/// One sync session with a peer for a window, and when it was last used.
#[derive(Debug, Default)]
pub(super) struct Session {
    sync: SyncSession,
    pub(super) touched_ms: u64,
}

impl Replica {
    /// Take the session with `peer` for `window` out (a new one if none), to put back with
    /// [`Replica::put_session`].
    fn take_session(&mut self, peer: PeerKey, window: WindowKey) -> SyncSession {
        self.sync_sessions
            .remove(&(peer, window))
            .map(|s| s.sync)
            .unwrap_or_default()
    }

    pub(super) fn put_session(
        &mut self,
        peer: PeerKey,
        window: WindowKey,
        sync: SyncSession,
        now_ms: u64,
    ) {
        // Whose session makes room: this peer's at its cap; else, when all are taken, the
        // peer holding the most (ties: the smallest key).
        let mine = self
            .sync_sessions
            .keys()
            .filter(|(p, _)| *p == peer)
            .count();
        let victim = if mine >= MAX_SYNC_SESSIONS_PER_PEER {
            Some(peer)
        } else if self.sync_sessions.len() >= MAX_SYNC_SESSIONS {
            let mut held: std::collections::BTreeMap<PeerKey, usize> = Default::default();
            for (p, _) in self.sync_sessions.keys() {
                *held.entry(*p).or_default() += 1;
            }
            held.into_iter()
                .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0)))
                .map(|(p, _)| p)
        } else {
            None
        };
        if let Some(victim) = victim
            && let Some(oldest) = self
                .sync_sessions
                .iter()
                .filter(|((p, _), _)| *p == victim)
                .min_by_key(|(_, s)| s.touched_ms)
                .map(|(k, _)| *k)
        {
            self.sync_sessions.remove(&oldest);
        }
        self.sync_sessions.insert(
            (peer, window),
            Session {
                sync,
                touched_ms: now_ms,
            },
        );
    }

    /// Whether entries may still join `window` by reconciliation (open or closed, not
    /// finalized), so that syncing it makes sense.
    pub(super) fn is_live(&self, window: &WindowKey, now_ms: u64) -> bool {
        self.ledger.window_state(window, now_ms).is_live()
    }

    /// Start (or continue) syncing `window` with `peer`: our next message, if we have one.
    pub fn sync_open(&mut self, peer: PeerKey, window: WindowKey, now_ms: u64) -> Option<Vec<u8>> {
        if !self.is_live(&window, now_ms) {
            return None;
        }
        let network = self.network;
        self.windows
            .entry(window)
            .or_insert_with(|| Window::new(window, network));
        let mut session = self.take_session(peer, window);
        let msg = self
            .windows
            .get_mut(&window)
            .and_then(|w| w.sync_message(&mut session));
        self.put_session(peer, window, session, now_ms);
        msg
    }

    /// Forget the sync state with a peer (it disconnected or the exchange ended).
    pub fn sync_close(&mut self, peer: PeerKey, window: WindowKey) {
        self.sync_sessions.remove(&(peer, window));
    }

    /// Take a sync message from `peer` for `window`: admit each change it carries through the
    /// one admission function, apply those admitted, persist them, and return our reply (if
    /// any). Malformed or provably invalid changes count against the peer.
    pub(super) fn sync_message(
        &mut self,
        peer: PeerKey,
        window: WindowKey,
        bytes: &[u8],
        now_ms: u64,
        out: &mut Vec<Effect>,
    ) -> Option<Vec<u8>> {
        if !self.is_live(&window, now_ms) {
            return None;
        }
        let network = self.network;
        let mut inbox = match self
            .windows
            .entry(window)
            .or_insert_with(|| Window::new(window, network))
            .read_sync(bytes)
        {
            Ok(inbox) => inbox,
            Err(e) => {
                out.push(Effect::Penalize {
                    peer,
                    offence: Offence::MalformedSync(e.to_string()),
                });
                return None;
            }
        };
        let mut admitted = vec![];
        let mut rejected = inbox.malformed;
        let mut reason = None;
        for entry in std::mem::take(&mut inbox.entries) {
            let bytes = entry.envelope_bytes.clone();
            match self.judge(
                &bytes,
                entry.envelope,
                entry.payload,
                Route::Into(window),
                now_ms,
            ) {
                Ok(a) => admitted.push(a),
                Err(Refusal::Reject(r)) => {
                    rejected += 1;
                    reason.get_or_insert(r);
                }
                Err(Refusal::Ignore(_)) => {}
            }
        }
        if rejected > 0 {
            out.push(Effect::Penalize {
                peer,
                offence: Offence::InvalidEntries {
                    count: rejected,
                    reason: reason.unwrap_or(RejectReason::Malformed),
                },
            });
        }
        let entries = admitted.into_iter().map(|a| a.entry).collect();
        let mut session = self.take_session(peer, window);
        let w = self.windows.get_mut(&window)?;
        let receipt = w.apply_sync(&mut session, inbox, entries);
        let reply = w.sync_message(&mut session);
        self.put_session(peer, window, session, now_ms);
        let new = match receipt {
            Ok(r) => r.new,
            Err(e) => {
                out.push(Effect::Event(ReplicaEvent::Fault(format!(
                    "sync apply: {e}"
                ))));
                vec![]
            }
        };
        let w = self.windows.get(&window)?;
        let conflicted: BTreeSet<&str> = w.conflicts().into_iter().map(|(s, _)| s).collect();
        let found: Vec<_> = new
            .iter()
            .filter_map(|hash| w.entry(hash))
            .map(|e| {
                let slot = Slot::of(e.envelope.signer, &e.payload);
                let conflict = conflicted.contains(e.slot.as_str());
                (
                    slot,
                    e.message_id(),
                    e.payload.class(),
                    e.envelope_bytes.clone(),
                    conflict,
                )
            })
            .collect();
        let mut persist = vec![];
        for (slot, id, class, bytes, conflict) in found {
            self.slots.entry(slot).or_insert(id);
            if conflict {
                self.report_conflict(window, slot, class, &bytes, now_ms, out);
            }
            persist.push((window, bytes));
        }
        if !persist.is_empty() {
            out.push(Effect::Persist(persist));
        }
        reply
    }
}
