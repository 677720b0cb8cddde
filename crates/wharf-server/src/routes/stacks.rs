//! `/stacks`: the base images apps are built and run on. `GET` lists them as Heroku does (so
//! `heroku stack` works); `POST /stacks` (wharf's) makes one of wharf's stacks from Debian
//! packages in the background, its output at the signed `/stacks/{name}/output`.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use sha2::Digest as _;
use wharf_core::api::{self, ErrorBody, StackCreate};

use crate::error::{ApiError, ApiResult};
use crate::extract::{Body as JsonBody, Path, Query};
use crate::routes::sources::Signature;
use crate::routes::STACK;
use crate::AppState;
use wharf_control::stacks::Job;

/// How long a stack's `output_stream_url` stays valid.
const OUTPUT_URL_TTL: Duration = Duration::from_secs(24 * 60 * 60);

fn output_path(name: &str) -> String {
    format!("/stacks/{name}/output")
}

/// A stack's id: the same name has the same id on every wharf.
pub(crate) fn stack_id(name: &str) -> String {
    if name == STACK {
        return crate::routes::STACK_ID.to_owned();
    }
    let hex = hex::encode(sha2::Sha256::digest(format!("wharf stack {name}")));
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

fn to_image(image: wharf_stack::StackImage) -> api::StackImage {
    api::StackImage {
        digest: image.manifest.to_string(),
        created: image.created,
        size: image.size,
        packages: image.packages,
    }
}

/// Every stack: the host-bound `wharf-1`, wharf's own (made or not), and any other in the
/// image store.
pub(crate) fn all(state: &AppState) -> ApiResult<Vec<api::Stack>> {
    let made = wharf_stack::list(state.control.images()).map_err(ApiError::internal)?;
    let mut names: Vec<String> = wharf_stack::DEFAULT_STACKS
        .iter()
        .map(|d| d.name.to_owned())
        .collect();
    names.extend(
        made.iter()
            .map(|s| s.name.clone())
            .chain(state.control.stacks().making())
            .filter(|n| wharf_stack::default_stack(n).is_none()),
    );
    names[wharf_stack::DEFAULT_STACKS.len()..].sort();
    let mut seen = std::collections::BTreeSet::new();
    names.retain(|n| seen.insert(n.clone()));
    let host = api::Stack {
        id: stack_id(STACK),
        name: STACK.to_owned(),
        state: "public".to_owned(),
        default: true,
        status: "host".to_owned(),
        suite: None,
        run_image: None,
        build_image: None,
        output_stream_url: None,
        created_at: EPOCH.to_owned(),
        updated_at: EPOCH.to_owned(),
    };
    let mut stacks = vec![host];
    for name in names {
        let found = made.iter().find(|s| s.name == name).cloned();
        let run = found.as_ref().and_then(|s| s.run.clone());
        let build = found.and_then(|s| s.build);
        let status = if state.control.stacks().is_making(&name) {
            "making"
        } else if run.is_some() && build.is_some() {
            "ready"
        } else {
            "absent"
        };
        let created = run
            .as_ref()
            .and_then(|i| i.created.clone())
            .unwrap_or_else(|| EPOCH.to_owned());
        let output_stream_url = state
            .control
            .stacks()
            .has_output(&name)
            .then(|| state.signed_url("GET", &output_path(&name), OUTPUT_URL_TTL));
        stacks.push(api::Stack {
            id: stack_id(&name),
            suite: run
                .as_ref()
                .and_then(|i| i.suite.clone())
                .or_else(|| wharf_stack::default_stack(&name).map(|d| d.suite.to_owned())),
            name,
            state: "public".to_owned(),
            default: false,
            status: status.to_owned(),
            run_image: run.map(to_image),
            build_image: build.map(to_image),
            output_stream_url,
            updated_at: created.clone(),
            created_at: created,
        });
    }
    Ok(stacks)
}

/// Timestamps of what has none of its own.
const EPOCH: &str = "1970-01-01T00:00:00Z";

fn find(state: &AppState, stack: &str) -> ApiResult<api::Stack> {
    all(state)?
        .into_iter()
        .find(|s| s.name == stack || s.id == stack)
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "stack `{}` does not exist: GET /stacks lists them",
                wharf_core::name::shown(stack)
            ))
        })
}

