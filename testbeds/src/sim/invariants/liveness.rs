//! Liveness: every honest entry submitted inside its window while its node was connected to
//! more than 2/3 of the stake ends up finalized.
//!
//! "Connected" is judged from the scripted faults, conservatively: node `i` is *good* while
//! it runs and the validators it can exchange messages with (itself included), counting only
//! honest running ones, hold more than 2/3 of the total bond. An entry is *eligible* if its
//! node was good from its submission until [`SETTLE_MS`] after its window closed (long
//! enough for the checkpoint that finalizes the window to be decided in normal operation).
//! At the end, every eligible entry's change hash must be among the finalized heads of its
//! window in the decided chain. Byzantine nodes' entries are not tracked; honest entries
//! that were not eligible are counted, and usually finalized too.
//!
//! Only entries submitted before their window's (nominal) close are eligible: a replica also
//! admits loss reports for a while after the close when the checkpoint that finalized their
//! epoch's bundle came late (`Replica::reputer_window`), but the height that finalizes the
//! window still comes when the topic says, so such late reports are best effort (counted in
//! `late`).
//!
//! One exception, a limit of the protocol rather than of the run: a checkpoint carries the
//! heads its proposer chose, and validators accept any set of heads they can verify, so a
//! byzantine proposer can leave honest entries out of a window (here: typically one that was
//! down while they were gossiped). Such entries are counted as *censored*, not as
//! violations; an honest proposer leaving out an eligible entry is a violation.

use std::collections::{BTreeMap, BTreeSet};

use chorus_crdt::window::WindowKey;
use chorus_protocol::ids::Hash32;
use serde::Serialize;

use super::Violation;

/// How long after its window closes an eligible entry's node must stay good (ms).
pub const SETTLE_MS: u64 = 3_000;

/// One honest submission.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Submission {
    /// The node.
    pub node: usize,
    /// Its window.
    pub window: WindowKey,
    /// Its change hash.
    pub change: Hash32,
    /// Global time of the submission (ms).
    pub at_ms: u64,
    /// When its window closes (ms).
    pub close_ms: u64,
}

/// Counts of a run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct LivenessStats {
    /// Honest entries submitted (accepted by their own replica).
    pub submitted: u64,
    /// Of these, submitted while the node was well connected.
    pub eligible: u64,
    /// Of the submitted, those sent after their window's nominal close (a reputer's grace
    /// after a late checkpoint): never eligible.
    pub late: u64,
    /// Honest entries finalized (eligible or not).
    pub finalized: u64,
    /// Eligible entries finalized.
    pub eligible_finalized: u64,
    /// Eligible entries left out of their window by a byzantine proposer.
    pub censored: u64,
}

/// The liveness checker.
#[derive(Debug)]
pub struct Liveness {
    /// Per node: intervals `[from, to)` in which it was not good (`to = None`: still).
    bad: Vec<Vec<(u64, Option<u64>)>>,
    submissions: Vec<Submission>,
    /// Counts.
    pub stats: LivenessStats,
    /// Submission-to-finality latencies of finalized honest entries (ms).
    pub latencies: Vec<u64>,
    /// What was found.
    pub violations: Vec<Violation>,
}

/// Where a window was finalized: the height, its finalized heads, and whether every
/// proposer of that checkpoint was byzantine.
pub type Finalized = BTreeMap<Hash32, (u64, BTreeSet<Hash32>, bool)>;

impl Liveness {
    /// A checker for `nodes` nodes, all good at the start.
    pub fn new(nodes: usize) -> Self {
        Liveness {
            bad: vec![vec![]; nodes],
            submissions: vec![],
            stats: LivenessStats::default(),
            latencies: vec![],
            violations: vec![],
        }
    }

    /// The connectivity changed at `now`: `good[i]` for every node.
    pub fn connectivity(&mut self, now: u64, good: &[bool]) {
        for (i, g) in good.iter().enumerate() {
            if i >= self.bad.len() {
                self.bad.push(vec![]);
            }
            let intervals = &mut self.bad[i];
            let open = intervals.last().is_some_and(|(_, to)| to.is_none());
            match (*g, open) {
                (false, false) => intervals.push((now, None)),
                (true, true) => {
                    if let Some(last) = intervals.last_mut() {
                        last.1 = Some(now);
                    }
                }
                _ => {}
            }
        }
    }

    /// An honest node submitted an entry.
    pub fn on_submitted(&mut self, s: Submission) {
        self.stats.submitted += 1;
        self.submissions.push(s);
    }

