//! Python apps: `requirements.txt` (`pip install -r`) or `pyproject.toml` (`pip install .`),
//! installed into a virtualenv at `.venv` in the app tree, which is the dependency layer.
//!
//! The interpreter is the one the app asks for (`runtime::python`): one of the stack's, or a
//! prebuilt CPython from the operator's source, copied to `.wharf/python` (the runtime layer).
//! Then, as Heroku's Python support does: `bin/pre_compile`, the install, Django's
//! `collectstatic` (when the app is a Django project with `STATIC_ROOT`; `DISABLE_COLLECTSTATIC=1`
//! skips it), `bin/post_compile`.
//!
//! pip's cache lives in `cache/python/pip`. After an install the venv is saved to the cache with
//! the hash of its inputs (the requirements file and the interpreter's path and version); a later
//! build with the same hash copies it back instead of running pip, and another interpreter
//! misses it (for `pyproject.toml` the app's own package is then reinstalled with `--no-deps`,
//! since its code may have changed).
//!
//! Scripts pip writes to `.venv/bin` start with the absolute path of the interpreter it was built
//! at; they are rewritten to `#!/usr/bin/env python3`, which finds the venv's interpreter through
//! the image's `PATH` (`/app/.venv/bin` first), so the venv works wherever the app tree is run.

use std::path::{Path, PathBuf};

use super::{has_file, BuildContext, Provider, ProviderOutput};
use crate::cache::inputs_hash;
use crate::error::BuildError;
use crate::runtime::fetch::{Digest, Fetcher};
use crate::runtime::python::{self as py, Offer, Pick, Request, Version, Want};
use crate::runtime::{Chosen, RUNTIME_DIR};
use crate::sandbox::SandboxCommand;
use crate::{toolchain, tree};

pub(crate) struct Python;

const VENV: &str = ".venv";
const PORTABLE_SHEBANG: &str = "#!/usr/bin/env python3";
/// Where a downloaded Python goes in the app tree.
const DOWNLOADED: &str = ".wharf/python";
/// The newest patch of a minor version wharf looks for at a Python source.
const MAX_PATCH: u64 = 40;

impl Provider for Python {
    const NAME: &'static str = "python";

    fn detect(&self, source: &Path) -> bool {
        ["requirements.txt", "pyproject.toml", "Pipfile"]
            .iter()
            .any(|f| has_file(source, f))
    }