/// The stacks: `wharf-1` (builds and apps on the host's `/usr`), and wharf's own, made from
/// Debian packages (`status` says whether they are made yet).
#[utoipa::path(get, path = "/stacks", tag = "stacks",
    responses(
        (status = 200, body = [api::Stack]),
        crate::routes::CommonErrors,
    ))]
pub async fn list(State(state): State<AppState>) -> ApiResult<Json<Vec<api::Stack>>> {
    Ok(Json(all(&state)?))
}

/// One stack, by name or id.
#[utoipa::path(get, path = "/stacks/{id}", tag = "stacks",
    params(("id" = String, Path, description = "The stack's name or id")),
    responses(
        (status = 200, body = api::Stack),
        (status = 404, body = ErrorBody),
        crate::routes::CommonErrors,
    ))]
pub async fn info(
    State(state): State<AppState>,
    Path(stack): Path<String>,
) -> ApiResult<Json<api::Stack>> {
    Ok(Json(find(&state, &stack)?))
}

/// Makes one of wharf's stacks (again) from the Debian packages of the host's configured
/// archive, in the background: its build and run images replace the stack's when done. Its
/// output streams at `output_stream_url`. wharf extension.
#[utoipa::path(post, path = "/stacks", tag = "stacks", request_body = StackCreate,
    responses(
        (status = 202, description = "Being made", body = api::Stack),
        (status = 409, description = "It is being made already", body = ErrorBody),
        (status = 422, description = "Not a stack wharf makes", body = ErrorBody),
        crate::routes::CommonErrors,
    ))]
pub async fn create(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<StackCreate>,
) -> ApiResult<(StatusCode, Json<api::Stack>)> {
    let (name, job) =
        match (body.run_image, body.build_image) {
            (None, None) => {
                let def = wharf_stack::default_stack(&body.name).ok_or_else(|| {
                    ApiError::invalid_params(format!(
                    "wharf makes the stacks {}, not `{}`; to import a stack made elsewhere, give \
                     its `run_image` and `build_image`",
                    wharf_stack::DEFAULT_STACKS.map(|s| s.name).join(" and "),
                    wharf_core::name::shown(&body.name)
                ))
                })?;
                (def.name.to_owned(), Job::Make(def))
            }
            (Some(run), Some(build)) => {
                wharf_stack::import::check_name(&body.name).map_err(ApiError::invalid_params)?;
                for reference in [&run, &build] {
                    wharf_stack::import::check_reference(reference)
                        .map_err(|e| ApiError::invalid_params(e.to_string()))?;
                }
                (
                    body.name.clone(),
                    Job::Import(vec![
                        (wharf_stack::Role::Run, run),
                        (wharf_stack::Role::Build, build),
                    ]),
                )
            }
            _ => return Err(ApiError::invalid_params(
                "give both `run_image` and `build_image` to import a stack (or neither, to make \
                 one of wharf's)",
            )),
        };
    if !state
        .control
        .stacks()
        .start(&name, job)
        .await
        .map_err(ApiError::internal)?
    {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            format!("stack `{name}` is being made already: follow its output_stream_url"),
        ));
    }
    tracing::info!(stack = %name, "making a stack");
    Ok((StatusCode::ACCEPTED, Json(find(&state, &name)?)))
}

/// What making the stack printed: everything so far, then, while it is made, the rest as it
/// happens. Needs the signed `output_stream_url`, no token.
#[utoipa::path(get, path = "/stacks/{id}/output", tag = "stacks", security(()),
    params(("id" = String, Path, description = "The stack's name"), Signature),
    responses(
        (status = 200, description = "The output, streamed", content_type = "text/plain", body = String),
        (status = 404, body = ErrorBody),
        crate::routes::SignedErrors,
    ))]
pub async fn output(
    State(state): State<AppState>,
    Path(stack): Path<String>,
    Query(signature): Query<Signature>,
) -> ApiResult<Response> {
    signature.check(&state, "GET", &output_path(&stack))?;
    crate::routes::output_response(state.control.stacks().logs(), &stack, "stack").await
}
