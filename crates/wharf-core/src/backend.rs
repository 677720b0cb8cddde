//! The seam between wharf's control loop and whatever runs the processes: the [`Backend`] trait
//! and the types it speaks. The control loop hands a backend the desired state of an app (its
//! current release and formation, [`DesiredApp`]) and reads [`InstanceStatus`] back. The local
//! supervisor (`wharf-run`) is the embedded backend; orchestrators implement the same trait.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// A boxed future, so the trait can be used as `dyn Backend`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Something that runs apps' processes.
pub trait Backend: Send + Sync {
    /// Sets what should run for an app; the backend converges to it, continuously, and writes the
    /// processes' output and its own events to `log`. Applying the same state again changes
    /// nothing.
    fn apply(&self, desired: DesiredApp, log: Arc<dyn LogSink>);
    /// Stops everything of the app and forgets it.
    fn remove<'a>(&'a self, app_id: &'a str) -> BoxFuture<'a, ()>;
    /// Restarts instances: web ones one at a time, each replacement up before the old one stops.
    fn restart<'a>(
        &'a self,
        app_id: &'a str,
        target: Target,
    ) -> BoxFuture<'a, Result<(), BackendError>>;
    /// The app's instances now, sorted by type and number.
    fn status(&self, app_id: &str) -> Vec<InstanceStatus>;
    /// Resolves once the rollout of release `version` (the app's desired release) has ended:
    /// every web instance of it up ([`Rollout::Complete`]), one of them failed its first boot
    /// ([`Rollout::Failed`]), or the app was given another release or removed
    /// ([`Rollout::Superseded`]). Resolves at once for a rollout that already ended.
    fn rollout<'a>(&'a self, app_id: &'a str, version: u32) -> BoxFuture<'a, Rollout>;
    /// Starts a one-off process of the app's release `release` (`wharf run`, the release
    /// phase, app.json's `postdeploy`): `kind` says which, and how its input and output are
    /// connected. Resolves once it runs; [`OneOff::exit`] resolves when it ends.
    fn run<'a>(
        &'a self,
        app_id: &'a str,
        app_name: &'a str,
        release: &'a ReleaseSpec,
        command: &'a str,
        kind: OneOffKind,
        log: Arc<dyn LogSink>,
    ) -> BoxFuture<'a, Result<OneOff, BackendError>>;
    /// The app's one-off processes that still run (`run.N`, `release.N`), oldest first.
    fn one_offs(&self, app_id: &str) -> Vec<InstanceStatus>;
    /// Stops one of the app's one-off processes by name (`run.2`); false when none runs.
    fn stop_one_off(&self, app_id: &str, name: &str) -> bool;
    /// How one of the app's one-off processes that has ended ended (see [`EndedOneOffs`]), so
    /// asking about one just after it ended doesn't answer "no such process".
    fn ended_one_off(&self, app_id: &str, name: &str) -> Option<InstanceStatus>;
    /// The images (manifest digests) that something running, or about to run, still uses:
    /// garbage collection keeps them.
    fn images_in_use(&self) -> BTreeSet<String>;
    /// Removes what the backend unpacked for releases nothing runs any more (release trees),
    /// and says what it removed.
    fn collect_garbage(&self) -> BoxFuture<'_, Result<Collected, BackendError>>;
    /// Kills every process at once, without waiting (an impatient second Ctrl-C).
    fn kill_all(&self);
    /// Stops every process and waits; the server calls it on its way out.
    fn shutdown(&self) -> BoxFuture<'_, ()>;
}

/// Which one-off process [`Backend::run`] starts, and how it is connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OneOffKind {
    /// `run.N`, its output in the app's log as lines of `run.N`; no input.
    Detached,
    /// `run.N`, its stdin and output pipes to the caller.
    Attached,
    /// `run.N` in a terminal of this size, which is its stdin, stdout and stderr.
    Terminal(TtySize),
    /// `release.N`, the release phase, attached (its output is the release's output).
    ReleasePhase,
    /// `postdeploy.N`, app.json's `postdeploy` script, detached.
    Postdeploy,
}

