//! wharf's local backend: it runs releases as stateless processes on this machine. It owns the
//! [`Supervisor`] (one reconciler task per app that makes the running instances equal the desired
//! formation, with health gating, rolling web deploys and crash backoff), the instance runtime
//! (unpacking a release once into a shared read-only tree, a fresh scratch directory per start,
//! the environment, process groups, output capture into a [`LogSink`]), the sandbox (bubblewrap
//! namespaces, or an unprivileged user), best-effort cgroup limits, health checks and the port
//! pool. It must not touch the database or speak HTTP beyond its own health probes: the server
//! hands it the desired state ([`DesiredApp`]) and reads [`InstanceStatus`] back.
//!
//! Layout: [`supervisor`] (reconciler and instance lifecycle), `runtime` (spawning, signalling,
//! output), `sandbox`, `tree` (release trees), `stale` (restart safety), `health`, `ports`,
//! `backoff`, `cgroup`, `events` (the platform lines written to an app's log).
//!
//! Restart safety: wharf's own process is stateless and may be killed at any moment. Instances
//! are *not* adopted by the next server: adopting would need their stdout (lost with the old
//! server's pipes) and their exit status (only a parent can wait). Instead every instance leaves
//! a pid file (`run/<app>/<instance>/pid`: process group and start time), and
//! [`Supervisor::start`] kills every group whose leader still has that start time, wipes `run/`,
//! and lets the reconciler start fresh instances once the server applies the desired state.

mod backoff;
mod cgroup;
mod error;
pub mod events;
mod health;
mod ports;
mod runtime;
mod sandbox;
mod sink;
mod stale;
pub mod supervisor;
mod tree;

use std::collections::BTreeMap;
use std::fmt;
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

pub use error::RunError;
pub use sandbox::{ParseSandboxModeError, SandboxMode};
pub use sink::{LogSink, Stream};
pub use supervisor::{OneOff, Supervisor};

/// How the supervisor runs processes. One struct holds every default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SupervisorConfig {
    /// Uses `data_dir/releases/<app_id>/v<N>` (unpacked trees) and `data_dir/run/<app_id>/…`
    /// (per-instance scratch and pid files).
    pub data_dir: PathBuf,
    /// Ports handed out as `PORT` (`WHARF_PORT_RANGE`).
    pub port_range: RangeInclusive<u16>,
    pub sandbox: SandboxMode,
    /// The first restart delay after a crash; doubled for each further crash.
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// Uptime after which the crash backoff starts over.
    pub healthy_reset: Duration,
    /// How long a web instance has to accept connections (and pass its health check).
    pub boot_timeout: Duration,
    /// uid and gid processes run as when wharf runs as root without a sandbox.
    pub unprivileged_user: (u32, u32),
    /// `pids.max` of each instance's cgroup, when cgroups are available.
    pub pids_limit: u32,
}

impl Default for SupervisorConfig {
    fn default() -> Self {
        SupervisorConfig {
            data_dir: PathBuf::from("wharf-data"),
            port_range: 20000..=29999,
            sandbox: SandboxMode::Auto,
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
            healthy_reset: Duration::from_secs(60),
            boot_timeout: Duration::from_secs(60),
            unprivileged_user: (65534, 65534),
            pids_limit: 512,
        }
    }
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
    pub image: wharf_image::Digest,
    /// The release's config vars.
    pub env: BTreeMap<String, String>,
    /// Env defaults from the image config; paths in it are under `/app`.
    pub image_env: BTreeMap<String, String>,
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
    pub stop_signal: nix::sys::signal::Signal,
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
            stop_signal: nix::sys::signal::Signal::SIGTERM,
            grace: Duration::from_secs(30),
        }
    }
}

/// Which instances [`Supervisor::restart`] restarts.
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
