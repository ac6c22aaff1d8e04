//! The API's errors: a status and `{"error": {"code": "...", "message": "..."}}`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// A refused API call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// The server has no token key, so no token can prove the caller is an operator.
    #[error(
        "the room service API needs a token key: set auth.token_key (SWITCHYARD_AUTH_TOKEN_KEY)"
    )]
    Disabled,
    /// No `Authorization: Bearer` header.
    #[error("an `Authorization: Bearer <token>` header with an admin token is required")]
    TokenMissing,
    /// The token does not verify.
    #[error("the bearer token is not valid: {0}")]
    TokenInvalid(String),
    /// The token verifies but does not grant `admin`.
    #[error("the bearer token does not grant `admin`")]
    NotAdmin,
    /// No such room.
    #[error("no room `{0}` is open")]
    UnknownRoom(String),
    /// No such participant in the room.
    #[error("no participant `{participant}` is in room `{room}`")]
    UnknownParticipant {
        /// The room.
        room: String,
        /// The participant asked for.
        participant: String,
    },
    /// The participant publishes no such track.
    #[error("participant `{participant}` publishes no track `{track}`")]
    UnknownTrack {
        /// The participant.
        participant: String,
        /// The track asked for.
        track: String,
    },
    /// The request body is not what the call takes.
    #[error("the request body: {0}")]
    InvalidBody(String),
    /// The invite asked for is out of bounds.
    #[error("the invite: {0}")]
    InvalidInvite(String),
    /// A participant's token for another room than the one the call names.
    #[error("the bearer token is not for this room: {0}")]
    WrongRoom(String),
    /// A participant's token that does not grant `invite`.
    #[error(
        "the bearer token does not grant `invite`: ask for an access link that lets you invite people"
    )]
    InviteNotGranted,
    /// An invite that would grant what the inviter's token does not.
    #[error("an invite may not grant `{0}`, which the bearer token does not grant")]
    GrantNotHeld(&'static str),
    /// The server is not a node of a cluster.
    #[error("this server is not a node of a cluster: set cluster.redis_url")]
    NotClustered,
    /// The cluster's Redis cannot be reached.
    #[error("the cluster's Redis cannot be reached: {0}")]
    ClusterUnavailable(String),
    /// The server failed.
    #[error("the server failed: {0}")]
    Internal(String),
}

impl ApiError {
    /// The status and the code it is answered with.
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::Disabled => (StatusCode::NOT_FOUND, "api_disabled"),
            ApiError::TokenMissing => (StatusCode::UNAUTHORIZED, "token_missing"),
            ApiError::TokenInvalid(_) => (StatusCode::UNAUTHORIZED, "token_invalid"),
            ApiError::NotAdmin => (StatusCode::FORBIDDEN, "not_admin"),
            ApiError::UnknownRoom(_) => (StatusCode::NOT_FOUND, "unknown_room"),
            ApiError::UnknownParticipant { .. } => (StatusCode::NOT_FOUND, "unknown_participant"),
            ApiError::UnknownTrack { .. } => (StatusCode::NOT_FOUND, "unknown_track"),
            ApiError::InvalidBody(_) => (StatusCode::BAD_REQUEST, "invalid_body"),
            ApiError::InvalidInvite(_) => (StatusCode::BAD_REQUEST, "invalid_invite"),
            ApiError::WrongRoom(_) => (StatusCode::FORBIDDEN, "token_wrong_room"),
            ApiError::InviteNotGranted => (StatusCode::FORBIDDEN, "invite_not_granted"),
            ApiError::GrantNotHeld(_) => (StatusCode::FORBIDDEN, "grant_not_held"),
            ApiError::NotClustered => (StatusCode::NOT_FOUND, "not_clustered"),
            ApiError::ClusterUnavailable(_) => {
                (StatusCode::SERVICE_UNAVAILABLE, "cluster_unavailable")
            }
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

/// The body of every error answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// A stable, machine-readable code (`token_missing`, `not_admin`, `unknown_room`, ...).
    pub code: String,
    /// An explanation for people.
    pub message: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let body = ErrorBody {
            error: ErrorDetail {
                code: code.to_owned(),
                message: self.to_string(),
            },
        };
        let mut response = (status, Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authentication_failures_are_401_and_a_missing_grant_403() {
        assert_eq!(
            ApiError::TokenMissing.status_and_code().0,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            ApiError::TokenInvalid("x".into()).status_and_code().0,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            ApiError::NotAdmin.status_and_code().0,
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            ApiError::Disabled.status_and_code().0,
            StatusCode::NOT_FOUND
        );
    }
}
