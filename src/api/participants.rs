//! A room's participants: list, remove, mute a track.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use tracing::info;
use utoipa::ToSchema;

use crate::ServerContext;
use crate::api::auth::Admin;
use crate::api::error::{ApiError, ErrorBody};
use crate::api::rooms::find_room;
use crate::api::time::unix_millis;
use crate::ids::ParticipantId;
use crate::room::{MuteRefusal, ParticipantView};

/// A room's participants.
#[derive(Debug, Serialize, ToSchema)]
pub struct ParticipantList {
    /// In the order they joined.
    pub participants: Vec<ParticipantEntry>,
}

/// One participant.
#[derive(Debug, Serialize, ToSchema)]
pub struct ParticipantEntry {
    /// The server-assigned id (`PA_...`).
    pub id: String,
    /// The identity from its access token.
    pub identity: Option<String>,
    /// The display name.
    pub name: String,
    /// When it joined, in milliseconds since the Unix epoch.
    pub joined_at: u64,
    /// Its media connection's state: `new`, `connecting`, `connected`, `disconnected`, ...
    pub connection: String,
    /// What it publishes.
    pub tracks: Vec<TrackEntry>,
}

/// One published track.
#[derive(Debug, Serialize, ToSchema)]
pub struct TrackEntry {
    /// The publisher's track id.
    pub id: String,
    /// `audio` or `video`.
    pub kind: String,
    /// Whether it is muted (nothing of it is forwarded).
    pub muted: bool,
}

impl From<ParticipantView> for ParticipantEntry {
    fn from(view: ParticipantView) -> Self {
        Self {
            id: view.id.as_str().to_owned(),
            identity: view.identity,
            name: view.name,
            joined_at: unix_millis(view.joined_at),
            connection: view.connection,
            tracks: view
                .tracks
                .into_iter()
                .map(|track| TrackEntry {
                    id: track.id,
                    kind: track.kind.as_str().to_owned(),
                    muted: track.muted,
                })
                .collect(),
        }
    }
}

/// The body of a mute call.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MuteRequest {
    /// `true` to stop forwarding the track, `false` to resume.
    pub muted: bool,
}

/// The track's new state.
#[derive(Debug, Serialize, ToSchema)]
pub struct MuteState {
    /// The publisher.
    pub participant: String,
    /// The track.
    pub track: String,
    /// The state asked for.
    pub muted: bool,
}

/// Lists a room's participants.
#[utoipa::path(
    get,
    path = "/api/rooms/{room}/participants",
    tag = "participants",
    security(("bearer" = [])),
    params(("room" = String, Path, description = "The room's name")),
    responses(
        (status = 200, description = "The room's participants", body = ParticipantList),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 403, description = "The token does not grant `admin`", body = ErrorBody),
        (status = 404, description = "No such room", body = ErrorBody),
    )
)]
pub async fn list(
    _admin: Admin,
    State(context): State<Arc<ServerContext>>,
    Path(room): Path<String>,
) -> Result<Json<ParticipantList>, ApiError> {
    let room = find_room(&context, &room)?;
    let participants = room.participants().into_iter().map(Into::into).collect();
    Ok(Json(ParticipantList { participants }))
}

/// Removes a participant: it gets `error` `removed` and its session ends; the others see it
/// leave.
#[utoipa::path(
    delete,
    path = "/api/rooms/{room}/participants/{participant}",
    tag = "participants",
    security(("bearer" = [])),
    params(
        ("room" = String, Path, description = "The room's name"),
        ("participant" = String, Path, description = "The participant's id"),
    ),
    responses(
        (status = 204, description = "The participant is removed"),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 403, description = "The token does not grant `admin`", body = ErrorBody),
        (status = 404, description = "No such room or participant", body = ErrorBody),
    )
)]
pub async fn remove(
    admin: Admin,
    State(context): State<Arc<ServerContext>>,
    Path((room, participant)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let found = find_room(&context, &room)?;
    let id = ParticipantId::from(participant.as_str());
    if !context.registry.remove_participant(&found, &id) {
        return Err(ApiError::UnknownParticipant { room, participant });
    }
    info!(
        room,
        participant,
        operator = admin.identity,
        "removed a participant"
    );
    Ok(StatusCode::NO_CONTENT)
}

/// Mutes or unmutes a participant's published track: forwarding stops or resumes, and every
/// participant, the publisher included, gets `mute`.
#[utoipa::path(
    post,
    path = "/api/rooms/{room}/participants/{participant}/tracks/{track}/mute",
    tag = "participants",
    security(("bearer" = [])),
    params(
        ("room" = String, Path, description = "The room's name"),
        ("participant" = String, Path, description = "The publisher's id"),
        ("track" = String, Path, description = "The publisher's track id"),
    ),
    request_body = MuteRequest,
    responses(
        (status = 202, description = "The publisher's session applies the change", body = MuteState),
        (status = 400, description = "The body is not `{\"muted\": true|false}`", body = ErrorBody),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 403, description = "The token does not grant `admin`", body = ErrorBody),
        (status = 404, description = "No such room, participant or track", body = ErrorBody),
    )
)]
pub async fn mute(
    admin: Admin,
    State(context): State<Arc<ServerContext>>,
    Path((room, participant, track)): Path<(String, String, String)>,
    body: Bytes,
) -> Result<(StatusCode, Json<MuteState>), ApiError> {
    // Read by hand so a bad body gets the API's JSON error too.
    let request: MuteRequest =
        serde_json::from_slice(&body).map_err(|error| ApiError::InvalidBody(error.to_string()))?;
    let found = find_room(&context, &room)?;
    let id = ParticipantId::from(participant.as_str());
    found
        .request_mute(&id, &track, request.muted)
        .map_err(|refusal| match refusal {
            MuteRefusal::UnknownParticipant => ApiError::UnknownParticipant {
                room: room.clone(),
                participant: participant.clone(),
            },
            MuteRefusal::UnknownTrack => ApiError::UnknownTrack {
                participant: participant.clone(),
                track: track.clone(),
            },
        })?;
    info!(
        room,
        participant,
        track,
        muted = request.muted,
        operator = admin.identity,
        "asked for a mute"
    );
    Ok((
        StatusCode::ACCEPTED,
        Json(MuteState {
            participant,
            track,
            muted: request.muted,
        }),
    ))
}
