//! wharf's HTTP router: one listener for every app, which routes each request by its Host to one
//! of the app's web instances and streams the exchange both ways. It owns the two route tables
//! (hostname → app, set by the server with [`Router::set_hosts`]; app → upstreams, set by the
//! process supervisor through [`wharf_core::backend::Routes`]), load balancing (least outstanding
//! requests, power of two choices), a keep-alive connection pool per upstream, retries of requests
//! that never reached an instance, timeouts, WebSocket upgrades, draining, error pages, one router
//! log line per request in the app's log and the router's metrics. It must not touch the
//! database, the image store or processes: everything it knows arrives through the two tables.
//!
//! # Layout
//!
//! - [`serve`](Router::serve) (`serve.rs`) accepts connections (HTTP/1.1 and h2c) and watches
//!   them for idleness and shutdown; `proxy.rs` handles one request: host lookup, upstream choice
//!   (`balance.rs`), connection (`pool.rs`: a request drives its upstream connection itself, no
//!   task per connection), retries and the response; `upgrade.rs` joins the two halves of an
//!   upgraded connection.
//! - `table.rs` holds the tables; `upstream.rs` the per-instance state kept across table swaps
//!   (in-flight count, pool, draining).
//! - `exchange.rs` follows one request to the end of its response body and then writes its log
//!   line (`access_log.rs`) and metrics (`metrics.rs`); `headers.rs` rewrites headers both ways;
//!   `pages.rs` renders the router's own error pages.
//! - `fuzz.rs` is not API: it runs the head handling of `proxy.rs` on raw bytes for
//!   `fuzz/fuzz_targets/router_head.rs`.

mod access_log;
mod balance;
mod config;
mod error;
mod exchange;
// Not API: an entry point for `fuzz/fuzz_targets/router_head.rs`.
#[doc(hidden)]
pub mod fuzz;
mod headers;
mod metrics;
mod pages;
mod pool;
mod proxy;
mod relay;
mod router;
mod serve;
mod table;
mod tls;
mod upgrade;
mod upstream;
mod worker;

pub use config::{AppRoute, RouterConfig};
pub use router::Router;
pub use tls::{rfc3339, Certificate, CertificateError};
