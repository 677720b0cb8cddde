//! Finding and stopping every process a build command started.
//!
//! Each command is the leader of its own process group. Stopping it signals the group and, in
//! case something left the group (`setsid`), every descendant seen so far, identified by pid *and*
//! start time so a recycled pid is never signalled. "Gone" means no tracked process is alive; a
//! zombie counts as gone, since it no longer runs and only its parent can reap it.

use std::collections::BTreeMap;
use std::time::Duration;

use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;
use tokio::time::Instant;

/// How often the process table is re-read while waiting for processes to exit.
const POLL: Duration = Duration::from_millis(20);

use wharf_sandbox::procfs::process_table;

/// The processes of one build command: its process group and everything descended from it.
#[derive(Debug)]
pub(crate) struct ProcessTree {
    pgid: i32,
    /// pid → start time of every process seen belonging to the tree.
    known: BTreeMap<i32, u64>,
}

impl ProcessTree {
    pub(crate) fn new(leader: u32) -> Self {
        let pgid = i32::try_from(leader).unwrap_or(i32::MAX);
        ProcessTree {
            pgid,
            known: BTreeMap::new(),
        }
    }

    /// Re-reads the process table and returns the tree's live processes.
    fn refresh(&mut self) -> Vec<i32> {
        let table = process_table();
        loop {
            let mut grew = false;
            for e in &table {
                if self.known.contains_key(&e.pid) {
                    continue;
                }
                let parent_known = self.known.contains_key(&e.ppid) || e.ppid == self.pgid;
                if e.pgrp == self.pgid || e.pid == self.pgid || parent_known {
                    self.known.insert(e.pid, e.start_time);
                    grew = true;
                }
            }
            if !grew {
                break;
            }
        }
        table
            .iter()
            .filter(|e| !e.zombie && self.known.get(&e.pid) == Some(&e.start_time))
            .map(|e| e.pid)
            .collect()
    }

    fn signal(&self, alive: &[i32], signal: Signal) {
        // Errors only mean the process or group is already gone.
        let _ = killpg(Pid::from_raw(self.pgid), signal);
        for &pid in alive {
            let _ = kill(Pid::from_raw(pid), signal);
        }
    }

    /// Stops the tree: SIGTERM, then SIGKILL after `grace`, and waits until no process of it is
    /// left (or gives up after a further `grace`, which only happens if the kernel can't kill a
    /// process, e.g. one stuck in uninterruptible I/O). Returns whether everything is gone.
    pub(crate) async fn stop(&mut self, grace: Duration) -> bool {
        let alive = self.refresh();
        if alive.is_empty() {
            return true;
        }
        self.signal(&alive, Signal::SIGTERM);
        if self.wait_gone(grace).await {
            return true;
        }
        let alive = self.refresh();
        self.signal(&alive, Signal::SIGKILL);
        self.wait_gone(grace).await
    }

    async fn wait_gone(&mut self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        loop {
            let alive = self.refresh();
            if alive.is_empty() {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Kills the tree without waiting: for when the build future is dropped mid-command.
    pub(crate) fn kill_now(&mut self) {
        let alive = self.refresh();
        self.signal(&alive, Signal::SIGKILL);
    }
}
