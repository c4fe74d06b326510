//! Retention: a node keeping 64 heights runs past them, prunes finalized windows, their
//! envelopes and old certificates in bounded passes (the metrics count what went), keeps what
//! it needs, and restarts from the pruned store and goes on.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use chorus_node::config::StoreSection;
use chorus_node::localnet::{LocalNet, LocalPlan, LocalReputer, LocalTopic, LocalWorker};
use chorus_node::models::{BuiltinSpec, ModelSpec, Target, TruthSpec};
use chorus_node::store::ops;
use chorus_protocol::ids::{Amount, TopicId};
use chorus_protocol::topic::{LossMethod, TopicSpec};

mod net_common;

use net_common::{data, now_ms};

/// Checkpoint period and epoch: short, so 100 heights pass in about 15 s.
const PERIOD_MS: u64 = 150;
const KEEP: u64 = 64;

fn plan(root: PathBuf) -> LocalPlan {
    let start = now_ms() + 1_500;
    let truth = TruthSpec::Csv {
        path: data(),
        target: Target::Range,
    };
    let topic = LocalTopic {
        id: TopicId(1),
        spec: TopicSpec::new("range", LossMethod::Mse, start, PERIOD_MS, 75, PERIOD_MS),
        workers: vec![LocalWorker {
            node: 0,
            name: "last".into(),
            model: Some(ModelSpec::Builtin(BuiltinSpec {
                target: Target::Range,
                model: serde_json::from_value(serde_json::json!({ "model": "last" })).unwrap(),
            })),
            forecaster: None,
            data: Some(data()),
            truth: Some(truth.clone()),
        }],
        reputers: vec![LocalReputer {
            node: 0,
            stake: Amount(50_000),
            truth,
        }],
    };
    let mut p = net_common::plan("node-retention", 5, 1, vec![0], vec![topic], start, root);
    p.params.checkpoint_period_ms = PERIOD_MS;
    p.params.max_clock_skew_ms = 20;
    p.replica.propose_grace_ms = 20;
    p.replica.timeouts = chorus_crdt::replica::sim::replica_config().timeouts;
    p.store = StoreSection {
        retention_heights: Some(KEEP),
        ..StoreSection::default()
    };
    p
}

/// The value of a metric line `name` (0 when absent).
fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse::<f64>().ok())
        .unwrap_or(0.0) as u64
}

async fn wait_height(net: &LocalNet, at_least: u64, within: Duration) -> u64 {
    let t0 = Instant::now();
    loop {
        let h = net.handle(0).unwrap().status().await.unwrap().height;
        if h >= at_least {
            return h;
        }
        assert!(
            t0.elapsed() < within,
            "height {h} < {at_least} after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_prunes_history_older_than_its_retention_and_restarts_from_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut net = LocalNet::start(plan(dir.path().to_path_buf()))
        .await
        .unwrap();
    let height = wait_height(&net, KEEP + 40, Duration::from_secs(90)).await;
    let text = net.handle(0).unwrap().metrics().encode();
    let windows = metric(&text, "chorus_store_pruned_total{kind=\"windows\"}");
    let envelopes = metric(&text, "chorus_store_pruned_total{kind=\"envelopes\"}");
    let certificates = metric(&text, "chorus_store_pruned_total{kind=\"certificates\"}");
    assert!(
        windows > 0 && envelopes > 0 && certificates > 0,
        "{windows} {envelopes} {certificates}"
    );
    net.stop_node(0).await;
    let db = dir.path().join("node-0").join("node.redb");
    let network = net.genesis.network_id();
    let (stats, oldest, windows_left) = {
        let db = ops::open(&db, &network).unwrap();
        let stats = ops::stats(&db).unwrap();
        let oldest = ops::certificates_from(&db, 0).unwrap()[0].0;
        let windows_left = chorus_node::store::prune::window_keys_page(&db, None, 100_000)
            .unwrap()
            .len() as u64;
        (stats, oldest, windows_left)
    };
    println!(
        "height {height}: pruned {windows} windows, {envelopes} envelopes, {certificates} \
         certificates; left {windows_left} windows, {} envelopes, certificates {oldest}..={height}",
        stats.envelopes
    );
    // Certificates below the cutoff of the last pass are gone, the recent ones all there.
    assert!(oldest > 1, "certificate 1 was kept");
    assert!(
        oldest + KEEP + 16 >= height,
        "oldest certificate {oldest} at height {height}"
    );
    assert_eq!(
        stats.certificates,
        height - oldest + 1,
        "a gap in the kept certificates"
    );
    // Three windows per height (ledger, workers, reputers): what is left is the retention's
    // worth and the passes' slack, not the whole run.
    assert!(
        windows_left <= 3 * (KEEP + 24),
        "{windows_left} windows left at height {height}"
    );
    // The pruned store starts, and the node goes on.
    net.start_node(0).await.unwrap();
    wait_height(&net, height + 5, Duration::from_secs(30)).await;
    net.shutdown().await;
}
