//! Checking a [`Config`]: every problem at once, the values first, then the files they name.

use libp2p::Multiaddr;

use super::*;

impl Config {
    /// Check everything that can be checked without starting the node, and report every
    /// problem, not just the first: the values ([`Config::validate_values`]), then the key
    /// and genesis files they name. `chorus config validate` and `chorus node run` run this.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut problems = self.value_problems();
        problems.extend(self.file_problems());
        ConfigError::from_problems(problems)
    }

    /// The checks of [`Config::validate`] that read no file: what a config built in memory
    /// (a [`crate::localnet::LocalPlan`] node's, before its key and genesis are written) must
    /// pass.
    pub fn validate_values(&self) -> Result<(), ConfigError> {
        ConfigError::from_problems(self.value_problems())
    }

    pub(super) fn value_problems(&self) -> Vec<String> {
        let mut problems = vec![];
        if self.node.tick_ms == 0 || self.node.tick_ms > 10_000 {
            problems.push("[node] tick_ms must be in 1..=10000".into());
        }
        if self.node.store_cache_mb > MAX_STORE_CACHE_MB {
            problems.push(format!(
                "[node] store_cache_mb must be at most {MAX_STORE_CACHE_MB}"
            ));
        }
        if let Some(t) = &self.node.trusted_checkpoint
            && parse_trusted_checkpoint(t).is_none()
        {
            problems.push(format!(
                "[node] trusted_checkpoint {t:?} is not \"<height>:<64 hex characters>\""
            ));
        }
        if let Some(id) = &self.node.network_id
            && self.network_id().is_none()
        {
            problems.push(format!("[node] network_id {id:?} is not 64 hex characters"));
        }
        problems.extend(self.network.problems());
        problems.extend(self.store.problems());
        if self.api.enabled && self.api.listen.parse::<SocketAddr>().is_err() {
            problems.push(format!(
                "[api] listen {:?} is not an address like 127.0.0.1:8080",
                self.api.listen
            ));
        }
        let c = &self.consensus;
        if [c.propose_ms, c.prevote_ms, c.precommit_ms, c.rebroadcast_ms]
            .iter()
            .any(|t| *t == 0 || *t > c.max_ms)
        {
            problems.push(
                "[consensus] propose_ms, prevote_ms, precommit_ms and rebroadcast_ms must be \
                 in 1..=max_ms"
                    .into(),
            );
        }
        if !matches!(self.log.format.as_str(), "text" | "json") {
            problems.push(format!(
                "[log] format {:?}: use \"text\" or \"json\"",
                self.log.format
            ));
        }
        for (i, w) in self.worker.iter().enumerate() {
            if w.model.is_none() && w.forecaster.is_none() {
                problems.push(format!(
                    "[[worker]] #{i} (topic {}): needs a model or a forecaster",
                    w.topic
                ));
            }
        }
        problems
    }

    /// The key and genesis files, and the roles' topics against the genesis.
    fn file_problems(&self) -> Vec<String> {
        let mut problems = vec![];
        if !self.node.key.exists() {
            problems.push(format!(
                "[node] key {}: file not found",
                self.node.key.display()
            ));
        } else if let Err(e) = chorus_protocol::keyfile::read_key_file(&self.node.key) {
            problems.push(format!("[node] key: {e}"));
        }
        match std::fs::read_to_string(&self.node.genesis) {
            // Fetched from the bootstrap peers at start (`node run`).
            Err(_) if self.fetches_genesis() => {}
            Err(e) => problems.push(format!(
                "[node] genesis {}: {e}",
                self.node.genesis.display()
            )),
            Ok(text) => match chorus_protocol::genesis::Genesis::from_toml_str(&text) {
                Err(e) => problems.push(format!(
                    "[node] genesis {}: {e}",
                    self.node.genesis.display()
                )),
                Ok(g) => {
                    if let Some(id) = self.network_id()
                        && g.network_id() != id
                    {
                        problems.push(format!(
                            "[node] genesis {} is network {}, network_id says {}",
                            self.node.genesis.display(),
                            g.network_id().to_hex(),
                            id.to_hex()
                        ));
                    }
                    problems.extend(self.token_problems(&g));
                    let topics: Vec<TopicId> = g.topics.iter().map(|t| t.id).collect();
                    for t in self
                        .worker
                        .iter()
                        .map(|w| w.topic)
                        .chain(self.reputer.iter().map(|r| r.topic))
                    {
                        if !topics.contains(&t) && t.0 < 1 << 63 {
                            problems.push(format!(
                                "role for topic {t}, which the genesis does not define"
                            ));
                        }
                    }
                }
            },
        }
        problems.extend(self.model_problems());
        problems
    }

    /// Every model, forecaster and truth spec is built as `node run` would build it (URL
    /// scheme and host, templates, params, `ca_file`, CSV files), each failure on its own line.
    fn model_problems(&self) -> Vec<String> {
        let mut problems = vec![];
        for (i, w) in self.worker.iter().enumerate() {
            let at = format!("[[worker]] #{i} (topic {})", w.topic);
            if let Some(Err(e)) = w.model.as_ref().map(build_model) {
                problems.push(format!("{at} model: {e}"));
            }
            if let Some(Err(e)) = w.forecaster.as_ref().map(build_forecaster) {
                problems.push(format!("{at} forecaster: {e}"));
            }
            if let Some(Err(e)) = w.truth.as_ref().map(build_truth) {
                problems.push(format!("{at} truth: {e}"));
            }
            if let Some(Err(e)) = w.data.as_ref().map(Bars::load_csv) {
                problems.push(format!("{at} data: {e}"));
            }
        }
        for (i, r) in self.reputer.iter().enumerate() {
            if let Err(e) = build_truth(&r.truth) {
                problems.push(format!("[[reputer]] #{i} (topic {}) truth: {e}", r.topic));
            }
            if let Some(Err(e)) = r.loss.as_ref().map(build_loss_service) {
                problems.push(format!("[[reputer]] #{i} (topic {}) loss: {e}", r.topic));
            }
        }
        problems
    }

    /// A role whose requests use `{Token}` (with no `Token` param) for a genesis topic that
    /// has no token could never fill it.
    fn token_problems(&self, genesis: &chorus_protocol::genesis::Genesis) -> Vec<String> {
        let tokenless = |topic: TopicId| {
            genesis
                .topics
                .iter()
                .any(|t| t.id == topic && t.spec.token.is_empty())
        };
        let mut problems = vec![];
        let hint =
            "uses {Token}, but the topic has no token: set params.Token (e.g. Token = \"ETH\")";
        for (i, w) in self.worker.iter().enumerate() {
            let uses = w.model.as_ref().is_some_and(ModelSpec::needs_topic_token)
                || w.forecaster
                    .as_ref()
                    .is_some_and(ForecasterSpec::needs_topic_token)
                || w.truth.as_ref().is_some_and(TruthSpec::needs_topic_token);
            if uses && tokenless(w.topic) {
                problems.push(format!("[[worker]] #{i} (topic {}) {hint}", w.topic));
            }
        }
        for (i, r) in self.reputer.iter().enumerate() {
            if r.truth.needs_topic_token() && tokenless(r.topic) {
                problems.push(format!("[[reputer]] #{i} (topic {}) {hint}", r.topic));
            }
        }
        problems
    }
}