/// A terminal's size in character cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TtySize {
    pub rows: u16,
    pub cols: u16,
}

impl Default for TtySize {
    /// The classic 80 × 24, for clients that don't say.
    fn default() -> TtySize {
        TtySize { rows: 24, cols: 80 }
    }
}

/// A started one-off process.
///
/// Attached: `stdin` and `output` are `Some`; `output` yields stdout and stderr as they come,
/// in chunks (not lines), and closes when the process and everything it started are gone.
/// Detached: both are `None` and the output goes to the app's log as lines of `run.N`.
/// In a terminal (`tty` set), `stdin` is typed at the terminal (its line discipline echoes
/// it, Ctrl-D ends input, Ctrl-C interrupts) and `output` is what the terminal shows.
/// `exit` resolves with the exit code, or 128 + the signal number when it was killed; it is
/// dropped without a value only if the process could not be waited for.
pub struct OneOff {
    /// `run.N`
    pub name: String,
    /// The process (group) id, where the backend runs processes on this machine.
    pub pid: Option<u32>,
    pub stdin: Option<OneOffInput>,
    pub output: Option<tokio::sync::mpsc::Receiver<Vec<u8>>>,
    pub exit: tokio::sync::oneshot::Receiver<i32>,
    /// Runs attached to a terminal.
    pub tty: bool,
    /// Kills the process and everything it started, at once. Call it only while `exit` has
    /// not resolved: afterwards what it names may be someone else's.
    pub kill: Kill,
}

/// An attached one-off's input: its stdin pipe, or its terminal.
pub type OneOffInput = Box<dyn tokio::io::AsyncWrite + Send + Unpin>;

/// Kills a one-off process; see [`OneOff::kill`].
pub type Kill = Arc<dyn Fn() + Send + Sync>;

impl fmt::Debug for OneOff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OneOff")
            .field("name", &self.name)
            .field("pid", &self.pid)
            .field("attached", &self.output.is_some())
            .field("tty", &self.tty)
            .finish_non_exhaustive()
    }
}

/// What [`Backend::collect_garbage`] removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Collected {
    /// `(app id, version)` of each release tree removed.
    pub removed: Vec<(String, u32)>,
    /// Bytes of files they held.
    pub bytes: u64,
}

/// How the rollout of a release ended; see [`Backend::rollout`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rollout {
    /// Every web instance of the release is up (at once for a release without web instances).
    Complete,
    /// A web instance of the release never came up: why, for the app's log.
    Failed(String),
    /// The app was given another release, or removed, before this one's rollout ended.
    Superseded,
}

/// A backend could not do what it was asked.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The backend runs nothing of the app.
    #[error("app `{app_id}` is not running")]
    UnknownApp { app_id: String },
    /// The app has no such instance or process type.
    #[error("app `{app_id}` has no instance or process type `{target}`")]
    UnknownTarget { app_id: String, target: String },
    /// The backend is stopping and starts nothing new.
    #[error("the backend is shutting down")]
    ShuttingDown,
    /// What the backend does failed (a process that can't start, an unpack, an orchestrator's
    /// API): the backend's own error, which says what, with its causes.
    #[error(transparent)]
    Failed(Box<dyn std::error::Error + Send + Sync>),
}

/// A release image as an orchestrator's nodes pull it: by digest, from a registry, logging in
/// with the credentials given.
#[derive(Clone, PartialEq, Eq)]
pub struct PullableImage {
    /// `host[:port]/repository@sha256:…`
    pub reference: String,
    /// The registry's `host[:port]`, which the credentials are for.
    pub registry: String,
    /// User name and password (or token), if the registry wants them.
    pub credentials: Option<(String, String)>,
}

