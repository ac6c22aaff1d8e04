//! How busy this node is: the share of the machine's CPU the process used between two looks,
//! which a node reports at each renewal and placement weighs.

use std::time::Instant;

/// Turns the process's growing CPU seconds into the share of all cores used since the last
/// look.
#[derive(Debug)]
pub struct CpuMeter {
    cores: f64,
    last: Option<(Instant, f64)>,
}

impl CpuMeter {
    /// A meter for a machine of `cores` cores.
    pub fn new(cores: usize) -> Self {
        Self {
            cores: cores.max(1) as f64,
            last: None,
        }
    }

    /// The share (0 to 1) used between the last look and `now`, when the process had used
    /// `cpu_seconds` in all; 0 at the first look, which has nothing to compare with.
    pub fn look(&mut self, now: Instant, cpu_seconds: f64) -> f64 {
        let share = match self.last {
            Some((then, before)) => {
                let wall = now.saturating_duration_since(then).as_secs_f64();
                if wall > 0.0 {
                    ((cpu_seconds - before) / (wall * self.cores)).clamp(0.0, 1.0)
                } else {
                    0.0
                }
            }
            None => 0.0,
        };
        self.last = Some((now, cpu_seconds));
        share
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn the_share_is_cpu_time_over_wall_time_on_every_core() {
        let start = Instant::now();
        let mut meter = CpuMeter::new(2);
        assert_eq!(meter.look(start, 10.0), 0.0, "nothing to compare with yet");
        // One core busy for the whole second: half of two cores.
        let share = meter.look(start + Duration::from_secs(1), 11.0);
        assert!((share - 0.5).abs() < 1e-9, "{share}");
        // Idle for two seconds.
        assert_eq!(meter.look(start + Duration::from_secs(3), 11.0), 0.0);
    }

    #[test]
    fn the_share_stays_within_zero_and_one() {
        let start = Instant::now();
        let mut meter = CpuMeter::new(1);
        meter.look(start, 5.0);
        assert_eq!(meter.look(start + Duration::from_secs(1), 9.0), 1.0);
        assert_eq!(meter.look(start + Duration::from_secs(2), 1.0), 0.0);
        assert_eq!(
            meter.look(start + Duration::from_secs(2), 2.0),
            0.0,
            "no time passed"
        );
    }
}
