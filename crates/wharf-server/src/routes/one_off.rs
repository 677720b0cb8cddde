//! One-off processes (`wharf run`): the release's environment, the app's sandbox, `DYNO=run.N`.
//!
//! Detached (`POST /apps/{app}/dynos`): the output goes to the app's log. Attached the Heroku
//! way (`POST /apps/{app}/dynos` with `attach: true`, as `heroku run` does): the process waits
//! for its client at the `attach_url` (see `crate::rendezvous`). Attached over HTTP
//! (`POST /apps/{app}/run`, a wharf extension that `wharf run` uses): the request body is the process's stdin and the
//! response streams its output in frames, the last of which carries the exit status:
//! each frame is one type byte (`o` output, `x` exit), a big-endian u32 length, then that many
//! bytes (for `x`, the exit status as decimal text). A client that goes away kills the process.

use std::collections::BTreeMap;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;
use wharf_core::api::{self, DynoRelease, ErrorBody, NamedRef};
use wharf_core::backend::{OneOffKind, ReleaseSpec, TtySize};
use wharf_core::config::ConfigKey;

use crate::error::{ApiError, ApiResult};
use crate::extract::{Body as JsonBody, Path, Query};
use crate::AppState;

/// The media type of an attached run's response.
pub const ATTACH_MEDIA_TYPE: &str = "application/vnd.wharf.attach";

/// `POST /apps/{app}/dynos`, as Heroku's API takes it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DynoCreate {
    /// The command to run, through `sh -c`.
    #[schema(min_length = 1)]
    pub command: String,
    /// `true`: the process waits for a client at the returned `attach_url` (Heroku's
    /// rendezvous protocol, over TLS); else its output goes to the app's log.
    #[serde(default)]
    pub attach: Option<bool>,
    /// Extra environment variables for this process only, named as config vars are.
    #[serde(default)]
    pub env: Option<BTreeMap<String, String>>,
    /// Accepted for Heroku compatibility; one-offs run at the default size.
    #[serde(default)]
    pub size: Option<String>,
    /// Accepted for Heroku compatibility (`run`).
    #[serde(default, rename = "type")]
    pub process_type: Option<String>,
    /// Accepted for Heroku compatibility.
    #[serde(default)]
    #[schema(schema_with = time_to_live_schema)]
    pub time_to_live: Option<u64>,
    /// `true`: an attached process runs without a terminal (its input and output are plain
    /// streams). Otherwise it runs in one, as on Heroku.
    #[serde(default)]
    pub force_no_tty: Option<bool>,
}

/// `time_to_live` as serde reads it: any `u64` (JSON Schema's `int64` format stops at `i64::MAX`).
fn time_to_live_schema() -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Integer, Type::Null]))
        .minimum(Some(0))
        .maximum(Some(u64::MAX))
        .description(Some("Accepted for Heroku compatibility."))
        .build()
}

/// The `command` of an attached run.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RunQuery {
    /// The command to run, through `sh -c`.
    #[param(required = true, min_length = 1)]
    pub command: Option<String>,
    /// `true`: run in a terminal (`rows` × `cols`, 24 × 80 by default); the body is then typed
    /// at it and the output is what it shows.
    pub tty: Option<bool>,
    /// The terminal's height in lines.
    #[param(minimum = 1, maximum = 4096)]
    pub rows: Option<u16>,
    /// The terminal's width in columns.
    #[param(minimum = 1, maximum = 4096)]
    pub cols: Option<u16>,
    /// The terminal's type, the process's `TERM` (`xterm-256color` if not given).
    #[param(min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9._+-]+$")]
    pub term: Option<String>,
}

async fn release_spec(
    state: &AppState,
    app: &wharf_store::AppRecord,
) -> ApiResult<(wharf_store::ReleaseRecord, ReleaseSpec)> {
    let release = state.store.current_release(&app.id).await?.ok_or_else(|| {
        ApiError::invalid_params(format!("app `{}` has no release to run", app.name))
    })?;
    let spec = state.control.release_spec(&release).ok_or_else(|| {
        ApiError::invalid_params(format!(
            "app `{}` has not been deployed yet: `wharf deploy` it first",
            app.name
        ))
    })?;
    Ok((release, spec))
}

fn check_command(command: &str) -> ApiResult<()> {
    if command.trim().is_empty() {
        return Err(ApiError::invalid_params(
            "the command is empty: say what to run, e.g. `wharf run -- python manage.py migrate`",
        ));
    }
    // A process's arguments and environment are C strings.
    if command.contains('\0') {
        return Err(ApiError::invalid_params(
            "the command contains a NUL character, which no command can hold",
        ));
    }
    Ok(())
}

