//! What the in-process network tests share: a plan of nodes with 1 s epochs and consensus
//! timeouts to match.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::time::Duration;

use chorus_crdt::checkpoint::TimeoutConfig;
use chorus_crdt::replica::ReplicaConfig;
use chorus_node::localnet::{LocalPlan, LocalTopic};
use chorus_protocol::ids::Amount;
use chorus_protocol::params::ModuleParams;

/// Epoch and checkpoint period of these tests.
pub const EPOCH_MS: u64 = 1_000;

pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// The shipped EUR/USD bars.
pub fn data() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../data/eurusd_1h.csv")
}

/// `nodes` nodes, `validators` bonded equally, checkpoints every [`EPOCH_MS`] from `start`,
/// data under `root`.
pub fn plan(
    name: &str,
    seed: u64,
    nodes: usize,
    validators: Vec<usize>,
    topics: Vec<LocalTopic>,
    start: u64,
    root: PathBuf,
) -> LocalPlan {
    LocalPlan {
        name: name.into(),
        seed,
        nodes,
        validators,
        topics,
        params: ModuleParams {
            checkpoint_period_ms: EPOCH_MS,
            min_epoch_length_ms: 100,
            max_clock_skew_ms: 150,
            emission_per_period: Amount(1_000_000),
            min_topic_weight: 0.0,
            ..ModuleParams::default()
        },
        genesis_time_ms: start,
        data_root: root,
        memory: false,
        replica: ReplicaConfig {
            propose_grace_ms: 150,
            timeouts: TimeoutConfig {
                propose_ms: 1_500,
                propose_delta_ms: 300,
                prevote_ms: 500,
                prevote_delta_ms: 200,
                precommit_ms: 500,
                precommit_delta_ms: 200,
                rebroadcast_ms: 2_000,
                max_ms: 10_000,
            },
            validator: true,
            ..ReplicaConfig::default()
        },
        tick: Duration::from_millis(50),
        store_cache_bytes: chorus_node::store::ops::DEFAULT_CACHE_BYTES,
        store: Default::default(),
        decimals: 0,
        line: false,
    }
}

/// `nodes` nodes (node 0 the one validator, the worker "last" and the reputer of a range
/// topic) with checkpoints and epochs every `period_ms`, starting in 1.5 s: many heights in
/// a few seconds (the simulator's consensus timeouts).
pub fn fast_plan(name: &str, seed: u64, nodes: usize, period_ms: u64, root: PathBuf) -> LocalPlan {
    use chorus_node::localnet::{LocalReputer, LocalWorker};
    use chorus_node::models::{BuiltinSpec, ModelSpec, Target, TruthSpec};
    use chorus_protocol::ids::TopicId;
    use chorus_protocol::topic::{LossMethod, TopicSpec};
    let start = now_ms() + 1_500;
    let truth = TruthSpec::Csv {
        path: data(),
        target: Target::Range,
    };
    let topic = LocalTopic {
        id: TopicId(1),
        spec: TopicSpec::new(
            "range",
            LossMethod::Mse,
            start,
            period_ms,
            period_ms / 2,
            period_ms,
        ),
        workers: vec![LocalWorker {
            node: 0,
            name: "last".into(),
            model: Some(ModelSpec::Builtin(BuiltinSpec {
                target: Target::Range,
                model: serde_json::from_value(serde_json::json!({ "model": "last" })).unwrap(),
            })),
            forecaster: None,
            data: Some(data()),
            truth: Some(truth.clone()),
        }],
        reputers: vec![LocalReputer {
            node: 0,
            stake: Amount(50_000),
            truth,
        }],
    };
    let mut p = plan(name, seed, nodes, vec![0], vec![topic], start, root);
    p.params.checkpoint_period_ms = period_ms;
    p.params.max_clock_skew_ms = 20;
    p.replica.propose_grace_ms = 20;
    p.replica.timeouts = chorus_crdt::replica::sim::replica_config().timeouts;
    p
}
