//! With the `quic` feature, nodes listen and dial over QUIC (`/udp/<port>/quic-v1`) beside
//! TCP: two swarms built exactly as a node builds its own connect over QUIC on loopback and
//! exchange a gossip message. Runs in the test command (the node's tests turn `quic` on).

#![cfg(feature = "quic")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use chorus_node::net::{NetOptions, build_swarm};
use chorus_protocol::keys::Keypair;
use futures::StreamExt;
use libp2p::gossipsub::{Event as GossipEvent, IdentTopic};
use libp2p::multiaddr::Protocol;
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, Swarm};

use chorus_node::net::Behaviour;
use chorus_node::net::behaviour::BehaviourEvent;

fn node(seed: u8) -> Swarm<Behaviour> {
    build_swarm(&Keypair::from_seed(&[seed; 32]), &NetOptions::default()).unwrap()
}

fn is_quic(a: &Multiaddr) -> bool {
    a.iter().any(|p| matches!(p, Protocol::QuicV1))
}

#[tokio::test]
async fn two_nodes_connect_and_gossip_over_quic() {
    let mut a = node(1);
    let mut b = node(2);
    let topic = IdentTopic::new("chorus-quic-test");
    a.behaviour_mut().gossipsub.subscribe(&topic).unwrap();
    b.behaviour_mut().gossipsub.subscribe(&topic).unwrap();
    a.listen_on("/ip4/127.0.0.1/udp/0/quic-v1".parse().unwrap())
        .unwrap();
    let addr = loop {
        if let SwarmEvent::NewListenAddr { address, .. } = a.select_next_some().await {
            break address;
        }
    };
    assert!(is_quic(&addr), "{addr}");
    b.dial(addr.with(Protocol::P2p(*a.local_peer_id())))
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let (mut connected, mut published, mut received) = (false, false, false);
    while !received {
        assert!(
            tokio::time::Instant::now() < deadline,
            "connected {connected}, published {published}, received {received}"
        );
        tokio::select! {
            ev = a.select_next_some() => {
                if let SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(GossipEvent::Message {
                    propagation_source, message_id, message,
                })) = ev
                {
                    assert_eq!(message.data, b"over quic");
                    let _ = a.behaviour_mut().gossipsub.report_message_validation_result(
                        &message_id,
                        &propagation_source,
                        libp2p::gossipsub::MessageAcceptance::Accept,
                    );
                    received = true;
                }
            }
            ev = b.select_next_some() => {
                if let SwarmEvent::ConnectionEstablished { endpoint, .. } = &ev {
                    assert!(is_quic(endpoint.get_remote_address()), "{endpoint:?}");
                    connected = true;
                }
                if let SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(GossipEvent::Subscribed { .. })) = ev
                    && !published
                {
                    b.behaviour_mut()
                        .gossipsub
                        .publish(topic.clone(), b"over quic".to_vec())
                        .unwrap();
                    published = true;
                }
            }
        }
    }
    assert!(connected);
}
