//! `wharf serve-static`: the `web` process of static sites. Serves a directory over HTTP on the
//! port it is given, `index.html` for directories, with a plain 404 for what isn't there.

use std::path::Path;

use axum::handler::HandlerWithoutStateExt;
use axum::http::StatusCode;
use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::services::ServeDir;

/// Serves `dir` on `listener` until `shutdown` is cancelled.
pub async fn serve(
    listener: TcpListener,
    dir: &Path,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let files = ServeDir::new(dir)
        .append_index_html_on_directories(true)
        .fallback(not_found.into_service());
    let app = Router::new().fallback_service(files);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}

async fn not_found() -> (StatusCode, &'static str) {
    (StatusCode::NOT_FOUND, "404 Not Found\n")
}
