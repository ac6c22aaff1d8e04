//! `GET /api/rooms` and `DELETE /api/rooms/{room}`.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Serialize;
use tracing::info;
use utoipa::ToSchema;

use crate::ServerContext;
use crate::api::auth::Admin;
use crate::api::error::{ApiError, ErrorBody};
use crate::api::time::unix_millis;
use crate::room::Room;

/// Every open room.
#[derive(Debug, Serialize, ToSchema)]
pub struct RoomList {
    /// The rooms, by name.
    pub rooms: Vec<RoomEntry>,
}

/// One open room.
#[derive(Debug, Serialize, ToSchema)]
pub struct RoomEntry {
    /// Its name.
    pub name: String,
    /// How many participants are in it.
    pub participants: usize,
    /// When it opened, in milliseconds since the Unix epoch.
    pub created_at: u64,
}

/// Lists every open room.
#[utoipa::path(
    get,
    path = "/api/rooms",
    tag = "rooms",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The open rooms", body = RoomList),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 403, description = "The token does not grant `admin`", body = ErrorBody),
    )
)]
pub async fn list(_admin: Admin, State(context): State<Arc<ServerContext>>) -> Json<RoomList> {
    let rooms = context
        .registry
        .rooms()
        .iter()
        .map(|room| room.view())
        .map(|view| RoomEntry {
            name: view.name,
            participants: view.participants,
            created_at: unix_millis(view.created_at),
        })
        .collect();
    Json(RoomList { rooms })
}

/// Closes a room: every participant gets `error` `removed` and its session ends.
#[utoipa::path(
    delete,
    path = "/api/rooms/{room}",
    tag = "rooms",
    security(("bearer" = [])),
    params(("room" = String, Path, description = "The room's name")),
    responses(
        (status = 204, description = "The room is closed"),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 403, description = "The token does not grant `admin`", body = ErrorBody),
        (status = 404, description = "No such room", body = ErrorBody),
    )
)]
pub async fn close(
    admin: Admin,
    State(context): State<Arc<ServerContext>>,
    Path(room): Path<String>,
) -> Result<StatusCode, ApiError> {
    let found = find_room(&context, &room)?;
    info!(room, operator = admin.identity, "closing the room");
    context.registry.close_room(&found);
    Ok(StatusCode::NO_CONTENT)
}

/// The open room called `name`.
pub fn find_room(context: &ServerContext, name: &str) -> Result<Arc<Room>, ApiError> {
    context
        .registry
        .room(name)
        .ok_or_else(|| ApiError::UnknownRoom(name.to_owned()))
}
