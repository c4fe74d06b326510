//! Deterministic pseudo-randomness for the noisy model and the synthetic truth: the project's
//! one seeded generator ([`chorus_protocol::rng`], SplitMix64). Its mixing function gives
//! random access: the noise of epoch `t` is a pure function of `(seed, t)`, so predictions
//! never depend on how often a model was asked.

pub use chorus_protocol::rng::{SplitMix64, normal_at, splitmix64, unit_open};
