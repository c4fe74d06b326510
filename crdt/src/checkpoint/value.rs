//! The value consensus decides on: a [`Checkpoint`], and its id.
//!
//! A checkpoint finalizes, for one height (checkpoint period), the heads of every window it
//! covers (by root and count) and the ledger root derived from them. Its id is blake3 over its canonical encoding,
//! so two peers that agree on the id agree on every byte of the checkpoint.

use std::fmt;
use std::sync::Arc;

use bincode::{Decode, Encode};
use chorus_protocol::codec::{self, Wire};
use chorus_protocol::ids::Hash32;

use super::error::ShapeError;
use super::limits::{MAX_CHECKPOINT_SIZE, MAX_HEIGHT, MAX_WINDOW_ENTRIES, MAX_WINDOWS};

/// What a checkpoint fixes of one window: the root of its finalized heads and how many there
/// are — not the heads themselves, so a checkpoint's size does not grow with the number of
/// entries it finalizes.
///
/// Every entry of a window is one change with no dependencies, so the heads are exactly the
/// finalized entries' change hashes, and the root (blake3 over them, sorted) is a content
/// address for that list: a validator whose own window has another root asks a peer for the
/// list with that root (the proposer keeps it; every node stores it once the height is
/// decided), checks it hashes to the root, and then holds (or fetches) each change. Entries that
/// arrived late on some node are excluded identically everywhere.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Encode, Decode)]
pub struct WindowHead {
    /// Id of the window: a `(topic, epoch, phase)` window or a ledger-period window.
    pub window: Hash32,
    /// blake3 over the window's sorted finalized change hashes (`crate::window::root_of`).
    pub root: Hash32,
    /// How many finalized changes (at most [`MAX_WINDOW_ENTRIES`]).
    pub entries: u32,
}

impl WindowHead {
    /// The head of a window with these finalized changes (duplicates counted once).
    pub fn new(window: Hash32, heads: &[Hash32]) -> Self {
        let unique: std::collections::BTreeSet<&Hash32> = heads.iter().collect();
        WindowHead {
            window,
            root: crate::window::root_of(heads),
            entries: unique.len() as u32,
        }
    }

    /// Whether `heads` (strictly ascending) is the list this head commits to.
    pub fn is_list(&self, heads: &[Hash32]) -> bool {
        heads.len() == self.entries as usize
            && heads.windows(2).all(|p| p[0] < p[1])
            && crate::window::root_of(heads) == self.root
    }
}

/// One checkpoint: what the validators decide at one height.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Encode, Decode)]
pub struct Checkpoint {
    /// The consensus height (checkpoint period), starting at 1.
    pub height: u64,
    /// Id of the checkpoint decided at `height - 1` (the network's genesis hash at height 1).
    pub previous: Hash32,
    /// Heads of the windows this checkpoint finalizes, strictly ascending by window id.
    pub windows: Vec<WindowHead>,
    /// Root of the ledger state derived from everything finalized up to and including this
    /// checkpoint.
    pub ledger_root: Hash32,
    /// Merkle root ([`chorus_protocol::merkle`]) over the network inferences this checkpoint
    /// finalizes, one leaf per (topic, epoch, variant) in that order
    /// ([`crate::proof::inference_leaf`]); the root of no leaves when it finalizes none.
    pub inferences: Hash32,
    /// [`ValidatorSet::digest`](super::ValidatorSet::digest) of the validator set of height
    /// `height + 1` (bonds take effect two heights after the height that changed them, so that
    /// set is known when this height is proposed). A light client follows these commitments
    /// from a trusted set to the set that signed any later checkpoint.
    pub validators: Hash32,
}

impl Wire for Checkpoint {
    const MAX_SIZE: usize = MAX_CHECKPOINT_SIZE;
    const NAME: &'static str = "Checkpoint";
}

/// The id of a checkpoint: blake3 of its canonical encoding.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Encode, Decode)]
pub struct CheckpointId(pub Hash32);

impl fmt::Display for CheckpointId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.short())
    }
}

impl fmt::Debug for CheckpointId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CheckpointId({})", self.0.short())
    }
}

impl Checkpoint {
    /// The canonical encoding (the bytes the id is computed over).
    pub fn to_bytes(&self) -> Vec<u8> {
        codec::encode(self)
    }

