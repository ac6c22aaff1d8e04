//! The WebRTC side of a participant: how its connection is built and negotiated, what it
//! publishes and what it receives. Nothing here does I/O or speaks the signaling protocol:
//! the media engine drives a [`connection::Connection`], and the session renders its notices.

pub mod allocating;
pub mod connection;
pub mod extmap;
pub mod feedback;
pub mod negotiation;
pub mod padding;
pub mod public_address;
pub mod publishing;
pub mod sdp;
pub mod setup;
pub mod subscriptions;

pub use feedback::Feedback;
pub use setup::MediaSettings;
