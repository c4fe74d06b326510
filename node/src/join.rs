//! Genesis from peers: a newcomer who knows one address of a running network and its id asks
//! that peer for the genesis over `/chorus/rpc/1` (`Request::Genesis`) and keeps it only if its
//! id is the one it was given. The peer is a stranger: nothing it sends is trusted beyond that
//! hash, and a wrong, malformed or oversized answer is refused with a clear error.

use std::time::Duration;

use chorus_crdt::replica::wire::{Request, Response};
use chorus_protocol::codec;
use chorus_protocol::genesis::Genesis;
use chorus_protocol::ids::NetworkId;
use chorus_protocol::keys::Keypair;
use futures::StreamExt;
pub use libp2p::Multiaddr;
use libp2p::PeerId;
use libp2p::multiaddr::Protocol;
use libp2p::request_response::{Event, Message};
use libp2p::swarm::SwarmEvent;

use crate::net::behaviour::BehaviourEvent;
use crate::net::{NetOptions, build_swarm};

/// Why no genesis was obtained.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JoinError {
    /// The bootstrap address does not name its peer.
    #[error("the bootstrap address {0} must end in /p2p/<peer id> (chorus key show --peer-id)")]
    NoPeerId(Multiaddr),
    /// The libp2p stack could not start.
    #[error("network: {0}")]
    Net(String),
    /// The peer could not be reached or did not answer in time.
    #[error("{peer} did not answer: {reason}")]
    Unreachable {
        /// The bootstrap peer.
        peer: PeerId,
        /// Why.
        reason: String,
    },
    /// The peer refused to answer.
    #[error("{peer} refused: {reason}")]
    Refused {
        /// The bootstrap peer.
        peer: PeerId,
        /// Its reason.
        reason: String,
    },
    /// The answer is not a genesis.
    #[error("{peer} answered something that is not a genesis: {reason}")]
    Malformed {
        /// The bootstrap peer.
        peer: PeerId,
        /// Why.
        reason: String,
    },
    /// The genesis is another network's.
    #[error(
        "{peer} serves network {found} (\"{name}\"), not {expected}: check the network id, or \
         bootstrap from a node of that network"
    )]
    WrongNetwork {
        /// The bootstrap peer.
        peer: PeerId,
        /// The id asked for.
        expected: NetworkId,
        /// The served genesis's id.
        found: NetworkId,
        /// The served genesis's network name.
        name: String,
    },
}

/// Send `request` to `bootstrap` (which must end in `/p2p/<peer id>`), connecting as `key`;
/// its answer, or why there is none within `timeout` (`what`: what was asked, for the error).
pub async fn ask(
    bootstrap: &Multiaddr,
    key: &Keypair,
    request: Request,
    timeout: Duration,
    what: &str,
) -> Result<(PeerId, Response), JoinError> {
    let peer = match bootstrap.iter().last() {
        Some(Protocol::P2p(peer)) => peer,
        _ => return Err(JoinError::NoPeerId(bootstrap.clone())),
    };
    let mut swarm = build_swarm(key, &NetOptions::default()).map_err(|e| JoinError::Net(e.0))?;
    let unreachable = |reason: String| JoinError::Unreachable { peer, reason };
    swarm
        .dial(bootstrap.clone())
        .map_err(|e| unreachable(e.to_string()))?;
    let mut request = Some(request);
    let exchange = async {
        loop {
            match swarm.select_next_some().await {
                SwarmEvent::ConnectionEstablished { peer_id, .. } if peer_id == peer => {
                    if let Some(r) = request.take() {
                        swarm.behaviour_mut().rpc.send_request(&peer, r);
                    }
                }
                SwarmEvent::OutgoingConnectionError { error, .. } => {
                    return Err(unreachable(error.to_string()));
                }
                SwarmEvent::Behaviour(BehaviourEvent::Rpc(Event::OutboundFailure {
                    error,
                    ..
                })) => return Err(unreachable(error.to_string())),
                SwarmEvent::Behaviour(BehaviourEvent::Rpc(Event::Message {
                    peer: from,
                    message: Message::Response { response, .. },
                    ..
                })) if from == peer => return Ok(response),
                _ => {}
            }
        }
    };
    let response = tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| unreachable(format!("no {what} within {} s", timeout.as_secs())))??;
    Ok((peer, response))
}

/// Ask `bootstrap` (which must end in `/p2p/<peer id>`) for the genesis of network `network`,
/// connecting as `key`; give up after `timeout`.
pub async fn fetch_genesis(
    bootstrap: &Multiaddr,
    network: NetworkId,
    key: &Keypair,
    timeout: Duration,
) -> Result<Genesis, JoinError> {
    let (peer, response) = ask(bootstrap, key, Request::Genesis, timeout, "genesis").await?;
    let bytes = match response {
        Response::Genesis(bytes) => bytes,
        Response::Refused(reason) => return Err(JoinError::Refused { peer, reason }),
        other => {
            return Err(JoinError::Malformed {
                peer,
                reason: format!("a {} answer", response_name(&other)),
            });
        }
    };
    let genesis: Genesis = codec::decode(&bytes).map_err(|e| JoinError::Malformed {
        peer,
        reason: e.to_string(),
    })?;
    let found = genesis.network_id();
    if found != network {
        return Err(JoinError::WrongNetwork {
            peer,
            expected: network,
            found,
            name: genesis.network.clone(),
        });
    }
    Ok(genesis)
}

pub(crate) fn response_name(r: &Response) -> &'static str {
    match r {
        Response::Roots(_) => "roots",
        Response::Sync(_) => "sync",
        Response::Envelopes(_) => "envelopes",
        Response::Checkpoints(_) => "checkpoints",
        Response::Consensus(_) => "consensus",
        Response::Refused(_) => "refusal",
        Response::Genesis(_) => "genesis",
        Response::Heads(_) => "heads",
        Response::EnvelopePage { .. } => "envelope page",
        Response::Time(_) => "time",
        Response::State { .. } => "state",
        Response::StatePart(_) => "state part",
    }
}
