//! Configuration: serde enums naming a model, forecaster or truth source (TOML-friendly, tagged
//! by `kind`), and the runnable objects built from them.
//!
//! ```toml
//! [[worker]]
//! kind = "builtin"
//! target = "range"
//! model = "sma"
//! n = 20
//!
//! [[worker]]
//! kind = "http"
//! url = "http://127.0.0.1:8000/inference/{Token}?epoch={Epoch}"
//! timeout_ms = 2000
//!
//! [[worker]]
//! kind = "command"
//! program = "/usr/local/bin/my-model"
//! args = ["--topic", "{TopicId}", "--epoch", "{Epoch}"]
//! timeout_ms = 2000
//!
//! [truth]
//! kind = "csv"
//! path = "data/eurusd_1h.csv"
//! target = "range"
//! ```
//!
//! Unknown fields are rejected. A runnable model answers with a value or a typed
//! [`ModelError`] (timeout, transport, garbage such as NaN or text, warm-up): the caller skips that
//! epoch, logs [`ModelError`]'s message and counts [`ModelError::reason`] — there is never a
//! panic and never a made-up value.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::bars::{Bar, BarsError, Target};
use super::builtin::{BuiltinInferer, BuiltinModel, Model, ModelConfigError};
use super::command::{CommandError, CommandModel, CommandOptions, DEFAULT_MAX_STDOUT_BYTES};
use super::copycat::Copycat;
use super::forecasters::{
    DEFAULT_FORECASTER_ALPHA, DEFAULT_LOSS_FLOOR, EmaLossForecaster, ForecasterConfigError, Regime,
    RegimeLossForecaster, VolRegime,
};
use super::http::{
    DEFAULT_MAX_BODY_BYTES, HttpError, HttpForecaster, HttpModel, HttpOptions, HttpTruth,
};
use super::loss_service::LossService;
use super::template::{EpochContext, Template};
use super::truth::{Replay, SyntheticConfig, TruthSource, synthetic_bars};

fn default_timeout_ms() -> u64 {
    2000
}
fn default_max_body() -> usize {
    DEFAULT_MAX_BODY_BYTES
}
fn default_max_stdout() -> usize {
    DEFAULT_MAX_STDOUT_BYTES
}
fn default_alpha() -> f64 {
    DEFAULT_FORECASTER_ALPHA
}
fn default_floor() -> f64 {
    DEFAULT_LOSS_FLOOR
}
fn default_sd_window() -> usize {
    20
}
fn default_median_window() -> usize {
    200
}
fn default_seed() -> u64 {
    1
}
fn default_synthetic_bars() -> usize {
    10_000
}
fn default_sigma() -> f64 {
    1e-3
}
fn default_start_price() -> f64 {
    1.0
}

/// A built-in model for one target: `{ target = "range", model = "sma", n = 20 }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BuiltinSpec {
    /// The target it predicts.
    pub target: Target,
    /// The model and its parameters (flattened: `model = "…"` plus parameter fields).
    #[serde(flatten)]
    pub model: BuiltinModel,
}

/// An HTTP endpoint of a model, forecaster or truth source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSpec {
    /// URL template (`{TopicId}`, `{Epoch}`/`{BlockHeight}`, `{Timestamp}`, `{EpochStartMs}`,
    /// `{Token}`, params); `http://` or `https://`, with a literal host.
    pub url: String,
    /// Timeout in milliseconds (default 2000).
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Response size cap (default 64 KiB).
    #[serde(default = "default_max_body")]
    pub max_body_bytes: usize,
    /// Extra static placeholders (`Token` among them, as in Allora's `parameters`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub params: BTreeMap<String, String>,
    /// A PEM file of extra CA certificates for `https://` (relative to the config file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
}

impl HttpSpec {
    fn options(&self) -> HttpOptions {
        HttpOptions {
            timeout: Duration::from_millis(self.timeout_ms),
            max_body_bytes: self.max_body_bytes,
            params: self.params.clone(),
            ca_file: self.ca_file.clone(),
        }
    }

