//! The layers each published track arrives in, with their bitrates: how an operator sees that
//! a camera sends simulcast, and which layers its publisher's uplink carries.
//!
//! The series are rebuilt from the live publications at every scrape, so a track that ends
//! leaves no series behind.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge as PromGauge;
use prometheus_client::registry::Registry;

/// One layer of one published track at a scrape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerSample {
    /// The publisher's participant id.
    pub participant: String,
    /// The publisher's track id.
    pub track: String,
    /// The layer's rid; empty for a track sent as one stream.
    pub rid: String,
    /// Bits per second over the last second; 0 when its packets stopped.
    pub bitrate: u64,
    /// Its width from its latest keyframe; 0 before one.
    pub width: u16,
    /// Its height from its latest keyframe; 0 before one.
    pub height: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Labels {
    participant: String,
    track: String,
    rid: String,
}

/// The per-layer series.
#[derive(Debug, Default)]
pub struct LayerMetrics {
    bitrate: Family<Labels, PromGauge>,
    width: Family<Labels, PromGauge>,
    height: Family<Labels, PromGauge>,
}

impl LayerMetrics {
    /// Replaces the series with `samples`.
    pub fn set(&self, samples: &[LayerSample]) {
        for family in [&self.bitrate, &self.width, &self.height] {
            family.clear();
        }
        for sample in samples {
            let labels = Labels {
                participant: sample.participant.clone(),
                track: sample.track.clone(),
                rid: sample.rid.clone(),
            };
            let values = [
                (&self.bitrate, sample.bitrate as i64),
                (&self.width, i64::from(sample.width)),
                (&self.height, i64::from(sample.height)),
            ];
            for (family, value) in values {
                family.get_or_create(&labels).set(value);
            }
        }
    }

    /// Registers the series under `registry` (the `switchyard_` one).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "publication_layer_bitrate_bps",
            "Bits per second each layer of each published track arrives at",
            self.bitrate.clone(),
        );
        registry.register(
            "publication_layer_width",
            "Width in pixels of each layer of each published video, from its latest keyframe",
            self.width.clone(),
        );
        registry.register(
            "publication_layer_height",
            "Height in pixels of each layer of each published video, from its latest keyframe",
            self.height.clone(),
        );
    }
}
