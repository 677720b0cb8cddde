//! wharf's build stage: it turns an app's checked, unpacked source into a built app tree, plus
//! what the image needs to know about it (process types, env defaults, which paths are the
//! dependency layer). It owns provider detection and the providers (`provider/`, one file each),
//! the build sandbox (`sandbox`, `process_tree`), the per-app build cache (`cache`) and the build
//! log the user reads (`log`). It must not touch the database, HTTP or the image store: the
//! server calls [`build`], streams the log, and packs the image from [`BuildOutput`].
//!
//! Layout of a build's scratch directory (`BuildRequest::work_dir`): `app/` is the app tree (a
//! copy of the source, built in place; `/app` inside the namespaces sandbox), `home/` is the
//! build's `HOME`, `tmp/` its `TMPDIR` without namespaces, `env/` a buildpack's empty `ENV_DIR`.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use tokio::sync::mpsc::UnboundedSender;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use wharf_core::app_json::AppJson;
use wharf_core::procfile::Procfile;

mod cache;
mod error;
mod log;
mod process_tree;
mod provider;
mod runtime;
mod sandbox;
mod toolchain;
mod tree;

pub use error::BuildError;
pub use runtime::{RuntimeSources, NPM_REGISTRY};
pub use sandbox::{ParseSandboxModeError, SandboxMode, APP_MOUNT, SYSTEM_PATH};

use cache::ProviderCache;
use log::BuildLog;
use provider::BuildContext;
use sandbox::{Limits, Sandbox};

/// What to build, and where.
#[derive(Debug, Clone)]
pub struct BuildRequest {
    /// The checked, unpacked source. Only read: the build works on a copy.
    pub source_dir: PathBuf,
    /// An empty scratch directory for this build (created if missing); the app tree is built in
    /// it. The server deletes it afterwards.
    pub work_dir: PathBuf,
    /// `$DATA/cache/<app>`: persistent per app, one subdirectory per provider. Never part of
    /// the app tree.
    pub cache_dir: PathBuf,
    /// The time limit of the whole build (`WHARF_BUILD_TIMEOUT`).
    pub timeout: Duration,
    /// Which sandbox to build in (`WHARF_SANDBOX`).
    pub sandbox: SandboxMode,
    /// Extra variables for build commands. Empty for now: builds never see app config vars.
    pub buildpack_env: BTreeMap<String, String>,
    /// Host directories the namespaces sandbox replaces with an empty directory, so a build
    /// cannot read them (the server passes its data directory: the database, other apps' images
    /// and caches). The parents of `cache_dir` and `work_dir` are always hidden; the build's own
    /// scratch and cache stay visible.
    pub hidden_paths: Vec<PathBuf>,
    /// The app's own user (see `wharf_sandbox::users`), given when wharf runs as root: in the
    /// namespaces sandbox, build commands run as it, and the build's scratch and the app's cache
    /// become its. `None` keeps the server's user.
    pub user: Option<u32>,
    /// The build image's root filesystem (a stack's, unpacked): commands run with it as `/`
    /// and see nothing of the host, with the scratch at `/workspace`, the cache at `/cache` and
    /// the app tree at `/app`. Needs namespaces. `None` builds on the host's `/usr`.
    pub root: Option<PathBuf>,
    /// With `root`: a CA bundle (PEM) mounted over the build image's
    /// `/etc/ssl/certs/ca-certificates.crt`, and named by `SSL_CERT_FILE`, `PIP_CERT`,
    /// `NODE_EXTRA_CA_CERTS` and the like. The server passes the image's own certificates plus
    /// the authorities the host's administrator added, so builds reach package registries
    /// where the host does (through a TLS-inspecting proxy, say). Never part of the image.
    pub trust: Option<PathBuf>,
    /// `cgroup.procs` files (see `wharf_sandbox::cgroup`) every build command joins before it
    /// runs, through wharf's launcher (`wharf cgroup-exec`) when this process is `wharf`.
    pub cgroups: Vec<PathBuf>,
    /// Where language runtimes that don't come with the stack are fetched from and kept.
    pub runtimes: RuntimeSources,
    /// The stack's name, for messages.
    pub stack: String,
    /// The app's settings wharf itself reads during a build, taken from its config vars:
    /// `DISABLE_COLLECTSTATIC`. They never reach build commands, which see no config vars.
    pub switches: BTreeMap<String, String>,
}

/// Config vars that are switches of the build itself (see [`BuildRequest::switches`]).
pub const BUILD_SWITCHES: [&str; 1] = ["DISABLE_COLLECTSTATIC"];

