//! # chorus-testbeds
//!
//! Test beds over the Chorus cores. Today: [`sim`], a deterministic simulator that drives the
//! pure replicas of N nodes (`chorus_crdt::replica::sim`) with a seeded RNG and virtual time
//! through scripted faults and byzantine behaviours, and checks invariants after every step.
//!
//! ```
//! use chorus_testbeds::sim::{SimConfig, run_seed};
//! let config = SimConfig { epochs: 8, ..SimConfig::default() };
//! let report = run_seed(&config, 1);
//! assert!(report.violations.is_empty(), "{:?}", report.violations);
//! ```

pub mod sim;
