//! Pushing a release's image to another registry (`WHARF_REGISTRY_URL`), tagged `v<N>` in the
//! app's repository there, digest unchanged.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use wharf_core::backend::{BackendError, BoxFuture, ImageSource, PullableImage};
use wharf_image::{Digest, ImageStore};
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
        let _held = self.hold_images().await;
        push_image(
            self.images(),
            target,
            &self.data_dir,
            app_name,
            version,
            &digest,
            progress,
        )
        .await
    }
}

/// Pushes image `digest`, release `version`'s, to `target` as `<app>:v<N>`.
async fn push_image(
    images: &ImageStore,
    target: &PushTarget,
    data_dir: &Path,
    app_name: &str,
    version: u32,
    digest: &Digest,
    progress: &mut (dyn FnMut(&str) + Send),
) -> Result<Pushed, PushError> {
    let reference = format!("{}:v{version}", target.repository(app_name));
    let work = data_dir.join("builds").join("pushes").join(uuid_like());
    if !images.has_blob(digest) {
        return Err(PushError::Collected { version });
    }
    wharf_stack::push::push(images, digest, target, &reference, &work, progress)
        .await
        .map_err(|source| PushError::Push {
            reference: reference.clone(),
            source,
        })?;
    Ok(Pushed {
        reference,
        digest: digest.clone(),
    })
}

/// Release images in another registry (`WHARF_REGISTRY_URL`), for an orchestrator whose nodes
/// pull from there: each image is pushed the first time a release needs it (as `<app>:v<N>`),
/// then pulled by digest, with the registry's credentials.
pub struct PushedImages {
    images: ImageStore,
    target: PushTarget,
    data_dir: PathBuf,
    /// (app, digest) → pushed, once set; concurrent callers wait for the one push.
    pushed: Mutex<HashMap<(String, String), Pushing>>,
}

impl std::fmt::Debug for PushedImages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushedImages")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

/// Set once an image is in the registry.
type Pushing = Arc<tokio::sync::OnceCell<()>>;

impl PushedImages {
    /// Pushes images of `images` to `target`, with scratch space under `data_dir`.
    pub fn new(images: ImageStore, target: PushTarget, data_dir: PathBuf) -> PushedImages {
        PushedImages {
            images,
            target,
            data_dir,
            pushed: Mutex::default(),
        }
    }
}

impl ImageSource for PushedImages {
    fn pullable<'a>(
        &'a self,
        _app_id: &'a str,
        app_name: &'a str,
        version: u32,
        digest: &'a str,
    ) -> BoxFuture<'a, Result<PullableImage, BackendError>> {
        Box::pin(async move {
            let parsed = Digest::parse(digest)
                .map_err(|e| BackendError::Failed(format!("release v{version}: {e}").into()))?;
            let once = self
                .pushed
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .entry((app_name.to_owned(), digest.to_owned()))
                .or_default()
                .clone();
            once.get_or_try_init(|| async {
                let started = std::time::Instant::now();
                let mut progress = |line: &str| tracing::debug!(app = %app_name, "{line}");
                let pushed = push_image(
                    &self.images,
                    &self.target,
                    &self.data_dir,
                    app_name,
                    version,
                    &parsed,
                    &mut progress,
                )
                .await
                .map_err(|e| {
                    // The whole chain: skopeo's reason is the cause's.
                    let mut text = e.to_string();
                    let mut cause = std::error::Error::source(&e);
                    while let Some(c) = cause {
                        text.push_str(&format!(": {c}"));
                        cause = c.source();
                    }
                    BackendError::Failed(text.into())
                })?;
                tracing::info!(app = %app_name, image = %pushed.reference,
                    seconds = started.elapsed().as_secs_f32(), "release image pushed");
                Ok::<(), BackendError>(())
            })
            .await?;
            Ok(PullableImage {
                reference: format!("{}@{digest}", self.target.repository(app_name)),
                registry: self.target.host.clone(),
                credentials: self.target.credentials.clone(),
            })
        })
    }
}

/// A name no other push uses at the same time.
fn uuid_like() -> String {
    use rand::Rng as _;
    format!("{:016x}", rand::thread_rng().gen::<u64>())
}
