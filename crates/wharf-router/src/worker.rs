//! Worker threads: each runs a single-threaded tokio runtime that serves the client connections
//! handed to it, with everything their requests do (upstream connections, timers, tunnels). A
//! request's tasks and sockets stay on one thread, so serving it takes no atomic work-stealing
//! queue, no wake-up of another thread and no cache line bouncing between cores; the upstream
//! connection pools have one slot per worker for the same reason (see `pool.rs`).

use std::cell::{Cell, RefCell};
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::sync::{mpsc, oneshot};

use crate::serve::{connection, ConnCtx, ConnectionBuilder, Serving};

thread_local! {
    /// This thread's worker index, 0 on threads that are not workers.
    static INDEX: Cell<usize> = const { Cell::new(0) };
    /// The runtime that called `serve`, on worker threads: what must outlive the workers (a log
    /// writer) is spawned there.
    static HOME: RefCell<Option<Handle>> = const { RefCell::new(None) };
}

/// This thread's worker index (0 outside workers): which slot of a pool it uses.
pub(crate) fn index() -> usize {
    INDEX.with(Cell::get)
}

/// Runs `f` in the context of the runtime that called `serve` when on a worker thread, so that
/// a task `f` spawns outlives the worker's own runtime.
pub(crate) fn at_home<T>(f: impl FnOnce() -> T) -> T {
    HOME.with(|home| {
        let home = home.borrow();
        let _entered = home.as_ref().map(Handle::enter);
        f()
    })
}

/// A connection handed to a worker.
type Handoff = (Arc<ConnCtx>, std::net::TcpStream);

/// The worker threads of one `serve` call.
pub(crate) struct Workers {
    workers: Vec<Worker>,
}

struct Worker {
    tx: mpsc::UnboundedSender<Handoff>,
    /// Connections open on this worker, for choosing the least busy.
    open: Arc<AtomicUsize>,
    /// Resolves (with an error) once the thread has stopped and dropped its runtime.
    stopped: oneshot::Receiver<()>,
}

impl Workers {
    /// Starts `n` workers, which serve connections with `builder` and track their tasks in
    /// `serving`.
    pub(crate) fn start(
        n: usize,
        builder: &Arc<ConnectionBuilder>,
        serving: &Arc<Serving>,
    ) -> io::Result<Workers> {
        let home = Handle::current();
        let mut workers = Vec::with_capacity(n);
        for index in 0..n {
            // Built here so that a failure is the caller's error, not a thread's panic.
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let (tx, rx) = mpsc::unbounded_channel();
            let (stop_tx, stopped) = oneshot::channel();
            let open = Arc::new(AtomicUsize::new(0));
            let run = Run {
                index,
                home: home.clone(),
                rx,
                open: Arc::clone(&open),
                builder: Arc::clone(builder),
                serving: Arc::clone(serving),
            };
            std::thread::Builder::new()
                .name(format!("wharf-router-{index}"))
                .spawn(move || {
                    run.run(runtime);
                    // Dropping the sender says the runtime is gone.
                    drop(stop_tx);
                })?;
            workers.push(Worker { tx, open, stopped });
        }
        Ok(Workers { workers })
    }

    /// Hands a connection to the worker with the fewest open; gives it back if there is no
    /// worker (or they have stopped).
    pub(crate) fn dispatch(
        &self,
        ctx: Arc<ConnCtx>,
        stream: tokio::net::TcpStream,
    ) -> Result<(), (Arc<ConnCtx>, tokio::net::TcpStream)> {
        let Some(worker) = self
            .workers
            .iter()
            .min_by_key(|w| w.open.load(Ordering::Relaxed))
        else {
            return Err((ctx, stream));
        };
        // Taken out of this runtime's reactor, to be registered with the worker's.
        let stream = match stream.into_std() {
            Ok(stream) => stream,
            Err(error) => {
                tracing::debug!(%error, "cannot hand a connection to a worker");
                return Ok(());
            }
        };
        worker.open.fetch_add(1, Ordering::Relaxed);
        if let Err(mpsc::error::SendError((ctx, stream))) = worker.tx.send((ctx, stream)) {
            worker.open.fetch_sub(1, Ordering::Relaxed);
            let stream = tokio::net::TcpStream::from_std(stream).map_err(|error| {
                tracing::debug!(%error, "cannot take a connection back from a worker");
            });
            return match stream {
                Ok(stream) => Err((ctx, stream)),
                Err(()) => Ok(()),
            };
        }
        Ok(())
    }

    /// Tells the workers no more connections come. Each stops once every task tracked in
    /// `Serving` has finished (the caller closes and drains it).
    pub(crate) fn close(self) -> Stopping {
        Stopping {
            stopped: self
                .workers
                .into_iter()
                .map(|worker| worker.stopped)
                .collect(),
        }
    }
}

/// Workers told to stop.
pub(crate) struct Stopping {
    stopped: Vec<oneshot::Receiver<()>>,
}

impl Stopping {
    /// Waits until every worker has stopped and dropped its runtime.
    pub(crate) async fn wait(self) {
        for stopped in self.stopped {
            let _ = stopped.await;
        }
    }
}

/// What a worker thread runs.
struct Run {
    index: usize,
    home: Handle,
    rx: mpsc::UnboundedReceiver<Handoff>,
    open: Arc<AtomicUsize>,
    builder: Arc<ConnectionBuilder>,
    serving: Arc<Serving>,
}

impl Run {
    fn run(self, runtime: tokio::runtime::Runtime) {
        let Run {
            index,
            home,
            mut rx,
            open,
            builder,
            serving,
        } = self;
        INDEX.with(|i| i.set(index));
        HOME.with(|h| *h.borrow_mut() = Some(home));
        runtime.block_on(async {
            let accept = async {
                while let Some((ctx, stream)) = rx.recv().await {
                    let stream = match tokio::net::TcpStream::from_std(stream) {
                        Ok(stream) => stream,
                        Err(error) => {
                            tracing::warn!(%error, "a worker cannot take a connection");
                            open.fetch_sub(1, Ordering::Relaxed);
                            continue;
                        }
                    };
                    let builder = Arc::clone(&builder);
                    let open = Arc::clone(&open);
                    serving.tasks.spawn(async move {
                        connection(ctx, stream, builder).await;
                        open.fetch_sub(1, Ordering::Relaxed);
                    });
                }
            };
            tokio::select! {
                () = accept => {}
                never = keep_a_timer_near() => match never {},
            }
            // No more connections: the ones open here (and their tunnels) finish as the caller
            // drains them. The tracker is closed by then.
            serving.tasks.wait().await;
        });
        drop(runtime);
        HOME.with(|h| h.borrow_mut().take());
    }
}

/// How often [`keep_a_timer_near`] ticks: well below any request timeout.
const NEAR_TIMER: Duration = Duration::from_millis(500);

/// Keeps a timer due within [`NEAR_TIMER`] on this worker's runtime. tokio's timer driver wakes
/// its thread's poller (an eventfd write, then one more `epoll_wait` round) whenever a timer is
/// set that is due before every timer it already holds. Each request sets one (its time to first
/// byte), and between requests there may be none left, so without a nearer timer most requests
/// paid that wake-up; with one, a request's timer is never the earliest.
async fn keep_a_timer_near() -> std::convert::Infallible {
    let mut tick = tokio::time::interval(NEAR_TIMER);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
    }
}
