//! Request extractors that turn bad input into clear `ApiError`s, in the API's `{id, message}`
//! shape (axum's own rejections are plain text): JSON bodies, path parameters, query strings,
//! and the `Range` pagination header.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::de::DeserializeOwned;
use serde::Serialize;
use wharf_core::range::{self, Range};
use wharf_store::Page;

use crate::error::ApiError;

/// A JSON request body: an object. Unlike axum's `Json`, it does not insist on a `Content-Type`
/// (curl's `-d` sends a form type) and it answers malformed input with the API's error shape.
pub struct Body<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e| match e.status() {
                StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "request_too_large",
                    "the request body is over the 2 MiB limit for JSON requests",
                ),
                status => ApiError::new(status, "bad_request", e.body_text()),
            })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(ApiError::bad_request(
                "the request needs a JSON body, e.g. `{}`",
            ));
        }
        // serde would read a struct from an array of its fields in order (`[null, null]`); every
        // body of this API is an object.
        let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
        if first != Some(&b'{') {
            return Err(
                match serde_json::from_slice::<serde::de::IgnoredAny>(&bytes) {
                    Ok(_) => ApiError::invalid_params(
                        "the request body must be a JSON object, e.g. `{}`",
                    ),
                    Err(e) => ApiError::bad_request(format!("request body is not valid JSON: {e}")),
                },
            );
        }
        serde_json::from_slice(&bytes).map(Body).map_err(|e| {
            if e.is_data() {
                ApiError::invalid_params(format!("invalid request body: {e}"))
            } else {
                ApiError::bad_request(format!("request body is not valid JSON: {e}"))
            }
        })
    }
}

/// Path parameters, as axum's `Path` reads them, with a bad one (not UTF-8 once
/// percent-decoded) answered in the API's error shape.
pub struct Path<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(value)| Path(value))
            .map_err(|e| ApiError::bad_request(format!("bad path: {}", innermost(&e))))
    }
}

/// The query string, as axum's `Query` reads it, with a bad one answered in the API's error
/// shape.
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(value)| Query(value))
            .map_err(|e| ApiError::bad_request(format!("bad query string: {}", innermost(&e))))
    }
}

/// The message of the innermost cause of a rejection: what was wrong, without axum's framing.
fn innermost(error: &(dyn std::error::Error + 'static)) -> String {
    let mut error = error;
    while let Some(source) = error.source() {
        error = source;
    }
    error.to_string()
}

/// Declares a listing's `Range` header: a type whose `FIELDS` the handler reads the header
/// with, and whose OpenAPI parameter states the header's grammar as a pattern.
macro_rules! range_header {
    ($(#[$doc:meta])* $name:ident, [$($field:literal),+], $description:literal) => {
        $(#[$doc])*
        pub struct $name;

        impl $name {
            /// The fields the listing sorts by; the first is the default.
            pub const FIELDS: &'static [&'static str] = &[$($field),+];
        }

        impl utoipa::IntoParams for $name {
            fn into_params(
                _: impl Fn() -> Option<utoipa::openapi::path::ParameterIn>,
            ) -> Vec<utoipa::openapi::path::Parameter> {
                vec![$crate::extract::range_parameter(Self::FIELDS, $description)]
            }
        }
    };
}
pub(crate) use range_header;

/// The OpenAPI description of a `Range` header for a listing sorted by `fields`.
pub fn range_parameter(fields: &[&str], description: &str) -> utoipa::openapi::path::Parameter {
    use utoipa::openapi::path::{ParameterBuilder, ParameterIn};
    use utoipa::openapi::{ObjectBuilder, Required, Type};
    ParameterBuilder::new()
        .name("Range")
        .parameter_in(ParameterIn::Header)
        .required(Required::False)
        .description(Some(description))
        .schema(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some(range::pattern(fields))),
        ))
        .build()
}

/// Reads the `Range` header for a list sorted by one of `fields` (the first is the default).
pub fn range(headers: &HeaderMap, fields: &[&str]) -> Result<Range, ApiError> {
    let default = fields[0];
    match headers.get(axum::http::header::RANGE) {
        None => Ok(Range::default_for(default)),
        Some(value) => {
            let value = value.to_str().map_err(|_| {
                ApiError::bad_request("the Range header must be ASCII, e.g. `id ..; max=200`")
            })?;
            range::parse(value, fields, default).map_err(|e| ApiError::bad_request(e.to_string()))
        }
    }
}

/// A list response: 200 with every item, or 206 with `Next-Range` when more items remain.
pub fn page_response<T, U: Serialize>(
    range: &Range,
    page: Page<T>,
    to_api: impl Fn(T) -> U,
) -> Response {
    let next = page
        .next_after
        .as_deref()
        .map(|last| range.next_range(last));
    let items: Vec<U> = page.items.into_iter().map(to_api).collect();
    match next.and_then(|n| HeaderValue::from_str(&n).ok()) {
        Some(next) => {
            let mut response = (StatusCode::PARTIAL_CONTENT, Json(items)).into_response();
            response.headers_mut().insert("next-range", next);
            response
        }
        None => Json(items).into_response(),
    }
}
