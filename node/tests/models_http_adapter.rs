//! HTTP adapter against a tiny local server (127.0.0.1 only).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chorus_node::models::{
    EpochContext, HttpError, HttpForecaster, HttpModel, HttpOptions, HttpTruth, ValueError,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A canned response.
struct Reply {
    status: u16,
    body: Vec<u8>,
    /// Send Content-Length (otherwise close-delimited).
    length: bool,
    delay: Duration,
}

fn ok(body: &str) -> Reply {
    Reply {
        status: 200,
        body: body.as_bytes().to_vec(),
        length: true,
        delay: Duration::ZERO,
    }
}

fn route(path: &str) -> Reply {
    let p = path.split('?').next().unwrap_or(path);
    match p {
        "/plain" => ok("0.0123"),
        "/plain-nl" => ok("  0.0123\n"),
        "/quoted" => ok("\"0.0123\""),
        "/json" => ok("{\"value\": 0.0123}"),
        "/json-str" => ok("{\"value\": \"0.0123\"}"),
        "/nan" => ok("NaN"),
        "/inf-json" => ok("{\"value\": \"inf\"}"),
        "/text" => ok("hello"),
        "/empty" => ok(""),
        "/null" => ok("null"),
        "/no-content" => Reply {
            status: 204,
            body: vec![],
            length: false,
            delay: Duration::ZERO,
        },
        "/error" => Reply {
            status: 500,
            ..ok("model crashed")
        },
        "/slow" => Reply {
            delay: Duration::from_secs(3),
            ..ok("1.0")
        },
        "/big" => ok(&"1".repeat(100 * 1024)),
        "/big-stream" => Reply {
            length: false,
            ..ok(&"1".repeat(100 * 1024))
        },
        "/forecasts" => ok(r#"{"w1": 0.5, "w2": "-1.5", "w3": [2.5, 9]}"#),
        "/forecasts-bad" => ok(r#"{"w1": 0.5, "w2": "NaN"}"#),
        _ => {
            // Echo: /echo/<topic>/<epoch>/<token> → "<epoch>.5"
            let parts: Vec<&str> = p.split('/').collect();
            if parts.len() == 5 && parts[1] == "echo" {
                ok(&format!("{}.5", parts[3]))
            } else {
                Reply {
                    status: 404,
                    ..ok("not found")
                }
            }
        }
    }
}

async fn serve_one(mut stream: TcpStream, seen: Arc<Mutex<Vec<String>>>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let head = String::from_utf8_lossy(&buf).to_string();
    let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
    seen.lock().unwrap().push(path.clone());
    let reply = route(&path);
    tokio::time::sleep(reply.delay).await;
    let mut out = format!("HTTP/1.1 {} X\r\nConnection: close\r\n", reply.status);
    if reply.length {
        out.push_str(&format!("Content-Length: {}\r\n", reply.body.len()));
    }
    out.push_str("\r\n");
    let _ = stream.write_all(out.as_bytes()).await;
    let _ = stream.write_all(&reply.body).await;
    let _ = stream.shutdown().await;
}

/// Starts the server; returns its base URL and the paths it has seen.
async fn server() -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve_one(stream, s.clone()));
        }
    });
    (format!("http://{addr}"), seen)
}

fn opts(timeout_ms: u64) -> HttpOptions {
    HttpOptions {
        timeout: Duration::from_millis(timeout_ms),
        ..HttpOptions::default()
    }
}

