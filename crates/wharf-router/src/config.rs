//! The router's settings and the host table's entries.

use std::time::Duration;

/// How the router treats connections and requests. Read once, at [`crate::Router::new`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouterConfig {
    /// Longest wait for a TCP connection to an instance; then the next instance is tried, and
    /// when none is left the client gets 503. Default 5 s.
    pub connect_timeout: Duration,
    /// Longest wait from the request being sent (its body included) until the response head
    /// arrives; then the client gets 504 and the log says `code=H12`. Default 30 s.
    pub first_byte_timeout: Duration,
    /// A client connection on which no byte moves either way for this long, while no request on
    /// it is waiting for an instance's response head, is closed: an idle keep-alive connection, a
    /// stalled response body, a quiet WebSocket. A request body that stops arriving for this long
    /// ends its request with 408 (`code=H28`). (It is checked every quarter of this, so the connection
    /// closes after between 1 and 1.25 times this of quiet.) It also bounds how long a client
    /// may take to send a request head (slowloris). Default 60 s.
    pub idle_timeout: Duration,
    /// Longest [`wharf_core::backend::Routes::drain`] waits for the requests in flight on an
    /// instance, and longest [`crate::Router::serve`] waits for requests in flight after its
    /// shutdown signal. Default 30 s.
    pub drain_timeout: Duration,
    /// Largest request head accepted, in bytes; a bigger one gets 431. HTTP/1 can't go below
    /// 8 KiB (hyper's smallest read buffer). Default 32 KiB.
    pub max_header_bytes: usize,
    /// Idle keep-alive connections kept per instance. Default 32.
    pub max_idle_per_upstream: usize,
    /// Threads serving client connections, each running a single-threaded runtime of its own
    /// with its own idle upstream connections: a request never leaves the thread its connection
    /// was given to, so there is no work stealing or cross-thread wake-up per request. Accepted
    /// connections go to the thread with the fewest open. 0 serves every connection on the
    /// runtime that called [`crate::Router::serve`]. Default: one per core.
    pub workers: usize,
}

impl Default for RouterConfig {
    fn default() -> Self {
        RouterConfig {
            connect_timeout: Duration::from_secs(5),
            first_byte_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            drain_timeout: Duration::from_secs(30),
            max_header_bytes: 32 * 1024,
            max_idle_per_upstream: 32,
            workers: std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
        }
    }
}

/// Where a hostname goes: an app, by id (the key of the upstream table and of its log) and by
/// name (as metrics label it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppRoute {
    pub app_id: String,
    pub app_name: String,
    /// While set, the app's requests get a 503 maintenance page and never reach an instance.
    pub maintenance: bool,
    /// Plain-HTTP requests for a hostname a certificate covers are redirected to HTTPS (when
    /// the router serves TLS).
    pub https_redirect: bool,
}
