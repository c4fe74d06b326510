//! HTTP adapter for external models, forecasters and truth sources, compatible with the Allora
//! off-chain node's API adapter.
//!
//! Each call is a `GET` of a URL [`Template`] (`{TopicId}`, `{Epoch}`/`{BlockHeight}`, `{Token}`,
//! configured params). The whole exchange — connect, request, response body — must finish within
//! the configured timeout, and the body may not exceed the size cap (default 64 KiB). Any 2xx
//! status is accepted; see [`super::value`] for the body formats.
//!
//! **Plain HTTP only.** There is no TLS stack: only `http://` URLs are accepted. Models are meant
//! to run beside the node, typically on `127.0.0.1`; put a local proxy in front of anything
//! remote. Error messages name the URL without its query string (which may hold API keys).

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::{Request, StatusCode, Uri, header};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use super::template::{EpochContext, Template, TemplateError};
use super::value::{ValueError, parse_forecasts, parse_optional_value, parse_value};

/// Default timeout of one request.
pub const DEFAULT_HTTP_TIMEOUT: Duration = Duration::from_millis(2000);

/// Default response size cap (64 KiB).
pub const DEFAULT_MAX_BODY_BYTES: usize = 64 * 1024;

/// A request to a model, forecaster or truth endpoint failed.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The URL template is invalid.
    #[error("URL template: {0}")]
    Template(#[from] TemplateError),
    /// The rendered URL does not parse or has no host.
    #[error("invalid URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL (query removed).
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// Not an `http://` URL (there is no TLS support).
    #[error(
        "unsupported URL scheme in {url:?}: only http:// is supported (no TLS; run models locally)"
    )]
    UnsupportedScheme {
        /// The URL (query removed).
        url: String,
    },
    /// The exchange did not finish in time.
    #[error("{url}: timed out after {after:?}")]
    Timeout {
        /// The URL (query removed).
        url: String,
        /// The timeout.
        after: Duration,
    },
    /// No connection could be made.
    #[error("{url}: connect failed: {reason}")]
    Connect {
        /// The URL (query removed).
        url: String,
        /// Why.
        reason: String,
    },
    /// The request or response failed after connecting.
    #[error("{url}: request failed: {reason}")]
    Request {
        /// The URL (query removed).
        url: String,
        /// Why.
        reason: String,
    },
    /// A non-2xx status.
    #[error("{url}: HTTP status {status}: {body:?}")]
    Status {
        /// The URL (query removed).
        url: String,
        /// The status code.
        status: u16,
        /// The start of the response body.
        body: String,
    },
    /// The response body exceeds the cap.
    #[error("{url}: response body larger than {limit} bytes")]
    BodyTooLarge {
        /// The URL (query removed).
        url: String,
        /// The cap.
        limit: usize,
    },
    /// The body is not a usable value.
    #[error("{url}: {source}")]
    Value {
        /// The URL (query removed).
        url: String,
        /// What is wrong with the body.
        #[source]
        source: ValueError,
    },
}

impl HttpError {
    /// A short stable label for metrics (`timeout`, `connect`, `status`, `body_too_large`,
    /// `not_a_number`, `non_finite`, …).
    pub fn reason(&self) -> &'static str {
        match self {
            HttpError::Template(_) | HttpError::InvalidUrl { .. } => "invalid_url",
            HttpError::UnsupportedScheme { .. } => "unsupported_scheme",
            HttpError::Timeout { .. } => "timeout",
            HttpError::Connect { .. } => "connect",
            HttpError::Request { .. } => "request",
            HttpError::Status { .. } => "status",
            HttpError::BodyTooLarge { .. } => "body_too_large",
            HttpError::Value { source, .. } => source.reason(),
        }
    }
}

/// A successful (2xx) response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// The body (at most the cap).
    pub body: Bytes,
}

/// Options of an HTTP endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpOptions {
    /// Timeout of the whole exchange.
    pub timeout: Duration,
    /// Response size cap in bytes.
    pub max_body_bytes: usize,
    /// Extra static placeholders for the URL template.
    pub params: BTreeMap<String, String>,
}

impl Default for HttpOptions {
    fn default() -> Self {
        Self {
            timeout: DEFAULT_HTTP_TIMEOUT,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            params: BTreeMap::new(),
        }
    }
}

