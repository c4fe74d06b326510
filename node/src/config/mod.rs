//! Node configuration: one TOML file with documented defaults, environment overrides, and a
//! validation that explains every problem at once.
//!
//! ```toml
//! [node]
//! data_dir = "data"            # redb file and state live here
//! key = "node.key"             # ed25519 key file (mode 0600)
//! genesis = "genesis.toml"
//! store_cache_mb = 16          # redb page cache (it fills with what the node writes)
//! # network_id = "9f2c…"       # with no genesis file: fetched from the bootstrap peers, checked
//!
//! [network]
//! listen = ["/ip4/127.0.0.1/tcp/4001"]
//! bootstrap = ["/ip4/127.0.0.1/tcp/4002/p2p/12D3Koo…"]
//! anti_entropy_ms = 1000       # how often to compare closed windows with a random peer
//! max_connections = 256        # established connections in total
//! max_connections_per_ip = 8   # inbound connections per remote address (loopback exempt while local = true)
//!
//! [api]
//! listen = "127.0.0.1:8080"
//!
//! [[worker]]
//! topic = 1
//! model = { kind = "builtin", target = "range", model = "ema", alpha = 0.1 }
//!
//! [[reputer]]
//! topic = 1
//! truth = { kind = "csv", path = "eurusd_1h.csv", target = "range" }
//!
//! [validator]
//! enabled = true
//!
//! [consensus]                  # optional: checkpoint consensus timeouts (defaults suit
//! propose_ms = 3000            # checkpoint periods of minutes)
//!
//! [store]
//! archive = false              # true: keep all history (and serve it to peers)
//! retention_days = 30          # else finalized windows and certificates older are pruned
//! # retention_heights = 5000   # or count in checkpoint heights (at least 64)
//! history_days = 365           # finalized inferences and account statements: kept this long
//! compact_free_percent = 25    # give free pages back once they are this share of the file (0: never)
//! compact_min_mb = 16          # ... and the file is at least this large
//! compact_check_secs = 600     # how often the free pages are counted
//! ```
//!
//! Relative paths are relative to the config file's directory. Any value can be overridden
//! from the environment as `CHORUS_<SECTION>__<KEY>` (double underscore between section and
//! key), e.g. `CHORUS_API__LISTEN=127.0.0.1:9090`; the value is parsed as TOML if it parses,
//! else taken as a string.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chorus_crdt::checkpoint::TimeoutConfig;
use chorus_crdt::replica::ReplicaConfig;
use chorus_protocol::ids::TopicId;
use serde::{Deserialize, Serialize};

use crate::models::{
    Bars, ForecasterSpec, LossServiceSpec, ModelSpec, TruthSpec, build_forecaster,
    build_loss_service, build_model, build_truth,
};

/// Largest `[node] store_cache_mb` (64 GiB).
pub const MAX_STORE_CACHE_MB: u64 = 65_536;

/// Largest `[network] anti_entropy_ms` (10 minutes): anti-entropy is what repairs a bundle
/// gossip lost before its window closes, so rounds further apart than a long epoch repair
/// too late to matter.
pub const MAX_ANTI_ENTROPY_MS: u64 = 600_000;

/// Default `[node] state_sync_heights`: replaying a few hundred heights takes seconds; further
/// behind, a certified state is faster (and does not need peers that kept every window).
pub const DEFAULT_STATE_SYNC_HEIGHTS: u64 = 256;

/// `[node]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NodeSection {
    /// Where the store and state live.
    pub data_dir: PathBuf,
    /// The node's key file.
    pub key: PathBuf,
    /// The network's genesis file.
    pub genesis: PathBuf,
    /// Tick of the node's event loop (window flushes, timers), ms.
    pub tick_ms: u64,
    /// The store's page cache, MiB. The cache fills with what the node writes, so this is
    /// roughly the memory the store adds to the node.
    pub store_cache_mb: u64,
    /// `"<height>:<checkpoint id hex>"`, a checkpoint the operator trusts (from a source they
    /// trust): a chain whose checkpoint of that height differs is not followed. Required when
    /// the node's state is older than the validator unbonding period.
    pub trusted_checkpoint: Option<String>,
    /// The network's id (hex): with no file at `genesis`, `node run` asks the bootstrap peers
    /// for the genesis, keeps it only if it hashes to this id, and writes it there; with a
    /// file, the file must be this network's.
    pub network_id: Option<String>,
    /// At start, when a bootstrap peer has finalized this many heights more than the store
    /// holds, `node run` installs the peer's certified ledger state (verified from the genesis
    /// or `trusted_checkpoint`) instead of replaying every window it missed; while running it
    /// asks again every 8 checkpoint periods and, that far behind, restarts from such a state;
    /// 0: never.
    pub state_sync_heights: u64,
}

