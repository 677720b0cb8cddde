//! Connections to one upstream: making them, and keeping idle HTTP/1.1 ones for reuse.
//!
//! A connection is not driven by a task of its own: the request using it polls it (while waiting
//! for the response head, then from the response body), so bytes read from the upstream reach
//! the client without a hop between tasks. An idle connection is not polled at all; one the
//! upstream closed meanwhile is noticed when it is next used, before the request is written.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::error::ConnectError;
use crate::relay::Relay;
use crate::worker;

/// How long an idle connection is kept. Short, because app servers close idle keep-alive
/// connections early (gunicorn after 2 s) and a request written into a connection just as the
/// instance closes it fails; idempotent requests without a body are retried then, others get
/// 502. (A connection closed a while before it is reused is noticed before anything is
/// written, and the request goes to another connection.)
const MAX_IDLE_AGE: Duration = Duration::from_millis(1500);

/// The sending half of a connection to an upstream.
pub(crate) type Sender = SendRequest<RequestBody>;

/// A connection to an upstream: its sending half and the connection itself, which whoever uses
/// the sender must poll.
pub(crate) struct UpstreamConn {
    pub(crate) sender: Sender,
    pub(crate) conn: http1::Connection<TokioIo<TcpStream>, RequestBody>,
    /// The waker the connection, its response heads and bodies are polled with.
    pub(crate) relay: Relay,
}

/// An upstream's idle keep-alive connections, in one slot per worker thread (see `worker.rs`): a
/// connection is registered with the reactor of the worker that opened it, and only requests on
/// that worker reuse it, so its readiness never has to cross threads.
pub(crate) struct Pool {
    /// Idle connections of each worker, the most recently used at the back. Locked only to push
    /// or pop, and by sweeps: uncontended on the request path.
    slots: Box<[Mutex<VecDeque<Idle>>]>,
    /// Idle connections in every slot, at most `max_idle`. Changed under a slot's lock.
    idle: AtomicUsize,
    max_idle: usize,
}

struct Idle {
    conn: Box<UpstreamConn>,
    since: Instant,
}

impl Pool {
    /// A pool keeping up to `max_idle` idle connections over `slots` workers' slots.
    pub(crate) fn new(max_idle: usize, slots: usize) -> Pool {
        Pool {
            slots: (0..slots.max(1))
                .map(|_| Mutex::new(VecDeque::new()))
                .collect(),
            idle: AtomicUsize::new(0),
            max_idle,
        }
    }

    /// The calling worker's slot.
    fn slot(&self) -> MutexGuard<'_, VecDeque<Idle>> {
        let slot = &self.slots[worker::index() % self.slots.len()];
        slot.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The most recently used idle connection of this worker that can take a request now.
    /// Connections idle too long, or closed, are dropped (outside the lock: dropping one closes
    /// its socket).
    pub(crate) fn take(&self) -> Option<Box<UpstreamConn>> {
        let now = Instant::now();
        let mut stale = VecDeque::new();
        let found = {
            let mut idle = self.slot();
            let before = idle.len();
            let found = loop {
                let Some(entry) = idle.pop_back() else {
                    break None;
                };
                if now.duration_since(entry.since) > MAX_IDLE_AGE {
                    // The rest are older still.
                    stale = std::mem::take(&mut *idle);
                    stale.push_back(entry);
                    break None;
                }
                if entry.conn.sender.is_ready() {
                    break Some(entry.conn);
                }
                stale.push_back(entry);
            };
            self.idle.fetch_sub(before - idle.len(), Ordering::Relaxed);
            found
        };
        drop(stale);
        found
    }

