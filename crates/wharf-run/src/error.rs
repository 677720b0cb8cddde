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
