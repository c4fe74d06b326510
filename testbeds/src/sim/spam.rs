//! Validly signed spam from keys nobody funded or registered: what open participation lets
//! anyone send at no cost.
//!
//! Each burst makes [`SPAM_KEYS`] fresh keys. Each key signs
//! - ledger transfers with nonces `1..=`[`SPAM_NONCES`] (it holds nothing: it cannot pay the
//!   fee, let alone the amount), gossiped to every honest running replica;
//! - one worker bundle for the open epoch of every topic (it is registered nowhere), gossiped to
//!   every honest running replica, and also carried as its canonical automerge change in a sync
//!   message to one of them (sync must admit no more than gossip does);
//! - three evidence messages that prove nothing: [`JUNK_EVIDENCE_BYTES`] random bytes as both
//!   "messages", its own two transfers with different nonces, and two different bundles of the
//!   first topic's open epoch signed by itself (a key registered nowhere has no slot to
//!   equivocate in), gossiped to every honest running replica.
//!
//! The byzantine node also signs, with its own key (a registered worker), a bundle whose
//! inference is NaN for the open and the previous epoch of every topic ([`non_finite`]), sent
//! by sync to one honest replica: it must be rejected (its slot may hold the node's valid
//! bundle already; a second message is an equivocation only when it is valid itself).
//!
//! The runner remembers the change each message would be in a window; none may ever be held in
//! a window or named by a finalized head, and the honest network must keep every liveness
//! invariant while it arrives.

use chorus_crdt::replica::sim::SimRng;
use chorus_crdt::window::{Phase, WindowKey, build_change, slot_key};
use chorus_protocol::envelope::Envelope;
use chorus_protocol::genesis::Genesis;
use chorus_protocol::ids::{Amount, Hash32};
use chorus_protocol::keys::Keypair;
use chorus_protocol::messages::{Evidence, EvidenceKind, Payload, Transfer, WorkerBundle};
use chorus_protocol::validation::ChannelKind;

/// Fresh keys per burst.
pub const SPAM_KEYS: usize = 3;
/// Ledger messages per key and burst (nonces 1..=this).
pub const SPAM_NONCES: u64 = 4;
/// Size of each half of a random-bytes evidence message.
pub const JUNK_EVIDENCE_BYTES: usize = 4_096;
/// Interval between two bursts during the fault phase (virtual ms).
pub const SPAM_EVERY_MS: u64 = 1_000;

/// What kind of spam.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A ledger message from an account that holds nothing.
    Unfunded,
    /// A worker bundle from a key registered in no topic.
    Unregistered,
    /// Evidence from a key that holds nothing, proving nothing: random bytes as both messages.
    EvidenceBytes,
    /// Evidence of the key's own two ledger messages with different nonces.
    EvidenceNonces,
    /// Evidence of the key's own two bundles for one epoch (it is registered nowhere).
    EvidenceUnregistered,
    /// A registered worker's bundle with a NaN inference, carried by sync.
    NonFinite,
}

impl Kind {
    /// Its name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Unfunded => "unfunded ledger message",
            Kind::Unregistered => "unregistered worker bundle",
            Kind::EvidenceBytes => "evidence of random bytes",
            Kind::EvidenceNonces => "evidence of two nonces",
            Kind::EvidenceUnregistered => "evidence against an unregistered key",
            Kind::NonFinite => "NaN bundle of a registered worker",
        }
    }
}

/// One spam message.
#[derive(Clone, Debug)]
pub struct Spam {
    /// What it is.
    pub kind: Kind,
    /// The gossip channel it goes on.
    pub channel: ChannelKind,
    /// The envelope's bytes.
    pub bytes: Vec<u8>,
    /// The hash of the canonical change it would be in a window.
    pub change: Hash32,
    /// That change's bytes (for sync).
    pub raw_change: Vec<u8>,
    /// The window a bundle is for (`None` for ledger messages).
    pub window: Option<WindowKey>,
}

/// Counters of what a run's spammers sent (per behaviour, so a run cannot pass without them).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct SpamReport {
    /// Unfunded ledger messages gossiped (each to every honest running replica).
    pub unfunded_ledger: u64,
    /// Unregistered worker bundles gossiped.
    pub unregistered_bundles: u64,
    /// Junk evidence messages gossiped.
    pub junk_evidence: u64,
    /// Sync messages carrying unregistered bundles' changes.
    pub sync_messages: u64,
    /// Changes in them.
    pub sync_changes: u64,
    /// NaN bundles of a registered worker carried by sync.
    pub nan_by_sync: u64,
}

