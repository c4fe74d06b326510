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

use chorus_protocol::ids::TopicId;
use chorus_protocol::inference::NetworkInference;
use chorus_protocol::keys::PublicKey;
use chorus_protocol::messages::{ForecastElement, Payload, WorkerBundle};
use chorus_protocol::topic::TopicSpec;
use tokio::sync::{mpsc, watch};

mod reputer;
mod reveal;

pub use reputer::run_reputer;

use crate::clock::Clock;
use crate::metrics::NodeMetrics;
use crate::models::{
    Bars, EpochContext, Forecaster, Inferer, LossService, ModelError, TruthError, TruthSource,
    build_forecaster, build_model, build_truth,
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
    /// The reputer window of each pending epoch, as the finalized state says (a late
    /// checkpoint extends it: `TopicState::reputer_window`).
    pub reputer_windows: BTreeMap<(TopicId, u64), (u64, u64)>,
    /// The network's clock-skew allowance (`ModuleParams::max_clock_skew_ms`): reveals wait
    /// for it after the submission window closes.
    pub max_clock_skew_ms: u64,
}

impl RoleView {
    /// `[open, close)` of the reputer window of `epoch` in `topic` (the topic's nominal one
    /// if the state said nothing of it).
    pub fn reputer_window(&self, topic: TopicId, spec: &TopicSpec, epoch: u64) -> (u64, u64) {
        self.reputer_windows
            .get(&(topic, epoch))
            .copied()
            .unwrap_or_else(|| spec.reputer_window(epoch))
    }
}

/// A payload a role wants published, or an epoch it skipped.
#[derive(Clone, Debug)]
pub enum RoleOutput {
    /// Sign and publish.
    Publish(Box<Payload>),
    /// Skipped an epoch, with the reason (for status and metrics).
    Skipped {
        /// Topic.
        topic: TopicId,
        /// Epoch.
        epoch: u64,
        /// The payload kind not sent (`worker_bundle`, `reputer_bundle`).
        kind: &'static str,
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
    /// Key of the salts of commit-reveal commitments ([`reveal::salt`]): random unless
    /// [`WorkerTask::with_salt_key`] derives it from the node key.
    pub salt_key: [u8; 32],
}

/// A reputer role ready to run.
pub struct ReputerTask {
    /// The topic.
    pub topic: TopicId,
    /// Our key.
    pub me: PublicKey,
    /// The truth.
    pub truth: TruthSource,
    /// An Allora loss-function service (else the topic's built-in loss).
    pub loss: Option<LossService>,
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
            salt_key: reveal::random_salt_key(),
        })
    }

    /// Salts derived from `seed` (the node key's seed): the same commitments after a restart,
    /// and runs that repeat byte for byte.
    pub fn with_salt_key(mut self, seed: &[u8]) -> WorkerTask {
        self.salt_key = blake3::derive_key("chorus worker commit salt v1", seed);
        self
    }

    /// Read through `handle` when the model needs its node (a copycat).
    pub fn attach(&mut self, handle: &crate::actor::NodeHandle) {
        if let Some(Inferer::Copycat(c)) = self.model.as_mut() {
            c.attach(handle.clone(), self.me);
        }
    }
}

impl WorkerTask {
    /// Feeds the model and the forecaster every bar up to and including epoch `epoch`'s (never
    /// a later one); `observed` counts the bars fed so far.
    pub fn feed_bars(&mut self, epoch: u64, observed: &mut usize) {
        let Some(bars) = &self.bars else {
            return;
        };
        let upto = usize::try_from(epoch)
            .unwrap_or(usize::MAX)
            .saturating_add(1);
        while *observed < upto.min(bars.len()) {
            if let Some(bar) = bars.get(*observed) {
                if let Some(m) = self.model.as_mut() {
                    m.observe(bar);
                }
                if let Some(f) = self.forecaster.as_mut() {
                    f.observe_bar(bar);
                }
            }
            *observed += 1;
        }
    }
}

