//! Topics: the definition of a prediction problem and its wall-clock schedule.
//!
//! Epochs are wall-clock: epoch `e` of a topic starts at `start_ms + e · epoch_length_ms`.
//! Workers submit in `[start(e), start(e) + submission_window_ms)`; reputers submit losses in
//! `[start(e) + lag, start(e) + lag + epoch_length)` (Allora closes the reputer nonce at
//! `nonce + lag + EpochLength`). Validation widens both by the network's clock-skew allowance.
//!
//! A topic with `reveal_window_ms > 0` runs **commit-reveal**: inside the submission window a
//! worker publishes only a commitment ([`WorkerCommit`](crate::messages::WorkerCommit), blake3 of
//! its bundle and a salt); in the reveal phase `[close, close + reveal_window_ms)` it publishes
//! the bundle with the salt ([`WorkerReveal`](crate::messages::WorkerReveal)). The worker window
//! (what a checkpoint finalizes) then spans both phases, and only reveals matching a finalized
//! commitment count.

use bincode::{Decode, Encode};
use serde::{Deserialize, Serialize};

pub use crate::math::loss::LossMethod;
pub use crate::math::mechanism::MechanismVersion;
use crate::params::ModuleParams;

/// Longest topic name or metadata string (Allora's MaxStringLength).
pub const MAX_STRING_LEN: usize = 255;

/// Longest topic token.
pub const MAX_TOKEN_LEN: usize = 32;

/// Checks a topic token: empty, or 1..=32 ASCII letters, digits, `_` and `-`, starting with a
/// letter or digit. A token ends up in model server URLs and command arguments, so it can
/// carry no path separator, dot, space or leading `-` (which a program would read as an
/// option).
pub fn check_token(token: &str) -> Result<(), TopicError> {
    if token.is_empty() {
        return Ok(());
    }
    let ok = token.len() <= MAX_TOKEN_LEN
        && token.starts_with(|c: char| c.is_ascii_alphanumeric())
        && token
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(invalid(
            "token",
            format!(
                "{token:?} must be 1..={MAX_TOKEN_LEN} ASCII letters, digits, `_` or `-`, \
                 starting with a letter or digit"
            ),
        ))
    }
}

/// A topic definition, with Allora's fields (times in milliseconds instead of blocks).
#[derive(Clone, Debug, PartialEq, Encode, Decode, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicSpec {
    /// Short name.
    pub name: String,
    /// Free-form description (Allora's `metadata`).
    #[serde(default)]
    pub metadata: String,
    /// The asset symbol model servers are asked about, e.g. `ETH` (fills `{Token}` in model
    /// URL and argument templates; empty when the topic has none). See [`check_token`].
    #[serde(default)]
    pub token: String,
    /// Loss function reputers use.
    pub loss: LossMethod,
    /// Unix time (ms) at which epoch 0 starts.
    pub start_ms: u64,
    /// Epoch length (ms).
    pub epoch_length_ms: u64,
    /// Worker submission window after each epoch start (ms), `0 < w ≤ epoch_length`.
    pub submission_window_ms: u64,
    /// Time until the ground truth of an epoch is known (ms), `≥ epoch_length`.
    pub ground_truth_lag_ms: u64,
    /// p of the weight function φ′_p, in [2.5, 4.5].
    pub p_norm: f64,
    /// Regret EMA α, in (0, 1].
    pub alpha_regret: f64,
    /// ε of regret normalisation and reward mapping, > 0.
    pub epsilon: f64,
    /// EMA α of actor scores, in [0, 1].
    pub merit_sortition_alpha: f64,
    /// Quantile of instant inferer scores that passive EMAs move toward.
    pub active_inferer_quantile: f64,
    /// Same for forecasters.
    pub active_forecaster_quantile: f64,
    /// Same for reputers.
    pub active_reputer_quantile: f64,
    /// Stored for compatibility; `false` means reputers report log10 losses.
    #[serde(default)]
    pub allow_negative: bool,
    /// EMA α of the median absolute deviation of each epoch's inferences, for the
    /// outlier-resistant inference (Allora's `InferenceOutlierDetectionAlpha`), in (0, 1].
    #[serde(default = "default_outlier_alpha")]
    pub outlier_alpha: f64,
    /// Inferences more than this many MADs from the epoch's median are left out of the
    /// outlier-resistant inference (Allora's `InferenceOutlierDetectionThreshold`), > 0.
    #[serde(default = "default_outlier_threshold")]
    pub outlier_threshold: f64,
    /// Which generation of Allora's synthesis and scoring the topic runs: `"allora-v0.6"`
    /// (default) or `"allora-mad"` ([`MechanismVersion`]).
    #[serde(default)]
    pub mechanism: MechanismVersion,
    /// Length of the reveal phase after the submission window (ms); `0` (default): no
    /// commit-reveal, workers publish their bundles directly. When set, the submission and
    /// reveal windows together fit in the epoch, and the reveal window is longer than twice
    /// the network's `max_clock_skew_ms` (workers reveal an allowance after the phase opens).
    /// Part of the schedule: governance cannot change it.
    #[serde(default)]
    pub reveal_window_ms: u64,
}

