//! The devnet's plan: which node runs what (the first 4 validate; up to 9 inferers, then 2
//! forecasters, then 3 reputers), the topics, and the tunables derived from the epoch length.
//! Both modes run this plan: in-process nodes and node processes get the same node configs
//! ([`LocalPlan::node_config`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;

use chorus_crdt::checkpoint::TimeoutConfig;
use chorus_crdt::replica::ReplicaConfig;
use chorus_node::localnet::{LocalPlan, LocalReputer, LocalTopic, LocalWorker, node_key};
use chorus_node::models::{
    BuiltinSpec, CopycatSpec, ForecasterSpec, ModelSpec, TruthSpec, default_set,
};
use chorus_protocol::ids::{Amount, TopicId};
use chorus_protocol::params::ModuleParams;
use chorus_protocol::topic::{LossMethod, TopicSpec};

use super::{DevnetArgs, TargetArg, now_ms};

/// Token decimals of the devnet's genesis.
const DECIMALS: u8 = 18;

/// What the report needs to know of a topic.
pub(super) struct TopicPlan {
    pub id: TopicId,
    pub name: String,
    pub target: TargetArg,
    /// Hex key -> (name, model) of every worker.
    pub workers: BTreeMap<String, (String, String)>,
}

/// The network to start and what the report needs to know of it.
pub(super) struct DevnetPlan {
    /// The nodes, roles, topics and tunables.
    pub local: LocalPlan,
    /// The topics, for the report.
    pub topics: Vec<TopicPlan>,
    /// How many nodes run an inferer.
    pub inferers: usize,
    /// Epoch length (and checkpoint period), ms.
    pub epoch_ms: u64,
}

/// Which node runs which role.
struct Roles {
    inferers: Vec<usize>,
    forecasters: [usize; 2],
    reputers: [usize; 3],
    /// The copycat's node (one more than `--nodes`), with `--copycat`.
    copycat: Option<usize>,
}

impl Roles {
    fn of(nodes: usize, copycat: bool) -> Roles {
        let n = nodes;
        Roles {
            inferers: (0..(n - 5).min(9)).collect(),
            forecasters: [n - 5, n - 4],
            reputers: [n - 3, n - 2, n - 1],
            copycat: copycat.then_some(n),
        }
    }

    fn nodes(&self) -> usize {
        self.reputers[2] + 1 + usize::from(self.copycat.is_some())
    }
}

impl DevnetPlan {
    /// The plan of `args` replaying `data` for `targets`, epoch 0 at `genesis_time_ms`, node
    /// stores under `data_root`; every node's config checked ([`LocalPlan::validate`]), so a
    /// plan a node would refuse fails here, before anything starts, in either mode.
    pub fn new(
        args: &DevnetArgs,
        data: &Path,
        targets: &[TargetArg],
        genesis_time_ms: u64,
        data_root: PathBuf,
    ) -> anyhow::Result<DevnetPlan> {
        let roles = Roles::of(args.nodes, args.copycat);
        let mut local_topics = vec![];
        let mut topics = vec![];
        for (i, t) in targets.iter().enumerate() {
            let (local, plan) = topic(
                TopicId(i as u64 + 1),
                *t,
                &roles,
                args,
                data,
                genesis_time_ms,
            )?;
            local_topics.push(local);
            topics.push(plan);
        }
        let period = args.epoch_length_ms();
        let local = LocalPlan {
            name: "chorus-devnet".into(),
            seed: args.seed,
            nodes: roles.nodes(),
            validators: (0..4.min(args.nodes)).collect(),
            topics: local_topics,
            params: ModuleParams {
                checkpoint_period_ms: period,
                min_epoch_length_ms: 1,
                // All nodes share one clock; the allowance absorbs gossip delay under load.
                max_clock_skew_ms: (period / 5).max(20),
                ..ModuleParams::default()
            },
            genesis_time_ms,
            data_root,
            memory: false,
            replica: replica(period),
            tick: Duration::from_millis((period / 8).clamp(10, 50)),
            store_cache_bytes: chorus_node::store::ops::DEFAULT_CACHE_BYTES,
            // The stores live as long as the run: no background compaction (its free-page count
            // would run every 10 minutes of the stepped clock, i.e. every 10 epochs per node).
            store: chorus_node::config::StoreSection {
                compact_free_percent: 0,
                ..Default::default()
            },
            decimals: DECIMALS,
            line: false,
        };
        local
            .validate()
            .context("the devnet's own node configs are invalid")?;
        Ok(DevnetPlan {
            local,
            topics,
            inferers: roles.inferers.len(),
            epoch_ms: period,
        })
    }
}

