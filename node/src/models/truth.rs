//! Ground-truth sources.
//!
//! - [`Replay`]: a [`Bars`] series and a [`Target`]; the truth of epoch `t` is the target value of
//!   bar `t + 1`, `None` while that bar does not exist. The same bars feed built-in models.
//! - [`synthetic_bars`]: a seeded random walk (for tests and demos), replayed like a CSV.
//! - [`HttpTruth`]: an endpoint with the model contract, templated by epoch.

use std::path::Path;
use std::sync::Arc;

use super::bars::{Bar, Bars, BarsError, Target, format_time};
use super::http::{HttpError, HttpTruth};
use super::rng::SplitMix64;
use super::template::EpochContext;

/// Replays a bar series as ground truth.
#[derive(Debug, Clone)]
pub struct Replay {
    bars: Arc<Bars>,
    target: Target,
}

impl Replay {
    /// A replay of `bars` for `target` (checks that the target can be computed).
    pub fn new(bars: Bars, target: Target) -> Result<Self, BarsError> {
        bars.check_target(target)?;
        Ok(Self {
            bars: Arc::new(bars),
            target,
        })
    }

    /// Loads a CSV file (see [`Bars::from_csv_reader`]) for `target`.
    pub fn load_csv(path: impl AsRef<Path>, target: Target) -> Result<Self, BarsError> {
        Self::new(Bars::load_csv(path)?, target)
    }

    /// The truth of epoch `epoch`: the target of bar `epoch + 1`; `None` past the end.
    pub fn truth(&self, epoch: u64) -> Option<f64> {
        let epoch = usize::try_from(epoch).ok()?;
        self.bars.truth(self.target, epoch)
    }

    /// Bar `epoch` (what models see at that epoch, after bars `0..epoch`).
    pub fn bar(&self, epoch: u64) -> Option<&Bar> {
        self.bars.get(usize::try_from(epoch).ok()?)
    }

    /// The series.
    pub fn bars(&self) -> &Bars {
        &self.bars
    }

    /// The target.
    pub fn target(&self) -> Target {
        self.target
    }

    /// Number of epochs that have a truth (`bars − 1`).
    pub fn epochs_with_truth(&self) -> u64 {
        self.bars.len().saturating_sub(1) as u64
    }
}

/// Parameters of a synthetic random-walk series.
#[derive(Debug, Clone, PartialEq)]
pub struct SyntheticConfig {
    /// Seed.
    pub seed: u64,
    /// Number of bars (≥ 1).
    pub bars: usize,
    /// Per-bar sd of log returns (finite, ≥ 0).
    pub sigma: f64,
    /// First open price (finite, > 0).
    pub start_price: f64,
    /// Time of the first bar in seconds since 1970 (zone-less).
    pub start_time: i64,
    /// Seconds between bars (> 0).
    pub step_secs: i64,
}

impl Default for SyntheticConfig {
    fn default() -> Self {
        Self {
            seed: 1,
            bars: 10_000,
            sigma: 1e-3,
            start_price: 1.0,
            start_time: 1_577_836_800, // 2020-01-01 00:00
            step_secs: 3600,
        }
    }
}

/// A seeded geometric random walk: bar `i` opens at the previous close, closes at
/// `open · exp(σ z₁)`, and has `high = max(open, close) · exp(σ|z₂|/2)`,
/// `low = min(open, close) · exp(−σ|z₃|/2)`, time `start_time + i · step_secs`.
pub fn synthetic_bars(config: &SyntheticConfig) -> Result<Bars, BarsError> {
    let bad = |reason: String| BarsError::Inconsistent { line: 0, reason };
    if config.bars == 0 {
        return Err(BarsError::Empty);
    }
    if !(config.sigma.is_finite() && config.sigma >= 0.0) {
        return Err(bad(format!(
            "sigma must be finite and non-negative, got {}",
            config.sigma
        )));
    }
    if !(config.start_price.is_finite() && config.start_price > 0.0) {
        return Err(bad(format!(
            "start price must be finite and positive, got {}",
            config.start_price
        )));
    }
    if config.step_secs <= 0 {
        return Err(bad(format!(
            "step must be positive, got {}",
            config.step_secs
        )));
    }
    let mut rng = SplitMix64::new(config.seed);
    let mut open = config.start_price;
    let mut bars = Vec::with_capacity(config.bars);
    for i in 0..config.bars {
        let s = config.sigma;
        let close = open * (s * rng.next_normal()).exp();
        let high = open.max(close) * (0.5 * s * rng.next_normal().abs()).exp();
        let low = open.min(close) * (-0.5 * s * rng.next_normal().abs()).exp();
        let time = config
            .start_time
            .saturating_add((i as i64).saturating_mul(config.step_secs));
        bars.push(Bar::new(open, high, low, close).with_time(format_time(time)));
        open = close;
    }
    Bars::from_bars(bars)
}

