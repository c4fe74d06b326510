//! Allora's model contract, unchanged: a server with exactly basic-coin-prediction-node's
//! behaviour (`GET /inference/ETH` → a plain number as text/html; 400 and a JSON error for any
//! other token) serves a Chorus worker configured with `Token = "ETH"`; HTTPS with an
//! operator's CA; the worker role's retries (transient failures retried until the window
//! closes, a 400 not), and `chorus_epochs_missed_total` counting epochs, not tries. All servers
//! listen on 127.0.0.1.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chorus_node::clock::Clock;
use chorus_node::localnet::{LocalNet, LocalPlan, LocalReputer, LocalTopic, LocalWorker};
use chorus_node::metrics::NodeMetrics;
use chorus_node::models::{
    BuiltinSpec, EpochContext, HttpModel, HttpOptions, HttpSpec, ModelSpec, Target, TruthSpec,
};
use chorus_node::roles::{RoleOutput, RoleView, WorkerTask, run_worker};
use chorus_protocol::ids::{Amount, TopicId};
use chorus_protocol::keys::Keypair;
use chorus_protocol::messages::Payload;
use chorus_protocol::topic::{LossMethod, TopicSpec};
use serde_json::Value;
use tokio::sync::{mpsc, watch};

mod net_common;

use net_common::{EPOCH_MS, data, now_ms};

/// The value the reference server predicts.
const ETH: f64 = 3456.78;

/// Paths the reference server was asked for.
type Seen = Arc<Mutex<Vec<String>>>;

/// basic-coin-prediction-node's `app.py`, route for route: `GET /inference/<token>` answers
/// `str(inference)` with status 200 (Flask's default text/html) when `token.upper()` is the
/// configured token, and 400 with `{"error": "Token not supported"}` otherwise.
async fn inference(State(seen): State<Seen>, Path(token): Path<String>) -> Response {
    seen.lock().unwrap().push(format!("/inference/{token}"));
    if token.to_uppercase() == "ETH" {
        (
            StatusCode::OK,
            [("content-type", "text/html; charset=utf-8")],
            ETH.to_string(),
        )
            .into_response()
    } else {
        (
            StatusCode::BAD_REQUEST,
            [("content-type", "application/json")],
            r#"{"error": "Token not supported"}"#,
        )
            .into_response()
    }
}

async fn reference_server() -> (String, Seen) {
    let seen: Seen = Arc::default();
    let app = axum::Router::new()
        .route("/inference/{token}", axum::routing::get(inference))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), seen)
}

