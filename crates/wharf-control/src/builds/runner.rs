//! Runs queued builds. Each build is a task on the runner's tracker; stopping the server cancels
//! them (their builds fail as interrupted) and waits for them to clean up.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use wharf_build::{BuildOutput, BuildRequest, SandboxMode};
use wharf_core::app_json::AppJson;
use wharf_core::config::ConfigKey;
use wharf_core::formation::DynoSize;
use wharf_image::archive::Limits;
use wharf_image::{ImageSpec, ImageStore, LayerSpec, Select};
use wharf_store::{BuildRecord, BuildSuccess, FirstDeploy, Store, StoreError};

use super::output::{BuildLogs, LogWriter};

/// Why a build failed: its message is what the build's output and `wharf builds:info` show.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("interrupted: the server stopped before the build finished; start it again")]
    Interrupted,
    #[error(
        "interrupted: the server stopped while the build waited for a release phase; deploy again"
    )]
    InterruptedWaiting,
    #[error("the source archive can't be used: {0}")]
    Source(wharf_image::archive::ArchiveError),
    #[error("the app has no user to build as: {0}")]
    NoUser(wharf_sandbox::users::UserError),
    /// The build itself failed (a provider's command, the timeout): its own message.
    #[error("{0}")]
    Build(wharf_build::BuildError),
    #[error("the app's stack `{name}` could not be made: {why}")]
    StackNotMade {
        name: String,
        why: crate::stacks::StackMakeError,
    },
    #[error("the app's stack `{name}` can't be used: {source}")]
    StackUnusable {
        name: String,
        source: wharf_stack::StackError,
    },
    #[error(
        "the app's stack `{name}` is not made on this server: make it with `wharf stacks build \
         {name}`, or choose another with `wharf stack:set`"
    )]
    StackMissing { name: String },
    #[error("app.json: `env.{key}`: {source}")]
    AppJsonEnv {
        key: String,
        source: wharf_core::config::ConfigError,
    },
    #[error("app.json: `formation.{kind}.size`: {source}")]
    AppJsonSize {
        kind: String,
        source: wharf_core::formation::InvalidSize,
    },
    #[error(
        "app.json requires config vars this app doesn't have: {named}; set them (`wharf config \
         set {first}=… -a {app}`) and deploy again"
    )]
    MissingConfig {
        named: String,
        first: String,
        app: String,
    },
    /// Something failed inside wharf: said briefly (the log has the whole chain).
    #[error("{0}")]
    Internal(String),
}

/// How builds run; read once at start-up.
#[derive(Debug, Clone)]
pub struct BuildSettings {
    /// A build running longer is killed (`WHARF_BUILD_TIMEOUT`).
    pub timeout: Duration,
    /// How many builds (of different apps) may run at once (`WHARF_BUILD_CONCURRENCY`).
    pub concurrency: usize,
    /// Whether builds run in namespaces (`WHARF_SANDBOX`).
    pub sandbox: SandboxMode,
    /// Limits on uploaded source archives.
    pub limits: Limits,
    /// The npm registry Node.js and its package managers come from (`WHARF_NPM_REGISTRY`).
    pub npm_registry: String,
    /// Prebuilt CPython archives for versions the stacks don't have (`WHARF_PYTHON_URL`).
    pub python_url: Option<String>,
    /// Where downloaded runtimes are kept (`WHARF_RUNTIME_CACHE`); `None`: `$DATA/runtimes`.
    pub runtime_cache: Option<PathBuf>,
}

/// The queue and the builds in it.
#[derive(Debug, Clone)]
pub struct BuildRunner {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Store,
    images: ImageStore,
    logs: BuildLogs,
    settings: BuildSettings,
    data_dir: PathBuf,
    /// One lock per app id: builds of one app run one after the other.
    app_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Bounds the builds running at once.
    slots: Semaphore,
    /// Every build task, so shutdown can wait for them.
    tracker: TaskTracker,
    /// Cancelled when the server stops.
    cancel: CancellationToken,
    /// Puts a successful build's release into effect.
    releaser: crate::release_phase::Releaser,
    /// Held shared from packing the image until its release is stored, so garbage collection
    /// never frees the new image's blobs in between.
    gc: Arc<tokio::sync::RwLock<()>>,
    /// Makes one of wharf's stacks the first time a build needs it.
    stacks: crate::stacks::StackMaker,
    /// Each build runs in cgroups of its own (`wharf/builds/<id>`), where the host allows.
    cgroups: wharf_sandbox::cgroup::Cgroups,
}

