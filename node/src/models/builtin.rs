//! Built-in inferer models: small deterministic online forecasters.
//!
//! A model is fed bars one at a time with [`Model::observe`] and asked with [`Model::predict`]
//! for the target value of the **next** bar. At epoch `t` it has observed bars `0..=t` and
//! nothing else, so it cannot look ahead; each step is O(window) at most (O(1) for most models),
//! so a devnet can replay thousands of bars for many models cheaply.
//!
//! ## Series
//!
//! Each model works on one of three series built from the bars it has seen, and its output is
//! mapped to the target:
//!
//! - `x` — the target's own series: `ln(high/low)` of each bar (range), the close (close), or
//!   the log return `ln(close[i]/close[i-1])` (return; undefined for the first bar);
//! - `p` — the close price;
//! - `r` — the log return `ln(close[i]/close[i-1])`.
//!
//! | model | range | close | return |
//! |---|---|---|---|
//! | `zero` | 0 | 0 | 0 |
//! | `last`, `sma`, `ema`, `long_mean`, `seasonal` | on `x` | on `x` (= `p`) | on `x` (= `r`) |
//! | `ar` | on `x` | on `r`, mapped `c_t·exp(r̂)` | on `x` |
//! | `drift`, `momentum`, `mean_reversion` | on `x` | on `p` | on `p`, mapped `ln(p̂/c_t)` |
//! | `volatility` | `scale · sd(r)` | — (rejected) | — (rejected) |
//! | `noisy` | `x_t · exp(σ z_t)` | `c_t · exp(σ v_t z_t)` | `σ v_t z_t` |
//!
//! where `c_t` is the last close, `z_t` a seeded standard normal that depends only on
//! `(seed, t)`, and `v_t` the sample sd of the last 20 log returns. See [`BuiltinModel`] for each
//! formula and its warm-up. A model returns `None` while it cannot predict yet.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::bars::{Bar, Target, log_return};
use super::kernels::{Kernel, Noisy, Rls, Seasonal, Window};

/// A streaming forecaster of the next bar's target value.
pub trait Model {
    /// A short name for logs and metrics.
    fn name(&self) -> &str;
    /// Feeds the next bar (bars must be fed in order, each exactly once).
    fn observe(&mut self, bar: &Bar);
    /// The prediction of the next bar's target value from the bars observed so far; `None`
    /// while warming up or if the result would not be finite.
    fn predict(&self) -> Option<f64>;
}

/// Runs `model` over `bars`: element `t` is the prediction made after observing bars `0..=t`
/// (the prediction for epoch `t`).
pub fn predict_series<M: Model + ?Sized>(model: &mut M, bars: &[Bar]) -> Vec<Option<f64>> {
    bars.iter()
        .map(|bar| {
            model.observe(bar);
            model.predict()
        })
        .collect()
}

fn default_n() -> usize {
    20
}
fn default_alpha() -> f64 {
    0.1
}
fn default_p() -> usize {
    3
}
fn default_k() -> f64 {
    0.5
}
fn default_momentum_n() -> usize {
    10
}
fn default_vol_scale() -> f64 {
    VOL_RANGE_SCALE
}
fn default_days() -> usize {
    5
}
fn default_fallback() -> usize {
    24
}
fn default_sigma() -> f64 {
    0.5
}
fn default_seed() -> u64 {
    DEFAULT_NOISE_SEED
}

/// `sqrt(8/π) ≈ 1.596`: the expected `ln(high/low)` of a driftless Brownian bar is this times
/// the per-bar sd of log returns (Parkinson 1980).
pub const VOL_RANGE_SCALE: f64 = 1.596;

/// The seed the default sets give their noisy model.
pub const DEFAULT_NOISE_SEED: u64 = 0x5EED_C0DE;

/// Window (in returns) over which the noisy model measures the volatility `v_t` for price and
/// return targets.
pub const NOISY_VOL_WINDOW: usize = 20;

