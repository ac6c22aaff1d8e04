//! The deadlines a session meets on its way into a call.
//!
//! Until its media connection is up, a session costs the server a socket, a task and, once
//! joined, a place in a room, and nothing on its own would end it: a socket that never joins,
//! a participant that never offers, a connection that never connects would each stay for
//! good. So each step has a deadline:
//!
//! 1. `join`, counted from the socket's opening;
//! 2. the first `offer`, counted from `joined`. Every client sends one, an empty one when it
//!    publishes nothing (the browser client and the load test both do);
//! 3. the media connection's first `connected`, counted from the first answer that gives it
//!    something to connect: the server's answer to an offer with media, or the client's answer
//!    to the server's first offer. A participant that publishes nothing in a room where nobody
//!    publishes has nothing to connect: it has set up all it can and waits without a deadline
//!    until there is something to receive.
//!
//! Once the connection is up, the connection's own failure detection takes over.

use std::time::{Duration, Instant};

use crate::config::SignalingConfig;
use crate::signal::closing::Overdue;

/// Where the session is on its way in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Waiting for `join`.
    Join,
    /// Joined; waiting for the first `offer`.
    Offer,
    /// Its first offer answered, with nothing to connect yet.
    NothingToConnect,
    /// Waiting for the media connection to connect.
    Connect,
    /// Set up: no more deadlines.
    Done,
}

/// The session's current step and its deadline.
#[derive(Debug)]
pub struct Setup {
    join_timeout: Duration,
    offer_timeout: Duration,
    media_timeout: Duration,
    step: Step,
    deadline: Option<Instant>,
}

impl Setup {
    /// A session whose socket opened at `now`.
    pub fn new(config: &SignalingConfig, now: Instant) -> Self {
        Self {
            join_timeout: config.join_timeout,
            offer_timeout: config.offer_timeout,
            media_timeout: config.media_timeout,
            step: Step::Join,
            deadline: Some(now + config.join_timeout),
        }
    }

    /// The next deadline, what is overdue when it passes, and the time that was given for it.
    pub fn deadline(&self) -> Option<(Instant, Overdue, Duration)> {
        let deadline = self.deadline?;
        match self.step {
            Step::Join => Some((deadline, Overdue::Join, self.join_timeout)),
            Step::Offer => Some((deadline, Overdue::Offer, self.offer_timeout)),
            Step::Connect => Some((deadline, Overdue::Media, self.media_timeout)),
            Step::NothingToConnect | Step::Done => None,
        }
    }

    /// The join succeeded.
    pub fn joined(&mut self, now: Instant) {
        if self.step == Step::Join {
            self.go(Step::Offer, Some(now + self.offer_timeout));
        }
    }

    /// The server answered the client's offer.
    pub fn offer_answered(&mut self) {
        if self.step == Step::Offer {
            self.go(Step::NothingToConnect, None);
        }
    }

    /// A negotiation with media completed (an answer went out or came in): the connection has
    /// something to connect.
    pub fn media_to_connect(&mut self, now: Instant) {
        if self.step == Step::NothingToConnect {
            self.go(Step::Connect, Some(now + self.media_timeout));
        }
    }

    /// The media connection connected.
    pub fn connected(&mut self) {
        self.go(Step::Done, None);
    }

    fn go(&mut self, step: Step, deadline: Option<Instant>) {
        self.step = step;
        self.deadline = deadline;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    fn setup(now: Instant) -> Setup {
        let config = SignalingConfig {
            join_timeout: 10 * SECOND,
            offer_timeout: 30 * SECOND,
            media_timeout: 20 * SECOND,
            ..SignalingConfig::default()
        };
        Setup::new(&config, now)
    }

    fn overdue(setup: &Setup) -> Option<(Instant, Overdue)> {
        setup
            .deadline()
            .map(|(deadline, overdue, _)| (deadline, overdue))
    }

    #[test]
    fn a_publisher_meets_each_deadline_in_turn() {
        let start = Instant::now();
        let mut setup = setup(start);
        assert_eq!(overdue(&setup), Some((start + 10 * SECOND, Overdue::Join)));
        setup.joined(start + SECOND);
        assert_eq!(overdue(&setup), Some((start + 31 * SECOND, Overdue::Offer)));
        setup.offer_answered();
        setup.media_to_connect(start + 2 * SECOND);
        assert_eq!(overdue(&setup), Some((start + 22 * SECOND, Overdue::Media)));
        setup.connected();
        assert_eq!(overdue(&setup), None);
        setup.media_to_connect(start + 40 * SECOND);
        assert_eq!(overdue(&setup), None, "set up for good");
    }

    #[test]
    fn a_watcher_with_nothing_to_receive_waits_without_a_deadline() {
        let start = Instant::now();
        let mut setup = setup(start);
        setup.joined(start);
        setup.offer_answered();
        assert_eq!(overdue(&setup), None);
        // Somebody publishes; the watcher answers the server's offer a minute later.
        setup.media_to_connect(start + 60 * SECOND);
        assert_eq!(overdue(&setup), Some((start + 80 * SECOND, Overdue::Media)));
    }

    #[test]
    fn a_later_answer_does_not_move_the_media_deadline() {
        let start = Instant::now();
        let mut setup = setup(start);
        setup.joined(start);
        setup.offer_answered();
        setup.media_to_connect(start);
        setup.offer_answered();
        setup.media_to_connect(start + 5 * SECOND);
        assert_eq!(overdue(&setup), Some((start + 20 * SECOND, Overdue::Media)));
    }

    #[test]
    fn events_out_of_turn_change_nothing() {
        let start = Instant::now();
        let mut setup = setup(start);
        setup.offer_answered();
        setup.media_to_connect(start);
        assert_eq!(overdue(&setup), Some((start + 10 * SECOND, Overdue::Join)));
    }
}
