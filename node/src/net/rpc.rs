//! Request-response protocol `/chorus/rpc/1`: window roots and sync, window contents,
//! checkpoint catch-up and envelope fetch.
//!
//! Frames are a u32 little-endian length and the canonical encoding of a [`Request`] or
//! [`Response`]. Lengths beyond [`MAX_REQUEST`] / [`MAX_RESPONSE`] are refused before any
//! allocation; the decoded value must be canonical (see `chorus_protocol::codec`).

use std::io;

use bincode::{Decode, Encode};
use chorus_crdt::window::WindowKey;
use chorus_protocol::codec::{self, Wire};
use chorus_protocol::ids::Hash32;
use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::StreamProtocol;

/// The protocol name.
pub const PROTOCOL: StreamProtocol = StreamProtocol::new("/chorus/rpc/1");
/// Largest request frame.
pub const MAX_REQUEST: usize = 9 * 1024 * 1024;
/// Largest response frame.
pub const MAX_RESPONSE: usize = 16 * 1024 * 1024;
/// Most windows named in one roots request.
pub const MAX_ROOTS: usize = 4_096;
/// Most checkpoints in one catch-up response.
pub const MAX_CATCHUP: u32 = 256;
/// Most envelopes asked for in one fetch.
pub const MAX_FETCH: usize = 4_096;

/// A request.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub enum Request {
    /// Your roots of these windows.
    Roots(Vec<WindowKey>),
    /// One automerge sync message for a window.
    Sync {
        /// The window.
        window: WindowKey,
        /// The sync message.
        message: Vec<u8>,
    },
    /// Every envelope you hold for a window.
    WindowEntries(WindowKey),
    /// Decided checkpoints with certificates from a height on.
    CatchUp {
        /// First height wanted.
        from: u64,
        /// At most this many.
        max: u32,
    },
    /// Envelopes by message id.
    Fetch(Vec<Hash32>),
    /// A consensus message sent directly (catch-up requests and replies).
    Consensus(Vec<u8>),
}

/// A response.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub enum Response {
    /// Roots, in request order (`None`: unknown window).
    Roots(Vec<Option<Hash32>>),
    /// The peer's next sync message, if it has one.
    Sync(Option<Vec<u8>>),
    /// Envelope bytes.
    Envelopes(Vec<Vec<u8>>),
    /// Checkpoints with certificates, encoded by the consensus layer.
    Checkpoints(Vec<Vec<u8>>),
    /// Direct consensus replies.
    Consensus(Vec<Vec<u8>>),
    /// Refused (rate limit, unknown, overload), with a reason.
    Refused(String),
}

impl Wire for Request {
    const MAX_SIZE: usize = MAX_REQUEST;
    const NAME: &'static str = "rpc::Request";
}

impl Wire for Response {
    const MAX_SIZE: usize = MAX_RESPONSE;
    const NAME: &'static str = "rpc::Response";
}

async fn read_frame<T: AsyncRead + Unpin + Send, M: Wire>(io: &mut T) -> io::Result<M> {
    let mut len = [0u8; 4];
    io.read_exact(&mut len).await?;
    let len = u32::from_le_bytes(len) as usize;
    if len > M::MAX_SIZE {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} frame of {len} bytes exceeds {}", M::NAME, M::MAX_SIZE),
        ));
    }
    let mut buf = vec![0u8; len];
    io.read_exact(&mut buf).await?;
    codec::decode(&buf).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

async fn write_frame<T: AsyncWrite + Unpin + Send, M: Wire>(io: &mut T, m: &M) -> io::Result<()> {
    let bytes = codec::encode(m);
    if bytes.len() > M::MAX_SIZE {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "frame too large",
        ));
    }
    io.write_all(&(bytes.len() as u32).to_le_bytes()).await?;
    io.write_all(&bytes).await?;
    io.close().await
}

/// The request-response codec.
#[derive(Clone, Copy, Debug, Default)]
pub struct RpcCodec;

impl libp2p::request_response::Codec for RpcCodec {
    type Protocol = StreamProtocol;
    type Request = Request;
    type Response = Response;

    async fn read_request<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<Request> {
        read_frame(io).await
    }

    async fn read_response<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<Response> {
        read_frame(io).await
    }

    async fn write_request<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        req: Request,
    ) -> io::Result<()> {
        write_frame(io, &req).await
    }

    async fn write_response<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        res: Response,
    ) -> io::Result<()> {
        write_frame(io, &res).await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use libp2p::request_response::Codec;

    #[test]
    fn frames_round_trip_and_oversize_is_refused() {
        futures::executor::block_on(async {
            let mut c = RpcCodec;
            let req = Request::CatchUp { from: 7, max: 3 };
            let mut buf = futures::io::Cursor::new(Vec::new());
            c.write_request(&PROTOCOL, &mut buf, req.clone())
                .await
                .unwrap();
            let mut rd = futures::io::Cursor::new(buf.into_inner());
            assert_eq!(c.read_request(&PROTOCOL, &mut rd).await.unwrap(), req);
            let mut huge = (u32::MAX).to_le_bytes().to_vec();
            huge.extend_from_slice(&[0; 16]);
            let mut rd = futures::io::Cursor::new(huge);
            assert!(c.read_response(&PROTOCOL, &mut rd).await.is_err());
            let mut garbage = 3u32.to_le_bytes().to_vec();
            garbage.extend_from_slice(&[0xff, 0xff, 0xff]);
            let mut rd = futures::io::Cursor::new(garbage);
            assert!(c.read_request(&PROTOCOL, &mut rd).await.is_err());
        });
    }
}