/// A ground-truth request failed.
#[derive(Debug, thiserror::Error)]
pub enum TruthError {
    /// The HTTP source failed.
    #[error(transparent)]
    Http(#[from] HttpError),
}

impl TruthError {
    /// A short stable label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            TruthError::Http(e) => e.reason(),
        }
    }

    /// Whether asking again may succeed (see [`super::HttpError::is_transient`]).
    pub fn is_transient(&self) -> bool {
        match self {
            TruthError::Http(e) => e.is_transient(),
        }
    }
}

/// A runnable ground-truth source.
#[derive(Debug, Clone)]
pub enum TruthSource {
    /// A replayed series (CSV or synthetic).
    Replay(Replay),
    /// An HTTP endpoint.
    Http(Box<HttpTruth>),
}

impl TruthSource {
    /// The truth of epoch `ctx.epoch`; `Ok(None)` when not available (yet).
    pub async fn truth(&self, ctx: &EpochContext) -> Result<Option<f64>, TruthError> {
        match self {
            TruthSource::Replay(r) => Ok(r.truth(ctx.epoch)),
            TruthSource::Http(h) => Ok(h.truth(ctx).await?),
        }
    }

    /// The replayed series, if this source is one (to feed built-in models).
    pub fn replay(&self) -> Option<&Replay> {
        match self {
            TruthSource::Replay(r) => Some(r),
            TruthSource::Http(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synthetic_is_deterministic_and_valid() {
        let cfg = SyntheticConfig {
            bars: 500,
            ..SyntheticConfig::default()
        };
        let a = synthetic_bars(&cfg).unwrap();
        let b = synthetic_bars(&cfg).unwrap();
        assert_eq!(a, b);
        let c = synthetic_bars(&SyntheticConfig {
            seed: 2,
            ..cfg.clone()
        })
        .unwrap();
        assert_ne!(a, c);
        assert_eq!(
            a.get(0).unwrap().time.as_deref(),
            Some("2020-01-01 00:00:00")
        );
        assert_eq!(
            a.get(25).unwrap().time.as_deref(),
            Some("2020-01-02 01:00:00")
        );
        for w in a.as_slice().windows(2) {
            assert_eq!(w[1].open, w[0].close);
            assert!(w[1].high >= w[1].open.max(w[1].close));
            assert!(w[1].low <= w[1].open.min(w[1].close));
        }
        assert!(
            synthetic_bars(&SyntheticConfig {
                bars: 0,
                ..cfg.clone()
            })
            .is_err()
        );
        assert!(
            synthetic_bars(&SyntheticConfig {
                sigma: f64::NAN,
                ..cfg
            })
            .is_err()
        );
    }

    #[test]
    fn replay_truth_is_next_bar_target() {
        let bars = synthetic_bars(&SyntheticConfig {
            bars: 10,
            ..SyntheticConfig::default()
        })
        .unwrap();
        let r = Replay::new(bars.clone(), Target::Return).unwrap();
        let b = bars.as_slice();
        assert_eq!(r.truth(0), Some((b[1].close / b[0].close).ln()));
        assert_eq!(r.truth(8), Some((b[9].close / b[8].close).ln()));
        assert_eq!(r.truth(9), None);
        assert_eq!(r.truth(u64::MAX), None);
        assert_eq!(r.epochs_with_truth(), 9);
        let r = Replay::new(bars.clone(), Target::Range).unwrap();
        assert_eq!(r.truth(3), Some((b[4].high / b[4].low).ln()));
        let r = Replay::new(bars.clone(), Target::Close).unwrap();
        assert_eq!(r.truth(3), Some(b[4].close));
    }
}
