//! Build providers: one file per kind of app, each behind [`Provider`]. [`detect`] tries them in
//! a fixed order and the first whose files are in the source builds it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::cache::ProviderCache;
use crate::error::BuildError;
use crate::log::BuildLog;
use crate::runtime::{Chosen, RuntimeSources};
use crate::sandbox::{Limits, Sandbox, SandboxCommand, SYSTEM_PATH};

mod bin_build;
mod buildpack;
mod node;
mod procfile;
mod python;
mod rust;
mod static_site;

pub(crate) use bin_build::BinBuild;
pub(crate) use buildpack::Buildpack;
pub(crate) use node::Node;
pub(crate) use procfile::ProcfileOnly;
pub(crate) use python::Python;
pub(crate) use rust::Rust;
pub(crate) use static_site::StaticSite;

/// What a provider's build contributed to the output, besides the files in the app tree.
#[derive(Debug, Default)]
pub(crate) struct ProviderOutput {
    /// Process types the provider runs when the Procfile does not name them (usually `web`).
    pub default_process_types: BTreeMap<String, String>,
    /// Paths relative to the app tree that form the dependency layer.
    pub dependency_paths: Vec<PathBuf>,
    /// Image env defaults.
    pub env: BTreeMap<String, String>,
    /// Paths relative to the app tree that form the runtime layer (`.wharf`): the language
    /// runtime itself, when it doesn't come with the stack.
    pub runtime_paths: Vec<PathBuf>,
    /// The language runtime the app was built with.
    pub runtime: Option<Chosen>,
    /// A name for the exact content of `runtime_paths` (see [`crate::BuildOutput::runtime_key`]).
    pub runtime_key: Option<String>,
}

impl ProviderOutput {
    /// An output with `PATH` set to `path_prefix` (paths under `/app`) then the system `PATH`.
    pub(crate) fn with_path(path_prefix: &[&str]) -> Self {
        let mut path = String::new();
        for dir in path_prefix {
            path.push_str(dir);
            path.push(':');
        }
        path.push_str(SYSTEM_PATH);
        ProviderOutput {
            env: BTreeMap::from([("PATH".to_owned(), path)]),
            ..ProviderOutput::default()
        }
    }

    pub(crate) fn web(mut self, command: Option<String>) -> Self {
        if let Some(command) = command {
            self.default_process_types.insert("web".to_owned(), command);
        }
        self
    }
}

/// Everything a provider's build works with.
pub(crate) struct BuildContext<'a> {
    pub sandbox: &'a Sandbox,
    pub log: &'a BuildLog,
    pub limits: &'a Limits,
    /// The app tree on the host (for file work done by wharf itself, not by build commands).
    pub app_dir: &'a Path,
    /// The build's scratch directory.
    pub work_dir: &'a Path,
    /// This provider's part of the app's cache.
    pub cache: ProviderCache,
    /// Variables a buildpack finds in its `ENV_DIR` (empty for now).
    pub buildpack_env: &'a BTreeMap<String, String>,
    /// Where runtimes that don't come with the stack are fetched from.
    pub sources: &'a RuntimeSources,
    /// The stack's name, for messages (`wharf-1` builds on the host).
    pub stack: &'a str,
    /// The app's settings wharf itself reads during builds (see
    /// [`crate::BuildRequest::switches`]).
    pub switches: &'a BTreeMap<String, String>,
}

impl BuildContext<'_> {
    pub(crate) async fn run(&self, cmd: SandboxCommand) -> Result<(), BuildError> {
        self.sandbox.run(&cmd, self.log, self.limits).await
    }

    /// [`BuildContext::run`], also handing each output line to `seen`.
    pub(crate) async fn run_seeing(
        &self,
        cmd: SandboxCommand,
        seen: &mut (dyn FnMut(&str) + Send),
    ) -> Result<(), BuildError> {
        self.sandbox
            .run_seeing(&cmd, self.log, self.limits, seen)
            .await
    }

    /// Runs `cmd` for its output; on failure its output goes to the log and the step fails.
    pub(crate) async fn output(
        &self,
        cmd: SandboxCommand,
        step: &str,
    ) -> Result<String, BuildError> {
        let (status, out) = self.sandbox.output(&cmd, self.limits).await?;
        if status.success() {
            return Ok(out);
        }
        for line in out.lines() {
            self.log.note(line);
        }
        Err(BuildError::CommandFailed {
            step: step.to_owned(),
            status,
        })
    }

    /// `rel` inside the app tree as build commands see it.
    pub(crate) fn app_path(&self, rel: &str) -> PathBuf {
        self.sandbox.app_path().join(rel)
    }
}