impl fmt::Debug for PullableImage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PullableImage")
            .field("reference", &self.reference)
            .field("registry", &self.registry)
            .field(
                "credentials",
                &self
                    .credentials
                    .as_ref()
                    .map(|(user, _)| (user, "<redacted>")),
            )
            .finish()
    }
}

/// Where an orchestrator's nodes pull release images from: wharf's own registry endpoint, or
/// another registry wharf pushes them to first (`WHARF_REGISTRY_URL`).
pub trait ImageSource: Send + Sync + fmt::Debug {
    /// Makes the image `digest` of the app's release `version` pullable by the nodes, and says
    /// how they pull it. Resolves once they can.
    fn pullable<'a>(
        &'a self,
        app_id: &'a str,
        app_name: &'a str,
        version: u32,
        digest: &'a str,
    ) -> BoxFuture<'a, Result<PullableImage, BackendError>>;
}

/// What should run for one app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredApp {
    pub app_id: String,
    pub app_name: String,
    pub release: ReleaseSpec,
    pub processes: Vec<ProcessSpec>,
}

/// The parts of a release the runtime needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseSpec {
    pub version: u32,
    /// The image's manifest digest (`sha256:…`).
    pub image: String,
    /// The release's config vars.
    pub env: BTreeMap<String, String>,
    /// Env defaults from the image config; paths in it are under `/app`.
    pub image_env: BTreeMap<String, String>,
    /// The run image (manifest digest) of the stack the image is built on, whose layers are
    /// the image's bottom ones: its processes run with it as `/`. `None` for a host-bound
    /// image (stack `wharf-1`), which holds only `/app` and runs on the host's `/usr`.
    pub run_image: Option<String>,
    /// The web health check the image's `app.json` declares (used when the formation sets
    /// no health path of its own).
    pub web_health: Option<crate::app_json::HealthCheck>,
}

/// One process type of the formation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessSpec {
    pub process_type: String,
    pub quantity: u32,
    pub command: String,
    /// Bytes; enforced through cgroups where the host allows.
    pub memory_limit: Option<u64>,
    /// `web` only: the path that must answer 2xx/3xx before the instance is up.
    pub health_path: Option<String>,
    /// How long one `GET` of `health_path` may take (5 s when unset).
    pub health_timeout: Option<Duration>,
    /// The signal that asks the process to stop, by name (`SIGTERM`, `SIGINT`, …).
    pub stop_signal: String,
    pub grace: Duration,
}

impl ProcessSpec {
    /// A process type with the default signal (SIGTERM), grace (30 s) and no limits.
    pub fn new(process_type: &str, quantity: u32, command: &str) -> Self {
        ProcessSpec {
            process_type: process_type.to_owned(),
            quantity,
            command: command.to_owned(),
            memory_limit: None,
            health_path: None,
            health_timeout: None,
            stop_signal: "SIGTERM".to_owned(),
            grace: Duration::from_secs(30),
        }
    }
}

/// Which instances [`Backend::restart`] restarts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    All,
    /// A process type, e.g. `web`.
    Type(String),
    /// One instance, e.g. `web.1`.
    Instance(String),
}

/// The lifecycle of one instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InstanceState {
    Starting,
    Up,
    Crashed,
    Stopping,
    Down,
}

impl InstanceState {
    pub fn as_str(self) -> &'static str {
        match self {
            InstanceState::Starting => "starting",
            InstanceState::Up => "up",
            InstanceState::Crashed => "crashed",
            InstanceState::Stopping => "stopping",
            InstanceState::Down => "down",
        }
    }
}

impl fmt::Display for InstanceState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A snapshot of one instance, as `wharf ps` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceStatus {
    /// `web.1`
    pub name: String,
    pub process_type: String,
    pub release_version: u32,
    pub state: InstanceState,
    pub command: String,
    /// The process group leader (bubblewrap's pid when sandboxed).
    pub pid: Option<u32>,
    /// The machine it runs on, where the backend runs instances on several (an orchestrator's
    /// node); `None` on the local backend.
    pub node: Option<String>,
    pub port: Option<u16>,
    /// How many times the instance was restarted after a crash.
    pub restarts: u32,
    /// `status 1`, `signal SIGKILL`, or why it could not start.
    pub last_exit: Option<String>,
    /// While crashed: when the next start happens.
    pub next_restart_in: Option<Duration>,
    /// Last state change.
    pub since: SystemTime,
}

