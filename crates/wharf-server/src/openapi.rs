//! The OpenAPI 3.1 document, assembled from the handlers' own `#[utoipa::path]` descriptions by
//! registering each route through `utoipa_axum`: a route that is served is a route that is
//! documented.

use axum::http::header::AUTHORIZATION;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::routes::{
    account, apps, builds, certs, config_vars, domains, dynos, formation, git, logs, meta, one_off,
    registry, releases, sources, stacks, tokens,
};
use crate::AppState;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "wharf",
        description = "wharf's HTTP API, shaped like the Heroku Platform API v3. Send \
            `Accept: application/vnd.heroku+json; version=3` (or no Accept) and \
            `Authorization: Bearer <token>`. Errors are `{\"id\", \"message\"}`. Lists take a \
            `Range` header (`id ..; max=200`) and answer 206 with `Next-Range` while more remain.",
        license(name = "Apache-2.0")
    ),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    tags(
        (name = "account", description = "The account a token belongs to"),
        (name = "apps", description = "Applications"),
        (name = "config-vars", description = "An app's environment; every change makes a release"),
        (name = "releases", description = "Immutable, numbered (build, config) pairs"),
        (name = "sources", description = "Source archives to build, uploaded to signed URLs"),
        (name = "builds", description = "Source → image, streamed as it happens; a success makes a release"),
        (name = "formation", description = "How many instances of each process type run, and how big"),
        (name = "dynos", description = "The running instances: list, restart, stop"),
        (name = "domains", description = "The hostnames the router sends to an app"),
        (name = "certs", description = "TLS certificates the router serves an app's hostnames with (SNI endpoints)"),
        (name = "logs", description = "The app's durable log, as server-sent events"),
        (name = "git", description = "git's smart HTTP protocol: `git push` deploys"),
        (name = "stacks", description = "The base images apps are built and run on"),
        (name = "registry", description = "The apps' release images, read-only, over the OCI Distribution API: `docker pull <wharf>/<app>:v<N>`"),
        (name = "meta", description = "Health and this document"),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(format!("an API token in the {AUTHORIZATION} header")))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "basic",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Basic)
                    .description(Some(
                        "any user name and an API token as the password, as git sends it",
                    ))
                    .build(),
            ),
        );
    }
}

/// The routes that need a token, with their documentation.
fn authenticated_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(account::info))
        .routes(routes!(tokens::list, tokens::create))
        .routes(routes!(tokens::info, tokens::revoke))
        .routes(routes!(stacks::list, stacks::create))
        .routes(routes!(stacks::info))
        .routes(routes!(apps::list, apps::create))
        .routes(routes!(apps::list_owned))
        .routes(routes!(apps::addons))
        .routes(routes!(certs::list, certs::create))
        .routes(routes!(certs::info, certs::update, certs::delete))
        .routes(routes!(
            certs::acm_enable,
            certs::acm_disable,
            certs::acm_refresh
        ))
        .routes(routes!(apps::info, apps::update, apps::delete))
        .routes(routes!(config_vars::info, config_vars::update))
        .routes(routes!(releases::list, releases::create))
        .routes(routes!(releases::diff))
        .routes(routes!(releases::rebase))
        .routes(routes!(releases::info))
        .routes(routes!(releases::config_vars))
        .routes(routes!(releases::manifests))
        .routes(routes!(sources::create))
        .routes(routes!(builds::create, builds::list))
        .routes(routes!(builds::info))
        .routes(routes!(formation::list, formation::batch_update))
        .routes(routes!(formation::info, formation::update))
        .routes(routes!(dynos::list, dynos::restart_all, one_off::create))
        .routes(routes!(one_off::attach))
        .routes(routes!(dynos::info, dynos::restart_one))
        .routes(routes!(dynos::restart_type))
        .routes(routes!(dynos::stop_one))
        .routes(routes!(dynos::stop_type))
        .routes(routes!(domains::list, domains::create))
        .routes(routes!(domains::info, domains::update, domains::delete))
        .routes(routes!(logs::create))
        .routes(routes!(meta::metrics))
        .routes(routes!(meta::gc))
        .routes(routes!(registry::push))
        .routes(routes!(meta::openapi_json))
}

/// The routes anyone may call.
fn public_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(meta::healthz))
        .routes(routes!(sources::upload, sources::download))
        .routes(routes!(builds::output))
        .routes(routes!(releases::output))
        .routes(routes!(stacks::output))
        .routes(routes!(logs::stream))
        // git authenticates in its own way (Basic, and a 401 that makes it ask).
        .routes(routes!(git::info_refs))
        .routes(routes!(git::receive_pack))
        .routes(routes!(git::upload_pack))
        // The registry authenticates as registries do (a token challenge), with its own errors.
        .routes(routes!(registry::base))
        .routes(routes!(registry::token))
        .routes(routes!(registry::tags))
        .routes(routes!(registry::manifest))
        .routes(routes!(registry::blob))
}

/// Every route, the authenticated ones behind the token check.
pub(crate) fn api_router(state: AppState) -> OpenApiRouter<AppState> {
    authenticated_routes()
        .route_layer(axum::middleware::from_fn_with_state(
            state,
            crate::auth::require_token,
        ))
        .merge(public_routes())
}

/// The OpenAPI document as served at `/openapi.json`.
pub fn openapi_document() -> &'static utoipa::openapi::OpenApi {
    static DOCUMENT: std::sync::OnceLock<utoipa::openapi::OpenApi> = std::sync::OnceLock::new();
    DOCUMENT.get_or_init(|| authenticated_routes().merge(public_routes()).into_openapi())
}
