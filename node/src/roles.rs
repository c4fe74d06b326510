//! Roles: worker and reputer tasks.
//!
//! Each configured role runs as its own task (owned by the node's `JoinSet`). It watches a
//! [`RoleView`] the actor publishes (topic schedules, registrations, finalized network
//! inferences awaiting losses) and sends the payloads it produces to the actor, which signs
//! and publishes them. A model or truth source that times out, errors or returns garbage makes
//! the task skip that epoch with a logged reason and a metric: never a crash, never a wrong
//! value published.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chorus_crdt::replica::duties::loss_bundle;
use chorus_protocol::ids::TopicId;
use chorus_protocol::inference::NetworkInference;
use chorus_protocol::keys::PublicKey;
use chorus_protocol::messages::{ForecastElement, Payload, ReputerBundle, WorkerBundle};
use chorus_protocol::topic::TopicSpec;
use tokio::sync::{mpsc, watch};

use crate::clock::Clock;
use crate::metrics::NodeMetrics;
use crate::models::{
    Bars, EpochContext, Forecaster, Inferer, TruthSource, build_forecaster, build_model,
    build_truth,
};
use crate::models::{ForecasterSpec, ModelSpec, TruthSpec};

/// What roles need to know, published by the actor after every change.
#[derive(Clone, Debug, Default)]
pub struct RoleView {
    /// Topic schedules and parameters.
    pub topics: BTreeMap<TopicId, TopicSpec>,
    /// Registered workers per topic.
    pub workers: BTreeMap<TopicId, BTreeSet<PublicKey>>,
    /// Registered reputers per topic.
    pub reputers: BTreeMap<TopicId, BTreeSet<PublicKey>>,
    /// Finalized network inferences awaiting their losses, by (topic, epoch).
    pub pending: BTreeMap<(TopicId, u64), Arc<NetworkInference>>,
}

/// A payload a role wants published, or an epoch it skipped.
#[derive(Clone, Debug)]
pub enum RoleOutput {
    /// Sign and publish.
    Publish(Payload),
    /// Skipped an epoch, with the reason (for status and metrics).
    Skipped {
        /// Topic.
        topic: TopicId,
        /// Epoch.
        epoch: u64,
        /// Why (a stable label).
        reason: String,
    },
}

/// A worker role ready to run.
pub struct WorkerTask {
    /// The topic.
    pub topic: TopicId,
    /// Our key.
    pub me: PublicKey,
    /// The inference model.
    pub model: Option<Inferer>,
    /// The forecaster.
    pub forecaster: Option<Forecaster>,
    /// Bars fed to built-in models and forecasters (bar `e` before predicting epoch `e`).
    pub bars: Option<Arc<Bars>>,
    /// Truth for forecaster learning.
    pub truth: Option<TruthSource>,
    /// Largest random delay after the window opens.
    pub jitter_ms: u64,
}

/// A reputer role ready to run.
pub struct ReputerTask {
    /// The topic.
    pub topic: TopicId,
    /// Our key.
    pub me: PublicKey,
    /// The truth.
    pub truth: TruthSource,
}

/// Why a role could not be built.
#[derive(Debug, thiserror::Error)]
#[error("role for topic {topic}: {reason}")]
pub struct RoleError {
    /// Topic.
    pub topic: TopicId,
    /// Why.
    pub reason: String,
}

impl WorkerTask {
    /// Build from config.
    pub fn build(
        topic: TopicId,
        me: PublicKey,
        model: Option<&ModelSpec>,
        forecaster: Option<&ForecasterSpec>,
        data: Option<&PathBuf>,
        truth: Option<&TruthSpec>,
        jitter_ms: u64,
    ) -> Result<WorkerTask, RoleError> {
        let err = |e: &dyn std::fmt::Display| RoleError {
            topic,
            reason: e.to_string(),
        };
        let bars = match data {
            Some(p) => Some(Arc::new(Bars::load_csv(p).map_err(|e| err(&e))?)),
            None => None,
        };
        Ok(WorkerTask {
            topic,
            me,
            model: model.map(build_model).transpose().map_err(|e| err(&e))?,
            forecaster: forecaster
                .map(build_forecaster)
                .transpose()
                .map_err(|e| err(&e))?,
            bars,
            truth: truth.map(build_truth).transpose().map_err(|e| err(&e))?,
            jitter_ms,
        })
    }
}

