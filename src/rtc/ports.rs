//! Media ports from a configured range, so a firewall or a container can publish exactly
//! those.
//!
//! webrtc-rs binds one UDP socket per media address for each connection, on whatever port it is
//! given. The allocator hands each connection one port of the range (the same port on every
//! media address) and takes it back when the connection's [`PortLease`] drops, so the range
//! bounds the connections open at once: `max - min + 1` of them.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex};

use crate::config::PortRange;

/// Every port of the range is taken, by this server or by other programs.
#[derive(Debug, thiserror::Error)]
#[error("no free UDP port left in the media range {min}-{max}")]
pub struct PortsExhausted {
    min: u16,
    max: u16,
}

/// Hands out the ports of a range.
#[derive(Debug)]
pub struct PortAllocator {
    range: PortRange,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    /// Where the next search starts: ports are handed out round the range, so a port just
    /// given back is the last to be reused (a late packet for the old connection finds nobody).
    next: u16,
    in_use: BTreeSet<u16>,
}

/// One port, held for one connection; back to the range on drop.
#[derive(Debug)]
pub struct PortLease {
    allocator: Arc<PortAllocator>,
    port: u16,
}

impl PortLease {
    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for PortLease {
    fn drop(&mut self) {
        if let Ok(mut state) = self.allocator.state.lock() {
            state.in_use.remove(&self.port);
        }
    }
}

impl PortAllocator {
    /// An allocator over `range`.
    pub fn new(range: PortRange) -> Arc<Self> {
        Arc::new(Self {
            range,
            state: Mutex::new(State {
                next: range.min,
                in_use: BTreeSet::new(),
            }),
        })
    }

    /// A port free on every one of `ips`: not leased, and bindable now (another program may
    /// hold some ports of the range).
    pub fn lease(self: &Arc<Self>, ips: &[IpAddr]) -> Result<PortLease, PortsExhausted> {
        let exhausted = PortsExhausted {
            min: self.range.min,
            max: self.range.max,
        };
        let Ok(mut state) = self.state.lock() else {
            return Err(exhausted);
        };
        let size = u32::from(self.range.max - self.range.min) + 1;
        for _ in 0..size {
            let port = state.next;
            state.next = if port >= self.range.max {
                self.range.min
            } else {
                port + 1
            };
            if state.in_use.contains(&port) || !bindable(ips, port) {
                continue;
            }
            state.in_use.insert(port);
            return Ok(PortLease {
                allocator: Arc::clone(self),
                port,
            });
        }
        Err(exhausted)
    }

    /// Ports leased now.
    pub fn leased(&self) -> usize {
        self.state.lock().map_or(0, |state| state.in_use.len())
    }
}

/// Whether `port` can be bound on every one of `ips`. The probe sockets close at once; the
/// connection binds the port again moments later.
fn bindable(ips: &[IpAddr], port: u16) -> bool {
    let probes: Vec<_> = ips
        .iter()
        .map(|ip| UdpSocket::bind(SocketAddr::new(*ip, port)))
        .collect();
    probes.iter().all(Result::is_ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOOPBACK: [IpAddr; 1] = [IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)];

    /// A range of `size` ports nobody else on this machine is using now, searched from
    /// `start` (each test starts elsewhere, as tests run in parallel), below the system's
    /// ephemeral ports (from 32768 on Linux), where other tests' sockets land.
    fn free_range(size: u16, start: u16) -> PortRange {
        for base in (start..start + 5_000).step_by(usize::from(size) + 7) {
            if (base..base + size).all(|port| bindable(&LOOPBACK, port)) {
                return PortRange {
                    min: base,
                    max: base + size - 1,
                };
            }
        }
        panic!("no free port range on this machine");
    }

    #[test]
    fn leases_stay_in_the_range_and_come_back_on_drop() {
        let range = free_range(3, 18_000);
        let allocator = PortAllocator::new(range);
        let leases: Vec<_> = (0..3)
            .map(|_| allocator.lease(&LOOPBACK).expect("a free port"))
            .collect();
        let mut ports: Vec<u16> = leases.iter().map(PortLease::port).collect();
        ports.sort_unstable();
        assert_eq!(ports, vec![range.min, range.min + 1, range.max]);
        assert!(allocator.lease(&LOOPBACK).is_err(), "the range is used up");

        drop(leases);
        assert_eq!(allocator.leased(), 0);
        assert!(allocator.lease(&LOOPBACK).is_ok());
    }

    #[test]
    fn ports_held_by_others_are_skipped() {
        let range = free_range(2, 21_000);
        let _other_program = UdpSocket::bind(SocketAddr::new(LOOPBACK[0], range.min));
        let allocator = PortAllocator::new(range);
        let lease = allocator.lease(&LOOPBACK).expect("the other port");
        assert_eq!(lease.port(), range.max);
        assert!(allocator.lease(&LOOPBACK).is_err());
    }
}
