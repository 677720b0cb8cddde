//! One-off processes: `wharf run` (attached, detached, or in a terminal), the release phase
//! (`release.N`) and app.json's `postdeploy`, each in the same sandbox and environment as the
//! app's instances, and held as users of their release so it is not collected under them.

use super::*;

/// A one-off process while it runs: what `status` shows of it, and how to stop it.
pub(super) struct RunningOneOff {
    status: InstanceStatus,
    stop: CancellationToken,
}

/// Marks a release as used by a one-off process while it lives.
struct OneOffRelease {
    inner: Arc<Inner>,
    key: (String, u32),
}

impl OneOffRelease {
    fn hold(inner: Arc<Inner>, app_id: &str, release: &ReleaseSpec) -> OneOffRelease {
        let key = (app_id.to_owned(), release.version);
        lock(&inner.one_off_releases)
            .entry(key.clone())
            .or_insert_with(|| (release.image.clone(), 0))
            .1 += 1;
        OneOffRelease { inner, key }
    }
}

impl Drop for OneOffRelease {
    fn drop(&mut self) {
        let mut held = lock(&self.inner.one_off_releases);
        if let Some(entry) = held.get_mut(&self.key) {
            entry.1 -= 1;
            if entry.1 == 0 {
                held.remove(&self.key);
            }
        }
    }
}

pub use wharf_core::backend::{OneOff, OneOffInput};

/// Where a one-off's input comes from and its output goes.
#[derive(Debug, Clone, Copy)]
enum OneOffIo {
    /// Output to the app's log; no input.
    Log,
    /// stdin, stdout and stderr are pipes to the caller.
    Pipes,
    /// A terminal of this size is its stdin, stdout and stderr.
    Terminal(TtySize),
}

impl Supervisor {
    /// The app's running one-off processes (`run.N`, `release.N`), oldest first.
    pub fn one_offs(&self, app_id: &str) -> Vec<InstanceStatus> {
        lock(&self.inner.running_one_offs)
            .get(app_id)
            .map(|list| list.iter().map(|o| o.status.clone()).collect())
            .unwrap_or_default()
    }

    /// Stops the app's one-off process `name` (SIGTERM, then SIGKILL after a grace period);
    /// whether there was one.
    pub fn stop_one_off(&self, app_id: &str, name: &str) -> bool {
        let running = lock(&self.inner.running_one_offs);
        match running
            .get(app_id)
            .and_then(|list| list.iter().find(|o| o.status.name == name))
        {
            Some(one) => {
                one.stop.cancel();
                true
            }
            None => false,
        }
    }

    /// How the app's one-off process `name` ended, if it is one of the last that did.
    pub fn ended_one_off(&self, app_id: &str, name: &str) -> Option<InstanceStatus> {
        self.inner.ended_one_offs.find(app_id, name)
    }

    /// Runs a one-off process (`DYNO=run.N`) with the release's environment in the same
    /// sandbox as the app's instances. Attached: returns its stdin and its output; detached:
    /// its output goes to `log`. The server's shutdown stops it.
    pub async fn run_one_off(
        &self,
        app_id: &str,
        release: &ReleaseSpec,
        command: &str,
        attach: bool,
        log: Arc<dyn LogSink>,
    ) -> Result<OneOff, RunError> {
        let io = if attach {
            OneOffIo::Pipes
        } else {
            OneOffIo::Log
        };
        self.start_one_off("run", app_id, release, command, io, log)
            .await
    }

    /// Runs a one-off process attached to a terminal of `size`, as `heroku run` expects
    /// (interactive shells and consoles): see [`OneOff`]. Needs util-linux's `setsid`.
    pub async fn run_one_off_in_terminal(
        &self,
        app_id: &str,
        release: &ReleaseSpec,
        command: &str,
        size: TtySize,
        log: Arc<dyn LogSink>,
    ) -> Result<OneOff, RunError> {
        self.start_one_off(
            "run",
            app_id,
            release,
            command,
            OneOffIo::Terminal(size),
            log,
        )
        .await
    }

    /// Runs a release's release phase (`DYNO=release.N`): a one-off process like
    /// [`Supervisor::run_one_off`]'s, attached, with the new release's environment.
    pub async fn run_release_phase(
        &self,
        app_id: &str,
        release: &ReleaseSpec,
        command: &str,
        log: Arc<dyn LogSink>,
    ) -> Result<OneOff, RunError> {
        self.start_one_off("release", app_id, release, command, OneOffIo::Pipes, log)
            .await
    }

    /// app.json's `postdeploy` script: a detached one-off (`postdeploy.N`), its output in the
    /// app's log.
    pub async fn run_postdeploy(
        &self,
        app_id: &str,
        release: &ReleaseSpec,
        command: &str,
        log: Arc<dyn LogSink>,
    ) -> Result<OneOff, RunError> {
        self.start_one_off("postdeploy", app_id, release, command, OneOffIo::Log, log)
            .await
    }