/// Deterministic per-(key, epoch) jitter in `[0, max)`.
fn jitter(me: &PublicKey, epoch: u64, max: u64) -> u64 {
    if max == 0 {
        return 0;
    }
    let h = blake3::hash(&[me.as_bytes().as_slice(), &epoch.to_le_bytes()].concat());
    let mut b = [0u8; 8];
    b.copy_from_slice(&h.as_bytes()[..8]);
    u64::from_le_bytes(b) % max
}

async fn sleep_ms(ms: u64) {
    tokio::time::sleep(Duration::from_millis(ms.clamp(1, 60_000))).await;
}

/// Run a worker until the output channel closes.
pub async fn run_worker(
    mut task: WorkerTask,
    mut view: watch::Receiver<Arc<RoleView>>,
    out: mpsc::Sender<RoleOutput>,
    clock: Clock,
    metrics: Arc<NodeMetrics>,
) {
    let mut observed_bars = 0usize;
    let mut learned: BTreeSet<u64> = BTreeSet::new();
    let mut submitted: Option<u64> = None;
    loop {
        let v = view.borrow_and_update().clone();
        let Some(spec) = v.topics.get(&task.topic).cloned() else {
            tokio::select! {
                _ = view.changed() => {},
                _ = sleep_ms(500) => {},
            }
            continue;
        };
        let now = clock.now_ms();
        // Forecaster learning from finalized inferences whose truth is known.
        if let (Some(f), Some(truth)) = (task.forecaster.as_mut(), task.truth.as_ref()) {
            for ((t, e), bundle) in v.pending.range((task.topic, 0)..=(task.topic, u64::MAX)) {
                if *t != task.topic || learned.contains(e) {
                    continue;
                }
                let ctx = EpochContext::new(task.topic.0, *e, spec.name.clone());
                if let Ok(Some(y)) = truth.truth(&ctx).await {
                    let inferences = bundle
                        .inferer_values
                        .iter()
                        .map(|(k, v)| (k.to_hex(), *v))
                        .collect();
                    f.observe_truth(*e, y, &inferences, |t, p| {
                        spec.loss.loss(t, p).unwrap_or(f64::NAN)
                    });
                    learned.insert(*e);
                }
            }
            while learned.len() > 4096 {
                learned.pop_first();
            }
        }
        let Some(epoch) = spec.epoch_at(now) else {
            sleep_ms(spec.start_ms.saturating_sub(now)).await;
            continue;
        };
        let (open, close) = spec.worker_window(epoch);
        let registered = v
            .workers
            .get(&task.topic)
            .is_some_and(|w| w.contains(&task.me));
        if submitted == Some(epoch) || now >= close || !registered {
            let next = spec.worker_window(epoch + 1).0;
            tokio::select! {
                _ = sleep_ms(next.saturating_sub(now)) => {},
                _ = view.changed() => {},
            }
            continue;
        }
        let at = open + jitter(&task.me, epoch, task.jitter_ms.min((close - open) / 2));
        if now < at {
            sleep_ms(at - now).await;
            continue;
        }
        submitted = Some(epoch);
        // Feed bars up to and including the epoch's bar (never later ones).
        if let Some(bars) = &task.bars {
            let upto = usize::try_from(epoch)
                .unwrap_or(usize::MAX)
                .saturating_add(1);
            while observed_bars < upto.min(bars.len()) {
                if let Some(bar) = bars.get(observed_bars) {
                    if let Some(m) = task.model.as_mut() {
                        m.observe(bar);
                    }
                    if let Some(f) = task.forecaster.as_mut() {
                        f.observe_bar(bar);
                    }
                }
                observed_bars += 1;
            }
        }
        let ctx = EpochContext::new(task.topic.0, epoch, spec.name.clone());
        let inference = match task.model.as_ref() {
            None => None,
            Some(m) => match m.infer(&ctx).await {
                Ok(v) => Some(v),
                Err(e) => {
                    metrics.epoch_missed(task.topic, e.reason());
                    tracing::info!(topic = %task.topic, epoch, reason = %e, "inference skipped");
                    let _ = out
                        .send(RoleOutput::Skipped {
                            topic: task.topic,
                            epoch,
                            reason: e.reason().to_string(),
                        })
                        .await;
                    None
                }
            },
        };
        let mut forecasts = vec![];
        if let Some(f) = task.forecaster.as_mut() {
            let mut current: Vec<PublicKey> = v
                .workers
                .get(&task.topic)
                .map(|w| w.iter().copied().collect())
                .unwrap_or_default();
            current.retain(|k| *k != task.me);
            let names: Vec<String> = current.iter().map(PublicKey::to_hex).collect();
            match f.forecast(&ctx, &names).await {
                Ok(map) => {
                    forecasts = map
                        .into_iter()
                        .filter_map(|(k, value)| {
                            Some(ForecastElement {
                                inferer: k.parse().ok()?,
                                value,
                            })
                        })
                        .filter(|e| e.value.is_finite())
                        .collect();
                    forecasts.sort_by_key(|e| e.inferer);
                    forecasts.truncate(12);
                }
                Err(e) => metrics.epoch_missed(task.topic, e.reason()),
            }
        }
        if inference.is_none() && forecasts.is_empty() {
            continue;
        }
        tracing::debug!(
            topic = %task.topic,
            epoch,
            after_open_ms = clock.now_ms().saturating_sub(open),
            "worker bundle ready"
        );
        let payload = Payload::WorkerBundle(WorkerBundle {
            topic: task.topic,
            epoch,
            inference,
            forecasts,
        });
        if out.send(RoleOutput::Publish(payload)).await.is_err() {
            return;
        }
    }
}

