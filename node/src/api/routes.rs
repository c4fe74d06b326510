//! The REST handlers: parse the path and query, ask the actor, answer its JSON.
//!
//! Every handler turns its input into a typed [`Query`] (or a decoded envelope) first, so a
//! malformed request never reaches the actor (400), then maps the actor's answer: the JSON
//! document as is (200), [`QueryError::NotFound`](crate::actor::QueryError) (404), or a gone
//! actor (503).

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query as QueryParams, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chorus_protocol::envelope::Envelope;
use chorus_protocol::ids::{Hash32, TopicId};
use chorus_protocol::keys::PublicKey;
use serde::Deserialize;

use super::ApiState;
use super::auth::Admin;
use super::error::ApiError;
use crate::actor::{Answer, Query};
use chorus_crdt::ledger::LedgerEvent;

/// Content type of the metrics page (what `prometheus-client` writes).
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A JSON answer of the actor.
type JsonAnswer = Result<Json<Answer>, ApiError>;

fn bad_path(e: PathRejection) -> ApiError {
    ApiError::BadRequest(format!("bad path: {}", e.body_text()))
}

/// Parse a topic id path segment.
pub(super) fn topic_id(raw: Result<Path<String>, PathRejection>) -> Result<TopicId, ApiError> {
    let Path(s) = raw.map_err(bad_path)?;
    s.parse::<u64>()
        .map(TopicId)
        .map_err(|_| ApiError::BadRequest(format!("bad topic id {s:?}: expected an integer")))
}

fn address(raw: Result<Path<String>, PathRejection>) -> Result<PublicKey, ApiError> {
    let Path(s) = raw.map_err(bad_path)?;
    s.parse::<PublicKey>().map_err(|_| {
        ApiError::BadRequest(format!(
            "bad address {s:?}: expected 64 hex characters (an ed25519 public key)"
        ))
    })
}

async fn ask(state: &ApiState, q: Query) -> JsonAnswer {
    Ok(Json(state.handle.query(q).await?))
}

/// `GET /v1/status`.
pub(super) async fn status(State(state): State<ApiState>) -> JsonAnswer {
    ask(&state, Query::Status).await
}

/// `GET /v1/topics`.
pub(super) async fn topics(State(state): State<ApiState>) -> JsonAnswer {
    ask(&state, Query::Topics).await
}

/// `GET /v1/topics/{id}`.
pub(super) async fn topic(
    State(state): State<ApiState>,
    id: Result<Path<String>, PathRejection>,
) -> JsonAnswer {
    ask(&state, Query::Topic(topic_id(id)?)).await
}

/// The query string of `GET /v1/topics/{id}/inference`.
#[derive(Debug, Deserialize)]
pub(super) struct InferenceParams {
    epoch: Option<u64>,
    format: Option<String>,
    proof: Option<bool>,
    trusted: Option<u64>,
    variant: Option<String>,
}

/// `GET /v1/topics/{id}/inference[?epoch=E][&format=allora | &proof=true[&trusted=H]]`.
pub(super) async fn inference(
    State(state): State<ApiState>,
    id: Result<Path<String>, PathRejection>,
    params: Result<QueryParams<InferenceParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let topic = topic_id(id)?;
    let QueryParams(params) = params.map_err(|e| {
        ApiError::BadRequest(format!(
            "bad query: {} (expected ?epoch=<integer>&format=allora, or \
             ?epoch=<integer>&proof=true&trusted=<height>)",
            e.body_text()
        ))
    })?;
    let allora = match params.format.as_deref() {
        None | Some("chorus") => false,
        Some("allora") => true,
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "unknown format {other:?} (known: chorus, allora)"
            )));
        }
    };
    let variant: chorus_crdt::proof::Variant = match params.variant.as_deref() {
        None => Default::default(),
        Some(v) => v.parse().map_err(ApiError::BadRequest)?,
    };
    if params.proof == Some(true) {
        if allora {
            return Err(ApiError::BadRequest(
                "a proof has one format (docs/api.md); drop format=allora".into(),
            ));
        }
        let query = Query::InferenceProof {
            topic,
            epoch: params.epoch,
            trusted: params.trusted,
            variant,
        };
        return Ok(ask(&state, query).await?.into_response());
    }
    if params.trusted.is_some() {
        return Err(ApiError::BadRequest("trusted= goes with proof=true".into()));
    }
    let query = Query::Inference {
        topic,
        epoch: params.epoch,
        variant,
    };
    if !allora {
        return Ok(ask(&state, query).await?.into_response());
    }
    match state.handle.query(query).await? {
        Answer::Inference(doc) => {
            Ok(Json(super::allora::latest_network_inferences(&doc)).into_response())
        }
        _ => Err(ApiError::Unavailable),
    }
}