    /// The id: blake3 of [`Checkpoint::to_bytes`].
    pub fn id(&self) -> CheckpointId {
        CheckpointId(Hash32::of(&self.to_bytes()))
    }

    /// Structural checks every peer can make without any state: height in range, at most
    /// [`MAX_WINDOWS`] windows, window ids strictly ascending (sorted and unique).
    pub fn check_shape(&self) -> Result<(), ShapeError> {
        if self.height == 0 || self.height > MAX_HEIGHT {
            return Err(ShapeError::HeightOutOfRange(self.height));
        }
        if self.windows.len() > MAX_WINDOWS {
            return Err(ShapeError::TooManyWindows(self.windows.len()));
        }
        if self.windows.windows(2).any(|w| w[0].window >= w[1].window) {
            return Err(ShapeError::WindowsNotSorted);
        }
        for w in &self.windows {
            if w.entries as usize > MAX_WINDOW_ENTRIES {
                return Err(ShapeError::TooManyEntries(w.entries as usize));
            }
            // An empty window has one root; any other root over no entries is a lie.
            if w.entries == 0 && w.root != crate::window::root_of(&[]) {
                return Err(ShapeError::BadHeads);
            }
        }
        Ok(())
    }
}

/// A checkpoint together with its cached id: the `Value` type handed to Malachite.
///
/// Malachite clones values and asks for their id often; the `Arc` makes clones cheap and the
/// cached id makes `id()` free. Equality and order are by id, which is a collision-resistant
/// hash of the content, so they agree with content equality.
#[derive(Clone)]
pub struct CheckpointValue {
    checkpoint: Arc<Checkpoint>,
    id: CheckpointId,
}

impl CheckpointValue {
    /// Wrap a checkpoint (computes its id once).
    pub fn new(checkpoint: Checkpoint) -> Self {
        let id = checkpoint.id();
        CheckpointValue {
            checkpoint: Arc::new(checkpoint),
            id,
        }
    }

    /// The checkpoint.
    pub fn checkpoint(&self) -> &Checkpoint {
        &self.checkpoint
    }

    /// The cached id.
    pub fn id(&self) -> CheckpointId {
        self.id
    }
}

impl From<Checkpoint> for CheckpointValue {
    fn from(c: Checkpoint) -> Self {
        CheckpointValue::new(c)
    }
}

impl fmt::Debug for CheckpointValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Checkpoint(h={}, id={}, windows={})",
            self.checkpoint.height,
            self.id,
            self.checkpoint.windows.len()
        )
    }
}

impl PartialEq for CheckpointValue {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}

impl Eq for CheckpointValue {}

impl PartialOrd for CheckpointValue {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for CheckpointValue {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.id.cmp(&other.id)
    }
}

impl Encode for CheckpointValue {
    fn encode<E: bincode::enc::Encoder>(
        &self,
        encoder: &mut E,
    ) -> Result<(), bincode::error::EncodeError> {
        self.checkpoint.encode(encoder)
    }
}

impl<C> Decode<C> for CheckpointValue {
    fn decode<D: bincode::de::Decoder<Context = C>>(
        decoder: &mut D,
    ) -> Result<Self, bincode::error::DecodeError> {
        Ok(CheckpointValue::new(Checkpoint::decode(decoder)?))
    }
}

bincode::impl_borrow_decode!(CheckpointValue);

impl arc_malachitebft_core_types::Value for CheckpointValue {
    type Id = CheckpointId;