/// A templated `GET` endpoint. Cheap to clone (the connection pool is shared).
#[derive(Debug, Clone)]
pub struct HttpEndpoint {
    template: Template,
    timeout: Duration,
    max_body_bytes: usize,
    client: Client<HttpConnector, Empty<Bytes>>,
}

fn strip_query(url: &str) -> String {
    url.split(['?', '#']).next().unwrap_or(url).to_owned()
}

fn check_url(url: &str) -> Result<Uri, HttpError> {
    let shown = strip_query(url);
    let uri: Uri =
        url.parse()
            .map_err(|e: hyper::http::uri::InvalidUri| HttpError::InvalidUrl {
                url: shown.clone(),
                reason: e.to_string(),
            })?;
    match uri.scheme_str() {
        Some("http") => {}
        Some(_) => return Err(HttpError::UnsupportedScheme { url: shown }),
        None => {
            return Err(HttpError::InvalidUrl {
                url: shown,
                reason: "missing http:// scheme".into(),
            });
        }
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(HttpError::InvalidUrl {
            url: shown,
            reason: "missing host".into(),
        });
    }
    Ok(uri)
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(inner) = cur {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        cur = inner.source();
    }
    s
}

impl HttpEndpoint {
    /// An endpoint for the URL template `url`. Checks the template and that it renders to a
    /// valid `http://` URL.
    pub fn new(url: &str, options: &HttpOptions) -> Result<Self, HttpError> {
        let template = Template::parse(url, &options.params)?;
        check_url(&template.render_url(&EpochContext::new(0, 0, "TOKEN")))?;
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(4)
            .build_http();
        Ok(Self {
            template,
            timeout: options.timeout,
            max_body_bytes: options.max_body_bytes,
            client,
        })
    }

    /// The URL template as written.
    pub fn url_template(&self) -> &str {
        self.template.source()
    }

    /// The timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The URL for an epoch.
    pub fn url_for(&self, ctx: &EpochContext) -> String {
        self.template.render_url(ctx)
    }

    /// `GET`s the URL for `ctx`; a non-2xx status is [`HttpError::Status`].
    pub async fn fetch(&self, ctx: &EpochContext) -> Result<HttpResponse, HttpError> {
        let url = self.url_for(ctx);
        let uri = check_url(&url)?;
        let shown = strip_query(&url);
        tracing::debug!(url = %shown, epoch = ctx.epoch, "model request");
        let request = Request::get(uri)
            .header(header::USER_AGENT, "chorus-node")
            .header(
                header::ACCEPT,
                "application/json, text/plain;q=0.9, */*;q=0.1",
            )
            .body(Empty::<Bytes>::new())
            .map_err(|e| HttpError::InvalidUrl {
                url: shown.clone(),
                reason: e.to_string(),
            })?;
        let exchange = async {
            let response = self.client.request(request).await.map_err(|e| {
                if e.is_connect() {
                    HttpError::Connect {
                        url: shown.clone(),
                        reason: error_chain(&e),
                    }
                } else {
                    HttpError::Request {
                        url: shown.clone(),
                        reason: error_chain(&e),
                    }
                }
            })?;
            let status = response.status();
            let too_large = || HttpError::BodyTooLarge {
                url: shown.clone(),
                limit: self.max_body_bytes,
            };
            let declared = response
                .headers()
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            if declared.is_some_and(|n| n > self.max_body_bytes as u64) {
                return Err(too_large());
            }
            let mut body = response.into_body();
            let mut buf: Vec<u8> = Vec::new();
            while let Some(frame) = body.frame().await {
                let frame = frame.map_err(|e| HttpError::Request {
                    url: shown.clone(),
                    reason: error_chain(&e),
                })?;
                if let Ok(data) = frame.into_data() {
                    if buf.len() + data.len() > self.max_body_bytes {
                        return Err(too_large());
                    }
                    buf.extend_from_slice(&data);
                }
            }
            Ok((status, Bytes::from(buf)))
        };
        let (status, body) = tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| HttpError::Timeout {
                url: shown.clone(),
                after: self.timeout,
            })??;
        if !status.is_success() {
            let text = String::from_utf8_lossy(&body);
            let snippet: String = text.chars().take(200).collect();
            return Err(HttpError::Status {
                url: shown,
                status: status.as_u16(),
                body: snippet,
            });
        }
        Ok(HttpResponse {
            status: status.as_u16(),
            body,
        })
    }

    fn value_error(&self, ctx: &EpochContext, source: ValueError) -> HttpError {
        HttpError::Value {
            url: strip_query(&self.url_for(ctx)),
            source,
        }
    }
}

