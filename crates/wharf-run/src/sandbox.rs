//! How an instance's process is isolated: bubblewrap namespaces, or none. When wharf runs as
//! root, either way, each app's processes run as the app's own unprivileged user
//! ([`wharf_sandbox::users`]): no capabilities, no supplementary groups, no-new-privileges under
//! bubblewrap. An app's scratch belongs to its user and its release tree to its group, so
//! another app can neither read them nor signal its processes.
//!
//! Under bubblewrap the host is visible read-only, the release tree is mounted read-only at
//! `/app`, `/tmp` and `/run` are private, wharf's data directory is hidden (an app can't read
//! the database or other apps' trees) except for the instance's own scratch, and the app has
//! its own pid and IPC namespaces. bubblewrap itself runs as root (so it can mount what the app
//! user could not reach) and `setpriv` drops to the app's user before the app starts. The
//! network is shared: apps bind `PORT` on the host. No `--new-session`: the app must stay in the
//! process group wharf signals; its stdin is never a terminal, so the TIOCSTI concern that
//! option addresses does not arise.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use crate::RunError;

/// Where the release tree appears inside the sandbox.
pub(crate) const APP_MOUNT: &str = "/app";
/// Where wharf's own executable is inside the sandbox.
pub(crate) const SANDBOX_TOOLS_DIR: &str = "/run/wharf/bin";

/// `HOME` of a release on a stack: the instance's scratch home, mounted there.
pub(crate) const IMAGE_HOME: &str = "/home/app";

/// `PATH` when neither the image nor the config sets one.
pub(crate) const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

pub use wharf_sandbox::{ParseSandboxModeError, SandboxMode};

/// The isolation actually in force, decided once at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Isolation {
    /// Plain processes; `app_users` is set when wharf is root and runs each app as its user.
    Plain { app_users: bool },
    /// `setpriv` is set when wharf is root: it drops each app to its user.
    Bubblewrap {
        bwrap: PathBuf,
        hidden: PathBuf,
        setpriv: Option<PathBuf>,
    },
}

/// Paths of one launch, as seen on the host.
pub(crate) struct Launch<'a> {
    pub tree: &'a Path,
    /// A stack's run image, unpacked: `/` in the sandbox instead of the host's view.
    pub root: Option<&'a Path>,
    pub home: &'a Path,
    pub tmp: &'a Path,
    pub command: &'a str,
    pub env: &'a BTreeMap<String, String>,
    pub stdin: bool,
    /// Attached to a terminal (the caller sets its stdio to the terminal's slave end): the
    /// shell starts through `setsid --ctty` at `setsid`, in a session of its own with that
    /// terminal as its controlling one (without bubblewrap, instead of in a new process group;
    /// with it, inside the sandbox).
    pub setsid: Option<&'a Path>,
    /// The app's user, when there are app users.
    pub user: Option<u32>,
    /// `cgroup.procs` files of the instance's cgroups, joined before the program runs.
    pub cgroups: &'a [PathBuf],
}

impl Isolation {
    pub(crate) async fn resolve(mode: SandboxMode, data_dir: &Path) -> Result<Isolation, RunError> {
        let hidden = std::fs::canonicalize(data_dir).unwrap_or_else(|_| data_dir.to_path_buf());
        let resolved = wharf_sandbox::Isolation::resolve(mode, Some(&hidden)).await?;
        Ok(match resolved.bwrap {
            Some(bwrap) => Isolation::Bubblewrap {
                bwrap,
                hidden,
                setpriv: resolved.setpriv,
            },
            None => Isolation::Plain {
                app_users: resolved.setpriv.is_some(),
            },
        })
    }

    /// Whether each app runs as its own user.
    pub(crate) fn app_users(&self) -> bool {
        match self {
            Isolation::Plain { app_users } => *app_users,
            Isolation::Bubblewrap { setpriv, .. } => setpriv.is_some(),
        }
    }

