use std::io;
use std::path::PathBuf;

/// Errors of the local backend.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot {action} `{path}`")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot unpack image {image} for release v{version} of app `{app_id}`")]
    Unpack {
        app_id: String,
        version: u32,
        image: String,
        #[source]
        source: Box<wharf_image::ImageError>,
    },
    #[error("cannot run release v{version} of app `{app_id}` on run image {run_image}: {reason}")]
    RunImage {
        app_id: String,
        version: u32,
        run_image: String,
        reason: String,
    },
    #[error(
        "release v{version} is built on a stack and runs only in the sandbox, with the stack's \
         run image as `/`; install bubblewrap (apt-get install bubblewrap) and start wharf with \
         WHARF_SANDBOX=auto, or build the app on the host-bound stack (`wharf stack:set wharf-1`)"
    )]
    NeedsSandbox { version: u32 },
    #[error("no free port left in {start}..={end}")]
    NoFreePort { start: u16, end: u16 },
    #[error("cannot start `{command}`")]
    Spawn {
        command: String,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Sandbox(#[from] wharf_sandbox::SandboxError),
    #[error("app `{app_id}` is not running here")]
    UnknownApp { app_id: String },
    #[error("app `{app_id}` has no instance or process type `{target}`")]
    UnknownTarget { app_id: String, target: String },
    #[error("the supervisor is shutting down")]
    ShuttingDown,
    #[error("cannot find the app's user")]
    AppUser(#[from] wharf_sandbox::users::UserError),
}

impl RunError {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(io::Error) -> RunError {
        let path = path.into();
        move |source| RunError::Io {
            action,
            path,
            source,
        }
    }
}
