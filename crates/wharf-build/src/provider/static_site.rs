//! Static sites: an `index.html` at the top of the source, served by wharf's own static file
//! server. Nothing is built or installed.
//!
//! On a stack the image must serve the site by itself, wherever it runs: wharf copies its own
//! executable into the runtime layer (`.wharf/bin/wharf`), keyed by the executable's digest so
//! every static site built by one wharf shares that layer, and checks that it runs in the
//! stack's image. On the host-bound `wharf-1` the host's `wharf` serves it.

use std::path::Path;

use sha2::{Digest as _, Sha256};

use super::{has_file, BuildContext, Provider, ProviderOutput};
use crate::error::BuildError;
use crate::runtime::{Chosen, RUNTIME_DIR};
use crate::sandbox::SandboxCommand;

/// The `web` command of a static site: wharf's own file server.
pub(crate) const SERVE_STATIC: &str = "wharf serve-static --port $PORT";

/// Where the file server goes in the app tree on a stack, and the image's `PATH` entry for it.
const SERVER_DIR: &str = ".wharf/bin";

pub(crate) struct StaticSite;

impl Provider for StaticSite {
    const NAME: &'static str = "static";

    fn detect(&self, source: &Path) -> bool {
        has_file(source, "index.html")
    }

    fn detected(&self) -> &'static str {
        "Static site detected (index.html)"
    }

    async fn build(&self, ctx: &BuildContext<'_>) -> Result<ProviderOutput, BuildError> {
        if ctx.sandbox.root().is_none() {
            ctx.log
                .note("nothing to build: the files are served as they are by `wharf serve-static`");
            return Ok(ProviderOutput::with_path(&[]).web(Some(SERVE_STATIC.to_owned())));
        }
        let exe = wharf_sandbox::launch::own_executable().ok_or_else(|| {
            BuildError::StepFailed {
            step: "install the file server".to_owned(),
            reason: "a static site's image carries wharf's own file server, and this build does \
                     not run in the wharf executable"
                .to_owned(),
            fix: "build through `wharf server` or `wharf up`, or add a Procfile with a web process"
                .to_owned(),
        }
        })?;
        let bin_dir = ctx.app_dir.join(SERVER_DIR);
        std::fs::create_dir_all(&bin_dir)
            .map_err(|e| BuildError::io("create directory", &bin_dir, e))?;
        let dest = bin_dir.join("wharf");
        std::fs::copy(exe, &dest).map_err(|e| BuildError::io("copy", exe, e))?;
        let digest = file_sha256(&dest)?;

        let version = SandboxCommand::new(
            "wharf --version",
            ctx.app_path(&format!("{SERVER_DIR}/wharf")),
        )
        .arg("--version");
        let version = match ctx.output(version, "wharf --version").await {
            Ok(out) => out.trim().to_owned(),
            Err(BuildError::CommandFailed { step, .. }) => {
                return Err(BuildError::StepFailed {
                    step,
                    reason: format!(
                        "wharf's file server doesn't run on the stack {} (its output is above)",
                        ctx.stack
                    ),
                    fix: "build on a stack with the GNU C library (as wharf's own stacks), or add \
                          a Procfile with a web process of the stack's own"
                        .to_owned(),
                })
            }
            Err(e) => return Err(e),
        };
        ctx.log.note(&format!(
            "nothing to build: the files are served as they are by {version} (`wharf \
             serve-static`), carried in the image"
        ));
        let mut output =
            ProviderOutput::with_path(&["/app/.wharf/bin"]).web(Some(SERVE_STATIC.to_owned()));
        output.runtime_paths.push(RUNTIME_DIR.into());
        output.runtime = Some(Chosen {
            name: "wharf",
            version: version
                .split_whitespace()
                .nth(1)
                .unwrap_or_default()
                .to_owned(),
        });
        output.runtime_key = Some(format!("wharf-serve-static-1 {digest}"));
        Ok(output)
    }
}

fn file_sha256(path: &Path) -> Result<String, BuildError> {
    let mut file = std::fs::File::open(path).map_err(|e| BuildError::io("read", path, e))?;
    let mut hash = Sha256::new();
    std::io::copy(&mut file, &mut hash).map_err(|e| BuildError::io("read", path, e))?;
    Ok(hex::encode(hash.finalize()))
}
