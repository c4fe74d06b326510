//! Allora's outlier-resistant network inference (allora-chain v0.8+), for one (topic, epoch).
//!
//! When a worker window closes (`actorutils.ProcessAndStoreNetworkInferences`):
//! 1. `UpdateNetworkInferencesOutlierMetrics`: the median `m` of the epoch's inferences and their
//!    MAD (median of `|x − m|`) are computed; the topic keeps `m` and an EMA of the MAD
//!    (`alpha`, Allora's `InferenceOutlierDetectionAlpha`, default 0.2; the first MAD, or one
//!    following a zero EMA, is taken as it is).
//! 2. `FilterOutlierResistantInferences`: an inference is kept when `|x − m| ≤ threshold · MAD`
//!    (`threshold`, Allora's `InferenceOutlierDetectionThreshold`, default 11); with a zero
//!    median or a zero MAD every inference is kept.
//! 3. The outlier-resistant bundle is the regular one unless something was dropped, in which
//!    case it is synthesized again from the kept inferences (same forecasts and regrets).
//!
//! Medians are [`util::median`] (even counts: mean of the two middle values).

use serde::{Deserialize, Serialize};

use super::util;

/// Default EMA α of the MAD (Allora's `InferenceOutlierDetectionAlpha`).
pub const DEFAULT_ALPHA: f64 = 0.2;

/// Default number of MADs beyond which an inference is an outlier (Allora's
/// `InferenceOutlierDetectionThreshold`).
pub const DEFAULT_THRESHOLD: f64 = 11.0;

/// What a topic remembers between epochs: the last median and the EMA of the MAD.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct OutlierMetrics {
    /// Median of the last epoch's inferences.
    pub median: f64,
    /// EMA of their median absolute deviation.
    pub mad: f64,
}

/// The median of `values` and their median absolute deviation, `(median, mad)`; `None` for no
/// values.
pub fn median_absolute_deviation(values: &[f64]) -> Option<(f64, f64)> {
    if values.is_empty() {
        return None;
    }
    let m = util::median(values);
    let deviations: Vec<f64> = values.iter().map(|v| (v - m).abs()).collect();
    Some((m, util::median(&deviations)))
}

impl OutlierMetrics {
    /// Fold in one epoch's inferences (nothing changes without inferences).
    pub fn update(&mut self, values: &[f64], alpha: f64) {
        let Some((median, mad)) = median_absolute_deviation(values) else {
            return;
        };
        self.mad = util::ema(alpha, mad, self.mad, self.mad == 0.0);
        self.median = median;
    }

    /// Whether `value` is kept in the outlier-resistant inference.
    pub fn keeps(&self, value: f64, threshold: f64) -> bool {
        self.median == 0.0 || self.mad == 0.0 || (value - self.median).abs() <= threshold * self.mad
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Test values of allora-chain's `TestUpdateNetworkInferencesOutlierMetrics` and
    // `TestFilterOutlierResistantInferences` (x/emissions/keeper, keeper_test.go).

    #[test]
    fn metrics_follow_allora() {
        let mut m = OutlierMetrics::default();
        m.update(&[10.0, 11.0, 12.0], DEFAULT_ALPHA);
        assert_eq!(
            m,
            OutlierMetrics {
                median: 11.0,
                mad: 1.0
            }
        );
        // [100, 50, 12]: median 50, MAD 38; EMA 0.2·38 + 0.8·1 = 8.4.
        m.update(&[100.0, 50.0, 12.0], DEFAULT_ALPHA);
        assert_eq!(m.median, 50.0);
        assert!((m.mad - 8.4).abs() < 1e-12, "{}", m.mad);
        // No inferences: nothing changes.
        let before = m;
        m.update(&[], DEFAULT_ALPHA);
        assert_eq!(m, before);
        // Even counts: the mean of the two middle values.
        assert_eq!(
            median_absolute_deviation(&[1.0, 2.0, 4.0, 10.0]),
            Some((3.0, 1.5))
        );
    }

    #[test]
    fn filter_follows_allora() {
        let kept = |median: f64, mad: f64, values: &[f64]| -> Vec<f64> {
            let m = OutlierMetrics { median, mad };
            values
                .iter()
                .copied()
                .filter(|v| m.keeps(*v, DEFAULT_THRESHOLD))
                .collect()
        };
        assert_eq!(
            kept(10.0, 1.0, &[9.0, 11.0, 25.0, -5.0, 10.0]),
            [9.0, 11.0, 10.0]
        );
        assert_eq!(
            kept(100.0, 10.0, &[80.0, 120.0, 250.0, -50.0, 100.0]),
            [80.0, 120.0, 100.0]
        );
        assert_eq!(kept(10.0, 0.0, &[10.0, 11.0]), [10.0, 11.0]);
        assert_eq!(kept(0.0, 1.0, &[5.0, -5.0, 15.0]), [5.0, -5.0, 15.0]);
        // The bound is inclusive: exactly 11 MADs away is kept.
        assert_eq!(kept(10.0, 1.0, &[21.0, 21.5]), [21.0]);
    }
}
