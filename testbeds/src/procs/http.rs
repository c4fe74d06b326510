//! A tiny HTTP/1.1 client over tokio's `TcpStream`, enough to talk to a node's REST API: one
//! request per connection (`Connection: close`), plain `http`, a hard timeout on the whole
//! exchange, bodies read to the end (with or without chunked encoding).

use std::time::Duration;

use anyhow::{Context, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Largest response read (a status page with many submissions, a metrics page): 8 MiB.
const MAX_RESPONSE: usize = 8 << 20;

/// An answer: status code and body.
#[derive(Debug)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// Body bytes.
    pub body: Vec<u8>,
}

impl Answer {
    /// The body as JSON, if the status is 200.
    pub fn json(&self) -> anyhow::Result<serde_json::Value> {
        if self.status != 200 {
            bail!(
                "HTTP {}: {}",
                self.status,
                String::from_utf8_lossy(&self.body).trim()
            );
        }
        serde_json::from_slice(&self.body).context("response is not JSON")
    }
}

/// One request to `addr` (`host:port`).
pub async fn request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    timeout: Duration,
) -> anyhow::Result<Answer> {
    tokio::time::timeout(timeout, exchange(addr, method, path, headers, body))
        .await
        .with_context(|| format!("{method} http://{addr}{path}: timed out after {timeout:?}"))?
        .with_context(|| format!("{method} http://{addr}{path}"))
}

async fn exchange(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> anyhow::Result<Answer> {
    let mut s = TcpStream::connect(addr).await?;
    s.set_nodelay(true)?;
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).await?;
    s.write_all(body).await?;
    let mut raw = vec![];
    (&mut s)
        .take(MAX_RESPONSE as u64 + 1)
        .read_to_end(&mut raw)
        .await?;
    if raw.len() > MAX_RESPONSE {
        bail!("response larger than {MAX_RESPONSE} bytes");
    }
    parse(&raw)
}

fn parse(raw: &[u8]) -> anyhow::Result<Answer> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("no end of headers")?;
    let head = std::str::from_utf8(&raw[..split]).context("headers are not UTF-8")?;
    let rest = &raw[split + 4..];
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .context("bad status line")?;
    let chunked = lines.any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    let body = if chunked {
        dechunk(rest)?
    } else {
        rest.to_vec()
    };
    Ok(Answer { status, body })
}

fn dechunk(mut rest: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut out = vec![];
    loop {
        let eol = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .context("bad chunk")?;
        let size_text = std::str::from_utf8(&rest[..eol])?;
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .context("bad chunk size")?;
        rest = &rest[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        if rest.len() < size + 2 {
            bail!("truncated chunk");
        }
        out.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}

/// `GET path` as JSON (status 200 required).
pub async fn get_json(addr: &str, path: &str) -> anyhow::Result<serde_json::Value> {
    request(addr, "GET", path, &[], &[], Duration::from_secs(5))
        .await?
        .json()
}

/// `GET path` as text (status 200 required).
pub async fn get_text(addr: &str, path: &str) -> anyhow::Result<String> {
    let a = request(addr, "GET", path, &[], &[], Duration::from_secs(5)).await?;
    if a.status != 200 {
        bail!("HTTP {} for {path}", a.status);
    }
    Ok(String::from_utf8_lossy(&a.body).into_owned())
}

/// `POST /v1/submit` with the admin token: the node's `{id, accepted, reason}`.
pub async fn submit(addr: &str, token: &str, envelope: &[u8]) -> anyhow::Result<serde_json::Value> {
    let auth = format!("Bearer {token}");
    request(
        addr,
        "POST",
        "/v1/submit",
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/octet-stream"),
        ],
        envelope,
        Duration::from_secs(10),
    )
    .await?
    .json()
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
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn plain_and_chunked_bodies() {
        let a = parse(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}").unwrap();
        assert_eq!((a.status, a.body.as_slice()), (200, b"{}".as_slice()));
        let a = parse(
            b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!((a.status, a.body.as_slice()), (404, b"abcde".as_slice()));
        assert!(parse(b"garbage").is_err());
    }

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
}