/// Processes a build's commands may have at once (compilers and package managers run many);
/// a fork bomb in a build script stops there.
const BUILD_PIDS: u32 = 4096;

/// Removes a build's cgroups when the build is over.
struct BuildCgroups(wharf_sandbox::cgroup::Limits);

impl Drop for BuildCgroups {
    fn drop(&mut self) {
        // The build's processes were stopped; the kernel may count the last for a moment.
        let limits = std::mem::take(&mut self.0);
        let remove = move || limits.remove_when_empty(Duration::from_secs(5));
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn_blocking(remove)),
            Err(_) => remove(),
        }
    }
}

impl BuildRunner {
    /// Builds go to the image store, under the garbage collector's lock, that `stacks` (which
    /// makes stacks they need) works with.
    pub fn new(
        store: Store,
        logs: BuildLogs,
        settings: BuildSettings,
        data_dir: PathBuf,
        releaser: crate::release_phase::Releaser,
        stacks: crate::stacks::StackMaker,
    ) -> BuildRunner {
        let (images, gc) = (stacks.images().clone(), stacks.gc_lock());
        let slots = Semaphore::new(settings.concurrency.max(1));
        BuildRunner {
            inner: Arc::new(Inner {
                store,
                images,
                logs,
                settings,
                data_dir,
                app_locks: Mutex::default(),
                slots,
                tracker: TaskTracker::new(),
                cancel: CancellationToken::new(),
                releaser,
                gc,
                stacks,
                cgroups: wharf_sandbox::cgroup::Cgroups::detect(),
            }),
        }
    }

    pub fn logs(&self) -> &BuildLogs {
        &self.inner.logs
    }

    /// Removes the empty build cgroups a killed server left behind (see
    /// [`wharf_sandbox::cgroup::Cgroups::remove_stale`]): those older than any build here
    /// may run, and at least an hour, so no other server's fresh one is taken.
    pub fn remove_stale_cgroups(&self) -> usize {
        let older_than = (self.inner.settings.timeout * 2).max(Duration::from_secs(60 * 60));
        self.inner.cgroups.remove_stale("builds", older_than)
    }

    pub fn settings(&self) -> &BuildSettings {
        &self.inner.settings
    }

    /// Where the archive of source `id` is kept.
    pub fn source_path(&self, id: &str) -> PathBuf {
        source_path(&self.inner.data_dir, id)
    }

    /// Queues `build` of `app`; its output exists (empty) when this returns.
    pub async fn enqueue(&self, build: BuildRecord, app: String) -> std::io::Result<()> {
        let log = self.inner.logs.create(&build.id).await?;
        let inner = self.inner.clone();
        self.inner
            .tracker
            .spawn(async move { inner.run(build, app, log).await });
        Ok(())
    }

    /// Cancels running builds and waits until every build task has ended.
    pub async fn shutdown(&self) {
        self.inner.cancel.cancel();
        self.inner.tracker.close();
        self.inner.tracker.wait().await;
    }
}

pub fn source_path(data_dir: &Path, id: &str) -> PathBuf {
    data_dir.join("sources").join(format!("{id}.tar.gz"))
}

impl Inner {
    fn app_lock(&self, app_id: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.app_locks
            .lock()
            .expect("app lock registry")
            .entry(app_id.to_owned())
            .or_default()
            .clone()
    }

