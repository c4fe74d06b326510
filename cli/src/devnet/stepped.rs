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
        let workers_ms = chorus_node::localnet::worker_jitter_ms(spec);
        anyhow::ensure!(
            spec.start_ms == local.genesis_time_ms
                && spec.epoch_length_ms == local.params.checkpoint_period_ms
                && workers_ms < ready_ms
                && ready_ms < spec.epoch_length_ms,
            "the stepped clock needs epochs that are checkpoint periods from the genesis, \
             workers released before a period's height is ready"
        );
        Ok(Schedule {
            genesis_ms: local.genesis_time_ms,
            epoch_ms: spec.epoch_length_ms,
            workers_ms,
            ready_ms,
            topics: local
                .topics
                .iter()
                .map(|t| TopicRoles {
                    id: t.id,
                    workers: t.workers.iter().map(|w| w.node).collect(),
                    reputers: t.reputers.iter().map(|r| r.node).collect(),
                })
                .collect(),
        })
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
    /// Real seconds from setting a worker step's time until every node held the bundles.
    pub worker_steps_seconds: f64,
    /// Real seconds from setting a ready step's time until every node applied the height and
    /// held the loss bundles.
    pub ready_steps_seconds: f64,
}

/// Periods stepped after the run's last epoch: its loss bundles are finalized and it settles
/// three heights after its own, and its rewards are seen one later.
pub const TAIL: u64 = 4;

/// One event to wait at.
#[derive(Clone, Copy, Debug)]
enum Step {
    /// Every worker released for `epoch`; wait for their bundles if `bundles`.
    Workers { epoch: u64, bundles: bool },
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
        let s = &self.schedule;
        let (genesis, epoch, workers, ready) = (s.genesis_ms, s.epoch_ms, s.workers_ms, s.ready_ms);
        for p in 0..epochs + TAIL {
            let start = genesis + p * epoch;
            let step = Step::Workers {
                epoch: p,
                bundles: p < epochs,
            };
            self.step(start + workers, step, start + ready).await?;
            if p > 0 {
                let step = Step::Ready {
                    period: p,
                    bundles: p - 1 < epochs,
                };
                self.step(start + ready, step, start + epoch).await?;
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
                Step::Workers { .. } => stepped.worker_steps_seconds += secs,
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
        let (epoch, phase, kind, height, bundles) = match step {
            Step::Workers { epoch, bundles } => {
                (epoch, Phase::Workers, "worker_bundle", 0, bundles)
            }
            Step::Ready { period, bundles } => (
                period - 1,
                Phase::Reputers,
                "reputer_bundle",
                period,
                bundles,
            ),
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
            let actors = match phase {
                Phase::Workers => &t.workers,
                Phase::Reputers => &t.reputers,
            };
            let mut published = 0;
            for a in actors {
                let last = seen[*a]
                    .submissions
                    .iter()
                    .find(|s| s.topic == Some(t.id.0) && s.kind == kind);
                match last {
                    Some(s) if s.epoch.is_some_and(|e| e >= epoch) => {
                        published += usize::from(s.epoch == Some(epoch) && s.accepted);
                    }
                    _ => {
                        return Ok(Some(format!(
                            "epoch {epoch}: node {a} has not handled its {kind} of topic {}",
                            t.id
                        )));
                    }
                }
            }
            for (i, p) in seen.iter().enumerate() {
                if p.held[k] != published {
                    return Ok(Some(format!(
                        "epoch {epoch}: node {i} holds {} of the {published} {kind}s of topic {}",
                        p.held[k], t.id
                    )));
                }
            }
        }
        Ok(None)
    }
}