impl Default for NodeSection {
    fn default() -> Self {
        NodeSection {
            data_dir: "data".into(),
            key: "node.key".into(),
            genesis: "genesis.toml".into(),
            // 50 ms: batches window applies (automerge likes batches) and keeps latency low.
            tick_ms: 50,
            store_cache_mb: (crate::store::ops::DEFAULT_CACHE_BYTES >> 20) as u64,
            trusted_checkpoint: None,
            network_id: None,
            state_sync_heights: DEFAULT_STATE_SYNC_HEIGHTS,
        }
    }
}

/// `[network]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NetworkSection {
    /// Listen addresses (multiaddr).
    pub listen: Vec<String>,
    /// Peers to dial at start and to re-dial with backoff.
    pub bootstrap: Vec<String>,
    /// Kademlia discovery (for networks bigger than a LAN).
    pub kademlia: bool,
    /// mDNS discovery. Off by default: it multicasts beyond loopback.
    pub mdns: bool,
    /// Whitelist loopback from IP-colocation scoring (local testbeds).
    pub local: bool,
    /// Use the in-process memory transport (tests).
    pub memory: bool,
    /// Largest reconnect backoff, ms.
    pub max_backoff_ms: u64,
    /// Period of anti-entropy rounds, ms: each round compares the roots of the closed windows
    /// with one random peer and syncs the windows that differ.
    pub anti_entropy_ms: u64,
    /// Established connections in total (inbound and outbound).
    pub max_connections: u32,
    /// Established inbound connections per remote IP address (loopback is exempt while
    /// `local = true`).
    pub max_connections_per_ip: u32,
}

impl Default for NetworkSection {
    fn default() -> Self {
        NetworkSection {
            listen: vec!["/ip4/127.0.0.1/tcp/0".into()],
            bootstrap: vec![],
            kademlia: false,
            mdns: false,
            local: true,
            memory: false,
            // Reconnect quickly on a LAN; a minute caps the wait behind a long outage.
            max_backoff_ms: 60_000,
            // One small request a second: a bundle gossip lost is repaired within seconds,
            // well inside epochs of minutes.
            anti_entropy_ms: 1_000,
            max_connections: 256,
            max_connections_per_ip: 8,
        }
    }
}

/// `[api]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiSection {
    /// REST listen address (127.0.0.1 by default: the API is for the operator).
    pub listen: String,
    /// Serve the API at all.
    pub enabled: bool,
    /// File holding the admin token for write endpoints (created if missing).
    pub admin_token_file: PathBuf,
}

impl Default for ApiSection {
    fn default() -> Self {
        ApiSection {
            listen: "127.0.0.1:8080".into(),
            enabled: true,
            admin_token_file: "admin.token".into(),
        }
    }
}

/// `[log]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSection {
    /// `text` or `json`.
    pub format: String,
    /// Default filter when `RUST_LOG` is unset.
    pub level: String,
}

impl Default for LogSection {
    fn default() -> Self {
        LogSection {
            format: "text".into(),
            level: "info".into(),
        }
    }
}

/// One `[[worker]]`: an inferer (and optionally forecaster) in a topic.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerRole {
    /// The topic.
    pub topic: TopicId,
    /// The inference model (omit for a pure forecaster).
    #[serde(default)]
    pub model: Option<ModelSpec>,
    /// The forecaster.
    #[serde(default)]
    pub forecaster: Option<ForecasterSpec>,
    /// Largest random delay after the window opens before submitting, ms.
    #[serde(default = "default_jitter")]
    pub jitter_ms: u64,
    /// Bars fed to built-in models and forecasters (CSV; bar `e` before epoch `e`).
    #[serde(default)]
    pub data: Option<PathBuf>,
    /// Ground truth a forecaster learns from (defaults: none; forecasters then only forecast
    /// from what they learned before).
    #[serde(default)]
    pub truth: Option<TruthSpec>,
}

