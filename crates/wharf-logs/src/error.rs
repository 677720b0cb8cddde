//! The one error type of this crate.

use std::io;
use std::path::PathBuf;

/// What went wrong reading, writing or removing an app's log, or with the input naming it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LogError {
    /// The store's root or an app's directory could not be created.
    #[error("cannot create log directory `{}`", path.display())]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// An app's log directory could not be listed.
    #[error("cannot list log segments in `{}`", path.display())]
    ListSegments {
        /// The app's log directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A segment file could not be read.
    #[error("cannot read log segment `{}`", path.display())]
    ReadSegment {
        /// The segment file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A segment file could not be opened or written for appending.
    #[error("cannot append to log segment `{}`", path.display())]
    WriteSegment {
        /// The segment file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A destroyed app's log directory could not be removed.
    #[error("cannot remove log directory `{}`", path.display())]
    RemoveDir {
        /// The app's log directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The app id cannot be used as a directory name.
    #[error(
        "app id `{app_id}` cannot name a log directory: use 1 to {max} letters, digits, `-`, `_` or `.`, not starting with `.`",
        max = crate::store::MAX_APP_ID_LEN
    )]
    InvalidAppId {
        /// The id as given (control characters escaped, cut to a readable length).
        app_id: String,
    },
    /// A filter named a source that doesn't exist.
    #[error("log source `{value}` is not one of `app`, `wharf` (or `heroku`), `router`")]
    InvalidSource {
        /// The source as given.
        value: String,
    },
    /// An event id (`Last-Event-ID`) that is not a decimal number.
    #[error("event id `{value}` is not a decimal number")]
    InvalidEventId {
        /// The id as given.
        value: String,
    },
    /// Retention limits that would keep nothing.
    #[error(
        "log retention needs segment_bytes and max_segments of at least 1 (got {segment_bytes} and {max_segments})"
    )]
    InvalidRetention {
        /// The segment size asked for.
        segment_bytes: u64,
        /// The segment count asked for.
        max_segments: usize,
    },
    /// The blocking task reading an app's log stopped (the runtime is shutting down).
    #[error("log reader for app `{app_id}` stopped before finishing")]
    ReaderStopped {
        /// The app.
        app_id: String,
    },
}

/// A readable, bounded rendering of untrusted input for an error message.
pub(crate) fn shown(input: &str) -> String {
    const MAX_CHARS: usize = 80;
    let mut out: String = input
        .chars()
        .take(MAX_CHARS)
        .flat_map(char::escape_debug)
        .collect();
    if input.chars().nth(MAX_CHARS).is_some() {
        out.push('…');
    }
    out
}
