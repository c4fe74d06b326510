//! Typed errors of the math module.

use thiserror::Error;

/// Errors returned by the Allora math functions.
///
/// No function of [`crate::math`] panics on bad input: NaN or infinite numbers, empty sets,
/// mismatched lengths and out-of-range parameters are reported with one of these variants.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum MathError {
    /// A number that must be finite is NaN or infinite.
    #[error("{what} is not a finite number ({value})")]
    NonFinite {
        /// Which input or intermediate value.
        what: String,
        /// The offending value.
        value: f64,
    },
    /// A set that must not be empty is empty.
    #[error("empty input: {0}")]
    Empty(&'static str),
    /// A parameter is outside its allowed range.
    #[error("invalid parameter {name}: {reason}")]
    InvalidParameter {
        /// Parameter name (Allora's name where there is one).
        name: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// Two inputs that must have the same length (or the same keys) do not.
    #[error("length mismatch: {0}")]
    LengthMismatch(String),
    /// A result could not be computed because a denominator is zero.
    #[error("division by zero: {0}")]
    DivisionByZero(&'static str),
}

/// Returns `Ok(v)` if `v` is finite, else [`MathError::NonFinite`] naming `what`.
pub fn finite(what: &str, v: f64) -> Result<f64, MathError> {
    if v.is_finite() {
        Ok(v)
    } else {
        Err(MathError::NonFinite {
            what: what.to_string(),
            value: v,
        })
    }
}

/// Checks that every value of an iterator is finite.
pub fn all_finite<'a, I: IntoIterator<Item = &'a f64>>(what: &str, it: I) -> Result<(), MathError> {
    for v in it {
        finite(what, *v)?;
    }
    Ok(())
}