impl BuildRequest {
    /// A request with the default timeout (15 minutes), sandbox mode `auto`, no extra env and
    /// no extra hidden paths.
    pub fn new(source_dir: PathBuf, work_dir: PathBuf, cache_dir: PathBuf) -> Self {
        BuildRequest {
            source_dir,
            work_dir,
            timeout: Duration::from_secs(15 * 60),
            sandbox: SandboxMode::Auto,
            buildpack_env: BTreeMap::new(),
            hidden_paths: Vec::new(),
            user: None,
            root: None,
            trust: None,
            cgroups: Vec::new(),
            runtimes: RuntimeSources::new(
                cache_dir.parent().unwrap_or(&cache_dir).join(".runtimes"),
            ),
            stack: "wharf-1".to_owned(),
            switches: BTreeMap::new(),
            cache_dir,
        }
    }
}

/// A built app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildOutput {
    /// The built app tree (inside `work_dir`); it becomes `/app` in the image.
    pub app_dir: PathBuf,
    /// Paths relative to `app_dir` that form the runtime layer (`.wharf`: a language runtime
    /// that doesn't come with the stack), below the dependency layer.
    pub runtime_paths: Vec<PathBuf>,
    /// Paths relative to `app_dir` that form the dependency layer (`.venv`, `node_modules`);
    /// everything else is the code layer.
    pub dependency_paths: Vec<PathBuf>,
    /// Image env defaults, with paths under `/app` (the image's working dir), e.g. `PATH`.
    pub env: BTreeMap<String, String>,
    /// Process type → command: the Procfile's entries, plus the provider's defaults (and a
    /// buildpack's `default_process_types`) for types the Procfile does not have.
    pub process_types: BTreeMap<String, String>,
    /// The provider that built the app: `bin-build`, `buildpack`, `python`, `node`, `rust`,
    /// `static` or `procfile`.
    pub provider: String,
    /// The language runtime and its version (`python 3.13.5`), when the provider uses one.
    pub runtime: Option<String>,
    /// What wharf uses of the app's `app.json`, when it has one.
    pub app_json: Option<AppJson>,
    /// A name for the exact content of `runtime_paths`: the runtime's versions and the digests
    /// its downloads were checked against, and how wharf lays them out. Two builds with the
    /// same key have byte-identical runtime trees, so their layer can be reused without packing
    /// it again. `None` when that can't be vouched for.
    pub runtime_key: Option<String>,
}

/// Builds `req.source_dir` into an app tree under `req.work_dir`.
///
/// `log` receives the build output as it happens, one line per message, each ending in `\n`.
/// Cancelling `cancel` stops the running command (its whole process tree) and fails the build
/// with [`BuildError::Cancelled`]; running past `req.timeout` does the same with
/// [`BuildError::TimedOut`]. Dropping the returned future kills the running command's processes.
pub async fn build(
    req: BuildRequest,
    log: UnboundedSender<String>,
    cancel: CancellationToken,
) -> Result<BuildOutput, BuildError> {
    let log = BuildLog::new(log);
    let limits = Limits {
        cancel,
        deadline: Instant::now() + req.timeout,
        timeout: req.timeout,
    };
    check_request(&req)?;

    // A broken Procfile fails the build before anything is installed.
    read_procfile(&req.source_dir)?;
    let detected = provider::detect(&req.source_dir).ok_or(BuildError::NoProviderMatched)?;
    log.step(detected.detected());

    let isolation = Sandbox::resolve(req.sandbox, &log).await?;
    if req.root.is_some() && !isolation.is_sandboxed() {
        return Err(BuildError::StackNeedsNamespaces);
    }
    let app_dir = req.work_dir.join("app");
    {
        let app = app_dir.clone();
        tree::blocking(move || tree::remove(&app)).await?;
        tree::copy_source(&req.source_dir, &app_dir).await?;
    }
    let mut hidden = req.hidden_paths.clone();
    hidden.extend(
        [req.cache_dir.parent(), req.work_dir.parent()]
            .into_iter()
            .flatten()
            .filter(|p| deep_enough_to_hide(p))
            .map(Path::to_path_buf),
    );
    let sandbox = Sandbox::new(
        isolation,
        app_dir.clone(),
        req.work_dir.clone(),
        req.cache_dir.clone(),
        hidden,
        req.user,
        req.root.clone(),
    )
    .trusting(req.trust.clone())
    .joining(req.cgroups.clone());
    sandbox.prepare()?;
    let cache = ProviderCache::new(&req.cache_dir, detected.name());
    std::fs::create_dir_all(cache.path())
        .map_err(|e| BuildError::io("create directory", cache.path(), e))?;
    limits.check()?;

    let ctx = BuildContext {
        sandbox: &sandbox,
        log: &log,
        limits: &limits,
        app_dir: &app_dir,
        work_dir: &req.work_dir,
        cache,
        buildpack_env: &req.buildpack_env,
        sources: &req.runtimes,
        stack: &req.stack,
        switches: &req.switches,
    };
    let built = detected.build(&ctx).await?;
    limits.check()?;

    // Read again from the app tree: a build script or buildpack may have written the Procfile.
    let procfile = read_procfile(&app_dir)?;
    let process_types = process_types(&log, detected.name(), procfile, built.default_process_types);
    let app_json = read_app_json(&log, &app_dir)?;
    log.step("Build succeeded");
    Ok(BuildOutput {
        app_dir,
        runtime_paths: built.runtime_paths,
        dependency_paths: built.dependency_paths,
        env: built.env,
        process_types,
        provider: detected.name().to_owned(),
        runtime: built.runtime.map(|r| r.to_string()),
        app_json,
        runtime_key: built.runtime_key,
    })
}

