//! Best-effort resource limits through cgroups: v2 (`/sys/fs/cgroup/wharf/<app>/<instance>`
//! with `memory.max` and `pids.max`, and the `cpu` controller) or v1 (`memory/wharf/…` with
//! `memory.limit_in_bytes`, `pids/wharf/…` with `pids.max`, `cpu/wharf/…`). Where neither is
//! writable, limits are not enforced and that is logged once at start.
//!
//! CPU is shared, not capped: every app's instances sit below one `wharf` cgroup, which weighs
//! as much as one busy process beside wharf itself, so apps that spin (a fork bomb that hit its
//! pids limit, say) share that part of the CPU among themselves and can't starve the server.
//!
//! The cgroups are made before the instance is spawned, and the instance joins them itself,
//! before its program runs, through wharf's launcher (`wharf cgroup-exec`, see
//! [`crate::launch`]), so nothing it starts is ever outside them. Where wharf's own
//! executable can't be found (wharf-run embedded in another program), the process group is
//! moved in right after the spawn instead, and whatever forked and left the group within that
//! instant escapes the limits.

use std::path::{Path, PathBuf};

use crate::procfs::process_table;

const ROOT: &str = "/sys/fs/cgroup";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cgroups {
    V2,
    V1,
    Unavailable,
}

/// Limits of one instance, and where they live.
#[derive(Debug, Default)]
pub struct Limits {
    dirs: Vec<PathBuf>,
}

impl Cgroups {
    pub fn detect() -> Cgroups {
        let root = Path::new(ROOT);
        let v2 = root.join("cgroup.controllers");
        let detected = if v2.is_file() {
            writable_dir(&root.join("wharf")).then_some(Cgroups::V2)
        } else if root.join("memory").is_dir() {
            writable_dir(&root.join("memory").join("wharf")).then_some(Cgroups::V1)
        } else {
            None
        };
        match detected {
            Some(c) => c,
            None => {
                tracing::warn!(
                    "cgroups are not writable here; memory and pids limits are not enforced"
                );
                Cgroups::Unavailable
            }
        }
    }

    /// Creates the instance's cgroups and sets the limits; the process joins them through the
    /// launcher ([`Limits::procs_files`]) or is moved in afterwards ([`Limits::join`]).
    pub fn prepare(&self, app_id: &str, instance: &str, memory: Option<u64>, pids: u32) -> Limits {
        let mut limits = Limits::default();
        let root = Path::new(ROOT);
        let leaf = Path::new("wharf").join(app_id).join(instance);
        let settings: Vec<(PathBuf, Vec<(&str, String)>)> = match self {
            Cgroups::Unavailable => return limits,
            Cgroups::V2 => {
                // Controllers must be enabled for the children of each level above the leaf.
                for level in [
                    root.to_path_buf(),
                    root.join("wharf"),
                    root.join("wharf").join(app_id),
                ] {
                    let _ = std::fs::create_dir_all(&level);
                    // One at a time: a controller this host lacks must not keep the others off.
                    for controller in ["+memory", "+pids", "+cpu"] {
                        let _ = std::fs::write(level.join("cgroup.subtree_control"), controller);
                    }
                }
                let mut values = vec![("pids.max", pids.to_string())];
                if let Some(m) = memory {
                    values.push(("memory.max", m.to_string()));
                    values.push(("memory.swap.max", "0".to_owned()));
                }
                vec![(root.join(&leaf), values)]
            }
            Cgroups::V1 => {
                let mut out = vec![(
                    root.join("pids").join(&leaf),
                    vec![("pids.max", pids.to_string())],
                )];
                if root.join("cpu").is_dir() {
                    out.push((root.join("cpu").join(&leaf), Vec::new()));
                }
                if let Some(m) = memory {
                    out.push((
                        root.join("memory").join(&leaf),
                        vec![("memory.limit_in_bytes", m.to_string())],
                    ));
                }
                out
            }
        };
        for (dir, values) in settings {
            if std::fs::create_dir_all(&dir).is_err() {
                tracing::warn!(cgroup = %dir.display(), "cannot create cgroup; limits not enforced");
                continue;
            }
            for (file, value) in values {
                if let Err(e) = std::fs::write(dir.join(file), &value) {
                    tracing::warn!(cgroup = %dir.display(), file, error = %e, "cannot set cgroup limit");
                }
            }
            limits.dirs.push(dir);
        }
        limits
    }
}

impl Cgroups {
    /// Removes the cgroups of instance `instance` of app `app_id` that a previous (killed)
    /// server left behind, once their processes are gone, and the app's level if it is left
    /// empty. A cgroup that still holds a process is not removed (the kernel refuses).
    pub fn remove_leftover(&self, app_id: &str, instance: &str) {
        let root = Path::new(ROOT);
        let leaf = Path::new("wharf").join(app_id).join(instance);
        let dirs: Vec<PathBuf> = match self {
            Cgroups::Unavailable => return,
            Cgroups::V2 => vec![root.join(&leaf)],
            Cgroups::V1 => ["pids", "cpu", "memory"]
                .iter()
                .map(|controller| root.join(controller).join(&leaf))
                .collect(),
        };
        Limits { dirs }.remove();
    }
}

