//! The API's OpenAPI document, generated from the handlers' annotations.

use axum::Json;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::api::{error, invites, participants, rooms};

/// The document's root.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Switchyard room service API",
        description = "Rooms, participants and invite links of a Switchyard server. Every call \
                       needs `Authorization: Bearer <token>` with a token granting `admin`, but \
                       `POST /api/rooms/{room}/invite`, which takes a participant's own token \
                       for the room granting `invite`."
    ),
    paths(
        rooms::list,
        rooms::close,
        participants::list,
        participants::remove,
        participants::mute,
        invites::create,
        invites::create_for_room,
    ),
    components(schemas(
        rooms::RoomList,
        rooms::RoomEntry,
        participants::ParticipantList,
        participants::ParticipantEntry,
        participants::TrackEntry,
        participants::MuteRequest,
        participants::MuteState,
        invites::InviteRequest,
        invites::RoomInviteRequest,
        invites::InviteGrants,
        invites::InviteLink,
        error::ErrorBody,
        error::ErrorDetail,
    )),
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;

/// Declares the `bearer` security scheme the paths name.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// `GET /api/openapi.json`: public, like any API's description; it holds no data.
pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
