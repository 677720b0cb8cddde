//! `POST /apps/{app}/log-sessions` and the signed stream it points at: the app's durable log as
//! `text/event-stream`, each line an event whose id resumes the stream (`Last-Event-ID`).

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine;
use futures_util::{stream, StreamExt};
use serde::{Deserialize, Serialize};
use wharf_core::api::{ErrorBody, LogSession, LogSessionCreate};
use wharf_logs::{EventId, LogFilter, StoredLine};

use crate::error::{ApiError, ApiResult};
use crate::extract::{Body, Path, Query};
use crate::routes::sources::Signature;
use crate::AppState;

/// How long a `logplex_url` stays valid (a `--tail` reconnects with it).
const SESSION_TTL: Duration = Duration::from_secs(24 * 60 * 60);
/// What clients wait before reconnecting; short, so `heroku logs` ends promptly.
const RETRY: Duration = Duration::from_millis(100);

/// What a session asked for, carried in its (signed) URL so it survives server restarts.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Session {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    dyno: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    lines: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    source: Option<String>,
    #[serde(default)]
    tail: bool,
}

impl Session {
    fn filter(&self) -> LogFilter {
        LogFilter {
            lines: self.lines.map(|n| n as usize),
            source: self.source.clone(),
            process: self.dyno.clone(),
        }
    }
}

/// One event of a log stream, as a client's server-sent-events reader sees it (the document
/// shows this type; `event` writes them).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // only its schema is used
pub struct LogEvent {
    /// The line's id: send it as `Last-Event-ID` to resume after it.
    pub id: String,
    /// The line, as Heroku writes it: `<time> <source>[<process>]: <message>`.
    pub data: String,
}

fn stream_path(app_id: &str, token: &str) -> String {
    format!("/apps/{app_id}/log-stream/{token}")
}

/// Opens a log session; read its `logplex_url` (no token needed) for the lines.
#[utoipa::path(post, path = "/apps/{app}/log-sessions", tag = "logs", request_body = LogSessionCreate,
    params(("app" = String, Path, description = "The app's id or name")),
    responses(
        (status = 201, body = LogSession),
        (status = 404, body = ErrorBody),
        (status = 422, description = "A bad source or dyno filter", body = ErrorBody),
        crate::routes::CommonErrors,
    ))]
pub async fn create(
    State(state): State<AppState>,
    Path(app): Path<String>,
    Body(body): Body<LogSessionCreate>,
) -> ApiResult<(StatusCode, Json<LogSession>)> {
    let app = state.store.app(&app).await?;
    let session = Session {
        dyno: body.dyno,
        lines: body.lines,
        source: body.source,
        tail: body.tail.unwrap_or(false),
    };
    session
        .filter()
        .check()
        .map_err(|e| ApiError::invalid_params(e.to_string()))?;
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(serde_json::to_vec(&session).expect("a session serializes"));
    let path = stream_path(&app.id, &token);
    let url = state.signed_url("GET", &path, SESSION_TTL);
    let at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    Ok((
        StatusCode::CREATED,
        Json(LogSession {
            id: uuid::Uuid::new_v4().to_string(),
            logplex_url: url,
            created_at: at.clone(),
            updated_at: at,
        }),
    ))
}

/// A bad filter is the client's fault; anything else (an unreadable log) is ours.
fn log_error(error: wharf_logs::LogError) -> ApiError {
    match error {
        wharf_logs::LogError::InvalidSource { .. } | wharf_logs::LogError::InvalidAppId { .. } => {
            ApiError::invalid_params(error.to_string())
        }
        other => ApiError::internal(other),
    }
}

fn event(line: StoredLine) -> Result<Event, Infallible> {
    Ok(Event::default()
        .id(line.id.to_string())
        .data(line.line.heroku_format()))
}

/// The log lines of a session as server-sent events. Without `tail` the stream ends after the
/// past lines; with it, it stays open. `Last-Event-ID` resumes after that line.
#[utoipa::path(get, path = "/apps/{app_id}/log-stream/{session}", tag = "logs", security(()),
    params(
        ("app_id" = String, Path, description = "The app's id"),
        ("session" = String, Path, description = "The session, as in its logplex_url"),
        ("Last-Event-ID" = Option<String>, Header, description = "Resume after this event"),
        Signature,
    ),
    responses(
        (status = 200, description = "The lines, one event each (a first `retry:` sets the reconnect delay)", content_type = "text/event-stream", body = LogEvent),
        (status = 404, body = ErrorBody),
        crate::routes::SignedErrors,
    ))]
pub async fn stream(
    State(state): State<AppState>,
    Path((app_id, token)): Path<(String, String)>,
    Query(signature): Query<Signature>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    signature.check(&state, "GET", &stream_path(&app_id, &token))?;
    let session: Session = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(&token)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or_else(|| ApiError::not_found("unknown log session"))?;
    let app = state.store.app(&app_id).await?;
    let after = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<EventId>().ok());
    let log = state.control.logs().app(&app.id);
    let filter = session.filter();
    let retry = stream::once(async { Ok::<_, Infallible>(Event::default().retry(RETRY)) });
    if session.tail {
        let follow = log.follow(filter, after).await.map_err(log_error)?;
        let events = retry.chain(follow.map(event));
        return Ok(Sse::new(events)
            .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
            .into_response());
    }
    let lines = log.read(&filter).await.map_err(log_error)?;
    let lines: Vec<StoredLine> = lines
        .into_iter()
        .filter(|l| after.is_none_or(|a| l.id > a))
        .collect();
    let events = retry.chain(stream::iter(lines.into_iter().map(event)));
    Ok(Sse::new(events).into_response())
}
