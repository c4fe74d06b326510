//! The node's Prometheus metrics, built on `prometheus-client`, served at `GET /metrics`.
//!
//! One [`NodeMetrics`] per node holds every metric in one registry with the prefix `chorus`;
//! libp2p's own metrics register into the same registry ([`NodeMetrics::registry`], e.g.
//! `libp2p::metrics::Metrics::new(&mut metrics.registry())`). The recording methods are
//! synchronous, cheap (atomics behind a read lock) and never fail, so the actor calls them
//! inline.
//!
//! Names follow the style of Allora's off-chain node (`allora_worker_inference_request_count`,
//! `allora_worker_chain_submission_count`, `allora_reputer_truth_request_count`, …) with our
//! prefix and OpenMetrics suffixes (`_total` for counters, the unit for histograms):
//!
//! | metric | type | labels | meaning |
//! |---|---|---|---|
//! | `chorus_gossip_messages_received_total` | counter | `channel` | gossip messages received, by channel kind (`workers`, `reputers`, `ledger`, `consensus`) |
//! | `chorus_gossip_messages_published_total` | counter | `channel` | gossip messages this node published |
//! | `chorus_validation_outcomes_total` | counter | `kind`, `outcome`, `reason` | validation results (`outcome` = `accept`/`reject`/`ignore`; `reason` empty when accepted) |
//! | `chorus_inferences_published_total` | counter | `topic` | worker bundles this node published (Allora: `allora_worker_chain_submission_count`) |
//! | `chorus_inferences_received_total` | counter | `topic` | valid worker bundles stored in this node's windows (from gossip, sync and its own) |
//! | `chorus_losses_published_total` | counter | `topic` | reputer loss bundles this node published (Allora: `allora_reputer_chain_submission_count`) |
//! | `chorus_model_requests_total` | counter | `topic`, `kind`, `outcome` | model and truth-source calls, every try counted (`kind` = `inference`/`forecast`/`truth`; `outcome` = `ok` or the reason code; Allora: `allora_worker_inference_request_count`, …) |
//! | `chorus_epochs_missed_total` | counter | `topic`, `reason` | epochs a duty was not done, once per epoch whatever the number of tries, by reason code (`timeout`, `connect`, `request`, `status`, `not_a_number`, `non_finite`, `empty`, `missing`, `exit`, `spawn`, `no_token`, `unsafe_token`, `invalid_url`, `tls_config`, `not_ready`, `not_registered`, `truth_unavailable`, `loss`, `loss_service`, `deadline`, …) |
//! | `chorus_queue_drops_total` | counter | `queue` | items dropped by a full bounded queue |
//! | `chorus_peer_penalties_total` | counter | `offence` | penalties this node gave peers, by offence kind (`invalid_entries`, `malformed_sync`, `bad_heads`, `malformed_consensus`, `consensus`) |
//! | `chorus_gossip_latency_seconds` | histogram | | delay from a message's window opening (or send time) to its receipt |
//! | `chorus_sync_latency_seconds` | histogram | | round trip of one anti-entropy sync message (request to answer) |
//! | `chorus_finality_latency_seconds` | histogram | | delay from a window's close to the checkpoint that finalized it |
//! | `chorus_checkpoint_height` | gauge | | height of the latest finalized checkpoint |
//! | `chorus_clock_offset_ms` | gauge | | peers' median clock minus this node's (ms; 0 until 3 peers answered); beyond `max_clock_skew_ms` the node does not propose |
//! | `chorus_proposals_passed_total` | counter | | turns to propose passed up because this node's clock is off by more than `max_clock_skew_ms` |
//! | `chorus_stalled_height` | gauge | | 0, or the decided height this node cannot apply (it is stuck before it; `/v1/status` `stalled` says why) |
//! | `chorus_store_size_bytes` | gauge | | bytes the redb file occupies on disk (its allocated blocks; updated every 10 s and after a compaction) |
//! | `chorus_store_envelope_bytes` | gauge | | bytes of the signed envelopes in the store (the source of truth; the file holds them, indexes, derived rows and free pages) |
//! | `chorus_store_envelopes` | gauge | | signed envelopes in the store |
//! | `chorus_store_free_bytes` | gauge | | bytes of free pages in the store file at the last compaction check (`[store] compact_check_secs`) |
//! | `chorus_store_compactions_total` | counter | | background compactions of the store file (`[store] compact_free_percent`) |
//! | `chorus_store_compacted_bytes_total` | counter | | bytes those compactions gave back to the file system |
//! | `chorus_store_compaction_seconds` | histogram | | how long each compaction held the storage thread (writes wait meanwhile) |
//! | `chorus_store_pruned_total` | counter | `kind` | finalized history deleted by the retention (`[store]`), by kind: `windows`, `envelopes`, `certificates`, `inferences`, `statements` |
//! | `chorus_connected_peers` | gauge | | connected libp2p peers |
//!
//! A labeled metric appears on the page after its first event (an empty family prints
//! nothing); unlabeled ones are always present.
//!
//! Label values come from small fixed sets (channel kinds, message kinds, reason codes, topic
//! ids of topics the node serves): never put addresses or free text in them.

