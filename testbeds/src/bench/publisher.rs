//! Many synthetic workers in one process: a bare libp2p swarm (the node's own builder) signs one
//! bundle per worker key, topic and epoch and gossips them to the nodes it dialed, **paced**.
//!
//! Real workers are separate processes that publish one bundle each; one process standing in
//! for 10 000 of them must not put 10 000 messages into gossipsub at once: each connection's
//! send queue holds 5 000 and the rest are dropped ("Send Queue full"). So an epoch's bundles
//! are queued and handed to gossipsub at a steady rate over the first three quarters of the worker window,
//! and a bundle every queue refused is kept and offered again.
//!
//! Also here: how many of them the certificates a node stored finalized ([`finalized_bundles`]).

use std::collections::{BTreeMap, VecDeque};
use std::ops::RangeInclusive;
use std::path::Path;
use std::time::Duration;

use chorus_crdt::checkpoint::DecidedCheckpoint;
use chorus_crdt::window::key::{Phase, WindowKey};
use chorus_node::net::Behaviour;
use chorus_protocol::codec;
use chorus_protocol::envelope::Envelope;
use chorus_protocol::ids::{Hash32, NetworkId, TopicId};
use chorus_protocol::keys::Keypair;
use chorus_protocol::messages::{Payload, WorkerBundle};
use chorus_protocol::validation::{Channel, ChannelKind};
use futures::StreamExt;
use libp2p::gossipsub::IdentTopic;
use libp2p::{Multiaddr, Swarm};

/// The paced publisher.
pub struct Publisher {
    swarm: Swarm<Behaviour>,
    network: NetworkId,
    /// Topic `t`'s worker channel at `t − 1`.
    channels: Vec<IdentTopic>,
    /// Sealed bundles not yet taken by gossipsub: (topic index, bytes).
    queue: VecDeque<(usize, Vec<u8>)>,
    /// Bundles handed to gossipsub.
    pub published: u64,
    /// Offers refused because every connection's queue was full (offered again later).
    pub refused: u64,
    /// Bundles still queued when their worker window closed (never published).
    pub dropped: u64,
}

impl Publisher {
    /// A swarm with its own key, subscribed to the worker channels of topics `1..=topics`,
    /// dialing `targets`.
    pub fn new(network: NetworkId, topics: u64, targets: &[Multiaddr]) -> anyhow::Result<Self> {
        let me = Keypair::from_seed(&[0x77; 32]);
        let mut swarm = chorus_node::net::build_swarm(&me, &Default::default())?;
        let channels: Vec<IdentTopic> = (1..=topics)
            .map(|t| {
                IdentTopic::new(
                    Channel {
                        network,
                        kind: ChannelKind::Workers(TopicId(t)),
                    }
                    .name(),
                )
            })
            .collect();
        for c in &channels {
            swarm.behaviour_mut().gossipsub.subscribe(c)?;
        }
        for t in targets {
            swarm.dial(t.clone())?;
        }
        Ok(Publisher {
            swarm,
            network,
            channels,
            queue: VecDeque::new(),
            published: 0,
            refused: 0,
            dropped: 0,
        })
    }

    /// Seal one bundle of `epoch` for every key and topic and queue them (worker `j`'s
    /// inference is distinct per worker and epoch).
    pub fn queue_epoch(&mut self, keys: &[Keypair], epoch: u64) {
        for (t, _) in self.channels.iter().enumerate() {
            for (j, k) in keys.iter().enumerate() {
                let payload = Payload::WorkerBundle(WorkerBundle {
                    topic: TopicId(t as u64 + 1),
                    epoch,
                    inference: Some(0.001 + (j as f64) * 1e-6 + (epoch as f64) * 1e-7),
                    forecasts: vec![],
                });
                let bytes = Envelope::seal(k, &self.network, &payload).to_bytes();
                self.queue.push_back((t, bytes));
            }
        }
    }

    /// Bundles still queued.
    pub fn pending(&self) -> usize {
        self.queue.len()
    }

    /// Give up the queued bundles (their window closed); counted in `dropped`.
    pub fn drop_pending(&mut self) {
        self.dropped += self.queue.len() as u64;
        self.queue.clear();
    }

    /// Hand at most `n` queued bundles to gossipsub; stops at the first one every connection
    /// refused (it stays first in the queue).
    pub fn offer(&mut self, n: usize) {
        for _ in 0..n {
            let Some((t, bytes)) = self.queue.pop_front() else {
                return;
            };
            let channel = self.channels[t].clone();
            match self
                .swarm
                .behaviour_mut()
                .gossipsub
                .publish(channel, bytes.clone())
            {
                Ok(_) => self.published += 1,
                // Already seen (a duplicate of a bundle gossip took): nothing to resend.
                Err(libp2p::gossipsub::PublishError::Duplicate) => {}
                Err(_) => {
                    self.refused += 1;
                    self.queue.push_front((t, bytes));
                    return;
                }
            }
        }
    }

    /// Drive the swarm (connections, gossip) for `d`.
    pub async fn run_for(&mut self, d: Duration) {
        let until = tokio::time::Instant::now() + d;
        loop {
            tokio::select! {
                _ = self.swarm.select_next_some() => {}
                _ = tokio::time::sleep_until(until) => return,
            }
        }
    }
}

/// What the certificates a node stored finalized.
#[derive(Clone, Debug, Default)]
pub struct Finalized {
    /// Bundles of each `(topic, epoch)` worker window asked about (0 for a window no
    /// certificate names).
    pub bundles: BTreeMap<(u64, u64), u32>,
    /// Highest height.
    pub last_height: u64,
    /// Most entries one height finalized (every window it closes), and that height.
    pub max_height_entries: (u64, u64),
}

/// Read the certificates of a closed node store: the bundles of the worker windows of topics
/// `1..=topics` and `epochs`, and the largest height.
pub fn finalized_bundles(
    store: &Path,
    network: &NetworkId,
    topics: u64,
    epochs: RangeInclusive<u64>,
) -> anyhow::Result<Finalized> {
    let db = chorus_node::store::ops::open(store, network)?;
    let mut by_window: BTreeMap<Hash32, u32> = BTreeMap::new();
    let mut out = Finalized::default();
    for (h, bytes) in chorus_node::store::ops::certificates_from(&db, 1)? {
        let d: DecidedCheckpoint =
            codec::decode(&bytes).map_err(|e| anyhow::anyhow!("certificate of height {h}: {e}"))?;
        let mut entries = 0u64;
        for w in &d.checkpoint.windows {
            by_window.insert(w.window, w.entries);
            entries += u64::from(w.entries);
        }
        out.last_height = out.last_height.max(h);
        if entries > out.max_height_entries.0 {
            out.max_height_entries = (entries, h);
        }
    }
    for topic in 1..=topics {
        for epoch in epochs.clone() {
            let key = WindowKey::Topic {
                topic: TopicId(topic),
                epoch,
                phase: Phase::Workers,
            };
            out.bundles.insert(
                (topic, epoch),
                by_window.get(&key.id()).copied().unwrap_or(0),
            );
        }
    }
    Ok(out)
}
