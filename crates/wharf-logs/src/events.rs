//! The texts of the platform events the supervisor writes, in Heroku's wording. Pair them with
//! [`crate::LogLine::event`]: `LogLine::event("web.1", events::state_changed("starting", "up"))`.

use std::fmt::Display;

/// `Starting process with command `bundle exec puma``.
pub fn starting(command: &str) -> String {
    format!("Starting process with command `{command}`")
}

/// `State changed from starting to up`.
pub fn state_changed(from: impl Display, to: impl Display) -> String {
    format!("State changed from {from} to {to}")
}

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// It exited with this status.
    Status(i32),
    /// A signal with this number killed it.
    Signal(i32),
}

/// `Process exited with status 1`; for a signal, the shell's status with the signal's name,
/// `Process exited with status 137 (SIGKILL)`, as Heroku reports a killed dyno.
pub fn exited(exit: Exit) -> String {
    match exit {
        Exit::Status(code) => format!("Process exited with status {code}"),
        Exit::Signal(n) => format!(
            "Process exited with status {} ({})",
            128_i64 + i64::from(n),
            signal_name(n)
        ),
    }
}

/// `Stopping all processes with SIGTERM`.
pub fn stopping_all(signal: &str) -> String {
    format!("Stopping all processes with {signal}")
}

/// `Stopping process with SIGKILL`.
pub fn stopping(signal: &str) -> String {
    format!("Stopping process with {signal}")
}

/// `Restarting`.
pub fn restarting() -> String {
    "Restarting".to_owned()
}

/// `Error R10 (Boot timeout) -> Web process failed to bind to $PORT within 60 seconds of launch`.
pub fn boot_timeout(seconds: u64) -> String {
    format!(
        "Error R10 (Boot timeout) -> Web process failed to bind to $PORT within {seconds} seconds of launch"
    )
}

/// `Error R12 (Exit timeout) -> At least one process failed to exit within 30 seconds of SIGTERM`.
pub fn exit_timeout(seconds: u64, signal: &str) -> String {
    format!(
        "Error R12 (Exit timeout) -> At least one process failed to exit within {seconds} seconds of {signal}"
    )
}

/// `Log overflow: 42 lines dropped`: written before the next line that fit after a flood.
pub fn dropped(n: u64) -> String {
    if n == 1 {
        "Log overflow: 1 line dropped".to_owned()
    } else {
        format!("Log overflow: {n} lines dropped")
    }
}

/// The count in a [`dropped`] text, for clients and tests that add up what was lost.
pub fn parse_dropped(text: &str) -> Option<u64> {
    let rest = text.strip_prefix("Log overflow: ")?;
    let n = rest
        .strip_suffix(" lines dropped")
        .or_else(|| rest.strip_suffix(" line dropped"))?;
    n.parse().ok()
}

/// The process name of the log's own notices (overflow).
pub const LOG_PROCESS: &str = "wharf";

/// `SIGKILL` for 9, and so on for the usual Linux signals; `signal 42` otherwise.
pub fn signal_name(n: i32) -> String {
    let name = match n {
        1 => "SIGHUP",
        2 => "SIGINT",
        3 => "SIGQUIT",
        4 => "SIGILL",
        5 => "SIGTRAP",
        6 => "SIGABRT",
        7 => "SIGBUS",
        8 => "SIGFPE",
        9 => "SIGKILL",
        10 => "SIGUSR1",
        11 => "SIGSEGV",
        12 => "SIGUSR2",
        13 => "SIGPIPE",
        14 => "SIGALRM",
        15 => "SIGTERM",
        24 => "SIGXCPU",
        25 => "SIGXFSZ",
        _ => return format!("signal {n}"),
    };
    name.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_use_herokus_wording() {
        assert_eq!(
            starting("bundle exec puma"),
            "Starting process with command `bundle exec puma`"
        );
        assert_eq!(
            state_changed("starting", "up"),
            "State changed from starting to up"
        );
        assert_eq!(exited(Exit::Status(1)), "Process exited with status 1");
        assert_eq!(
            exited(Exit::Signal(9)),
            "Process exited with status 137 (SIGKILL)"
        );
        assert_eq!(
            exited(Exit::Signal(i32::MAX)),
            format!(
                "Process exited with status {} (signal {})",
                128_i64 + i64::from(i32::MAX),
                i32::MAX
            )
        );
        assert_eq!(
            stopping_all("SIGTERM"),
            "Stopping all processes with SIGTERM"
        );
        assert_eq!(dropped(1), "Log overflow: 1 line dropped");
        assert_eq!(dropped(42), "Log overflow: 42 lines dropped");
    }

    #[test]
    fn dropped_counts_parse_back() {
        for n in [0, 1, 2, u64::MAX] {
            assert_eq!(parse_dropped(&dropped(n)), Some(n));
        }
        assert_eq!(parse_dropped("Log overflow: many lines dropped"), None);
    }
}