fn default_outlier_alpha() -> f64 {
    crate::math::outliers::DEFAULT_ALPHA
}

fn default_outlier_threshold() -> f64 {
    crate::math::outliers::DEFAULT_THRESHOLD
}

/// Why a topic definition was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum TopicError {
    /// A field is out of range.
    #[error("topic field `{field}`: {reason}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
}

fn invalid(field: &'static str, reason: impl Into<String>) -> TopicError {
    TopicError::Invalid {
        field,
        reason: reason.into(),
    }
}

fn in_range(field: &'static str, v: f64, lo: f64, hi: f64) -> Result<(), TopicError> {
    if v.is_finite() && v >= lo && v <= hi {
        Ok(())
    } else {
        Err(invalid(field, format!("{v} is not in [{lo}, {hi}]")))
    }
}

impl TopicSpec {
    /// A topic with the given schedule and loss and the usual mechanism parameters: p-norm 3,
    /// regret α 0.1, ε 0.01, merit-sortition α 0.1, active quantiles 0.25 (override fields
    /// with struct update syntax).
    pub fn new(
        name: impl Into<String>,
        loss: LossMethod,
        start_ms: u64,
        epoch_length_ms: u64,
        submission_window_ms: u64,
        ground_truth_lag_ms: u64,
    ) -> TopicSpec {
        TopicSpec {
            name: name.into(),
            metadata: String::new(),
            token: String::new(),
            loss,
            start_ms,
            epoch_length_ms,
            submission_window_ms,
            ground_truth_lag_ms,
            p_norm: 3.0,
            alpha_regret: 0.1,
            epsilon: 0.01,
            merit_sortition_alpha: 0.1,
            active_inferer_quantile: 0.25,
            active_forecaster_quantile: 0.25,
            active_reputer_quantile: 0.25,
            allow_negative: false,
            outlier_alpha: default_outlier_alpha(),
            outlier_threshold: default_outlier_threshold(),
            mechanism: MechanismVersion::default(),
            reveal_window_ms: 0,
        }
    }

    /// Check every field against Allora's rules (`CreateNewTopicRequest.Validate`).
    pub fn validate(&self, params: &ModuleParams) -> Result<(), TopicError> {
        if self.name.is_empty() || self.name.len() > MAX_STRING_LEN {
            return Err(invalid("name", "must be 1..=255 bytes"));
        }
        if self.metadata.len() > MAX_STRING_LEN {
            return Err(invalid("metadata", "must be at most 255 bytes"));
        }
        check_token(&self.token)?;
        self.loss
            .validate()
            .map_err(|e| invalid("loss", e.to_string()))?;
        if self.epoch_length_ms < params.min_epoch_length_ms.max(1) {
            return Err(invalid(
                "epoch_length_ms",
                format!("must be ≥ {}", params.min_epoch_length_ms.max(1)),
            ));
        }
        if self.submission_window_ms == 0 || self.submission_window_ms > self.epoch_length_ms {
            return Err(invalid(
                "submission_window_ms",
                "must be in (0, epoch_length_ms]",
            ));
        }
        if self
            .submission_window_ms
            .saturating_add(self.reveal_window_ms)
            > self.epoch_length_ms
        {
            return Err(invalid(
                "reveal_window_ms",
                "submission_window_ms + reveal_window_ms must be ≤ epoch_length_ms",
            ));
        }
        if self.commit_reveal() && self.reveal_window_ms <= 2 * params.max_clock_skew_ms {
            return Err(invalid(
                "reveal_window_ms",
                format!(
                    "must be longer than twice the clock-skew allowance ({} ms): reveals wait \
                     that long after the submission window",
                    params.max_clock_skew_ms
                ),
            ));
        }
        let max_lag = self
            .epoch_length_ms
            .saturating_mul(params.max_unfulfilled_reputer_requests);
        if self.ground_truth_lag_ms < self.epoch_length_ms || self.ground_truth_lag_ms > max_lag {
            return Err(invalid(
                "ground_truth_lag_ms",
                "must be in [epoch_length_ms, max_unfulfilled_reputer_requests · epoch_length_ms]",
            ));
        }
        in_range("p_norm", self.p_norm, 2.5, 4.5)?;
        if !(self.alpha_regret.is_finite() && self.alpha_regret > 0.0 && self.alpha_regret <= 1.0) {
            return Err(invalid("alpha_regret", "must be in (0, 1]"));
        }
        if !(self.epsilon.is_finite() && self.epsilon > 0.0) {
            return Err(invalid("epsilon", "must be > 0"));
        }
        in_range(
            "merit_sortition_alpha",
            self.merit_sortition_alpha,
            0.0,
            1.0,
        )?;
        in_range(
            "active_inferer_quantile",
            self.active_inferer_quantile,
            0.0,
            1.0,
        )?;
        in_range(
            "active_forecaster_quantile",
            self.active_forecaster_quantile,
            0.0,
            1.0,
        )?;
        in_range(
            "active_reputer_quantile",
            self.active_reputer_quantile,
            0.0,
            1.0,
        )?;
        if !(self.outlier_alpha.is_finite()
            && self.outlier_alpha > 0.0
            && self.outlier_alpha <= 1.0)
        {
            return Err(invalid("outlier_alpha", "must be in (0, 1]"));
        }
        if !(self.outlier_threshold.is_finite() && self.outlier_threshold > 0.0) {
            return Err(invalid("outlier_threshold", "must be > 0"));
        }
        Ok(())
    }