impl Cgroups {
    /// Removes the cgroups below `wharf/<group>` that were made over `older_than` ago and hold
    /// no process: those of a server that was killed before it could remove them (a build's,
    /// whose processes died with it). Younger ones are left alone, for another server on this
    /// machine may have made one an instant ago and not yet moved its process in; one that
    /// holds a process is not removed (the kernel refuses). Returns how many went.
    pub fn remove_stale(&self, group: &str, older_than: std::time::Duration) -> usize {
        let root = Path::new(ROOT);
        let bases: Vec<PathBuf> = match self {
            Cgroups::Unavailable => return 0,
            Cgroups::V2 => vec![root.join("wharf").join(group)],
            Cgroups::V1 => ["pids", "cpu", "memory"]
                .iter()
                .map(|controller| root.join(controller).join("wharf").join(group))
                .collect(),
        };
        let mut removed = 0;
        for base in bases {
            let Ok(entries) = std::fs::read_dir(&base) else {
                continue;
            };
            for entry in entries.filter_map(Result::ok) {
                let old = entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|age| age >= older_than);
                if old && entry.path().is_dir() && std::fs::remove_dir(entry.path()).is_ok() {
                    removed += 1;
                }
            }
        }
        if removed > 0 {
            tracing::info!(
                group,
                removed,
                "removed cgroups a killed server left behind"
            );
        }
        removed
    }
}

impl Limits {
    /// The `cgroup.procs` file of each of the instance's cgroups.
    pub fn procs_files(&self) -> Vec<PathBuf> {
        self.dirs.iter().map(|d| d.join("cgroup.procs")).collect()
    }

    /// Moves every process of the group `pgid` in: all of them when the launcher could not be
    /// used, and otherwise a no-op check that nothing was missed.
    pub fn join(&self, pgid: i32) {
        let members: Vec<i32> = process_table()
            .iter()
            .filter(|p| p.pgrp == pgid && !p.zombie)
            .map(|p| p.pid)
            .collect();
        for file in self.procs_files() {
            for pid in &members {
                let _ = std::fs::write(&file, pid.to_string());
            }
        }
    }

    /// Waits (up to `within`) for the cgroups' last processes to be gone, as the kernel may
    /// still count one that was killed an instant ago, then removes them.
    pub fn remove_when_empty(mut self, within: std::time::Duration) {
        let deadline = std::time::Instant::now() + within;
        let empty = |dir: &PathBuf| {
            std::fs::read_to_string(dir.join("cgroup.procs")).map_or(true, |p| p.trim().is_empty())
        };
        while !self.dirs.iter().all(empty) && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        self.remove();
    }

    /// Removes the cgroups once their processes are gone.
    pub fn remove(&mut self) {
        for dir in self.dirs.drain(..) {
            let _ = std::fs::remove_dir(&dir);
            // The app's level goes too once its last instance is gone (fails harmlessly before).
            if let Some(app) = dir.parent() {
                let _ = std::fs::remove_dir(app);
            }
        }
    }
}

fn writable_dir(dir: &Path) -> bool {
    std::fs::create_dir_all(dir).is_ok()
        && nix::unistd::access(dir, nix::unistd::AccessFlags::W_OK).is_ok()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn stale_empty_cgroups_go_and_young_or_busy_ones_stay() {
        let cgroups = Cgroups::detect();
        if cgroups == Cgroups::Unavailable {
            eprintln!("note: cgroups are not writable here; nothing to check");
            return;
        }
        // A group of this test's own: other tests' (and servers') cgroups are never touched.
        let group = format!("test-stale-{}", std::process::id());
        let empty = cgroups.prepare(&group, "empty", None, 16);
        let mut busy = cgroups.prepare(&group, "busy", None, 16);
        let mut sleeper = std::process::Command::new("sleep")
            .arg("60")
            .spawn()
            .unwrap();
        for file in busy.procs_files() {
            std::fs::write(file, sleeper.id().to_string()).unwrap();
        }
        let exists = |limits: &Limits| limits.dirs.iter().all(|d| d.is_dir());

        assert_eq!(cgroups.remove_stale(&group, Duration::from_secs(3600)), 0);
        assert!(exists(&empty) && exists(&busy), "young ones stay");
        assert_eq!(
            cgroups.remove_stale(&group, Duration::ZERO),
            empty.dirs.len()
        );
        assert!(!empty.dirs.iter().any(|d| d.exists()), "the empty one went");
        assert!(exists(&busy), "one holding a process stays");

        sleeper.kill().unwrap();
        sleeper.wait().unwrap();
        busy.remove();
        for dir in &busy.dirs {
            let _ = std::fs::remove_dir(dir.parent().unwrap());
        }
    }
}
