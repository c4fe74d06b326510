//! The node's REST API, live stream and metrics page (shapes in `docs/api.md`).
//!
//! The API is a thin layer over a [`NodeHandle`]: each route parses its input into a typed
//! [`Query`](crate::actor::Query) and answers the actor's JSON; `POST /v1/submit` (admin
//! token) hands a signed envelope to the actor; `GET /v1/topics/{id}/stream` turns the
//! handle's inference broadcast into server-sent events; `GET /metrics` encodes the handle's
//! [`NodeMetrics`](crate::metrics::NodeMetrics).
//!
//! | route | answers |
//! |---|---|
//! | `GET /v1/status` | 200, 503 |
//! | `GET /v1/topics` | 200, 503 |
//! | `GET /v1/topics/{id}` | 200, 400 (id not an integer), 404, 503 |
//! | `GET /v1/topics/{id}/inference[?epoch=E]` | 200, 400, 404, 503 |
//! | `GET /v1/topics/{id}/scores` | 200, 400, 404, 503 |
//! | `GET /v1/topics/{id}/leaderboard` | 200, 400, 404, 503 |
//! | `GET /v1/topics/{id}/stream` | 200 (SSE), 400, 404, 503 |
//! | `GET /v1/accounts/{address}` | 200, 400 (not 64 hex), 404, 503 |
//! | `GET /v1/checkpoints/latest` | 200, 404 (none yet), 503 |
//! | `POST /v1/submit` | 200, 400 (not an envelope), 401, 413, 503 |
//! | `GET /metrics` | 200 |
//! | anything else | 404, or 405 for a known path with the wrong method |
//!
//! ```no_run
//! # async fn example(handle: chorus_node::actor::NodeHandle) -> std::io::Result<()> {
//! use chorus_node::api;
//! let token = api::auth::load_or_create_token("admin.token".as_ref())?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! let router = api::router(handle, token);
//! api::serve(listener, router, async { let _ = tokio::signal::ctrl_c().await; }).await
//! # }
//! ```

pub mod allora;
pub mod auth;
pub mod client;
pub mod dashboard;
pub mod error;
#[cfg(feature = "test-support")]
pub mod fake;
mod routes;
pub mod sse;
pub mod types;

use std::future::{Future, IntoFuture};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::header;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use chorus_protocol::envelope::MAX_ENVELOPE_SIZE;
use futures::StreamExt;
use tokio::sync::{oneshot, watch};

use crate::actor::NodeHandle;

/// Largest `POST /v1/submit` body: the largest envelope as hex, plus a line break.
pub const SUBMIT_BODY_LIMIT: usize = 2 * MAX_ENVELOPE_SIZE + 2;

/// After the shutdown signal, how long [`serve`] waits for requests in flight (a query the
/// actor never answers, a client that stopped reading) before it returns anyway.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Content type of server-sent events.
const EVENT_STREAM: &str = "text/event-stream";

/// What every handler shares.
#[derive(Clone, Debug)]
pub(crate) struct ApiState {
    handle: NodeHandle,
    admin_token: Arc<str>,
}

/// The API's routes over `handle`; `POST /v1/submit` requires `admin_token`.
pub fn router(handle: NodeHandle, admin_token: String) -> Router {
    let state = ApiState {
        handle,
        admin_token: admin_token.into(),
    };
    Router::new()
        .route("/", get(dashboard::index))
        .route("/dashboard/app.js", get(dashboard::script))
        .route("/dashboard/style.css", get(dashboard::style))
        .route("/dashboard/icon.svg", get(dashboard::icon))
        .route("/favicon.ico", get(dashboard::icon))
        .route("/v1/status", get(routes::status))
        .route("/v1/topics", get(routes::topics))
        .route("/v1/topics/{id}", get(routes::topic))
        .route("/v1/topics/{id}/inference", get(routes::inference))
        .route("/v1/topics/{id}/scores", get(routes::scores))
        .route("/v1/topics/{id}/leaderboard", get(routes::leaderboard))
        .route("/v1/topics/{id}/stream", get(sse::stream))
        .route("/v1/events", get(sse::ledger))
        .route("/v1/accounts/{address}", get(routes::account))
        .route("/v1/accounts/{address}/statements", get(routes::statements))
        .route("/v1/topics/{id}/window", get(routes::window))
        .route("/v1/topics/{id}/bundles", get(routes::bundles))
        .route("/v1/params", get(routes::params))
        .route("/v1/proposals", get(routes::proposals))
        .route("/v1/proposals/{id}", get(routes::proposal))
        .route("/v1/checkpoints/latest", get(routes::latest_checkpoint))
        .route(
            "/v1/submit",
            post(routes::submit).layer(DefaultBodyLimit::max(SUBMIT_BODY_LIMIT)),
        )
        .route("/metrics", get(routes::metrics))
        .fallback(routes::not_found)
        .method_not_allowed_fallback(routes::method_not_allowed)
        .with_state(state)
}

/// Serve `router` on `listener` until `shutdown` completes, then stop gracefully: stop
/// accepting, end every live event stream, let requests in flight finish (at most
/// [`SHUTDOWN_GRACE`]), and return.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (closing_tx, closing_rx) = watch::channel(false);
    let (fired_tx, fired_rx) = oneshot::channel::<()>();
    let router = router.layer(middleware::from_fn(move |req: Request, next: Next| {
        let closing = closing_rx.clone();
        async move { end_streams_on_close(next.run(req).await, closing) }
    }));
    let server = axum::serve(listener, router).with_graceful_shutdown(async move {
        shutdown.await;
        let _ = closing_tx.send(true);
        let _ = fired_tx.send(());
    });
    let grace = async move {
        match fired_rx.await {
            Ok(()) => tokio::time::sleep(SHUTDOWN_GRACE).await,
            // The server ended first and dropped the sender: nothing to wait for.
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        r = server.into_future() => r,
        () = grace => {
            tracing::warn!(grace = ?SHUTDOWN_GRACE, "API: requests still in flight after shutdown; closing anyway");
            Ok(())
        }
    }
}

/// Cut event-stream bodies when the server starts closing, so graceful shutdown does not wait
/// on subscribers forever.
fn end_streams_on_close(response: Response, mut closing: watch::Receiver<bool>) -> Response {
    let is_stream = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with(EVENT_STREAM));
    if !is_stream {
        return response;
    }
    let (parts, body) = response.into_parts();
    let closed = async move {
        // A dropped sender means the server is gone: close too.
        let _ = closing.wait_for(|c| *c).await;
    };
    let body = body.into_data_stream().take_until(closed);
    Response::from_parts(parts, Body::from_stream(body))
}
