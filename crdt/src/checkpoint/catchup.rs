//! Catch-up: decided checkpoints with their certificates, the bounded history a node serves,
//! and the rate limits of the request/response protocol.
//!
//! Protocol (pull, one height at a time):
//! 1. A node at height `h` that receives a consensus message for height `≥ h + 2` from peer
//!    `p`, or messages for `h + 1` for longer than `EngineConfig::catch_up_grace_ms` (peers
//!    that finish a height first send next-height messages while their precommits are still
//!    on the way), sends `p` a `CatchUpRequest { height: h }` (at most once per
//!    `EngineConfig::catch_up_retry_ms` for the same `h`). It remembers the highest height
//!    seen and the latest peer that sent it. A `CatchUp` timer re-checks when the grace
//!    period ends and retries (to that peer: the first may be gone) every
//!    `catch_up_retry_ms` while the node is still behind, so a lost request or response
//!    does not wait for the next message from ahead.
//! 2. A node that has decided `h` answers a request with `CatchUpResponse(DecidedCheckpoint)`
//!    (at most once per retry interval per `(peer, h)`). If `h` is older than its in-memory
//!    history it emits `Effect::CatchUpMiss` so the host can answer from storage.
//! 3. The requester feeds the response to Malachite as a `SyncValueResponse`: Malachite asks
//!    us to verify the certificate against *the requester's* validator set of `h` (> 2/3 of
//!    the power, valid distinct precommits for the checkpoint id), then hands the checkpoint
//!    bytes back; we check the id and feed it as a synced proposed value, and Malachite
//!    decides it.
//! 4. On deciding `h` the node moves to `h + 1` and, if it knows a peer that is further
//!    ahead, asks it for `h + 1` at once: a node `k` heights behind catches up in `k` round
//!    trips.

use std::collections::BTreeMap;

use bincode::{Decode, Encode};
use chorus_protocol::codec::Wire;
use chorus_protocol::ids::Hash32;
use chorus_protocol::keys::PublicKey;

use super::certificate::CommitCertificate;
use super::error::{CertificateError, ShapeError};
use super::limits::{MAX_CATCH_UP_RATE_ENTRIES, MAX_MESSAGE_SIZE};
use super::validators::ValidatorSet;
use super::value::{Checkpoint, CheckpointId};

/// Peers whose claimed height catch-up remembers (the lowest claims are forgotten first).
pub const MAX_CLAIMS: usize = 256;

/// A peer of the network. In Chorus a node's ed25519 key is also its libp2p identity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PeerId(pub PublicKey);

/// A decided checkpoint and the certificate that proves it.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct DecidedCheckpoint {
    /// The checkpoint.
    pub checkpoint: Checkpoint,
    /// Precommits of > 2/3 of the power of the checkpoint's height for its id.
    pub certificate: CommitCertificate,
}

impl Wire for DecidedCheckpoint {
    const MAX_SIZE: usize = MAX_MESSAGE_SIZE;
    const NAME: &'static str = "DecidedCheckpoint";
}

impl DecidedCheckpoint {
    /// The checkpoint's id.
    pub fn id(&self) -> CheckpointId {
        self.checkpoint.id()
    }

    /// Height.
    pub fn height(&self) -> u64 {
        self.checkpoint.height
    }

    /// Structural checks of both parts, and that they name the same height.
    pub fn check_shape(&self) -> Result<(), ShapeError> {
        self.checkpoint.check_shape()?;
        self.certificate.check_shape()?;
        if self.certificate.height != self.checkpoint.height {
            return Err(ShapeError::HeightMismatch {
                proposal: self.certificate.height,
                checkpoint: self.checkpoint.height,
            });
        }
        Ok(())
    }

    /// Verify that the certificate proves this checkpoint under `set`, the validator set of
    /// the checkpoint's height. This is the whole check an offline node makes per height.
    pub fn verify(&self, network: &Hash32, set: &ValidatorSet) -> Result<(), CertificateError> {
        if self.certificate.height != self.checkpoint.height || self.certificate.value != self.id()
        {
            return Err(CertificateError::Mismatch);
        }
        self.certificate.verify(network, set)
    }

    /// Integrity of a stored record, without the validator set of its height (which may be
    /// long gone): its shape, the certificate names this checkpoint, and every signature in it
    /// verifies. A flipped byte anywhere fails one of these.
    pub fn check_integrity(&self, network: &Hash32) -> Result<(), CertificateError> {
        use super::certificate::VoteCertificate;
        self.check_shape().map_err(|_| CertificateError::Mismatch)?;
        if self.certificate.value != self.id() {
            return Err(CertificateError::Mismatch);
        }
        for (vote, signature) in self.certificate.votes() {
            let key = vote.validator.0;
            if !super::signing::verify_vote(network, &vote, &signature, &key) {
                return Err(CertificateError::BadSignature(key));
            }
        }
        Ok(())
    }
}

