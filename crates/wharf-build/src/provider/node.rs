//! Node.js apps: `package.json`, installed with `npm ci --omit=dev` when a lockfile is present,
//! `npm install --omit=dev` otherwise. `node_modules` is the dependency layer.
//!
//! npm's cache lives in `cache/node/npm`. After an install `node_modules` is saved to the cache
//! with the hash of `package.json`, the lockfile and the node version; a later build with the same
//! hash copies it back instead of running npm.

use std::path::Path;

use super::{has_file, BuildContext, Provider, ProviderOutput};
use crate::cache::inputs_hash;
use crate::error::BuildError;
use crate::sandbox::SandboxCommand;
use crate::{toolchain, tree};

pub(crate) struct Node;

const MODULES: &str = "node_modules";

impl Provider for Node {
    const NAME: &'static str = "node";

    fn detect(&self, source: &Path) -> bool {
        has_file(source, "package.json")
    }

    fn detected(&self) -> &'static str {
        "Node.js app detected"
    }

    async fn build(&self, ctx: &BuildContext<'_>) -> Result<ProviderOutput, BuildError> {
        let tools = toolchain::node(ctx.sandbox.root())?;
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
        let lockfile = ["package-lock.json", "npm-shrinkwrap.json"]
            .into_iter()
            .find(|f| has_file(ctx.app_dir, f));
        let lock_text = match lockfile {
            Some(f) => read(f)?,
            None => Vec::new(),
        };

        let version = ctx
            .output(
                SandboxCommand::new("node --version", "node")
                    .arg("--version")
                    .path_prefix(&tools),
                "node --version",
            )
            .await?;
        let version = version.trim().to_owned();
        ctx.log.step(&format!("Using node {version}"));
        let hash = inputs_hash(&[&package_text, &lock_text, version.as_bytes()]);

        let modules = ctx.app_dir.join(MODULES);
        if ctx.cache.restore(MODULES, &hash, &modules).await? {
            ctx.log.step(&format!(
                "{} unchanged: restored node_modules from the build cache (npm install skipped)",
                lockfile.unwrap_or("package.json")
            ));
        } else {
            if modules.exists() {
                ctx.log.note(
                    "removing the node_modules that came with the source: it is rebuilt here",
                );
                tree::remove(&modules)?;
            }
            let (step, verb) = match lockfile {
                Some(_) => ("npm ci --omit=dev", "ci"),
                None => ("npm install --omit=dev", "install"),
            };
            ctx.log
                .step(&format!("Installing dependencies with {step}"));
            let npm = SandboxCommand::new(step, "npm")
                .args([verb, "--omit=dev"])
                .env("npm_config_cache", ctx.cache.path().join("npm"))
                .env("npm_config_update_notifier", "false")
                .env("npm_config_fund", "false")
                .env("npm_config_audit", "false")
                .env("npm_config_progress", "false")
                .path_prefix(&tools);
            ctx.run(npm).await?;
            if modules.is_dir() {
                ctx.cache.save(MODULES, &hash, &modules).await?;
            }
        }

        let web = web_command(&package, ctx.app_dir);
        let mut output = ProviderOutput::with_path(&["/app/node_modules/.bin"]).web(web);
        output
            .env
            .insert("NODE_ENV".to_owned(), "production".to_owned());
        if modules.is_dir() {
            output.dependency_paths.push(MODULES.into());
        }
        Ok(output)
    }
}

/// `npm start` when package.json has a start script, else `node <main>` (or `node index.js`)
/// when that file exists.
fn web_command(package: &serde_json::Value, app_dir: &Path) -> Option<String> {
    if package
        .pointer("/scripts/start")
        .and_then(|s| s.as_str())
        .is_some_and(|s| !s.trim().is_empty())
    {
        return Some("npm start".to_owned());
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

    #[test]
    fn start_script_wins_then_main_then_index() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        assert_eq!(
            web_command(&json!({"scripts": {"start": "node s.js"}}), dir).as_deref(),
            Some("npm start")
        );
        assert_eq!(web_command(&json!({}), dir), None);
        std::fs::write(dir.join("index.js"), "").unwrap();
        assert_eq!(
            web_command(&json!({}), dir).as_deref(),
            Some("node index.js")
        );
        std::fs::write(dir.join("server.js"), "").unwrap();
        assert_eq!(
            web_command(&json!({"main": "server.js"}), dir).as_deref(),
            Some("node server.js")
        );
        assert_eq!(web_command(&json!({"main": "x.js; rm -rf /"}), dir), None);
    }
}
