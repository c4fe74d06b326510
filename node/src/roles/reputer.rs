//! The reputer task: losses of each finalized network inference against the truth, once per
//! epoch, retried with backoff while the truth is not there yet.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use chorus_crdt::replica::duties::{
    DutyError, bundle_values, loss_bundle, loss_bundle_with, loss_floor,
};
use chorus_protocol::inference::NetworkInference;
use chorus_protocol::messages::{Payload, ReputerBundle, ValueBundle};
use chorus_protocol::topic::TopicSpec;
use tokio::sync::{mpsc, watch};

use super::{ReputerTask, Retry, RoleOutput, RoleView, count, note_registration, skipped};
use crate::clock::Clock;
use crate::metrics::NodeMetrics;
use crate::models::{EpochContext, LossServiceError};

/// Run a reputer until the output channel closes.
///
/// For each finalized network inference whose reputer window is open, it asks the truth
/// source (again after each transient failure or "not available yet", with backoff) and
/// publishes the losses once. An epoch whose window closes without a report counts as missed
/// once, with the last reason (`not_registered`, `truth_unavailable`, the source's failure, or
/// `loss`).
pub async fn run_reputer(
    task: ReputerTask,
    mut view: watch::Receiver<Arc<RoleView>>,
    out: mpsc::Sender<RoleOutput>,
    clock: Clock,
    metrics: Arc<NodeMetrics>,
) {
    // Epochs reported, or counted as missed.
    let mut done: BTreeSet<u64> = BTreeSet::new();
    // Per epoch in its window: the last failure, and when to try again.
    let mut trying: BTreeMap<u64, (&'static str, u64, Retry)> = BTreeMap::new();
    let mut was_registered = None;
    // Windows that closed before this task started are not this run's to count (after a
    // restart the key may well have reported them).
    let started = clock.now_ms();
    loop {
        let v = view.borrow_and_update().clone();
        let registered = v
            .reputers
            .get(&task.topic)
            .is_some_and(|r| r.contains(&task.me));
        note_registration(&mut was_registered, registered, task.topic, "reputer");
        if let Some(spec) = v.topics.get(&task.topic) {
            let now = clock.now_ms();
            for ((t, e), bundle) in v.pending.range((task.topic, 0)..=(task.topic, u64::MAX)) {
                let (open, close) = v.reputer_window(task.topic, spec, *e);
                if *t != task.topic || done.contains(e) || now < open {
                    continue;
                }
                if close <= started {
                    done.insert(*e);
                    continue;
                }
                if now >= close || !registered {
                    if now >= close {
                        let reason = match trying.remove(e) {
                            _ if !registered => "not_registered",
                            Some((reason, ..)) => reason,
                            None => "truth_unavailable",
                        };
                        done.insert(*e);
                        if skipped(&out, &metrics, (task.topic, *e, "reputer_bundle"), reason)
                            .await
                            .is_err()
                        {
                            return;
                        }
                    }
                    continue;
                }
                let entry = trying
                    .entry(*e)
                    .or_insert_with(|| ("truth_unavailable", now, Retry::until(close)));
                if now < entry.1 {
                    continue;
                }
                let ctx = EpochContext::of_topic(task.topic.0, spec, *e);
                let result = task.truth.truth(&ctx).await;
                count(&metrics, task.topic, "truth", &result);
                let truth = match result {
                    Ok(Some(y)) => y,
                    Ok(None) => {
                        entry.1 = next_try(&mut entry.2, &clock, "truth_unavailable", true);
                        continue;
                    }
                    Err(err) => {
                        tracing::info!(topic = %task.topic, epoch = e, reason = %err, "ground truth unavailable");
                        entry.0 = err.reason();
                        entry.1 = next_try(&mut entry.2, &clock, entry.0, err.is_transient());
                        continue;
                    }
                };
                // A slow loss service cannot hold the reputer past the window: what is not
                // ready at the close would be refused anyway.
                let left = Duration::from_millis(close.saturating_sub(clock.now_ms()));
                let losses = tokio::time::timeout(left, reputer_losses(&task, bundle, truth, spec))
                    .await
                    .unwrap_or_else(|_| {
                        Err(LossFailure {
                            reason: "deadline",
                            message: "the losses were not ready when the reputer window closed"
                                .into(),
                            transient: false,
                        })
                    });
                match losses {
                    Ok(losses) => {
                        trying.remove(e);
                        done.insert(*e);
                        let p = Payload::ReputerBundle(ReputerBundle {
                            topic: task.topic,
                            epoch: *e,
                            ground_truth: truth,
                            losses,
                        });
                        if out.send(RoleOutput::Publish(Box::new(p))).await.is_err() {
                            return;
                        }
                    }
                    Err(LossFailure {
                        reason,
                        message,
                        transient,
                    }) => {
                        tracing::warn!(topic = %task.topic, epoch = e, reason = %message, "no loss bundle");
                        entry.0 = reason;
                        entry.1 = next_try(&mut entry.2, &clock, reason, transient);
                    }
                }
            }
            while done.len() > 4096 {
                done.pop_first();
            }
            trying.retain(|e, _| v.pending.contains_key(&(task.topic, *e)));
        }
        tokio::select! {
            r = view.changed() => if r.is_err() { return },
            _ = clock.sleep_ms(250) => {},
        }
    }
}

/// Why a reputer has no loss bundle for an epoch.
struct LossFailure {
    /// Metrics label.
    reason: &'static str,
    /// For the log.
    message: String,
    /// Whether trying again may help.
    transient: bool,
}

/// The losses of `bundle` against `truth`: the topic's built-in loss, or the reputer's loss
/// service (whose losses must be log10-able when the topic expects log10 losses).
async fn reputer_losses(
    task: &ReputerTask,
    bundle: &NetworkInference,
    truth: f64,
    spec: &TopicSpec,
) -> Result<ValueBundle, LossFailure> {
    let math = |e: DutyError| LossFailure {
        reason: "loss",
        message: e.to_string(),
        transient: false,
    };
    let Some(service) = &task.loss else {
        return loss_bundle(bundle, truth, &spec.loss).map_err(math);
    };
    let failed = |e: LossServiceError| LossFailure {
        reason: e.reason(),
        message: e.to_string(),
        transient: e.is_transient(),
    };
    let never_negative = service.is_never_negative().await.map_err(failed)?;
    if !never_negative && !spec.allow_negative {
        return Err(LossFailure {
            reason: "loss_service",
            message: format!(
                "the loss service at {} says its losses may be negative, but topic {} expects \
                 log10 losses (allow_negative = false)",
                service.url(),
                task.topic
            ),
            transient: false,
        });
    }
    let values = bundle_values(bundle);
    let losses = service
        .reported_losses(truth, &values, loss_floor(truth))
        .await
        .map_err(failed)?;
    loss_bundle_with(bundle, |v| {
        losses
            .get(&v.to_bits())
            .copied()
            .ok_or_else(|| DutyError::External {
                prediction: v,
                reason: "not scored".into(),
            })
    })
    .map_err(math)
}

/// When to ask the truth source again after a failure (`u64::MAX`: not this window).
fn next_try(retry: &mut Retry, clock: &Clock, reason: &'static str, transient: bool) -> u64 {
    match retry.next_wait(transient) {
        Some(wait) => {
            tracing::debug!(reason, wait_ms = wait, "truth: trying again");
            clock.now_ms().saturating_add(wait)
        }
        None => u64::MAX,
    }
}