    async fn run(self: Arc<Self>, build: BuildRecord, app: String, mut log: LogWriter) {
        let id = build.id.clone();
        let work_dir = self.data_dir.join("builds").join(&id);
        let result = self.run_build(&build, &app, &work_dir, &mut log).await;
        if let Err(e) = tokio::fs::remove_dir_all(&work_dir).await {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(build = %id, error = %e, "cannot remove the build's scratch dir");
            }
        }
        if let Err(error) = result {
            let message = error.to_string();
            log.write(&format!("\n !     Build failed: {message}\n"))
                .await;
            if let Err(e) = self.store.fail_build(&id, &message).await {
                tracing::error!(build = %id, error = %e, "cannot record a failed build");
            }
            tracing::info!(app = %app, build = %id, reason = %message, "build failed");
        }
        log.finish().await;
    }

    /// Runs one build to its end; `Err` carries the reason shown to the user.
    async fn run_build(
        &self,
        build: &BuildRecord,
        app: &str,
        work_dir: &Path,
        log: &mut LogWriter,
    ) -> Result<(), BuildError> {
        let lock = self.app_lock(&build.app_id);
        let _app_turn = match lock.try_lock() {
            Ok(guard) => guard,
            Err(_) => {
                log.write(&format!(
                    "-----> Waiting for the build of {app} before this one to finish\n"
                ))
                .await;
                tokio::select! {
                    guard = lock.lock() => guard,
                    _ = self.cancel.cancelled() => return Err(BuildError::Interrupted),
                }
            }
        };
        let _slot = tokio::select! {
            slot = self.slots.acquire() => slot.map_err(|_| BuildError::Interrupted)?,
            _ = self.cancel.cancelled() => return Err(BuildError::Interrupted),
        };
        self.store.start_build(&build.id).await.map_err(internal)?;
        tracing::info!(app = %app, build = %build.id, "build started");
        let stack = self.stack_of(&build.app_id, log).await?;

        // The source was checked on upload; unpacking checks it again, since the file could have
        // changed since.
        let archive = source_path(&self.data_dir, &build.source_id);
        let source_dir = work_dir.join("source");
        let limits = self.settings.limits;
        let unpack_to = source_dir.clone();
        tokio::task::spawn_blocking(move || {
            wharf_image::archive::unpack(&archive, &unpack_to, &limits)
        })
        .await
        .map_err(internal)?
        .map_err(BuildError::Source)?;

        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        // CPU shared with the apps' below wharf's own, and at most BUILD_PIDS processes.
        let limits = BuildCgroups(self.cgroups.prepare("builds", &build.id, None, BUILD_PIDS));
        let config = self
            .store
            .config_vars(&build.app_id)
            .await
            .map_err(internal)?;
        let switches = wharf_build::BUILD_SWITCHES
            .iter()
            .filter_map(|key| Some((key.to_string(), config.get(key)?.to_owned())))
            .collect();
        let request = BuildRequest {
            source_dir,
            work_dir: work_dir.join("work"),
            cache_dir: self.data_dir.join("cache").join(&build.app_id),
            timeout: self.settings.timeout,
            sandbox: self.settings.sandbox,
            buildpack_env: BTreeMap::new(),
            // The database, the signing key and other apps' sources, images and caches.
            hidden_paths: vec![self.data_dir.clone()],
            user: if nix::unistd::geteuid().is_root() {
                Some(
                    wharf_sandbox::users::app_user(&self.data_dir, &build.app_id)
                        .map_err(BuildError::NoUser)?,
                )
            } else {
                None
            },
            root: stack.as_ref().map(|s| s.build_root.clone()),
            trust: match &stack {
                Some(stack) => stack
                    .trust_bundle(Path::new(HOST_CA_DIR), &work_dir.join("trust.pem"))
                    .map_err(internal)?,
                None => None,
            },
            cgroups: limits.0.procs_files(),
            runtimes: wharf_build::RuntimeSources {
                cache_dir: self
                    .settings
                    .runtime_cache
                    .clone()
                    .unwrap_or_else(|| self.data_dir.join("runtimes")),
                npm_registry: self.settings.npm_registry.clone(),
                python_url: self.settings.python_url.clone(),
            },
            stack: stack
                .as_ref()
                .map_or_else(|| wharf_core::api::STACK.to_owned(), |s| s.name.clone()),
            switches,
        };
        tokio::fs::create_dir_all(&request.work_dir)
            .await
            .map_err(internal)?;
        tokio::fs::create_dir_all(&request.cache_dir)
            .await
            .map_err(internal)?;
        let building = tokio::spawn(wharf_build::build(request, tx, self.cancel.child_token()));
        while let Some(line) = rx.recv().await {
            log.write(&line).await;
        }
        let output = building
            .await
            .map_err(internal)?
            .map_err(BuildError::Build)?;
        drop(limits);
        self.store
            .set_build_provider(&build.id, &output.provider)
            .await
            .map_err(internal)?;

        // The image is packed and its release stored under the garbage collector's shared
        // lock, so the new blobs are never collected in between. A release in its release
        // phase holds back every other release of the app: that is waited for first, outside
        // the lock (a release phase may take long, and collection must not wait on it). If
        // another release phase starts in the meantime, the lock is let go and it all repeats
        // (packing again finds its layers in the store).
        let mut waited = false;
        let mut first = false;
        let release = loop {
            if self
                .store
                .has_pending_release(&build.app_id)
                .await
                .map_err(internal)?
            {
                log.write("-----> Waiting for the app's release phase to finish\n")
                    .await;
            }
            tokio::select! {
                idle = self.releaser.wait_idle(&build.app_id) => idle.map_err(internal)?,
                () = self.cancel.cancelled() => {
                    return Err(BuildError::InterruptedWaiting)
                }
            }
            // What app.json sets on a first deploy (and what it requires of the config).
            let deployed_before = self
                .store
                .deployed_before(&build.app_id)
                .await
                .map_err(internal)?;
            let settings = if deployed_before {
                FirstDeploy::default()
            } else {
                let config = self
                    .store
                    .config_vars(&build.app_id)
                    .await
                    .map_err(internal)?;
                first_deploy(output.app_json.as_ref(), &config, app)?
            };
            let _no_gc = self.gc.read().await;
            let image = self
                .pack(build, &output, stack.as_ref(), work_dir, log, !waited)
                .await?;
            let success = BuildSuccess {
                provider: output.provider.clone(),
                runtime: output.runtime.clone(),
                image_digest: image.manifest.to_string(),
                process_types: output.process_types.clone(),
                release_description: format!("Deploy {}", image.manifest.short()),
                first_deploy: settings,
            };
            match self.store.succeed_build(&build.id, &success).await {
                Ok(done) => {
                    if done.first_deploy {
                        first = true;
                        let set: Vec<&str> = success
                            .first_deploy
                            .config
                            .keys()
                            .map(ConfigKey::as_str)
                            .collect();
                        if !set.is_empty() {
                            log.write(&format!(
                                "-----> First deploy: config vars from app.json: {}\n",
                                set.join(", ")
                            ))
                            .await;
                        }
                        if !success.first_deploy.formation.is_empty() {
                            let kinds: Vec<String> = success
                                .first_deploy
                                .formation
                                .iter()
                                .map(|(k, (q, s))| {
                                    let mut text = k.clone();
                                    if let Some(q) = q {
                                        text.push_str(&format!("={q}"));
                                    }
                                    if let Some(s) = s {
                                        text.push_str(&format!(":{}", s.name()));
                                    }
                                    text
                                })
                                .collect();
                            log.write(&format!(
                                "-----> First deploy: formation from app.json: {}\n",
                                kinds.join(" ")
                            ))
                            .await;
                        }
                    }
                    break done.release;
                }
                Err(StoreError::ReleasePhaseRunning { .. }) => waited = true,
                Err(e) => return Err(internal(e)),
            }
        };
        let types: Vec<&str> = output.process_types.keys().map(String::as_str).collect();
        log.write(&format!(
            "-----> Process types: {}\n",
            if types.is_empty() {
                "none".into()
            } else {
                types.join(", ")
            }
        ))
        .await;
        if release.status == wharf_core::release::ReleaseStatus::Pending {
            log.write(&format!(
                "-----> Released {v}; its release phase runs next (`wharf releases output {v}`)\n",
                v = release.version
            ))
            .await;
        } else {
            log.write(&format!("-----> Released {}\n", release.version))
                .await;
        }
        self.releaser.launch(&release).await;
        if let (true, Some(command)) = (
            first,
            output.app_json.as_ref().and_then(|a| a.postdeploy.as_ref()),
        ) {
            log.write(&format!(
                "-----> app.json's postdeploy script runs once {} is live, as a one-off \
                 (`{command}`; its output: wharf logs -a {app})\n",
                release.version
            ))
            .await;
            self.releaser.postdeploy(&release, command);
        }
        tracing::info!(app = %app, build = %build.id, release = %release.version, image = release.image_digest.as_deref().unwrap_or_default(), "build succeeded");
        Ok(())
    }
}