    fn detected(&self) -> &'static str {
        "Python app detected"
    }

    async fn build(&self, ctx: &BuildContext<'_>) -> Result<ProviderOutput, BuildError> {
        let request = py::requested(ctx.app_dir)?;
        let (program, chosen, origin) = interpreter(ctx, request.as_ref()).await?;
        let downloaded = matches!(origin, Origin::Source { .. });
        let manager = Manager::of(ctx.app_dir);
        let mut inputs: Vec<Vec<u8>> = vec![
            CACHE_FORMAT.to_vec(),
            program.clone().into_bytes(),
            chosen.version.clone().into_bytes(),
        ];
        for file in manager.inputs() {
            let path = ctx.app_dir.join(file);
            match std::fs::read(&path) {
                Ok(text) => inputs.push([file.as_bytes(), b"\0", &text].concat()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(BuildError::io("read", &path, e)),
            }
        }
        let parts: Vec<&[u8]> = inputs.iter().map(Vec::as_slice).collect();
        let hash = inputs_hash(&parts);

        hook(ctx, "bin/pre_compile").await?;
        let venv_dir = ctx.app_dir.join(VENV);
        if venv_dir.exists() {
            ctx.log
                .note("removing the .venv that came with the source: it is rebuilt here");
            tree::remove(&venv_dir)?;
        }
        let pip = |step: &str| {
            SandboxCommand::new(step, ctx.app_path(".venv/bin/python"))
                .args(["-m", "pip", "install", "--progress-bar", "off"])
                .env("PIP_CACHE_DIR", ctx.cache.path().join("pip"))
                .env("PIP_DISABLE_PIP_VERSION_CHECK", "1")
                .env("PIP_NO_INPUT", "1")
        };

        if ctx.cache.restore("venv", &hash, &venv_dir).await? {
            ctx.log.step(&format!(
                "{} unchanged: restored .venv from the build cache ({} install skipped)",
                manager.lockfile(),
                manager.name()
            ));
            if manager == Manager::PipProject {
                ctx.log
                    .step("Installing the app's package with pip (--no-deps)");
                pip_install(
                    ctx,
                    pip("pip install --no-deps .").args(["--no-deps", "."]),
                    &chosen,
                )
                .await?;
                make_portable(ctx)?;
            }
        } else {
            ctx.log.step(&format!(
                "Creating virtualenv .venv with Python {}",
                chosen.version
            ));
            let venv = SandboxCommand::new("python -m venv", &program)
                .args(["-m", "venv"])
                .arg(ctx.app_path(VENV));
            ctx.run(venv).await?;
            match manager {
                Manager::Pip => {
                    ctx.log.step("Installing requirements with pip");
                    pip_install(
                        ctx,
                        pip("pip install -r requirements.txt").args(["-r", "requirements.txt"]),
                        &chosen,
                    )
                    .await?;
                }
                Manager::PipProject => {
                    ctx.log.step("Installing the app with pip (pyproject.toml)");
                    pip_install(ctx, pip("pip install .").arg("."), &chosen).await?;
                }
                tool => {
                    let exe = install_tool(ctx, tool, &program, &chosen).await?;
                    let args = tool.install_args(ctx.app_dir);
                    let step = format!("{} {}", tool.name(), args.join(" "));
                    ctx.log
                        .step(&format!("Installing dependencies with {step}"));
                    let cmd = SandboxCommand::new(&step, exe)
                        .args(args)
                        .env("VIRTUAL_ENV", ctx.app_path(VENV))
                        .env("PIP_CACHE_DIR", ctx.cache.path().join("pip"))
                        .env("PIP_DISABLE_PIP_VERSION_CHECK", "1")
                        .env("UV_PROJECT_ENVIRONMENT", ctx.app_path(VENV))
                        .env("UV_PYTHON", ctx.app_path(".venv/bin/python"))
                        .env("UV_PYTHON_DOWNLOADS", "never")
                        .env("UV_CACHE_DIR", ctx.cache.path().join("uv"))
                        .env("UV_LINK_MODE", "copy")
                        .env("UV_NO_PROGRESS", "1")
                        .env("POETRY_VIRTUALENVS_IN_PROJECT", "true")
                        .env("POETRY_VIRTUALENVS_CREATE", "true")
                        .env("POETRY_CACHE_DIR", ctx.cache.path().join("poetry"))
                        .env("POETRY_NO_INTERACTION", "1")
                        .env("PIPENV_VENV_IN_PROJECT", "1")
                        .env("PIPENV_NOSPIN", "1")
                        .env("PIPENV_YES", "1")
                        .env("PIPENV_CACHE_DIR", ctx.cache.path().join("pipenv"))
                        .path_prefix(&[ctx.app_path(".venv/bin")]);
                    ctx.run(cmd).await?;
                }
            }
            make_portable(ctx)?;
            ctx.cache.save("venv", &hash, &venv_dir).await?;
        }
        collectstatic(ctx).await?;
        hook(ctx, "bin/post_compile").await?;

        let mut prefix = vec!["/app/.venv/bin"];
        if downloaded {
            prefix.push("/app/.wharf/python/bin");
        }
        let mut output = ProviderOutput::with_path(&prefix).web(web_command(ctx));
        output
            .env
            .insert("PYTHONUNBUFFERED".to_owned(), "1".to_owned());
        output.dependency_paths.push(VENV.into());
        if let Origin::Source { key } = origin {
            output.runtime_paths.push(RUNTIME_DIR.into());
            output.runtime_key = key;
        }
        output.runtime = Some(chosen);
        Ok(output)
    }
}

/// Changes when what the venv cache holds changes shape, so older entries miss.
const CACHE_FORMAT: &[u8] = b"python-venv-2";

/// How the app's dependencies are installed, chosen by its files as Heroku chooses: `uv.lock`,
/// then `poetry.lock`, then `Pipfile.lock` or `Pipfile`, then `requirements.txt`, then a bare
/// `pyproject.toml`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Manager {
    Uv,
    Poetry,
    Pipenv,
    Pip,
    PipProject,
}

impl Manager {
    fn of(dir: &Path) -> Manager {
        if has_file(dir, "uv.lock") {
            Manager::Uv
        } else if has_file(dir, "poetry.lock") {
            Manager::Poetry
        } else if has_file(dir, "Pipfile.lock") || has_file(dir, "Pipfile") {
            Manager::Pipenv
        } else if has_file(dir, "requirements.txt") {
            Manager::Pip
        } else {
            Manager::PipProject
        }
    }

