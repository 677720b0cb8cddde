//! Release trees: each release is unpacked once to `releases/<app_id>/v<N>` and shared,
//! read-only, by its instances. The app itself is the tree's `app/` directory (images put the
//! app under `/app`).

use std::collections::HashSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use wharf_image::ImageStore;

use crate::{ReleaseSpec, RunError};

#[derive(Debug)]
pub(crate) struct Releases {
    root: PathBuf,
    /// Where stacks' run images are unpacked, once each (shared with builds).
    stacks: PathBuf,
    images: ImageStore,
    /// Serialises unpacking, so two instances starting at once unpack a release only once.
    unpacking: tokio::sync::Mutex<()>,
}

impl Releases {
    pub(crate) fn new(root: PathBuf, stacks: PathBuf, images: ImageStore) -> Self {
        Releases {
            root,
            stacks,
            images,
            unpacking: tokio::sync::Mutex::new(()),
        }
    }

    /// The host paths of the release's app tree and, for a release on a stack, of its run
    /// image's root filesystem, unpacking them first if needed. With an app user, the app's
    /// directory of trees belongs to its group (mode 0750), so other apps' users can't read
    /// its code.
    pub(crate) async fn ensure(
        &self,
        app_id: &str,
        release: &ReleaseSpec,
        user: Option<u32>,
    ) -> Result<ReleaseTree, RunError> {
        let app_root = self.root.join(app_id);
        let dest = app_root.join(format!("v{}", release.version));
        let _guard = self.unpacking.lock().await;
        // Both unpacked already (the release was checked against its run image then): found
        // without reading the image store, as every instance start after the first is.
        let unpacked_root = release
            .run_image
            .as_deref()
            .and_then(|d| wharf_image::Digest::parse(d).ok())
            .map(|d| wharf_stack::rootfs::path(&self.stacks, &d));
        if dest.is_dir() && unpacked_root.as_ref().is_none_or(|r| r.is_dir()) {
            if let Some(gid) = user {
                crate::runtime::restrict_to_group(&app_root, gid)?;
            }
            return Ok(ReleaseTree {
                app: dest.join("app"),
                root: unpacked_root,
            });
        }
        let (root, below) = match &release.run_image {
            Some(run_image) => {
                let (root, below) = self.run_root(app_id, release, run_image).await?;
                (Some(root), below)
            }
            None => (None, 0),
        };
        let tree = ReleaseTree {
            app: dest.join("app"),
            root,
        };
        if dest.is_dir() {
            if let Some(gid) = user {
                crate::runtime::restrict_to_group(&app_root, gid)?;
            }
            return Ok(tree);
        }
        let images = self.images.clone();
        let app_id = app_id.to_owned();
        let release = release.clone();
        let root = app_root.clone();
        tokio::task::spawn_blocking(move || {
            unpack(&images, &root, &dest, &app_id, &release, below)
        })
        .await
        .map_err(|e| RunError::Io {
            action: "unpack a release into",
            path: PathBuf::new(),
            source: std::io::Error::other(e.to_string()),
        })??;
        if let Some(gid) = user {
            crate::runtime::restrict_to_group(&app_root, gid)?;
        }
        Ok(tree)
    }
}

/// What collecting release trees removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TreeCollection {
    /// `(app id, version)` of each tree removed.
    pub removed: Vec<(String, u32)>,
    /// Bytes of files they held.
    pub bytes: u64,
}

/// Where a release's files are on the host.
#[derive(Debug, Clone)]
pub(crate) struct ReleaseTree {
    /// The app (the image's `/app`).
    pub app: PathBuf,
    /// The stack's run image as a root filesystem (`/`), for a release on a stack.
    pub root: Option<PathBuf>,
}

impl Releases {
    /// The run image's root filesystem, unpacked, and how many of the release image's layers
    /// (the bottom ones) are the run image's; the image must sit on it.
    async fn run_root(
        &self,
        app_id: &str,
        release: &ReleaseSpec,
        run_image: &str,
    ) -> Result<(PathBuf, usize), RunError> {
        let images = self.images.clone();
        let stacks = self.stacks.clone();
        let (image, run) = (release.image.clone(), run_image.to_owned());
        let found = tokio::task::spawn_blocking(move || {
            let parse = |d: &str| wharf_image::Digest::parse(d).map_err(|e| e.to_string());
            let (image, run) = (parse(&image)?, parse(&run)?);
            let read = |d: &wharf_image::Digest| images.image(d).map_err(|e| e.to_string());
            let below = wharf_stack::layers_on(&read(&image)?, &read(&run)?)
                .ok_or("the image's bottom layers are not the run image's")?;
            let root =
                wharf_stack::rootfs::unpack(&images, &run, &stacks).map_err(|e| e.to_string())?;
            Ok((root, below))
        })
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r);
        found.map_err(|reason| RunError::RunImage {
            app_id: app_id.to_owned(),
            version: release.version,
            run_image: run_image.to_owned(),
            reason,
        })
    }

    /// Removes every unpacked release tree that `in_use` (called with unpacking held off, so no
    /// tree appears meanwhile) doesn't name, and what an interrupted unpack or removal left.
    /// Each tree is renamed aside before it is deleted: a crash midway never leaves a partial
    /// tree where [`Releases::ensure`] would take it for a whole one.
    pub(crate) async fn collect(
        &self,
        in_use: impl FnOnce() -> HashSet<(String, u32)>,
    ) -> Result<TreeCollection, RunError> {
        let _guard = self.unpacking.lock().await;
        let in_use = in_use();
        let root = self.root.clone();
        tokio::task::spawn_blocking(move || collect(&root, &in_use))
            .await
            .map_err(|e| RunError::Io {
                action: "collect release trees in",
                path: PathBuf::new(),
                source: std::io::Error::other(e.to_string()),
            })?
    }
}

