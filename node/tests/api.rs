//! The REST API over real HTTP on 127.0.0.1, against a fake actor (`api::fake`): every
//! route, its status codes and JSON errors, the admin token, submissions, the live stream,
//! the metrics page, 503 once the actor is gone, and graceful shutdown with open streams.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use bytes::Bytes;
use chorus_node::actor::{Answer, InferenceEvent, Query};
use chorus_node::api::fake::{self, FAKE_NETWORK, FAKE_TOKEN, FakeNode};
use chorus_protocol::envelope::Envelope;
use chorus_protocol::ids::{Amount, TopicId};
use chorus_protocol::keys::Keypair;
use chorus_protocol::messages::{Payload, Transfer};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

const TIMEOUT: Duration = Duration::from_secs(10);

fn client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

async fn send(
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> Response<Incoming> {
    let mut req = Request::builder().method(method).uri(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(Full::new(Bytes::from(body))).unwrap();
    tokio::time::timeout(TIMEOUT, client().request(req))
        .await
        .expect("request timed out")
        .unwrap()
}

/// Status and JSON body.
async fn call(method: Method, url: &str, headers: &[(&str, &str)], body: Vec<u8>) -> (u16, Value) {
    let resp = send(method, url, headers, body).await;
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let json = serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("{url}: not JSON ({e}): {}", String::from_utf8_lossy(&bytes)));
    (status, json)
}

async fn get(node: &FakeNode, path: &str) -> (u16, Value) {
    call(Method::GET, &format!("{}{path}", node.url()), &[], vec![]).await
}

/// A one-line `{"error": …}` body.
/// Open topic 1's event stream and wait until the node counts the subscriber.
async fn subscribed(node: &FakeNode) -> Response<Incoming> {
    let url = format!("{}/v1/topics/1/stream", node.url());
    let resp = send(Method::GET, &url, &[], vec![]).await;
    assert_eq!(resp.status(), 200);
    assert!(node.wait_for_subscribers(1, TIMEOUT).await);
    resp
}

/// (event name, id, JSON data) of the first `n` events of a server-sent-events response.
async fn sse_events(resp: Response<Incoming>, n: usize) -> Vec<(String, Option<u64>, Value)> {
    let mut body = resp.into_body();
    let mut text = String::new();
    let mut out = vec![];
    while out.len() < n {
        let frame = tokio::time::timeout(TIMEOUT, body.frame())
            .await
            .expect("no event in time")
            .expect("stream ended")
            .unwrap();
        let Ok(data) = frame.into_data() else {
            continue;
        };
        text.push_str(std::str::from_utf8(&data).unwrap());
        while let Some(end) = text.find("\n\n") {
            let block: String = text.drain(..end + 2).collect();
            let (mut name, mut id, mut data) = (None, None, None);
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("event: ") {
                    name = Some(v.to_owned());
                } else if let Some(v) = line.strip_prefix("id: ") {
                    id = v.parse().ok();
                } else if let Some(v) = line.strip_prefix("data: ") {
                    data = serde_json::from_str(v).ok();
                }
            }
            if let (Some(name), Some(data)) = (name, data) {
                out.push((name, id, data));
            }
        }
    }
    out
}

fn assert_error(body: &Value) {
    let msg = body["error"].as_str().expect("an error message");
    assert!(!msg.is_empty() && !msg.contains('\n'), "{msg:?}");
    assert_eq!(body.as_object().unwrap().len(), 1, "{body}");
}

fn signed_transfer() -> Envelope {
    let payload = Payload::Transfer(Transfer {
        nonce: 3,
        to: Keypair::from_seed(&[2; 32]).public(),
        amount: Amount(1_000),
    });
    Envelope::seal(&Keypair::from_seed(&[1; 32]), &FAKE_NETWORK, &payload)
}

