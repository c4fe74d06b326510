//! From a [`Config`] to the [`NodeSetup`] the actor starts from: the one conversion that
//! `chorus node run` and [`crate::localnet::LocalNet`] (hence the devnet, in both of its
//! modes) share.
//!
//! The config's values are checked first ([`Config::validate_values`]); the files it names
//! (key, genesis) are the caller's, who passes what they hold. Then the roles are built
//! (models, forecasters, truth sources: a CSV that does not load fails here, before the node
//! starts) and the addresses parsed.

use chorus_crdt::replica::{AntiEntropyConfig, ReplicaConfig};
use chorus_protocol::genesis::Genesis;
use chorus_protocol::ids::TopicId;
use chorus_protocol::keys::Keypair;
use libp2p::Multiaddr;

use crate::actor::NodeSetup;
use crate::clock::Clock;
use crate::config::{Config, ConfigError};
use crate::models::{SpecError, build_loss_service, build_truth};
use crate::net::NetOptions;
use crate::roles::{ReputerTask, RoleError, WorkerTask};

/// Why a config does not make a [`NodeSetup`] (the message names the part; the cause is the
/// error's source).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SetupError {
    /// The config's values are invalid (every problem listed).
    #[error("invalid config")]
    Config(#[from] ConfigError),
    /// A `[[worker]]` could not be built (its model, forecaster, bars or truth).
    #[error("[[worker]]")]
    Worker(#[from] RoleError),
    /// A `[[reputer]]`'s truth source could not be built.
    #[error("[[reputer]] of topic {topic}")]
    Reputer {
        /// The reputer's topic.
        topic: TopicId,
        /// Why.
        source: SpecError,
    },
    /// A listen or bootstrap address is not a multiaddr.
    #[error("[network] {field} {addr:?}")]
    Address {
        /// `listen` or `bootstrap`.
        field: &'static str,
        /// The address as written.
        addr: String,
        /// Why.
        source: libp2p::multiaddr::Error,
    },
}

impl NodeSetup {
    /// The setup of the node `cfg` describes, with the genesis and key it names (read by the
    /// caller) and `clock`.
    pub fn from_config(
        cfg: &Config,
        genesis: Genesis,
        key: Keypair,
        clock: Clock,
    ) -> Result<NodeSetup, SetupError> {
        cfg.validate_values()?;
        let workers = cfg
            .worker
            .iter()
            .map(|w| {
                WorkerTask::build(
                    w.topic,
                    key.public(),
                    w.model.as_ref(),
                    w.forecaster.as_ref(),
                    w.data.as_ref(),
                    w.truth.as_ref(),
                    w.jitter_ms,
                )
                .map(|t| t.with_salt_key(key.seed().as_slice()))
            })
            .collect::<Result<_, _>>()?;
        let reputers = cfg
            .reputer
            .iter()
            .map(|r| {
                let failed = |source| SetupError::Reputer {
                    topic: r.topic,
                    source,
                };
                Ok(ReputerTask {
                    topic: r.topic,
                    me: key.public(),
                    truth: build_truth(&r.truth).map_err(failed)?,
                    loss: r
                        .loss
                        .as_ref()
                        .map(build_loss_service)
                        .transpose()
                        .map_err(failed)?,
                })
            })
            .collect::<Result<_, SetupError>>()?;
        let net = &cfg.network;
        let retention = cfg.store.retention(genesis.params.checkpoint_period_ms);
        Ok(NodeSetup {
            genesis,
            key,
            data_dir: cfg.node.data_dir.clone(),
            store_cache_bytes: cfg.store_cache_bytes(),
            net: NetOptions {
                memory: net.memory,
                kademlia: net.kademlia,
                mdns: net.mdns,
                local: net.local,
                max_connections: net.max_connections,
                max_connections_per_ip: net.max_connections_per_ip,
                ..NetOptions::default()
            },
            listen: multiaddrs("listen", &net.listen)?,
            bootstrap: multiaddrs("bootstrap", &net.bootstrap)?,
            max_backoff: cfg.max_backoff(),
            replica: ReplicaConfig {
                anti_entropy: AntiEntropyConfig {
                    round_ms: cfg.network.anti_entropy_ms,
                    ..AntiEntropyConfig::default()
                },
                trusted_checkpoint: cfg.trusted_checkpoint(),
                ..cfg.consensus.replica(cfg.validator.enabled)
            },
            tick: cfg.tick(),
            retention,
            compaction: cfg.store.compaction(),
            workers,
            reputers,
            clock,
        })
    }
}

fn multiaddrs(field: &'static str, addrs: &[String]) -> Result<Vec<Multiaddr>, SetupError> {
    addrs
        .iter()
        .map(|a| {
            a.parse().map_err(|source| SetupError::Address {
                field,
                addr: a.clone(),
                source,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::time::Duration;

    use chorus_protocol::genesis::{Genesis, GenesisValidator, Token};
    use chorus_protocol::ids::Amount;

    use super::*;
    use crate::config::{ReputerRole, WorkerRole};
    use crate::models::TruthSpec;

    fn genesis(key: &Keypair) -> Genesis {
        Genesis {
            network: "setup-test".into(),
            genesis_time_ms: 0,
            token: Token {
                symbol: "CHR".into(),
                decimals: 0,
            },
            balances: vec![],
            validators: vec![GenesisValidator {
                address: key.public(),
                bond: Amount(1),
                name: "v".into(),
            }],
            reputer_stakes: vec![],
            registrations: vec![],
            params: Default::default(),
            topics: vec![],
        }
    }

    #[test]
    fn every_field_comes_from_the_config() {
        let text = r#"
[node]
data_dir = "/var/lib/chorus"
tick_ms = 20
store_cache_mb = 16
[network]
listen = ["/ip4/127.0.0.1/tcp/4001"]
bootstrap = ["/ip4/127.0.0.1/tcp/4002/p2p/12D3KooWLzx4iJV1h8c2MnMU7Zjhd1y7GJb3HJtYpLwL7H7zKxXb"]
kademlia = true
local = false
max_backoff_ms = 3000
anti_entropy_ms = 750
[validator]
enabled = true
[consensus]
propose_ms = 900
[[worker]]
topic = 1
model = { kind = "builtin", target = "range", model = "ema", alpha = 0.1 }
jitter_ms = 30
[[reputer]]
topic = 1
truth = { kind = "builtin", target = "range" }
"#;
        let cfg = Config::parse(text, std::iter::empty()).unwrap();
        let key = Keypair::from_seed(&[1; 32]);
        let s = NodeSetup::from_config(&cfg, genesis(&key), key.clone(), Clock::system()).unwrap();
        assert_eq!(s.data_dir, cfg.node.data_dir);
        assert_eq!(s.store_cache_bytes, 16 << 20);
        assert_eq!(s.tick, Duration::from_millis(20));
        assert_eq!(s.max_backoff, Duration::from_secs(3));
        assert_eq!(s.replica.anti_entropy.round_ms, 750);
        assert_eq!(s.listen.len(), 1);
        assert_eq!(s.bootstrap.len(), 1);
        assert!(s.net.kademlia && !s.net.mdns && !s.net.local && !s.net.memory);
        assert!(s.replica.validator);
        assert_eq!(s.replica.timeouts.propose_ms, 900);
        assert_eq!((s.workers.len(), s.reputers.len()), (1, 1));
        assert_eq!(s.workers[0].jitter_ms, 30);
        assert_eq!(s.reputers[0].me, key.public());
    }

    #[test]
    fn invalid_values_and_unbuildable_roles_are_refused() {
        let key = Keypair::from_seed(&[2; 32]);
        let build = |cfg: &Config| match NodeSetup::from_config(
            cfg,
            genesis(&key),
            key.clone(),
            Clock::system(),
        ) {
            Ok(_) => panic!("accepted"),
            Err(e) => e,
        };
        let mut cfg = Config::default();
        cfg.network.anti_entropy_ms = 0;
        cfg.consensus.rebroadcast_ms = cfg.consensus.max_ms + 1;
        match build(&cfg) {
            SetupError::Config(e) => assert_eq!(e.problems.len(), 2, "{:?}", e.problems),
            other => panic!("{other:?}"),
        }
        let mut cfg = Config::default();
        cfg.worker.push(WorkerRole {
            topic: TopicId(1),
            model: None,
            forecaster: None,
            jitter_ms: 0,
            data: Some("/nonexistent/bars.csv".into()),
            truth: None,
        });
        // A worker without model or forecaster is a value problem...
        assert!(matches!(build(&cfg), SetupError::Config(_)));
        // ...a worker whose bars do not load is a role problem.
        cfg.worker[0].model = Some(
            serde_json::from_value(serde_json::json!(
                {"kind": "builtin", "target": "range", "model": "ema", "alpha": 0.1}
            ))
            .unwrap(),
        );
        assert!(matches!(build(&cfg), SetupError::Worker(_)));
        let mut cfg = Config::default();
        cfg.reputer.push(ReputerRole {
            topic: TopicId(3),
            truth: TruthSpec::Csv {
                path: "/nonexistent/truth.csv".into(),
                target: crate::models::Target::Range,
            },
            loss: None,
        });
        assert!(matches!(
            build(&cfg),
            SetupError::Reputer {
                topic: TopicId(3),
                ..
            }
        ));
    }
}
