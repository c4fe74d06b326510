//! Inbound connections per remote IP address: one host cannot take every connection slot of a
//! node. libp2p's `connection_limits` bounds totals and per-peer counts, but a peer id is free
//! to make; an address is not.
//!
//! Loopback addresses are exempt when `exempt_loopback` is set (local testbeds run every node
//! on 127.0.0.1). A connection is refused before its handshake (`handle_pending_inbound_connection`)
//! once its address holds `max_per_ip` established inbound connections.

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::net::IpAddr;
use std::task::{Context, Poll};

use libp2p::PeerId;
use libp2p::core::{ConnectedPoint, Endpoint, Multiaddr, transport::PortUse};
use libp2p::multiaddr::Protocol;
use libp2p::swarm::{
    ConnectionClosed, ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour, THandler,
    THandlerInEvent, THandlerOutEvent, ToSwarm, behaviour::ConnectionEstablished, dummy,
};

/// A connection refused because its address holds too many.
#[derive(Debug, thiserror::Error)]
#[error("{ip} already holds {max} inbound connections")]
pub struct TooManyFromIp {
    /// The address.
    pub ip: IpAddr,
    /// The limit.
    pub max: u32,
}

/// The behaviour.
#[derive(Debug)]
pub struct IpLimits {
    max_per_ip: u32,
    exempt_loopback: bool,
    by_ip: BTreeMap<IpAddr, u32>,
    inbound: HashMap<ConnectionId, IpAddr>,
}

fn ip_of(addr: &Multiaddr) -> Option<IpAddr> {
    addr.iter().find_map(|p| match p {
        Protocol::Ip4(ip) => Some(IpAddr::V4(ip)),
        Protocol::Ip6(ip) => Some(IpAddr::V6(ip)),
        _ => None,
    })
}

impl IpLimits {
    /// At most `max_per_ip` inbound connections per address.
    pub fn new(max_per_ip: u32, exempt_loopback: bool) -> Self {
        IpLimits {
            max_per_ip,
            exempt_loopback,
            by_ip: BTreeMap::new(),
            inbound: HashMap::new(),
        }
    }

    fn limited(&self, ip: &IpAddr) -> bool {
        !(self.exempt_loopback && ip.is_loopback())
    }

    /// Inbound connections held by `ip`.
    pub fn held(&self, ip: &IpAddr) -> u32 {
        self.by_ip.get(ip).copied().unwrap_or(0)
    }
}

impl NetworkBehaviour for IpLimits {
    type ConnectionHandler = dummy::ConnectionHandler;
    type ToSwarm = Infallible;

    fn handle_pending_inbound_connection(
        &mut self,
        _: ConnectionId,
        _: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        match ip_of(remote) {
            Some(ip) if self.limited(&ip) && self.held(&ip) >= self.max_per_ip => {
                Err(ConnectionDenied::new(TooManyFromIp {
                    ip,
                    max: self.max_per_ip,
                }))
            }
            _ => Ok(()),
        }
    }

    fn handle_established_inbound_connection(
        &mut self,
        _: ConnectionId,
        _: PeerId,
        _: &Multiaddr,
        _: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(dummy::ConnectionHandler)
    }

    fn handle_established_outbound_connection(
        &mut self,
        _: ConnectionId,
        _: PeerId,
        _: &Multiaddr,
        _: Endpoint,
        _: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(dummy::ConnectionHandler)
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        match event {
            FromSwarm::ConnectionEstablished(ConnectionEstablished {
                connection_id,
                endpoint: ConnectedPoint::Listener { send_back_addr, .. },
                ..
            }) => {
                if let Some(ip) = ip_of(send_back_addr) {
                    *self.by_ip.entry(ip).or_insert(0) += 1;
                    self.inbound.insert(connection_id, ip);
                }
            }
            FromSwarm::ConnectionClosed(ConnectionClosed { connection_id, .. }) => {
                if let Some(ip) = self.inbound.remove(&connection_id)
                    && let Some(n) = self.by_ip.get_mut(&ip)
                {
                    *n = n.saturating_sub(1);
                    if *n == 0 {
                        self.by_ip.remove(&ip);
                    }
                }
            }
            _ => {}
        }
    }

    fn on_connection_handler_event(
        &mut self,
        _: PeerId,
        _: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        match event {}
    }

    fn poll(&mut self, _: &mut Context<'_>) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        Poll::Pending
    }
}
