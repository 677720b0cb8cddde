//! `/apps/{app}/dynos`: the app's running instances ("dynos" in Heroku's words), restarting and
//! stopping them.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use wharf_core::api::{self, DynoRelease, ErrorBody, NamedRef};
use wharf_core::backend::{InstanceStatus, Target};
use wharf_store::{AppRecord, ReleaseRecord};

use crate::error::{ApiError, ApiResult};
use crate::extract::Path;
use crate::AppState;

fn rfc3339(time: SystemTime) -> String {
    let secs = time
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    chrono::DateTime::from_timestamp(i64::try_from(secs).unwrap_or(0), 0)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn to_api(
    app: &AppRecord,
    releases: &[ReleaseRecord],
    sizes: &std::collections::BTreeMap<String, String>,
    instance: InstanceStatus,
) -> api::Dyno {
    let release = releases
        .iter()
        .find(|r| r.version.get() == instance.release_version)
        .map(|r| DynoRelease {
            id: r.id.clone(),
            version: r.version.get(),
        })
        .unwrap_or(DynoRelease {
            id: String::new(),
            version: instance.release_version,
        });
    let since = rfc3339(instance.since);
    api::Dyno {
        id: format!("{}.{}", app.id, instance.name),
        size: sizes
            .get(&instance.process_type)
            .cloned()
            .unwrap_or_else(|| "standard-1x".to_owned()),
        name: instance.name,
        process_type: instance.process_type,
        state: instance.state.as_str().to_owned(),
        command: instance.command,
        app: NamedRef {
            id: app.id.clone(),
            name: app.name.to_string(),
        },
        release,
        attach_url: None,
        pid: instance.pid,
        node: instance.node,
        port: instance.port,
        restarts: instance.restarts,
        last_exit: instance.last_exit,
        next_restart_in: instance.next_restart_in.map(|d| d.as_secs()),
        created_at: since.clone(),
        updated_at: since,
    }
}

async fn dynos(state: &AppState, app: &AppRecord) -> ApiResult<Vec<api::Dyno>> {
    let mut instances = state.control.backend().status(&app.id);
    // One-off processes (`run.N`, a release phase's `release.N`) are dynos too, while they run.
    instances.extend(state.control.backend().one_offs(&app.id));
    describe(state, app, instances).await
}

/// The API's view of the app's `instances`.
async fn describe(
    state: &AppState,
    app: &AppRecord,
    instances: Vec<InstanceStatus>,
) -> ApiResult<Vec<api::Dyno>> {
    let mut releases = Vec::new();
    for version in instances
        .iter()
        .map(|i| i.release_version)
        .collect::<std::collections::BTreeSet<_>>()
    {
        if let Some(v) = wharf_core::release::ReleaseVersion::new(version) {
            if let Ok(release) = state
                .store
                .release(&app.id, &wharf_store::ReleaseRef::Version(v))
                .await
            {
                releases.push(release);
            }
        }
    }
    let sizes = state
        .store
        .formation(&app.id)
        .await?
        .into_iter()
        .map(|f| (f.process_type, f.size.name().to_owned()))
        .collect();
    Ok(instances
        .into_iter()
        .map(|i| to_api(app, &releases, &sizes, i))
        .collect())
}

/// The app's instances, by type and number.
#[utoipa::path(get, path = "/apps/{app}/dynos", tag = "dynos",
    params(("app" = String, Path, description = "The app's id or name")),
    responses((status = 200, body = [api::Dyno]), (status = 404, body = ErrorBody), crate::routes::CommonErrors))]
pub async fn list(
    State(state): State<AppState>,
    Path(app): Path<String>,
) -> ApiResult<Json<Vec<api::Dyno>>> {
    let app = state.store.app(&app).await?;
    Ok(Json(dynos(&state, &app).await?))
}

/// One instance, by name (`web.1`) or id. A one-off process that has ended is gone (404), and
/// the answer says how it ended.
#[utoipa::path(get, path = "/apps/{app}/dynos/{dyno}", tag = "dynos",
    params(("app" = String, Path, description = "The app's id or name"), ("dyno" = String, Path, description = "The instance's name, e.g. `web.1`, or its id")),
    responses((status = 200, body = api::Dyno), (status = 404, body = ErrorBody), crate::routes::CommonErrors))]
