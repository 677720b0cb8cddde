//! Why a build failed. Every message is shown to the user as the last line of the build output,
//! so each one says what failed and how to fix it.

use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::Duration;

use wharf_core::procfile::ProcfileError;

/// A build failed.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(
        "no build provider matched this app: wharf looked for bin/build (a build script), \
         bin/detect + bin/compile (a buildpack), requirements.txt, pyproject.toml or Pipfile (Python), \
         package.json (Node), Cargo.toml (Rust), index.html (a static site) and a Procfile at the \
         top of the source; add one of them"
    )]
    NoProviderMatched,

    #[error("the Procfile is invalid: {0}")]
    InvalidProcfile(#[source] ProcfileError),

    #[error(
        "step `{step}` failed ({status}): its output is above; fix what it reports and build again"
    )]
    CommandFailed { step: String, status: ExitStatus },

    #[error(
        "the build timed out after {}s and was stopped: make the build faster or raise \
         WHARF_BUILD_TIMEOUT",
        after.as_secs()
    )]
    TimedOut { after: Duration },

    #[error("the build was cancelled")]
    Cancelled,

    #[error("could not {action} `{}`: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("could not start `{program}` for step `{step}`: {source}")]
    Spawn {
        step: String,
        program: String,
        #[source]
        source: std::io::Error,
    },

    #[error("`{path}` is not executable: run `chmod +x {path}` and commit the change")]
    NotExecutable { path: String },

    #[error("{tool} is needed to build this app but was not found: {hint}")]
    ToolMissing {
        tool: &'static str,
        hint: &'static str,
    },

    #[error(transparent)]
    Sandbox(#[from] wharf_sandbox::SandboxError),

    #[error(
        "`{tool}` is not in the stack's build image: build this app on the host-bound stack \
         wharf-1, which uses the host's tools"
    )]
    NotInStack { tool: &'static str },

    #[error(
        "building on a stack needs namespaces (bubblewrap), which are not available here: \
         install bubblewrap (apt-get install bubblewrap) or build on the stack wharf-1"
    )]
    StackNeedsNamespaces,

    #[error(
        "the app's buildpack rejected it: bin/detect exited with {status}; fix bin/detect, or \
         remove bin/detect, bin/compile and bin/release to let wharf detect the language"
    )]
    BuildpackRejected { status: ExitStatus },

    #[error("the buildpack's bin/release printed invalid YAML: line {line}: {reason}")]
    InvalidRelease { line: usize, reason: String },

    #[error("{file} is invalid: {reason}")]
    InvalidManifest { file: &'static str, reason: String },

    #[error(
        "could not download {what} from {url}: {reason}; check that the wharf server reaches it \
         (or point WHARF_NPM_REGISTRY or WHARF_PYTHON_URL at a source it reaches) and build again"
    )]
    Download {
        what: String,
        url: String,
        reason: String,
    },

    #[error(
        "{what} from {url} does not match the digest its source published (expected \
         {expected}, got {actual}); nothing was kept: build again, and if it repeats, the source \
         or a proxy between it and this server serves a different file"
    )]
    DigestMismatch {
        what: String,
        url: String,
        expected: String,
        actual: String,
    },

    #[error(
        "{runtime} {asked} is asked for by {file}, but it can't be provided here: {have}. {fix}"
    )]
    RuntimeUnavailable {
        runtime: &'static str,
        asked: String,
        file: &'static str,
        have: String,
        fix: String,
    },

    #[error("step `{step}` failed: {reason}; {fix}")]
    StepFailed {
        step: String,
        reason: String,
        fix: String,
    },

    #[error("{0}; fix app.json and deploy again")]
    InvalidAppJson(#[source] wharf_core::app_json::AppJsonError),

    #[error("invalid build request: {0}")]
    InvalidRequest(String),
}

impl BuildError {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        BuildError::Io {
            action,
            path: path.into(),
            source,
        }
    }
}
