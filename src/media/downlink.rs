//! One subscriber's downlink: the budget its allocation shares out, and when to try for more.
//!
//! The budget is the subscriber's latest bandwidth estimate (its REMB), while fresh. A
//! browser's estimate follows what arrives: it never rises much above one and a half times the
//! rate it receives. A subscriber shown a camera's 150 kbit/s layer could therefore never
//! be given the 500 kbit/s one, however fast its link. So now and then the allocation is
//! allowed one step beyond the budget (`media::allocation`, rule 5): a *probe*. It lasts
//! [`PROBE_WINDOW`]; if the estimate grows to cover it, it was a success and the next may
//! follow after [`PROBE_GAP`]; if the estimate falls sharply, or still does not cover the step
//! when the window ends, the step is taken back and the next probe waits twice as long as the
//! last (from [`PROBE_GAP`] up to [`MAX_PROBE_BACKOFF`]), so a link that is full is not pushed
//! over again and again.

use std::time::{Duration, Instant};

/// How long an estimate counts; browsers send REMB about once a second.
pub const ESTIMATE_LIFETIME: Duration = Duration::from_secs(5);
/// How long a probe step is held before it is judged.
pub const PROBE_WINDOW: Duration = Duration::from_secs(3);
/// The gap after a successful probe before the next.
pub const PROBE_GAP: Duration = Duration::from_secs(2);
/// The longest gap after probes that failed.
pub const MAX_PROBE_BACKOFF: Duration = Duration::from_secs(60);
/// An estimate below this share of the one a probe started from means the link is full.
const PROBE_FAILURE: f64 = 0.8;

#[derive(Debug, Clone, Copy)]
struct Estimate {
    bitrate: u64,
    at: Instant,
}

#[derive(Debug, Clone, Copy)]
struct Probe {
    since: Instant,
    from: u64,
}

/// One subscriber's downlink; see the module documentation.
#[derive(Debug)]
pub struct Downlink {
    estimate: Option<Estimate>,
    probe: Option<Probe>,
    next_probe: Option<Instant>,
    backoff: Duration,
}

impl Default for Downlink {
    fn default() -> Self {
        Self {
            estimate: None,
            probe: None,
            next_probe: None,
            backoff: PROBE_GAP,
        }
    }
}

impl Downlink {
    /// The subscriber estimated its downlink at `bitrate` bits per second.
    pub fn on_estimate(&mut self, bitrate: u64, now: Instant) {
        self.estimate = Some(Estimate { bitrate, at: now });
        if let Some(probe) = self.probe
            && (bitrate as f64) < probe.from as f64 * PROBE_FAILURE
        {
            self.fail(now);
        }
    }

    /// What the allocation may share out at `now`; `None` without a fresh estimate.
    pub fn budget(&self, now: Instant) -> Option<u64> {
        self.estimate
            .filter(|estimate| now.saturating_duration_since(estimate.at) < ESTIMATE_LIFETIME)
            .map(|estimate| estimate.bitrate)
    }

    /// Whether the allocation at `now` may take a step beyond the budget: during a probe, to
    /// hold it, and when the next one is due.
    pub fn may_probe(&self, now: Instant) -> bool {
        if self.budget(now).is_none() {
            return false;
        }
        match self.probe {
            Some(probe) => now.saturating_duration_since(probe.since) < PROBE_WINDOW,
            None => self.next_probe.is_none_or(|due| now >= due),
        }
    }

    /// After an allocation at `now`: `probing` says whether it needed the step beyond the
    /// budget.
    pub fn allocated(&mut self, probing: bool, now: Instant) {
        match (self.probe, probing) {
            (None, true) => {
                self.probe = Some(Probe {
                    since: now,
                    from: self.budget(now).unwrap_or(0),
                });
            }
            (Some(_), false) => {
                // The estimate grew to cover the step.
                self.probe = None;
                self.backoff = PROBE_GAP;
                self.next_probe = Some(now + PROBE_GAP);
            }
            (Some(probe), true) if now.saturating_duration_since(probe.since) >= PROBE_WINDOW => {
                self.fail(now);
            }
            _ => {}
        }
    }

    /// When the probe under way is to be judged, for the caller's timer.
    pub fn deadline(&self) -> Option<Instant> {
        self.probe
            .map(|probe| probe.since + PROBE_WINDOW)
            .or(self.next_probe)
    }

    fn fail(&mut self, now: Instant) {
        self.probe = None;
        self.next_probe = Some(now + self.backoff);
        self.backoff = (self.backoff * 2).min(MAX_PROBE_BACKOFF);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn no_estimate_no_budget_and_no_probe() {
        let now = Instant::now();
        let mut downlink = Downlink::default();
        assert_eq!(downlink.budget(now), None);
        assert!(!downlink.may_probe(now));
        downlink.on_estimate(300_000, now);
        assert_eq!(downlink.budget(now), Some(300_000));
        assert!(downlink.may_probe(now));
        assert_eq!(downlink.budget(now + ESTIMATE_LIFETIME), None, "stale");
    }

    #[test]
    fn a_probe_the_estimate_covers_succeeds_and_the_next_follows_soon() {
        let start = Instant::now();
        let mut downlink = Downlink::default();
        downlink.on_estimate(300_000, start);
        downlink.allocated(true, start);
        assert!(
            downlink.may_probe(start + 1000 * MS),
            "held during the window"
        );
        downlink.on_estimate(800_000, start + 1500 * MS);
        downlink.allocated(false, start + 1500 * MS);
        assert!(!downlink.may_probe(start + 2000 * MS));
        assert!(downlink.may_probe(start + 1500 * MS + PROBE_GAP));
    }

    #[test]
    fn failed_probes_back_off_doubling() {
        let start = Instant::now();
        let mut downlink = Downlink::default();
        downlink.on_estimate(500_000, start);
        downlink.allocated(true, start);
        // The estimate collapses: the link is full.
        downlink.on_estimate(300_000, start + 500 * MS);
        assert!(!downlink.may_probe(start + 500 * MS));
        let retry = start + 500 * MS + PROBE_GAP;
        assert!(downlink.may_probe(retry));
        // The next one is simply never covered.
        downlink.on_estimate(300_000, retry);
        downlink.allocated(true, retry);
        downlink.on_estimate(300_000, retry + PROBE_WINDOW);
        downlink.allocated(true, retry + PROBE_WINDOW);
        assert!(!downlink.may_probe(retry + PROBE_WINDOW + PROBE_GAP));
        let again = retry + PROBE_WINDOW + PROBE_GAP * 2;
        downlink.on_estimate(300_000, again);
        assert!(downlink.may_probe(again));
    }

    #[test]
    fn backoff_is_bounded() {
        let mut now = Instant::now();
        let mut downlink = Downlink::default();
        for _ in 0..20 {
            downlink.on_estimate(1_000_000, now);
            downlink.allocated(true, now);
            now += PROBE_WINDOW;
            downlink.on_estimate(1_000_000, now);
            downlink.allocated(true, now);
            now += MAX_PROBE_BACKOFF;
        }
        assert_eq!(downlink.backoff, MAX_PROBE_BACKOFF);
        downlink.on_estimate(1_000_000, now);
        assert!(downlink.may_probe(now));
    }
}