/// The decided checkpoints a node keeps in memory: the last `retention` heights (at least
/// the tip). The host persists every `Effect::Decided` and may serve older heights itself.
#[derive(Debug, Clone)]
pub struct DecidedStore {
    entries: BTreeMap<u64, DecidedCheckpoint>,
    retention: usize,
}

impl DecidedStore {
    /// An empty store keeping `retention` (≥ 1) heights.
    pub fn new(retention: usize) -> Self {
        DecidedStore {
            entries: BTreeMap::new(),
            retention: retention.max(1),
        }
    }

    /// Add a decided checkpoint; evicts the oldest beyond the retention.
    pub fn insert(&mut self, decided: DecidedCheckpoint) {
        self.entries.insert(decided.height(), decided);
        while self.entries.len() > self.retention {
            self.entries.pop_first();
        }
    }

    /// The decided checkpoint of `height`, if retained.
    pub fn get(&self, height: u64) -> Option<&DecidedCheckpoint> {
        self.entries.get(&height)
    }

    /// The highest decided checkpoint.
    pub fn tip(&self) -> Option<&DecidedCheckpoint> {
        self.entries.last_key_value().map(|(_, d)| d)
    }

    /// Lowest retained height.
    pub fn oldest(&self) -> Option<u64> {
        self.entries.first_key_value().map(|(h, _)| *h)
    }

    /// Forget heights below `height` (the tip is always kept).
    pub fn prune_below(&mut self, height: u64) {
        let tip = self.tip().map(|d| d.height());
        self.entries.retain(|h, _| *h >= height || Some(*h) == tip);
    }
}

/// Whether a node that sees a message of a higher height is behind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Lag {
    /// Behind: ask for catch-up now.
    Lagging,
    /// First next-height message: check again at this time.
    GraceStarted(u64),
    /// Within the grace period.
    Waiting,
}

/// Rate limits and knowledge of peers ahead of us.
#[derive(Debug, Default)]
pub(crate) struct CatchUpState {
    /// Height we last asked for, and when.
    requested: Option<(u64, u64)>,
    /// The highest height each peer's messages claimed (at most [`MAX_CLAIMS`] peers). A claim
    /// is not proof: retries rotate over every peer that claims to be ahead, so a peer that
    /// claims a height it cannot serve delays catch-up by one retry, never pins it.
    claims: BTreeMap<PeerId, u64>,
    /// The peer asked last (rotation starts after it).
    last_asked: Option<PeerId>,
    /// When we last served `(peer, height)`.
    served: BTreeMap<(PeerId, u64), u64>,
    /// While at this height, when we first saw a message of the next height.
    first_ahead: Option<(u64, u64)>,
}

impl CatchUpState {
    /// Note that `peer` sent a message for `height`.
    pub(crate) fn note_height(&mut self, peer: PeerId, height: u64) {
        let claim = self.claims.entry(peer).or_insert(0);
        *claim = (*claim).max(height);
        if self.claims.len() > MAX_CLAIMS {
            // Forget the lowest claim.
            if let Some(low) = self.claims.iter().min_by_key(|(_, h)| **h).map(|(p, _)| *p) {
                self.claims.remove(&low);
            }
        }
    }

    /// The highest height any peer claimed.
    pub(crate) fn highest_claim(&self) -> Option<u64> {
        self.claims.values().max().copied()
    }

    /// The next peer to ask for `current`: the peers claiming a height above it, in key order,
    /// starting after the one asked last.
    pub(crate) fn next_peer(&mut self, current: u64) -> Option<PeerId> {
        let ahead = |(p, h): (&PeerId, &u64)| (*h > current).then_some(*p);
        let after = self.last_asked.and_then(|last| {
            self.claims
                .range((std::ops::Bound::Excluded(last), std::ops::Bound::Unbounded))
                .find_map(ahead)
        });
        let peer = after.or_else(|| self.claims.iter().find_map(ahead))?;
        self.last_asked = Some(peer);
        Some(peer)
    }

    /// `peer` answered a catch-up request with something that does not verify: its claims no
    /// longer count.
    pub(crate) fn forget(&mut self, peer: &PeerId) {
        self.claims.remove(peer);
    }

    /// Classify a message for `msg_height > current` arriving at a node at `current`:
    /// lagging if the message is two or more heights ahead (so `current` was decided at
    /// least one height ago), or if messages of the next height have been arriving for
    /// `grace_ms` (peers usually finish a height a little earlier; their precommits are on
    /// the way). The first next-height message starts the grace period.
    pub(crate) fn classify(
        &mut self,
        current: u64,
        msg_height: u64,
        now_ms: u64,
        grace_ms: u64,
    ) -> Lag {
        if msg_height >= current.saturating_add(2) {
            return Lag::Lagging;
        }
        match self.first_ahead {
            Some((h, at)) if h == current => {
                if now_ms >= at.saturating_add(grace_ms) {
                    Lag::Lagging
                } else {
                    Lag::Waiting
                }
            }
            _ => {
                self.first_ahead = Some((current, now_ms));
                if grace_ms == 0 {
                    Lag::Lagging
                } else {
                    Lag::GraceStarted(now_ms.saturating_add(grace_ms))
                }
            }
        }
    }

