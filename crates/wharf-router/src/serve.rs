//! The listener: accepts client connections, serves each with HTTP/1.1 or HTTP/2 (prior
//! knowledge), closes the ones that stay idle, and on shutdown stops accepting and gives the
//! requests in flight up to the drain timeout to finish.

use std::collections::HashMap;
use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::task::AtomicWaker;
use hyper::header::HeaderValue;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::RouterConfig;
use crate::proxy;
use crate::router::Shared;
use crate::worker::Workers;

/// How client connections are served (HTTP/1.1, or HTTP/2 with prior knowledge).
pub(crate) type ConnectionBuilder = auto::Builder<TokioExecutor>;

/// Pause after an accept error that is not about one connection (out of file descriptors), so
/// the loop doesn't spin while the condition lasts.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// One `serve` call: its tasks, and the connections open now, to signal at shutdown.
pub(crate) struct Serving {
    /// Connection tasks and upgraded tunnels.
    pub(crate) tasks: TaskTracker,
    /// Open connections by id. Locked when a connection opens or closes and at shutdown, never
    /// per request: a shared cancellation token would take a lock on every poll of every
    /// connection.
    open: Mutex<HashMap<u64, Weak<ConnCtx>>>,
    next_id: AtomicU64,
}

/// Where a connection is in the router's shutdown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub(crate) enum Phase {
    Serving = 0,
    /// Finish the requests in flight, take no more.
    Closing = 1,
    /// The drain timeout passed: close now.
    Stopped = 2,
}

impl Serving {
    fn new() -> Arc<Serving> {
        Arc::new(Serving {
            tasks: TaskTracker::new(),
            open: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
        })
    }

    /// Moves every open connection (and its tunnel) to `phase`.
    fn signal_all(&self, phase: Phase) {
        let open: Vec<Arc<ConnCtx>> = self
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .filter_map(Weak::upgrade)
            .collect();
        // Outside the lock: dropping the last handle of a connection takes it.
        for conn in open {
            conn.signal(phase);
        }
    }
}

/// What the requests of one client connection share.
pub(crate) struct ConnCtx {
    pub(crate) shared: Arc<Shared>,
    pub(crate) serving: Arc<Serving>,
    id: u64,
    /// The client's IP, as `X-Forwarded-For` carries it.
    pub(crate) client_ip: HeaderValue,
    /// The listener's port, as `X-Forwarded-Port` carries it.
    pub(crate) port: HeaderValue,
    /// On the TLS listener: the handshake the connection starts with.
    pub(crate) tls: Option<TlsAcceptor>,
    /// Set when a byte moves on the connection; cleared by the idle watch at each tick.
    active: AtomicBool,
    /// Requests on the connection waiting for an upstream's response head: the connection is
    /// quiet then, but not idle.
    waiting: AtomicUsize,
    /// A [`Phase`], only ever raised.
    phase: AtomicU8,
    /// Wakes the connection's task when the phase changes.
    conn_waker: AtomicWaker,
    /// Wakes the connection's tunnel (after an upgrade) when the phase changes.
    tunnel_waker: AtomicWaker,
    /// Looks in a row that found the connection quiet (see [`Serving::look_for_idle`]).
    quiet_looks: AtomicU32,
    /// Stopped for having been idle too long.
    idle: AtomicBool,
}

/// Which task waits for a phase change.
#[derive(Clone, Copy)]
pub(crate) enum Waiter {
    Connection,
    Tunnel,
}

impl ConnCtx {
    fn touch(&self) {
        // Load first: the common case (already set) then leaves the cache line clean.
        if !self.active.load(Ordering::Relaxed) {
            self.active.store(true, Ordering::Relaxed);
        }
    }

    fn signal(&self, phase: Phase) {
        self.phase.fetch_max(phase as u8, Ordering::AcqRel);
        self.conn_waker.wake();
        self.tunnel_waker.wake();
    }

    fn phase(&self) -> Phase {
        match self.phase.load(Ordering::Acquire) {
            0 => Phase::Serving,
            1 => Phase::Closing,
            _ => Phase::Stopped,
        }
    }

    /// Resolves with the phase once it is past `seen`.
    pub(crate) async fn phase_after(&self, seen: Phase, waiter: Waiter) -> Phase {
        let waker = match waiter {
            Waiter::Connection => &self.conn_waker,
            Waiter::Tunnel => &self.tunnel_waker,
        };
        std::future::poll_fn(|cx| {
            if self.phase() > seen {
                return Poll::Ready(self.phase());
            }
            waker.register(cx.waker());
            // Checked again after registering, so a signal in between is not lost.
            let phase = self.phase();
            if phase > seen {
                Poll::Ready(phase)
            } else {
                Poll::Pending
            }
        })
        .await
    }

