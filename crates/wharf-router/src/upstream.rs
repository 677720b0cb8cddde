//! What the router keeps about one upstream (a web instance) across route table swaps: its
//! requests in flight, its idle connections, whether it is draining.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use wharf_core::backend::Upstream;

use crate::pool::{Pool, UpstreamConn};

/// How long new requests keep away from an upstream that refused a connection, while the app
/// has other upstreams.
pub(crate) const AVOID_AFTER_CONNECT_FAILURE: Duration = Duration::from_millis(1500);

/// One upstream's state, shared by the route table and the requests on it. Keyed by
/// [`Upstream::id`]: a table update that keeps the id keeps the state.
pub(crate) struct UpstreamState {
    pub(crate) id: String,
    pub(crate) dyno: String,
    pub(crate) addr: SocketAddr,
    pub(crate) pool: Pool,
    /// Requests on this upstream whose response body has not ended or been dropped. A request
    /// increments it before reading `draining`, and `drain` sets `draining` before reading it,
    /// both `SeqCst`: either the request sees the drain and backs off, or the drain waits for it.
    in_flight: AtomicUsize,
    /// Set once by `drain`: no new request may start here.
    draining: AtomicBool,
    /// Out of the app's rotation (absent from the last table): connections are not kept idle.
    retired: AtomicBool,
    /// Woken when the last request in flight ends while draining.
    drained: Notify,
    /// Milliseconds on the router's clock until which new requests avoid this upstream.
    avoid_until: AtomicU64,
}

impl UpstreamState {
    /// `slots`: the router's worker threads, each of which keeps idle connections of its own.
    pub(crate) fn new(upstream: &Upstream, max_idle: usize, slots: usize) -> Arc<UpstreamState> {
        Arc::new(UpstreamState {
            id: upstream.id.clone(),
            dyno: upstream.dyno.clone(),
            addr: upstream.addr,
            pool: Pool::new(max_idle, slots),
            in_flight: AtomicUsize::new(0),
            draining: AtomicBool::new(false),
            retired: AtomicBool::new(false),
            drained: Notify::new(),
            avoid_until: AtomicU64::new(0),
        })
    }

    /// Counts a new request in flight, unless the upstream is draining.
    pub(crate) fn acquire(self: &Arc<Self>) -> Option<InFlight> {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        if self.draining.load(Ordering::SeqCst) {
            self.release();
            return None;
        }
        Some(InFlight {
            upstream: Arc::clone(self),
        })
    }

    fn release(&self) {
        if self.in_flight.fetch_sub(1, Ordering::SeqCst) == 1
            && self.draining.load(Ordering::SeqCst)
        {
            self.drained.notify_waiters();
        }
    }

    /// Requests in flight, for load balancing (a hint, read relaxed).
    pub(crate) fn load(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    pub(crate) fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    pub(crate) fn is_avoided(&self, now_ms: u64) -> bool {
        self.avoid_until.load(Ordering::Relaxed) > now_ms
    }

    /// Keeps new requests away for a moment, after a connection to it failed.
    pub(crate) fn avoid(&self, now_ms: u64) {
        let until = now_ms + u64::try_from(AVOID_AFTER_CONNECT_FAILURE.as_millis()).unwrap_or(0);
        self.avoid_until.fetch_max(until, Ordering::Relaxed);
    }

    /// Takes the upstream out of rotation (or back in): out, its idle connections are closed and
    /// no more are kept.
    pub(crate) fn set_retired(&self, retired: bool) {
        self.retired.store(retired, Ordering::Release);
        if retired {
            self.pool.clear();
        }
    }

    /// Keeps a connection whose exchange ended cleanly, while the upstream is in rotation.
    pub(crate) fn give_back(&self, conn: Box<UpstreamConn>) {
        if !self.retired.load(Ordering::Acquire) && !self.draining.load(Ordering::Relaxed) {
            self.pool.put(conn);
        }
    }

    /// Stops new requests from starting here, and closes the idle connections.
    pub(crate) fn start_drain(&self) {
        self.draining.store(true, Ordering::SeqCst);
        self.pool.clear();
    }

    /// Waits until no request is in flight here (after [`UpstreamState::start_drain`]), or
    /// `timeout`.
    pub(crate) async fn drained(&self, timeout: Duration) {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.drained.notified();
            tokio::pin!(notified);
            // Registered before the count is read, so a release in between still wakes us.
            notified.as_mut().enable();
            if self.in_flight.load(Ordering::SeqCst) == 0 {
                return;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                tracing::warn!(
                    upstream = %self.id,
                    in_flight = self.in_flight.load(Ordering::SeqCst),
                    "drain timed out with requests in flight"
                );
                return;
            }
        }
    }
}

/// One request counted in flight on an upstream, until dropped.
pub(crate) struct InFlight {
    upstream: Arc<UpstreamState>,
}

impl InFlight {
    pub(crate) fn upstream(&self) -> &Arc<UpstreamState> {
        &self.upstream
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.upstream.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn state() -> Arc<UpstreamState> {
        UpstreamState::new(
            &Upstream {
                id: "web.1-1".into(),
                dyno: "web.1".into(),
                addr: "127.0.0.1:9".parse().unwrap(),
                release_version: 1,
            },
            4,
            1,
        )
    }

    #[tokio::test]
    async fn drain_waits_for_requests_in_flight() {
        let up = state();
        let request = up.acquire().unwrap();
        let drain = tokio::spawn({
            let up = Arc::clone(&up);
            async move {
                up.start_drain();
                up.drained(Duration::from_secs(30)).await;
            }
        });
        // Once draining, no new request may start.
        let deadline = Instant::now() + Duration::from_secs(5);
        while !up.is_draining() {
            assert!(Instant::now() < deadline);
            tokio::task::yield_now().await;
        }
        assert!(up.acquire().is_none());
        assert!(!drain.is_finished());
        drop(request);
        tokio::time::timeout(Duration::from_secs(5), drain)
            .await
            .expect("drain resolves once the request ends")
            .unwrap();
    }

    #[tokio::test]
    async fn drain_without_requests_resolves_at_once() {
        let up = state();
        up.start_drain();
        tokio::time::timeout(Duration::from_secs(1), up.drained(Duration::from_secs(30)))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn drain_gives_up_after_its_timeout() {
        let up = state();
        let _request = up.acquire().unwrap();
        up.start_drain();
        let started = Instant::now();
        up.drained(Duration::from_millis(50)).await;
        assert!(started.elapsed() >= Duration::from_millis(50));
        assert_eq!(up.load(), 1);
    }
}
