//! `/apps/{app}/domains`: the hostnames the router sends to an app. Every app has its default
//! hostname `<app>.<WHARF_DOMAIN>` (listed with kind `heroku`, which can't be removed); custom
//! domains are added and removed here. A hostname belongs to one app.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use wharf_core::api::{self, DomainCreate, ErrorBody, NamedRef};
use wharf_core::domain::Hostname;
use wharf_store::{AppRecord, DomainRecord};

use crate::error::{ApiError, ApiResult};
use crate::extract::{Body, Path};
use crate::AppState;
use wharf_control::Change;

/// The app's default hostname, as a domain. Its id is the app's.
fn default_domain(app: &AppRecord, state: &AppState) -> api::Domain {
    let hostname = state.links.hostname(app.name.as_str());
    let (created, updated) = (app.created_at.clone(), app.updated_at.clone());
    domain(app, app.id.clone(), hostname, None, (created, updated))
}

fn to_api(record: DomainRecord, app: &AppRecord, state: &AppState) -> api::Domain {
    let cname = state.links.hostname(app.name.as_str());
    let times = (record.created_at, record.updated_at);
    domain(
        app,
        record.id,
        record.hostname.to_string(),
        Some(cname),
        times,
    )
}

/// A domain of `app`: a custom one when it has a `cname` (the app's default hostname, to point
/// DNS at), else the default hostname itself (kind `heroku`, as Heroku's clients expect).
fn domain(
    app: &AppRecord,
    id: String,
    hostname: String,
    cname: Option<String>,
    (created_at, updated_at): (String, String),
) -> api::Domain {
    let custom = cname.is_some();
    api::Domain {
        id,
        app: NamedRef {
            id: app.id.clone(),
            name: app.name.to_string(),
        },
        hostname,
        kind: if custom { "custom" } else { "heroku" }.to_owned(),
        cname,
        status: if custom { "succeeded" } else { "none" }.to_owned(),
        acm_status: None,
        acm_status_reason: None,
        sni_endpoint: None,
        created_at,
        updated_at,
    }
}

/// The app's hostnames: its default one first, then its custom domains, oldest first.
#[utoipa::path(get, path = "/apps/{app}/domains", tag = "domains",
    params(("app" = String, Path, description = "The app's id or name")),
    responses(
        (status = 200, body = [api::Domain]),
        (status = 404, body = ErrorBody),
        crate::routes::CommonErrors,
    ))]
pub async fn list(
    State(state): State<AppState>,
    Path(app): Path<String>,
) -> ApiResult<Json<Vec<api::Domain>>> {
    let app = state.store.app(&app).await?;
    let mut domains = vec![default_domain(&app, &state)];
    for domain in state.store.domains(&app.id).await? {
        domains.push(to_api(domain, &app, &state));
    }
    Ok(Json(domains))
}

/// Adds a custom domain; the router serves it at once. Point its DNS at the `cname`.
#[utoipa::path(post, path = "/apps/{app}/domains", tag = "domains", request_body = DomainCreate,
    params(("app" = String, Path, description = "The app's id or name")),
    responses(
        (status = 201, body = api::Domain),
        (status = 404, body = ErrorBody),
        (status = 409, description = "The hostname belongs to an app already", body = ErrorBody),
        (status = 422, description = "Not a valid hostname, or one under wharf's own domain", body = ErrorBody),
        crate::routes::CommonErrors,
    ))]
pub async fn create(
    State(state): State<AppState>,
    Path(app): Path<String>,
    Body(body): Body<DomainCreate>,
) -> ApiResult<(StatusCode, Json<api::Domain>)> {
    let hostname = Hostname::parse(body.hostname.trim())
        .map_err(|e| ApiError::invalid_params(e.to_string()))?;
    if body.sni_endpoint.is_some() {
        return Err(ApiError::invalid_params(
            "sni_endpoint must be null: wharf's router serves plain HTTP; terminate TLS in front of it",
        ));
    }
    let domain = &state.links.domain;
    if hostname.is_within(domain) {
        return Err(ApiError::invalid_params(format!(
            "`{hostname}` is under `{domain}`, where every app has its own `<app>.{domain}`: \
             choose a hostname outside `{domain}`, or rename the app"
        )));
    }
    let app = state.store.app(&app).await?;
    let domain = state.store.add_domain(&app.id, &hostname).await?;
    state
        .control
        .after(Change::DomainsChanged { app_id: &app.id })
        .await;
    tracing::info!(app = %app.name, hostname = %hostname, "domain added");
    Ok((StatusCode::CREATED, Json(to_api(domain, &app, &state))))
}

