//! The HTTP surface: the browser client, the signaling WebSocket, health, counts and metrics.

use std::sync::Arc;

use axum::extract::{State, WebSocketUpgrade};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use crate::signal::session::{self, MAX_FRAME_BYTES};
use crate::{ServerContext, metrics};

/// Builds the router. Every path the API does not claim is a client file.
pub fn router(context: Arc<ServerContext>) -> Router {
    let client = context.config.client.router();
    Router::new()
        .route("/ws", get(websocket))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/api/counts", get(counts))
        .route("/metrics", get(metrics))
        .with_state(context)
        .fallback_service(client)
}

async fn websocket(
    upgrade: WebSocketUpgrade,
    State(context): State<Arc<ServerContext>>,
) -> Response {
    if context.drain.is_draining() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "the server is shutting down\n",
        )
            .into_response();
    }
    // Counted from the upgrade on, so a shutdown waits for a session that is about to start.
    let guard = context.drain.session();
    upgrade
        .max_frame_size(MAX_FRAME_BYTES)
        .max_message_size(MAX_FRAME_BYTES)
        .on_upgrade(move |socket| session::run(socket, context, guard))
}

async fn counts(State(context): State<Arc<ServerContext>>) -> impl IntoResponse {
    Json(context.counts())
}

async fn metrics(State(context): State<Arc<ServerContext>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, metrics::CONTENT_TYPE)],
        context.metrics.render(context.registry.len()),
    )
}
