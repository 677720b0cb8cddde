//! Request extractors that turn bad input into clear `ApiError`s: JSON bodies and the `Range`
//! pagination header.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::de::DeserializeOwned;
use serde::Serialize;
use wharf_core::range::{self, Range};
use wharf_store::Page;

use crate::error::ApiError;

/// A JSON request body. Unlike axum's `Json`, it does not insist on a `Content-Type` (curl's
/// `-d` sends a form type) and it answers malformed input with the API's error shape.
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
        serde_json::from_slice(&bytes).map(Body).map_err(|e| {
            if e.is_data() {
                ApiError::invalid_params(format!("invalid request body: {e}"))
            } else {
                ApiError::bad_request(format!("request body is not valid JSON: {e}"))
            }
        })
    }
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