fn ctx() -> EpochContext {
    EpochContext::new(7, 42, "EURUSD")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepted_bodies() {
    let (base, _) = server().await;
    for path in ["/plain", "/plain-nl", "/quoted", "/json", "/json-str"] {
        let m = HttpModel::new(&format!("{base}{path}"), &opts(2000)).unwrap();
        assert_eq!(m.infer(&ctx()).await.unwrap(), 0.0123, "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn templates_are_filled() {
    let (base, seen) = server().await;
    let m = HttpModel::new(
        &format!("{base}/echo/{{TopicId}}/{{BlockHeight}}/{{Token}}?e={{Epoch}}"),
        &opts(2000),
    )
    .unwrap();
    assert_eq!(m.infer(&ctx()).await.unwrap(), 42.5);
    assert_eq!(
        seen.lock().unwrap().last().unwrap(),
        "/echo/7/42/EURUSD?e=42"
    );
    let mut params = BTreeMap::new();
    params.insert("Model".to_string(), "v2/b".to_string());
    let m = HttpModel::new(
        &format!("{base}/echo/{{Model}}/{{Epoch}}/{{Token}}"),
        &HttpOptions {
            params,
            ..opts(2000)
        },
    )
    .unwrap();
    assert_eq!(m.infer(&EpochContext::new(1, 9, "ETH")).await.unwrap(), 9.5);
    // Substituted values are percent-encoded: a param cannot add a path segment.
    assert_eq!(seen.lock().unwrap().last().unwrap(), "/echo/v2%2Fb/9/ETH");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_failures_are_typed() {
    let (base, _) = server().await;
    let infer = |path: &str, timeout_ms: u64| {
        let m = HttpModel::new(&format!("{base}{path}"), &opts(timeout_ms)).unwrap();
        async move { m.infer(&ctx()).await }
    };
    let e = infer("/nan", 2000).await.unwrap_err();
    assert!(
        matches!(
            e,
            HttpError::Value {
                source: ValueError::NonFinite(_),
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(e.reason(), "non_finite");
    let e = infer("/inf-json", 2000).await.unwrap_err();
    assert_eq!(e.reason(), "non_finite");
    let e = infer("/text", 2000).await.unwrap_err();
    assert!(
        matches!(
            e,
            HttpError::Value {
                source: ValueError::NotANumber(_),
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(infer("/empty", 2000).await.unwrap_err().reason(), "empty");
    assert_eq!(infer("/null", 2000).await.unwrap_err().reason(), "missing");
    match infer("/error", 2000).await.unwrap_err() {
        HttpError::Status {
            status: 500, body, ..
        } => assert_eq!(body, "model crashed"),
        e => panic!("{e:?}"),
    }
    assert!(matches!(
        infer("/nowhere", 2000).await.unwrap_err(),
        HttpError::Status { status: 404, .. }
    ));
    assert!(matches!(
        infer("/big", 2000).await.unwrap_err(),
        HttpError::BodyTooLarge { limit: 65536, .. }
    ));
    assert!(matches!(
        infer("/big-stream", 2000).await.unwrap_err(),
        HttpError::BodyTooLarge { limit: 65536, .. }
    ));

    let start = Instant::now();
    let e = infer("/slow", 200).await.unwrap_err();
    assert!(matches!(e, HttpError::Timeout { .. }), "{e:?}");
    assert_eq!(e.reason(), "timeout");
    // The answer came before the server's (3 s late) reply: the timer, not the reply, ended it.
    assert!(start.elapsed() < Duration::from_secs(3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_failure_is_typed() {
    // A port that was just free: nothing listens there now.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let m = HttpModel::new(
        &format!("http://127.0.0.1:{port}/x?key=secret"),
        &opts(2000),
    )
    .unwrap();
    let e = m.infer(&ctx()).await.unwrap_err();
    assert!(matches!(e, HttpError::Connect { .. }), "{e:?}");
    assert_eq!(e.reason(), "connect");
    assert!(!e.to_string().contains("secret"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forecasts_endpoint() {
    let (base, _) = server().await;
    let f = HttpForecaster::new(&format!("{base}/forecasts"), &opts(2000)).unwrap();
    let got = f.forecast(&ctx()).await.unwrap();
    assert_eq!(got.len(), 3);
    assert_eq!((got["w1"], got["w2"], got["w3"]), (0.5, -1.5, 2.5));
    let f = HttpForecaster::new(&format!("{base}/forecasts-bad"), &opts(2000)).unwrap();
    let e = f.forecast(&ctx()).await.unwrap_err();
    assert_eq!(e.reason(), "non_finite");
    assert!(e.to_string().contains("w2"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truth_endpoint() {
    let (base, _) = server().await;
    let t = |path: &str| HttpTruth::new(&format!("{base}{path}"), &opts(2000)).unwrap();
    assert_eq!(t("/json").truth(&ctx()).await.unwrap(), Some(0.0123));
    assert_eq!(t("/null").truth(&ctx()).await.unwrap(), None);
    assert_eq!(t("/no-content").truth(&ctx()).await.unwrap(), None);
    assert_eq!(
        t("/echo/{TopicId}/{Epoch}/x").truth(&ctx()).await.unwrap(),
        Some(42.5)
    );
    assert_eq!(
        t("/nan").truth(&ctx()).await.unwrap_err().reason(),
        "non_finite"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_sequential_requests_reuse_the_client() {
    let (base, seen) = server().await;
    let m = HttpModel::new(&format!("{base}/echo/1/{{Epoch}}/x"), &opts(2000)).unwrap();
    for epoch in 0..50u64 {
        let v = m.infer(&EpochContext::new(1, epoch, "x")).await.unwrap();
        assert_eq!(v, epoch as f64 + 0.5);
    }
    assert_eq!(seen.lock().unwrap().len(), 50);
}
