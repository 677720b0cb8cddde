//! `/apps/{app}/domains`: the hostnames the router sends to an app. Every app has its default
//! hostname `<app>.<WHARF_DOMAIN>` (listed with kind `heroku`, which can't be removed); custom
//! domains are added, removed, and given a certificate here. A hostname belongs to one app.
//! Each domain names the certificate (SNI endpoint) the router serves it with over HTTPS.

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

/// Which certificate serves each of an app's hostnames.
struct Served(Vec<(String, NamedRef)>);

impl Served {
    async fn of(state: &AppState, app: &AppRecord) -> ApiResult<Served> {
        let certs = state.control.app_certificates(&app.id).await?;
        Ok(Served(
            certs
                .into_iter()
                .flat_map(|c| {
                    let named = NamedRef {
                        id: c.record.id,
                        name: c.record.name,
                    };
                    c.serves.into_iter().map(move |h| (h, named.clone()))
                })
                .collect(),
        ))
    }

    fn endpoint(&self, hostname: &str) -> Option<NamedRef> {
        self.0
            .iter()
            .find(|(h, _)| h == hostname)
            .map(|(_, n)| n.clone())
    }
}

/// The app's default hostname, as a domain. Its id is the app's.
fn default_domain(app: &AppRecord, state: &AppState, served: &Served) -> api::Domain {
    let hostname = state.links.hostname(app.name.as_str());
    let (created, updated) = (app.created_at.clone(), app.updated_at.clone());
    let endpoint = served.endpoint(&hostname);
    domain(
        app,
        app.id.clone(),
        hostname,
        None,
        endpoint,
        (created, updated),
    )
}

fn to_api(record: DomainRecord, app: &AppRecord, state: &AppState, served: &Served) -> api::Domain {
    let cname = state.links.hostname(app.name.as_str());
    let times = (record.created_at, record.updated_at);
    let hostname = record.hostname.to_string();
    let endpoint = served.endpoint(&hostname);
    let mut domain = domain(app, record.id, hostname, Some(cname), endpoint, times);
    if app.acm {
        domain.acm_status = Some(
            record
                .acm_status
                .unwrap_or_else(|| wharf_control::acme::STATUS_PENDING.to_owned()),
        );
        domain.acm_status_reason = record.acm_status_reason;
    }
    domain
}

/// A domain of `app`: a custom one when it has a `cname` (the app's default hostname, to point
/// DNS at), else the default hostname itself (kind `heroku`, as Heroku's clients expect).
fn domain(
    app: &AppRecord,
    id: String,
    hostname: String,
    cname: Option<String>,
    sni_endpoint: Option<NamedRef>,
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
        sni_endpoint,
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
    let served = Served::of(&state, &app).await?;
    let mut domains = vec![default_domain(&app, &state, &served)];
    for domain in state.store.domains(&app.id).await? {
        domains.push(to_api(domain, &app, &state, &served));
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
    let domain = &state.links.domain;
    if hostname.is_within(domain) {
        return Err(ApiError::invalid_params(format!(
            "`{hostname}` is under `{domain}`, where every app has its own `<app>.{domain}`: \
             choose a hostname outside `{domain}`, or rename the app"
        )));
    }
    let app = state.store.app(&app).await?;
    let certificate = match &body.sni_endpoint {
        Some(ident) => Some(certificate_for(&state, &app, ident, hostname.as_str()).await?),
        None => None,
    };
    let mut domain = state.store.add_domain(&app.id, &hostname).await?;
    if let Some(certificate) = certificate {
        domain = state
            .store
            .set_domain_certificate(&app.id, &domain.id, Some(&certificate))
            .await?;
    }
    state
        .control
        .after(Change::DomainsChanged { app_id: &app.id })
        .await;
    tracing::info!(app = %app.name, hostname = %hostname, "domain added");
    let served = Served::of(&state, &app).await?;
    Ok((
        StatusCode::CREATED,
        Json(to_api(domain, &app, &state, &served)),
    ))
}

/// The id of the app's certificate `ident` (id or name), which must cover `hostname`.
async fn certificate_for(
    state: &AppState,
    app: &AppRecord,
    ident: &str,
    hostname: &str,
) -> ApiResult<String> {
    let certs = state.control.app_certificates(&app.id).await?;
    let Some(cert) = certs
        .into_iter()
        .find(|c| c.record.id == ident || c.record.name == ident)
    else {
        return Err(crate::routes::certs::not_found(app, ident));
    };
    match &cert.parsed {
        Some(parsed) if parsed.covers(hostname) => Ok(cert.record.id),
        Some(parsed) => Err(ApiError::invalid_params(format!(
            "SNI endpoint `{ident}` is for {}, not `{hostname}`: choose a certificate that names it",
            parsed.hostnames.join(", ")
        ))),
        None => Err(ApiError::invalid_params(format!(
            "SNI endpoint `{ident}` can't be read: replace it (`wharf certs:update`)"
        ))),
    }
}

/// Chooses the certificate the router serves a custom domain with (`heroku domains:update
/// --cert`, or `null` for any of the app's that covers it).
#[utoipa::path(patch, path = "/apps/{app}/domains/{domain}", tag = "domains",
    request_body = api::DomainUpdate,
    params(
        ("app" = String, Path, description = "The app's id or name"),
        ("domain" = String, Path, description = "The domain's id or hostname"),
    ),
    responses(
        (status = 200, body = api::Domain),
        (status = 404, body = ErrorBody),
        (status = 422, description = "The certificate doesn't name the hostname, or the domain is the default one", body = ErrorBody),
        crate::routes::CommonErrors,
    ))]
pub async fn update(
    State(state): State<AppState>,
    Path((app, domain)): Path<(String, String)>,
    Body(body): Body<api::DomainUpdate>,
) -> ApiResult<Json<api::Domain>> {
    let app = state.store.app(&app).await?;
    if is_default(&app, &domain, &state) {
        return Err(ApiError::invalid_params(format!(
            "`{}` is the app's default hostname: it is served by whichever of the app's certificates names it",
            state.links.hostname(app.name.as_str())
        )));
    }
    let found = not_found_names_app(state.store.domain(&app.id, &domain).await, &app, &domain)?;
    let certificate = match &body.sni_endpoint {
        Some(ident) => Some(certificate_for(&state, &app, ident, found.hostname.as_str()).await?),
        None => None,
    };
    let updated = state
        .store
        .set_domain_certificate(&app.id, &found.id, certificate.as_deref())
        .await?;
    state
        .control
        .after(Change::DomainsChanged { app_id: &app.id })
        .await;
    let served = Served::of(&state, &app).await?;
    Ok(Json(to_api(updated, &app, &state, &served)))
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
    let served = Served::of(&state, &app).await?;
    if is_default(&app, &domain, &state) {
        return Ok(Json(default_domain(&app, &state, &served)));
    }
    let found = not_found_names_app(state.store.domain(&app.id, &domain).await, &app, &domain)?;
    Ok(Json(to_api(found, &app, &state, &served)))
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
    let served = Served::of(&state, &app).await?;
    Ok(Json(to_api(removed, &app, &state, &served)))
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
