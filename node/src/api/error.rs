//! API errors: one JSON line `{"error": "…"}` with the status codes of `docs/api.md`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::actor::QueryError;

/// Why a request failed; each variant has one status code.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// A malformed path segment, query parameter or body (400).
    #[error("{0}")]
    BadRequest(String),
    /// The admin token is missing or wrong (401).
    #[error("missing or wrong admin token (send `Authorization: Bearer <token>`)")]
    Unauthorized,
    /// No such topic, epoch, account or route (404).
    #[error("{0}")]
    NotFound(String),
    /// The method is not served on this path (405).
    #[error("method not allowed")]
    MethodNotAllowed,
    /// The body is larger than any envelope can be (413).
    #[error("{0}")]
    PayloadTooLarge(String),
    /// The node is shutting down or gone (503).
    #[error("the node is not running")]
    Unavailable,
}

impl ApiError {
    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

impl From<QueryError> for ApiError {
    fn from(e: QueryError) -> Self {
        match e {
            QueryError::NotFound(what) => ApiError::NotFound(format!("not found: {what}")),
            QueryError::Invalid(why) => ApiError::BadRequest(why),
            QueryError::Unavailable | QueryError::WrongAnswer(_) => ApiError::Unavailable,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = serde_json::json!({ "error": self.to_string() });
        let mut response = (status, axum::Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}
