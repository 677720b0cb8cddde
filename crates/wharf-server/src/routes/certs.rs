//! `/apps/{app}/sni-endpoints`: an app's TLS certificates, in the shapes of Heroku's SNI
//! endpoints (so `heroku certs:add`, `certs`, `certs:info`, `certs:update` and `certs:remove`
//! work). An upload is checked before it is kept: a chain that parses, the certificate's own
//! key, dates that hold now. The router serves a certificate at once for every hostname of
//! the app it covers (see `wharf_control::certs`).

use std::sync::{Arc, OnceLock};

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use wharf_control::certs::ServedCertificate;
use wharf_control::Change;
use wharf_core::api::{self, ErrorBody, NamedRef, SniEndpointCreate};
use wharf_router::Certificate;
use wharf_store::{AppRecord, SOURCE_ACME, SOURCE_UPLOADED};

use crate::error::{ApiError, ApiResult};
use crate::extract::{Body, Path};
use crate::AppState;

/// The authorities the system trusts, read once: what `ca_signed?` is checked against.
fn system_roots() -> Arc<rustls::RootCertStore> {
    static ROOTS: OnceLock<Arc<rustls::RootCertStore>> = OnceLock::new();
    Arc::clone(ROOTS.get_or_init(|| {
        let mut roots = rustls::RootCertStore::empty();
        let found = rustls_native_certs::load_native_certs();
        for error in &found.errors {
            tracing::warn!(%error, "reading the system's certificate authorities");
        }
        roots.add_parsable_certificates(found.certs);
        Arc::new(roots)
    }))
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

pub(crate) fn to_api(app: &AppRecord, served: ServedCertificate) -> api::SniEndpoint {
    let record = served.record;
    let ssl_cert = match &served.parsed {
        Some(cert) => api::SslCert {
            id: record.id.clone(),
            ca_signed: cert.trusted_by(&system_roots(), now()),
            cert_domains: cert.hostnames.clone(),
            starts_at: wharf_router::rfc3339(cert.not_before),
            expires_at: wharf_router::rfc3339(cert.not_after),
            issuer: cert.issuer.clone(),
            subject: cert.subject.clone(),
            self_signed: cert.self_signed,
            acm: record.source == SOURCE_ACME,
        },
        None => api::SslCert {
            id: record.id.clone(),
            ca_signed: false,
            cert_domains: Vec::new(),
            starts_at: String::new(),
            expires_at: String::new(),
            issuer: String::new(),
            subject: String::new(),
            self_signed: false,
            acm: record.source == SOURCE_ACME,
        },
    };
    api::SniEndpoint {
        id: record.id,
        name: record.name,
        display_name: None,
        app: NamedRef {
            id: app.id.clone(),
            name: app.name.to_string(),
        },
        certificate_chain: record.certificate_chain,
        domains: served.serves,
        ssl_cert,
        created_at: record.created_at,
        updated_at: record.updated_at,
    }
}

/// Checks an uploaded pair; the error says what is wrong with it.
fn check(body: &SniEndpointCreate) -> ApiResult<Certificate> {
    let cert = Certificate::from_pem(&body.certificate_chain, &body.private_key)
        .map_err(|e| ApiError::invalid_params(e.to_string()))?;
    cert.check_dates(now())
        .map_err(|e| ApiError::invalid_params(e.to_string()))?;
    Ok(cert)
}

/// The app's certificate `ident` (id or name) with what it serves.
async fn find(state: &AppState, app: &AppRecord, ident: &str) -> ApiResult<ServedCertificate> {
    let all = state.control.app_certificates(&app.id).await?;
    all.into_iter()
        .find(|c| c.record.id == ident || c.record.name == ident)
        .ok_or_else(|| not_found(app, ident))
}

pub(crate) fn not_found(app: &AppRecord, ident: &str) -> ApiError {
    ApiError::not_found(format!(
        "app `{}` has no SNI endpoint `{ident}`: `wharf certs -a {}` lists them",
        app.name, app.name
    ))
}

/// After a certificate was stored: the router takes the app's new set; the certificate with
/// what it serves now.
async fn changed(
    state: &AppState,
    app: &AppRecord,
    id: &str,
    what: &'static str,
) -> ApiResult<ServedCertificate> {
    state
        .control
        .after(Change::DomainsChanged { app_id: &app.id })
        .await;
    let served = find(state, app, id).await?;
    tracing::info!(app = %app.name, certificate = %served.record.name, "{what}");
    Ok(served)
}

/// The app's certificates, oldest first.
#[utoipa::path(get, path = "/apps/{app}/sni-endpoints", tag = "certs",
    params(("app" = String, Path, description = "The app's id or name")),
    responses(
        (status = 200, body = [api::SniEndpoint]),
        (status = 404, body = ErrorBody),
        crate::routes::CommonErrors,
    ))]