/// A forecaster's answer as a bundle's forecast elements: keys that parse as public keys, finite
/// values, sorted by inferer, at most 12 (Allora's `MaxElementsPerForecast`).
pub fn forecast_elements(map: BTreeMap<String, f64>) -> Vec<ForecastElement> {
    let mut forecasts: Vec<ForecastElement> = map
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
    forecasts
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

/// A failed model, forecaster or truth call.
trait Failure: std::fmt::Display {
    /// Its metrics label.
    fn reason(&self) -> &'static str;
    /// Whether another try may succeed.
    fn is_transient(&self) -> bool;
}

impl Failure for ModelError {
    fn reason(&self) -> &'static str {
        ModelError::reason(self)
    }
    fn is_transient(&self) -> bool {
        ModelError::is_transient(self)
    }
}

impl Failure for TruthError {
    fn reason(&self) -> &'static str {
        TruthError::reason(self)
    }
    fn is_transient(&self) -> bool {
        TruthError::is_transient(self)
    }
}

/// First wait between two tries of one call.
const RETRY_MIN: Duration = Duration::from_millis(100);
/// Longest wait between two tries.
const RETRY_MAX: Duration = Duration::from_secs(2);

/// Retries of one call within one window: jittered exponential backoff (100 ms doubling to
/// 2 s) until the next try would start at or after the window's close.
struct Retry {
    delays: backon::ExponentialBackoff,
    deadline_ms: u64,
}

impl Retry {
    fn until(deadline_ms: u64) -> Retry {
        Retry {
            delays: backon::BackoffBuilder::build(
                backon::ExponentialBuilder::default()
                    .with_min_delay(RETRY_MIN)
                    .with_max_delay(RETRY_MAX)
                    .with_factor(2.0)
                    .with_jitter()
                    .without_max_times(),
            ),
            deadline_ms,
        }
    }

    /// After the failure `e`: waits and answers `true` if another try is worth it (the failure
    /// is transient and the window is still open after the wait), else `false` at once.
    async fn again(&mut self, e: &impl Failure, clock: &Clock) -> bool {
        let Some(wait) = self.next_wait(e.is_transient()) else {
            return false;
        };
        if clock.now_ms().saturating_add(wait) >= self.deadline_ms {
            return false;
        }
        tracing::debug!(reason = e.reason(), wait_ms = wait, error = %e, "retrying");
        clock.sleep_ms(wait).await;
        true
    }
}

impl Retry {
    /// The wait before the next try after a failure, ms (`None`: not transient, or no more
    /// tries).
    fn next_wait(&mut self, transient: bool) -> Option<u64> {
        let delay = self.delays.next().filter(|_| transient)?;
        Some(u64::try_from(delay.as_millis()).unwrap_or(u64::MAX))
    }
}

/// Counts one call in `chorus_model_requests_total` (`outcome` = `ok` or the reason).
fn count<T, E: Failure>(metrics: &NodeMetrics, topic: TopicId, kind: &str, result: &Result<T, E>) {
    let outcome = match result {
        Ok(_) => "ok",
        Err(e) => e.reason(),
    };
    metrics.model_request(topic, kind, outcome);
}

