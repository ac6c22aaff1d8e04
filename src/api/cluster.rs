//! `GET /api/cluster`: the whole cluster as its Redis knows it, asked of any node: every live
//! node with its load and, for an operator, which node hosts each room. Like `/api/counts` it
//! is served where `/metrics` is. The nodes need no token; the rooms do, on a server with a
//! token key, as their names are what people join by.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use serde::Serialize;

use crate::ServerContext;
use crate::api::auth::bearer_token;
use crate::api::error::ApiError;
use crate::auth::AdminTokenError;
use crate::cluster::directory::{NodeEntry, RoomEntry};

/// The answer.
#[derive(Debug, Serialize)]
pub struct ClusterAnswer {
    /// The id of the node that answered.
    pub node: String,
    /// Every live node.
    pub nodes: Vec<NodeEntry>,
    /// Every placed room and its node: for an admin token, or on a server without a token key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rooms: Option<Vec<RoomEntry>>,
}

/// `GET /api/cluster`.
pub async fn view(
    State(context): State<Arc<ServerContext>>,
    headers: HeaderMap,
) -> Result<Json<ClusterAnswer>, ApiError> {
    let cluster = context.cluster.as_ref().ok_or(ApiError::NotClustered)?;
    let rooms_shown = may_see_rooms(&context, &headers)?;
    let view = cluster
        .view()
        .await
        .map_err(|error| ApiError::ClusterUnavailable(error.to_string()))?;
    Ok(Json(ClusterAnswer {
        node: cluster.node().to_string(),
        nodes: view.nodes,
        rooms: rooms_shown.then_some(view.rooms),
    }))
}

/// Whether the caller may see room names: anybody on an open server, an admin otherwise. A
/// token that is given but does not verify is refused rather than ignored.
fn may_see_rooms(context: &ServerContext, headers: &HeaderMap) -> Result<bool, ApiError> {
    let Some(key) = &context.token_key else {
        return Ok(true);
    };
    if !headers.contains_key(AUTHORIZATION) {
        return Ok(false);
    }
    match key.verify_admin(bearer_token(headers)?) {
        Ok(_) => Ok(true),
        Err(AdminTokenError::NotAdmin) => Err(ApiError::NotAdmin),
        Err(AdminTokenError::Invalid(error)) => Err(ApiError::TokenInvalid(error.to_string())),
    }
}