    /// Whether the URL takes the topic's token (`{Token}` and no `Token` param).
    pub fn needs_topic_token(&self) -> bool {
        Template::parse(&self.url, &self.params).is_ok_and(|t| t.needs_topic_token())
    }

    /// Makes a relative `ca_file` relative to `base` (the config file's directory).
    pub fn resolve_paths(&mut self, base: &Path) {
        if let Some(path) = &mut self.ca_file
            && path.is_relative()
        {
            *path = base.join(&*path);
        }
    }
}

/// A local program run as a model or forecaster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandSpec {
    /// The program (path or name on `PATH`).
    pub program: String,
    /// Argument templates.
    #[serde(default)]
    pub args: Vec<String>,
    /// Timeout in milliseconds (default 2000).
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// stdout size cap (default 64 KiB).
    #[serde(default = "default_max_stdout")]
    pub max_stdout_bytes: usize,
    /// Extra static placeholders.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub params: BTreeMap<String, String>,
}

impl CommandSpec {
    /// Whether an argument takes the topic's token (`{Token}` and no `Token` param).
    pub fn needs_topic_token(&self) -> bool {
        self.args
            .iter()
            .any(|a| Template::parse(a, &self.params).is_ok_and(|t| t.needs_topic_token()))
    }

    fn options(&self) -> CommandOptions {
        CommandOptions {
            timeout: Duration::from_millis(self.timeout_ms),
            max_stdout_bytes: self.max_stdout_bytes,
            params: self.params.clone(),
        }
    }
}

/// Where an inferer's values come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ModelSpec {
    /// A built-in model, fed with the topic's bars.
    Builtin(BuiltinSpec),
    /// An HTTP endpoint (plain `http://`, typically on localhost).
    Http(HttpSpec),
    /// A local program.
    Command(CommandSpec),
    /// No model: copy the best-scoring inferer (a demonstration attacker, see
    /// [`Copycat`](super::copycat::Copycat)).
    Copycat(super::copycat::CopycatSpec),
}

impl ModelSpec {
    /// Whether the model's requests take the topic's token.
    pub fn needs_topic_token(&self) -> bool {
        match self {
            ModelSpec::Builtin(_) | ModelSpec::Copycat(_) => false,
            ModelSpec::Http(h) => h.needs_topic_token(),
            ModelSpec::Command(c) => c.needs_topic_token(),
        }
    }
}

/// Where a forecaster's values come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ForecasterSpec {
    /// EMA of each inferer's past log10 losses.
    Ema {
        /// EMA factor (default 0.1).
        #[serde(default = "default_alpha")]
        alpha: f64,
        /// Loss floor before log10 (default 2.5e-11).
        #[serde(default = "default_floor")]
        loss_floor: f64,
    },
    /// The same per volatility regime.
    RegimeEma {
        /// EMA factor (default 0.1).
        #[serde(default = "default_alpha")]
        alpha: f64,
        /// Loss floor before log10 (default 2.5e-11).
        #[serde(default = "default_floor")]
        loss_floor: f64,
        /// Returns in the short-term sd (default 20).
        #[serde(default = "default_sd_window")]
        sd_window: usize,
        /// Bars in the trailing median (default 200).
        #[serde(default = "default_median_window")]
        median_window: usize,
    },
    /// An HTTP endpoint returning `{"<inferer>": value, …}`.
    Http(HttpSpec),
    /// A local program printing `{"<inferer>": value, …}`.
    Command(CommandSpec),
}

impl ForecasterSpec {
    /// Whether the forecaster's requests take the topic's token.
    pub fn needs_topic_token(&self) -> bool {
        match self {
            ForecasterSpec::Http(h) => h.needs_topic_token(),
            ForecasterSpec::Command(c) => c.needs_topic_token(),
            ForecasterSpec::Ema { .. } | ForecasterSpec::RegimeEma { .. } => false,
        }
    }
}

