//! Whether the client is still there: the server pings the socket every so often, and a socket
//! that answers no ping in time is given up.
//!
//! A client that vanished without closing its socket (a laptop lid shut, a network that went
//! away, a connection black-holed on the way) leaves nothing to read and, while its media
//! connection is not up, nothing else that would fail. Only a question it must answer shows it
//! is gone. Browsers and WebSocket libraries answer pings by themselves.

use std::time::{Duration, Instant};

use bytes::Bytes;

/// What is due when the session wakes for its liveness.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Due {
    /// Send this ping.
    Ping(Bytes),
    /// The outstanding ping went unanswered: the client is gone.
    Unresponsive,
}

/// One socket's pings and their answers.
#[derive(Debug)]
pub struct Liveness {
    interval: Duration,
    timeout: Duration,
    next_ping: Instant,
    /// The ping awaiting its pong, and when it is overdue.
    outstanding: Option<(Bytes, Instant)>,
    pings_sent: u64,
}

impl Liveness {
    /// Pings every `interval` from `now` on, each to be answered within `timeout`.
    pub fn new(interval: Duration, timeout: Duration, now: Instant) -> Self {
        Self {
            interval,
            timeout,
            next_ping: now + interval,
            outstanding: None,
            pings_sent: 0,
        }
    }

    /// How long a ping may go unanswered.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// When the session should next call [`on_wake`](Self::on_wake).
    pub fn wake_at(&self) -> Instant {
        match &self.outstanding {
            Some((_, overdue)) => self.next_ping.min(*overdue),
            None => self.next_ping,
        }
    }

    /// What is due at `now`, if anything. A ping goes only when the previous one was
    /// answered: a client that answers slowly is not sent a second question meanwhile.
    pub fn on_wake(&mut self, now: Instant) -> Option<Due> {
        if let Some((_, overdue)) = &self.outstanding
            && now >= *overdue
        {
            return Some(Due::Unresponsive);
        }
        if now < self.next_ping {
            return None;
        }
        self.next_ping = now + self.interval;
        if self.outstanding.is_some() {
            return None;
        }
        self.pings_sent += 1;
        let payload = Bytes::copy_from_slice(&self.pings_sent.to_be_bytes());
        self.outstanding = Some((payload.clone(), now + self.timeout));
        Some(Due::Ping(payload))
    }

    /// A pong arrived. Only the answer to the outstanding ping counts: an unsolicited pong
    /// does not show that the client reads what it is sent.
    pub fn on_pong(&mut self, payload: &[u8]) {
        if self
            .outstanding
            .as_ref()
            .is_some_and(|(expected, _)| expected.as_ref() == payload)
        {
            self.outstanding = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    fn ping(due: Option<Due>) -> Bytes {
        match due {
            Some(Due::Ping(payload)) => payload,
            other => panic!("expected a ping, got {other:?}"),
        }
    }

    #[test]
    fn an_answered_ping_keeps_the_socket_and_the_next_follows_an_interval_later() {
        let start = Instant::now();
        let mut liveness = Liveness::new(15 * SECOND, 10 * SECOND, start);
        assert_eq!(liveness.wake_at(), start + 15 * SECOND);
        assert_eq!(liveness.on_wake(start + 14 * SECOND), None, "not yet");
        let payload = ping(liveness.on_wake(start + 15 * SECOND));
        assert_eq!(
            liveness.wake_at(),
            start + 25 * SECOND,
            "the answer's deadline"
        );
        liveness.on_pong(&payload);
        assert_eq!(liveness.wake_at(), start + 30 * SECOND, "the next ping");
        let next = ping(liveness.on_wake(start + 30 * SECOND));
        assert_ne!(next, payload, "each ping is told apart");
    }

    #[test]
    fn an_unanswered_ping_gives_the_socket_up_at_its_deadline() {
        let start = Instant::now();
        let mut liveness = Liveness::new(15 * SECOND, 10 * SECOND, start);
        ping(liveness.on_wake(start + 15 * SECOND));
        assert_eq!(liveness.on_wake(start + 24 * SECOND), None);
        assert_eq!(
            liveness.on_wake(start + 25 * SECOND),
            Some(Due::Unresponsive)
        );
    }

    #[test]
    fn a_wrong_or_unsolicited_pong_answers_nothing() {
        let start = Instant::now();
        let mut liveness = Liveness::new(SECOND, 5 * SECOND, start);
        liveness.on_pong(b"unsolicited");
        ping(liveness.on_wake(start + SECOND));
        liveness.on_pong(b"not the payload");
        assert_eq!(
            liveness.on_wake(start + 6 * SECOND),
            Some(Due::Unresponsive)
        );
    }

    #[test]
    fn no_second_ping_while_one_is_outstanding() {
        let start = Instant::now();
        let mut liveness = Liveness::new(SECOND, 5 * SECOND, start);
        let payload = ping(liveness.on_wake(start + SECOND));
        assert_eq!(liveness.on_wake(start + 2 * SECOND), None);
        assert_eq!(liveness.on_wake(start + 3 * SECOND), None);
        liveness.on_pong(&payload);
        ping(liveness.on_wake(start + 4 * SECOND));
    }
}