    /// Whether `s` was submitted before its window closed and its node was good throughout
    /// `[s.at_ms, s.close_ms + SETTLE_MS]`.
    pub fn eligible(&self, s: &Submission) -> bool {
        let (from, to) = (s.at_ms, s.close_ms + SETTLE_MS);
        from < s.close_ms
            && self.bad.get(s.node).is_none_or(|iv| {
                iv.iter()
                    .all(|(a, b)| *a > to || b.is_some_and(|b| b <= from))
            })
    }

    /// At the end (`now`: ms since genesis, for the report): which entries were finalized,
    /// given where each window was finalized and when each height was first applied.
    pub fn finish(&mut self, finalized: &Finalized, first_applied: &BTreeMap<u64, u64>, now: u64) {
        let submissions = std::mem::take(&mut self.submissions);
        for s in &submissions {
            if s.at_ms >= s.close_ms {
                self.stats.late += 1;
            }
            let eligible = self.eligible(s);
            if eligible {
                self.stats.eligible += 1;
            }
            let place = finalized.get(&s.window.id());
            let done = place.is_some_and(|(_, heads, _)| heads.contains(&s.change));
            if done {
                self.stats.finalized += 1;
                if eligible {
                    self.stats.eligible_finalized += 1;
                }
                if let Some(at) = place.and_then(|(h, _, _)| first_applied.get(h)) {
                    self.latencies.push(at.saturating_sub(s.at_ms));
                }
            } else if eligible && place.is_some_and(|(_, _, byzantine)| *byzantine) {
                self.stats.censored += 1;
            } else if eligible {
                let why = if place.is_some() {
                    "its window was finalized without it"
                } else {
                    "its window was never finalized"
                };
                self.violations.push(Violation {
                    invariant: "liveness",
                    at_ms: now,
                    detail: format!(
                        "entry {} of node {} in {:?}, submitted at {} ms: {why}",
                        s.change.short(),
                        s.node,
                        s.window,
                        s.at_ms
                    ),
                });
            }
        }
        self.submissions = submissions;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chorus_crdt::window::Phase;
    use chorus_protocol::ids::TopicId;

    fn sub(node: usize, at: u64) -> Submission {
        Submission {
            node,
            window: WindowKey::Topic {
                topic: TopicId(1),
                epoch: 0,
                phase: Phase::Workers,
            },
            change: Hash32([node as u8; 32]),
            at_ms: at,
            close_ms: at + 100,
        }
    }

    #[test]
    fn eligibility_follows_the_bad_intervals() {
        let mut l = Liveness::new(2);
        l.connectivity(1_000, &[false, true]);
        l.connectivity(2_000, &[true, true]);
        assert!(!l.eligible(&sub(0, 500)), "bad during its settle time");
        assert!(!l.eligible(&sub(0, 1_500)));
        assert!(l.eligible(&sub(0, 2_000)));
        assert!(l.eligible(&sub(1, 1_500)));
        let late = Submission {
            at_ms: 2_100,
            close_ms: 2_100,
            ..sub(1, 0)
        };
        assert!(
            !l.eligible(&late),
            "sent at its window's close: best effort"
        );
    }

    #[test]
    fn the_checker_bites_on_a_lost_eligible_entry() {
        let mut l = Liveness::new(2);
        l.on_submitted(sub(0, 10));
        l.on_submitted(sub(1, 10));
        let window = sub(0, 10).window.id();
        let mut finalized = Finalized::new();
        finalized.insert(window, (1, BTreeSet::from([Hash32([0; 32])]), false));
        l.finish(&finalized, &BTreeMap::from([(1, 1_000)]), 5_000);
        assert_eq!(l.stats.finalized, 1);
        assert_eq!(l.violations.len(), 1, "{:?}", l.violations);
        assert!(l.violations[0].detail.contains("node 1"));
        assert_eq!(l.latencies, vec![990]);
    }

    #[test]
    fn an_entry_left_out_by_a_byzantine_proposer_is_censored_not_a_violation() {
        let mut l = Liveness::new(2);
        l.on_submitted(sub(1, 10));
        let mut finalized = Finalized::new();
        finalized.insert(sub(1, 10).window.id(), (1, BTreeSet::new(), true));
        l.finish(&finalized, &BTreeMap::new(), 5_000);
        assert!(l.violations.is_empty());
        assert_eq!(l.stats.censored, 1);
    }
}
