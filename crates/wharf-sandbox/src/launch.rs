//! `wharf cgroup-exec`: the steps between fork and exec that the supervisor can't take in the
//! forked child itself (wharf forbids `unsafe`, so there is no `pre_exec`). The supervisor
//! starts an instance as `wharf cgroup-exec --join <cgroup.procs>… [--user UID] -- PROGRAM…`:
//! the launcher moves itself into the instance's cgroups, drops to the app's user when asked,
//! then becomes PROGRAM (bubblewrap, or the shell). Everything the app starts is then inside its
//! limits from its first instant; moving a process group in after the spawn would miss whatever
//! forked in between.
//!
//! Parsed by hand, before anything else in `main`: the launcher runs in the app's environment,
//! and none of the app's variables (a `WHARF_URL` of its own, say) may change what it does.

use std::ffi::{OsStr, OsString};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;

/// The launcher's subcommand name.
pub const SUBCOMMAND: &str = "cgroup-exec";

/// What the launcher does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Launch {
    /// `cgroup.procs` files to write the launcher's pid to.
    pub join: Vec<PathBuf>,
    /// uid (and gid) to become, with no supplementary groups.
    pub user: Option<u32>,
    /// The program and its arguments.
    pub command: Vec<OsString>,
}

impl Launch {
    /// The launcher's arguments (after its own path).
    pub fn args(&self) -> Vec<OsString> {
        let mut args: Vec<OsString> = vec![SUBCOMMAND.into()];
        for file in &self.join {
            args.extend(["--join".into(), file.into()]);
        }
        if let Some(uid) = self.user {
            args.extend(["--user".into(), uid.to_string().into()]);
        }
        args.push("--".into());
        args.extend(self.command.iter().cloned());
        args
    }

    /// Reads the arguments after the subcommand.
    pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Launch, String> {
        let mut args = args.into_iter();
        let mut launch = Launch {
            join: Vec::new(),
            user: None,
            command: Vec::new(),
        };
        while let Some(arg) = args.next() {
            match arg.to_str() {
                Some("--join") => launch
                    .join
                    .push(args.next().ok_or("--join needs a file")?.into()),
                Some("--user") => {
                    let uid = args.next().ok_or("--user needs a uid")?;
                    launch.user = Some(
                        uid.to_str()
                            .and_then(|u| u.parse().ok())
                            .ok_or_else(|| format!("--user {uid:?} is not a uid"))?,
                    );
                }
                Some("--") => {
                    launch.command = args.collect();
                    break;
                }
                _ => return Err(format!("unexpected argument {arg:?}")),
            }
        }
        if launch.command.is_empty() {
            return Err("no command after --".to_owned());
        }
        Ok(launch)
    }

    /// Joins, drops, and becomes the command. Returns only if that failed.
    pub fn exec(&self) -> String {
        let pid = std::process::id().to_string();
        for file in &self.join {
            // Limits are best-effort, as everywhere: the app still runs, and says why not.
            if let Err(e) = std::fs::write(file, &pid) {
                eprintln!(
                    "wharf: limits not enforced: cannot join {}: {e}",
                    file.display()
                );
            }
        }
        if let Some(uid) = self.user {
            use nix::unistd::{setgid, setgroups, setuid, Gid, Uid};
            let dropped = setgroups(&[])
                .and_then(|()| setgid(Gid::from_raw(uid)))
                .and_then(|()| setuid(Uid::from_raw(uid)));
            if let Err(e) = dropped {
                return format!("cannot become uid {uid}: {e}");
            }
        }
        let program: &OsStr = &self.command[0];
        let err = std::process::Command::new(program)
            .args(&self.command[1..])
            .exec();
        format!("cannot run {}: {err}", program.to_string_lossy())
    }
}

/// The running `wharf` executable, if this process is one (not, say, a test binary that
/// embeds the supervisor or the builder): the launcher is a subcommand of it.
pub fn own_executable() -> Option<&'static std::path::Path> {
    static EXE: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();
    EXE.get_or_init(|| {
        let exe = std::env::current_exe().ok()?;
        let wharf = exe.parent()?.join("wharf");
        (wharf.is_file() && exe.file_name() == wharf.file_name()).then_some(wharf)
    })
    .as_deref()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_round_trip() {
        let launch = Launch {
            join: vec!["/sys/fs/cgroup/pids/wharf/a/w/cgroup.procs".into()],
            user: Some(1_900_000_001),
            command: vec!["/bin/sh".into(), "-c".into(), "--user 5 -- x".into()],
        };
        let args = launch.args();
        assert_eq!(args[0], SUBCOMMAND);
        assert_eq!(Launch::parse(args.into_iter().skip(1)).unwrap(), launch);
        assert!(Launch::parse(["--".into()]).is_err());
        assert!(Launch::parse(["--user".into(), "x".into(), "--".into(), "a".into()]).is_err());
    }
}
