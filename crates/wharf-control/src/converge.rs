//! The control plane's half of the control loop: turns what the database says an app should run
//! (its current release × its formation) into the backend's desired state, after every change
//! that can alter it (a deploy, a config change, a scale, a destroy) and for every app at
//! start-up. The backend (`WHARF_BACKEND`; `wharf-run`'s supervisor by default) converges the
//! running processes to it, continuously.
//!
//! After handing over a newer release than the app ran, the control loop watches its rollout:
//! when the release's web instances never come up, the release is marked failed (with the
//! reason, also in the app's log) and the app converges back to its previous release, which
//! never stopped serving. Only a move forward is watched: the first apply after start-up, and
//! the fallback itself, are not, so a release that can't boot for reasons outside it (a backing
//! service down) never sends the app back through its history.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use wharf_core::app_json::AppJson;
use wharf_core::backend::{
    Backend, DesiredApp, LogSink, ProcessSpec, ReleaseSpec, Rollout, Stream,
};
use wharf_image::{Digest, ImageStore};
use wharf_logs::{AppLog, LogLine, LogStore, Source};
use wharf_store::{ReleaseRecord, Store};

/// Hands apps' desired state to the backend.
#[derive(Clone)]
pub struct Control {
    store: Store,
    images: ImageStore,
    logs: LogStore,
    /// Runs the apps: the control plane speaks only the `Backend` trait to it.
    backend: Arc<dyn Backend>,
    /// The release version last handed to the backend, per app.
    applied: Arc<Mutex<HashMap<String, u32>>>,
    /// One converge at a time per app, so an older read of the database never overwrites a
    /// newer one in the backend.
    converging: Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
}

impl std::fmt::Debug for Control {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Control")
    }
}

/// Writes an app's process output and platform events to its durable log.
struct AppLogSink(AppLog);

impl LogSink for AppLogSink {
    fn line(&self, process: &str, _stream: Stream, text: &str) {
        self.0.append(LogLine::new(Source::App, process, text));
    }

    fn event(&self, process: &str, text: &str) {
        self.0.append(LogLine::event(process, text));
    }
}

impl Control {
    pub fn new(
        store: Store,
        images: ImageStore,
        logs: LogStore,
        backend: Arc<dyn Backend>,
    ) -> Control {
        Control {
            store,
            images,
            logs,
            backend,
            applied: Arc::default(),
            converging: Arc::default(),
        }
    }

    /// The image store releases run from.
    pub fn images(&self) -> &ImageStore {
        &self.images
    }

    /// What runs the apps.
    pub fn backend(&self) -> &dyn Backend {
        self.backend.as_ref()
    }

    pub fn logs(&self) -> &LogStore {
        &self.logs
    }

    /// The sink an app's processes write to.
    pub fn sink(&self, app_id: &str) -> Arc<dyn LogSink> {
        Arc::new(AppLogSink(self.logs.app(app_id)))
    }

    /// What the app's current release runs with, if it has an image.
    pub fn release_spec(&self, release: &ReleaseRecord) -> Option<ReleaseSpec> {
        let digest = Digest::parse(release.image_digest.as_deref()?).ok()?;
        let (image_env, run_image, web_health) = match self.images.image(&digest) {
            Ok(image) => {
                let mut labels = image.labels();
                let app_json = labels
                    .get(crate::builds::LABEL_APP_JSON)
                    .and_then(|text| serde_json::from_str::<AppJson>(text).ok());
                (
                    image.env(),
                    labels.remove(wharf_stack::LABEL_RUN_IMAGE),
                    app_json.and_then(|a| a.web_healthcheck),
                )
            }
            Err(e) => {
                tracing::error!(release = %release.version, error = %e, "cannot read the release's image");
                return None;
            }
        };
        Some(ReleaseSpec {
            version: release.version.get(),
            image: digest.to_string(),
            env: release.config.to_string_map(),
            image_env,
            run_image,
            web_health,
        })
    }

    /// Gives the backend the app's desired state; logs (never returns) failures, since the
    /// change that called it has already been stored and the next converge retries.
    pub async fn converge(&self, app_id: &str) {
        let lock = self
            .converging
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(app_id.to_owned())
            .or_default()
            .clone();
        let _one_at_a_time = lock.lock().await;
        if let Err(e) = self.try_converge(app_id).await {
            tracing::error!(app = %app_id, error = %e, "cannot converge the app");
        }
    }