    /// Whether a request for `height` would be sent now (without recording one).
    pub(crate) fn due(&self, height: u64, now_ms: u64, retry_ms: u64) -> bool {
        !matches!(self.requested, Some((h, at)) if h == height && now_ms < at.saturating_add(retry_ms))
    }

    /// Whether to ask for `height` now (not asked within `retry_ms`).
    pub(crate) fn should_request(&mut self, height: u64, now_ms: u64, retry_ms: u64) -> bool {
        let due = self.due(height, now_ms, retry_ms);
        if due {
            self.requested = Some((height, now_ms));
        }
        due
    }

    /// Whether to answer `peer` for `height` now (not answered within `retry_ms`).
    pub(crate) fn should_serve(
        &mut self,
        peer: PeerId,
        height: u64,
        now_ms: u64,
        retry_ms: u64,
    ) -> bool {
        if let Some(at) = self.served.get(&(peer, height))
            && now_ms < at.saturating_add(retry_ms)
        {
            return false;
        }
        if self.served.len() >= MAX_CATCH_UP_RATE_ENTRIES {
            // Drop the oldest entry (smallest timestamp).
            if let Some(oldest) = self
                .served
                .iter()
                .min_by_key(|(_, at)| **at)
                .map(|(k, _)| *k)
            {
                self.served.remove(&oldest);
            }
        }
        self.served.insert((peer, height), now_ms);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chorus_protocol::keys::Keypair;

    fn peer(i: u8) -> PeerId {
        PeerId(Keypair::from_seed(&[i; 32]).public())
    }

    #[test]
    fn request_and_serve_are_rate_limited() {
        let mut s = CatchUpState::default();
        assert!(s.should_request(5, 0, 100));
        assert!(!s.should_request(5, 50, 100));
        assert!(s.should_request(5, 100, 100));
        assert!(
            s.should_request(6, 101, 100),
            "a new height is asked at once"
        );
        assert!(s.should_serve(peer(1), 5, 0, 100));
        assert!(!s.should_serve(peer(1), 5, 10, 100));
        assert!(s.should_serve(peer(2), 5, 10, 100));
        assert_eq!(
            s.classify(5, 7, 0, 100),
            Lag::Lagging,
            "two heights ahead: at once"
        );
        assert_eq!(s.classify(5, 6, 0, 100), Lag::GraceStarted(100));
        assert_eq!(s.classify(5, 6, 99, 100), Lag::Waiting);
        assert_eq!(s.classify(5, 6, 100, 100), Lag::Lagging);
        assert_eq!(
            s.classify(6, 7, 100, 100),
            Lag::GraceStarted(200),
            "a new height restarts it"
        );
    }

    /// A peer claiming a height far ahead (a forged "ahead") does not pin catch-up: retries
    /// rotate over every peer that claims to be ahead, and one whose answer did not verify is
    /// forgotten.
    #[test]
    fn catch_up_rotates_over_the_peers_ahead() {
        let mut s = CatchUpState::default();
        s.note_height(peer(1), 1_000_000_000);
        s.note_height(peer(2), 8);
        s.note_height(peer(3), 4);
        assert_eq!(s.highest_claim(), Some(1_000_000_000));
        let asked: Vec<_> = (0..4).filter_map(|_| s.next_peer(5)).collect();
        // Both peers ahead, alternately (in key order); peer 3 is behind.
        assert_eq!(asked.len(), 4);
        assert_ne!(asked[0], asked[1]);
        assert_eq!((asked[0], asked[1]), (asked[2], asked[3]));
        assert!(asked.contains(&peer(1)) && asked.contains(&peer(2)));
        s.forget(&peer(1));
        assert_eq!(s.next_peer(5), Some(peer(2)));
        assert_eq!(s.next_peer(5), Some(peer(2)));
        assert_eq!(s.highest_claim(), Some(8));
        assert_eq!(s.next_peer(8), None);
    }

    #[test]
    fn store_keeps_retention_and_tip() {
        let mut store = DecidedStore::new(2);
        for h in 1..=4 {
            store.insert(DecidedCheckpoint {
                checkpoint: Checkpoint {
                    height: h,
                    previous: Hash32::default(),
                    windows: vec![],
                    ledger_root: Hash32::default(),
                    inferences: Hash32::default(),
                    validators: Hash32::default(),
                },
                certificate: CommitCertificate {
                    height: h,
                    round: 0,
                    value: CheckpointId::default(),
                    signatures: vec![],
                },
            });
        }
        assert_eq!(store.oldest(), Some(3));
        assert_eq!(store.tip().map(|d| d.height()), Some(4));
        store.prune_below(10);
        assert_eq!(store.oldest(), Some(4));
    }
}
