//! A temp-dir store and helpers to wait on followed lines with a deadline.

use std::path::PathBuf;
use std::time::Duration;

use futures_util::StreamExt;
use tempfile::TempDir;
use wharf_logs::{
    AppLog, EventId, Follow, LogFilter, LogLine, LogStore, Retention, Source, StoredLine,
};

/// How long a test waits for a condition before failing (never a timing assertion).
pub const DEADLINE: Duration = Duration::from_secs(60);

pub struct Fixture {
    pub dir: TempDir,
    pub store: LogStore,
    pub limits: Retention,
}

impl Fixture {
    pub fn new() -> Fixture {
        Self::with(Retention::default())
    }

    pub fn with(limits: Retention) -> Fixture {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = LogStore::open(dir.path(), limits).expect("open store");
        Fixture { dir, store, limits }
    }

    pub fn with_queue(limits: Retention, queue_lines: usize) -> Fixture {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = LogStore::open_with_queue(dir.path(), limits, queue_lines).expect("open store");
        Fixture { dir, store, limits }
    }

    /// "Restarts the server": drops the store (after flushing) and opens the same root again.
    pub async fn restart(self) -> Fixture {
        self.store.shutdown().await;
        let Fixture { dir, store, limits } = self;
        drop(store);
        let store = LogStore::open(dir.path(), limits).expect("reopen store");
        Fixture { dir, store, limits }
    }

    pub fn app_dir(&self, app: &str) -> PathBuf {
        self.dir.path().join(app)
    }

    /// The segment files of an app, oldest first.
    pub fn segments(&self, app: &str) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.app_dir(app))
            .map(|entries| {
                entries
                    .map(|e| e.expect("dir entry").path())
                    .filter(|p| p.extension().is_some_and(|e| e == "log"))
                    .collect()
            })
            .unwrap_or_default();
        files.sort();
        files
    }
}

pub fn app_line(process: &str, text: impl Into<String>) -> LogLine {
    LogLine::new(Source::App, process, text)
}

pub fn all_lines() -> LogFilter {
    LogFilter {
        lines: Some(wharf_logs::MAX_LINES),
        ..LogFilter::default()
    }
}

pub fn texts(lines: &[StoredLine]) -> Vec<String> {
    lines.iter().map(|l| l.line.text.clone()).collect()
}

pub fn ids(lines: &[StoredLine]) -> Vec<u64> {
    lines.iter().map(|l| l.id.get()).collect()
}

/// The next followed line, failing the test if none comes before the deadline.
pub async fn next_line(follow: &mut Follow) -> StoredLine {
    tokio::time::timeout(DEADLINE, follow.next())
        .await
        .expect("a followed line before the deadline")
        .expect("the follow stream to go on")
}

/// Followed lines up to and including the first whose text is `last`.
pub async fn lines_until(follow: &mut Follow, last: &str) -> Vec<StoredLine> {
    let mut lines = Vec::new();
    loop {
        let line = next_line(follow).await;
        let done = line.line.text == last;
        lines.push(line);
        if done {
            return lines;
        }
    }
}

/// Every retained line of `log` (including those still queued), read by following from the
/// start up to a marker line appended for the purpose (not returned).
pub async fn read_everything(log: &AppLog) -> Vec<StoredLine> {
    log.flush().await;
    let marker = "-- end of test --";
    assert!(
        log.append(LogLine::event("test", marker)),
        "the end marker fits an empty queue"
    );
    let mut follow = log
        .follow(LogFilter::default(), Some(EventId::new(0)))
        .await
        .expect("follow");
    let mut lines = lines_until(&mut follow, marker).await;
    lines.pop();
    lines
}
