//! How each participant of a run joins: its options (what it publishes, its network, TLS, the
//! relay), its token, and what a failure to join says.

use std::sync::Arc;
use std::time::Duration;

use switchyard::signal::protocol::ErrorCode;

use crate::churn::Churner;
use crate::participant::{ParticipantOptions, TrackSpec};
use crate::plan::Planned;
use crate::report::Failure;
use crate::run::RunOptions;
use crate::tokens::Seat;
use crate::{ClientError, error_code_name};

/// A participant that could not join, and why.
pub fn failure(name: &str, room: &str, error: &ClientError) -> Failure {
    Failure {
        participant: name.to_owned(),
        room: room.to_owned(),
        code: match error {
            ClientError::Refused(code, _) => Some(error_code_name(*code)),
            _ => None,
        },
        reason: error.to_string(),
    }
}

/// The server's refusals of a token: every participant's token would be refused alike.
pub fn is_token_code(code: ErrorCode) -> bool {
    matches!(
        code,
        ErrorCode::TokenMissing
            | ErrorCode::TokenInvalid
            | ErrorCode::TokenExpired
            | ErrorCode::TokenWrongRoom
    )
}

/// How `planned`, the `index`-th participant of this machine's plan, joins, with its token.
pub fn participant_options(
    options: &RunOptions,
    index: usize,
    planned: &Planned,
) -> Result<ParticipantOptions, ClientError> {
    let scenario = &options.scenario;
    let mut tracks = Vec::new();
    if planned.publishes {
        if let Some(video) = scenario.video() {
            tracks.push(if scenario.simulcast {
                TrackSpec::Simulcast(video)
            } else {
                TrackSpec::Video(video)
            });
        }
        if scenario.audio {
            tracks.push(TrackSpec::Audio);
        }
    }
    let token = options
        .admission
        .token_for(index, planned.seat())
        .map_err(|error| ClientError::Scenario(error.to_string()))?;
    let mut participant =
        base_options(options, &planned.room, &planned.name, planned.impaired).with_tracks(tracks);
    participant.token = token;
    Ok(participant)
}

/// How a churner joins: receiving only, with a token minted for it.
pub fn churner_options(
    options: &RunOptions,
    churner: &Churner,
) -> Result<ParticipantOptions, Failure> {
    let seat = Seat {
        room: &churner.room,
        name: &churner.name,
        publishes: false,
    };
    let token = options
        .admission
        .token_for(churner.position, seat)
        .map_err(|error| {
            failure(
                &churner.name,
                &churner.room,
                &ClientError::Scenario(error.to_string()),
            )
        })?;
    // Churners are impaired only when everybody is: `impaired` counts the rooms' own.
    let impaired = options.scenario.impaired.is_none();
    let mut participant =
        base_options(options, &churner.room, &churner.name, impaired).with_tracks(Vec::new());
    participant.token = token;
    Ok(participant)
}

/// What every participant of the run shares; `impaired` puts it behind the scenario's
/// impairment.
fn base_options(
    options: &RunOptions,
    room: &str,
    name: &str,
    impaired: bool,
) -> ParticipantOptions {
    let scenario = &options.scenario;
    let mut participant = ParticipantOptions::new(options.url.clone(), room, name)
        .with_target(Arc::clone(&options.target));
    participant.media_ip = options.media_ip;
    participant.send_media = scenario.send_media;
    if impaired {
        participant.impairment = scenario.impairment;
    }
    participant.tile = scenario.tile;
    // Simulcast runs are about the server sharing each downlink: receivers say what theirs
    // carries, as browsers do.
    participant.estimate_downlink = scenario.simulcast;
    participant.tls = options.tls.clone();
    participant.relay = options.relay;
    // A freeze is a gap of more than three frame intervals.
    participant.freeze_threshold = Duration::from_secs(3) / scenario.fps.max(1);
    participant
}
