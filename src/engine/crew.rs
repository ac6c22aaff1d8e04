//! The media workers as a crew: which one owns a connection, and what crosses between them.
//!
//! Each connection lives on the worker its id names (see [`placement`](super::placement)).
//! One worker, the reader,
//! reads the media sockets; a datagram for another worker's connection is handed over, as are
//! forwarded packets and feedback for a connection on another worker. What a worker has for
//! each other one waits until its pass ends and then goes as one message: a crossing costs one
//! channel send and at most one wake-up per pass, not one per packet.

use bytes::BytesMut;
use tokio::sync::mpsc;

use crate::ids::{ConnectionId, WorkerIndex};
use crate::media::publication::Outgoing;
use crate::net::demux::Path;
use crate::rtc::connection::{Effects, UpstreamRequest};

/// The worker that reads the media sockets and keeps the table of who is where.
pub const READER: WorkerIndex = WorkerIndex(0);

/// A datagram received for a connection, with the path it came on.
#[derive(Debug)]
pub struct Arrival {
    /// Who it is for.
    pub connection: ConnectionId,
    /// Where it came from and to.
    pub path: Path,
    /// The datagram.
    pub datagram: BytesMut,
}

/// One message between workers.
pub enum Crossing {
    /// Datagrams the reader received for the receiving worker's connections.
    Arrivals(Vec<Arrival>),
    /// Forwarded packets and feedback for the receiving worker's connections.
    Effects(Effects),
    /// For the reader: binding requests to `ufrag` now go to `connection`.
    Issue {
        /// The ufrag of the connection's latest local description.
        ufrag: String,
        /// Its connection.
        connection: ConnectionId,
    },
    /// For the reader: `connection` is gone, with its ufrag and paths.
    Forget(ConnectionId),
}

/// What waits for one other worker until the pass ends.
#[derive(Default)]
struct Waiting {
    arrivals: Vec<Arrival>,
    effects: Effects,
}

impl Waiting {
    fn len(&self) -> usize {
        self.arrivals.len() + self.effects.rtp.len() + self.effects.upstream.len()
    }
}

/// One worker's view of the crew: the way to every worker, and what waits for each.
pub struct Crew {
    me: WorkerIndex,
    mates: Vec<mpsc::UnboundedSender<Crossing>>,
    waiting: Vec<Waiting>,
}

impl Crew {
    /// Worker `me` of a crew reached through `mates` (one sender per worker, in order).
    pub fn new(me: WorkerIndex, mates: Vec<mpsc::UnboundedSender<Crossing>>) -> Self {
        let waiting = mates.iter().map(|_| Waiting::default()).collect();
        Self { me, mates, waiting }
    }

    /// Whether this worker owns `connection`.
    pub fn owns(&self, connection: ConnectionId) -> bool {
        connection.worker() == self.me
    }

    /// Keeps `arrival` for the worker that owns its connection.
    pub fn pass_arrival(&mut self, arrival: Arrival) {
        self.waiting_for(arrival.connection).arrivals.push(arrival);
    }

    /// Keeps a forwarded packet for the worker that owns its subscriber's connection.
    pub fn pass_rtp(&mut self, outgoing: Outgoing) {
        let connection = outgoing.0.outlet().connection;
        self.waiting_for(connection).effects.rtp.push(outgoing);
    }

    /// Keeps feedback for the worker that owns its publisher's connection.
    pub fn pass_upstream(&mut self, publisher: ConnectionId, request: UpstreamRequest) {
        self.waiting_for(publisher).effects.upstream.push(request);
    }

    /// Sends `crossing` to `worker` now, not at the end of the pass.
    pub fn tell(&self, worker: WorkerIndex, crossing: Crossing) {
        if let Some(mate) = self.mates.get(worker.0) {
            // A worker that is gone is stopping with the engine: nothing to tell it.
            let _ = mate.send(crossing);
        }
    }

    /// Sends what waits for each worker; returns how many packets crossed.
    pub fn ship(&mut self) -> usize {
        let mut crossed = 0;
        for (waiting, mate) in self.waiting.iter_mut().zip(&self.mates) {
            if waiting.len() == 0 {
                continue;
            }
            crossed += waiting.len();
            if !waiting.arrivals.is_empty() {
                let _ = mate.send(Crossing::Arrivals(std::mem::take(&mut waiting.arrivals)));
            }
            if !waiting.effects.is_empty() {
                let _ = mate.send(Crossing::Effects(std::mem::take(&mut waiting.effects)));
            }
        }
        crossed
    }

    fn waiting_for(&mut self, connection: ConnectionId) -> &mut Waiting {
        let worker = connection.worker().0.min(self.waiting.len() - 1);
        &mut self.waiting[worker]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_waits_goes_as_one_message_per_worker_and_kind() {
        let (to_zero, mut zero) = mpsc::unbounded_channel();
        let (to_one, mut one) = mpsc::unbounded_channel();
        let mut crew = Crew::new(WorkerIndex(0), vec![to_zero, to_one]);
        let path = Path {
            transport: crate::net::demux::Transport::Udp,
            local: "127.0.0.1:1".parse().unwrap(),
            remote: "127.0.0.1:2".parse().unwrap(),
        };
        let theirs = ConnectionId::next(WorkerIndex(1));
        assert!(!crew.owns(theirs));
        assert!(crew.owns(ConnectionId::next(WorkerIndex(0))));
        for _ in 0..10 {
            crew.pass_arrival(Arrival {
                connection: theirs,
                path,
                datagram: BytesMut::from(&b"x"[..]),
            });
        }
        assert_eq!(crew.ship(), 10);
        let Ok(Crossing::Arrivals(batch)) = one.try_recv() else {
            panic!("worker one got no batch");
        };
        assert_eq!(batch.len(), 10);
        assert!(one.try_recv().is_err(), "one message, not one per datagram");
        assert!(zero.try_recv().is_err(), "nothing for the sender itself");
        assert_eq!(crew.ship(), 0, "nothing is sent twice");
    }
}
