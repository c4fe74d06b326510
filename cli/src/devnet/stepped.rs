//! The devnet's stepped clock (its default mode): every in-process node runs on one
//! [`Clock::stepped`](chorus_node::clock::Clock::stepped), and this driver moves that time
//! from one event of the epoch to the next only when every node holds what the event needs:
//!
//! ```text
//! epoch p starts at S = genesis + p·E (E: the epoch length of the topics' clock)
//! S + jitter   every worker has been released: wait until each worker handled epoch p
//!              (published or said why not) and every node holds every published bundle
//! S + ready    the height of period p − 1 may be proposed: wait until every node applied it
//!              (it finalizes epoch p − 1's inference and settles epoch p − 3), every reputer
//!              handled epoch p − 1 and every node holds every loss bundle
//! ```
//!
//! With `--copycat`, the copycat is released at `S + copycat` (after the workers, before
//! `ready`) and waited for like a worker; under `--commit-reveal` the workers step waits for
//! commitments, and a reveals step at `S + reveals` (the reveal phase's open plus the largest
//! jitter) waits until every worker that committed has revealed and every node holds it.
//!
//! Real libp2p nodes, real gossip, real checkpoints: only time is controlled, so a run does
//! the same whatever the machine's load (and runs as fast as the CPU allows instead of
//! sleeping through epochs). When a step's condition is not met within [`PATIENCE`], time is
//! nudged forward within the step (never past the next event, so no window opens or closes):
//! timers such as anti-entropy rounds then run and repair a lost message. A step still unmet
//! after [`STEP_BOUND`] of real time is given up, counted and described in the report; the
//! run then fails its completeness check.

use std::time::{Duration, Instant};

use anyhow::Context;
use chorus_crdt::window::{Phase, WindowKey};
use chorus_node::actor::{NodeHandle, Progress};
use chorus_node::clock::ClockDriver;
use chorus_protocol::ids::TopicId;
use serde::Serialize;

use super::plan::DevnetPlan;

/// How long a step may wait for its condition before time is nudged (real time).
pub const PATIENCE: Duration = Duration::from_millis(300);

/// How long a step may wait in all before it is given up (real time).
pub const STEP_BOUND: Duration = Duration::from_secs(30);

/// How often the nodes are asked while a step waits.
const POLL: Duration = Duration::from_millis(2);

/// How long the nodes get to connect to each other before the first step (real time).
const CONNECT_BOUND: Duration = Duration::from_secs(60);

/// A nudge moves time this fraction of an epoch.
const NUDGE_PER_EPOCH: u64 = 100;

/// The epoch's events, as offsets from its start, and who must have done what.
#[derive(Clone, Debug)]
pub(super) struct Schedule {
    /// Start of epoch 0 (= the genesis time), ms.
    pub genesis_ms: u64,
    /// Epoch length (= checkpoint period), ms.
    pub epoch_ms: u64,
    /// Every worker has been released (its jitter is below this), ms after the epoch start.
    pub workers_ms: u64,
    /// The copycat looks, ms after the epoch start (with `--copycat`).
    pub copycat_ms: Option<u64>,
    /// Every worker has revealed (commit-reveal topics), ms after the epoch start.
    pub reveals_ms: Option<u64>,
    /// The previous period's height may be proposed, ms after the epoch start.
    pub ready_ms: u64,
    /// Each topic's worker and reputer nodes.
    pub topics: Vec<TopicRoles>,
}

/// Which nodes work and repute in a topic.
#[derive(Clone, Debug)]
pub(super) struct TopicRoles {
    /// The topic.
    pub id: TopicId,
    /// Worker node indices (inferers and forecasters).
    pub workers: Vec<usize>,
    /// The copycat's node, if any.
    pub copycats: Vec<usize>,
    /// Reputer node indices.
    pub reputers: Vec<usize>,
}