/// A one-off's extra environment: names as config vars have them, values without NUL.
fn check_env(env: &BTreeMap<String, String>) -> ApiResult<()> {
    for (name, value) in env {
        ConfigKey::parse(name).map_err(|e| ApiError::invalid_params(format!("env: {e}")))?;
        if value.contains('\0') {
            return Err(ApiError::invalid_params(format!(
                "env: the value of `{name}` contains a NUL character, which no environment variable can hold"
            )));
        }
    }
    Ok(())
}

/// Runs a one-off process as `run.N`. Detached, its output goes to the app's log; attached
/// (`attach: true`), it waits for a client at `attach_url`, Heroku's rendezvous protocol.
#[utoipa::path(post, path = "/apps/{app}/dynos", tag = "dynos", request_body = DynoCreate,
    params(("app" = String, Path, description = "The app's id or name")),
    responses(
        (status = 201, body = api::Dyno),
        (status = 404, body = ErrorBody),
        (status = 422, description = "An empty command or one with a NUL, a bad `env` name or value, an app never deployed, or `attach: true` on a server without a rendezvous listener", body = ErrorBody),
        crate::routes::CommonErrors,
    ))]
pub async fn create(
    State(state): State<AppState>,
    Path(app): Path<String>,
    JsonBody(body): JsonBody<DynoCreate>,
) -> ApiResult<(StatusCode, Json<api::Dyno>)> {
    check_command(&body.command)?;
    let env = body.env.unwrap_or_default();
    check_env(&env)?;
    let attach = body.attach == Some(true);
    if attach && state.rendezvous.address().is_none() {
        return Err(ApiError::invalid_params(
            "attached runs the Heroku way need a rendezvous listener: start the server with \
             WHARF_RENDEZVOUS_ADDR (e.g. 127.0.0.1:7444); `wharf run` attaches without one",
        ));
    }
    let app = state.store.app(&app).await?;
    let (release, mut spec) = release_spec(&state, &app).await?;
    // Attached the Heroku way, the process gets a terminal unless the client says not to; its
    // size is what the client sends as `LINES` and `COLUMNS` (80 × 24 without them).
    let terminal = (attach && body.force_no_tty != Some(true)).then(|| terminal_size(&env));
    spec.env.extend(env);
    let kind = match terminal {
        Some(size) => OneOffKind::Terminal(size),
        None if attach => OneOffKind::Attached,
        None => OneOffKind::Detached,
    };
    let one_off = state
        .control
        .backend()
        .run(
            &app.id,
            app.name.as_str(),
            &spec,
            &body.command,
            kind,
            state.control.sink(&app.id),
        )
        .await?;
    tracing::info!(app = %app.name, dyno = %one_off.name, attach, "one-off process started");
    let (name, pid) = (one_off.name.clone(), one_off.pid);
    let attach_url = if attach {
        Some(
            state
                .rendezvous
                .hold(app.name.as_str(), one_off)
                .ok_or_else(|| ApiError::internal("the rendezvous listener stopped"))?,
        )
    } else {
        None
    };
    let at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    Ok((
        StatusCode::CREATED,
        Json(api::Dyno {
            id: format!("{}.{name}", app.id),
            process_type: "run".to_owned(),
            state: if attach { "starting" } else { "up" }.to_owned(),
            command: body.command,
            size: "standard-1x".to_owned(),
            app: NamedRef {
                id: app.id.clone(),
                name: app.name.to_string(),
            },
            release: DynoRelease {
                id: release.id,
                version: release.version.get(),
            },
            attach_url,
            pid,
            node: None,
            port: None,
            restarts: 0,
            last_exit: None,
            next_restart_in: None,
            name,
            created_at: at.clone(),
            updated_at: at,
        }),
    ))
}

/// A one-off's terminal size from the `LINES` and `COLUMNS` its client sent (as `heroku run`
/// does when its output is a terminal); 80 × 24 where they are missing or not sizes.
fn terminal_size(env: &BTreeMap<String, String>) -> TtySize {
    let cells = |name: &str| {
        env.get(name)
            .and_then(|v| v.trim().parse::<u16>().ok())
            .filter(|n| (1..=4096).contains(n))
    };
    let default = TtySize::default();
    TtySize {
        rows: cells("LINES").unwrap_or(default.rows),
        cols: cells("COLUMNS").unwrap_or(default.cols),
    }
}

