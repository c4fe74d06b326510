//! Following the run: node 0's finalized inferences become report rows (with the truth from
//! the replayed bars) until the last epoch is finalized; its ledger records give the rewards,
//! also during a short tail after it (rewards are paid a checkpoint later).

use crate::output::outln;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use std::io::IsTerminal;

use anyhow::bail;
use chorus_crdt::ledger::LedgerEvent;
use chorus_node::actor::InferenceEvent;
use chorus_node::models::{Bars, Replay};
use chorus_protocol::ids::TopicId;
use chorus_protocol::inference::NetworkInference;
use chorus_protocol::keys::PublicKey;
use tokio::sync::mpsc;

use super::network::Network;
use super::observe::{Observed, Source};
use super::plan::{DevnetPlan, TopicPlan};
use super::report::EpochRecord;
use crate::output::Progress;

/// The run fails only if finalization stalls this long, or [`STALL_EPOCHS`] epochs if that
/// is longer (a loaded machine just makes it slower).
const STALL: Duration = Duration::from_secs(60);

/// Epochs without a finalized one that count as a stall when epochs are long: a failed
/// consensus round costs about five periods of timeouts, twice that is no longer bad luck.
const STALL_EPOCHS: u32 = 10;

/// Extra patience before the first finalized epoch (the nodes start and connect).
const FIRST_EPOCH_GRACE: Duration = Duration::from_secs(30);

/// How long the run waits for finalized epochs after the stepped clock ended.
const STEPPER_ENDED_GRACE: Duration = Duration::from_secs(5);

/// The stepped clock's task.
pub(super) type StepperTask = tokio::task::JoinHandle<anyhow::Result<super::stepped::Stepped>>;

/// What the run saw of the network.
#[derive(Default)]
pub(super) struct Followed {
    /// Report rows per topic and epoch.
    pub records: BTreeMap<TopicId, BTreeMap<u64, EpochRecord>>,
    /// Rewards per (topic, epoch) and receiver (hex key), base units.
    pub rewards: BTreeMap<(TopicId, u64), BTreeMap<String, u128>>,
    /// The highest finalized checkpoint.
    pub last_height: u64,
    /// The highest epoch finalized per topic (beyond the run's too).
    pub highest: BTreeMap<TopicId, u64>,
}

impl Followed {
    /// Whether every topic has finalized its last epoch (`epochs - 1`) or a later one. An epoch
    /// whose bundles all missed their window finalizes no inference: waiting for exactly the
    /// last one would wait forever (the report counts such an epoch as missing).
    fn done(&self, topics: &[TopicPlan], epochs: u64) -> bool {
        topics
            .iter()
            .all(|p| self.highest.get(&p.id).is_some_and(|e| *e + 1 >= epochs))
    }

    /// Add the rewards among `events`.
    pub(super) fn add_rewards(&mut self, height: u64, events: &[LedgerEvent]) {
        self.last_height = self.last_height.max(height);
        for e in events {
            if let LedgerEvent::Reward {
                topic,
                epoch,
                to,
                amount,
                ..
            } = e
            {
                *self
                    .rewards
                    .entry((*topic, *epoch))
                    .or_default()
                    .entry(to.to_hex())
                    .or_default() += amount.0;
            }
        }
    }
}