/// A built-in model and its parameters. Serialized with the tag `model`, e.g.
/// `{ model = "sma", n = 20 }`; every parameter has a default. Unknown fields are rejected.
///
/// Warm-up: a model needs at least one value of its series unless stated otherwise; for the
/// return target the series starts at the second bar.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "model", rename_all = "snake_case", deny_unknown_fields)]
pub enum BuiltinModel {
    /// Always 0 (the "no change" forecast for returns). Ready from epoch 0.
    Zero,
    /// The last value `x_t` (random walk for prices).
    Last,
    /// Mean of the last `n` values of `x` (fewer while fewer exist).
    Sma {
        /// Window length (≥ 1). Default 20.
        #[serde(default = "default_n")]
        n: usize,
    },
    /// Exponential moving average of `x`: `e ← e + α (x − e)`, started at the first value.
    Ema {
        /// Smoothing factor in (0, 1]. Default 0.1.
        #[serde(default = "default_alpha")]
        alpha: f64,
    },
    /// Mean of all values of `x` seen so far.
    LongMean,
    /// AR(p) with intercept fitted by recursive least squares (no forgetting, prior
    /// `P₀ = 10⁶·I`, `θ₀ = 0`): `ŝ = θ₀ + Σ θᵢ s_{t+1−i}` on `x` (close: on `r`, mapped to
    /// `c_t·exp(ŝ)`). `None` until it has made `3(p+1)` updates (i.e. seen `4p + 3` values).
    Ar {
        /// Order (1..=16). Default 3.
        #[serde(default = "default_p")]
        p: usize,
    },
    /// Last value plus the mean change over the last `n` steps: `v_t + (v_t − v_{t−m})/m`,
    /// `m = min(n, values − 1)`; `v_t` alone while only one value exists.
    Drift {
        /// Window (≥ 1). Default 20.
        #[serde(default = "default_n")]
        n: usize,
    },
    /// The direction of the last `n` steps continues with the typical step size:
    /// `v_t + sign(v_t − v_{t−m}) · mean|Δv|` over those `m = min(n, values − 1)` steps.
    Momentum {
        /// Window (≥ 1). Default 10.
        #[serde(default = "default_momentum_n")]
        n: usize,
    },
    /// Pulls the last value towards its `n`-mean: `v_t + k (mean_n(v) − v_t)`.
    MeanReversion {
        /// Window (≥ 1). Default 20.
        #[serde(default = "default_n")]
        n: usize,
        /// Pull strength (finite, usually in [0, 1]). Default 0.5.
        #[serde(default = "default_k")]
        k: f64,
    },
    /// Range target only: `scale · sd` of the last `n` log returns (sample sd, `n − 1`
    /// denominator; fewer returns while fewer exist; `None` before 2 returns).
    Volatility {
        /// Window in returns (≥ 2). Default 20.
        #[serde(default = "default_n")]
        n: usize,
        /// Multiplier (finite, > 0). Default 1.596 ([`VOL_RANGE_SCALE`]).
        #[serde(default = "default_vol_scale")]
        scale: f64,
    },
    /// Hour-of-day seasonal: the mean of `x` over the bars in the same hour of day as the next
    /// bar on the `days` most recent days that had such a bar (fewer while fewer exist). The
    /// next bar's time is the last bar's time plus the smallest positive spacing seen so far.
    /// Falls back to the mean of the last `fallback` values when times are missing or
    /// unparseable, before two timed bars, or when that hour has not been seen yet.
    Seasonal {
        /// Days to average over (≥ 1). Default 5.
        #[serde(default = "default_days")]
        days: usize,
        /// Fallback window (≥ 1). Default 24.
        #[serde(default = "default_fallback")]
        fallback: usize,
    },
    /// A deliberately noisy copy of `last`, with seeded noise `z_t` that depends only on
    /// `(seed, t)`: range `x_t·exp(σ z_t)`; close `c_t·exp(σ v_t z_t)`; return `σ v_t z_t`,
    /// where `v_t` is the sample sd of the last 20 log returns (`None` before 2 returns).
    Noisy {
        /// Noise scale (finite, ≥ 0). Default 0.5.
        #[serde(default = "default_sigma")]
        sigma: f64,
        /// Seed. Default [`DEFAULT_NOISE_SEED`].
        #[serde(default = "default_seed")]
        seed: u64,
    },
}

/// A model's parameters are invalid or it does not apply to the target.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ModelConfigError {
    /// A parameter is out of range.
    #[error("model `{model}`: {reason}")]
    InvalidParameter {
        /// The model's name.
        model: String,
        /// What is wrong.
        reason: String,
    },
    /// The model is not defined for this target.
    #[error("model `{model}` does not apply to target `{target}`")]
    UnsupportedTarget {
        /// The model's name.
        model: String,
        /// The target.
        target: Target,
    },
}