fn frame(kind: u8, payload: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(payload.len() + 5);
    out.push(kind);
    out.extend_from_slice(
        &u32::try_from(payload.len())
            .unwrap_or(u32::MAX)
            .to_be_bytes(),
    );
    out.extend_from_slice(payload);
    Bytes::from(out)
}

/// Kills an attached process (and what it started) when dropped (its client went away before
/// it ended), unless disarmed once the process has ended.
pub(crate) struct KillOnDrop(pub(crate) Option<wharf_core::backend::Kill>);

impl KillOnDrop {
    pub(crate) fn disarm(&mut self) {
        self.0 = None;
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(kill) = self.0.take() {
            kill();
        }
    }
}

/// Runs a one-off process attached: the request body is its stdin, the response streams its
/// output and ends with its exit status (see the module docs for the framing); with `tty=true`
/// it runs in a terminal, as `wharf run` asks when its own input and output are one. wharf
/// extension.
#[utoipa::path(post, path = "/apps/{app}/run", tag = "dynos",
    params(("app" = String, Path, description = "The app's id or name"), RunQuery),
    request_body(content = inline(crate::routes::RawBytes), content_type = "application/octet-stream", description = "The process's standard input"),
    responses(
        (status = 200, description = "Framed output, then the exit status", content(("application/vnd.wharf.attach"))),
        (status = 404, body = ErrorBody),
        (status = 422, description = "An empty command or one with a NUL, a terminal size out of range, or an app never deployed", body = ErrorBody),
        crate::routes::CommonErrors,
    ))]
pub async fn attach(
    State(state): State<AppState>,
    Path(app): Path<String>,
    Query(query): Query<RunQuery>,
    stdin: Body,
) -> ApiResult<Response> {
    let command = query.command.unwrap_or_default();
    check_command(&command)?;
    let default = TtySize::default();
    let size = TtySize {
        rows: query.rows.unwrap_or(default.rows),
        cols: query.cols.unwrap_or(default.cols),
    };
    for (name, cells) in [("rows", size.rows), ("cols", size.cols)] {
        if !(1..=4096).contains(&cells) {
            return Err(ApiError::invalid_params(format!(
                "{name} must be between 1 and 4096 (a terminal's size in character cells)"
            )));
        }
    }
    if let Some(term) = &query.term {
        let valid = (1..=64).contains(&term.len())
            && term
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._+-".contains(&b));
        if !valid {
            return Err(ApiError::invalid_params(
                "term must be a terminal type such as `xterm-256color` (letters, digits, `.`, `_`, `+`, `-`; at most 64)",
            ));
        }
    }
    let app = state.store.app(&app).await?;
    let (_, mut spec) = release_spec(&state, &app).await?;
    if let (Some(true), Some(term)) = (query.tty, query.term) {
        spec.env.insert("TERM".to_owned(), term);
    }
    let kind = if query.tty == Some(true) {
        OneOffKind::Terminal(size)
    } else {
        OneOffKind::Attached
    };
    let one_off = state
        .control
        .backend()
        .run(
            &app.id,
            app.name.as_str(),
            &spec,
            &command,
            kind,
            state.control.sink(&app.id),
        )
        .await?;
    tracing::info!(app = %app.name, dyno = %one_off.name, "attached one-off process started");
    if let Some(mut child_stdin) = one_off.stdin {
        tokio::spawn(async move {
            let mut body = stdin.into_data_stream();
            while let Some(Ok(chunk)) = body.next().await {
                if child_stdin.write_all(&chunk).await.is_err() {
                    break;
                }
                let _ = child_stdin.flush().await;
            }
            // End of the request body: the process sees end of input.
            drop(child_stdin);
        });
    }
    let guard = KillOnDrop(Some(one_off.kill.clone()));
    let output = one_off.output;
    let exit = one_off.exit;
    let frames = futures_util::stream::unfold(
        (output, Some(exit), Some(guard)),
        |(mut output, exit, guard)| async move {
            if let Some(rx) = output.as_mut() {
                if let Some(chunk) = rx.recv().await {
                    return Some((
                        Ok::<_, std::io::Error>(frame(b'o', &chunk)),
                        (output, exit, guard),
                    ));
                }
            }
            let exit = exit?;
            let code = exit.await.unwrap_or(255);
            // The process has ended: nothing left to kill.
            let mut guard = guard;
            if let Some(g) = guard.as_mut() {
                g.disarm();
            }
            Some((
                Ok(frame(b'x', code.to_string().as_bytes())),
                (None, None, guard),
            ))
        },
    );
    Ok((
        [(header::CONTENT_TYPE, ATTACH_MEDIA_TYPE)],
        Body::from_stream(frames),
    )
        .into_response())
}
