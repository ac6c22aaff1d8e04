//! What the server measures of each layer a publisher sends: its SSRC, bitrate, resolution and
//! whether its packets still arrive.
//!
//! A camera published with simulcast arrives as up to three streams of one picture at different
//! resolutions and bitrates; a track sent as one stream has one layer. The publisher's media
//! worker records every packet ([`Layers::record`]); the subscribers' connections, on any
//! worker, read [`Layers::snapshot`] to choose what each of them receives. So every field is an
//! atomic written by one thread, and time is kept as microseconds since the layers were made.
//!
//! A browser stops sending its upper layers when its uplink shrinks, and starts them again when
//! it grows or the server asks for them: "arriving" is what tells a subscriber's allocation
//! which layers it can have now.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::ids::{LayerIndex, Ssrc};

/// The most layers a track may have: what browsers send for simulcast.
pub const MAX_LAYERS: usize = 3;
/// A layer whose last packet is older than this has stopped.
pub const LAYER_SILENCE: Duration = Duration::from_millis(1000);
/// The window a layer's bitrate is measured over.
const BITRATE_WINDOW: Duration = Duration::from_millis(1000);

/// One layer's measurements.
#[derive(Debug, Default)]
struct Layer {
    rid: String,
    ssrc: AtomicU32,
    /// Microseconds since `Layers::epoch` of the last packet, plus one; 0 for none yet.
    last_packet: AtomicU64,
    window_start: AtomicU64,
    window_bytes: AtomicU64,
    bitrate: AtomicU64,
    /// Width in the high 16 bits, height in the low 16; 0 until a keyframe declares it.
    resolution: AtomicU32,
}

/// A layer as a subscriber's allocation sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerSnapshot {
    /// Which layer.
    pub index: LayerIndex,
    /// Its RTP stream id (`a=rid`); empty for a track sent as one stream.
    pub rid: String,
    /// The SSRC it arrives on, once known.
    pub ssrc: Option<Ssrc>,
    /// Bits per second over the last second.
    pub bitrate: u64,
    /// Width and height from its latest keyframe, once one came.
    pub resolution: Option<(u16, u16)>,
    /// Whether its packets arrive.
    pub arriving: bool,
}

/// The layers of one published track; see the module documentation.
#[derive(Debug)]
pub struct Layers {
    epoch: Instant,
    layers: Vec<Layer>,
}

impl Layers {
    /// Layers named by `rids`, in the publisher's order; one nameless layer when there are none.
    /// Beyond [`MAX_LAYERS`] the rest are ignored.
    pub fn new(rids: &[String], now: Instant) -> Self {
        let layers = if rids.is_empty() {
            vec![Layer::default()]
        } else {
            rids.iter()
                .take(MAX_LAYERS)
                .map(|rid| Layer {
                    rid: rid.clone(),
                    ..Layer::default()
                })
                .collect()
        };
        Self { epoch: now, layers }
    }

    /// How many layers the track has.
    pub fn len(&self) -> usize {
        self.layers.len()
    }

    /// Whether it has none (never: a track has at least one).
    pub fn is_empty(&self) -> bool {
        self.layers.is_empty()
    }

    /// Whether the publisher sends the track as several layers.
    pub fn is_simulcast(&self) -> bool {
        self.layers.len() > 1
    }

    /// The layer called `rid`; the only one for a track without rids (or a rid the offer did
    /// not name, which the core would not have let through).
    pub fn index_of(&self, rid: Option<&str>) -> Option<LayerIndex> {
        match rid.filter(|rid| !rid.is_empty()) {
            None if !self.is_simulcast() => Some(LayerIndex(0)),
            None => None,
            Some(rid) => self
                .layers
                .iter()
                .position(|layer| layer.rid == rid)
                .and_then(|index| u8::try_from(index).ok())
                .map(LayerIndex),
        }
    }

    /// The rid of `index`.
    pub fn rid(&self, index: LayerIndex) -> Option<&str> {
        self.layers
            .get(usize::from(index.0))
            .map(|layer| layer.rid.as_str())
    }

    /// Records the SSRC `index` arrives on.
    pub fn set_ssrc(&self, index: LayerIndex, ssrc: Ssrc) {
        if let Some(layer) = self.layers.get(usize::from(index.0)) {
            layer.ssrc.store(ssrc.0, Ordering::Relaxed);
        }
    }

    /// The SSRC `index` arrives on, once its first packet came.
    pub fn ssrc(&self, index: LayerIndex) -> Option<Ssrc> {
        let ssrc = self
            .layers
            .get(usize::from(index.0))?
            .ssrc
            .load(Ordering::Relaxed);
        (ssrc != 0).then_some(Ssrc(ssrc))
    }

