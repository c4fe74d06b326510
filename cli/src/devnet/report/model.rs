//! The data the devnet records for each topic, and the shared view of it that the
//! summary, the CSV and the plots all read (records sorted by epoch, the worker
//! roster, which epochs are scored).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::ReportError;

/// Model name shown for a worker that appears in the records but not in
/// [`TopicRun::workers`].
pub const UNDECLARED_MODEL: &str = "(undeclared)";

/// One worker (inferer) of a topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerInfo {
    /// Worker name, e.g. `"w3"`.
    pub name: String,
    /// Model the worker runs, e.g. `"ar3-rls"`.
    pub model: String,
}

impl WorkerInfo {
    /// A worker with a name and a model.
    pub fn new(name: impl Into<String>, model: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            model: model.into(),
        }
    }
}

/// Everything known about one epoch of one topic once it is finalized.
///
/// Non-finite numbers (NaN, ±inf) in `truth`, `inferences`, `combined`, `naive`,
/// `weights` and `losses` are treated as missing everywhere in the report (an epoch
/// with a non-finite truth is not scored; see [`super::summary::TopicSummary::unscorable_epochs`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// Epoch number.
    pub epoch: u64,
    /// Time of the bar this epoch predicts, if known.
    pub time: Option<String>,
    /// Ground truth of the epoch.
    pub truth: f64,
    /// Worker name -> inference; a worker missing here skipped the epoch.
    pub inferences: BTreeMap<String, f64>,
    /// Forecaster name -> its forecast-implied inference in the finalized bundle; a
    /// forecaster missing here had no forecast counted this epoch.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub forecast_implied: BTreeMap<String, f64>,
    /// Worker name -> the network inference without it (one-out inferer or forecaster value).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub one_out: BTreeMap<String, f64>,
    /// Network combined inference.
    pub combined: Option<f64>,
    /// Network naive inference (combined without forecasters).
    pub naive: Option<f64>,
    /// Normalized inferer weights used for `combined` (sum 1); may be empty.
    pub weights: BTreeMap<String, f64>,
    /// log10 losses reported, keyed by worker name, `"combined"` and `"naive"`.
    pub losses: BTreeMap<String, f64>,
    /// Rewards paid this epoch per worker, in token base units.
    pub rewards: BTreeMap<String, u128>,
    /// Height of the checkpoint that finalized this epoch.
    pub checkpoint_height: Option<u64>,
}

impl EpochRecord {
    /// An epoch with a truth and nothing else.
    pub fn new(epoch: u64, truth: f64) -> Self {
        Self {
            epoch,
            truth,
            ..Self::default()
        }
    }

    /// The ground truth if it is finite.
    pub fn truth_value(&self) -> Option<f64> {
        finite(self.truth)
    }

    /// The inference of `worker` if it submitted a finite one.
    pub fn inference(&self, worker: &str) -> Option<f64> {
        self.inferences.get(worker).copied().and_then(finite)
    }

    /// Whether `worker` took part: an inference, or a forecast-implied inference.
    pub fn took_part(&self, worker: &str) -> bool {
        self.inference(worker).is_some() || self.forecast_implied.contains_key(worker)
    }

    /// The network combined inference if present and finite.
    pub fn combined_value(&self) -> Option<f64> {
        self.combined.and_then(finite)
    }

    /// The network naive inference if present and finite.
    pub fn naive_value(&self) -> Option<f64> {
        self.naive.and_then(finite)
    }

    /// Equal-weight average of the (finite) inferences present this epoch, `None` if
    /// there are none.
    pub fn average(&self) -> Option<f64> {
        let mut sum = 0.0;
        let mut n = 0u32;
        for v in self.inferences.values().copied().filter_map(finite) {
            sum += v;
            n += 1;
        }
        (n > 0).then(|| sum / f64::from(n))
    }
}

/// Everything recorded for one topic over a devnet run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TopicRun {
    /// Topic name, e.g. `"EUR/USD 1h range"`.
    pub name: String,
    /// What is predicted: `"range"`, `"close"` or `"return"`.
    pub target: String,
    /// The topic's workers, in the order they are listed.
    pub workers: Vec<WorkerInfo>,
    /// One record per finalized epoch (any order; epochs must be distinct).
    pub records: Vec<EpochRecord>,
    /// Final EMA score per worker.
    pub score_ema: BTreeMap<String, f64>,
    /// Decimals of the token, to print rewards in whole tokens.
    pub token_decimals: u8,
}

