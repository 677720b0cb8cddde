//! The supervisor: one reconciler task per app converges the running instances to the desired
//! state; one task per instance runs it through its lifecycle (starting → up → crashed →
//! starting … → stopping → down).
//!
//! The reconciler is a loop of *steps*. Each step looks at the desired state and the current
//! instances and starts or stops instances; it runs again whenever the desired state or any
//! instance's state changes. Per process type:
//! - an instance is *fresh* when it runs the desired release and spec and is not being
//!   replaced (`restart` marks instances as retiring);
//! - `web`: fresh instances are started for every missing index at once; the others (old
//!   release, retiring) are stopped only once every fresh index is up, so a deploy whose new
//!   instances never come up leaves the old ones serving;
//! - other types: old instances are stopped first, and fresh ones start only once every old
//!   one is gone, so two versions of a worker never run at once;
//! - fresh instances beyond the quantity are stopped; types no longer desired are stopped.
//!
//! After each step the reconciler publishes the web instances that take requests to the router
//! ([`Routes`]): those up and not stopping, and during a deploy only the old release's until
//! every new instance is up, then only the new ones — one atomic swap. A web instance that took
//! requests is drained (the router lets its requests in flight finish) before it is signalled.
//! Each step also updates the app's *rollout*: complete once every web instance of the desired
//! release is up, failed once one of them ended before it ever came up.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use tokio::io::AsyncWrite;
use tokio::sync::{mpsc, oneshot, watch, Notify};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use wharf_image::ImageStore;

use crate::ports::PortPool;
use crate::pty::{self, TtySize};
use crate::runtime::{self, InstanceDir};
use crate::sandbox::{Isolation, Launch, DEFAULT_PATH};
use crate::tree::{Releases, TreeCollection};
use crate::{
    backoff, events, stale, DesiredApp, InstanceState, InstanceStatus, LogSink, ProcessSpec,
    ReleaseSpec, Rollout, Routes, RunError, Stream, SupervisorConfig, Target, Upstream,
};
use wharf_sandbox::cgroup::Cgroups;

/// How often an instance's memory is measured against its limit.
const MEMORY_CHECK: Duration = Duration::from_secs(1);
/// How long output is still read after a process exited (its pipes may be held by leftovers
/// until they are killed).
const DRAIN: Duration = Duration::from_secs(1);
/// Grace for one-off processes when the server shuts down.
const ONE_OFF_GRACE: Duration = Duration::from_secs(10);

/// The local backend. Cheap to clone; all clones drive the same processes. Dropping every
/// handle does not stop anything (a crashed server can't either): call
/// [`Supervisor::shutdown`].
#[derive(Clone)]
pub struct Supervisor {
    inner: Arc<Inner>,
}

struct Inner {
    config: SupervisorConfig,
    isolation: Isolation,
    cgroups: Cgroups,
    ports: PortPool,
    releases: Releases,
    run_dir: PathBuf,
    /// app_id → its reconciler. Locked only for short, non-async sections.
    apps: Mutex<HashMap<String, AppHandle>>,
    /// app_id → the last one-off number handed out (`run.N`).
    one_offs: Mutex<HashMap<String, u32>>,
    /// app_id → its one-off processes while they run.
    running_one_offs: Mutex<HashMap<String, Vec<RunningOneOff>>>,
    /// The releases running one-off processes use, `(app_id, version)` → how many: their trees
    /// and images are in use.
    one_off_releases: Mutex<HashMap<(String, u32), (String, usize)>>,
    /// Makes instance directory names unique while two instances share a name (a web deploy).
    generation: AtomicU64,
    /// Cancelled on shutdown (or by the caller's token); every app and instance token is a
    /// child of it.
    shutdown: CancellationToken,
    /// Every task the supervisor starts, so shutdown can wait for them.
    tasks: TaskTracker,
    runtime: tokio::runtime::Handle,
    /// Where web instances are published; set once, before the first app is applied.
    routes: OnceLock<Arc<dyn Routes>>,
}