/// A kind of app wharf knows how to build.
pub(crate) trait Provider {
    /// Its name in [`crate::BuildOutput::provider`] and its cache directory.
    const NAME: &'static str;

    /// Whether the source (read-only) looks like this kind of app.
    fn detect(&self, source: &Path) -> bool;

    /// The first log line once detected (`Python app detected`).
    fn detected(&self) -> &'static str;

    /// Builds the app tree in place (it starts as a copy of the source).
    async fn build(&self, ctx: &BuildContext<'_>) -> Result<ProviderOutput, BuildError>;
}

/// The provider that builds an app, chosen by [`detect`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Detected {
    BinBuild,
    Buildpack,
    Python,
    Node,
    Rust,
    StaticSite,
    ProcfileOnly,
}

macro_rules! dispatch {
    ($self:expr, $p:ident => $e:expr) => {
        match $self {
            Detected::BinBuild => {
                let $p = BinBuild;
                $e
            }
            Detected::Buildpack => {
                let $p = Buildpack;
                $e
            }
            Detected::Python => {
                let $p = Python;
                $e
            }
            Detected::Node => {
                let $p = Node;
                $e
            }
            Detected::Rust => {
                let $p = Rust;
                $e
            }
            Detected::StaticSite => {
                let $p = StaticSite;
                $e
            }
            Detected::ProcfileOnly => {
                let $p = ProcfileOnly;
                $e
            }
        }
    };
}

fn name_of<P: Provider>(_: &P) -> &'static str {
    P::NAME
}

impl Detected {
    /// In detection order.
    const ALL: [Detected; 7] = [
        Detected::BinBuild,
        Detected::Buildpack,
        Detected::Python,
        Detected::Node,
        Detected::Rust,
        Detected::StaticSite,
        Detected::ProcfileOnly,
    ];

    pub(crate) fn name(self) -> &'static str {
        dispatch!(self, p => name_of(&p))
    }

    fn detect(self, source: &Path) -> bool {
        dispatch!(self, p => p.detect(source))
    }

    pub(crate) fn detected(self) -> &'static str {
        dispatch!(self, p => p.detected())
    }

    pub(crate) async fn build(self, ctx: &BuildContext<'_>) -> Result<ProviderOutput, BuildError> {
        dispatch!(self, p => p.build(ctx).await)
    }
}

/// The first provider, in detection order, that recognises `source`.
pub(crate) fn detect(source: &Path) -> Option<Detected> {
    Detected::ALL.into_iter().find(|p| p.detect(source))
}

/// Whether `rel` is a regular file (or a link to one) in `dir`.
pub(crate) fn has_file(dir: &Path, rel: &str) -> bool {
    dir.join(rel).is_file()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detect_with(files: &[&str]) -> Option<&'static str> {
        let tmp = tempfile::tempdir().unwrap();
        for f in files {
            let p = tmp.path().join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, "").unwrap();
        }
        detect(tmp.path()).map(Detected::name)
    }

    #[test]
    fn detection_follows_the_documented_order() {
        assert_eq!(
            detect_with(&["bin/build", "bin/detect", "bin/compile"]),
            Some("bin-build")
        );
        assert_eq!(
            detect_with(&["bin/detect", "bin/compile", "package.json"]),
            Some("buildpack")
        );
        assert_eq!(detect_with(&["bin/detect"]), None);
        assert_eq!(
            detect_with(&["requirements.txt", "package.json"]),
            Some("python")
        );
        assert_eq!(detect_with(&["pyproject.toml"]), Some("python"));
        assert_eq!(detect_with(&["package.json", "Cargo.toml"]), Some("node"));
        assert_eq!(detect_with(&["Cargo.toml", "index.html"]), Some("rust"));
        assert_eq!(detect_with(&["index.html", "Procfile"]), Some("static"));
        assert_eq!(detect_with(&["Procfile"]), Some("procfile"));
        assert_eq!(detect_with(&["README.md"]), None);
    }
}
