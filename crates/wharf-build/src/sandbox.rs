//! The build sandbox: every build command runs through [`Sandbox::run`].
//!
//! What every mode guarantees: a clean environment (only `PATH`, `HOME`, `LANG`, `TMPDIR`, `PWD`
//! and the provider's own variables, never the server's environment), the command in its own process
//! group with stdin closed and stdout+stderr merged into one pipe read line by line, and on
//! timeout or cancel the whole process tree stopped (SIGTERM, SIGKILL after a grace) and waited
//! for. With bubblewrap ([`Isolation::Bubblewrap`]) the command also gets its own pid and IPC
//! namespace, a read-only view of the host, a private `/tmp` and `/run`, and write access only to
//! the build's scratch directory and the app's cache, with the app tree mounted at `/app`.

use std::ffi::OsString;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use nix::fcntl::OFlag;
use tokio::io::AsyncReadExt;
use tokio::net::unix::pipe;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::error::BuildError;
use crate::log::{BuildLog, OutputStyle};
use crate::process_tree::ProcessTree;

/// `PATH` in the sandbox and, with the provider's directories in front, in the image.
pub const SYSTEM_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Where the app tree is mounted inside the bubblewrap sandbox; also the image's working dir.
pub const APP_MOUNT: &str = "/app";

/// How long a stopped command gets between SIGTERM and SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(2);

/// How long output is still read after a command's processes are gone. Only a process that
/// escaped the tree (possible without namespaces) can hold the pipe open that long.
const DRAIN_LIMIT: Duration = Duration::from_secs(2);

/// Longest line passed on as one message; longer output is split.
const MAX_LINE: usize = 64 * 1024;

pub use wharf_sandbox::{ParseSandboxModeError, SandboxMode};

/// The isolation a build actually runs with, once [`SandboxMode`] is resolved on this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Isolation {
    None,
    /// `setpriv` is set when wharf runs as root: it drops build commands to the app's user.
    Bubblewrap {
        bwrap: PathBuf,
        setpriv: Option<PathBuf>,
    },
}

impl Isolation {
    pub(crate) fn is_sandboxed(&self) -> bool {
        matches!(self, Isolation::Bubblewrap { .. })
    }
}

/// When a build must stop: the cancel token, and the deadline of the whole build.
#[derive(Debug, Clone)]
pub(crate) struct Limits {
    pub cancel: CancellationToken,
    pub deadline: Instant,
    pub timeout: Duration,
}

impl Limits {
    /// Fails if the build was cancelled or ran out of time; checked between steps.
    pub(crate) fn check(&self) -> Result<(), BuildError> {
        if self.cancel.is_cancelled() {
            return Err(BuildError::Cancelled);
        }
        if Instant::now() >= self.deadline {
            return Err(BuildError::TimedOut {
                after: self.timeout,
            });
        }
        Ok(())
    }
}

/// One command to run in the sandbox, with the app tree as its working directory.
#[derive(Debug, Clone)]
pub(crate) struct SandboxCommand {
    step: String,
    program: OsString,
    args: Vec<OsString>,
    env: Vec<(String, OsString)>,
    path_prefix: Vec<PathBuf>,
    style: OutputStyle,
}

impl SandboxCommand {
    /// `step` names the command in errors (`step `pip install` failed`).
    pub(crate) fn new(step: impl Into<String>, program: impl Into<OsString>) -> Self {
        SandboxCommand {
            step: step.into(),
            program: program.into(),
            args: Vec::new(),
            env: Vec::new(),
            path_prefix: Vec::new(),
            style: OutputStyle::Indented,
        }
    }

