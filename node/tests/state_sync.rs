//! Certified state sync (`chorus_node::state_sync`): a node that was away installs a peer's
//! newest ledger state after checking its certificate chain, restarts from it without the
//! windows in between and agrees with the network; a state fetched from a trusted checkpoint
//! verifies too. A hostile peer (a snapshot one field off, a proof that is not one, a chain
//! from another network, another kind of answer) gets a typed error and nothing is written.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use chorus_crdt::ledger::Ledger;
use chorus_crdt::proof::Trust;
use chorus_crdt::replica::wire::{Request, Response};
use chorus_crdt::state_proof::StateProof;
use chorus_node::join::{JoinError, ask};
use chorus_node::localnet::{LocalNet, LocalPlan};
use chorus_node::net::behaviour::BehaviourEvent;
use chorus_node::net::{NetOptions, build_swarm};
use chorus_node::state_sync::{
    MAX_STATE_BYTES, SyncError, fetch_state, fetch_state_in_parts, own_anchor, sync_if_behind,
    sync_store, trust_of,
};
use chorus_node::store::ops;
use chorus_protocol::codec;
use chorus_protocol::keys::Keypair;
use futures::StreamExt;
use libp2p::Multiaddr;
use libp2p::request_response::{Event, Message};
use libp2p::swarm::SwarmEvent;

mod net_common;

const PERIOD_MS: u64 = 150;
const TIMEOUT: Duration = Duration::from_secs(10);

fn plan(root: PathBuf) -> LocalPlan {
    net_common::fast_plan("node-state-sync", 9, 2, PERIOD_MS, root)
}

async fn height_of(net: &LocalNet, i: usize) -> u64 {
    net.handle(i).unwrap().status().await.unwrap().height
}