    async fn start_one_off(
        &self,
        process_type: &str,
        app_id: &str,
        release: &ReleaseSpec,
        command: &str,
        io: OneOffIo,
        log: Arc<dyn LogSink>,
    ) -> Result<OneOff, RunError> {
        let inner = &self.inner;
        if inner.shutdown.is_cancelled() {
            return Err(RunError::ShuttingDown);
        }
        let setsid = match io {
            OneOffIo::Terminal(_) => {
                Some(wharf_sandbox::find_setsid().ok_or_else(|| RunError::Spawn {
                    command: command.to_owned(),
                    source: std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        "a terminal needs `setsid` (util-linux), which is not installed",
                    ),
                })?)
            }
            _ => None,
        };
        let number = {
            let mut counters = lock(&inner.one_offs);
            let n = counters.entry(app_id.to_owned()).or_insert(0);
            *n += 1;
            *n
        };
        let name = format!("{process_type}.{number}");
        // In use from before its tree is unpacked until the process has ended.
        let in_use = OneOffRelease::hold(self.inner.clone(), app_id, release);
        let user = inner.app_user(app_id)?;
        let tree = inner.releases.ensure(app_id, release, user).await?;
        let port = inner.ports.allocate()?;
        let dir = inner.instance_dir(app_id, &name);
        // The same limits as an instance of the default size.
        let mut limits = inner.cgroups.prepare(
            app_id,
            &name,
            Some(wharf_core::formation::DynoSize::default_size().memory_bytes()),
            inner.config.pids_limit,
        );
        let cgroups = limits.procs_files();
        let started = (|| {
            dir.prepare(user)?;
            let mut env = inner.environment(release, &tree, &dir, port, &name)?;
            if matches!(io, OneOffIo::Terminal(_)) {
                // Full-screen programs (`less`, `top`, editors) need to know the terminal; a
                // client that says which it has sets `TERM` itself.
                env.entry("TERM".to_owned())
                    .or_insert_with(|| "xterm-256color".to_owned());
            }
            let spawn_error = |source| RunError::Spawn {
                command: command.to_owned(),
                source,
            };
            let launch = Launch {
                tree: &tree.app,
                root: tree.root.as_deref(),
                home: &dir.home(),
                tmp: &dir.tmp(),
                command,
                env: &env,
                stdin: !matches!(io, OneOffIo::Log),
                setsid: setsid.as_deref(),
                user,
                cgroups: &cgroups,
            };
            let mut command = inner.isolation.command(&launch);
            let terminal = match io {
                OneOffIo::Terminal(size) => {
                    let pair = pty::open(size).map_err(spawn_error)?;
                    let master = pty::master_io(pair.master).map_err(spawn_error)?;
                    let slave = || pair.slave.try_clone().map(Stdio::from).map_err(spawn_error);
                    command.stdin(slave()?).stdout(slave()?).stderr(slave()?);
                    // `pair.slave` and `command`'s copies close at the end of this block: the
                    // process's are then the only ones, and the master reads EIO once they close.
                    Some(master)
                }
                _ => None,
            };
            let mut child = command.spawn().map_err(spawn_error)?;
            let pgid = child.id().map(|p| p as i32);
            if let Some(pgid) = pgid {
                if let Some(stat) = runtime::proc_stat(pgid) {
                    if let Err(e) = runtime::write_pid_file(&dir.pid_file(), pgid, stat.start_time)
                    {
                        tracing::warn!(error = %e, "cannot record a one-off's pid");
                    }
                }
            }
            let stdout = child.stdout.take();
            let stderr = child.stderr.take();
            Ok::<_, RunError>((child, pgid, stdout, stderr, terminal))
        })();
        let (mut child, pgid, stdout, stderr, terminal) = match started {
            Ok(s) => s,
            Err(e) => {
                limits.remove();
                inner.ports.release(port);
                let _ = runtime::wipe(&dir.root);
                return Err(e);
            }
        };
        if let Some(pgid) = pgid {
            limits.join(pgid);
        }
        let stop = inner.shutdown.child_token();
        lock(&inner.running_one_offs)
            .entry(app_id.to_owned())
            .or_default()
            .push(RunningOneOff {
                status: InstanceStatus {
                    node: None,
                    name: name.clone(),
                    process_type: process_type.to_owned(),
                    release_version: release.version,
                    state: InstanceState::Up,
                    command: command.to_owned(),
                    pid: pgid.map(|p| p as u32),
                    port: Some(port),
                    restarts: 0,
                    last_exit: None,
                    next_restart_in: None,
                    since: std::time::SystemTime::now(),
                },
                stop: stop.clone(),
            });
        log.event(&name, &events::starting(command));
        let mut pumps = Vec::new();
        let (output, stdin): (_, Option<OneOffInput>) = if let Some((reader, writer)) = terminal {
            let (tx, rx) = mpsc::channel(64);
            pumps.push(
                inner
                    .tasks
                    .spawn_on(runtime::pump_chunks(reader, tx), &inner.runtime),
            );
            (Some(rx), Some(Box::new(writer)))
        } else if matches!(io, OneOffIo::Pipes) {
            let (tx, rx) = mpsc::channel(64);
            if let Some(out) = stdout {
                pumps.push(
                    inner
                        .tasks
                        .spawn_on(runtime::pump_chunks(out, tx.clone()), &inner.runtime),
                );
            }
            if let Some(err) = stderr {
                pumps.push(
                    inner
                        .tasks
                        .spawn_on(runtime::pump_chunks(err, tx), &inner.runtime),
                );
            }
            (
                Some(rx),
                child
                    .stdin
                    .take()
                    .map(|stdin| Box::new(stdin) as OneOffInput),
            )
        } else {
            if let Some(out) = stdout {
                pumps.push(inner.tasks.spawn_on(
                    runtime::pump_lines(out, log.clone(), name.clone(), Stream::Stdout),
                    &inner.runtime,
                ));
            }
            if let Some(err) = stderr {
                pumps.push(inner.tasks.spawn_on(
                    runtime::pump_lines(err, log.clone(), name.clone(), Stream::Stderr),
                    &inner.runtime,
                ));
            }
            (None, None)
        };
        let (exit_tx, exit_rx) = oneshot::channel();
        let this = self.inner.clone();
        let task_name = name.clone();
        let task_app = app_id.to_owned();
        inner.tasks.spawn_on(
            async move {
                let sandboxed = this.isolation.is_sandboxed();
                let status = tokio::select! {
                    s = child.wait() => s,
                    // Stopped by name, or the server is shutting down.
                    _ = stop.cancelled() => {
                        if let Some(pgid) = pgid {
                            if matches!(io, OneOffIo::Terminal(_)) {
                                // What closing a terminal does; interactive shells, which
                                // ignore SIGTERM, end on it.
                                runtime::hang_up(pgid, sandboxed);
                            }
                            log.event(&task_name, &events::stopping_all(nix::sys::signal::Signal::SIGTERM));
                            runtime::signal_group(pgid, nix::sys::signal::Signal::SIGTERM, sandboxed);
                        }
                        match tokio::time::timeout(ONE_OFF_GRACE, child.wait()).await {
                            Ok(s) => s,
                            Err(_) => {
                                if let Some(pgid) = pgid {
                                    runtime::signal_group(pgid, nix::sys::signal::Signal::SIGKILL, sandboxed);
                                }
                                child.wait().await
                            }
                        }
                    }
                };
                if let Some(pgid) = pgid {
                    runtime::kill_group(pgid, Duration::from_secs(5)).await;
                    if matches!(io, OneOffIo::Terminal(_)) && !sandboxed {
                        // Its shell's jobs, in groups of their own, hold the terminal open.
                        // (In the sandbox, they ended with its pid namespace.)
                        runtime::kill_session(pgid, Duration::from_secs(5)).await;
                    }
                }
                for pump in pumps {
                    let _ = tokio::time::timeout(DRAIN, pump).await;
                }
                let (code, exit) = match status {
                    Ok(status) => {
                        let exit = runtime::exit_text(status);
                        log.event(&task_name, &events::exited(&exit));
                        let _ = exit_tx.send(runtime::exit_code(status));
                        (status.code(), exit)
                    }
                    Err(e) => {
                        tracing::error!(error = %e, process = %task_name, "cannot wait for a one-off process");
                        (None, "unknown status".to_owned())
                    }
                };
                limits.remove();
                {
                    let mut running = lock(&this.running_one_offs);
                    if let Some(list) = running.get_mut(&task_app) {
                        if let Some(at) = list.iter().position(|o| o.status.name == task_name) {
                            let ended = list.remove(at);
                            let clean = code == Some(0) || ended.stop.is_cancelled();
                            this.ended_one_offs.record(&task_app, ended.status, clean, exit, SystemTime::now());
                        }
                        if list.is_empty() {
                            running.remove(&task_app);
                        }
                    }
                }
                if let Err(e) = runtime::wipe(&dir.root) {
                    tracing::warn!(error = %e, "cannot wipe a one-off's scratch");
                }
                this.ports.release(port);
                drop(in_use);
            },
            &inner.runtime,
        );
        Ok(OneOff {
            name,
            pid: pgid.map(|p| p as u32),
            stdin,
            output,
            exit: exit_rx,
            tty: matches!(io, OneOffIo::Terminal(_)),
            kill: Arc::new(move || {
                // SIGKILL goes to the whole group, sandbox included.
                if let Some(pgid) = pgid {
                    runtime::signal_group(pgid, nix::sys::signal::Signal::SIGKILL, true);
                }
            }),
        })
    }
}
