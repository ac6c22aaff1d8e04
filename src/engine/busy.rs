//! How busy a worker is: the share of the last second its thread spent on the CPU. Placement
//! reads it to keep a room on one worker until that worker's core fills up.
//!
//! It is the thread's CPU time, not the wall time of its passes: on a machine whose cores are
//! shared, a pass that waited for the CPU took longer without the worker doing more, and
//! spreading to another worker would not help with that.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use nix::time::{ClockId, clock_gettime};

/// How long one measurement runs; the worker wakes at least this often to close it.
pub const WINDOW: Duration = Duration::from_secs(1);

/// A worker's last measurement, in thousandths of the window spent on the CPU.
#[derive(Debug, Default)]
pub struct Busy(AtomicU32);

impl Busy {
    /// Thousandths of the last window the worker spent on the CPU.
    pub fn permille(&self) -> u32 {
        self.0.load(Ordering::Relaxed)
    }

    /// Sets the measurement (the meter does; tests too).
    pub fn set(&self, permille: u32) {
        self.0.store(permille.min(1000), Ordering::Relaxed);
    }
}

/// The worker's side: closes each window and publishes its share.
#[derive(Debug)]
pub struct BusyMeter {
    shared: Arc<Busy>,
    window_started: Instant,
    cpu_at_start: Duration,
}

impl BusyMeter {
    /// A meter publishing to `shared`, its window starting `now` with the thread's CPU time
    /// at `cpu`.
    pub fn new(shared: Arc<Busy>, now: Instant, cpu: Duration) -> Self {
        Self {
            shared,
            window_started: now,
            cpu_at_start: cpu,
        }
    }

    /// Closes the window if it is over, reading the thread's CPU time from `cpu` only then.
    pub fn tick(&mut self, now: Instant, cpu: impl FnOnce() -> Duration) {
        let elapsed = now.saturating_duration_since(self.window_started);
        if elapsed < WINDOW {
            return;
        }
        let cpu = cpu();
        let share = cpu.saturating_sub(self.cpu_at_start).as_secs_f64() / elapsed.as_secs_f64();
        self.shared.set((share * 1000.0).round() as u32);
        self.window_started = now;
        self.cpu_at_start = cpu;
    }

    /// When the current window ends.
    pub fn window_end(&self) -> Instant {
        self.window_started + WINDOW
    }
}

/// The calling thread's CPU time so far; zero where the clock cannot be read.
pub fn thread_cpu_time() -> Duration {
    clock_gettime(ClockId::CLOCK_THREAD_CPUTIME_ID).map_or(Duration::ZERO, Duration::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publishes_the_share_of_each_window_spent_on_the_cpu() {
        let busy = Arc::new(Busy::default());
        let start = Instant::now();
        let mut meter = BusyMeter::new(Arc::clone(&busy), start, Duration::from_secs(7));
        let at = |millis| start + Duration::from_millis(millis);
        let cpu = |millis| move || Duration::from_secs(7) + Duration::from_millis(millis);
        meter.tick(at(500), || {
            panic!("the clock is read only when a window closes")
        });
        assert_eq!(
            busy.permille(),
            0,
            "nothing published before the window ends"
        );
        meter.tick(at(1000), cpu(260));
        assert_eq!(busy.permille(), 260, "260 ms of 1000");
        meter.tick(at(2000), cpu(760));
        assert_eq!(busy.permille(), 500);
        assert_eq!(meter.window_end(), at(3000));
    }

    #[test]
    fn reads_this_thread_s_cpu_clock() {
        let before = thread_cpu_time();
        let deadline = Instant::now() + Duration::from_secs(5);
        while thread_cpu_time().saturating_sub(before) < Duration::from_millis(5)
            && Instant::now() < deadline
        {
            std::hint::black_box(before);
        }
        assert!(
            thread_cpu_time().saturating_sub(before) >= Duration::from_millis(5),
            "working for a while shows in the thread's CPU time"
        );
    }
}
