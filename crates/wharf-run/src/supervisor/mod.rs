//! The supervisor, wharf's local backend: the handle ([`Supervisor`]) and the state its tasks
//! share. One reconciler task per app ([`reconcile`]) converges the running instances to the
//! desired state; one task per instance ([`instance`]) runs it through its lifecycle
//! (starting → up → crashed → starting … → stopping → down); one-off processes (`run.N`, the
//! release phase, `postdeploy`) start in [`one_off`].

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

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
use wharf_sandbox::launch::own_executable;

mod instance;
mod one_off;
mod reconcile;

use one_off::RunningOneOff;
pub use one_off::{OneOff, OneOffInput};

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
    /// How the app's last one-off processes ended.
    ended_one_offs: wharf_core::backend::EndedOneOffs,
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
            node: None,
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

/// The directory of [`own_executable`].
fn own_tools_dir() -> Option<&'static str> {
    own_executable()?.parent()?.to_str()
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic elsewhere must not take the supervisor down with it: the data stays usable.
    m.lock().unwrap_or_else(|e| e.into_inner())
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
            ended_one_offs: Default::default(),
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
            reconcile::reconcile(
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
        self.inner.ended_one_offs.forget(app_id);
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