/// Where the ground truth comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum TruthSpec {
    /// A seeded synthetic random walk (see [`synthetic_bars`]).
    Builtin {
        /// The target.
        target: Target,
        /// Seed (default 1).
        #[serde(default = "default_seed")]
        seed: u64,
        /// Number of bars (default 10 000).
        #[serde(default = "default_synthetic_bars")]
        bars: usize,
        /// Per-bar sd of log returns (default 0.001).
        #[serde(default = "default_sigma")]
        sigma: f64,
        /// First price (default 1.0).
        #[serde(default = "default_start_price")]
        start_price: f64,
    },
    /// An HTTP endpoint with the model contract; `204`/`null` = not available yet.
    Http(HttpSpec),
    /// A CSV replay (see [`super::bars::Bars::from_csv_reader`]).
    Csv {
        /// The file; relative paths are taken from the working directory unless
        /// [`TruthSpec::resolve_paths`] was called.
        path: PathBuf,
        /// The target.
        target: Target,
    },
}

impl TruthSpec {
    /// Whether the truth requests take the topic's token.
    pub fn needs_topic_token(&self) -> bool {
        matches!(self, TruthSpec::Http(h) if h.needs_topic_token())
    }

    /// Makes a relative CSV path or `ca_file` relative to `base` (e.g. the config file's
    /// directory).
    pub fn resolve_paths(&mut self, base: &Path) {
        match self {
            TruthSpec::Csv { path, .. } if path.is_relative() => *path = base.join(&*path),
            TruthSpec::Http(h) => h.resolve_paths(base),
            _ => {}
        }
    }
}

/// An Allora loss-function service a reputer asks instead of the topic's built-in loss
/// (see [`super::loss_service`]).
///
/// ```toml
/// [[reputer]]
/// topic = 1
/// truth = { kind = "http", url = "http://127.0.0.1:8888/gt/{Token}/{BlockHeight}" }
/// loss = { url = "http://127.0.0.1:5000", options = { loss_method = "sqe" } }
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LossServiceSpec {
    /// The service's base URL (`/calculate` and `/is_never_negative` are appended).
    pub url: String,
    /// Allora's `LossMethodOptions`, sent with every request.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub options: BTreeMap<String, String>,
    /// Timeout of one request in milliseconds (default 2000).
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// A PEM file of extra CA certificates for `https://` (relative to the config file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
}

impl LossServiceSpec {
    /// Makes a relative `ca_file` relative to `base`.
    pub fn resolve_paths(&mut self, base: &Path) {
        if let Some(path) = &mut self.ca_file
            && path.is_relative()
        {
            *path = base.join(&*path);
        }
    }
}

/// Builds a loss service client from its spec.
pub fn build_loss_service(spec: &LossServiceSpec) -> Result<LossService, SpecError> {
    let options = HttpOptions {
        timeout: Duration::from_millis(spec.timeout_ms),
        ca_file: spec.ca_file.clone(),
        ..HttpOptions::default()
    };
    Ok(LossService::new(&spec.url, spec.options.clone(), &options)?)
}