impl NetworkSection {
    /// The addresses parse and this build speaks their transport; bootstrap peers name their
    /// peer id; the anti-entropy period is in range.
    fn problems(&self) -> Vec<String> {
        let mut problems = address_problems("listen", &self.listen, false);
        problems.extend(address_problems("bootstrap", &self.bootstrap, true));
        if !(1..=MAX_ANTI_ENTROPY_MS).contains(&self.anti_entropy_ms) {
            problems.push(format!(
                "[network] anti_entropy_ms must be in 1..={MAX_ANTI_ENTROPY_MS}"
            ));
        }
        if self.max_connections == 0 || self.max_connections_per_ip == 0 {
            problems.push(
                "[network] max_connections and max_connections_per_ip must be at least 1".into(),
            );
        }
        problems
    }
}

/// What is wrong with the addresses of `[network] <field>`: each must parse and use a
/// transport this build speaks, and name its peer (`/p2p/…`) if `needs_peer`.
fn address_problems(field: &str, addrs: &[String], needs_peer: bool) -> Vec<String> {
    let mut problems = vec![];
    for (i, a) in addrs.iter().enumerate() {
        let m = match a.parse::<Multiaddr>() {
            Err(e) => {
                problems.push(format!("[network] {field}[{i}] {a:?}: {e}"));
                continue;
            }
            Ok(m) => m,
        };
        if let Some(why) = unsupported_transport(&m) {
            problems.push(format!("[network] {field}[{i}] {a:?}: {why}"));
        }
        if needs_peer
            && !m
                .iter()
                .any(|p| matches!(p, libp2p::multiaddr::Protocol::P2p(_)))
        {
            problems.push(format!(
                "[network] {field}[{i}] {a:?}: needs a /p2p/<peer id> suffix"
            ));
        }
    }
    problems
}

/// Why this binary cannot use `addr`'s transport, if it cannot: QUIC needs the `quic` feature.
fn unsupported_transport(addr: &Multiaddr) -> Option<&'static str> {
    transport_problem(addr, cfg!(feature = "quic"))
}

/// [`unsupported_transport`] for a binary built with or without QUIC (tests run with it on).
pub(super) fn transport_problem(addr: &Multiaddr, quic_built: bool) -> Option<&'static str> {
    let quic = addr
        .iter()
        .any(|p| matches!(p, libp2p::multiaddr::Protocol::QuicV1));
    (quic && !quic_built)
        .then_some("QUIC needs a chorus built with `--features quic` (this one speaks TCP only)")
}