struct AppHandle {
    /// The desired state and the sink new instances log to; the reconciler watches it.
    desired: watch::Sender<Arc<(DesiredApp, Arc<dyn LogSink>)>>,
    shared: Arc<AppShared>,
    /// Stops the app's reconciler, which then stops its instances.
    cancel: CancellationToken,
    /// Cancelled once the reconciler has stopped every instance and returned.
    finished: CancellationToken,
}

struct AppShared {
    app_id: String,
    /// The app's instances, including those stopping; an instance removes itself once down.
    instances: Mutex<Vec<Arc<Cell>>>,
    /// Instances ping this on every state change; the reconciler waits on it.
    changed: Notify,
    /// The upstreams last published to the router.
    routed: Mutex<Vec<Upstream>>,
    /// The rollout of the desired release: its version and how far it got.
    rollout: watch::Sender<(u32, Phase)>,
}

/// How far the rollout of a release got.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    InProgress,
    Complete,
    Failed(String),
}

/// One instance, shared by its task, the reconciler and `status`.
struct Cell {
    name: String,
    process_type: String,
    index: u32,
    generation: u64,
    release: ReleaseSpec,
    spec: ProcessSpec,
    /// Set by `restart`: the reconciler replaces the instance like an old release's.
    retiring: AtomicBool,
    /// Set once the instance was first up (web: healthy).
    ever_up: AtomicBool,
    /// Why the instance's first start ended before it was up (web only).
    boot_failure: Mutex<Option<String>>,
    /// Asks the instance to stop for good.
    stop: CancellationToken,
    /// Cancelled when the instance is down and cleaned up.
    done: CancellationToken,
    state: Mutex<CellState>,
}

#[derive(Debug, Clone)]
struct CellState {
    state: InstanceState,
    pid: Option<u32>,
    port: Option<u16>,
    restarts: u32,
    last_exit: Option<String>,
    next_restart_at: Option<Instant>,
    since: SystemTime,
}

impl Cell {
    fn snapshot(&self) -> InstanceStatus {
        let s = lock(&self.state).clone();
        InstanceStatus {
            name: self.name.clone(),
            process_type: self.process_type.clone(),
            release_version: self.release.version,
            state: s.state,
            command: self.spec.command.clone(),
            pid: s.pid,
            port: s.port,
            restarts: s.restarts,
            last_exit: s.last_exit,
            next_restart_in: match s.state {
                InstanceState::Crashed => s
                    .next_restart_at
                    .map(|t| t.saturating_duration_since(Instant::now())),
                _ => None,
            },
            since: s.since,
        }
    }

    fn state(&self) -> InstanceState {
        lock(&self.state).state
    }

    /// Unique among the app's instances, past and present: `web.1-17`. Names the instance's
    /// scratch directory, its cgroup and its upstream.
    fn upstream_id(&self) -> String {
        format!("{}-{}", self.name, self.generation)
    }

    fn is_fresh_for(&self, desired: &DesiredApp, spec: &ProcessSpec) -> bool {
        !self.retiring.load(Ordering::SeqCst)
            && self.release == desired.release
            && same_definition(&self.spec, spec)
    }
}

pub(crate) use wharf_sandbox::launch::own_executable;

/// The directory of [`own_executable`].
fn own_tools_dir() -> Option<&'static str> {
    own_executable()?.parent()?.to_str()
}