    pub(crate) fn is_sandboxed(&self) -> bool {
        matches!(self, Isolation::Bubblewrap { .. })
    }

    /// Image env values name paths under `/app`; without a sandbox they are rewritten to the
    /// tree's real place.
    pub(crate) fn rewrite_image_value(&self, tree: &Path, value: &str) -> String {
        if self.is_sandboxed() {
            return value.to_owned();
        }
        let real = tree.to_string_lossy();
        value
            .split(':')
            .map(|part| {
                if part == APP_MOUNT {
                    real.to_string()
                } else if let Some(rest) = part.strip_prefix("/app/") {
                    format!("{real}/{rest}")
                } else {
                    part.to_owned()
                }
            })
            .collect::<Vec<_>>()
            .join(":")
    }

    /// The command for one launch: its own process group, a clean environment, stdout and
    /// stderr piped.
    /// With cgroups to join and wharf's own executable at hand, the command starts through
    /// the launcher (`wharf cgroup-exec`), which joins them (and, without a sandbox, drops to
    /// the app's user) before the program runs.
    pub(crate) fn command(&self, launch: &Launch<'_>) -> tokio::process::Command {
        let shell_command = wharf_core::procfile::exec_form(launch.command);
        let launcher = if launch.cgroups.is_empty() {
            None
        } else {
            wharf_sandbox::launch::own_executable()
        };
        // In a terminal, `setsid --ctty` starts the shell in a session of its own with the
        // terminal as its controlling one.
        let shell: Vec<OsString> = launch
            .setsid
            .map(|setsid| vec![setsid.into(), "--ctty".into()])
            .unwrap_or_default()
            .into_iter()
            .chain(["/bin/sh".into(), "-c".into(), shell_command.into()])
            .collect();
        let (program, dir, mut user): (Vec<OsString>, &Path, Option<u32>) = match self {
            // The session's id is the process's own pid, so it is also the group wharf signals.
            Isolation::Plain { .. } => (shell, launch.tree, launch.user),
            Isolation::Bubblewrap {
                bwrap,
                hidden,
                setpriv,
            } => {
                let as_user = setpriv.as_deref().zip(launch.user);
                let mut program: Vec<OsString> = vec![bwrap.into()];
                program.extend(bubblewrap_args(hidden, launch, as_user.is_some()));
                program.push("--".into());
                if let Some((setpriv, uid)) = as_user {
                    program.extend(wharf_sandbox::as_user(setpriv, uid));
                }
                // Inside the sandbox (the host's `/usr` is there): bwrap stays in the group wharf
                // made for it and out of the terminal's, so Ctrl-C reaches the app, not bwrap.
                program.extend(shell);
                // bwrap itself starts in a directory that exists on the host, and as root.
                (program, launch.home, None)
            }
        };
        let mut cmd = match launcher {
            Some(launcher) => {
                let mut c = tokio::process::Command::new(launcher);
                c.args(
                    wharf_sandbox::launch::Launch {
                        join: launch.cgroups.to_vec(),
                        user: user.take(),
                        command: program,
                    }
                    .args(),
                );
                c
            }
            None => {
                let mut c = tokio::process::Command::new(&program[0]);
                c.args(&program[1..]);
                c
            }
        };
        if let Some(uid) = user {
            // std also drops every supplementary group when root sets a uid.
            cmd.uid(uid).gid(uid);
        }
        cmd.current_dir(dir);
        cmd.env_clear().envs(launch.env);
        if matches!(self, Isolation::Plain { .. }) {
            cmd.env("PWD", launch.tree);
        }
        cmd.stdin(if launch.stdin {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // A dropped handle must not kill: a crashed server's instances are stopped by the
        // next one (see the crate docs), and shutdown stops them explicitly.
        .kill_on_drop(false);
        if launch.setsid.is_none() || matches!(self, Isolation::Bubblewrap { .. }) {
            // (Without bubblewrap, `setsid` makes the session, and group, of the same id.)
            cmd.process_group(0);
        }
        cmd
    }
}

fn bubblewrap_args(hidden: &Path, launch: &Launch<'_>, as_user: bool) -> Vec<OsString> {
    let mut args: Vec<OsString> = ["--die-with-parent", "--unshare-pid", "--unshare-ipc"]
        .iter()
        .map(OsString::from)
        .collect();
    args.extend(wharf_sandbox::capability_args(as_user));
    let (home, tmp): (&Path, &Path) = match launch.root {
        // Nothing of the host is visible: the run image is `/`, the scratch at fixed places.
        Some(root) => {
            args.extend(wharf_sandbox::image_root_args(root));
            // The home's parent, made here open to all: bubblewrap would make it for root
            // alone, and the app's user could not reach its own HOME.
            if let Some(parent) = Path::new(IMAGE_HOME).parent() {
                args.extend(["--perms", "0755", "--dir"].map(OsString::from));
                args.push(parent.into());
            }
            (Path::new(IMAGE_HOME), Path::new("/tmp"))
        }
        None => {
            args.extend(wharf_sandbox::host_view_args(as_user));
            // wharf's data directory (database, images, other apps) is hidden; only this
            // instance's scratch is mounted back, at the same path, so HOME and TMPDIR read
            // the same everywhere.
            args.extend(wharf_sandbox::hide_args(
                &[hidden],
                &[launch.home, launch.tmp],
            ));
            (launch.home, launch.tmp)
        }
    };
    let mut push = |parts: &[&std::ffi::OsStr]| args.extend(parts.iter().map(OsString::from));
    push(&["--bind".as_ref(), launch.home.as_os_str(), home.as_os_str()]);
    push(&["--bind".as_ref(), launch.tmp.as_os_str(), tmp.as_os_str()]);
    push(&[
        "--ro-bind".as_ref(),
        launch.tree.as_os_str(),
        APP_MOUNT.as_ref(),
    ]);
    // wharf's own tools (`wharf serve-static`) for a host-bound release, wherever this wharf
    // runs from (the host's /tmp is not visible in here). A release on a stack has its own.
    if let Some(exe) = wharf_sandbox::launch::own_executable().filter(|_| launch.root.is_none()) {
        // Made here, open to all: bubblewrap would make them for root alone.
        let mut leading: Vec<&Path> = Path::new(SANDBOX_TOOLS_DIR)
            .ancestors()
            .filter(|d| !Path::new("/run").starts_with(d))
            .collect();
        leading.reverse();
        for dir in leading {
            push(&["--perms".as_ref(), "0755".as_ref()]);
            push(&["--dir".as_ref(), dir.as_os_str()]);
        }
        push(&[
            "--ro-bind".as_ref(),
            exe.as_os_str(),
            format!("{SANDBOX_TOOLS_DIR}/wharf").as_ref(),
        ]);
    }
    push(&["--chdir".as_ref(), APP_MOUNT.as_ref()]);
    push(&["--setenv".as_ref(), "PWD".as_ref(), APP_MOUNT.as_ref()]);
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_paths_are_rewritten_only_without_a_sandbox() {
        let plain = Isolation::Plain { app_users: false };
        let tree = Path::new("/data/releases/a/v1/app");
        assert_eq!(
            plain.rewrite_image_value(tree, "/app/.venv/bin:/usr/bin:/app"),
            "/data/releases/a/v1/app/.venv/bin:/usr/bin:/data/releases/a/v1/app"
        );
        assert_eq!(plain.rewrite_image_value(tree, "/apple"), "/apple");
        let bw = Isolation::Bubblewrap {
            bwrap: "/usr/bin/bwrap".into(),
            hidden: "/data".into(),
            setpriv: None,
        };
        assert_eq!(bw.rewrite_image_value(tree, "/app/bin"), "/app/bin");
    }
}
