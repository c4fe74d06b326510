//! A small HTTP client for a node's REST API (plain `http://`, hyper 1): typed JSON reads,
//! envelope submission, a text read (the metrics page), and a server-sent-events reader for
//! live streams. The CLI and the testbeds both talk to nodes through it.
//!
//! Answers with status 400, 401 or 413 are the caller's fault
//! ([`ClientError::is_caller_fault`]); 404 is [`ClientError::is_not_found`].

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode, Uri, header};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::de::DeserializeOwned;

use super::types::SubmitResult;

/// Default node URL (the node's default `[api] listen`).
pub const DEFAULT_NODE: &str = "http://127.0.0.1:8080";
/// Time allowed to connect.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default time allowed for one request and its whole answer (answers are small JSON documents).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// A live stream with no bytes for this long is dead (the node sends a keep-alive comment
/// every 15 s).
const STREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Largest answer read (a topic list or leaderboard of a big network is well below).
const MAX_ANSWER: usize = 16 * 1024 * 1024;
/// Largest single server-sent event (one inference event is ~200 bytes).
const MAX_EVENT: usize = 1024 * 1024;

/// A request to a node failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The node URL is not usable.
    #[error("{url:?}: {why}")]
    BadUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        why: String,
    },
    /// The request could not be built (a path that makes no URL).
    #[error("building the request {what}: {source}")]
    Request {
        /// Method and URL.
        what: String,
        /// Why.
        source: hyper::http::Error,
    },
    /// Connecting or sending failed.
    #[error("cannot reach the node ({what})")]
    Unreachable {
        /// Method and URL.
        what: String,
        /// Why.
        source: hyper_util::client::legacy::Error,
    },
    /// No (complete) answer in time.
    #[error("the node did not answer {what} within {after:?}")]
    Timeout {
        /// What was asked.
        what: String,
        /// The time allowed.
        after: Duration,
    },
    /// The node answered an error status, with its message.
    #[error("the node answered {status}: {message}")]
    Status {
        /// HTTP status code.
        status: u16,
        /// The node's `error` field, or the body.
        message: String,
    },
    /// A success answer that is not the expected JSON document.
    #[error("the node's answer is not the expected JSON (HTTP {status}): {source}")]
    NotJson {
        /// HTTP status code.
        status: u16,
        /// Why.
        source: serde_json::Error,
    },
    /// Reading the answer or stream failed.
    #[error("reading the node's answer")]
    Body(#[source] hyper::Error),
    /// An answer or stream line over the size limit.
    #[error("the node's answer is larger than {0} bytes")]
    TooLarge(usize),
    /// A stream broke off or is malformed.
    #[error("{0}")]
    Stream(String),
}

impl ClientError {
    /// 400, 401 or 413: the request (its input, its token) was wrong.
    pub fn is_caller_fault(&self) -> bool {
        matches!(self, ClientError::Status { status, .. } if [400, 401, 413].contains(status))
    }

    /// 404: no such topic, epoch, account or route.
    pub fn is_not_found(&self) -> bool {
        matches!(self, ClientError::Status { status: 404, .. })
    }
}

/// A node's REST API.
#[derive(Clone, Debug)]
pub struct NodeClient {
    /// `http://host:port` plus an optional path prefix, without a trailing slash.
    base: String,
    client: Client<HttpConnector, Full<Bytes>>,
    timeout: Duration,
}

