//! `/apps/{app}/releases`: the app's release history, each release's config snapshot, rollback
//! and releases of an existing image (promotion), what changed between two releases; and
//! `/releases/{id}/output`, the signed stream of a release phase's output.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use wharf_core::api::{
    self, Change, ConfigVarsBody, ErrorBody, IdRef, KeyChange, NamedRef, ReleaseArtifact,
    ReleaseCreate, ReleaseDiff, UserRef,
};
use wharf_core::release::{ReleaseStatus, RELEASE_PHASE_TYPE};
use wharf_image::Digest;
use wharf_store::{ReleaseImage, ReleaseRecord, ReleaseRef};

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{self, Body as JsonBody, Path, Query};
use crate::routes::sources::Signature;
use crate::AppState;

/// How long a release's `output_stream_url` stays valid.
const OUTPUT_URL_TTL: Duration = Duration::from_secs(24 * 60 * 60);

fn output_path(id: &str) -> String {
    format!("/releases/{id}/output")
}

pub fn to_api(state: &AppState, release: ReleaseRecord) -> api::Release {
    // Only a release with a release phase has output.
    let output_stream_url = release
        .process_types
        .contains_key(RELEASE_PHASE_TYPE)
        .then(|| state.signed_url("GET", &output_path(&release.id), OUTPUT_URL_TTL));
    // What the image says it is built on (host-bound images say nothing).
    let labels = release
        .image_digest
        .as_deref()
        .and_then(|d| Digest::parse(d).ok())
        .and_then(|d| state.control.images().image(&d).ok())
        .map(|image| image.labels());
    let run_image = labels
        .as_ref()
        .and_then(|l| l.get(wharf_stack::LABEL_RUN_IMAGE).cloned());
    let stack = labels.map(|l| {
        crate::routes::stack(
            l.get(wharf_stack::LABEL_NAME)
                .filter(|_| run_image.is_some())
                .map_or(crate::routes::STACK, String::as_str),
        )
    });
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
        // A release can be rolled back to if it ran, isn't current, and its image is still
        // stored (garbage collection may have taken it).
        eligible_for_rollback: release.status == ReleaseStatus::Succeeded
            && !release.current
            && release
                .image_digest
                .as_deref()
                .and_then(|d| Digest::parse(d).ok())
                .is_some_and(|d| state.control.images().has_blob(&d)),
        status: release.status,
        status_reason: release.status_reason,
        current: release.current,
        app: NamedRef {
            id: release.app_id,
            name: release.app_name,
        },
        slug: release.image_digest.map(|id| IdRef { id }),
        stack,
        portable: run_image.is_some(),
        run_image,
        user: UserRef {
            id: release.user_id,
            email: release.user_email,
        },
        addon_plan_names: Vec::new(),
        artifacts,
        output_stream_url,
        created_at: release.created_at,
        updated_at: release.updated_at,
    }
}

extract::range_header!(
    /// The `Range` of release lists.
    ReleasesRange,
    ["version", "id"],
    "`version ..; max=15, order=desc` (also `id`)"
);

/// The app's releases, oldest first (`Range: version ..; order=desc` for newest first).
#[utoipa::path(get, path = "/apps/{app}/releases", tag = "releases",
    params(
        ("app" = String, Path, description = "The app's id or name"),
        ReleasesRange,
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
    let range = extract::range(&headers, ReleasesRange::FIELDS)?;
    let app = state.store.app(&app).await?;
    let page = state.store.list_releases(&app.id, &range).await?;
    Ok(extract::page_response(&range, page, |r| to_api(&state, r)))
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
    Ok(Json(to_api(&state, release)))
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

/// Rolls back (`{"release": "3"}`: a new release with v3's image and config, which become the
/// app's config too) or releases an image another release runs (`{"slug": "<digest>"}`, with
/// the app's own config: promotion). Either way nothing is built; the new release goes live the
/// zero-downtime way, after its release phase if it has one.
#[utoipa::path(post, path = "/apps/{app}/releases", tag = "releases", request_body = ReleaseCreate,
    params(("app" = String, Path, description = "The app's id or name")),
    responses(
        (status = 201, description = "The new release (`pending` while its release phase runs)", body = api::Release),
        (status = 404, body = ErrorBody),
        (status = 409, description = "Another release is in its release phase", body = ErrorBody),
        (status = 422, description = "Neither or both of `release` and `slug`; a release that failed, is current or whose image is gone; an unknown image", body = ErrorBody),
        crate::routes::CommonErrors,
    ))]
