//! The multi-process testbed: real `chorus node run` processes on loopback (or in network
//! namespaces), generated configs, kill -9 and restart, agreement checks.
//!
//! - [`plan`]: one description of a test network (roles, topics, timing) for in-process and
//!   multi-process runs;
//! - [`cluster`]: the run directory and the child processes (killed on drop);
//! - [`api`]: a REST client of one node (the node crate's `api::client`);
//! - [`check`]: agreement checks (heads per height, convergence, inferences, supply);
//! - [`run`]: the `procs` command.

pub mod check;
pub mod cluster;
pub mod plan;
pub mod run;

use std::time::Duration;

use chorus_node::api::client::NodeClient;

/// Time allowed for one REST request to a testbed node: a stopped or overloaded node must not
/// stall a polling loop for the client's default 30 s.
pub const API_TIMEOUT: Duration = Duration::from_secs(5);

/// A REST client of the node whose API listens at `addr` (`host:port`).
pub fn api(addr: &str) -> anyhow::Result<NodeClient> {
    Ok(NodeClient::new(&format!("http://{addr}"))?.with_timeout(API_TIMEOUT))
}

/// `GET path` of the node at `addr` as the API document `T`.
pub async fn get<T: serde::de::DeserializeOwned>(addr: &str, path: &str) -> anyhow::Result<T> {
    Ok(api(addr)?.get(path).await?)
}
