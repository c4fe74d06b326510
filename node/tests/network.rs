//! Six real nodes in one process over loopback TCP: a topic with 3 inferers (one also
//! forecasts), 2 reputers and 4 validators runs for more than 10 epochs; every node ends with
//! the same network inferences, checkpoint chain and balances; a node stopped for 3 epochs
//! catches up after restart; a peer sending invalid signatures is disconnected.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use chorus_node::api::types::Status;
use chorus_node::localnet::{LocalNet, LocalPlan, LocalReputer, LocalTopic, LocalWorker};
use chorus_node::models::{BuiltinSpec, ForecasterSpec, ModelSpec, Target, TruthSpec};
use chorus_protocol::ids::{Amount, TopicId};
use chorus_protocol::topic::{LossMethod, TopicSpec};

mod net_common;

use net_common::{EPOCH_MS, data, now_ms};

fn plan(root: PathBuf) -> LocalPlan {
    let start = now_ms() + 3_000;
    let truth = TruthSpec::Csv {
        path: data(),
        target: Target::Range,
    };
    let builtin = |m: &str| {
        Some(ModelSpec::Builtin(BuiltinSpec {
            target: Target::Range,
            model: serde_json::from_value(serde_json::json!({ "model": m })).unwrap(),
        }))
    };
    let worker = |node: usize, m: &str, forecaster: bool| LocalWorker {
        node,
        name: m.into(),
        model: builtin(m),
        forecaster: forecaster.then_some(ForecasterSpec::Ema {
            alpha: 0.1,
            loss_floor: 1e-12,
        }),
        data: Some(data()),
        truth: Some(truth.clone()),
    };
    let topic = LocalTopic {
        id: TopicId(1),
        spec: TopicSpec::new(
            "EUR/USD range",
            LossMethod::Mse,
            start,
            EPOCH_MS,
            500,
            EPOCH_MS,
        ),
        workers: vec![
            worker(0, "last", false),
            worker(1, "sma", true),
            worker(4, "ema", false),
        ],
        reputers: vec![
            LocalReputer {
                node: 2,
                stake: Amount(50_000),
                truth: truth.clone(),
            },
            LocalReputer {
                node: 5,
                stake: Amount(30_000),
                truth,
            },
        ],
    };
    net_common::plan("node-it", 7, 6, vec![0, 1, 2, 3], vec![topic], start, root)
}

async fn status(net: &LocalNet, i: usize) -> Status {
    net.handle(i).unwrap().status().await.unwrap()
}

