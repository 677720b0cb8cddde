//! wharf's control plane: everything that follows a change of what an app should run.
//!
//! The HTTP API (`wharf-server`) stores a change through `wharf-store`, then makes one call,
//! [`ControlPlane::after`], with what changed ([`Change`]). That call alone decides what
//! follows: a release's release phase, a converge of the backend to the app's current release
//! and formation, a refresh of the router's hostname table. The API never sequences those
//! itself.
//!
//! Layout:
//! - `builds/`: the build queue (one build per app at a time, a bounded number overall), each
//!   build running a provider in the sandbox (`wharf-build`), packing the image
//!   (`wharf-image`) and storing its release, which it hands to the release phase;
//! - `release_phase`: puts a stored release into effect, running its release command first;
//! - `converge`: hands the backend an app's desired state and watches a new release's rollout
//!   (a rollout that fails brings the previous release back);
//! - `gc`: garbage collection of images, release trees and stack root filesystems;
//! - `stacks`: making and importing stacks.
//!
//! The backend is a `dyn Backend` (`wharf-core`): this crate never names the supervisor.

pub mod acme;
pub mod builds;
pub mod certs;
mod converge;
pub mod gc;
pub mod push;
pub mod release_phase;
pub mod stacks;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use wharf_core::backend::{Backend, LogSink, ReleaseSpec};
use wharf_image::ImageStore;
use wharf_logs::LogStore;
use wharf_store::{ReleaseRecord, Store};

pub use builds::{BuildError, BuildRunner, BuildSettings, LABEL_APP_JSON};
pub use converge::Control;
pub use gc::{GcError, DEFAULT_GC_INTERVAL, DEFAULT_KEEP_RELEASES};
pub use push::{PushError, Pushed, PushedImages};
pub use release_phase::{ReleasePhaseError, Releaser, DEFAULT_RELEASE_TIMEOUT};
pub use stacks::{StackMakeError, StackMaker};

/// How the control plane works; read once at start-up.
#[derive(Debug, Clone)]
pub struct ControlConfig {
    /// wharf's data directory.
    pub data_dir: PathBuf,
    /// How builds run.
    pub build: BuildSettings,
    /// A release phase running longer is stopped and its release fails.
    pub release_timeout: Duration,
    /// Each app's newest releases whose images garbage collection keeps (at least 1).
    pub keep_releases: u32,
    /// How often garbage collection runs on its own.
    pub gc_interval: Duration,
    /// Apps are served at `<app>.<domain>`.
    pub domain: String,
    /// The stack new apps build on unless they say.
    pub default_stack: String,
    /// A directory whose image store several data directories share wharf's stacks through.
    pub stack_cache: Option<PathBuf>,
    /// Another registry release images are pushed to (`WHARF_REGISTRY_URL`), if any.
    pub registry: Option<wharf_stack::push::PushTarget>,
    /// Where ACM certificates come from; `None` without HTTPS in the router.
    pub acme: Option<acme::AcmeConfig>,
}

