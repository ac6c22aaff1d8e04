//! The API's OpenAPI document, generated from the handlers' annotations.

use axum::Json;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::api::{error, participants, rooms};

/// The document's root.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Switchyard room service API",
        description = "Rooms and participants of a Switchyard server. Every call needs \
                       `Authorization: Bearer <token>` with a token granting `admin`."
    ),
    paths(
        rooms::list,
        rooms::close,
        participants::list,
        participants::remove,
        participants::mute,
    ),
    components(schemas(
        rooms::RoomList,
        rooms::RoomEntry,
        participants::ParticipantList,
        participants::ParticipantEntry,
        participants::TrackEntry,
        participants::MuteRequest,
        participants::MuteState,
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