pub async fn create(
    State(state): State<AppState>,
    Extension(Caller(account)): Extension<Caller>,
    Path(app): Path<String>,
    JsonBody(body): JsonBody<ReleaseCreate>,
) -> ApiResult<(StatusCode, Json<api::Release>)> {
    let app = state.store.app(&app).await?;
    // Made and put into effect in a task of its own: a client that goes away after the release
    // is stored must not leave it unlaunched (a pending one would hold the app).
    let task_state = state.clone();
    let task =
        tokio::spawn(async move { make_release(&task_state, &app, &account.id, body).await });
    let release = task.await.map_err(ApiError::internal)??;
    Ok((StatusCode::CREATED, Json(to_api(&state, release))))
}

async fn make_release(
    state: &AppState,
    app: &wharf_store::AppRecord,
    account_id: &str,
    body: ReleaseCreate,
) -> ApiResult<ReleaseRecord> {
    // Images in use can't be collected while a release that uses them is being made.
    let _no_gc = state.control.hold_images().await;
    let release =
        match (body.release, body.slug) {
            (Some(target), None) => {
                let target = find(state, app, &target).await?;
                if let Some(digest) = &target.image_digest {
                    check_image(state, digest, &format!("v{}'s", target.version.get()))?;
                }
                state
                    .store
                    .rollback(&app.id, account_id, &ReleaseRef::Id(target.id))
                    .await?
            }
            (None, Some(slug)) => {
                let digest = slug
                    .trim()
                    .strip_prefix("sha256:")
                    .map(|hex| format!("sha256:{hex}"));
                let digest = match digest {
                    Some(d) if Digest::parse(&d).is_ok() => d,
                    _ => {
                        return Err(ApiError::invalid_params(format!(
                            "slug `{}` is not an image digest: use a release's `slug.id` \
                         (`sha256:` and 64 hex digits; `wharf releases info -a APP` shows it)",
                            wharf_core::name::shown(&slug)
                        )))
                    }
                };
                check_image(state, &digest, "the")?;
                let process_types =
                    state
                        .store
                        .image_process_types(&digest)
                        .await?
                        .ok_or_else(|| {
                            ApiError::invalid_params(format!(
                                "no release runs image {digest}: release an image that some app's \
                         release already runs"
                            ))
                        })?;
                let description = match body.description {
                    Some(d) if !d.trim().is_empty() => d.trim().chars().take(200).collect(),
                    _ => format!("Deploy {}", &digest[7..19]),
                };
                state
                    .store
                    .release_image(
                        &app.id,
                        account_id,
                        &ReleaseImage {
                            digest,
                            process_types,
                        },
                        &description,
                    )
                    .await?
            }
            (None, None) => return Err(ApiError::invalid_params(
                "say what to release: `release` (a version or id, to roll back to it) or `slug` \
                 (an image digest, to release that image)",
            )),
            (Some(_), Some(_)) => {
                return Err(ApiError::invalid_params(
                    "give `release` (roll back) or `slug` (release an image), not both",
                ))
            }
        };
    drop(_no_gc);
    tracing::info!(app = %app.name, release = %release.version, description = %release.description, "release made");
    state
        .control
        .after(wharf_control::Change::Released(&release))
        .await;
    Ok(release)
}