impl Schedule {
    /// The schedule of `plan`'s network.
    pub fn of(plan: &DevnetPlan) -> anyhow::Result<Schedule> {
        let local = &plan.local;
        let first = local.topics.first().context("a devnet without topics")?;
        let spec = &first.spec;
        let ready_ms = local.params.max_clock_skew_ms + local.replica.propose_grace_ms;
        let jitter = chorus_node::localnet::worker_jitter_ms(spec);
        let workers_ms = jitter;
        let copycat = |w: &chorus_node::localnet::LocalWorker| {
            matches!(w.model, Some(chorus_node::models::ModelSpec::Copycat(_)))
        };
        let copycat_ms =
            local
                .topics
                .iter()
                .flat_map(|t| &t.workers)
                .find_map(|w| match &w.model {
                    Some(chorus_node::models::ModelSpec::Copycat(c)) => Some(
                        chorus_node::models::Copycat::new(c).after_ms(spec.submission_window_ms),
                    ),
                    _ => None,
                });
        // A reveal waits for the phase's open plus the skew allowance, plus the worker's jitter
        // (at most half of what is left: the worker's rule).
        let skew = local.params.max_clock_skew_ms;
        let reveals_ms = spec.reveal_window(0).map(|(open, close)| {
            let earliest = open + skew.min((close - open) / 2);
            earliest - spec.start_ms + jitter.min((close - earliest) / 2)
        });
        let same_schedule = local.topics.iter().all(|t| {
            t.spec.start_ms == spec.start_ms
                && t.spec.epoch_length_ms == spec.epoch_length_ms
                && t.spec.submission_window_ms == spec.submission_window_ms
                && t.spec.reveal_window_ms == spec.reveal_window_ms
        });
        anyhow::ensure!(
            same_schedule
                && spec.start_ms == local.genesis_time_ms
                && spec.epoch_length_ms == local.params.checkpoint_period_ms
                && workers_ms < ready_ms
                && copycat_ms.is_none_or(|c| workers_ms < c && c < ready_ms)
                && copycat_ms.is_none_or(|c| c < spec.submission_window_ms)
                && reveals_ms.is_none_or(|r| ready_ms < r && r < spec.epoch_length_ms)
                && ready_ms < spec.epoch_length_ms,
            "the stepped clock needs topics on one schedule, epochs that are checkpoint \
             periods from the genesis, workers (then the copycat) released before a period's \
             height is ready, and reveals after it"
        );
        Ok(Schedule {
            genesis_ms: local.genesis_time_ms,
            epoch_ms: spec.epoch_length_ms,
            workers_ms,
            copycat_ms,
            reveals_ms,
            ready_ms,
            topics: local
                .topics
                .iter()
                .map(|t| TopicRoles {
                    id: t.id,
                    workers: t
                        .workers
                        .iter()
                        .filter(|w| !copycat(w))
                        .map(|w| w.node)
                        .collect(),
                    copycats: t
                        .workers
                        .iter()
                        .filter(|w| copycat(w))
                        .map(|w| w.node)
                        .collect(),
                    reputers: t.reputers.iter().map(|r| r.node).collect(),
                })
                .collect(),
        })
    }

    /// The kind of message workers publish in the submission window.
    fn submission_kind(&self) -> &'static str {
        match self.reveals_ms {
            Some(_) => "worker_commit",
            None => "worker_bundle",
        }
    }

    /// The events of epoch `p` of a run of `epochs` epochs in time order, with the time each
    /// must come before (the next event, or the next epoch's start).
    pub(super) fn events(&self, p: u64, epochs: u64) -> Vec<(u64, Step, u64)> {
        let start = self.genesis_ms + p * self.epoch_ms;
        let bundles = p < epochs;
        let mut at: Vec<(u64, Step)> = vec![(
            self.workers_ms,
            Step::Workers {
                epoch: p,
                bundles,
                who: Who::Workers,
            },
        )];
        if let Some(c) = self.copycat_ms {
            let who = Who::Copycats;
            at.push((
                c,
                Step::Workers {
                    epoch: p,
                    bundles,
                    who,
                },
            ));
        }
        if let Some(r) = self.reveals_ms {
            at.push((r, Step::Reveals { epoch: p, bundles }));
        }
        if p > 0 {
            let bundles = p - 1 < epochs;
            at.push((self.ready_ms, Step::Ready { period: p, bundles }));
        }
        at.sort_by_key(|(ms, _)| *ms);
        let ends: Vec<u64> = at
            .iter()
            .skip(1)
            .map(|(ms, _)| start + ms)
            .chain([start + self.epoch_ms])
            .collect();
        at.into_iter()
            .zip(ends)
            .map(|((ms, step), before)| (start + ms, step, before))
            .collect()
    }
}

