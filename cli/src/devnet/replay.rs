//! `chorus devnet --replay`: the devnet's plan without a network.
//!
//! The same genesis, keys, topics, models, forecasters and reputers as a networked run, and the
//! same ledger code the nodes run (`chorus_crdt::ledger::Ledger`), driven one checkpoint height
//! per epoch with **every bundle on time**:
//!
//! - before height `e` (which finalizes epoch `e`'s worker window), every worker has seen bars
//!   `0..=e` and every forecaster has learned the truth of every finalized epoch whose reputer
//!   window opened by epoch `e`'s start (with the devnet's lag of one epoch: every earlier one);
//! - every reputer reports the losses of every finalized bundle in its reputer window.
//!
//! No sockets, no clock, no randomness: the same inputs give byte-identical reports on any
//! machine, and a run is CPU-bound (the whole EUR/USD file in a few minutes). What it leaves out
//! is what a network adds: late or lost bundles, forecasters that learn an epoch later, and
//! consensus. Comparing the two is how the devnet's timing losses are measured.

use std::collections::{BTreeMap, BTreeSet};
use std::io::IsTerminal;
use std::time::Instant;

use anyhow::{Context, bail};
use chorus_crdt::ledger::{HeightInput, Ledger, LedgerEvent, NoConsensusEvidence, SignedEntry};
use chorus_crdt::replica::duties::loss_bundle;
use chorus_crdt::window::{Phase, WindowKey};
use chorus_node::localnet::LocalPlan;
use chorus_node::models::{EpochContext, Replay, TruthSource, build_truth};
use chorus_node::roles::{WorkerTask, forecast_elements};
use chorus_protocol::envelope::Envelope;
use chorus_protocol::ids::TopicId;
use chorus_protocol::keys::{Keypair, PublicKey};
use chorus_protocol::messages::{Payload, ReputerBundle, WorkerBundle};
use chorus_protocol::topic::TopicSpec;

use super::follow::{Followed, epoch_record};
use super::plan::DevnetPlan;
use crate::output::Progress;

/// A worker of the replay: its key and its node's task (model, forecaster, bars, truth).
struct Worker {
    key: Keypair,
    task: WorkerTask,
    /// Bars fed so far.
    observed: usize,
    /// Epochs whose truth the forecaster learned.
    learned: BTreeSet<u64>,
}

/// A reputer of the replay.
struct Reputer {
    key: Keypair,
    truth: TruthSource,
}

/// One topic's participants.
struct TopicActors {
    id: TopicId,
    spec: TopicSpec,
    workers: Vec<Worker>,
    reputers: Vec<Reputer>,
}

/// What a replay produced: the same rows and rewards a networked run follows, the final
/// ledger (for scores and the supply check) and the heights applied.
pub(super) struct Replayed {
    pub seen: Followed,
    pub ledger: Ledger,
    /// Settled epochs per topic (a `Scored` event).
    pub settled: BTreeMap<TopicId, u64>,
}