impl BuiltinModel {
    /// Checks the parameters and that the model applies to `target`.
    pub fn validate(&self, target: Target) -> Result<(), ModelConfigError> {
        let bad = |reason: String| {
            Err(ModelConfigError::InvalidParameter {
                model: self.to_string(),
                reason,
            })
        };
        match *self {
            BuiltinModel::Sma { n }
            | BuiltinModel::Drift { n }
            | BuiltinModel::Momentum { n }
            | BuiltinModel::MeanReversion { n, .. }
                if n == 0 =>
            {
                return bad("n must be at least 1".into());
            }
            BuiltinModel::MeanReversion { k, .. } if !k.is_finite() => {
                return bad(format!("k must be finite, got {k}"));
            }
            BuiltinModel::Ema { alpha } if !(alpha > 0.0 && alpha <= 1.0) => {
                return bad(format!("alpha must be in (0, 1], got {alpha}"));
            }
            BuiltinModel::Ar { p } if !(1..=16).contains(&p) => {
                return bad(format!("p must be in 1..=16, got {p}"));
            }
            BuiltinModel::Volatility { n, scale } => {
                if n < 2 {
                    return bad(format!("n must be at least 2, got {n}"));
                }
                if !(scale.is_finite() && scale > 0.0) {
                    return bad(format!("scale must be finite and positive, got {scale}"));
                }
                if target != Target::Range {
                    return Err(ModelConfigError::UnsupportedTarget {
                        model: self.to_string(),
                        target,
                    });
                }
            }
            BuiltinModel::Seasonal { days, fallback } if days == 0 || fallback == 0 => {
                return bad("days and fallback must be at least 1".into());
            }
            BuiltinModel::Noisy { sigma, .. } if !(sigma.is_finite() && sigma >= 0.0) => {
                return bad(format!(
                    "sigma must be finite and non-negative, got {sigma}"
                ));
            }
            _ => {}
        }
        Ok(())
    }
}

/// Canonical short names: `zero`, `last`, `sma20`, `ema0.1`, `long_mean`, `ar3`, `drift20`,
/// `momentum10`, `mean_reversion20`, `volatility20`, `seasonal5`, `noisy0.5`.
impl fmt::Display for BuiltinModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuiltinModel::Zero => write!(f, "zero"),
            BuiltinModel::Last => write!(f, "last"),
            BuiltinModel::Sma { n } => write!(f, "sma{n}"),
            BuiltinModel::Ema { alpha } => write!(f, "ema{alpha}"),
            BuiltinModel::LongMean => write!(f, "long_mean"),
            BuiltinModel::Ar { p } => write!(f, "ar{p}"),
            BuiltinModel::Drift { n } => write!(f, "drift{n}"),
            BuiltinModel::Momentum { n } => write!(f, "momentum{n}"),
            BuiltinModel::MeanReversion { n, .. } => write!(f, "mean_reversion{n}"),
            BuiltinModel::Volatility { n, .. } => write!(f, "volatility{n}"),
            BuiltinModel::Seasonal { days, .. } => write!(f, "seasonal{days}"),
            BuiltinModel::Noisy { sigma, .. } => write!(f, "noisy{sigma}"),
        }
    }
}

