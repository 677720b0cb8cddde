//! A stack image as a root filesystem on disk, for bubblewrap to use as `/`: unpacked once
//! into a directory named after the image's digest, shared by every build or process on it,
//! and never changed after (it is only ever mounted read-only).

use std::path::{Path, PathBuf};

use wharf_image::{Digest, ImageStore};

use crate::StackError;

/// The root filesystem of image `manifest` under `cache` (`<cache>/<hex digest>`), unpacked
/// from the store the first time it is asked for. Unpacking goes to a temporary directory
/// that is renamed into place, so a crash midway leaves nothing that looks complete.
///
/// Owners are kept when wharf is root; set-uid and set-gid bits are dropped (nothing in a
/// stack needs to gain privileges, and the tree sits in the data directory); device nodes and
/// fifos are skipped (the sandbox brings its own `/dev`). Stack images are one layer each, so
/// there are no whiteouts to apply.
pub fn unpack(store: &ImageStore, manifest: &Digest, cache: &Path) -> Result<PathBuf, StackError> {
    let dest = cache.join(manifest.hex());
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

fn unpack_layers(store: &ImageStore, manifest: &Digest, into: &Path) -> Result<(), StackError> {
    let root = nix::unistd::geteuid().is_root();
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
            entry.set_mask(0o6000);
            entry
                .unpack_in(into)
                .map_err(crate::io("unpack a layer into", into))?;
        }
    }
    Ok(())
}