#[tokio::test]
async fn every_read_route_answers_the_actor_json() {
    let node = FakeNode::start().await.unwrap();
    let addr = fake::fake_address();
    let cases = [
        ("/v1/status", Query::Status),
        ("/v1/topics", Query::Topics),
        ("/v1/topics/1", Query::Topic(TopicId(1))),
        (
            "/v1/topics/1/inference",
            Query::Inference {
                topic: TopicId(1),
                epoch: None,
                variant: Default::default(),
            },
        ),
        (
            "/v1/topics/1/inference?epoch=7",
            Query::Inference {
                topic: TopicId(1),
                epoch: Some(7),
                variant: Default::default(),
            },
        ),
        ("/v1/topics/1/scores", Query::Scores(TopicId(1))),
        ("/v1/topics/1/leaderboard", Query::Leaderboard(TopicId(1))),
        (&format!("/v1/accounts/{addr}"), Query::Account(addr)),
        ("/v1/checkpoints/latest", Query::LatestCheckpoint),
    ];
    for (path, query) in cases {
        let (status, body) = get(&node, path).await;
        assert_eq!(status, 200, "{path}: {body}");
        let want = serde_json::to_value(fake::canned(&query).unwrap()).unwrap();
        assert_eq!(body, want, "{path}");
    }
    // Allora's field names come through untouched.
    let (_, inf) = get(&node, "/v1/topics/1/inference?epoch=7").await;
    assert_eq!(inf["epoch"], 7);
    for field in [
        "combined_value",
        "naive_value",
        "inferer_values",
        "one_out_inferer_values",
    ] {
        assert!(inf.get(field).is_some(), "{field}");
    }
}

#[tokio::test]
async fn malformed_requests_are_400_unknown_things_404() {
    let node = FakeNode::start().await.unwrap();
    for path in [
        "/v1/topics/abc",
        "/v1/topics/-1",
        "/v1/topics/99999999999999999999999",
        "/v1/topics/x/inference",
        "/v1/topics/1/inference?epoch=soon",
        "/v1/topics/1/inference?epoch=-3",
        "/v1/topics/1.5/scores",
        "/v1/topics/abc/leaderboard",
        "/v1/topics/abc/stream",
        "/v1/accounts/xyz",
        "/v1/accounts/00",
        "/v1/topics/1/inference?variant=median",
        "/v1/topics/1/inference?trusted=3",
        "/v1/topics/1/inference?proof=true&format=allora",
        "/v1/topics/1/inference?proof=maybe",
        "/v1/topics/1/inference?proof=true&trusted=x",
    ] {
        let (status, body) = get(&node, path).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert_error(&body);
    }
    for path in [
        "/v1/topics/2",
        "/v1/topics/2/inference",
        "/v1/topics/1/inference?epoch=99",
        "/v1/topics/1/inference?epoch=9&proof=true",
        "/v1/topics/2/inference?proof=true",
        "/v1/topics/2/scores",
        "/v1/topics/2/leaderboard",
        "/v1/topics/2/stream",
        "/v1/nothing",
        "/dashboard/nothing.js",
    ] {
        let (status, body) = get(&node, path).await;
        assert_eq!(status, 404, "{path}: {body}");
        assert_error(&body);
    }
    let (status, body) = call(
        Method::POST,
        &format!("{}/v1/status", node.url()),
        &[],
        vec![],
    )
    .await;
    assert_eq!(status, 405);
    assert_error(&body);
}

/// The dashboard: the page and its two assets, each with a policy that allows this origin only;
/// nothing in them names another origin (the SVG namespace is a name, not a request).
#[tokio::test]
async fn the_dashboard_is_served_with_a_same_origin_policy() {
    let node = FakeNode::start().await.unwrap();
    for (path, kind, needle) in [
        ("/", "text/html", "/dashboard/app.js"),
        (
            "/dashboard/app.js",
            "text/javascript",
            "EventSource(\"/v1/events?after=0",
        ),
        ("/dashboard/style.css", "text/css", "--net"),
        ("/dashboard/icon.svg", "image/svg+xml", "<svg"),
    ] {
        let resp = send(Method::GET, &format!("{}{path}", node.url()), &[], vec![]).await;
        assert_eq!(resp.status().as_u16(), 200, "{path}");
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        assert!(header("content-type").starts_with(kind), "{path}");
        let csp = header("content-security-policy");
        assert!(
            csp.contains("default-src 'none'") && csp.contains("connect-src 'self'"),
            "{csp}"
        );
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8(body.to_vec()).unwrap();
        assert!(text.contains(needle), "{path} lacks {needle}");
        let external = text
            .replace("\"http://www.w3.org/2000/svg\"", "")
            .contains("http");
        assert!(!external, "{path} names another origin");
    }
}

