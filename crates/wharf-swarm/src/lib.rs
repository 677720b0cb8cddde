//! The Docker Swarm backend (`WHARF_BACKEND=swarm`): the [`Backend`] trait over the Docker
//! Engine API of a swarm manager (`DOCKER_HOST`), through bollard.
//!
//! - Each process type of an app's release is a service `<app>-<type>` (`spec.rs`): the
//!   release image by digest from where [`SwarmConfig::images`] says (wharf's registry endpoint
//!   with a pull token of the app's, or another registry), with the credentials the swarm hands
//!   its nodes; replicas from the formation; web tasks published in host mode on a port their
//!   node picks.
//! - One task per app (`app.rs`) applies the desired state to the services and then watches
//!   their tasks: tasks are the app's instances, running web tasks are the router's upstreams
//!   (their node's address and published port), the tasks' output goes to the app's log, and a
//!   new release's rollout ends when every web task runs it.
//! - One-off processes (`one_off.rs`: `wharf run`, the release phase) are containers on the
//!   manager's engine, attached or not, removed when they end.
//!
//! When wharf stops, the services keep running: the swarm runs them, not wharf.

mod app;
mod lines;
mod one_off;
pub mod spec;

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bollard::Docker;
use tokio_util::sync::CancellationToken;
use wharf_core::backend::{
    Backend, BackendError, BoxFuture, Collected, DesiredApp, ImageSource, InstanceStatus, LogSink,
    OneOff, OneOffKind, ReleaseSpec, Rollout, Routes, Target,
};

/// How the swarm backend reaches the swarm and how the swarm reaches wharf.
#[derive(Clone)]
pub struct SwarmConfig {
    /// The manager's Engine API: `unix:///var/run/docker.sock`, `tcp://host:2375`.
    pub docker_host: String,
    /// Where the nodes pull release images from, and with what.
    pub images: Arc<dyn ImageSource>,
    /// Where web tasks are published for the router.
    pub routes: Arc<dyn Routes>,
    /// A new release whose web tasks don't all run within this time fails.
    pub boot_timeout: Duration,
}

impl std::fmt::Debug for SwarmConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SwarmConfig")
            .field("docker_host", &self.docker_host)
            .field("boot_timeout", &self.boot_timeout)
            .finish_non_exhaustive()
    }
}

/// Why the swarm backend can't do something.
#[derive(Debug, thiserror::Error)]
pub enum SwarmError {
    #[error("cannot reach the Docker engine at {host}: {source}")]
    Connect {
        host: String,
        #[source]
        source: bollard::errors::Error,
    },
    #[error(
        "the Docker engine at {host} is not a swarm manager ({why}): run `docker swarm init` \
         there, or point DOCKER_HOST at a manager"
    )]
    NotAManager { host: String, why: String },
    #[error(
        "release v{version} is on the host-bound stack wharf-1: its image holds only /app and \
         runs on no other machine; set a stack (`wharf stack:set wharf-trixie -a APP`) and deploy"
    )]
    HostBound { version: u32 },
    #[error("the nodes can't get release v{version}'s image: {source}")]
    Image {
        version: u32,
        #[source]
        source: BackendError,
    },
    #[error("the Docker engine refused to {action}: {source}")]
    Engine {
        action: String,
        #[source]
        source: bollard::errors::Error,
    },
}

impl SwarmError {
    fn engine(action: impl Into<String>) -> impl FnOnce(bollard::errors::Error) -> SwarmError {
        let action = action.into();
        move |source| SwarmError::Engine { action, source }
    }
}

impl From<SwarmError> for BackendError {
    fn from(e: SwarmError) -> BackendError {
        BackendError::Failed(Box::new(e))
    }
}

/// The swarm backend; cheap to clone.
#[derive(Clone)]
pub struct SwarmBackend {
    inner: Arc<Inner>,
}

struct Inner {
    docker: Docker,
    config: SwarmConfig,
    apps: Mutex<HashMap<String, app::AppHandle>>,
    one_offs: one_off::OneOffs,
    stop: CancellationToken,
}

