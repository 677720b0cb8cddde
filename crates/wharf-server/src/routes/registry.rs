//! `/v2/…`: wharf's image store, read-only, over the OCI Distribution API, so that `docker
//! pull`, `skopeo`, podman and orchestrators' nodes take an app's release images from wharf
//! itself. Each app is a repository named like the app; each release's image is tagged `v<N>`,
//! and `latest` is the current release's.
//!
//! Authentication is the registry token flow: a request without credentials gets `401` and a
//! `WWW-Authenticate: Bearer realm=…/v2/token` challenge; the client asks `/v2/token` for a
//! token with Basic credentials (any user name; an API token, or a pull token, as the password)
//! and a scope `repository:<app>:pull`, and sends the token it gets back. Tokens are pull tokens
//! (signing.rs): one app's, for a while. An API token may be sent directly too.
//!
//! Errors are in the registry's own shape, `{"errors": [{"code", "message", "detail"}]}`, which
//! registry clients show to their users.
//!
//! `POST /apps/{app}/registry-pushes` (an API route, with the API's tokens and errors) copies a
//! release image to another registry, `WHARF_REGISTRY_URL`.

use std::collections::BTreeSet;
use std::time::Duration;

use axum::body::Body;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE, HOST, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use wharf_core::api::{self, ErrorBody};
use wharf_image::Digest;
use wharf_store::{AppRecord, StoreError, TaggedImage};

use crate::error::{ApiError, ApiResult};
use crate::signing::{PullGrant, SignatureError};
use crate::AppState;

/// How long the pull tokens orchestrators hand their nodes stay valid: a node may pull an
/// image long after its release was made (a task rescheduled, a node added).
const NODE_PULL_TOKEN_TTL: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// Release images as an orchestrator's nodes pull them from this endpoint: by digest, from
/// `address`, with a pull token of the app's.
pub struct EndpointImages {
    address: String,
    signer: crate::signing::UrlSigner,
}

impl std::fmt::Debug for EndpointImages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EndpointImages")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

impl EndpointImages {
    /// Images at `address` (`host:port`, where the nodes reach wharf's API), with tokens
    /// `signer` makes. An address no node can reach (`0.0.0.0`, none) is refused.
    pub fn new(
        address: String,
        signer: crate::signing::UrlSigner,
    ) -> Result<EndpointImages, crate::StartError> {
        let host = address
            .rsplit_once(':')
            .map_or(address.as_str(), |(host, _)| host)
            .trim_matches(['[', ']']);
        if host.is_empty()
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_unspecified())
        {
            return Err(crate::StartError::NodesCantPull { registry: address });
        }
        Ok(EndpointImages { address, signer })
    }
}

impl wharf_core::backend::ImageSource for EndpointImages {
    fn pullable<'a>(
        &'a self,
        app_id: &'a str,
        app_name: &'a str,
        _version: u32,
        digest: &'a str,
    ) -> wharf_core::backend::BoxFuture<
        'a,
        Result<wharf_core::backend::PullableImage, wharf_core::backend::BackendError>,
    > {
        Box::pin(async move {
            Ok(wharf_core::backend::PullableImage {
                reference: format!("{}/{app_name}@{digest}", self.address),
                registry: self.address.clone(),
                credentials: Some((
                    "wharf".to_owned(),
                    self.signer.pull_token(Some(app_id), NODE_PULL_TOKEN_TTL),
                )),
            })
        })
    }
}

/// How long a token from `/v2/token` lets its holder pull.
pub const TOKEN_TTL: Duration = Duration::from_secs(60 * 60);

/// What the registry calls itself in challenges (`service=`).
const SERVICE: &str = "wharf";

const API_VERSION_HEADER: &str = "docker-distribution-api-version";
const DIGEST_HEADER: &str = "docker-content-digest";

/// One error, as registry clients read it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RegistryErrorItem {
    /// `UNAUTHORIZED`, `DENIED`, `NAME_UNKNOWN`, `MANIFEST_UNKNOWN`, `BLOB_UNKNOWN`,
    /// `NAME_INVALID`, `DIGEST_INVALID`, `UNSUPPORTED`
    pub code: &'static str,
    pub message: String,
    /// Always empty: the message says it all.
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
}

/// The registry's error body.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RegistryErrors {
    pub errors: Vec<RegistryErrorItem>,
}

