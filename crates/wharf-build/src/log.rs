//! The build output as the user reads it: wharf's own Heroku-style step headers
//! (`-----> Python app detected`), indented notes, and the build commands' output.

use tokio::sync::mpsc::UnboundedSender;

/// Where build output goes, one line (ending in `\n`) per message.
#[derive(Debug, Clone)]
pub(crate) struct BuildLog {
    /// The receiver is the server's build stream; it may be gone (a client disconnected), in
    /// which case lines are dropped and the build carries on.
    tx: UnboundedSender<String>,
}

/// How a command's output lines are shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OutputStyle {
    /// Indented under the step header, as Heroku shows pip, npm and cargo output.
    Indented,
    /// As printed: build scripts and buildpacks format their own output.
    Raw,
}

const INDENT: &str = "       ";

impl BuildLog {
    pub(crate) fn new(tx: UnboundedSender<String>) -> Self {
        BuildLog { tx }
    }

    /// A step header: `-----> {text}`.
    pub(crate) fn step(&self, text: &str) {
        self.send(format!("-----> {text}\n"));
    }

    /// A note under the current step: `       {text}`.
    pub(crate) fn note(&self, text: &str) {
        self.send(format!("{INDENT}{text}\n"));
    }

    /// One line of a command's output, without its line ending.
    pub(crate) fn output(&self, style: OutputStyle, line: &str) {
        match style {
            OutputStyle::Indented => self.send(format!("{INDENT}{line}\n")),
            OutputStyle::Raw => self.send(format!("{line}\n")),
        }
    }

    fn send(&self, line: String) {
        // A closed channel only means nobody is watching any more.
        let _ = self.tx.send(line);
    }
}