    async fn try_converge(&self, app_id: &str) -> Result<(), wharf_store::StoreError> {
        let app = match self.store.app(app_id).await {
            Ok(app) => app,
            Err(wharf_store::StoreError::NotFound { .. }) => {
                self.forget_app(app_id);
                self.backend.remove(app_id).await;
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        let Some(release) = self.store.current_release(&app.id).await? else {
            return Ok(());
        };
        let Some(desired) = self.desired(&app, &release).await? else {
            // Nothing built yet: nothing to run.
            self.forget(&app.id);
            self.backend.remove(&app.id).await;
            return Ok(());
        };
        let version = desired.release.version;
        self.backend.apply(desired, self.sink(&app.id));
        let previous = self
            .applied
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(app.id.clone(), version);
        if previous.is_some_and(|p| p < version) {
            self.watch_rollout(&app.id, version);
        }
        Ok(())
    }

    /// What the app runs at `release`: the release's image and config, and the formation's
    /// process types that the release has (each with the formation's command, else the
    /// release's). `None` for a release without an image (before the first build).
    pub async fn desired(
        &self,
        app: &wharf_store::AppRecord,
        release: &ReleaseRecord,
    ) -> Result<Option<DesiredApp>, wharf_store::StoreError> {
        let Some(spec) = self.release_spec(release) else {
            return Ok(None);
        };
        let formation = self.store.formation(&app.id).await?;
        let web_health = spec.web_health.clone();
        let processes = formation
            .into_iter()
            .filter_map(|f| {
                let command = f
                    .command
                    .clone()
                    .or_else(|| release.process_types.get(&f.process_type).cloned())?;
                Some(ProcessSpec {
                    process_type: f.process_type.clone(),
                    quantity: f.quantity,
                    command,
                    memory_limit: Some(f.size.memory_bytes()),
                    // The formation's own path, else the one app.json declares for web.
                    health_path: f.health_path.clone().or_else(|| {
                        (f.process_type == "web")
                            .then(|| web_health.as_ref().map(|h| h.path.clone()))
                            .flatten()
                    }),
                    health_timeout: (f.process_type == "web" && f.health_path.is_none())
                        .then(|| web_health.as_ref().map(|h| h.timeout()))
                        .flatten(),
                    stop_signal: f.stop_signal.clone(),
                    grace: Duration::from_secs(f.grace_seconds),
                })
            })
            .collect();
        Ok(Some(DesiredApp {
            app_id: app.id.clone(),
            app_name: app.name.to_string(),
            release: spec,
            processes,
        }))
    }

    fn forget(&self, app_id: &str) {
        self.applied
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(app_id);
    }

    /// Drops the app's converge lock once the app is gone (holders keep their handle).
    fn forget_app(&self, app_id: &str) {
        self.forget(app_id);
        self.converging
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(app_id);
    }

    /// Waits, in the background, for the rollout of `version`; a failed one fails the release
    /// and brings the previous release back as the app's current one.
    /// Called once per (app, version): only when `applied` moves forward, under the app's
    /// converge lock.
    fn watch_rollout(&self, app_id: &str, version: u32) {
        let this = self.clone();
        let app_id = app_id.to_owned();
        tokio::spawn(async move {
            let ended = this.backend.rollout(&app_id, version).await;
            let Rollout::Failed(why) = ended else { return };
            let app_id = &app_id;
            match this.store.fail_release(app_id, version, &why).await {
                Ok(true) => {
                    let previous = match this.store.current_release(app_id).await {
                        Ok(Some(r)) => format!("{} keeps running", r.version),
                        _ => "nothing else is running".to_owned(),
                    };
                    tracing::warn!(app = %app_id, version, reason = %why, "deploy failed");
                    this.logs.app(app_id).append(LogLine::event(
                        "api",
                        format!(
                            "Deploy of v{version} failed: {why}; {previous} (its output: wharf logs --dyno web)"
                        ),
                    ));
                    this.converge(app_id).await;
                }
                Ok(false) => {}
                Err(e) => {
                    tracing::error!(app = %app_id, version, error = %e, "cannot mark a release failed")
                }
            }
        });
    }

    /// Converges every app; run at start-up.
    pub async fn converge_all(&self) -> Result<(), wharf_store::StoreError> {
        for app in self.store.all_apps().await? {
            self.converge(&app.id).await;
        }
        Ok(())
    }
}
