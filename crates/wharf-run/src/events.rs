//! The platform lines wharf writes into an app's log, worded as Heroku words them.

use std::time::Duration;

use crate::InstanceState;

pub fn starting(command: &str) -> String {
    format!("Starting process with command `{command}`")
}

pub fn state_changed(from: InstanceState, to: InstanceState) -> String {
    format!("State changed from {from} to {to}")
}

/// `exit` is an [`InstanceStatus::last_exit`](crate::InstanceStatus) text: `status 1`.
pub fn exited(exit: &str) -> String {
    format!("Process exited with {exit}")
}

pub fn stopping_all(signal: nix::sys::signal::Signal) -> String {
    format!("Stopping all processes with {}", signal.as_str())
}

pub fn boot_timeout(instance: &str, timeout: Duration) -> String {
    format!(
        "Error R10 (Boot timeout) -> {instance} failed to bind to $PORT within {}",
        duration_words(timeout)
    )
}

pub fn exit_timeout(grace: Duration, signal: nix::sys::signal::Signal) -> String {
    format!(
        "Error R12 (Exit timeout) -> At least one process failed to exit within {} of {}",
        duration_words(grace),
        signal.as_str()
    )
}

/// Heroku's R15: past the limit the process is stopped (wharf has no swap to allow R14's grace).
pub fn memory_exceeded(used: u64, limit: u64) -> String {
    format!(
        "Error R15 (Memory quota vastly exceeded) -> {}M of {}M in use; stopping the process with SIGKILL",
        used >> 20,
        limit >> 20
    )
}

pub fn cannot_start(reason: &str) -> String {
    format!("Error: cannot start the process: {reason}")
}

/// `60 seconds`, `1 second`, `250 milliseconds`.
pub fn duration_words(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        let s = d.as_secs();
        format!("{s} second{}", if s == 1 { "" } else { "s" })
    } else {
        format!("{} milliseconds", d.as_millis())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration_words(Duration::from_secs(60)), "60 seconds");
        assert_eq!(duration_words(Duration::from_secs(1)), "1 second");
        assert_eq!(
            duration_words(Duration::from_millis(250)),
            "250 milliseconds"
        );
    }

    #[test]
    fn boot_timeout_names_the_instance() {
        assert_eq!(
            boot_timeout("web.1", Duration::from_secs(60)),
            "Error R10 (Boot timeout) -> web.1 failed to bind to $PORT within 60 seconds"
        );
    }
}
