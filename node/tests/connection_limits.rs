//! One host cannot take every connection slot: with `max_connections_per_ip = 2` (loopback not
//! exempt), a third peer id dialling from the same address is refused before its handshake,
//! while the first two stay connected.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use chorus_node::net::behaviour::NetOptions;
use chorus_node::net::build_swarm;
use chorus_protocol::keys::Keypair;
use futures::StreamExt;
use libp2p::Multiaddr;
use libp2p::swarm::SwarmEvent;

#[tokio::test]
async fn a_third_connection_from_one_address_is_refused() {
    let opts = NetOptions {
        local: false,
        max_connections_per_ip: 2,
        ..NetOptions::default()
    };
    let mut node = build_swarm(&Keypair::from_seed(&[1; 32]), &opts).unwrap();
    node.listen_on("/ip4/127.0.0.1/tcp/0".parse().unwrap())
        .unwrap();
    let addr: Multiaddr = loop {
        if let SwarmEvent::NewListenAddr { address, .. } = node.select_next_some().await {
            break address;
        }
    };
    let mut dialers: Vec<_> = (2..=4u8)
        .map(|i| build_swarm(&Keypair::from_seed(&[i; 32]), &NetOptions::default()).unwrap())
        .collect();
    let (mut refused, mut established) = (0u32, 0u32);
    let t0 = Instant::now();
    for (k, d) in dialers.iter_mut().enumerate() {
        d.dial(addr.clone()).unwrap();
        // Drive the node and this dialer until the dial settles (the earlier ones stay up).
        loop {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "dial {k} did not settle"
            );
            tokio::select! {
                ev = node.select_next_some() => match ev {
                    SwarmEvent::ConnectionEstablished { .. } => established += 1,
                    SwarmEvent::IncomingConnectionError { .. } => {
                        refused += 1;
                        break;
                    }
                    _ => {}
                },
                ev = d.select_next_some() => {
                    if matches!(ev, SwarmEvent::ConnectionEstablished { .. }) {
                        break;
                    }
                }
            }
        }
        // Let the node see its side of an established connection.
        let settle = tokio::time::sleep(Duration::from_millis(200));
        tokio::pin!(settle);
        loop {
            tokio::select! {
                ev = node.select_next_some() => {
                    if matches!(ev, SwarmEvent::ConnectionEstablished { .. }) {
                        established += 1;
                    }
                }
                _ = &mut settle => break,
            }
        }
    }
    assert_eq!(established, 2, "the first two connections are accepted");
    assert_eq!(refused, 1, "the third from the same address is refused");
    assert_eq!(node.connected_peers().count(), 2);
}