impl std::fmt::Debug for SwarmBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SwarmBackend")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl SwarmBackend {
    /// Connects to the manager `config.docker_host` names and checks that it is one.
    pub async fn connect(config: SwarmConfig) -> Result<SwarmBackend, SwarmError> {
        let host = config.docker_host.clone();
        let connect = |source| SwarmError::Connect {
            host: host.clone(),
            source,
        };
        // The oldest API wharf speaks (Docker 20.10), then whatever both sides know.
        let oldest = bollard::ClientVersion {
            major_version: 1,
            minor_version: 41,
        };
        let docker = if let Some(path) = host.strip_prefix("unix://") {
            Docker::connect_with_unix(path, 120, &oldest).map_err(connect)?
        } else {
            let address = host.strip_prefix("tcp://").unwrap_or(&host);
            Docker::connect_with_http(&format!("http://{address}"), 120, &oldest)
                .map_err(connect)?
        };
        let docker = docker.negotiate_version().await.map_err(connect)?;
        let info = docker.info().await.map_err(connect)?;
        let swarm = info.swarm.unwrap_or_default();
        let state = swarm
            .local_node_state
            .map(|s| s.to_string())
            .unwrap_or_default();
        if state != "active" || swarm.control_available != Some(true) {
            return Err(SwarmError::NotAManager {
                host,
                why: if state == "active" {
                    "it is a worker".to_owned()
                } else {
                    format!("its swarm state is `{state}`")
                },
            });
        }
        Ok(SwarmBackend {
            inner: Arc::new(Inner {
                docker,
                config,
                apps: Mutex::default(),
                one_offs: one_off::OneOffs::default(),
                stop: CancellationToken::new(),
            }),
        })
    }

    fn app(&self, app_id: &str) -> Option<app::AppHandle> {
        self.inner
            .apps
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(app_id)
            .cloned()
    }
}

impl Backend for SwarmBackend {
    fn apply(&self, desired: DesiredApp, log: Arc<dyn LogSink>) {
        let mut apps = self.inner.apps.lock().unwrap_or_else(|e| e.into_inner());
        match apps.get(&desired.app_id) {
            Some(handle) => handle.set(desired, log),
            None => {
                let app_id = desired.app_id.clone();
                let handle = app::AppHandle::start(self.inner.clone(), desired, log);
                apps.insert(app_id, handle);
            }
        }
    }

    fn remove<'a>(&'a self, app_id: &'a str) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let handle = self
                .inner
                .apps
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(app_id);
            self.inner.one_offs.table.forget_app(app_id);
            if let Some(handle) = handle {
                handle.stop().await;
            }
            if let Err(e) = app::remove_services(&self.inner, app_id).await {
                tracing::warn!(app = %app_id, error = %e, "cannot remove the app's services");
            }
            self.inner.config.routes.set(app_id, Vec::new());
        })
    }

    fn restart<'a>(
        &'a self,
        app_id: &'a str,
        target: Target,
    ) -> BoxFuture<'a, Result<(), BackendError>> {
        Box::pin(async move {
            let handle = self.app(app_id).ok_or_else(|| BackendError::UnknownApp {
                app_id: app_id.to_owned(),
            })?;
            handle.restart(target).await
        })
    }

    fn status(&self, app_id: &str) -> Vec<InstanceStatus> {
        self.app(app_id).map(|h| h.status()).unwrap_or_default()
    }

    fn rollout<'a>(&'a self, app_id: &'a str, version: u32) -> BoxFuture<'a, Rollout> {
        Box::pin(async move {
            match self.app(app_id) {
                Some(handle) => handle.rollout(version).await,
                None => Rollout::Superseded,
            }
        })
    }

    fn run<'a>(
        &'a self,
        app_id: &'a str,
        app_name: &'a str,
        release: &'a ReleaseSpec,
        command: &'a str,
        kind: OneOffKind,
        log: Arc<dyn LogSink>,
    ) -> BoxFuture<'a, Result<OneOff, BackendError>> {
        // An app's first release phase runs before it has services: nothing of the app's is
        // needed but its name.
        Box::pin(async move {
            Ok(one_off::run(&self.inner, app_id, app_name, release, command, kind, log).await?)
        })
    }

    fn one_offs(&self, app_id: &str) -> Vec<InstanceStatus> {
        self.inner.one_offs.table.of(app_id)
    }

    fn stop_one_off(&self, app_id: &str, name: &str) -> bool {
        self.inner.one_offs.table.stop(app_id, name, |kill| kill())
    }

    fn ended_one_off(&self, app_id: &str, name: &str) -> Option<InstanceStatus> {
        self.inner.one_offs.table.ended(app_id, name)
    }

    fn images_in_use(&self) -> BTreeSet<String> {
        let apps = self.inner.apps.lock().unwrap_or_else(|e| e.into_inner());
        apps.values()
            .map(|h| h.image())
            .chain(self.inner.one_offs.table.images())
            .collect()
    }

    fn collect_garbage(&self) -> BoxFuture<'_, Result<Collected, BackendError>> {
        // Nothing is unpacked here: the nodes keep the images, and their engines prune them.
        Box::pin(async { Ok(Collected::default()) })
    }

    fn kill_all(&self) {
        self.inner.one_offs.table.each(|kill| kill());
    }

    fn shutdown(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            // The services run on: the swarm runs them. One-offs were this server's.
            self.inner.stop.cancel();
            self.inner.one_offs.table.each(|kill| kill());
            let handles: Vec<app::AppHandle> = self
                .inner
                .apps
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .drain()
                .map(|(_, h)| h)
                .collect();
            for handle in handles {
                handle.stop().await;
            }
            self.inner.one_offs.wait().await;
        })
    }
}