fn default_jitter() -> u64 {
    // Spreads submissions over the first part of the window so they do not burst.
    200
}

/// One `[[reputer]]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReputerRole {
    /// The topic.
    pub topic: TopicId,
    /// Where the ground truth comes from.
    pub truth: TruthSpec,
    /// An Allora loss-function service to ask instead of the topic's built-in loss.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss: Option<LossServiceSpec>,
}

/// `[validator]`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ValidatorRole {
    /// Take part in checkpoint consensus (the key must be bonded).
    pub enabled: bool,
}

/// `[consensus]`: checkpoint consensus tunables. The defaults suit checkpoint periods of
/// minutes; a fast local network (the devnet's 200 ms epochs) shortens them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConsensusSection {
    /// Wait after a checkpoint period ends before proposing (on top of the clock-skew
    /// allowance), ms.
    pub propose_grace_ms: u64,
    /// Wait for a proposal before prevoting nil (round 0), ms.
    pub propose_ms: u64,
    /// Added to `propose_ms` per round.
    pub propose_delta_ms: u64,
    /// Wait for prevotes, ms.
    pub prevote_ms: u64,
    /// Added to `prevote_ms` per round.
    pub prevote_delta_ms: u64,
    /// Wait for precommits, ms.
    pub precommit_ms: u64,
    /// Added to `precommit_ms` per round.
    pub precommit_delta_ms: u64,
    /// Period of re-sending our latest votes, ms.
    pub rebroadcast_ms: u64,
    /// Cap of every timeout, ms.
    pub max_ms: u64,
}

impl Default for ConsensusSection {
    fn default() -> Self {
        ConsensusSection::from_replica(&ReplicaConfig::default())
    }
}

impl ConsensusSection {
    /// The section that reproduces `r`'s tunables.
    pub fn from_replica(r: &ReplicaConfig) -> Self {
        let t = r.timeouts;
        ConsensusSection {
            propose_grace_ms: r.propose_grace_ms,
            propose_ms: t.propose_ms,
            propose_delta_ms: t.propose_delta_ms,
            prevote_ms: t.prevote_ms,
            prevote_delta_ms: t.prevote_delta_ms,
            precommit_ms: t.precommit_ms,
            precommit_delta_ms: t.precommit_delta_ms,
            rebroadcast_ms: t.rebroadcast_ms,
            max_ms: t.max_ms,
        }
    }

    /// The replica tunables of this section (`validator` from `[validator]`).
    pub fn replica(&self, validator: bool) -> ReplicaConfig {
        ReplicaConfig {
            propose_grace_ms: self.propose_grace_ms,
            timeouts: TimeoutConfig {
                propose_ms: self.propose_ms,
                propose_delta_ms: self.propose_delta_ms,
                prevote_ms: self.prevote_ms,
                prevote_delta_ms: self.prevote_delta_ms,
                precommit_ms: self.precommit_ms,
                precommit_delta_ms: self.precommit_delta_ms,
                rebroadcast_ms: self.rebroadcast_ms,
                max_ms: self.max_ms,
            },
            validator,
            ..ReplicaConfig::default()
        }
    }
}

/// The whole configuration.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// `[node]`.
    pub node: NodeSection,
    /// `[network]`.
    pub network: NetworkSection,
    /// `[api]`.
    pub api: ApiSection,
    /// `[log]`.
    pub log: LogSection,
    /// `[[worker]]`.
    pub worker: Vec<WorkerRole>,
    /// `[[reputer]]`.
    pub reputer: Vec<ReputerRole>,
    /// `[validator]`.
    pub validator: ValidatorRole,
    /// `[consensus]`.
    pub consensus: ConsensusSection,
    /// `[store]`.
    pub store: StoreSection,
}

