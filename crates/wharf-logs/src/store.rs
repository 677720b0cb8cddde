//! The store of every app's log, the per-app handle, its writer task and its followers.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::stream::{self, BoxStream, Stream, StreamExt};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::error::{shown, LogError};
use crate::events;
use crate::filter::{LogFilter, Matcher};
use crate::line::{EventId, LogLine, Source, StoredLine};
use crate::segment::{self, Cursor, SegmentWriter};

/// Longest app id accepted as a directory name.
pub const MAX_APP_ID_LEN: usize = 128;
/// Lines an app's write queue holds before [`AppLog::append`] drops lines.
pub const DEFAULT_QUEUE_LINES: usize = 100_000;

/// Most bytes of text one app's write queue holds, whatever the line count: a burst of short
/// lines is absorbed whole, a flood of long ones is dropped (and counted) before it costs memory.
pub const MAX_QUEUE_BYTES: usize = 32 << 20;

/// What a queued line counts against [`MAX_QUEUE_BYTES`].
fn queued_size(line: &LogLine) -> usize {
    line.text.len() + line.process.len() + 64
}
/// Queue entries the writer takes per batch.
const BATCH_LINES: usize = 1024;
/// How long the writer lets a batch it woke for gather more lines before writing it. Without
/// it a busy log (a router line per request) wakes the writer, and a blocking thread, for a
/// handful of lines each time; with it the cost per line is a queue push. A follower sees a
/// line at most this much later. A batch that holds a flush or close request is written at once
/// (one that arrives while the writer lingers waits out the rest of it).
const LINGER: Duration = Duration::from_millis(20);
/// Batches the writer may leave in its buffer while the queue stays busy; after these it flushes
/// anyway, so followers of a busy log keep up.
const FLUSH_EVERY_BATCHES: u32 = 4;
/// Bytes a follower reads from disk in one go.
const FOLLOW_READ_BYTES: usize = 1024 * 1024;

/// How much of each app's log is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// A segment is closed and the next started before it would grow past this (a single longer
    /// line still gets a segment of its own). Default 4 MiB.
    pub segment_bytes: u64,
    /// Segments kept per app; the oldest is deleted when another is started. Default 8.
    pub max_segments: usize,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            segment_bytes: 4 * 1024 * 1024,
            max_segments: 8,
        }
    }
}

/// Counters of one app's log since this server opened it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogStats {
    /// Lines [`AppLog::append`] accepted.
    pub accepted: u64,
    /// Lines refused or lost: a full queue, a failed write, or a closed log.
    pub dropped: u64,
    /// Corrupt or torn lines skipped when the log was opened.
    pub corrupt: u64,
}

/// Every app's log under one root directory: `<root>/<app_id>/00000001.log`, … Cheap to clone;
/// one per server.
#[derive(Clone)]
pub struct LogStore {
    inner: Arc<StoreInner>,
}

struct StoreInner {
    root: PathBuf,
    limits: Retention,
    queue_lines: usize,
    /// Each app's shared state, created on first use; removed when the app's log is removed.
    apps: Mutex<HashMap<String, Arc<AppShared>>>,
    /// Set by [`LogStore::shutdown`]: handles made afterwards refuse appends.
    shut_down: AtomicBool,
}

impl LogStore {
    /// Opens (creating) the root directory. Apps' logs are opened lazily, on first use.
    pub fn open(root: &Path, limits: Retention) -> Result<LogStore, LogError> {
        Self::open_with_queue(root, limits, DEFAULT_QUEUE_LINES)
    }