    pub(crate) fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    pub(crate) fn args<I: IntoIterator<Item = S>, S: Into<OsString>>(mut self, args: I) -> Self {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    pub(crate) fn env(mut self, key: &str, value: impl Into<OsString>) -> Self {
        self.env.push((key.to_owned(), value.into()));
        self
    }

    /// Directories put in front of [`SYSTEM_PATH`] (the provider's toolchain).
    pub(crate) fn path_prefix(mut self, dirs: &[PathBuf]) -> Self {
        self.path_prefix.extend(dirs.iter().cloned());
        self
    }

    pub(crate) fn raw_output(mut self) -> Self {
        self.style = OutputStyle::Raw;
        self
    }

    fn program_display(&self) -> String {
        self.program.to_string_lossy().into_owned()
    }
}

/// The sandbox of one build.
#[derive(Debug)]
pub(crate) struct Sandbox {
    isolation: Isolation,
    /// The app tree on the host.
    app_dir: PathBuf,
    /// The build's scratch directory (holds the app tree, HOME, TMPDIR); writable.
    work_dir: PathBuf,
    /// The app's build cache; writable.
    cache_dir: PathBuf,
    /// Host directories replaced by an empty tmpfs (other apps' caches, the server's data).
    hidden: Vec<PathBuf>,
    /// The app's user, for commands in bubblewrap when wharf runs as root.
    user: Option<u32>,
    /// A build image's root filesystem: commands see it as `/`, and the scratch and cache at
    /// [`wharf_sandbox::WORKSPACE`] and [`wharf_sandbox::CACHE`], instead of the host.
    root: Option<PathBuf>,
    /// A CA bundle mounted over the build image's own (see [`crate::BuildRequest::trust`]).
    trust: Option<PathBuf>,
    /// `cgroup.procs` files each command joins (see [`crate::BuildRequest::cgroups`]).
    cgroups: Vec<PathBuf>,
}

/// Where a build image keeps its CA bundle (Debian's `ca-certificates`), and the variables
/// that point tools which don't read it by default (pip's bundled certifi, Node.js, Cargo,
/// git) at it.
const CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";
const CA_BUNDLE_VARS: [&str; 6] = [
    "SSL_CERT_FILE",
    "PIP_CERT",
    "REQUESTS_CA_BUNDLE",
    "NODE_EXTRA_CA_CERTS",
    "CARGO_HTTP_CAINFO",
    "GIT_SSL_CAINFO",
];

impl Sandbox {
    pub(crate) fn new(
        isolation: Isolation,
        app_dir: PathBuf,
        work_dir: PathBuf,
        cache_dir: PathBuf,
        hidden: Vec<PathBuf>,
        user: Option<u32>,
        root: Option<PathBuf>,
    ) -> Self {
        Sandbox {
            isolation,
            app_dir,
            work_dir,
            cache_dir,
            hidden,
            user,
            root,
            trust: None,
            cgroups: Vec::new(),
        }
    }

    /// Each command joins these cgroups before it runs.
    pub(crate) fn joining(mut self, cgroups: Vec<PathBuf>) -> Self {
        self.cgroups = cgroups;
        self
    }

    /// Mounts `bundle` over the build image's CA bundle (when it has one).
    pub(crate) fn trusting(mut self, bundle: Option<PathBuf>) -> Self {
        self.trust = bundle;
        self
    }

    /// The extra CA bundle, when it can be mounted: builds in a build image that has one.
    fn trust(&self) -> Option<&Path> {
        let root = self.root.as_deref()?;
        let bundle = self.trust.as_deref()?;
        root.join(CA_BUNDLE.trim_start_matches('/'))
            .exists()
            .then_some(bundle)
    }

    /// The build image's root filesystem, when the app builds on a stack.
    pub(crate) fn root(&self) -> Option<&Path> {
        self.root.as_deref()
    }

    /// `path` (on the host) as commands see it: the same, except in a build image, where the
    /// app tree is `/app`, the scratch `/workspace` and the cache `/cache`.
    pub(crate) fn visible(&self, path: &Path) -> PathBuf {
        if self.root.is_none() {
            return path.to_path_buf();
        }
        let mounts = [
            (&self.app_dir, Path::new(APP_MOUNT)),
            (&self.work_dir, Path::new(wharf_sandbox::WORKSPACE)),
            (&self.cache_dir, Path::new(wharf_sandbox::CACHE)),
        ];
        for (host, inside) in mounts {
            if let Ok(rest) = path.strip_prefix(host) {
                return inside.join(rest);
            }
        }
        path.to_path_buf()
    }

    /// An argument or value as commands see it (see [`Sandbox::visible`]).
    fn visible_os(&self, value: &std::ffi::OsStr) -> OsString {
        let path = Path::new(value);
        if self.root.is_some() && path.is_absolute() {
            self.visible(path).into_os_string()
        } else {
            value.to_owned()
        }
    }

    /// The user commands run as, when they are dropped to the app's user.
    fn drop_to(&self) -> Option<(&Path, u32)> {
        match &self.isolation {
            Isolation::Bubblewrap {
                setpriv: Some(setpriv),
                ..
            } => self.user.map(|uid| (setpriv.as_path(), uid)),
            _ => None,
        }
    }

