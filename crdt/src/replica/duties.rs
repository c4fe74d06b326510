//! What a role has to do, as pure functions shared by the node and the simulator: the loss
//! bundle a reputer publishes for a finalized network inference.

use chorus_protocol::inference::{NetworkInference, Values};
use chorus_protocol::math::MathError;
use chorus_protocol::math::loss::LossMethod;
use chorus_protocol::messages::{OneOutInfererForecasterValues, ValueBundle, WorkerValue};

/// Smallest loss before log10, relative to the truth's magnitude (and absolute for a zero
/// truth): a perfect prediction reports about log10(floor) instead of −∞.
pub const LOSS_FLOOR: f64 = 1e-24;

/// Why no loss bundle could be built.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum DutyError {
    /// The loss function refused an input.
    #[error("loss: {0}")]
    Loss(#[from] MathError),
    /// An external loss function gave no usable loss for a value.
    #[error("loss of {prediction}: {reason}")]
    External {
        /// The value.
        prediction: f64,
        /// Why.
        reason: String,
    },
}

/// The log10 losses of every value of a network-inference bundle against `truth`: the payload
/// of a reputer's `ReputerBundle`.
pub fn loss_bundle(
    bundle: &NetworkInference,
    truth: f64,
    method: &LossMethod,
) -> Result<ValueBundle, DutyError> {
    let floor = loss_floor(truth);
    loss_bundle_with(bundle, |v| Ok(method.reported_loss(truth, v, floor)?))
}

/// The smallest loss reported before log10 for `truth` (see [`LOSS_FLOOR`]).
pub fn loss_floor(truth: f64) -> f64 {
    LOSS_FLOOR.max(LOSS_FLOOR * truth.abs() * truth.abs())
}

/// Every value of a bundle a reputer must score (combined, naive, per-worker, one-out,
/// one-in), in the bundle's order, repeats included.
pub fn bundle_values(bundle: &NetworkInference) -> Vec<f64> {
    let mut out = vec![bundle.combined_value];
    out.extend(bundle.naive_value);
    for m in [
        &bundle.inferer_values,
        &bundle.forecaster_values,
        &bundle.one_out_inferer_values,
        &bundle.one_out_forecaster_values,
        &bundle.one_in_forecaster_values,
    ] {
        out.extend(m.values().copied());
    }
    for m in bundle.one_out_inferer_forecaster_values.values() {
        out.extend(m.values().copied());
    }
    out
}

/// The loss bundle with `loss(value)` giving each value's reported loss (for a loss computed
/// elsewhere, e.g. an Allora loss-function service).
pub fn loss_bundle_with(
    bundle: &NetworkInference,
    loss: impl Fn(f64) -> Result<f64, DutyError>,
) -> Result<ValueBundle, DutyError> {
    let values = |m: &Values| -> Result<Vec<WorkerValue>, DutyError> {
        m.iter()
            .map(|(k, v)| {
                Ok(WorkerValue {
                    worker: *k,
                    value: loss(*v)?,
                })
            })
            .collect()
    };
    Ok(ValueBundle {
        combined_value: loss(bundle.combined_value)?,
        naive_value: bundle.naive_value.map(&loss).transpose()?,
        inferer_values: values(&bundle.inferer_values)?,
        forecaster_values: values(&bundle.forecaster_values)?,
        one_out_inferer_values: values(&bundle.one_out_inferer_values)?,
        one_out_forecaster_values: values(&bundle.one_out_forecaster_values)?,
        one_in_forecaster_values: values(&bundle.one_in_forecaster_values)?,
        one_out_inferer_forecaster_values: bundle
            .one_out_inferer_forecaster_values
            .iter()
            .map(|(f, m)| {
                Ok(OneOutInfererForecasterValues {
                    forecaster: *f,
                    values: values(m)?,
                })
            })
            .collect::<Result<_, DutyError>>()?,
    })
}