async fn wait_for<F, Fut>(what: &str, timeout: Duration, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let t0 = Instant::now();
    while t0.elapsed() < timeout {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

async fn heights(net: &LocalNet) -> Vec<u64> {
    let mut v = vec![];
    for i in 0..net.nodes.len() {
        if net.handle(i).is_some() {
            v.push(status(net, i).await.height);
        }
    }
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn six_nodes_agree_catch_up_and_drop_a_forger() {
    let dir = tempfile::tempdir().unwrap();
    let mut net = LocalNet::start(plan(dir.path().to_path_buf()))
        .await
        .unwrap();

    // 1. The network finalizes epochs with settlement.
    wait_for(
        "12 checkpoints everywhere",
        Duration::from_secs(60),
        || async { heights(&net).await.iter().all(|h| *h >= 12) },
    )
    .await;

    // 2. Node 5 (a reputer) stops for 3 epochs, restarts, catches up.
    net.stop_node(5).await;
    tokio::time::sleep(Duration::from_millis(3 * EPOCH_MS)).await;
    let before: u64 = status(&net, 0).await.height;
    net.start_node(5).await.unwrap();
    wait_for("node 5 to catch up", Duration::from_secs(40), || async {
        status(&net, 5).await.height >= before + 2
    })
    .await;

    // 3. Everyone agrees: same root at the same height, same finalized inferences, balances.
    let mut agreed = false;
    for _ in 0..100 {
        let mut seen = vec![];
        for i in 0..6 {
            let s = status(&net, i).await;
            seen.push((s.height, s.ledger_root));
        }
        if seen.iter().all(|s| *s == seen[0]) {
            agreed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        agreed,
        "nodes never reported the same height and ledger root"
    );
    let h = net.handle(0).unwrap();
    let inference = h.inference(TopicId(1), Some(5)).await.unwrap();
    assert!(inference.finalized);
    // Node 5 finalized epoch 5 before its restart: it answers from its store.
    let restarted = net
        .handle(5)
        .unwrap()
        .inference(TopicId(1), Some(5))
        .await
        .unwrap();
    assert_eq!(
        restarted.bundle.combined_value,
        inference.bundle.combined_value
    );
    assert!(restarted.finalized);
    for i in 1..6 {
        let other = net.handle(i).unwrap().inference(TopicId(1), Some(5)).await;
        if let Ok(other) = other {
            assert_eq!(
                other.bundle.combined_value, inference.bundle.combined_value,
                "node {i}"
            );
        }
    }
    proofs_verify(&net, 5, inference.bundle.combined_value).await;
    let topic = h.scores(TopicId(1)).await.unwrap();
    assert!(topic.regrets.inferer.len() >= 2, "{topic:?}");
    let rewards = status(&net, 0).await.rewards;
    assert!(rewards.0 > 0, "validator 0 earned nothing");

    // 4. A peer that forges worker 0's bundles (invalid signatures) is disconnected by all.
    assert!(
        forger(&net).await,
        "the forger was not disconnected by every node"
    );
    for i in 0..6 {
        let text = net.handle(i).unwrap().metrics().encode();
        let graylisted = text
            .lines()
            .filter(|l| l.contains("graylisted_peers") && !l.starts_with('#'))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>();
        assert!(graylisted >= 1.0, "node {i} never graylisted the forger");
    }
    net.shutdown().await;
}

/// Every node proves epoch `epoch`'s inference (node 5 from its store, after its restart): the
/// proof verifies from the genesis alone, carries the value every node serves, and the same
/// proof anchored at a checkpoint (`&trusted=`) verifies from that checkpoint's id.
async fn proofs_verify(net: &LocalNet, epoch: u64, combined: f64) {
    use chorus_crdt::proof::{Trust, Variant, verify};
    let ledger = chorus_crdt::ledger::Ledger::from_genesis(&net.genesis).unwrap();
    let genesis = Trust::Genesis {
        network: net.genesis.network_id(),
        validators: chorus_crdt::replica::validator_set(&ledger).unwrap(),
    };
    let mut height = None;
    for i in 0..6 {
        let p = net
            .handle(i)
            .unwrap()
            .inference_proof(TopicId(1), Some(epoch), None, Variant::Regular)
            .await
            .unwrap_or_else(|e| panic!("node {i}: {e}"));
        let v = verify(&p, &genesis).unwrap_or_else(|e| panic!("node {i}'s proof: {e}"));
        assert_eq!(v.bundle.combined_value, combined, "node {i}");
        assert_eq!((v.topic, v.epoch), (TopicId(1), epoch));
        assert!(3 * v.signed_power > 2 * v.total_power, "node {i}");
        assert_eq!(*height.get_or_insert(v.height), v.height, "node {i}");
    }
    let height = height.unwrap();
    // The outlier-resistant variant has its own leaf in the same checkpoint.
    let p = net
        .handle(2)
        .unwrap()
        .inference_proof(TopicId(1), Some(epoch), None, Variant::OutlierResistant)
        .await
        .unwrap();
    let v = verify(&p, &genesis).unwrap();
    assert_eq!((v.variant, v.height), (Variant::OutlierResistant, height));

    // Anchored one height before: node 1 serves the anchor, node 0's id is trusted.
    let anchored = net
        .handle(1)
        .unwrap()
        .inference_proof(TopicId(1), Some(epoch), Some(height - 1), Variant::Regular)
        .await
        .unwrap();
    let anchor = anchored.anchor.as_ref().expect("an anchor for trusted=");
    let cp: chorus_crdt::checkpoint::Checkpoint =
        chorus_protocol::codec::decode(&hex::decode(&anchor.checkpoint).unwrap()).unwrap();
    let trusted = Trust::Checkpoint {
        height: height - 1,
        id: cp.id().0,
    };
    assert_eq!(verify(&anchored, &trusted).unwrap().height, height);
    // The genesis-rooted proof does not verify from a checkpoint it does not carry.
    let plain = net
        .handle(0)
        .unwrap()
        .inference_proof(TopicId(1), Some(epoch), None, Variant::Regular)
        .await
        .unwrap();
    assert!(verify(&plain, &trusted).is_err());
}

/// Connect a forging peer to every node, publish bundles claiming worker 0's key with bad
/// signatures, and return whether every node disconnected it.
async fn forger(net: &LocalNet) -> bool {
    use chorus_protocol::envelope::Envelope;
    use chorus_protocol::keys::Keypair;
    use chorus_protocol::messages::{Payload, WorkerBundle};
    use chorus_protocol::validation::{Channel, ChannelKind};
    use futures::StreamExt;
    use libp2p::gossipsub::IdentTopic;

    let attacker = Keypair::from_seed(&[0xAB; 32]);
    let mut swarm = chorus_node::net::build_swarm(&attacker, &Default::default()).unwrap();
    swarm
        .listen_on("/ip4/127.0.0.1/tcp/0".parse().unwrap())
        .unwrap();
    for a in net.addrs.iter().flatten() {
        swarm.dial(a.clone()).unwrap();
    }
    let network = net.genesis.network_id();
    let topic = IdentTopic::new(
        Channel {
            network,
            kind: ChannelKind::Workers(TopicId(1)),
        }
        .name(),
    );
    swarm.behaviour_mut().gossipsub.subscribe(&topic).unwrap();
    let victim = chorus_node::localnet::node_key(7, 0).public();
    let spec = net.plan.topics[0].spec.clone();
    let t0 = Instant::now();
    let mut sent = 0u32;
    let mut connected_once = false;
    let mut next = Instant::now() + Duration::from_secs(3);
    loop {
        tokio::select! {
            _ = swarm.select_next_some() => {}
            _ = tokio::time::sleep_until(next.into()) => {
                next = Instant::now() + Duration::from_millis(40);
                let peers = swarm.connected_peers().count();
                connected_once |= peers >= 5;
                if connected_once && peers == 0 && sent > 0 {
                    return true;
                }
                if t0.elapsed() > Duration::from_secs(40) {
                    return false;
                }
                let now = now_ms();
                let Some(epoch) = spec.epoch_at(now) else { continue };
                let (open, close) = spec.worker_window(epoch);
                if connected_once && sent < 60 && now >= open && now + 50 < close {
                    let payload = Payload::WorkerBundle(WorkerBundle {
                        topic: TopicId(1),
                        epoch,
                        inference: Some(f64::from(sent)),
                        forecasts: vec![],
                    });
                    let mut env = Envelope::seal(&attacker, &network, &payload);
                    env.signer = victim;
                    let _ = swarm.behaviour_mut().gossipsub.publish(topic.clone(), env.to_bytes());
                    sent += 1;
                }
            }
        }
    }
}
