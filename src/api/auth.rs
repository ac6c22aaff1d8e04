//! The API's authentication: `Authorization: Bearer <JWT>` signed with the server's token key
//! and granting `admin`.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

use crate::ServerContext;
use crate::api::error::ApiError;
use crate::auth::AdminTokenError;

/// An operator whose token granted `admin`: taking one as a handler argument is what makes the
/// handler need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admin {
    /// The token's `sub`.
    pub identity: String,
}

impl FromRequestParts<Arc<ServerContext>> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        context: &Arc<ServerContext>,
    ) -> Result<Self, Self::Rejection> {
        let key = context.token_key.as_ref().ok_or(ApiError::Disabled)?;
        let token = bearer_token(&parts.headers)?;
        match key.verify_admin(token) {
            Ok(identity) => Ok(Admin { identity }),
            Err(AdminTokenError::NotAdmin) => Err(ApiError::NotAdmin),
            Err(AdminTokenError::Invalid(error)) => Err(ApiError::TokenInvalid(error.to_string())),
        }
    }
}

/// The token of an `Authorization: Bearer` header.
pub fn bearer_token(headers: &HeaderMap) -> Result<&str, ApiError> {
    let value = headers
        .get(AUTHORIZATION)
        .ok_or(ApiError::TokenMissing)?
        .to_str()
        .map_err(|_| ApiError::TokenInvalid("the header is not ASCII".to_owned()))?;
    let (scheme, token) = value
        .split_once(' ')
        .ok_or_else(|| ApiError::TokenInvalid("the header is not `Bearer <token>`".to_owned()))?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(ApiError::TokenInvalid(
            "the header is not `Bearer <token>`".to_owned(),
        ));
    }
    Ok(token.trim())
}

#[cfg(test)]
mod tests {
    use axum::http::Request;

    use super::*;

    fn headers(authorization: Option<&str>) -> HeaderMap {
        let mut request = Request::builder();
        if let Some(value) = authorization {
            request = request.header(AUTHORIZATION, value);
        }
        request.body(()).unwrap().into_parts().0.headers
    }

    #[test]
    fn only_a_bearer_header_with_a_token_is_read() {
        assert_eq!(bearer_token(&headers(Some("Bearer abc"))), Ok("abc"));
        assert_eq!(bearer_token(&headers(Some("bearer abc"))), Ok("abc"));
        assert_eq!(bearer_token(&headers(None)), Err(ApiError::TokenMissing));
        for bad in ["Basic abc", "Bearer", "Bearer  ", "abc"] {
            assert!(
                matches!(
                    bearer_token(&headers(Some(bad))),
                    Err(ApiError::TokenInvalid(_))
                ),
                "{bad}"
            );
        }
    }
}
