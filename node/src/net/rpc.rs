//! Request-response protocol `/chorus/rpc/1`: the framing of the replica's requests and
//! responses ([`chorus_crdt::replica::wire`]: window roots and sync, window contents,
//! checkpoint catch-up and envelope fetch).
//!
//! Frames are a u32 little-endian length and the canonical encoding of a [`Request`] or
//! [`Response`]. Lengths beyond [`MAX_REQUEST`] / [`MAX_RESPONSE`] are refused before any
//! allocation; the decoded value must be canonical (see `chorus_protocol::codec`).

use std::io;

use chorus_protocol::codec::{self, Wire};
use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::StreamProtocol;

/// The protocol name.
pub const PROTOCOL: StreamProtocol = StreamProtocol::new("/chorus/rpc/1");
pub use chorus_crdt::replica::wire::{
    MAX_CATCHUP, MAX_FETCH, MAX_REQUEST, MAX_RESPONSE, MAX_ROOTS, Request, Response,
};

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
