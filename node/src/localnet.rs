//! A network of real nodes in one process (loopback TCP or the memory transport): the devnet,
//! the integration tests and the testbeds build on it.
//!
//! [`LocalPlan`] describes the nodes, their roles and the topics; [`LocalNet::start`] makes the
//! genesis and keys (deterministic from a seed), spawns every node with the earlier nodes as
//! bootstrap peers, and keeps them so they can be stopped and restarted.

use std::path::PathBuf;
use std::time::Duration;

use chorus_crdt::replica::ReplicaConfig;
use chorus_protocol::genesis::{
    Genesis, GenesisBalance, GenesisRegistration, GenesisStake, GenesisTopic, GenesisValidator,
    Token,
};
use chorus_protocol::ids::{Amount, TopicId};
use chorus_protocol::keys::Keypair;
use chorus_protocol::messages::Role;
use chorus_protocol::params::ModuleParams;
use chorus_protocol::topic::TopicSpec;
use libp2p::Multiaddr;

use crate::actor::{NodeHandle, NodeSetup, RunningNode, StartError, spawn};
use crate::clock::Clock;
use crate::config::{
    ApiSection, Config, ConfigError, ConsensusSection, LogSection, NetworkSection, NodeSection,
    ReputerRole, StoreSection, ValidatorRole, WorkerRole,
};
use crate::models::{ForecasterSpec, ModelSpec, TruthSpec};
use crate::setup::SetupError;

/// One worker in a topic.
#[derive(Clone, Debug)]
pub struct LocalWorker {
    /// Node index.
    pub node: usize,
    /// Display name (for reports).
    pub name: String,
    /// Inference model.
    pub model: Option<ModelSpec>,
    /// Forecaster.
    pub forecaster: Option<ForecasterSpec>,
    /// Bars for built-in models (CSV).
    pub data: Option<PathBuf>,
    /// Truth for forecaster learning.
    pub truth: Option<TruthSpec>,
}

/// One reputer in a topic.
#[derive(Clone, Debug)]
pub struct LocalReputer {
    /// Node index.
    pub node: usize,
    /// Stake (base units).
    pub stake: Amount,
    /// Truth source.
    pub truth: TruthSpec,
}

/// A topic of the local network.
#[derive(Clone, Debug)]
pub struct LocalTopic {
    /// Id.
    pub id: TopicId,
    /// Definition.
    pub spec: TopicSpec,
    /// Workers.
    pub workers: Vec<LocalWorker>,
    /// Reputers.
    pub reputers: Vec<LocalReputer>,
}

/// The whole plan.
#[derive(Clone, Debug)]
pub struct LocalPlan {
    /// Network name.
    pub name: String,
    /// Seed of the node keys.
    pub seed: u64,
    /// Number of nodes.
    pub nodes: usize,
    /// Validator node indices (equal bonds).
    pub validators: Vec<usize>,
    /// Topics.
    pub topics: Vec<LocalTopic>,
    /// Module parameters.
    pub params: ModuleParams,
    /// Genesis time (ms).
    pub genesis_time_ms: u64,
    /// Where node data directories go (`<root>/node-<i>`).
    pub data_root: PathBuf,
    /// Use the memory transport.
    pub memory: bool,
    /// Replica tunables.
    pub replica: ReplicaConfig,
    /// Node tick.
    pub tick: Duration,
    /// Each node's store page cache, bytes.
    pub store_cache_bytes: usize,
    /// `[store]` of every node (retention).
    pub store: StoreSection,
    /// Token decimals.
    pub decimals: u8,
    /// Connect node `i` only to node `i − 1` (a line) instead of to every node.
    pub line: bool,
}

/// Anti-entropy period of a local network's nodes, ms: on one machine a round is cheap, and
/// half a second repairs a lost bundle within a few of the devnet's 200 ms epochs.
pub const LOCAL_ANTI_ENTROPY_MS: u64 = 500;

/// Workers spread their submissions over the first quarter of the submission window.
pub fn worker_jitter_ms(spec: &TopicSpec) -> u64 {
    spec.submission_window_ms / 4
}