/// Says once per change whether this node's key is registered for a role.
fn note_registration(was: &mut Option<bool>, now: bool, topic: TopicId, role: &str) {
    if *was == Some(now) {
        return;
    }
    *was = Some(now);
    if now {
        tracing::info!(%topic, role, "registered: submitting from the next window");
    } else {
        tracing::info!(
            %topic,
            role,
            "not registered: nothing is submitted in this topic until this key registers \
             (`chorus register`); every epoch counts as missed (reason not_registered)"
        );
    }
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
    let mut learned = Learning::default();
    // The last epoch this worker served, or counted as missed because it was not registered.
    let mut handled: Option<u64> = None;
    let mut was_registered = None;
    // A bundle committed to and not revealed yet (commit-reveal topics).
    let mut sealed: Option<reveal::Sealed> = None;
    loop {
        let v = view.borrow_and_update().clone();
        let Some(spec) = v.topics.get(&task.topic).cloned() else {
            tokio::select! {
                _ = view.changed() => {},
                _ = clock.sleep_ms(500) => {},
            }
            continue;
        };
        if sealed.is_some() {
            let now = (clock.now_ms(), v.max_clock_skew_ms);
            let done = reveal::handle(&mut sealed, (&spec, &task), now, &clock, (&out, &metrics));
            if done.await.is_err() {
                return;
            }
            continue;
        }
        learn(
            &mut task,
            &v,
            &spec,
            &mut learned,
            (clock.now_ms(), &metrics),
        )
        .await;
        let now = clock.now_ms();
        let Some(epoch) = spec.epoch_at(now) else {
            clock.sleep_ms(spec.start_ms.saturating_sub(now)).await;
            continue;
        };
        let (open, close) = spec.submission_window(epoch);
        // What a skipped epoch is recorded as: the message not sent.
        let kind = if spec.commit_reveal() {
            "worker_commit"
        } else {
            "worker_bundle"
        };
        let registered = v
            .workers
            .get(&task.topic)
            .is_some_and(|w| w.contains(&task.me));
        note_registration(&mut was_registered, registered, task.topic, "worker");
        if handled != Some(epoch) && now < close && !registered {
            handled = Some(epoch);
            if skipped(&out, &metrics, (task.topic, epoch, kind), "not_registered")
                .await
                .is_err()
            {
                return;
            }
        }
        if handled == Some(epoch) || now >= close {
            let next = spec.submission_window(epoch + 1).0;
            tokio::select! {
                _ = clock.sleep_ms(next.saturating_sub(now)) => {},
                _ = view.changed() => {},
            }
            continue;
        }
        let delay = match &task.model {
            // A copycat looks later than the others, to find something to copy.
            Some(Inferer::Copycat(c)) => c.after_ms(close - open),
            _ => jitter(&task.me, epoch, task.jitter_ms.min((close - open) / 2)),
        };
        let at = open + delay;
        if now < at {
            clock.sleep_ms(at - now).await;
            continue;
        }
        handled = Some(epoch);
        task.feed_bars(epoch, &mut observed_bars);
        let ctx = EpochContext::of_topic(task.topic.0, &spec, epoch);
        let inference = infer(&task, &ctx, close, &clock, &metrics).await;
        let mut others: Vec<PublicKey> = v
            .workers
            .get(&task.topic)
            .map(|w| w.iter().copied().collect())
            .unwrap_or_default();
        others.retain(|k| *k != task.me);
        let forecasts = forecast(&mut task, &ctx, &others, close, &clock, &metrics).await;
        // An epoch is missed when the model (or, for a pure forecaster, the forecaster) gave
        // nothing: at most one count per epoch, whatever the number of tries.
        let failure = match (&inference, &forecasts) {
            (Err(e), _) => Some(e.reason()),
            (Ok(None), Err(e)) => Some(e.reason()),
            _ => None,
        };
        if let Some(reason) = failure {
            let error = inference.as_ref().err().or(forecasts.as_ref().err());
            if let Some(e) = error {
                tracing::info!(topic = %task.topic, epoch, reason, error = %e, "worker duty skipped");
            }
            if skipped(&out, &metrics, (task.topic, epoch, kind), reason)
                .await
                .is_err()
            {
                return;
            }
        }
        let inference = inference.ok().flatten();
        let forecasts = forecasts.unwrap_or_default();
        if inference.is_none() && forecasts.is_empty() {
            // Nothing to say (a forecaster that has learned nothing yet): the epoch is
            // missed, and said so once.
            if failure.is_none()
                && skipped(&out, &metrics, (task.topic, epoch, kind), "no_forecasts")
                    .await
                    .is_err()
            {
                return;
            }
            continue;
        }
        tracing::debug!(
            topic = %task.topic,
            epoch,
            after_open_ms = clock.now_ms().saturating_sub(open),
            "worker bundle ready"
        );
        let bundle = WorkerBundle {
            topic: task.topic,
            epoch,
            inference,
            forecasts,
        };
        let payload = if spec.commit_reveal() {
            let (commit, s) = reveal::seal(&task, bundle);
            sealed = Some(s);
            commit
        } else {
            Payload::WorkerBundle(bundle)
        };
        if out
            .send(RoleOutput::Publish(Box::new(payload)))
            .await
            .is_err()
        {
            return;
        }
    }
}