    /// Resolves `mode` on this host (see [`wharf_sandbox::Isolation::resolve`]) and says in
    /// the log what builds run in.
    pub(crate) async fn resolve(
        mode: SandboxMode,
        log: &BuildLog,
    ) -> Result<Isolation, BuildError> {
        let resolved = wharf_sandbox::Isolation::resolve(mode, None).await?;
        Ok(match resolved.bwrap {
            Some(bwrap) => {
                log.step("Sandbox: namespaces (bubblewrap)");
                Isolation::Bubblewrap {
                    bwrap,
                    setpriv: resolved.setpriv,
                }
            }
            None => {
                match resolved.fallback {
                    Some(why) => {
                        log.step("Sandbox: none");
                        log.note(&format!("namespaces are not available: {why}"));
                    }
                    None => log.step("Sandbox: none (builds run unisolated, WHARF_SANDBOX=none)"),
                }
                Isolation::None
            }
        })
    }

    /// Whether commands run in namespaces (where the app tree is `/app`).
    pub(crate) fn is_sandboxed(&self) -> bool {
        self.isolation.is_sandboxed()
    }

    /// Whether build commands drop to the app's user.
    pub(crate) fn as_app_user(&self) -> bool {
        self.drop_to().is_some()
    }

    /// The app tree as build commands see it: `/app` in bubblewrap, else its host path.
    pub(crate) fn app_path(&self) -> PathBuf {
        match self.isolation {
            Isolation::None => self.app_dir.clone(),
            Isolation::Bubblewrap { .. } => PathBuf::from(APP_MOUNT),
        }
    }

    pub(crate) fn home(&self) -> PathBuf {
        self.work_dir.join("home")
    }

    fn tmp(&self) -> PathBuf {
        match self.isolation {
            Isolation::None => self.work_dir.join("tmp"),
            Isolation::Bubblewrap { .. } => PathBuf::from("/tmp"),
        }
    }

    /// Creates the directories the sandbox hands to commands.
    pub(crate) fn prepare(&self) -> Result<(), BuildError> {
        for dir in [
            self.home(),
            self.work_dir.join("tmp"),
            self.cache_dir.clone(),
        ] {
            std::fs::create_dir_all(&dir)
                .map_err(|e| BuildError::io("create directory", &dir, e))?;
        }
        Ok(())
    }

    /// Runs `cmd`, sending its output to `log` line by line; fails unless it exits with 0.
    pub(crate) async fn run(
        &self,
        cmd: &SandboxCommand,
        log: &BuildLog,
        limits: &Limits,
    ) -> Result<(), BuildError> {
        self.run_seeing(cmd, log, limits, &mut |_| {}).await
    }

    /// [`Sandbox::run`], also handing each output line to `seen` (to look for known failures).
    pub(crate) async fn run_seeing(
        &self,
        cmd: &SandboxCommand,
        log: &BuildLog,
        limits: &Limits,
        seen: &mut (dyn FnMut(&str) + Send),
    ) -> Result<(), BuildError> {
        let style = cmd.style;
        let status = self
            .exec(cmd, limits, &mut |line| {
                seen(line);
                log.output(style, line);
            })
            .await?;
        if status.success() {
            Ok(())
        } else {
            Err(BuildError::CommandFailed {
                step: cmd.step.clone(),
                status,
            })
        }
    }

    /// Runs `cmd` and returns its exit status and its output (not sent to the log).
    pub(crate) async fn output(
        &self,
        cmd: &SandboxCommand,
        limits: &Limits,
    ) -> Result<(ExitStatus, String), BuildError> {
        let mut out = String::new();
        let status = self
            .exec(cmd, limits, &mut |line| {
                out.push_str(line);
                out.push('\n');
            })
            .await?;
        Ok((status, out))
    }