/// `?variant=` and `?proof=true` reach the actor as asked.
#[tokio::test]
async fn variant_and_proof_queries_reach_the_actor() {
    let node = FakeNode::start().await.unwrap();
    let (status, body) = get(&node, "/v1/topics/1/inference?variant=outlier_resistant").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["variant"], "outlier_resistant");
    let (status, body) = get(&node, "/v1/topics/1/inference?variant=regular").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.get("variant").is_none(), "{body}");
    let (status, body) = get(&node, "/v1/topics/1/inference?epoch=8&proof=true").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["format"], "chorus-inference-proof/v1");
    assert_eq!(body["epoch"], 8);
}

#[tokio::test]
async fn submit_needs_the_admin_token_and_an_envelope() {
    let node = FakeNode::start().await.unwrap();
    let url = format!("{}/v1/submit", node.url());
    let env = signed_transfer();
    let bytes = env.to_bytes();
    let octets = ("content-type", "application/octet-stream");
    let good = format!("Bearer {FAKE_TOKEN}");

    // No token, wrong token, wrong scheme: 401 with a challenge, nothing reaches the actor.
    for auth in [None, Some("Bearer wrong"), Some("Basic fake-admin-token")] {
        let mut headers = vec![octets];
        if let Some(a) = auth {
            headers.push(("authorization", a));
        }
        let resp = send(Method::POST, &url, &headers, bytes.clone()).await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{auth:?}");
        assert_eq!(resp.headers()["www-authenticate"], "Bearer");
        let body: Value =
            serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap();
        assert_error(&body);
    }
    assert!(node.submitted().is_empty());

    // Not an envelope: 400.
    let auth = ("authorization", good.as_str());
    for (ct, body) in [
        ("application/octet-stream", b"garbage".to_vec()),
        ("text/plain", b"not hex".to_vec()),
        ("text/plain", b"00ff".to_vec()),
    ] {
        let (status, body) = call(Method::POST, &url, &[("content-type", ct), auth], body).await;
        assert_eq!(status, 400, "{body}");
        assert_error(&body);
    }
    // Larger than any envelope: 413.
    let huge = vec![0u8; chorus_node::api::SUBMIT_BODY_LIMIT + 1];
    let (status, body) = call(Method::POST, &url, &[octets, auth], huge).await;
    assert_eq!(status, 413);
    assert_error(&body);
    assert!(node.submitted().is_empty());

    // Canonical bytes, then their hex: accepted, passed through exactly.
    let (status, body) = call(Method::POST, &url, &[octets, auth], bytes.clone()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["id"], env.id().to_hex());
    assert_eq!(body["accepted"], true);
    assert_eq!(body["reason"], Value::Null);
    let hex_body = format!("{}\n", hex::encode(&bytes)).into_bytes();
    let (status, _) = call(
        Method::POST,
        &url,
        &[("content-type", "text/plain; charset=utf-8"), auth],
        hex_body,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(node.submitted(), vec![bytes.clone(), bytes]);
}

#[tokio::test]
async fn the_stream_delivers_the_topics_inferences() {
    let node = FakeNode::start().await.unwrap();
    let resp = subscribed(&node).await;
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let event = |topic, epoch, finalized| InferenceEvent {
        topic: TopicId(topic),
        epoch,
        combined_value: 0.5 + epoch as f64,
        naive_value: Some(0.25),
        finalized,
        checkpoint_height: finalized.then_some(9),
        time_ms: 1_700_000_000_000,
    };
    node.publish(event(2, 40, false));
    node.publish(event(1, 41, false));
    node.publish(event(1, 41, true));

    let events: Vec<(String, InferenceEvent)> = sse_events(resp, 2)
        .await
        .into_iter()
        .map(|(name, _, data)| (name, serde_json::from_value(data).unwrap()))
        .collect();
    assert_eq!(
        events,
        vec![
            ("inference".to_owned(), event(1, 41, false)),
            ("inference".to_owned(), event(1, 41, true)),
        ]
    );
}

#[tokio::test]
async fn metrics_page_lists_our_metrics() {
    let node = FakeNode::start().await.unwrap();
    node.handle().metrics().received("workers");
    node.handle()
        .metrics()
        .validation("worker_bundle", "reject", "bad_signature");
    node.handle().metrics().set_connected_peers(3);
    node.handle().metrics().epoch_missed(TopicId(1), "timeout");
    let resp = send(Method::GET, &format!("{}/metrics", node.url()), &[], vec![]).await;
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    let text = String::from_utf8(
        resp.into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap();
    for needle in [
        "chorus_gossip_messages_received_total{channel=\"workers\"} 1",
        "chorus_validation_outcomes_total{kind=\"worker_bundle\",outcome=\"reject\",reason=\"bad_signature\"} 1",
        "chorus_connected_peers 3",
        "# TYPE chorus_gossip_latency_seconds histogram",
        "# TYPE chorus_checkpoint_height gauge",
        "chorus_epochs_missed_total{topic=\"1\",reason=\"timeout\"} 1",
        "# EOF",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in\n{text}");
    }
}

#[tokio::test]
async fn a_gone_actor_is_503() {
    let mut node = FakeNode::start().await.unwrap();
    node.stop_actor().await;
    for path in ["/v1/status", "/v1/topics/1", "/v1/topics/1/stream"] {
        let (status, body) = get(&node, path).await;
        assert_eq!(status, 503, "{path}");
        assert_error(&body);
    }
    let auth = format!("Bearer {FAKE_TOKEN}");
    let (status, body) = call(
        Method::POST,
        &format!("{}/v1/submit", node.url()),
        &[("authorization", &auth)],
        signed_transfer().to_bytes(),
    )
    .await;
    assert_eq!(status, 503);
    assert_error(&body);
    // Metrics do not need the actor.
    let resp = send(Method::GET, &format!("{}/metrics", node.url()), &[], vec![]).await;
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn shutdown_ends_open_streams_and_returns() {
    let node = FakeNode::start().await.unwrap();
    let resp = subscribed(&node).await;
    // Well within SHUTDOWN_GRACE: the stream is cut, not waited out.
    tokio::time::timeout(Duration::from_secs(3), node.shutdown())
        .await
        .expect("graceful shutdown waited on the stream")
        .unwrap();
    let rest = tokio::time::timeout(TIMEOUT, resp.into_body().collect()).await;
    assert!(rest.is_ok(), "the stream did not end");
}

#[test]
fn the_fake_network_id_is_what_status_reports() {
    let Answer::Status(status) = fake::canned(&Query::Status).unwrap() else {
        panic!("status answered with another document");
    };
    assert_eq!(status.network_id, FAKE_NETWORK);
}

/// docs/api.md is the contract: every route it documents answers (neither "no such route"
/// nor 405), and every metric its table lists is registered on the metrics page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_route_and_metric_exists() {
    let doc = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/api.md"));
    let node = FakeNode::start().await.unwrap();
    let address = Keypair::from_seed(&[1; 32]).public().to_hex();
    let mut routes = vec![];
    for line in doc.lines().filter(|l| l.starts_with("### ")) {
        for part in line.split('`').skip(1).step_by(2) {
            let Some((method, path)) = part.split_once(' ') else {
                continue;
            };
            let path = path.split('[').next().unwrap_or(path);
            routes.push((method.to_string(), path.to_string()));
        }
    }
    assert!(routes.len() >= 12, "{routes:?}");
    for (method, path) in &routes {
        let url = format!(
            "{}{}",
            node.url(),
            path.replace("{id}", "1").replace("{address}", &address)
        );
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let resp = send(method.clone(), &url, &[], vec![]).await;
        let status = resp.status().as_u16();
        if status == 404 {
            let body = resp.into_body().collect().await.unwrap().to_bytes();
            assert!(
                !String::from_utf8_lossy(&body).contains("no such route"),
                "documented {method} {path} does not exist"
            );
        } else {
            assert_ne!(status, 405, "documented {method} {path}: wrong method");
        }
    }
    // A labeled family prints nothing before its first event: record one of each.
    let m = node.handle().metrics();
    m.received("workers");
    m.published("ledger");
    m.validation("worker_bundle", "accept", "");
    m.inference_published(TopicId(1));
    m.inference_received(TopicId(1));
    m.losses_published(TopicId(1));
    m.model_request(TopicId(1), "inference", "ok");
    m.epoch_missed(TopicId(1), "not_registered");
    m.dropped("gossip_in");
    m.penalized("invalid_entries");
    m.pruned("windows", 1);
    let text = m.encode();
    let documented: Vec<&str> = doc
        .lines()
        .filter(|l| l.starts_with("| `chorus_"))
        .filter_map(|l| l.split('`').nth(1))
        .collect();
    assert!(documented.len() >= 15, "{documented:?}");
    for name in documented {
        let family = name.strip_suffix("_total").unwrap_or(name);
        assert!(
            text.contains(&format!("# TYPE {family} ")),
            "documented metric {name} is not registered"
        );
    }
}

/// `id:` lines on `/v1/events`, and a client that reconnects with `Last-Event-ID` gets the held
/// heights after it (with a `lagged` notice for those no longer held), then live ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ledger_events_resume_from_last_event_id() {
    use chorus_crdt::ledger::LedgerEvent;
    use chorus_node::actor::{LedgerRecord, handle::LEDGER_EVENTS};
    let node = FakeNode::start().await.unwrap();
    let record = |height: u64| LedgerRecord {
        height,
        events: std::sync::Arc::new(vec![LedgerEvent::Emission {
            minted: Amount(u128::from(height)),
            validators: Amount(0),
            topics: Amount(0),
        }]),
    };
    let held = LEDGER_EVENTS as u64;
    for h in 1..=held + 6 {
        node.publish_ledger(record(h));
    }
    let url = format!("{}/v1/events", node.url());
    // Resuming inside the held heights: exactly the heights after the id, in order.
    let last = held + 2;
    let resp = send(
        Method::GET,
        &url,
        &[("last-event-id", &last.to_string())],
        vec![],
    )
    .await;
    assert_eq!(resp.status(), 200);
    let got = sse_events(resp, 4).await;
    let ids: Vec<Option<u64>> = got.iter().map(|(_, id, _)| *id).collect();
    assert_eq!(ids, (last + 1..=held + 6).map(Some).collect::<Vec<_>>());
    assert!(
        got.iter()
            .all(|(name, id, data)| name == "checkpoint" && data["height"].as_u64() == *id)
    );
    // `?after=` on a first request (a browser's EventSource) does the same; the header wins.
    let resp = send(Method::GET, &format!("{url}?after={last}"), &[], vec![]).await;
    let got = sse_events(resp, 4).await;
    let ids: Vec<Option<u64>> = got.iter().map(|(_, id, _)| *id).collect();
    assert_eq!(ids, (last + 1..=held + 6).map(Some).collect::<Vec<_>>());
    let resp = send(
        Method::GET,
        &format!("{url}?after=1"),
        &[("last-event-id", &last.to_string())],
        vec![],
    )
    .await;
    let got = sse_events(resp, 1).await;
    assert_eq!(got[0].1, Some(last + 1));
    // Resuming before the oldest held height: a lagged notice with the exact count first.
    let resp = send(Method::GET, &url, &[("last-event-id", "2")], vec![]).await;
    let got = sse_events(resp, 2).await;
    assert_eq!(got[0].0, "lagged");
    // Held: heights 7..=held+6; 3..=6 are gone.
    assert_eq!(got[0].2["missed"], 4);
    assert_eq!(got[1].1, Some(7));
    // A live height after the replay arrives once, with its id.
    let resp = send(
        Method::GET,
        &url,
        &[("last-event-id", &(held + 5).to_string())],
        vec![],
    )
    .await;
    node.publish_ledger(record(held + 7));
    let got = sse_events(resp, 2).await;
    let ids: Vec<Option<u64>> = got.iter().map(|(_, id, _)| *id).collect();
    assert_eq!(ids, vec![Some(held + 6), Some(held + 7)]);
    // A node that holds nothing after the id (e.g. it restarted): the first live height says
    // how many were skipped.
    let fresh = FakeNode::start().await.unwrap();
    let url2 = format!("{}/v1/events", fresh.url());
    let resp = send(Method::GET, &url2, &[("last-event-id", "10")], vec![]).await;
    fresh.publish_ledger(record(15));
    let got = sse_events(resp, 2).await;
    assert_eq!(got[0].0, "lagged");
    assert_eq!(got[0].2["missed"], 4);
    assert_eq!(got[1].1, Some(15));
    // A Last-Event-ID that is not a height is the caller's fault.
    let (status, body) = call(Method::GET, &url, &[("last-event-id", "abc")], vec![]).await;
    assert_eq!(status, 400);
    assert_error(&body);
}

/// `POST /v1/submit?wait=S` answers what the ledger did: applied or refused (with the
/// ledger's reason) at a height, or still pending when no checkpoint decided within S.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_can_wait_for_the_ledger_verdict() {
    use chorus_crdt::ledger::LedgerEvent;
    use chorus_node::actor::LedgerRecord;
    let node = std::sync::Arc::new(FakeNode::start().await.unwrap());
    let env = signed_transfer();
    let id = env.id();
    let auth = format!("Bearer {FAKE_TOKEN}");
    let post = |wait: &str| {
        let url = format!("{}/v1/submit?wait={wait}", node.url());
        let auth = auth.clone();
        let bytes = env.to_bytes();
        async move {
            call(
                Method::POST,
                &url,
                &[
                    ("content-type", "application/octet-stream"),
                    ("authorization", auth.as_str()),
                ],
                bytes,
            )
            .await
        }
    };
    // A checkpoint that refuses it arrives while the request waits.
    let waiting = tokio::spawn(post("10"));
    let t0 = std::time::Instant::now();
    while node.submitted().is_empty() {
        assert!(t0.elapsed() < TIMEOUT, "never submitted");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let other = Keypair::from_seed(&[7; 32]).public();
    node.publish_ledger(LedgerRecord {
        height: 12,
        events: std::sync::Arc::new(vec![
            LedgerEvent::Applied {
                author: other,
                id: chorus_protocol::ids::Hash32([1; 32]),
                kind: "transfer".into(),
            },
            LedgerEvent::Refused {
                author: env.signer,
                id,
                reason: "insufficient balance".into(),
            },
        ]),
    });
    let (status, body) = waiting.await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["accepted"], true);
    assert_eq!(body["ledger"], "refused");
    assert_eq!(body["height"], 12);
    assert_eq!(body["ledger_reason"], "insufficient balance");
    // Nothing decided within the wait: pending.
    let (status, body) = post("1").await;
    assert_eq!(status, 200);
    assert_eq!(body["ledger"], "pending");
    assert!(body["height"].is_null());
    // Longer than the cap: the caller's fault.
    let (status, body) = post("601").await;
    assert_eq!(status, 400);
    assert_error(&body);
}

