//! `/apps`: create, list, info, update (rename, maintenance, stack), delete.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::{Extension, Json};
use wharf_core::api::{self, AppCreate, AppUpdate, ErrorBody, UserRef};
use wharf_core::name::AppName;
use wharf_store::{AppRecord, StoreError};

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{self, Body, Path};
use crate::routes::{generation, region, stack, REGION, STACK};
use crate::{names, AppState, Links};
use wharf_control::Change;

pub fn to_api(app: AppRecord, links: &Links) -> api::App {
    let name = app.name.to_string();
    api::App {
        id: app.id,
        web_url: links.web_url(&name),
        git_url: links.git_url(&name),
        name,
        maintenance: app.maintenance,
        https_redirect: app.https_redirect,
        stack: stack(&app.build_stack),
        build_stack: stack(&app.build_stack),
        region: region(),
        owner: UserRef {
            id: app.owner_id,
            email: app.owner_email,
        },
        generation: generation(),
        organization: None,
        team: None,
        space: None,
        acm: app.acm,
        internal_routing: Some(false),
        buildpack_provided_description: None,
        repo_size: None,
        slug_size: None,
        archived_at: None,
        released_at: app.released_at,
        created_at: app.created_at,
        updated_at: app.updated_at,
    }
}

fn parse_name(name: &str) -> ApiResult<AppName> {
    AppName::parse(name).map_err(|e| ApiError::invalid_params(e.to_string()))
}

/// The stack `requested` (a name or id) names, when apps can build on it: the host-bound
/// `wharf-1`, or a stack whose build and run images are both in the store.
fn check_stack(state: &AppState, requested: &str) -> ApiResult<String> {
    if requested == STACK {
        return Ok(STACK.to_owned());
    }
    let stacks = crate::routes::stacks::all(state)?;
    let Some(stack) = stacks
        .iter()
        .find(|s| s.name == requested || s.id == requested)
    else {
        let names: Vec<&str> = stacks.iter().map(|s| s.name.as_str()).collect();
        return Err(ApiError::invalid_params(format!(
            "unknown stack `{}`: the stacks are {}",
            wharf_core::name::shown(requested),
            names.join(", ")
        )));
    };
    if stack.status != "host"
        && state.control.builds().settings().sandbox != wharf_build::SandboxMode::Namespaces
    {
        return Err(ApiError::invalid_params(format!(
            "stack `{}` needs the sandbox (builds and apps run in its images), and this server \
             runs without one: install bubblewrap (apt-get install bubblewrap) and restart it, \
             or keep the host-bound stack `{STACK}`",
            stack.name
        )));
    }
    match stack.status.as_str() {
        "ready" | "host" => Ok(stack.name.clone()),
        // wharf's own are made by the first build that needs them.
        _ if wharf_stack::default_stack(&stack.name).is_some() => Ok(stack.name.clone()),
        "making" => Err(ApiError::invalid_params(format!(
            "stack `{name}` is still being made: wait for `wharf stacks info {name}` to say \
             ready, then set it again",
            name = stack.name
        ))),
        _ => Err(ApiError::invalid_params(format!(
            "stack `{name}` is not made on this server yet: make it with `wharf stacks build \
             {name}` (it takes a minute or two), then set it again",
            name = stack.name
        ))),
    }
}

extract::range_header!(
    /// The `Range` of app lists.
    AppsRange,
    ["name", "id"],
    "`name ..; max=200` (also `id`); `]` after the field name's space starts after a value"
);

/// Every app, sorted by name (or by `id`, with `Range: id ..`).
#[utoipa::path(get, path = "/apps", tag = "apps",
    params(AppsRange),
    responses(
        (status = 200, description = "Every remaining app", body = [api::App]),
        (status = 206, description = "A page of apps; `Next-Range` asks for the next one", body = [api::App]),
        crate::routes::CommonErrors,
    ))]
pub async fn list(State(state): State<AppState>, headers: HeaderMap) -> ApiResult<Response> {
    let range = extract::range(&headers, AppsRange::FIELDS)?;
    let page = state.store.list_apps(&range).await?;
    Ok(extract::page_response(&range, page, |app| {
        to_api(app, &state.links)
    }))
}

/// The apps a user owns: `~` (or the caller's email or id) is the caller. As Heroku's
/// `GET /users/{user}/apps`, which `heroku apps` lists.
#[utoipa::path(get, path = "/users/{user}/apps", tag = "apps",
    params(
        ("user" = String, Path, description = "`~` for the caller, or the caller's email or id"),
        AppsRange,
    ),
    responses(
        (status = 200, description = "Every remaining app", body = [api::App]),
        (status = 206, description = "A page of apps; `Next-Range` asks for the next one", body = [api::App]),
        (status = 404, description = "Another user: wharf has one account", body = ErrorBody),
        crate::routes::CommonErrors,
    ))]
pub async fn list_owned(
    State(state): State<AppState>,
    Extension(Caller(account)): Extension<Caller>,
    Path(user): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    if user != "~" && user != account.email && user != account.id {
        return Err(ApiError::not_found(format!(
            "user `{}` not found: wharf has one account, {} (`~`)",
            wharf_core::name::shown(&user),
            account.email
        )));
    }
    // Every app belongs to the one account.
    list(State(state), headers).await
}