    fn command(&self, cmd: &SandboxCommand) -> tokio::process::Command {
        let mut path = OsString::new();
        for dir in &cmd.path_prefix {
            path.push(self.visible(dir));
            path.push(":");
        }
        path.push(SYSTEM_PATH);
        let program = self.visible_os(cmd.program.as_os_str());
        let args: Vec<OsString> = cmd.args.iter().map(|a| self.visible_os(a)).collect();

        // The program and its arguments, and where it starts.
        let (mut argv, dir): (Vec<OsString>, &Path) = match &self.isolation {
            Isolation::None => {
                let mut argv = vec![program];
                argv.extend(args);
                (argv, &self.app_dir)
            }
            Isolation::Bubblewrap { bwrap, .. } => {
                let mut argv: Vec<OsString> = vec![bwrap.into()];
                argv.extend(self.bubblewrap_args());
                argv.push("--".into());
                if let Some((setpriv, uid)) = self.drop_to() {
                    argv.extend(wharf_sandbox::as_user(setpriv, uid));
                }
                argv.push(program);
                argv.extend(args);
                // bwrap itself starts in a directory that exists on the host.
                (argv, &self.work_dir)
            }
        };
        // In the build's cgroups from its first instant, through wharf's launcher.
        if let Some(launcher) = wharf_sandbox::launch::own_executable() {
            if !self.cgroups.is_empty() {
                let launch = wharf_sandbox::launch::Launch {
                    join: self.cgroups.clone(),
                    user: None,
                    command: argv,
                };
                argv = vec![launcher.into()];
                argv.extend(launch.args());
            }
        }
        let mut command = tokio::process::Command::new(&argv[0]);
        command.args(&argv[1..]).current_dir(dir);
        command
            .env_clear()
            .env("PATH", path)
            .env("HOME", self.visible(&self.home()))
            .env("LANG", "C.UTF-8")
            .env("TMPDIR", self.tmp())
            .envs(
                self.trust()
                    .map(|_| CA_BUNDLE_VARS.map(|var| (var, CA_BUNDLE)))
                    .into_iter()
                    .flatten(),
            )
            .envs(cmd.env.iter().map(|(k, v)| (k, self.visible_os(v))))
            .stdin(Stdio::null())
            .process_group(0)
            .kill_on_drop(true);
        if self.isolation == Isolation::None {
            // bwrap sets PWD after --chdir; set it here too so both modes look the same.
            command.env("PWD", &self.app_dir);
        }
        command
    }

    fn bubblewrap_args(&self) -> Vec<OsString> {
        let as_user = self.as_app_user();
        let mut args: Vec<OsString> = [
            "--die-with-parent",
            "--new-session",
            "--unshare-pid",
            "--unshare-ipc",
        ]
        .iter()
        .map(OsString::from)
        .collect();
        args.extend(wharf_sandbox::capability_args(as_user));
        // Where the scratch and the cache are mounted: at their host paths over the host's
        // view, at /workspace and /cache in a build image.
        let (work, cache) = match &self.root {
            Some(root) => {
                args.extend(wharf_sandbox::image_root_args(root));
                (
                    PathBuf::from(wharf_sandbox::WORKSPACE),
                    PathBuf::from(wharf_sandbox::CACHE),
                )
            }
            None => {
                args.extend(wharf_sandbox::host_view_args(as_user));
                let hidden: Vec<&Path> = self
                    .hidden
                    .iter()
                    .filter(|h| h.is_dir())
                    .map(PathBuf::as_path)
                    .collect();
                args.extend(wharf_sandbox::hide_args(
                    &hidden,
                    &[&self.work_dir, &self.cache_dir],
                ));
                (self.work_dir.clone(), self.cache_dir.clone())
            }
        };
        let mut push = |parts: &[&std::ffi::OsStr]| args.extend(parts.iter().map(OsString::from));
        push(&[
            "--bind".as_ref(),
            self.work_dir.as_os_str(),
            work.as_os_str(),
        ]);
        push(&[
            "--bind".as_ref(),
            self.cache_dir.as_os_str(),
            cache.as_os_str(),
        ]);
        push(&[
            "--bind".as_ref(),
            self.app_dir.as_os_str(),
            APP_MOUNT.as_ref(),
        ]);
        if let Some(bundle) = self.trust() {
            push(&["--ro-bind".as_ref(), bundle.as_os_str(), CA_BUNDLE.as_ref()]);
        }
        push(&["--chdir".as_ref(), APP_MOUNT.as_ref()]);
        args
    }

