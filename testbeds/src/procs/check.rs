//! Agreement checks over nodes' REST answers: every observation of `(height, ledger_root,
//! tip)` is recorded and any two nodes seen at one height with different roots or tips is a
//! conflict; at the end the nodes must converge on one `(height, root, tip)`, return the same
//! finalized inferences, and conserve supply.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chorus_node::api::types::{Inference, Status, Submission, Topic};
use chorus_protocol::inference::Values;
use futures::future::join_all;

/// What one node said about its ledger at one moment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Head {
    /// Ledger height (checkpoints applied).
    pub height: u64,
    /// Ledger root.
    pub root: String,
    /// Last applied checkpoint id.
    pub tip: String,
}

impl Head {
    /// From a `/v1/status` answer.
    pub fn of(status: &Status) -> Head {
        Head {
            height: status.height,
            root: status.ledger_root.to_hex(),
            tip: status.tip.to_hex(),
        }
    }
}

/// Observations of every node, by height.
#[derive(Debug, Default)]
pub struct Observer {
    seen: BTreeMap<u64, (usize, Head)>,
    /// Conflicts found (one line each).
    pub conflicts: Vec<String>,
    /// Latest head per node.
    pub latest: BTreeMap<usize, Head>,
}

impl Observer {
    /// Record node `i`'s head.
    pub fn record(&mut self, i: usize, head: Head) {
        match self.seen.get(&head.height) {
            None => {
                self.seen.insert(head.height, (i, head.clone()));
            }
            Some((j, h)) if h.root != head.root || h.tip != head.tip => {
                if self.conflicts.len() < 20 {
                    self.conflicts.push(format!(
                        "height {}: node {j} has root {} tip {}, node {i} has root {} tip {}",
                        head.height,
                        short(&h.root),
                        short(&h.tip),
                        short(&head.root),
                        short(&head.tip)
                    ));
                }
            }
            Some(_) => {}
        }
        self.latest.insert(i, head);
    }

    /// Heights observed.
    pub fn heights_seen(&self) -> usize {
        self.seen.len()
    }
}

fn short(hex: &str) -> &str {
    &hex[..hex.len().min(12)]
}

/// Fetch the status of every API address at once (failures as `None`).
pub async fn statuses(apis: &[String]) -> Vec<Option<Status>> {
    join_all(
        apis.iter()
            .map(|a| async move { super::get(a, "/v1/status").await.ok() }),
    )
    .await
}

/// The submissions of `kind` a node's status shows as accepted.
pub fn accepted<'a>(status: &'a Status, kind: &'a str) -> impl Iterator<Item = &'a Submission> {
    status
        .submissions
        .iter()
        .filter(move |s| s.kind == kind && s.accepted)
}

/// Wait until every node reports the same head; returns it, or the last disagreement.
pub async fn converge(
    apis: &[String],
    timeout: Duration,
    obs: &mut Observer,
) -> Result<Head, String> {
    let t0 = Instant::now();
    loop {
        let all = statuses(apis).await;
        let heads: Vec<Option<Head>> = all.iter().map(|s| s.as_ref().map(Head::of)).collect();
        for (i, h) in heads.iter().enumerate() {
            if let Some(h) = h {
                obs.record(i, h.clone());
            }
        }
        if let Some(Some(first)) = heads.first()
            && heads.iter().all(|h| h.as_ref() == Some(first))
        {
            return Ok(first.clone());
        }
        let last = heads
            .iter()
            .enumerate()
            .map(|(i, h)| match h {
                Some(h) => format!("node {i}: height {} root {}", h.height, short(&h.root)),
                None => format!("node {i}: no answer"),
            })
            .collect::<Vec<_>>()
            .join(", ");
        if t0.elapsed() > timeout {
            return Err(last);
        }
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
}

/// The fields of a network inference that must agree.
type InferenceCore = (f64, Option<f64>, Values, Values, Values);

fn inference_core(v: Inference) -> InferenceCore {
    let b = v.bundle;
    (
        b.combined_value,
        b.naive_value,
        b.inferer_values,
        b.forecaster_values,
        b.inferer_weights,
    )
}

/// Compare the finalized inferences of `topic` for `epochs` on every node. Returns (epochs
/// compared where every node answered, problems).
pub async fn compare_inferences(apis: &[String], topic: u64, epochs: &[u64]) -> (u64, Vec<String>) {
    let mut compared = 0;
    let mut problems = vec![];
    for e in epochs {
        let path = format!("/v1/topics/{topic}/inference?epoch={e}");
        let answers = join_all(apis.iter().map(|a| {
            let path = path.clone();
            async move { super::get::<Inference>(a, &path).await }
        }))
        .await;
        let mut reference: Option<(usize, InferenceCore)> = None;
        let mut all = true;
        for (i, a) in answers.into_iter().enumerate() {
            match a {
                Ok(v) => {
                    if !v.finalized {
                        problems.push(format!("topic {topic} epoch {e}: node {i} not finalized"));
                        all = false;
                        continue;
                    }
                    let core = inference_core(v);
                    match &reference {
                        None => reference = Some((i, core)),
                        Some((j, r)) if *r != core => problems.push(format!(
                            "topic {topic} epoch {e}: node {i} differs from node {j}: {} vs {}",
                            core.0, r.0
                        )),
                        Some(_) => {}
                    }
                }
                Err(err) => {
                    problems.push(format!("topic {topic} epoch {e}: node {i}: {err:#}"));
                    all = false;
                }
            }
        }
        if all {
            compared += 1;
        }
    }
    (compared, problems)
}

/// Nodes whose `supply.conserved` is not `true`.
pub fn supply_problems(statuses: &[Option<Status>]) -> Vec<usize> {
    statuses
        .iter()
        .enumerate()
        .filter(|(_, s)| s.as_ref().is_none_or(|s| !s.supply.conserved))
        .map(|(i, _)| i)
        .collect()
}

/// The last finalized worker epoch of `topic` on every node (min over nodes).
pub async fn min_finalized_epoch(apis: &[String], topic: u64) -> Option<u64> {
    let path = format!("/v1/topics/{topic}");
    let answers = join_all(apis.iter().map(|a| {
        let path = path.clone();
        async move { super::get::<Topic>(a, &path).await.ok() }
    }))
    .await;
    answers
        .into_iter()
        .map(|a| a.and_then(|t| t.last_finalized_epoch))
        .collect::<Option<Vec<u64>>>()?
        .into_iter()
        .min()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(h: u64, root: &str) -> Head {
        Head {
            height: h,
            root: root.into(),
            tip: "t".into(),
        }
    }

    #[test]
    fn conflicts_at_one_height_are_found() {
        let mut o = Observer::default();
        o.record(0, head(1, "a"));
        o.record(1, head(1, "a"));
        o.record(1, head(2, "b"));
        assert!(o.conflicts.is_empty());
        o.record(2, head(2, "c"));
        assert_eq!(o.conflicts.len(), 1);
        assert_eq!(o.heights_seen(), 2);
    }
}