/// The app's SNI endpoints (TLS certificates of its own): always none, as the router serves apps
/// over plain HTTP. Heroku's clients ask for them before adding a domain.
#[utoipa::path(get, path = "/apps/{app}/sni-endpoints", tag = "domains",
    params(("app" = String, Path, description = "The app's id or name")),
    responses((status = 200, description = "None", body = [Object]), (status = 404, body = ErrorBody), crate::routes::CommonErrors))]
pub async fn sni_endpoints(
    State(state): State<AppState>,
    Path(app): Path<String>,
) -> ApiResult<Json<Vec<serde_json::Value>>> {
    state.store.app(&app).await?;
    Ok(Json(Vec::new()))
}

/// One of the app's domains, by id or hostname.
#[utoipa::path(get, path = "/apps/{app}/domains/{domain}", tag = "domains",
    params(
        ("app" = String, Path, description = "The app's id or name"),
        ("domain" = String, Path, description = "The domain's id or hostname"),
    ),
    responses((status = 200, body = api::Domain), (status = 404, body = ErrorBody), crate::routes::CommonErrors))]
pub async fn info(
    State(state): State<AppState>,
    Path((app, domain)): Path<(String, String)>,
) -> ApiResult<Json<api::Domain>> {
    let app = state.store.app(&app).await?;
    if is_default(&app, &domain, &state) {
        return Ok(Json(default_domain(&app, &state)));
    }
    let found = not_found_names_app(state.store.domain(&app.id, &domain).await, &app, &domain)?;
    Ok(Json(to_api(found, &app, &state)))
}

/// Removes a custom domain; the router stops serving it at once.
#[utoipa::path(delete, path = "/apps/{app}/domains/{domain}", tag = "domains",
    params(
        ("app" = String, Path, description = "The app's id or name"),
        ("domain" = String, Path, description = "The domain's id or hostname"),
    ),
    responses(
        (status = 200, description = "The domain as it was", body = api::Domain),
        (status = 404, body = ErrorBody),
        (status = 422, description = "The app's default hostname can't be removed", body = ErrorBody),
        crate::routes::CommonErrors,
    ))]
pub async fn delete(
    State(state): State<AppState>,
    Path((app, domain)): Path<(String, String)>,
) -> ApiResult<Json<api::Domain>> {
    let app = state.store.app(&app).await?;
    if is_default(&app, &domain, &state) {
        return Err(ApiError::invalid_params(format!(
            "`{}` is the app's default hostname and can't be removed (rename the app to change it)",
            state.links.hostname(app.name.as_str())
        )));
    }
    let removed = not_found_names_app(
        state.store.remove_domain(&app.id, &domain).await,
        &app,
        &domain,
    )?;
    state
        .control
        .after(Change::DomainsChanged { app_id: &app.id })
        .await;
    tracing::info!(app = %app.name, hostname = %removed.hostname, "domain removed");
    Ok(Json(to_api(removed, &app, &state)))
}

fn is_default(app: &AppRecord, ident: &str, state: &AppState) -> bool {
    ident == app.id || ident.eq_ignore_ascii_case(&state.links.hostname(app.name.as_str()))
}

/// A store answer about the app's domain `ident`, with a not-found message that names the app.
fn not_found_names_app(
    found: wharf_store::Result<DomainRecord>,
    app: &AppRecord,
    ident: &str,
) -> ApiResult<DomainRecord> {
    match found {
        Err(wharf_store::StoreError::NotFound { .. }) => Err(ApiError::not_found(format!(
            "app `{}` has no domain `{ident}`: `wharf domains -a {}` lists them",
            app.name, app.name
        ))),
        other => Ok(other?),
    }
}
