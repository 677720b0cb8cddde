//! `WHARF_BACKEND=kubernetes`: the [`Backend`] trait over a cluster.
//!
//! - One task per app (`app.rs`) makes the app's desired state into manifests, applies what
//!   changed (server-side apply), removes what the formation dropped, watches a new release's
//!   rollout, and every two seconds reads the app's pods back as its instances, follows their
//!   output into the app's log, and publishes the web Service's cluster address to the router.
//! - One-off processes and release phases (`one_off.rs`) are pods of their own, attached to (a
//!   terminal, or stdin) or followed (their log), deleted when they end.
//!
//! When wharf stops, the app keeps running: the cluster runs it.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use wharf_core::backend::{
    Backend, BackendError, BoxFuture, Collected, DesiredApp, ImageSource, InstanceStatus, LogSink,
    OneOff, OneOffKind, ReleaseSpec, Rollout, Routes, Target,
};

use crate::cluster::{Cluster, ClusterError};
use crate::Settings;

/// What the Kubernetes backend runs apps with.
#[derive(Clone)]
pub struct KubeConfig {
    /// Where the cluster's nodes pull release images from, and with what.
    pub images: Arc<dyn ImageSource>,
    /// Where the web Services are published for wharf's router.
    pub routes: Arc<dyn Routes>,
    /// Boot and release-phase timeouts (the ingress class is the manifests' alone: the
    /// backend routes through wharf's router).
    pub settings: Settings,
    /// How often each app's pods are read back (instances, output, the router's upstream).
    pub look_every: std::time::Duration,
}

/// How often each app's pods are read back, unless configured otherwise.
pub const LOOK_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

impl std::fmt::Debug for KubeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeConfig")
            .field("images", &self.images)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// The Kubernetes backend; cheap to clone.
#[derive(Clone, Debug)]
pub struct KubeBackend {
    inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) cluster: Cluster,
    pub(crate) config: KubeConfig,
    pub(crate) apps: Mutex<HashMap<String, crate::app::AppHandle>>,
    pub(crate) one_offs: crate::one_off::OneOffs,
    pub(crate) stop: CancellationToken,
    pub(crate) tasks: TaskTracker,
}

impl From<ClusterError> for BackendError {
    fn from(e: ClusterError) -> BackendError {
        BackendError::Failed(Box::new(e))
    }
}

impl KubeBackend {
    /// The backend over the cluster kubeconfig or the in-cluster service account names; fails
    /// when that cluster doesn't answer.
    pub async fn connect(config: KubeConfig) -> Result<KubeBackend, ClusterError> {
        let cluster = Cluster::infer().await?;
        cluster.version().await?;
        Ok(KubeBackend::with_cluster(cluster, config))
    }

    /// The backend over `cluster`.
    pub fn with_cluster(cluster: Cluster, config: KubeConfig) -> KubeBackend {
        KubeBackend {
            inner: Arc::new(Inner {
                cluster,
                config,
                apps: Mutex::default(),
                one_offs: crate::one_off::OneOffs::default(),
                stop: CancellationToken::new(),
                tasks: TaskTracker::new(),
            }),
        }
    }

    fn app(&self, app_id: &str) -> Option<crate::app::AppHandle> {
        self.inner
            .apps
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(app_id)
            .cloned()
    }
}

impl Backend for KubeBackend {
    fn apply(&self, desired: DesiredApp, log: Arc<dyn LogSink>) {
        let mut apps = self.inner.apps.lock().unwrap_or_else(|e| e.into_inner());
        match apps.get(&desired.app_id) {
            Some(handle) => handle.set(desired, log),
            None => {
                let app_id = desired.app_id.clone();
                let handle = crate::app::AppHandle::start(&self.inner, desired, log);
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
            self.inner.one_offs.forget_app(app_id);
            if let Some(handle) = handle {
                let namespace = handle.namespace();
                handle.stop().await;
                if let Err(e) = self.inner.cluster.remove_namespace(&namespace).await {
                    tracing::warn!(app = %app_id, error = %e, "cannot remove the app's namespace");
                }
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
            handle.restart(&self.inner, target).await
        })
    }

    fn status(&self, app_id: &str) -> Vec<InstanceStatus> {
        self.app(app_id).map(|h| h.instances()).unwrap_or_default()
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
        Box::pin(async move {
            if self.inner.stop.is_cancelled() {
                return Err(BackendError::ShuttingDown);
            }
            // An app's first release phase runs before anything of it is applied.
            let app = DesiredApp {
                app_id: app_id.to_owned(),
                app_name: app_name.to_owned(),
                release: release.clone(),
                processes: Vec::new(),
            };
            crate::one_off::run(&self.inner, &app, release, command, kind, log).await
        })
    }

    fn one_offs(&self, app_id: &str) -> Vec<InstanceStatus> {
        self.inner.one_offs.of(app_id)
    }

    fn stop_one_off(&self, app_id: &str, name: &str) -> bool {
        crate::one_off::stop(&self.inner.one_offs, app_id, name)
    }

    fn ended_one_off(&self, app_id: &str, name: &str) -> Option<InstanceStatus> {
        self.inner.one_offs.ended(app_id, name)
    }

    fn images_in_use(&self) -> BTreeSet<String> {
        let apps = self.inner.apps.lock().unwrap_or_else(|e| e.into_inner());
        apps.values()
            .map(|h| h.desired().release.image)
            .chain(self.inner.one_offs.images())
            .collect()
    }

    fn collect_garbage(&self) -> BoxFuture<'_, Result<Collected, BackendError>> {
        // The cluster's nodes keep images, and their kubelets collect them: nothing of the
        // backend's is on this machine.
        Box::pin(async { Ok(Collected::default()) })
    }

    fn kill_all(&self) {
        crate::one_off::stop_all(&self.inner.one_offs);
    }

    fn shutdown(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            self.inner.stop.cancel();
            crate::one_off::stop_all(&self.inner.one_offs);
            let handles: Vec<crate::app::AppHandle> = self
                .inner
                .apps
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .values()
                .cloned()
                .collect();
            for handle in handles {
                handle.stop().await;
            }
            self.inner.tasks.close();
            self.inner.tasks.wait().await;
        })
    }
}