/// An error answer of the registry, with the challenge a 401 carries.
#[derive(Debug)]
pub struct RegistryError {
    status: StatusCode,
    code: &'static str,
    message: String,
    challenge: Option<String>,
}

impl RegistryError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> RegistryError {
        RegistryError {
            status,
            code,
            message: message.into(),
            challenge: None,
        }
    }

    fn unauthorized(message: impl Into<String>, challenge: String) -> RegistryError {
        RegistryError {
            challenge: Some(challenge),
            ..RegistryError::new(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", message)
        }
    }

    fn denied(message: impl Into<String>) -> RegistryError {
        RegistryError::new(StatusCode::FORBIDDEN, "DENIED", message)
    }

    fn internal(detail: impl std::fmt::Display) -> RegistryError {
        tracing::error!(error = %detail, "registry request failed");
        RegistryError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "UNKNOWN",
            "wharf hit an internal error; the server log has the details",
        )
    }

    /// What a write gets: the registry only serves what builds made.
    pub fn read_only(method: &Method) -> RegistryError {
        RegistryError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "UNSUPPORTED",
            format!(
                "{method} is not supported: wharf's registry is read-only; images come from builds \
                 (`git push`, `wharf deploy`), and `wharf registry:push` copies them to another registry"
            ),
        )
    }

    /// A path under `/v2/` that names nothing.
    pub fn no_route(uri: &Uri) -> RegistryError {
        RegistryError::new(
            StatusCode::NOT_FOUND,
            "NAME_UNKNOWN",
            format!(
                "no registry route for {}: wharf serves /v2/<app>/manifests/<tag or digest>, \
                 /v2/<app>/blobs/<digest> and /v2/<app>/tags/list",
                wharf_core::name::shown(uri.path())
            ),
        )
    }
}

impl From<StoreError> for RegistryError {
    fn from(err: StoreError) -> RegistryError {
        RegistryError::internal(err)
    }
}

impl IntoResponse for RegistryError {
    fn into_response(self) -> Response {
        let body = RegistryErrors {
            errors: vec![RegistryErrorItem {
                code: self.code,
                message: self.message,
                detail: serde_json::json!({}),
            }],
        };
        let mut response = (self.status, Json(body)).into_response();
        let headers = response.headers_mut();
        headers.insert(API_VERSION_HEADER, HeaderValue::from_static("registry/2.0"));
        if let Some(value) = self.challenge.and_then(|c| HeaderValue::from_str(&c).ok()) {
            headers.insert(WWW_AUTHENTICATE, value);
        }
        response
    }
}

type RegistryResult<T> = Result<T, RegistryError>;

/// What the credentials of a request let it pull.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Access {
    /// An API token: every app.
    Everything,
    /// A pull token: this app (by id), or none.
    App(Option<String>),
}

/// The credentials a request carries: a Bearer token or a Basic password.
fn credential(headers: &HeaderMap) -> RegistryResult<Option<String>> {
    crate::auth::credential(headers).map_err(|_| {
        RegistryError::new(
            StatusCode::BAD_REQUEST,
            "UNAUTHORIZED",
            "the Authorization header must be `Bearer <token>` or Basic with a token as the password",
        )
    })
}

/// The access `token` gives, or why it gives none.
async fn access_of(state: &AppState, token: &str) -> RegistryResult<Result<Access, String>> {
    if crate::signing::is_pull_token(token) {
        return Ok(match state.signer.check_pull_token(token) {
            Ok(PullGrant { app_id, .. }) => Ok(Access::App(app_id)),
            Err(SignatureError::Expired) => Err("the pull token expired: ask for a new one".into()),
            Err(_) => Err("the pull token is not valid: ask for a new one".into()),
        });
    }
    Ok(match state.store.authenticate(token).await? {
        Some(_) => Ok(Access::Everything),
        None => Err("the API token is unknown or revoked".into()),
    })
}

/// `scheme://host` the client reached this server at, for the challenge's realm.
fn base_url(state: &AppState, headers: &HeaderMap, over_tls: bool) -> String {
    let forwarded_https = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("https"));
    let host = headers.get(HOST).and_then(|v| v.to_str().ok()).filter(|h| {
        !h.is_empty()
            && h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
    });
    match host {
        Some(host) => {
            let scheme = if over_tls || forwarded_https {
                "https"
            } else {
                "http"
            };
            format!("{scheme}://{host}")
        }
        None => state.links.public_url.trim_end_matches('/').to_owned(),
    }
}