impl Inner {
    /// Packs the build's image and tags it `build-<id>`; `report` writes its layers to the
    /// build output.
    async fn pack(
        &self,
        build: &BuildRecord,
        output: &BuildOutput,
        stack: Option<&OnStack>,
        work_dir: &Path,
        log: &mut LogWriter,
        report: bool,
    ) -> Result<wharf_image::BuiltImage, BuildError> {
        if report {
            log.write("-----> Packing the image\n").await;
        }
        let images = self.images.clone();
        let mut spec = image_spec(output);
        // A runtime layer made before from the same downloads is used as it is, not packed again.
        let runtime_key = output
            .runtime_key
            .clone()
            .filter(|_| !output.runtime_paths.is_empty());
        let remembered = runtime_key
            .as_deref()
            .and_then(|key| self.images.remembered_layer(key));
        let remember = match remembered {
            Some(layer) => {
                spec.layers.remove(0);
                spec.base.push(layer);
                None
            }
            None => runtime_key,
        };
        if let Some(stack) = stack {
            stack
                .complete(&mut spec, output, &work_dir.join("launcher"))
                .map_err(internal)?;
        }
        // Where the runtime layer lands when it is packed now: right after the base's.
        let runtime_at = spec.base.len();
        let tag = format!("build-{}", build.id);
        let image = tokio::task::spawn_blocking(move || {
            let image = images.build_image(&spec)?;
            if let (Some(key), Some(layer)) = (remember, image.layers.get(runtime_at)) {
                images.remember_layer(&key, layer)?;
            }
            images.tag(&tag, &image.manifest)?;
            Ok::<_, wharf_image::ImageError>(image)
        })
        .await
        .map_err(internal)?
        .map_err(internal)?;
        if !report {
            return Ok(image);
        }
        for layer in &image.layers {
            let note = if layer.reused {
                " (unchanged, reused)"
            } else {
                ""
            };
            log.write(&format!(
                "       layer {} {}{note}\n",
                layer.digest.short(),
                wharf_core::size::human(layer.size)
            ))
            .await;
        }
        log.write(&format!(
            "       image {} ({})\n",
            image.manifest,
            wharf_core::size::human(image.size)
        ))
        .await;
        Ok(image)
    }
}