/// `n` distinct free TCP ports on 127.0.0.1, for nodes started as separate processes: bound
/// together, then released. Another program can in theory take one before the node binds it;
/// that node then fails to start and the caller reports it.
pub fn free_loopback_ports(n: usize) -> std::io::Result<Vec<u16>> {
    let listeners = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
        .collect::<std::io::Result<Vec<_>>>()?;
    listeners
        .iter()
        .map(|l| Ok(l.local_addr()?.port()))
        .collect()
}

/// The deterministic key of node `i` under `seed`.
pub fn node_key(seed: u64, i: usize) -> Keypair {
    let h = blake3::hash(&[seed.to_le_bytes(), (i as u64).to_le_bytes()].concat());
    Keypair::from_seed(h.as_bytes())
}

impl LocalPlan {
    /// The keys of every node.
    pub fn keys(&self) -> Vec<Keypair> {
        (0..self.nodes).map(|i| node_key(self.seed, i)).collect()
    }

    /// The genesis of the plan.
    pub fn genesis(&self) -> Genesis {
        let keys = self.keys();
        let unit = 10u128.pow(u32::from(self.decimals));
        let mut g = Genesis {
            network: self.name.clone(),
            genesis_time_ms: self.genesis_time_ms,
            token: Token {
                symbol: "CHR".into(),
                decimals: self.decimals,
            },
            balances: keys
                .iter()
                .map(|k| GenesisBalance {
                    address: k.public(),
                    amount: Amount(1_000_000 * unit),
                })
                .collect(),
            validators: self
                .validators
                .iter()
                .map(|i| GenesisValidator {
                    address: keys[*i].public(),
                    bond: Amount(100_000 * unit),
                    name: format!("node-{i}"),
                })
                .collect(),
            reputer_stakes: vec![],
            registrations: vec![],
            params: self.params.clone(),
            topics: vec![],
        };
        for t in &self.topics {
            g.topics.push(GenesisTopic {
                id: t.id,
                creator: keys[0].public(),
                spec: t.spec.clone(),
                fee_revenue: self.params.create_topic_fee,
            });
            for w in &t.workers {
                let r = GenesisRegistration {
                    topic: t.id,
                    address: keys[w.node].public(),
                    role: Role::Worker,
                };
                if !g.registrations.contains(&r) {
                    g.registrations.push(r);
                }
            }
            for r in &t.reputers {
                g.registrations.push(GenesisRegistration {
                    topic: t.id,
                    address: keys[r.node].public(),
                    role: Role::Reputer,
                });
                g.reputer_stakes.push(GenesisStake {
                    topic: t.id,
                    reputer: keys[r.node].public(),
                    delegator: None,
                    amount: r.stake,
                });
            }
        }
        g
    }

    /// The `chorus node run` config of node `i`, for a run directory laid out as
    /// `<dir>/genesis.toml` and `<dir>/node-<i>/{node.toml,node.key,data,admin.token}`
    /// (paths are relative to the config file), checked with [`Config::validate_values`]:
    /// a plan whose tunables a node would refuse fails here, before anything starts. The node
    /// runs the same roles and tunables as it does in-process under [`LocalNet`], which
    /// builds its nodes from this config too.
    pub fn node_config(
        &self,
        i: usize,
        listen: String,
        bootstrap: Vec<String>,
        api: String,
        log_level: &str,
    ) -> Result<Config, ConfigError> {
        let (worker, reputer) = self.roles_of(i);
        let cfg = Config {
            node: NodeSection {
                data_dir: "data".into(),
                key: "node.key".into(),
                genesis: "../genesis.toml".into(),
                tick_ms: self.tick.as_millis() as u64,
                store_cache_mb: (self.store_cache_bytes >> 20) as u64,
                trusted_checkpoint: None,
                network_id: None,
                state_sync_heights: crate::config::DEFAULT_STATE_SYNC_HEIGHTS,
            },
            network: NetworkSection {
                listen: vec![listen],
                bootstrap,
                kademlia: false,
                mdns: false,
                local: true,
                memory: false,
                // Restarted peers are back within seconds on one machine.
                max_backoff_ms: 2_000,
                anti_entropy_ms: LOCAL_ANTI_ENTROPY_MS,
                ..NetworkSection::default()
            },
            api: ApiSection {
                listen: api,
                enabled: true,
                admin_token_file: "admin.token".into(),
            },
            log: LogSection {
                format: "text".into(),
                level: log_level.into(),
            },
            worker,
            reputer,
            validator: ValidatorRole {
                enabled: self.validators.contains(&i),
            },
            consensus: ConsensusSection::from_replica(&self.replica),
            store: self.store.clone(),
        };
        cfg.validate_values()?;
        Ok(cfg)
    }