/// `?format=allora`: Allora's latest_network_inferences shape, field for field, with string
/// decimals; an unknown format is the caller's fault.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inference_in_allora_shape() {
    let node = FakeNode::start().await.unwrap();
    let me = chorus_node::api::fake::fake_address().to_hex();
    let other = Keypair::from_seed(&[10; 32]).public().to_hex();
    let (status, a) = get(&node, "/v1/topics/1/inference?epoch=40&format=allora").await;
    assert_eq!(status, 200, "{a}");
    let n = &a["network_inferences"];
    assert_eq!(n["topic_id"], "1");
    assert_eq!(
        n["reputer_request_nonce"]["reputer_nonce"]["block_height"],
        "40"
    );
    assert_eq!(n["combined_value"], "0.0012");
    assert_eq!(n["naive_value"], "0.0011");
    // Lists of {worker, value} in key order, values as strings.
    let mut expected = vec![
        serde_json::json!({"worker": me, "value": "0.0013"}),
        serde_json::json!({"worker": other, "value": "0.0011"}),
    ];
    expected.sort_by(|x, y| x["worker"].as_str().cmp(&y["worker"].as_str()));
    assert_eq!(n["inferer_values"], Value::Array(expected));
    assert_eq!(
        n["one_out_inferer_forecaster_values"],
        serde_json::json!([{"forecaster": me, "one_out_inferer_values": [{"worker": other, "value": "0.0012"}]}])
    );
    assert_eq!(a["inference_block_height"], "40");
    assert_eq!(a["loss_block_height"], "41");
    assert_eq!(
        a["confidence_interval_raw_percentiles"],
        serde_json::json!(["2.28", "15.87", "50", "84.13", "97.72"])
    );
    assert_eq!(
        a["confidence_interval_values"],
        serde_json::json!(["0.0009", "0.001", "0.0012", "0.0013", "0.0015"])
    );
    assert!(
        a["inferer_weights"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w["worker"] == me.as_str() && w["weight"] == "0.6")
    );
    // The default format is unchanged; an unknown one is 400.
    let (status, plain) = get(&node, "/v1/topics/1/inference?epoch=40").await;
    assert_eq!(status, 200);
    assert_eq!(plain["combined_value"], 0.0012);
    let (status, body) = get(&node, "/v1/topics/1/inference?format=bogus").await;
    assert_eq!(status, 400);
    assert_error(&body);
}
