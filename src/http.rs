//! The HTTP surface: the browser client, the signaling WebSocket, health, counts and metrics;
//! the listener that serves them ([`serve`]) and what it lets in (connections by
//! [`crate::net::admission`], [`origin`], [`unjoined`]).

mod idle;
pub mod origin;
pub mod serve;
pub mod unjoined;

use std::sync::Arc;

use axum::extract::{State, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use tracing::debug;

use crate::metrics::RefusedBecause;
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
        .merge(crate::api::router())
        .with_state(context)
        .fallback_service(client)
}

async fn websocket(
    upgrade: WebSocketUpgrade,
    headers: HeaderMap,
    State(context): State<Arc<ServerContext>>,
) -> Response {
    if context.drain.is_draining() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "the server is shutting down\n",
        )
            .into_response();
    }
    let http = &context.metrics.http;
    if let Err(foreign) = origin::check(&headers, &context.config.http.allowed_origins) {
        http.refused(RefusedBecause::Origin);
        debug!(origin = %foreign.origin, "WebSocket refused for its origin");
        return (StatusCode::FORBIDDEN, format!("{foreign}\n")).into_response();
    }
    let Some(unjoined) = context.unjoined.try_acquire() else {
        http.refused(RefusedBecause::Unjoined);
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "too many signaling sockets are waiting to join; try again in a moment\n",
        )
            .into_response();
    };
    // Counted from the upgrade on, so a shutdown waits for a session that is about to start.
    let guard = context.drain.session();
    upgrade
        .max_frame_size(MAX_FRAME_BYTES)
        .max_message_size(MAX_FRAME_BYTES)
        .on_upgrade(move |socket| session::run(socket, context, guard, unjoined))
}

async fn counts(State(context): State<Arc<ServerContext>>) -> impl IntoResponse {
    Json(context.counts())
}

async fn metrics(State(context): State<Arc<ServerContext>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, metrics::CONTENT_TYPE)],
        context
            .metrics
            .render(context.registry.len(), &context.registry.layer_samples()),
    )
}