    /// Marks a request as waiting for its response head until the guard is dropped.
    pub(crate) fn waiting(&self) -> Waiting<'_> {
        self.waiting.fetch_add(1, Ordering::Relaxed);
        Waiting(self)
    }

    /// Whether the connection was stopped for being idle.
    pub(crate) fn went_idle(&self) -> bool {
        self.idle.load(Ordering::Relaxed)
    }

    /// Whether the connection was quiet since the last call: no byte moved and no request was
    /// waiting for a response head.
    fn quiet_since_last_look(&self) -> bool {
        let active = self.active.swap(false, Ordering::Relaxed);
        !active && self.waiting.load(Ordering::Relaxed) == 0
    }
}

/// How idleness is found: every quarter of the idle timeout the serve loop looks at every open
/// connection, and closes the ones found quiet four looks in a row, so after between 1 and 1.25
/// idle timeouts without a byte. One timer for all connections instead of one each, and nothing
/// on a connection's own path but a flag set when bytes move (no clock read per read or write,
/// no timer polled each time its task wakes).
const QUIET_LOOKS: u32 = 4;

impl Serving {
    /// Looks at every open connection (and its tunnel) once; closes those idle too long.
    fn look_for_idle(&self) {
        let open: Vec<Arc<ConnCtx>> = self
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .filter_map(Weak::upgrade)
            .collect();
        // Outside the lock: dropping the last handle of a connection takes it.
        for conn in open {
            if !conn.quiet_since_last_look() {
                conn.quiet_looks.store(0, Ordering::Relaxed);
            } else if conn.quiet_looks.fetch_add(1, Ordering::Relaxed) + 1 >= QUIET_LOOKS {
                conn.idle.store(true, Ordering::Relaxed);
                conn.signal(Phase::Stopped);
            }
        }
    }
}

/// The serve loop's timer for [`Serving::look_for_idle`].
fn idle_looks(idle_timeout: Duration) -> tokio::time::Interval {
    let period = (idle_timeout / QUIET_LOOKS).max(Duration::from_millis(1));
    let mut looks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    looks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    looks
}

impl Drop for ConnCtx {
    fn drop(&mut self) {
        self.serving
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.id);
    }
}

pub(crate) struct Waiting<'a>(&'a ConnCtx);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::Relaxed);
        self.0.touch();
    }
}

/// How often idle upstream connections too old to be reused are closed.
const IDLE_SWEEP: Duration = Duration::from_secs(1);

pub(crate) async fn serve(
    shared: Arc<Shared>,
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    shutdown: CancellationToken,
) -> io::Result<()> {
    let local = listener.local_addr()?;
    let port = HeaderValue::from(local.port());
    let builder = Arc::new(builder(&shared.config));
    let serving = Serving::new();
    let tasks = serving.tasks.clone();
    let workers = Workers::start(shared.config.workers, &builder, &serving)?;
    tracing::info!(addr = %local, tls = tls.is_some(), "router listening");
    let mut sweep = tokio::time::interval(IDLE_SWEEP);
    sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut looks = idle_looks(shared.config.idle_timeout);
    loop {
        let accepted = tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            _ = sweep.tick() => {
                shared.tables.sweep_idle();
                continue;
            }
            _ = looks.tick() => {
                serving.look_for_idle();
                continue;
            }
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                if !matches!(
                    error.kind(),
                    io::ErrorKind::ConnectionAborted
                        | io::ErrorKind::ConnectionReset
                        | io::ErrorKind::Interrupted
                ) {
                    tracing::warn!(%error, "accepting a connection failed");
                    tokio::select! {
                        () = shutdown.cancelled() => break,
                        () = tokio::time::sleep(ACCEPT_ERROR_PAUSE) => {}
                    }
                }
                continue;
            }
        };
        let id = serving.next_id.fetch_add(1, Ordering::Relaxed);
        let ctx = Arc::new(ConnCtx {
            client_ip: client_ip(peer),
            port: port.clone(),
            tls: tls.clone(),
            active: AtomicBool::new(true),
            waiting: AtomicUsize::new(0),
            shared: Arc::clone(&shared),
            serving: Arc::clone(&serving),
            id,
            phase: AtomicU8::new(Phase::Serving as u8),
            conn_waker: AtomicWaker::new(),
            tunnel_waker: AtomicWaker::new(),
            quiet_looks: AtomicU32::new(0),
            idle: AtomicBool::new(false),
        });
        serving
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id, Arc::downgrade(&ctx));
        if let Err((ctx, stream)) = workers.dispatch(ctx, stream) {
            // No workers (`workers: 0`): served here.
            tasks.spawn(connection(ctx, stream, Arc::clone(&builder)));
        }
    }
    drop(listener);
    let workers = workers.close();
    tasks.close();
    serving.signal_all(Phase::Closing);
    tracing::info!(
        connections = tasks.len(),
        "router stopped accepting; waiting for requests in flight"
    );
    // Idle connections are still closed while the others finish.
    let drained = async {
        let wait = tasks.wait();
        tokio::pin!(wait);
        loop {
            tokio::select! {
                () = &mut wait => return,
                _ = looks.tick() => serving.look_for_idle(),
            }
        }
    };
    if tokio::time::timeout(shared.config.drain_timeout, drained)
        .await
        .is_err()
    {
        tracing::warn!(
            connections = tasks.len(),
            "requests still in flight after the drain timeout; closing their connections"
        );
        serving.signal_all(Phase::Stopped);
        tasks.wait().await;
    }
    // Before the workers' runtimes go: their reactors still hold the idle connections' sockets.
    shared.tables.close_idle();
    workers.wait().await;
    Ok(())
}