/// Refuses a release whose image is no longer in the image store (collected by `wharf gc`).
fn check_image(state: &AppState, digest: &str, whose: &str) -> ApiResult<()> {
    let present = Digest::parse(digest)
        .ok()
        .is_some_and(|d| state.control.images().is_complete(&d).unwrap_or(false));
    if present {
        Ok(())
    } else {
        Err(ApiError::invalid_params(format!(
            "{whose} image {digest} is no longer stored (garbage-collected, or never built \
             here): deploy the source again instead"
        )))
    }
}

/// Whether to show config values in a diff.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DiffQuery {
    /// Show config values (otherwise only which keys changed).
    #[serde(default)]
    pub show_values: bool,
}

/// What changed from release `from` to release `to`: image, provider, process types and
/// config vars (keys only unless `show_values=true`). wharf extension.
#[utoipa::path(get, path = "/apps/{app}/releases/{from}/diff/{to}", tag = "releases",
    params(
        ("app" = String, Path, description = "The app's id or name"),
        ("from" = String, Path, description = "The earlier release's id or version"),
        ("to" = String, Path, description = "The later release's id or version"),
        DiffQuery,
    ),
    responses((status = 200, body = ReleaseDiff), (status = 404, body = ErrorBody), crate::routes::CommonErrors))]
pub async fn diff(
    State(state): State<AppState>,
    Path((app, from, to)): Path<(String, String, String)>,
    Query(query): Query<DiffQuery>,
) -> ApiResult<Json<ReleaseDiff>> {
    let app = state.store.app(&app).await?;
    let from = find(&state, &app, &from).await?;
    let to = find(&state, &app, &to).await?;
    let provider = |digest: Option<String>| {
        let store = state.store.clone();
        async move {
            match digest {
                Some(d) => store.image_provider(&d).await,
                None => Ok(None),
            }
        }
    };
    let from_provider = provider(from.image_digest.clone()).await?;
    let to_provider = provider(to.image_digest.clone()).await?;
    Ok(Json(ReleaseDiff {
        from: from.version.get(),
        to: to.version.get(),
        image: change(from.image_digest.clone(), to.image_digest.clone()),
        provider: change(from_provider, to_provider),
        process_types: key_changes(&from.process_types, &to.process_types, true),
        config_vars: key_changes(
            &from.config.to_string_map(),
            &to.config.to_string_map(),
            query.show_values,
        ),
    }))
}

fn change(from: Option<String>, to: Option<String>) -> Change {
    Change {
        changed: from != to,
        from,
        to,
    }
}

/// The keys added, removed or changed from `from` to `to`, in key order; values only if `show`.
fn key_changes(
    from: &BTreeMap<String, String>,
    to: &BTreeMap<String, String>,
    show: bool,
) -> Vec<KeyChange> {
    let keys: BTreeSet<&String> = from.keys().chain(to.keys()).collect();
    keys.into_iter()
        .filter_map(|key| {
            let (old, new) = (from.get(key), to.get(key));
            let change = match (old, new) {
                (None, Some(_)) => "added",
                (Some(_), None) => "removed",
                (Some(a), Some(b)) if a != b => "changed",
                _ => return None,
            };
            let shown = |v: Option<&String>| if show { v.cloned() } else { None };
            Some(KeyChange {
                key: key.clone(),
                change: change.to_owned(),
                from: shown(old),
                to: shown(new),
            })
        })
        .collect()
}

/// The release phase's output as plain text: everything so far, then, while it runs, the rest
/// as it happens. Needs the signed `output_stream_url`, no token.
#[utoipa::path(get, path = "/releases/{id}/output", tag = "releases", security(()),
    params(("id" = String, Path, description = "The release's id"), Signature),
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
    crate::routes::output_response(state.control.release_outputs(), &id, "release").await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn key_changes_name_each_kind_and_hide_values_unless_asked() {
        let from = map(&[("A", "1"), ("B", "2"), ("C", "3")]);
        let to = map(&[("B", "2"), ("C", "4"), ("D", "5")]);
        let hidden = key_changes(&from, &to, false);
        let kinds: Vec<(&str, &str)> = hidden
            .iter()
            .map(|c| (c.key.as_str(), c.change.as_str()))
            .collect();
        assert_eq!(kinds, [("A", "removed"), ("C", "changed"), ("D", "added")]);
        assert!(hidden.iter().all(|c| c.from.is_none() && c.to.is_none()));
        let shown = key_changes(&from, &to, true);
        assert_eq!(shown[1].from.as_deref(), Some("3"));
        assert_eq!(shown[1].to.as_deref(), Some("4"));
    }
}