pub async fn list(
    State(state): State<AppState>,
    Path(app): Path<String>,
) -> ApiResult<Json<Vec<api::SniEndpoint>>> {
    let app = state.store.app(&app).await?;
    let all = state.control.app_certificates(&app.id).await?;
    Ok(Json(all.into_iter().map(|c| to_api(&app, c)).collect()))
}

/// Adds a certificate (PEM, with its intermediates) and its private key (stored encrypted);
/// the router serves it over HTTPS at once for the app's hostnames it covers.
#[utoipa::path(post, path = "/apps/{app}/sni-endpoints", tag = "certs",
    request_body = SniEndpointCreate,
    params(("app" = String, Path, description = "The app's id or name")),
    responses(
        (status = 201, body = api::SniEndpoint),
        (status = 404, body = ErrorBody),
        (status = 422, description = "The certificate or key can't be read, the key is not the certificate's, or the certificate has expired", body = ErrorBody),
        crate::routes::CommonErrors,
    ))]
pub async fn create(
    State(state): State<AppState>,
    Path(app): Path<String>,
    Body(body): Body<SniEndpointCreate>,
) -> ApiResult<(StatusCode, Json<api::SniEndpoint>)> {
    check(&body)?;
    let app = state.store.app(&app).await?;
    let name = format!(
        "{}-{}",
        app.name,
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let record = state
        .store
        .add_certificate(
            &app.id,
            &name,
            SOURCE_UPLOADED,
            &body.certificate_chain,
            &body.private_key,
        )
        .await?;
    let served = changed(&state, &app, &record.id, "certificate added").await?;
    Ok((StatusCode::CREATED, Json(to_api(&app, served))))
}

/// One of the app's certificates, by id or name.
#[utoipa::path(get, path = "/apps/{app}/sni-endpoints/{sni_endpoint}", tag = "certs",
    params(
        ("app" = String, Path, description = "The app's id or name"),
        ("sni_endpoint" = String, Path, description = "The certificate's id or name"),
    ),
    responses((status = 200, body = api::SniEndpoint), (status = 404, body = ErrorBody), crate::routes::CommonErrors))]
pub async fn info(
    State(state): State<AppState>,
    Path((app, ident)): Path<(String, String)>,
) -> ApiResult<Json<api::SniEndpoint>> {
    let app = state.store.app(&app).await?;
    let served = find(&state, &app, &ident).await?;
    Ok(Json(to_api(&app, served)))
}

/// Replaces a certificate and its key (a renewal); connections open keep the old one, new
/// ones get the new one.
#[utoipa::path(patch, path = "/apps/{app}/sni-endpoints/{sni_endpoint}", tag = "certs",
    request_body = SniEndpointCreate,
    params(
        ("app" = String, Path, description = "The app's id or name"),
        ("sni_endpoint" = String, Path, description = "The certificate's id or name"),
    ),
    responses(
        (status = 200, body = api::SniEndpoint),
        (status = 404, body = ErrorBody),
        (status = 422, description = "The certificate or key can't be read, the key is not the certificate's, or the certificate has expired", body = ErrorBody),
        crate::routes::CommonErrors,
    ))]
pub async fn update(
    State(state): State<AppState>,
    Path((app, ident)): Path<(String, String)>,
    Body(body): Body<SniEndpointCreate>,
) -> ApiResult<Json<api::SniEndpoint>> {
    check(&body)?;
    let app = state.store.app(&app).await?;
    let current = find(&state, &app, &ident).await?;
    state
        .store
        .replace_certificate(
            &app.id,
            &current.record.id,
            SOURCE_UPLOADED,
            &body.certificate_chain,
            &body.private_key,
        )
        .await?;
    let served = changed(&state, &app, &current.record.id, "certificate replaced").await?;
    Ok(Json(to_api(&app, served)))
}

/// Removes a certificate; the router stops serving it at once.
#[utoipa::path(delete, path = "/apps/{app}/sni-endpoints/{sni_endpoint}", tag = "certs",
    params(
        ("app" = String, Path, description = "The app's id or name"),
        ("sni_endpoint" = String, Path, description = "The certificate's id or name"),
    ),
    responses(
        (status = 200, description = "The certificate as it was", body = api::SniEndpoint),
        (status = 404, body = ErrorBody),
        crate::routes::CommonErrors,
    ))]
