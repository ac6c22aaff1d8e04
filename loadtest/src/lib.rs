//! Synthetic participants that speak real WebRTC, against Switchyard or Janus.
//!
//! [`participant::Participant`] joins a room through a server's signaling, publishes synthetic
//! VP8 and Opus tracks whose every payload can be verified and timed by the receiver, and
//! receives and checks everybody else's tracks. The integration tests use it as their client;
//! [`run()`] runs a whole [`Scenario`] of them and returns a [`Report`], which is what the
//! `loadtest` command prints. The server's signaling dialect is a [`Target`]: Switchyard's own,
//! or Janus's VideoRoom, so the same load, measured the same way, can be run against both.

#![warn(missing_docs)]

pub mod charts;
pub mod churn;
pub mod compare;
pub mod downlink_estimate;
pub mod histogram;
pub mod html;
pub mod impairment;
pub mod interval;
pub mod joining;
pub mod merge;
pub mod output;
pub mod participant;
pub mod peer_events;
pub mod plan;
pub mod progress;
pub mod received_layers;
pub mod recorder;
pub mod report;
pub mod run;
pub mod scenario;
pub mod series;
pub mod server_probe;
pub mod shard;
pub mod signaling;
pub mod simulcast;
pub mod simulcast_sender;
pub mod soak;
pub mod start;
pub mod stats;
pub mod stop;
pub mod synthetic;
pub mod target;
pub mod tls;
pub mod tokens;
pub mod view;

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
    /// The server refused a participant's access token: every participant's would be refused
    /// alike, so the run stops.
    #[error(
        "the server refused the access token of {participant} with `{code}`: {message}; check --token-key (it must be the server's key) or --token"
    )]
    TokenRefused {
        /// The participant.
        participant: String,
        /// The server's error code, e.g. `token_invalid`.
        code: String,
        /// The server's explanation.
        message: String,
    },
    /// `--relay` asks for relayed candidates only, and the server named no TURN server.
    #[error(
        "relay only, and the server named no TURN server in `joined`: configure its [ice] turn_urls and turn_secret"
    )]
    NoTurnServer,
}

/// The name of a server error code as the protocol spells it, e.g. `token_invalid`.
pub fn error_code_name(code: switchyard::signal::protocol::ErrorCode) -> String {
    serde_json::to_value(code)
        .ok()
        .and_then(|value| value.as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("{code:?}"))
}