    async fn exec(
        &self,
        cmd: &SandboxCommand,
        limits: &Limits,
        sink: &mut (dyn FnMut(&str) + Send),
    ) -> Result<ExitStatus, BuildError> {
        limits.check()?;
        if let Some((_, uid)) = self.drop_to() {
            // What wharf itself put there since the last command (the source, a restored
            // cache) becomes the app user's, so the command may change it.
            for dir in [&self.work_dir, &self.cache_dir] {
                let dir = dir.clone();
                crate::tree::blocking(move || give_to(&dir, uid)).await?;
            }
        }
        let (reader, writer) = nix::unistd::pipe2(OFlag::O_CLOEXEC)
            .map_err(|e| BuildError::io("create a pipe for", cmd.program_display(), e.into()))?;
        let writer_err = writer
            .try_clone()
            .map_err(|e| BuildError::io("create a pipe for", cmd.program_display(), e))?;
        let mut command = self.command(cmd);
        command
            .stdout(Stdio::from(writer))
            .stderr(Stdio::from(writer_err));
        let spawned = command.spawn();
        // The command holds the pipe's write ends; drop them so EOF comes when the child's
        // processes are done.
        drop(command);
        let mut child = spawned.map_err(|source| BuildError::Spawn {
            step: cmd.step.clone(),
            program: cmd.program_display(),
            source,
        })?;
        let Some(pid) = child.id() else {
            // Only happens if the child was already reaped, which nothing here does.
            return Err(BuildError::Spawn {
                step: cmd.step.clone(),
                program: cmd.program_display(),
                source: std::io::Error::other("the process exited before it could be tracked"),
            });
        };
        let mut guard = TreeGuard {
            tree: Some(ProcessTree::new(pid)),
        };
        let mut output = Output::new(reader)?;

        enum End {
            Exited(std::io::Result<ExitStatus>),
            Cancelled,
            TimedOut,
        }
        let end = loop {
            tokio::select! {
                biased;
                _ = limits.cancel.cancelled() => break End::Cancelled,
                _ = tokio::time::sleep_until(limits.deadline) => break End::TimedOut,
                status = child.wait() => break End::Exited(status),
                more = output.read(sink), if !output.eof => {
                    if !more {
                        output.eof = true;
                    }
                }
            }
        };

        // Whatever happened, nothing the command started may outlive it: a step that left a
        // background process behind gets it stopped here too.
        if let Some(tree) = guard.tree.as_mut() {
            if !tree.stop(STOP_GRACE).await {
                tracing::warn!(step = %cmd.step, "build processes survived SIGKILL");
            }
        }
        let reaped = child.wait().await;
        output.drain(sink).await;
        guard.disarm();

        match end {
            End::Cancelled => Err(BuildError::Cancelled),
            End::TimedOut => Err(BuildError::TimedOut {
                after: limits.timeout,
            }),
            End::Exited(status) => status.or(reaped).map_err(|source| BuildError::Spawn {
                step: cmd.step.clone(),
                program: cmd.program_display(),
                source,
            }),
        }
    }
}

/// Kills a command's processes if the build future is dropped while the command runs.
struct TreeGuard {
    tree: Option<ProcessTree>,
}

impl TreeGuard {
    fn disarm(&mut self) {
        self.tree = None;
    }
}

impl Drop for TreeGuard {
    fn drop(&mut self) {
        if let Some(tree) = self.tree.as_mut() {
            tree.kill_now();
        }
    }
}

/// The read end of a command's output pipe, split into lines.
struct Output {
    pipe: pipe::Receiver,
    pending: Vec<u8>,
    eof: bool,
}

impl Output {
    fn new(reader: OwnedFd) -> Result<Self, BuildError> {
        let pipe = pipe::Receiver::from_owned_fd(reader)
            .map_err(|e| BuildError::io("read the output pipe of", "build command", e))?;
        Ok(Output {
            pipe,
            pending: Vec::new(),
            eof: false,
        })
    }

    /// Reads once and passes on complete lines; returns false at end of output.
    async fn read(&mut self, sink: &mut (dyn FnMut(&str) + Send)) -> bool {
        let mut buf = [0u8; 8192];
        match self.pipe.read(&mut buf).await {
            Ok(0) | Err(_) => {
                self.flush(sink);
                false
            }
            Ok(n) => {
                self.pending.extend_from_slice(&buf[..n]);
                while let Some(end) = self.pending.iter().position(|&b| b == b'\n') {
                    let line: Vec<u8> = self.pending.drain(..=end).collect();
                    emit(&line[..line.len() - 1], sink);
                }
                if self.pending.len() >= MAX_LINE {
                    self.flush(sink);
                }
                true
            }
        }
    }

