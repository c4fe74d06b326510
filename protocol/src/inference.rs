//! The network inference of one (topic, epoch), as the ledger records it, the node serves it and
//! reputers score it: Allora's network-inference `ValueBundle` keyed by the workers' public
//! keys, with the weights that produced the combined value and the confidence interval.
//!
//! The mathematics ([`crate::math::synthesis`]) is generic over its keys and runs on the lowercase
//! hex of the keys (hex order = key order); [`NetworkInference::from_synthesis`] turns its result
//! into this type. `chorus synth`'s JSON document ([`crate::math::synth_io::SynthJsonOutput`]) is
//! a tool format, not this type.
//!
//! Encoding: JSON and bincode through serde; a key is its lowercase hex (so a JSON map key is the
//! hex string, and the bincode encoding equals that of the same map keyed by hex strings). The
//! fields are in alphabetical order, the order the ledger root has always hashed them in.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::keys::{KeyError, PublicKey};
use crate::math::synthesis::NetworkInferences;

/// A worker's value per public key.
pub type Values = BTreeMap<PublicKey, f64>;

/// The network inference of one (topic, epoch).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NetworkInference {
    /// I_i: the network's combined inference.
    pub combined_value: f64,
    /// Values at [`crate::math::synthesis::CONFIDENCE_PERCENTILES`] of the weighted distribution
    /// of the inferences; `None` for a provisional inference computed before finality.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence_interval_values: Option<Vec<f64>>,
    /// I_ik: forecast-implied inferences per forecaster.
    pub forecaster_values: Values,
    /// Raw (unnormalized) forecaster weights of the combined value.
    pub forecaster_weights: Values,
    /// I_ij: the inferences that counted.
    pub inferer_values: Values,
    /// Raw (unnormalized) inferer weights of the combined value.
    pub inferer_weights: Values,
    /// I⁻_i: the naive inference (without forecasts); `None` without a previous network loss.
    pub naive_value: Option<f64>,
    /// I⁺_{ki} per forecaster.
    pub one_in_forecaster_values: Values,
    /// I⁻_{k′i} per withheld forecaster.
    pub one_out_forecaster_values: Values,
    /// I⁻_{j′ik}: `{forecaster: {withheld inferer: value}}`.
    pub one_out_inferer_forecaster_values: BTreeMap<PublicKey, Values>,
    /// I⁻_{j′i} per withheld inferer.
    pub one_out_inferer_values: Values,
}

impl NetworkInference {
    /// The synthesis result over hex keys, with its confidence interval.
    ///
    /// # Errors
    /// A key that is not the hex of a public key.
    pub fn from_synthesis(n: NetworkInferences<String>) -> Result<Self, KeyError> {
        Ok(NetworkInference {
            combined_value: n.combined_value,
            confidence_interval_values: Some(n.confidence_interval_values),
            forecaster_values: keyed(n.forecaster_values)?,
            forecaster_weights: keyed(n.forecaster_weights)?,
            inferer_values: keyed(n.inferer_values)?,
            inferer_weights: keyed(n.inferer_weights)?,
            naive_value: n.naive_value,
            one_in_forecaster_values: keyed(n.one_in_forecaster_values)?,
            one_out_forecaster_values: keyed(n.one_out_forecaster_values)?,
            one_out_inferer_forecaster_values: n
                .one_out_inferer_forecaster_values
                .into_iter()
                .map(|(k, m)| Ok((k.parse()?, keyed(m)?)))
                .collect::<Result<_, KeyError>>()?,
            one_out_inferer_values: keyed(n.one_out_inferer_values)?,
        })
    }

    /// A provisional inference (before the window is final): the combined value and the values
    /// and weights that produced it, nothing one-in/one-out, no confidence interval.
    ///
    /// # Errors
    /// A key that is not the hex of a public key.
    pub fn provisional(
        combined_value: f64,
        inferer_values: BTreeMap<String, f64>,
        inferer_weights: BTreeMap<String, f64>,
        forecaster_values: BTreeMap<String, f64>,
        forecaster_weights: BTreeMap<String, f64>,
    ) -> Result<Self, KeyError> {
        Ok(NetworkInference {
            combined_value,
            confidence_interval_values: None,
            forecaster_values: keyed(forecaster_values)?,
            forecaster_weights: keyed(forecaster_weights)?,
            inferer_values: keyed(inferer_values)?,
            inferer_weights: keyed(inferer_weights)?,
            naive_value: None,
            one_in_forecaster_values: Values::new(),
            one_out_forecaster_values: Values::new(),
            one_out_inferer_forecaster_values: BTreeMap::new(),
            one_out_inferer_values: Values::new(),
        })
    }
}

/// A hex-keyed map as a key-keyed one.
fn keyed(m: BTreeMap<String, f64>) -> Result<Values, KeyError> {
    m.into_iter().map(|(k, v)| Ok((k.parse()?, v))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::math::synth_io::SynthJsonOutput;
    use crate::math::synthesis::{SynthesisInput, SynthesisParams, synthesize_bundle};

    fn hex(i: u8) -> String {
        crate::keys::Keypair::from_seed(&[i; 32]).public().to_hex()
    }

    fn synthesis() -> NetworkInferences<String> {
        let input = SynthesisInput {
            params: SynthesisParams::default(),
            initial_regret: 0.0,
            previous_network_loss: Some(-1.0),
            inferences: (1..=3u8).map(|i| (hex(i), f64::from(i))).collect(),
            forecasts: BTreeMap::new(),
            regrets: Default::default(),
        };
        synthesize_bundle(&input).unwrap()
    }

    /// The typed bundle encodes exactly as the hex-keyed document did (JSON and bincode), so the
    /// ledger root and the REST shape did not change when the ledger took this type.
    #[test]
    fn encodes_as_the_hex_keyed_document() {
        let typed = NetworkInference::from_synthesis(synthesis()).unwrap();
        let doc = SynthJsonOutput::from_inferences(synthesis(), true);
        assert_eq!(
            serde_json::to_string(&typed).unwrap(),
            serde_json::to_string(&doc).unwrap()
        );
        let cfg = crate::codec::config();
        assert_eq!(
            bincode::serde::encode_to_vec(&typed, cfg).unwrap(),
            bincode::serde::encode_to_vec(&doc, cfg).unwrap()
        );
        let back: NetworkInference =
            serde_json::from_str(&serde_json::to_string(&doc).unwrap()).unwrap();
        assert_eq!(back, typed);
        assert_eq!(typed.inferer_values.len(), 3);
    }

    #[test]
    fn a_key_that_is_not_hex_is_an_error() {
        let mut n = synthesis();
        n.inferer_weights.insert("not a key".into(), 1.0);
        assert!(NetworkInference::from_synthesis(n).is_err());
    }
}
