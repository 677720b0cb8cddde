//! `/apps/{app}/config-vars`: the app's environment. A change that alters a value makes a new
//! release; one that alters nothing makes none.

use std::collections::{BTreeMap, BTreeSet};

use axum::extract::State;
use axum::{Extension, Json};
use serde_json::Value;
use wharf_core::api::{ConfigVarsBody, ErrorBody};
use wharf_core::config::{ConfigChange, ConfigKey};

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Body, Path};
use crate::AppState;
use wharf_control::Change;

/// The app's config vars.
#[utoipa::path(get, path = "/apps/{app}/config-vars", tag = "config-vars",
    params(("app" = String, Path, description = "The app's id or name")),
    responses(
        (status = 200, body = BTreeMap<String, String>),
        (status = 404, body = ErrorBody),
        crate::routes::CommonErrors,
    ))]
pub async fn info(
    State(state): State<AppState>,
    Path(app): Path<String>,
) -> ApiResult<Json<ConfigVarsBody>> {
    let app = state.store.app(&app).await?;
    Ok(Json(
        state.store.config_vars(&app.id).await?.to_string_map(),
    ))
}

/// Sets config vars (a string value) and removes them (`null`). Answers with every config var.
#[utoipa::path(patch, path = "/apps/{app}/config-vars", tag = "config-vars",
    params(("app" = String, Path, description = "The app's id or name")),
    request_body(content = ConfigVarsChange,
        description = "Keys to set (string) or remove (`null`); other keys are left alone"),
    responses(
        (status = 200, description = "The app's config vars after the change", body = BTreeMap<String, String>),
        (status = 404, body = ErrorBody),
        (status = 409, description = "A release of the app is in its release phase", body = ErrorBody),
        (status = 422, description = "A bad key, a non-string value, or config over the 32 KB limit", body = ErrorBody),
        crate::routes::CommonErrors,
    ))]
pub async fn update(
    State(state): State<AppState>,
    Extension(Caller(account)): Extension<Caller>,
    Path(app): Path<String>,
    Body(body): Body<serde_json::Map<String, Value>>,
) -> ApiResult<Json<ConfigVarsBody>> {
    let change = parse_change(body)?;
    let app = state.store.app(&app).await?;
    // Stored and put into effect in a task of its own: a client that goes away after the
    // release is stored must not leave it unlaunched (a pending one would hold the app).
    let task = tokio::spawn(async move {
        let update = state
            .store
            .update_config(&app.id, &account.id, &change)
            .await?;
        if let Some(release) = &update.release {
            // Keys only: values are secrets and never reach the log.
            tracing::info!(app = %app.name, release = %release.version, description = %release.description, "config changed");
            // The running processes restart with the new config (after its release phase,
            // if it has one).
            state.control.after(Change::Released(release)).await;
        }
        Ok::<_, ApiError>(update.vars.to_string_map())
    });
    Ok(Json(task.await.map_err(ApiError::internal)??))
}

/// The body of `PATCH /apps/{app}/config-vars`, as the document describes it.
pub struct ConfigVarsChange;

impl utoipa::PartialSchema for ConfigVarsChange {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some(
                "Config var names (letters, digits and `_`, not starting with a digit) to their \
                 new values, or to `null` to remove them",
            ))
            .property_names(Some(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .pattern(Some(ConfigKey::pattern())),
            ))
            .additional_properties(Some(
                ObjectBuilder::new().schema_type(SchemaType::from_iter([Type::String, Type::Null])),
            ))
            .into()
    }
}

impl utoipa::ToSchema for ConfigVarsChange {}

fn parse_change(body: serde_json::Map<String, Value>) -> ApiResult<ConfigChange> {
    let mut set = BTreeMap::new();
    let mut unset = BTreeSet::new();
    for (key, value) in body {
        let key = ConfigKey::parse(&key).map_err(|e| ApiError::invalid_params(e.to_string()))?;
        match value {
            Value::String(value) => {
                set.insert(key, value);
            }
            Value::Null => {
                unset.insert(key);
            }
            other => {
                return Err(ApiError::invalid_params(format!(
                    "config var `{key}` must be a string, or null to remove it (got {})",
                    json_kind(&other)
                )))
            }
        }
    }
    Ok(ConfigChange { set, unset })
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
