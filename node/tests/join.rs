//! `chorus_node::join::fetch_genesis` against a hostile peer on loopback: whatever it answers
//! (another network's genesis, bytes that are no genesis, another kind of answer, a refusal),
//! the newcomer gets a typed error and no genesis.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use chorus_crdt::replica::wire::{Request, Response};
use chorus_node::join::{JoinError, fetch_genesis};
use chorus_node::net::behaviour::BehaviourEvent;
use chorus_node::net::{NetOptions, build_swarm};
use chorus_protocol::codec;
use chorus_protocol::genesis::Genesis;
use chorus_protocol::keys::Keypair;
use futures::StreamExt;
use libp2p::Multiaddr;
use libp2p::request_response::{Event, Message};
use libp2p::swarm::SwarmEvent;

/// A genesis (the shipped proof example's) and another network's (another name).
fn geneses() -> (Genesis, Genesis) {
    let text = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/proof/genesis.toml"
    ));
    let ours = Genesis::from_toml_str(text).unwrap();
    let mut theirs = ours.clone();
    theirs.network = "a look-alike".into();
    (ours, theirs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_peer_cannot_hand_over_another_genesis() {
    let (ours, theirs) = geneses();
    let answers = vec![
        Response::Genesis(codec::encode(&theirs)),
        Response::Genesis(vec![1, 2, 3]),
        Response::Roots(vec![]),
        Response::Refused("not today".into()),
        Response::Genesis(codec::encode(&ours)),
    ];
    let key = Keypair::from_seed(&[7; 32]);
    let mut swarm = build_swarm(&key, &NetOptions::default()).unwrap();
    swarm
        .listen_on("/ip4/127.0.0.1/tcp/0".parse().unwrap())
        .unwrap();
    let address = loop {
        if let SwarmEvent::NewListenAddr { address, .. } = swarm.select_next_some().await {
            break address;
        }
    };
    let bootstrap: Multiaddr = format!("{address}/p2p/{}", swarm.local_peer_id())
        .parse()
        .unwrap();
    // The hostile peer answers each genesis request with the next answer.
    let mut queue = answers.clone().into_iter();
    tokio::spawn(async move {
        loop {
            if let SwarmEvent::Behaviour(BehaviourEvent::Rpc(Event::Message {
                message:
                    Message::Request {
                        request: Request::Genesis,
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
    let id = ours.network_id();
    let mut results = vec![];
    for i in 0..answers.len() {
        let newcomer = Keypair::from_seed(&[20 + i as u8; 32]);
        results.push(fetch_genesis(&bootstrap, id, &newcomer, Duration::from_secs(10)).await);
    }
    assert!(
        matches!(&results[0], Err(JoinError::WrongNetwork { found, name, .. })
            if *found == theirs.network_id() && name == "a look-alike"),
        "{:?}",
        results[0]
    );
    assert!(
        matches!(&results[1], Err(JoinError::Malformed { .. })),
        "{:?}",
        results[1]
    );
    assert!(
        matches!(&results[2], Err(JoinError::Malformed { .. })),
        "{:?}",
        results[2]
    );
    assert!(
        matches!(&results[3], Err(JoinError::Refused { reason, .. }) if reason == "not today"),
        "{:?}",
        results[3]
    );
    // The honest answer is taken.
    assert_eq!(results[4].as_ref().unwrap().network_id(), id);
    // An address that does not name its peer is refused before any connection.
    let bare: Multiaddr = address;
    assert!(matches!(
        fetch_genesis(&bare, id, &key, Duration::from_secs(1)).await,
        Err(JoinError::NoPeerId(_))
    ));
}