/// The `WWW-Authenticate` challenge that sends a client to the token endpoint.
fn challenge(base: &str, scope: Option<&str>) -> String {
    let mut challenge = format!("Bearer realm=\"{base}/v2/token\",service=\"{SERVICE}\"");
    if let Some(scope) = scope {
        challenge.push_str(&format!(",scope=\"{scope}\""));
    }
    challenge
}

/// Whether the request came in over the TLS listener (put in its extensions by tls.rs).
#[derive(Debug, Clone, Copy)]
pub struct OverTls;

/// The caller's access, or a 401 with the challenge for `app`'s repository.
async fn require_access(
    state: &AppState,
    headers: &HeaderMap,
    over_tls: bool,
    app: Option<&str>,
) -> RegistryResult<Access> {
    let scope = app.map(|app| format!("repository:{app}:pull"));
    let challenge = || challenge(&base_url(state, headers, over_tls), scope.as_deref());
    let Some(token) = credential(headers)? else {
        return Err(RegistryError::unauthorized(
            "authentication required: `docker login` (or `skopeo login`) with any user name and a \
             wharf API token as the password",
            challenge(),
        ));
    };
    access_of(state, &token)
        .await?
        .map_err(|why| RegistryError::unauthorized(why, challenge()))
}

/// The app named (or with the id) `name`, if there is one. Names that no app can have are
/// not looked up.
async fn find_app(state: &AppState, name: &str) -> RegistryResult<Option<AppRecord>> {
    let plausible = !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if !plausible {
        return Ok(None);
    }
    match state.store.app(name).await {
        Ok(app) => Ok(Some(app)),
        Err(StoreError::NotFound { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The app a repository names, if `access` may pull it. Unknown apps and apps the access
/// doesn't cover answer alike to a pull token, so a token for one app can't learn which other
/// apps exist.
async fn repository(
    state: &AppState,
    headers: &HeaderMap,
    over_tls: bool,
    name: &str,
) -> RegistryResult<AppRecord> {
    let access = require_access(state, headers, over_tls, Some(name)).await?;
    let app = find_app(state, name).await?;
    match (access, app) {
        (Access::Everything, Some(app)) => Ok(app),
        (Access::Everything, None) => Err(RegistryError::new(
            StatusCode::NOT_FOUND,
            "NAME_UNKNOWN",
            format!(
                "there is no app `{}`: a repository is an app's name",
                wharf_core::name::shown(name)
            ),
        )),
        (Access::App(Some(id)), Some(app)) if id == app.id => Ok(app),
        (Access::App(_), _) => {
            let scope = format!("repository:{name}:pull");
            let base = base_url(state, headers, over_tls);
            Err(RegistryError {
                challenge: Some(format!(
                    "{},error=\"insufficient_scope\"",
                    challenge(&base, Some(&scope))
                )),
                ..RegistryError::new(
                    StatusCode::UNAUTHORIZED,
                    "DENIED",
                    format!(
                        "this token can't pull `{}`: a pull token pulls the one app it was made for",
                        wharf_core::name::shown(name)
                    ),
                )
            })
        }
    }
}

fn version_header() -> [(&'static str, &'static str); 1] {
    [(API_VERSION_HEADER, "registry/2.0")]
}

/// The registry's base: `200 {}` to a client with credentials, so it knows it speaks the
/// Distribution API and is logged in; otherwise `401` with the token challenge.
#[utoipa::path(get, path = "/v2/", tag = "registry", security(("bearer" = []), ("basic" = [])),
    responses(
        (status = 200, description = "The credentials are good", body = Object),
        (status = 400, description = "The Authorization header is malformed", body = RegistryErrors),
        (status = 401, description = "No or bad credentials; `WWW-Authenticate` says where to get a token", body = RegistryErrors),
    ))]
pub async fn base(
    State(state): State<AppState>,
    over_tls: Option<axum::Extension<OverTls>>,
    headers: HeaderMap,
) -> RegistryResult<Response> {
    require_access(&state, &headers, over_tls.is_some(), None).await?;
    Ok((version_header(), Json(serde_json::json!({}))).into_response())
}

/// What `/v2/token` is asked.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
// Clients send all of these; only the scope decides anything.
#[allow(dead_code)]
pub struct TokenQuery {
    /// The registry's name, as its challenge gave it (`wharf`)
    pub service: Option<String>,
    /// `repository:<app>:pull`; absent when a client only checks its credentials (`docker
    /// login`)
    #[param(pattern = "^repository:[^:\\s]+:[a-z*]+(,[a-z*]+)*$")]
    pub scope: Option<String>,
    /// The user name the client logs in as (any)
    pub account: Option<String>,
    /// Ignored (OAuth2 clients send it)
    pub client_id: Option<String>,
    /// Ignored (OAuth2 clients send it)
    pub offline_token: Option<String>,
}

/// A token, as registry clients read it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RegistryToken {
    /// A pull token for the scope's app (none without a scope)
    pub token: String,
    /// The same token, for OAuth2 clients
    pub access_token: String,
    /// Seconds the token stays valid
    pub expires_in: u64,
    /// When it was made (RFC 3339)
    pub issued_at: String,
}

/// The app a `repository:<app>:pull` scope names, checked.
fn scoped_app(scope: &str) -> RegistryResult<&str> {
    let invalid = |why: &str| {
        RegistryError::new(
            StatusCode::BAD_REQUEST,
            "UNSUPPORTED",
            format!(
                "the scope `{}` {why}: ask for `repository:<app>:pull`, one app at a time",
                wharf_core::name::shown(scope)
            ),
        )
    };
    if scope.split(' ').filter(|s| !s.is_empty()).count() > 1 {
        return Err(invalid("names more than one resource"));
    }
    let mut parts = scope.trim().splitn(3, ':');
    let (Some("repository"), Some(name), Some(actions)) =
        (parts.next(), parts.next(), parts.next())
    else {
        return Err(invalid("is not a repository scope"));
    };
    if !actions.split(',').any(|a| a == "pull") {
        return Err(RegistryError::denied(format!(
            "wharf's registry is read-only: the scope `{}` asks for `{}`, and only `pull` is granted",
            wharf_core::name::shown(scope),
            wharf_core::name::shown(actions)
        )));
    }
    Ok(name)
}

/// Trades credentials for a pull token: Basic auth with any user name and an API token (any
/// app) or a pull token (its own app) as the password, and the scope of the repository to pull.
#[utoipa::path(get, path = "/v2/token", tag = "registry", params(TokenQuery),
    security(("basic" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "A pull token for the scope", body = RegistryToken),
        (status = 400, description = "The scope or the Authorization header is malformed", body = RegistryErrors),
        (status = 401, description = "No or bad credentials", body = RegistryErrors),
        (status = 403, description = "The credentials may not pull the scope's app, or the scope asks for more than pull", body = RegistryErrors),
    ))]
