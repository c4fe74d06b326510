//! The Allora v0.6 mathematics: inference synthesis, losses, regrets, reputer consensus, scores,
//! rewards, topic weights and integer payouts — exact (float64 reproduction of the chain's
//! fixtures), deterministic (libm, sorted iteration, no clock, no RNG) and fast.
//!
//! The formulas follow `allora-math.md` (allora-chain v0.6.0); every function names the Go
//! function it reproduces. Worker and reputer identifiers are generic (`K: Ord + Clone`); the JSON
//! layers ([`synth_io`], [`settle_io`]) use `String` keys.
//!
//! | module | what |
//! |---|---|
//! | [`util`] | EMA, sample std, median, quantile, φ, φ′, deterministic `exp` |
//! | [`loss`] | loss functions ([`loss::LossMethod`]) |
//! | [`weights`] | regret-informed weights |
//! | [`synthesis`] | network inference and the whole synthesis bundle |
//! | [`losses`] | value bundles, stake-weighted network losses, reputer loss vectors |
//! | [`regrets`] | the nine regret kinds, their update, the topic initial regret |
//! | [`reputer`] | consensus scores and listening coefficients |
//! | [`scores`] | worker scores, EMA scores, merit sortition |
//! | [`rewards`] | reward fractions, entropies, χ, γ, task and per-actor rewards |
//! | [`topic_weight`] | topic weights, fee drip, emission split |
//! | [`payout`] | integer payouts conserving supply |
//! | [`synth_io`], [`settle_io`] | the `chorus synth` / `chorus settle` JSON |

pub mod error;
pub mod json;
pub mod loss;
pub mod losses;
pub mod mechanism;
pub mod outliers;
pub mod payout;
pub mod regrets;
pub mod reputer;
pub mod rewards;
pub mod scores;
pub mod settle_io;
pub mod synth_io;
pub mod synthesis;
pub mod topic_weight;
pub mod util;
pub mod weights;

pub use error::MathError;
