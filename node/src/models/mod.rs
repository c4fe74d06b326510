//! Worker models and model/truth adapters run by a Chorus node's roles.
//!
//! - [`bars`]: price bars, CSV loading, prediction [`Target`]s (truth of epoch `t` = target of
//!   bar `t + 1`);
//! - [`builtin`]: deterministic online inferer models ([`BuiltinModel`], [`default_set`]);
//! - [`forecasters`]: log10-loss forecasters (EMA, EMA per volatility regime);
//! - [`http`], [`command`]: external models reached over HTTP or HTTPS (rustls) or run as
//!   local programs, with Allora-compatible templates ([`template`]) and response formats
//!   ([`value`]);
//! - [`copycat`]: a worker copying the best-scoring inferer (the attack commit-reveal stops);
//! - [`loss_service`]: an Allora loss-function service for reputers;
//! - [`truth`]: ground-truth sources (CSV replay, synthetic random walk, HTTP);
//! - [`spec`]: serde config enums and the runnable objects built from them.
//!
//! Failures are typed errors with a stable metrics label (`reason()`); nothing here panics on
//! bad input, and a model never yields a non-finite value.

pub mod bars;
pub mod builtin;
pub mod command;
pub mod copycat;
pub mod forecasters;
pub mod http;
mod kernels;
pub mod loss_service;
pub mod rng;
pub mod spec;
pub mod template;
pub mod truth;
pub mod value;

pub use bars::{Bar, Bars, BarsError, Target};
pub use builtin::{
    BuiltinInferer, BuiltinModel, Model, ModelConfigError, default_set, predict_series,
};
pub use command::{CommandError, CommandModel, CommandOptions};
pub use copycat::{Copied, Copycat, CopycatSpec};
pub use forecasters::{
    EmaLossForecaster, Regime, RegimeLossForecaster, VolRegime, log10_loss, squared_error,
};
pub use http::{HttpError, HttpForecaster, HttpModel, HttpOptions, HttpTruth};
pub use loss_service::{LOSS_CONCURRENCY, LossService, LossServiceError};
pub use spec::{
    BuiltinSpec, CommandSpec, Forecaster, ForecasterSpec, HttpSpec, Inferer, LossServiceSpec,
    ModelError, ModelSpec, SpecError, TruthSpec, build_forecaster, build_loss_service, build_model,
    build_truth,
};
pub use template::{EpochContext, Template, TemplateError};
pub use truth::{Replay, SyntheticConfig, TruthError, TruthSource, synthetic_bars};
pub use value::ValueError;
