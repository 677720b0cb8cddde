//! Static sites: an `index.html` at the top of the source, served by wharf's own static file
//! server. Nothing is built or installed.

use std::path::Path;

use super::{has_file, BuildContext, Provider, ProviderOutput};
use crate::error::BuildError;

/// The `web` command of a static site: wharf's own file server.
pub(crate) const SERVE_STATIC: &str = "wharf serve-static --port $PORT";

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
        ctx.log
            .note("nothing to build: the files are served as they are by `wharf serve-static`");
        Ok(ProviderOutput::with_path(&[]).web(Some(SERVE_STATIC.to_owned())))
    }
}
