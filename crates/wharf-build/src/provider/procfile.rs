//! Apps with a Procfile and nothing wharf recognises: the source is used as it is and the
//! Procfile says how to run it.

use std::path::Path;

use super::{has_file, BuildContext, Provider, ProviderOutput};
use crate::error::BuildError;

pub(crate) struct ProcfileOnly;

impl Provider for ProcfileOnly {
    const NAME: &'static str = "procfile";

    fn detect(&self, source: &Path) -> bool {
        has_file(source, "Procfile")
    }

    fn detected(&self) -> &'static str {
        "Procfile app detected (no language found)"
    }

    async fn build(&self, ctx: &BuildContext<'_>) -> Result<ProviderOutput, BuildError> {
        ctx.log
            .note("nothing to build: the source is used as it is, run by its Procfile");
        Ok(ProviderOutput::with_path(&[]))
    }
}