/// A one-off process while it runs: what `status` shows of it, and how to stop it.
struct RunningOneOff {
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

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic elsewhere must not take the supervisor down with it: the data stays usable.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A started one-off process (`wharf run`).
///
/// Attached: `stdin` and `output` are `Some`; `output` yields stdout and stderr as they come,
/// in chunks (not lines), and closes when the process and everything it left in its group are
/// gone. Detached: both are `None` and the output goes to the app's log as lines of `run.N`.
/// In a terminal ([`Supervisor::run_one_off_in_terminal`], `tty` set), `stdin` is typed at the
/// terminal (its line discipline echoes it, Ctrl-D ends input, Ctrl-C interrupts) and `output`
/// is what the terminal shows.
/// `exit` resolves with the exit code, or 128 + the signal number when it was killed; it is
/// dropped without a value only if the process could not be waited for.
pub struct OneOff {
    /// `run.N`
    pub name: String,
    pub pid: Option<u32>,
    pub stdin: Option<OneOffInput>,
    pub output: Option<mpsc::Receiver<Vec<u8>>>,
    pub exit: oneshot::Receiver<i32>,
    /// Runs attached to a terminal.
    pub tty: bool,
}

/// An attached one-off's input: its stdin pipe, or its terminal.
pub type OneOffInput = Box<dyn AsyncWrite + Send + Unpin>;

impl std::fmt::Debug for OneOff {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OneOff")
            .field("name", &self.name)
            .field("pid", &self.pid)
            .field("attached", &self.output.is_some())
            .field("tty", &self.tty)
            .finish_non_exhaustive()
    }
}

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
    /// Starts the supervisor: first stops every process a previous (killed) server left behind
    /// — found through pid files under `data_dir/run` — then wipes their scratch directories.
    /// See the crate docs for why they are stopped rather than adopted.
    pub async fn start(
        config: SupervisorConfig,
        images: ImageStore,
        shutdown: CancellationToken,
    ) -> Result<Supervisor, RunError> {
        let run_dir = config.data_dir.join("run");
        let releases_dir = config.data_dir.join("releases");
        for dir in [&run_dir, &releases_dir] {
            std::fs::create_dir_all(dir).map_err(RunError::io("create", dir))?;
            // App users pass through to their own tree and scratch, but can't list the others.
            let _ =
                std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o711));
        }
        // What a previous server ran here: its cgroups go once its processes are gone.
        let left: Vec<(String, String)> = std::fs::read_dir(&run_dir)
            .into_iter()
            .flatten()
            .flatten()
            .flat_map(|app| {
                let app_id = app.file_name().to_string_lossy().into_owned();
                std::fs::read_dir(app.path())
                    .into_iter()
                    .flatten()
                    .flatten()
                    .map(move |instance| {
                        (
                            app_id.clone(),
                            instance.file_name().to_string_lossy().into_owned(),
                        )
                    })
            })
            .collect();
        let killed = stale::clean(&run_dir).await?;
        if killed > 0 {
            tracing::info!(killed, "stopped processes left by a previous server");
        }
        let cgroups = Cgroups::detect();
        for (app_id, instance) in &left {
            cgroups.remove_leftover(app_id, instance);
        }
        let isolation = Isolation::resolve(config.sandbox, &config.data_dir).await?;
        tracing::info!(sandbox = ?isolation, "supervisor started");
        let inner = Inner {
            isolation,
            cgroups,
            ports: PortPool::new(config.port_range.clone()),
            releases: Releases::new(releases_dir, config.data_dir.join("stacks"), images),
            run_dir,
            apps: Mutex::new(HashMap::new()),
            one_offs: Mutex::new(HashMap::new()),
            running_one_offs: Mutex::new(HashMap::new()),
            one_off_releases: Mutex::new(HashMap::new()),
            generation: AtomicU64::new(0),
            shutdown: shutdown.child_token(),
            tasks: TaskTracker::new(),
            runtime: tokio::runtime::Handle::current(),
            routes: OnceLock::new(),
            config,
        };
        Ok(Supervisor {
            inner: Arc::new(inner),
        })
    }

    /// Publishes web instances to `routes` (the router) from now on. Call it before the first
    /// [`Supervisor::apply`]; later calls are ignored.
    pub fn set_routes(&self, routes: Arc<dyn Routes>) {
        if self.inner.routes.set(routes).is_err() {
            tracing::warn!("the supervisor's routes were already set");
        }
    }

    /// Sets what should run for an app and returns at once; the app's reconciler converges to
    /// it continuously. Applying the same desired state again changes nothing.
    pub fn apply(&self, desired: DesiredApp, log: Arc<dyn LogSink>) {
        let inner = &self.inner;
        if inner.shutdown.is_cancelled() {
            tracing::warn!(app = %desired.app_id, "ignoring a desired state: shutting down");
            return;
        }
        let mut apps = lock(&inner.apps);
        if let Some(handle) = apps.get(&desired.app_id) {
            let version = desired.release.version;
            handle.shared.rollout.send_if_modified(|r| {
                let new = r.0 != version;
                if new {
                    *r = (version, Phase::InProgress);
                }
                new
            });
            handle.desired.send_if_modified(|current| {
                if current.0 == desired {
                    false
                } else {
                    *current = Arc::new((desired, log));
                    true
                }
            });
            return;
        }
        let app_id = desired.app_id.clone();
        let version = desired.release.version;
        let (tx, rx) = watch::channel(Arc::new((desired, log)));
        let shared = Arc::new(AppShared {
            app_id: app_id.clone(),
            instances: Mutex::new(Vec::new()),
            changed: Notify::new(),
            routed: Mutex::new(Vec::new()),
            rollout: watch::channel((version, Phase::InProgress)).0,
        });
        let cancel = inner.shutdown.child_token();
        let finished = CancellationToken::new();
        inner.tasks.spawn_on(
            reconcile(
                self.inner.clone(),
                shared.clone(),
                rx,
                cancel.clone(),
                finished.clone(),
            ),
            &inner.runtime,
        );
        apps.insert(
            app_id,
            AppHandle {
                desired: tx,
                shared,
                cancel,
                finished,
            },
        );
    }

    /// Stops everything of the app and forgets it.
    pub async fn remove(&self, app_id: &str) {
        let handle = lock(&self.inner.apps).remove(app_id);
        if let Some(handle) = handle {
            handle.cancel.cancel();
            handle.finished.cancelled().await;
        }
    }

    /// Restarts instances: all, one type, or one (`web.1`). Web instances go one at a time,
    /// each replacement up before the old one stops; other types stop, then start again.
    /// Returns once the old instances are gone. A web replacement that never comes up keeps
    /// the old instance running and this waiting; callers bound it with a timeout.
    pub async fn restart(&self, app_id: &str, target: Target) -> Result<(), RunError> {
        let shared = {
            let apps = lock(&self.inner.apps);
            apps.get(app_id)
                .map(|h| h.shared.clone())
                .ok_or_else(|| RunError::UnknownApp {
                    app_id: app_id.to_owned(),
                })?
        };
        let chosen: Vec<Arc<Cell>> = lock(&shared.instances)
            .iter()
            .filter(|c| !c.stop.is_cancelled() && !c.retiring.load(Ordering::SeqCst))
            .filter(|c| match &target {
                Target::All => true,
                Target::Type(t) => &c.process_type == t,
                Target::Instance(n) => &c.name == n,
            })
            .cloned()
            .collect();
        if chosen.is_empty() && target != Target::All {
            let target = match target {
                Target::Type(t) | Target::Instance(t) => t,
                Target::All => String::new(),
            };
            return Err(RunError::UnknownTarget {
                app_id: app_id.to_owned(),
                target,
            });
        }
        let (web, others): (Vec<_>, Vec<_>) =
            chosen.into_iter().partition(|c| c.process_type == "web");
        for cell in &others {
            cell.retiring.store(true, Ordering::SeqCst);
        }
        shared.changed.notify_one();
        for cell in web {
            cell.retiring.store(true, Ordering::SeqCst);
            shared.changed.notify_one();
            tokio::select! {
                _ = cell.done.cancelled() => {}
                _ = self.inner.shutdown.cancelled() => return Err(RunError::ShuttingDown),
            }
        }
        for cell in others {
            tokio::select! {
                _ = cell.done.cancelled() => {}
                _ = self.inner.shutdown.cancelled() => return Err(RunError::ShuttingDown),
            }
        }
        Ok(())
    }

    /// Waits for the rollout of release `version` to end; see [`Backend::rollout`].
    ///
    /// [`Backend::rollout`]: wharf_core::backend::Backend::rollout
    pub async fn rollout(&self, app_id: &str, version: u32) -> Rollout {
        let rx = lock(&self.inner.apps)
            .get(app_id)
            .map(|h| h.shared.rollout.subscribe());
        let Some(mut rx) = rx else {
            return Rollout::Superseded;
        };
        loop {
            {
                let r = rx.borrow_and_update();
                if r.0 != version {
                    return Rollout::Superseded;
                }
                match &r.1 {
                    Phase::Complete => return Rollout::Complete,
                    Phase::Failed(why) => return Rollout::Failed(why.clone()),
                    Phase::InProgress => {}
                }
            }
            if rx.changed().await.is_err() {
                return Rollout::Superseded;
            }
        }
    }

    /// The app's instances, sorted by type, then index (then age, while a replacement and the
    /// instance it replaces run side by side).
    pub fn status(&self, app_id: &str) -> Vec<InstanceStatus> {
        let shared = match lock(&self.inner.apps).get(app_id) {
            Some(h) => h.shared.clone(),
            None => return Vec::new(),
        };
        let mut cells: Vec<Arc<Cell>> = lock(&shared.instances).clone();
        cells.sort_by(|a, b| {
            (&a.process_type, a.index, a.generation).cmp(&(&b.process_type, b.index, b.generation))
        });
        cells.iter().map(|c| c.snapshot()).collect()
    }

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
                match status {
                    Ok(status) => {
                        log.event(&task_name, &events::exited(&runtime::exit_text(status)));
                        let _ = exit_tx.send(runtime::exit_code(status));
                    }
                    Err(e) => tracing::error!(error = %e, process = %task_name, "cannot wait for a one-off process"),
                }
                limits.remove();
                {
                    let mut running = lock(&this.running_one_offs);
                    if let Some(list) = running.get_mut(&task_app) {
                        list.retain(|o| o.status.name != task_name);
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
        })
    }

    /// `(app id, version)` of every release something runs or is about to run: each app's
    /// desired release, every instance's (old ones still stopping included), every running
    /// one-off's.
    fn releases_in_use(&self) -> HashMap<(String, u32), String> {
        let mut used = HashMap::new();
        for (app_id, handle) in lock(&self.inner.apps).iter() {
            let desired = handle.desired.borrow();
            let release = &desired.0.release;
            used.insert((app_id.clone(), release.version), release.image.clone());
            for cell in lock(&handle.shared.instances).iter() {
                used.insert(
                    (app_id.clone(), cell.release.version),
                    cell.release.image.clone(),
                );
            }
        }
        for (key, (image, _)) in lock(&self.inner.one_off_releases).iter() {
            used.insert(key.clone(), image.clone());
        }
        used
    }

    /// The image digests of every release something runs or is about to run.
    pub fn images_in_use(&self) -> HashSet<String> {
        self.releases_in_use().into_values().collect()
    }

    /// Removes the unpacked trees of releases nothing runs (they are unpacked again from their
    /// image if needed), and what interrupted unpacks left.
    pub async fn collect_trees(&self) -> Result<TreeCollection, RunError> {
        self.inner
            .releases
            .collect(|| self.releases_in_use().into_keys().collect())
            .await
    }

    /// Kills every instance and one-off process at once (SIGKILL to each process group), for
    /// a caller about to exit without a graceful shutdown. Their scratch is wiped at the next
    /// start.
    pub fn kill_all(&self) {
        let killed = crate::stale::kill_recorded(&self.inner.run_dir, false);
        tracing::info!(groups = killed.len(), "killed every process");
    }

    /// Stops every instance and one-off (signal, grace, SIGKILL) and waits for them; called
    /// on server shutdown.
    pub async fn shutdown(&self) {
        self.inner.shutdown.cancel();
        self.inner.tasks.close();
        self.inner.tasks.wait().await;
        lock(&self.inner.apps).clear();
    }
}

