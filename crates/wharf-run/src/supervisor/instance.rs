//! One instance's task: it starts the process (scratch, port, environment, sandbox, cgroups),
//! waits for it to come up (a web process must hold its `PORT`), restarts it with backoff when
//! it crashes, and stops it (drain, signal, grace, SIGKILL) when the reconciler says so.

use super::*;

/// How one run of an instance's process ended.
enum RunEnd {
    /// It exited or failed on its own (or failed its boot): restart it after a backoff.
    Crashed,
    /// It was asked to stop.
    Stopped,
}

/// Context for one instance's task.
struct InstanceRun {
    inner: Arc<Inner>,
    app: Arc<AppShared>,
    cell: Arc<Cell>,
    sink: Arc<dyn LogSink>,
    dir: InstanceDir,
    port: Option<u16>,
    /// Consecutive crashes; reset after `healthy_reset` of uptime.
    streak: u32,
    /// The last state written to the log; `stopping` is not reported as a state.
    reported: InstanceState,
}

pub(super) async fn run_instance(
    inner: Arc<Inner>,
    app: Arc<AppShared>,
    cell: Arc<Cell>,
    sink: Arc<dyn LogSink>,
) {
    let dir = inner.instance_dir(&app.app_id, &cell.upstream_id());
    let mut run = InstanceRun {
        inner,
        app,
        cell,
        sink,
        dir,
        port: None,
        streak: 0,
        reported: InstanceState::Starting,
    };
    loop {
        if run.cell.stop.is_cancelled() {
            break;
        }
        match run.run_once().await {
            RunEnd::Stopped => break,
            RunEnd::Crashed => {
                let config = &run.inner.config;
                let delay = backoff::jittered(config.backoff_base, config.backoff_max, run.streak);
                run.streak = run.streak.saturating_add(1);
                run.update(|s| s.next_restart_at = Some(Instant::now() + delay));
                run.set_state(InstanceState::Crashed);
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = run.cell.stop.cancelled() => break,
                }
                run.update(|s| {
                    s.restarts += 1;
                    s.next_restart_at = None;
                });
            }
        }
    }
    run.finish().await;
}

impl InstanceRun {
    fn update(&self, f: impl FnOnce(&mut CellState)) {
        f(&mut lock(&self.cell.state));
        self.app.changed.notify_one();
    }

    fn set_state(&mut self, to: InstanceState) {
        if to == InstanceState::Up {
            self.cell.ever_up.store(true, Ordering::SeqCst);
        }
        let from = {
            let mut s = lock(&self.cell.state);
            let from = s.state;
            s.state = to;
            s.since = SystemTime::now();
            from
        };
        if from != to {
            tracing::info!(app = %self.app.app_id, instance = %self.cell.name, release = self.cell.release.version, from = %from, to = %to, "instance state changed");
        }
        if to != InstanceState::Stopping && self.reported != to {
            self.sink
                .event(&self.cell.name, &events::state_changed(self.reported, to));
            self.reported = to;
        }
        self.app.changed.notify_one();
    }

    fn event(&self, text: &str) {
        self.sink.event(&self.cell.name, text);
    }

    /// Crashed before the process ran: records why.
    fn failed_to_start(&self, err: &RunError) -> RunEnd {
        let reason = wharf_core::error_chain(err);
        tracing::warn!(app = %self.app.app_id, instance = %self.cell.name, error = %reason, "instance failed to start");
        self.event(&events::cannot_start(&reason));
        self.boot_failed(format!("{} could not start: {reason}", self.cell.name));
        self.update(|s| s.last_exit = Some(format!("failed to start: {reason}")));
        RunEnd::Crashed
    }

    /// Records why a web instance's first start ended before it was up; that fails the
    /// rollout of its release.
    fn boot_failed(&self, why: String) {
        if self.cell.process_type == "web" && !self.cell.ever_up.load(Ordering::SeqCst) {
            lock(&self.cell.boot_failure).get_or_insert(why);
            self.app.changed.notify_one();
        }
    }

