//! A stack image as a root filesystem on disk, for bubblewrap to use as `/`: unpacked once
//! into a directory named after the image's digest, shared by every build or process on it,
//! and never changed after (it is only ever mounted read-only).

use std::path::{Path, PathBuf};

use wharf_image::{Digest, ImageStore};

use crate::StackError;

/// Where image `manifest`'s root filesystem is (or would be) unpacked under `cache`.
pub fn path(cache: &Path, manifest: &Digest) -> PathBuf {
    cache.join(manifest.hex())
}

/// The root filesystem of image `manifest` under `cache` (`<cache>/<hex digest>`), unpacked
/// from the store the first time it is asked for. Unpacking goes to a temporary directory
/// that is renamed into place, so a crash midway leaves nothing that looks complete.
///
/// Owners are kept when wharf is root; set-uid and set-gid bits are dropped (nothing in a
/// stack needs to gain privileges, and the tree sits in the data directory); device nodes and
/// fifos are skipped (the sandbox brings its own `/dev`). Stack images are one layer each, so
/// there are no whiteouts to apply.
pub fn unpack(store: &ImageStore, manifest: &Digest, cache: &Path) -> Result<PathBuf, StackError> {
    let dest = path(cache, manifest);
    if dest.is_dir() {
        return Ok(dest);
    }
    std::fs::create_dir_all(cache).map_err(crate::io("create", cache))?;
    // Unique to this call: builds and instances of one process may unpack the same image at
    // once (the first rename wins; the others' copies are dropped).
    static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = cache.join(format!(".{}.{}-{call}", manifest.hex(), std::process::id()));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(crate::io("remove", &tmp))?;
    }
    std::fs::create_dir(&tmp).map_err(crate::io("create", &tmp))?;
    let unpacked = unpack_layers(store, manifest, &tmp);
    if let Err(e) = unpacked {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    // Everyone may look inside: app users run on it.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755))
        .map_err(crate::io("set the mode of", &tmp))?;
    match std::fs::rename(&tmp, &dest) {
        Ok(()) => Ok(dest),
        // Another process unpacked it meanwhile: theirs is as good.
        Err(_) if dest.is_dir() => {
            let _ = std::fs::remove_dir_all(&tmp);
            Ok(dest)
        }
        Err(e) => Err(crate::io("rename", &tmp)(e)),
    }
}

/// The lock file of image `manifest`'s root filesystem under `cache`.
fn lock_path(cache: &Path, manifest: &Digest) -> PathBuf {
    cache.join(format!("{}.lock", manifest.hex()))
}

/// A root filesystem in use: while it is held, [`remove_unused`] leaves it alone.
#[derive(Debug)]
pub struct Held(#[allow(dead_code)] nix::fcntl::Flock<std::fs::File>);

/// Holds image `manifest`'s root filesystem under `cache` for as long as the result lives (a
/// build on a build image that a newer make of its stack replaced keeps its `/`).
pub fn hold(cache: &Path, manifest: &Digest) -> Result<Held, StackError> {
    std::fs::create_dir_all(cache).map_err(crate::io("create", cache))?;
    let path = lock_path(cache, manifest);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(crate::io("open", &path))?;
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockShared)
        .map(Held)
        .map_err(|(_, e)| crate::io("lock", &path)(e.into()))
}

/// What [`remove_unused`] removed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Removed {
    pub trees: Vec<Digest>,
    pub bytes: u64,
}

/// Leftovers of an unpack cut short are this old before they are removed (an unpack still
/// running is younger).
const STALE_TEMP: std::time::Duration = std::time::Duration::from_secs(60 * 60);

/// Removes the root filesystems under `cache` of images not in `keep` and not held, and
/// unpacks that a crash cut short. Garbage collection calls it once the image store has been
/// collected with the same `keep`.
pub fn remove_unused(
    cache: &Path,
    keep: &std::collections::BTreeSet<Digest>,
) -> Result<Removed, StackError> {
    let mut removed = Removed::default();
    let entries = match std::fs::read_dir(cache) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(removed),
        Err(e) => return Err(crate::io("list", cache)(e)),
    };
    for entry in entries {
        let entry = entry.map_err(crate::io("list", cache))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        if name.starts_with('.') {
            let stale = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > STALE_TEMP);
            if stale {
                removed.bytes += tree_bytes(&path);
                std::fs::remove_dir_all(&path).map_err(crate::io("remove", &path))?;
            }
            continue;
        }
        let Ok(digest) = Digest::parse(&format!("sha256:{name}")) else {
            continue; // lock files, and anything not ours
        };
        if keep.contains(&digest) || !path.is_dir() {
            continue;
        }
        let lock = lock_path(cache, &digest);
        let held = match std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock)
        {
            Ok(file) => nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock),
            Err(e) => return Err(crate::io("open", &lock)(e)),
        };
        let Ok(_exclusive) = held else {
            continue; // a build is on it
        };
        removed.bytes += tree_bytes(&path);
        std::fs::remove_dir_all(&path).map_err(crate::io("remove", &path))?;
        let _ = std::fs::remove_file(&lock);
        removed.trees.push(digest);
    }
    Ok(removed)
}