pub async fn info(
    State(state): State<AppState>,
    Path((app, dyno)): Path<(String, String)>,
) -> ApiResult<Json<api::Dyno>> {
    let app = state.store.app(&app).await?;
    if let Some(running) = dynos(&state, &app)
        .await?
        .into_iter()
        .find(|d| d.name == dyno || d.id == dyno)
    {
        return Ok(Json(running));
    }
    let name = dyno.strip_prefix(&format!("{}.", app.id)).unwrap_or(&dyno);
    if let Some(ended) = state.control.backend().ended_one_off(&app.id, name) {
        return Err(ApiError::not_found(format!(
            "`{}`'s one-off process `{name}` has ended ({}{}); its output is in `wharf logs -a {}`",
            app.name,
            if ended.state == wharf_core::backend::InstanceState::Crashed {
                "crashed, "
            } else {
                ""
            },
            ended.last_exit.as_deref().unwrap_or("unknown status"),
            app.name
        )));
    }
    Err(ApiError::not_found(format!(
        "app `{}` has no dyno `{dyno}`: `wharf ps -a {}` lists them",
        app.name, app.name
    )))
}

/// How long a restart or stop request waits for the instances to be replaced before it answers
/// 202 while they go on being replaced (`restart_all`'s documentation says so).
const RESTART_WAIT: Duration = Duration::from_secs(5);

/// An instance by name (`web.1`), or, as Heroku's API takes it too, a whole process type (`web`).
fn instance_or_type(dyno: String) -> Target {
    if dyno.contains('.') {
        Target::Instance(dyno)
    } else {
        Target::Type(dyno)
    }
}

async fn restart(state: &AppState, app: &str, target: Target) -> ApiResult<StatusCode> {
    let app = state.store.app(app).await?;
    // A dyno's id is `<app id>.<name>`; Heroku's API takes either.
    let target = match target {
        Target::Instance(ident) => match ident.strip_prefix(&format!("{}.", app.id)) {
            Some(name) => instance_or_type(name.to_owned()),
            None => Target::Instance(ident),
        },
        other => other,
    };
    // A one-off process is stopped, not restarted, as on Heroku: by name, or all of a type.
    let one_offs: Vec<String> = state
        .control
        .backend()
        .one_offs(&app.id)
        .into_iter()
        .filter(|o| match &target {
            Target::Instance(name) => o.name == *name,
            Target::Type(kind) => o.process_type == *kind,
            Target::All => false,
        })
        .map(|o| o.name)
        .collect();
    if !one_offs.is_empty() {
        for name in &one_offs {
            state.control.backend().stop_one_off(&app.id, name);
        }
        // Answered once they are gone (a GET then says 404), or after RESTART_WAIT with them
        // still stopping (a process ignoring SIGTERM gets its grace period).
        let deadline = tokio::time::Instant::now() + RESTART_WAIT;
        let mut tick = tokio::time::interval(std::time::Duration::from_millis(20));
        while tokio::time::Instant::now() < deadline {
            let left = state.control.backend().one_offs(&app.id);
            if !left.iter().any(|o| one_offs.contains(&o.name)) {
                break;
            }
            tick.tick().await;
        }
        tracing::info!(app = %app.name, stopped = ?one_offs, "one-off processes stopped");
        return Ok(StatusCode::ACCEPTED);
    }
    if let Target::Instance(name) = &target {
        if state
            .control
            .backend()
            .ended_one_off(&app.id, name)
            .is_some()
        {
            // A one-off that ended before it was asked to: stopped already, as asked.
            return Ok(StatusCode::ACCEPTED);
        }
    }
    let what = match &target {
        Target::All => "all processes".to_owned(),
        Target::Type(t) | Target::Instance(t) => t.clone(),
    };
    // In a task of its own, so that a restart outlasting the wait (a rolling restart of many
    // instances, or of web ones slow to boot) goes on after the answer; the supervisor ends it
    // when the server stops.
    let control = state.control.clone();
    let (app_id, name, restarting) = (app.id.clone(), app.name.clone(), target.clone());
    let mut task = tokio::spawn(async move {
        let restarted = control.backend().restart(&app_id, restarting).await;
        if let Err(e) = &restarted {
            tracing::debug!(app = %name, error = %e, "nothing to restart");
        }
        restarted
    });
    let finished = match tokio::time::timeout(RESTART_WAIT, &mut task).await {
        Ok(joined) => Some(joined.map_err(ApiError::internal)?),
        Err(_) => None,
    };
    if let Some(Err(_)) = finished {
        // Restarting every process of an app that has none is done at once.
        if target != Target::All {
            return Err(ApiError::not_found(format!(
                "`{}` has no process `{}`: `wharf ps -a {}` lists them",
                app.name,
                wharf_core::name::shown(&what),
                app.name
            )));
        }
    }
    tracing::info!(app = %app.name, what = %what, "restart requested");
    Ok(StatusCode::ACCEPTED)
}

