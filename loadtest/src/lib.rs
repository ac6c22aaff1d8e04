//! Synthetic Switchyard participants that speak real WebRTC.
//!
//! [`participant::Participant`] joins a room through the signaling API, publishes synthetic
//! VP8 and Opus tracks whose every payload can be verified and timed by the receiver, and
//! receives and checks everybody else's tracks. The integration tests use it as their client;
//! the load generator runs many of them.

#![warn(missing_docs)]

pub mod participant;
pub mod signaling;
pub mod synthetic;

pub use participant::{Observed, Participant, ParticipantOptions, ReceivedTrack, TrackSpec};

/// What can go wrong for a synthetic participant.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The signaling socket failed.
    #[error("signaling: {0}")]
    Signaling(String),
    /// The server refused the join.
    #[error("refused: {0}")]
    Refused(String),
    /// The WebRTC stack failed.
    #[error("webrtc: {0}")]
    WebRtc(String),
    /// Something did not happen in time.
    #[error("timed out waiting for {0}")]
    Timeout(String),
}