fn collect(root: &Path, in_use: &HashSet<(String, u32)>) -> Result<TreeCollection, RunError> {
    let mut report = TreeCollection::default();
    let apps = match std::fs::read_dir(root) {
        Ok(apps) => apps,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(report),
        Err(e) => return Err(RunError::io("read", root)(e)),
    };
    for app in apps.flatten() {
        let app_id = app.file_name().to_string_lossy().into_owned();
        let app_dir = app.path();
        let Ok(trees) = std::fs::read_dir(&app_dir) else {
            continue;
        };
        for tree in trees.flatten() {
            let name = tree.file_name().to_string_lossy().into_owned();
            let path = tree.path();
            let version = name.strip_prefix('v').and_then(|v| v.parse::<u32>().ok());
            let leftover = name.starts_with('.');
            match version {
                Some(v) if in_use.contains(&(app_id.clone(), v)) => continue,
                Some(_) => {}
                None if leftover => {}
                None => continue, // not wharf's
            }
            let bytes = size_of(&path);
            let aside = if leftover {
                path.clone()
            } else {
                let aside = app_dir.join(format!(".{name}.removing-{}", rand::random::<u32>()));
                std::fs::rename(&path, &aside).map_err(RunError::io("move aside", &path))?;
                aside
            };
            crate::runtime::wipe(&aside)?;
            if let Some(v) = version {
                report.removed.push((app_id.clone(), v));
                report.bytes += bytes;
            }
        }
        // An app none of whose trees is left (a deleted app, say) leaves no directory.
        let _ = std::fs::remove_dir(&app_dir);
    }
    report.removed.sort();
    Ok(report)
}

/// Bytes of the regular files below `path`.
fn size_of(path: &Path) -> u64 {
    walkdir::WalkDir::new(path)
        .into_iter()
        .flatten()
        .filter_map(|e| e.metadata().ok())
        .filter(std::fs::Metadata::is_file)
        .map(|m| m.len())
        .sum()
}

fn unpack(
    images: &ImageStore,
    app_root: &Path,
    dest: &Path,
    app_id: &str,
    release: &ReleaseSpec,
    below: usize,
) -> Result<(), RunError> {
    std::fs::create_dir_all(app_root).map_err(RunError::io("create", app_root))?;
    let _ = std::fs::set_permissions(app_root, std::fs::Permissions::from_mode(0o755));
    let tmp = app_root.join(format!(
        ".v{}.unpacking-{}",
        release.version,
        rand::random::<u32>()
    ));
    let result = (|| {
        let digest =
            wharf_image::Digest::parse(&release.image).map_err(|source| RunError::Unpack {
                app_id: app_id.to_owned(),
                version: release.version,
                image: release.image.clone(),
                source: Box::new(source),
            })?;
        images
            .extract_from(&digest, below, &tmp)
            .map_err(|source| RunError::Unpack {
                app_id: app_id.to_owned(),
                version: release.version,
                image: release.image.to_string(),
                source: Box::new(source),
            })?;
        let app = tmp.join("app");
        std::fs::create_dir_all(&app).map_err(RunError::io("create", &app))?;
        make_read_only(&tmp).map_err(RunError::io("make read-only", &tmp))?;
        std::fs::rename(&tmp, dest).map_err(RunError::io("rename into place", dest))
    })();
    if result.is_err() {
        let _ = crate::runtime::wipe(&tmp);
    }
    result
}

/// Removes every write bit below `path` (directories after their contents), and makes sure
/// others may read and traverse it, so an unprivileged app user can run it.
fn make_read_only(path: &Path) -> std::io::Result<()> {
    let meta = std::fs::symlink_metadata(path)?;
    if meta.file_type().is_symlink() {
        return Ok(());
    }
    if meta.is_dir() {
        for entry in std::fs::read_dir(path)? {
            make_read_only(&entry?.path())?;
        }
    }
    let mode = meta.permissions().mode();
    let mut new = mode & !0o222;
    if meta.is_dir() || mode & 0o100 != 0 {
        new |= 0o555;
    } else {
        new |= 0o444;
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(new))
}