impl NodeClient {
    /// A client for the node at `url` (`http://host:port`, optionally with a path prefix).
    pub fn new(url: &str) -> Result<NodeClient, ClientError> {
        let bad = |why: &str| ClientError::BadUrl {
            url: url.to_owned(),
            why: why.to_owned(),
        };
        let uri: Uri = url
            .parse()
            .map_err(|_| bad("not a URL like http://127.0.0.1:8080"))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some(other) => {
                return Err(bad(&format!(
                    "scheme {other:?} is not supported (plain http only; use a tunnel)"
                )));
            }
            None => return Err(bad("missing http:// scheme")),
        }
        let Some(authority) = uri.authority() else {
            return Err(bad("missing host"));
        };
        if uri.query().is_some() {
            return Err(bad("must not have a query"));
        }
        let base = format!("http://{authority}{}", uri.path().trim_end_matches('/'));
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
        let client = Client::builder(TokioExecutor::new()).build(connector);
        Ok(NodeClient {
            base,
            client,
            timeout: REQUEST_TIMEOUT,
        })
    }

    /// The same client with another time allowed per request (default [`REQUEST_TIMEOUT`]).
    pub fn with_timeout(mut self, timeout: Duration) -> NodeClient {
        self.timeout = timeout;
        self
    }

    /// The node's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    fn request(
        &self,
        method: Method,
        path: &str,
        accept: &str,
    ) -> Result<hyper::http::request::Builder, ClientError> {
        let url = format!("{}{path}", self.base);
        let uri: Uri =
            url.parse()
                .map_err(|e: hyper::http::uri::InvalidUri| ClientError::Request {
                    what: format!("{method} {url}"),
                    source: e.into(),
                })?;
        Ok(Request::builder()
            .method(method)
            .uri(uri)
            .header(header::ACCEPT, accept))
    }

    fn body(
        builder: hyper::http::request::Builder,
        body: Full<Bytes>,
    ) -> Result<Request<Full<Bytes>>, ClientError> {
        let what = format!(
            "{} {}",
            builder.method_ref().cloned().unwrap_or_default(),
            builder
                .uri_ref()
                .map(ToString::to_string)
                .unwrap_or_default()
        );
        builder
            .body(body)
            .map_err(|source| ClientError::Request { what, source })
    }

    async fn send(&self, req: Request<Full<Bytes>>) -> Result<Response<Incoming>, ClientError> {
        let what = format!("{} {}", req.method(), req.uri());
        self.client
            .request(req)
            .await
            .map_err(|source| ClientError::Unreachable { what, source })
    }

    /// Send `req` and read its whole answer within the time allowed: status and body.
    async fn exchange(
        &self,
        req: Request<Full<Bytes>>,
        what: String,
    ) -> Result<(StatusCode, Vec<u8>), ClientError> {
        tokio::time::timeout(self.timeout, async {
            let resp = self.send(req).await?;
            let status = resp.status();
            let body = read_limited(resp.into_body(), MAX_ANSWER).await?;
            if !status.is_success() {
                return Err(status_error(status, &body));
            }
            Ok((status, body))
        })
        .await
        .map_err(|_| ClientError::Timeout {
            what,
            after: self.timeout,
        })?
    }

    /// `GET path` and its JSON answer as `T`.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let req = Self::body(
            self.request(Method::GET, path, "application/json")?,
            Full::default(),
        )?;
        let (status, body) = self.exchange(req, format!("GET {path}")).await?;
        json(status, &body)
    }

    /// `GET path` as `T`, or `None` if the node answers 404.
    pub async fn get_opt<T: DeserializeOwned>(&self, path: &str) -> Result<Option<T>, ClientError> {
        match self.get(path).await {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `GET path` as text (the metrics page).
    pub async fn get_text(&self, path: &str) -> Result<String, ClientError> {
        let req = Self::body(self.request(Method::GET, path, "*/*")?, Full::default())?;
        let (_, body) = self.exchange(req, format!("GET {path}")).await?;
        Ok(String::from_utf8_lossy(&body).into_owned())
    }

    /// `POST /v1/submit` of an envelope's canonical bytes with the admin token.
    pub async fn submit(
        &self,
        envelope: Vec<u8>,
        token: &str,
    ) -> Result<SubmitResult, ClientError> {
        let builder = self
            .request(Method::POST, "/v1/submit", "application/json")?
            .header(header::CONTENT_TYPE, "application/octet-stream")
            .header(header::AUTHORIZATION, format!("Bearer {token}"));
        let req = Self::body(builder, Full::new(Bytes::from(envelope)))?;
        let (status, body) = self.exchange(req, "the submission".into()).await?;
        json(status, &body)
    }

    /// Open a server-sent-events stream at `path`.
    pub async fn events(&self, path: &str) -> Result<EventStream, ClientError> {
        let req = Self::body(
            self.request(Method::GET, path, "text/event-stream")?,
            Full::default(),
        )?;
        let resp = tokio::time::timeout(self.timeout, self.send(req))
            .await
            .map_err(|_| ClientError::Timeout {
                what: format!("the stream request {path}"),
                after: self.timeout,
            })??;
        let status = resp.status();
        if !status.is_success() {
            // The error answer is a small JSON document with the node's message.
            let body = read_limited(resp.into_body(), MAX_ANSWER).await?;
            return Err(status_error(status, &body));
        }
        Ok(EventStream {
            body: resp.into_body(),
            buf: Vec::new(),
            event: None,
            data: Vec::new(),
        })
    }
}

/// A success answer as `T`.
fn json<T: DeserializeOwned>(status: StatusCode, body: &[u8]) -> Result<T, ClientError> {
    serde_json::from_slice(body).map_err(|source| ClientError::NotJson {
        status: status.as_u16(),
        source,
    })
}

/// An error status with the node's message (its `error` field, else the body).
fn status_error(status: StatusCode, body: &[u8]) -> ClientError {
    let message = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|j| j.get("error").and_then(|e| e.as_str()).map(str::to_owned))
        .unwrap_or_else(|| String::from_utf8_lossy(body).trim().to_owned());
    ClientError::Status {
        status: status.as_u16(),
        message,
    }
}

