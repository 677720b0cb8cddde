//! `/{app}.git/…`: git's smart HTTP protocol, so `git push <api>/<app>.git main` deploys (see
//! `crate::git`). git authenticates with Basic auth: any user name, an API token as the
//! password; a request without one gets the 401 and `WWW-Authenticate` that make git ask.

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::header::{CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use wharf_core::api::ErrorBody;

use crate::error::ApiError;
use crate::extract::Path;
use crate::git::BackendRequest;
use crate::AppState;

/// The git services wharf serves.
const SERVICES: [&str; 2] = ["git-upload-pack", "git-receive-pack"];

/// A git service wharf serves.
// The document shows this type; requests are checked against `SERVICES`, its twin.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // only its schema is used
#[schema(rename_all = "kebab-case")]
pub enum GitService {
    GitUploadPack,
    GitReceivePack,
}

/// The refs of the app's repository, for `git push` (`service=git-receive-pack`) or
/// `git clone`/`fetch` (`service=git-upload-pack`). Basic auth with an API token as the
/// password. wharf extension (Heroku serves git on its own host).
#[utoipa::path(get, path = "/{repo}/info/refs", tag = "git", security(("basic" = [])),
    params(
        ("repo" = String, Path, description = "`<app>.git`"),
        ("service" = inline(GitService), Query, description = "`git-receive-pack` to push, `git-upload-pack` to fetch"),
    ),
    responses(
        (status = 200, description = "git's ref advertisement for the service asked for", content(("application/x-git-receive-pack-advertisement"), ("application/x-git-upload-pack-advertisement"))),
        (status = 400, description = "No or an unknown `service` (wharf speaks git's smart protocol only), or a bad path", body = ErrorBody),
        (status = 401, description = "No valid token as the password", body = ErrorBody),
        (status = 404, description = "No such app", body = ErrorBody),
        (status = 406, body = ErrorBody),
        (status = 503, description = "git is not installed on the server", body = ErrorBody),
    ))]
pub async fn info_refs(
    State(state): State<AppState>,
    Path(repo): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let query = query.unwrap_or_default();
    serve(
        &state,
        &repo,
        "/info/refs",
        Method::GET,
        &query,
        &headers,
        Body::empty(),
    )
    .await
}

/// Takes a push: the pack and ref updates `git push` sends. A push of `main` or `master`
/// builds the pushed commit and deploys it; the build's output streams back as `remote:` lines,
/// and a failed build rejects the push.
#[utoipa::path(post, path = "/{repo}/git-receive-pack", tag = "git", security(("basic" = [])),
    params(("repo" = String, Path, description = "`<app>.git`")),
    request_body(content = inline(crate::routes::RawBytes), content_type = "application/x-git-receive-pack-request", description = "git's pack and ref updates"),
    responses(
        (status = 200, description = "git's answer, with the deploy's output on its side band", content_type = "application/x-git-receive-pack-result"),
        (status = 400, description = "A bad path", body = ErrorBody),
        (status = 401, description = "No valid token as the password", body = ErrorBody),
        (status = 404, description = "No such app", body = ErrorBody),
        (status = 406, body = ErrorBody),
        (status = 503, description = "git is not installed on the server", body = ErrorBody),
        (status = 415, description = "Not a git request body", body = ErrorBody),
    ))]
pub async fn receive_pack(
    State(state): State<AppState>,
    Path(repo): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    serve(
        &state,
        &repo,
        "/git-receive-pack",
        Method::POST,
        "",
        &headers,
        body,
    )
    .await
}

/// Serves a fetch or clone of the app's repository: what was last pushed.
#[utoipa::path(post, path = "/{repo}/git-upload-pack", tag = "git", security(("basic" = [])),
    params(("repo" = String, Path, description = "`<app>.git`")),
    request_body(content = inline(crate::routes::RawBytes), content_type = "application/x-git-upload-pack-request", description = "git's wants and haves"),
    responses(
        (status = 200, description = "git's answer", content_type = "application/x-git-upload-pack-result"),
        (status = 400, description = "A bad path", body = ErrorBody),
        (status = 401, description = "No valid token as the password", body = ErrorBody),
        (status = 404, description = "No such app", body = ErrorBody),
        (status = 406, body = ErrorBody),
        (status = 503, description = "git is not installed on the server", body = ErrorBody),
        (status = 415, description = "Not a git request body", body = ErrorBody),
    ))]
pub async fn upload_pack(
    State(state): State<AppState>,
    Path(repo): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    serve(
        &state,
        &repo,
        "/git-upload-pack",
        Method::POST,
        "",
        &headers,
        body,
    )
    .await
}

/// Checks the caller and the app, then hands the request to `git http-backend`.
async fn serve(
    state: &AppState,
    repo: &str,
    suffix: &str,
    method: Method,
    query: &str,
    headers: &HeaderMap,
    body: Body,
) -> Response {
    match try_serve(state, repo, suffix, method, query, headers, body).await {
        Ok(response) => response,
        Err(e) if e.status == StatusCode::UNAUTHORIZED => {
            let mut response = e.into_response();
            response.headers_mut().insert(
                WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"wharf\""),
            );
            response
        }
        Err(e) => e.into_response(),
    }
}

async fn try_serve(
    state: &AppState,
    repo: &str,
    suffix: &str,
    method: Method,
    query: &str,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let Some(token) = crate::auth::bearer(headers)? else {
        return Err(ApiError::unauthorized(
            "git needs an API token as the password (any user name): run `wharf git:remote`, \
             which sets up git's credentials, or see `wharf login`",
        ));
    };
    let Some((_, account)) = state.store.authenticate(&token).await? else {
        return Err(ApiError::unauthorized(
            "the API token is unknown or revoked: log in again (`wharf login`)",
        ));
    };
    let name = repo.strip_suffix(".git").unwrap_or(repo);
    let app = state.store.app(name).await?;
    if suffix == "/info/refs" {
        let service = query
            .split('&')
            .find_map(|pair| pair.strip_prefix("service="))
            .unwrap_or_default();
        if !SERVICES.contains(&service) {
            return Err(ApiError::bad_request(
                "wharf serves git's smart HTTP protocol only: ask for ?service=git-receive-pack \
                 or ?service=git-upload-pack (git 1.6.6 or newer does)",
            ));
        }
    }
    let text = |name: HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    let content_type = text(CONTENT_TYPE);
    if method == Method::POST {
        let expected = format!("application/x{}-request", suffix.replace('/', "-"));
        if content_type != Some(expected.as_str()) {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                format!("a git request body must be `Content-Type: {expected}`"),
            ));
        }
    }
    let content_length = text(CONTENT_LENGTH).and_then(|v| v.parse().ok());
    let request = BackendRequest {
        app_id: &app.id,
        app_name: app.name.as_str(),
        suffix,
        method: method.as_str(),
        query,
        content_type,
        content_length,
        content_encoding: text(CONTENT_ENCODING),
        git_protocol: text(HeaderName::from_static("git-protocol")),
        user: &account.email,
        token: &token,
    };
    let (head, stream) = state
        .git
        .serve(request, body.into_data_stream())
        .await
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "git is not installed on the wharf server: install it there (e.g. `apt-get install git`) and push again",
            ),
            _ => ApiError::internal(e),
        })?;
    let mut response = Body::from_stream(stream).into_response();
    *response.status_mut() = StatusCode::from_u16(head.status).map_err(ApiError::internal)?;
    for (name, value) in head.headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::try_from(name.as_str()),
            HeaderValue::try_from(value.as_str()),
        ) {
            response.headers_mut().append(name, value);
        }
    }
    Ok(response)
}