/// The worker set for a target used in the inference-quality study (range: 9 models) and its
/// analogues for close (9) and return (8), as `(name, model)` pairs with unique names.
///
/// - range: `last`, `ar3`, `sma5`, `sma20`, `ema0.1`, `long_mean`, `volatility20`
///   (1.596 × sd of 20 returns), `seasonal5` (fallback 24), `noisy` (σ = 0.5);
/// - close: `last` (random walk), `drift20`, `sma5`, `sma20`, `ema0.5`, `ar3` (on returns),
///   `momentum10`, `mean_reversion20` (k = 0.5), `noisy` (σ = 1 return-sd);
/// - return: `zero`, `last`, `long_mean` (mean return), `sma20`, `ar3`, `momentum10`,
///   `mean_reversion20` (k = 0.5), `noisy` (σ = 1 return-sd).
pub fn default_set(target: Target) -> Vec<(String, BuiltinModel)> {
    use BuiltinModel as M;
    let noisy = |sigma| M::Noisy {
        sigma,
        seed: DEFAULT_NOISE_SEED,
    };
    let models = match target {
        Target::Range => vec![
            M::Last,
            M::Ar { p: 3 },
            M::Sma { n: 5 },
            M::Sma { n: 20 },
            M::Ema { alpha: 0.1 },
            M::LongMean,
            M::Volatility {
                n: 20,
                scale: VOL_RANGE_SCALE,
            },
            M::Seasonal {
                days: 5,
                fallback: 24,
            },
            noisy(0.5),
        ],
        Target::Close => vec![
            M::Last,
            M::Drift { n: 20 },
            M::Sma { n: 5 },
            M::Sma { n: 20 },
            M::Ema { alpha: 0.5 },
            M::Ar { p: 3 },
            M::Momentum { n: 10 },
            M::MeanReversion { n: 20, k: 0.5 },
            noisy(1.0),
        ],
        Target::Return => vec![
            M::Zero,
            M::Last,
            M::LongMean,
            M::Sma { n: 20 },
            M::Ar { p: 3 },
            M::Momentum { n: 10 },
            M::MeanReversion { n: 20, k: 0.5 },
            noisy(1.0),
        ],
    };
    models
        .into_iter()
        .map(|m| {
            let name = match m {
                M::Noisy { .. } => "noisy".to_string(),
                _ => m.to_string(),
            };
            (name, m)
        })
        .collect()
}

/// Which series a kernel is fed with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stream {
    /// The target's own series.
    X,
    /// Close prices.
    P,
    /// Log returns.
    R,
}

/// How a kernel's output is mapped to the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mapping {
    Identity,
    /// `r̂ → c_t · exp(r̂)`.
    ReturnToPrice,
    /// `p̂ → ln(p̂ / c_t)`.
    PriceToReturn,
}

/// A runnable built-in model for one target.
#[derive(Debug, Clone)]
pub struct BuiltinInferer {
    name: String,
    model: BuiltinModel,
    target: Target,
    stream: Stream,
    mapping: Mapping,
    kernel: Kernel,
    last_close: Option<f64>,
    observed: u64,
}

impl BuiltinInferer {
    /// A fresh model for `target`, named after the model (see [`BuiltinModel`]'s `Display`).
    pub fn new(model: BuiltinModel, target: Target) -> Result<Self, ModelConfigError> {
        model.validate(target)?;
        use BuiltinModel as M;
        let (stream, mapping) = match (&model, target) {
            (M::Ar { .. }, Target::Close) => (Stream::R, Mapping::ReturnToPrice),
            (M::Drift { .. } | M::Momentum { .. } | M::MeanReversion { .. }, Target::Close) => {
                (Stream::P, Mapping::Identity)
            }
            (M::Drift { .. } | M::Momentum { .. } | M::MeanReversion { .. }, Target::Return) => {
                (Stream::P, Mapping::PriceToReturn)
            }
            (M::Volatility { .. }, _) => (Stream::R, Mapping::Identity),
            _ => (Stream::X, Mapping::Identity),
        };
        let kernel = match model {
            M::Zero => Kernel::Zero,
            M::Last => Kernel::Last(None),
            M::Sma { n } => Kernel::Sma(Window::new(n)),
            M::Ema { alpha } => Kernel::Ema { alpha, value: None },
            M::LongMean => Kernel::LongMean { sum: 0.0, count: 0 },
            M::Ar { p } => Kernel::Ar(Box::new(Rls::new(p))),
            M::Drift { n } => Kernel::Drift(Window::new(n + 1)),
            M::Momentum { n } => Kernel::Momentum(Window::new(n + 1)),
            M::MeanReversion { n, k } => Kernel::MeanReversion {
                window: Window::new(n),
                k,
            },
            M::Volatility { n, scale } => Kernel::Volatility {
                window: Window::new(n),
                scale,
            },
            M::Seasonal { days, fallback } => {
                Kernel::Seasonal(Box::new(Seasonal::new(days, fallback)))
            }
            M::Noisy { sigma, seed } => Kernel::Noisy(Box::new(Noisy::new(sigma, seed, target))),
        };
        Ok(Self {
            name: model.to_string(),
            model,
            target,
            stream,
            mapping,
            kernel,
            last_close: None,
            observed: 0,
        })
    }

