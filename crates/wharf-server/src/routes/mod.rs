//! One module per API resource. Handlers check their input at the edge (names, keys, bodies) and
//! turn store records into the API's Heroku-shaped bodies.

pub mod account;
pub mod apps;
pub mod builds;
pub mod certs;
pub mod config_vars;
pub mod domains;
pub mod dynos;
pub mod formation;
pub mod git;
pub mod logs;
pub mod meta;
pub mod one_off;
pub mod registry;
pub mod releases;
pub mod sources;
pub mod stacks;
pub mod tokens;

use wharf_core::api::{ErrorBody, Generation, NamedRef};
pub use wharf_core::api::{REGION, STACK};

// Fixed ids, so the same thing has the same id on every wharf.
const REGION_ID: &str = "7f8b61c7-7f5a-4c4e-9e52-6a2f0f5c1a01";
pub(crate) const STACK_ID: &str = "2b1f4d3e-8c6a-4f0e-a7d9-3e5b9c0d2a02";
const GENERATION_ID: &str = "5d9c2e1a-3b4f-4a6d-8e7c-1f0a9b8c3d03";

pub fn region() -> NamedRef {
    NamedRef {
        id: REGION_ID.to_owned(),
        name: REGION.to_owned(),
    }
}

pub fn stack(name: &str) -> NamedRef {
    NamedRef {
        id: stacks::stack_id(name),
        name: name.to_owned(),
    }
}

pub fn generation() -> Generation {
    Generation {
        id: GENERATION_ID.to_owned(),
        name: "cedar".to_owned(),
    }
}

/// Error responses as the OpenAPI document lists them.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // only its derive is used, to document the shared error responses
pub enum CommonErrors {
    /// The request is malformed (bad JSON, a bad header, path or query string)
    #[response(status = 400)]
    BadRequest(#[to_schema] ErrorBody),
    /// No valid token was sent
    #[response(status = 401)]
    Unauthorized(ErrorBody),
    /// The Accept header asks for an API version other than 3
    #[response(status = 406)]
    NotAcceptable(ErrorBody),
}

/// A request body of raw bytes (a tar archive, git's protocol, a process's input): its media
/// type says what it is, and any bytes are the handler's to judge, so its schema admits anything.
pub struct RawBytes;

impl utoipa::PartialSchema for RawBytes {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::Object::with_type(utoipa::openapi::schema::SchemaType::AnyValue)
            .into()
    }
}

impl utoipa::ToSchema for RawBytes {}

/// Error responses of the routes that need no token (signed URLs), as the document lists them.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // only its derive is used, to document the shared error responses
pub enum SignedErrors {
    /// The request is malformed (a bad path or query string)
    #[response(status = 400)]
    BadRequest(ErrorBody),
    /// A missing, wrong or expired signature
    #[response(status = 403)]
    Forbidden(ErrorBody),
    /// The Accept header asks for an API version other than 3
    #[response(status = 406)]
    NotAcceptable(ErrorBody),
}

/// The output file `id` of `logs` as a plain-text response: what is written so far, then, while
/// it is being written, the rest as it comes. `what` names the thing in a not-found message.
pub(crate) async fn output_response(
    logs: &wharf_control::builds::output::BuildLogs,
    id: &str,
    what: &str,
) -> crate::error::ApiResult<axum::response::Response> {
    use axum::response::IntoResponse;
    let stream = logs.stream(id).await.ok_or_else(|| {
        crate::error::ApiError::not_found(format!(
            "{what} `{}` has no output",
            wharf_core::name::shown(id)
        ))
    })?;
    Ok((
        [
            (
                axum::http::header::CONTENT_TYPE,
                "text/plain; charset=utf-8",
            ),
            (axum::http::header::CACHE_CONTROL, "no-cache"),
        ],
        axum::body::Body::from_stream(stream),
    )
        .into_response())
}
