//! Loss functions a reputer applies to an inference against the ground truth (spec §5.2).
//!
//! The chain only stores the topic's `loss_method` string; reputers compute the loss off-chain and
//! report `log10(loss)` when the loss function is never negative (allora-offchain-node
//! `ComputeLossBundle`). [`LossMethod`] is the serde-friendly description a topic definition can
//! store; [`LossMethod::reported_loss`] gives the value a reputer submits.
//!
//! The formulas are the standard ones (the reference loss service's source is not public); ZPTAE
//! follows the Allora research forum (`loss_zptae(y_true, y_pred, sigma, mean, alpha=0.25, beta=2,
//! gamma=4, penalty_norm=0.01)`).

use serde::{Deserialize, Serialize};

use super::error::{MathError, finite};

fn default_alpha() -> f64 {
    0.25
}
fn default_beta() -> f64 {
    2.0
}
fn default_gamma() -> f64 {
    4.0
}
fn default_penalty_norm() -> f64 {
    0.01
}

/// A topic's loss function with its options.
///
/// Serialized with an internal tag, e.g. `{"method":"mse"}`, `{"method":"huber","delta":1.0}`,
/// `{"method":"zptae","mean":0.0,"std_dev":0.01}`. `"sqe"` is accepted as an alias of `"mse"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
#[serde(tag = "method", rename_all = "snake_case")]
pub enum LossMethod {
    /// Squared error of one sample, (ŷ − y)² (Allora's `sqe`; MSE of a single sample).
    #[serde(alias = "sqe")]
    Mse,
    /// Absolute error |ŷ − y|.
    Mae,
    /// Huber loss: ½(ŷ−y)² if |ŷ−y| ≤ δ, else δ(|ŷ−y| − ½δ).
    Huber {
        /// δ > 0.
        delta: f64,
    },
    /// Z-score tanh absolute error |tanh(z(ŷ)) − tanh(z(y))|, z(x) = (x − μ)/σ.
    Ztae {
        /// μ: reference mean of the target.
        mean: f64,
        /// σ > 0: reference standard deviation of the target.
        std_dev: f64,
    },
    /// Z-score power-tanh absolute error
    /// |pt(z(ŷ)) − pt(z(y))| + (penalty_norm·|z(ŷ) − z(y)|)^γ, pt(x) = x / (1 + |x|^β)^((1−α)/β).
    Zptae {
        /// μ: reference mean of the target.
        mean: f64,
        /// σ > 0: reference standard deviation of the target.
        std_dev: f64,
        /// α (default 0.25).
        #[serde(default = "default_alpha")]
        alpha: f64,
        /// β > 0 (default 2).
        #[serde(default = "default_beta")]
        beta: f64,
        /// γ, exponent of the penalty term (default 4).
        #[serde(default = "default_gamma")]
        gamma: f64,
        /// Scale of the penalty term (default 0.01).
        #[serde(default = "default_penalty_norm")]
        penalty_norm: f64,
    },
}

impl LossMethod {
    /// ZPTAE with the forum defaults α = 0.25, β = 2, γ = 4, penalty 0.01.
    pub fn zptae(mean: f64, std_dev: f64) -> Self {
        LossMethod::Zptae {
            mean,
            std_dev,
            alpha: default_alpha(),
            beta: default_beta(),
            gamma: default_gamma(),
            penalty_norm: default_penalty_norm(),
        }
    }