/// Restarts every instance of the app (web ones one at a time, each replacement up first).
///
/// This and the other restart and stop routes answer once the instances are replaced, or after
/// 5 seconds while they go on being replaced (`wharf ps` shows how far it got).
#[utoipa::path(delete, path = "/apps/{app}/dynos", tag = "dynos",
    params(("app" = String, Path, description = "The app's id or name")),
    responses((status = 202, description = "Restarting"), (status = 404, body = ErrorBody), crate::routes::CommonErrors))]
pub async fn restart_all(
    State(state): State<AppState>,
    Path(app): Path<String>,
) -> ApiResult<StatusCode> {
    restart(&state, &app, Target::All).await
}

/// Restarts one instance; a one-off process (`run.N`) is stopped instead, as on Heroku.
#[utoipa::path(delete, path = "/apps/{app}/dynos/{dyno}", tag = "dynos",
    params(("app" = String, Path, description = "The app's id or name"), ("dyno" = String, Path, description = "The instance's name, e.g. `web.1`, or its id, or a process type")),
    responses((status = 202, description = "Restarting"), (status = 404, body = ErrorBody), crate::routes::CommonErrors))]
pub async fn restart_one(
    State(state): State<AppState>,
    Path((app, dyno)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    restart(&state, &app, instance_or_type(dyno)).await
}

/// Restarts every instance of a process type.
#[utoipa::path(delete, path = "/apps/{app}/formations/{type}", tag = "dynos",
    params(("app" = String, Path, description = "The app's id or name"), ("type" = String, Path, description = "The process type")),
    responses((status = 202, description = "Restarting"), (status = 404, body = ErrorBody), crate::routes::CommonErrors))]
pub async fn restart_type(
    State(state): State<AppState>,
    Path((app, kind)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    restart(&state, &app, Target::Type(kind)).await
}

/// Stops an instance. As on Heroku, an instance the formation asks for is started again, fresh;
/// to keep a type stopped, scale it to 0. A one-off process (`run.N`) is stopped for good.
#[utoipa::path(post, path = "/apps/{app}/dynos/{dyno}/actions/stop", tag = "dynos",
    params(("app" = String, Path, description = "The app's id or name"), ("dyno" = String, Path, description = "The instance's name, e.g. `web.1`, or its id, or a process type")),
    responses((status = 202, description = "Stopping"), (status = 404, body = ErrorBody), crate::routes::CommonErrors))]
pub async fn stop_one(
    State(state): State<AppState>,
    Path((app, dyno)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    restart(&state, &app, instance_or_type(dyno)).await
}

/// Stops every instance of a process type; the formation starts them again, fresh.
#[utoipa::path(post, path = "/apps/{app}/formations/{type}/actions/stop", tag = "dynos",
    params(("app" = String, Path, description = "The app's id or name"), ("type" = String, Path, description = "The process type")),
    responses((status = 202, description = "Stopping"), (status = 404, body = ErrorBody), crate::routes::CommonErrors))]
pub async fn stop_type(
    State(state): State<AppState>,
    Path((app, kind)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    restart(&state, &app, Target::Type(kind)).await
}