impl Inner {
    /// The app's own user, when apps run as their users.
    fn app_user(&self, app_id: &str) -> Result<Option<u32>, RunError> {
        if !self.isolation.app_users() {
            return Ok(None);
        }
        Ok(Some(wharf_sandbox::users::app_user(
            &self.config.data_dir,
            app_id,
        )?))
    }

    fn instance_dir(&self, app_id: &str, dir_name: &str) -> InstanceDir {
        InstanceDir {
            root: self.run_dir.join(app_id).join(dir_name),
        }
    }

    /// image env (paths fixed up) + release config + what wharf sets. A release on a stack
    /// runs only in the sandbox, with the run image as `/`: its scratch is at fixed paths
    /// there ([`crate::sandbox::IMAGE_HOME`], `/tmp`).
    fn environment(
        &self,
        release: &ReleaseSpec,
        tree: &crate::tree::ReleaseTree,
        dir: &InstanceDir,
        port: u16,
        dyno: &str,
    ) -> Result<std::collections::BTreeMap<String, String>, RunError> {
        if tree.root.is_some() && !self.isolation.is_sandboxed() {
            return Err(RunError::NeedsSandbox {
                version: release.version,
            });
        }
        let mut env: std::collections::BTreeMap<String, String> = release
            .image_env
            .iter()
            .map(|(k, v)| (k.clone(), self.isolation.rewrite_image_value(&tree.app, v)))
            .collect();
        env.extend(release.env.iter().map(|(k, v)| (k.clone(), v.clone())));
        let path = env
            .entry("PATH".to_owned())
            .or_insert_with(|| DEFAULT_PATH.to_owned());
        // wharf's own tools (`wharf serve-static`, the static provider's web process) come
        // last on the PATH of a host-bound release, from where this wharf runs. A release on a
        // stack carries its own in its image: nothing of the host reaches it.
        if let Some(tools) = own_tools_dir().filter(|_| tree.root.is_none()) {
            path.push(':');
            path.push_str(if self.isolation.is_sandboxed() {
                crate::sandbox::SANDBOX_TOOLS_DIR
            } else {
                tools
            });
        }
        env.insert("PORT".to_owned(), port.to_string());
        env.insert("DYNO".to_owned(), dyno.to_owned());
        env.insert(
            "WHARF_RELEASE_VERSION".to_owned(),
            release.version.to_string(),
        );
        if tree.root.is_some() {
            env.insert("HOME".to_owned(), crate::sandbox::IMAGE_HOME.to_owned());
            env.insert("TMPDIR".to_owned(), "/tmp".to_owned());
        } else {
            env.insert("HOME".to_owned(), dir.home().to_string_lossy().into_owned());
            env.insert(
                "TMPDIR".to_owned(),
                dir.tmp().to_string_lossy().into_owned(),
            );
        }
        Ok(env)
    }
}

