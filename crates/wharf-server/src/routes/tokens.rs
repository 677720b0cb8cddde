//! `/oauth/authorizations`: API tokens, in the shape of Heroku's OAuth authorizations. A token's
//! secret is shown once, when it is made; only its sha256 is stored. Revoking one ends it at once.

use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use wharf_core::api::{AccessToken, Authorization, AuthorizationCreate, ErrorBody, UserRef};
use wharf_store::{AccountRecord, TokenRecord};

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Body, Path};
use crate::AppState;

/// Longest description a token may have.
const MAX_DESCRIPTION: usize = 200;

fn to_api(token: TokenRecord, account: &AccountRecord, secret: Option<String>) -> Authorization {
    Authorization {
        access_token: secret.map(|token_secret| AccessToken {
            id: token.id.clone(),
            token: token_secret,
            expires_in: None,
        }),
        id: token.id,
        description: token.description,
        scope: vec!["global".to_owned()],
        user: UserRef {
            id: account.id.clone(),
            email: account.email.clone(),
        },
        updated_at: token.revoked_at.unwrap_or_else(|| token.created_at.clone()),
        created_at: token.created_at,
    }
}

/// The caller's live token `id`.
async fn live_token(state: &AppState, account: &AccountRecord, id: &str) -> ApiResult<TokenRecord> {
    state
        .store
        .list_tokens(&account.id)
        .await?
        .into_iter()
        .find(|t| t.id == id && t.revoked_at.is_none())
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "no live token `{}`: `wharf tokens` lists them",
                wharf_core::name::shown(id)
            ))
        })
}

/// The caller's live tokens, oldest first, without their secrets.
#[utoipa::path(get, path = "/oauth/authorizations", tag = "account",
    responses((status = 200, body = [Authorization]), crate::routes::CommonErrors))]
pub async fn list(
    State(state): State<AppState>,
    Extension(Caller(account)): Extension<Caller>,
) -> ApiResult<Json<Vec<Authorization>>> {
    let tokens = state.store.list_tokens(&account.id).await?;
    Ok(Json(
        tokens
            .into_iter()
            .filter(|t| t.revoked_at.is_none())
            .map(|t| to_api(t, &account, None))
            .collect(),
    ))
}

/// Makes a token for the caller's account. The answer carries its secret, once.
#[utoipa::path(post, path = "/oauth/authorizations", tag = "account", request_body = AuthorizationCreate,
    responses(
        (status = 201, description = "The token, with its secret in `access_token.token`", body = Authorization),
        (status = 422, description = "A description too long, a scope other than `global`, or `expires_in`", body = ErrorBody),
        crate::routes::CommonErrors,
    ))]
pub async fn create(
    State(state): State<AppState>,
    Extension(Caller(account)): Extension<Caller>,
    Body(body): Body<AuthorizationCreate>,
) -> ApiResult<(StatusCode, Json<Authorization>)> {
    let description = body.description.unwrap_or_default();
    let description = description.trim();
    if description.chars().count() > MAX_DESCRIPTION || description.chars().any(char::is_control) {
        return Err(ApiError::invalid_params(format!(
            "a token's description must be one line of at most {MAX_DESCRIPTION} characters"
        )));
    }
    if let Some(scope) = body.scope.filter(|s| s.iter().any(|s| s != "global")) {
        return Err(ApiError::invalid_params(format!(
            "unknown scope {scope:?}: wharf's tokens have one scope, `global`"
        )));
    }
    if body.expires_in.is_some() {
        return Err(ApiError::invalid_params(
            "wharf's tokens don't expire: leave out `expires_in`, and revoke the token when it is no longer needed",
        ));
    }
    let description = if description.is_empty() {
        "made with the API"
    } else {
        description
    };
    let token = state.store.create_token(&account.id, description).await?;
    tracing::info!(token = %token.record.id, "token created");
    Ok((
        StatusCode::CREATED,
        Json(to_api(token.record, &account, Some(token.secret))),
    ))
}

/// One of the caller's live tokens, without its secret.
#[utoipa::path(get, path = "/oauth/authorizations/{id}", tag = "account",
    params(("id" = String, Path, description = "The token's id")),
    responses((status = 200, body = Authorization), (status = 404, body = ErrorBody), crate::routes::CommonErrors))]
pub async fn info(
    State(state): State<AppState>,
    Extension(Caller(account)): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<Json<Authorization>> {
    let token = live_token(&state, &account, &id).await?;
    Ok(Json(to_api(token, &account, None)))
}

/// Revokes one of the caller's tokens: requests with it are refused from now on. The last live
/// token can't be revoked (nobody could log in again); make another first.
#[utoipa::path(delete, path = "/oauth/authorizations/{id}", tag = "account",
    params(("id" = String, Path, description = "The token's id")),
    responses(
        (status = 200, description = "Revoked", body = Authorization),
        (status = 404, body = ErrorBody),
        (status = 409, description = "The account's last live token", body = ErrorBody),
        crate::routes::CommonErrors,
    ))]
pub async fn revoke(
    State(state): State<AppState>,
    Extension(Caller(account)): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<Json<Authorization>> {
    live_token(&state, &account, &id).await?;
    let live = state
        .store
        .list_tokens(&account.id)
        .await?
        .iter()
        .filter(|t| t.revoked_at.is_none())
        .count();
    if live <= 1 {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            "this is the account's last live token: make another (`wharf tokens create`) before revoking it",
        ));
    }
    let token = state.store.revoke_token(&id).await?;
    tracing::info!(token = %token.id, "token revoked");
    Ok(Json(to_api(token, &account, None)))
}
