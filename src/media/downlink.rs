//! One subscriber's downlink: whether its bandwidth estimate limits what it is sent.
//!
//! A browser's estimate (its REMB) follows what arrives: it starts from the rate it measures,
//! grows by a few percent a second, never above one and a half times what it receives, and
//! falls below what arrives as soon as the link queues or drops. So it cannot say how much
//! *more* a link would take, only that it takes less than is sent. The server reads it that
//! way:
//! - **Congested**: the estimate is below [`CONGESTED`] of what the subscriber is being sent,
//!   and not rising. (One that rises is catching up with a rate that just grew, a new video or
//!   a higher layer: browsers raise their estimate by a few percent a second, so it trails a
//!   step up for a while on any link.) The allocation must fit the estimate (lower layers,
//!   paused videos), and upgrades are held back for a while: [`FIRST_HOLD`] after the first congestion, twice as long after each
//!   congestion that follows within [`CALM`] of the last hold's end, up to [`MAX_HOLD`], so a
//!   link that is full is not pushed over again and again.
//! - **Held**: not congested, but an upgrade was recently too much. The allocation keeps what it
//!   has and may grow only within the estimate.
//! - **Stepping**: a hold is over, but the link was congested within [`CALM`]. Each video may go
//!   one layer up, and then the allocation waits [`STEP_GAP`] for the estimate to say whether
//!   that fitted: a link that takes the middle layer but not the full one settles on the middle
//!   one instead of freezing on the full one at every try.
//! - **Free**: not congested, not held, and calm (or no estimate at all). Every video gets the
//!   layer its tile wants; should that be too much, the next estimate says so within a second
//!   or two. Going straight to the wanted layers, rather than one step at a time, is what lets
//!   an enlarged tile get its sharp picture within a second, on the links where it fits.

use std::time::{Duration, Instant};

use crate::media::allocation::Limit;

/// How long an estimate counts; browsers send REMB about once a second.
pub const ESTIMATE_LIFETIME: Duration = Duration::from_secs(5);
/// An estimate below this share of what is sent means the link is full.
pub const CONGESTED: f64 = 0.9;
/// How long upgrades wait after a first congestion.
pub const FIRST_HOLD: Duration = Duration::from_secs(4);
/// The longest they wait after congestion upon congestion.
pub const MAX_HOLD: Duration = Duration::from_secs(60);
/// How long the allocation waits after a step up before the next, while stepping.
pub const STEP_GAP: Duration = Duration::from_secs(4);
/// Congestion this long after the last hold ended counts as a first again.
pub const CALM: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy)]
struct Estimate {
    bitrate: u64,
    at: Instant,
}

/// One subscriber's downlink; see the module documentation.
#[derive(Debug)]
pub struct Downlink {
    estimate: Option<Estimate>,
    /// The estimate before the latest, to tell one that rises.
    previous: Option<u64>,
    /// Whether the last look found the link congested: a new congestion starts a new hold.
    congested: bool,
    hold: Duration,
    held_until: Option<Instant>,
}

impl Default for Downlink {
    fn default() -> Self {
        Self {
            estimate: None,
            previous: None,
            congested: false,
            hold: FIRST_HOLD,
            held_until: None,
        }
    }
}

impl Downlink {
    /// The subscriber estimated its downlink at `bitrate` bits per second.
    pub fn on_estimate(&mut self, bitrate: u64, now: Instant) {
        self.previous = self.estimate.map(|estimate| estimate.bitrate);
        self.estimate = Some(Estimate { bitrate, at: now });
    }

    /// What an allocation at `now` must keep to, the subscriber being sent `sending` bits per
    /// second: the estimate when congested, at least what is sent while held, one step up
    /// while stepping, and nothing while free.
    pub fn limit(&mut self, sending: u64, now: Instant) -> Limit {
        match self.budget(sending, now) {
            Some(budget) => Limit::Budget(budget),
            None if self
                .held_until
                .is_some_and(|until| now.saturating_duration_since(until) < CALM) =>
            {
                Limit::OneStep
            }
            None => Limit::None,
        }
    }

    /// An allocation while stepping moved a video up: the next step waits [`STEP_GAP`].
    pub fn stepped(&mut self, now: Instant) {
        self.held_until = Some(now + STEP_GAP);
    }