/// Follow node 0 until the first `epochs` epochs of every topic of `plan` are finalized,
/// showing a progress bar with an ETA on a terminal unless `quiet` (a line per finalized epoch
/// instead with `CHORUS_DEVNET_DEBUG`).
pub(super) async fn epochs(
    net: &mut Network,
    observed: &mut mpsc::Receiver<Observed>,
    plan: &DevnetPlan,
    bars: &Bars,
    epochs: u64,
    quiet: bool,
    stepper: Option<&StepperTask>,
) -> anyhow::Result<Followed> {
    let topics = &plan.topics[..];
    // On the stepped clock epochs take what the CPU needs, not their length.
    let stall = match stepper {
        Some(_) => STALL,
        None => STALL.max(Duration::from_millis(plan.epoch_ms) * STALL_EPOCHS),
    };
    let mut stepper_ended: Option<Instant> = None;
    let mut replay: BTreeMap<TopicId, Replay> = BTreeMap::new();
    for p in topics {
        replay.insert(p.id, Replay::new(bars.clone(), p.target.target())?);
    }
    let debug = std::env::var_os("CHORUS_DEVNET_DEBUG").is_some();
    let show = !quiet && !debug && std::io::stderr().is_terminal();
    let mut progress = Progress::new("devnet", epochs, "epochs", show);
    let started = Instant::now();
    let mut seen = Followed::default();
    let mut last_progress = Instant::now() + FIRST_EPOCH_GRACE;
    while !seen.done(topics, epochs) {
        if Instant::now() > last_progress + stall {
            bail!(
                "finalization stalled: no epoch finalized for {} s ({})",
                stall.as_secs(),
                net.describe().await
            );
        }
        net.check_alive()?;
        if let Some(task) = stepper
            && task.is_finished()
        {
            // Past its end the stepped clock no longer moves: what is not finalized by now
            // never will be (a moment for the last events to arrive).
            let ended = *stepper_ended.get_or_insert_with(Instant::now);
            if ended.elapsed() > STEPPER_ENDED_GRACE {
                bail!("the stepped clock ended before every epoch was finalized");
            }
        }
        let next = match tokio::time::timeout(Duration::from_secs(1), observed.recv()).await {
            Err(_) => continue,
            Ok(None) => bail!("node 0 stopped"),
            Ok(Some(o)) => o,
        };
        match next {
            Observed::Inference(ev) if ev.finalized => {
                last_progress = Instant::now();
                let highest = seen.highest.entry(ev.topic).or_default();
                *highest = (*highest).max(ev.epoch);
                if ev.epoch >= epochs {
                    continue;
                }
                let Some(plan) = topics.iter().find(|p| p.id == ev.topic) else {
                    continue;
                };
                let truth = replay.get(&ev.topic).and_then(|r| r.truth(ev.epoch));
                let rec = record(net.node0(), plan, ev.epoch, truth, ev.checkpoint_height).await;
                if !quiet && debug {
                    print_epoch(plan, &ev, truth);
                }
                let slowest = topics
                    .iter()
                    .map(|p| seen.highest.get(&p.id).map_or(0, |e| e + 1))
                    .min()
                    .unwrap_or(0);
                progress.set(slowest, started.elapsed());
                if let Some(rec) = rec {
                    seen.records
                        .entry(ev.topic)
                        .or_default()
                        .insert(ev.epoch, rec);
                }
            }
            Observed::Inference(_) => {}
            Observed::Ledger { height, events } => {
                seen.add_rewards(height, &events);
                log_ledger(height, &events, debug);
            }
            Observed::Lagged(n) => {
                eprintln!("devnet: missed {n} events from node 0 (falling behind)");
            }
            Observed::Closed(why) => bail!("{why}"),
        }
    }
    progress.finish(started.elapsed());
    Ok(seen)
}

/// After the last epoch: wait three epochs of `epoch_ms` (its rewards are paid a checkpoint
/// later), then take the ledger records that arrived meanwhile.
pub(super) async fn finality_tail(
    seen: &mut Followed,
    observed: &mut mpsc::Receiver<Observed>,
    epoch_ms: u64,
) {
    tokio::time::sleep(Duration::from_millis(epoch_ms * 3)).await;
    drain(seen, observed);
}

/// Take the ledger records that arrived since the epochs were followed (the stepped clock
/// has stepped through the tail by now).
pub(super) fn drain(seen: &mut Followed, observed: &mut mpsc::Receiver<Observed>) {
    while let Ok(o) = observed.try_recv() {
        if let Observed::Ledger { height, events } = o {
            seen.add_rewards(height, &events);
        }
    }
}

/// The line of a finalized epoch.
fn print_epoch(plan: &TopicPlan, ev: &InferenceEvent, truth: Option<f64>) {
    // A reader that went away does not stop the devnet: its report files are the result.
    let _ = outln!(
        "[{:5}] epoch {:5}  truth {:>12.6e}  network {:>12.6e}  checkpoint {}",
        plan.target.name(),
        ev.epoch,
        truth.unwrap_or(f64::NAN),
        ev.combined_value,
        ev.checkpoint_height.unwrap_or(0),
    );
}

