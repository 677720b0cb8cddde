//! Restart safety: stopping what a previous, killed server left running.

use std::path::Path;
use std::time::Duration;

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

use crate::runtime::{proc_stat, read_pid_file, wipe};
use crate::RunError;

/// Kills every process group named by a pid file under `run_dir` (`<app>/<instance>/pid`)
/// whose leader still has the recorded start time (a recycled pid is never signalled), waits
/// for them, then empties `run_dir`. Returns how many groups were killed.
pub(crate) async fn clean(run_dir: &Path) -> Result<usize, RunError> {
    let killed = kill_recorded(run_dir, true);
    for pgid in &killed {
        if !crate::runtime::kill_group(*pgid, Duration::from_secs(5)).await {
            tracing::warn!(pgid, "a process left by a previous server did not die");
        }
    }
    if let Ok(entries) = std::fs::read_dir(run_dir) {
        for entry in entries.flatten() {
            wipe(&entry.path())?;
        }
    }
    Ok(killed.len())
}

/// Sends SIGKILL to every process group a pid file under `run_dir` names whose leader still has
/// the recorded start time; returns their ids. `stale` says whether they were left by another
/// server (and is only logged).
pub(crate) fn kill_recorded(run_dir: &Path, stale: bool) -> Vec<i32> {
    let mut killed = Vec::new();
    if let Ok(apps) = std::fs::read_dir(run_dir) {
        for app in apps.flatten() {
            let Ok(instances) = std::fs::read_dir(app.path()) else {
                continue;
            };
            for instance in instances.flatten() {
                let pid_file = instance.path().join("pid");
                let Some((pgid, start)) = read_pid_file(&pid_file) else {
                    continue;
                };
                let same = proc_stat(pgid).is_some_and(|p| p.start_time == start && !p.zombie);
                if same {
                    if stale {
                        tracing::info!(pgid, instance = %instance.path().display(), "stopping a process left by a previous server");
                    }
                    let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
                    killed.push(pgid);
                }
            }
        }
    }
    killed
}
