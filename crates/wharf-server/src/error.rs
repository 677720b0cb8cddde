//! The API's one error type: an HTTP status plus Heroku's `{"id", "message"}` body.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use wharf_core::api::ErrorBody;
use wharf_store::StoreError;

/// An error as the client sees it. 5xx errors are logged with their detail and shown to the
/// client without it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub id: &'static str,
    pub message: String,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(status: StatusCode, id: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            id,
            message: message.into(),
        }
    }

    /// The request is malformed (bad JSON, a bad header).
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// The request is well-formed but a value in it is not acceptable.
    pub fn invalid_params(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_params", message)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// Something failed on our side; `detail` goes to the log, not to the client.
    pub fn internal(detail: impl std::fmt::Display) -> ApiError {
        tracing::error!(error = %detail, "request failed");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "wharf hit an internal error; the server log has the details (search for this request's Request-Id)",
        )
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> ApiError {
        match err {
            StoreError::NotFound { kind, ident } => {
                ApiError::not_found(format!("{kind} `{ident}` not found"))
            }
            StoreError::Missing(message) => ApiError::not_found(message),
            StoreError::Conflict(message) => {
                ApiError::new(StatusCode::CONFLICT, "conflict", message)
            }
            StoreError::Invalid(message) => ApiError::invalid_params(message),
            running @ StoreError::ReleasePhaseRunning { .. } => {
                ApiError::new(StatusCode::CONFLICT, "conflict", running.to_string())
            }
            other => ApiError::internal(other),
        }
    }
}

impl From<wharf_core::backend::BackendError> for ApiError {
    fn from(err: wharf_core::backend::BackendError) -> ApiError {
        use wharf_core::backend::BackendError;
        match err {
            BackendError::UnknownApp { .. } | BackendError::UnknownTarget { .. } => {
                ApiError::not_found(err.to_string())
            }
            BackendError::ShuttingDown => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "wharf is shutting down and starts no new process; try again once it is back",
            ),
            BackendError::Failed(_) => ApiError::internal(wharf_core::error_chain(&err)),
        }
    }
}

impl From<wharf_control::GcError> for ApiError {
    fn from(err: wharf_control::GcError) -> ApiError {
        match err {
            wharf_control::GcError::Store(e) => e.into(),
            // Logged in full where it failed.
            other => ApiError::internal(other),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            id: self.id.to_owned(),
            message: self.message,
        };
        (self.status, Json(body)).into_response()
    }
}
