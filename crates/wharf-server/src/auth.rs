//! Authentication: every route but `/healthz` needs a live API token, sent as
//! `Authorization: Bearer <token>` (or as the password of Basic auth, which is what git and
//! netrc-based clients send).

use axum::extract::{Request, State};
use axum::http::header::{ACCEPT, AUTHORIZATION};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use base64::Engine;
use wharf_store::AccountRecord;

use crate::error::ApiError;
use crate::AppState;

/// The account a request is made as; put in the request's extensions by [`require_token`].
#[derive(Debug, Clone)]
pub struct Caller(pub AccountRecord);

/// Why an `Authorization` header can't be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BadAuthorization {
    NotText,
    NotBase64,
    Scheme,
}

/// The token an `Authorization` header carries, if any: a Bearer token, or the password of
/// Basic credentials.
pub(crate) fn credential(headers: &HeaderMap) -> Result<Option<String>, BadAuthorization> {
    let Some(value) = headers.get(AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value.to_str().map_err(|_| BadAuthorization::NotText)?;
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") && !rest.is_empty() {
        return Ok(Some(rest.to_owned()));
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or(BadAuthorization::NotBase64)?;
        let password = decoded.split_once(':').map(|(_, p)| p).unwrap_or_default();
        if !password.is_empty() {
            return Ok(Some(password.to_owned()));
        }
    }
    Err(BadAuthorization::Scheme)
}

/// The token a request carries, if any.
pub(crate) fn bearer(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    credential(headers).map_err(|bad| match bad {
        BadAuthorization::NotText => {
            ApiError::unauthorized("the Authorization header is not valid text")
        }
        BadAuthorization::NotBase64 => {
            ApiError::unauthorized("the Basic credentials are not valid base64")
        }
        BadAuthorization::Scheme => ApiError::unauthorized(
            "the Authorization header must be `Bearer <token>`: run `wharf login` or set WHARF_TOKEN",
        ),
    })
}

/// Middleware: rejects requests without a live token and records the caller.
pub async fn require_token(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let Some(token) = bearer(req.headers())? else {
        return Err(ApiError::unauthorized(
            "this request needs an API token: send `Authorization: Bearer <token>` (run `wharf login`)",
        ));
    };
    let Some((_, account)) = state.store.authenticate(&token).await? else {
        return Err(ApiError::unauthorized(
            "the API token is unknown or revoked: run `wharf login` with a valid token",
        ));
    };
    req.extensions_mut().insert(Caller(account));
    Ok(next.run(req).await)
}

/// Middleware: a client that asks for Heroku's media type must ask for version 3 (`3`, `3.sdk`…).
pub async fn check_accept(req: Request, next: Next) -> Result<Response, ApiError> {
    for value in req.headers().get_all(ACCEPT) {
        let Ok(value) = value.to_str() else { continue };
        for media in value.split(',') {
            let mut parts = media.split(';').map(str::trim);
            if !parts
                .next()
                .unwrap_or_default()
                .eq_ignore_ascii_case("application/vnd.heroku+json")
            {
                continue;
            }
            let version = parts.find_map(|p| p.strip_prefix("version="));
            match version {
                Some(v) if v == "3" || v.starts_with("3.") => {}
                Some(v) => {
                    return Err(ApiError::new(
                        StatusCode::NOT_ACCEPTABLE,
                        "not_acceptable",
                        format!("API version `{v}` is not served: send `Accept: application/vnd.heroku+json; version=3`"),
                    ))
                }
                None => {
                    return Err(ApiError::new(
                        StatusCode::NOT_ACCEPTABLE,
                        "not_acceptable",
                        "the Accept header names no API version: send `Accept: application/vnd.heroku+json; version=3`",
                    ))
                }
            }
        }
    }
    Ok(next.run(req).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(auth: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, auth.parse().unwrap());
        h
    }

    #[test]
    fn reads_bearer_and_basic_tokens() {
        assert_eq!(
            bearer(&headers("Bearer abc")).unwrap().as_deref(),
            Some("abc")
        );
        assert_eq!(
            bearer(&headers("bearer  abc ")).unwrap().as_deref(),
            Some("abc")
        );
        // base64("git:tok")
        assert_eq!(
            bearer(&headers("Basic Z2l0OnRvaw==")).unwrap().as_deref(),
            Some("tok")
        );
        assert_eq!(bearer(&HeaderMap::new()).unwrap(), None);
        assert!(bearer(&headers("Token abc")).is_err());
        assert!(bearer(&headers("Basic !!!")).is_err());
    }
}