/// What changed, as [`ControlPlane::after`] is told once the change is stored.
#[derive(Debug, Clone, Copy)]
pub enum Change<'a> {
    /// An app was made: the router learns its hostname.
    AppCreated { app_id: &'a str },
    /// An app was renamed, or put into or out of maintenance: its hostnames change.
    AppUpdated { app_id: &'a str },
    /// A custom domain was added to or removed from an app.
    DomainsChanged { app_id: &'a str },
    /// An app was destroyed: the router forgets it, its processes stop, its log goes.
    AppDestroyed { app_id: &'a str },
    /// The formation changed (a scale, a resize, a new command or health check).
    FormationChanged { app_id: &'a str },
    /// A release was stored (a config change, a rollback, a promotion, a rebase): it goes
    /// live, after its release phase when it has one.
    Released(&'a ReleaseRecord),
}

/// The control plane: the build queue, the release phase, converge, GC and stacks, over one
/// backend.
#[derive(Debug, Clone)]
pub struct ControlPlane {
    store: Store,
    control: Control,
    releases: Releaser,
    builds: BuildRunner,
    stacks: StackMaker,
    router: wharf_router::Router,
    domain: Arc<str>,
    /// Held (shared) by whatever is about to make images referenced — a build from its first
    /// blob to its release, a rollback or promotion from its image check to its release — and
    /// (exclusive) by garbage collection, which so never frees what one of them is about to use.
    gc: Arc<tokio::sync::RwLock<()>>,
    keep_releases: u32,
    gc_interval: Duration,
    /// Serializes route refreshes, so an older table never replaces a newer one.
    routes_lock: Arc<tokio::sync::Mutex<()>>,
    /// Another registry release images are pushed to.
    registry: Option<Arc<wharf_stack::push::PushTarget>>,
    data_dir: PathBuf,
    /// The ACM certificate manager, when ACME is configured.
    acme: Option<Arc<acme::Acme>>,
}

/// Errors that stop the control plane from starting.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Store(#[from] wharf_store::StoreError),
    #[error("cannot open the image store")]
    Images(#[from] wharf_image::ImageError),
    #[error("cannot prepare {path}: {source}")]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "WHARF_STACK is `{0}`, which is not a stack here: use wharf-1, wharf-bookworm, \
         wharf-trixie, or a stack imported with `wharf stacks import`"
    )]
    UnknownStack(String),
}

impl ControlPlane {
    /// Marks what the last stop interrupted (builds, release phases) as failed: nothing of it
    /// can still be running in a server that is only starting.
    pub async fn recover(store: &Store) -> Result<(), wharf_store::StoreError> {
        let interrupted = store
            .fail_unfinished_builds(
                "interrupted: the server stopped before the build finished; deploy again",
            )
            .await?;
        if interrupted > 0 {
            tracing::warn!(
                builds = interrupted,
                "marked builds interrupted by the last stop as failed"
            );
        }
        // Likewise a release phase: its release never went live, and won't.
        let interrupted = Releaser::fail_interrupted(store).await?;
        if interrupted > 0 {
            tracing::warn!(
                releases = interrupted,
                "marked releases whose release phase the last stop interrupted as failed"
            );
        }
        Ok(())
    }

    /// Sets the control plane up over `backend`, then converges every app and hands the
    /// router its hostname table. `stop` ends stack makes in progress when the server stops.
    pub async fn start(
        config: &ControlConfig,
        store: Store,
        images: ImageStore,
        app_logs: LogStore,
        backend: Arc<dyn Backend>,
        router: wharf_router::Router,
        stop: CancellationToken,
    ) -> Result<ControlPlane, StartError> {
        let file = |path: PathBuf| move |source| StartError::File { path, source };
        let logs_dir = config.data_dir.join("logs").join("builds");
        let logs = builds::output::BuildLogs::new(logs_dir.clone()).map_err(file(logs_dir))?;
        let control = Control::new(store.clone(), images.clone(), app_logs, backend);
        let outputs_dir = config.data_dir.join("logs").join("releases");
        let outputs =
            builds::output::BuildLogs::new(outputs_dir.clone()).map_err(file(outputs_dir))?;
        let releases = Releaser::new(
            store.clone(),
            control.clone(),
            outputs,
            config.release_timeout,
        );
        let gc = Arc::<tokio::sync::RwLock<()>>::default();
        let stacks = StackMaker::new(
            &config.data_dir,
            images,
            config.stack_cache.clone(),
            gc.clone(),
            stop,
        )
        .map_err(file(config.data_dir.join("logs").join("stacks")))?;
        let known = config.default_stack == wharf_core::api::STACK
            || wharf_stack::default_stack(&config.default_stack).is_some()
            || wharf_stack::list(stacks.images())
                .map_err(|e| StartError::File {
                    path: config.data_dir.join("images"),
                    source: std::io::Error::other(e.to_string()),
                })?
                .iter()
                .any(|s| s.name == config.default_stack && s.run.is_some() && s.build.is_some());
        if !known {
            return Err(StartError::UnknownStack(config.default_stack.clone()));
        }
        let builds = BuildRunner::new(
            store.clone(),
            logs,
            config.build.clone(),
            config.data_dir.clone(),
            releases.clone(),
            stacks.clone(),
        );
        control.converge_all().await?;
        let plane = ControlPlane {
            store,
            control,
            releases,
            builds,
            stacks,
            router,
            domain: Arc::from(config.domain.as_str()),
            gc,
            keep_releases: config.keep_releases.max(1),
            gc_interval: config.gc_interval,
            routes_lock: Arc::default(),
            registry: config.registry.clone().map(Arc::new),
            data_dir: config.data_dir.clone(),
            acme: config.acme.clone().map(|c| Arc::new(acme::Acme::new(c))),
        };
        plane.refresh_routes().await;
        Ok(plane)
    }

    /// Puts a stored change into effect: everything that must follow it, to the end, even when
    /// the request that made it goes away (the change is already stored).
    pub async fn after(&self, change: Change<'_>) {
        let this = self.clone();
        let done = match change {
            Change::AppCreated { .. }
            | Change::AppUpdated { .. }
            | Change::DomainsChanged { .. } => tokio::spawn(async move {
                this.load_routes().await;
                // A new domain, or ACM turned on or refreshed: certificates to order.
                this.wake_acme();
            }),
            Change::AppDestroyed { app_id } => {
                let app_id = app_id.to_owned();
                tokio::spawn(async move {
                    this.load_routes().await;
                    this.control.converge(&app_id).await;
                    if let Err(e) = this.control.logs().remove_app(&app_id).await {
                        tracing::warn!(app = %app_id, error = %e, "cannot remove the destroyed app's log");
                    }
                })
            }
            Change::FormationChanged { app_id } => {
                let app_id = app_id.to_owned();
                tokio::spawn(async move { this.control.converge(&app_id).await })
            }
            Change::Released(release) => {
                let release = release.clone();
                tokio::spawn(async move { this.releases.launch(&release).await })
            }
        };
        if let Err(e) = done.await {
            tracing::error!(error = %e, "a task following a change failed");
        }
    }

    /// Hands the router the hostname table as the database has it now; see [`Change`].
    async fn refresh_routes(&self) {
        let this = self.clone();
        if let Err(e) = tokio::spawn(async move { this.load_routes().await }).await {
            tracing::error!(error = %e, "a route refresh task failed");
        }
    }

    /// Every app's default hostname and custom domains, whether it is in maintenance, and the
    /// certificates that serve its hostnames over HTTPS; a failure is logged and the router
    /// keeps its previous tables.
    async fn load_routes(&self) {
        let _one_at_a_time = self.routes_lock.lock().await;
        let read = async {
            let table = self.store.route_table().await?;
            let certificates = self.store.all_certificates().await?;
            Ok::<_, wharf_store::StoreError>((table, certificates))
        };
        let (table, certificates) = match read.await {
            Ok(read) => read,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the route table; the router keeps its previous one");
                return;
            }
        };
        let mut by_app: HashMap<String, Vec<wharf_store::CertificateRecord>> = HashMap::new();
        for cert in certificates {
            by_app.entry(cert.app_id.clone()).or_default().push(cert);
        }
        let mut hosts = Vec::new();
        let mut served = Vec::new();
        for app in table {
            let route = wharf_router::AppRoute {
                app_id: app.app_id.clone(),
                app_name: app.app_name.clone(),
                maintenance: app.maintenance,
                https_redirect: app.https_redirect,
            };
            let named = self.app_hostnames(&app);
            if let Some(certs) = by_app.remove(&app.app_id) {
                served.extend(certs::for_router(&certs::serving(&named, certs)));
            }
            for (hostname, _) in named {
                hosts.push((hostname, route.clone()));
            }
        }
        self.router.set_hosts(hosts);
        self.router.set_certificates(&served);
    }

    /// The app's hostnames, its default one first, each with the certificate its domain names.
    fn app_hostnames(&self, app: &wharf_store::RouteRecord) -> Vec<(String, Option<String>)> {
        let mut named = vec![(self.hostname(&app.app_name), None)];
        for hostname in &app.hostnames {
            let pin = app
                .pins
                .iter()
                .find(|(h, _)| h == hostname)
                .map(|(_, cert)| cert.clone());
            named.push((hostname.clone(), pin));
        }
        named
    }

    /// The app's certificates, each with the hostnames it serves.
    pub async fn app_certificates(
        &self,
        app_id: &str,
    ) -> wharf_store::Result<Vec<certs::ServedCertificate>> {
        let app = self.store.app_routes(app_id).await?;
        let records = self.store.certificates(app_id).await?;
        Ok(certs::serving(&self.app_hostnames(&app), records))
    }

    /// The hostname the router serves `app` at: `<app>.<domain>`.
    pub fn hostname(&self, app: &str) -> String {
        format!("{app}.{}", self.domain)
    }

    /// What runs the apps.
    pub fn backend(&self) -> &dyn Backend {
        self.control.backend()
    }

    /// The image store releases run from.
    pub fn images(&self) -> &ImageStore {
        self.control.images()
    }

    /// The apps' durable logs.
    pub fn logs(&self) -> &LogStore {
        self.control.logs()
    }

    /// The sink an app's processes write to.
    pub fn sink(&self, app_id: &str) -> Arc<dyn LogSink> {
        self.control.sink(app_id)
    }

    /// What a release runs with, if its image can be read.
    pub fn release_spec(&self, release: &ReleaseRecord) -> Option<ReleaseSpec> {
        self.control.release_spec(release)
    }

    /// What the app runs at `release`, with its formation; `None` without an image.
    pub async fn desired(
        &self,
        app: &wharf_store::AppRecord,
        release: &ReleaseRecord,
    ) -> Result<Option<wharf_core::backend::DesiredApp>, wharf_store::StoreError> {
        self.control.desired(app, release).await
    }

    /// The build queue.
    pub fn builds(&self) -> &BuildRunner {
        &self.builds
    }

    /// Release-phase output, by release id.
    pub fn release_outputs(&self) -> &builds::output::BuildLogs {
        self.releases.outputs()
    }

    /// Makes stacks in the background.
    pub fn stacks(&self) -> &StackMaker {
        &self.stacks
    }

    /// Held shared while something is about to make an image referenced; see the field.
    pub async fn hold_images(&self) -> tokio::sync::RwLockReadGuard<'_, ()> {
        self.gc.read().await
    }

    /// Collects garbage every `gc_interval` until `stop` is cancelled (the first run one
    /// interval after the call).
    pub async fn collect_periodically(&self, stop: CancellationToken) {
        gc::periodically(self, self.gc_interval, stop).await;
    }

    /// Stops: running builds are cancelled (they fail as interrupted) and waited for.
    pub async fn stop_builds(&self) {
        self.builds.shutdown().await;
    }
}