/// Rebases the app's current release onto its stack's newest run image (as Cloud Native
/// Buildpacks' `pack rebase`): a new release whose image has the new run image's layers below
/// the app's own, unchanged, and the current release's config. Nothing is built; the release
/// goes live the zero-downtime way. wharf extension.
#[utoipa::path(post, path = "/apps/{app}/rebase", tag = "releases",
    params(("app" = String, Path, description = "The app's id or name")),
    responses(
        (status = 201, description = "The new release", body = api::Release),
        (status = 404, body = ErrorBody),
        (status = 409, description = "The release is on the newest run image already, or another release is in its release phase", body = ErrorBody),
        (status = 422, description = "The app has no release, or its release is not on a stack (or its stack is gone)", body = ErrorBody),
        crate::routes::CommonErrors,
    ))]
pub async fn rebase(
    State(state): State<AppState>,
    Extension(Caller(account)): Extension<Caller>,
    Path(app): Path<String>,
) -> ApiResult<(StatusCode, Json<api::Release>)> {
    let app = state.store.app(&app).await?;
    // In a task of its own, as `create`: a stored release is always launched.
    let task_state = state.clone();
    let task = tokio::spawn(async move { rebase_release(&task_state, &app, &account.id).await });
    let release = task.await.map_err(ApiError::internal)??;
    Ok((StatusCode::CREATED, Json(to_api(&state, release))))
}

async fn rebase_release(
    state: &AppState,
    app: &wharf_store::AppRecord,
    account_id: &str,
) -> ApiResult<ReleaseRecord> {
    let _no_gc = state.control.hold_images().await;
    let current = state.store.current_release(&app.id).await?;
    let Some((version, digest)) = current.and_then(|r| Some((r.version, r.image_digest?))) else {
        return Err(ApiError::invalid_params(format!(
            "{} has no release with an image yet: deploy it first",
            app.name
        )));
    };
    let image = Digest::parse(&digest).map_err(ApiError::internal)?;
    let images = state.control.images().clone();
    let rebased = tokio::task::spawn_blocking(move || wharf_stack::rebase(&images, &image))
        .await
        .map_err(ApiError::internal)?
        .map_err(|e| {
            use wharf_stack::RebaseError;
            let message = format!("v{version}: {e}");
            match e {
                RebaseError::UpToDate { .. } => {
                    ApiError::new(StatusCode::CONFLICT, "conflict", message)
                }
                RebaseError::Image(e) => ApiError::internal(e),
                _ => ApiError::invalid_params(message),
            }
        })?;
    let process_types = state
        .store
        .image_process_types(&digest)
        .await?
        .ok_or_else(|| ApiError::internal("the current release's image has no process types"))?;
    let release = state
        .store
        .release_image(
            &app.id,
            account_id,
            &ReleaseImage {
                digest: rebased.image.manifest.to_string(),
                process_types,
            },
            &format!(
                "Rebase onto {} run image {}",
                rebased.stack,
                rebased.to.short()
            ),
        )
        .await?;
    drop(_no_gc);
    tracing::info!(app = %app.name, release = %release.version, from = %rebased.from, to = %rebased.to, "rebased");
    state
        .control
        .after(wharf_control::Change::Released(&release))
        .await;
    Ok(release)
}