/// The reconciler of one app.
async fn reconcile(
    inner: Arc<Inner>,
    app: Arc<AppShared>,
    mut desired_rx: watch::Receiver<Arc<(DesiredApp, Arc<dyn LogSink>)>>,
    cancel: CancellationToken,
    finished: CancellationToken,
) {
    loop {
        let desired = desired_rx.borrow_and_update().clone();
        step(&inner, &app, &desired.0, &desired.1, &cancel);
        tokio::select! {
            changed = desired_rx.changed() => if changed.is_err() { break },
            _ = app.changed.notified() => {}
            _ = cancel.cancelled() => break,
        }
    }
    // Out of the router first; then each instance drains and stops.
    publish(&inner, &app, Vec::new());
    let cells: Vec<Arc<Cell>> = lock(&app.instances).clone();
    for cell in &cells {
        cell.stop.cancel();
    }
    for cell in &cells {
        cell.done.cancelled().await;
    }
    finished.cancel();
}

/// One reconciliation step; see the module docs for the rules.
fn step(
    inner: &Arc<Inner>,
    app: &Arc<AppShared>,
    desired: &DesiredApp,
    sink: &Arc<dyn LogSink>,
    cancel: &CancellationToken,
) {
    if cancel.is_cancelled() {
        return;
    }
    let cells: Vec<Arc<Cell>> = lock(&app.instances).clone();
    // Instances to stop: told only once the router no longer sends them requests.
    let mut stops: Vec<&Arc<Cell>> = Vec::new();
    let desired_types: BTreeSet<&str> = desired
        .processes
        .iter()
        .map(|p| p.process_type.as_str())
        .collect();
    for cell in &cells {
        if !desired_types.contains(cell.process_type.as_str()) {
            stops.push(cell);
        }
    }
    // Without web instances there is nothing to wait for.
    let mut phase = Phase::Complete;
    for spec in &desired.processes {
        let of_type: Vec<&Arc<Cell>> = cells
            .iter()
            .filter(|c| c.process_type == spec.process_type)
            .collect();
        let mut fresh_by_index: HashMap<u32, &Arc<Cell>> = HashMap::new();
        let mut old: Vec<&Arc<Cell>> = Vec::new();
        for cell in &of_type {
            if !cell.is_fresh_for(desired, spec) {
                old.push(cell);
            } else if cell.stop.is_cancelled() {
                // A fresh instance on its way out (scaled down): neither counts nor blocks.
            } else if cell.index > spec.quantity || fresh_by_index.contains_key(&cell.index) {
                stops.push(cell);
            } else {
                fresh_by_index.insert(cell.index, cell);
            }
        }
        let missing: Vec<u32> = (1..=spec.quantity)
            .filter(|i| !fresh_by_index.contains_key(i))
            .collect();
        if spec.process_type == "web" {
            for &index in &missing {
                start_instance(inner, app, desired, spec, index, sink);
            }
            let all_up = missing.is_empty()
                && fresh_by_index
                    .values()
                    .all(|c| c.state() == InstanceState::Up);
            if all_up {
                stops.extend(old.iter().copied());
            } else {
                let failure = of_type
                    .iter()
                    .filter(|c| is_current(c, desired, spec))
                    .find_map(|c| lock(&c.boot_failure).clone());
                phase = match failure {
                    Some(why) => Phase::Failed(why),
                    None => Phase::InProgress,
                };
            }
        } else if !old.is_empty() {
            stops.extend(old.iter().copied());
        } else {
            for &index in &missing {
                start_instance(inner, app, desired, spec, index, sink);
            }
        }
    }
    app.rollout.send_if_modified(|r| {
        let moves = r.0 == desired.release.version && r.1 == Phase::InProgress && phase != r.1;
        if moves {
            r.1 = phase;
        }
        moves
    });
    let upstreams = routable(app, desired, &stops);
    publish(inner, app, upstreams);
    for cell in stops {
        cell.stop.cancel();
    }
}

