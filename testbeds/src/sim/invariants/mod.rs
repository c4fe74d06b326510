//! Invariant checkers, one per file. Each is fed as the simulation runs (after every step,
//! from the simulator's events) and asked once more at the end.
//!
//! - [`agreement`]: no two different checkpoints finalized at one height (while byzantine
//!   stake < 1/3), each node's chain linked, one ledger root per height.
//! - [`convergence`]: after the heal and the drain, every checked node has identical window
//!   heads, checkpoint chain and ledger root.
//! - [`supply`]: every node's ledger conserves supply after every checkpoint.
//! - [`liveness`]: every honest entry submitted inside its window while its node was connected
//!   to > 2/3 of the stake (honest, running validators) ends up finalized.

pub mod agreement;
pub mod convergence;
pub mod liveness;
pub mod supply;

use serde::Serialize;

/// A broken invariant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// Which invariant (`agreement`, `convergence`, `supply`, `liveness`, `hostile-author`,
    /// `panic`, `replica-fault`).
    pub invariant: &'static str,
    /// Virtual time since genesis (ms) when it was found.
    pub at_ms: u64,
    /// What was wrong.
    pub detail: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "[{} @ {} ms] {}",
            self.invariant, self.at_ms, self.detail
        )
    }
}