use std::sync::Mutex;
use std::time::Duration;

use chorus_protocol::ids::TopicId;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

/// Prefix of every metric of ours.
pub const METRICS_PREFIX: &str = "chorus";

/// Gossip latency buckets: 1 ms doubling 16 times (up to ~33 s): gossip on a healthy network
/// takes tens of milliseconds, a message arriving seconds late is worth seeing.
const GOSSIP_BUCKETS: (f64, f64, u16) = (0.001, 2.0, 16);
/// Sync session buckets: 10 ms doubling 16 times (up to ~5.5 min): a catch-up after a long
/// absence runs for minutes.
const SYNC_BUCKETS: (f64, f64, u16) = (0.01, 2.0, 16);
/// Finality buckets: 100 ms doubling 16 times (up to ~55 min): checkpoint periods are seconds
/// to minutes; finality waits longer while less than 2/3 of stake is reachable.
const FINALITY_BUCKETS: (f64, f64, u16) = (0.1, 2.0, 16);
/// Compaction buckets: 1 ms doubling 16 times (up to ~33 s): 0.13 s for a 135 MB store.
const COMPACTION_BUCKETS: (f64, f64, u16) = (0.001, 2.0, 16);

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ChannelLabels {
    channel: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ValidationLabels {
    kind: String,
    outcome: String,
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TopicLabels {
    topic: u64,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ModelLabels {
    topic: u64,
    kind: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MissedLabels {
    topic: u64,
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueueLabels {
    queue: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OffenceLabels {
    offence: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

/// Every metric of a node, in one registry (libp2p's metrics register into it too).
#[derive(Debug)]
pub struct NodeMetrics {
    registry: Mutex<Registry>,
    gossip_received: Family<ChannelLabels, Counter>,
    gossip_published: Family<ChannelLabels, Counter>,
    validation: Family<ValidationLabels, Counter>,
    inferences_published: Family<TopicLabels, Counter>,
    inferences_received: Family<TopicLabels, Counter>,
    losses_published: Family<TopicLabels, Counter>,
    model_requests: Family<ModelLabels, Counter>,
    epochs_missed: Family<MissedLabels, Counter>,
    queue_drops: Family<QueueLabels, Counter>,
    peer_penalties: Family<OffenceLabels, Counter>,
    store_pruned: Family<KindLabels, Counter>,
    gossip_latency: Histogram,
    sync_latency: Histogram,
    finality_latency: Histogram,
    checkpoint_height: Gauge,
    stalled_height: Gauge,
    clock_offset: Gauge,
    proposals_passed: Counter,
    store_bytes: Gauge,
    store_envelope_bytes: Gauge,
    store_envelopes: Gauge,
    store_free_bytes: Gauge,
    store_compactions: Counter,
    store_compacted_bytes: Counter,
    store_compaction: Histogram,
    connected_peers: Gauge,
}

impl Default for NodeMetrics {
    fn default() -> Self {
        Self::new()
    }
}

fn histogram((start, factor, count): (f64, f64, u16)) -> Histogram {
    Histogram::new(exponential_buckets(start, factor, count))
}

/// Gauges are i64: clamp counts that could in theory exceed it.
fn gauge_value(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl NodeMetrics {
    /// Every metric registered, all at zero.
    pub fn new() -> Self {
        let m = NodeMetrics {
            registry: Mutex::new(Registry::with_prefix(METRICS_PREFIX)),
            gossip_received: Family::default(),
            gossip_published: Family::default(),
            validation: Family::default(),
            inferences_published: Family::default(),
            inferences_received: Family::default(),
            losses_published: Family::default(),
            model_requests: Family::default(),
            epochs_missed: Family::default(),
            queue_drops: Family::default(),
            peer_penalties: Family::default(),
            store_pruned: Family::default(),
            gossip_latency: histogram(GOSSIP_BUCKETS),
            sync_latency: histogram(SYNC_BUCKETS),
            finality_latency: histogram(FINALITY_BUCKETS),
            checkpoint_height: Gauge::default(),
            stalled_height: Gauge::default(),
            clock_offset: Gauge::default(),
            proposals_passed: Counter::default(),
            store_bytes: Gauge::default(),
            store_envelope_bytes: Gauge::default(),
            store_envelopes: Gauge::default(),
            store_free_bytes: Gauge::default(),
            store_compactions: Counter::default(),
            store_compacted_bytes: Counter::default(),
            store_compaction: histogram(COMPACTION_BUCKETS),
            connected_peers: Gauge::default(),
        };
        {
            let mut r = m.registry();
            r.register(
                "gossip_messages_received",
                "Gossip messages received, by channel kind",
                m.gossip_received.clone(),
            );
            r.register(
                "gossip_messages_published",
                "Gossip messages published by this node, by channel kind",
                m.gossip_published.clone(),
            );
            r.register(
                "validation_outcomes",
                "Validation results by message kind, outcome (accept/reject/ignore) and reason",
                m.validation.clone(),
            );
            r.register(
                "inferences_published",
                "Worker bundles (inferences and forecasts) this node published, by topic",
                m.inferences_published.clone(),
            );
            r.register(
                "inferences_received",
                "Valid worker bundles received from other workers, by topic",
                m.inferences_received.clone(),
            );
            r.register(
                "losses_published",
                "Reputer loss bundles this node published, by topic",
                m.losses_published.clone(),
            );
            r.register(
                "model_requests",
                "Model and truth-source requests by topic, kind (inference/forecast/truth) and outcome",
                m.model_requests.clone(),
            );
            r.register(
                "epochs_missed",
                "Epochs in which a duty of this node was not done, by topic and reason",
                m.epochs_missed.clone(),
            );
            r.register(
                "queue_drops",
                "Items dropped by a full bounded queue, by queue",
                m.queue_drops.clone(),
            );
            r.register(
                "peer_penalties",
                "Penalties this node gave peers, by offence kind",
                m.peer_penalties.clone(),
            );
            r.register(
                "store_pruned",
                "Finalized history deleted by the retention, by kind",
                m.store_pruned.clone(),
            );
            for (name, help, histogram) in [
                (
                    "gossip_latency",
                    "Delay from a message's send time (or its window opening) to its receipt",
                    &m.gossip_latency,
                ),
                (
                    "sync_latency",
                    "Round trip of one anti-entropy sync message (request to answer)",
                    &m.sync_latency,
                ),
                (
                    "finality_latency",
                    "Delay from a window's close to the checkpoint that finalized it",
                    &m.finality_latency,
                ),
                (
                    "store_compaction",
                    "How long each background compaction held the storage thread",
                    &m.store_compaction,
                ),
            ] {
                r.register_with_unit(name, help, Unit::Seconds, histogram.clone());
            }
            r.register(
                "checkpoint_height",
                "Height of the latest finalized checkpoint",
                m.checkpoint_height.clone(),
            );
            r.register(
                "stalled_height",
                "0, or the decided height this node cannot apply",
                m.stalled_height.clone(),
            );
            r.register(
                "clock_offset_ms",
                "Peers' median clock minus this node's, ms (0 until 3 peers answered)",
                m.clock_offset.clone(),
            );
            r.register(
                "proposals_passed",
                "Turns to propose passed up because this node's clock is off",
                m.proposals_passed.clone(),
            );
            m.register_store(&mut r);
            r.register(
                "connected_peers",
                "Connected libp2p peers",
                m.connected_peers.clone(),
            );
        }
        m
    }

    /// The store's metrics (size, envelopes, free pages, compactions) into `r`.
    fn register_store(&self, r: &mut Registry) {
        for (name, help, gauge) in [
            (
                "store_size",
                "Bytes the store file occupies on disk",
                &self.store_bytes,
            ),
            (
                "store_envelope",
                "Bytes of the signed envelopes in the store",
                &self.store_envelope_bytes,
            ),
            (
                "store_free",
                "Bytes of free pages in the store file at the last compaction check",
                &self.store_free_bytes,
            ),
        ] {
            r.register_with_unit(name, help, Unit::Bytes, gauge.clone());
        }
        r.register(
            "store_envelopes",
            "Signed envelopes in the store",
            self.store_envelopes.clone(),
        );
        r.register(
            "store_compactions",
            "Background compactions of the store file",
            self.store_compactions.clone(),
        );
        r.register_with_unit(
            "store_compacted",
            "Bytes background compactions gave back to the file system",
            Unit::Bytes,
            self.store_compacted_bytes.clone(),
        );
    }

    /// The registry, to register more metrics (libp2p's). Do not hold the guard across an
    /// `.await` or while calling [`NodeMetrics::encode`].
    pub fn registry(&self) -> std::sync::MutexGuard<'_, Registry> {
        match self.registry.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Prometheus text exposition (OpenMetrics text format, ends with `# EOF`).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail; an encoder error would leave a partial page,
        // which Prometheus rejects visibly.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry());
        out
    }

    /// A gossip message arrived on a channel of kind `channel` (`workers`, `reputers`,
    /// `ledger`, `consensus`).
    pub fn received(&self, channel: &str) {
        self.gossip_received
            .get_or_create(&ChannelLabels {
                channel: channel.to_owned(),
            })
            .inc();
    }

    /// This node published a gossip message on a channel of kind `channel`.
    pub fn published(&self, channel: &str) {
        self.gossip_published
            .get_or_create(&ChannelLabels {
                channel: channel.to_owned(),
            })
            .inc();
    }

    /// One validation result: `kind` of message (`worker_bundle`, `transfer`, …), `outcome`
    /// (`accept`, `reject`, `ignore`), `reason` (a short code; empty when accepted).
    pub fn validation(&self, kind: &str, outcome: &str, reason: &str) {
        self.validation
            .get_or_create(&ValidationLabels {
                kind: kind.to_owned(),
                outcome: outcome.to_owned(),
                reason: reason.to_owned(),
            })
            .inc();
    }

    /// This node published a worker bundle in `topic`.
    pub fn inference_published(&self, topic: TopicId) {
        self.inferences_published
            .get_or_create(&TopicLabels { topic: topic.0 })
            .inc();
    }

    /// A valid worker bundle of another worker arrived in `topic`.
    pub fn inference_received(&self, topic: TopicId) {
        self.inferences_received
            .get_or_create(&TopicLabels { topic: topic.0 })
            .inc();
    }

    /// This node published a reputer loss bundle in `topic`.
    pub fn losses_published(&self, topic: TopicId) {
        self.losses_published
            .get_or_create(&TopicLabels { topic: topic.0 })
            .inc();
    }

    /// A model or truth-source call (one try): `kind` = `inference`, `forecast` or `truth`;
    /// `outcome` = `ok` or the failure's reason code.
    pub fn model_request(&self, topic: TopicId, kind: &str, outcome: &str) {
        self.model_requests
            .get_or_create(&ModelLabels {
                topic: topic.0,
                kind: kind.to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    /// A duty of this node in `topic` was not done this epoch (counted once per epoch), and
    /// why: a short reason code from a fixed set (the adapters' `reason()`: `timeout`,
    /// `connect`, `status`, `not_a_number`, …; or `not_registered`, `truth_unavailable`,
    /// `loss`).
    pub fn epoch_missed(&self, topic: TopicId, reason: &str) {
        self.epochs_missed
            .get_or_create(&MissedLabels {
                topic: topic.0,
                reason: reason.to_owned(),
            })
            .inc();
    }

    /// The retention deleted `n` things of `kind` (`windows`, `envelopes`, `certificates`,
    /// `inferences`, `statements`).
    pub fn pruned(&self, kind: &'static str, n: u64) {
        self.store_pruned
            .get_or_create(&KindLabels { kind })
            .inc_by(n);
    }

    /// This node penalised a peer for an offence of kind `offence`.
    pub fn penalized(&self, offence: &'static str) {
        self.peer_penalties
            .get_or_create(&OffenceLabels { offence })
            .inc();
    }

    /// One item was dropped by the full bounded queue (or limit) `queue`.
    pub fn dropped(&self, queue: &str) {
        self.dropped_many(queue, 1);
    }

    /// `count` items were dropped by the full bounded queue (or limit) `queue`.
    pub fn dropped_many(&self, queue: &str, count: u64) {
        self.queue_drops
            .get_or_create(&QueueLabels {
                queue: queue.to_owned(),
            })
            .inc_by(count);
    }

    /// Observe one gossip delay.
    pub fn gossip_latency(&self, delay: Duration) {
        self.gossip_latency.observe(delay.as_secs_f64());
    }

    /// Observe one sync session's duration.
    pub fn sync_latency(&self, duration: Duration) {
        self.sync_latency.observe(duration.as_secs_f64());
    }

    /// Observe one window's delay from close to finality.
    pub fn finality_latency(&self, delay: Duration) {
        self.finality_latency.observe(delay.as_secs_f64());
    }

    /// This node cannot apply the decided `height`.
    pub fn stalled(&self, height: u64) {
        self.stalled_height.set(gauge_value(height));
    }

    /// The estimated clock offset (peers' median minus ours, ms).
    pub fn clock_offset(&self, offset_ms: i64) {
        self.clock_offset.set(offset_ms);
    }

    /// A turn to propose was passed up (the clock is off).
    pub fn proposal_passed(&self) {
        self.proposals_passed.inc();
    }

    /// The latest finalized checkpoint height.
    pub fn checkpoint(&self, height: u64) {
        self.checkpoint_height.set(gauge_value(height));
    }

    /// The store's file size, and its envelopes' bytes and count.
    pub fn set_store_size(&self, file_bytes: u64, envelope_bytes: u64, envelopes: u64) {
        self.store_bytes.set(gauge_value(file_bytes));
        self.store_envelope_bytes.set(gauge_value(envelope_bytes));
        self.store_envelopes.set(gauge_value(envelopes));
    }

    /// A compaction check found `bytes` of free pages.
    pub fn free_pages(&self, bytes: u64) {
        self.store_free_bytes.set(gauge_value(bytes));
    }

    /// A background compaction took the file from `before` to `after` bytes in `took`.
    pub fn compacted(&self, before: u64, after: u64, took: Duration) {
        self.store_compactions.inc();
        self.store_compacted_bytes
            .inc_by(before.saturating_sub(after));
        self.store_compaction.observe(took.as_secs_f64());
        self.store_bytes.set(gauge_value(after));
    }

    /// The number of connected peers.
    pub fn set_connected_peers(&self, peers: usize) {
        self.connected_peers
            .set(gauge_value(u64::try_from(peers).unwrap_or(u64::MAX)));
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn every_metric_appears_with_its_labels() {
        let m = NodeMetrics::new();
        m.received("workers");
        m.published("ledger");
        m.validation("worker_bundle", "reject", "bad_signature");
        m.inference_published(TopicId(1));
        m.inference_received(TopicId(1));
        m.losses_published(TopicId(2));
        m.model_request(TopicId(1), "inference", "timeout");
        m.epoch_missed(TopicId(1), "model_timeout");
        m.dropped_many("gossip_in", 2);
        m.dropped("gossip_in");
        m.gossip_latency(Duration::from_millis(20));
        m.sync_latency(Duration::from_millis(200));
        m.finality_latency(Duration::from_secs(4));
        m.checkpoint(42);
        m.set_store_size(4096, 2295, 17);
        m.free_pages(5000);
        m.compacted(10_000, 4096, Duration::from_millis(130));
        m.set_connected_peers(5);
        let text = m.encode();
        for line in [
            "chorus_gossip_messages_received_total{channel=\"workers\"} 1",
            "chorus_gossip_messages_published_total{channel=\"ledger\"} 1",
            "chorus_validation_outcomes_total{kind=\"worker_bundle\",outcome=\"reject\",reason=\"bad_signature\"} 1",
            "chorus_inferences_published_total{topic=\"1\"} 1",
            "chorus_inferences_received_total{topic=\"1\"} 1",
            "chorus_losses_published_total{topic=\"2\"} 1",
            "chorus_model_requests_total{topic=\"1\",kind=\"inference\",outcome=\"timeout\"} 1",
            "chorus_epochs_missed_total{topic=\"1\",reason=\"model_timeout\"} 1",
            "chorus_queue_drops_total{queue=\"gossip_in\"} 3",
            "chorus_gossip_latency_seconds_count 1",
            "chorus_sync_latency_seconds_count 1",
            "chorus_finality_latency_seconds_count 1",
            "chorus_checkpoint_height 42",
            "chorus_store_size_bytes 4096",
            "chorus_store_envelope_bytes 2295",
            "chorus_store_envelopes 17",
            "chorus_store_free_bytes 5000",
            "chorus_store_compactions_total 1",
            "chorus_store_compacted_bytes_total 5904",
            "chorus_store_compaction_seconds_count 1",
            "chorus_connected_peers 5",
            "# EOF",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
    }

    #[test]
    fn more_metrics_register_into_the_same_registry() {
        let m = NodeMetrics::new();
        let extra: Counter = Counter::default();
        m.registry()
            .register("extra", "An extra counter", extra.clone());
        extra.inc();
        assert!(m.encode().contains("chorus_extra_total 1"));
    }
}
