//! A small HTTP client for a node's REST API (plain `http://`, hyper 1): JSON reads, envelope
//! submission, and a server-sent-events reader for live streams.
//!
//! Answers with status 400, 401 or 413 are the caller's fault and become [`BadInput`] (exit
//! code 2); every other failure (unreachable node, 404, 503, a broken stream) is an ordinary
//! error (exit code 1).

use std::time::Duration;

use anyhow::{Context, anyhow};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode, Uri, header};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

use crate::output::BadInput;

/// Default node URL (the node's default `[api] listen`).
pub const DEFAULT_NODE: &str = "http://127.0.0.1:8080";
/// Time allowed to connect.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Time allowed for one request and its whole answer (answers are small JSON documents).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// A live stream with no bytes for this long is dead (the node sends a keep-alive comment
/// every 15 s).
const STREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Largest JSON answer read (a topic list or leaderboard of a big network is well below).
const MAX_ANSWER: usize = 16 * 1024 * 1024;
/// Largest single server-sent event (one inference event is ~200 bytes).
const MAX_EVENT: usize = 1024 * 1024;

/// A node's REST API.
pub struct NodeClient {
    /// `http://host:port` plus an optional path prefix, without a trailing slash.
    base: String,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl NodeClient {
    /// A client for the node at `url` (`http://host:port`, optionally with a path prefix).
    pub fn new(url: &str) -> Result<NodeClient, BadInput> {
        let bad = |why: &str| BadInput(format!("--node {url:?}: {why}"));
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
        Ok(NodeClient { base, client })
    }

    /// The node's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    fn uri(&self, path: &str) -> anyhow::Result<Uri> {
        let url = format!("{}{path}", self.base);
        url.parse()
            .with_context(|| format!("building the URL {url:?}"))
    }

    async fn send(&self, req: Request<Full<Bytes>>) -> anyhow::Result<Response<Incoming>> {
        let what = format!("{} {}", req.method(), req.uri());
        self.client
            .request(req)
            .await
            .with_context(|| format!("cannot reach the node ({what})"))
    }

    /// `GET path` and its JSON answer.
    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        let req = Request::get(self.uri(path)?)
            .header(header::ACCEPT, "application/json")
            .body(Full::default())?;
        tokio::time::timeout(REQUEST_TIMEOUT, async {
            let resp = self.send(req).await?;
            json_answer(resp).await
        })
        .await
        .map_err(|_| anyhow!("the node did not answer GET {path} within {REQUEST_TIMEOUT:?}"))?
    }

    /// `GET path`, or `None` if the node answers 404.
    pub async fn get_opt(&self, path: &str) -> anyhow::Result<Option<Value>> {
        match self.get(path).await {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.downcast_ref::<NotFound>().is_some() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `POST /v1/submit` of an envelope's canonical bytes with the admin token.
    pub async fn submit(&self, envelope: Vec<u8>, token: &str) -> anyhow::Result<Value> {
        let req = Request::builder()
            .method(Method::POST)
            .uri(self.uri("/v1/submit")?)
            .header(header::CONTENT_TYPE, "application/octet-stream")
            .header(header::ACCEPT, "application/json")
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .body(Full::new(Bytes::from(envelope)))?;
        tokio::time::timeout(REQUEST_TIMEOUT, async {
            let resp = self.send(req).await?;
            json_answer(resp).await
        })
        .await
        .map_err(|_| anyhow!("the node did not answer the submission within {REQUEST_TIMEOUT:?}"))?
    }

    /// Open a server-sent-events stream at `path`.
    pub async fn events(&self, path: &str) -> anyhow::Result<EventStream> {
        let req = Request::get(self.uri(path)?)
            .header(header::ACCEPT, "text/event-stream")
            .body(Full::default())?;
        let resp = tokio::time::timeout(REQUEST_TIMEOUT, self.send(req))
            .await
            .map_err(|_| {
                anyhow!("the node did not open the stream within {REQUEST_TIMEOUT:?}")
            })??;
        if !resp.status().is_success() {
            // The error answer is a small JSON document; `json_answer` maps it to an error.
            let status = resp.status();
            return Err(json_answer(resp)
                .await
                .err()
                .unwrap_or_else(|| anyhow!("the node answered {status} to a stream request")));
        }
        Ok(EventStream {
            body: resp.into_body(),
            buf: Vec::new(),
            event: None,
            data: Vec::new(),
        })
    }
}

/// The node answered 404.
#[derive(Debug)]
pub struct NotFound(pub String);

impl std::fmt::Display for NotFound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NotFound {}

/// Read a JSON answer; map error statuses to errors with the node's message.
async fn json_answer(resp: Response<Incoming>) -> anyhow::Result<Value> {
    let status = resp.status();
    let body = read_limited(resp.into_body(), MAX_ANSWER).await?;
    let json: Option<Value> = serde_json::from_slice(&body).ok();
    if status.is_success() {
        return json.ok_or_else(|| anyhow!("the node's answer is not JSON (HTTP {status})"));
    }
    let message = json
        .as_ref()
        .and_then(|j| j.get("error"))
        .and_then(Value::as_str)
        .map(str::to_owned)
        .unwrap_or_else(|| String::from_utf8_lossy(&body).trim().to_owned());
    let line = format!("the node answered {}: {message}", status.as_u16());
    Err(match status {
        StatusCode::BAD_REQUEST | StatusCode::UNAUTHORIZED | StatusCode::PAYLOAD_TOO_LARGE => {
            BadInput(line).into()
        }
        StatusCode::NOT_FOUND => NotFound(line).into(),
        _ => anyhow!(line),
    })
}

async fn read_limited(mut body: Incoming, limit: usize) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.context("reading the node's answer")?;
        if let Ok(data) = frame.into_data() {
            if out.len() + data.len() > limit {
                return Err(anyhow!("the node's answer is larger than {limit} bytes"));
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
pub struct EventStream {
    body: Incoming,
    buf: Vec<u8>,
    event: Option<String>,
    data: Vec<String>,
}

impl EventStream {
    /// The next event, or `None` when the node ends the stream.
    pub async fn next(&mut self) -> anyhow::Result<Option<SseEvent>> {
        loop {
            while let Some(pos) = self.buf.iter().position(|&b| b == b'\n') {
                let mut line: Vec<u8> = self.buf.drain(..=pos).collect();
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                let line = String::from_utf8(line).context("the stream is not UTF-8")?;
                if let Some(ev) = self.line(&line) {
                    return Ok(Some(ev));
                }
            }
            if self.buf.len() > MAX_EVENT {
                return Err(anyhow!("a stream line is longer than {MAX_EVENT} bytes"));
            }
            let frame = tokio::time::timeout(STREAM_IDLE_TIMEOUT, self.body.frame())
                .await
                .map_err(|_| anyhow!("the stream was silent for {STREAM_IDLE_TIMEOUT:?}"))?;
            match frame {
                None => return Ok(None),
                Some(frame) => {
                    let frame = frame.context("reading the stream")?;
                    if let Ok(data) = frame.into_data() {
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