    fn name(self) -> &'static str {
        match self {
            Manager::Uv => "uv",
            Manager::Poetry => "poetry",
            Manager::Pipenv => "pipenv",
            Manager::Pip | Manager::PipProject => "pip",
        }
    }

    /// The file that decides what is installed, for messages.
    fn lockfile(self) -> &'static str {
        match self {
            Manager::Uv => "uv.lock",
            Manager::Poetry => "poetry.lock",
            Manager::Pipenv => "Pipfile.lock",
            Manager::Pip => "requirements.txt",
            Manager::PipProject => "pyproject.toml",
        }
    }

    /// The files a cached venv must have been built from.
    fn inputs(self) -> &'static [&'static str] {
        match self {
            Manager::Uv => &["uv.lock", "pyproject.toml"],
            Manager::Poetry => &["poetry.lock", "pyproject.toml"],
            Manager::Pipenv => &["Pipfile.lock", "Pipfile"],
            Manager::Pip => &["requirements.txt"],
            Manager::PipProject => &["pyproject.toml"],
        }
    }

    /// The PyPI package the tool comes in.
    fn package(self) -> &'static str {
        self.name()
    }

    /// The install into `.venv`, main dependencies only, from the lockfile as it is.
    fn install_args(self, dir: &Path) -> Vec<&'static str> {
        match self {
            Manager::Uv => vec!["sync", "--locked", "--no-dev"],
            Manager::Poetry => vec!["install", "--only", "main", "--no-root"],
            Manager::Pipenv if has_file(dir, "Pipfile.lock") => vec!["install", "--deploy"],
            Manager::Pipenv => vec!["install", "--skip-lock"],
            Manager::Pip | Manager::PipProject => vec![],
        }
    }
}

/// The package manager (uv, Poetry, Pipenv) installed with pip into its own venv in the build
/// cache, once per Python version; returns its program as build commands see it.
async fn install_tool(
    ctx: &BuildContext<'_>,
    tool: Manager,
    python: &str,
    chosen: &Chosen,
) -> Result<PathBuf, BuildError> {
    let home = ctx
        .cache
        .path()
        .join("tools")
        .join(format!("{}-{}", tool.name(), chosen.version));
    let exe = home.join("bin").join(tool.name());
    // Written last: a venv without it was cut short and is made again.
    let complete = home.join(".wharf-complete");
    if complete.exists() {
        let version = ctx
            .output(
                SandboxCommand::new(format!("{} --version", tool.name()), &exe).arg("--version"),
                &format!("{} --version", tool.name()),
            )
            .await?;
        ctx.log.step(&format!(
            "Using {} (kept in the build cache)",
            version.trim()
        ));
        return Ok(exe);
    }
    ctx.log.step(&format!(
        "Installing {} with pip (kept in the build cache for later builds)",
        tool.name()
    ));
    tree::remove(&home)?;
    ctx.run(
        SandboxCommand::new("python -m venv", python)
            .args(["-m", "venv"])
            .arg(&home),
    )
    .await?;
    ctx.run(
        SandboxCommand::new(
            format!("pip install {}", tool.package()),
            home.join("bin/python"),
        )
        .args([
            "-m",
            "pip",
            "install",
            "--progress-bar",
            "off",
            tool.package(),
        ])
        .env("PIP_CACHE_DIR", ctx.cache.path().join("pip"))
        .env("PIP_DISABLE_PIP_VERSION_CHECK", "1"),
    )
    .await?;
    std::fs::write(&complete, b"").map_err(|e| BuildError::io("write", &complete, e))?;
    Ok(exe)
}

/// Where the build's Python came from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Origin {
    /// The stack's (or the host's, on `wharf-1`).
    Stack,
    /// Downloaded from the Python source into the app tree; `key` names its archive exactly
    /// when the source published a digest (see [`crate::BuildOutput::runtime_key`]).
    Source { key: Option<String> },
}