    /// Reads what is left after the command's processes are gone.
    async fn drain(&mut self, sink: &mut (dyn FnMut(&str) + Send)) {
        if self.eof {
            return;
        }
        let deadline = Instant::now() + DRAIN_LIMIT;
        loop {
            tokio::select! {
                more = self.read(sink) => if !more { break },
                _ = tokio::time::sleep_until(deadline) => {
                    self.flush(sink);
                    tracing::warn!("a build process kept the output pipe open; stopped reading");
                    break;
                }
            }
        }
        self.eof = true;
    }

    fn flush(&mut self, sink: &mut (dyn FnMut(&str) + Send)) {
        if !self.pending.is_empty() {
            let line = std::mem::take(&mut self.pending);
            emit(&line, sink);
        }
    }
}

fn emit(line: &[u8], sink: &mut (dyn FnMut(&str) + Send)) {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    sink(&String::from_utf8_lossy(line));
}

/// Makes everything below `dir` (and `dir`) owned by `uid` and the group of the same number,
/// without following links.
fn give_to(dir: &Path, uid: u32) -> Result<(), BuildError> {
    for entry in walkdir::WalkDir::new(dir) {
        let entry = entry.map_err(|e| {
            let path = e.path().unwrap_or(dir).to_path_buf();
            BuildError::io("walk", &path, e.into())
        })?;
        let meta = entry
            .metadata()
            .map_err(|e| BuildError::io("read", entry.path(), e.into()))?;
        use std::os::unix::fs::MetadataExt;
        if meta.uid() != uid || meta.gid() != uid {
            std::os::unix::fs::lchown(entry.path(), Some(uid), Some(uid))
                .map_err(|e| BuildError::io("change the owner of", entry.path(), e))?;
        }
    }
    Ok(())
}

/// The first executable file named `name` in the directories of `path`.
pub(crate) fn find_program(name: &str, path: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    path.split(':')
        .filter(|d| !d.is_empty())
        .map(|d| Path::new(d).join(name))
        .find(|p| {
            p.metadata()
                .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                .unwrap_or(false)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bubblewrap_mounts_app_tree_last_at_app() {
        let sb = Sandbox::new(
            Isolation::Bubblewrap {
                bwrap: "/usr/bin/bwrap".into(),
                setpriv: None,
            },
            "/w/app".into(),
            "/w".into(),
            "/c/x".into(),
            vec![],
            None,
            None,
        );
        let args: Vec<String> = sb
            .bubblewrap_args()
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let tail = &args[args.len() - 5..];
        assert_eq!(tail, ["--bind", "/w/app", "/app", "--chdir", "/app"]);
        assert!(args.windows(2).any(|w| w == ["--tmpfs", "/tmp"]));
    }

    #[test]
    fn in_a_build_image_the_scratch_and_cache_have_fixed_places() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("usr/bin")).unwrap();
        std::os::unix::fs::symlink("usr/bin", root.path().join("bin")).unwrap();
        let sb = Sandbox::new(
            Isolation::Bubblewrap {
                bwrap: "/usr/bin/bwrap".into(),
                setpriv: None,
            },
            "/w/app".into(),
            "/w".into(),
            "/c/x".into(),
            vec!["/data".into()],
            None,
            Some(root.path().to_path_buf()),
        );
        assert_eq!(
            sb.visible(Path::new("/w/app/.venv")),
            Path::new("/app/.venv")
        );
        assert_eq!(
            sb.visible(Path::new("/w/home")),
            Path::new("/workspace/home")
        );
        assert_eq!(sb.visible(Path::new("/c/x/pip")), Path::new("/cache/pip"));
        assert_eq!(sb.visible(Path::new("/usr/bin/x")), Path::new("/usr/bin/x"));
        let args: Vec<String> = sb
            .bubblewrap_args()
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let usr = root.path().join("usr").display().to_string();
        assert!(
            args.windows(3)
                .any(|w| w == ["--ro-bind", usr.as_str(), "/usr"]),
            "{args:?}"
        );
        assert!(
            args.windows(3)
                .any(|w| w == ["--symlink", "usr/bin", "/bin"]),
            "{args:?}"
        );
        assert!(
            args.windows(3).any(|w| w == ["--bind", "/w", "/workspace"]),
            "{args:?}"
        );
        assert!(
            args.windows(3).any(|w| w == ["--bind", "/c/x", "/cache"]),
            "{args:?}"
        );
        // Nothing of the host is bound, not even hidden.
        assert!(
            !args.iter().any(|a| a == "/etc" || a == "/data"),
            "{args:?}"
        );
    }
}