impl TopicRun {
    /// The declared workers, followed (sorted by name, with model
    /// [`UNDECLARED_MODEL`]) by any other name that has an inference, a weight or a
    /// reward in some record, so that nothing recorded is left out of the report.
    pub fn roster(&self) -> Vec<WorkerInfo> {
        let mut roster = self.workers.clone();
        let declared: BTreeSet<&str> = self.workers.iter().map(|w| w.name.as_str()).collect();
        let mut extra: BTreeSet<&str> = BTreeSet::new();
        for r in &self.records {
            let names = r
                .inferences
                .keys()
                .chain(r.weights.keys())
                .chain(r.rewards.keys());
            for name in names {
                if !declared.contains(name.as_str()) {
                    extra.insert(name);
                }
            }
        }
        roster.extend(
            extra
                .into_iter()
                .map(|n| WorkerInfo::new(n, UNDECLARED_MODEL)),
        );
        roster
    }
}

/// `Some(x)` if `x` is finite.
pub(crate) fn finite(x: f64) -> Option<f64> {
    x.is_finite().then_some(x)
}

/// A run prepared for reporting: records sorted by epoch, roster, warm-up boundary.
#[derive(Debug)]
pub(crate) struct Prepared<'a> {
    /// The run.
    pub run: &'a TopicRun,
    /// Records sorted by epoch (distinct epochs).
    pub records: Vec<&'a EpochRecord>,
    /// See [`TopicRun::roster`].
    pub roster: Vec<WorkerInfo>,
    /// Warm-up length in epochs.
    pub warmup: u64,
    /// First scored epoch number: first recorded epoch + warm-up.
    pub first_scored: u64,
}

impl<'a> Prepared<'a> {
    /// Sorts the records, checks that epochs are distinct and builds the roster.
    pub fn new(run: &'a TopicRun, warmup: u64) -> Result<Self, ReportError> {
        let mut records: Vec<&EpochRecord> = run.records.iter().collect();
        records.sort_by_key(|r| r.epoch);
        if let Some(w) = records.windows(2).find(|w| w[0].epoch == w[1].epoch) {
            return Err(ReportError::DuplicateEpoch {
                topic: run.name.clone(),
                epoch: w[0].epoch,
            });
        }
        let first = records.first().map_or(0, |r| r.epoch);
        Ok(Self {
            run,
            records,
            roster: run.roster(),
            warmup,
            first_scored: first.saturating_add(warmup),
        })
    }

    /// Whether the epoch is past the warm-up (its truth may still be unusable).
    pub fn after_warmup(&self, r: &EpochRecord) -> bool {
        r.epoch >= self.first_scored
    }

    /// Scored records, with their finite truth: past the warm-up, truth finite.
    pub fn scored(&self) -> impl Iterator<Item = (&'a EpochRecord, f64)> + '_ {
        self.records
            .iter()
            .copied()
            .filter(|r| self.after_warmup(r))
            .filter_map(|r| r.truth_value().map(|t| (r, t)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn average_ignores_non_finite() {
        let mut r = EpochRecord::new(1, 0.0);
        assert_eq!(r.average(), None);
        r.inferences.insert("a".into(), 1.0);
        r.inferences.insert("b".into(), 2.0);
        r.inferences.insert("c".into(), f64::NAN);
        assert_eq!(r.average(), Some(1.5));
    }

    #[test]
    fn roster_appends_undeclared_names() {
        let mut run = TopicRun {
            workers: vec![WorkerInfo::new("w2", "m2"), WorkerInfo::new("w1", "m1")],
            ..TopicRun::default()
        };
        let mut r = EpochRecord::new(1, 0.0);
        r.inferences.insert("w1".into(), 1.0);
        r.inferences.insert("zz".into(), 1.0);
        r.rewards.insert("aa".into(), 5);
        run.records.push(r);
        let names: Vec<_> = run.roster().into_iter().map(|w| w.name).collect();
        assert_eq!(names, ["w2", "w1", "aa", "zz"]);
    }

    #[test]
    fn duplicate_epochs_are_rejected_and_records_sorted() {
        let mut run = TopicRun::default();
        run.records.push(EpochRecord::new(3, 0.0));
        run.records.push(EpochRecord::new(1, 0.0));
        let p = Prepared::new(&run, 1).unwrap();
        assert_eq!(p.records[0].epoch, 1);
        assert_eq!(p.first_scored, 2);
        run.records.push(EpochRecord::new(3, 1.0));
        assert!(matches!(
            Prepared::new(&run, 0),
            Err(ReportError::DuplicateEpoch { epoch: 3, .. })
        ));
    }
}
