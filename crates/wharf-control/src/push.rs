//! Pushing a release's image to another registry (`WHARF_REGISTRY_URL`), tagged `v<N>` in the
//! app's repository there, digest unchanged.

use wharf_image::Digest;
use wharf_stack::push::PushTarget;
use wharf_store::ReleaseRecord;

use crate::ControlPlane;

/// A release image that reached the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pushed {
    /// `host/…/app:v<N>`
    pub reference: String,
    /// The image's manifest digest, the same there as here.
    pub digest: Digest,
}

/// Why a push didn't happen.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error(
        "this server pushes to no registry: start it with WHARF_REGISTRY_URL (and \
         WHARF_REGISTRY_USERNAME, WHARF_REGISTRY_PASSWORD if the registry wants them)"
    )]
    NoRegistry,
    #[error("release v{version} has no image: only a release made from a build can be pushed")]
    NoImage { version: u32 },
    #[error(
        "the image of release v{version} is no longer stored (garbage collection keeps the \
         newest releases' images): deploy again, or push a newer release"
    )]
    Collected { version: u32 },
    #[error("pushing to {reference} failed")]
    Push {
        reference: String,
        #[source]
        source: wharf_stack::StackError,
    },
}

impl ControlPlane {
    /// Where release images are pushed, if anywhere.
    pub fn push_target(&self) -> Option<&PushTarget> {
        self.registry.as_deref()
    }

    /// Pushes `release`'s image to the registry as `<app>:v<N>`, each line of the copy's
    /// progress to `progress`. Garbage collection waits until the copy is made.
    pub async fn push(
        &self,
        app_name: &str,
        release: &ReleaseRecord,
        progress: &mut (dyn FnMut(&str) + Send),
    ) -> Result<Pushed, PushError> {
        let target = self.push_target().ok_or(PushError::NoRegistry)?;
        let version = release.version.get();
        let digest = release
            .image_digest
            .as_deref()
            .and_then(|d| Digest::parse(d).ok())
            .ok_or(PushError::NoImage { version })?;
        let reference = format!("{}:v{version}", target.repository(app_name));
        let work = self
            .data_dir
            .join("builds")
            .join("pushes")
            .join(uuid_like());
        let _held = self.hold_images().await;
        if !self.images().has_blob(&digest) {
            return Err(PushError::Collected { version });
        }
        wharf_stack::push::push(self.images(), &digest, target, &reference, &work, progress)
            .await
            .map_err(|source| PushError::Push {
                reference: reference.clone(),
                source,
            })?;
        Ok(Pushed { reference, digest })
    }
}

/// A name no other push uses at the same time.
fn uuid_like() -> String {
    use rand::Rng as _;
    format!("{:016x}", rand::thread_rng().gen::<u64>())
}