    fn id(&self) -> CheckpointId {
        self.id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(w: u8, r: u8) -> WindowHead {
        WindowHead::new(Hash32([w; 32]), &[Hash32([r; 32])])
    }

    fn sample() -> Checkpoint {
        Checkpoint {
            height: 7,
            previous: Hash32([1; 32]),
            windows: vec![head(2, 3), head(4, 5)],
            ledger_root: Hash32([9; 32]),
            inferences: Hash32([10; 32]),
            validators: Hash32([11; 32]),
        }
    }

    #[test]
    fn id_is_blake3_of_canonical_encoding_and_round_trips() {
        let c = sample();
        let bytes = c.to_bytes();
        assert_eq!(c.id(), CheckpointId(Hash32::of(&bytes)));
        assert_eq!(codec::decode::<Checkpoint>(&bytes).unwrap(), c);
        let mut other = c.clone();
        other.ledger_root = Hash32([8; 32]);
        assert_ne!(other.id(), c.id());
    }

    #[test]
    fn golden_encoding_is_pinned() {
        // height 7 (varint 1 byte), previous, 2 windows (len 1 byte), 2 × (id, root, entry
        // count 1 as a 1-byte varint), ledger root, inferences root, validator-set digest.
        let bytes = sample().to_bytes();
        assert_eq!(bytes.len(), 1 + 32 + 1 + 2 * (32 + 32 + 1) + 3 * 32);
        assert_eq!(bytes[34 + 64], 1, "the first window's entry count");
        assert_eq!(&bytes[bytes.len() - 64..bytes.len() - 32], &[10; 32]);
        assert_eq!(&bytes[bytes.len() - 32..], &[11; 32]);
        assert_eq!(bytes[0], 7);
        assert_eq!(bytes[33], 2);
        assert_eq!(
            sample().id().0.to_hex(),
            Hash32::of(&bytes).to_hex(),
            "id must stay blake3(encoding)"
        );
    }

    #[test]
    fn shape_rejects_unsorted_duplicate_and_out_of_range() {
        assert!(sample().check_shape().is_ok());
        let mut c = sample();
        c.windows.reverse();
        assert_eq!(c.check_shape(), Err(ShapeError::WindowsNotSorted));
        let mut c = sample();
        c.windows = vec![head(2, 3), head(2, 4)];
        assert_eq!(c.check_shape(), Err(ShapeError::WindowsNotSorted));
        let mut c = sample();
        c.height = 0;
        assert_eq!(c.check_shape(), Err(ShapeError::HeightOutOfRange(0)));
        let mut c = sample();
        c.windows = (0..=MAX_WINDOWS as u32)
            .map(|i| WindowHead::new(Hash32::of(&i.to_be_bytes()), &[]))
            .collect();
        c.windows.sort();
        assert_eq!(
            c.check_shape(),
            Err(ShapeError::TooManyWindows(MAX_WINDOWS + 1))
        );
    }

    #[test]
    fn a_checkpoint_stays_small_whatever_it_finalizes() {
        // A window of the most entries costs its head no more than a window of one: the list
        // travels apart, by root.
        let heads: Vec<Hash32> = (0..MAX_WINDOW_ENTRIES as u32)
            .map(|i| Hash32::of(&i.to_le_bytes()))
            .collect();
        let full = WindowHead::new(Hash32::default(), &heads);
        let mut c = sample();
        c.windows = (0..MAX_WINDOWS as u32)
            .map(|i| WindowHead {
                window: Hash32::of(&i.to_be_bytes()),
                ..full.clone()
            })
            .collect();
        c.windows.sort();
        assert_eq!(c.check_shape(), Ok(()));
        assert!(
            c.to_bytes().len() <= MAX_CHECKPOINT_SIZE,
            "{}",
            c.to_bytes().len()
        );
        let mut sorted = heads.clone();
        sorted.sort();
        assert!(c.windows[0].is_list(&sorted));
        assert!(!c.windows[0].is_list(&sorted[1..]));
        assert!(
            !c.windows[0].is_list(&heads),
            "an unsorted list is not the list"
        );
        // More entries than a window may hold, or an empty window with another root: refused.
        let mut c = sample();
        c.windows[0].entries = MAX_WINDOW_ENTRIES as u32 + 1;
        assert_eq!(
            c.check_shape(),
            Err(ShapeError::TooManyEntries(MAX_WINDOW_ENTRIES + 1))
        );
        let mut c = sample();
        c.windows[0].entries = 0;
        assert_eq!(c.check_shape(), Err(ShapeError::BadHeads));
    }

    #[test]
    fn value_equality_and_order_follow_the_id() {
        let a = CheckpointValue::new(sample());
        let b = CheckpointValue::new(sample());
        assert_eq!(a, b);
        assert_eq!(a.id(), sample().id());
        let mut c = sample();
        c.height = 8;
        let c = CheckpointValue::new(c);
        assert_ne!(a, c);
        assert_eq!(a.cmp(&c), a.id().cmp(&c.id()));
    }
}