pub async fn delete(
    State(state): State<AppState>,
    Path((app, ident)): Path<(String, String)>,
) -> ApiResult<Json<api::SniEndpoint>> {
    let app = state.store.app(&app).await?;
    let current = find(&state, &app, &ident).await?;
    state
        .store
        .remove_certificate(&app.id, &current.record.id)
        .await?;
    state
        .control
        .after(Change::DomainsChanged { app_id: &app.id })
        .await;
    tracing::info!(app = %app.name, certificate = %current.record.name, "certificate removed");
    Ok(Json(to_api(&app, current)))
}

/// Turns on Automated Certificate Management: every custom domain of the app gets a
/// certificate from the ACME directory (HTTP-01, answered by the router), renewed before it
/// expires. Each domain's `acm_status` shows where it stands.
#[utoipa::path(post, path = "/apps/{app}/acm", tag = "certs",
    params(("app" = String, Path, description = "The app's id or name")),
    responses(
        (status = 200, body = api::App),
        (status = 404, body = ErrorBody),
        (status = 422, description = "The router serves no HTTPS here", body = ErrorBody),
        crate::routes::CommonErrors,
    ))]
pub async fn acm_enable(
    State(state): State<AppState>,
    Path(app): Path<String>,
) -> ApiResult<Json<api::App>> {
    if !state.control.acme_available() {
        return Err(ApiError::invalid_params(
            "the router serves no HTTPS here: start the server with WHARF_ROUTER_TLS_ADDR (and \
             WHARF_ACME_DIRECTORY for another ACME server than Let's Encrypt)",
        ));
    }
    set_acm(&state, &app, Some(true), "ACM enabled").await
}

/// Turns Automated Certificate Management off; the app's ACME certificates are removed.
#[utoipa::path(delete, path = "/apps/{app}/acm", tag = "certs",
    params(("app" = String, Path, description = "The app's id or name")),
    responses((status = 200, body = api::App), (status = 404, body = ErrorBody), crate::routes::CommonErrors))]
pub async fn acm_disable(
    State(state): State<AppState>,
    Path(app): Path<String>,
) -> ApiResult<Json<api::App>> {
    let found = state.store.app(&app).await?;
    let off = wharf_store::AppUpdate {
        acm: Some(false),
        ..wharf_store::AppUpdate::default()
    };
    state.store.update_app(&found.id, &off).await?;
    state.control.remove_acme_certificates(&found.id).await?;
    set_acm(&state, &app, None, "ACM disabled").await
}

/// Tries every failing ACM domain of the app again now (`heroku certs:auto:refresh`).
#[utoipa::path(patch, path = "/apps/{app}/acm", tag = "certs",
    params(("app" = String, Path, description = "The app's id or name")),
    responses(
        (status = 200, body = api::App),
        (status = 404, body = ErrorBody),
        (status = 422, description = "ACM is off for the app", body = ErrorBody),
        crate::routes::CommonErrors,
    ))]
pub async fn acm_refresh(
    State(state): State<AppState>,
    Path(app): Path<String>,
) -> ApiResult<Json<api::App>> {
    let found = state.store.app(&app).await?;
    if !found.acm {
        return Err(ApiError::invalid_params(format!(
            "ACM is off for `{}`: turn it on with `wharf certs:auto:enable -a {}`",
            found.name, found.name
        )));
    }
    set_acm(&state, &app, None, "ACM refreshed").await
}

/// Turns ACM on or off (`None`: leaves it), resets the domains' waits (and, off, their
/// statuses), and has the certificate manager look now.
async fn set_acm(
    state: &AppState,
    app: &str,
    on: Option<bool>,
    what: &'static str,
) -> ApiResult<Json<api::App>> {
    let found = state.store.app(app).await?;
    let updated = match on {
        Some(on) => {
            let update = wharf_store::AppUpdate {
                acm: Some(on),
                ..wharf_store::AppUpdate::default()
            };
            state.store.update_app(&found.id, &update).await?
        }
        None => found,
    };
    state.store.reset_acm(&updated.id, updated.acm).await?;
    state
        .control
        .after(Change::DomainsChanged {
            app_id: &updated.id,
        })
        .await;
    tracing::info!(app = %updated.name, "{what}");
    Ok(Json(crate::routes::apps::to_api(updated, &state.links)))
}