/// Counts a missed epoch and tells the actor (for status); `Err` when the actor is gone.
async fn skipped(
    out: &mpsc::Sender<RoleOutput>,
    metrics: &NodeMetrics,
    (topic, epoch, kind): (TopicId, u64, &'static str),
    reason: &str,
) -> Result<(), ()> {
    metrics.epoch_missed(topic, reason);
    out.send(RoleOutput::Skipped {
        topic,
        epoch,
        kind,
        reason: reason.to_string(),
    })
    .await
    .map_err(|_| ())
}

/// Forecaster learning: which epochs are done, and when to ask again for the others.
#[derive(Debug, Default)]
struct Learning {
    /// Epochs learned from, or given up after their reputer window closed.
    done: BTreeSet<u64>,
    /// Epochs whose truth was not there yet: not asked again before this time.
    next_try: BTreeMap<u64, u64>,
}

/// Forecaster learning from finalized inferences whose truth is known. The truth source is
/// asked about an epoch only from its reputer window's open (when its truth can exist), and at
/// most once per quarter epoch (at least 1 s apart) while it has no answer, whatever the number
/// of view changes; an epoch without truth when its reputer window has closed is given up.
async fn learn(
    task: &mut WorkerTask,
    v: &RoleView,
    spec: &TopicSpec,
    state: &mut Learning,
    (now, metrics): (u64, &NodeMetrics),
) {
    let (Some(f), Some(truth)) = (task.forecaster.as_mut(), task.truth.as_ref()) else {
        return;
    };
    for ((t, e), bundle) in v.pending.range((task.topic, 0)..=(task.topic, u64::MAX)) {
        let (open, close) = v.reputer_window(task.topic, spec, *e);
        if *t != task.topic
            || state.done.contains(e)
            || now < open
            || state.next_try.get(e).is_some_and(|at| now < *at)
        {
            continue;
        }
        let ctx = EpochContext::of_topic(task.topic.0, spec, *e);
        let result = truth.truth(&ctx).await;
        count(metrics, task.topic, "truth", &result);
        if let Ok(Some(y)) = result {
            let inferences = bundle
                .inferer_values
                .iter()
                .map(|(k, v)| (k.to_hex(), *v))
                .collect();
            f.observe_truth(*e, y, &inferences, |t, p| {
                spec.loss.loss(t, p).unwrap_or(f64::NAN)
            });
            state.done.insert(*e);
            state.next_try.remove(e);
        } else if now >= close {
            state.done.insert(*e);
            state.next_try.remove(e);
        } else {
            let wait = (spec.epoch_length_ms / 4).max(1_000);
            state.next_try.insert(*e, now.saturating_add(wait));
        }
    }
    while state.done.len() > 4096 {
        state.done.pop_first();
    }
    state
        .next_try
        .retain(|e, _| v.pending.contains_key(&(task.topic, *e)));
}

/// The model's inference, retried until the window closes (`Ok(None)`: no model).
async fn infer(
    task: &WorkerTask,
    ctx: &EpochContext,
    close: u64,
    clock: &Clock,
    metrics: &NodeMetrics,
) -> Result<Option<f64>, ModelError> {
    let Some(model) = task.model.as_ref() else {
        return Ok(None);
    };
    let mut retry = Retry::until(close);
    loop {
        let result = model.infer(ctx).await;
        count(metrics, task.topic, "inference", &result);
        match result {
            Err(e) if retry.again(&e, clock).await => {}
            other => return other.map(Some),
        }
    }
}

/// The forecaster's forecasts for the other registered workers, retried until the window
/// closes (no forecaster: none).
async fn forecast(
    task: &mut WorkerTask,
    ctx: &EpochContext,
    others: &[PublicKey],
    close: u64,
    clock: &Clock,
    metrics: &NodeMetrics,
) -> Result<Vec<ForecastElement>, ModelError> {
    let Some(f) = task.forecaster.as_mut() else {
        return Ok(vec![]);
    };
    let names: Vec<String> = others.iter().map(PublicKey::to_hex).collect();
    let mut retry = Retry::until(close);
    let map = loop {
        let result = f.forecast(ctx, &names).await;
        count(metrics, task.topic, "forecast", &result);
        match result {
            Err(e) if retry.again(&e, clock).await => {}
            other => break other?,
        }
    };
    Ok(forecast_elements(map))
}
