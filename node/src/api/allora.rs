//! Allora-shaped answers: `GET /v1/topics/{id}/inference?format=allora` in the shape of
//! Allora's `latest_network_inferences` query (API v2), so an Allora consumer needs only a new
//! base URL.
//!
//! Numbers are decimal strings (Rust's shortest round-trip form of the `f64`), per-worker
//! values are `[{"worker", "value"}]` lists in key order, and block heights map to Chorus's
//! times: the epoch is the nonce (`inference_block_height`, `reputer_request_nonce`), the
//! finalizing checkpoint height is `loss_block_height` ("0" while not finalized). Workers are
//! Chorus addresses (64 hex characters), not bech32. The field-by-field table is in
//! `docs/api.md`.

use std::collections::BTreeMap;

use chorus_protocol::inference::Values;
use chorus_protocol::keys::PublicKey;
use chorus_protocol::math::synthesis::CONFIDENCE_PERCENTILES;
use serde::Serialize;

use super::types;

/// `{"worker": "…", "value": "…"}`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct WorkerValue {
    /// The worker's address.
    pub worker: String,
    /// Its value.
    pub value: String,
}

/// `{"worker": "…", "weight": "…"}`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct WorkerWeight {
    /// The worker's address.
    pub worker: String,
    /// Its raw regret-informed weight.
    pub weight: String,
}

/// One forecaster's one-out inferer values.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct OneOutInfererForecasterValues {
    /// The forecaster.
    pub forecaster: String,
    /// The network inference without each inferer, this forecaster's forecast included.
    pub one_out_inferer_values: Vec<WorkerValue>,
}

/// `{"block_height": "…"}`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Nonce {
    /// The epoch.
    pub block_height: String,
}

/// `{"reputer_nonce": {"block_height": "…"}}`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ReputerRequestNonce {
    /// The nonce the reputers evaluate.
    pub reputer_nonce: Nonce,
}

/// Allora's `ValueBundle` of network inferences.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NetworkInferences {
    /// Topic id.
    pub topic_id: String,
    /// The nonce.
    pub reputer_request_nonce: ReputerRequestNonce,
    /// Empty: a network inference has no single reputer.
    pub reputer: String,
    /// Empty.
    pub extra_data: String,
    /// The combined inference.
    pub combined_value: String,
    /// The inferences that counted.
    pub inferer_values: Vec<WorkerValue>,
    /// Forecast-implied inferences.
    pub forecaster_values: Vec<WorkerValue>,
    /// The naive inference ("" without a previous network loss).
    pub naive_value: String,
    /// The inference without each inferer.
    pub one_out_inferer_values: Vec<WorkerValue>,
    /// The inference without each forecaster.
    pub one_out_forecaster_values: Vec<WorkerValue>,
    /// The naive inference with one forecaster.
    pub one_in_forecaster_values: Vec<WorkerValue>,
    /// Per forecaster, the inference without each inferer.
    pub one_out_inferer_forecaster_values: Vec<OneOutInfererForecasterValues>,
}

/// The answer of `?format=allora`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LatestNetworkInferences {
    /// The values.
    pub network_inferences: NetworkInferences,
    /// Raw inferer weights.
    pub inferer_weights: Vec<WorkerWeight>,
    /// Raw forecaster weights.
    pub forecaster_weights: Vec<WorkerWeight>,
    /// The epoch.
    pub inference_block_height: String,
    /// The finalizing checkpoint height ("0" while not finalized).
    pub loss_block_height: String,
    /// `["2.28", "15.87", "50", "84.13", "97.72"]` (empty without an interval).
    pub confidence_interval_raw_percentiles: Vec<String>,
    /// The inference distribution's values at those percentiles.
    pub confidence_interval_values: Vec<String>,
}

fn num(v: f64) -> String {
    v.to_string()
}

fn values(m: &Values) -> Vec<WorkerValue> {
    m.iter()
        .map(|(k, v)| WorkerValue {
            worker: k.to_hex(),
            value: num(*v),
        })
        .collect()
}

fn weights(m: &Values) -> Vec<WorkerWeight> {
    m.iter()
        .map(|(k, v)| WorkerWeight {
            worker: k.to_hex(),
            weight: num(*v),
        })
        .collect()
}

fn one_out_by_forecaster(m: &BTreeMap<PublicKey, Values>) -> Vec<OneOutInfererForecasterValues> {
    m.iter()
        .map(|(f, v)| OneOutInfererForecasterValues {
            forecaster: f.to_hex(),
            one_out_inferer_values: values(v),
        })
        .collect()
}

/// The Allora shape of one network inference.
pub fn latest_network_inferences(doc: &types::Inference) -> LatestNetworkInferences {
    let b = &doc.bundle;
    let epoch = doc.epoch.to_string();
    let interval = b.confidence_interval_values.clone().unwrap_or_default();
    LatestNetworkInferences {
        network_inferences: NetworkInferences {
            topic_id: doc.topic.to_string(),
            reputer_request_nonce: ReputerRequestNonce {
                reputer_nonce: Nonce {
                    block_height: epoch.clone(),
                },
            },
            reputer: String::new(),
            extra_data: String::new(),
            combined_value: num(b.combined_value),
            inferer_values: values(&b.inferer_values),
            forecaster_values: values(&b.forecaster_values),
            naive_value: b.naive_value.map(num).unwrap_or_default(),
            one_out_inferer_values: values(&b.one_out_inferer_values),
            one_out_forecaster_values: values(&b.one_out_forecaster_values),
            one_in_forecaster_values: values(&b.one_in_forecaster_values),
            one_out_inferer_forecaster_values: one_out_by_forecaster(
                &b.one_out_inferer_forecaster_values,
            ),
        },
        inferer_weights: weights(&b.inferer_weights),
        forecaster_weights: weights(&b.forecaster_weights),
        inference_block_height: epoch,
        loss_block_height: doc.checkpoint_height.unwrap_or(0).to_string(),
        confidence_interval_raw_percentiles: if interval.is_empty() {
            vec![]
        } else {
            CONFIDENCE_PERCENTILES.iter().map(|p| num(*p)).collect()
        },
        confidence_interval_values: interval.into_iter().map(num).collect(),
    }
}
