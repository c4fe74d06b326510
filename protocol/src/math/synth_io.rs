//! The `chorus synth` JSON: input and output of one epoch's inference synthesis.
//!
//! Input (all numbers finite; worker names are arbitrary strings):
//! ```json
//! { "params": {"p_norm": 3, "c_norm": 0.75, "epsilon": 0.01, "epsilon_safe_div": 1e-7},
//!   "initial_regret": -1.0,                 // 0 means every inferer is new
//!   "previous_network_loss": -4.27,         // log10; null = no loss stored yet (median)
//!   "inferences": {"I0": 0.12, ...},
//!   "forecasts": {"F0": {"I0": -4.08, ...}}, // forecasted log10 losses
//!   "regrets": {"inferer": {..}, "forecaster": {..}, "naive": {..},
//!               "one_out_inferer_inferer": {"I0": {"I1": ..}}, "one_out_inferer_forecaster": {..},
//!               "one_out_forecaster_inferer": {..}, "one_out_forecaster_forecaster": {..},
//!               "one_in_forecaster": {"F0": {"I0": .., "F0": ..}}} }
//! ```
//! A missing regret falls back to `initial_regret`; `forecasts` and `regrets` may be omitted.
//!
//! Output: pretty JSON with sorted keys (see [`super::json`]): `combined_value`,
//! `forecaster_values`, `forecaster_weights`, `inferer_values`, `inferer_weights`, `naive_value`
//! (null without a previous loss), `one_in_forecaster_values`, `one_out_forecaster_values`,
//! `one_out_inferer_forecaster_values` (`{forecaster: {withheld inferer: value}}`),
//! `one_out_inferer_values`. Maps that do not apply are `{}`.
//! `confidence_interval_values` (values at the percentiles 2.28, 15.87, 50, 84.13, 97.72) is
//! printed only with [`SynthJsonOptions::confidence_interval`]: the shipped reference output
//! (`tests/fixtures/synth/epoch303_output.json`) has no such key, and [`synth_json`] reproduces it
//! byte for byte.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::error::MathError;
use super::json::{classify_parse_error, to_pretty_json};
use super::regrets::NetworkRegrets;
use super::synthesis::{NetworkInferences, SynthesisInput, SynthesisParams, synthesize_bundle};

/// Errors of [`synth_json`]; the CLI maps every one to exit code 2.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum SynthError {
    /// The input is not valid JSON or not of the expected shape.
    #[error("bad JSON input: {0}")]
    BadJson(String),
    /// A number is NaN or infinite (e.g. `1e999`).
    #[error("non-finite number in input: {0}")]
    NonFinite(String),
    /// `inferences` is empty.
    #[error("no inferences in input")]
    NoInferences,
    /// A parameter is out of range or another math error.
    #[error("invalid input: {0}")]
    Invalid(String),
}

impl From<MathError> for SynthError {
    fn from(e: MathError) -> Self {
        match e {
            MathError::NonFinite { .. } => SynthError::NonFinite(e.to_string()),
            MathError::Empty("no inferences") => SynthError::NoInferences,
            other => SynthError::Invalid(other.to_string()),
        }
    }
}

/// The `chorus synth` input document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SynthJsonInput {
    /// Synthesis parameters.
    pub params: SynthesisParams,
    /// Topic initial regret (0 = all inferers new).
    pub initial_regret: f64,
    /// Previous network combined log10 loss, or null.
    #[serde(default)]
    pub previous_network_loss: Option<f64>,
    /// Inferences by worker.
    pub inferences: BTreeMap<String, f64>,
    /// Forecasts: forecaster → inferer → forecasted log10 loss.
    #[serde(default)]
    pub forecasts: BTreeMap<String, BTreeMap<String, f64>>,
    /// Stored regrets.
    #[serde(default)]
    pub regrets: NetworkRegrets<String>,
}

impl SynthJsonInput {
    /// Converts to the library input.
    pub fn into_input(self) -> SynthesisInput<String> {
        SynthesisInput {
            params: self.params,
            initial_regret: self.initial_regret,
            previous_network_loss: self.previous_network_loss,
            inferences: self.inferences,
            forecasts: self.forecasts,
            regrets: self.regrets,
        }
    }
}

/// The `chorus synth` output document (fields in alphabetical order = printed order).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SynthJsonOutput {
    /// I_i.
    pub combined_value: f64,
    /// Only with [`SynthJsonOptions::confidence_interval`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence_interval_values: Option<Vec<f64>>,
    /// Forecast-implied inferences.
    pub forecaster_values: BTreeMap<String, f64>,
    /// Raw forecaster weights.
    pub forecaster_weights: BTreeMap<String, f64>,
    /// The inferences.
    pub inferer_values: BTreeMap<String, f64>,
    /// Raw inferer weights.
    pub inferer_weights: BTreeMap<String, f64>,
    /// Naive inference or null.
    pub naive_value: Option<f64>,
    /// One-in forecaster values.
    pub one_in_forecaster_values: BTreeMap<String, f64>,
    /// One-out forecaster values.
    pub one_out_forecaster_values: BTreeMap<String, f64>,
    /// `{forecaster: {withheld inferer: value}}`.
    pub one_out_inferer_forecaster_values: BTreeMap<String, BTreeMap<String, f64>>,
    /// One-out inferer values.
    pub one_out_inferer_values: BTreeMap<String, f64>,
}

impl SynthJsonOutput {
    /// Builds the output document from a synthesis result.
    pub fn from_inferences(n: NetworkInferences<String>, confidence_interval: bool) -> Self {
        SynthJsonOutput {
            combined_value: n.combined_value,
            confidence_interval_values: confidence_interval.then_some(n.confidence_interval_values),
            forecaster_values: n.forecaster_values,
            forecaster_weights: n.forecaster_weights,
            inferer_values: n.inferer_values,
            inferer_weights: n.inferer_weights,
            naive_value: n.naive_value,
            one_in_forecaster_values: n.one_in_forecaster_values,
            one_out_forecaster_values: n.one_out_forecaster_values,
            one_out_inferer_forecaster_values: n.one_out_inferer_forecaster_values,
            one_out_inferer_values: n.one_out_inferer_values,
        }
    }
}

/// Options of [`synth_json_with`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SynthJsonOptions {
    /// Also print `confidence_interval_values`.
    pub confidence_interval: bool,
}

/// Parses a `chorus synth` input document.
pub fn parse_synth_input(input: &str) -> Result<SynthJsonInput, SynthError> {
    serde_json::from_str(input).map_err(|e| {
        let (msg, non_finite) = classify_parse_error(&e);
        if non_finite {
            SynthError::NonFinite(msg)
        } else {
            SynthError::BadJson(msg)
        }
    })
}

/// `chorus synth`: input JSON → output JSON (pretty, sorted keys, no trailing newline).
pub fn synth_json(input: &str) -> Result<String, SynthError> {
    synth_json_with(input, SynthJsonOptions::default())
}

/// [`synth_json`] with options.
pub fn synth_json_with(input: &str, options: SynthJsonOptions) -> Result<String, SynthError> {
    let parsed = parse_synth_input(input)?;
    let bundle = synthesize_bundle(&parsed.into_input())?;
    let out = SynthJsonOutput::from_inferences(bundle, options.confidence_interval);
    to_pretty_json(&out).map_err(|e| SynthError::Invalid(e.to_string()))
}
