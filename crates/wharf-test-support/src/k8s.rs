//! Kubernetes manifests checked against the API's own schemas with `kubernetes-validate`
//! (PyPI), which scripts/setup installs into target/kubernetes-validate.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;

/// The oldest and newest Kubernetes minor versions wharf's manifests are valid for.
pub const VERSIONS: std::ops::RangeInclusive<u32> = 30..=37;

/// kubernetes-validate, if installed; `None` (after a note) outside CI without it.
pub fn kubernetes_validate() -> Option<PathBuf> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../target/kubernetes-validate/bin/kubernetes-validate");
    if path.exists() {
        return Some(path);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "kubernetes-validate is needed: scripts/setup installs it into target/kubernetes-validate"
    );
    eprintln!("note: kubernetes-validate is not installed (scripts/setup); skipped");
    None
}

/// Checks every document of each YAML file (named by what it holds) strictly, rejecting any
/// field the schema doesn't have, for every version in [`VERSIONS`]; panics with the failures.
pub fn assert_valid(validate: &Path, files: &[(String, PathBuf)]) {
    let mut failures = Vec::new();
    for minor in VERSIONS {
        let version = format!("1.{minor}.0");
        let out = Command::new(validate)
            .args(["--strict", "--quiet", "--kubernetes-version", &version])
            .args(files.iter().map(|(_, file)| file))
            .output()
            .expect("kubernetes-validate runs");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if !out.status.success() || text.contains("ERROR") || text.contains("WARN") {
            failures.push(format!("Kubernetes {version}:\n{text}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{}\nfiles: {:?}",
        failures.join("\n"),
        files
    );
}

/// Every document of a YAML file (`---` between them), as JSON values; empty ones left out.
pub fn documents(file: &Path) -> Vec<serde_json::Value> {
    let text =
        std::fs::read_to_string(file).unwrap_or_else(|e| panic!("read {}: {e}", file.display()));
    yaml_serde::Deserializer::from_str(&text)
        .map(|doc| serde_json::Value::deserialize(doc).expect("a YAML document"))
        .filter(|v| !v.is_null())
        .collect()
}
