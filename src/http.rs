//! The HTTP surface: the browser client, the signaling WebSocket, health, counts and metrics;
//! the listener that serves them ([`serve`]) and what it lets in (connections by
//! [`crate::net::admission`], [`origin`], [`unjoined`]).
//!
//! With `http.internal_listen` set, the routes are split between two listeners
//! ([`Surface`]): operators' routes (`/metrics`, everything under `/api/` but a participant's
//! `POST /api/rooms/{room}/invite`) on the internal address only, the rest on the public one.

mod idle;
pub mod origin;
pub mod serve;
pub mod unjoined;

use std::sync::Arc;

use axum::extract::{State, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::{Json, Router};
use tracing::debug;

use crate::metrics::RefusedBecause;
use crate::signal::session::{self, MAX_FRAME_BYTES};
use crate::{ServerContext, metrics};

/// Which routes a listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Surface {
    /// Every route: the one listener of a server without an internal address.
    Everything,
    /// The public listener beside an internal one: the client, `/ws`, `/healthz` and a
    /// participant's `POST /api/rooms/{room}/invite`; `/metrics` and the rest of `/api/...`
    /// answer 404.
    Public,
    /// The internal listener: `/metrics`, `/api/...` (a participant's invite call included)
    /// and `/healthz`; anything else is 404.
    Internal,
}

/// Builds the router of a listener serving `surface`. On the public side every path no route
/// claims is a client file.
pub fn router(context: Arc<ServerContext>, surface: Surface) -> Router {
    // Both sides answer it: the container's health check and a proxy in front ask the public
    // address, a monitoring system the internal one, and it tells nobody anything.
    let health = Router::new().route("/healthz", get(|| async { "ok\n" }));
    match surface {
        Surface::Everything => health
            .merge(public_routes())
            .merge(internal_routes())
            .with_state(Arc::clone(&context))
            .fallback_service(context.config.client.router(context.cluster.is_some())),
        Surface::Public => health
            .merge(public_routes())
            // Explicit, so the client's files never answer for them either.
            .route("/metrics", any(not_found))
            .route("/api", any(not_found))
            .route("/api/", any(not_found))
            .route("/api/{*rest}", any(not_found))
            .with_state(Arc::clone(&context))
            .fallback_service(context.config.client.router(context.cluster.is_some())),
        Surface::Internal => health
            .merge(internal_routes())
            .merge(crate::api::participant_router())
            .with_state(context)
            .fallback(not_found),
    }
}

/// What browsers use: the signaling socket and the participants' invite links (the client's
/// files are the fallback).
fn public_routes() -> Router<Arc<ServerContext>> {
    Router::new()
        .route("/ws", get(websocket))
        .merge(crate::api::participant_router())
}

/// What operators and monitoring use: the metrics, the live counts (the same numbers as the
/// metrics' gauges, and read beside them) and the room service API.
fn internal_routes() -> Router<Arc<ServerContext>> {
    Router::new()
        .route("/api/counts", get(counts))
        .route("/api/cluster", get(crate::api::cluster::view))
        .route("/metrics", get(metrics))
        .merge(crate::api::router())
}

async fn not_found() -> impl IntoResponse {
    (StatusCode::NOT_FOUND, "not found\n")
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