/// Replay `epochs` epochs of `plan` (the truth of each epoch from `bars`), showing a progress
/// bar on a terminal unless `quiet`.
pub(super) async fn run(
    plan: &DevnetPlan,
    bars: &chorus_node::models::Bars,
    epochs: u64,
    quiet: bool,
) -> anyhow::Result<Replayed> {
    let local = &plan.local;
    let genesis = local.genesis();
    let mut ledger = Ledger::from_genesis(&genesis).context("the devnet's genesis")?;
    let mut topics = actors(local)?;
    let mut replays = BTreeMap::new();
    for p in &plan.topics {
        replays.insert(p.id, Replay::new(bars.clone(), p.target.target())?);
    }
    let mut seen = Followed::default();
    let mut settled: BTreeMap<TopicId, u64> = BTreeMap::new();
    let show = !quiet && std::io::stderr().is_terminal();
    let mut progress = Progress::new("replay", epochs, "epochs", show);
    let started = Instant::now();
    // height e finalizes epoch e's worker window; epoch e settles when its reputer window,
    // which closes lag + one epoch after the epoch's start, is finalized
    let tail = topics
        .iter()
        .map(|t| {
            t.spec
                .ground_truth_lag_ms
                .div_ceil(t.spec.epoch_length_ms.max(1))
                + 2
        })
        .max()
        .unwrap_or(0);
    for height in 0..epochs + tail {
        if ledger.next_height != height {
            bail!(
                "the ledger is at height {}, expected {height}",
                ledger.next_height
            );
        }
        let mut input = HeightInput::default();
        for key in ledger.windows_due() {
            let WindowKey::Topic {
                topic,
                epoch,
                phase,
            } = key
            else {
                continue;
            };
            let Some(t) = topics.iter_mut().find(|t| t.id == topic) else {
                continue;
            };
            let entries = if epoch >= epochs {
                vec![]
            } else {
                match phase {
                    Phase::Workers => worker_entries(&ledger, t, epoch).await,
                    Phase::Reputers => reputer_entries(&ledger, t, epoch).await?,
                }
            };
            input.windows.insert(key, entries);
        }
        let events = ledger
            .apply(height, &input, &NoConsensusEvidence)
            .with_context(|| format!("applying height {height}"))?;
        seen.add_rewards(height, &events);
        for e in &events {
            match e {
                LedgerEvent::NetworkInference { topic, epoch, .. } if *epoch < epochs => {
                    let Some(p) = plan.topics.iter().find(|p| p.id == *topic) else {
                        continue;
                    };
                    let truth = replays.get(topic).and_then(|r| r.truth(*epoch));
                    let bundle = ledger
                        .topics
                        .get(topic)
                        .and_then(|t| t.mechanism.pending.get(epoch))
                        .and_then(|r| r.bundle.as_ref());
                    if let (Some(truth), Some(b)) = (truth, bundle) {
                        let rec = epoch_record(p, *epoch, truth, Some(height), b);
                        seen.records.entry(*topic).or_default().insert(*epoch, rec);
                    }
                }
                LedgerEvent::Scored { topic, epoch, .. } if *epoch < epochs => {
                    *settled.entry(*topic).or_default() += 1;
                }
                LedgerEvent::MechanismError {
                    topic,
                    epoch,
                    reason,
                } => eprintln!("replay: topic {topic} epoch {epoch}: {reason}"),
                _ => {}
            }
        }
        if let Err(e) = ledger.check_supply() {
            bail!("supply not conserved after height {height}: {e}");
        }
        progress.set(height.min(epochs), started.elapsed());
    }
    progress.finish(started.elapsed());
    Ok(Replayed {
        seen,
        ledger,
        settled,
    })
}

/// Every topic's workers and reputers, built from the plan's node configs as the nodes build
/// them.
fn actors(local: &LocalPlan) -> anyhow::Result<Vec<TopicActors>> {
    let keys = local.keys();
    let key = |node: usize| -> anyhow::Result<Keypair> {
        keys.get(node)
            .cloned()
            .with_context(|| format!("no key for node {node}"))
    };
    let mut out = vec![];
    for t in &local.topics {
        let mut workers = vec![];
        for w in &t.workers {
            let k = key(w.node)?;
            let task = WorkerTask::build(
                t.id,
                k.public(),
                w.model.as_ref(),
                w.forecaster.as_ref(),
                w.data.as_ref(),
                w.truth.as_ref(),
                0,
            )?;
            workers.push(Worker {
                key: k,
                task,
                observed: 0,
                learned: BTreeSet::new(),
            });
        }
        let mut reputers = vec![];
        for r in &t.reputers {
            reputers.push(Reputer {
                key: key(r.node)?,
                truth: build_truth(&r.truth)?,
            });
        }
        out.push(TopicActors {
            id: t.id,
            spec: t.spec.clone(),
            workers,
            reputers,
        });
    }
    Ok(out)
}

/// A signed ledger entry of `payload` by `key`.
fn signed(ledger: &Ledger, key: &Keypair, payload: Payload) -> SignedEntry {
    let env = Envelope::seal(key, &ledger.network, &payload);
    SignedEntry {
        author: key.public(),
        id: env.id(),
        payload,
    }
}

