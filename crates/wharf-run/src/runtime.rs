//! Process mechanics shared by instances and one-off processes: the process table, signalling a
//! process group, exit texts, pid files, scratch directories and draining output into the log.

use std::collections::HashMap;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};

use crate::{LogSink, RunError, Stream};

/// Longer output lines are split into pieces of this many bytes.
pub(crate) const MAX_LINE: usize = 10 * 1024;

pub(crate) use wharf_sandbox::procfs::{proc_stat, process_table};

/// Memory of the processes of group `pgid`, in bytes: the sum of their proportional set sizes
/// (`Pss`), so pages they share (a forked child's, a library's) count once in all, not once per
/// process. `VmRSS` stands in where `smaps_rollup` is missing.
pub(crate) fn group_memory(pgid: i32) -> u64 {
    let field = |text: &str, name: &str| -> Option<u64> {
        let kib: u64 = text
            .lines()
            .find_map(|l| l.strip_prefix(name))?
            .split_whitespace()
            .next()?
            .parse()
            .ok()?;
        Some(kib * 1024)
    };
    process_table()
        .iter()
        .filter(|p| p.pgrp == pgid && !p.zombie)
        .filter_map(|p| {
            std::fs::read_to_string(format!("/proc/{}/smaps_rollup", p.pid))
                .ok()
                .and_then(|t| field(&t, "Pss:"))
                .or_else(|| {
                    let status = std::fs::read_to_string(format!("/proc/{}/status", p.pid)).ok()?;
                    field(&status, "VmRSS:")
                })
        })
        .sum()
}

/// Whether a process of group `pgid` still runs (zombies don't count: they run nothing).
pub(crate) fn group_alive(pgid: i32) -> bool {
    process_table().iter().any(|p| p.pgrp == pgid && !p.zombie)
}

/// Sends `signal` to the group led by `pgid`. Under bubblewrap the group also holds bwrap's
/// monitor (the leader) and its pid-1 init; those must not get a catchable stop signal — the
/// monitor would die and take the app with it at once — so they are spared, and bwrap ends on
/// its own when the app exits. SIGKILL always goes to the whole group.
pub(crate) fn signal_group(pgid: i32, signal: Signal, sandboxed: bool) {
    if !sandboxed || signal == Signal::SIGKILL {
        // An error only means the group is already gone.
        let _ = killpg(Pid::from_raw(pgid), signal);
        return;
    }
    for p in process_table() {
        let bwrap = p.comm == "bwrap" && (p.pid == pgid || p.ppid == pgid);
        if p.pgrp == pgid && !p.zombie && !bwrap {
            let _ = kill(Pid::from_raw(p.pid), signal);
        }
    }
}

/// Kills whatever is left of a group and waits (up to `within`) until it is gone.
pub(crate) async fn kill_group(pgid: i32, within: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if !group_alive(pgid) {
            return true;
        }
        let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Sends SIGHUP to a terminal one-off started as `pgid`, as a closing terminal would: to its
/// session (led by `pgid`), or under bubblewrap to everything the sandbox runs (the session is
/// inside; bwrap itself is spared, as in [`signal_group`]).
pub(crate) fn hang_up(pgid: i32, sandboxed: bool) {
    let table = process_table();
    let parents: HashMap<i32, i32> = table.iter().map(|p| (p.pid, p.ppid)).collect();
    let below = |mut pid: i32| {
        // Up the parent links (bounded: a cycle can't happen, but a table read mid-change
        // may hold odd links).
        for _ in 0..64 {
            match parents.get(&pid) {
                Some(&parent) if parent == pgid => return true,
                Some(&parent) if parent > 1 => pid = parent,
                _ => return false,
            }
        }
        false
    };
    for p in &table {
        let ours = if sandboxed {
            p.comm != "bwrap" && below(p.pid)
        } else {
            p.session == pgid
        };
        if ours && !p.zombie {
            let _ = kill(Pid::from_raw(p.pid), Signal::SIGHUP);
        }
    }
}

/// Kills whatever is left of session `sid` (a terminal one-off's: a shell's jobs have process
/// groups of their own) and waits (up to `within`) until it is gone.
pub(crate) async fn kill_session(sid: i32, within: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let left: Vec<i32> = process_table()
            .iter()
            .filter(|p| p.session == sid && !p.zombie)
            .map(|p| p.pid)
            .collect();
        if left.is_empty() {
            return true;
        }
        for pid in left {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// `status 3` or `signal SIGKILL`, as shown in `wharf ps` and the log.
pub(crate) fn exit_text(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("status {code}"),
        (None, Some(sig)) => match Signal::try_from(sig) {
            Ok(s) => format!("signal {}", s.as_str()),
            Err(_) => format!("signal {sig}"),
        },
        (None, None) => "unknown status".to_owned(),
    }
}

/// The shell convention: the exit code, or 128 + the signal number.
pub(crate) fn exit_code(status: ExitStatus) -> i32 {
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(-1)
}

/// Writes `<pgid> <start time>` atomically.
pub(crate) fn write_pid_file(path: &Path, pgid: i32, start_time: u64) -> Result<(), RunError> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, format!("{pgid} {start_time}\n"))
        .map_err(RunError::io("write pid file", &tmp))?;
    std::fs::rename(&tmp, path).map_err(RunError::io("write pid file", path))
}

pub(crate) fn read_pid_file(path: &Path) -> Option<(i32, u64)> {
    let text = std::fs::read_to_string(path).ok()?;
    let mut parts = text.split_whitespace();
    let pgid = parts.next()?.parse().ok()?;
    let start = parts.next()?.parse().ok()?;
    (pgid > 1).then_some((pgid, start))
}

