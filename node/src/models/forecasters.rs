//! Loss forecasters: predict each inferer's log10 loss for the current epoch before the truth is
//! known.
//!
//! Both forecasters keep an exponential moving average of each inferer's past **log10 losses**.
//! The raw loss is computed by a caller-supplied closure `loss(truth, inference)` (so the node can
//! pass the topic's loss method, e.g. [`squared_error`]); the forecaster then takes
//! `log10(max(loss, floor))`. The floor keeps a perfect hit from producing `-inf`; the default
//! [`DEFAULT_LOSS_FLOOR`] is half a EUR/USD tick (`0.5e-5`) squared, as in the inference-quality
//! study. A non-finite or negative loss is ignored for that inferer and epoch.
//!
//! - [`EmaLossForecaster`]: one EMA per inferer (`e ← e + α (ℓ − e)`, started at the first loss);
//! - [`RegimeLossForecaster`]: the same, kept separately per volatility [`Regime`] (see
//!   [`VolRegime`]), forecasting with the current regime's EMA.

use std::collections::{BTreeMap, VecDeque};

use super::bars::{Bar, log_return};
use super::kernels::sample_sd;

/// Default loss floor: `(0.5e-5)² = 2.5e-11` (half a tick of a 5-decimal FX quote, squared).
pub const DEFAULT_LOSS_FLOOR: f64 = 2.5e-11;

/// Default EMA factor of the loss forecasters.
pub const DEFAULT_FORECASTER_ALPHA: f64 = 0.1;

/// `(truth − inference)²`.
pub fn squared_error(truth: f64, inference: f64) -> f64 {
    let d = truth - inference;
    d * d
}

/// `|truth − inference|`.
pub fn absolute_error(truth: f64, inference: f64) -> f64 {
    (truth - inference).abs()
}

/// `log10(max(loss, floor))`; `None` when `loss` is NaN, infinite or negative.
pub fn log10_loss(loss: f64, floor: f64) -> Option<f64> {
    if !loss.is_finite() || loss < 0.0 {
        return None;
    }
    let v = loss.max(floor).log10();
    v.is_finite().then_some(v)
}

/// A forecaster's parameters are invalid.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ForecasterConfigError {
    /// `alpha` outside (0, 1].
    #[error("alpha must be in (0, 1], got {0}")]
    Alpha(f64),
    /// `floor` not finite and positive.
    #[error("loss floor must be finite and positive, got {0}")]
    Floor(f64),
    /// A window of zero (or a median window shorter than nothing).
    #[error("regime windows must be at least 2 (sd) and 1 (median), got {sd} and {median}")]
    Window {
        /// The sd window.
        sd: usize,
        /// The median window.
        median: usize,
    },
}

fn check(alpha: f64, floor: f64) -> Result<(), ForecasterConfigError> {
    if !(alpha > 0.0 && alpha <= 1.0) {
        return Err(ForecasterConfigError::Alpha(alpha));
    }
    if !(floor.is_finite() && floor > 0.0) {
        return Err(ForecasterConfigError::Floor(floor));
    }
    Ok(())
}

/// Per-inferer EMAs of log10 losses.
#[derive(Debug, Clone, PartialEq)]
struct EmaTable<K> {
    ema: BTreeMap<K, f64>,
}

impl<K: Ord + Clone> EmaTable<K> {
    fn new() -> Self {
        Self {
            ema: BTreeMap::new(),
        }
    }

    fn update(&mut self, key: &K, log_loss: f64, alpha: f64) {
        match self.ema.get_mut(key) {
            Some(e) => *e += alpha * (log_loss - *e),
            None => {
                self.ema.insert(key.clone(), log_loss);
            }
        }
    }
}

