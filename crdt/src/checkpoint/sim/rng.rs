//! The consensus simulator's seeded generator: the project's one ([`chorus_protocol::rng`]);
//! the engine itself never uses it.

/// The generator (`Rng::new(seed)` starts from the raw seed).
pub type Rng = chorus_protocol::rng::SplitMix64;