/// The interpreter to build with (as build commands name it), the version it is, and where it
/// came from.
async fn interpreter(
    ctx: &BuildContext<'_>,
    request: Option<&Request>,
) -> Result<(String, Chosen, Origin), BuildError> {
    let offers = stack_pythons(ctx).await?;
    let asked = request
        .map(|r| format!(" (asked for by {}: {})", r.file, r.asked))
        .unwrap_or_default();
    let source = ctx.sources.python_url.as_deref();
    let from_stack = |offer: Offer, note: Option<String>| {
        ctx.log.step(&format!(
            "Using Python {} from the stack {}{asked}",
            offer.version, ctx.stack
        ));
        if let Some(note) = note {
            ctx.log.note(&note);
        }
        let chosen = Chosen {
            name: "python",
            version: offer.version.to_string(),
        };
        Ok((offer.program, chosen, Origin::Stack))
    };
    let pick = py::pick(request, &offers);
    let Some(request) = request else {
        return match pick {
            Pick::Stack(offer) => from_stack(offer, None),
            _ => Err(BuildError::ToolMissing {
                tool: "python3",
                hint: "install Python 3 with the venv module on the wharf host \
                       (`apt-get install python3 python3-venv`)",
            }),
        };
    };
    match (pick, source) {
        (Pick::Stack(offer), _) => from_stack(offer, None),
        (Pick::SameMinor(offer), None) => {
            let note = format!(
                "{} asks for exactly {}; the stack's {} is the same minor version (Debian's, \
                 with its security fixes). For exactly {}, the operator can set WHARF_PYTHON_URL",
                request.file, request.asked, offer.version, request.asked
            );
            from_stack(offer, Some(note))
        }
        (Pick::SameMinor(offer), Some(url)) => {
            let Want::Exact(exact) = request.want else {
                unreachable!("SameMinor answers an exact request")
            };
            match download(ctx, url, exact, &asked).await? {
                Some(found) => Ok(found),
                None => {
                    let note = format!(
                        "the Python source has no {exact}; the stack's {} is the same minor version",
                        offer.version
                    );
                    from_stack(offer, Some(note))
                }
            }
        }
        (Pick::Missing, Some(url)) => {
            let found = match &request.want {
                Want::Exact(exact) => download(ctx, url, *exact, &asked).await?,
                Want::Minor(major, minor) => match newest_patch(ctx, url, *major, *minor).await? {
                    Some(version) => download(ctx, url, version, &asked).await?,
                    None => None,
                },
                Want::Range(_) => None,
            };
            found.ok_or_else(|| unavailable(ctx, request, &offers, true))
        }
        (Pick::Missing, None) => Err(unavailable(ctx, request, &offers, false)),
    }
}

fn unavailable(
    ctx: &BuildContext<'_>,
    request: &Request,
    offers: &[Offer],
    source: bool,
) -> BuildError {
    let versions: Vec<String> = offers.iter().map(|o| o.version.to_string()).collect();
    let have = format!(
        "the stack {} has Python {}{}",
        ctx.stack,
        if versions.is_empty() {
            "(none)".to_owned()
        } else {
            versions.join(", ")
        },
        if source {
            ", and the Python source (WHARF_PYTHON_URL) has no such version"
        } else {
            ""
        }
    );
    let range_hint = if matches!(request.want, Want::Range(_)) && source {
        " (a version range is met from the stack only: name a version in .python-version to \
         download it)"
    } else {
        ""
    };
    let fix = format!(
        "Ask for one it has in {}{range_hint}, move the app to a stack that has the version \
         (wharf's stacks: {}; `wharf stack:set NAME -a APP`){}",
        request.file,
        py::WHARF_STACK_PYTHONS,
        if source {
            ""
        } else {
            ", or have the operator set WHARF_PYTHON_URL to a source of prebuilt CPython archives"
        }
    );
    BuildError::RuntimeUnavailable {
        runtime: "Python",
        asked: request.asked.clone(),
        file: request.file,
        have,
        fix,
    }
}

/// The Pythons of the build's root (the stack's build image, or the host): `python3` first,
/// then every `python3.N` in `/usr/bin`, each with its version. One command asks them all.
async fn stack_pythons(ctx: &BuildContext<'_>) -> Result<Vec<Offer>, BuildError> {
    let tools = toolchain::python(ctx.sandbox.root()).await?;
    let usr_bin = ctx.sandbox.root().unwrap_or(Path::new("/")).join("usr/bin");
    let mut programs = vec!["python3".to_owned()];
    if let Ok(entries) = std::fs::read_dir(&usr_bin) {
        let mut versioned: Vec<String> = entries
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| {
                n.strip_prefix("python3.")
                    .is_some_and(|m| !m.is_empty() && m.chars().all(|c| c.is_ascii_digit()))
            })
            .collect();
        versioned.sort();
        programs.extend(versioned.into_iter().map(|n| format!("/usr/bin/{n}")));
    }
    let probe = SandboxCommand::new("python3 --version", "sh")
        .arg("-c")
        .arg(
            "for p in \"$@\"; do \"$p\" -c 'import sys; \
             print(sys.executable, \"%d.%d.%d\" % sys.version_info[:3])' 2>/dev/null; done; true",
        )
        .arg("sh")
        .args(&programs)
        .path_prefix(&tools);
    let out = ctx.output(probe, "python3 --version").await?;
    let mut offers: Vec<Offer> = Vec::new();
    for line in out.lines() {
        let Some((program, version)) = line.rsplit_once(' ') else {
            continue;
        };
        let Some(version) = Version::parse(version) else {
            continue;
        };
        match offers.iter_mut().find(|o| o.version == version) {
            // `/usr/bin/python3.13` for `/usr/bin/python3`: the same interpreter, by a name
            // that stays when the default moves on.
            Some(o) if o.program.ends_with("/python3") => o.program = program.to_owned(),
            Some(_) => {}
            None => offers.push(Offer {
                program: program.to_owned(),
                version,
            }),
        }
    }
    Ok(offers)
}