fn log_losses<'a, K, F>(
    truth: f64,
    inferences: &'a BTreeMap<K, f64>,
    loss: F,
    floor: f64,
) -> impl Iterator<Item = (&'a K, f64)> + 'a
where
    F: Fn(f64, f64) -> f64 + 'a,
{
    inferences.iter().filter_map(move |(k, &inference)| {
        if !(truth.is_finite() && inference.is_finite()) {
            return None;
        }
        log10_loss(loss(truth, inference), floor).map(|l| (k, l))
    })
}

/// Forecaster (a): EMA of each inferer's past log10 losses.
#[derive(Debug, Clone, PartialEq)]
pub struct EmaLossForecaster<K> {
    alpha: f64,
    floor: f64,
    table: EmaTable<K>,
}

impl<K: Ord + Clone> EmaLossForecaster<K> {
    /// A forecaster with EMA factor `alpha` and the default floor.
    pub fn new(alpha: f64) -> Result<Self, ForecasterConfigError> {
        Self::with_floor(alpha, DEFAULT_LOSS_FLOOR)
    }

    /// A forecaster with EMA factor `alpha` and loss floor `floor`.
    pub fn with_floor(alpha: f64, floor: f64) -> Result<Self, ForecasterConfigError> {
        check(alpha, floor)?;
        Ok(Self {
            alpha,
            floor,
            table: EmaTable::new(),
        })
    }

    /// Records an epoch whose truth is now known: each inferer's loss
    /// `log10(max(loss(truth, inference), floor))` enters its EMA.
    pub fn observe<F: Fn(f64, f64) -> f64>(
        &mut self,
        truth: f64,
        inferences: &BTreeMap<K, f64>,
        loss: F,
    ) {
        for (k, l) in log_losses(truth, inferences, loss, self.floor) {
            self.table.update(k, l, self.alpha);
        }
    }

    /// The forecast log10 loss of each of `current`; inferers with no history are omitted.
    pub fn forecast(&self, current: &[K]) -> BTreeMap<K, f64> {
        current
            .iter()
            .filter_map(|k| self.table.ema.get(k).map(|&v| (k.clone(), v)))
            .collect()
    }

    /// The current EMA of one inferer.
    pub fn get(&self, key: &K) -> Option<f64> {
        self.table.ema.get(key).copied()
    }
}

/// A volatility regime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Regime {
    /// Short-term volatility at or below its trailing median.
    Calm,
    /// Short-term volatility above its trailing median.
    Volatile,
}

impl Regime {
    fn index(self) -> usize {
        match self {
            Regime::Calm => 0,
            Regime::Volatile => 1,
        }
    }
}

/// Streaming volatility-regime classifier: the regime is [`Regime::Volatile`] when the sample sd
/// of the last `sd_window` (20) log returns is above the median of that sd over the trailing
/// `median_window` (200) bars, the current one included (fewer while fewer exist). Undefined
/// (`None`) until `sd_window` returns exist.
#[derive(Debug, Clone)]
pub struct VolRegime {
    sd_window: usize,
    median_window: usize,
    last_close: Option<f64>,
    returns: VecDeque<f64>,
    sds: VecDeque<f64>,
    sorted: Vec<f64>,
    current: Option<Regime>,
}

impl Default for VolRegime {
    fn default() -> Self {
        Self::new()
    }
}

impl VolRegime {
    /// The study's classifier: 20-return sd against its trailing 200-bar median.
    pub fn new() -> Self {
        Self {
            sd_window: 20,
            median_window: 200,
            last_close: None,
            returns: VecDeque::new(),
            sds: VecDeque::new(),
            sorted: Vec::new(),
            current: None,
        }
    }

    /// A classifier with other windows (`sd_window ≥ 2`, `median_window ≥ 1`).
    pub fn with_windows(
        sd_window: usize,
        median_window: usize,
    ) -> Result<Self, ForecasterConfigError> {
        if sd_window < 2 || median_window < 1 {
            return Err(ForecasterConfigError::Window {
                sd: sd_window,
                median: median_window,
            });
        }
        Ok(Self {
            sd_window,
            median_window,
            ..Self::new()
        })
    }

    /// The regime after bars `history` (computed from scratch).
    pub fn of_history(history: &[Bar]) -> Option<Regime> {
        let mut r = Self::new();
        history.iter().for_each(|b| r.observe(b));
        r.current()
    }

