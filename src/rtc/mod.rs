//! The WebRTC side of a participant: how peer connections are built, and the handle the
//! session drives one through.

pub mod engine;
pub mod feedback;
pub mod peer;
pub mod ports;
pub mod public_address;

pub use engine::MediaSettings;
pub use feedback::Feedback;
pub use peer::{Peer, PeerEvent};
pub mod connection;
pub mod sdp;