/// `[store]`: how long finalized history is kept.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreSection {
    /// Keep every window, envelope and certificate forever (serve history to others).
    pub archive: bool,
    /// Otherwise: windows finalized and certificates decided more than this many days ago are
    /// pruned (counted in checkpoint periods of the genesis).
    pub retention_days: u64,
    /// If set, the retention in checkpoint heights instead of days (at least 64).
    pub retention_heights: Option<u64>,
    /// Finalized network inferences and account statement lines (small; what consumers and
    /// `chorus rewards --history` ask for) are kept this many days (unless `archive`).
    pub history_days: u64,
    /// The file is compacted in the background (free pages given back to the file system)
    /// when its free pages are at least this many percent of its bytes on disk (0: never;
    /// archive nodes too).
    pub compact_free_percent: u64,
    /// ... and it occupies at least this many MiB.
    pub compact_min_mb: u64,
    /// The free pages are counted this often (seconds; it reads every table).
    pub compact_check_secs: u64,
}

impl Default for StoreSection {
    fn default() -> Self {
        StoreSection {
            archive: false,
            retention_days: 30,
            retention_heights: None,
            history_days: 365,
            compact_free_percent: 25,
            compact_min_mb: 16,
            compact_check_secs: 600,
        }
    }
}

impl StoreSection {
    /// The retention for a network of `checkpoint_period_ms` periods.
    pub fn retention(&self, checkpoint_period_ms: u64) -> crate::store::prune::Retention {
        use crate::store::prune::{MIN_RETENTION_HEIGHTS, Retention};
        if self.archive {
            return Retention::Archive;
        }
        let heights = self.retention_heights.unwrap_or_else(|| {
            self.retention_days.saturating_mul(86_400_000) / checkpoint_period_ms.max(1)
        });
        Retention::Prune {
            heights: heights.max(MIN_RETENTION_HEIGHTS),
            history_ms: self.history_days.saturating_mul(86_400_000),
        }
    }

    /// When the store is compacted in the background.
    pub fn compaction(&self) -> crate::store::stats::CompactPolicy {
        crate::store::stats::CompactPolicy {
            free_percent: self.compact_free_percent,
            min_bytes: self.compact_min_mb.saturating_mul(1 << 20),
            check_every_ms: self.compact_check_secs.saturating_mul(1_000),
        }
    }

    fn problems(&self) -> Vec<String> {
        let min = crate::store::prune::MIN_RETENTION_HEIGHTS;
        let mut problems = vec![];
        if self.retention_heights.is_some_and(|h| h < min) {
            problems.push(format!("[store] retention_heights must be at least {min}"));
        }
        if self.retention_heights.is_none() && self.retention_days == 0 {
            problems.push(
                "[store] retention_days must be at least 1 (or set archive = true to keep all)"
                    .into(),
            );
        }
        if self.compact_free_percent > 100 {
            problems.push("[store] compact_free_percent must be at most 100 (0: never)".into());
        }
        if self.compact_check_secs == 0 {
            problems.push("[store] compact_check_secs must be at least 1".into());
        }
        if self.history_days == 0 {
            problems.push(
                "[store] history_days must be at least 1 (or set archive = true to keep all)"
                    .into(),
            );
        }
        problems
    }
}

/// Everything wrong with a configuration.
#[derive(Debug, thiserror::Error)]
#[error("{}", .problems.join("; "))]
pub struct ConfigError {
    /// One line per problem.
    pub problems: Vec<String>,
}

impl ConfigError {
    fn one(p: String) -> Self {
        ConfigError { problems: vec![p] }
    }

    fn from_problems(problems: Vec<String>) -> Result<(), ConfigError> {
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError { problems })
        }
    }
}

/// Environment variables as (section, key, value) overrides.
fn env_overrides(vars: impl Iterator<Item = (String, String)>) -> Vec<(String, String, String)> {
    vars.filter_map(|(k, v)| {
        let rest = k.strip_prefix("CHORUS_")?;
        let (section, key) = rest.split_once("__")?;
        Some((section.to_lowercase(), key.to_lowercase(), v))
    })
    .collect()
}