    async fn run_once(&mut self) -> RunEnd {
        if self.reported == InstanceState::Crashed {
            self.set_state(InstanceState::Starting);
        }
        let inner = self.inner.clone();
        let release = &self.cell.release;
        let port = match self.port {
            Some(p) => inner.ports.reconfirm(p),
            None => inner.ports.allocate(),
        };
        let port = match port {
            Ok(p) => p,
            Err(e) => return self.failed_to_start(&e),
        };
        self.port = Some(port);
        self.update(|s| s.port = Some(port));
        let user = match inner.app_user(&self.app.app_id) {
            Ok(u) => u,
            Err(e) => return self.failed_to_start(&e),
        };
        let tree = match inner.releases.ensure(&self.app.app_id, release, user).await {
            Ok(t) => t,
            Err(e) => return self.failed_to_start(&e),
        };
        if let Err(e) = self.dir.prepare(user) {
            return self.failed_to_start(&e);
        }
        let env = match inner.environment(release, &tree, &self.dir, port, &self.cell.name) {
            Ok(env) => env,
            Err(e) => return self.failed_to_start(&e),
        };
        let command = self.cell.spec.command.clone();
        let mut limits = inner.cgroups.prepare(
            &self.app.app_id,
            &self.cell.upstream_id(),
            self.cell.spec.memory_limit,
            inner.config.pids_limit,
        );
        let cgroups = limits.procs_files();
        let launch = Launch {
            tree: &tree.app,
            root: tree.root.as_deref(),
            home: &self.dir.home(),
            tmp: &self.dir.tmp(),
            command: &command,
            env: &env,
            stdin: false,
            setsid: None,
            user,
            cgroups: &cgroups,
        };
        self.event(&events::starting(&command));
        let mut child = match inner.isolation.command(&launch).spawn() {
            Ok(c) => c,
            Err(source) => {
                limits.remove();
                return self.failed_to_start(&RunError::Spawn {
                    command: command.clone(),
                    source,
                });
            }
        };
        let Some(pgid) = child.id().map(|p| p as i32) else {
            limits.remove();
            return self.failed_to_start(&RunError::Spawn {
                command,
                source: std::io::Error::other("the process exited before it could be tracked"),
            });
        };
        if let Some(stat) = runtime::proc_stat(pgid) {
            if let Err(e) = runtime::write_pid_file(&self.dir.pid_file(), pgid, stat.start_time) {
                tracing::warn!(instance = %self.cell.name, error = %e, "cannot record an instance's pid");
            }
        }
        limits.join(pgid);
        let mut pumps = Vec::new();
        if let Some(out) = child.stdout.take() {
            pumps.push(inner.tasks.spawn_on(
                runtime::pump_lines(
                    out,
                    self.sink.clone(),
                    self.cell.name.clone(),
                    Stream::Stdout,
                ),
                &inner.runtime,
            ));
        }
        if let Some(err) = child.stderr.take() {
            pumps.push(inner.tasks.spawn_on(
                runtime::pump_lines(
                    err,
                    self.sink.clone(),
                    self.cell.name.clone(),
                    Stream::Stderr,
                ),
                &inner.runtime,
            ));
        }
        self.update(|s| s.pid = Some(pgid as u32));

        let started = tokio::time::Instant::now();
        let is_web = self.cell.process_type == "web";
        if !is_web {
            self.set_state(InstanceState::Up);
        }
        let health = runtime_health(
            is_web,
            port,
            pgid,
            self.cell.spec.health_path.clone(),
            self.cell.spec.health_timeout,
        );
        tokio::pin!(health);
        let mut booting = is_web;
        let boot_deadline = tokio::time::sleep_until(started + inner.config.boot_timeout);
        tokio::pin!(boot_deadline);
        let reset_at = tokio::time::sleep_until(started + inner.config.healthy_reset);
        tokio::pin!(reset_at);
        let mut reset_pending = true;
        let sandboxed = inner.isolation.is_sandboxed();

        // Where the cgroup can't hold memory (no controller, or a host that doesn't account
        // for it), wharf measures the group's memory itself and stops it past its limit.
        let memory_limit = self.cell.spec.memory_limit;
        let mut memory_check = tokio::time::interval(MEMORY_CHECK);
        memory_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let (status, end) = loop {
            tokio::select! {
                status = child.wait() => {
                    if booting {
                        let exit = status.as_ref().map_or_else(|e| e.to_string(), |s| runtime::exit_text(*s));
                        self.boot_failed(format!("{} exited ({exit}) before it was up", self.cell.name));
                    }
                    break (status, RunEnd::Crashed)
                }
                _ = &mut health, if booting => {
                    booting = false;
                    self.set_state(InstanceState::Up);
                }
                _ = &mut boot_deadline, if booting => {
                    self.event(&events::boot_timeout(&self.cell.name, inner.config.boot_timeout));
                    self.boot_failed(format!(
                        "{} did not come up within {} s (it must listen on $PORT{})",
                        self.cell.name,
                        inner.config.boot_timeout.as_secs(),
                        self.cell.spec.health_path.as_deref().map(|p| format!(" and answer {p} with 2xx or 3xx")).unwrap_or_default(),
                    ));
                    self.event(&events::stopping_all(nix::sys::signal::Signal::SIGKILL));
                    runtime::signal_group(pgid, nix::sys::signal::Signal::SIGKILL, sandboxed);
                    break (child.wait().await, RunEnd::Crashed);
                }
                _ = &mut reset_at, if reset_pending => {
                    reset_pending = false;
                    self.streak = 0;
                }
                _ = memory_check.tick(), if memory_limit.is_some() => {
                    let limit = memory_limit.unwrap_or(u64::MAX);
                    let used = runtime::group_memory(pgid);
                    if used > limit {
                        self.event(&events::memory_exceeded(used, limit));
                        runtime::signal_group(pgid, nix::sys::signal::Signal::SIGKILL, sandboxed);
                        break (child.wait().await, RunEnd::Crashed);
                    }
                }
                _ = self.cell.stop.cancelled() => {
                    let status = self.stop_process(&mut child, pgid, sandboxed).await;
                    break (status, RunEnd::Stopped);
                }
            }
        };
        // Whatever the process left in its group dies with it.
        runtime::kill_group(pgid, Duration::from_secs(5)).await;
        for pump in pumps {
            let _ = tokio::time::timeout(DRAIN, pump).await;
        }
        limits.remove();
        let exit = match status {
            Ok(s) => runtime::exit_text(s),
            Err(e) => format!("unknown status ({e})"),
        };
        self.event(&events::exited(&exit));
        self.update(|s| {
            s.last_exit = Some(exit);
            s.pid = None;
        });
        end
    }

