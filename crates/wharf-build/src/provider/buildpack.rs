//! A classic (Heroku-style) buildpack shipped in the app's own source: `bin/detect BUILD_DIR`
//! (exit 0 accepts the app and prints its name), `bin/compile BUILD_DIR CACHE_DIR ENV_DIR` (the
//! env dir is empty: builds never see config vars) and, if present, `bin/release BUILD_DIR`,
//! whose YAML `default_process_types` fill the process types the Procfile lacks. The tree is kept
//! as compiled, buildpack scripts included.

use std::collections::BTreeMap;
use std::path::Path;

use wharf_core::name::ProcessType;

use super::{has_file, BuildContext, Provider, ProviderOutput};
use crate::error::BuildError;
use crate::sandbox::SandboxCommand;
use crate::tree::is_executable;

pub(crate) struct Buildpack;

impl Provider for Buildpack {
    const NAME: &'static str = "buildpack";

    fn detect(&self, source: &Path) -> bool {
        has_file(source, "bin/detect") && has_file(source, "bin/compile")
    }

    fn detected(&self) -> &'static str {
        "Buildpack found in the app (bin/detect, bin/compile)"
    }

    async fn build(&self, ctx: &BuildContext<'_>) -> Result<ProviderOutput, BuildError> {
        let has_release = has_file(ctx.app_dir, "bin/release");
        let mut scripts = vec!["bin/detect", "bin/compile"];
        if has_release {
            scripts.push("bin/release");
        }
        for script in scripts {
            if !is_executable(&ctx.app_dir.join(script)) {
                return Err(BuildError::NotExecutable {
                    path: script.to_owned(),
                });
            }
        }
        let build_dir = ctx.sandbox.app_path();

        let detect = SandboxCommand::new("bin/detect", ctx.app_path("bin/detect")).arg(&build_dir);
        let (status, out) = ctx.sandbox.output(&detect, ctx.limits).await?;
        for line in out.lines().skip(1) {
            ctx.log.note(line);
        }
        if !status.success() {
            return Err(BuildError::BuildpackRejected { status });
        }
        let name = out.lines().next().unwrap_or("").trim();
        let name = if name.is_empty() { "Buildpack" } else { name };
        ctx.log.step(&format!("{name} app detected"));

        let env_dir = ctx.work_dir.join("env");
        std::fs::create_dir_all(&env_dir)
            .map_err(|e| BuildError::io("create directory", &env_dir, e))?;
        // The buildpack convention: one file per variable, named after it.
        for (key, value) in ctx.buildpack_env {
            if key.is_empty() || key.contains(['/', '\0']) || key == "." || key == ".." {
                return Err(BuildError::InvalidRequest(format!(
                    "buildpack env var name `{key}` cannot be a file name"
                )));
            }
            let file = env_dir.join(key);
            std::fs::write(&file, value).map_err(|e| BuildError::io("write", &file, e))?;
        }
        let compile = SandboxCommand::new("bin/compile", ctx.app_path("bin/compile"))
            .arg(&build_dir)
            .arg(ctx.cache.path())
            .arg(&env_dir)
            .raw_output();
        ctx.run(compile).await?;

        let mut output = ProviderOutput::with_path(&[]);
        if has_release {
            let release =
                SandboxCommand::new("bin/release", ctx.app_path("bin/release")).arg(&build_dir);
            let yaml = ctx.output(release, "bin/release").await?;
            output.default_process_types = default_process_types(&yaml)?;
        }
        Ok(output)
    }
}

/// Reads `default_process_types` from `bin/release`'s output: the small YAML subset buildpacks
/// print, a top-level `default_process_types:` key followed by indented `type: command` lines.
/// Other top-level keys (`addons`, `config_vars`) are skipped.
pub(crate) fn default_process_types(yaml: &str) -> Result<BTreeMap<String, String>, BuildError> {
    let mut types = BTreeMap::new();
    let mut in_types = false;
    for (i, raw) in yaml.lines().enumerate() {
        let line = i + 1;
        let err = |reason: &str| BuildError::InvalidRelease {
            line,
            reason: reason.to_owned(),
        };
        let content = raw.trim_end();
        let trimmed = content.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed == "---" {
            continue;
        }
        let indented = trimmed.len() != content.len();
        if !indented {
            let (key, value) = trimmed
                .split_once(':')
                .ok_or_else(|| err("expected `key:` at the top level"))?;
            in_types = key.trim() == "default_process_types";
            let value = value.trim();
            if in_types && !value.is_empty() && value != "{}" {
                return Err(err(
                    "write default_process_types as indented `type: command` lines, one per line",
                ));
            }
            continue;
        }
        if !in_types {
            continue;
        }
        let (key, value) = trimmed
            .split_once(':')
            .ok_or_else(|| err("expected `type: command`"))?;
        let key = unquote(key.trim()).map_err(|r| err(&r))?;
        let command = unquote(value.trim()).map_err(|r| err(&r))?;
        let process_type = ProcessType::parse(&key).map_err(|e| err(&e.to_string()))?;
        if command.trim().is_empty() {
            return Err(err(&format!("process type `{key}` has an empty command")));
        }
        types.insert(process_type.as_str().to_owned(), command);
    }
    Ok(types)
}