fn builder(config: &RouterConfig) -> ConnectionBuilder {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        // Starts when hyper waits for a request head: bounds both a slow head and an idle
        // keep-alive connection.
        .header_read_timeout(config.idle_timeout)
        // The head must fit in the read buffer; a bigger one gets 431.
        .max_buf_size(config.max_header_bytes.max(8192))
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(config.max_header_bytes).unwrap_or(u32::MAX));
    builder
}

pub(crate) fn client_ip(peer: SocketAddr) -> HeaderValue {
    let ip = peer.ip().to_canonical();
    HeaderValue::from_str(&ip.to_string()).unwrap_or(HeaderValue::from_static("unknown"))
}

/// Serves one client connection until it closes, goes idle, or the router stops; on the TLS
/// listener, after its handshake (bounded by the idle timeout, and given up at shutdown).
pub(crate) async fn connection(
    ctx: Arc<ConnCtx>,
    stream: TcpStream,
    builder: Arc<ConnectionBuilder>,
) {
    let _ = stream.set_nodelay(true);
    let Some(acceptor) = ctx.tls.clone() else {
        return serve_connection(ctx, stream, builder).await;
    };
    let handshake = tokio::time::timeout(ctx.shared.config.idle_timeout, acceptor.accept(stream));
    let stream = tokio::select! {
        done = handshake => match done {
            Ok(Ok(stream)) => stream,
            Ok(Err(error)) => {
                tracing::debug!(%error, "TLS handshake failed");
                return;
            }
            Err(_) => {
                tracing::debug!("TLS handshake timed out");
                return;
            }
        },
        _ = ctx.phase_after(Phase::Serving, Waiter::Connection) => return,
    };
    serve_connection(ctx, stream, builder).await;
}

/// Serves HTTP on one client connection (plain or TLS).
async fn serve_connection<S>(ctx: Arc<ConnCtx>, stream: S, builder: Arc<ConnectionBuilder>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let io = TokioIo::new(ActivityIo {
        inner: stream,
        ctx: Arc::clone(&ctx),
    });
    let service_ctx = Arc::clone(&ctx);
    let service = service_fn(move |req| {
        let ctx = Arc::clone(&service_ctx);
        async move { Ok::<_, Infallible>(proxy::handle(&ctx, req).await) }
    });
    let conn = builder.serve_connection_with_upgrades(io, service);
    tokio::pin!(conn);
    let mut phase = Phase::Serving;
    loop {
        tokio::select! {
            biased;
            result = conn.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(%error, "client connection ended with an error");
                }
                return;
            }
            next = ctx.phase_after(phase, Waiter::Connection) => {
                phase = next;
                if phase == Phase::Stopped {
                    if ctx.went_idle() {
                        tracing::debug!("closing idle client connection");
                    }
                    return;
                }
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

/// A client socket that notes when bytes move, for the idle timeout.
struct ActivityIo<S> {
    inner: S,
    ctx: Arc<ConnCtx>,
}

impl<S: AsyncRead + Unpin> AsyncRead for ActivityIo<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.ctx.touch();
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for ActivityIo<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            this.ctx.touch();
        }
        polled
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            this.ctx.touch();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