/// Run a reputer until the output channel closes.
pub async fn run_reputer(
    task: ReputerTask,
    mut view: watch::Receiver<Arc<RoleView>>,
    out: mpsc::Sender<RoleOutput>,
    clock: Clock,
    metrics: Arc<NodeMetrics>,
) {
    let mut reported: BTreeSet<u64> = BTreeSet::new();
    loop {
        let v = view.borrow_and_update().clone();
        let registered = v
            .reputers
            .get(&task.topic)
            .is_some_and(|r| r.contains(&task.me));
        if let (true, Some(spec)) = (registered, v.topics.get(&task.topic)) {
            let now = clock.now_ms();
            for ((t, e), bundle) in v.pending.range((task.topic, 0)..=(task.topic, u64::MAX)) {
                let (open, close) = spec.reputer_window(*e);
                if *t != task.topic || reported.contains(e) || now < open || now >= close {
                    continue;
                }
                let ctx = EpochContext::new(task.topic.0, *e, spec.name.clone());
                let truth = match task.truth.truth(&ctx).await {
                    Ok(Some(y)) => y,
                    Ok(None) => continue,
                    Err(err) => {
                        metrics.epoch_missed(task.topic, err.reason());
                        tracing::info!(topic = %task.topic, epoch = e, reason = %err, "ground truth unavailable");
                        continue;
                    }
                };
                reported.insert(*e);
                match loss_bundle(bundle, truth, &spec.loss) {
                    Ok(losses) => {
                        let p = Payload::ReputerBundle(ReputerBundle {
                            topic: task.topic,
                            epoch: *e,
                            ground_truth: truth,
                            losses,
                        });
                        if out.send(RoleOutput::Publish(p)).await.is_err() {
                            return;
                        }
                    }
                    Err(err) => {
                        metrics.epoch_missed(task.topic, "loss");
                        tracing::warn!(topic = %task.topic, epoch = e, reason = %err, "no loss bundle");
                    }
                }
            }
            while reported.len() > 4096 {
                reported.pop_first();
            }
        }
        tokio::select! {
            r = view.changed() => if r.is_err() { return },
            _ = sleep_ms(250) => {},
        }
    }
}