/// `GET /v1/topics/{id}/scores`.
pub(super) async fn scores(
    State(state): State<ApiState>,
    id: Result<Path<String>, PathRejection>,
) -> JsonAnswer {
    ask(&state, Query::Scores(topic_id(id)?)).await
}

/// `GET /v1/topics/{id}/leaderboard`.
pub(super) async fn leaderboard(
    State(state): State<ApiState>,
    id: Result<Path<String>, PathRejection>,
) -> JsonAnswer {
    ask(&state, Query::Leaderboard(topic_id(id)?)).await
}

/// `GET /v1/accounts/{address}`.
pub(super) async fn account(
    State(state): State<ApiState>,
    addr: Result<Path<String>, PathRejection>,
) -> JsonAnswer {
    ask(&state, Query::Account(address(addr)?)).await
}

/// `GET /v1/topics/{id}/window`.
pub(super) async fn window(
    State(state): State<ApiState>,
    id: Result<Path<String>, PathRejection>,
) -> JsonAnswer {
    ask(&state, Query::Window(topic_id(id)?)).await
}

/// The query string of `GET /v1/topics/{id}/bundles`.
#[derive(Debug, Deserialize)]
pub(super) struct BundlesParams {
    epoch: Option<u64>,
}

/// `GET /v1/topics/{id}/bundles[?epoch=E]`.
pub(super) async fn bundles(
    State(state): State<ApiState>,
    id: Result<Path<String>, PathRejection>,
    params: Result<QueryParams<BundlesParams>, QueryRejection>,
) -> JsonAnswer {
    let topic = topic_id(id)?;
    let QueryParams(params) = params.map_err(|e| {
        ApiError::BadRequest(format!(
            "bad query: {} (expected ?epoch=<integer>)",
            e.body_text()
        ))
    })?;
    ask(
        &state,
        Query::Bundles {
            topic,
            epoch: params.epoch,
        },
    )
    .await
}

/// `GET /v1/params`.
pub(super) async fn params(State(state): State<ApiState>) -> JsonAnswer {
    ask(&state, Query::Params).await
}

/// `GET /v1/proposals`.
pub(super) async fn proposals(State(state): State<ApiState>) -> JsonAnswer {
    ask(&state, Query::Proposals).await
}

/// `GET /v1/proposals/{id}`.
pub(super) async fn proposal(
    State(state): State<ApiState>,
    id: Result<Path<String>, PathRejection>,
) -> JsonAnswer {
    let Path(s) = id.map_err(bad_path)?;
    let id = s.parse::<Hash32>().map_err(|_| {
        ApiError::BadRequest(format!("bad proposal id {s:?}: expected 64 hex characters"))
    })?;
    ask(&state, Query::Proposal(id)).await
}

/// The query string of `GET /v1/accounts/{address}/statements`.
#[derive(Debug, Deserialize)]
pub(super) struct StatementParams {
    topic: Option<u64>,
    from: Option<u64>,
    to: Option<u64>,
}

/// `GET /v1/accounts/{address}/statements[?topic=T&from=E&to=E]`.
pub(super) async fn statements(
    State(state): State<ApiState>,
    addr: Result<Path<String>, PathRejection>,
    params: Result<QueryParams<StatementParams>, QueryRejection>,
) -> JsonAnswer {
    let address = address(addr)?;
    let QueryParams(p) = params.map_err(|e| {
        ApiError::BadRequest(format!(
            "bad query: {} (expected ?topic=<id>&from=<epoch>&to=<epoch>)",
            e.body_text()
        ))
    })?;
    if let (Some(from), Some(to)) = (p.from, p.to)
        && from > to
    {
        return Err(ApiError::BadRequest(format!(
            "from {from} is after to {to}"
        )));
    }
    ask(
        &state,
        Query::Statements(crate::actor::StatementsQuery {
            address,
            topic: p.topic.map(TopicId),
            from: p.from,
            to: p.to,
        }),
    )
    .await
}

/// `GET /v1/checkpoints/latest`.
pub(super) async fn latest_checkpoint(State(state): State<ApiState>) -> JsonAnswer {
    ask(&state, Query::LatestCheckpoint).await
}

