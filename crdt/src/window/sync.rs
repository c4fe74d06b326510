//! Anti-entropy for one window: automerge's sync protocol with every received change
//! validated before it touches the document.
//!
//! The node carries the messages over request-response; this module only turns bytes into
//! bytes. Rules (measured in `docs/automerge-windows.md` of the design notes):
//! - compare [`Window::root`]s first and only sync windows whose roots differ;
//! - outgoing messages have their capability flags cleared, so the peer believes we only speak
//!   V1 and sends one chunk per change (never a whole-document chunk);
//! - every received chunk must be one well-formed entry of the window ([`parse_change`]) that
//!   its receiver admits (the replica runs its one admission function over each; a window on
//!   its own checks the signature, [`Window::receive_sync`]); anything else is counted as
//!   rejected and dropped; only admitted changes are fed to automerge;
//! - a session stops after [`MAX_IDLE_ROUNDS`] received messages in a row that applied
//!   nothing, so a peer holding changes we reject cannot keep us talking forever, and at its
//!   caps ([`SessionCaps`]: messages, entries, bytes), so a peer that feeds one fresh change
//!   per message cannot either.

use automerge::sync::{self, ChunkList, SyncDoc};

use super::{Entry, Insert, Window, parse_change};

/// Received messages in a row without a new change before a session stops.
pub const MAX_IDLE_ROUNDS: u32 = 2;
/// Largest sync message accepted (bytes).
pub const MAX_SYNC_MESSAGE: usize = 8 * 1024 * 1024;
/// Most changes taken from one message.
pub const MAX_CHANGES_PER_MESSAGE: usize = 4_096;

/// What one sync session may take before it stops.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionCaps {
    /// Messages received.
    pub messages: u32,
    /// Entries applied.
    pub entries: usize,
    /// Bytes received.
    pub bytes: usize,
}

impl SessionCaps {
    /// The caps of every session: a window of a few thousand entries reconciles in a handful
    /// of messages; a session that needs more is cut and a later round starts afresh.
    pub const DEFAULT: SessionCaps = SessionCaps {
        messages: 64,
        entries: 16_384,
        bytes: 64 * 1024 * 1024,
    };
}

/// Per-peer, per-window sync state.
#[derive(Debug)]
pub struct SyncSession {
    state: sync::State,
    idle_rounds: u32,
    finished: bool,
    received: SessionCaps,
    caps: SessionCaps,
}

impl Default for SyncSession {
    fn default() -> Self {
        SyncSession {
            state: sync::State::new(),
            idle_rounds: 0,
            finished: false,
            received: SessionCaps {
                messages: 0,
                entries: 0,
                bytes: 0,
            },
            caps: SessionCaps::DEFAULT,
        }
    }
}

impl SyncSession {
    /// A fresh session.
    pub fn new() -> Self {
        Self::default()
    }

    /// A fresh session with other caps.
    pub fn with_caps(caps: SessionCaps) -> Self {
        SyncSession {
            caps,
            ..Self::default()
        }
    }

    /// Whether the stop rule or a cap ended this session.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// What it received so far (messages, entries applied, bytes).
    pub fn received(&self) -> SessionCaps {
        self.received
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

    /// Take a message from the peer of `session`, checking each change's signature (a window
    /// used on its own; the replica admits entries with [`Window::read_sync`] and
    /// [`Window::apply_sync`] instead).
    pub fn receive_sync(
        &mut self,
        session: &mut SyncSession,
        bytes: &[u8],
    ) -> Result<SyncReceipt, SyncError> {
        let mut inbox = self.read_sync(bytes)?;
        let network = self.network;
        let (admitted, refused): (Vec<Entry>, Vec<Entry>) = std::mem::take(&mut inbox.entries)
            .into_iter()
            .partition(|e| e.envelope.verify(&network).is_ok());
        inbox.malformed += refused.len();
        self.apply_sync(session, inbox, admitted)
    }

    /// Decode a message from a peer: the well-formed entries of this window it carries that
    /// are not held yet. Nothing is applied.
    pub fn read_sync(&self, bytes: &[u8]) -> Result<SyncInbox, SyncError> {
        if bytes.len() > MAX_SYNC_MESSAGE {
            return Err(SyncError::TooLarge(bytes.len()));
        }
        let message =
            sync::Message::decode(bytes).map_err(|e| SyncError::Malformed(e.to_string()))?;
        let mut inbox = SyncInbox {
            entries: vec![],
            duplicates: 0,
            malformed: 0,
            message,
            bytes: bytes.len(),
        };
        for (i, chunk) in inbox.message.changes.iter().enumerate() {
            if i >= MAX_CHANGES_PER_MESSAGE {
                inbox.malformed += 1;
                continue;
            }
            match parse_change(&self.key, chunk) {
                Ok(entry) if self.contains(&entry.hash()) => inbox.duplicates += 1,
                Ok(entry) => inbox.entries.push(entry),
                Err(_) => inbox.malformed += 1,
            }
        }
        Ok(inbox)
    }

    /// Apply a message read by [`Window::read_sync`] with the entries its receiver admitted
    /// (the others count as rejected), and advance the session.
    pub fn apply_sync(
        &mut self,
        session: &mut SyncSession,
        inbox: SyncInbox,
        admitted: Vec<Entry>,
    ) -> Result<SyncReceipt, SyncError> {
        let SyncInbox {
            mut message,
            entries,
            duplicates,
            malformed,
            bytes: bytes_len,
        } = inbox;
        self.flush();
        let mut receipt = SyncReceipt {
            duplicates,
            rejected: malformed + entries.len(),
            ..SyncReceipt::default()
        };
        let mut valid = Vec::new();
        for entry in admitted {
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
        // The queued entries must enter the document through the sync state, not a flush.
        let queued = std::mem::take(&mut self.pending);
        message.changes = ChunkList::from(valid);
        if let Err(e) = self.doc.receive_sync_message(&mut session.state, message) {
            // Admitted changes never fail to apply; if they did, apply them the slow way.
            self.pending = queued;
            self.flush();
            return Err(SyncError::Automerge(e.to_string()));
        }
        self.applied.extend(queued);
        session.count(receipt.applied, bytes_len);
        Ok(receipt)
    }
}

/// A sync message read by [`Window::read_sync`], waiting for its entries to be admitted.
#[derive(Debug)]
pub struct SyncInbox {
    /// Well-formed entries of the window that it does not hold yet, in message order.
    pub entries: Vec<Entry>,
    /// Changes the window holds already.
    pub duplicates: usize,
    /// Chunks that are not a well-formed entry of the window, or beyond the per-message cap.
    pub malformed: usize,
    message: sync::Message,
    bytes: usize,
}

impl SyncSession {
    /// Count a received message that applied `applied` entries; stop at the idle rule or a cap.
    fn count(&mut self, applied: usize, bytes: usize) {
        if applied == 0 {
            self.idle_rounds += 1;
            if self.idle_rounds >= MAX_IDLE_ROUNDS {
                self.finished = true;
            }
        } else {
            self.idle_rounds = 0;
        }
        let r = &mut self.received;
        r.messages = r.messages.saturating_add(1);
        r.entries = r.entries.saturating_add(applied);
        r.bytes = r.bytes.saturating_add(bytes);
        if r.messages >= self.caps.messages
            || r.entries >= self.caps.entries
            || r.bytes >= self.caps.bytes
        {
            self.finished = true;
        }
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