fn source_url(template: &str, version: Version) -> String {
    template
        .replace("{version}", &version.to_string())
        .replace("{minor}", &format!("{}.{}", version.0, version.1))
}

/// The newest `major.minor.N` the source has (asking for each patch, eight at a time).
async fn newest_patch(
    ctx: &BuildContext<'_>,
    template: &str,
    major: u64,
    minor: u64,
) -> Result<Option<Version>, BuildError> {
    use futures_util::{stream, StreamExt, TryStreamExt};
    ctx.log.note(&format!(
        "looking for the newest Python {major}.{minor}.x at the Python source"
    ));
    let fetcher = Fetcher::new(&ctx.sources.cache_dir, ctx.log, ctx.limits)?;
    let found: Vec<Option<Version>> = stream::iter((0..=MAX_PATCH).map(|patch| {
        let version = Version(major, minor, patch);
        let url = source_url(template, version);
        let fetcher = &fetcher;
        async move {
            let there = fetcher.exists(&format!("Python {version}"), &url).await?;
            Ok::<_, BuildError>(there.then_some(version))
        }
    }))
    .buffer_unordered(8)
    .try_collect()
    .await?;
    Ok(found.into_iter().flatten().max())
}

/// Python `version` from the source, copied into the app tree; `None` when the source has
/// no such archive.
async fn download(
    ctx: &BuildContext<'_>,
    template: &str,
    version: Version,
    asked: &str,
) -> Result<Option<(String, Chosen, Origin)>, BuildError> {
    if !ctx.sandbox.is_sandboxed() {
        return Err(BuildError::InvalidRequest(format!(
            "Python {version} has to be downloaded, which needs the namespaces sandbox (its \
             virtualenv refers to /app): install bubblewrap, or ask for the host's Python"
        )));
    }
    let fetcher = Fetcher::new(&ctx.sources.cache_dir, ctx.log, ctx.limits)?;
    let what = format!("Python {version}");
    let url = source_url(template, version);
    if !fetcher.exists(&what, &url).await? {
        return Ok(None);
    }
    let digest = match fetcher.text(&what, &format!("{url}.sha256")).await? {
        Some(text) => Digest::Sha256(
            text.split_whitespace()
                .next()
                .unwrap_or_default()
                .to_owned(),
        ),
        None => Digest::Unpublished,
    };
    // Kept by version and archive: a source that publishes a rebuilt archive of the same
    // version gets it downloaded again.
    let archive_id = match &digest {
        Digest::Sha256(hex) => hex.chars().take(16).collect::<String>(),
        _ => crate::cache::inputs_hash(&[url.as_bytes()])[..16].to_owned(),
    };
    let dir = fetcher
        .unpacked(
            &what,
            "python",
            &format!("{version}-{archive_id}"),
            &url,
            &digest,
        )
        .await?;
    ctx.log.step(&format!(
        "Using Python {version} from the Python source{asked}"
    ));
    let home = python_home(&dir).ok_or_else(|| BuildError::Download {
        what: what.clone(),
        url: url.clone(),
        reason: "the archive holds no bin/python3 (at its top or in one directory)".to_owned(),
    })?;
    let into = ctx.app_dir.join(DOWNLOADED);
    tree::remove(&into)?;
    let from = home.clone();
    let to = into.clone();
    tree::blocking(move || tree::copy_tree(&from, &to)).await?;
    let program = ctx.app_path(&format!("{DOWNLOADED}/bin/python3"));
    let reported = ctx
        .output(
            SandboxCommand::new("python3 --version", &program)
                .arg("-c")
                .arg("import sys; print(\"%d.%d.%d\" % sys.version_info[:3])"),
            "python3 --version",
        )
        .await?;
    if Version::parse(&reported) != Some(version) {
        return Err(BuildError::Download {
            what,
            url,
            reason: format!(
                "the archive's interpreter says it is Python {}, not {version}",
                reported.trim()
            ),
        });
    }
    let chosen = Chosen {
        name: "python",
        version: version.to_string(),
    };
    let key = match &digest {
        Digest::Sha256(hex) => Some(format!("wharf-python-runtime-1 {version} sha256:{hex}")),
        _ => None,
    };
    Ok(Some((
        program.to_string_lossy().into_owned(),
        chosen,
        Origin::Source { key },
    )))
}