/// The last one-off processes of each app that ended, as backends remember them for
/// [`Backend::ended_one_off`]: the last [`EndedOneOffs::KEPT`] of each app, while the server
/// runs. One that exited with status 0, or was stopped on request, is `down`; one that ended
/// otherwise is `crashed`.
#[derive(Debug, Default)]
pub struct EndedOneOffs {
    apps: Mutex<HashMap<String, VecDeque<InstanceStatus>>>,
}

impl EndedOneOffs {
    /// How many ended one-offs are kept per app.
    pub const KEPT: usize = 16;

    /// Records that the one-off `running` (its status while it ran) has ended, `clean`ly (exit
    /// status 0, or stopped on request) or not, as `exit` says (`status 1`, `signal SIGTERM`),
    /// `at` that time.
    pub fn record(
        &self,
        app_id: &str,
        running: InstanceStatus,
        clean: bool,
        exit: String,
        at: SystemTime,
    ) {
        let ended = InstanceStatus {
            state: if clean {
                InstanceState::Down
            } else {
                InstanceState::Crashed
            },
            pid: None,
            port: None,
            last_exit: Some(exit),
            next_restart_in: None,
            since: at,
            ..running
        };
        let mut apps = self.apps.lock().unwrap_or_else(|e| e.into_inner());
        let list = apps.entry(app_id.to_owned()).or_default();
        // A server that restarted hands out the same names again: the newest is the one meant.
        list.retain(|o| o.name != ended.name);
        if list.len() == Self::KEPT {
            list.pop_front();
        }
        list.push_back(ended);
    }

    /// The app's ended one-off `name`, if it is among the last ones kept.
    pub fn find(&self, app_id: &str, name: &str) -> Option<InstanceStatus> {
        let apps = self.apps.lock().unwrap_or_else(|e| e.into_inner());
        apps.get(app_id)?.iter().find(|o| o.name == name).cloned()
    }

    /// Forgets an app's ended one-offs (the app was removed).
    pub fn forget(&self, app_id: &str) {
        let mut apps = self.apps.lock().unwrap_or_else(|e| e.into_inner());
        apps.remove(app_id);
    }
}

/// The one-off processes an orchestrator backend runs, per app: each one's status while it
/// runs with what the backend keeps to stop it (`T`), their names (`run.1`, `release.1`,
/// numbered per app and kind from 1), and how the last ones ended ([`EndedOneOffs`]).
#[derive(Debug)]
pub struct OneOffTable<T> {
    running: Mutex<HashMap<String, Vec<RunningOneOff<T>>>>,
    numbers: Mutex<HashMap<(String, String), u32>>,
    ended: EndedOneOffs,
}

impl<T> Default for OneOffTable<T> {
    fn default() -> Self {
        OneOffTable {
            running: Mutex::default(),
            numbers: Mutex::default(),
            ended: EndedOneOffs::default(),
        }
    }
}

/// One running one-off in a [`OneOffTable`].
#[derive(Debug)]
struct RunningOneOff<T> {
    status: InstanceStatus,
    /// Its release's image (manifest digest): in use while it runs.
    image: String,
    /// Stopped on request: its end is a clean one, whatever its exit status.
    stopped: bool,
    handle: T,
}

