//! The copycat: a worker that runs no model and publishes the latest inference it can see from
//! the best-scoring inferer of its topic. It is the attack commit-reveal is for (a demonstration
//! worker of the devnet, `--copycat`): with bundles in the clear it reads the best worker's
//! inference of the current epoch from its own node's window and earns a share for it; in a
//! commit-reveal topic the window holds only commitments until the submission window has
//! closed, so the latest value it can see is one epoch old.
//!
//! It reads what any peer following the topic's gossip reads, through its node's queries
//! (`GET /v1/topics/{id}/scores`, `GET /v1/topics/{id}/bundles?epoch=E`,
//! `GET /v1/topics/{id}/inference`), never anything a stranger could not.

use chorus_protocol::ids::TopicId;
use chorus_protocol::keys::PublicKey;
use serde::{Deserialize, Serialize};

use super::spec::ModelError;
use super::template::EpochContext;
use crate::actor::NodeHandle;

/// `model = { kind = "copycat" }` of a worker.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CopycatSpec {
    /// How long after the submission window opens it looks (ms); default: two fifths of the
    /// submission window (after honest workers, typically, and well before the close).
    #[serde(default)]
    pub after_ms: Option<u64>,
}

/// A copycat ready to run once [`Copycat::attach`]ed to its node.
#[derive(Debug, Clone)]
pub struct Copycat {
    after_ms: Option<u64>,
    node: Option<(NodeHandle, PublicKey)>,
}

/// Where a copied value came from.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Copied {
    /// The value.
    pub value: f64,
    /// The epoch whose inference it is (the current one: a fresh copy).
    pub epoch: u64,
}

impl Copycat {
    /// From its spec.
    pub fn new(spec: &CopycatSpec) -> Copycat {
        Copycat {
            after_ms: spec.after_ms,
            node: None,
        }
    }

    /// Read through `handle`, never copying `me`.
    pub fn attach(&mut self, handle: NodeHandle, me: PublicKey) {
        self.node = Some((handle, me));
    }

    /// When it looks, ms after a submission window of `window_ms` opens (always inside it).
    pub fn after_ms(&self, window_ms: u64) -> u64 {
        self.after_ms
            .unwrap_or(window_ms * 2 / 5)
            .min(window_ms.saturating_sub(1))
    }

    /// The latest inference of the best-scoring other inferer it can see for `ctx`'s epoch:
    /// from the epoch's window, else the previous epoch's (revealed) one, else the latest
    /// finalized inference. `NotReady` when nobody has a score yet or nothing is visible.
    pub async fn copy(&self, ctx: &EpochContext) -> Result<Copied, ModelError> {
        let (node, me) = self.node.as_ref().ok_or(ModelError::NotReady)?;
        let topic = TopicId(ctx.topic_id);
        let scores = node.scores(topic).await.map_err(|_| ModelError::NotReady)?;
        let me = me.to_hex();
        let best = scores
            .inferers
            .iter()
            .filter(|(k, v)| **k != me && v.is_finite())
            .max_by(|a, b| a.1.total_cmp(b.1).then_with(|| b.0.cmp(a.0)))
            .map(|(k, _)| k.clone())
            .ok_or(ModelError::NotReady)?;
        for epoch in [Some(ctx.epoch), ctx.epoch.checked_sub(1)]
            .into_iter()
            .flatten()
        {
            let Ok(held) = node.bundles(topic, Some(epoch)).await else {
                continue;
            };
            let seen = held
                .bundles
                .iter()
                .filter(|b| b.worker == best && b.kind != "commit")
                .find_map(|b| b.inference);
            if let Some(value) = seen {
                return Ok(Copied { value, epoch });
            }
        }
        let last = node
            .inference(topic, None)
            .await
            .map_err(|_| ModelError::NotReady)?;
        last.bundle
            .inferer_values
            .iter()
            .find(|(k, _)| k.to_hex() == best)
            .map(|(_, v)| Copied {
                value: *v,
                epoch: last.epoch,
            })
            .ok_or(ModelError::NotReady)
    }
}