fn check_request(req: &BuildRequest) -> Result<(), BuildError> {
    if !req.source_dir.is_dir() {
        return Err(BuildError::InvalidRequest(format!(
            "the source directory `{}` does not exist",
            req.source_dir.display()
        )));
    }
    for (what, dir) in [("work", &req.work_dir), ("cache", &req.cache_dir)] {
        if !dir.is_absolute() {
            return Err(BuildError::InvalidRequest(format!(
                "the {what} directory `{}` must be an absolute path",
                dir.display()
            )));
        }
    }
    std::fs::create_dir_all(&req.work_dir)
        .map_err(|e| BuildError::io("create directory", &req.work_dir, e))?;
    if req.cache_dir.starts_with(&req.work_dir) || req.work_dir.starts_with(&req.cache_dir) {
        return Err(BuildError::InvalidRequest(format!(
            "the cache directory `{}` and the work directory `{}` must not contain each other",
            req.cache_dir.display(),
            req.work_dir.display()
        )));
    }
    Ok(())
}

/// Only directories at least two levels below `/` are hidden automatically, so a scratch dir
/// directly under `/tmp` or `/var` never hides the whole of `/tmp` or `/var`.
fn deep_enough_to_hide(path: &Path) -> bool {
    path.components()
        .filter(|c| matches!(c, Component::Normal(_)))
        .count()
        >= 2
}

fn read_procfile(dir: &Path) -> Result<Option<Procfile>, BuildError> {
    let path = dir.join("Procfile");
    match std::fs::read_to_string(&path) {
        Ok(text) => Procfile::parse(&text)
            .map(Some)
            .map_err(BuildError::InvalidProcfile),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(BuildError::io("read", path, e)),
    }
}

/// The app's `app.json` (read from the built tree, so a build step may write it), checked.
fn read_app_json(log: &BuildLog, dir: &Path) -> Result<Option<AppJson>, BuildError> {
    let path = dir.join("app.json");
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(BuildError::io("read", path, e)),
    };
    let app = AppJson::parse(&text).map_err(BuildError::InvalidAppJson)?;
    let mut uses = Vec::new();
    if !app.env.is_empty() {
        let keys: Vec<&str> = app.env.keys().map(String::as_str).collect();
        uses.push(format!("env {}", keys.join(", ")));
    }
    if !app.formation.is_empty() {
        let kinds: Vec<&str> = app.formation.keys().map(String::as_str).collect();
        uses.push(format!("formation {}", kinds.join(", ")));
    }
    if app.postdeploy.is_some() {
        uses.push("scripts.postdeploy".to_owned());
    }
    if let Some(check) = &app.web_healthcheck {
        uses.push(format!("web health check {}", check.path));
    }
    log.step("Reading app.json");
    if uses.is_empty() {
        log.note(
            "nothing in it that wharf uses (env, formation, scripts.postdeploy, healthchecks)",
        );
    } else {
        log.note(&format!("uses: {}", uses.join("; ")));
    }
    Ok(Some(app))
}

/// The Procfile's entries, plus the provider's defaults for the types it does not name.
fn process_types(
    log: &BuildLog,
    provider: &str,
    procfile: Option<Procfile>,
    defaults: BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    log.step("Discovering process types");
    let mut types = BTreeMap::new();
    if let Some(procfile) = &procfile {
        for entry in procfile.entries() {
            types.insert(entry.process_type.to_string(), entry.command.clone());
        }
        let names: Vec<&str> = procfile.process_types().map(|t| t.as_str()).collect();
        log.note(&format!("Procfile declares types -> {}", names.join(", ")));
    }
    let mut added = Vec::new();
    for (name, command) in defaults {
        if let std::collections::btree_map::Entry::Vacant(slot) = types.entry(name) {
            added.push(slot.key().clone());
            slot.insert(command);
        }
    }
    if !added.is_empty() {
        log.note(&format!(
            "Default types for {provider} -> {}",
            added.join(", ")
        ));
    }
    if !types.contains_key("web") {
        log.note(
            "no `web` process type: add `web: <command>` to the Procfile if the app serves HTTP",
        );
    }
    types
}