/// Consensus tunables for checkpoints every `period` ms: timeouts in periods, capped at
/// 30 s, or at the longest of them when periods are long (every timeout must stay within the
/// cap, or the nodes refuse the config).
fn replica(period: u64) -> ReplicaConfig {
    let propose_ms = (period * 3).max(500);
    let rebroadcast_ms = (period * 5).max(1_000);
    ReplicaConfig {
        propose_grace_ms: (period / 5).max(20),
        timeouts: TimeoutConfig {
            propose_ms,
            propose_delta_ms: period,
            prevote_ms: period.max(200),
            prevote_delta_ms: period / 2,
            precommit_ms: period.max(200),
            precommit_delta_ms: period / 2,
            rebroadcast_ms,
            max_ms: propose_ms.max(rebroadcast_ms).max(30_000),
        },
        validator: true,
        ..ReplicaConfig::default()
    }
}

/// Topic `id` of target `t`: its workers and reputers, and what the report needs of it.
fn topic(
    id: TopicId,
    t: TargetArg,
    roles: &Roles,
    args: &DevnetArgs,
    data: &Path,
    genesis_time_ms: u64,
) -> anyhow::Result<(LocalTopic, TopicPlan)> {
    let series = match &args.data {
        None => "EUR/USD 1h".to_string(),
        Some(p) => p
            .file_stem()
            .map_or_else(|| "data".into(), |s| s.to_string_lossy().into_owned()),
    };
    let name = format!("{series} {}", t.name());
    let truth = TruthSpec::Csv {
        path: data.to_path_buf(),
        target: t.target(),
    };
    let mut workers = vec![];
    let mut names = BTreeMap::new();
    let mut name_worker = |node: usize, label: String, model: String| {
        names.insert(node_key(args.seed, node).public().to_hex(), (label, model));
    };
    for (node, (model_name, model)) in roles.inferers.iter().zip(default_set(t.target())) {
        let label = format!("w{node}");
        name_worker(*node, label.clone(), model_name);
        workers.push(LocalWorker {
            node: *node,
            name: label,
            model: Some(ModelSpec::Builtin(BuiltinSpec {
                target: t.target(),
                model,
            })),
            forecaster: None,
            data: Some(data.to_path_buf()),
            truth: None,
        });
    }
    for (k, node) in roles.forecasters.iter().enumerate() {
        let label = format!("f{k}");
        let (model, forecaster) = if k == 0 {
            let ema = ForecasterSpec::Ema {
                alpha: 0.1,
                loss_floor: 1e-12,
            };
            ("ema-loss", ema)
        } else {
            let regime = serde_json::from_value(serde_json::json!({"kind": "regime_ema"}))?;
            ("regime-ema-loss", regime)
        };
        name_worker(*node, label.clone(), model.into());
        workers.push(LocalWorker {
            node: *node,
            name: label,
            model: None,
            forecaster: Some(forecaster),
            data: Some(data.to_path_buf()),
            truth: Some(truth.clone()),
        });
    }
    if let Some(node) = roles.copycat {
        name_worker(node, "copycat".into(), "copycat".into());
        workers.push(LocalWorker {
            node,
            name: "copycat".into(),
            // It looks at two fifths of the submission window: after every honest worker
            // published (in its first quarter), before the submission window closes.
            model: Some(ModelSpec::Copycat(CopycatSpec::default())),
            forecaster: None,
            data: None,
            truth: None,
        });
    }
    let unit = 10u128.pow(u32::from(DECIMALS));
    let reputers = roles
        .reputers
        .iter()
        .zip([50_000u128, 30_000, 20_000])
        .map(|(node, stake)| LocalReputer {
            node: *node,
            stake: Amount(stake * unit),
            truth: truth.clone(),
        })
        .collect();
    let local = LocalTopic {
        id,
        spec: topic_spec(&name, genesis_time_ms, args),
        workers,
        reputers,
    };
    let plan = TopicPlan {
        id,
        name,
        target: t,
        workers: names,
    };
    Ok((local, plan))
}

fn topic_spec(name: &str, start: u64, args: &DevnetArgs) -> TopicSpec {
    let epoch_ms = args.epoch_length_ms();
    // Most of the epoch to submit: bundles travel through a loaded local network of many
    // nodes. Under commit-reveal the same three quarters are split: a quarter to commit, half
    // to reveal (a reveal phase must be longer than twice the clock-skew allowance, a fifth of
    // the epoch here).
    let (submission, reveal) = if args.commit_reveal {
        (epoch_ms / 4, epoch_ms / 2)
    } else {
        (epoch_ms * 3 / 4, 0)
    };
    TopicSpec {
        metadata: "replayed hourly bars, one bar per epoch".into(),
        p_norm: args.p_norm,
        alpha_regret: args.alpha_regret,
        mechanism: args.mechanism,
        reveal_window_ms: reveal,
        ..TopicSpec::new(name, LossMethod::Mse, start, epoch_ms, submission, epoch_ms)
    }
}

/// Where the nodes' stores go: a tmpfs when the machine has one (fsync is free there, and a
/// devnet's state is disposable), else `<out>/nodes`.
pub(super) fn data_root(out: &Path) -> PathBuf {
    let shm = PathBuf::from("/dev/shm");
    if shm.is_dir() {
        let dir = shm.join(format!("chorus-devnet-{}-{}", std::process::id(), now_ms()));
        if std::fs::create_dir_all(&dir).is_ok() {
            return dir;
        }
    }
    out.join("nodes")
}