/// Where `bin/python3` is in an unpacked archive: at its top, or in its one directory
/// (python-build-standalone's `python/`).
fn python_home(dir: &Path) -> Option<PathBuf> {
    if dir.join("bin/python3").exists() {
        return Some(dir.to_path_buf());
    }
    let mut subdirs = std::fs::read_dir(dir).ok()?.filter_map(Result::ok);
    let only = subdirs.next()?;
    if subdirs.next().is_some() {
        return None;
    }
    let home = only.path();
    home.join("bin/python3").exists().then_some(home)
}

/// Runs pip; when it fails because a dependency needs another Python, says so.
async fn pip_install(
    ctx: &BuildContext<'_>,
    cmd: SandboxCommand,
    chosen: &Chosen,
) -> Result<(), BuildError> {
    let mut needs: Option<String> = None;
    let result = ctx
        .run_seeing(cmd, &mut |line| {
            if needs.is_none() && line.contains("require a different python version") {
                needs = Some(line.trim().to_owned());
            }
        })
        .await;
    match (result, needs) {
        (Err(BuildError::CommandFailed { step, .. }), Some(line)) => {
            let detail: String = line.chars().take(300).collect();
            Err(BuildError::StepFailed {
                step,
                reason: format!(
                    "a dependency needs a different Python than {chosen} (pip: {detail})"
                ),
                fix: "ask for a Python the dependency supports in .python-version (for example \
                      `3.13`), or pin a version of the dependency that supports this one"
                    .to_owned(),
            })
        }
        (result, _) => result,
    }
}

/// Runs `bin/pre_compile` or `bin/post_compile` when the app has it.
async fn hook(ctx: &BuildContext<'_>, rel: &str) -> Result<(), BuildError> {
    let path = ctx.app_dir.join(rel);
    if !path.is_file() {
        return Ok(());
    }
    if !tree::is_executable(&path) {
        return Err(BuildError::NotExecutable {
            path: rel.to_owned(),
        });
    }
    ctx.log.step(&format!("Running {rel}"));
    let cmd = SandboxCommand::new(rel, ctx.app_path(rel))
        .path_prefix(&[ctx.app_path(".venv/bin")])
        .raw_output();
    ctx.run(cmd).await
}

/// Django's `collectstatic`, as Heroku runs it: when `manage.py` is there, Django is installed,
/// `django.contrib.staticfiles` is an installed app and `STATIC_ROOT` is set.
async fn collectstatic(ctx: &BuildContext<'_>) -> Result<(), BuildError> {
    if !has_file(ctx.app_dir, "manage.py") {
        return Ok(());
    }
    if ctx
        .switches
        .get("DISABLE_COLLECTSTATIC")
        .is_some_and(|v| v == "1")
    {
        ctx.log
            .step("Skipping Django collectstatic (DISABLE_COLLECTSTATIC=1)");
        return Ok(());
    }
    let python = ctx.app_path(".venv/bin/python");
    let check = SandboxCommand::new("manage.py shell", &python)
        .args(["-c", "import django"])
        .env("PYTHONDONTWRITEBYTECODE", "1");
    let (status, _) = ctx.sandbox.output(&check, ctx.limits).await?;
    if !status.success() {
        return Ok(()); // manage.py without Django: not a Django app
    }
    let fix = "fix what it reports (builds don't see config vars, so settings must import \
               without them), or skip collectstatic with `wharf config set \
               DISABLE_COLLECTSTATIC=1`";
    let probe = SandboxCommand::new("manage.py shell (STATIC_ROOT)", &python)
        .args([
            "manage.py",
            "shell",
            "-c",
            "from django.conf import settings; \
             print('wharf:static', bool(getattr(settings, 'STATIC_ROOT', None)) and \
             'django.contrib.staticfiles' in settings.INSTALLED_APPS)",
        ])
        .env("PYTHONDONTWRITEBYTECODE", "1");
    let (status, out) = ctx.sandbox.output(&probe, ctx.limits).await?;
    if !status.success() {
        ctx.log
            .step("Django collectstatic: the settings don't load");
        for line in out.lines() {
            ctx.log.note(line);
        }
        return Err(BuildError::StepFailed {
            step: "manage.py collectstatic".to_owned(),
            reason: "loading the Django settings failed".to_owned(),
            fix: fix.to_owned(),
        });
    }
    if !out.lines().any(|l| l.trim() == "wharf:static True") {
        ctx.log.step(
            "Skipping Django collectstatic: no STATIC_ROOT (or django.contrib.staticfiles isn't installed)",
        );
        return Ok(());
    }
    ctx.log
        .step("Running Django collectstatic (python manage.py collectstatic --noinput)");
    let run = SandboxCommand::new("manage.py collectstatic", &python)
        .args(["manage.py", "collectstatic", "--noinput"])
        .env("PYTHONDONTWRITEBYTECODE", "1");
    match ctx.run(run).await {
        Err(BuildError::CommandFailed { step, status }) => Err(BuildError::StepFailed {
            step,
            reason: format!("it exited with {status}; its output is above"),
            fix: fix.to_owned(),
        }),
        other => other,
    }
}

