//! The simulator's seeded generator: the project's one ([`chorus_protocol::rng`]).

/// The simulator's generator; seed it with [`SimRng::seeded`].
pub type SimRng = chorus_protocol::rng::SplitMix64;