    /// Records a packet of `bytes` on `index`, and the size a keyframe declared. Called by the
    /// publisher's media worker only.
    pub fn record(&self, index: LayerIndex, bytes: usize, size: Option<(u16, u16)>, now: Instant) {
        let Some(layer) = self.layers.get(usize::from(index.0)) else {
            return;
        };
        let now = self.micros(now);
        layer.last_packet.store(now + 1, Ordering::Relaxed);
        if let Some((width, height)) = size {
            layer.resolution.store(
                u32::from(width) << 16 | u32::from(height),
                Ordering::Relaxed,
            );
        }
        let start = layer.window_start.load(Ordering::Relaxed);
        let elapsed = now.saturating_sub(start);
        let window = BITRATE_WINDOW.as_micros() as u64;
        if elapsed >= window {
            let bits = layer.window_bytes.load(Ordering::Relaxed) * 8;
            // A layer that paused for longer than a window has no rate to report yet.
            let bitrate = if elapsed < 2 * window {
                bits * 1_000_000 / elapsed
            } else {
                0
            };
            layer.bitrate.store(bitrate, Ordering::Relaxed);
            layer.window_start.store(now, Ordering::Relaxed);
            layer.window_bytes.store(bytes as u64, Ordering::Relaxed);
        } else {
            layer
                .window_bytes
                .fetch_add(bytes as u64, Ordering::Relaxed);
        }
    }

    /// Every layer as it is at `now`.
    pub fn snapshot(&self, now: Instant) -> Vec<LayerSnapshot> {
        let now = self.micros(now);
        let silence = LAYER_SILENCE.as_micros() as u64;
        self.layers
            .iter()
            .enumerate()
            .map(|(index, layer)| {
                let last = layer.last_packet.load(Ordering::Relaxed);
                let resolution = layer.resolution.load(Ordering::Relaxed);
                let ssrc = layer.ssrc.load(Ordering::Relaxed);
                LayerSnapshot {
                    index: LayerIndex(index as u8),
                    rid: layer.rid.clone(),
                    ssrc: (ssrc != 0).then_some(Ssrc(ssrc)),
                    bitrate: layer.bitrate.load(Ordering::Relaxed),
                    resolution: (resolution != 0)
                        .then_some(((resolution >> 16) as u16, resolution as u16)),
                    arriving: last != 0 && now.saturating_sub(last - 1) < silence,
                }
            })
            .collect()
    }

    fn micros(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.epoch).as_micros() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn rids() -> Vec<String> {
        ["q", "h", "f"].map(str::to_owned).to_vec()
    }

    #[test]
    fn layers_are_found_by_rid() {
        let layers = Layers::new(&rids(), Instant::now());
        assert!(layers.is_simulcast());
        assert_eq!(layers.index_of(Some("h")), Some(LayerIndex(1)));
        assert_eq!(layers.index_of(Some("x")), None);
        assert_eq!(layers.index_of(None), None);
        let single = Layers::new(&[], Instant::now());
        assert_eq!(single.len(), 1);
        assert_eq!(single.index_of(None), Some(LayerIndex(0)));
        assert_eq!(single.index_of(Some("")), Some(LayerIndex(0)));
    }

    #[test]
    fn bitrate_resolution_and_arrival_are_measured() {
        let start = Instant::now();
        let layers = Layers::new(&rids(), start);
        layers.set_ssrc(LayerIndex(2), Ssrc(99));
        // 125 bytes every 10 ms: 100 kbit/s.
        for tick in 0..=150u32 {
            let size = (tick == 0).then_some((1280, 720));
            layers.record(LayerIndex(2), 125, size, start + tick * 10 * MS);
        }
        let now = start + 1500 * MS;
        let snapshot = layers.snapshot(now);
        let full = &snapshot[2];
        assert_eq!(full.rid, "f");
        assert_eq!(full.ssrc, Some(Ssrc(99)));
        assert_eq!(full.resolution, Some((1280, 720)));
        assert!(full.arriving);
        assert!(
            full.bitrate.abs_diff(100_000) <= 2_000,
            "{} bit/s",
            full.bitrate
        );
        assert!(!snapshot[0].arriving, "nothing came on q");
        assert_eq!(snapshot[0].ssrc, None);
        let later = layers.snapshot(now + LAYER_SILENCE);
        assert!(!later[2].arriving, "stopped");
    }

    #[test]
    fn a_layer_that_resumes_after_a_pause_starts_from_no_rate() {
        let start = Instant::now();
        let layers = Layers::new(&[], start);
        layers.record(LayerIndex(0), 1000, None, start);
        let resumed = start + 5000 * MS;
        layers.record(LayerIndex(0), 1000, None, resumed);
        assert_eq!(layers.snapshot(resumed)[0].bitrate, 0);
    }
}