/// The query string of `POST /v1/submit`.
#[derive(Debug, Deserialize)]
pub(super) struct SubmitParams {
    /// Seconds to wait for the checkpoint that applies or refuses the message.
    wait: Option<u64>,
}

/// Longest `?wait=` of `POST /v1/submit`, seconds.
pub const MAX_SUBMIT_WAIT_S: u64 = 600;

/// `POST /v1/submit[?wait=S]`: admin only; the body is the envelope's canonical bytes, or
/// their hex with `Content-Type: text/plain`. With `wait`, the answer also says what the
/// ledger did (`SubmitVerdict`), waiting at most `S` seconds for it.
pub(super) async fn submit(
    _admin: Admin,
    State(state): State<ApiState>,
    headers: HeaderMap,
    params: Result<QueryParams<SubmitParams>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let QueryParams(params) = params.map_err(|e| {
        ApiError::BadRequest(format!(
            "bad query: {} (expected ?wait=<seconds>)",
            e.body_text()
        ))
    })?;
    if params.wait.is_some_and(|w| w > MAX_SUBMIT_WAIT_S) {
        return Err(ApiError::BadRequest(format!(
            "wait is at most {MAX_SUBMIT_WAIT_S} seconds"
        )));
    }
    let body = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge(format!(
                "body larger than {} bytes",
                super::SUBMIT_BODY_LIMIT
            ))
        } else {
            ApiError::BadRequest(format!("bad body: {}", e.body_text()))
        }
    })?;
    let is_text = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            ct.trim_start()
                .to_ascii_lowercase()
                .starts_with("text/plain")
        });
    let bytes = if is_text {
        let text = std::str::from_utf8(&body)
            .map_err(|_| ApiError::BadRequest("text/plain body is not UTF-8".into()))?;
        hex::decode(text.trim())
            .map_err(|e| ApiError::BadRequest(format!("text/plain body is not hex: {e}")))?
    } else {
        body.to_vec()
    };
    // Refuse what is not even an envelope here; the actor does the full validation.
    let envelope = Envelope::from_bytes(&bytes)
        .map_err(|e| ApiError::BadRequest(format!("body is not a signed envelope: {e}")))?;
    // Only ledger messages get an applied/refused verdict; bundles and evidence do not.
    let ledger_message = envelope
        .payload_unverified()
        .is_ok_and(|p| p.nonce().is_some());
    let Some(wait) = params.wait.filter(|_| ledger_message) else {
        return Ok(Json(state.handle.submit(bytes).await?).into_response());
    };
    // Subscribed before submitting, so the verdict cannot pass unseen.
    let mut rx = state
        .handle
        .ledger_log()
        .ok_or(ApiError::Unavailable)?
        .subscribe();
    let result = state.handle.submit(bytes).await?;
    let mut verdict = crate::api::types::SubmitVerdict {
        result,
        ledger: None,
        height: None,
        ledger_reason: None,
    };
    if verdict.result.accepted {
        verdict.ledger = Some("pending".into());
        let id = verdict.result.id;
        let seen = async {
            loop {
                let rec = match rx.recv().await {
                    Ok(rec) => rec,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
                };
                for e in rec.events.iter() {
                    match e {
                        LedgerEvent::Applied { id: i, .. } if *i == id => {
                            return Some((rec.height, "applied", None));
                        }
                        LedgerEvent::Refused { id: i, reason, .. } if *i == id => {
                            return Some((rec.height, "refused", Some(reason.clone())));
                        }
                        _ => {}
                    }
                }
            }
        };
        if let Ok(Some((height, outcome, reason))) =
            tokio::time::timeout(std::time::Duration::from_secs(wait), seen).await
        {
            verdict.ledger = Some(outcome.into());
            verdict.height = Some(height);
            verdict.ledger_reason = reason;
        }
    }
    Ok(Json(verdict).into_response())
}

/// `GET /metrics`: Prometheus/OpenMetrics text.
pub(super) async fn metrics(State(state): State<ApiState>) -> Response {
    let text = state.handle.metrics().encode();
    ([(header::CONTENT_TYPE, OPENMETRICS)], text).into_response()
}

/// Unknown paths: 404 as JSON.
pub(super) async fn not_found() -> ApiError {
    ApiError::NotFound("no such route (see docs/api.md)".into())
}

/// Known path, wrong method: 405 as JSON.
pub(super) async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}