    /// Keeps a connection whose exchange ended cleanly for the next request on this worker.
    /// With `max_idle` kept already, this worker's oldest goes; if it has none, this one does.
    pub(crate) fn put(&self, conn: Box<UpstreamConn>) {
        if !conn.sender.is_ready() || self.max_idle == 0 {
            return;
        }
        let dropped = {
            let mut idle = self.slot();
            let dropped = if self.idle.load(Ordering::Relaxed) < self.max_idle {
                self.idle.fetch_add(1, Ordering::Relaxed);
                None
            } else {
                match idle.pop_front() {
                    Some(oldest) => Some(oldest),
                    None => return,
                }
            };
            idle.push_back(Idle {
                conn,
                since: Instant::now(),
            });
            dropped
        };
        drop(dropped);
    }

    /// Closes the idle connections kept longer than they may be reused, so a quiet instance is
    /// not left holding sockets (and, for thread-per-connection servers, threads) for nothing.
    pub(crate) fn sweep(&self) {
        let now = Instant::now();
        for slot in &self.slots {
            let stale: Vec<Idle> = {
                let mut idle = slot.lock().unwrap_or_else(PoisonError::into_inner);
                // Oldest first: the stale ones are a prefix.
                let n = idle
                    .iter()
                    .take_while(|e| now.duration_since(e.since) > MAX_IDLE_AGE)
                    .count();
                self.idle.fetch_sub(n, Ordering::Relaxed);
                idle.drain(..n).collect()
            };
            drop(stale);
        }
    }

    /// Closes every idle connection.
    pub(crate) fn clear(&self) {
        for slot in &self.slots {
            let idle = {
                let mut idle = slot.lock().unwrap_or_else(PoisonError::into_inner);
                self.idle.fetch_sub(idle.len(), Ordering::Relaxed);
                std::mem::take(&mut *idle)
            };
            drop(idle);
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.idle.load(Ordering::Relaxed)
    }
}

/// Opens an HTTP/1.1 connection to `addr`, within `timeout`. Boxed once per connection, so that
/// handing it around (pool, request, response body) moves a pointer.
pub(crate) async fn connect(
    addr: SocketAddr,
    timeout: Duration,
) -> Result<Box<UpstreamConn>, ConnectError> {
    let stream = match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
        Err(_) => return Err(ConnectError::Timeout { addr, timeout }),
        Ok(Err(source)) => return Err(ConnectError::Io { addr, source }),
        Ok(Ok(stream)) => stream,
    };
    // Small requests and responses must not wait for Nagle.
    let _ = stream.set_nodelay(true);
    let (sender, conn) = http1::Builder::new()
        .handshake(TokioIo::new(stream))
        .await
        .map_err(|source| ConnectError::Handshake { addr, source })?;
    Ok(Box::new(UpstreamConn {
        sender,
        conn,
        relay: Relay::new(),
    }))
}

/// Opens a connection for a request that switches protocols, driven by a task of its own
/// until the switch (then the tunnel owns the socket) or until it closes.
pub(crate) async fn connect_upgradable(
    addr: SocketAddr,
    timeout: Duration,
) -> Result<Sender, ConnectError> {
    let UpstreamConn { sender, conn, .. } = *connect(addr, timeout).await?;
    tokio::spawn(async move {
        if let Err(error) = conn.with_upgrades().await {
            tracing::debug!(%addr, %error, "upstream connection ended with an error");
        }
    });
    Ok(sender)
}

/// A request body on its way to an upstream: the client's, or none (a request replayed on
/// another connection has none). Notes when it was sent completely, which starts the first-byte
/// timeout.
pub(crate) struct RequestBody {
    inner: Option<Incoming>,
    sent: Option<Arc<SentAt>>,
}

/// When a request body was sent completely: milliseconds after `epoch`, plus one (0: not yet);
/// and when its last frame so far moved, to tell a stalled upload.
pub(crate) struct SentAt {
    epoch: Instant,
    at: AtomicU64,
    moved: AtomicU64,
}

