//! Where an app's output and platform events go. The server adapts this to wharf-logs.

/// Which stream of the process a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// Receives one app's log lines. Implementations must not block: they are called from the
/// tasks that drain the processes' pipes, and a slow sink would stall the app. Drop (and count)
/// lines instead.
pub trait LogSink: Send + Sync {
    /// One line of the app's output (without the newline), from `process` (`web.1`, `run.2`).
    fn line(&self, process: &str, stream: Stream, text: &str);
    /// A platform event about `process`, e.g. ``Starting process with command `…` ``.
    fn event(&self, process: &str, text: &str);
}