impl std::ops::AddAssign for SpamReport {
    fn add_assign(&mut self, o: SpamReport) {
        self.unfunded_ledger += o.unfunded_ledger;
        self.unregistered_bundles += o.unregistered_bundles;
        self.junk_evidence += o.junk_evidence;
        self.sync_messages += o.sync_messages;
        self.sync_changes += o.sync_changes;
        self.nan_by_sync += o.nan_by_sync;
    }
}

fn seal(kind: Kind, key: &Keypair, genesis: &Genesis, payload: Payload) -> Result<Spam, String> {
    let network = genesis.network_id();
    let bytes = Envelope::seal(key, &network, &payload).to_bytes();
    let change = build_change(&slot_key(&key.public(), &payload), &key.public(), &bytes)
        .map_err(|e| format!("spam change: {e}"))?;
    let (channel, window) = match &payload {
        Payload::WorkerBundle(b) => (
            ChannelKind::Workers(b.topic),
            Some(WindowKey::Topic {
                topic: b.topic,
                epoch: b.epoch,
                phase: Phase::Workers,
            }),
        ),
        _ => (ChannelKind::Ledger, None),
    };
    Ok(Spam {
        kind,
        channel,
        bytes,
        change: Hash32(change.hash().0),
        raw_change: change.raw_bytes().to_vec(),
        window,
    })
}

/// One burst of spam at virtual time `now_ms`.
pub fn burst(genesis: &Genesis, now_ms: u64, rng: &mut SimRng) -> Result<Vec<Spam>, String> {
    let mut out = vec![];
    for _ in 0..SPAM_KEYS {
        let mut seed = [0u8; 32];
        seed.copy_from_slice(&rng.bytes(32));
        let key = Keypair::from_seed(&seed);
        let to = Keypair::from_seed(&[seed[0] ^ 0xA5; 32]).public();
        for nonce in 1..=SPAM_NONCES {
            let payload = Payload::Transfer(Transfer {
                nonce,
                to,
                amount: Amount(1_000),
            });
            out.push(seal(Kind::Unfunded, &key, genesis, payload)?);
        }
        for t in &genesis.topics {
            let Some(epoch) = t.spec.epoch_at(now_ms) else {
                continue;
            };
            let payload = Payload::WorkerBundle(WorkerBundle {
                topic: t.id,
                epoch,
                inference: Some(rng.range(0, 1_000) as f64 / 1_000.0),
                forecasts: vec![],
            });
            out.push(seal(Kind::Unregistered, &key, genesis, payload)?);
        }
        let network = genesis.network_id();
        let signed = |payload: Payload| Envelope::seal(&key, &network, &payload).to_bytes();
        let transfer = |nonce| {
            signed(Payload::Transfer(Transfer {
                nonce,
                to,
                amount: Amount(1),
            }))
        };
        let mut junk = vec![
            (
                Kind::EvidenceBytes,
                Evidence {
                    kind: EvidenceKind::LedgerNonce,
                    first: rng.bytes(JUNK_EVIDENCE_BYTES),
                    second: rng.bytes(JUNK_EVIDENCE_BYTES),
                },
            ),
            (
                Kind::EvidenceNonces,
                Evidence {
                    kind: EvidenceKind::LedgerNonce,
                    first: transfer(1),
                    second: transfer(2),
                },
            ),
        ];
        if let Some(t) = genesis.topics.first()
            && let Some(epoch) = t.spec.epoch_at(now_ms)
        {
            let bundle = |inference| {
                signed(Payload::WorkerBundle(WorkerBundle {
                    topic: t.id,
                    epoch,
                    inference: Some(inference),
                    forecasts: vec![],
                }))
            };
            junk.push((
                Kind::EvidenceUnregistered,
                Evidence {
                    kind: EvidenceKind::WorkerBundle,
                    first: bundle(1.0),
                    second: bundle(2.0),
                },
            ));
        }
        for (kind, e) in junk {
            out.push(seal(kind, &key, genesis, Payload::Evidence(e))?);
        }
    }
    Ok(out)
}

/// NaN bundles signed by `key` (the byzantine node's own, a registered worker) for the open and
/// the previous epoch of every topic at `now_ms`.
pub fn non_finite(genesis: &Genesis, key: &Keypair, now_ms: u64) -> Result<Vec<Spam>, String> {
    let mut out = vec![];
    for t in &genesis.topics {
        let Some(open) = t.spec.epoch_at(now_ms) else {
            continue;
        };
        for epoch in open.saturating_sub(1)..=open {
            let payload = Payload::WorkerBundle(WorkerBundle {
                topic: t.id,
                epoch,
                inference: Some(f64::NAN),
                forecasts: vec![],
            });
            out.push(seal(Kind::NonFinite, key, genesis, payload)?);
        }
    }
    Ok(out)
}
