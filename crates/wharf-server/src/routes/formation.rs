//! `/apps/{app}/formation`: how many instances of each process type run, and how big they are.
//! Quantities arrive as the Heroku CLI sends them: an integer, or a string that may be relative
//! (`"+1"`, `"-1"`).

use axum::extract::State;
use axum::Json;
use wharf_core::api::{self, ErrorBody, FormationBatchUpdate, FormationUpdate, NamedRef};
use wharf_core::formation::DynoSize;
use wharf_store::{AppRecord, FormationChange, FormationRecord};

use crate::error::{ApiError, ApiResult};
use crate::extract::{Body, Path};
use crate::AppState;
use wharf_control::Change;

// Fixed ids, so a size has the same id on every wharf.
fn size_ref(size: &DynoSize) -> NamedRef {
    NamedRef {
        id: format!("wharf-size-{}", size.name()),
        name: size.name().to_owned(),
    }
}

pub fn to_api(
    record: FormationRecord,
    release_commands: &std::collections::BTreeMap<String, String>,
) -> api::Formation {
    let command = record
        .command
        .clone()
        .or_else(|| release_commands.get(&record.process_type).cloned())
        .unwrap_or_default();
    api::Formation {
        id: record.id,
        app: NamedRef {
            id: record.app_id,
            name: record.app_name,
        },
        dyno_size: size_ref(&record.size),
        size: record.size.name().to_owned(),
        process_type: record.process_type,
        quantity: record.quantity,
        command,
        created_at: record.created_at,
        updated_at: record.updated_at,
    }
}

async fn respond(
    state: &AppState,
    app: &AppRecord,
    records: Vec<FormationRecord>,
) -> ApiResult<Vec<api::Formation>> {
    let commands = state
        .store
        .current_release(&app.id)
        .await?
        .map(|r| r.process_types)
        .unwrap_or_default();
    Ok(records.into_iter().map(|r| to_api(r, &commands)).collect())
}

fn parse_size(size: Option<&str>) -> ApiResult<Option<DynoSize>> {
    size.map(|s| DynoSize::parse(s).map_err(|e| ApiError::invalid_params(e.to_string())))
        .transpose()
}

/// The app's formation: one entry per process type of its current release.
#[utoipa::path(get, path = "/apps/{app}/formation", tag = "formation",
    params(("app" = String, Path, description = "The app's id or name")),
    responses((status = 200, body = [api::Formation]), (status = 404, body = ErrorBody), crate::routes::CommonErrors))]
pub async fn list(
    State(state): State<AppState>,
    Path(app): Path<String>,
) -> ApiResult<Json<Vec<api::Formation>>> {
    let app = state.store.app(&app).await?;
    let records = state.store.formation(&app.id).await?;
    Ok(Json(respond(&state, &app, records).await?))
}

/// Scales or resizes several process types at once: all the changes apply, or none.
#[utoipa::path(patch, path = "/apps/{app}/formation", tag = "formation", request_body = FormationBatchUpdate,
    params(("app" = String, Path, description = "The app's id or name")),
    responses(
        (status = 200, description = "The whole formation after the change", body = [api::Formation]),
        (status = 404, description = "No such app or process type", body = ErrorBody),
        (status = 422, description = "A bad quantity or size", body = ErrorBody),
        crate::routes::CommonErrors,
    ))]
pub async fn batch_update(
    State(state): State<AppState>,
    Path(app): Path<String>,
    Body(body): Body<FormationBatchUpdate>,
) -> ApiResult<Json<Vec<api::Formation>>> {
    if body.updates.is_empty() {
        return Err(ApiError::invalid_params(
            "`updates` is empty: give at least one {\"type\", \"quantity\"}",
        ));
    }
    let changes = body
        .updates
        .iter()
        .map(|u| {
            Ok(FormationChange {
                process_type: u.process_type.clone(),
                quantity: u.quantity,
                size: parse_size(u.size.as_deref())?,
            })
        })
        .collect::<ApiResult<Vec<_>>>()?;
    let app = state.store.app(&app).await?;
    let records = state.store.update_formation(&app.id, &changes).await?;
    tracing::info!(app = %app.name, "formation changed");
    state
        .control
        .after(Change::FormationChanged { app_id: &app.id })
        .await;
    Ok(Json(respond(&state, &app, records).await?))
}

/// One process type's formation.
#[utoipa::path(get, path = "/apps/{app}/formation/{type}", tag = "formation",
    params(("app" = String, Path, description = "The app's id or name"), ("type" = String, Path, description = "The process type")),
    responses((status = 200, body = api::Formation), (status = 404, body = ErrorBody), crate::routes::CommonErrors))]
pub async fn info(
    State(state): State<AppState>,
    Path((app, kind)): Path<(String, String)>,
) -> ApiResult<Json<api::Formation>> {
    let app = state.store.app(&app).await?;
    let records = state.store.formation(&app.id).await?;
    pick(respond(&state, &app, records).await?, &app, &kind).map(Json)
}

/// Scales or resizes one process type.
#[utoipa::path(patch, path = "/apps/{app}/formation/{type}", tag = "formation", request_body = FormationUpdate,
    params(("app" = String, Path, description = "The app's id or name"), ("type" = String, Path, description = "The process type")),
    responses(
        (status = 200, body = api::Formation),
        (status = 404, description = "No such app or process type", body = ErrorBody),
        (status = 422, description = "A bad quantity or size", body = ErrorBody),
        crate::routes::CommonErrors,
    ))]
pub async fn update(
    State(state): State<AppState>,
    Path((app, kind)): Path<(String, String)>,
    Body(body): Body<FormationUpdate>,
) -> ApiResult<Json<api::Formation>> {
    let change = FormationChange {
        process_type: kind.clone(),
        quantity: body.quantity,
        size: parse_size(body.size.as_deref())?,
    };
    let app = state.store.app(&app).await?;
    let records = state.store.update_formation(&app.id, &[change]).await?;
    tracing::info!(app = %app.name, process_type = %kind, "formation changed");
    state
        .control
        .after(Change::FormationChanged { app_id: &app.id })
        .await;
    pick(respond(&state, &app, records).await?, &app, &kind).map(Json)
}

fn pick(formation: Vec<api::Formation>, app: &AppRecord, kind: &str) -> ApiResult<api::Formation> {
    formation
        .into_iter()
        .find(|f| f.process_type == kind)
        .ok_or_else(|| {
            ApiError::not_found(format!("app `{}` has no process type `{kind}`", app.name))
        })
}