    /// [`LogStore::open`] with each app's write queue holding `queue_lines` lines (at least 1).
    pub fn open_with_queue(
        root: &Path,
        limits: Retention,
        queue_lines: usize,
    ) -> Result<LogStore, LogError> {
        if limits.segment_bytes == 0 || limits.max_segments == 0 {
            return Err(LogError::InvalidRetention {
                segment_bytes: limits.segment_bytes,
                max_segments: limits.max_segments,
            });
        }
        std::fs::create_dir_all(root).map_err(|source| LogError::CreateDir {
            path: root.to_owned(),
            source,
        })?;
        Ok(LogStore {
            inner: Arc::new(StoreInner {
                root: root.to_owned(),
                limits,
                queue_lines: queue_lines.max(1),
                apps: Mutex::new(HashMap::new()),
                shut_down: AtomicBool::new(false),
            }),
        })
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// The handle of an app's log. Nothing touches the disk until the first append or read.
    /// An id that can't name a directory (see [`LogError::InvalidAppId`]) gives a handle whose
    /// appends are refused and whose reads fail with that error.
    pub fn app(&self, app_id: &str) -> AppLog {
        let inner = &self.inner;
        if inner.shut_down.load(Ordering::Acquire) {
            let shared = AppShared::new(app_id, None, inner);
            shared.ctx.closed.store(true, Ordering::Release);
            return AppLog { shared };
        }
        let mut apps = inner.apps.lock().unwrap_or_else(PoisonError::into_inner);
        let shared = apps.entry(app_id.to_owned()).or_insert_with(|| {
            let dir = valid_app_id(app_id).then(|| inner.root.join(app_id));
            AppShared::new(app_id, dir, inner)
        });
        AppLog {
            shared: Arc::clone(shared),
        }
    }

    /// Deletes a destroyed app's log: stops its writer (followers end), then removes its
    /// directory. Async because the writer must have stopped before the directory goes, or a late
    /// line could bring it back. Handles to the removed log refuse appends; a later
    /// [`LogStore::app`] starts a new, empty log with ids from 1.
    pub async fn remove_app(&self, app_id: &str) -> Result<(), LogError> {
        if !valid_app_id(app_id) {
            return Err(LogError::InvalidAppId {
                app_id: shown(app_id),
            });
        }
        let removed = self
            .inner
            .apps
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(app_id);
        if let Some(shared) = removed {
            shared.close().await;
        }
        let dir = self.inner.root.join(app_id);
        let removal = tokio::task::spawn_blocking(move || match std::fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(LogError::RemoveDir { path: dir, source }),
        });
        removal.await.map_err(|_| LogError::ReaderStopped {
            app_id: shown(app_id),
        })?
    }

    /// Flushes and syncs every app's log, stops the writer tasks and ends the followers. Appends
    /// made afterwards are refused. Call it once, on server shutdown.
    pub async fn shutdown(&self) {
        self.inner.shut_down.store(true, Ordering::Release);
        let apps: Vec<Arc<AppShared>> = self
            .inner
            .apps
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect();
        for shared in apps {
            shared.close().await;
        }
    }
}