pub async fn token(
    State(state): State<AppState>,
    over_tls: Option<axum::Extension<OverTls>>,
    headers: HeaderMap,
    query: Result<Query<TokenQuery>, QueryRejection>,
) -> RegistryResult<Response> {
    let Query(query) = query.map_err(|e| {
        RegistryError::new(
            StatusCode::BAD_REQUEST,
            "UNSUPPORTED",
            format!("the query string is not valid: {e}; send `?service=wharf&scope=repository:<app>:pull`"),
        )
    })?;
    let access = require_access(&state, &headers, over_tls.is_some(), None).await?;
    let app_id = match query.scope.as_deref() {
        None => match access {
            // A pull token stays its own app's.
            Access::App(id) => id,
            Access::Everything => None,
        },
        Some(scope) => {
            let name = scoped_app(scope)?;
            let app = find_app(&state, name).await?;
            match (access, app) {
                (Access::Everything, Some(app)) => Some(app.id),
                (Access::Everything, None) => {
                    return Err(RegistryError::new(
                        StatusCode::NOT_FOUND,
                        "NAME_UNKNOWN",
                        format!(
                            "there is no app `{}`: a repository is an app's name",
                            wharf_core::name::shown(name)
                        ),
                    ))
                }
                (Access::App(Some(id)), Some(app)) if id == app.id => Some(app.id),
                (Access::App(_), _) => {
                    return Err(RegistryError::denied(format!(
                        "these credentials can't pull `{}`: a pull token pulls the one app it was made for",
                        wharf_core::name::shown(name)
                    )))
                }
            }
        }
    };
    let token = state.signer.pull_token(app_id.as_deref(), TOKEN_TTL);
    Ok((
        version_header(),
        Json(RegistryToken {
            access_token: token.clone(),
            token,
            expires_in: TOKEN_TTL.as_secs(),
            issued_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        }),
    )
        .into_response())
}

