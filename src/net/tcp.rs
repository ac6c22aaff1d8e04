//! ICE over TCP (RFC 6544): a passive listener on each media address, and RFC 4571 framing
//! (each packet behind its 16-bit length) on every stream it accepts.
//!
//! A stream is only a pipe: each one gets a small task that cuts what arrives into packets for
//! the worker and frames what the worker sends. Which connection a stream belongs to is the
//! demultiplexer's business, exactly as for a UDP datagram: its first packet must be a binding
//! request to an issued ufrag, or the worker closes it.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Buf, BufMut, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use crate::net::demux::{Path, Transport};

/// How long an accepted stream may stay silent before its first packet.
const FIRST_PACKET_TIMEOUT: Duration = Duration::from_secs(10);

/// Packets queued towards one stream before further ones are dropped (a stalled client).
const OUTGOING_QUEUE: usize = 1024;

/// What the streams tell the worker.
#[derive(Debug)]
pub enum TcpEvent {
    /// A stream was accepted; send to it through `outgoing`.
    Opened {
        /// Its two ends.
        path: Path,
        /// Packets (unframed) for it.
        outgoing: mpsc::Sender<BytesMut>,
    },
    /// A packet arrived.
    Packet {
        /// The stream.
        path: Path,
        /// The packet, without its length.
        packet: BytesMut,
    },
    /// The stream ended.
    Closed {
        /// The stream.
        path: Path,
    },
}

/// Binds the listener for `address` (port 0 picks one); [`accept`] serves it.
pub fn bind(address: SocketAddr) -> io::Result<std::net::TcpListener> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(address),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&address.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}

/// Accepts streams on `listener` until the worker goes away.
pub async fn accept(listener: std::net::TcpListener, events: mpsc::UnboundedSender<TcpEvent>) {
    let Ok(listener) = TcpListener::from_std(listener) else {
        return;
    };
    let Ok(local) = listener.local_addr() else {
        return;
    };
    loop {
        let Ok((stream, remote)) = listener.accept().await else {
            continue;
        };
        if events.is_closed() {
            return;
        }
        let _ = stream.set_nodelay(true);
        let path = Path {
            transport: Transport::Tcp,
            local,
            remote,
        };
        tokio::spawn(carry(stream, path, events.clone()));
    }
}

/// Moves packets between one stream and the worker until either side ends.
async fn carry(mut stream: TcpStream, path: Path, events: mpsc::UnboundedSender<TcpEvent>) {
    let (outgoing, mut to_send) = mpsc::channel::<BytesMut>(OUTGOING_QUEUE);
    if events.send(TcpEvent::Opened { path, outgoing }).is_err() {
        return;
    }
    let mut received = BytesMut::with_capacity(4096);
    let mut framed = BytesMut::with_capacity(4096);
    let mut first = true;
    loop {
        let read = async {
            if first {
                tokio::time::timeout(FIRST_PACKET_TIMEOUT, stream.read_buf(&mut received))
                    .await
                    .unwrap_or(Ok(0))
            } else {
                stream.read_buf(&mut received).await
            }
        };
        tokio::select! {
            result = read => {
                if !matches!(result, Ok(read) if read > 0) {
                    break;
                }
                while let Some(packet) = next_packet(&mut received) {
                    first = false;
                    if events.send(TcpEvent::Packet { path, packet }).is_err() {
                        return;
                    }
                }
            }
            packet = to_send.recv() => {
                // The worker dropped the stream's sender: it closes the stream.
                let Some(packet) = packet else { break };
                framed.clear();
                frame(&packet, &mut framed);
                while let Ok(more) = to_send.try_recv() {
                    frame(&more, &mut framed);
                }
                if stream.write_all(&framed).await.is_err() {
                    break;
                }
            }
        }
    }
    let _ = events.send(TcpEvent::Closed { path });
}

/// Appends `packet` with its RFC 4571 length. Packets longer than 65,535 bytes cannot be framed
/// and are left out (none is: they come from UDP-sized WebRTC packets).
pub fn frame(packet: &[u8], out: &mut BytesMut) {
    if let Ok(length) = u16::try_from(packet.len()) {
        out.reserve(2 + packet.len());
        out.put_u16(length);
        out.put_slice(packet);
    }
}

/// Takes the next whole packet out of `buffer`, if one has fully arrived.
pub fn next_packet(buffer: &mut BytesMut) -> Option<BytesMut> {
    if buffer.len() < 2 {
        return None;
    }
    let length = usize::from(u16::from_be_bytes([buffer[0], buffer[1]]));
    if buffer.len() < 2 + length {
        return None;
    }
    buffer.advance(2);
    Some(buffer.split_to(length))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packets_come_out_whole_however_the_bytes_arrive() {
        let mut wire = BytesMut::new();
        frame(b"first", &mut wire);
        frame(b"", &mut wire);
        frame(&[7u8; 1300], &mut wire);
        let mut buffer = BytesMut::new();
        let mut packets = Vec::new();
        for chunk in wire.chunks(3) {
            buffer.extend_from_slice(chunk);
            while let Some(packet) = next_packet(&mut buffer) {
                packets.push(packet.to_vec());
            }
        }
        assert_eq!(
            packets,
            vec![b"first".to_vec(), Vec::new(), vec![7u8; 1300]]
        );
        assert!(buffer.is_empty());
    }

    #[tokio::test]
    async fn a_stream_carries_framed_packets_both_ways() {
        let listener = bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let local = listener.local_addr().unwrap();
        let (events, mut from_streams) = mpsc::unbounded_channel();
        let acceptor = tokio::spawn(accept(listener, events));
        let mut client = TcpStream::connect(local).await.unwrap();
        let mut wire = BytesMut::new();
        frame(b"hello", &mut wire);
        client.write_all(&wire).await.unwrap();
        let Some(TcpEvent::Opened { path, outgoing }) = from_streams.recv().await else {
            panic!("no stream");
        };
        assert_eq!(path.local, local);
        assert_eq!(path.remote, client.local_addr().unwrap());
        let Some(TcpEvent::Packet { packet, .. }) = from_streams.recv().await else {
            panic!("no packet");
        };
        assert_eq!(&packet[..], b"hello");
        outgoing.send(BytesMut::from(&b"back"[..])).await.unwrap();
        let mut reply = [0u8; 6];
        client.read_exact(&mut reply).await.unwrap();
        assert_eq!(&reply, b"\x00\x04back");
        drop(outgoing);
        assert!(matches!(
            from_streams.recv().await,
            Some(TcpEvent::Closed { .. })
        ));
        acceptor.abort();
    }
}