/// The app's add-ons: always none. Backing services are attached through config vars
/// (`DATABASE_URL`, `REDIS_URL`), or are other apps. Heroku's clients list them in `apps:info`.
#[utoipa::path(get, path = "/apps/{app}/addons", tag = "apps",
    params(("app" = String, Path, description = "The app's id or name")),
    responses((status = 200, description = "None", body = [Object]), (status = 404, body = ErrorBody), crate::routes::CommonErrors))]
pub async fn addons(
    State(state): State<AppState>,
    Path(app): Path<String>,
) -> ApiResult<Json<Vec<serde_json::Value>>> {
    state.store.app(&app).await?;
    Ok(Json(Vec::new()))
}

/// Creates an app, with its first release ("Initial release"). A name is generated when none is given.
#[utoipa::path(post, path = "/apps", tag = "apps", request_body = AppCreate,
    responses(
        (status = 201, body = api::App),
        (status = 409, description = "The name is taken", body = ErrorBody),
        (status = 422, description = "An invalid name, region or stack", body = ErrorBody),
        crate::routes::CommonErrors,
    ))]
pub async fn create(
    State(state): State<AppState>,
    Extension(Caller(account)): Extension<Caller>,
    Body(body): Body<AppCreate>,
) -> ApiResult<(StatusCode, Json<api::App>)> {
    if let Some(region) = &body.region {
        if region != REGION {
            return Err(ApiError::invalid_params(format!(
                "unknown region `{region}`: wharf runs apps on this machine, region `{REGION}`"
            )));
        }
    }
    let stack = check_stack(
        &state,
        body.stack.as_deref().unwrap_or(&state.default_stack),
    )?;
    let stack = stack.as_str();
    let app = match &body.name {
        Some(name) => {
            state
                .store
                .create_app(&parse_name(name)?, &account.id, stack)
                .await?
        }
        None => {
            // A generated name can collide with an existing app; try a few before giving up.
            let mut attempts = 0;
            loop {
                match state
                    .store
                    .create_app(&names::generate(), &account.id, stack)
                    .await
                {
                    Err(StoreError::Conflict(_)) if attempts < 8 => attempts += 1,
                    other => break other?,
                }
            }
        }
    };
    state
        .control
        .after(Change::AppCreated { app_id: &app.id })
        .await;
    tracing::info!(app = %app.name, "app created");
    Ok((StatusCode::CREATED, Json(to_api(app, &state.links))))
}

/// One app, by id or name.
#[utoipa::path(get, path = "/apps/{app}", tag = "apps",
    params(("app" = String, Path, description = "The app's id or name")),
    responses(
        (status = 200, body = api::App),
        (status = 404, body = ErrorBody),
        crate::routes::CommonErrors,
    ))]
pub async fn info(
    State(state): State<AppState>,
    Path(app): Path<String>,
) -> ApiResult<Json<api::App>> {
    let app = state.store.app(&app).await?;
    Ok(Json(to_api(app, &state.links)))
}

/// Renames an app, turns maintenance mode or the redirect to HTTPS on or off, or sets its
/// build stack.
#[utoipa::path(patch, path = "/apps/{app}", tag = "apps", request_body = AppUpdate,
    params(("app" = String, Path, description = "The app's id or name")),
    responses(
        (status = 200, body = api::App),
        (status = 404, body = ErrorBody),
        (status = 409, description = "The new name is taken", body = ErrorBody),
        (status = 422, description = "An invalid name or stack", body = ErrorBody),
        crate::routes::CommonErrors,
    ))]
pub async fn update(
    State(state): State<AppState>,
    Path(app): Path<String>,
    Body(body): Body<AppUpdate>,
) -> ApiResult<Json<api::App>> {
    let name = body.name.as_deref().map(parse_name).transpose()?;
    let build_stack = body
        .build_stack
        .as_deref()
        .map(|s| check_stack(&state, s))
        .transpose()?;
    let app = state.store.app(&app).await?;
    let update = wharf_store::AppUpdate {
        name,
        maintenance: body.maintenance,
        https_redirect: body.https_redirect,
        acm: None,
        build_stack,
    };
    let updated = state.store.update_app(&app.id, &update).await?;
    state
        .control
        .after(Change::AppUpdated { app_id: &app.id })
        .await;
    if updated.name != app.name {
        tracing::info!(app = %updated.name, old_name = %app.name, "app renamed");
    }
    Ok(Json(to_api(updated, &state.links)))
}

/// Destroys an app, its config vars and its releases.
#[utoipa::path(delete, path = "/apps/{app}", tag = "apps",
    params(("app" = String, Path, description = "The app's id or name")),
    responses(
        (status = 200, description = "The app as it was", body = api::App),
        (status = 404, body = ErrorBody),
        crate::routes::CommonErrors,
    ))]
pub async fn delete(
    State(state): State<AppState>,
    Path(app): Path<String>,
) -> ApiResult<Json<api::App>> {
    let app = state.store.delete_app(&app).await?;
    // The router forgets its hostnames, its processes stop, and its log goes with it.
    state
        .control
        .after(Change::AppDestroyed { app_id: &app.id })
        .await;
    if let Err(e) = state.git.remove(&app.id).await {
        tracing::warn!(app = %app.name, error = %e, "cannot remove the destroyed app's git repository");
    }
    tracing::info!(app = %app.name, "app destroyed");
    Ok(Json(to_api(app, &state.links)))
}