/// An app's tags.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TagList {
    /// The repository: the app's name
    pub name: String,
    /// `v<N>` for each release whose image is stored, oldest first, then `latest` (the current
    /// release's) when there is one
    pub tags: Vec<String>,
}

/// The app's releases whose images are still stored.
async fn stored_images(state: &AppState, app: &AppRecord) -> RegistryResult<Vec<TaggedImage>> {
    let images = state.store.release_images(&app.id).await?;
    let store = state.control.images();
    Ok(images
        .into_iter()
        .filter(|i| Digest::parse(&i.digest).is_ok_and(|d| store.has_blob(&d)))
        .collect())
}

fn path_error(e: PathRejection) -> RegistryError {
    RegistryError::new(
        StatusCode::BAD_REQUEST,
        "NAME_INVALID",
        format!("the path is not valid: {e}"),
    )
}

/// The app's tags: one per release (`v<N>`) whose image is stored, and `latest`.
#[utoipa::path(get, path = "/v2/{app}/tags/list", tag = "registry",
    security(("bearer" = []), ("basic" = [])),
    params(("app" = String, Path, description = "The app's name")),
    responses(
        (status = 200, description = "The tags", body = TagList),
        (status = 400, description = "The path or the Authorization header is malformed", body = RegistryErrors),
        (status = 401, description = "No or bad credentials, or a token for another app", body = RegistryErrors),
        (status = 404, description = "No such app", body = RegistryErrors),
    ))]
pub async fn tags(
    State(state): State<AppState>,
    over_tls: Option<axum::Extension<OverTls>>,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
) -> RegistryResult<Response> {
    let Path(name) = path.map_err(path_error)?;
    let app = repository(&state, &headers, over_tls.is_some(), &name).await?;
    let images = stored_images(&state, &app).await?;
    let mut tags: Vec<String> = images.iter().map(|i| i.version.to_string()).collect();
    if images.iter().any(|i| i.succeeded) {
        tags.push("latest".to_owned());
    }
    Ok((
        version_header(),
        Json(TagList {
            name: app.name.to_string(),
            tags,
        }),
    )
        .into_response())
}

/// The manifest digest `reference` names in the app's repository.
async fn resolve(state: &AppState, app: &AppRecord, reference: &str) -> RegistryResult<Digest> {
    let images = stored_images(state, app).await?;
    let unknown =
        |what: String| RegistryError::new(StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN", what);
    if reference.starts_with("sha256:") {
        let digest = Digest::parse(reference).map_err(|e| {
            RegistryError::new(StatusCode::BAD_REQUEST, "DIGEST_INVALID", e.to_string())
        })?;
        return if images.iter().any(|i| i.digest == digest.to_string()) {
            Ok(digest)
        } else {
            Err(unknown(format!(
                "`{}` has no release with the image {digest}",
                app.name
            )))
        };
    }
    let found = if reference == "latest" {
        images.iter().rev().find(|i| i.succeeded)
    } else {
        let version = reference
            .strip_prefix('v')
            .and_then(|n| n.parse::<u32>().ok())
            .ok_or_else(|| {
                unknown(format!(
                    "there is no tag `{}`: tags are `v<N>`, one per release, and `latest`",
                    wharf_core::name::shown(reference)
                ))
            })?;
        images.iter().find(|i| i.version.get() == version)
    };
    let found = found.ok_or_else(|| {
        unknown(format!(
            "`{}` has no stored image tagged `{}`: `wharf releases -a {}` lists its releases \
             (garbage collection keeps the newest ones' images)",
            app.name,
            wharf_core::name::shown(reference),
            app.name
        ))
    })?;
    Digest::parse(&found.digest).map_err(RegistryError::internal)
}

/// The path of a manifest (for the OpenAPI document; handlers read it as a tuple).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub struct ManifestPath {
    /// The app's name
    app: String,
    /// `v<N>`, `latest`, or `sha256:<hex>`
    #[param(pattern = "^(latest|v[0-9]+|sha256:[0-9a-f]{64})$")]
    reference: String,
}

