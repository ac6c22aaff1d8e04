//! The order events are delivered in: one lane per room and receiver, each delivering one event
//! at a time, in the order the room made them; lanes run side by side, up to a bound.
//!
//! An event that is being retried holds its lane, so a receiver never sees a room's
//! `participant_left` before the `participant_joined` it follows. Another room's events, or the
//! same room's to another receiver, do not wait for it.

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::Hash;

/// Jobs queued by lane; see the module documentation.
#[derive(Debug)]
pub struct Lanes<K, J> {
    /// Each lane's jobs, its current one excluded; a lane stays while it has a job in flight.
    queued: HashMap<K, VecDeque<J>>,
    /// Lanes with a job in flight.
    busy: HashSet<K>,
    /// Lanes with jobs and none in flight, in the order they became so.
    ready: VecDeque<K>,
    /// The most lanes in flight at once.
    max_busy: usize,
}

impl<K: Hash + Eq + Clone, J> Lanes<K, J> {
    /// No lanes; at most `max_busy` (at least 1) in flight at once.
    pub fn new(max_busy: usize) -> Self {
        Self {
            queued: HashMap::new(),
            busy: HashSet::new(),
            ready: VecDeque::new(),
            max_busy: max_busy.max(1),
        }
    }

    /// Queues `job` at the end of `lane`.
    pub fn push(&mut self, lane: K, job: J) {
        let queue = self.queued.entry(lane.clone()).or_default();
        queue.push_back(job);
        if queue.len() == 1 && !self.busy.contains(&lane) {
            self.ready.push_back(lane);
        }
    }

    /// The next job to start, and its lane, which is busy until [`Lanes::done`]; `None` when no
    /// lane is ready or the most are in flight.
    pub fn start_next(&mut self) -> Option<(K, J)> {
        if self.busy.len() >= self.max_busy {
            return None;
        }
        while let Some(lane) = self.ready.pop_front() {
            if let Some(job) = self.queued.get_mut(&lane).and_then(VecDeque::pop_front) {
                self.busy.insert(lane.clone());
                return Some((lane, job));
            }
        }
        None
    }

    /// The job in flight on `lane` is finished (delivered or given up); its next may start.
    pub fn done(&mut self, lane: &K) {
        self.busy.remove(lane);
        match self.queued.get(lane) {
            Some(queue) if !queue.is_empty() => self.ready.push_back(lane.clone()),
            _ => {
                self.queued.remove(lane);
            }
        }
    }

    /// Whether nothing is queued or in flight.
    pub fn is_idle(&self) -> bool {
        self.queued.is_empty()
    }

    /// Lanes with a job in flight.
    pub fn in_flight(&self) -> usize {
        self.busy.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lane_delivers_in_order_one_at_a_time() {
        let mut lanes = Lanes::new(8);
        for event in 1..=3 {
            lanes.push("standup", event);
        }
        assert_eq!(lanes.start_next(), Some(("standup", 1)));
        assert_eq!(lanes.start_next(), None, "the lane is busy with 1");
        lanes.done(&"standup");
        assert_eq!(lanes.start_next(), Some(("standup", 2)));
        lanes.push("standup", 4);
        lanes.done(&"standup");
        assert_eq!(lanes.start_next(), Some(("standup", 3)));
        lanes.done(&"standup");
        assert_eq!(lanes.start_next(), Some(("standup", 4)));
        assert!(!lanes.is_idle());
        lanes.done(&"standup");
        assert!(lanes.is_idle());
        assert_eq!(lanes.start_next(), None);
    }

    #[test]
    fn a_slow_lane_does_not_hold_the_others() {
        let mut lanes = Lanes::new(8);
        lanes.push("slow", 1);
        lanes.push("slow", 2);
        lanes.push("quick", 10);
        lanes.push("quick", 11);
        assert_eq!(lanes.start_next(), Some(("slow", 1)));
        assert_eq!(lanes.start_next(), Some(("quick", 10)));
        lanes.done(&"quick");
        assert_eq!(lanes.start_next(), Some(("quick", 11)));
        lanes.done(&"quick");
        assert_eq!(lanes.start_next(), None, "slow is still on 1");
        assert_eq!(lanes.in_flight(), 1);
        lanes.done(&"slow");
        assert_eq!(lanes.start_next(), Some(("slow", 2)));
    }

    #[test]
    fn at_most_the_bound_is_in_flight_and_lanes_take_turns() {
        let mut lanes = Lanes::new(2);
        for (lane, job) in [("a", 1), ("b", 2), ("c", 3), ("a", 4)] {
            lanes.push(lane, job);
        }
        assert_eq!(lanes.start_next(), Some(("a", 1)));
        assert_eq!(lanes.start_next(), Some(("b", 2)));
        assert_eq!(lanes.start_next(), None, "two in flight");
        lanes.done(&"a");
        // c waited longer than a's next job.
        assert_eq!(lanes.start_next(), Some(("c", 3)));
        lanes.done(&"b");
        assert_eq!(lanes.start_next(), Some(("a", 4)));
    }
}
