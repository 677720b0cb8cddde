//! Restart safety: stopping what a previous, killed server left running.

use std::path::Path;
use std::time::Duration;

use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;

use crate::runtime::{proc_stat, process_table, read_pid_file, wipe};
use crate::RunError;

/// Kills every process group named by a pid file under `run_dir` (`<app>/<instance>/pid`)
/// whose leader still has the recorded start time (a recycled pid is never signalled), waits
/// for them, then empties `run_dir`. Returns how many groups were killed.
pub(crate) async fn clean(run_dir: &Path) -> Result<usize, RunError> {
    let killed = kill_recorded(run_dir, true);
    for pgid in &killed {
        // A terminal one-off leads a session of its own, whose jobs may be in other groups.
        let gone = crate::runtime::kill_group(*pgid, Duration::from_secs(5)).await
            && crate::runtime::kill_session(*pgid, Duration::from_secs(5)).await;
        if !gone {
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
/// the recorded start time (and to its session, if the leader leads one), or whose leader is
/// gone while members of its group or session live on; returns their ids. `stale` says whether
/// they were left by another server (and is only logged).
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
                match proc_stat(pgid) {
                    // The recorded leader: its group, and its session if it leads one (a
                    // terminal one-off's, whose shell's jobs have groups of their own).
                    Some(leader) if leader.start_time == start && !leader.zombie => {
                        if stale {
                            tracing::info!(pgid, instance = %instance.path().display(), "stopping a process left by a previous server");
                        }
                        let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
                        if leader.session == pgid {
                            kill_members(pgid);
                        }
                        killed.push(pgid);
                    }
                    // Another process has the pid now: the group is not ours to touch.
                    Some(other) if !other.zombie => {}
                    // The leader is gone (a terminal one-off's dies of the hangup when the server
                    // that held its terminal dies) but its group or session may live on. Their
                    // id can't have gone to anyone else while they do: the kernel hands out no
                    // pid still in use as a group or session id.
                    _ => {
                        if kill_members(pgid) > 0 {
                            if stale {
                                tracing::info!(pgid, instance = %instance.path().display(), "stopping processes left by a previous server");
                            }
                            killed.push(pgid);
                        }
                    }
                }
            }
        }
    }
    killed
}

/// Sends SIGKILL to every live process of group or session `id`; returns how many there were.
fn kill_members(id: i32) -> usize {
    let members: Vec<i32> = process_table()
        .iter()
        .filter(|p| (p.pgrp == id || p.session == id) && !p.zombie)
        .map(|p| p.pid)
        .collect();
    for pid in &members {
        let _ = kill(Pid::from_raw(*pid), Signal::SIGKILL);
    }
    members.len()
}