/// The path of a blob (for the OpenAPI document; handlers read it as a tuple).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub struct BlobPath {
    /// The app's name
    app: String,
    /// `sha256:<hex>`
    #[param(pattern = "^sha256:[0-9a-f]{64}$")]
    digest: String,
}

/// A release image's manifest, by tag (`v<N>`, `latest`) or by digest.
#[utoipa::path(get, path = "/v2/{app}/manifests/{reference}", tag = "registry",
    security(("bearer" = []), ("basic" = [])),
    params(ManifestPath),
    responses(
        (status = 200, description = "The OCI image manifest; `Docker-Content-Digest` is its digest",
            content_type = "application/vnd.oci.image.manifest.v1+json", body = Object),
        (status = 400, description = "The path or the Authorization header is malformed", body = RegistryErrors),
        (status = 401, description = "No or bad credentials, or a token for another app", body = RegistryErrors),
        (status = 404, description = "No such app, tag or image", body = RegistryErrors),
    ))]
pub async fn manifest(
    State(state): State<AppState>,
    over_tls: Option<axum::Extension<OverTls>>,
    headers: HeaderMap,
    path: Result<Path<(String, String)>, PathRejection>,
) -> RegistryResult<Response> {
    let Path((name, reference)) = path.map_err(path_error)?;
    let app = repository(&state, &headers, over_tls.is_some(), &name).await?;
    let digest = resolve(&state, &app, &reference).await?;
    let images = state.control.images().clone();
    let wanted = digest.clone();
    let bytes = tokio::task::spawn_blocking(move || images.read_blob(&wanted))
        .await
        .map_err(RegistryError::internal)?
        .map_err(|e| {
            RegistryError::new(
                StatusCode::NOT_FOUND,
                "MANIFEST_UNKNOWN",
                format!("the image {digest} can't be read: {e}"),
            )
        })?;
    let media_type = serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()
        .and_then(|m| m["mediaType"].as_str().map(str::to_owned))
        .unwrap_or_else(|| wharf_image::MANIFEST_MEDIA_TYPE.to_owned());
    let length = bytes.len() as u64;
    content(Body::from(bytes), &media_type, &digest, length)
}

/// A manifest's or blob's answer: its bytes, named by their digest.
fn content(body: Body, media_type: &str, digest: &Digest, length: u64) -> RegistryResult<Response> {
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_str(media_type).map_err(RegistryError::internal)?,
    );
    headers.insert(CONTENT_LENGTH, HeaderValue::from(length));
    headers.insert(
        DIGEST_HEADER,
        HeaderValue::from_str(&digest.to_string()).map_err(RegistryError::internal)?,
    );
    headers.insert(API_VERSION_HEADER, HeaderValue::from_static("registry/2.0"));
    Ok(response)
}

/// Whether `digest` is a blob of one of the app's stored images (a manifest, a config, a
/// layer): a repository serves its own blobs only, whatever else the store holds.
async fn owns_blob(state: &AppState, app: &AppRecord, digest: &Digest) -> RegistryResult<bool> {
    let manifests: Vec<Digest> = stored_images(state, app)
        .await?
        .iter()
        .filter_map(|i| Digest::parse(&i.digest).ok())
        .collect();
    let images = state.control.images().clone();
    let wanted = digest.clone();
    tokio::task::spawn_blocking(move || {
        manifests.iter().any(|manifest| {
            if *manifest == wanted {
                return true;
            }
            let Ok(image) = images.image(manifest) else {
                return false;
            };
            let mut blobs: BTreeSet<String> = image
                .manifest
                .layers()
                .iter()
                .map(|l| l.digest().to_string())
                .collect();
            blobs.insert(image.manifest.config().digest().to_string());
            blobs.contains(&wanted.to_string())
        })
    })
    .await
    .map_err(RegistryError::internal)
}

/// A blob of one of the app's images: a layer, a config, a manifest.
#[utoipa::path(get, path = "/v2/{app}/blobs/{digest}", tag = "registry",
    security(("bearer" = []), ("basic" = [])),
    params(BlobPath),
    responses(
        (status = 200, description = "The blob's bytes; `Docker-Content-Digest` is its digest",
            content_type = "application/octet-stream", body = Vec<u8>),
        (status = 400, description = "The digest, the path or the Authorization header is malformed", body = RegistryErrors),
        (status = 401, description = "No or bad credentials, or a token for another app", body = RegistryErrors),
        (status = 404, description = "No such app, or no such blob in its images", body = RegistryErrors),
    ))]
