//! The point-to-point protocol between replicas (`/chorus/rpc/1` on libp2p): requests and
//! responses as data. The replica decides what to ask and what to answer; the node frames
//! these values (a u32 length and the canonical encoding) and carries them.

use bincode::{Decode, Encode};
use chorus_protocol::codec::Wire;
use chorus_protocol::ids::Hash32;

use crate::window::WindowKey;

/// Largest request frame.
pub const MAX_REQUEST: usize = 9 * 1024 * 1024;
/// Largest response frame.
pub const MAX_RESPONSE: usize = 16 * 1024 * 1024;
/// Most windows named in one roots request.
pub const MAX_ROOTS: usize = 4_096;
/// Most checkpoints in one catch-up response.
pub const MAX_CATCHUP: u32 = 256;
/// Most envelopes asked for in one fetch.
pub const MAX_FETCH: usize = 4_096;
/// Largest page of envelopes (bytes of envelopes) in one response: half a response, so a
/// window of any size is fetched in pages that fit.
pub const MAX_PAGE_BYTES: usize = MAX_RESPONSE / 2;
/// Most windows whose head lists are asked for in one request.
pub const MAX_HEAD_LISTS: usize = 1_024;
/// Most change hashes in one head-lists answer (12 MiB: under [`MAX_RESPONSE`]); lists beyond
/// it are answered `None` and asked again.
pub const MAX_HEADS_PER_RESPONSE: usize = 393_216;

/// A request.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub enum Request {
    /// Your roots of these windows.
    Roots(Vec<WindowKey>),
    /// One automerge sync message for a window.
    Sync {
        /// The window.
        window: WindowKey,
        /// The sync message.
        message: Vec<u8>,
    },
    /// Every envelope you hold for a window (the first page, see [`Response::EnvelopePage`]).
    WindowEntries(WindowKey),
    /// The next page of a window's envelopes: those after message id `after`.
    WindowEntriesAfter {
        /// The window.
        window: WindowKey,
        /// The `next` of the previous page.
        after: Hash32,
    },
    /// Decided checkpoints with certificates from a height on.
    CatchUp {
        /// First height wanted.
        from: u64,
        /// At most this many.
        max: u32,
    },
    /// Envelopes by message id.
    Fetch(Vec<Hash32>),
    /// A consensus message sent directly (catch-up requests and replies).
    Consensus(Vec<u8>),
    /// The network's genesis (`chorus join`: a newcomer knows one address and the network id,
    /// and checks the answer's id itself).
    Genesis,
    /// The finalized (or proposed) change hashes of these windows (by window id), by the root
    /// a checkpoint names ([`crate::checkpoint::WindowHead`]): content-addressed, checked by the asker.
    Heads(Vec<(Hash32, Hash32)>),
    /// Your clock, unix ms (clock-offset estimation, [`super::clock`]).
    Time,
    /// Your newest ledger snapshot and the certificate chain that vouches for it (certified
    /// state sync, [`crate::state_proof`]), the validator changes listed from genesis or, with
    /// `trusted`, from the checkpoint of that height.
    State {
        /// The height of the asker's trusted checkpoint, if it has one.
        trusted: Option<u64>,
        /// Most snapshot bytes to send with the proof (at most [`MAX_PAGE_BYTES`]); the rest
        /// comes by [`Request::StatePart`].
        first: u32,
    },
    /// More of the ledger snapshot of `height` (the one a [`Response::State`] began) →
    /// [`Response::StatePart`].
    StatePart {
        /// Its height (a peer that replaced it since refuses: ask for the state again).
        height: u64,
        /// The first byte wanted.
        offset: u64,
        /// Most bytes wanted (at most [`MAX_PAGE_BYTES`] are sent).
        max: u32,
    },
}

/// A response.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub enum Response {
    /// Roots, in request order (`None`: unknown window).
    Roots(Vec<Option<Hash32>>),
    /// The peer's next sync message, if it has one.
    Sync(Option<Vec<u8>>),
    /// Envelope bytes.
    Envelopes(Vec<Vec<u8>>),
    /// Checkpoints with certificates, encoded by the consensus layer.
    Checkpoints(Vec<Vec<u8>>),
    /// Direct consensus replies.
    Consensus(Vec<Vec<u8>>),
    /// Refused (rate limit, unknown, overload), with a reason.
    Refused(String),
    /// The canonical encoding of the network's genesis (its id is `Genesis::network_id`).
    Genesis(Vec<u8>),
    /// Head lists in request order, strictly ascending (`None`: not held).
    Heads(Vec<Option<Vec<Hash32>>>),
    /// One page of a window's envelopes, with more to come: ask for those after `next`
    /// (`Request::WindowEntriesAfter`). The last page is plain [`Response::Envelopes`].
    EnvelopePage {
        /// Envelope bytes.
        envelopes: Vec<Vec<u8>>,
        /// The message id of the last one (in message-id order).
        next: Hash32,
    },
    /// The answering replica's clock when it answered, unix ms.
    Time(u64),
    /// A ledger snapshot and its proof (checked by the asker, [`crate::state_proof::verify_state`]).
    State {
        /// The JSON of a [`crate::state_proof::StateProof`].
        proof: Vec<u8>,
        /// The snapshot's first bytes ([`crate::ledger::Ledger::to_snapshot`]).
        snapshot: Vec<u8>,
        /// The whole snapshot's length: the asker fetches the rest by
        /// [`Request::StatePart`].
        total: u64,
    },
    /// Bytes of a ledger snapshot, from the offset asked.
    StatePart(Vec<u8>),
}

impl Wire for Request {
    const MAX_SIZE: usize = MAX_REQUEST;
    const NAME: &'static str = "rpc::Request";
}

impl Wire for Response {
    const MAX_SIZE: usize = MAX_RESPONSE;
    const NAME: &'static str = "rpc::Response";
}

/// The id of a request this replica sent (it correlates the response).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RequestId(pub u64);

/// The id the host gave a request a peer sent us (the replica answers with it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct InboundId(pub u64);

/// A read of the host's store that answers a peer's request (the host runs it and sends the
/// answer as the response).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreQuery {
    /// Every stored envelope of a window → [`Response::Envelopes`], or its first
    /// [`Response::EnvelopePage`] when they do not fit one response.
    WindowEnvelopes(WindowKey),
    /// The stored envelopes of a window after message id `after` (the next page).
    WindowEnvelopesAfter {
        /// The window.
        window: WindowKey,
        /// Exclusive lower bound.
        after: Hash32,
    },
    /// Stored envelopes by message id (missing ones left out) → [`Response::Envelopes`].
    Envelopes(Vec<Hash32>),
    /// Stored head lists of finalized windows, each answered only if it has the root asked
    /// for → [`Response::Heads`].
    Heads(Vec<(Hash32, Hash32)>),
    /// Stored decided checkpoints from a height on → [`Response::Checkpoints`].
    Certificates {
        /// First height.
        from: u64,
        /// At most this many.
        max: u32,
    },
    /// The newest stored ledger snapshot with its [`crate::state_proof::StateProof`], the
    /// validator changes listed after `trusted` (or genesis) → [`Response::State`].
    State {
        /// The asker's trusted height.
        trusted: Option<u64>,
        /// Most snapshot bytes in the answer.
        first: u32,
    },
    /// Bytes of the stored ledger snapshot of `height` → [`Response::StatePart`].
    StatePart {
        /// Its height.
        height: u64,
        /// The first byte.
        offset: u64,
        /// Most bytes.
        max: u32,
    },
}
