//! Window keys: which document an entry belongs to, and its slot inside it.

use bincode::{Decode, Encode};
use chorus_protocol::codec::{self, Wire};
use chorus_protocol::ids::{Hash32, TopicId};
use chorus_protocol::keys::PublicKey;
use chorus_protocol::messages::{Payload, PayloadClass};

/// The two per-epoch windows of a topic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Encode, Decode)]
pub enum Phase {
    /// Worker bundles (inferences and forecasts).
    Workers,
    /// Reputer loss bundles.
    Reputers,
}

/// One replicated document: a (topic, epoch, phase) window or a ledger period.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Encode, Decode)]
pub enum WindowKey {
    /// Worker or reputer submissions of one topic epoch.
    Topic {
        /// The topic.
        topic: TopicId,
        /// The epoch.
        epoch: u64,
        /// Which submissions.
        phase: Phase,
    },
    /// Ledger messages gathered during one checkpoint period.
    Ledger {
        /// The checkpoint period (= checkpoint height).
        period: u64,
    },
}

impl Wire for WindowKey {
    const MAX_SIZE: usize = 64;
    const NAME: &'static str = "WindowKey";
}

impl WindowKey {
    /// The window's id: blake3 of its canonical encoding.
    pub fn id(&self) -> Hash32 {
        Hash32::of_parts("chorus/window/v1", &[&codec::encode(self)])
    }

    /// Whether a payload belongs in this window.
    pub fn accepts(&self, payload: &Payload) -> bool {
        match (self, payload) {
            (
                WindowKey::Topic {
                    topic,
                    epoch,
                    phase: Phase::Workers,
                },
                p,
            ) if p.class() == PayloadClass::Worker => p.worker_epoch() == Some((*topic, *epoch)),
            (
                WindowKey::Topic {
                    topic,
                    epoch,
                    phase: Phase::Reputers,
                },
                Payload::ReputerBundle(b),
            ) => b.topic == *topic && b.epoch == *epoch,
            (WindowKey::Ledger { .. }, p) => p.class() == PayloadClass::Ledger,
            _ => false,
        }
    }

    /// The window of a payload (ledger payloads go to the given current period).
    pub fn of(payload: &Payload, ledger_period: u64) -> WindowKey {
        if let Some((topic, epoch)) = payload.worker_epoch() {
            return WindowKey::Topic {
                topic,
                epoch,
                phase: Phase::Workers,
            };
        }
        match payload {
            Payload::ReputerBundle(b) => WindowKey::Topic {
                topic: b.topic,
                epoch: b.epoch,
                phase: Phase::Reputers,
            },
            _ => WindowKey::Ledger {
                period: ledger_period,
            },
        }
    }
}

/// The map key of an entry: the author's hex key in topic windows; author and nonce in ledger
/// windows (`<hex>:<nonce>`); `<hex>:reveal` for a commit-reveal topic's reveal (its commitment
/// has the author's slot); `evidence:<content hash>:<reporter hex>` for evidence.
pub fn slot_key(author: &PublicKey, payload: &Payload) -> String {
    match payload {
        Payload::WorkerBundle(_) | Payload::WorkerCommit(_) | Payload::ReputerBundle(_) => {
            author.to_hex()
        }
        Payload::WorkerReveal(_) => format!("{}:reveal", author.to_hex()),
        Payload::Evidence(_) => match chorus_protocol::validation::Slot::of(*author, payload) {
            chorus_protocol::validation::Slot::Evidence { content, author } => {
                format!("evidence:{content}:{}", author.to_hex())
            }
            _ => format!("evidence:{}", author.to_hex()),
        },
        other => format!("{}:{}", author.to_hex(), other.nonce().unwrap_or(0)),
    }
}