    /// The worker and reputer roles of node `i`.
    fn roles_of(&self, i: usize) -> (Vec<WorkerRole>, Vec<ReputerRole>) {
        let mut worker = vec![];
        let mut reputer = vec![];
        for t in &self.topics {
            for w in t.workers.iter().filter(|w| w.node == i) {
                worker.push(WorkerRole {
                    topic: t.id,
                    model: w.model.clone(),
                    forecaster: w.forecaster.clone(),
                    jitter_ms: worker_jitter_ms(&t.spec),
                    data: w.data.clone(),
                    truth: w.truth.clone(),
                });
            }
            for r in t.reputers.iter().filter(|r| r.node == i) {
                reputer.push(ReputerRole {
                    topic: t.id,
                    truth: r.truth.clone(),
                    loss: None,
                });
            }
        }
        (worker, reputer)
    }

    /// Node `i`'s [`LocalPlan::node_config`] as an in-process node runs it: its store under
    /// `data_root/node-<i>`, a fresh loopback port (or the memory transport), `bootstrap` as
    /// peers, and no REST API (the caller holds its handle).
    pub fn in_process_config(
        &self,
        i: usize,
        bootstrap: &[Multiaddr],
    ) -> Result<Config, ConfigError> {
        let listen = if self.memory {
            format!("/memory/{}", 40_000 + self.seed % 1_000 * 100 + i as u64)
        } else {
            "/ip4/127.0.0.1/tcp/0".into()
        };
        let bootstrap = bootstrap.iter().map(ToString::to_string).collect();
        let mut cfg = self.node_config(i, listen, bootstrap, "127.0.0.1:0".into(), "info")?;
        cfg.node.data_dir = self.data_root.join(format!("node-{i}"));
        cfg.network.memory = self.memory;
        cfg.api.enabled = false;
        Ok(cfg)
    }

    /// Check every node's config before any node starts.
    pub fn validate(&self) -> Result<(), LocalNetError> {
        for node in 0..self.nodes {
            self.in_process_config(node, &[])
                .map_err(|e| LocalNetError::Setup {
                    node,
                    source: e.into(),
                })?;
        }
        Ok(())
    }

    fn setup(
        &self,
        i: usize,
        genesis: &Genesis,
        bootstrap: &[Multiaddr],
        clock: Clock,
    ) -> Result<NodeSetup, SetupError> {
        let cfg = self.in_process_config(i, bootstrap)?;
        NodeSetup::from_config(&cfg, genesis.clone(), node_key(self.seed, i), clock)
    }
}

/// Why a local network (or one of its nodes) did not start (the cause is the error's source).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LocalNetError {
    /// The node's config is invalid or its roles could not be built.
    #[error("node {node}")]
    Setup {
        /// The node's index.
        node: usize,
        /// Why.
        source: SetupError,
    },
    /// The node did not start.
    #[error("node {node}")]
    Start {
        /// The node's index.
        node: usize,
        /// Why.
        source: StartError,
    },
}

/// A running local network.
pub struct LocalNet {
    /// The plan.
    pub plan: LocalPlan,
    /// The genesis.
    pub genesis: Genesis,
    /// Nodes (`None` while stopped).
    pub nodes: Vec<Option<RunningNode>>,
    /// Each node's address with its `/p2p/` suffix.
    pub addrs: Vec<Option<Multiaddr>>,
    /// The clock every node (re)started here runs on.
    clock: Clock,
}