/// The worker bundles of `epoch`: forecasters first learn every finalized epoch whose reputer
/// window has opened by the epoch's start (when a node's forecaster asks for its truth), then
/// every worker sees the epoch's bar and answers.
async fn worker_entries(ledger: &Ledger, t: &mut TopicActors, epoch: u64) -> Vec<SignedEntry> {
    let pending: Vec<(u64, BTreeMap<String, f64>)> = ledger
        .topics
        .get(&t.id)
        .map(|s| {
            s.mechanism
                .pending
                .iter()
                // as a node's forecaster: an epoch's truth is asked for from its reputer
                // window's open
                .filter(|(e, _)| t.spec.reputer_window(**e).0 <= t.spec.epoch_start(epoch))
                .filter_map(|(e, r)| {
                    let b = r.bundle.as_ref()?;
                    let values = b
                        .inferer_values
                        .iter()
                        .map(|(k, v)| (k.to_hex(), *v))
                        .collect();
                    Some((*e, values))
                })
                .collect()
        })
        .unwrap_or_default();
    let registered: Vec<PublicKey> = ledger
        .topics
        .get(&t.id)
        .map(|s| s.workers.iter().copied().collect())
        .unwrap_or_default();
    let spec = &t.spec;
    let mut out = vec![];
    for w in &mut t.workers {
        if let (Some(f), Some(truth)) = (w.task.forecaster.as_mut(), w.task.truth.as_ref()) {
            for (e, inferences) in &pending {
                if w.learned.contains(e) {
                    continue;
                }
                let ctx = EpochContext::of_topic(t.id.0, spec, *e);
                if let Ok(Some(y)) = truth.truth(&ctx).await {
                    f.observe_truth(*e, y, inferences, |t, p| {
                        spec.loss.loss(t, p).unwrap_or(f64::NAN)
                    });
                    w.learned.insert(*e);
                }
            }
        }
        w.task.feed_bars(epoch, &mut w.observed);
        let ctx = EpochContext::of_topic(t.id.0, spec, epoch);
        let inference = match w.task.model.as_ref() {
            Some(m) => m.infer(&ctx).await.ok(),
            None => None,
        };
        let me = w.key.public();
        let others: Vec<String> = registered
            .iter()
            .filter(|k| **k != me)
            .map(PublicKey::to_hex)
            .collect();
        let forecasts = match w.task.forecaster.as_mut() {
            Some(f) => f
                .forecast(&ctx, &others)
                .await
                .map(forecast_elements)
                .unwrap_or_default(),
            None => vec![],
        };
        if inference.is_none() && forecasts.is_empty() {
            continue;
        }
        let payload = Payload::WorkerBundle(WorkerBundle {
            topic: t.id,
            epoch,
            inference,
            forecasts,
        });
        out.push(signed(ledger, &w.key, payload));
    }
    out
}

/// The reputer bundles of `epoch`: every reputer's losses of the finalized bundle against its
/// truth.
async fn reputer_entries(
    ledger: &Ledger,
    t: &TopicActors,
    epoch: u64,
) -> anyhow::Result<Vec<SignedEntry>> {
    let Some(bundle) = ledger
        .topics
        .get(&t.id)
        .and_then(|s| s.mechanism.pending.get(&epoch))
        .and_then(|r| r.bundle.as_ref())
    else {
        return Ok(vec![]);
    };
    let ctx = EpochContext::of_topic(t.id.0, &t.spec, epoch);
    let mut out = vec![];
    for r in &t.reputers {
        let Some(y) = r.truth.truth(&ctx).await? else {
            continue;
        };
        let losses = loss_bundle(bundle, y, &t.spec.loss)
            .with_context(|| format!("losses of topic {} epoch {epoch}", t.id))?;
        let payload = Payload::ReputerBundle(ReputerBundle {
            topic: t.id,
            epoch,
            ground_truth: y,
            losses,
        });
        out.push(signed(ledger, &r.key, payload));
    }
    Ok(out)
}