    /// The same model under another name.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// The model's configuration.
    pub fn model(&self) -> &BuiltinModel {
        &self.model
    }

    /// The target it predicts.
    pub fn target(&self) -> Target {
        self.target
    }

    /// Number of bars observed so far (the next prediction is for epoch `observed − 1`).
    pub fn observed(&self) -> u64 {
        self.observed
    }
}

impl Model for BuiltinInferer {
    fn name(&self) -> &str {
        &self.name
    }

    fn observe(&mut self, bar: &Bar) {
        let ret = self.last_close.and_then(|p| log_return(p, bar.close));
        let x = match self.target {
            Target::Range => bar.range(),
            Target::Close => bar.close.is_finite().then_some(bar.close),
            Target::Return => ret,
        };
        self.observed += 1;
        self.last_close = bar.close.is_finite().then_some(bar.close);
        if let Kernel::Noisy(noisy) = &mut self.kernel {
            noisy.push(x, ret);
            return;
        }
        let value = match self.stream {
            Stream::X => x,
            Stream::P => self.last_close,
            Stream::R => ret,
        };
        if let Some(v) = value {
            self.kernel.push(v, bar);
        }
    }

    fn predict(&self) -> Option<f64> {
        let epoch = self.observed.checked_sub(1)?;
        let raw = match &self.kernel {
            Kernel::Noisy(noisy) => noisy.predict(epoch, self.last_close),
            kernel => kernel.predict(),
        }?;
        let out = match self.mapping {
            Mapping::Identity => raw,
            Mapping::ReturnToPrice => self.last_close? * raw.exp(),
            Mapping::PriceToReturn => (raw / self.last_close?).ln(),
        };
        out.is_finite().then_some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bars_from_closes(closes: &[f64]) -> Vec<Bar> {
        closes
            .iter()
            .map(|&c| Bar::new(c, c * 1.001, c * 0.999, c))
            .collect()
    }

    fn run(model: BuiltinModel, target: Target, bars: &[Bar]) -> Vec<Option<f64>> {
        let mut m = BuiltinInferer::new(model, target).unwrap();
        predict_series(&mut m, bars)
    }

    #[test]
    fn simple_models_match_hand_computation() {
        let bars = bars_from_closes(&[1.0, 2.0, 4.0, 3.0]);
        assert_eq!(
            run(BuiltinModel::Last, Target::Close, &bars),
            vec![Some(1.0), Some(2.0), Some(4.0), Some(3.0)]
        );
        assert_eq!(
            run(BuiltinModel::Sma { n: 2 }, Target::Close, &bars),
            vec![Some(1.0), Some(1.5), Some(3.0), Some(3.5)]
        );
        assert_eq!(
            run(BuiltinModel::Ema { alpha: 0.5 }, Target::Close, &bars),
            vec![Some(1.0), Some(1.5), Some(2.75), Some(2.875)]
        );
        assert_eq!(
            run(BuiltinModel::LongMean, Target::Close, &bars),
            vec![Some(1.0), Some(1.5), Some(7.0 / 3.0), Some(2.5)]
        );
        // drift2: v_t + (v_t − v_{t−2})/2
        assert_eq!(
            run(BuiltinModel::Drift { n: 2 }, Target::Close, &bars),
            vec![Some(1.0), Some(3.0), Some(5.5), Some(3.5)]
        );
        // momentum2 at t=3: window [2,4,3], up overall, mean |Δ| = 1.5 → 4.5
        assert_eq!(
            run(BuiltinModel::Momentum { n: 2 }, Target::Close, &bars)[3],
            Some(4.5)
        );
        // mean reversion n=2,k=0.5 at t=3: 3 + 0.5(3.5 − 3) = 3.25
        assert_eq!(
            run(
                BuiltinModel::MeanReversion { n: 2, k: 0.5 },
                Target::Close,
                &bars
            )[3],
            Some(3.25)
        );
        let ret = run(BuiltinModel::Last, Target::Return, &bars);
        assert_eq!(ret[0], None);
        assert!((ret[1].unwrap() - 2f64.ln()).abs() < 1e-15);
        assert_eq!(run(BuiltinModel::Zero, Target::Return, &bars)[0], Some(0.0));
        let rng = run(BuiltinModel::Last, Target::Range, &bars);
        assert!((rng[0].unwrap() - (1.001f64 / 0.999).ln()).abs() < 1e-15);
        // Return-target drift maps the price forecast to a log return.
        let d = run(BuiltinModel::Drift { n: 2 }, Target::Return, &bars);
        assert!((d[3].unwrap() - (3.5f64 / 3.0).ln()).abs() < 1e-15);
    }

    #[test]
    fn ar_warm_up_is_documented_length() {
        let bars = bars_from_closes(
            &(1..=30)
                .map(|i| 1.0 + 0.01 * f64::from(i % 7))
                .collect::<Vec<_>>(),
        );
        let preds = run(BuiltinModel::Ar { p: 3 }, Target::Range, &bars);
        // 4p + 3 = 15 values → first prediction after bar index 14.
        assert!(preds[..14].iter().all(Option::is_none));
        assert!(preds[14].is_some());
    }

    #[test]
    fn seasonal_uses_same_hour_of_previous_days() {
        // Hourly bars over 7 days; range depends only on the hour.
        let mut bars = Vec::new();
        for h in 0..(24 * 7) {
            let hour = h % 24;
            let spread = 1.0 + 0.001 * f64::from(hour + 1);
            let t = super::super::bars::format_time(
                1_500_000_000 / 86_400 * 86_400 + i64::from(h) * 3600,
            );
            bars.push(Bar::new(1.0, spread, 1.0, 1.0).with_time(t));
        }
        let preds = run(
            BuiltinModel::Seasonal {
                days: 5,
                fallback: 24,
            },
            Target::Range,
            &bars,
        );
        // After day 1, the prediction for the next hour is that hour's range.
        for (t, p) in preds.iter().enumerate().skip(24).take(24 * 6 - 1) {
            let next_hour = (t + 1) % 24;
            let want = (1.0 + 0.001 * (next_hour as f64 + 1.0)).ln();
            assert!((p.unwrap() - want).abs() < 1e-12, "t={t}");
        }
        // Without times it falls back to the mean of the last 24 values.
        let untimed: Vec<Bar> = bars
            .iter()
            .cloned()
            .map(|mut b| {
                b.time = None;
                b
            })
            .collect();
        let preds = run(
            BuiltinModel::Seasonal {
                days: 5,
                fallback: 24,
            },
            Target::Range,
            &untimed,
        );
        let mean24 = (1..=24)
            .map(|h| (1.0 + 0.001 * f64::from(h)).ln())
            .sum::<f64>()
            / 24.0;
        assert!((preds[100].unwrap() - mean24).abs() < 1e-12);
    }

    #[test]
    fn invalid_parameters_are_rejected() {
        assert!(BuiltinInferer::new(BuiltinModel::Sma { n: 0 }, Target::Close).is_err());
        assert!(BuiltinInferer::new(BuiltinModel::Ema { alpha: 0.0 }, Target::Close).is_err());
        assert!(BuiltinInferer::new(BuiltinModel::Ema { alpha: f64::NAN }, Target::Close).is_err());
        assert!(BuiltinInferer::new(BuiltinModel::Ar { p: 0 }, Target::Close).is_err());
        assert!(
            BuiltinInferer::new(
                BuiltinModel::Noisy {
                    sigma: -1.0,
                    seed: 1
                },
                Target::Close
            )
            .is_err()
        );
        assert_eq!(
            BuiltinInferer::new(
                BuiltinModel::Volatility {
                    n: 20,
                    scale: VOL_RANGE_SCALE
                },
                Target::Close
            )
            .unwrap_err(),
            ModelConfigError::UnsupportedTarget {
                model: "volatility20".into(),
                target: Target::Close
            }
        );
    }

    #[test]
    fn default_sets_have_unique_names_and_are_valid() {
        for target in Target::ALL {
            let set = default_set(target);
            assert!((8..=9).contains(&set.len()), "{target}: {}", set.len());
            let names: std::collections::BTreeSet<_> = set.iter().map(|(n, _)| n.clone()).collect();
            assert_eq!(names.len(), set.len());
            for (_, m) in set {
                BuiltinInferer::new(m, target).unwrap();
            }
        }
    }
}
