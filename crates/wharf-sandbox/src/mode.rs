//! `WHARF_SANDBOX`, and what it comes to on this host: whether builds and app processes run
//! in namespaces (bubblewrap) and whether each app runs as its own user. The server decides
//! this once, before it opens a port or a file, and says what it chose in one line
//! ([`Isolation::summary`]); a choice that can't work is refused with the command that fixes it.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::str::FromStr;
use std::time::Duration;

/// `WHARF_SANDBOX`: `auto` (namespaces where bubblewrap works here, else none), `none`,
/// `namespaces` (required).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SandboxMode {
    #[default]
    Auto,
    None,
    Namespaces,
}

/// `WHARF_SANDBOX` is not one of the known modes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("sandbox mode `{0}` is not one of auto, none, namespaces")]
pub struct ParseSandboxModeError(String);

impl FromStr for SandboxMode {
    type Err = ParseSandboxModeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(SandboxMode::Auto),
            "none" => Ok(SandboxMode::None),
            "namespaces" => Ok(SandboxMode::Namespaces),
            other => Err(ParseSandboxModeError(other.to_owned())),
        }
    }
}

impl SandboxMode {
    pub fn as_str(self) -> &'static str {
        match self {
            SandboxMode::Auto => "auto",
            SandboxMode::None => "none",
            SandboxMode::Namespaces => "namespaces",
        }
    }
}

impl std::fmt::Display for SandboxMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A sandbox mode that can't work on this host, with the way to make it work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SandboxError {
    #[error("WHARF_SANDBOX=namespaces, but {reason}: {fix}, or set WHARF_SANDBOX=auto")]
    NamespacesUnavailable { reason: String, fix: String },
    #[error(
        "wharf runs as root, so it runs each app as its own user, and that needs util-linux's \
         `setpriv`, which is not installed: apt-get install util-linux"
    )]
    NoSetpriv,
    #[error(
        "wharf runs as root without a sandbox, so apps run as their own unprivileged users, who \
         can't pass through `{dir}` (mode {mode:o}) to reach the data directory `{data_dir}`: use \
         a data directory they can reach (the default for root, /var/lib/wharf: unset \
         WHARF_DATA_DIR and --data-dir), or `chmod o+x {dir}`, or install bubblewrap \
         (apt-get install bubblewrap)"
    )]
    DataDirUnreachable {
        dir: PathBuf,
        mode: u32,
        data_dir: PathBuf,
    },
}

/// What a [`SandboxMode`] comes to on this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Isolation {
    /// bubblewrap, when builds and app processes run in namespaces.
    pub bwrap: Option<PathBuf>,
    /// `setpriv`, when wharf is root and so runs each app as its own user.
    pub setpriv: Option<PathBuf>,
    /// Why there are no namespaces, under `auto`.
    pub fallback: Option<String>,
}

impl Isolation {
    /// Resolves `mode` here. `apps_dir`, the data directory apps run from, is checked when
    /// they will run as their own users without namespaces: they reach their files through it.
    pub async fn resolve(
        mode: SandboxMode,
        apps_dir: Option<&Path>,
    ) -> Result<Isolation, SandboxError> {
        let root = nix::unistd::geteuid().is_root();
        let setpriv = if root {
            Some(crate::find_setpriv().ok_or(SandboxError::NoSetpriv)?)
        } else {
            None
        };
        let (bwrap, fallback) = match mode {
            SandboxMode::None => (None, None),
            SandboxMode::Namespaces => match probe_bubblewrap().await {
                Ok(bwrap) => (Some(bwrap), None),
                Err(unusable) => {
                    return Err(SandboxError::NamespacesUnavailable {
                        fix: unusable.fix(),
                        reason: unusable.to_string(),
                    })
                }
            },
            SandboxMode::Auto => match probe_bubblewrap().await {
                Ok(bwrap) => (Some(bwrap), None),
                Err(unusable) => (None, Some(format!("{unusable}; {}", unusable.fix()))),
            },
        };
        if let Some(data_dir) = apps_dir.filter(|_| bwrap.is_none() && root) {
            let data_dir = std::fs::canonicalize(data_dir).unwrap_or_else(|_| data_dir.into());
            reachable_by_everyone(&data_dir)?;
        }
        Ok(Isolation {
            bwrap,
            setpriv,
            fallback,
        })
    }

    /// One line that says what was chosen, and, when namespaces were not to be had, why and
    /// how to get them.
    pub fn summary(&self) -> String {
        let root = self.setpriv.is_some();
        match &self.bwrap {
            Some(bwrap) => format!(
                "Sandbox: namespaces (bubblewrap, {}): builds and apps see a read-only root (their \
                 stack's image; the host's on wharf-1), {}",
                bwrap.display(),
                if root {
                    "each app as its own user"
                } else {
                    "and run as you"
                }
            ),
            None => {
                let why = match &self.fallback {
                    Some(why) => format!("WHARF_SANDBOX=auto: {why}"),
                    None => "WHARF_SANDBOX=none".to_owned(),
                };
                let who = if root {
                    "each app runs as its own user and builds run as root, without namespaces"
                } else {
                    "builds and apps run as you, without namespaces"
                };
                format!("Sandbox: none ({why}): {who}")
            }
        }
    }
}

