//! Rust apps: `Cargo.toml`, built with `cargo build --release` (`--locked` when `Cargo.lock`
//! exists). The target dir (`cache/rust/target`) and `CARGO_HOME` (`cache/rust/cargo-home`, the
//! registry) are cached per app. The package binaries are copied to `.wharf/rust-bin/`: they are
//! the app, so they stay in the code layer and the dependency layer is empty.

use std::path::Path;

use super::{has_file, BuildContext, Provider, ProviderOutput};
use crate::error::BuildError;
use crate::sandbox::SandboxCommand;
use crate::toolchain;

pub(crate) struct Rust;

const BIN_DIR: &str = ".wharf/rust-bin";

impl Provider for Rust {
    const NAME: &'static str = "rust";

    fn detect(&self, source: &Path) -> bool {
        has_file(source, "Cargo.toml")
    }

    fn detected(&self) -> &'static str {
        "Rust app detected"
    }

    async fn build(&self, ctx: &BuildContext<'_>) -> Result<ProviderOutput, BuildError> {
        let tools = toolchain::rust(ctx.sandbox.root()).await?;
        let target = ctx.cache.path().join("target");
        let cargo = |step: &str| {
            SandboxCommand::new(step, "cargo")
                .env("CARGO_TARGET_DIR", &target)
                .env("CARGO_HOME", ctx.cache.path().join("cargo-home"))
                .env("CARGO_TERM_COLOR", "never")
                .path_prefix(&tools)
        };

        let version = ctx
            .output(cargo("cargo --version").arg("--version"), "cargo --version")
            .await?;
        ctx.log.step(&format!("Using {}", version.trim()));

        let metadata = ctx
            .output(
                cargo("cargo metadata").args(["metadata", "--no-deps", "--format-version", "1"]),
                "cargo metadata",
            )
            .await?;
        let bins = binaries(&metadata)?;

        let locked = has_file(ctx.app_dir, "Cargo.lock");
        let step = if locked {
            "cargo build --release --locked"
        } else {
            "cargo build --release"
        };
        ctx.log.step(&format!("Building with {step}"));
        let mut build = cargo(step).args(["build", "--release"]);
        if locked {
            build = build.arg("--locked");
        }
        ctx.run(build).await?;

        let bin_dir = ctx.app_dir.join(BIN_DIR);
        std::fs::create_dir_all(&bin_dir)
            .map_err(|e| BuildError::io("create directory", &bin_dir, e))?;
        for bin in &bins {
            let built = target.join("release").join(bin);
            let dest = bin_dir.join(bin);
            std::fs::copy(&built, &dest).map_err(|e| BuildError::io("copy", &built, e))?;
            ctx.log.note(&format!("installed {BIN_DIR}/{bin}"));
        }

        let web = match bins.as_slice() {
            [only] => Some(only.clone()),
            [] => {
                ctx.log
                    .note("the package has no binary: add a [[bin]] target or a Procfile");
                None
            }
            _ => {
                ctx.log.note(&format!(
                    "several binaries ({}): say which one serves the web in the Procfile \
                     (`web: <binary>`)",
                    bins.join(", ")
                ));
                None
            }
        };
        Ok(ProviderOutput::with_path(&["/app/.wharf/rust-bin"]).web(web))
    }
}

/// The names of the workspace packages' binary targets, from `cargo metadata --no-deps`.
fn binaries(metadata: &str) -> Result<Vec<String>, BuildError> {
    let invalid = |reason: String| BuildError::InvalidManifest {
        file: "Cargo.toml",
        reason,
    };
    // cargo may print warnings before the JSON document, which is one line.
    let json = metadata
        .lines()
        .find(|l| l.starts_with('{'))
        .ok_or_else(|| invalid("`cargo metadata` printed no JSON".to_owned()))?;
    let value: serde_json::Value = serde_json::from_str(json)
        .map_err(|e| invalid(format!("`cargo metadata` printed invalid JSON: {e}")))?;
    let mut bins: Vec<String> = value["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|p| p["targets"].as_array().into_iter().flatten())
        .filter(|t| {
            t["kind"]
                .as_array()
                .is_some_and(|k| k.iter().any(|k| k == "bin"))
        })
        .filter_map(|t| t["name"].as_str().map(str::to_owned))
        .collect();
    bins.sort();
    bins.dedup();
    Ok(bins)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bin_targets_are_listed() {
        let meta = r#"warning: something
{"packages":[{"name":"a","targets":[{"kind":["lib"],"name":"a"},{"kind":["bin"],"name":"srv"},{"kind":["bin"],"name":"cli"}]}]}"#;
        assert_eq!(binaries(meta).unwrap(), ["cli", "srv"]);
        assert!(binaries("error: nope").is_err());
    }
}
