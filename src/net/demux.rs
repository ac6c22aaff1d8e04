//! Which connection a datagram on the shared media port belongs to.
//!
//! A datagram from a known 5-tuple goes to its connection. From an unknown one, only a STUN
//! binding request addressed to a ufrag the server issued may create the mapping: that is how a
//! client's first check arrives, and how it comes back from a new address after an ICE restart
//! or a network change. Everything else is dropped by the caller. The connection's ICE agent
//! still checks the request's MESSAGE-INTEGRITY, so a forged one maps an address to a connection
//! that then ignores it; each connection keeps only its [`MAX_PATHS`] most recent addresses so
//! that forgeries cannot grow the table.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::SocketAddr;

use crate::net::stun;

/// Remote addresses remembered per connection; the oldest goes when a new one arrives.
pub const MAX_PATHS: usize = 8;

/// How a path carries packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// Datagrams on the media port.
    Udp,
    /// A stream accepted on the ICE-TCP port.
    Tcp,
}

/// A local address and a remote one: a path a connection's packets travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Path {
    /// UDP or TCP.
    pub transport: Transport,
    /// The server's side: the media address the datagram arrived on.
    pub local: SocketAddr,
    /// The client's side.
    pub remote: SocketAddr,
}

/// The table; `K` names a connection.
#[derive(Debug)]
pub struct Demux<K> {
    by_path: HashMap<Path, K>,
    by_ufrag: HashMap<String, K>,
    paths_of: HashMap<K, Vec<Path>>,
}

impl<K> Default for Demux<K> {
    fn default() -> Self {
        Self {
            by_path: HashMap::new(),
            by_ufrag: HashMap::new(),
            paths_of: HashMap::new(),
        }
    }
}

/// What the table says of a datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict<K> {
    /// It belongs to this connection.
    Known(K),
    /// A binding request naming an issued ufrag, from a new path: now known.
    Learned(K),
    /// A binding request naming a ufrag nobody was issued.
    UnknownUfrag,
    /// Anything else from an unknown path.
    Unknown,
}

impl<K: Copy + Eq + Hash> Demux<K> {
    /// Binding requests to `ufrag` go to `connection`, from now on instead of those to the
    /// ufrag it had before (an ICE restart gives it a new one).
    pub fn issue(&mut self, ufrag: String, connection: K) {
        self.by_ufrag.retain(|_, owner| *owner != connection);
        self.by_ufrag.insert(ufrag, connection);
        self.paths_of.entry(connection).or_default();
    }

    /// Forgets `connection`: its ufrag and every path it used, which it returns.
    pub fn forget(&mut self, connection: K) -> Vec<Path> {
        self.by_ufrag.retain(|_, owner| *owner != connection);
        let paths = self.paths_of.remove(&connection).unwrap_or_default();
        for path in &paths {
            self.by_path.remove(path);
        }
        paths
    }

    /// Forgets one path (a TCP stream that closed).
    pub fn forget_path(&mut self, path: Path) {
        if let Some(connection) = self.by_path.remove(&path)
            && let Some(paths) = self.paths_of.get_mut(&connection)
        {
            paths.retain(|known| *known != path);
        }
    }

    /// Looks `datagram`, received on `path`, up.
    pub fn classify(&mut self, path: Path, datagram: &[u8]) -> Verdict<K> {
        if let Some(connection) = self.by_path.get(&path) {
            return Verdict::Known(*connection);
        }
        let Some(ufrag) = stun::binding_request_ufrag(datagram) else {
            return Verdict::Unknown;
        };
        let Some(&connection) = self.by_ufrag.get(ufrag) else {
            return Verdict::UnknownUfrag;
        };
        let paths = self.paths_of.entry(connection).or_default();
        if paths.len() >= MAX_PATHS {
            let oldest = paths.remove(0);
            self.by_path.remove(&oldest);
        }
        paths.push(path);
        self.by_path.insert(path, connection);
        Verdict::Learned(connection)
    }

    /// Connections known.
    pub fn connections(&self) -> usize {
        self.paths_of.len()
    }

    /// Paths known, over all connections.
    pub fn paths(&self) -> usize {
        self.by_path.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding_request(username: &str) -> Vec<u8> {
        let value = username.as_bytes();
        let padded = value.len().next_multiple_of(4);
        let mut datagram = vec![0x00, 0x01];
        datagram.extend_from_slice(&((4 + padded) as u16).to_be_bytes());
        datagram.extend_from_slice(&[0x21, 0x12, 0xA4, 0x42]);
        datagram.extend_from_slice(&[7; 12]);
        datagram.extend_from_slice(&[0x00, 0x06]);
        datagram.extend_from_slice(&(value.len() as u16).to_be_bytes());
        datagram.extend_from_slice(value);
        datagram.resize(20 + 4 + padded, 0);
        datagram
    }

    fn path(port: u16) -> Path {
        Path {
            transport: Transport::Udp,
            local: "127.0.0.1:5000".parse().unwrap(),
            remote: SocketAddr::from(([127, 0, 0, 1], port)),
        }
    }

    #[test]
    fn a_binding_request_to_an_issued_ufrag_teaches_the_path() {
        let mut demux = Demux::default();
        demux.issue("alpha".to_owned(), 1);
        demux.issue("beta".to_owned(), 2);
        assert_eq!(demux.classify(path(9000), b"\x80rtp"), Verdict::Unknown);
        assert_eq!(
            demux.classify(path(9000), &binding_request("beta:x")),
            Verdict::Learned(2)
        );
        assert_eq!(demux.classify(path(9000), b"\x80rtp"), Verdict::Known(2));
        assert_eq!(
            demux.classify(path(9001), &binding_request("gamma:x")),
            Verdict::UnknownUfrag
        );
    }

    #[test]
    fn a_connection_may_move_and_forgetting_it_forgets_every_path() {
        let mut demux = Demux::default();
        demux.issue("alpha".to_owned(), 1);
        demux.classify(path(9000), &binding_request("alpha:x"));
        demux.classify(path(9500), &binding_request("alpha:x"));
        assert_eq!(demux.classify(path(9000), b"\x80"), Verdict::Known(1));
        assert_eq!(demux.classify(path(9500), b"\x80"), Verdict::Known(1));
        assert_eq!(demux.forget(1), vec![path(9000), path(9500)]);
        assert_eq!(demux.classify(path(9500), b"\x80"), Verdict::Unknown);
        assert_eq!(
            demux.classify(path(9500), &binding_request("alpha:x")),
            Verdict::UnknownUfrag
        );
        assert_eq!((demux.connections(), demux.paths()), (0, 0));
    }

    #[test]
    fn an_ice_restart_s_new_ufrag_replaces_the_old_one() {
        let mut demux = Demux::default();
        demux.issue("before".to_owned(), 1);
        demux.issue("after".to_owned(), 1);
        assert_eq!(
            demux.classify(path(9000), &binding_request("before:x")),
            Verdict::UnknownUfrag
        );
        assert_eq!(
            demux.classify(path(9000), &binding_request("after:x")),
            Verdict::Learned(1)
        );
    }

    #[test]
    fn forged_requests_cannot_grow_the_table() {
        let mut demux = Demux::default();
        demux.issue("alpha".to_owned(), 1);
        for port in 0..1000 {
            demux.classify(path(10_000 + port), &binding_request("alpha:x"));
        }
        assert_eq!(demux.paths(), MAX_PATHS);
        assert_eq!(demux.classify(path(10_999), b"\x80"), Verdict::Known(1));
        assert_eq!(demux.classify(path(10_000), b"\x80"), Verdict::Unknown);
    }
}
