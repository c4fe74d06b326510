//! HTTP adapter for external models, forecasters and truth sources, compatible with the Allora
//! off-chain node's API adapter.
//!
//! Each call is a `GET` of a URL [`Template`] (`{TopicId}`, `{Epoch}`/`{BlockHeight}`,
//! `{Timestamp}`, `{Token}`, configured params). The whole exchange — connect, TLS, request,
//! response body — must finish within the configured timeout, and the body may not exceed the
//! size cap (default 64 KiB). Any 2xx status is accepted; see [`super::value`] for the body
//! formats. Retrying is the caller's business (the roles retry until the submission window
//! closes).
//!
//! `http://` and `https://` URLs are accepted. HTTPS uses rustls with Mozilla's root
//! certificates compiled in (`webpki-roots`: the host's CA store is not read) plus, optionally,
//! the certificates of a PEM `ca_file` (an operator's own CA for a model server on a private
//! network). The scheme, host and port of a URL template must be literal: a placeholder there
//! is refused when the endpoint is built, so no value from the network can redirect a request
//! to another host. Error messages name the URL without its query string (which may hold API
//! keys).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, StatusCode, Uri, header};
use hyper_rustls::HttpsConnector;
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
    /// Neither `http://` nor `https://`.
    #[error("unsupported URL scheme in {url:?}: use http:// or https://")]
    UnsupportedScheme {
        /// The URL (query removed).
        url: String,
    },
    /// The URL template has a placeholder in its scheme, host or port.
    #[error(
        "URL template {url:?}: the scheme, host and port must be literal (placeholders are \
         allowed in the path and query only)"
    )]
    TemplatedHost {
        /// The template (query removed).
        url: String,
    },
    /// The TLS configuration (`ca_file`) cannot be used.
    #[error("TLS: {0}")]
    Tls(String),
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
            HttpError::Template(e) => match e {
                TemplateError::NoToken => "no_token",
                TemplateError::UnsafeToken(_) => "unsafe_token",
                _ => "invalid_url",
            },
            HttpError::InvalidUrl { .. } | HttpError::TemplatedHost { .. } => "invalid_url",
            HttpError::UnsupportedScheme { .. } => "unsupported_scheme",
            HttpError::Tls(_) => "tls_config",
            HttpError::Timeout { .. } => "timeout",
            HttpError::Connect { .. } => "connect",
            HttpError::Request { .. } => "request",
            HttpError::Status { .. } => "status",
            HttpError::BodyTooLarge { .. } => "body_too_large",
            HttpError::Value { source, .. } => source.reason(),
        }
    }
}