    /// Start (ms) of epoch `e`, saturating.
    pub fn epoch_start(&self, epoch: u64) -> u64 {
        self.start_ms
            .saturating_add(epoch.saturating_mul(self.epoch_length_ms))
    }

    /// The epoch that contains time `now_ms` (`None` before epoch 0).
    pub fn epoch_at(&self, now_ms: u64) -> Option<u64> {
        if now_ms < self.start_ms || self.epoch_length_ms == 0 {
            return None;
        }
        Some((now_ms - self.start_ms) / self.epoch_length_ms)
    }

    /// Whether workers commit first and reveal after the submission window.
    pub fn commit_reveal(&self) -> bool {
        self.reveal_window_ms > 0
    }

    /// `[open, close)` of the worker window of epoch `e` (no skew): what one checkpoint
    /// finalizes. The submission window, followed by the reveal phase when the topic runs
    /// commit-reveal.
    pub fn worker_window(&self, epoch: u64) -> (u64, u64) {
        let (open, close) = self.submission_window(epoch);
        (open, close.saturating_add(self.reveal_window_ms))
    }

    /// `[open, close)` in which workers publish bundles (or, under commit-reveal, commitments)
    /// for epoch `e` (no skew).
    pub fn submission_window(&self, epoch: u64) -> (u64, u64) {
        let open = self.epoch_start(epoch);
        (open, open.saturating_add(self.submission_window_ms))
    }

    /// `[open, close)` of the reveal phase of epoch `e` (no skew); `None` without
    /// commit-reveal.
    pub fn reveal_window(&self, epoch: u64) -> Option<(u64, u64)> {
        let close = self.submission_window(epoch).1;
        self.commit_reveal()
            .then(|| (close, close.saturating_add(self.reveal_window_ms)))
    }