/// `name{labels} value` lines of a Prometheus text exposition, summed over lines whose
/// labels contain every one of `labels`.
fn metric(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.split(['{', ' ']).next() == Some(name))
        .filter(|l| labels.iter().all(|want| l.contains(want)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn http_worker(node: usize, base: &str, token: Option<&str>) -> LocalWorker {
    LocalWorker {
        node,
        name: format!("http-{node}"),
        model: Some(ModelSpec::Http(HttpSpec {
            url: format!("{base}/inference/{{Token}}"),
            timeout_ms: 1000,
            max_body_bytes: 64 * 1024,
            params: token
                .map(|t| BTreeMap::from([("Token".to_string(), t.to_string())]))
                .unwrap_or_default(),
            ca_file: None,
        })),
        forecaster: None,
        data: None,
        truth: None,
    }
}

fn plan(root: PathBuf, base: &str) -> LocalPlan {
    let start = now_ms() + 2_000;
    let truth = TruthSpec::Csv {
        path: data(),
        target: Target::Close,
    };
    let topic = |id: u64, token: &str, workers: Vec<LocalWorker>| LocalTopic {
        id: TopicId(id),
        spec: TopicSpec {
            token: token.into(),
            ..TopicSpec::new(
                "ETH 1h price",
                LossMethod::Mse,
                start,
                EPOCH_MS,
                600,
                EPOCH_MS,
            )
        },
        workers,
        reputers: vec![LocalReputer {
            node: 2,
            stake: Amount(50_000),
            truth: truth.clone(),
        }],
    };
    let builtin = LocalWorker {
        node: 1,
        name: "last".into(),
        model: Some(ModelSpec::Builtin(BuiltinSpec {
            target: Target::Close,
            model: serde_json::from_value(serde_json::json!({ "model": "last" })).unwrap(),
        })),
        forecaster: None,
        data: Some(data()),
        truth: None,
    };
    let topics = vec![
        // The operator sets Token = "ETH" as in Allora's worker `parameters`; the topic has no
        // token of its own.
        topic(
            1,
            "",
            vec![http_worker(0, base, Some("ETH")), builtin.clone()],
        ),
        // The topic's own token fills {Token} when the operator sets none.
        topic(2, "ETH", vec![http_worker(0, base, None), builtin.clone()]),
        // A token the server does not support: 400, never retried, every epoch missed.
        topic(3, "BTC", vec![http_worker(0, base, None), builtin]),
    ];
    net_common::plan("allora-dropin", 11, 3, vec![0, 1, 2], topics, start, root)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_coin_prediction_node_serves_a_worker_unchanged() {
    let (base, seen) = reference_server().await;
    let dir = tempfile::tempdir().unwrap();
    let plan = plan(dir.path().to_path_buf(), &base);
    let worker_key = plan.keys()[0].public();
    let net = LocalNet::start(plan).await.unwrap();
    let h = net.handle(0).unwrap();

    // The worker's value is in finalized network inferences of topics 1 and 2.
    let t0 = Instant::now();
    let mut found = BTreeSet::new();
    while found.len() < 2 && t0.elapsed() < Duration::from_secs(60) {
        for topic in [1, 2] {
            if let Ok(i) = h.inference(TopicId(topic), None).await
                && i.finalized
                && i.bundle.inferer_values.get(&worker_key) == Some(&ETH)
            {
                found.insert(topic);
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        found,
        BTreeSet::from([1, 2]),
        "the reference server's value never reached a finalized inference"
    );

    let paths = seen.lock().unwrap().clone();
    assert!(paths.iter().any(|p| p == "/inference/ETH"), "{paths:?}");
    assert!(
        paths
            .iter()
            .all(|p| p == "/inference/ETH" || p == "/inference/BTC"),
        "{paths:?}"
    );
    // A 400 is not retried: one request per epoch, each epoch missed once with reason status.
    let btc = paths.iter().filter(|p| *p == "/inference/BTC").count();
    let m0 = h.metrics().encode();
    let missed = metric(
        &m0,
        "chorus_epochs_missed_total",
        &["topic=\"3\"", "reason=\"status\""],
    );
    assert!(btc >= 2, "{paths:?}");
    let btc_requests = metric(
        &m0,
        "chorus_model_requests_total",
        &["topic=\"3\"", "kind=\"inference\"", "outcome=\"status\""],
    );
    assert_eq!(btc_requests, btc as f64, "{m0}");
    // The two counters are read a moment apart: at most one epoch between them.
    assert!(
        (missed - btc as f64).abs() <= 1.0,
        "missed {missed} for {btc} requests"
    );

    // Every worker/reputer counter moved where it should.
    let ok = metric(
        &m0,
        "chorus_model_requests_total",
        &["topic=\"1\"", "kind=\"inference\"", "outcome=\"ok\""],
    );
    let published = metric(&m0, "chorus_inferences_published_total", &["topic=\"1\""]);
    assert!(ok >= 1.0 && published >= 1.0, "{m0}");
    assert!(published <= ok, "published {published} > ok {ok}");
    assert_eq!(
        metric(&m0, "chorus_inferences_published_total", &["topic=\"3\""]),
        0.0
    );
    let m1 = net.handle(1).unwrap().metrics().encode();
    // Node 1 stores its own bundle and node 0's in topics 1 and 2.
    assert!(
        metric(&m1, "chorus_inferences_received_total", &["topic=\"1\""]) >= 2.0,
        "{m1}"
    );
    // "Am I working?": node 0's duties say topic 1 works and why topic 3 does not.
    let status = h.status().await.unwrap();
    let duty = |topic: u64, role: &str| {
        status
            .duties
            .iter()
            .find(|d| d.topic == topic && d.role == role)
            .cloned()
            .unwrap_or_else(|| panic!("no duty ({topic}, {role}) in {:?}", status.duties))
    };
    let ok = duty(1, "worker");
    assert!(ok.configured && ok.registered && ok.funded, "{ok:?}");
    assert_eq!(ok.problem, None, "{ok:?}");
    assert!(ok.last.as_ref().is_some_and(|l| l.accepted), "{ok:?}");
    let failing = duty(3, "worker");
    let problem = failing.problem.clone().unwrap_or_default();
    assert!(
        problem.contains("not submitted") && problem.contains("status"),
        "{failing:?}"
    );
    assert_eq!(status.duties.len(), 3, "{:?}", status.duties);
    let reputer = net.handle(2).unwrap().status().await.unwrap();
    let r = reputer
        .duties
        .iter()
        .find(|d| d.topic == 1 && d.role == "reputer")
        .cloned()
        .unwrap();
    assert_eq!(r.stake, Amount(50_000));
    assert!(r.registered && r.configured, "{r:?}");
    // Per-epoch statements: once an epoch is settled, every node holds the same lines for the
    // worker (they come from the replicated ledger events).
    let q = chorus_node::actor::StatementsQuery {
        address: worker_key,
        topic: Some(TopicId(1)),
        from: None,
        to: None,
    };
    let t0 = Instant::now();
    let lines = loop {
        let lines = h.statements(q.clone()).await.unwrap();
        if !lines.is_empty() || t0.elapsed() > Duration::from_secs(60) {
            break lines;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(!lines.is_empty(), "no epoch settled");
    assert!(
        lines.iter().all(|l| l.role == "inferer"
            && l.topic == 1
            && l.score.is_some_and(f64::is_finite)
            && l.weight.is_some()
            && l.height > 0),
        "{lines:?}"
    );
    let epochs: BTreeSet<u64> = lines.iter().map(|l| l.epoch).collect();
    let t0 = Instant::now();
    loop {
        let other = net.handle(1).unwrap().statements(q.clone()).await.unwrap();
        let same: Vec<_> = other
            .into_iter()
            .filter(|l| epochs.contains(&l.epoch))
            .collect();
        if same.len() == lines.len() {
            assert_eq!(same, lines);
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "node 1 never held the lines"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let m2 = net.handle(2).unwrap().metrics().encode();
    assert!(
        metric(&m2, "chorus_losses_published_total", &["topic=\"1\""]) >= 1.0,
        "{m2}"
    );
    assert!(
        metric(
            &m2,
            "chorus_model_requests_total",
            &["kind=\"truth\"", "outcome=\"ok\""]
        ) >= 1.0,
        "{m2}"
    );
    net.shutdown().await;
}

/// A worker role in isolation, against a programmable server: the view says whether it is
/// registered; the server fails the first `fail` requests of each epoch with `status`.
struct Programmed {
    requests: AtomicUsize,
    fail: usize,
    status: u16,
}

async fn programmed(State(p): State<Arc<Programmed>>) -> Response {
    let n = p.requests.fetch_add(1, Ordering::SeqCst);
    if n < p.fail {
        StatusCode::from_u16(p.status).unwrap().into_response()
    } else {
        "0.5".into_response()
    }
}

async fn run_role(fail: usize, status: u16, registered: bool) -> (Vec<RoleOutput>, usize, String) {
    let p = Arc::new(Programmed {
        requests: AtomicUsize::new(0),
        fail,
        status,
    });
    let app = axum::Router::new()
        .route("/m", axum::routing::get(programmed))
        .with_state(p.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });

    let me = Keypair::from_seed(&[9; 32]).public();
    let topic = TopicId(1);
    // One epoch of 2 s (window 1.5 s) that started 100 ms ago: the role serves it, then waits.
    let start = now_ms() - 100;
    let spec = TopicSpec::new("t", LossMethod::Mse, start, 2_000, 1_500, 2_000);
    let view = RoleView {
        topics: BTreeMap::from([(topic, spec)]),
        workers: BTreeMap::from([(
            topic,
            if registered {
                BTreeSet::from([me])
            } else {
                BTreeSet::new()
            },
        )]),
        ..RoleView::default()
    };
    let (_view_tx, view_rx) = watch::channel(Arc::new(view));
    let (out_tx, mut out_rx) = mpsc::channel(16);
    let model = ModelSpec::Http(HttpSpec {
        url: format!("http://{addr}/m"),
        timeout_ms: 500,
        max_body_bytes: 1024,
        params: BTreeMap::new(),
        ca_file: None,
    });
    let task = WorkerTask::build(topic, me, Some(&model), None, None, None, 0).unwrap();
    let metrics = Arc::new(NodeMetrics::new());
    let role = tokio::spawn(run_worker(
        task,
        view_rx,
        out_tx,
        Clock::system(),
        metrics.clone(),
    ));
    // The window closes 1.4 s from now; stop well before the next epoch's window.
    tokio::time::sleep(Duration::from_millis(1_700)).await;
    role.abort();
    let mut outputs = vec![];
    while let Ok(o) = out_rx.try_recv() {
        outputs.push(o);
    }
    (outputs, p.requests.load(Ordering::SeqCst), metrics.encode())
}

fn published(outputs: &[RoleOutput]) -> Vec<Option<f64>> {
    outputs
        .iter()
        .filter_map(|o| match o {
            RoleOutput::Publish(p) => match &**p {
                Payload::WorkerBundle(b) => Some(b.inference),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_failures_are_retried_within_the_window() {
    let (outputs, requests, m) = run_role(2, 503, true).await;
    assert_eq!(published(&outputs), vec![Some(0.5)], "{outputs:?}");
    assert_eq!(requests, 3);
    assert_eq!(
        metric(&m, "chorus_model_requests_total", &["outcome=\"status\""]),
        2.0
    );
    assert_eq!(
        metric(&m, "chorus_model_requests_total", &["outcome=\"ok\""]),
        1.0
    );
    assert_eq!(metric(&m, "chorus_epochs_missed_total", &[]), 0.0, "{m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_down_for_the_whole_window_misses_the_epoch_once() {
    let (outputs, requests, m) = run_role(usize::MAX, 503, true).await;
    assert!(published(&outputs).is_empty(), "{outputs:?}");
    // 100 ms doubling, capped at 2 s, within ~1.4 s: a handful of tries, more than one.
    assert!((3..=8).contains(&requests), "{requests} requests");
    assert_eq!(
        metric(&m, "chorus_epochs_missed_total", &["reason=\"status\""]),
        1.0,
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_error_is_not_retried() {
    let (outputs, requests, m) = run_role(usize::MAX, 400, true).await;
    assert!(published(&outputs).is_empty());
    assert_eq!(requests, 1);
    assert_eq!(
        metric(&m, "chorus_epochs_missed_total", &["reason=\"status\""]),
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unregistered_worker_says_so_and_asks_nothing() {
    let (outputs, requests, m) = run_role(0, 200, false).await;
    assert_eq!(requests, 0);
    assert!(published(&outputs).is_empty());
    assert!(
        outputs.iter().any(|o| matches!(
            o,
            RoleOutput::Skipped { reason, .. } if reason == "not_registered"
        )),
        "{outputs:?}"
    );
    assert_eq!(
        metric(
            &m,
            "chorus_epochs_missed_total",
            &["reason=\"not_registered\""]
        ),
        1.0,
        "{m}"
    );
}

/// HTTPS to a model server whose certificate an operator's own CA signed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_with_an_operator_ca() {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let fixtures = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tls");
    let certs = CertificateDer::pem_file_iter(fixtures.join("leaf.pem"))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(fixtures.join("leaf.key")).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = hyper::service::service_fn(|req: hyper::Request<_>| async move {
                    let body = if req.uri().path() == "/inference/ETH" {
                        "42.5"
                    } else {
                        "0"
                    };
                    Ok::<_, std::convert::Infallible>(hyper::Response::new(
                        http_body_util::Full::new(bytes::Bytes::from(body)),
                    ))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    let url = format!("https://127.0.0.1:{}/inference/{{Token}}", addr.port());
    let ctx = EpochContext::new(1, 1, "ETH");
    let trusted = HttpModel::new(
        &url,
        &HttpOptions {
            ca_file: Some(fixtures.join("ca.pem")),
            ..HttpOptions::default()
        },
    )
    .unwrap();
    assert_eq!(trusted.infer(&ctx).await.unwrap(), 42.5);
    // Without the CA the certificate is unknown: refused, never read.
    let untrusted = HttpModel::new(&url, &HttpOptions::default()).unwrap();
    let e = untrusted.infer(&ctx).await.unwrap_err();
    assert!(e.to_string().to_lowercase().contains("certificate"), "{e}");
    // A ca_file that is not PEM is a clear configuration error.
    let e = HttpModel::new(
        &url,
        &HttpOptions {
            ca_file: Some(fixtures.join("make.sh")),
            ..HttpOptions::default()
        },
    )
    .unwrap_err();
    assert_eq!(e.reason(), "tls_config", "{e}");
}

/// Allora's loss-function service contract (`POST /calculate`, `POST /is_never_negative`),
/// squared error, answering losses as strings; and a ground-truth server answering a quoted
/// number at `/gt/{token}/{height}` like coin-prediction-reputer. Each loss takes `delay_ms`.
async fn loss_and_truth_server(
    never_negative: bool,
    delay_ms: u64,
) -> (String, Arc<Mutex<Vec<Value>>>) {
    use axum::Json;
    let calls: Arc<Mutex<Vec<Value>>> = Arc::default();
    let calculate = move |State(calls): State<Arc<Mutex<Vec<Value>>>>, Json(req): Json<Value>| async move {
        calls.lock().unwrap().push(req.clone());
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
        let y: f64 = req["y_true"].as_str().unwrap().parse().unwrap();
        let p: f64 = req["y_pred"].as_str().unwrap().parse().unwrap();
        Json(serde_json::json!({ "loss": ((y - p) * (y - p)).to_string() }))
    };
    let app = axum::Router::new()
        .route("/calculate", axum::routing::post(calculate))
        .route(
            "/is_never_negative",
            axum::routing::post(move |Json(req): Json<Value>| async move {
                assert_eq!(req["options"]["loss_method"], "sqe");
                Json(serde_json::json!({ "is_never_negative": never_negative }))
            }),
        )
        .route(
            "/gt/{token}/{height}",
            axum::routing::get(|Path((token, _height)): Path<(String, u64)>| async move {
                assert_eq!(token, "ETH");
                "\"2564.5\""
            }),
        )
        .with_state(calls.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), calls)
}

/// A finalized network inference of these inferer values (weight 1 each) and one-out values,
/// combined 2564.0, nothing else.
fn finalized_bundle(
    inferers: BTreeMap<chorus_protocol::keys::PublicKey, f64>,
    one_out: BTreeMap<chorus_protocol::keys::PublicKey, f64>,
) -> chorus_protocol::inference::NetworkInference {
    chorus_protocol::inference::NetworkInference {
        combined_value: 2564.0,
        confidence_interval_values: None,
        forecaster_values: BTreeMap::new(),
        forecaster_weights: BTreeMap::new(),
        inferer_weights: inferers.keys().map(|k| (*k, 1.0)).collect(),
        inferer_values: inferers,
        naive_value: None,
        one_in_forecaster_values: BTreeMap::new(),
        one_out_forecaster_values: BTreeMap::new(),
        one_out_inferer_forecaster_values: BTreeMap::new(),
        one_out_inferer_values: one_out,
    }
}

/// A ground truth over HTTP at `url` (1 s timeout).
fn http_truth(url: String) -> TruthSpec {
    TruthSpec::Http(HttpSpec {
        url,
        timeout_ms: 1000,
        max_body_bytes: 1024,
        params: BTreeMap::new(),
        ca_file: None,
    })
}

/// A reputer with a loss service (each loss taking `delay_ms`) run for `run_ms` while epoch
/// 0's reputer window, opened 100 ms before, is open for 1.9 s more.
async fn run_reputer_once(
    never_negative: bool,
    delay_ms: u64,
    run_ms: u64,
) -> (Vec<RoleOutput>, Vec<serde_json::Value>, String) {
    use chorus_node::models::{LossServiceSpec, build_loss_service, build_truth};
    use chorus_node::roles::{ReputerTask, run_reputer};
    let (base, calls) = loss_and_truth_server(never_negative, delay_ms).await;
    let me = Keypair::from_seed(&[8; 32]).public();
    let w1 = Keypair::from_seed(&[1; 32]).public();
    let w2 = Keypair::from_seed(&[2; 32]).public();
    let topic = TopicId(1);
    // Epoch 0's reputer window opened 100 ms ago.
    let spec = TopicSpec {
        token: "ETH".into(),
        ..TopicSpec::new("t", LossMethod::Mse, now_ms() - 2_100, 2_000, 1_500, 2_000)
    };
    let bundle = finalized_bundle(
        BTreeMap::from([(w1, 2564.0), (w2, 2566.5)]),
        BTreeMap::from([(w1, 2566.5), (w2, 2564.0)]),
    );
    let view = RoleView {
        topics: BTreeMap::from([(topic, spec)]),
        reputers: BTreeMap::from([(topic, BTreeSet::from([me]))]),
        pending: BTreeMap::from([((topic, 0), Arc::new(bundle))]),
        ..RoleView::default()
    };
    let truth = http_truth(format!("{base}/gt/{{Token}}/{{BlockHeight}}"));
    let loss = LossServiceSpec {
        url: base.clone(),
        options: BTreeMap::from([("loss_method".to_string(), "sqe".to_string())]),
        timeout_ms: 1000 + delay_ms,
        ca_file: None,
    };
    let task = ReputerTask {
        topic,
        me,
        truth: build_truth(&truth).unwrap(),
        loss: Some(build_loss_service(&loss).unwrap()),
    };
    let (_view_tx, view_rx) = watch::channel(Arc::new(view));
    let (out_tx, mut out_rx) = mpsc::channel(16);
    let metrics = Arc::new(NodeMetrics::new());
    let role = tokio::spawn(run_reputer(
        task,
        view_rx,
        out_tx,
        Clock::system(),
        metrics.clone(),
    ));
    tokio::time::sleep(Duration::from_millis(run_ms)).await;
    role.abort();
    let mut outputs = vec![];
    while let Ok(o) = out_rx.try_recv() {
        outputs.push(o);
    }
    let calls = calls.lock().unwrap().clone();
    (outputs, calls, metrics.encode())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reputer_scores_with_an_allora_loss_service() {
    let (outputs, calls, _) = run_reputer_once(true, 0, 1_000).await;
    let bundles: Vec<_> = outputs
        .iter()
        .filter_map(|o| match o {
            RoleOutput::Publish(p) => match &**p {
                Payload::ReputerBundle(b) => Some(b.clone()),
                _ => None,
            },
            _ => None,
        })
        .collect();
    assert_eq!(bundles.len(), 1, "{outputs:?}");
    let b = &bundles[0];
    assert_eq!(b.ground_truth, 2564.5);
    // Never negative: log10 of the service's squared errors, as Allora's reputer reports.
    assert_eq!(b.losses.combined_value, libm::log10(0.25));
    let by_worker: BTreeMap<_, f64> = b
        .losses
        .inferer_values
        .iter()
        .map(|v| (v.worker, v.value))
        .collect();
    let (w1, w2) = (
        Keypair::from_seed(&[1; 32]).public(),
        Keypair::from_seed(&[2; 32]).public(),
    );
    assert_eq!(
        by_worker,
        BTreeMap::from([(w1, libm::log10(0.25)), (w2, libm::log10(4.0))])
    );
    // Two distinct values (2564.0 and 2566.5): each asked once, with Allora's field shapes.
    assert_eq!(calls.len(), 2, "{calls:?}");
    for c in &calls {
        assert_eq!(c["y_true"], "2564.5");
        assert!(c["y_pred"].is_string());
        assert_eq!(c["options"]["loss_method"], "sqe");
    }
}

/// A loss service slower than the reputer window: the reputer gives the epoch up when the
/// window closes (reason `deadline`, counted once) instead of waiting past it, and publishes
/// nothing late.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_loss_service_slower_than_the_window_is_given_up_at_its_close() {
    // Each loss takes 5 s; the window closes 1.9 s after the reputer starts; it runs 3 s.
    let (outputs, calls, metrics) = run_reputer_once(true, 5_000, 3_000).await;
    assert!(
        !outputs.iter().any(
            |o| matches!(o, RoleOutput::Publish(p) if matches!(**p, Payload::ReputerBundle(_)))
        ),
        "{outputs:?}"
    );
    assert!(!calls.is_empty(), "the loss service was never asked");
    assert_eq!(
        metric(
            &metrics,
            "chorus_epochs_missed_total",
            &["topic=\"1\"", "reason=\"deadline\""]
        ),
        1.0,
        "{metrics}"
    );
}

/// The losses of many values are asked several at a time, never more than the bound, each
/// distinct value once; one failing value fails the whole call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loss_service_requests_run_concurrently_within_a_bound() {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use axum::Json;
    use chorus_node::models::{LOSS_CONCURRENCY, LossServiceSpec, build_loss_service};
    #[derive(Default)]
    struct Load {
        now: AtomicUsize,
        max: AtomicUsize,
        calls: AtomicUsize,
    }
    let load: Arc<Load> = Arc::default();
    let calculate = |State(load): State<Arc<Load>>, Json(req): Json<Value>| async move {
        let now = load.now.fetch_add(1, Ordering::SeqCst) + 1;
        load.max.fetch_max(now, Ordering::SeqCst);
        load.calls.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(100)).await;
        load.now.fetch_sub(1, Ordering::SeqCst);
        let p: f64 = req["y_pred"].as_str().unwrap().parse().unwrap();
        if p == 13.0 {
            return Json(serde_json::json!({ "error": "no" }));
        }
        Json(serde_json::json!({ "loss": (p * p).to_string() }))
    };
    let app = axum::Router::new()
        .route("/calculate", axum::routing::post(calculate))
        .route(
            "/is_never_negative",
            axum::routing::post(|| async {
                Json(serde_json::json!({ "is_never_negative": true }))
            }),
        )
        .with_state(load.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let spec = LossServiceSpec {
        url: format!("http://{addr}"),
        options: BTreeMap::new(),
        timeout_ms: 5_000,
        ca_file: None,
    };
    let service = build_loss_service(&spec).unwrap();
    // 24 distinct values (13 left out: it has no loss), each listed twice.
    let distinct = (1..=25).filter(|v| *v != 13);
    let values: Vec<f64> = distinct.clone().chain(distinct).map(f64::from).collect();
    let losses = service.reported_losses(0.0, &values, 1e-12).await.unwrap();
    assert_eq!(losses.len(), 24);
    assert_eq!(losses[&3.0f64.to_bits()], libm::log10(9.0));
    assert_eq!(load.calls.load(Ordering::SeqCst), 24);
    let max = load.max.load(Ordering::SeqCst);
    assert!(max > 1 && max <= LOSS_CONCURRENCY, "{max} requests at once");
    // Value 13 has no loss: the whole call fails.
    let values: Vec<f64> = (10..=16).map(f64::from).collect();
    assert!(service.reported_losses(0.0, &values, 1e-12).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_loss_service_that_may_go_negative_is_refused_for_a_log10_topic() {
    let (outputs, calls, _) = run_reputer_once(false, 0, 1_000).await;
    assert!(
        !outputs.iter().any(|o| matches!(o, RoleOutput::Publish(_))),
        "{outputs:?}"
    );
    assert!(calls.is_empty(), "losses were asked for: {calls:?}");
}

/// A forecaster learning from a ground-truth endpoint asks about an epoch only once its truth
/// can exist (the reputer window opened), once when answered, and again at most once a second
/// while it is not there yet, however often the view changes (here 20 times in about half a
/// second).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forecaster_learning_asks_for_truth_once_it_can_exist_and_not_per_view_change() {
    use chorus_node::models::ForecasterSpec;
    let asked: Arc<Mutex<BTreeMap<u64, usize>>> = Arc::default();
    let app =
        axum::Router::new()
            .route(
                "/gt/{epoch}",
                axum::routing::get(
                    |State(asked): State<Arc<Mutex<BTreeMap<u64, usize>>>>,
                     Path(epoch): Path<u64>| async move {
                        *asked.lock().unwrap().entry(epoch).or_default() += 1;
                        // Epoch 4's truth is due but the source does not have it yet.
                        if epoch == 4 {
                            StatusCode::NO_CONTENT.into_response()
                        } else {
                            "2564.5".into_response()
                        }
                    },
                ),
            )
            .with_state(asked.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });

    let me = Keypair::from_seed(&[9; 32]).public();
    let w1 = Keypair::from_seed(&[1; 32]).public();
    let topic = TopicId(1);
    // Epochs of 2 s, truth one epoch later: 10.1 s after the start, the truth of epochs
    // 0..=4 can exist (epoch 4's since 0.1 s), that of epoch 5 only in 1.9 s.
    let spec = TopicSpec::new("t", LossMethod::Mse, now_ms() - 10_100, 2_000, 1_500, 2_000);
    let bundle = Arc::new(finalized_bundle(
        BTreeMap::from([(w1, 2564.0)]),
        BTreeMap::new(),
    ));
    let view = RoleView {
        topics: BTreeMap::from([(topic, spec)]),
        workers: BTreeMap::from([(topic, BTreeSet::from([me, w1]))]),
        pending: (0..=5).map(|e| ((topic, e), bundle.clone())).collect(),
        ..RoleView::default()
    };
    let truth = http_truth(format!("http://{addr}/gt/{{Epoch}}"));
    let forecaster = ForecasterSpec::Ema {
        alpha: 0.1,
        loss_floor: 2.5e-11,
    };
    let task =
        WorkerTask::build(topic, me, None, Some(&forecaster), None, Some(&truth), 0).unwrap();
    let (view_tx, view_rx) = watch::channel(Arc::new(view.clone()));
    let (out_tx, mut out_rx) = mpsc::channel(64);
    let role = tokio::spawn(run_worker(
        task,
        view_rx,
        out_tx,
        Clock::system(),
        Arc::new(NodeMetrics::new()),
    ));
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(25)).await;
        view_tx.send(Arc::new(view.clone())).unwrap();
        while out_rx.try_recv().is_ok() {}
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    role.abort();
    let asked = asked.lock().unwrap().clone();
    for e in 0..=3 {
        assert_eq!(asked.get(&e), Some(&1), "epoch {e}: {asked:?}");
    }
    let four = asked.get(&4).copied().unwrap_or(0);
    assert!(
        (1..=2).contains(&four),
        "epoch 4 asked {four} times: {asked:?}"
    );
    assert_eq!(
        asked.get(&5),
        None,
        "epoch 5's truth cannot exist yet: {asked:?}"
    );
}