/// Rewrites `.venv/bin` script shebangs that name the build-time interpreter path.
fn make_portable(ctx: &BuildContext<'_>) -> Result<(), BuildError> {
    let built_at = ctx.app_path(".venv/bin/python");
    let built_at = built_at.to_string_lossy();
    let bin = ctx.app_dir.join(".venv/bin");
    let rewritten = rewrite_shebangs(&bin, &built_at)?;
    if rewritten > 0 {
        ctx.log.note(&format!(
            "rewrote {rewritten} script(s) in .venv/bin to start with `{PORTABLE_SHEBANG}` so the \
             virtualenv runs from /app"
        ));
    }
    Ok(())
}

/// Rewrites every script in `bin` whose interpreter is under `python_prefix` (pip's plain
/// `#!/path/python` and its `/bin/sh` launcher for long paths); returns how many it changed.
pub(crate) fn rewrite_shebangs(bin: &Path, python_prefix: &str) -> Result<usize, BuildError> {
    let entries = std::fs::read_dir(bin).map_err(|e| BuildError::io("read", bin, e))?;
    let mut count = 0;
    for entry in entries {
        let entry = entry.map_err(|e| BuildError::io("read", bin, e))?;
        let path = entry.path();
        let is_file = entry.file_type().map(|t| t.is_file()).unwrap_or(false);
        if !is_file {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue; // binaries are not scripts
        };
        if let Some(new) = portable_script(&text, python_prefix) {
            std::fs::write(&path, new).map_err(|e| BuildError::io("write", &path, e))?;
            count += 1;
        }
    }
    Ok(count)
}

fn portable_script(text: &str, python_prefix: &str) -> Option<String> {
    let (first, rest) = text.split_once('\n')?;
    if first
        .strip_prefix("#!")
        .is_some_and(|i| i.trim_start().starts_with(python_prefix))
    {
        return Some(format!("{PORTABLE_SHEBANG}\n{rest}"));
    }
    // pip's launcher when the interpreter path is too long for a shebang:
    //   #!/bin/sh
    //   '''exec' "/long/path/python" "$0" "$@"
    //   ' '''
    if first == "#!/bin/sh" {
        let (second, rest) = rest.split_once('\n')?;
        let (third, rest) = rest.split_once('\n')?;
        let exec = second.strip_prefix("'''exec' ")?;
        let exec = exec.strip_prefix('"').unwrap_or(exec);
        if exec.starts_with(python_prefix) && third == "' '''" {
            return Some(format!("{PORTABLE_SHEBANG}\n{rest}"));
        }
    }
    None
}

/// `gunicorn` serving the app's WSGI module, when gunicorn is a dependency and the module can be
/// told from the files; otherwise a hint in the log and no default.
fn web_command(ctx: &BuildContext<'_>) -> Option<String> {
    let read = |rel: &str| std::fs::read_to_string(ctx.app_dir.join(rel)).ok();
    let uses_gunicorn = read("requirements.txt").is_some_and(|r| requirements_name(&r, "gunicorn"))
        || read("pyproject.toml").is_some_and(|p| p.contains("gunicorn"))
        || read("Pipfile").is_some_and(|p| requirements_name(&p, "gunicorn"));
    if !uses_gunicorn {
        return None;
    }
    let target = wsgi_target(ctx.app_dir);
    match target {
        Some(target) => Some(format!("gunicorn --bind 0.0.0.0:$PORT {target}")),
        None => {
            ctx.log.note(
                "gunicorn is installed but wharf could not tell which module holds the app: add \
                 `web: gunicorn --bind 0.0.0.0:$PORT module:app` to the Procfile",
            );
            None
        }
    }
}