pub async fn blob(
    State(state): State<AppState>,
    over_tls: Option<axum::Extension<OverTls>>,
    headers: HeaderMap,
    path: Result<Path<(String, String)>, PathRejection>,
) -> RegistryResult<Response> {
    let Path((name, digest)) = path.map_err(path_error)?;
    let app = repository(&state, &headers, over_tls.is_some(), &name).await?;
    let digest = Digest::parse(&digest).map_err(|e| {
        RegistryError::new(StatusCode::BAD_REQUEST, "DIGEST_INVALID", e.to_string())
    })?;
    let unknown = || {
        RegistryError::new(
            StatusCode::NOT_FOUND,
            "BLOB_UNKNOWN",
            format!("`{}`'s images have no blob {digest}", app.name),
        )
    };
    if !owns_blob(&state, &app, &digest).await? {
        return Err(unknown());
    }
    let file = match tokio::fs::File::open(state.control.images().blob_path(&digest)).await {
        Ok(file) => file,
        // Collected since the manifest was read.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(unknown()),
        Err(e) => return Err(RegistryError::internal(e)),
    };
    let length = file
        .metadata()
        .await
        .map_err(RegistryError::internal)?
        .len();
    content(
        Body::from_stream(tokio_util::io::ReaderStream::new(file)),
        "application/octet-stream",
        &digest,
        length,
    )
}

/// Pushes a release's image (the current release's unless `release` says) to the server's
/// registry (`WHARF_REGISTRY_URL`), as `<app>:v<N>` there, with the same digest. Answers when
/// the image is there. Send `{}` for the current release. wharf extension.
#[utoipa::path(post, path = "/apps/{app}/registry-pushes", tag = "registry",
    params(("app" = String, Path, description = "The app's id or name")),
    request_body(content = api::RegistryPushCreate, content_type = "application/json"),
    responses(
        (status = 201, description = "The image is in the registry", body = api::RegistryPush),
        (status = 404, description = "No such app or release", body = ErrorBody),
        (status = 422, description = "No registry is configured, or the release has no stored image", body = ErrorBody),
        (status = 502, description = "The registry refused the image or could not be reached", body = ErrorBody),
        crate::routes::CommonErrors,
    ))]
pub async fn push(
    State(state): State<AppState>,
    crate::extract::Path(app): crate::extract::Path<String>,
    crate::extract::Body(body): crate::extract::Body<api::RegistryPushCreate>,
) -> ApiResult<(StatusCode, Json<api::RegistryPush>)> {
    let app = state.store.app(&app).await?;
    if state.control.push_target().is_none() {
        return Err(ApiError::invalid_params(
            wharf_control::PushError::NoRegistry.to_string(),
        ));
    }
    let wanted = body.release;
    let release = match wanted.as_deref() {
        Some(ident) => {
            state
                .store
                .release(&app.id, &wharf_store::ReleaseRef::parse(ident))
                .await?
        }
        None => state.store.current_release(&app.id).await?.ok_or_else(|| {
            ApiError::invalid_params(format!(
                "{} has no current release: deploy it first",
                app.name
            ))
        })?,
    };
    // To the end even if the client goes away: the registry gets a whole image or none.
    let task = tokio::spawn(async move {
        let mut progress =
            |line: &str| tracing::info!(app = %app.name, "registry push: {}", line.trim());
        state
            .control
            .push(app.name.as_str(), &release, &mut progress)
            .await
            .map(|pushed| (pushed, release))
    });
    let (pushed, release) = task.await.map_err(ApiError::internal)?.map_err(|e| {
        use wharf_control::PushError;
        let message = wharf_core::error_chain(&e);
        match e {
            PushError::Push { .. } => {
                ApiError::new(StatusCode::BAD_GATEWAY, "bad_gateway", message)
            }
            _ => ApiError::invalid_params(message),
        }
    })?;
    Ok((
        StatusCode::CREATED,
        Json(api::RegistryPush {
            image: pushed.reference,
            digest: pushed.digest.to_string(),
            release: api::DynoRelease {
                id: release.id,
                version: release.version.get(),
            },
        }),
    ))
}