/// The stack a build runs on (one of the store's, not the host-bound `wharf-1`).
#[derive(Debug)]
struct OnStack {
    name: String,
    build: wharf_image::Digest,
    run: wharf_image::Image,
    /// The build image's root filesystem, unpacked (once per machine) on the host.
    build_root: PathBuf,
    /// Keeps garbage collection off `build_root` while the build runs.
    _held: wharf_stack::rootfs::Held,
}

impl Inner {
    /// The app's stack, its build image unpacked; `None` for the host-bound `wharf-1`.
    async fn stack_of(
        &self,
        app_id: &str,
        log: &mut LogWriter,
    ) -> Result<Option<OnStack>, BuildError> {
        let app = self.store.app(app_id).await.map_err(internal)?;
        if app.build_stack == wharf_core::api::STACK {
            return Ok(None);
        }
        let name = app.build_stack;
        if let Some(def) = wharf_stack::default_stack(&name) {
            // Made on first use, and kept: later builds find it ready at once.
            let (lines, mut next) = tokio::sync::mpsc::unbounded_channel::<String>();
            let ensuring = {
                let stacks = self.stacks.clone();
                tokio::spawn(async move {
                    let mut progress = |line: &str| {
                        let _ = lines.send(line.to_owned());
                    };
                    stacks.ensure(def, &mut progress).await
                })
            };
            let mut told = false;
            while let Some(line) = next.recv().await {
                if !told {
                    log.write(&format!(
                        "-----> Making stack {name} (first use; later builds reuse it)\n"
                    ))
                    .await;
                    told = true;
                }
                log.write(&format!("       {}\n", line.trim_start())).await;
            }
            ensuring
                .await
                .map_err(internal)?
                .map_err(|why| BuildError::StackNotMade {
                    name: name.clone(),
                    why,
                })?;
        }
        let images = self.images.clone();
        let cache = self.stacks.rootfs_dir().to_path_buf();
        let wanted = name.clone();
        let found = tokio::task::spawn_blocking(move || {
            let stack = wharf_stack::list(&images)?
                .into_iter()
                .find(|s| s.name == wanted);
            let Some(wharf_stack::Stack {
                run: Some(run),
                build: Some(build),
                ..
            }) = stack
            else {
                return Ok(None);
            };
            let run = images.image(&run.manifest)?;
            // Held for the whole build: garbage collection leaves a `/` in use alone.
            let held = wharf_stack::rootfs::hold(&cache, &build.manifest)?;
            let build_root = wharf_stack::rootfs::unpack(&images, &build.manifest, &cache)?;
            Ok::<_, wharf_stack::StackError>(Some((build.manifest, run, build_root, held)))
        })
        .await
        .map_err(internal)?
        .map_err(|source| BuildError::StackUnusable {
            name: name.clone(),
            source,
        })?;
        let Some((build, run, build_root, held)) = found else {
            return Err(BuildError::StackMissing { name });
        };
        log.write(&format!(
            "-----> Building on stack {name} (build image {}, run image {})\n",
            build.short(),
            run.manifest_digest.short()
        ))
        .await;
        Ok(Some(OnStack {
            name,
            build,
            run,
            build_root,
            _held: held,
        }))
    }
}