async fn wait_height(net: &LocalNet, i: usize, at_least: u64, within: Duration) -> u64 {
    let t0 = Instant::now();
    loop {
        let h = height_of(net, i).await;
        if h >= at_least {
            return h;
        }
        assert!(
            t0.elapsed() < within,
            "node {i} at height {h} < {at_least} after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A peer on loopback that answers every state (or state part) request with the next of
/// `answers`.
async fn hostile_peer(answers: Vec<Response>) -> Multiaddr {
    let key = Keypair::from_seed(&[77; 32]);
    let mut swarm = build_swarm(&key, &NetOptions::default()).unwrap();
    swarm
        .listen_on("/ip4/127.0.0.1/tcp/0".parse().unwrap())
        .unwrap();
    let address = loop {
        if let SwarmEvent::NewListenAddr { address, .. } = swarm.select_next_some().await {
            break address;
        }
    };
    let peer = *swarm.local_peer_id();
    let mut queue = answers.into_iter();
    tokio::spawn(async move {
        loop {
            if let SwarmEvent::Behaviour(BehaviourEvent::Rpc(Event::Message {
                message:
                    Message::Request {
                        request: Request::State { .. } | Request::StatePart { .. },
                        channel,
                        ..
                    },
                ..
            })) = swarm.select_next_some().await
                && let Some(answer) = queue.next()
            {
                let _ = swarm.behaviour_mut().rpc.send_response(channel, answer);
            }
        }
    });
    format!("{address}/p2p/{peer}").parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_was_away_installs_a_certified_state_and_follows_the_network() {
    let dir = tempfile::tempdir().unwrap();
    let mut net = LocalNet::start(plan(dir.path().to_path_buf()))
        .await
        .unwrap();
    let left_at = wait_height(&net, 1, 10, Duration::from_secs(60)).await;
    net.stop_node(1).await;
    let before = wait_height(&net, 0, left_at + 40, Duration::from_secs(60)).await;
    let addr0 = net.addrs[0].clone().unwrap();
    let genesis = net.genesis.clone();
    let key = Keypair::from_seed(&[50; 32]);

    // Node 1's store, 40 heights behind, takes node 0's state.
    let path1 = dir.path().join("node-1").join("node.redb");
    let synced = sync_store(
        &path1,
        &genesis,
        std::slice::from_ref(&addr0),
        None,
        &key,
        TIMEOUT,
    )
    .await
    .unwrap();
    println!("{synced:?}");
    assert!(synced.installed);
    assert!(synced.previous_height <= left_at + 2, "{synced:?}");
    // Node 0 keeps a ledger snapshot every 16 heights.
    assert!(
        synced.height + 16 > before && synced.height > left_at + 16,
        "{} for {before}",
        synced.height
    );
    assert_eq!(synced.total_power, 100_000);
    assert_eq!(synced.signed_power, 100_000);
    // Asked again: installed only if node 0 has a newer snapshot by now.
    let again = sync_store(
        &path1,
        &genesis,
        std::slice::from_ref(&addr0),
        None,
        &key,
        TIMEOUT,
    )
    .await
    .unwrap();
    assert_eq!(again.previous_height, synced.height);
    assert_eq!(again.installed, again.height > synced.height, "{again:?}");

    // The installed store holds the snapshot whose root the stored certificate certifies.
    {
        let db = ops::open(&path1, &genesis.network_id()).unwrap();
        let (h, bytes) = ops::latest_ledger(&db).unwrap().unwrap();
        let decided: chorus_crdt::checkpoint::DecidedCheckpoint =
            codec::decode(&ops::certificate(&db, h).unwrap().unwrap()).unwrap();
        assert_eq!(h, again.height);
        assert_eq!(
            Ledger::from_snapshot(&bytes).unwrap().root(),
            decided.checkpoint.ledger_root
        );
    }

    // Restarted, node 1 is at the installed height at once and keeps up with node 0.
    net.start_node(1).await.unwrap();
    let start_height = height_of(&net, 1).await;
    assert!(start_height >= again.height, "{start_height}");
    let target = height_of(&net, 0).await + 10;
    wait_height(&net, 1, target, Duration::from_secs(60)).await;
    // Same height, same checkpoint and ledger root on both.
    let t0 = Instant::now();
    loop {
        let (a, b) = (
            net.handle(0).unwrap().status().await.unwrap(),
            net.handle(1).unwrap().status().await.unwrap(),
        );
        if a.height == b.height {
            assert_eq!((a.tip, a.ledger_root), (b.tip, b.ledger_root));
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "never at one height"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // From a trusted checkpoint (node 0's tip of an earlier height): the chain starts there.
    let status = net.handle(0).unwrap().status().await.unwrap();
    let fetched = fetch_state(
        &addr0,
        &genesis,
        Some((status.height, status.tip)),
        &key,
        TIMEOUT,
    )
    .await
    .unwrap();
    assert!(fetched.state.height() >= status.height);
    // The same in parts of a third of the snapshot: the parts make a state that verifies.
    let part = fetched.snapshot.len() / 3 + 1;
    tokio::time::sleep(Duration::from_millis(
        chorus_crdt::replica::STATE_SERVE_INTERVAL_MS + 100,
    ))
    .await;
    let paged = fetch_state_in_parts(
        &addr0,
        &genesis,
        Some((status.height, status.tip)),
        &key,
        TIMEOUT,
        part,
    )
    .await
    .unwrap();
    assert!(paged.state.height() >= fetched.state.height());
    assert!(
        paged.snapshot.len() > 2 * part,
        "{} bytes",
        paged.snapshot.len()
    );
    tokio::time::sleep(Duration::from_millis(
        chorus_crdt::replica::STATE_SERVE_INTERVAL_MS + 100,
    ))
    .await;
    // A trusted checkpoint the peer's chain does not lead from is refused.
    let mut forged = status.tip;
    forged.0[0] ^= 1;
    let refused = fetch_state(
        &addr0,
        &genesis,
        Some((status.height, forged)),
        &key,
        TIMEOUT,
    )
    .await;
    assert!(
        matches!(refused, Err(SyncError::BadState { .. })),
        "{refused:?}"
    );

    // At a start (`node run`, `[node] state_sync_heights`): a store further behind than the
    // threshold takes the state; one the peer is not that far ahead of is left alone (and a
    // missing one is not even created).
    let fresh_far = dir.path().join("far").join("node.redb");
    std::fs::create_dir_all(fresh_far.parent().unwrap()).unwrap();
    let synced = sync_if_behind(
        &fresh_far,
        &genesis,
        std::slice::from_ref(&addr0),
        None,
        &key,
        10,
        TIMEOUT,
    )
    .await
    .unwrap()
    .expect("node 0 is more than 10 heights ahead of an empty store");
    assert!(synced.installed && synced.previous_height == 0 && synced.height >= 16);
    // That store's own newest checkpoint anchors its next state sync while it is young.
    let now = chorus_node::clock::Clock::system().now_ms();
    let anchor = own_anchor(&fresh_far, &genesis, now).unwrap();
    assert_eq!(
        anchor.map(|(h, id)| (h, id.to_hex())),
        Some((synced.height, synced.checkpoint.clone()))
    );
    let unbonding = genesis.params.validator_unbonding_ms;
    assert_eq!(
        own_anchor(&fresh_far, &genesis, now + unbonding + 60_000).unwrap(),
        None
    );
    tokio::time::sleep(Duration::from_millis(
        chorus_crdt::replica::STATE_SERVE_INTERVAL_MS + 100,
    ))
    .await;
    let near = dir.path().join("near").join("node.redb");
    let none = sync_if_behind(
        &near,
        &genesis,
        std::slice::from_ref(&addr0),
        None,
        &key,
        1_000_000,
        TIMEOUT,
    )
    .await
    .unwrap();
    assert!(none.is_none() && !near.exists());

    // A genuine answer, to tamper with (after the node's pause between two state answers).
    tokio::time::sleep(Duration::from_millis(
        chorus_crdt::replica::STATE_SERVE_INTERVAL_MS + 100,
    ))
    .await;
    let (_, genuine) = ask(
        &addr0,
        &key,
        Request::State {
            trusted: None,
            first: u32::MAX,
        },
        TIMEOUT,
        "state",
    )
    .await
    .unwrap();
    let Response::State {
        proof, snapshot, ..
    } = genuine
    else {
        panic!("{genuine:?}");
    };
    net.shutdown().await;

    let mut ledger = Ledger::from_snapshot(&snapshot).unwrap();
    ledger.next_height += 1;
    let wrong_state = ledger.to_snapshot().unwrap();
    let mut other_network: StateProof = serde_json::from_slice(&proof).unwrap();
    other_network.network.0[0] ^= 1;
    let whole = |proof: &[u8], snapshot: &[u8]| Response::State {
        proof: proof.to_vec(),
        snapshot: snapshot.to_vec(),
        total: snapshot.len() as u64,
    };
    let half = snapshot.len() / 2;
    let first_half = || Response::State {
        proof: proof.clone(),
        snapshot: snapshot[..half].to_vec(),
        total: snapshot.len() as u64,
    };
    let mut altered = snapshot[half..].to_vec();
    altered[0] ^= 1;
    let answers = vec![
        // The certified chain beside another state.
        whole(&proof, &wrong_state),
        // A proof that is not one.
        whole(b"{}", &snapshot),
        // Another network's chain.
        whole(&serde_json::to_vec(&other_network).unwrap(), &snapshot),
        // Another kind of answer.
        Response::Roots(vec![]),
        // A refusal.
        Response::Refused("not today".into()),
        // A snapshot too large to fetch, announced before a byte of it.
        Response::State {
            proof: proof.clone(),
            snapshot: vec![],
            total: MAX_STATE_BYTES as u64 + 1,
        },
        // Half the snapshot, then a part larger than asked for.
        first_half(),
        Response::StatePart(vec![b' '; snapshot.len()]),
        // Half, then an empty part.
        first_half(),
        Response::StatePart(vec![]),
        // Half, then the rest one bit off.
        first_half(),
        Response::StatePart(altered),
    ];
    let hostile = hostile_peer(answers).await;
    let fresh = dir.path().join("newcomer").join("node.redb");
    let mut errors = vec![];
    for _ in 0..9 {
        errors.push(
            sync_store(
                &fresh,
                &genesis,
                std::slice::from_ref(&hostile),
                None,
                &key,
                TIMEOUT,
            )
            .await
            .unwrap_err()
            .remove(0),
        );
    }
    println!("{errors:#?}");
    assert!(matches!(
        &errors[0],
        SyncError::BadState {
            error: chorus_crdt::proof::ProofError::StateMismatch { .. },
            ..
        }
    ));
    assert!(matches!(
        &errors[1],
        SyncError::BadState {
            error: chorus_crdt::proof::ProofError::Malformed(_),
            ..
        }
    ));
    assert!(matches!(
        &errors[2],
        SyncError::BadState {
            error: chorus_crdt::proof::ProofError::WrongNetwork { .. },
            ..
        }
    ));
    assert!(matches!(
        &errors[3],
        SyncError::Join(e) if matches!(**e, JoinError::Malformed { .. })
    ));
    assert!(matches!(
        &errors[4],
        SyncError::Join(e) if matches!(&**e, JoinError::Refused { reason, .. } if reason == "not today")
    ));
    for (i, what) in [(5, "at most"), (6, "were asked"), (7, "were asked")] {
        assert!(
            matches!(&errors[i], SyncError::BadState {
                error: chorus_crdt::proof::ProofError::Malformed(m), ..
            } if m.contains(what)),
            "{i}: {:?}",
            errors[i]
        );
    }
    // The parts are checked as a whole: the certified root does not match.
    assert!(matches!(
        &errors[8],
        SyncError::BadState {
            error: chorus_crdt::proof::ProofError::StateMismatch { .. }
                | chorus_crdt::proof::ProofError::Malformed(_),
            ..
        }
    ));
    // Nothing was written: not even an empty store.
    assert!(!fresh.exists(), "{} was created", fresh.display());
}

/// Weak subjectivity: past the validator unbonding period, the genesis validators vouch for
/// nothing (they may have unbonded and signed another history), so a state is only verified
/// from a trusted checkpoint.
#[test]
fn a_genesis_older_than_the_unbonding_period_needs_a_trusted_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let genesis = plan(dir.path().to_path_buf()).genesis();
    let unbonding = genesis.params.validator_unbonding_ms;
    let born = genesis.genesis_time_ms;
    assert!(matches!(
        trust_of(&genesis, None, born + unbonding),
        Ok(Trust::Genesis { .. })
    ));
    let old = trust_of(&genesis, None, born + unbonding + 1);
    assert!(
        matches!(old, Err(SyncError::NeedsTrustedCheckpoint { age_ms, .. }) if age_ms == unbonding + 1),
        "{old:?}"
    );
    let id = chorus_protocol::ids::Hash32([3; 32]);
    assert!(matches!(
        trust_of(&genesis, Some((40, id)), born + 10 * unbonding),
        Ok(Trust::Checkpoint { height: 40, .. })
    ));
}
