//! The [`Router`] handle: the tables' setters, `serve`, metrics registration, and the
//! [`Routes`] implementation the process supervisor feeds.

use std::sync::Arc;
use std::time::Instant;

use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use wharf_core::backend::{BoxFuture, Routes, Upstream};
use wharf_logs::LogStore;

use crate::config::{AppRoute, RouterConfig};
use crate::metrics::Metrics;
use crate::table::Tables;

/// The HTTP router. Cheap to clone: clones share the tables, pools and metrics.
#[derive(Clone)]
pub struct Router {
    pub(crate) shared: Arc<Shared>,
}

/// What every connection and request of a router shares.
pub(crate) struct Shared {
    pub(crate) config: RouterConfig,
    pub(crate) tables: Tables,
    pub(crate) metrics: Metrics,
    /// The origin of the millisecond stamps kept in atomics.
    pub(crate) epoch: Instant,
}

impl Shared {
    /// Milliseconds since the router was made.
    pub(crate) fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

impl Router {
    /// A router with empty tables. With `logs`, every request for an app becomes a router line
    /// in that app's log.
    pub fn new(config: RouterConfig, logs: Option<LogStore>) -> Router {
        let metrics = Metrics::default();
        Router {
            shared: Arc::new(Shared {
                tables: Tables::new(
                    config.max_idle_per_upstream,
                    config.workers,
                    logs,
                    metrics.clone(),
                ),
                config,
                metrics,
                epoch: Instant::now(),
            }),
        }
    }

    /// Replaces the whole hostname → app table atomically. Hostnames are lowercase, no port.
    pub fn set_hosts(&self, hosts: Vec<(String, AppRoute)>) {
        self.shared.tables.set_hosts(hosts);
    }

    /// Serves until `shutdown` is cancelled, then stops accepting and lets requests in flight
    /// finish (bounded by drain_timeout).
    pub async fn serve(
        &self,
        listener: TcpListener,
        shutdown: CancellationToken,
    ) -> std::io::Result<()> {
        crate::serve::serve(Arc::clone(&self.shared), listener, shutdown).await
    }

    /// Registers the router's metric families into the server's registry.
    pub fn register_metrics(&self, registry: &mut Registry) {
        self.shared.metrics.register(registry);
    }
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Router")
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}

impl Routes for Router {
    fn set(&self, app_id: &str, upstreams: Vec<Upstream>) {
        self.shared.tables.set_upstreams(app_id, upstreams);
    }

    fn drain<'a>(&'a self, app_id: &'a str, upstream_id: &'a str) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let Some(slot) = self.shared.tables.app(app_id) else {
                return;
            };
            let Some(upstream) = slot.find(upstream_id) else {
                return;
            };
            upstream.start_drain();
            slot.count_in_rotation();
            tracing::debug!(app = app_id, upstream = upstream_id, "draining");
            upstream.drained(self.shared.config.drain_timeout).await;
        })
    }
}