    /// Allora's `loss_method` name of this function.
    pub fn name(&self) -> &'static str {
        match self {
            LossMethod::Mse => "mse",
            LossMethod::Mae => "mae",
            LossMethod::Huber { .. } => "huber",
            LossMethod::Ztae { .. } => "ztae",
            LossMethod::Zptae { .. } => "zptae",
        }
    }

    /// True if the loss can never be negative; such losses are reported as log10 (Allora's
    /// `/is_never_negative`). All built-in methods are never negative.
    pub fn is_never_negative(&self) -> bool {
        true
    }

    /// Checks the options (finite, δ > 0, σ > 0, β > 0).
    pub fn validate(&self) -> Result<(), MathError> {
        let positive = |name: &'static str, v: f64| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(MathError::InvalidParameter {
                    name,
                    reason: format!("must be finite and > 0, got {v}"),
                })
            }
        };
        match *self {
            LossMethod::Mse | LossMethod::Mae => Ok(()),
            LossMethod::Huber { delta } => positive("delta", delta),
            LossMethod::Ztae { mean, std_dev } => {
                finite("mean", mean)?;
                positive("std_dev", std_dev)
            }
            LossMethod::Zptae {
                mean,
                std_dev,
                alpha,
                beta,
                gamma,
                penalty_norm,
            } => {
                finite("mean", mean)?;
                positive("std_dev", std_dev)?;
                finite("alpha", alpha)?;
                positive("beta", beta)?;
                finite("gamma", gamma)?;
                finite("penalty_norm", penalty_norm)?;
                Ok(())
            }
        }
    }

    /// The raw loss of `prediction` against `truth`.
    pub fn loss(&self, truth: f64, prediction: f64) -> Result<f64, MathError> {
        self.validate()?;
        finite("truth", truth)?;
        finite("prediction", prediction)?;
        let e = prediction - truth;
        let v = match *self {
            LossMethod::Mse => e * e,
            LossMethod::Mae => e.abs(),
            LossMethod::Huber { delta } => {
                let a = e.abs();
                if a <= delta {
                    0.5 * e * e
                } else {
                    delta * (a - 0.5 * delta)
                }
            }
            LossMethod::Ztae { mean, std_dev } => {
                let zp = (prediction - mean) / std_dev;
                let zt = (truth - mean) / std_dev;
                (libm::tanh(zp) - libm::tanh(zt)).abs()
            }
            LossMethod::Zptae {
                mean,
                std_dev,
                alpha,
                beta,
                gamma,
                penalty_norm,
            } => {
                let zp = (prediction - mean) / std_dev;
                let zt = (truth - mean) / std_dev;
                let pt =
                    |x: f64| x / libm::pow(1.0 + libm::pow(x.abs(), beta), (1.0 - alpha) / beta);
                (pt(zp) - pt(zt)).abs() + libm::pow(penalty_norm * (zp - zt).abs(), gamma)
            }
        };
        finite("loss", v)
    }

    /// The value a reputer submits: `log10(max(loss, floor))` for never-negative losses (Allora's
    /// convention), the raw loss otherwise.
    ///
    /// A perfect prediction has loss 0, whose log10 is −∞: pass a positive `floor` (e.g. half a
    /// tick squared for price topics). With `floor <= 0` a zero loss is an error.
    pub fn reported_loss(&self, truth: f64, prediction: f64, floor: f64) -> Result<f64, MathError> {
        let l = self.loss(truth, prediction)?;
        if !self.is_never_negative() {
            return Ok(l);
        }
        finite("floor", floor)?;
        let l = if l < floor { floor } else { l };
        if l <= 0.0 {
            return Err(MathError::InvalidParameter {
                name: "floor",
                reason: "loss is 0 and the floor is not positive: log10 would be -inf".into(),
            });
        }
        finite("log10 loss", libm::log10(l))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_losses() {
        assert_eq!(LossMethod::Mse.loss(1.0, 3.0).unwrap(), 4.0);
        assert_eq!(LossMethod::Mae.loss(1.0, -2.0).unwrap(), 3.0);
        let h = LossMethod::Huber { delta: 1.0 };
        assert_eq!(h.loss(0.0, 0.5).unwrap(), 0.125);
        assert_eq!(h.loss(0.0, 3.0).unwrap(), 2.5);
        assert_eq!(LossMethod::Mse.reported_loss(0.0, 10.0, 0.0).unwrap(), 2.0);
        assert!(LossMethod::Mse.reported_loss(1.0, 1.0, 0.0).is_err());
        assert_eq!(LossMethod::Mse.reported_loss(1.0, 1.0, 1e-4).unwrap(), -4.0);
        assert!(LossMethod::Mse.loss(f64::NAN, 1.0).is_err());
        assert!(LossMethod::Huber { delta: 0.0 }.loss(0.0, 1.0).is_err());
    }

    #[test]
    fn z_losses() {
        let z = LossMethod::Ztae {
            mean: 0.0,
            std_dev: 1.0,
        };
        assert!((z.loss(0.0, 1.0).unwrap() - libm::tanh(1.0)).abs() < 1e-16);
        let zp = LossMethod::zptae(0.0, 1.0);
        // pt(1) = 1/2^0.375, plus (0.01)^4
        let expect = 1.0 / libm::pow(2.0, 0.375) + 1e-8;
        assert!((zp.loss(0.0, 1.0).unwrap() - expect).abs() < 1e-15);
        assert_eq!(zp.loss(0.3, 0.3).unwrap(), 0.0);
    }

    #[test]
    fn serde_forms() {
        let m: LossMethod = serde_json::from_str(r#"{"method":"sqe"}"#).unwrap();
        assert_eq!(m, LossMethod::Mse);
        let m: LossMethod =
            serde_json::from_str(r#"{"method":"zptae","mean":0,"std_dev":2}"#).unwrap();
        assert_eq!(m, LossMethod::zptae(0.0, 2.0));
        assert_eq!(
            serde_json::to_string(&LossMethod::Huber { delta: 0.5 }).unwrap(),
            r#"{"method":"huber","delta":0.5}"#
        );
    }
}