/// A spec could not be turned into a runnable object.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// Invalid built-in model.
    #[error(transparent)]
    Model(#[from] ModelConfigError),
    /// Invalid forecaster parameters.
    #[error(transparent)]
    Forecaster(#[from] ForecasterConfigError),
    /// Invalid HTTP endpoint.
    #[error(transparent)]
    Http(#[from] HttpError),
    /// Invalid command.
    #[error(transparent)]
    Command(#[from] CommandError),
    /// The series cannot be loaded or used.
    #[error(transparent)]
    Bars(#[from] BarsError),
}

/// Why a model gave no value this epoch (the caller skips the epoch and logs/counts it).
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A built-in model is still warming up (or its output would not be finite).
    #[error("model not ready (warming up)")]
    NotReady,
    /// The HTTP model failed.
    #[error(transparent)]
    Http(#[from] HttpError),
    /// The command model failed.
    #[error(transparent)]
    Command(#[from] CommandError),
    /// A value that is not finite (a last-line guard; the adapters already reject these).
    #[error("model returned a non-finite value: {0}")]
    NonFinite(f64),
}

impl ModelError {
    /// A short stable label for metrics (`not_ready`, `timeout`, `connect`, `status`,
    /// `not_a_number`, `non_finite`, `exit`, …).
    pub fn reason(&self) -> &'static str {
        match self {
            ModelError::NotReady => "not_ready",
            ModelError::Http(e) => e.reason(),
            ModelError::Command(e) => e.reason(),
            ModelError::NonFinite(_) => "non_finite",
        }
    }

    /// Whether asking again this epoch may succeed (see [`HttpError::is_transient`],
    /// [`CommandError::is_transient`]); a warming built-in model will not be ready sooner.
    pub fn is_transient(&self) -> bool {
        match self {
            ModelError::NotReady => false,
            ModelError::Http(e) => e.is_transient(),
            ModelError::Command(e) => e.is_transient(),
            ModelError::NonFinite(_) => true,
        }
    }
}

/// A runnable inferer.
#[derive(Debug, Clone)]
pub enum Inferer {
    /// A built-in model.
    Builtin(BuiltinInferer),
    /// An HTTP model.
    Http(HttpModel),
    /// A command model.
    Command(CommandModel),
    /// A copycat (answers only inside a node, through [`Copycat::copy`]).
    Copycat(Copycat),
}

impl Inferer {
    /// Feeds the next bar to a built-in model (no-op for external ones).
    pub fn observe(&mut self, bar: &Bar) {
        if let Inferer::Builtin(m) = self {
            m.observe(bar);
        }
    }

    /// The inference for `ctx`. Built-in models answer from the bars observed so far (the
    /// caller feeds bar `t` before asking for epoch `t`) and ignore `ctx`.
    pub async fn infer(&self, ctx: &EpochContext) -> Result<f64, ModelError> {
        let value = match self {
            Inferer::Builtin(m) => m.predict().ok_or(ModelError::NotReady)?,
            Inferer::Http(m) => m.infer(ctx).await?,
            Inferer::Command(m) => m.infer(ctx).await?,
            Inferer::Copycat(m) => m.copy(ctx).await?.value,
        };
        // The adapters already reject non-finite values; keep the guarantee in one place.
        if value.is_finite() {
            Ok(value)
        } else {
            Err(ModelError::NonFinite(value))
        }
    }
}

/// How many recent epochs' regimes a regime forecaster remembers.
const REGIME_MEMORY: usize = 256;

/// A runnable forecaster (keys are inferer ids).
#[derive(Debug, Clone)]
pub enum Forecaster {
    /// EMA of log10 losses.
    Ema(EmaLossForecaster<String>),
    /// EMA of log10 losses per volatility regime.
    Regime {
        /// The forecaster.
        forecaster: RegimeLossForecaster<String>,
        /// The regime each recent epoch was forecast in.
        regimes: BTreeMap<u64, Option<Regime>>,
    },
    /// An HTTP forecaster.
    Http(HttpForecaster),
    /// A command forecaster.
    Command(CommandModel),
}

impl Forecaster {
    /// Feeds the next bar (used by the regime forecaster; no-op otherwise).
    pub fn observe_bar(&mut self, bar: &Bar) {
        if let Forecaster::Regime { forecaster, .. } = self {
            forecaster.observe_bar(bar);
        }
    }

    /// Records the truth of `epoch` and the inferences made then; `loss(truth, inference)` is
    /// the topic's loss (e.g. [`super::forecasters::squared_error`]). The regime forecaster
    /// files the losses under the regime it forecast `epoch` in (pooled only if it did not
    /// forecast that epoch). No-op for external forecasters.
    pub fn observe_truth<F: Fn(f64, f64) -> f64>(
        &mut self,
        epoch: u64,
        truth: f64,
        inferences: &BTreeMap<String, f64>,
        loss: F,
    ) {
        match self {
            Forecaster::Ema(f) => f.observe(truth, inferences, loss),
            Forecaster::Regime {
                forecaster,
                regimes,
            } => {
                let regime = regimes.get(&epoch).copied().flatten();
                forecaster.observe(regime, truth, inferences, loss);
            }
            Forecaster::Http(_) | Forecaster::Command(_) => {}
        }
    }

    /// Forecast log10 losses for the inferers `current` of epoch `ctx.epoch` (built-in
    /// forecasters omit inferers with no history; external ones return what they return).
    pub async fn forecast(
        &mut self,
        ctx: &EpochContext,
        current: &[String],
    ) -> Result<BTreeMap<String, f64>, ModelError> {
        match self {
            Forecaster::Ema(f) => Ok(f.forecast(current)),
            Forecaster::Regime {
                forecaster,
                regimes,
            } => {
                let regime = forecaster.regime();
                regimes.insert(ctx.epoch, regime);
                while regimes.len() > REGIME_MEMORY {
                    regimes.pop_first();
                }
                Ok(forecaster.forecast_in(regime, current))
            }
            Forecaster::Http(f) => Ok(f.forecast(ctx).await?),
            Forecaster::Command(f) => Ok(f.forecast(ctx).await?),
        }
    }
}

/// Builds a runnable inferer from its spec (validates everything up front).
pub fn build_model(spec: &ModelSpec) -> Result<Inferer, SpecError> {
    Ok(match spec {
        ModelSpec::Builtin(b) => Inferer::Builtin(BuiltinInferer::new(b.model.clone(), b.target)?),
        ModelSpec::Http(h) => Inferer::Http(HttpModel::new(&h.url, &h.options())?),
        ModelSpec::Command(c) => {
            Inferer::Command(CommandModel::new(&c.program, &c.args, &c.options())?)
        }
        ModelSpec::Copycat(c) => Inferer::Copycat(Copycat::new(c)),
    })
}

/// Builds a runnable forecaster from its spec.
pub fn build_forecaster(spec: &ForecasterSpec) -> Result<Forecaster, SpecError> {
    Ok(match spec {
        ForecasterSpec::Ema { alpha, loss_floor } => {
            Forecaster::Ema(EmaLossForecaster::with_floor(*alpha, *loss_floor)?)
        }
        ForecasterSpec::RegimeEma {
            alpha,
            loss_floor,
            sd_window,
            median_window,
        } => Forecaster::Regime {
            forecaster: RegimeLossForecaster::with_parts(
                *alpha,
                *loss_floor,
                VolRegime::with_windows(*sd_window, *median_window)?,
            )?,
            regimes: BTreeMap::new(),
        },
        ForecasterSpec::Http(h) => Forecaster::Http(HttpForecaster::new(&h.url, &h.options())?),
        ForecasterSpec::Command(c) => {
            Forecaster::Command(CommandModel::new(&c.program, &c.args, &c.options())?)
        }
    })
}

/// Builds a runnable truth source from its spec (a CSV is loaded and validated now).
pub fn build_truth(spec: &TruthSpec) -> Result<TruthSource, SpecError> {
    Ok(match spec {
        TruthSpec::Builtin {
            target,
            seed,
            bars,
            sigma,
            start_price,
        } => {
            let config = SyntheticConfig {
                seed: *seed,
                bars: *bars,
                sigma: *sigma,
                start_price: *start_price,
                ..SyntheticConfig::default()
            };
            TruthSource::Replay(Replay::new(synthetic_bars(&config)?, *target)?)
        }
        TruthSpec::Http(h) => TruthSource::Http(Box::new(HttpTruth::new(&h.url, &h.options())?)),
        TruthSpec::Csv { path, target } => TruthSource::Replay(Replay::load_csv(path, *target)?),
    })
}