fn tree_bytes(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    walkdir::WalkDir::new(path)
        .into_iter()
        .filter_map(Result::ok)
        .filter_map(|e| e.metadata().ok())
        .filter(|m| m.is_file())
        .map(|m| m.blocks() * 512)
        .sum()
}

fn unpack_layers(store: &ImageStore, manifest: &Digest, into: &Path) -> Result<(), StackError> {
    let root = nix::unistd::geteuid().is_root();
    // Images made elsewhere (`wharf stacks import`) have layers on layers, with whiteouts.
    for layer in store.image(manifest)?.layers() {
        let blob = store.open_blob(&layer.digest)?;
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(blob));
        archive.set_preserve_permissions(true);
        archive.set_preserve_ownerships(root);
        archive.set_unpack_xattrs(false);
        archive.set_overwrite(true);
        let read = crate::io("read a layer of", into);
        for entry in archive.entries().map_err(read)? {
            let mut entry = entry.map_err(crate::io("read a layer of", into))?;
            let kind = entry.header().entry_type();
            if kind.is_character_special() || kind.is_block_special() || kind.is_fifo() {
                continue;
            }
            let path = entry.path().map_err(crate::io("read a layer of", into))?;
            if let Some(name) = path.file_name().and_then(|n| n.to_str()) {
                if let Some(hidden) = name.strip_prefix(".wh.") {
                    // A whiteout: what a lower layer had there is gone.
                    let dir = path.parent().unwrap_or(Path::new("")).to_path_buf();
                    whiteout(into, &dir, hidden)?;
                    continue;
                }
            }
            entry.set_mask(0o6000);
            entry
                .unpack_in(into)
                .map_err(crate::io("unpack a layer into", into))?;
        }
    }
    Ok(())
}

/// Applies whiteout `.wh.<hidden>` in `dir` (relative to `root`): `.wh..wh..opq` empties the
/// directory, any other removes the entry it names. Paths that climb out of `root` or pass
/// through a symbolic link are refused, so a layer can't remove anything outside the tree.
fn whiteout(root: &Path, dir: &Path, hidden: &str) -> Result<(), StackError> {
    use std::path::Component;
    let refused = || StackError::Io {
        action: "apply a whiteout in",
        path: root.join(dir),
        source: std::io::Error::other("the path leaves the image's tree"),
    };
    let mut here = root.to_path_buf();
    for part in dir.components() {
        match part {
            Component::Normal(p) => here.push(p),
            Component::CurDir => {}
            _ => return Err(refused()),
        }
        match std::fs::symlink_metadata(&here) {
            Ok(m) if m.is_dir() => {}
            // Nothing there: nothing to remove.
            Err(_) => return Ok(()),
            Ok(_) => return Err(refused()),
        }
    }
    let remove = |path: &Path| -> Result<(), StackError> {
        let result = match std::fs::symlink_metadata(path) {
            Ok(m) if m.is_dir() => std::fs::remove_dir_all(path),
            Ok(_) => std::fs::remove_file(path),
            Err(_) => Ok(()),
        };
        result.map_err(crate::io("remove", path))
    };
    if hidden == ".wh..opq" {
        for entry in std::fs::read_dir(&here).map_err(crate::io("read", &here))? {
            remove(&entry.map_err(crate::io("read", &here))?.path())?;
        }
        return Ok(());
    }
    if hidden.is_empty() || hidden == "." || hidden == ".." || hidden.contains('/') {
        return Err(refused());
    }
    remove(&here.join(hidden))
}

#[cfg(test)]
mod tests {