async fn read_limited(mut body: Incoming, limit: usize) -> Result<Vec<u8>, ClientError> {
    let mut out = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(ClientError::Body)?;
        if let Ok(data) = frame.into_data() {
            if out.len() + data.len() > limit {
                return Err(ClientError::TooLarge(limit));
            }
            out.extend_from_slice(&data);
        }
    }
    Ok(out)
}

/// One server-sent event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` name (`message` if none was given).
    pub event: String,
    /// The `data:` lines, joined by `\n`.
    pub data: String,
}

/// A live server-sent-events stream (a long-lived chunked body), parsed line by line.
#[derive(Debug)]
pub struct EventStream {
    body: Incoming,
    buf: Vec<u8>,
    event: Option<String>,
    data: Vec<String>,
}

impl EventStream {
    /// The next event, or `None` when the node ends the stream.
    pub async fn next(&mut self) -> Result<Option<SseEvent>, ClientError> {
        loop {
            while let Some(pos) = self.buf.iter().position(|&b| b == b'\n') {
                let mut line: Vec<u8> = self.buf.drain(..=pos).collect();
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                let line = String::from_utf8(line)
                    .map_err(|_| ClientError::Stream("the stream is not UTF-8".into()))?;
                if let Some(ev) = self.line(&line) {
                    return Ok(Some(ev));
                }
            }
            if self.buf.len() > MAX_EVENT {
                return Err(ClientError::TooLarge(MAX_EVENT));
            }
            let frame = tokio::time::timeout(STREAM_IDLE_TIMEOUT, self.body.frame())
                .await
                .map_err(|_| {
                    ClientError::Stream(format!(
                        "the stream was silent for {STREAM_IDLE_TIMEOUT:?}"
                    ))
                })?;
            match frame {
                None => return Ok(None),
                Some(frame) => {
                    if let Ok(data) = frame.map_err(ClientError::Body)?.into_data() {
                        self.buf.extend_from_slice(&data);
                    }
                }
            }
        }
    }

    /// Feed one line; a blank line completes an event.
    fn line(&mut self, line: &str) -> Option<SseEvent> {
        if line.is_empty() {
            let event = self.event.take();
            if self.data.is_empty() {
                return None;
            }
            let data = std::mem::take(&mut self.data).join("\n");
            return Some(SseEvent {
                event: event.unwrap_or_else(|| "message".into()),
                data,
            });
        }
        if line.starts_with(':') {
            return None; // comment (keep-alive)
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "event" => self.event = Some(value.to_owned()),
            "data" => self.data.push(value.to_owned()),
            _ => {} // id, retry, unknown fields: not used
        }
        None
    }
}

/// The sum of every sample of a Prometheus metric whose line contains all of `needles`.
pub fn metric_sum(page: &str, name: &str, needles: &[&str]) -> f64 {
    page.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.split(['{', ' '])
                .next()
                .is_some_and(|metric| metric == name)
        })
        .filter(|l| needles.iter().all(|n| l.contains(n)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .fold(0.0, |a, b| a + b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_sums_match_names_and_labels() {
        let page = "# HELP x\nchorus_validation_outcomes_total{kind=\"ledger\",outcome=\"reject\",reason=\"bad_signature\"} 9\n\
                    chorus_validation_outcomes_total{kind=\"workers\",outcome=\"accept\",reason=\"\"} 5\n\
                    chorus_validation_outcomes_total_extra 100\n";
        assert_eq!(
            metric_sum(
                page,
                "chorus_validation_outcomes_total",
                &["outcome=\"reject\""]
            ),
            9.0
        );
        assert_eq!(
            metric_sum(page, "chorus_validation_outcomes_total", &[]),
            14.0
        );
    }

    #[test]
    fn status_errors_carry_the_node_message() {
        let e = status_error(StatusCode::BAD_REQUEST, br#"{"error":"bad topic id"}"#);
        assert!(e.is_caller_fault());
        assert_eq!(e.to_string(), "the node answered 400: bad topic id");
        let e = status_error(StatusCode::NOT_FOUND, b"nope\n");
        assert!(e.is_not_found() && !e.is_caller_fault());
        assert_eq!(e.to_string(), "the node answered 404: nope");
    }
}