impl HttpError {
    /// Whether trying again may succeed (a timeout, a refused connection, a 5xx, 408 or 429,
    /// a reply that is not a number); a bad URL, TLS setup or a 4xx will not change.
    pub fn is_transient(&self) -> bool {
        match self {
            HttpError::Timeout { .. }
            | HttpError::Connect { .. }
            | HttpError::Request { .. }
            | HttpError::Value { .. } => true,
            HttpError::Status { status, .. } => *status >= 500 || matches!(status, 408 | 429),
            HttpError::Template(_)
            | HttpError::InvalidUrl { .. }
            | HttpError::UnsupportedScheme { .. }
            | HttpError::TemplatedHost { .. }
            | HttpError::Tls(_)
            | HttpError::BodyTooLarge { .. } => false,
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
    /// A PEM file of extra CA certificates trusted for `https://` (besides Mozilla's roots).
    pub ca_file: Option<PathBuf>,
}

impl Default for HttpOptions {
    fn default() -> Self {
        Self {
            timeout: DEFAULT_HTTP_TIMEOUT,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            params: BTreeMap::new(),
            ca_file: None,
        }
    }
}

/// The TLS client configuration: ring, Mozilla's roots and the certificates of `ca_file`.
fn tls_config(ca_file: Option<&PathBuf>) -> Result<rustls::ClientConfig, HttpError> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots_certs());
    if let Some(path) = ca_file {
        let shown = path.display();
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .and_then(|it| it.collect::<Result<_, _>>())
            .map_err(|e| HttpError::Tls(format!("ca_file {shown}: {e}")))?;
        if certs.is_empty() {
            return Err(HttpError::Tls(format!(
                "ca_file {shown}: no PEM certificate in it"
            )));
        }
        for cert in certs {
            roots
                .add(cert)
                .map_err(|e| HttpError::Tls(format!("ca_file {shown}: {e}")))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| HttpError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

fn webpki_roots_certs() -> impl Iterator<Item = rustls_pki_types::TrustAnchor<'static>> {
    webpki_roots::TLS_SERVER_ROOTS.iter().cloned()
}

/// A templated `GET` endpoint. Cheap to clone (the connection pool is shared).
#[derive(Debug, Clone)]
pub struct HttpEndpoint {
    template: Template,
    timeout: Duration,
    max_body_bytes: usize,
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
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
        Some("http" | "https") => {}
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
    /// An endpoint for the URL template `url`. Checks the template, that it renders to a
    /// valid `http://` or `https://` URL, and that no placeholder reaches the scheme, host or
    /// port.
    pub fn new(url: &str, options: &HttpOptions) -> Result<Self, HttpError> {
        let template = Template::parse(url, &options.params)?;
        // Two requests that differ in every value a request fills in must go to the same place.
        let one = EpochContext {
            start_ms: 0,
            ..EpochContext::new(0, 0, "A")
        };
        let other = EpochContext {
            start_ms: 1_000_000,
            ..EpochContext::new(1, 1, "B1")
        };
        let (a, b) = (
            check_url(&template.render_url(&one)?)?,
            check_url(&template.render_url(&other)?)?,
        );
        if a.scheme() != b.scheme() || a.authority() != b.authority() {
            return Err(HttpError::TemplatedHost {
                url: strip_query(url),
            });
        }
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls_config(options.ca_file.as_ref())?)
            .https_or_http()
            .enable_http1()
            .build();
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(4)
            .build(https);
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
    pub fn url_for(&self, ctx: &EpochContext) -> Result<String, HttpError> {
        Ok(self.template.render_url(ctx)?)
    }

    /// `GET`s the URL for `ctx`; a non-2xx status is [`HttpError::Status`].
    pub async fn fetch(&self, ctx: &EpochContext) -> Result<HttpResponse, HttpError> {
        let url = self.url_for(ctx)?;
        tracing::debug!(url = %strip_query(&url), epoch = ctx.epoch, "model request");
        self.send(&url, None).await
    }

    /// `POST`s `json` to the template's URL (no placeholders filled) followed by `path`, as
    /// `application/json`; a non-2xx status is [`HttpError::Status`].
    pub async fn post_json(&self, path: &str, json: Vec<u8>) -> Result<HttpResponse, HttpError> {
        let url = format!("{}{path}", self.template.source().trim_end_matches('/'));
        self.send(&url, Some(json)).await
    }

    async fn send(&self, url: &str, json: Option<Vec<u8>>) -> Result<HttpResponse, HttpError> {
        let uri = check_url(url)?;
        let shown = strip_query(url);
        let builder = match json {
            None => Request::get(uri),
            Some(_) => Request::post(uri).header(header::CONTENT_TYPE, "application/json"),
        };
        let request = builder
            .header(header::USER_AGENT, "chorus-node")
            .header(
                header::ACCEPT,
                "application/json, text/plain;q=0.9, */*;q=0.1",
            )
            .body(Full::new(Bytes::from(json.unwrap_or_default())))
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
        let url = self
            .url_for(ctx)
            .unwrap_or_else(|_| self.template.source().to_owned());
        HttpError::Value {
            url: strip_query(&url),
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
    fn http_and_https_urls_with_literal_hosts() {
        let o = HttpOptions::default();
        assert!(HttpEndpoint::new("http://127.0.0.1:8000/inference/{Token}", &o).is_ok());
        assert!(
            HttpEndpoint::new("https://models.example.invalid/x/{Token}?e={Epoch}", &o).is_ok()
        );
        assert!(matches!(
            HttpEndpoint::new("ftp://example.invalid/x", &o),
            Err(HttpError::UnsupportedScheme { .. })
        ));
        for templated in [
            "http://{Token}.example.invalid/x",
            "http://127.0.0.1:{Epoch}/x",
            "http://h{TopicId}/x",
            "http{Token}://h/x",
            "http://user{Token}@h/x",
        ] {
            assert!(
                matches!(
                    HttpEndpoint::new(templated, &o),
                    Err(HttpError::TemplatedHost { .. }
                        | HttpError::InvalidUrl { .. }
                        | HttpError::UnsupportedScheme { .. })
                ),
                "{templated}"
            );
        }
        // An operator's static param may name the host.
        let with_host = HttpOptions {
            params: BTreeMap::from([("Host".to_string(), "models.internal".to_string())]),
            ..HttpOptions::default()
        };
        assert!(HttpEndpoint::new("http://{Host}/x", &with_host).is_ok());
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
