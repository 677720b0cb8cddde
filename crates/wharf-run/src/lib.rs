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

mod backend;
mod backoff;
mod error;
pub mod events;
mod health;
mod ports;
mod pty;
mod runtime;
mod sandbox;
mod stale;
pub mod supervisor;
mod tree;

use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::time::Duration;

pub use error::RunError;
pub use pty::TtySize;
pub use sandbox::{ParseSandboxModeError, SandboxMode};
pub use supervisor::{OneOff, OneOffInput, Supervisor};
pub use tree::TreeCollection;
pub use wharf_core::backend::{
    Backend, BackendError, Collected, DesiredApp, InstanceState, InstanceStatus, Kill, LogSink,
    OneOffKind, ProcessSpec, ReleaseSpec, Rollout, Routes, Stream, Target, Upstream,
};

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
            pids_limit: 512,
        }
    }
}