    /// Garbage collection's part here: a tree of an image still kept stays, one a build holds
    /// stays until the build lets go, the others go with their lock files, and so do the
    /// leftovers of an unpack a crash cut short, once they are old.
    #[test]
    fn unused_trees_go_unless_kept_or_held() {
        use super::{hold, lock_path, path, remove_unused};
        use wharf_image::Digest;
        let tmp = tempfile::tempdir().unwrap();
        let cache = tmp.path();
        let digest =
            |c: char| Digest::parse(&format!("sha256:{}", c.to_string().repeat(64))).unwrap();
        let (kept, held, unused) = (digest('a'), digest('b'), digest('c'));
        for d in [&kept, &held, &unused] {
            std::fs::create_dir_all(path(cache, d).join("usr/bin")).unwrap();
            std::fs::write(path(cache, d).join("usr/bin/sh"), vec![0u8; 10_000]).unwrap();
        }
        let fresh_temp = cache.join(format!(".{}.1-0", unused.hex()));
        let old_temp = cache.join(format!(".{}.2-0", unused.hex()));
        std::fs::create_dir_all(&fresh_temp).unwrap();
        std::fs::create_dir_all(&old_temp).unwrap();
        let two_hours_ago = nix::sys::time::TimeSpec::from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                - std::time::Duration::from_secs(7200),
        );
        nix::sys::stat::utimensat(
            None,
            &old_temp,
            &two_hours_ago,
            &two_hours_ago,
            nix::sys::stat::UtimensatFlags::FollowSymlink,
        )
        .unwrap();

        let build = hold(cache, &held).unwrap();
        let keep = std::collections::BTreeSet::from([kept.clone()]);
        let removed = remove_unused(cache, &keep).unwrap();
        assert_eq!(removed.trees, vec![unused.clone()]);
        assert!(removed.bytes >= 10_000, "{removed:?}");
        assert!(path(cache, &kept).is_dir());
        assert!(path(cache, &held).is_dir());
        assert!(!path(cache, &unused).exists());
        assert!(fresh_temp.is_dir() && !old_temp.exists());

        drop(build);
        let removed = remove_unused(cache, &keep).unwrap();
        assert_eq!(removed.trees, vec![held.clone()]);
        assert!(!path(cache, &held).exists() && !lock_path(cache, &held).exists());
        assert!(path(cache, &kept).is_dir());
    }
    use wharf_image::{ImageSpec, ImageStore, LayerInfo};

    /// A layer of `files` (each holding its own name), as another tool would write it.
    fn layer(store: &ImageStore, files: &[&str]) -> LayerInfo {
        let mut tar = tar::Builder::new(Vec::new());
        for file in files {
            let mut header = tar::Header::new_gnu();
            header.set_size(file.len() as u64);
            header.set_mode(0o644);
            header.set_uid(0);
            header.set_gid(0);
            header.set_mtime(0);
            header.set_cksum();
            tar.append_data(&mut header, file, file.as_bytes()).unwrap();
        }
        store
            .import_tar_layer(&tar.into_inner().unwrap()[..])
            .unwrap()
    }

    #[test]
    fn whiteouts_of_upper_layers_remove_what_lower_ones_put() {
        let store_dir = tempfile::tempdir().unwrap();
        let store = ImageStore::open(store_dir.path()).unwrap();
        let lower = layer(&store, &["etc/a", "etc/b", "opaque/x", "opaque/sub/z"]);
        let upper = layer(&store, &["etc/.wh.a", "opaque/.wh..wh..opq", "opaque/y"]);
        let image = store
            .build_image(&ImageSpec {
                base: vec![lower, upper],
                ..Default::default()
            })
            .unwrap();
        let cache = tempfile::tempdir().unwrap();
        let root = super::unpack(&store, &image.manifest, cache.path()).unwrap();
        let names = |dir: &str| -> Vec<String> {
            let mut names: Vec<String> = std::fs::read_dir(root.join(dir))
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            names
        };
        assert_eq!(names("etc"), ["b"]);
        assert_eq!(names("opaque"), ["y"]);
    }

    #[test]
    fn whiteouts_never_reach_outside_the_tree() {
        let root = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("keep"), "x").unwrap();
        std::os::unix::fs::symlink(outside.path(), root.path().join("link")).unwrap();
        for (dir, name) in [("link", "keep"), ("../x", "keep"), ("", "..")] {
            assert!(
                super::whiteout(root.path(), std::path::Path::new(dir), name).is_err(),
                "{dir}/{name}"
            );
        }
        assert!(outside.path().join("keep").exists());
    }
}
