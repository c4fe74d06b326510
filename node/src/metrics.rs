//! The node's Prometheus metrics (placeholder API; implemented with prometheus-client).

use std::sync::Mutex;

use prometheus_client::registry::Registry;

/// Every metric of a node, in one registry (libp2p's metrics register into it too).
#[derive(Debug)]
pub struct NodeMetrics {
    registry: Mutex<Registry>,
}

impl Default for NodeMetrics {
    fn default() -> Self {
        NodeMetrics {
            registry: Mutex::new(Registry::with_prefix("chorus")),
        }
    }
}

impl NodeMetrics {
    /// The registry, to register more metrics (libp2p's).
    pub fn registry(&self) -> std::sync::MutexGuard<'_, Registry> {
        match self.registry.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry());
        out
    }
}