/// Where Debian's administrators put the certificate authorities they add to the system's
/// (`update-ca-certificates` reads them from here).
const HOST_CA_DIR: &str = "/usr/local/share/ca-certificates";

impl OnStack {
    /// The build image's CA bundle plus the authorities added on the host under `host_cas`
    /// (`*.crt`, PEM), written to `out`; `None` when the host added none.
    fn trust_bundle(&self, host_cas: &Path, out: &Path) -> std::io::Result<Option<PathBuf>> {
        let mut added: Vec<PathBuf> = walkdir::WalkDir::new(host_cas)
            .into_iter()
            .filter_map(Result::ok)
            .filter(|e| e.path().extension().is_some_and(|x| x == "crt"))
            .map(|e| e.path().to_path_buf())
            .collect();
        if added.is_empty() {
            return Ok(None);
        }
        added.sort();
        let own = self.build_root.join("etc/ssl/certs/ca-certificates.crt");
        let mut bundle = std::fs::read_to_string(&own).unwrap_or_default();
        for path in added {
            if !bundle.is_empty() && !bundle.ends_with('\n') {
                bundle.push('\n');
            }
            bundle.push_str(&std::fs::read_to_string(&path)?);
        }
        std::fs::write(out, bundle)?;
        Ok(Some(out.to_path_buf()))
    }

    /// Makes `spec` a complete image: the run image's layers below the app's, the launcher
    /// (written under `scratch`) on top as the Entrypoint, a non-root user, the stack's
    /// `PATH` when the build set none, and labels naming the stack and both its images.
    fn complete(
        &self,
        spec: &mut ImageSpec,
        output: &BuildOutput,
        scratch: &Path,
    ) -> std::io::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        use wharf_stack::launch;
        std::fs::create_dir_all(scratch)?;
        let file = scratch.join(launch::LAUNCHER_FILE);
        std::fs::write(&file, launch::script(&output.process_types))?;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o755))?;
        // The run image's layers first, then any the app brings ready-made (its runtime).
        let mut base = self.run.layers();
        base.append(&mut spec.base);
        spec.base = base;
        spec.layers.push(LayerSpec {
            root: scratch.to_path_buf(),
            prefix: launch::LAUNCHER_DIR.to_owned(),
            select: Select::All,
        });
        spec.entrypoint = Some(vec![launch::LAUNCHER.to_owned()]);
        spec.cmd = launch::default_type(&output.process_types).map(|t| vec![t.to_owned()]);
        spec.user = Some(format!("{APP_UID}:{APP_UID}"));
        spec.env
            .entry("PATH".to_owned())
            .or_insert_with(|| wharf_stack::PATH.to_owned());
        spec.labels
            .insert(wharf_stack::LABEL_NAME.to_owned(), self.name.clone());
        spec.labels.insert(
            wharf_stack::LABEL_RUN_IMAGE.to_owned(),
            self.run.manifest_digest.to_string(),
        );
        spec.labels.insert(
            wharf_stack::LABEL_BUILD_IMAGE.to_owned(),
            self.build.to_string(),
        );
        Ok(())
    }
}

/// The user a release image on a stack runs as where the runtime picks none (podman, Docker,
/// Kubernetes); wharf's own backend runs each app as the app's user instead.
const APP_UID: u32 = 1000;

/// The image label holding what wharf uses of the app's `app.json` (JSON).
pub const LABEL_APP_JSON: &str = "dev.wharf.app-json";