    /// Feeds the next bar.
    pub fn observe(&mut self, bar: &Bar) {
        let ret = self.last_close.and_then(|p| log_return(p, bar.close));
        self.last_close = Some(bar.close);
        let Some(ret) = ret else { return };
        if self.returns.len() == self.sd_window {
            self.returns.pop_front();
        }
        self.returns.push_back(ret);
        if self.returns.len() < self.sd_window {
            return;
        }
        let (a, b) = self.returns.as_slices();
        let window: Vec<f64> = a.iter().chain(b).copied().collect();
        let Some(sd) = sample_sd(&window) else { return };
        if self.sds.len() == self.median_window
            && let Some(old) = self.sds.pop_front()
            && let Ok(i) = self.sorted.binary_search_by(|v| v.total_cmp(&old))
        {
            self.sorted.remove(i);
        }
        self.sds.push_back(sd);
        let pos = self
            .sorted
            .binary_search_by(|v| v.total_cmp(&sd))
            .unwrap_or_else(|i| i);
        self.sorted.insert(pos, sd);
        let n = self.sorted.len();
        let median = if n % 2 == 1 {
            self.sorted[n / 2]
        } else {
            0.5 * (self.sorted[n / 2 - 1] + self.sorted[n / 2])
        };
        self.current = Some(if sd > median {
            Regime::Volatile
        } else {
            Regime::Calm
        });
    }

    /// The regime after the bars observed so far.
    pub fn current(&self) -> Option<Regime> {
        self.current
    }
}

/// Forecaster (b): log10-loss EMAs kept separately per volatility regime.
///
/// Feed bars with [`RegimeLossForecaster::observe_bar`]; remember [`RegimeLossForecaster::regime`]
/// when forecasting an epoch and pass it back to [`RegimeLossForecaster::observe`] when that
/// epoch's truth arrives. A forecast uses the EMA of the current regime; when the regime is not
/// yet defined or the inferer has no history in it, it uses the inferer's EMA over all regimes
/// (pooled), and omits inferers with no history at all.
#[derive(Debug, Clone)]
pub struct RegimeLossForecaster<K> {
    alpha: f64,
    floor: f64,
    regime: VolRegime,
    per_regime: [EmaTable<K>; 2],
    pooled: EmaTable<K>,
}

impl<K: Ord + Clone> RegimeLossForecaster<K> {
    /// A forecaster with EMA factor `alpha`, the default floor and the default [`VolRegime`].
    pub fn new(alpha: f64) -> Result<Self, ForecasterConfigError> {
        Self::with_parts(alpha, DEFAULT_LOSS_FLOOR, VolRegime::new())
    }

    /// A forecaster with every part chosen.
    pub fn with_parts(
        alpha: f64,
        floor: f64,
        regime: VolRegime,
    ) -> Result<Self, ForecasterConfigError> {
        check(alpha, floor)?;
        Ok(Self {
            alpha,
            floor,
            regime,
            per_regime: [EmaTable::new(), EmaTable::new()],
            pooled: EmaTable::new(),
        })
    }

    /// Feeds the next bar to the regime classifier.
    pub fn observe_bar(&mut self, bar: &Bar) {
        self.regime.observe(bar);
    }

    /// The current regime (from the bars observed so far).
    pub fn regime(&self) -> Option<Regime> {
        self.regime.current()
    }

    /// Records an epoch whose truth is now known; `regime` is the regime that epoch was forecast
    /// in (`None`: only the pooled EMA is updated).
    pub fn observe<F: Fn(f64, f64) -> f64>(
        &mut self,
        regime: Option<Regime>,
        truth: f64,
        inferences: &BTreeMap<K, f64>,
        loss: F,
    ) {
        for (k, l) in log_losses(truth, inferences, loss, self.floor) {
            self.pooled.update(k, l, self.alpha);
            if let Some(r) = regime {
                self.per_regime[r.index()].update(k, l, self.alpha);
            }
        }
    }

    /// Forecast in the current regime.
    pub fn forecast(&self, current: &[K]) -> BTreeMap<K, f64> {
        self.forecast_in(self.regime(), current)
    }