/// Removes a directory tree, first giving back write permission to any directory an app made
/// read-only (which would stop a non-root wharf from emptying it).
pub(crate) fn wipe(path: &Path) -> Result<(), RunError> {
    match std::fs::remove_dir_all(path) {
        Ok(()) => return Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(_) => {}
    }
    make_writable(path);
    match std::fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(RunError::io("remove", path)(e)),
    }
}

fn make_writable(path: &Path) {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return;
    };
    if meta.is_dir() {
        let mut perms = meta.permissions();
        perms.set_mode(perms.mode() | 0o700);
        let _ = std::fs::set_permissions(path, perms);
        if let Ok(entries) = std::fs::read_dir(path) {
            for e in entries.flatten() {
                make_writable(&e.path());
            }
        }
    }
}

/// Gives `dir` to root and the group `gid`, mode 0750: only that group's members (the app's
/// user) may pass through it besides wharf.
pub(crate) fn restrict_to_group(dir: &Path, gid: u32) -> Result<(), RunError> {
    std::os::unix::fs::chown(dir, Some(0), Some(gid))
        .map_err(RunError::io("change owner of", dir))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o750))
        .map_err(RunError::io("set permissions of", dir))
}

/// An instance's directory: `pid` (wharf's, out of the app's reach) and the app's scratch,
/// `home` and `tmp`.
#[derive(Debug, Clone)]
pub(crate) struct InstanceDir {
    pub root: PathBuf,
}

impl InstanceDir {
    pub fn home(&self) -> PathBuf {
        self.root.join("home")
    }
    pub fn tmp(&self) -> PathBuf {
        self.root.join("tmp")
    }
    pub fn pid_file(&self) -> PathBuf {
        self.root.join("pid")
    }

    /// Wipes and recreates the directory, its scratch owned by the app's user when given. The
    /// app's directory of instances then belongs to the user's group (mode 0750), so no other
    /// app's user can look inside.
    pub fn prepare(&self, user: Option<u32>) -> Result<(), RunError> {
        wipe(&self.root)?;
        std::fs::create_dir_all(&self.root).map_err(RunError::io("create", &self.root))?;
        if let (Some(uid), Some(app_dir)) = (user, self.root.parent()) {
            restrict_to_group(app_dir, uid)?;
        }
        for dir in [self.home(), self.tmp()] {
            std::fs::create_dir(&dir).map_err(RunError::io("create", &dir))?;
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
                .map_err(RunError::io("set permissions of", &dir))?;
            if let Some(uid) = user {
                std::os::unix::fs::chown(&dir, Some(uid), Some(uid))
                    .map_err(RunError::io("change owner of", &dir))?;
            }
        }
        Ok(())
    }
}

/// Reads `reader` line by line into the sink until end of file. Lines longer than
/// [`MAX_LINE`] are split. Never waits on the sink beyond the call itself, so the process is
/// never slowed down by its log.
pub(crate) async fn pump_lines(
    reader: impl AsyncRead + Unpin,
    sink: Arc<dyn LogSink>,
    process: String,
    stream: Stream,
) {
    let mut reader = BufReader::with_capacity(64 * 1024, reader);
    let mut pending: Vec<u8> = Vec::new();
    let emit = |bytes: &[u8]| {
        let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
        sink.line(&process, stream, &String::from_utf8_lossy(bytes));
    };
    loop {
        let chunk = match reader.fill_buf().await {
            Ok([]) | Err(_) => break,
            Ok(chunk) => chunk,
        };
        let room = MAX_LINE - pending.len();
        let window = &chunk[..chunk.len().min(room)];
        match window.iter().position(|&b| b == b'\n') {
            Some(i) => {
                pending.extend_from_slice(&window[..i]);
                emit(&pending);
                pending.clear();
                reader.consume(i + 1);
            }
            None => {
                let n = window.len();
                pending.extend_from_slice(window);
                reader.consume(n);
                if pending.len() >= MAX_LINE {
                    emit(&pending);
                    pending.clear();
                }
            }
        }
    }
    if !pending.is_empty() {
        emit(&pending);
    }
}

/// Reads `reader` in chunks into `tx` (an attached one-off's output). When the receiver is
/// gone the output is still drained, so the process never blocks on a full pipe.
pub(crate) async fn pump_chunks(
    reader: impl AsyncRead + Unpin,
    tx: tokio::sync::mpsc::Sender<Vec<u8>>,
) {
    use tokio::io::AsyncReadExt;
    let mut reader = reader;
    let mut buf = vec![0u8; 16 * 1024];
    let mut open = true;
    loop {
        match reader.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if open && tx.send(buf[..n].to_vec()).await.is_err() {
                    open = false;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Lines(Mutex<Vec<String>>);
    impl LogSink for Lines {
        fn line(&self, _: &str, _: Stream, text: &str) {
            self.0.lock().unwrap().push(text.to_owned());
        }
        fn event(&self, _: &str, _: &str) {}
    }

    #[tokio::test]
    async fn long_lines_are_split_and_crlf_trimmed() {
        let mut input = b"short\r\n".to_vec();
        input.extend(std::iter::repeat_n(b'x', MAX_LINE + 5));
        input.extend(b"\nlast");
        let sink = Arc::new(Lines::default());
        pump_lines(&input[..], sink.clone(), "web.1".into(), Stream::Stdout).await;
        let lines = sink.0.lock().unwrap().clone();
        assert_eq!(lines.len(), 4);
        assert_eq!(lines[0], "short");
        assert_eq!(lines[1].len(), MAX_LINE);
        assert_eq!(lines[2], "xxxxx");
        assert_eq!(lines[3], "last");
    }
}
