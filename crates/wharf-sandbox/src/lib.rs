//! The part of wharf's sandboxes that builds (`wharf-build`) and app processes (`wharf-run`)
//! share: the sandbox mode and what it comes to on this host ([`mode`]), the process table
//! ([`procfs`]), bubblewrap arguments that show the host read-only, with private `/proc`, `/dev`, `/tmp`
//! and `/run`, and the per-app users ([`users`]) that both run as when wharf is root. Each
//! sandbox adds its own writable binds, hidden paths and `/app` after these. It reads the
//! host's root directory and the users file, and runs nothing but bubblewrap's test run.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

pub mod cgroup;
pub mod launch;
pub mod mode;
pub mod procfs;
pub mod users;

pub use mode::{Isolation, ParseSandboxModeError, SandboxError, SandboxMode};

/// Finds util-linux's `setpriv`, which drops a sandboxed command from root to its app's user.
pub fn find_setpriv() -> Option<PathBuf> {
    find_system_program("setpriv")
}

/// Finds util-linux's `setsid`, which starts a process attached to a terminal in a session of
/// its own with that terminal as its controlling one (`setsid --ctty`).
pub fn find_setsid() -> Option<PathBuf> {
    find_system_program("setsid")
}

/// A program of the system's, in the usual places (never on the app's or a user's `PATH`).
fn find_system_program(name: &str) -> Option<PathBuf> {
    ["/usr/bin", "/bin", "/usr/local/bin"]
        .iter()
        .map(|dir| Path::new(dir).join(name))
        .find(|p| p.is_file())
}

/// bubblewrap's capability arguments when its command will drop to `uid` with [`as_user`]:
/// every capability is dropped except the three `setpriv` needs to change user and empty the
/// bounding set. Without a user, every capability is dropped.
pub fn capability_args(dropping_to_user: bool) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec!["--cap-drop".into(), "ALL".into()];
    if dropping_to_user {
        for cap in ["CAP_SETUID", "CAP_SETGID", "CAP_SETPCAP"] {
            args.extend(["--cap-add".into(), cap.into()]);
        }
    }
    args
}

/// The command prefix, run inside bubblewrap, that becomes `uid` (and gid `uid`, no
/// supplementary groups) with no capabilities left, not even in the bounding set, and with
/// no-new-privileges set, so no set-uid program can give any back.
pub fn as_user(setpriv: &Path, uid: u32) -> Vec<OsString> {
    vec![
        setpriv.into(),
        format!("--reuid={uid}").into(),
        format!("--regid={uid}").into(),
        "--clear-groups".into(),
        "--inh-caps=-all".into(),
        "--bounding-set=-all".into(),
        "--no-new-privs".into(),
        "--".into(),
    ]
}

/// Top-level entries of the host that a sandbox never shows as they are: the private ones it
/// mounts itself, and `/app`, where the app tree goes.
const PRIVATE: [&str; 5] = ["proc", "dev", "tmp", "run", "app"];

/// `bwrap` arguments for a read-only view of the host. The host's root is bound one top-level
/// entry at a time (not `/` itself), so that `/app` can still be created in bwrap's own root;
/// `/run` is private because a read-only bind does not stop `connect()` to the sockets in it, and
/// only the resolver configuration is kept from it when `/etc/resolv.conf` points there.
///
/// With `for_app_user`, the command will run as an app's user ([`users`]), and a top-level
/// directory that others may not pass through (root's home, typically, where pyenv or rustup keep
/// the toolchains builds use and venvs link to) is shown as others would see it if they could
/// pass through but not list it: an empty directory (mode 0711) with each of its entries that
/// others may use bound back read-only. Private entries, such as `~/.ssh`, stay out of sight.
pub fn host_view_args(for_app_user: bool) -> Vec<OsString> {
    view_args(Path::new("/"), for_app_user, &[])
}

/// Where a build's scratch and cache appear inside an image root ([`image_root_args`]).
pub const WORKSPACE: &str = "/workspace";
pub const CACHE: &str = "/cache";

/// `bwrap` arguments for an image's root filesystem (a stack's, unpacked at `rootfs`) as `/`,
/// read-only, with private `/proc`, `/dev`, `/tmp` and `/run`, and the host's resolver: nothing
/// of the host's own files is visible. [`WORKSPACE`], [`CACHE`], `/home` and `/app` are left
/// free for the caller's binds (an instance's scratch home goes under `/home`).
pub fn image_root_args(rootfs: &Path) -> Vec<OsString> {
    view_args(rootfs, false, &["workspace", "cache", "home"])
}