/// Runs the desired release with the desired definition (a restart's retiring instance too).
fn is_current(cell: &Cell, desired: &DesiredApp, spec: &ProcessSpec) -> bool {
    cell.release == desired.release && same_definition(&cell.spec, spec)
}

/// The web instances that take requests now: up, not stopping and not about to (`stopping`).
/// While a deploy is under way (some up instance runs something else than the desired release),
/// only the old ones — and of those only the ones already routed, so that a deploy overtaking
/// another never adds the half-rolled-out release: the new ones join all at once, when the last
/// of them is up and the old ones are about to stop.
fn routable(app: &AppShared, desired: &DesiredApp, stopping: &[&Arc<Cell>]) -> Vec<Upstream> {
    let spec = desired.processes.iter().find(|p| p.process_type == "web");
    let cells: Vec<Arc<Cell>> = lock(&app.instances)
        .iter()
        .filter(|c| {
            c.process_type == "web"
                && !c.stop.is_cancelled()
                && !stopping.iter().any(|s| Arc::ptr_eq(s, c))
        })
        .cloned()
        .collect();
    let up: Vec<(&Arc<Cell>, u16)> = cells
        .iter()
        .filter_map(|c| {
            let s = lock(&c.state);
            match (s.state, s.port) {
                (InstanceState::Up, Some(port)) => Some((c, port)),
                _ => None,
            }
        })
        .collect();
    let current = |c: &Cell| spec.is_some_and(|spec| is_current(c, desired, spec));
    let deploying = up.iter().any(|(c, _)| !current(c));
    let routed: Vec<String> = lock(&app.routed).iter().map(|u| u.id.clone()).collect();
    let old_routed = up
        .iter()
        .any(|(c, _)| !current(c) && routed.contains(&c.upstream_id()));
    let mut upstreams: Vec<Upstream> = up
        .into_iter()
        .filter(|(c, _)| {
            !deploying || (!current(c) && (!old_routed || routed.contains(&c.upstream_id())))
        })
        .map(|(c, port)| Upstream {
            id: c.upstream_id(),
            dyno: c.name.clone(),
            addr: std::net::SocketAddr::from(([127, 0, 0, 1], port)),
            release_version: c.release.version,
        })
        .collect();
    upstreams.sort_by(|a, b| a.id.cmp(&b.id));
    upstreams
}