impl SentAt {
    pub(crate) fn new(epoch: Instant) -> Arc<SentAt> {
        Arc::new(SentAt {
            epoch,
            at: AtomicU64::new(0),
            moved: AtomicU64::new(u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX)),
        })
    }

    fn moved_now(&self) {
        let ms = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.moved.store(ms, Ordering::Relaxed);
    }

    /// When a frame of the body last moved (or the body was made).
    pub(crate) fn last_moved(&self) -> Instant {
        self.epoch + Duration::from_millis(self.moved.load(Ordering::Relaxed))
    }

    fn mark(&self) {
        let ms = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX - 1);
        let _ = self
            .at
            .compare_exchange(0, ms + 1, Ordering::Release, Ordering::Relaxed);
    }

    /// When the body was sent completely, if it has been.
    pub(crate) fn get(&self) -> Option<Instant> {
        match self.at.load(Ordering::Acquire) {
            0 => None,
            ms => Some(self.epoch + Duration::from_millis(ms - 1)),
        }
    }
}

impl RequestBody {
    pub(crate) fn empty() -> RequestBody {
        RequestBody {
            inner: None,
            sent: None,
        }
    }

    /// The client's body; `sent` is marked when its last frame has been taken.
    pub(crate) fn new(body: Incoming, sent: Option<Arc<SentAt>>) -> RequestBody {
        RequestBody {
            inner: Some(body),
            sent,
        }
    }

    fn ended(&mut self) {
        if let Some(sent) = self.sent.take() {
            sent.mark();
        }
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = &mut *self;
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        let polled = Pin::new(&mut *inner).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => this.ended(),
            Poll::Ready(Some(Ok(_))) if inner.is_end_stream() => this.ended(),
            Poll::Ready(Some(Ok(_))) => {
                if let Some(sent) = &this.sent {
                    sent.moved_now();
                }
            }
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), Body::size_hint)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future;

    /// Polls a connection until it can take a request, as a request using it would.
    async fn ready(conn: &mut UpstreamConn) {
        std::future::poll_fn(|cx| {
            let _ = Pin::new(&mut conn.conn).poll(cx);
            conn.sender.poll_ready(cx)
        })
        .await
        .unwrap();
    }

    #[tokio::test]
    async fn idle_connections_are_reused_most_recent_first_up_to_the_limit() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let pool = Pool::new(2, 1);
        let mut peers = Vec::new();
        for _ in 0..3 {
            let mut conn = connect(addr, Duration::from_secs(5)).await.unwrap();
            peers.push(listener.accept().await.unwrap().0);
            ready(&mut conn).await;
            pool.put(conn);
        }
        assert_eq!(pool.len(), 2, "the oldest is dropped past the limit");
        assert!(pool.take().is_some());
        assert!(pool.take().is_some());
        assert!(pool.take().is_none());
    }

    #[tokio::test]
    async fn a_sweep_closes_connections_idle_too_long_and_keeps_fresh_ones() {
        use tokio::io::AsyncReadExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let pool = Pool::new(4, 1);
        let mut conn = connect(addr, Duration::from_secs(5)).await.unwrap();
        let (mut peer, _) = listener.accept().await.unwrap();
        ready(&mut conn).await;
        pool.put(conn);
        pool.sweep();
        assert_eq!(pool.len(), 1, "a fresh idle connection is kept");
        let deadline = Instant::now() + Duration::from_secs(10);
        while pool.len() > 0 {
            assert!(Instant::now() < deadline, "never swept");
            tokio::time::sleep(Duration::from_millis(50)).await;
            pool.sweep();
        }
        // The instance sees the connection closed.
        let mut buf = [0u8; 16];
        let read = tokio::time::timeout(Duration::from_secs(5), peer.read(&mut buf))
            .await
            .expect("the connection was closed");
        assert_eq!(read.unwrap(), 0);
    }

    #[tokio::test]
    async fn refused_connect() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let Err(err) = connect(addr, Duration::from_secs(5)).await else {
            panic!("connected to a closed port");
        };
        assert!(matches!(err, ConnectError::Io { .. }), "{err}");
    }
}
