//! Anti-entropy by automerge sync for one window with one peer: sessions, validated receive,
//! replies. The node carries the messages over request-response (`Request::Sync`).

use chorus_protocol::validation::Slot;

use super::{Effect, PeerKey, Replica};
use crate::window::sync::SyncSession;
use crate::window::{Window, WindowKey};

/// Sync sessions kept (per peer and window); the oldest are dropped beyond this.
pub const MAX_SYNC_SESSIONS: usize = 512;

impl Replica {
    fn session(&mut self, peer: PeerKey, window: WindowKey) -> &mut SyncSession {
        if !self.sync_sessions.contains_key(&(peer, window))
            && self.sync_sessions.len() >= MAX_SYNC_SESSIONS
        {
            self.sync_sessions.pop_first();
        }
        self.sync_sessions.entry((peer, window)).or_default()
    }

    /// Start (or continue) syncing `window` with `peer`: our next message, if we have one.
    pub fn sync_open(&mut self, peer: PeerKey, window: WindowKey) -> Option<Vec<u8>> {
        if !self.is_open(&window) {
            return None;
        }
        let network = self.network;
        self.windows
            .entry(window)
            .or_insert_with(|| Window::new(window, network));
        let mut session = std::mem::take(self.session(peer, window));
        let msg = self
            .windows
            .get_mut(&window)
            .and_then(|w| w.sync_message(&mut session));
        self.sync_sessions.insert((peer, window), session);
        msg
    }

    /// Forget the sync state with a peer (it disconnected or the exchange ended).
    pub fn sync_close(&mut self, peer: PeerKey, window: WindowKey) {
        self.sync_sessions.remove(&(peer, window));
    }

    /// Whether a window is not finalized yet.
    pub(super) fn is_open(&self, window: &WindowKey) -> bool {
        match *window {
            WindowKey::Ledger { period } => period >= self.ledger.next_height,
            WindowKey::Topic {
                topic,
                epoch,
                phase,
            } => self.ledger.topics.get(&topic).is_some_and(|t| match phase {
                crate::window::Phase::Workers => epoch >= t.next_worker_epoch,
                crate::window::Phase::Reputers => epoch >= t.next_reputer_epoch,
            }),
        }
    }

    /// Take a sync message from `peer` for `window`: validate and apply its changes, persist
    /// the new entries, and return our reply (if any). Invalid changes count against the peer.
    pub(super) fn sync_message(
        &mut self,
        peer: PeerKey,
        window: WindowKey,
        bytes: &[u8],
        now_ms: u64,
        out: &mut Vec<Effect>,
    ) -> Option<Vec<u8>> {
        if !self.is_open(&window) {
            return None;
        }
        let network = self.network;
        self.windows
            .entry(window)
            .or_insert_with(|| Window::new(window, network));
        let mut session = std::mem::take(self.session(peer, window));
        let w = self.windows.get_mut(&window)?;
        let receipt = w.receive_sync(&mut session, bytes);
        let mut persist = vec![];
        let mut slots = vec![];
        let mut conflicts = vec![];
        match &receipt {
            Ok(r) => {
                let conflicted: Vec<String> = w
                    .conflicts()
                    .into_iter()
                    .map(|(s, _)| s.to_string())
                    .collect();
                for hash in &r.new {
                    if let Some(e) = w.entry(hash) {
                        persist.push((window, e.envelope_bytes.clone()));
                        slots.push((Slot::of(e.envelope.signer, &e.payload), e.message_id()));
                        if conflicted.contains(&e.slot) {
                            conflicts.push((e.envelope.clone(), e.payload.clone()));
                        }
                    }
                }
                if r.rejected > 0 {
                    out.push(Effect::Penalize {
                        peer,
                        reason: format!("{} invalid change(s) in a sync message", r.rejected),
                    });
                }
            }
            Err(e) => out.push(Effect::Penalize {
                peer,
                reason: format!("sync message: {e}"),
            }),
        }
        let reply = w.sync_message(&mut session);
        self.sync_sessions.insert((peer, window), session);
        for (slot, id) in slots {
            self.slots.entry(slot).or_insert(id);
        }
        if !persist.is_empty() {
            out.push(Effect::Persist(persist));
        }
        for (env, payload) in conflicts {
            self.report_conflict(window, &env, &payload, now_ms, out);
        }
        reply
    }
}
