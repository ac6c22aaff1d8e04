//! The room service API under `/api/`: rooms, their participants, removing and muting them,
//! closing rooms, invite links. JSON over HTTP, for operators and applications; every call
//! needs a bearer token granting `admin` ([`auth`]), but for the one that lets a participant
//! invite people to its own room with its own token ([`invites`]). The API is off on a server
//! without a token key.
//! Its OpenAPI document ([`openapi`]) is generated from the handlers.

pub mod auth;
pub mod cluster;
pub mod error;
pub mod invites;
pub mod openapi;
pub mod participants;
pub mod rooms;
pub mod time;

use std::sync::Arc;

use axum::Router;
use axum::routing::{delete, get, post};

use crate::ServerContext;

/// The API's routes (`/api/counts`, which needs no token, stays in [`crate::http`]; both are
/// served on the internal address when there is one).
pub fn router() -> Router<Arc<ServerContext>> {
    Router::new()
        .route("/api/rooms", get(rooms::list))
        .route("/api/rooms/{room}", delete(rooms::close))
        .route("/api/rooms/{room}/participants", get(participants::list))
        .route(
            "/api/rooms/{room}/participants/{participant}",
            delete(participants::remove),
        )
        .route(
            "/api/rooms/{room}/participants/{participant}/tracks/{track}/mute",
            post(participants::mute),
        )
        .route("/api/invites", post(invites::create))
        .route("/api/openapi.json", get(openapi::document))
}

/// The API's one route for participants rather than operators, served on the public listener
/// too: a participant's browser asks it for an invite link to its own room ([`invites`]).
pub fn participant_router() -> Router<Arc<ServerContext>> {
    Router::new().route("/api/rooms/{room}/invite", post(invites::create_for_room))
}
