//! The track router: publications read once, down-tracks written per subscriber, and the RTCP
//! logic between them (keyframe throttling, bitrate aggregation).

pub mod allocation;
pub mod audio_level;
pub mod bitrate;
pub mod downlink;
pub mod downtrack;
pub mod keyframe;
pub mod layer_switch;
pub mod layers;
pub mod malformed;
pub mod picture_numbering;
pub mod publication;
pub mod rewriter;
pub mod send_time;
pub mod speaker;
pub mod upstream;
pub mod vp8;