/// What the app's `app.json` sets on its first deploy, and config vars it requires that the
/// app lacks (an error naming them), given its current config.
fn first_deploy(
    app_json: Option<&AppJson>,
    config: &wharf_core::config::ConfigVars,
    app: &str,
) -> Result<FirstDeploy, BuildError> {
    let Some(app_json) = app_json else {
        return Ok(FirstDeploy::default());
    };
    let mut out = FirstDeploy::default();
    // Required vars the app lacks, with their descriptions.
    let mut missing: Vec<(&str, Option<&str>)> = Vec::new();
    for (key, var) in &app_json.env {
        if config.get(key).is_some() {
            continue;
        }
        let value = match (&var.value, var.secret) {
            (_, true) => hex::encode(rand::random::<[u8; 32]>()),
            (Some(value), false) => value.clone(),
            (None, false) if var.required => {
                missing.push((key, var.description.as_deref()));
                continue;
            }
            (None, false) => continue,
        };
        let key = ConfigKey::parse(key).map_err(|source| BuildError::AppJsonEnv {
            key: key.clone(),
            source,
        })?;
        out.config.insert(key, value);
    }
    if let Some((first, _)) = missing.first() {
        let named: Vec<String> = missing
            .iter()
            .map(|(key, description)| match description {
                Some(d) => format!("{key} ({d})"),
                None => (*key).to_owned(),
            })
            .collect();
        return Err(BuildError::MissingConfig {
            named: named.join(", "),
            first: (*first).to_owned(),
            app: app.to_owned(),
        });
    }
    for (kind, formation) in &app_json.formation {
        let size = formation
            .size
            .as_deref()
            .map(DynoSize::parse)
            .transpose()
            .map_err(|source| BuildError::AppJsonSize {
                kind: kind.clone(),
                source,
            })?;
        out.formation
            .insert(kind.clone(), (formation.quantity, size));
    }
    Ok(out)
}

/// Dependencies in one layer, the app's code in another: a code-only change reuses the first.
fn image_spec(output: &BuildOutput) -> ImageSpec {
    let mut layers = Vec::new();
    // The language runtime below the dependencies: the same version gives the same layer.
    if !output.runtime_paths.is_empty() {
        layers.push(LayerSpec {
            root: output.app_dir.clone(),
            prefix: "app".to_owned(),
            select: Select::Only(output.runtime_paths.clone()),
        });
    }
    if !output.dependency_paths.is_empty() {
        layers.push(LayerSpec {
            root: output.app_dir.clone(),
            prefix: "app".to_owned(),
            select: Select::Only(output.dependency_paths.clone()),
        });
    }
    let below: Vec<PathBuf> = output
        .runtime_paths
        .iter()
        .chain(&output.dependency_paths)
        .cloned()
        .collect();
    layers.push(LayerSpec {
        root: output.app_dir.clone(),
        prefix: "app".to_owned(),
        select: Select::AllExcept(below),
    });
    let mut labels = BTreeMap::new();
    labels.insert("dev.wharf.provider".to_owned(), output.provider.clone());
    if let Some(app_json) = &output.app_json {
        labels.insert(
            LABEL_APP_JSON.to_owned(),
            serde_json::to_string(app_json).expect("app.json's parts serialize"),
        );
    }
    if let Some(runtime) = &output.runtime {
        labels.insert("dev.wharf.runtime".to_owned(), runtime.clone());
    }
    labels.insert(
        "dev.wharf.process-types".to_owned(),
        serde_json::to_string(&output.process_types).expect("a map of strings serializes"),
    );
    for (kind, command) in &output.process_types {
        labels.insert(format!("dev.wharf.process.{kind}"), command.clone());
    }
    ImageSpec {
        base: Vec::new(),
        layers,
        working_dir: "/app".to_owned(),
        env: output.env.clone(),
        labels,
        cmd: None,
        entrypoint: None,
        user: None,
    }
}

/// An unexpected failure: logged in full (with its causes), shown to the user briefly.
fn internal(error: impl std::error::Error + 'static) -> BuildError {
    let detail = wharf_core::error_chain(&error);
    tracing::error!(error = %detail, "build failed inside wharf");
    let mut chain = error.source();
    while let Some(cause) = chain {
        let full = cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::StorageFull);
        if full {
            return BuildError::Internal(format!(
                "wharf failed: {error}: No space left on device: the server's disk is full; \
                 free some space (`wharf gc` removes unused images) and deploy again"
            ));
        }
        chain = cause.source();
    }
    BuildError::Internal(format!("wharf failed: {error}"))
}
