//! Which simulcast layer a received video arrives on, and for how long.
//!
//! A server forwards one layer of a simulcast track to each subscriber and switches between
//! them, so the packets of one received track come from several numbered sequences: every
//! layer counts its own packets. The receiver reads the layer from each packet's probe, adds
//! the time between packets to the layer they came on, and maps each layer's indices onto one
//! continuous sequence for the loss count: a switch starts a new stretch right after the
//! highest index so far, so the packets of a layer that is no longer forwarded are not counted
//! as lost. A track sent as one stream is one stretch, and keeps its own indices.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::simulcast::{LAYER_GAP_LIMIT, rid_of_probe};

/// The layers one received track arrived on.
#[derive(Debug, Clone, Default)]
pub struct ReceivedLayers {
    /// The layer of the last packet (its probe's layer byte, 0 for one stream).
    current: Option<u8>,
    /// When the last packet arrived.
    last_packet: Option<Instant>,
    /// The first index of the current stretch, in the current layer's numbering.
    stretch_start: u64,
    /// What `stretch_start` maps to in the continuous sequence.
    stretch_base: u64,
    /// The highest index of the continuous sequence so far.
    highest: Option<u64>,
    /// Time received on each layer, by the probe's layer byte.
    time: BTreeMap<u8, Duration>,
    /// Whether the next packet starts a new stretch whatever its layer.
    fresh: bool,
    /// How many times the layer changed.
    pub switches: u64,
}

impl ReceivedLayers {
    /// Notes a packet of `layer` with `index`, arrived at `now`. Returns its index in the
    /// continuous sequence, or `None` for one from before its layer's current stretch (a late
    /// packet of a layer the server switched away from and back to), which loss ignores.
    pub fn on_packet(&mut self, layer: u8, index: u64, now: Instant) -> Option<u64> {
        if let (Some(previous), Some(last)) = (self.current, self.last_packet) {
            let gap = now.saturating_duration_since(last);
            if gap <= LAYER_GAP_LIMIT {
                *self.time.entry(previous).or_default() += gap;
            }
        }
        self.last_packet = Some(now);
        if self.current != Some(layer) || self.fresh {
            if self.current.is_some_and(|current| current != layer) {
                self.switches += 1;
            }
            self.fresh = false;
            self.current = Some(layer);
            self.stretch_start = index;
            self.stretch_base = self.highest.map_or(index, |highest| highest + 1);
        }
        let continuous = self.stretch_base + index.checked_sub(self.stretch_start)?;
        self.highest = Some(
            self.highest
                .map_or(continuous, |highest| highest.max(continuous)),
        );
        Some(continuous)
    }

    /// Starts a new stretch at the next packet: the server paused or resumed the video, so
    /// the indices skipped meanwhile were never due.
    pub fn restart(&mut self) {
        self.fresh = true;
    }

    /// The layer of the last packet, as a RID (`None` before any packet, or for one stream).
    pub fn current_rid(&self) -> Option<String> {
        self.current.and_then(rid_of_probe)
    }

    /// Time received on each simulcast layer, by RID (empty for a track sent as one stream).
    pub fn time_by_rid(&self) -> BTreeMap<String, Duration> {
        self.time
            .iter()
            .filter_map(|(layer, time)| Some((rid_of_probe(*layer)?, *time)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_stream_keeps_its_indices() {
        let start = Instant::now();
        let mut layers = ReceivedLayers::default();
        assert_eq!(layers.on_packet(0, 10, start), Some(10));
        assert_eq!(layers.on_packet(0, 12, start), Some(12));
        assert_eq!(layers.on_packet(0, 9, start), None, "before the first");
        assert_eq!(layers.current_rid(), None);
        assert!(layers.time_by_rid().is_empty());
        assert_eq!(layers.switches, 0);
    }

    #[test]
    fn a_switch_continues_the_sequence_and_times_each_layer() {
        let start = Instant::now();
        let at = |millis| start + Duration::from_millis(millis);
        let mut layers = ReceivedLayers::default();
        assert_eq!(layers.on_packet(b'q', 500, at(0)), Some(500));
        assert_eq!(layers.on_packet(b'q', 501, at(100)), Some(501));
        // The server switches up at a keyframe of `f`, whose own count is far ahead.
        assert_eq!(layers.on_packet(b'f', 9000, at(200)), Some(502));
        assert_eq!(
            layers.on_packet(b'f', 9002, at(300)),
            Some(504),
            "9001 is lost"
        );
        // Paused for a second: the gap counts for no layer.
        assert_eq!(layers.on_packet(b'f', 9003, at(1300)), Some(505));
        assert_eq!(layers.on_packet(b'q', 700, at(1400)), Some(506));
        assert_eq!(
            layers.on_packet(b'q', 699, at(1450)),
            None,
            "late, before the stretch"
        );
        assert_eq!(layers.current_rid().as_deref(), Some("q"));
        assert_eq!(layers.switches, 2);
        let time = layers.time_by_rid();
        assert_eq!(time["q"], Duration::from_millis(250));
        assert_eq!(time["f"], Duration::from_millis(200));
    }

    #[test]
    fn a_pause_is_not_loss() {
        let start = Instant::now();
        let mut layers = ReceivedLayers::default();
        assert_eq!(layers.on_packet(b'h', 10, start), Some(10));
        layers.restart();
        // Resumed on the same layer 500 packets later: the sequence goes on from 11.
        assert_eq!(layers.on_packet(b'h', 510, start), Some(11));
        assert_eq!(layers.on_packet(b'h', 511, start), Some(12));
        assert_eq!(layers.switches, 0);
    }
}