/// What the stepping did (part of the run's summary).
#[derive(Clone, Debug, Default, Serialize)]
pub(super) struct Stepped {
    /// Steps taken.
    pub steps: u64,
    /// Times time was nudged within a step because its condition was not met.
    pub nudges: u64,
    /// Steps given up after [`STEP_BOUND`], with what was missing.
    pub expired: Vec<String>,
    /// Real seconds spent waiting for the nodes to connect before the first step.
    pub connect_seconds: f64,
    /// Real seconds from setting a worker step's time (workers, copycat, reveals) until every
    /// node held the bundles.
    pub worker_steps_seconds: f64,
    /// Real seconds from setting a ready step's time until every node applied the height and
    /// held the loss bundles.
    pub ready_steps_seconds: f64,
}

/// Periods stepped after the run's last epoch: its loss bundles are finalized and it settles
/// three heights after its own, and its rewards are seen one later.
pub const TAIL: u64 = 4;

/// Which workers a workers step releases.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Who {
    /// Inferers and forecasters.
    Workers,
    /// The copycat (after them).
    Copycats,
}

/// One event to wait at.
#[derive(Clone, Copy, Debug)]
pub(super) enum Step {
    /// `who` released for `epoch`; wait for their bundles (or commitments) if `bundles`.
    Workers { epoch: u64, bundles: bool, who: Who },
    /// The reveal phase of `epoch` under way: wait for the reveals if `bundles`.
    Reveals { epoch: u64, bundles: bool },
    /// The height of `period − 1` is ready: wait until every node applied it, and for the
    /// loss bundles of epoch `period − 1` if `bundles`.
    Ready { period: u64, bundles: bool },
}

/// The driver: the clock and every node.
pub(super) struct Stepper {
    driver: ClockDriver,
    nodes: Vec<NodeHandle>,
    schedule: Schedule,
    stepped: Stepped,
}

impl Stepper {
    /// A driver of `driver`'s clock over `nodes` (node `i` at index `i`).
    pub fn new(driver: ClockDriver, nodes: Vec<NodeHandle>, schedule: Schedule) -> Stepper {
        Stepper {
            driver,
            nodes,
            schedule,
            stepped: Stepped::default(),
        }
    }

    /// Wait for every node to be connected to every other, then step through the `epochs`
    /// of the run and [`TAIL`] periods after them (the last epochs settle there). Bundles are
    /// waited for in the run's epochs only (the data may end with them).
    pub async fn run(mut self, epochs: u64) -> anyhow::Result<Stepped> {
        let t = Instant::now();
        self.connect().await?;
        self.stepped.connect_seconds = t.elapsed().as_secs_f64();
        for p in 0..epochs + TAIL {
            for (at, step, before) in self.schedule.events(p, epochs) {
                self.step(at, step, before).await?;
            }
        }
        Ok(self.stepped)
    }

