//! Which TCP connections a listener takes: at most so many from one source, and at most so
//! many in all. The HTTP listener and the ICE-TCP listeners each admit through their own
//! [`Admission`], with their own caps.
//!
//! A connection costs a file descriptor from the moment it is accepted, whether or not it ever
//! sends a byte. Without a bound, one client opening connections and saying nothing runs the
//! process out of descriptors and `accept` fails for everybody. Each accepted connection asks
//! for a [`ConnectionPermit`]; over a cap it is refused and closed at once. The permit lives as
//! long as the connection's socket: an upgraded WebSocket's, an ICE-TCP stream's.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::io;
use std::net::{IpAddr, Ipv6Addr};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};

use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::metrics::Level;

/// Where connections come from, as the per-source cap counts them: an IPv4 address, or an IPv6
/// /64 prefix (what one subscriber is usually given, so it cannot take a fresh address for each
/// connection).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Source(IpAddr);

impl Source {
    /// The source `peer` counts under.
    pub fn of(peer: IpAddr) -> Self {
        match peer {
            IpAddr::V4(_) => Self(peer),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Self(IpAddr::V4(v4)),
                None => {
                    let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                    Self(IpAddr::V6(Ipv6Addr::from(prefix)))
                }
            },
        }
    }
}

/// The caps; `None` is no cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caps {
    /// Connections from one [`Source`].
    pub per_source: Option<usize>,
    /// Connections in all.
    pub total: usize,
}

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Its source already holds as many connections as one may.
    #[error("too many connections from this source")]
    PerSource,
    /// The server already holds as many connections as it may.
    #[error("too many connections")]
    Total,
}

/// The connections open now, by source.
#[derive(Debug, Default)]
struct Open {
    total: usize,
    by_source: HashMap<Source, usize>,
}

/// Admits connections within the [`Caps`].
#[derive(Debug, Clone)]
pub struct Admission {
    caps: Caps,
    open: Arc<Mutex<Open>>,
    /// The gauge of open connections in `/metrics`.
    gauge: Level,
}

impl Admission {
    /// Admits within `caps`, counting open connections on `gauge`.
    pub fn new(caps: Caps, gauge: Level) -> Self {
        Self {
            caps,
            open: Arc::default(),
            gauge,
        }
    }

    /// The caps it admits within.
    pub fn caps(&self) -> Caps {
        self.caps
    }

    /// A permit for a connection from `peer`, or why there is none.
    pub fn admit(&self, peer: IpAddr) -> Result<ConnectionPermit, Refusal> {
        let source = Source::of(peer);
        let mut open = self.open.lock();
        if open.total >= self.caps.total {
            return Err(Refusal::Total);
        }
        let from_source = open.by_source.entry(source).or_insert(0);
        if self.caps.per_source.is_some_and(|cap| *from_source >= cap) {
            return Err(Refusal::PerSource);
        }
        *from_source += 1;
        open.total += 1;
        self.gauge.fetch_add(1, Ordering::Relaxed);
        Ok(ConnectionPermit {
            admission: self.clone(),
            source,
        })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open.lock().total
    }

    fn release(&self, source: Source) {
        let mut open = self.open.lock();
        open.total = open.total.saturating_sub(1);
        if let Entry::Occupied(mut entry) = open.by_source.entry(source) {
            *entry.get_mut() -= 1;
            if *entry.get() == 0 {
                entry.remove();
            }
        }
        self.gauge.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One admitted connection: counted until dropped.
#[derive(Debug)]
pub struct ConnectionPermit {
    admission: Admission,
    source: Source,
}

impl Drop for ConnectionPermit {
    fn drop(&mut self) {
        self.admission.release(self.source);
    }
}

/// A connection's stream with its permit, so the permit goes when the socket closes, however
/// long after the HTTP exchange that is (a WebSocket keeps the stream it was upgraded from).
#[derive(Debug)]
pub struct Admitted<S> {
    stream: S,
    _permit: ConnectionPermit,
}

impl<S> Admitted<S> {
    /// `stream`, counted by `permit` while it lives.
    pub fn new(stream: S, permit: ConnectionPermit) -> Self {
        Self {
            stream,
            _permit: permit,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Admitted<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Admitted<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admission(per_source: Option<usize>, total: usize) -> Admission {
        Admission::new(Caps { per_source, total }, Level::default())
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("an address")
    }

    #[test]
    fn one_source_gets_no_more_than_its_cap() {
        let admission = admission(Some(2), 100);
        let first = admission.admit(ip("192.0.2.1")).expect("first");
        let _second = admission.admit(ip("192.0.2.1")).expect("second");
        assert_eq!(
            admission.admit(ip("192.0.2.1")).err(),
            Some(Refusal::PerSource)
        );
        // Another source is not held back, and a closed connection frees its place.
        let _other = admission.admit(ip("192.0.2.2")).expect("another source");
        drop(first);
        let _third = admission.admit(ip("192.0.2.1")).expect("a freed place");
        assert_eq!(admission.open(), 3);
    }

    #[test]
    fn the_total_cap_holds_whatever_the_sources() {
        let admission = admission(None, 3);
        let permits: Vec<_> = (1..=3)
            .map(|host| {
                admission
                    .admit(ip(&format!("192.0.2.{host}")))
                    .expect("admitted")
            })
            .collect();
        assert_eq!(admission.admit(ip("192.0.2.9")).err(), Some(Refusal::Total));
        drop(permits);
        assert_eq!(admission.open(), 0);
        assert!(
            admission.open.lock().by_source.is_empty(),
            "no source left behind"
        );
        assert!(admission.admit(ip("192.0.2.9")).is_ok());
    }

    #[test]
    fn no_per_source_cap_lets_one_source_fill_the_total() {
        let admission = admission(None, 500);
        let permits: Vec<_> = (0..500)
            .map(|_| admission.admit(ip("127.0.0.1")).expect("admitted"))
            .collect();
        assert_eq!(permits.len(), 500);
    }

    #[test]
    fn the_gauge_follows_the_permits() {
        let admission = admission(Some(5), 5);
        let permit = admission.admit(ip("192.0.2.1")).expect("admitted");
        assert_eq!(admission.gauge.load(Ordering::Relaxed), 1);
        drop(permit);
        assert_eq!(admission.gauge.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn ipv6_sources_are_counted_by_their_64_prefix() {
        assert_eq!(
            Source::of(ip("2001:db8:1:2::1")),
            Source::of(ip("2001:db8:1:2:ffff::9"))
        );
        assert_ne!(
            Source::of(ip("2001:db8:1:2::1")),
            Source::of(ip("2001:db8:1:3::1"))
        );
        assert_eq!(
            Source::of(ip("::ffff:192.0.2.7")),
            Source::of(ip("192.0.2.7"))
        );
        let admission = admission(Some(1), 10);
        let _held = admission.admit(ip("2001:db8::1")).expect("admitted");
        assert_eq!(
            admission.admit(ip("2001:db8::2")).err(),
            Some(Refusal::PerSource)
        );
    }
}