/// The read-only view of `root` as `/`, one top-level entry at a time (see [`host_view_args`]),
/// leaving out [`PRIVATE`] entries and `free`, then the private mounts.
fn view_args(root: &Path, for_app_user: bool, free: &[&str]) -> Vec<OsString> {
    let mut args: Vec<OsString> = Vec::new();
    let mut push = |parts: &[&std::ffi::OsStr]| args.extend(parts.iter().map(OsString::from));
    if let Ok(entries) = std::fs::read_dir(root) {
        let mut entries: Vec<_> = entries.filter_map(Result::ok).collect();
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let name = entry.file_name();
            if PRIVATE.iter().chain(free).any(|p| name == *p) {
                continue;
            }
            let source = root.join(&name);
            let host = Path::new("/").join(&name);
            match entry.file_type() {
                Ok(t) if t.is_symlink() => {
                    if let Ok(target) = std::fs::read_link(&source) {
                        push(&["--symlink".as_ref(), target.as_os_str(), host.as_os_str()]);
                    }
                }
                Ok(t) if t.is_dir() && for_app_user && !others_may(&host, 0o001) => {
                    push(&["--perms".as_ref(), "0711".as_ref()]);
                    push(&["--tmpfs".as_ref(), host.as_os_str()]);
                    let Ok(inner) = std::fs::read_dir(&host) else {
                        continue;
                    };
                    let mut inner: Vec<_> = inner.filter_map(Result::ok).collect();
                    inner.sort_by_key(|e| e.file_name());
                    for entry in inner {
                        let path = entry.path();
                        match entry.file_type() {
                            Ok(t) if t.is_symlink() => {
                                if let Ok(target) = std::fs::read_link(&path) {
                                    push(&[
                                        "--symlink".as_ref(),
                                        target.as_os_str(),
                                        path.as_os_str(),
                                    ]);
                                }
                            }
                            Ok(t)
                                if (t.is_dir() && others_may(&path, 0o001))
                                    || (t.is_file() && others_may(&path, 0o004)) =>
                            {
                                push(&["--ro-bind".as_ref(), path.as_os_str(), path.as_os_str()]);
                            }
                            _ => {}
                        }
                    }
                }
                Ok(t) if t.is_dir() || t.is_file() => {
                    push(&["--ro-bind".as_ref(), source.as_os_str(), host.as_os_str()]);
                }
                _ => {}
            }
        }
    }
    push(&["--proc".as_ref(), "/proc".as_ref()]);
    push(&["--dev".as_ref(), "/dev".as_ref()]);
    // Sticky and writable by all, like the host's: the command may run as an app's user.
    push(&["--perms".as_ref(), "1777".as_ref()]);
    push(&["--tmpfs".as_ref(), "/tmp".as_ref()]);
    push(&["--tmpfs".as_ref(), "/run".as_ref()]);
    if let Ok(resolv) = std::fs::canonicalize("/etc/resolv.conf") {
        if root != Path::new("/") {
            // An image's own (empty) file is mounted over with the host's resolver.
            if root.join("etc/resolv.conf").exists() {
                push(&[
                    "--ro-bind".as_ref(),
                    resolv.as_os_str(),
                    "/etc/resolv.conf".as_ref(),
                ]);
            }
        } else if resolv.starts_with("/run") {
            push(&["--ro-bind".as_ref(), resolv.as_os_str(), resolv.as_os_str()]);
        }
    }
    args
}

/// bubblewrap arguments that hide each of `hidden` behind an empty directory, then make the
/// directories leading from one of them to each of `binds` (bind destinations at their host
/// paths, mounted after these). Without them bubblewrap would make those for root alone (0700);
/// here others may pass through them (0711), as an app's user must.
pub fn hide_args(hidden: &[&Path], binds: &[&Path]) -> Vec<OsString> {
    let mut args: Vec<OsString> = Vec::new();
    for dir in hidden {
        args.extend([
            "--perms".into(),
            "0711".into(),
            "--tmpfs".into(),
            dir.into(),
        ]);
    }
    let mut leading: Vec<&Path> = binds
        .iter()
        .filter_map(|p| p.parent())
        .flat_map(Path::ancestors)
        .filter(|p| hidden.iter().any(|h| p.starts_with(h) && p != h))
        .collect();
    leading.sort();
    leading.dedup();
    for dir in leading {
        args.extend(["--perms".into(), "0711".into(), "--dir".into(), dir.into()]);
    }
    args
}

/// Whether users other than the owner have `bits` (0o001: pass through, 0o004: read) on `path`.
fn others_may(path: &Path, bits: u32) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & bits == bits)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    #[test]
    fn hidden_dirs_lead_others_through_to_the_binds() {
        let args: Vec<String> = super::hide_args(
            &[Path::new("/data")],
            &[
                Path::new("/data/run/a/w/home"),
                Path::new("/data/run/a/w/tmp"),
                Path::new("/elsewhere/x"),
            ],
        )
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
        assert_eq!(
            args,
            [
                "--perms",
                "0711",
                "--tmpfs",
                "/data", //
                "--perms",
                "0711",
                "--dir",
                "/data/run", //
                "--perms",
                "0711",
                "--dir",
                "/data/run/a", //
                "--perms",
                "0711",
                "--dir",
                "/data/run/a/w",
            ]
        );
    }

    #[test]
    fn shows_the_host_but_keeps_private_mounts_private() {
        let args: Vec<String> = super::host_view_args(false)
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let pairs: Vec<(&str, &str)> = args
            .windows(2)
            .map(|w| (w[0].as_str(), w[1].as_str()))
            .collect();
        assert!(pairs.contains(&("--ro-bind", "/etc")), "{args:?}");
        assert!(
            pairs.contains(&("--tmpfs", "/tmp")) && pairs.contains(&("--tmpfs", "/run")),
            "{args:?}"
        );
        assert!(
            pairs.contains(&("--proc", "/proc")) && pairs.contains(&("--dev", "/dev")),
            "{args:?}"
        );
        for private in ["/tmp", "/run", "/proc", "/dev"] {
            assert!(
                !pairs.contains(&("--ro-bind", private)),
                "{private} must not be the host's: {args:?}"
            );
        }
    }
}
