//! An external loss function with the Allora off-chain node's `LossFunctionService` contract,
//! for reputers that already run one.
//!
//! - `POST {url}/calculate` with `{"y_true": "<truth>", "y_pred": "<value>", "options":
//!   {…}}` (numbers as decimal strings, `options` the configured string map, e.g.
//!   `{"loss_method": "sqe"}`) answers `{"loss": "<decimal>"}` (a JSON number is accepted too);
//! - `POST {url}/is_never_negative` with `{"options": {…}}` answers
//!   `{"is_never_negative": true|false}`; asked once, then remembered.
//!
//! As Allora's reputer does, a never-negative loss is reported as `log10(max(loss, floor))`
//! (the floor as for the built-in losses: a perfect prediction is not −∞), any other loss as
//! is. A loss that is not a finite number, or a negative one from a service that said its
//! losses are never negative, is refused: the reputer then skips the epoch (reason
//! `loss_service`), it never reports a made-up loss.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use futures::StreamExt;

use serde_json::{Value, json};
use tokio::sync::OnceCell;

use super::http::{HttpEndpoint, HttpError, HttpOptions};

/// Most `/calculate` requests one reputer has in flight at once.
pub const LOSS_CONCURRENCY: usize = 8;

/// A loss-function service.
#[derive(Debug)]
pub struct LossService {
    endpoint: HttpEndpoint,
    options: BTreeMap<String, String>,
    never_negative: OnceCell<bool>,
}

/// The service failed or answered something unusable.
#[derive(Debug, thiserror::Error)]
pub enum LossServiceError {
    /// The request failed.
    #[error("loss service: {0}")]
    Http(#[from] HttpError),
    /// The answer is not the contract's document.
    #[error("loss service {path}: unusable answer {answer:?}")]
    Answer {
        /// The route asked.
        path: &'static str,
        /// The start of the answer.
        answer: String,
    },
    /// A negative loss from a service whose losses are never negative.
    #[error("loss service: negative loss {0} although is_never_negative is true")]
    Negative(f64),
}

impl LossServiceError {
    /// A short stable label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            LossServiceError::Http(e) => e.reason(),
            LossServiceError::Answer { .. } | LossServiceError::Negative(_) => "loss_service",
        }
    }

    /// Whether asking again may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            LossServiceError::Http(e) => e.is_transient(),
            LossServiceError::Answer { .. } | LossServiceError::Negative(_) => false,
        }
    }
}

fn unusable(path: &'static str, body: &[u8]) -> LossServiceError {
    LossServiceError::Answer {
        path,
        answer: String::from_utf8_lossy(body).chars().take(120).collect(),
    }
}

impl LossService {
    /// A service at `url` (its base, e.g. `http://127.0.0.1:5000`; no placeholders).
    pub fn new(
        url: &str,
        options: BTreeMap<String, String>,
        http: &HttpOptions,
    ) -> Result<Self, HttpError> {
        if url.contains(['{', '?', '#']) {
            return Err(HttpError::InvalidUrl {
                url: url.split(['?', '#']).next().unwrap_or(url).to_owned(),
                reason: "a loss service URL is a base (no placeholders, query or fragment): \
                         /calculate and /is_never_negative are appended"
                    .into(),
            });
        }
        Ok(Self {
            endpoint: HttpEndpoint::new(url, http)?,
            options,
            never_negative: OnceCell::new(),
        })
    }

    /// The service's base URL.
    pub fn url(&self) -> &str {
        self.endpoint.url_template()
    }

    /// `POST /is_never_negative` (once; remembered after the first answer).
    pub async fn is_never_negative(&self) -> Result<bool, LossServiceError> {
        self.never_negative
            .get_or_try_init(|| async {
                const PATH: &str = "/is_never_negative";
                let body = serde_json::to_vec(&json!({ "options": self.options }))
                    .map_err(|_| unusable(PATH, b""))?;
                let response = self.endpoint.post_json(PATH, body).await?;
                let answer: Value = serde_json::from_slice(&response.body)
                    .map_err(|_| unusable(PATH, &response.body))?;
                answer
                    .get("is_never_negative")
                    .and_then(Value::as_bool)
                    .ok_or_else(|| unusable(PATH, &response.body))
            })
            .await
            .copied()
    }

    /// `POST /calculate`: the raw loss of `prediction` against `truth`.
    pub async fn loss(&self, truth: f64, prediction: f64) -> Result<f64, LossServiceError> {
        const PATH: &str = "/calculate";
        let request = json!({
            "y_true": truth.to_string(),
            "y_pred": prediction.to_string(),
            "options": self.options,
        });
        let body = serde_json::to_vec(&request).map_err(|_| unusable(PATH, b""))?;
        let response = self.endpoint.post_json(PATH, body).await?;
        let answer: Value =
            serde_json::from_slice(&response.body).map_err(|_| unusable(PATH, &response.body))?;
        let loss = match answer.get("loss") {
            Some(Value::String(s)) => s.trim().parse::<f64>().ok(),
            Some(Value::Number(n)) => n.as_f64(),
            _ => None,
        };
        loss.filter(|l| l.is_finite())
            .ok_or_else(|| unusable(PATH, &response.body))
    }

    /// The reported loss of every value in `values` (keyed by its bits): `log10(max(loss,
    /// floor))` if the service's losses are never negative, else the loss. Each distinct
    /// value is asked once, at most [`LOSS_CONCURRENCY`] at a time (a bundle of 1000 workers
    /// is some 3000 values: one at a time they would not fit a reputer window); the first
    /// failure ends the whole call.
    pub async fn reported_losses(
        &self,
        truth: f64,
        values: &[f64],
        floor: f64,
    ) -> Result<HashMap<u64, f64>, LossServiceError> {
        let never_negative = self.is_never_negative().await?;
        let distinct: BTreeSet<u64> = values.iter().map(|v| v.to_bits()).collect();
        let mut asks = futures::stream::iter(distinct)
            .map(|bits| async move {
                let l = self.loss(truth, f64::from_bits(bits)).await?;
                let reported = if never_negative {
                    if l < 0.0 {
                        return Err(LossServiceError::Negative(l));
                    }
                    libm::log10(l.max(floor))
                } else {
                    l
                };
                Ok((bits, reported))
            })
            .buffer_unordered(LOSS_CONCURRENCY);
        let mut out = HashMap::new();
        while let Some(answer) = asks.next().await {
            let (bits, reported) = answer?;
            out.insert(bits, reported);
        }
        Ok(out)
    }
}
