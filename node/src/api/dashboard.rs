//! The node's web dashboard at `/`: one HTML page, its script and its style sheet, embedded in
//! the binary (no build step). It is read-only and reads only this node's REST API and ledger
//! event stream; the Content-Security-Policy forbids every other origin, inline scripts and
//! inline styles.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

/// The page.
pub const INDEX: &str = include_str!("dashboard/index.html");
/// Its script.
pub const SCRIPT: &str = include_str!("dashboard/app.js");
/// Its style sheet.
pub const STYLE: &str = include_str!("dashboard/style.css");
/// Its icon.
pub const ICON: &str = include_str!("dashboard/icon.svg");

/// What the page may load: its own origin only.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

fn asset(body: &'static str, content_type: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// `GET /`.
pub(super) async fn index() -> Response {
    asset(INDEX, "text/html; charset=utf-8")
}

/// `GET /dashboard/app.js`.
pub(super) async fn script() -> Response {
    asset(SCRIPT, "text/javascript; charset=utf-8")
}

/// `GET /dashboard/style.css`.
pub(super) async fn style() -> Response {
    asset(STYLE, "text/css; charset=utf-8")
}

/// `GET /dashboard/icon.svg` (also `/favicon.ico`, which browsers ask for by themselves).
pub(super) async fn icon() -> Response {
    asset(ICON, "image/svg+xml")
}