fn apply_overrides(
    doc: &mut toml::Table,
    overrides: &[(String, String, String)],
) -> Result<(), ConfigError> {
    for (section, key, value) in overrides {
        let parsed: toml::Value = toml::from_str::<toml::Table>(&format!("v = {value}"))
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or_else(|| toml::Value::String(value.clone()));
        let table = doc
            .entry(section.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        let Some(table) = table.as_table_mut() else {
            return Err(ConfigError::one(format!(
                "environment override CHORUS_{}__{}: [{section}] is not a table",
                section.to_uppercase(),
                key.to_uppercase()
            )));
        };
        table.insert(key.clone(), parsed);
    }
    Ok(())
}

impl Config {
    /// Parse TOML text with the given environment overrides applied.
    pub fn parse(
        text: &str,
        env: impl Iterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let mut doc: toml::Table =
            toml::from_str(text).map_err(|e| ConfigError::one(format!("TOML: {e}")))?;
        apply_overrides(&mut doc, &env_overrides(env))?;
        toml::Value::Table(doc)
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::one(format!("config: {e}")))
    }

    /// Load a file (environment overrides from the process) and resolve relative paths
    /// against its directory.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::one(format!("{}: {e}", path.display())))?;
        let mut c = Config::parse(&text, std::env::vars())?;
        let base = path.parent().unwrap_or(Path::new("."));
        c.resolve_paths(base);
        Ok(c)
    }

    /// Make relative paths relative to `base`.
    pub fn resolve_paths(&mut self, base: &Path) {
        for p in [
            &mut self.node.data_dir,
            &mut self.node.key,
            &mut self.node.genesis,
            &mut self.api.admin_token_file,
        ] {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        for r in &mut self.reputer {
            r.truth.resolve_paths(base);
            if let Some(l) = &mut r.loss {
                l.resolve_paths(base);
            }
        }
        for w in &mut self.worker {
            if let Some(d) = &mut w.data
                && d.is_relative()
            {
                *d = base.join(&*d);
            }
            if let Some(t) = &mut w.truth {
                t.resolve_paths(base);
            }
        }
    }

    /// The event-loop tick.
    pub fn tick(&self) -> Duration {
        Duration::from_millis(self.node.tick_ms)
    }

    /// `[node] trusted_checkpoint` parsed (`None` if absent or malformed: validation says why).
    pub fn trusted_checkpoint(&self) -> Option<(u64, chorus_protocol::ids::Hash32)> {
        self.node
            .trusted_checkpoint
            .as_deref()
            .and_then(parse_trusted_checkpoint)
    }

    /// `[node] network_id`, parsed (`None` when unset or malformed).
    pub fn network_id(&self) -> Option<chorus_protocol::ids::NetworkId> {
        let bytes = hex::decode(self.node.network_id.as_deref()?).ok()?;
        Some(chorus_protocol::ids::Hash32(bytes.try_into().ok()?))
    }

    /// Whether `node run` will fetch the genesis: no file at `genesis`, a `network_id` and at
    /// least one bootstrap peer.
    pub fn fetches_genesis(&self) -> bool {
        !self.node.genesis.exists()
            && self.network_id().is_some()
            && !self.network.bootstrap.is_empty()
    }

    /// The store's page cache, bytes.
    pub fn store_cache_bytes(&self) -> usize {
        (self.node.store_cache_mb.min(MAX_STORE_CACHE_MB) as usize) << 20
    }

    /// The largest reconnect backoff.
    pub fn max_backoff(&self) -> Duration {
        Duration::from_millis(self.network.max_backoff_ms)
    }

    /// The period of anti-entropy rounds.
    pub fn anti_entropy(&self) -> Duration {
        Duration::from_millis(self.network.anti_entropy_ms)
    }
}

/// `"<height>:<64 hex>"` → (height, checkpoint id).
pub fn parse_trusted_checkpoint(s: &str) -> Option<(u64, chorus_protocol::ids::Hash32)> {
    let (h, id) = s.split_once(':')?;
    let height = h.trim().parse().ok()?;
    let bytes: [u8; 32] = hex::decode(id.trim()).ok()?.try_into().ok()?;
    Some((height, chorus_protocol::ids::Hash32(bytes)))
}

mod check;
#[cfg(test)]
mod tests;
