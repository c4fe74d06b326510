//! Anti-entropy for one window: automerge's sync protocol with every received change
//! validated before it touches the document.
//!
//! The node carries the messages over request-response; this module only turns bytes into
//! bytes. Rules (measured in `docs/automerge-windows.md` of the design notes):
//! - compare [`Window::root`]s first and only sync windows whose roots differ;
//! - outgoing messages have their capability flags cleared, so the peer believes we only speak
//!   V1 and sends one chunk per change (never a whole-document chunk);
//! - every received chunk must be one change that passes [`validate_change`]; anything else is
//!   counted as rejected and dropped; only valid changes are fed to automerge;
//! - a session stops after [`MAX_IDLE_ROUNDS`] received messages in a row that applied
//!   nothing, so a peer holding changes we reject cannot keep us talking forever.

use automerge::sync::{self, ChunkList, SyncDoc};

use super::{Insert, Window, validate_change};

/// Received messages in a row without a new change before a session stops.
pub const MAX_IDLE_ROUNDS: u32 = 2;
/// Largest sync message accepted (bytes).
pub const MAX_SYNC_MESSAGE: usize = 8 * 1024 * 1024;
/// Most changes taken from one message.
pub const MAX_CHANGES_PER_MESSAGE: usize = 4_096;

/// Per-peer, per-window sync state.
#[derive(Debug)]
pub struct SyncSession {
    state: sync::State,
    idle_rounds: u32,
    finished: bool,
}

impl Default for SyncSession {
    fn default() -> Self {
        SyncSession {
            state: sync::State::new(),
            idle_rounds: 0,
            finished: false,
        }
    }
}

impl SyncSession {
    /// A fresh session.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether the stop rule ended this session.
    pub fn is_finished(&self) -> bool {
        self.finished
    }
}

/// What one received message did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyncReceipt {
    /// New valid changes applied.
    pub applied: usize,
    /// Their change hashes.
    pub new: Vec<chorus_protocol::ids::Hash32>,
    /// Changes we already held.
    pub duplicates: usize,
    /// Chunks that failed validation.
    pub rejected: usize,
}

/// A sync message that cannot be used at all.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SyncError {
    /// Too large.
    #[error("sync message of {0} bytes exceeds the cap")]
    TooLarge(usize),
    /// Does not decode.
    #[error("sync message does not decode: {0}")]
    Malformed(String),
    /// automerge refused the filtered message.
    #[error("automerge refused the sync message: {0}")]
    Automerge(String),
}

impl Window {
    /// The next message for the peer of `session`, if any.
    pub fn sync_message(&mut self, session: &mut SyncSession) -> Option<Vec<u8>> {
        if session.finished {
            return None;
        }
        self.flush();
        let mut msg = self.doc.generate_sync_message(&mut session.state)?;
        msg.flags = None;
        Some(msg.encode())
    }

    /// Take a message from the peer of `session`: validate every change, apply the valid ones.
    pub fn receive_sync(
        &mut self,
        session: &mut SyncSession,
        bytes: &[u8],
    ) -> Result<SyncReceipt, SyncError> {
        if bytes.len() > MAX_SYNC_MESSAGE {
            return Err(SyncError::TooLarge(bytes.len()));
        }
        let mut msg =
            sync::Message::decode(bytes).map_err(|e| SyncError::Malformed(e.to_string()))?;
        self.flush();
        let mut receipt = SyncReceipt::default();
        let mut valid = Vec::new();
        for (i, chunk) in msg.changes.iter().enumerate() {
            if i >= MAX_CHANGES_PER_MESSAGE {
                receipt.rejected += 1;
                continue;
            }
            match validate_change(&self.key, &self.network, chunk) {
                Ok(entry) => {
                    let raw = entry.change.raw_bytes().to_vec();
                    let hash = entry.hash();
                    match self.insert(entry) {
                        Insert::Duplicate => receipt.duplicates += 1,
                        Insert::New | Insert::Conflict => {
                            receipt.applied += 1;
                            receipt.new.push(hash);
                            valid.push(raw);
                        }
                    }
                }
                Err(_) => receipt.rejected += 1,
            }
        }
        // The queued entries must enter the document through the sync state, not a flush.
        let queued = std::mem::take(&mut self.pending);
        msg.changes = ChunkList::from(valid);
        if let Err(e) = self.doc.receive_sync_message(&mut session.state, msg) {
            // Validated changes never fail to apply; if they did, apply them the slow way.
            self.pending = queued;
            self.flush();
            return Err(SyncError::Automerge(e.to_string()));
        }
        self.applied.extend(queued);
        if receipt.applied == 0 {
            session.idle_rounds += 1;
            if session.idle_rounds >= MAX_IDLE_ROUNDS {
                session.finished = true;
            }
        } else {
            session.idle_rounds = 0;
        }
        Ok(receipt)
    }
}

/// Run a full sync between two windows in memory (tests, simulator): messages alternate until
/// neither side has anything to say or a stop rule fires. Returns the number of messages.
pub fn sync_pair(a: &mut Window, b: &mut Window, max_messages: usize) -> usize {
    let (mut sa, mut sb) = (SyncSession::new(), SyncSession::new());
    let mut sent = 0;
    loop {
        let mut progressed = false;
        if let Some(m) = a.sync_message(&mut sa) {
            sent += 1;
            progressed = true;
            let _ = b.receive_sync(&mut sb, &m);
        }
        if let Some(m) = b.sync_message(&mut sb) {
            sent += 1;
            progressed = true;
            let _ = a.receive_sync(&mut sa, &m);
        }
        if !progressed || sent >= max_messages {
            return sent;
        }
    }
}
