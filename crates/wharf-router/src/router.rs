//! The [`Router`] handle: the tables' setters, `serve`, metrics registration, and the
//! [`Routes`] implementation the process supervisor feeds.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use wharf_core::backend::{BoxFuture, Routes, Upstream};
use wharf_logs::LogStore;

use crate::config::{AppRoute, RouterConfig};
use crate::metrics::Metrics;
use crate::table::Tables;
use crate::tls::{Certificate, Certificates};

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
    /// What the TLS listener serves, by SNI.
    pub(crate) certificates: Arc<Certificates>,
    /// The TLS listener's port while [`Router::serve_tls`] runs, else 0: where plain-HTTP
    /// requests are redirected.
    pub(crate) tls_port: AtomicU16,
    /// ACME HTTP-01 answers by token, served on the plain listener whatever the host.
    pub(crate) challenges: ArcSwap<HashMap<String, String>>,
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
                certificates: Arc::default(),
                tls_port: AtomicU16::new(0),
                challenges: ArcSwap::default(),
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
        crate::serve::serve(Arc::clone(&self.shared), listener, None, shutdown).await
    }

    /// Replaces the certificates the TLS listener serves, atomically: new handshakes use the
    /// new set, open connections keep theirs.
    pub fn set_certificates(&self, certificates: &[Certificate]) {
        self.shared.certificates.set(certificates);
    }

    /// Answers ACME's HTTP-01 challenge `token` (`GET /.well-known/acme-challenge/TOKEN` on
    /// the plain listener, for any host) with `key_authorization` until it is removed.
    pub fn set_acme_challenge(&self, token: &str, key_authorization: &str) {
        self.shared.challenges.rcu(|current| {
            let mut next = HashMap::clone(current);
            next.insert(token.to_owned(), key_authorization.to_owned());
            next
        });
    }

    pub fn remove_acme_challenge(&self, token: &str) {
        self.shared.challenges.rcu(|current| {
            let mut next = HashMap::clone(current);
            next.remove(token);
            next
        });
    }

    /// Serves HTTPS (TLS 1.2 and 1.3; HTTP/2 or HTTP/1.1 by ALPN) until `shutdown` is
    /// cancelled, with the certificate for each client's SNI; requests carry
    /// `X-Forwarded-Proto: https`. While it runs, plain-HTTP requests for apps with
    /// `https_redirect` and a certificate are redirected here.
    pub async fn serve_tls(
        &self,
        listener: TcpListener,
        shutdown: CancellationToken,
    ) -> std::io::Result<()> {
        let port = listener.local_addr()?.port();
        let acceptor = tokio_rustls::TlsAcceptor::from(crate::tls::server_config(Arc::clone(
            &self.shared.certificates,
        )));
        self.shared.tls_port.store(port, Ordering::Relaxed);
        let served =
            crate::serve::serve(Arc::clone(&self.shared), listener, Some(acceptor), shutdown).await;
        self.shared.tls_port.store(0, Ordering::Relaxed);
        served
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