impl<T> OneOffTable<T> {
    fn running(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<RunningOneOff<T>>>> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The next name of a one-off of the app's of kind `prefix` (`run` → `run.4`).
    pub fn next_name(&self, app_id: &str, prefix: &str) -> String {
        let mut numbers = self.numbers.lock().unwrap_or_else(|e| e.into_inner());
        let number = numbers
            .entry((app_id.to_owned(), prefix.to_owned()))
            .or_insert(0);
        *number += 1;
        format!("{prefix}.{number}")
    }

    /// A one-off that now runs: `status` (named by [`OneOffTable::next_name`]), of `image`.
    pub fn insert(&self, app_id: &str, status: InstanceStatus, image: String, handle: T) {
        self.running()
            .entry(app_id.to_owned())
            .or_default()
            .push(RunningOneOff {
                status,
                image,
                stopped: false,
                handle,
            });
    }

    /// The app's running one-offs, oldest first.
    pub fn of(&self, app_id: &str) -> Vec<InstanceStatus> {
        self.running()
            .get(app_id)
            .map(|r| r.iter().map(|r| r.status.clone()).collect())
            .unwrap_or_default()
    }

    /// The images running one-offs use.
    pub fn images(&self) -> Vec<String> {
        self.running()
            .values()
            .flatten()
            .map(|r| r.image.clone())
            .collect()
    }

    /// Sets a running one-off's state, changed `at` that time.
    pub fn set_state(&self, app_id: &str, name: &str, state: InstanceState, at: SystemTime) {
        if let Some(one) = self
            .running()
            .get_mut(app_id)
            .and_then(|r| r.iter_mut().find(|r| r.status.name == name))
        {
            one.status.state = state;
            one.status.since = at;
        }
    }

    /// Stops the app's one-off `name` on request, with `stop` given its handle; whether it
    /// runs.
    pub fn stop(&self, app_id: &str, name: &str, stop: impl FnOnce(&T)) -> bool {
        let mut running = self.running();
        let Some(one) = running
            .get_mut(app_id)
            .and_then(|r| r.iter_mut().find(|r| r.status.name == name))
        else {
            return false;
        };
        one.stopped = true;
        stop(&one.handle);
        true
    }

    /// Calls `f` with every running one-off's handle (to stop them all).
    pub fn each(&self, mut f: impl FnMut(&T)) {
        for one in self.running().values().flatten() {
            f(&one.handle);
        }
    }

    /// The one-off `name` has ended `at` that time, with exit status `code` (`None`:
    /// unknown): it is recorded as ended, and its handle comes back.
    pub fn finish(&self, app_id: &str, name: &str, code: Option<i32>, at: SystemTime) -> Option<T> {
        let mut running = self.running();
        let list = running.get_mut(app_id)?;
        let ended = list
            .iter()
            .position(|r| r.status.name == name)
            .map(|at| list.remove(at));
        if list.is_empty() {
            running.remove(app_id);
        }
        drop(running);
        let ended = ended?;
        let exit = code.map_or_else(|| "unknown status".to_owned(), |c| format!("status {c}"));
        let clean = code == Some(0) || ended.stopped;
        self.ended.record(app_id, ended.status, clean, exit, at);
        Some(ended.handle)
    }

    /// How the app's one-off `name` ended, if it is one of the last that did.
    pub fn ended(&self, app_id: &str, name: &str) -> Option<InstanceStatus> {
        self.ended.find(app_id, name)
    }

    /// Forgets how the app's one-offs ended (the app was removed).
    pub fn forget_app(&self, app_id: &str) {
        self.ended.forget(app_id);
    }
}

impl InstanceStatus {
    /// A one-off process `name` of kind `process_type` (`run`, `release`) of release `version`,
    /// running `command`, in `state` since `at`; it has no pid, node or port of its own here.
    pub fn one_off(
        name: &str,
        process_type: &str,
        version: u32,
        command: &str,
        state: InstanceState,
        at: SystemTime,
    ) -> InstanceStatus {
        InstanceStatus {
            name: name.to_owned(),
            process_type: process_type.to_owned(),
            release_version: version,
            state,
            command: command.to_owned(),
            pid: None,
            node: None,
            port: None,
            restarts: 0,
            last_exit: None,
            next_restart_in: None,
            since: at,
        }
    }
}

/// Which stream of the process a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// Receives one app's log lines. Implementations must not block: they are called from the
/// tasks that drain the processes' pipes, and a slow sink would stall the app. Drop (and count)
/// lines instead.
pub trait LogSink: Send + Sync {
    /// One line of the app's output (without the newline), from `process` (`web.1`, `run.2`).
    fn line(&self, process: &str, stream: Stream, text: &str);
    /// A platform event about `process`, e.g. ``Starting process with command `…` ``.
    fn event(&self, process: &str, text: &str);
}

/// One web instance the router may send requests to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Upstream {
    /// Unique among the app's instances, past and present (`web.1-17`): a replacement that
    /// reuses the name `web.1` is a different upstream.
    pub id: String,
    /// The instance's name, as router log lines show it (`web.1`).
    pub dyno: String,
    /// Where it listens.
    pub addr: std::net::SocketAddr,
    /// The release it runs.
    pub release_version: u32,
}

