//! `/apps/{app}/builds`: start a build of an uploaded source, list builds, show one; and
//! `/builds/{id}/output`, the signed stream of a build's output.

use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::{Extension, Json};
use wharf_core::api::{self, BuildCreate, BuildSource, ErrorBody, IdRef, UserRef};
use wharf_store::{BuildRecord, StoreError};

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{self, Body as JsonBody, Path, Query};
use crate::routes::sources::{source_id_from_url, Signature};
use crate::routes::STACK;
use crate::AppState;

/// How long a build's `output_stream_url` stays valid.
const OUTPUT_URL_TTL: Duration = Duration::from_secs(24 * 60 * 60);

fn output_path(id: &str) -> String {
    format!("/builds/{id}/output")
}

pub fn to_api(state: &AppState, build: BuildRecord) -> api::Build {
    let output_stream_url = state.signed_url("GET", &output_path(&build.id), OUTPUT_URL_TTL);
    api::Build {
        output_stream_url,
        app: IdRef { id: build.app_id },
        status: build.status.heroku().to_owned(),
        phase: build.status,
        source_blob: BuildSource {
            checksum: build.source_sha256.map(|s| format!("SHA256:{s}")),
            url: None,
            version: build.source_version,
            version_description: None,
        },
        release: build.release_id.map(|id| IdRef { id }),
        slug: build.image_digest.map(|id| IdRef { id }),
        buildpacks: Vec::new(),
        stack: STACK.to_owned(),
        user: UserRef {
            id: build.user_id,
            email: build.user_email,
        },
        provider: build.provider,
        runtime: build.runtime,
        process_types: build.process_types,
        error: build.error,
        id: build.id,
        created_at: whole_seconds(&build.created_at),
        updated_at: whole_seconds(&build.updated_at),
    }
}

/// A stored timestamp as the API shows every timestamp: whole seconds (`2026-11-24T22:13:28Z`).
fn whole_seconds(stored: &str) -> String {
    match stored.get(..19) {
        Some(seconds) if stored.len() > 20 => format!("{seconds}Z"),
        _ => stored.to_owned(),
    }
}

/// Builds an uploaded source; the build queues, and its output streams at `output_stream_url`.
/// A successful build makes the app's next release.
#[utoipa::path(post, path = "/apps/{app}/builds", tag = "builds", request_body = BuildCreate,
    params(("app" = String, Path, description = "The app's id or name")),
    responses(
        (status = 201, body = api::Build),
        (status = 404, body = ErrorBody),
        (status = 422, description = "No usable source: an unknown URL or checksum, or one not uploaded yet", body = ErrorBody),
        crate::routes::CommonErrors,
    ))]
pub async fn create(
    State(state): State<AppState>,
    Extension(Caller(account)): Extension<Caller>,
    Path(app): Path<String>,
    JsonBody(body): JsonBody<BuildCreate>,
) -> ApiResult<(StatusCode, Json<api::Build>)> {
    let app = state.store.app(&app).await?;
    let source = match (&body.source_blob.url, &body.source_blob.checksum) {
        (Some(url), _) => {
            let id = source_id_from_url(url).ok_or_else(|| {
                ApiError::invalid_params(format!(
                    "source_blob.url `{url}` is not a source of this server: upload with POST /sources and pass its get_url"
                ))
            })?;
            match state.store.source(&id).await {
                Err(StoreError::NotFound { .. }) => {
                    return Err(ApiError::invalid_params(format!("source `{id}` does not exist: upload with POST /sources")))
                }
                other => other?,
            }
        }
        (None, Some(checksum)) => {
            let hex = checksum
                .strip_prefix("SHA256:")
                .or_else(|| checksum.strip_prefix("sha256:"))
                .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
                .ok_or_else(|| ApiError::invalid_params(format!("source_blob.checksum `{checksum}` must look like `SHA256:<64 hex digits>`")))?;
            state.store.source_by_sha256(&hex.to_ascii_lowercase()).await?.ok_or_else(|| {
                ApiError::invalid_params(format!("no uploaded source has checksum `{checksum}`: upload it with POST /sources first"))
            })?
        }
        (None, None) => {
            return Err(ApiError::invalid_params(
                "source_blob needs a `url` (a get_url from POST /sources) or a `checksum` (`SHA256:<hex>`)",
            ))
        }
    };
    if source.sha256.is_none() {
        return Err(ApiError::invalid_params(format!(
            "source `{}` has no archive yet: PUT it to the source's put_url first",
            source.id
        )));
    }
    let build = state
        .store
        .create_build(
            &app.id,
            &source.id,
            body.source_blob.version.as_deref(),
            &account.id,
        )
        .await?;
    state
        .control
        .builds()
        .enqueue(build.clone(), app.name.to_string())
        .await
        .map_err(ApiError::internal)?;
    tracing::info!(app = %app.name, build = %build.id, "build queued");
    Ok((StatusCode::CREATED, Json(to_api(&state, build))))
}

extract::range_header!(
    /// The `Range` of build lists.
    BuildsRange,
    ["created_at", "id"],
    "`created_at ..; max=200` (also `id`)"
);

/// The app's builds, oldest first (`Range: created_at ..; order=desc` for newest first).
#[utoipa::path(get, path = "/apps/{app}/builds", tag = "builds",
    params(
        ("app" = String, Path, description = "The app's id or name"),
        BuildsRange,
    ),
    responses(
        (status = 200, description = "Every remaining build", body = [api::Build]),
        (status = 206, description = "A page of builds; `Next-Range` asks for the next one", body = [api::Build]),
        (status = 404, body = ErrorBody),
        crate::routes::CommonErrors,
    ))]
pub async fn list(
    State(state): State<AppState>,
    Path(app): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let range = extract::range(&headers, BuildsRange::FIELDS)?;
    let app = state.store.app(&app).await?;
    let page = state.store.list_builds(&app.id, &range).await?;
    Ok(extract::page_response(&range, page, |b| to_api(&state, b)))
}

/// One build of the app.
#[utoipa::path(get, path = "/apps/{app}/builds/{build}", tag = "builds",
    params(
        ("app" = String, Path, description = "The app's id or name"),
        ("build" = String, Path, description = "The build's id"),
    ),
    responses((status = 200, body = api::Build), (status = 404, body = ErrorBody), crate::routes::CommonErrors))]
pub async fn info(
    State(state): State<AppState>,
    Path((app, build)): Path<(String, String)>,
) -> ApiResult<Json<api::Build>> {
    let app = state.store.app(&app).await?;
    let found = match state.store.build(&build).await {
        Ok(found) if found.app_id == app.id => found,
        Ok(_) | Err(StoreError::NotFound { .. }) => {
            return Err(ApiError::not_found(format!(
                "app `{}` has no build `{build}`",
                app.name
            )))
        }
        Err(e) => return Err(e.into()),
    };
    Ok(Json(to_api(&state, found)))
}

/// The build's output as plain text: everything so far, then, while the build runs, the rest as
/// it happens. Needs the signed `output_stream_url`, no token.
#[utoipa::path(get, path = "/builds/{id}/output", tag = "builds", security(()),
    params(("id" = String, Path, description = "The build's id"), Signature),
    responses(
        (status = 200, description = "The output, streamed", content_type = "text/plain", body = String),
        (status = 404, body = ErrorBody),
        crate::routes::SignedErrors,
    ))]
pub async fn output(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(signature): Query<Signature>,
) -> ApiResult<Response> {
    signature.check(&state, "GET", &output_path(&id))?;
    crate::routes::output_response(state.control.builds().logs(), &id, "build").await
}