/// Whether `app_id` can be used as a directory name as it is.
fn valid_app_id(app_id: &str) -> bool {
    !app_id.is_empty()
        && app_id.len() <= MAX_APP_ID_LEN
        && !app_id.starts_with('.')
        && app_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// A handle to one app's log. Cheap to clone.
#[derive(Clone)]
pub struct AppLog {
    shared: Arc<AppShared>,
}

/// What the handles of one app's log share.
struct AppShared {
    ctx: Arc<AppCtx>,
    /// The sending side of the writer's queue; set, and the writer spawned, on the first append.
    /// (The writer holds only `ctx`, so dropping every handle and the store ends it.)
    tx: OnceLock<mpsc::Sender<Cmd>>,
    /// The writer task, awaited when the log is closed.
    task: Mutex<Option<JoinHandle<()>>>,
}

/// What the handles, the writer and the followers of one app's log share.
struct AppCtx {
    app_id: String,
    /// `<root>/<app_id>`; `None` when the app id can't name a directory.
    dir: Option<PathBuf>,
    limits: Retention,
    queue_lines: usize,
    /// Lines dropped since the last overflow notice was queued; the next queued line carries it.
    pending_dropped: AtomicU64,
    /// Bytes of the lines in the write queue; see [`MAX_QUEUE_BYTES`].
    queued_bytes: std::sync::atomic::AtomicUsize,
    accepted: AtomicU64,
    dropped: AtomicU64,
    corrupt: AtomicU64,
    /// Set when the log is removed or the store shut down: appends are refused.
    closed: AtomicBool,
    /// Changes whenever the writer has made more lines visible on disk, and once when it stops;
    /// followers wait on it and then read the disk.
    progress: watch::Sender<Progress>,
}

#[derive(Debug, Clone, Copy, Default)]
struct Progress {
    /// The last id flushed to the segment files.
    last_id: u64,
    /// The writer has stopped: nothing more will be written.
    stopped: bool,
}

/// A request to an app's writer.
enum Cmd {
    /// Append a line, after an overflow notice when lines were dropped before it.
    Line { line: LogLine, dropped_before: u64 },
    /// Write any overflow notice, flush and sync, then answer.
    Flush {
        dropped_before: u64,
        ack: oneshot::Sender<()>,
    },
    /// Flush, sync, answer and stop.
    Close { ack: oneshot::Sender<()> },
}

impl AppShared {
    fn new(app_id: &str, dir: Option<PathBuf>, store: &StoreInner) -> Arc<AppShared> {
        Arc::new(AppShared {
            ctx: Arc::new(AppCtx {
                app_id: app_id.to_owned(),
                dir,
                limits: store.limits,
                queue_lines: store.queue_lines,
                pending_dropped: AtomicU64::new(0),
                queued_bytes: std::sync::atomic::AtomicUsize::new(0),
                accepted: AtomicU64::new(0),
                dropped: AtomicU64::new(0),
                corrupt: AtomicU64::new(0),
                closed: AtomicBool::new(false),
                progress: watch::Sender::new(Progress::default()),
            }),
            tx: OnceLock::new(),
            task: Mutex::new(None),
        })
    }

    /// The writer's queue, spawning the writer on the current tokio runtime the first time;
    /// `None` outside a runtime.
    fn sender(&self) -> Option<&mpsc::Sender<Cmd>> {
        if let Some(tx) = self.tx.get() {
            return Some(tx);
        }
        let runtime = tokio::runtime::Handle::try_current().ok()?;
        Some(self.tx.get_or_init(|| {
            let (tx, rx) = mpsc::channel(self.ctx.queue_lines);
            let task = runtime.spawn(run_writer(Arc::clone(&self.ctx), rx));
            *self.task.lock().unwrap_or_else(PoisonError::into_inner) = Some(task);
            tx
        }))
    }

    /// Refuses further appends, lets the writer write what it has queued, and waits for it to
    /// stop.
    async fn close(&self) {
        self.ctx.closed.store(true, Ordering::Release);
        // A queue with no writer, so that no writer can be spawned from now on.
        let (idle, _) = mpsc::channel(1);
        let tx = self.tx.get_or_init(|| idle);
        let (ack, done) = oneshot::channel();
        if tx.send(Cmd::Close { ack }).await.is_ok() {
            let _ = done.await;
        }
        let task = self
            .task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        match task {
            Some(task) => {
                if let Err(error) = task.await {
                    tracing::error!(app = %self.ctx.app_id, %error, "log writer task failed");
                }
            }
            None => self.ctx.progress.send_modify(|p| p.stopped = true),
        }
    }
}

impl AppLog {
    /// The app id this log belongs to.
    pub fn app_id(&self) -> &str {
        &self.shared.ctx.app_id
    }

    /// Appends one line and returns whether it was accepted. Never waits for the disk: the line
    /// goes into a bounded queue drained by the app's writer task (spawned on the first append;
    /// outside a tokio runtime every line is refused). When the queue is full the line is
    /// dropped and counted, and the next line accepted is preceded by a platform line
    /// `Log overflow: N lines dropped` (source `wharf`, process `wharf`), so nothing is lost
    /// silently. The text is made one line first (see [`LogLine`]).
    pub fn append(&self, line: LogLine) -> bool {
        let ctx = &self.shared.ctx;
        if ctx.closed.load(Ordering::Acquire) || ctx.dir.is_none() {
            ctx.dropped.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        let Some(tx) = self.shared.sender() else {
            ctx.dropped.fetch_add(1, Ordering::Relaxed);
            return false;
        };
        let line = line.normalized();
        let size = queued_size(&line);
        let over_budget =
            ctx.queued_bytes.fetch_add(size, Ordering::AcqRel) + size > MAX_QUEUE_BYTES;
        let dropped_before = if over_budget {
            0
        } else {
            ctx.pending_dropped.swap(0, Ordering::AcqRel)
        };
        let cmd = Cmd::Line {
            line,
            dropped_before,
        };
        let sent = if over_budget {
            // Treated like a full queue: dropped and counted.
            Err(mpsc::error::TrySendError::Full(cmd))
        } else {
            tx.try_send(cmd)
        };
        if sent.is_err() {
            ctx.queued_bytes.fetch_sub(size, Ordering::AcqRel);
        }
        match sent {
            Ok(()) => {
                ctx.accepted.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                let before = ctx
                    .pending_dropped
                    .fetch_add(dropped_before + 1, Ordering::AcqRel);
                if before == 0 && dropped_before == 0 {
                    tracing::warn!(app = %ctx.app_id, "log queue full; dropping lines");
                }
                ctx.dropped.fetch_add(1, Ordering::Relaxed);
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                ctx.dropped.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    /// The newest `filter.lines` lines matching `filter`, oldest first, from what is on disk
    /// (call [`AppLog::flush`] first to include lines still queued).
    pub async fn read(&self, filter: &LogFilter) -> Result<Vec<StoredLine>, LogError> {
        let matcher = filter.matcher()?;
        let dir = self.dir()?;
        let n = filter.tail_lines();
        let read = tokio::task::spawn_blocking(move || segment::read_tail(&dir, &matcher, n));
        let tail = read.await.map_err(|_| self.reader_stopped())??;
        Ok(tail.lines)
    }

    /// Follows the log: first the lines after `after` (an id from an earlier read or follow; all
    /// retained lines after it, none twice), or when `after` is `None` (or past the end of the
    /// log, as an id from before the app's log was removed is) the newest `filter.lines` lines;
    /// then every new line as it reaches the disk, in order, filtered by source and process. Lines are read back from the segment files, so a slow follower loses nothing
    /// that is still retained. The stream ends when the log is removed or the store shut down
    /// (or if the disk can't be read, which is logged); dropping it stops following.
    ///
    /// Async because the starting point is fixed before it returns: every line appended after
    /// `follow` returns is streamed, even with `filter.lines == Some(0)`. An invalid filter or
    /// app id, or a log that can't be read, is refused here, before anything is streamed.
    pub async fn follow(
        &self,
        filter: LogFilter,
        after: Option<EventId>,
    ) -> Result<Follow, LogError> {
        let matcher = Arc::new(filter.matcher()?);
        let dir = self.dir()?;
        let ctx = Arc::clone(&self.shared.ctx);
        let mut state = Follower {
            progress: ctx.progress.subscribe(),
            ctx,
            dir,
            matcher,
            start: match after {
                None => Start::Tail,
                Some(_) => Start::After,
            },
            tail_lines: filter.tail_lines(),
            cursor: Cursor {
                last_id: after.map_or(0, EventId::get),
                at: None,
            },
            pending: VecDeque::new(),
            done: false,
        };
        while state.start != Start::Running {
            state.read().await?;
        }
        let lines = stream::unfold(state, Follower::next).boxed();
        Ok(Follow { lines })
    }

    /// Waits until every line appended so far is flushed and synced to disk, writing an overflow
    /// notice for lines dropped since the last one.
    pub async fn flush(&self) {
        let Some(tx) = self.shared.tx.get() else {
            return;
        };
        let ctx = &self.shared.ctx;
        let dropped_before = ctx.pending_dropped.swap(0, Ordering::AcqRel);
        let (ack, done) = oneshot::channel();
        let cmd = Cmd::Flush {
            dropped_before,
            ack,
        };
        if tx.send(cmd).await.is_ok() {
            let _ = done.await;
        } else {
            ctx.pending_dropped
                .fetch_add(dropped_before, Ordering::AcqRel);
        }
    }

    /// Counters of this log since the server opened it.
    pub fn stats(&self) -> LogStats {
        let ctx = &self.shared.ctx;
        LogStats {
            accepted: ctx.accepted.load(Ordering::Relaxed),
            dropped: ctx.dropped.load(Ordering::Relaxed),
            corrupt: ctx.corrupt.load(Ordering::Relaxed),
        }
    }

    fn dir(&self) -> Result<PathBuf, LogError> {
        self.shared
            .ctx
            .dir
            .clone()
            .ok_or_else(|| LogError::InvalidAppId {
                app_id: shown(&self.shared.ctx.app_id),
            })
    }

    fn reader_stopped(&self) -> LogError {
        LogError::ReaderStopped {
            app_id: shown(&self.shared.ctx.app_id),
        }
    }
}

/// The lines of a followed log, as a [`Stream`]; see [`AppLog::follow`].
pub struct Follow {
    lines: BoxStream<'static, StoredLine>,
}

impl Stream for Follow {
    type Item = StoredLine;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<StoredLine>> {
        self.lines.poll_next_unpin(cx)
    }
}

/// A follower's state between lines.
struct Follower {
    ctx: Arc<AppCtx>,
    dir: PathBuf,
    matcher: Arc<Matcher>,
    progress: watch::Receiver<Progress>,
    /// What the first read does.
    start: Start,
    /// Lines to start with when following from the tail.
    tail_lines: usize,
    cursor: Cursor,
    pending: VecDeque<StoredLine>,
    done: bool,
}

/// How a follower starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Start {
    /// With the newest `tail_lines` lines.
    Tail,
    /// With the lines after `cursor.last_id`, unless that id is past the end of the log: then
    /// it came from an earlier log of the same app id (removed since), and the follow starts
    /// with the tail instead of waiting for the new log to catch up with an old id.
    After,
    /// Started: read the lines after the cursor.
    Running,
}

impl Follower {
    async fn next(mut self) -> Option<(StoredLine, Follower)> {
        loop {
            if let Some(line) = self.pending.pop_front() {
                return Some((line, self));
            }
            if self.done {
                return None;
            }
            // Marked seen before reading, so a line written during the read wakes us again.
            let seen = *self.progress.borrow_and_update();
            let more = match self.read().await {
                Ok(more) => more,
                Err(error) => {
                    tracing::warn!(app = %self.ctx.app_id, %error, "log follower stopped");
                    return None;
                }
            };
            if more || !self.pending.is_empty() {
                continue;
            }
            if seen.stopped || self.progress.changed().await.is_err() {
                self.done = true;
            }
        }
    }

    /// Reads the next lines from disk into `pending`; returns whether more may be ready at once.
    async fn read(&mut self) -> Result<bool, LogError> {
        let dir = self.dir.clone();
        let matcher = Arc::clone(&self.matcher);
        let stopped = || LogError::ReaderStopped {
            app_id: shown(&self.ctx.app_id),
        };
        if self.start != Start::Running {
            let n = match self.start {
                Start::Tail => self.tail_lines,
                _ => 0,
            };
            let read = tokio::task::spawn_blocking(move || segment::read_tail(&dir, &matcher, n));
            let tail = read.await.map_err(|_| stopped())??;
            match self.start {
                Start::After if self.cursor.last_id <= tail.last_id => {}
                Start::After => {
                    tracing::debug!(app = %self.ctx.app_id, after = self.cursor.last_id, "event id past the end of the log; following from the tail");
                    self.start = Start::Tail;
                    return Ok(true);
                }
                _ => {
                    self.cursor = Cursor {
                        last_id: tail.last_id,
                        at: None,
                    };
                    self.pending.extend(tail.lines);
                }
            }
            self.start = Start::Running;
            return Ok(true);
        }
        let mut cursor = self.cursor;
        let read = tokio::task::spawn_blocking(move || {
            let read = segment::read_after(&dir, &matcher, &mut cursor, FOLLOW_READ_BYTES);
            read.map(|(lines, more)| (lines, more, cursor))
        });
        let (lines, more, cursor) = read.await.map_err(|_| stopped())??;
        self.cursor = cursor;
        self.pending.extend(lines);
        Ok(more)
    }
}

/// The app's writer: takes queued lines in batches, appends them to the segment files, flushes
/// when the queue is momentarily empty (or after a few busy batches), and tells followers.
async fn run_writer(ctx: Arc<AppCtx>, mut rx: mpsc::Receiver<Cmd>) {
    let mut writer: Option<SegmentWriter> = None;
    let mut unflushed_batches = 0;
    loop {
        let mut cmds = Vec::with_capacity(BATCH_LINES.min(ctx.queue_lines));
        if rx.recv_many(&mut cmds, BATCH_LINES).await == 0 {
            break; // every handle and the store are gone
        }
        let waited_on = |cmds: &[Cmd]| cmds.iter().any(|c| !matches!(c, Cmd::Line { .. }));
        if cmds.len() < BATCH_LINES && !waited_on(&cmds) {
            tokio::time::sleep(LINGER).await;
            while cmds.len() < BATCH_LINES {
                match rx.try_recv() {
                    Ok(cmd) => cmds.push(cmd),
                    Err(_) => break,
                }
            }
        }
        unflushed_batches += 1;
        let flush = rx.is_empty() || unflushed_batches >= FLUSH_EVERY_BATCHES;
        let job_ctx = Arc::clone(&ctx);
        let mut job_writer = writer.take();
        let job = tokio::task::spawn_blocking(move || {
            let outcome = write_batch(&job_ctx, &mut job_writer, cmds, flush);
            (job_writer, outcome)
        });
        let Ok((kept, outcome)) = job.await else {
            tracing::error!(app = %ctx.app_id, "log writer stopped: the runtime is shutting down");
            break;
        };
        writer = kept;
        if let Some(last_id) = outcome.flushed {
            unflushed_batches = 0;
            ctx.progress.send_if_modified(|p| {
                let changed = p.last_id != last_id;
                p.last_id = last_id;
                changed
            });
        }
        for ack in outcome.acks {
            let _ = ack.send(());
        }
        if outcome.closed {
            break;
        }
    }
    rx.close();
    if let Some(mut writer) = writer {
        let synced = tokio::task::spawn_blocking(move || writer.sync()).await;
        if let Ok(Err(error)) = synced {
            tracing::error!(app = %ctx.app_id, %error, "cannot flush the app log");
        }
    }
    ctx.progress.send_modify(|p| p.stopped = true);
}

#[derive(Default)]
struct BatchOutcome {
    /// The last id flushed by this batch, if it flushed.
    flushed: Option<u64>,
    /// Flush and close requests to answer, after followers have been told.
    acks: Vec<oneshot::Sender<()>>,
    closed: bool,
}

/// Writes one batch (blocking). A failed write drops the writer, so the next batch reopens the
/// log from what is on disk; the lines lost in between are counted as dropped.
fn write_batch(
    ctx: &AppCtx,
    writer: &mut Option<SegmentWriter>,
    cmds: Vec<Cmd>,
    flush: bool,
) -> BatchOutcome {
    let mut outcome = BatchOutcome::default();
    let Some(dir) = ctx.dir.as_deref() else {
        return outcome;
    };
    if writer.is_none() {
        match SegmentWriter::open(dir, ctx.limits) {
            Ok((opened, corrupt)) => {
                if corrupt > 0 {
                    tracing::warn!(app = %ctx.app_id, corrupt, "skipped corrupt lines in the app log");
                    ctx.corrupt.fetch_add(corrupt, Ordering::Relaxed);
                }
                *writer = Some(opened);
            }
            Err(error) => {
                tracing::error!(app = %ctx.app_id, %error, "cannot open the app log; dropping lines");
            }
        }
    }
    let mut synced = false;
    for cmd in cmds {
        match cmd {
            Cmd::Line {
                line,
                dropped_before,
            } => {
                ctx.queued_bytes
                    .fetch_sub(queued_size(&line), Ordering::AcqRel);
                if outcome.closed {
                    // Raced with removal: the log is going away.
                    ctx.dropped.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                let time = line.time;
                let written = write_notice(ctx, writer, dropped_before, time)
                    && write_line(ctx, writer, &line);
                if !written {
                    ctx.dropped.fetch_add(1, Ordering::Relaxed);
                    ctx.pending_dropped.fetch_add(1, Ordering::AcqRel);
                }
                synced = false;
            }
            Cmd::Flush {
                dropped_before,
                ack,
            } => {
                if !outcome.closed {
                    write_notice(ctx, writer, dropped_before, chrono::Utc::now());
                    synced = sync(ctx, writer);
                    if synced {
                        outcome.flushed = writer.as_ref().map(SegmentWriter::last_id);
                    }
                }
                outcome.acks.push(ack);
            }
            Cmd::Close { ack } => {
                if !outcome.closed {
                    synced = sync(ctx, writer);
                    if synced {
                        outcome.flushed = writer.as_ref().map(SegmentWriter::last_id);
                    }
                    outcome.closed = true;
                }
                outcome.acks.push(ack);
            }
        }
    }
    if flush && !synced {
        if let Some(open) = writer.as_mut() {
            if let Err(error) = open.flush() {
                tracing::error!(app = %ctx.app_id, %error, "cannot write the app log");
                *writer = None;
            } else {
                synced = true;
            }
        }
    }
    if synced {
        outcome.flushed = writer.as_ref().map(SegmentWriter::last_id);
    }
    outcome
}

/// Writes the overflow notice for `dropped` lines (if any); on failure they stay pending.
fn write_notice(
    ctx: &AppCtx,
    writer: &mut Option<SegmentWriter>,
    dropped: u64,
    time: chrono::DateTime<chrono::Utc>,
) -> bool {
    if dropped == 0 {
        return true;
    }
    let notice = LogLine {
        time,
        source: Source::Wharf,
        process: events::LOG_PROCESS.to_owned(),
        text: events::dropped(dropped),
    };
    tracing::warn!(app = %ctx.app_id, dropped, "app log overflowed; lines were dropped");
    if write_line(ctx, writer, &notice) {
        true
    } else {
        ctx.pending_dropped.fetch_add(dropped, Ordering::AcqRel);
        false
    }
}

fn write_line(ctx: &AppCtx, writer: &mut Option<SegmentWriter>, line: &LogLine) -> bool {
    let Some(open) = writer.as_mut() else {
        return false;
    };
    match open.append(line) {
        Ok(_) => true,
        Err(error) => {
            tracing::error!(app = %ctx.app_id, %error, "cannot write the app log; dropping lines");
            *writer = None;
            false
        }
    }
}

fn sync(ctx: &AppCtx, writer: &mut Option<SegmentWriter>) -> bool {
    let Some(open) = writer.as_mut() else {
        return false;
    };
    match open.sync() {
        Ok(()) => true,
        Err(error) => {
            tracing::error!(app = %ctx.app_id, %error, "cannot sync the app log");
            *writer = None;
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_can_be_shared_across_tasks() {
        fn shareable<T: Clone + Send + Sync + 'static>() {}
        fn sendable<T: Send + Unpin + 'static>() {}
        shareable::<LogStore>();
        shareable::<AppLog>();
        sendable::<Follow>();
    }

    #[test]
    fn app_ids_that_name_directories() {
        for ok in [
            "myapp",
            "my-app-2",
            "01J9Z3",
            "a.b_c",
            &"a".repeat(MAX_APP_ID_LEN),
        ] {
            assert!(valid_app_id(ok), "{ok}");
        }
        for bad in [
            "",
            ".",
            "..",
            ".hidden",
            "a/b",
            "a\\b",
            "a b",
            "é",
            &"a".repeat(MAX_APP_ID_LEN + 1),
        ] {
            assert!(!valid_app_id(bad), "{bad}");
        }
    }
}
