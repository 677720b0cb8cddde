//! `/apps/{app}/releases`: the app's release history, and each release's config snapshot.

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::Json;
use wharf_core::api::{self, ConfigVarsBody, ErrorBody, IdRef, NamedRef, ReleaseArtifact, UserRef};
use wharf_core::release::ReleaseStatus;
use wharf_store::{ReleaseRecord, ReleaseRef};

use crate::error::ApiResult;
use crate::extract;
use crate::AppState;

pub fn to_api(release: ReleaseRecord) -> api::Release {
    let artifacts = release
        .image_digest
        .iter()
        .map(|digest| ReleaseArtifact {
            kind: "oci-image".to_owned(),
            id: digest.clone(),
        })
        .collect();
    api::Release {
        id: release.id,
        version: release.version.get(),
        description: release.description,
        eligible_for_rollback: release.status == ReleaseStatus::Succeeded && !release.current,
        status: release.status,
        status_reason: release.status_reason,
        current: release.current,
        app: NamedRef {
            id: release.app_id,
            name: release.app_name,
        },
        slug: release.image_digest.map(|id| IdRef { id }),
        user: UserRef {
            id: release.user_id,
            email: release.user_email,
        },
        addon_plan_names: Vec::new(),
        artifacts,
        output_stream_url: None,
        created_at: release.created_at,
        updated_at: release.updated_at,
    }
}

/// The app's releases, oldest first (`Range: version ..; order=desc` for newest first).
#[utoipa::path(get, path = "/apps/{app}/releases", tag = "releases",
    params(
        ("app" = String, Path, description = "The app's id or name"),
        ("Range" = Option<String>, Header, description = "`version ..; max=15, order=desc` (also `id`)"),
    ),
    responses(
        (status = 200, description = "Every remaining release", body = [api::Release]),
        (status = 206, description = "A page of releases; `Next-Range` asks for the next one", body = [api::Release]),
        (status = 404, body = ErrorBody),
        (status = 422, description = "A non-numeric version in the Range", body = ErrorBody),
        crate::routes::CommonErrors,
    ))]
pub async fn list(
    State(state): State<AppState>,
    Path(app): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let range = extract::range(&headers, &["version", "id"])?;
    let app = state.store.app(&app).await?;
    let page = state.store.list_releases(&app.id, &range).await?;
    Ok(extract::page_response(&range, page, to_api))
}

/// The app's release `ident`, with a not-found message that names the app.
async fn find(
    state: &AppState,
    app: &wharf_store::AppRecord,
    ident: &str,
) -> ApiResult<ReleaseRecord> {
    match state
        .store
        .release(&app.id, &ReleaseRef::parse(ident))
        .await
    {
        Err(wharf_store::StoreError::NotFound {
            kind: "release", ..
        }) => Err(crate::error::ApiError::not_found(format!(
            "app `{}` has no release `{ident}`: `wharf releases -a {}` lists them",
            app.name, app.name
        ))),
        other => Ok(other?),
    }
}

/// One release, by id or version (`3` or `v3`).
#[utoipa::path(get, path = "/apps/{app}/releases/{release}", tag = "releases",
    params(
        ("app" = String, Path, description = "The app's id or name"),
        ("release" = String, Path, description = "The release's id or version"),
    ),
    responses((status = 200, body = api::Release), (status = 404, body = ErrorBody), crate::routes::CommonErrors))]
pub async fn info(
    State(state): State<AppState>,
    Path((app, release)): Path<(String, String)>,
) -> ApiResult<Json<api::Release>> {
    let app = state.store.app(&app).await?;
    let release = find(&state, &app, &release).await?;
    Ok(Json(to_api(release)))
}

/// The config vars a release runs with, as they were when it was made.
#[utoipa::path(get, path = "/apps/{app}/releases/{release}/config-vars", tag = "releases",
    params(
        ("app" = String, Path, description = "The app's id or name"),
        ("release" = String, Path, description = "The release's id or version"),
    ),
    responses((status = 200, body = BTreeMap<String, String>), (status = 404, body = ErrorBody), crate::routes::CommonErrors))]
pub async fn config_vars(
    State(state): State<AppState>,
    Path((app, release)): Path<(String, String)>,
) -> ApiResult<Json<ConfigVarsBody>> {
    let app = state.store.app(&app).await?;
    let release = find(&state, &app, &release).await?;
    Ok(Json(release.config.to_string_map()))
}