    /// The budget: the estimate when congested, at least what is sent while held, `None`
    /// otherwise.
    fn budget(&mut self, sending: u64, now: Instant) -> Option<u64> {
        let estimate = self
            .estimate
            .filter(|estimate| now.saturating_duration_since(estimate.at) < ESTIMATE_LIFETIME)?
            .bitrate;
        let rising = self.previous.is_some_and(|previous| estimate > previous);
        if (estimate as f64) < sending as f64 * CONGESTED && !rising {
            if !self.congested {
                self.congested = true;
                let calm = self
                    .held_until
                    .is_none_or(|until| now.saturating_duration_since(until) >= CALM);
                self.hold = if calm {
                    FIRST_HOLD
                } else {
                    (self.hold * 2).min(MAX_HOLD)
                };
                self.held_until = Some(now + self.hold);
            }
            return Some(estimate);
        }
        self.congested = false;
        if self.held_until.is_some_and(|until| now < until) {
            return Some(estimate.max(sending));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn without_an_estimate_there_is_no_limit() {
        let now = Instant::now();
        let mut downlink = Downlink::default();
        assert_eq!(downlink.budget(1_000_000, now), None);
        downlink.on_estimate(300_000, now);
        assert_eq!(
            downlink.budget(1_000_000, now + ESTIMATE_LIFETIME),
            None,
            "stale"
        );
    }

    #[test]
    fn an_estimate_that_keeps_up_leaves_the_allocation_free() {
        let now = Instant::now();
        let mut downlink = Downlink::default();
        downlink.on_estimate(750_000, now);
        assert_eq!(downlink.budget(500_000, now), None);
        assert_eq!(downlink.budget(800_000, now), None, "within 90 %");
    }

    #[test]
    fn an_estimate_catching_up_with_a_step_up_is_not_congestion() {
        let now = Instant::now();
        let mut downlink = Downlink::default();
        downlink.on_estimate(400_000, now);
        downlink.on_estimate(430_000, now + 1000 * MS);
        assert_eq!(downlink.budget(1_500_000, now + 1000 * MS), None, "rising");
        downlink.on_estimate(430_000, now + 2000 * MS);
        assert_eq!(
            downlink.budget(1_500_000, now + 2000 * MS),
            Some(430_000),
            "no longer rising, and far below"
        );
    }

    #[test]
    fn congestion_limits_then_holds_upgrades_then_frees_them() {
        let start = Instant::now();
        let mut downlink = Downlink::default();
        downlink.on_estimate(600_000, start);
        assert_eq!(
            downlink.budget(1_500_000, start),
            Some(600_000),
            "congested"
        );
        // The allocation fitted the estimate: what is sent now is below it.
        let later = start + 1000 * MS;
        downlink.on_estimate(800_000, later);
        assert_eq!(downlink.budget(540_000, later), Some(800_000), "held");
        downlink.on_estimate(800_000, start + FIRST_HOLD);
        assert_eq!(downlink.budget(540_000, start + FIRST_HOLD), None, "free");
    }

    #[test]
    fn after_a_hold_videos_step_up_one_layer_at_a_time_until_calm() {
        let start = Instant::now();
        let mut downlink = Downlink::default();
        downlink.on_estimate(600_000, start);
        assert_eq!(downlink.limit(1_500_000, start), Limit::Budget(600_000));
        let free = start + FIRST_HOLD;
        downlink.on_estimate(700_000, free);
        assert_eq!(downlink.limit(540_000, free), Limit::OneStep);
        downlink.stepped(free);
        assert_eq!(
            downlink.limit(540_000, free + MS),
            Limit::Budget(700_000),
            "waits for the estimate after a step"
        );
        let calm = free + STEP_GAP + CALM;
        downlink.on_estimate(700_000, calm);
        assert_eq!(downlink.limit(540_000, calm), Limit::None);
        // Without any congestion there is no stepping at all.
        let mut fresh = Downlink::default();
        fresh.on_estimate(700_000, start);
        assert_eq!(fresh.limit(540_000, start), Limit::None);
    }

    #[test]
    fn congestion_upon_congestion_holds_twice_as_long_up_to_a_bound() {
        let mut now = Instant::now();
        let mut downlink = Downlink::default();
        let mut holds = Vec::new();
        for _ in 0..8 {
            downlink.on_estimate(600_000, now);
            assert!(downlink.budget(1_500_000, now).is_some());
            holds.push(downlink.hold);
            // Fitted, then free again once the hold is over, and congested at once.
            downlink.on_estimate(800_000, now + MS);
            downlink.budget(540_000, now + MS);
            now += downlink.hold;
        }
        assert_eq!(holds[0], FIRST_HOLD);
        assert_eq!(holds[1], FIRST_HOLD * 2);
        assert_eq!(*holds.last().expect("holds"), MAX_HOLD);
        // After a calm spell a congestion is a first again.
        now += CALM;
        downlink.on_estimate(600_000, now);
        downlink.budget(1_500_000, now);
        assert_eq!(downlink.hold, FIRST_HOLD);
    }
}