/// A YAML plain, single-quoted or double-quoted scalar (the double-quoted escapes `\"`, `\\`,
/// `\n`, `\t`), optionally followed by a ` # comment`.
fn unquote(s: &str) -> Result<String, String> {
    let mut chars = s.char_indices();
    let (out, rest) = match chars.next() {
        Some((_, '\'')) => {
            let mut out = String::new();
            loop {
                match chars.next() {
                    None => return Err("unterminated single-quoted string".to_owned()),
                    Some((i, '\'')) => {
                        if s[i + 1..].starts_with('\'') {
                            chars.next();
                            out.push('\'');
                        } else {
                            break (out, &s[i + 1..]);
                        }
                    }
                    Some((_, c)) => out.push(c),
                }
            }
        }
        Some((_, '"')) => {
            let mut out = String::new();
            loop {
                match chars.next() {
                    None => return Err("unterminated double-quoted string".to_owned()),
                    Some((i, '"')) => break (out, &s[i + 1..]),
                    Some((_, '\\')) => match chars.next() {
                        Some((_, '"')) => out.push('"'),
                        Some((_, '\\')) => out.push('\\'),
                        Some((_, 'n')) => out.push('\n'),
                        Some((_, 't')) => out.push('\t'),
                        Some((_, other)) => return Err(format!("unsupported escape `\\{other}`")),
                        None => return Err("unterminated double-quoted string".to_owned()),
                    },
                    Some((_, c)) => out.push(c),
                }
            }
        }
        // A plain scalar ends at ` #` (a comment).
        _ => return Ok(s.split(" #").next().unwrap_or(s).trim_end().to_owned()),
    };
    let rest = rest.trim_start();
    if rest.is_empty() || rest.starts_with('#') {
        Ok(out)
    } else {
        Err(format!("unexpected `{rest}` after a quoted string"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_heroku_style_release_output() {
        let yaml = "---\naddons: []\nconfig_vars:\n  FOO: bar\ndefault_process_types:\n  \
                    web: bundle exec rails s -p $PORT\n  worker: \"python w.py --x \\\"y\\\"\"\n  \
                    clock: 'echo ''tick'''   # every minute\n";
        let types = default_process_types(yaml).unwrap();
        assert_eq!(types["web"], "bundle exec rails s -p $PORT");
        assert_eq!(types["worker"], "python w.py --x \"y\"");
        assert_eq!(types["clock"], "echo 'tick'");
        assert_eq!(types.len(), 3);
    }

    #[test]
    fn keys_after_the_map_are_not_process_types() {
        let yaml = "default_process_types:\n  web: ./server\naddons:\n  - heroku-postgresql\n";
        let types = default_process_types(yaml).unwrap();
        assert_eq!(types.keys().collect::<Vec<_>>(), ["web"]);
    }

    #[test]
    fn empty_or_missing_map_gives_no_types() {
        assert!(default_process_types("").unwrap().is_empty());
        assert!(default_process_types("default_process_types: {}\n")
            .unwrap()
            .is_empty());
        assert!(default_process_types("addons: []\n").unwrap().is_empty());
    }

    #[test]
    fn errors_name_the_line() {
        let err = default_process_types("default_process_types:\n  web ./server\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "the buildpack's bin/release printed invalid YAML: line 2: expected `type: command`"
        );
        let err = default_process_types("default_process_types: {web: x}\n").unwrap_err();
        assert!(err.to_string().contains("line 1"), "{err}");
        let err = default_process_types("default_process_types:\n  9web: x\n").unwrap_err();
        assert!(
            err.to_string().contains("line 2: process type `9web`"),
            "{err}"
        );
        let err = default_process_types("default_process_types:\n  web: \"x\n").unwrap_err();
        assert!(err.to_string().contains("unterminated"), "{err}");
    }
}
