//! wharf's durable per-app log: everything an app's instances print (stdout and stderr, line by
//! line), the router's request lines and the platform's events about the app, kept per app in
//! capped segment files that survive deploys and server restarts, read back as a tail with
//! Heroku's filters (`--num`, `--source`, `--dyno`) and followed live with resumable event ids.
//! It owns the on-disk format, the one writer task per app, retention and followers; it must not
//! touch the database, speak HTTP or manage processes: the supervisor and the router append
//! [`LogLine`]s, and the server turns [`StoredLine`]s into responses and SSE events.
//!
//! # Layout
//!
//! [`LogStore`] holds every app's log under one root (`$WHARF_DATA_DIR/logs/apps`), one
//! directory per app, `<root>/<app_id>/`, holding numbered segment files `00000001.log`,
//! `00000002.log`, … A segment is closed before it would pass [`Retention::segment_bytes`], and
//! at most [`Retention::max_segments`] are kept (the oldest is deleted). Each line is one record:
//!
//! ```text
//! <id> TAB <time> TAB <source> TAB <process> TAB <text length> TAB <text> LF
//! 42\t2026-11-24T22:13:28.123456789Z\tapp\tweb.1\t11\thello world\n
//! ```
//!
//! (shown with `\t` for a tab and `\n` for the line feed). `id` is the line's [`EventId`]
//! (decimal, strictly increasing per app; on restart the writer continues after the last
//! well-formed line); `time` is RFC 3339 in UTC with nanoseconds; `source` is `app`, `wharf` or
//! `router`; in `process` and `text`, `\` is written `\\`, tab `\t`, LF `\n` and CR `\r`, so
//! every field round-trips exactly; `text length` is the byte length of the escaped text, so a
//! record cut short by a crash is detected rather than read as a shorter line. A torn or corrupt line is skipped and counted ([`LogStats::corrupt`]),
//! never a reason to refuse an app's log; after a torn last line, appending goes on on a
//! fresh line.
//!
//! # Writing and following
//!
//! [`AppLog::append`] never waits for the disk: it puts the line in a bounded queue drained by
//! one writer task per app, and drops (and counts) lines when the queue is full, writing
//! `Log overflow: N lines dropped` before the next line that fits. The writer flushes whenever
//! the queue is momentarily empty and then tells followers through a `watch`; followers read
//! new lines back from the segment files by position and id, so a slow follower loses nothing
//! that is still retained and never sees a line twice.

mod error;
pub mod events;
mod filter;
mod line;
mod record;
mod scan;
mod segment;
mod store;

pub use error::LogError;
pub use filter::{LogFilter, DEFAULT_LINES, MAX_LINES};
pub use line::{
    EventId, LogLine, Source, StoredLine, MAX_PROCESS_BYTES, MAX_TEXT_BYTES, TRUNCATED_MARK,
};
pub use store::{
    AppLog, Follow, LogStats, LogStore, Retention, DEFAULT_QUEUE_LINES, MAX_APP_ID_LEN,
};