    /// The stop signal to the group, then SIGKILL after the grace period.
    async fn stop_process(
        &mut self,
        child: &mut tokio::process::Child,
        pgid: i32,
        sandboxed: bool,
    ) -> std::io::Result<std::process::ExitStatus> {
        // The signal name was checked when the formation was stored; SIGTERM if it can't be read.
        let signal = self
            .cell
            .spec
            .stop_signal
            .parse::<nix::sys::signal::Signal>()
            .unwrap_or(nix::sys::signal::Signal::SIGTERM);
        let grace = self.cell.spec.grace;
        let was_up = self.cell.state() == InstanceState::Up;
        self.set_state(InstanceState::Stopping);
        if was_up && self.cell.process_type == "web" {
            if let Some(routes) = self.inner.routes.get() {
                // Out of rotation, and the requests in flight on it finish first.
                routes
                    .drain(&self.app.app_id, &self.cell.upstream_id())
                    .await;
            }
        }
        self.event(&events::stopping_all(signal));
        runtime::signal_group(pgid, signal, sandboxed);
        match tokio::time::timeout(grace, child.wait()).await {
            Ok(status) => status,
            Err(_) => {
                self.event(&events::exit_timeout(grace, signal));
                self.event(&events::stopping_all(nix::sys::signal::Signal::SIGKILL));
                runtime::signal_group(pgid, nix::sys::signal::Signal::SIGKILL, sandboxed);
                child.wait().await
            }
        }
    }

    async fn finish(mut self) {
        if let Err(e) = runtime::wipe(&self.dir.root) {
            tracing::warn!(instance = %self.cell.name, error = %e, "cannot wipe an instance's scratch");
        }
        if let Some(port) = self.port.take() {
            self.inner.ports.release(port);
        }
        self.update(|s| s.port = None);
        self.set_state(InstanceState::Down);
        lock(&self.app.instances).retain(|c| !Arc::ptr_eq(c, &self.cell));
        self.cell.done.cancel();
        self.app.changed.notify_one();
    }
}

/// Resolves when a web instance is healthy; never for other types.
async fn runtime_health(
    is_web: bool,
    port: u16,
    pgid: i32,
    path: Option<String>,
    timeout: Option<Duration>,
) {
    if is_web {
        crate::health::wait_healthy(port, pgid, path, timeout).await
    } else {
        std::future::pending::<()>().await
    }
}
