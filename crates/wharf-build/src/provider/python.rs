//! Python apps: `requirements.txt` (`pip install -r`) or `pyproject.toml` (`pip install .`),
//! installed into a virtualenv at `.venv` in the app tree, which is the dependency layer.
//!
//! pip's cache lives in `cache/python/pip`. After an install the venv is saved to the cache with
//! the hash of its inputs (the requirements file and the interpreter); a later build with the same
//! hash copies it back instead of running pip (for `pyproject.toml` the app's own package is then
//! reinstalled with `--no-deps`, since its code may have changed).
//!
//! Scripts pip writes to `.venv/bin` start with the absolute path of the interpreter it was built
//! at; they are rewritten to `#!/usr/bin/env python3`, which finds the venv's interpreter through
//! the image's `PATH` (`/app/.venv/bin` first), so the venv works wherever the app tree is run.

use std::path::Path;

use super::{has_file, BuildContext, Provider, ProviderOutput};
use crate::cache::inputs_hash;
use crate::error::BuildError;
use crate::sandbox::SandboxCommand;
use crate::{toolchain, tree};

pub(crate) struct Python;

const VENV: &str = ".venv";
const PORTABLE_SHEBANG: &str = "#!/usr/bin/env python3";

impl Provider for Python {
    const NAME: &'static str = "python";

    fn detect(&self, source: &Path) -> bool {
        has_file(source, "requirements.txt") || has_file(source, "pyproject.toml")
    }

    fn detected(&self) -> &'static str {
        "Python app detected"
    }

    async fn build(&self, ctx: &BuildContext<'_>) -> Result<ProviderOutput, BuildError> {
        let tools = toolchain::python(ctx.sandbox.root()).await?;
        let requirements = has_file(ctx.app_dir, "requirements.txt");
        let manifest = if requirements {
            "requirements.txt"
        } else {
            "pyproject.toml"
        };
        let manifest_path = ctx.app_dir.join(manifest);
        let manifest_text =
            std::fs::read(&manifest_path).map_err(|e| BuildError::io("read", &manifest_path, e))?;

        let version_cmd = SandboxCommand::new("python3 --version", "python3")
            .arg("-c")
            .arg("import sys; print(sys.executable); print(sys.version)")
            .path_prefix(&tools);
        let interpreter = ctx.output(version_cmd, "python3 --version").await?;
        let version = interpreter
            .lines()
            .nth(1)
            .and_then(|v| v.split_whitespace().next())
            .unwrap_or("(unknown version)")
            .to_owned();
        ctx.log.step(&format!("Using Python {version}"));
        let hash = inputs_hash(&[manifest.as_bytes(), &manifest_text, interpreter.as_bytes()]);

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
                .path_prefix(&tools)
        };

        if ctx.cache.restore("venv", &hash, &venv_dir).await? {
            ctx.log.step(&format!(
                "{manifest} unchanged: restored .venv from the build cache (pip install skipped)"
            ));
            if !requirements {
                ctx.log
                    .step("Installing the app's package with pip (--no-deps)");
                ctx.run(pip("pip install --no-deps .").args(["--no-deps", "."]))
                    .await?;
                make_portable(ctx)?;
            }
        } else {
            ctx.log.step("Creating virtualenv .venv");
            let venv = SandboxCommand::new("python3 -m venv", "python3")
                .args(["-m", "venv"])
                .arg(ctx.app_path(VENV))
                .path_prefix(&tools);
            ctx.run(venv).await?;
            if requirements {
                ctx.log.step("Installing requirements with pip");
                ctx.run(pip("pip install -r requirements.txt").args(["-r", "requirements.txt"]))
                    .await?;
            } else {
                ctx.log.step("Installing the app with pip (pyproject.toml)");
                ctx.run(pip("pip install .").arg(".")).await?;
            }
            make_portable(ctx)?;
            ctx.cache.save("venv", &hash, &venv_dir).await?;
        }

        let mut output = ProviderOutput::with_path(&["/app/.venv/bin"]).web(web_command(ctx));
        output
            .env
            .insert("PYTHONUNBUFFERED".to_owned(), "1".to_owned());
        output.dependency_paths.push(VENV.into());
        Ok(output)
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
        || read("pyproject.toml").is_some_and(|p| p.contains("gunicorn"));
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
