//! Which of a simulcast track's layers the publisher should send.
//!
//! Encoding and uploading a layer nobody receives costs the publisher's CPU and uplink for
//! nothing, so the server tells it which layers are wanted (the `layers` message, which a
//! browser applies with `RTCRtpSender.setParameters`). A layer is wanted while some
//! subscriber's allocation would like it. The lowest layer always stays on: a newcomer's first
//! picture and a congested subscriber's fallback come from it without waiting for an encoder
//! to start. A layer goes off only after [`SWITCH_OFF_DELAY`] unwanted, so a subscriber that
//! resizes a tile back and forth, or leaves and rejoins, does not restart the encoder each
//! time; it comes back on at once.

use std::time::{Duration, Instant};

/// How long a layer must be unwanted before it is switched off.
pub const SWITCH_OFF_DELAY: Duration = Duration::from_secs(5);

/// One simulcast track's layers, on or off; see the module documentation.
#[derive(Debug, Clone)]
pub struct LayerSwitch {
    /// Whether each layer is on, as last told (all on at first: browsers send every layer).
    on: Vec<bool>,
    /// Since when each layer has been unwanted.
    unwanted_since: Vec<Option<Instant>>,
}

impl LayerSwitch {
    /// A track of `layers` layers, all on.
    pub fn new(layers: usize) -> Self {
        Self {
            on: vec![true; layers],
            unwanted_since: vec![None; layers],
        }
    }

    /// Takes in which layers are wanted now (`wanted[i]` for layer `i`) and which is the lowest
    /// (always on); returns the layers to have on when that changed.
    pub fn update(&mut self, wanted: &[bool], lowest: usize, now: Instant) -> Option<Vec<bool>> {
        let mut next = self.on.clone();
        for (index, on) in next.iter_mut().enumerate() {
            let wanted = index == lowest || wanted.get(index).copied().unwrap_or(false);
            if wanted {
                self.unwanted_since[index] = None;
                *on = true;
            } else {
                let since = *self.unwanted_since[index].get_or_insert(now);
                if now.saturating_duration_since(since) >= SWITCH_OFF_DELAY {
                    *on = false;
                }
            }
        }
        if next == self.on {
            return None;
        }
        self.on = next.clone();
        Some(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn an_unwanted_layer_goes_off_after_the_delay_and_back_on_at_once() {
        let start = Instant::now();
        let mut switch = LayerSwitch::new(3);
        assert_eq!(switch.update(&[true, true, false], 0, start), None);
        assert_eq!(
            switch.update(&[true, true, false], 0, start + SWITCH_OFF_DELAY - MS),
            None
        );
        assert_eq!(
            switch.update(&[true, true, false], 0, start + SWITCH_OFF_DELAY),
            Some(vec![true, true, false])
        );
        assert_eq!(
            switch.update(&[false, true, true], 0, start + SWITCH_OFF_DELAY + MS),
            Some(vec![true, true, true]),
            "wanted again: on at once"
        );
    }

    #[test]
    fn the_lowest_layer_stays_on_even_unwanted() {
        let start = Instant::now();
        let mut switch = LayerSwitch::new(3);
        switch.update(&[false, false, false], 2, start);
        assert_eq!(
            switch.update(&[false, false, false], 2, start + SWITCH_OFF_DELAY),
            Some(vec![false, false, true])
        );
    }

    #[test]
    fn a_layer_wanted_in_between_restarts_the_delay() {
        let start = Instant::now();
        let mut switch = LayerSwitch::new(2);
        switch.update(&[true, false], 0, start);
        switch.update(&[true, true], 0, start + 3000 * MS);
        switch.update(&[true, false], 0, start + 4000 * MS);
        assert_eq!(switch.update(&[true, false], 0, start + 8000 * MS), None);
        assert_eq!(
            switch.update(&[true, false], 0, start + 9000 * MS),
            Some(vec![true, false])
        );
    }
}
