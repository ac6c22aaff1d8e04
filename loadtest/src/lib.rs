//! Synthetic participants that speak real WebRTC, against Switchyard or Janus.
//!
//! [`participant::Participant`] joins a room through a server's signaling, publishes synthetic
//! VP8 and Opus tracks whose every payload can be verified and timed by the receiver, and
//! receives and checks everybody else's tracks. The integration tests use it as their client;
//! [`run()`] runs a whole [`Scenario`] of them and returns a [`Report`], which is what the
//! `loadtest` command prints. The server's signaling dialect is a [`Target`]: Switchyard's own,
//! or Janus's VideoRoom, so the same load, measured the same way, can be run against both.

#![warn(missing_docs)]

pub mod compare;
pub mod impairment;
pub mod participant;
pub mod peer_events;
pub mod report;
pub mod run;
pub mod scenario;
pub mod server_probe;
pub mod signaling;
pub mod soak;
pub mod stats;
pub mod synthetic;
pub mod target;

pub use impairment::{Handover, Impairment};
pub use participant::{Observed, Participant, ParticipantOptions, ReceivedTrack, TrackSpec};
pub use report::Report;
pub use run::{RunOptions, run};
pub use scenario::Scenario;
pub use target::{Janus, Switchyard, Target};

/// What can go wrong for a synthetic participant.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The signaling socket failed.
    #[error("signaling: {0}")]
    Signaling(String),
    /// The server refused the join, with this code and explanation.
    #[error("refused ({0:?}): {1}")]
    Refused(switchyard::signal::protocol::ErrorCode, String),
    /// Another server (Janus) refused a request, with its explanation.
    #[error("refused: {0}")]
    Rejected(String),
    /// The WebRTC stack failed.
    #[error("webrtc: {0}")]
    WebRtc(String),
    /// Something did not happen in time.
    #[error("timed out waiting for {0}")]
    Timeout(String),
    /// The scenario cannot run.
    #[error("scenario: {0}")]
    Scenario(String),
}