/// Whether `requirements` names the distribution `name` (any version or extras).
fn requirements_name(requirements: &str, name: &str) -> bool {
    requirements.lines().any(|line| {
        let line = line.split('#').next().unwrap_or("").trim();
        let dist = line
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.'))
            .next()
            .unwrap_or("");
        dist.eq_ignore_ascii_case(name)
    })
}

/// The gunicorn `module:callable` of the app: `wsgi.py`, then `app.py`/`main.py` defining
/// `app`, then a Django project's `<project>/wsgi.py` next to `manage.py`.
fn wsgi_target(app_dir: &Path) -> Option<String> {
    let read = |rel: &str| std::fs::read_to_string(app_dir.join(rel)).ok();
    let defines = |text: &str, name: &str| {
        text.lines().any(|l| {
            l.strip_prefix(name).is_some_and(|r| {
                r.trim_start().starts_with('=') && !r.trim_start().starts_with("==")
            })
        })
    };
    if let Some(text) = read("wsgi.py") {
        if defines(&text, "application") {
            return Some("wsgi:application".to_owned());
        }
        if defines(&text, "app") {
            return Some("wsgi:app".to_owned());
        }
    }
    for module in ["app", "main"] {
        if read(&format!("{module}.py")).is_some_and(|t| defines(&t, "app")) {
            return Some(format!("{module}:app"));
        }
    }
    if app_dir.join("manage.py").is_file() {
        let projects: Vec<String> = std::fs::read_dir(app_dir)
            .ok()?
            .filter_map(Result::ok)
            .filter(|e| e.path().join("wsgi.py").is_file())
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        if let [project] = projects.as_slice() {
            return Some(format!("{project}.wsgi"));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_shebang_is_rewritten() {
        let s = "#!/app/.venv/bin/python3\nimport sys\n";
        assert_eq!(
            portable_script(s, "/app/.venv/bin/python").unwrap(),
            "#!/usr/bin/env python3\nimport sys\n"
        );
        assert!(portable_script("#!/usr/bin/python3\nx\n", "/app/.venv/bin/python").is_none());
        assert!(portable_script("no shebang\n", "/app/.venv/bin/python").is_none());
    }

    #[test]
    fn long_path_launcher_is_rewritten() {
        let s = "#!/bin/sh\n'''exec' \"/very/long/.venv/bin/python3\" \"$0\" \"$@\"\n' '''\n\
                 # -*- coding: utf-8 -*-\nimport re\n";
        assert_eq!(
            portable_script(s, "/very/long/.venv/bin/python").unwrap(),
            "#!/usr/bin/env python3\n# -*- coding: utf-8 -*-\nimport re\n"
        );
    }

    #[test]
    fn gunicorn_requirement_is_recognised() {
        assert!(requirements_name("flask\ngunicorn==21.2\n", "gunicorn"));
        assert!(requirements_name(
            "Gunicorn[gevent]>=20 # web\n",
            "gunicorn"
        ));
        assert!(!requirements_name(
            "gunicorn-extras\n# gunicorn\n",
            "gunicorn"
        ));
    }

    #[test]
    fn wsgi_module_is_inferred() {
        let tmp = tempfile::tempdir().unwrap();
        assert_eq!(wsgi_target(tmp.path()), None);
        std::fs::write(
            tmp.path().join("app.py"),
            "from flask import Flask\napp = Flask(__name__)\n",
        )
        .unwrap();
        assert_eq!(wsgi_target(tmp.path()).as_deref(), Some("app:app"));
        std::fs::write(tmp.path().join("wsgi.py"), "application = make()\n").unwrap();
        assert_eq!(wsgi_target(tmp.path()).as_deref(), Some("wsgi:application"));

        let django = tempfile::tempdir().unwrap();
        std::fs::write(django.path().join("manage.py"), "").unwrap();
        std::fs::create_dir(django.path().join("site")).unwrap();
        std::fs::write(django.path().join("site/wsgi.py"), "").unwrap();
        assert_eq!(wsgi_target(django.path()).as_deref(), Some("site.wsgi"));
    }
}
