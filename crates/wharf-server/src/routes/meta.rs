//! Health, the OpenAPI document, and answers for requests that match no route.

use axum::extract::State;
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use wharf_core::api::{ErrorBody, GarbageCollection, Health};

use crate::error::ApiError;
use crate::AppState;

/// Is the server up and its database reachable? Needs no token.
#[utoipa::path(get, path = "/healthz", tag = "meta", security(()),
    responses(
        (status = 200, description = "The server and its database are up", body = Health),
        (status = 503, description = "The database does not answer", body = ErrorBody),
        (status = 406, description = "The Accept header asks for an API version other than 3", body = ErrorBody),
    ))]
pub async fn healthz(State(state): State<AppState>) -> Result<Json<Health>, ApiError> {
    state.store.ping().await.map_err(|e| {
        tracing::warn!(error = %e, "health check: database unreachable");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the database does not answer",
        )
    })?;
    Ok(Json(Health {
        status: "ok".to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
    }))
}

/// This API's OpenAPI 3.1 document.
#[utoipa::path(get, path = "/openapi.json", tag = "meta",
    responses(
        (status = 200, description = "The OpenAPI document", body = Object),
        crate::routes::CommonErrors,
    ))]
pub async fn openapi_json() -> Response {
    Json(crate::openapi_document()).into_response()
}

/// Collects garbage now: images no recent, current or running release uses, and unpacked
/// release trees no process runs (see `WHARF_KEEP_RELEASES`). It also runs every
/// `WHARF_GC_INTERVAL`. wharf extension.
#[utoipa::path(post, path = "/gc", tag = "meta",
    responses(
        (status = 200, description = "What was freed", body = GarbageCollection),
        crate::routes::CommonErrors,
    ))]
pub async fn gc(State(state): State<AppState>) -> Result<Json<GarbageCollection>, ApiError> {
    // Runs to the end even if the client goes away.
    let task = tokio::spawn(async move { state.control.collect_garbage().await });
    Ok(Json(task.await.map_err(ApiError::internal)??))
}

/// Metrics in the Prometheus (OpenMetrics) text format: the router's requests by app and status
/// class, errors by code, latency histograms, requests in flight and upstreams in rotation;
/// and every app's instances by process type and state.
#[utoipa::path(get, path = "/metrics", tag = "meta",
    responses(
        (status = 200, description = "OpenMetrics text", content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8", body = String),
        crate::routes::CommonErrors,
    ))]
pub async fn metrics(State(state): State<AppState>) -> Result<Response, ApiError> {
    use prometheus_client::encoding::text::encode;
    use prometheus_client::metrics::family::Family;
    use prometheus_client::metrics::gauge::Gauge;

    let mut registry = prometheus_client::registry::Registry::default();
    state.router.register_metrics(&mut registry);
    let instances = Family::<Vec<(&'static str, String)>, Gauge>::default();
    for app in state.store.all_apps().await? {
        for instance in state.control.backend().status(&app.id) {
            instances
                .get_or_create(&vec![
                    ("app", app.name.to_string()),
                    ("process_type", instance.process_type.clone()),
                    ("state", instance.state.as_str().to_owned()),
                ])
                .inc();
        }
    }
    registry.register(
        "wharf_instances",
        "App instances by process type and state",
        instances,
    );
    let mut text = String::new();
    encode(&mut text, &registry).map_err(ApiError::internal)?;
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response())
}

pub async fn no_route(method: Method, uri: Uri) -> Response {
    if uri.path().starts_with("/v2/") {
        return registry_miss(&method, &uri);
    }
    ApiError::not_found(format!(
        "no route for {method} {}: /openapi.json lists the API",
        uri.path()
    ))
    .into_response()
}

/// A request under `/v2/` that no registry route takes, answered as registries answer: a write
/// is refused as such (the registry is read-only), anything else names what is served.
fn registry_miss(method: &Method, uri: &Uri) -> Response {
    use crate::routes::registry::RegistryError;
    if method == Method::GET || method == Method::HEAD {
        RegistryError::no_route(uri).into_response()
    } else {
        RegistryError::read_only(method).into_response()
    }
}

pub async fn method_not_allowed(method: Method, uri: Uri) -> Response {
    if uri.path().starts_with("/v2/") {
        return registry_miss(&method, &uri);
    }
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!(
            "{method} is not allowed on {}: /openapi.json lists the methods each path takes",
            uri.path()
        ),
    )
    .into_response()
}
