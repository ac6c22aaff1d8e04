//! Simulcast as the browser client publishes a camera: one video track sent as three layers,
//! each its own RTP stream (SSRC) named by an RTP stream id (RID), with its own keyframes.
//!
//! A synthetic publisher sends the layers the browser client would: `q` (a quarter of the
//! resolution, 150 kbit/s), `h` (half, 500 kbit/s) and `f` (full, 1.5 Mbit/s). Like a browser,
//! it stops a layer the server no longer wants (the `layers` message) and the top layers its
//! uplink estimate (REMB) has no room for, and starts a layer again with a keyframe.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::synthetic::VideoShape;

/// One simulcast layer a publisher sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layer {
    /// Its RTP stream id, one ASCII letter.
    pub rid: &'static str,
    /// Its bitrate, bits per second.
    pub bitrate: u64,
    /// Its frame width, pixels.
    pub width: u16,
    /// Its frame height, pixels.
    pub height: u16,
}

/// The layers of a simulcast camera, lowest first, as the browser client sends them.
pub const LAYERS: [Layer; 3] = [
    Layer {
        rid: "q",
        bitrate: 150_000,
        width: 320,
        height: 180,
    },
    Layer {
        rid: "h",
        bitrate: 500_000,
        width: 640,
        height: 360,
    },
    Layer {
        rid: "f",
        bitrate: 1_500_000,
        width: 1280,
        height: 720,
    },
];

/// A layer must fit the estimate with this much to spare before it is started again, so that
/// an estimate hovering at a layer's edge does not switch it on and off at every REMB.
const RESTART_HEADROOM: f64 = 1.1;

impl Layer {
    /// What its probes carry in their layer byte: the RID's letter.
    pub fn probe_byte(&self) -> u8 {
        self.rid.as_bytes()[0]
    }

    /// The frames it sends, at `fps` with a keyframe every `keyframe_interval`.
    pub fn shape(&self, base: &VideoShape) -> VideoShape {
        VideoShape {
            bitrate: self.bitrate,
            width: self.width,
            height: self.height,
            ..*base
        }
    }
}

/// The RID a probe's layer byte names: `None` for a track sent as one stream.
pub fn rid_of_probe(layer: u8) -> Option<String> {
    (layer != 0).then(|| char::from(layer).to_string())
}

/// The sum of every layer's bitrate, what a publisher sends with all of them on.
pub fn total_bitrate(layers: &[Layer]) -> u64 {
    layers.iter().map(|layer| layer.bitrate).sum()
}

/// What a publisher's sender is told: which layers the server wants (`None` until it says),
/// and the latest estimate of its uplink, bits per second (`None` until one comes).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LayerControl {
    /// The RIDs of the server's last `layers` message for the track.
    pub wanted: Option<BTreeSet<String>>,
    /// The last REMB the server sent.
    pub estimate: Option<u64>,
}

/// Which of `layers` (lowest first) to send, given `control` and which are sent now: the ones
/// the server wants, lowest first while their sum fits the estimate. The lowest layer is always
/// sent, as a browser's encoder keeps its lowest encoding going whatever the estimate; a layer
/// that is off starts again only when it fits with [`RESTART_HEADROOM`] to spare.
pub fn sending_layers(layers: &[Layer], control: &LayerControl, sending: &[bool]) -> Vec<bool> {
    let mut sum = 0u64;
    let mut fits = true;
    layers
        .iter()
        .enumerate()
        .map(|(index, layer)| {
            if index == 0 {
                sum = layer.bitrate;
                return true;
            }
            let wanted = control
                .wanted
                .as_ref()
                .is_none_or(|wanted| wanted.contains(layer.rid));
            if !wanted || !fits {
                return false;
            }
            sum += layer.bitrate;
            let on_now = sending.get(index).copied().unwrap_or(false);
            let needed = if on_now {
                sum as f64
            } else {
                sum as f64 * RESTART_HEADROOM
            };
            fits = control
                .estimate
                .is_none_or(|estimate| needed <= estimate as f64);
            fits
        })
        .collect()
}

/// The time attributed to each received layer: the gap between two packets counts for the
/// layer of the first, unless it is longer than this (the video was paused meanwhile).
pub const LAYER_GAP_LIMIT: Duration = Duration::from_millis(500);

#[cfg(test)]
mod tests {
    use super::*;

    fn wanted(rids: &[&str]) -> Option<BTreeSet<String>> {
        Some(rids.iter().map(|rid| (*rid).to_owned()).collect())
    }

    #[test]
    fn everything_is_sent_until_told_otherwise() {
        let control = LayerControl::default();
        assert_eq!(
            sending_layers(&LAYERS, &control, &[false; 3]),
            [true, true, true]
        );
    }

    #[test]
    fn the_server_s_layers_message_switches_layers_off_and_on() {
        let control = LayerControl {
            wanted: wanted(&["q", "h"]),
            estimate: None,
        };
        assert_eq!(
            sending_layers(&LAYERS, &control, &[true; 3]),
            [true, true, false]
        );
        let control = LayerControl {
            wanted: wanted(&["q", "f"]),
            estimate: None,
        };
        assert_eq!(
            sending_layers(&LAYERS, &control, &[true; 3]),
            [true, false, true],
            "a layer the server skips does not stop those above it"
        );
        let control = LayerControl {
            wanted: wanted(&[]),
            estimate: None,
        };
        assert_eq!(
            sending_layers(&LAYERS, &control, &[true; 3]),
            [true, false, false],
            "the lowest layer is always sent"
        );
    }

    #[test]
    fn the_estimate_stops_the_top_layers_that_do_not_fit() {
        let estimate = |bits| LayerControl {
            wanted: None,
            estimate: Some(bits),
        };
        let on = [true; 3];
        assert_eq!(
            sending_layers(&LAYERS, &estimate(2_200_000), &on),
            [true, true, true]
        );
        assert_eq!(
            sending_layers(&LAYERS, &estimate(1_000_000), &on),
            [true, true, false]
        );
        assert_eq!(
            sending_layers(&LAYERS, &estimate(600_000), &on),
            [true, false, false]
        );
        assert_eq!(
            sending_layers(&LAYERS, &estimate(50_000), &on),
            [true, false, false]
        );
        // Back on only with headroom: 650 kbit/s fits an estimate of 700k once sent, but is
        // not started again by it.
        let off = [true, false, false];
        assert_eq!(
            sending_layers(&LAYERS, &estimate(700_000), &off),
            [true, false, false]
        );
        assert_eq!(
            sending_layers(&LAYERS, &estimate(700_000), &[true, true, false]),
            [true, true, false]
        );
        assert_eq!(
            sending_layers(&LAYERS, &estimate(800_000), &off),
            [true, true, false]
        );
    }

    #[test]
    fn probes_name_their_layer() {
        assert_eq!(LAYERS.map(|layer| layer.probe_byte()), [b'q', b'h', b'f']);
        assert_eq!(rid_of_probe(b'h').as_deref(), Some("h"));
        assert_eq!(rid_of_probe(0), None);
        assert_eq!(total_bitrate(&LAYERS), 2_150_000);
        let shape = LAYERS[2].shape(&VideoShape::default());
        assert_eq!(
            (shape.width, shape.height, shape.bitrate),
            (1280, 720, 1_500_000)
        );
    }
}
