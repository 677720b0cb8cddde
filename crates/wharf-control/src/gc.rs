//! Garbage collection of images and release trees.
//!
//! Kept: the images of each app's newest releases (`WHARF_KEEP_RELEASES`, default 20), of each
//! app's current release however old, of releases in their release phase, and of every release
//! an instance or one-off process runs, every stack's images (`stack/…` tags), and the run
//! image each kept image on a stack names. Everything else in the image store goes, blob by blob
//! (a layer shared with a kept image stays), and so do the unpacked trees of releases no
//! process runs, and the root filesystems unpacked from stack images that went (unless a build
//! holds one: a build on a build image a newer make replaced), and the empty cgroups of builds
//! a killed server left behind (over an hour old). A release whose image was collected can't
//! be rolled back to (the API says so); its record stays.
//!
//! Races: whatever is about to make an image referenced — a build from packing its image to
//! committing its release, a rollback or promotion from checking its image to committing its
//! release — holds [`crate::ControlPlane::hold_images`] (shared); collection holds the same lock
//! exclusive, so it never frees an image one of them is about to use, and they never pick an
//! image it is freeing.

use std::collections::BTreeSet;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use wharf_core::api::GarbageCollection;
use wharf_image::Digest;

use crate::ControlPlane;

/// How many of each app's newest releases keep their images by default.
pub const DEFAULT_KEEP_RELEASES: u32 = 20;
/// How often collection runs on its own by default.
pub const DEFAULT_GC_INTERVAL: Duration = Duration::from_secs(60 * 60);

/// Why a garbage collection failed; what it had removed by then stays removed.
#[derive(Debug, thiserror::Error)]
pub enum GcError {
    #[error(transparent)]
    Store(#[from] wharf_store::StoreError),
    #[error("cannot collect the image store")]
    Images(#[from] wharf_image::ImageError),
    #[error("cannot remove unused stack root filesystems")]
    Stacks(#[from] wharf_stack::StackError),
    #[error("cannot remove unused release trees")]
    Backend(#[from] wharf_core::backend::BackendError),
    #[error("the collection task failed")]
    Task(#[from] tokio::task::JoinError),
}

impl ControlPlane {
    /// Collects now; see the module docs for what is kept.
    pub async fn collect_garbage(&self) -> Result<GarbageCollection, GcError> {
        let collected = collect(self).await;
        if let Err(e) = &collected {
            tracing::error!(error = %wharf_core::error_chain(e), "garbage collection failed");
        }
        collected
    }
}

async fn collect(plane: &ControlPlane) -> Result<GarbageCollection, GcError> {
    let _exclusive = plane.gc.write().await;
    let mut keep: BTreeSet<String> = plane.store.images_to_keep(plane.keep_releases).await?;
    keep.extend(plane.backend().images_in_use());
    let mut keep: BTreeSet<Digest> = keep.iter().filter_map(|d| Digest::parse(d).ok()).collect();
    let images = plane.images().clone();
    // Stacks are kept until they are removed on purpose.
    keep.extend(
        images
            .tags()?
            .into_iter()
            .filter(|(tag, _)| tag.starts_with(wharf_stack::TAG_PREFIX))
            .map(|(_, digest)| digest),
    );
    // A release on a stack runs on its run image (its manifest names the layers wharf unpacks
    // as `/`), even after a newer make of the stack replaced it.
    let run_images: Vec<Digest> = keep
        .iter()
        .filter_map(|d| images.image(d).ok())
        .filter_map(|image| image.labels().remove(wharf_stack::LABEL_RUN_IMAGE))
        .filter_map(|d| Digest::parse(&d).ok())
        .collect();
    keep.extend(run_images);
    let kept_images = keep.len();
    let stacks = plane.stacks.rootfs_dir().to_path_buf();
    let (collected, unpacked) = tokio::task::spawn_blocking(move || {
        let collected = images.collect(&keep)?;
        // Root filesystems unpacked from images that are gone, unless a build is on one.
        let unpacked = wharf_stack::rootfs::remove_unused(&stacks, &keep)?;
        Ok::<_, GcError>((collected, unpacked))
    })
    .await??;
    let trees = plane.backend().collect_garbage().await?;
    let builds = plane.builds.clone();
    let cgroups_removed =
        tokio::task::spawn_blocking(move || builds.remove_stale_cgroups()).await?;
    let report = GarbageCollection {
        images_kept: kept_images,
        images_removed: collected.untagged.len(),
        blobs_removed: collected.removed_blobs,
        temp_files_removed: collected.removed_temp_files,
        release_trees_removed: trees
            .removed
            .iter()
            .map(|(app, version)| format!("{app}/v{version}"))
            .collect(),
        bytes_freed: collected.bytes + trees.bytes + unpacked.bytes,
    };
    tracing::info!(
        images_removed = report.images_removed,
        blobs_removed = report.blobs_removed,
        trees_removed = report.release_trees_removed.len(),
        stack_trees_removed = unpacked.trees.len(),
        cgroups_removed,
        bytes_freed = report.bytes_freed,
        "garbage collection done"
    );
    Ok(report)
}

/// Collects every `interval` until `stop` is cancelled (the first run one interval after start).
pub(crate) async fn periodically(
    plane: &ControlPlane,
    interval: Duration,
    stop: CancellationToken,
) {
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = ticks.tick() => {}
        }
        // What failed is logged where it failed.
        if plane.collect_garbage().await.is_err() {
            tracing::warn!("periodic garbage collection failed; it runs again next interval");
        }
    }
}
