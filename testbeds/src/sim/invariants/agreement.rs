//! Agreement: at every height, every checked node finalizes the same checkpoint with the same
//! ledger root, and each node's decided chain links each checkpoint to the previous one.
//!
//! Fed on every `Finalized` event (cheap: one map lookup), and over the whole persisted
//! chains at the end (which also covers heights decided while nobody was watching, e.g.
//! restored from a store).

use std::collections::{BTreeMap, BTreeSet};

use chorus_crdt::checkpoint::{CheckpointId, DecidedCheckpoint};
use chorus_protocol::ids::Hash32;

use super::Violation;

/// The agreement checker.
#[derive(Debug, Default)]
pub struct Agreement {
    /// First decision seen per height: (node, id, ledger root).
    decided: BTreeMap<u64, (usize, CheckpointId, Hash32)>,
    /// Heights at which two different checkpoints were finalized.
    pub forks: BTreeSet<u64>,
    /// What was found.
    pub violations: Vec<Violation>,
}

impl Agreement {
    /// Node `node` applied checkpoint `id` at `height`, reaching `ledger_root`.
    pub fn on_finalized(
        &mut self,
        node: usize,
        height: u64,
        id: CheckpointId,
        ledger_root: Hash32,
        at_ms: u64,
    ) {
        match self.decided.get(&height) {
            None => {
                self.decided.insert(height, (node, id, ledger_root));
            }
            Some(&(first, first_id, _)) if first_id != id => {
                self.forks.insert(height);
                self.violations.push(Violation {
                    invariant: "agreement",
                    at_ms,
                    detail: format!(
                        "height {height}: node {first} finalized {first_id}, node {node} finalized {id}"
                    ),
                });
            }
            Some(&(first, _, first_root)) if first_root != ledger_root => {
                self.violations.push(Violation {
                    invariant: "agreement",
                    at_ms,
                    detail: format!(
                        "height {height}: one checkpoint, two ledger roots (node {first} {}, node {node} {})",
                        first_root.short(),
                        ledger_root.short()
                    ),
                });
            }
            Some(_) => {}
        }
    }

    /// Check one node's persisted chain: linkage, and agreement with what was seen so far.
    pub fn check_chain(
        &mut self,
        node: usize,
        chain: &BTreeMap<u64, DecidedCheckpoint>,
        genesis_previous: Hash32,
        at_ms: u64,
    ) {
        for (height, d) in chain {
            let expected_previous = if *height == 1 {
                Some(genesis_previous)
            } else {
                chain.get(&(height - 1)).map(|p| p.id().0)
            };
            if let Some(prev) = expected_previous
                && d.checkpoint.previous != prev
            {
                self.violations.push(Violation {
                    invariant: "agreement",
                    at_ms,
                    detail: format!("node {node}: checkpoint {height} does not extend {}", {
                        height - 1
                    }),
                });
            }
            match self.decided.get(height) {
                Some(&(first, id, _)) if id != d.id() => {
                    self.forks.insert(*height);
                    self.violations.push(Violation {
                        invariant: "agreement",
                        at_ms,
                        detail: format!(
                            "height {height}: node {first} finalized {id}, node {node} stored {}",
                            d.id()
                        ),
                    });
                }
                Some(_) => {}
                None => {
                    self.decided
                        .insert(*height, (node, d.id(), d.checkpoint.ledger_root));
                }
            }
        }
    }

    /// Highest height any checked node finalized.
    pub fn highest(&self) -> u64 {
        self.decided.keys().next_back().copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(b: u8) -> CheckpointId {
        CheckpointId(Hash32([b; 32]))
    }

    #[test]
    fn the_checker_bites_on_two_checkpoints_at_one_height() {
        let mut a = Agreement::default();
        a.on_finalized(0, 5, id(1), Hash32([9; 32]), 10);
        a.on_finalized(1, 5, id(1), Hash32([9; 32]), 11);
        assert!(a.violations.is_empty());
        a.on_finalized(2, 5, id(2), Hash32([8; 32]), 12);
        assert_eq!(a.violations.len(), 1);
        assert_eq!(a.forks, BTreeSet::from([5]));
        assert!(a.violations[0].detail.contains("node 0"));
    }

    #[test]
    fn one_checkpoint_with_two_roots_is_a_violation() {
        let mut a = Agreement::default();
        a.on_finalized(0, 3, id(1), Hash32([9; 32]), 10);
        a.on_finalized(1, 3, id(1), Hash32([7; 32]), 10);
        assert_eq!(a.violations.len(), 1);
        assert!(a.forks.is_empty());
    }
}