impl LocalNet {
    /// Check every node's config ([`LocalPlan::validate`]), then start every node.
    pub async fn start(plan: LocalPlan) -> Result<LocalNet, LocalNetError> {
        LocalNet::start_on(plan, Clock::system()).await
    }

    /// [`LocalNet::start`] with every node on `clock` (a [`Clock::stepped`] one makes the
    /// network's time whatever its driver sets).
    pub async fn start_on(plan: LocalPlan, clock: Clock) -> Result<LocalNet, LocalNetError> {
        plan.validate()?;
        let genesis = plan.genesis();
        let mut net = LocalNet {
            nodes: (0..plan.nodes).map(|_| None).collect(),
            addrs: vec![None; plan.nodes],
            plan,
            genesis,
            clock,
        };
        for i in 0..net.plan.nodes {
            net.start_node(i).await?;
        }
        Ok(net)
    }

    /// (Re)start node `i` with the other nodes' known addresses as bootstrap peers (in a
    /// [`LocalPlan::line`], node `i − 1` and `i + 1` only).
    pub async fn start_node(&mut self, i: usize) -> Result<(), LocalNetError> {
        let line = self.plan.line;
        let bootstrap: Vec<Multiaddr> = self
            .addrs
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i && (!line || j.abs_diff(i) == 1))
            .filter_map(|(_, a)| a.clone())
            .collect();
        let setup = self
            .plan
            .setup(i, &self.genesis, &bootstrap, self.clock.clone())
            .map_err(|source| LocalNetError::Setup { node: i, source })?;
        let started = |source| LocalNetError::Start { node: i, source };
        let node = spawn(setup).await.map_err(started)?;
        let mut addr = node
            .listen
            .first()
            .cloned()
            .ok_or_else(|| started(StartError::Net("no listen address".into())))?;
        addr.push(libp2p::multiaddr::Protocol::P2p(node.peer_id));
        self.addrs[i] = Some(addr);
        self.nodes[i] = Some(node);
        Ok(())
    }

    /// Stop node `i`: flush, end its tasks, join its storage thread.
    pub async fn stop_node(&mut self, i: usize) {
        if let Some(node) = self.nodes[i].take() {
            node.stop().await;
        }
    }

    /// Handle of node `i`, if running.
    pub fn handle(&self, i: usize) -> Option<&NodeHandle> {
        self.nodes[i].as_ref().map(|n| &n.handle)
    }

    /// Stop everything.
    pub async fn shutdown(mut self) {
        for i in 0..self.nodes.len() {
            self.stop_node(i).await;
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn plan(root: PathBuf) -> LocalPlan {
        LocalPlan {
            name: "localnet-test".into(),
            seed: 3,
            nodes: 2,
            validators: vec![0],
            topics: vec![],
            params: ModuleParams::default(),
            genesis_time_ms: 0,
            data_root: root,
            memory: false,
            replica: ReplicaConfig::default(),
            tick: Duration::from_millis(50),
            store_cache_bytes: 8 << 20,
            store: Default::default(),
            decimals: 0,
            line: false,
        }
    }

    #[test]
    fn in_process_nodes_run_the_config_node_processes_are_given() {
        let root = PathBuf::from("/nonexistent/root");
        let plan = plan(root.clone());
        let file = plan
            .node_config(
                1,
                "/ip4/127.0.0.1/tcp/1".into(),
                vec![],
                "127.0.0.1:2".into(),
                "warn",
            )
            .unwrap();
        let local = plan.in_process_config(1, &[]).unwrap();
        assert_eq!(local.node.data_dir, root.join("node-1"));
        assert!(!local.api.enabled);
        assert_eq!(local.network.listen, ["/ip4/127.0.0.1/tcp/0"]);
        assert_eq!(
            (&local.consensus, &local.worker, &local.validator),
            (&file.consensus, &file.worker, &file.validator)
        );
        assert_eq!(
            (local.node.tick_ms, local.network.anti_entropy_ms),
            (file.node.tick_ms, file.network.anti_entropy_ms)
        );
    }
}