/// Hands the app's upstreams to the router, when they changed.
fn publish(inner: &Inner, app: &AppShared, upstreams: Vec<Upstream>) {
    let Some(routes) = inner.routes.get() else {
        return;
    };
    let mut routed = lock(&app.routed);
    if *routed != upstreams {
        routes.set(&app.app_id, upstreams.clone());
        *routed = upstreams;
    }
}

fn start_instance(
    inner: &Arc<Inner>,
    app: &Arc<AppShared>,
    desired: &DesiredApp,
    spec: &ProcessSpec,
    index: u32,
    sink: &Arc<dyn LogSink>,
) {
    let cell = Arc::new(Cell {
        name: format!("{}.{index}", spec.process_type),
        process_type: spec.process_type.clone(),
        index,
        generation: inner.generation.fetch_add(1, Ordering::SeqCst),
        release: desired.release.clone(),
        spec: spec.clone(),
        retiring: AtomicBool::new(false),
        ever_up: AtomicBool::new(false),
        boot_failure: Mutex::new(None),
        // Not a child of the app's token: the reconciler takes the app out of the router before
        // it stops the instances.
        stop: CancellationToken::new(),
        done: CancellationToken::new(),
        state: Mutex::new(CellState {
            state: InstanceState::Starting,
            pid: None,
            port: None,
            restarts: 0,
            last_exit: None,
            next_restart_at: None,
            since: SystemTime::now(),
        }),
    });
    lock(&app.instances).push(cell.clone());
    inner.tasks.spawn_on(
        run_instance(inner.clone(), app.clone(), cell, sink.clone()),
        &inner.runtime,
    );
}

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

async fn run_instance(
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
        let reason = error_chain(err);
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

fn error_chain(err: &RunError) -> String {
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Same process definition, whatever the quantity: scaling keeps instances.
fn same_definition(a: &ProcessSpec, b: &ProcessSpec) -> bool {
    a.process_type == b.process_type
        && a.command == b.command
        && a.memory_limit == b.memory_limit
        && a.health_path == b.health_path
        && a.health_timeout == b.health_timeout
        && a.stop_signal == b.stop_signal
        && a.grace == b.grace
}

const _: fn() = || {
    fn is<T: Send + Sync + Clone + 'static>() {}
    is::<Supervisor>();
};