/// Why bubblewrap can't be used here.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unusable {
    #[error("bubblewrap (`bwrap`) is not on PATH")]
    NotInstalled,
    #[error("`{bwrap}` failed a test run: {detail}")]
    Failed { bwrap: PathBuf, detail: String },
}

impl Unusable {
    /// The command that makes bubblewrap usable.
    pub fn fix(&self) -> String {
        match self {
            Unusable::NotInstalled => "install bubblewrap (apt-get install bubblewrap)".to_owned(),
            Unusable::Failed { .. } if !nix::unistd::geteuid().is_root() => {
                "run wharf as root, or allow unprivileged user namespaces (Ubuntu 24.04 and \
                 later: sysctl -w kernel.apparmor_restrict_unprivileged_userns=0)"
                    .to_owned()
            }
            Unusable::Failed { .. } => {
                "allow the namespaces bubblewrap makes (in a container: run it with \
                 --privileged, or with seccomp and AppArmor unconfined)"
                    .to_owned()
            }
        }
    }
}

/// Finds `bwrap` on wharf's own `PATH`.
pub fn find_bubblewrap() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .filter(|dir| dir.is_absolute())
        .map(|dir| dir.join("bwrap"))
        .find(|p| is_executable(p))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Finds `bwrap` and checks that it can make the namespaces wharf's sandboxes use.
pub async fn probe_bubblewrap() -> Result<PathBuf, Unusable> {
    let bwrap = find_bubblewrap().ok_or(Unusable::NotInstalled)?;
    let failed = |detail: String| Unusable::Failed {
        bwrap: bwrap.clone(),
        detail,
    };
    let probe = tokio::process::Command::new(&bwrap)
        .args([
            "--die-with-parent",
            "--unshare-pid",
            "--unshare-ipc",
            "--cap-drop",
            "ALL",
            "--ro-bind",
            "/",
            "/",
            "--proc",
            "/proc",
            "--dev",
            "/dev",
            "--",
            "/bin/true",
        ])
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output();
    match tokio::time::timeout(Duration::from_secs(10), probe).await {
        Err(_) => Err(failed("it did not finish within 10s".to_owned())),
        Ok(Err(e)) => Err(failed(format!("it could not be started: {e}"))),
        Ok(Ok(out)) if out.status.success() => Ok(bwrap),
        Ok(Ok(out)) => Err(failed(format!(
            "{}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))),
    }
}

/// Apps that run as an unprivileged user without namespaces reach their release tree and
/// scratch through the data directory: it and every directory above it must let everyone
/// through (`o+x`).
fn reachable_by_everyone(data_dir: &Path) -> Result<(), SandboxError> {
    use std::os::unix::fs::PermissionsExt;
    for dir in data_dir.ancestors() {
        // What does not exist yet is made passable (the data directory is 0711).
        let Ok(meta) = std::fs::metadata(dir) else {
            continue;
        };
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o001 == 0 {
            return Err(SandboxError::DataDirUnreachable {
                dir: dir.to_path_buf(),
                mode,
                data_dir: data_dir.to_path_buf(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_and_print() {
        for mode in [
            SandboxMode::Auto,
            SandboxMode::None,
            SandboxMode::Namespaces,
        ] {
            assert_eq!(mode.to_string().parse(), Ok(mode));
        }
        let err = "docker".parse::<SandboxMode>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "sandbox mode `docker` is not one of auto, none, namespaces"
        );
    }

    #[test]
    fn a_data_dir_others_cannot_pass_through_is_named_with_its_fixes() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let closed = tmp.path().join("home");
        std::fs::create_dir(&closed).unwrap();
        std::fs::set_permissions(&closed, std::fs::Permissions::from_mode(0o700)).unwrap();
        let data = closed.join("wharf");
        let err = reachable_by_everyone(&data).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains(&format!("`{}` (mode 700)", closed.display())),
            "{text}"
        );
        assert!(text.contains("/var/lib/wharf"), "{text}");
        assert!(
            text.contains(&format!("chmod o+x {}", closed.display())),
            "{text}"
        );
        assert!(text.contains("apt-get install bubblewrap"), "{text}");
        std::fs::set_permissions(&closed, std::fs::Permissions::from_mode(0o711)).unwrap();
        reachable_by_everyone(&data).unwrap();
    }

    #[test]
    fn summaries_say_what_was_chosen_and_why() {
        let plain_root = Isolation {
            bwrap: None,
            setpriv: Some("/usr/bin/setpriv".into()),
            fallback: Some(format!(
                "{}; {}",
                Unusable::NotInstalled,
                Unusable::NotInstalled.fix()
            )),
        };
        assert_eq!(
            plain_root.summary(),
            "Sandbox: none (WHARF_SANDBOX=auto: bubblewrap (`bwrap`) is not on PATH; install \
             bubblewrap (apt-get install bubblewrap)): each app runs as its own user and builds \
             run as root, without namespaces"
        );
        let namespaces = Isolation {
            bwrap: Some("/usr/bin/bwrap".into()),
            setpriv: None,
            fallback: None,
        };
        assert_eq!(
            namespaces.summary(),
            "Sandbox: namespaces (bubblewrap, /usr/bin/bwrap): builds and apps see a read-only \
             root (their stack's image; the host's on wharf-1), and run as you"
        );
    }
}