    /// Forecast in a given regime (see the type's docs for the fallback).
    pub fn forecast_in(&self, regime: Option<Regime>, current: &[K]) -> BTreeMap<K, f64> {
        current
            .iter()
            .filter_map(|k| {
                let own = regime.and_then(|r| self.per_regime[r.index()].ema.get(k));
                own.or_else(|| self.pooled.ema.get(k))
                    .map(|&v| (k.clone(), v))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&'static str, f64)]) -> BTreeMap<&'static str, f64> {
        pairs.iter().copied().collect()
    }

    #[test]
    fn ema_forecaster_tracks_log_losses() {
        let mut f = EmaLossForecaster::new(0.5).unwrap();
        assert!(f.forecast(&["a"]).is_empty());
        f.observe(1.0, &map(&[("a", 1.1)]), squared_error);
        let first = (0.1f64 * 0.1).log10();
        assert!((f.get(&"a").unwrap() - first).abs() < 1e-12);
        f.observe(1.0, &map(&[("a", 1.01), ("b", 1.0)]), squared_error);
        let second = first + 0.5 * ((0.01f64 * 0.01).log10() - first);
        let fc = f.forecast(&["a", "b", "c"]);
        assert!((fc["a"] - second).abs() < 1e-9);
        // A perfect hit is floored, not -inf.
        assert!((fc["b"] - DEFAULT_LOSS_FLOOR.log10()).abs() < 1e-12);
        assert!(!fc.contains_key("c"));
        // Garbage inferences or losses are ignored.
        f.observe(1.0, &map(&[("a", f64::NAN)]), squared_error);
        f.observe(1.0, &map(&[("a", 2.0)]), |_, _| -1.0);
        assert!((f.forecast(&["a"])["a"] - second).abs() < 1e-9);
        assert!(EmaLossForecaster::<u32>::new(0.0).is_err());
        assert!(EmaLossForecaster::<u32>::with_floor(0.1, 0.0).is_err());
    }

    #[test]
    fn regime_streaming_matches_history() {
        let mut closes = vec![1.0f64];
        for i in 0..600u64 {
            let vol = if (i / 100) % 2 == 0 { 1e-4 } else { 1e-3 };
            let z = super::super::rng::normal_at(9, i);
            closes.push(closes[closes.len() - 1] * (vol * z).exp());
        }
        let bars: Vec<Bar> = closes.iter().map(|&c| Bar::new(c, c, c, c)).collect();
        let mut r = VolRegime::new();
        let mut seen = Vec::new();
        for (t, b) in bars.iter().enumerate() {
            r.observe(b);
            seen.push(r.current());
            if t % 37 == 0 {
                assert_eq!(r.current(), VolRegime::of_history(&bars[..=t]));
            }
        }
        assert!(seen[..20].iter().all(Option::is_none));
        assert!(seen[20].is_some());
        // In the high-vol stretch (bars 120..200) the regime is volatile.
        assert!(seen[150..200].iter().all(|r| *r == Some(Regime::Volatile)));
        assert!(seen[250..300].iter().all(|r| *r == Some(Regime::Calm)));
    }

    #[test]
    fn regime_forecaster_keeps_regimes_apart() {
        let mut f = RegimeLossForecaster::new(1.0).unwrap();
        f.observe(
            Some(Regime::Calm),
            0.0,
            &map(&[("a", 0.001)]),
            squared_error,
        );
        f.observe(
            Some(Regime::Volatile),
            0.0,
            &map(&[("a", 0.1)]),
            squared_error,
        );
        assert!((f.forecast_in(Some(Regime::Calm), &["a"])["a"] - (-6.0)).abs() < 1e-12);
        assert!((f.forecast_in(Some(Regime::Volatile), &["a"])["a"] - (-2.0)).abs() < 1e-12);
        // Pooled fallback (alpha 1: the latest loss).
        assert!((f.forecast_in(None, &["a"])["a"] - (-2.0)).abs() < 1e-12);
        f.observe(None, 0.0, &map(&[("b", 0.01)]), squared_error);
        assert!((f.forecast_in(Some(Regime::Calm), &["b"])["b"] - (-4.0)).abs() < 1e-12);
        assert!(f.forecast_in(Some(Regime::Calm), &["z"]).is_empty());
    }
}