    /// `[open, close)` of the reputer window of epoch `e` (no skew).
    pub fn reputer_window(&self, epoch: u64) -> (u64, u64) {
        let open = self
            .epoch_start(epoch)
            .saturating_add(self.ground_truth_lag_ms);
        (open, open.saturating_add(self.epoch_length_ms))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A valid spec for tests.
    pub(crate) fn spec() -> TopicSpec {
        TopicSpec::new(
            "ETH 10min",
            LossMethod::Mse,
            1_000_000,
            60_000,
            30_000,
            60_000,
        )
    }

    /// A stranger's topic naming a mechanism version that does not exist is refused at
    /// decoding: the version is one byte of the topic's encoding and only known values decode.
    #[test]
    fn an_unknown_mechanism_version_does_not_decode() {
        use crate::codec;
        use crate::ids::Amount;
        use crate::messages::{CreateTopic, Payload};
        let message = |mechanism| {
            Payload::CreateTopic(CreateTopic {
                nonce: 1,
                spec: TopicSpec {
                    mechanism,
                    ..spec()
                },
                fee: Amount(7),
            })
        };
        let v06 = codec::encode(&message(MechanismVersion::AlloraV06));
        let mad = codec::encode(&message(MechanismVersion::AlloraMad));
        assert_eq!(v06.len(), mad.len());
        let at: Vec<usize> = (0..v06.len()).filter(|i| v06[*i] != mad[*i]).collect();
        assert_eq!(at.len(), 1, "one byte names the version");
        assert_eq!((v06[at[0]], mad[at[0]]), (0, 1));
        assert_eq!(
            codec::decode::<Payload>(&mad).unwrap(),
            message(MechanismVersion::AlloraMad)
        );
        for unknown in [2u8, 0x7f, 0xff] {
            let mut bytes = mad.clone();
            bytes[at[0]] = unknown;
            assert!(
                codec::decode::<Payload>(&bytes).is_err(),
                "version byte {unknown}"
            );
        }
    }

    #[test]
    fn schedule() {
        let s = spec();
        assert_eq!(s.epoch_start(2), 1_120_000);
        assert_eq!(s.epoch_at(1_119_999), Some(1));
        assert_eq!(s.epoch_at(999_999), None);
        assert_eq!(s.worker_window(1), (1_060_000, 1_090_000));
        assert_eq!(s.reputer_window(1), (1_120_000, 1_180_000));
        assert_eq!(s.submission_window(1), s.worker_window(1));
        assert_eq!(s.reveal_window(1), None);
        let cr = TopicSpec {
            reveal_window_ms: 20_000,
            ..spec()
        };
        assert!(cr.commit_reveal());
        assert_eq!(cr.submission_window(1), (1_060_000, 1_090_000));
        assert_eq!(cr.reveal_window(1), Some((1_090_000, 1_110_000)));
        assert_eq!(cr.worker_window(1), (1_060_000, 1_110_000));
    }

    #[test]
    fn the_reveal_phase_must_fit_in_the_epoch() {
        let p = ModuleParams::default();
        let fits = TopicSpec {
            reveal_window_ms: 30_000,
            ..spec()
        };
        assert!(fits.validate(&p).is_ok());
        let over = TopicSpec {
            reveal_window_ms: 30_001,
            ..spec()
        };
        let short = TopicSpec {
            reveal_window_ms: 2 * p.max_clock_skew_ms,
            ..spec()
        };
        for bad in [over, short] {
            assert!(matches!(
                bad.validate(&p),
                Err(TopicError::Invalid {
                    field: "reveal_window_ms",
                    ..
                })
            ));
        }
        // Without the field (older topic files) there is no commit-reveal.
        let text = toml::to_string(&spec()).unwrap();
        let stripped: String = text
            .lines()
            .filter(|l| !l.starts_with("reveal_window_ms"))
            .map(|l| format!("{l}\n"))
            .collect();
        assert!(
            !toml::from_str::<TopicSpec>(&stripped)
                .unwrap()
                .commit_reveal()
        );
    }

    #[test]
    fn outlier_parameters_default_to_allora_and_are_checked() {
        let p = ModuleParams::default();
        let s = spec();
        assert_eq!((s.outlier_alpha, s.outlier_threshold), (0.2, 11.0));
        // A topic file without them gets Allora's defaults.
        let text = toml::to_string(&s).unwrap();
        let stripped: String = text
            .lines()
            .filter(|l| !l.starts_with("outlier_"))
            .map(|l| format!("{l}\n"))
            .collect();
        let back: TopicSpec = toml::from_str(&stripped).unwrap();
        assert_eq!(back, s);
        for (alpha, threshold) in [
            (0.0, 11.0),
            (1.5, 11.0),
            (f64::NAN, 11.0),
            (0.2, 0.0),
            (0.2, -1.0),
        ] {
            let bad = TopicSpec {
                outlier_alpha: alpha,
                outlier_threshold: threshold,
                ..spec()
            };
            assert!(bad.validate(&p).is_err(), "{alpha} {threshold}");
        }
        let ok = TopicSpec {
            outlier_alpha: 1.0,
            outlier_threshold: 3.0,
            ..spec()
        };
        assert!(ok.validate(&p).is_ok());
    }

    #[test]
    fn validation_rules() {
        let p = ModuleParams::default();
        assert!(spec().validate(&p).is_ok());
        let mut s = spec();
        s.p_norm = 5.0;
        assert!(s.validate(&p).is_err());
        let mut s = spec();
        s.ground_truth_lag_ms = 1;
        assert!(s.validate(&p).is_err());
        let mut s = spec();
        s.submission_window_ms = 0;
        assert!(s.validate(&p).is_err());
        let mut s = spec();
        s.alpha_regret = f64::NAN;
        assert!(s.validate(&p).is_err());
        let mut s = spec();
        s.loss = LossMethod::Huber { delta: -1.0 };
        assert!(s.validate(&p).is_err());
    }

    #[test]
    fn tokens_cannot_carry_paths_hosts_or_options() {
        let p = ModuleParams::default();
        for good in ["", "ETH", "btc", "ETH-USD", "SOL_1h", "1INCH"] {
            let s = TopicSpec {
                token: good.into(),
                ..spec()
            };
            assert!(s.validate(&p).is_ok(), "{good:?}");
        }
        for bad in [
            "-h",
            "--config=/etc/x",
            "ETH/USD",
            "..",
            "a.b",
            "ETH USD",
            "é",
            "_x",
            "ETH%2F",
            "A123456789012345678901234567890123",
        ] {
            let s = TopicSpec {
                token: bad.into(),
                ..spec()
            };
            assert!(
                matches!(
                    s.validate(&p),
                    Err(TopicError::Invalid { field: "token", .. })
                ),
                "{bad:?}"
            );
        }
    }
}