    /// Every node has a connection to every other (bounded by [`CONNECT_BOUND`]).
    async fn connect(&self) -> anyhow::Result<()> {
        let t = Instant::now();
        let want = self.nodes.len().saturating_sub(1);
        loop {
            let mut least = usize::MAX;
            for n in &self.nodes {
                least = least.min(n.status().await.map_or(0, |s| s.peers));
            }
            if least >= want {
                // subscriptions travel right after the connections
                tokio::time::sleep(Duration::from_millis(500)).await;
                return Ok(());
            }
            anyhow::ensure!(
                t.elapsed() < CONNECT_BOUND,
                "the devnet's nodes did not connect: one has {least} of {want} peers after {} s",
                CONNECT_BOUND.as_secs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Set time to `at`, then wait until `step` is met, nudging time (never to `before` or
    /// later) while it is not; give up after [`STEP_BOUND`].
    async fn step(&mut self, at: u64, step: Step, before: u64) -> anyhow::Result<()> {
        self.driver.set(at);
        self.stepped.steps += 1;
        let started = Instant::now();
        let took = |stepped: &mut Stepped| {
            let secs = started.elapsed().as_secs_f64();
            match step {
                Step::Workers { .. } | Step::Reveals { .. } => stepped.worker_steps_seconds += secs,
                Step::Ready { .. } => stepped.ready_steps_seconds += secs,
            }
        };
        let mut last_move = started;
        let nudge = (self.schedule.epoch_ms / NUDGE_PER_EPOCH).max(1);
        loop {
            let missing = self.missing(step).await?;
            let Some(missing) = missing else {
                took(&mut self.stepped);
                return Ok(());
            };
            if started.elapsed() > STEP_BOUND {
                self.stepped.expired.push(missing);
                took(&mut self.stepped);
                return Ok(());
            }
            let next = self.driver.now_ms() + nudge;
            if last_move.elapsed() > PATIENCE && next < before {
                self.driver.set(next);
                self.stepped.nudges += 1;
                last_move = Instant::now();
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// What `step` still waits for (`None`: met).
    async fn missing(&self, step: Step) -> anyhow::Result<Option<String>> {
        let (epoch, phase, height, bundles) = match step {
            Step::Workers { epoch, bundles, .. } | Step::Reveals { epoch, bundles } => {
                (epoch, Phase::Workers, 0, bundles)
            }
            Step::Ready { period, bundles } => (period - 1, Phase::Reputers, period, bundles),
        };
        let keys: Vec<WindowKey> = match bundles {
            false => vec![],
            true => self
                .schedule
                .topics
                .iter()
                .map(|t| WindowKey::Topic {
                    topic: t.id,
                    epoch,
                    phase,
                })
                .collect(),
        };
        if keys.is_empty() && height == 0 {
            return Ok(None);
        }
        let mut seen: Vec<Progress> = Vec::with_capacity(self.nodes.len());
        for (i, n) in self.nodes.iter().enumerate() {
            let p = n
                .progress(keys.clone())
                .await
                .with_context(|| format!("node {i} stopped"))?;
            if p.height < height {
                return Ok(Some(format!(
                    "epoch {epoch}: node {i} has not applied height {height}"
                )));
            }
            seen.push(p);
        }
        if !bundles {
            return Ok(None);
        }
        for (k, t) in self.schedule.topics.iter().enumerate() {
            let held = match self.published(step, t, epoch, &seen) {
                Ok(held) => held,
                Err(missing) => return Ok(Some(missing)),
            };
            for (i, p) in seen.iter().enumerate() {
                if p.held[k] != held {
                    return Ok(Some(format!(
                        "epoch {epoch}: node {i} holds {} of the {held} messages of its window \
                         in topic {}",
                        p.held[k], t.id
                    )));
                }
            }
        }
        Ok(None)
    }

    /// How many messages of `epoch`'s window of topic `t` the nodes must hold at `step`: every
    /// message published and accepted so far (bundles or commitments, the copycat's, reveals).
    /// `Err` names an actor that has not handled what `step` released yet.
    fn published(
        &self,
        step: Step,
        t: &TopicRoles,
        epoch: u64,
        seen: &[Progress],
    ) -> Result<usize, String> {
        let last = |a: usize, kind: &str| {
            seen[a]
                .submissions
                .iter()
                .find(|s| s.topic == Some(t.id.0) && s.kind == kind)
                .map(|s| (s.epoch, s.accepted))
        };
        let accepted = |actors: &[usize], kind: &str| -> Vec<usize> {
            actors
                .iter()
                .copied()
                .filter(|a| last(*a, kind) == Some((Some(epoch), true)))
                .collect()
        };
        let handled = |actors: &[usize], kind: &str| -> Result<Vec<usize>, String> {
            for a in actors {
                let reached = last(*a, kind)
                    .and_then(|(e, _)| e)
                    .is_some_and(|e| e >= epoch);
                if !reached {
                    return Err(format!(
                        "epoch {epoch}: node {a} has not handled its {kind} of topic {}",
                        t.id
                    ));
                }
            }
            Ok(accepted(actors, kind))
        };
        let submission = self.schedule.submission_kind();
        Ok(match step {
            Step::Workers {
                who: Who::Workers, ..
            } => handled(&t.workers, submission)?.len(),
            Step::Workers {
                who: Who::Copycats, ..
            } => accepted(&t.workers, submission).len() + handled(&t.copycats, submission)?.len(),
            Step::Reveals { .. } => {
                let all: Vec<usize> = t.workers.iter().chain(&t.copycats).copied().collect();
                let committed = accepted(&all, submission);
                committed.len() + handled(&committed, "worker_reveal")?.len()
            }
            Step::Ready { .. } => handled(&t.reputers, "reputer_bundle")?.len(),
        })
    }
}