/// Where a backend publishes which web instances take requests: the router. A backend calls
/// [`Routes::set`] whenever the set changes, and [`Routes::drain`] before it stops an instance
/// that served requests, so the requests in flight on it finish first.
pub trait Routes: Send + Sync {
    /// Replaces the app's upstreams, atomically. An empty list: the app has no instance to
    /// route to (requests get 503).
    fn set(&self, app_id: &str, upstreams: Vec<Upstream>);
    /// Takes the upstream out of rotation (if `set` has not already) and resolves once no
    /// request is in flight on it, or after the router's drain timeout.
    fn drain<'a>(&'a self, app_id: &'a str, upstream_id: &'a str) -> BoxFuture<'a, ()>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn running(name: &str) -> InstanceStatus {
        InstanceStatus {
            name: name.to_owned(),
            process_type: "run".to_owned(),
            release_version: 2,
            state: InstanceState::Up,
            command: "bash".to_owned(),
            pid: Some(42),
            node: None,
            port: Some(5000),
            restarts: 0,
            last_exit: None,
            next_restart_in: None,
            since: SystemTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn ended_one_offs_say_how_they_ended_and_only_the_last_are_kept() {
        let ended = EndedOneOffs::default();
        ended.record(
            "a",
            running("run.1"),
            true,
            "status 0".to_owned(),
            SystemTime::UNIX_EPOCH,
        );
        ended.record(
            "a",
            running("run.2"),
            false,
            "status 3".to_owned(),
            SystemTime::UNIX_EPOCH,
        );
        let first = ended.find("a", "run.1").unwrap();
        assert_eq!(
            (first.state, first.pid, first.port),
            (InstanceState::Down, None, None)
        );
        let second = ended.find("a", "run.2").unwrap();
        assert_eq!(second.state, InstanceState::Crashed);
        assert_eq!(second.last_exit.as_deref(), Some("status 3"));
        assert_eq!(second.command, "bash");
        assert!(ended.find("b", "run.1").is_none(), "apps are apart");

        // The same name again (a restarted server numbers from 1): the newest counts.
        ended.record(
            "a",
            running("run.1"),
            false,
            "signal SIGKILL".to_owned(),
            SystemTime::UNIX_EPOCH,
        );
        assert_eq!(
            ended.find("a", "run.1").unwrap().state,
            InstanceState::Crashed
        );

        for n in 3..=EndedOneOffs::KEPT + 2 {
            ended.record(
                "a",
                running(&format!("run.{n}")),
                true,
                "status 0".to_owned(),
                SystemTime::UNIX_EPOCH,
            );
        }
        assert!(ended.find("a", "run.2").is_none(), "the oldest went first");
        assert!(ended
            .find("a", &format!("run.{}", EndedOneOffs::KEPT + 2))
            .is_some());

        ended.forget("a");
        assert!(ended.find("a", "run.1").is_none());
    }
}
