//! The media engine's network side: the one UDP socket per media address with batched I/O,
//! ICE over TCP, and the table that tells which connection a datagram belongs to. Nothing here
//! knows WebRTC beyond the few bytes of STUN needed to find a connection.

pub mod demux;
pub mod stun;
pub mod tcp;
pub mod udp;
