//! The media engine's network side: the one UDP socket per media address with batched I/O,
//! ICE over TCP, and the table that tells which connection a datagram belongs to. Nothing here
//! knows WebRTC beyond the few bytes of STUN needed to find a connection. Beside them, what
//! every TCP listener (HTTP and ICE-TCP alike) needs to hold up on the open internet: the caps
//! on accepted connections, and a calm response to `accept` failing.

pub mod accept_failures;
pub mod admission;
pub mod demux;
pub mod stun;
pub mod tcp;
pub mod udp;