/// Mechanism errors always; other ledger events (but emissions and network inferences) with
/// `CHORUS_DEVNET_DEBUG`.
fn log_ledger(height: u64, events: &[LedgerEvent], debug: bool) {
    for e in events {
        match e {
            LedgerEvent::Reward { .. } => {}
            LedgerEvent::MechanismError {
                topic,
                epoch,
                reason,
            } => {
                eprintln!("devnet: topic {topic} epoch {epoch}: {reason}");
            }
            LedgerEvent::Emission { .. } | LedgerEvent::NetworkInference { .. } => {}
            other => {
                if debug {
                    eprintln!("devnet: height {height}: {other:?}");
                }
            }
        }
    }
}

/// The report row of one finalized epoch, from node 0's finalized inference.
async fn record(
    node: &Source,
    plan: &TopicPlan,
    epoch: u64,
    truth: Option<f64>,
    height: Option<u64>,
) -> Option<EpochRecord> {
    let truth = truth?;
    let v = match node.inference(plan.id, epoch).await {
        Ok(v) => v,
        Err(e) => {
            // The run then waits for this epoch's record and ends as a stall: say why.
            eprintln!(
                "devnet: node 0 has no inference of topic {} epoch {epoch}: {e}",
                plan.id
            );
            return None;
        }
    };
    Some(epoch_record(plan, epoch, truth, height, &v.bundle))
}

/// The report row of epoch `epoch` of `plan`'s topic: the finalized bundle `b`, its truth and
/// the checkpoint that finalized it; log10 squared errors as the losses.
pub(super) fn epoch_record(
    plan: &TopicPlan,
    epoch: u64,
    truth: f64,
    height: Option<u64>,
    b: &NetworkInference,
) -> EpochRecord {
    let mut rec = EpochRecord::new(epoch, truth);
    rec.checkpoint_height = height;
    rec.combined = Some(b.combined_value);
    rec.naive = b.naive_value;
    let name = |k: &PublicKey| plan.workers.get(&k.to_hex()).map(|(n, _)| n.clone());
    for (k, x) in &b.inferer_values {
        if let Some(n) = name(k) {
            rec.inferences.insert(n, *x);
        }
    }
    for (k, x) in &b.forecaster_values {
        if let Some(n) = name(k) {
            rec.forecast_implied.insert(n, *x);
        }
    }
    for (k, x) in b
        .one_out_inferer_values
        .iter()
        .chain(&b.one_out_forecaster_values)
    {
        if let Some(n) = name(k) {
            rec.one_out.insert(n, *x);
        }
    }
    let total: f64 = b.inferer_weights.values().sum();
    for (k, w) in &b.inferer_weights {
        if let Some(n) = name(k)
            && total > 0.0
        {
            rec.weights.insert(n, w / total);
        }
    }
    let loss = |x: f64| libm::log10(((x - truth) * (x - truth)).max(1e-30));
    for (n, x) in &rec.inferences {
        rec.losses.insert(n.clone(), loss(*x));
    }
    if let Some(c) = rec.combined {
        rec.losses.insert("combined".into(), loss(c));
    }
    if let Some(c) = rec.naive {
        rec.losses.insert("naive".into(), loss(c));
    }
    rec
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(id: u64) -> TopicPlan {
        TopicPlan {
            id: TopicId(id),
            name: format!("t{id}"),
            target: super::super::TargetArg::Range,
            workers: BTreeMap::new(),
        }
    }

    /// The run ends once every topic finalized its last epoch or a later one: an epoch that
    /// finalized no inference (every bundle late) does not hold it forever.
    #[test]
    fn done_when_every_topic_reached_the_last_epoch_or_beyond() {
        let topics = [topic(1), topic(2)];
        let mut seen = Followed::default();
        assert!(!seen.done(&topics, 60));
        seen.highest.insert(TopicId(1), 58);
        seen.highest.insert(TopicId(2), 61); // 59 and 60 finalized nothing here
        assert!(!seen.done(&topics, 60));
        seen.highest.insert(TopicId(1), 60);
        assert!(seen.done(&topics, 60));
    }
}