/// The release as Kubernetes objects (`current` for the app's current release): per process
/// type of the formation a Deployment, a Service for web, the config as an immutable Secret, a
/// Job for the release phase, an Ingress with `WHARF_K8S_INGRESS_CLASS`; the image by digest
/// from where a cluster's nodes pull it. JSON, or YAML (one document per object) when the
/// client accepts `application/yaml` and not JSON.
#[utoipa::path(get, path = "/apps/{app}/releases/{release}/manifests", tag = "releases",
    params(
        ("app" = String, Path, description = "The app's id or name"),
        ("release" = String, Path, description = "The release's id or version, or `current`"),
    ),
    responses(
        (status = 200, body = api::ReleaseManifests, description = "The objects; as YAML documents with `Accept: application/yaml`"),
        (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody, description = "A release without an image, or on the host-bound stack; a server whose registry endpoint has no address a cluster can use"),
        (status = 502, body = ErrorBody, description = "The image could not be pushed to `WHARF_REGISTRY_URL`"),
        crate::routes::CommonErrors,
    ))]
pub async fn manifests(
    State(state): State<AppState>,
    Path((app, release)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let app = state.store.app(&app).await?;
    let release = if release == "current" {
        state.store.current_release(&app.id).await?.ok_or_else(|| {
            ApiError::invalid_params(format!(
                "`{}` has no release yet: deploy it first (`wharf deploy -a {}`)",
                app.name, app.name
            ))
        })?
    } else {
        find(&state, &app, &release).await?
    };
    let version = release.version.get();
    let desired = state
        .control
        .desired(&app, &release)
        .await?
        .ok_or_else(|| {
            ApiError::invalid_params(format!(
                "release v{version} has no image: only a release made from a build runs on \
             Kubernetes (deploy the app: `wharf deploy -a {}`)",
                app.name
            ))
        })?;
    let source = state.node_images.as_ref().map_err(|why| {
        ApiError::invalid_params(format!("the cluster can't pull release images: {why}"))
    })?;
    let image = source
        .pullable(&app.id, app.name.as_str(), version, &desired.release.image)
        .await
        .map_err(|e| {
            ApiError::new(
                StatusCode::BAD_GATEWAY,
                "bad_gateway",
                format!(
                    "release v{version}'s image can't be made pullable: {}",
                    wharf_core::error_chain(&e)
                ),
            )
        })?;
    let mut hostnames = vec![state.control.hostname(app.name.as_str())];
    hostnames.extend(
        state
            .store
            .domains(&app.id)
            .await?
            .into_iter()
            .map(|d| d.hostname.to_string()),
    );
    let made = wharf_k8s::manifests(&wharf_k8s::Input {
        app: &desired,
        image: &image,
        release_command: release
            .process_types
            .get(RELEASE_PHASE_TYPE)
            .map(String::as_str),
        hostnames: &hostnames,
        settings: &state.k8s,
    })
    .map_err(|e| ApiError::invalid_params(e.to_string()))?;
    let objects = made.objects();
    if wants_yaml(&headers) {
        let text = wharf_k8s::to_yaml(&objects).map_err(ApiError::internal)?;
        return Response::builder()
            .header(axum::http::header::CONTENT_TYPE, "application/yaml")
            .body(axum::body::Body::from(text))
            .map_err(ApiError::internal);
    }
    let objects = objects
        .iter()
        .map(serde_json::to_value)
        .collect::<Result<Vec<_>, _>>()
        .map_err(ApiError::internal)?;
    Ok(Json(api::ReleaseManifests {
        release: api::DynoRelease {
            id: release.id.clone(),
            version,
        },
        objects,
    })
    .into_response())
}

/// Whether the client asked for YAML rather than JSON.
fn wants_yaml(headers: &HeaderMap) -> bool {
    let accept = headers
        .get_all(axum::http::header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join(",");
    let yaml = accept.split(',').any(|t| {
        matches!(
            t.split(';').next().map(str::trim),
            Some("application/yaml" | "text/yaml")
        )
    });
    let json = accept
        .split(',')
        .any(|t| t.split(';').next().map(str::trim) == Some("application/json"));
    yaml && !json
}
