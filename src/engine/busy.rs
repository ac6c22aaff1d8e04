//! How busy a worker is: the share of wall time it spent on passes over the last second.
//! Placement reads it to keep work on the reading worker while that has room to spare.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// How long one measurement runs; the worker wakes at least this often to close it.
pub const WINDOW: Duration = Duration::from_secs(1);

/// A worker's last measurement, in thousandths of the window spent working.
#[derive(Debug, Default)]
pub struct Busy(AtomicU32);

impl Busy {
    /// Thousandths of the last window the worker spent working.
    pub fn permille(&self) -> u32 {
        self.0.load(Ordering::Relaxed)
    }

    /// Sets the measurement (the meter does; tests too).
    pub fn set(&self, permille: u32) {
        self.0.store(permille.min(1000), Ordering::Relaxed);
    }
}

/// The worker's side: adds up the passes and publishes each window's share.
#[derive(Debug)]
pub struct BusyMeter {
    shared: Arc<Busy>,
    window_started: Instant,
    working: Duration,
}

impl BusyMeter {
    /// A meter publishing to `shared`, its window starting `now`.
    pub fn new(shared: Arc<Busy>, now: Instant) -> Self {
        Self {
            shared,
            window_started: now,
            working: Duration::ZERO,
        }
    }

    /// Records a pass from `started` to `ended`; publishes the window once it is over.
    pub fn pass(&mut self, started: Instant, ended: Instant) {
        self.working += ended.saturating_duration_since(started);
        let elapsed = ended.saturating_duration_since(self.window_started);
        if elapsed >= WINDOW {
            let share = self.working.as_secs_f64() / elapsed.as_secs_f64();
            self.shared.set((share * 1000.0).round() as u32);
            self.window_started = ended;
            self.working = Duration::ZERO;
        }
    }

    /// When the current window ends.
    pub fn window_end(&self) -> Instant {
        self.window_started + WINDOW
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publishes_the_share_of_each_window_spent_working() {
        let busy = Arc::new(Busy::default());
        let start = Instant::now();
        let mut meter = BusyMeter::new(Arc::clone(&busy), start);
        let at = |millis| start + Duration::from_millis(millis);
        meter.pass(at(0), at(100));
        meter.pass(at(500), at(650));
        assert_eq!(
            busy.permille(),
            0,
            "nothing published before the window ends"
        );
        meter.pass(at(990), at(1000));
        assert_eq!(busy.permille(), 260, "260 ms of 1000");
        meter.pass(at(1500), at(2000));
        assert_eq!(busy.permille(), 500);
        assert_eq!(meter.window_end(), at(3000));
    }
}
