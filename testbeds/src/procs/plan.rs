//! One description of a test network, used both by the in-process networks
//! ([`chorus_node::localnet::LocalNet`]) and by the multi-process testbed (which writes it out
//! as a genesis, key files and one node config per node).
//!
//! Roles, for `n` nodes and `t` topics: the first `validators` nodes are validators (equal
//! bonds); topic `k` (ids 1..=t) has `workers` inferers on consecutive nodes starting at node
//! `k − 1` (built-in models of the range target cycled from [`default_set`], the first also
//! forecasting with an EMA forecaster), and two reputers on the last two nodes, all fed with
//! the shipped hourly EUR/USD bars.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chorus_crdt::checkpoint::TimeoutConfig;
use chorus_crdt::replica::ReplicaConfig;
use chorus_node::localnet::{LocalPlan, LocalReputer, LocalTopic, LocalWorker};
use chorus_node::models::{BuiltinSpec, ForecasterSpec, ModelSpec, Target, TruthSpec, default_set};
use chorus_protocol::ids::{Amount, TopicId};
use chorus_protocol::params::ModuleParams;
use chorus_protocol::topic::{LossMethod, TopicSpec};

/// The shipped data (provenance: `data/README.md`), written next to the configs.
pub const EURUSD_CSV: &str = include_str!("../../../data/eurusd_1h.csv");
/// File name of the bars inside a run directory.
pub const DATA_FILE: &str = "eurusd_1h.csv";

/// The knobs of a test network.
#[derive(Clone, Debug)]
pub struct NetSpec {
    /// Network name.
    pub name: String,
    /// Seed of the node keys.
    pub seed: u64,
    /// Nodes.
    pub nodes: usize,
    /// Validators (the first nodes).
    pub validators: usize,
    /// Topics.
    pub topics: usize,
    /// Inferers per topic.
    pub workers: usize,
    /// Reputers per topic (on the last nodes).
    pub reputers: usize,
    /// Epoch length = checkpoint period (ms).
    pub epoch_ms: u64,
    /// Epoch 0 starts (unix ms).
    pub start_ms: u64,
    /// Nodes that hold no role at all (observers), counted in `nodes`: the last ones.
    pub observers: usize,
}

impl NetSpec {
    /// A network of `nodes` nodes with sensible defaults: 4 validators (or all nodes if
    /// fewer), one topic, an inferer on every node, 2 reputers, 1 s epochs starting in
    /// `lead` from now.
    pub fn new(name: &str, nodes: usize, lead: Duration) -> NetSpec {
        NetSpec {
            name: name.into(),
            seed: 1,
            nodes,
            validators: nodes.min(4),
            topics: 1,
            workers: nodes,
            reputers: 2.min(nodes),
            epoch_ms: 1_000,
            start_ms: now_ms() + lead.as_millis() as u64,
            observers: 0,
        }
    }

    /// Nodes that may hold roles.
    fn active(&self) -> usize {
        self.nodes.saturating_sub(self.observers).max(1)
    }

    /// The topic definition shared by every topic.
    pub fn topic_spec(&self, k: usize) -> TopicSpec {
        TopicSpec {
            metadata: "testbed topic: hourly EUR/USD bars, one per epoch".into(),
            ..TopicSpec::new(
                format!("EUR/USD range #{k}"),
                LossMethod::Mse,
                self.start_ms,
                self.epoch_ms,
                self.epoch_ms / 2,
                self.epoch_ms,
            )
        }
    }

    /// Module parameters: checkpoint period = epoch, clock skew 15 % of an epoch.
    pub fn params(&self) -> ModuleParams {
        ModuleParams {
            checkpoint_period_ms: self.epoch_ms,
            min_epoch_length_ms: 100,
            max_clock_skew_ms: (self.epoch_ms * 15 / 100).max(20),
            emission_per_period: Amount(1_000_000),
            min_topic_weight: 0.0,
            ..ModuleParams::default()
        }
    }

    /// Consensus timeouts scaled to the epoch (written into every node's `[consensus]`).
    pub fn replica(&self) -> ReplicaConfig {
        let e = self.epoch_ms;
        ReplicaConfig {
            propose_grace_ms: (e * 15 / 100).max(20),
            timeouts: TimeoutConfig {
                propose_ms: (e * 3 / 2).max(300),
                propose_delta_ms: (e * 3 / 10).max(50),
                prevote_ms: (e / 2).max(100),
                prevote_delta_ms: (e / 5).max(50),
                precommit_ms: (e / 2).max(100),
                precommit_delta_ms: (e / 5).max(50),
                rebroadcast_ms: (e * 2).max(500),
                max_ms: (e * 10).max(2_000),
            },
            validator: true,
            ..ReplicaConfig::default()
        }
    }

    /// The nodes inferring in topic `k` (0-based).
    pub fn worker_nodes(&self, k: usize) -> Vec<usize> {
        let n = self.active();
        (0..self.workers.min(n)).map(|j| (k + j) % n).collect()
    }

    /// The nodes reporting in every topic.
    pub fn reputer_nodes(&self) -> Vec<usize> {
        let n = self.active();
        (0..self.reputers.min(n)).map(|j| n - 1 - j).collect()
    }

    /// The plan (keys from `seed`, data from `data`, node directories under `data_root`).
    pub fn plan(&self, data: &Path, data_root: PathBuf) -> LocalPlan {
        let truth = TruthSpec::Csv {
            path: data.to_path_buf(),
            target: Target::Range,
        };
        let models = default_set(Target::Range);
        let topics = (0..self.topics)
            .map(|k| LocalTopic {
                id: TopicId(k as u64 + 1),
                spec: self.topic_spec(k),
                workers: self
                    .worker_nodes(k)
                    .into_iter()
                    .enumerate()
                    .map(|(j, node)| {
                        let (name, model) = models[(node + j) % models.len()].clone();
                        LocalWorker {
                            node,
                            name,
                            model: Some(ModelSpec::Builtin(BuiltinSpec {
                                target: Target::Range,
                                model,
                            })),
                            forecaster: (j == 0).then_some(ForecasterSpec::Ema {
                                alpha: 0.1,
                                loss_floor: 1e-12,
                            }),
                            data: Some(data.to_path_buf()),
                            truth: Some(truth.clone()),
                        }
                    })
                    .collect(),
                reputers: self
                    .reputer_nodes()
                    .into_iter()
                    .map(|node| LocalReputer {
                        node,
                        stake: Amount(50_000),
                        truth: truth.clone(),
                    })
                    .collect(),
            })
            .collect();
        LocalPlan {
            name: self.name.clone(),
            seed: self.seed,
            nodes: self.nodes,
            validators: (0..self.validators.min(self.nodes)).collect(),
            topics,
            params: self.params(),
            genesis_time_ms: self.start_ms,
            data_root,
            memory: false,
            replica: self.replica(),
            tick: Duration::from_millis(50),
            store_cache_bytes: chorus_node::store::ops::DEFAULT_CACHE_BYTES,
            store: Default::default(),
            decimals: 0,
            line: false,
        }
    }
}

/// Write the shipped bars into `dir` and return the path.
pub fn write_data(dir: &Path) -> std::io::Result<PathBuf> {
    let p = dir.join(DATA_FILE);
    std::fs::write(&p, EURUSD_CSV)?;
    Ok(p)
}

/// Unix time in ms.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