/// An inferer served over HTTP: the body is one value.
#[derive(Debug, Clone)]
pub struct HttpModel {
    endpoint: HttpEndpoint,
}

impl HttpModel {
    /// A model at the URL template `url`.
    pub fn new(url: &str, options: &HttpOptions) -> Result<Self, HttpError> {
        Ok(Self {
            endpoint: HttpEndpoint::new(url, options)?,
        })
    }

    /// The endpoint.
    pub fn endpoint(&self) -> &HttpEndpoint {
        &self.endpoint
    }

    /// The model's inference for `ctx`.
    pub async fn infer(&self, ctx: &EpochContext) -> Result<f64, HttpError> {
        let response = self.endpoint.fetch(ctx).await?;
        parse_value(&response.body).map_err(|e| self.endpoint.value_error(ctx, e))
    }
}

/// A forecaster served over HTTP: the body is `{"<inferer>": value, …}`.
#[derive(Debug, Clone)]
pub struct HttpForecaster {
    endpoint: HttpEndpoint,
}

impl HttpForecaster {
    /// A forecaster at the URL template `url`.
    pub fn new(url: &str, options: &HttpOptions) -> Result<Self, HttpError> {
        Ok(Self {
            endpoint: HttpEndpoint::new(url, options)?,
        })
    }

    /// The endpoint.
    pub fn endpoint(&self) -> &HttpEndpoint {
        &self.endpoint
    }

    /// The forecasts for `ctx`.
    pub async fn forecast(&self, ctx: &EpochContext) -> Result<BTreeMap<String, f64>, HttpError> {
        let response = self.endpoint.fetch(ctx).await?;
        parse_forecasts(&response.body).map_err(|e| self.endpoint.value_error(ctx, e))
    }
}

/// A ground truth served over HTTP: one value; `204 No Content`, `null` or `{"value": null}`
/// mean "not available yet" (`Ok(None)`).
#[derive(Debug, Clone)]
pub struct HttpTruth {
    endpoint: HttpEndpoint,
}

impl HttpTruth {
    /// A truth source at the URL template `url`.
    pub fn new(url: &str, options: &HttpOptions) -> Result<Self, HttpError> {
        Ok(Self {
            endpoint: HttpEndpoint::new(url, options)?,
        })
    }

    /// The endpoint.
    pub fn endpoint(&self) -> &HttpEndpoint {
        &self.endpoint
    }

    /// The truth of epoch `ctx.epoch`, if available.
    pub async fn truth(&self, ctx: &EpochContext) -> Result<Option<f64>, HttpError> {
        let response = self.endpoint.fetch(ctx).await?;
        if response.status == StatusCode::NO_CONTENT.as_u16() {
            return Ok(None);
        }
        parse_optional_value(&response.body).map_err(|e| self.endpoint.value_error(ctx, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_http_urls() {
        let o = HttpOptions::default();
        assert!(HttpEndpoint::new("http://127.0.0.1:8000/inference/{Token}", &o).is_ok());
        assert!(matches!(
            HttpEndpoint::new("https://example.invalid/x", &o),
            Err(HttpError::UnsupportedScheme { .. })
        ));
        assert!(matches!(
            HttpEndpoint::new("127.0.0.1:8000/x", &o),
            Err(HttpError::InvalidUrl { .. } | HttpError::UnsupportedScheme { .. })
        ));
        assert!(matches!(
            HttpEndpoint::new("http:///nohost", &o),
            Err(HttpError::InvalidUrl { .. })
        ));
        assert!(matches!(
            HttpEndpoint::new("http://127.0.0.1/{Nope}", &o),
            Err(HttpError::Template(_))
        ));
        assert_eq!(strip_query("http://h/p?key=secret#f"), "http://h/p");
    }
}
