//! Apps that build themselves: an executable `bin/build` at the top of the source runs in the
//! app tree with `CACHE_DIR` pointing at its part of the build cache. There is no default process
//! type: the Procfile says what to run.

use std::path::Path;

use super::{has_file, BuildContext, Provider, ProviderOutput};
use crate::error::BuildError;
use crate::sandbox::SandboxCommand;
use crate::tree::is_executable;

pub(crate) struct BinBuild;

impl Provider for BinBuild {
    const NAME: &'static str = "bin-build";

    fn detect(&self, source: &Path) -> bool {
        has_file(source, "bin/build")
    }

    fn detected(&self) -> &'static str {
        "Build script detected (bin/build)"
    }

    async fn build(&self, ctx: &BuildContext<'_>) -> Result<ProviderOutput, BuildError> {
        if !is_executable(&ctx.app_dir.join("bin/build")) {
            return Err(BuildError::NotExecutable {
                path: "bin/build".to_owned(),
            });
        }
        ctx.log.step("Running bin/build");
        let cmd = SandboxCommand::new("bin/build", ctx.app_path("bin/build"))
            .env("CACHE_DIR", ctx.cache.path())
            .raw_output();
        ctx.run(cmd).await?;
        Ok(ProviderOutput::with_path(&[]))
    }
}
