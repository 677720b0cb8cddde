//! The OCI image layout on disk: `oci-layout`, `index.json` (tags), `blobs/sha256/<hex>`.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::blob::{write_atomic, BlobReader, BlobWriter, TEMP_PREFIX};
use crate::digest::HashingReader;
use crate::{Digest, ImageError, LayerInfo, MANIFEST_MEDIA_TYPE, REF_NAME_ANNOTATION};

const LAYOUT_VERSION: &str = "1.0.0";
const INDEX_MEDIA_TYPE: &str = "application/vnd.oci.image.index.v1+json";
const DOCKER_LIST_MEDIA_TYPE: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// Where [`ImageStore::remember_layer`] keeps what it remembers, beside the OCI layout's own
/// files (tools that read the layout ignore it).
const LAYER_MEMO_DIR: &str = "wharf-layer-memo";

/// A handle on an image layout directory. Cheap to clone; clones share the lock that
/// serialises `index.json` updates within this process. Other processes writing the same
/// `index.json` concurrently are not coordinated with (wharf runs one server per data dir).
#[derive(Clone, Debug)]
pub struct ImageStore {
    root: PathBuf,
    /// Held while reading-modifying-writing `index.json`, so concurrent tags don't lose updates.
    index_lock: Arc<Mutex<()>>,
}

/// What [`ImageStore::fsck`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FsckReport {
    /// Blobs re-hashed.
    pub checked: usize,
    /// Bytes re-hashed.
    pub bytes: u64,
    /// Blobs whose content doesn't hash to their name, with what it hashes to (or why it could
    /// not be read).
    pub corrupt: Vec<(Digest, String)>,
    /// Leftover temp files (from a crash mid-write) and files that are not named like blobs.
    pub stray_temp_files: Vec<PathBuf>,
    /// Blobs referenced by `index.json` or by manifests, but absent.
    pub missing: Vec<Digest>,
}

impl FsckReport {
    /// No corruption, no missing blobs (stray temp files are harmless).
    pub fn is_healthy(&self) -> bool {
        self.corrupt.is_empty() && self.missing.is_empty()
    }
}

#[derive(Serialize, Deserialize)]
struct OciLayout {
    #[serde(rename = "imageLayoutVersion")]
    image_layout_version: String,
}

/// `index.json`, keeping fields written by other tools.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct IndexFile {
    schema_version: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    media_type: Option<String>,
    #[serde(default)]
    manifests: Vec<IndexEntry>,
    #[serde(flatten)]
    extra: BTreeMap<String, Value>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct IndexEntry {
    media_type: String,
    digest: String,
    size: u64,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    annotations: BTreeMap<String, String>,
    #[serde(flatten)]
    extra: BTreeMap<String, Value>,
}

impl IndexEntry {
    fn tag(&self) -> Option<&str> {
        self.annotations
            .get(REF_NAME_ANNOTATION)
            .map(String::as_str)
    }
}

impl IndexFile {
    fn empty() -> IndexFile {
        IndexFile {
            schema_version: 2,
            media_type: Some(INDEX_MEDIA_TYPE.to_owned()),
            manifests: Vec::new(),
            extra: BTreeMap::new(),
        }
    }
}

/// Tags follow the OCI ref-name annotation's spirit: 1–128 characters from `[A-Za-z0-9._:@/+-]`,
/// starting with a letter or digit.
fn validate_tag(name: &str) -> Result<(), ImageError> {
    let invalid = |reason| ImageError::InvalidTag {
        name: name.chars().take(140).collect(),
        reason,
    };
    if name.is_empty() || name.len() > 128 {
        return Err(invalid("a tag has 1 to 128 characters"));
    }
    if !name.as_bytes()[0].is_ascii_alphanumeric() {
        return Err(invalid("a tag starts with a letter or digit"));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"._:@/+-".contains(&b))
    {
        return Err(invalid(
            "a tag may only contain letters, digits and `._:@/+-`",
        ));
    }
    Ok(())
}

impl ImageStore {
    /// Opens the layout at `root`, creating it if `root` is absent or empty. Refuses a layout of
    /// another version, and a non-empty directory that is not a layout.
    pub fn open(root: &Path) -> Result<ImageStore, ImageError> {
        fs::create_dir_all(root).map_err(ImageError::io("cannot create directory", root))?;
        let layout_path = root.join("oci-layout");
        match fs::read(&layout_path) {
            Ok(bytes) => {
                let layout: OciLayout =
                    serde_json::from_slice(&bytes).map_err(|e| ImageError::InvalidLayoutFile {
                        path: layout_path.clone(),
                        reason: e.to_string(),
                    })?;
                if layout.image_layout_version != LAYOUT_VERSION {
                    return Err(ImageError::ForeignLayout {
                        path: root.to_path_buf(),
                        version: layout.image_layout_version,
                    });
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let mut entries =
                    fs::read_dir(root).map_err(ImageError::io("cannot list directory", root))?;
                if entries.next().is_some() {
                    return Err(ImageError::NotALayout {
                        path: root.to_path_buf(),
                    });
                }
                let layout = OciLayout {
                    image_layout_version: LAYOUT_VERSION.to_owned(),
                };
                write_atomic(&layout_path, &to_json(&layout))?;
            }
            Err(e) => return Err(ImageError::io("cannot read", layout_path)(e)),
        }
        let sha256 = root.join("blobs").join("sha256");
        fs::create_dir_all(&sha256).map_err(ImageError::io("cannot create directory", &sha256))?;
        let store = ImageStore {
            root: root.to_path_buf(),
            index_lock: Arc::new(Mutex::new(())),
        };
        if !store.index_path().exists() {
            write_atomic(&store.index_path(), &to_json(&IndexFile::empty()))?;
        }
        Ok(store)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn blobs_dir(&self) -> PathBuf {
        self.root.join("blobs")
    }

    fn index_path(&self) -> PathBuf {
        self.root.join("index.json")
    }

    /// Where blob `d` lives (whether or not it exists).
    pub fn blob_path(&self, d: &Digest) -> PathBuf {
        self.root.join("blobs").join("sha256").join(d.hex())
    }

    pub fn put_blob(&self, bytes: &[u8]) -> Result<Digest, ImageError> {
        let mut writer = self.blob_writer()?;
        io::Write::write_all(&mut writer, bytes)
            .map_err(ImageError::io("cannot write blob to", self.blobs_dir()))?;
        Ok(writer.finish()?.0)
    }

    pub fn blob_writer(&self) -> Result<BlobWriter, ImageError> {
        BlobWriter::create(&self.blobs_dir())
    }

    pub fn has_blob(&self, d: &Digest) -> bool {
        self.blob_path(d).is_file()
    }

    fn memo_path(&self, key: &str) -> PathBuf {
        self.root
            .join(LAYER_MEMO_DIR)
            .join(Digest::of(key.as_bytes()).hex())
    }

    /// The layer remembered under `key` ([`ImageStore::remember_layer`]), when its blob is
    /// still in the store. Garbage collection may remove the blob; then the layer is made
    /// again.
    pub fn remembered_layer(&self, key: &str) -> Option<LayerInfo> {
        let text = fs::read_to_string(self.memo_path(key)).ok()?;
        let mut parts = text.split_whitespace();
        let digest = Digest::parse(parts.next()?).ok()?;
        let diff_id = Digest::parse(parts.next()?).ok()?;
        let size = parts.next()?.parse().ok()?;
        if !self.has_blob(&digest) || self.blob_size(&digest).ok()? != size {
            return None;
        }
        Some(LayerInfo {
            digest,
            diff_id,
            size,
            reused: true,
        })
    }

    /// Remembers `layer` as the one made from `key`: a name for its exact input (a runtime's
    /// version and digests, say), so a later image can reuse it without packing the files
    /// again. The caller answers for `key` naming one content only.
    pub fn remember_layer(&self, key: &str, layer: &LayerInfo) -> Result<(), ImageError> {
        let path = self.memo_path(key);
        let dir = self.root.join(LAYER_MEMO_DIR);
        fs::create_dir_all(&dir).map_err(ImageError::io("cannot create", &dir))?;
        let partial = path.with_extension("partial");
        fs::write(
            &partial,
            format!("{} {} {}\n", layer.digest, layer.diff_id, layer.size),
        )
        .map_err(ImageError::io("cannot write", &partial))?;
        fs::rename(&partial, &path).map_err(ImageError::io("cannot rename", &partial))
    }

    /// The blob's size on disk.
    pub fn blob_size(&self, d: &Digest) -> Result<u64, ImageError> {
        let path = self.blob_path(d);
        match fs::metadata(&path) {
            Ok(m) => Ok(m.len()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Err(ImageError::BlobMissing { digest: d.clone() })
            }
            Err(e) => Err(ImageError::io("cannot inspect blob file", path)(e)),
        }
    }

    fn open_file(&self, d: &Digest) -> Result<File, ImageError> {
        let path = self.blob_path(d);
        File::open(&path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => ImageError::BlobMissing { digest: d.clone() },
            _ => ImageError::io("cannot open blob file", path)(e),
        })
    }

    /// Reads a whole blob, checking that it hashes to its name.
    pub fn read_blob(&self, d: &Digest) -> Result<Vec<u8>, ImageError> {
        let mut bytes = Vec::new();
        self.open_file(d)?
            .read_to_end(&mut bytes)
            .map_err(ImageError::io("cannot read blob file", self.blob_path(d)))?;
        let actual = Digest::of(&bytes);
        if actual != *d {
            return Err(ImageError::Corrupt {
                digest: d.clone(),
                actual,
            });
        }
        Ok(bytes)
    }

    /// Opens a blob for streaming; the reader fails at end of file if the content doesn't hash
    /// to `d` (see [`BlobReader`]).
    pub fn open_blob(&self, d: &Digest) -> Result<BlobReader, ImageError> {
        Ok(BlobReader::new(self.open_file(d)?, d.clone()))
    }

    /// Re-hashes a blob on disk without keeping it in memory.
    pub fn verify_blob(&self, d: &Digest) -> Result<u64, ImageError> {
        let path = self.blob_path(d);
        let reader = HashingReader::new(self.open_file(d)?);
        let (_, actual, len) = reader
            .finish()
            .map_err(ImageError::io("cannot read blob file", &path))?;
        if actual != *d {
            return Err(ImageError::Corrupt {
                digest: d.clone(),
                actual,
            });
        }
        Ok(len)
    }

    fn read_index(&self) -> Result<IndexFile, ImageError> {
        let path = self.index_path();
        let bytes = fs::read(&path).map_err(ImageError::io("cannot read", &path))?;
        serde_json::from_slice(&bytes).map_err(|e| ImageError::InvalidLayoutFile {
            path,
            reason: e.to_string(),
        })
    }

    fn update_index(&self, change: impl FnOnce(&mut IndexFile)) -> Result<(), ImageError> {
        // A poisoned lock only means another thread panicked mid-update; the file on disk is
        // still whole (writes are atomic), so carry on.
        let _guard = self
            .index_lock
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut index = self.read_index()?;
        change(&mut index);
        index
            .manifests
            .sort_by(|a, b| (a.tag(), &a.digest).cmp(&(b.tag(), &b.digest)));
        write_atomic(&self.index_path(), &to_json(&index))
    }

    /// Points tag `name` at `manifest` (replacing what it pointed at). The manifest must be in
    /// the store.
    pub fn tag(&self, name: &str, manifest: &Digest) -> Result<(), ImageError> {
        validate_tag(name)?;
        let bytes = self.read_blob(manifest)?;
        let media_type = serde_json::from_slice::<Value>(&bytes)
            .ok()
            .and_then(|v| v.get("mediaType")?.as_str().map(str::to_owned))
            .unwrap_or_else(|| MANIFEST_MEDIA_TYPE.to_owned());
        let entry = IndexEntry {
            media_type,
            digest: manifest.to_string(),
            size: bytes.len() as u64,
            annotations: BTreeMap::from([(REF_NAME_ANNOTATION.to_owned(), name.to_owned())]),
            extra: BTreeMap::new(),
        };
        self.update_index(|index| {
            index.manifests.retain(|m| m.tag() != Some(name));
            index.manifests.push(entry);
        })?;
        tracing::info!(tag = name, manifest = %manifest, "tagged image");
        Ok(())
    }

    pub fn untag(&self, name: &str) -> Result<(), ImageError> {
        let mut found = false;
        self.update_index(|index| {
            let before = index.manifests.len();
            index.manifests.retain(|m| m.tag() != Some(name));
            found = index.manifests.len() != before;
        })?;
        if !found {
            return Err(ImageError::TagNotFound {
                name: name.to_owned(),
            });
        }
        tracing::info!(tag = name, "untagged image");
        Ok(())
    }

    /// Tags and the manifests they point at, sorted by tag. Entries written by other tools with
    /// non-sha256 digests are skipped.
    pub fn tags(&self) -> Result<Vec<(String, Digest)>, ImageError> {
        let index = self.read_index()?;
        let mut tags = Vec::new();
        for entry in &index.manifests {
            let Some(tag) = entry.tag() else { continue };
            match Digest::parse(&entry.digest) {
                Ok(d) => tags.push((tag.to_owned(), d)),
                Err(e) => tracing::warn!(tag, error = %e, "skipping index.json entry"),
            }
        }
        tags.sort();
        Ok(tags)
    }

    /// The manifest tag `name` points at.
    pub fn resolve(&self, name: &str) -> Result<Digest, ImageError> {
        self.tags()?
            .into_iter()
            .find(|(t, _)| t == name)
            .map(|(_, d)| d)
            .ok_or_else(|| ImageError::TagNotFound {
                name: name.to_owned(),
            })
    }

    /// Re-hashes every blob, and lists blobs that are referenced but missing, and leftovers.
    pub fn fsck(&self) -> Result<FsckReport, ImageError> {
        let mut report = FsckReport::default();
        for dir in [self.root.clone(), self.blobs_dir()] {
            for entry in fs::read_dir(&dir).map_err(ImageError::io("cannot list", &dir))? {
                let entry = entry.map_err(ImageError::io("cannot list", &dir))?;
                if entry.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
                    report.stray_temp_files.push(entry.path());
                }
            }
        }
        let sha256 = self.blobs_dir().join("sha256");
        let mut present = BTreeSet::new();
        for entry in fs::read_dir(&sha256).map_err(ImageError::io("cannot list", &sha256))? {
            let entry = entry.map_err(ImageError::io("cannot list", &sha256))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let digest = match Digest::parse(&format!("sha256:{name}")) {
                Ok(d) if entry.file_type().is_ok_and(|t| t.is_file()) => d,
                _ => {
                    report.stray_temp_files.push(entry.path());
                    continue;
                }
            };
            report.checked += 1;
            match self.verify_blob(&digest) {
                Ok(len) => report.bytes += len,
                Err(ImageError::Corrupt { actual, .. }) => {
                    report.bytes += entry.metadata().map(|m| m.len()).unwrap_or(0);
                    report.corrupt.push((digest.clone(), actual.to_string()));
                }
                Err(e) => report
                    .corrupt
                    .push((digest.clone(), format!("unreadable: {e}"))),
            }
            present.insert(digest);
        }

        // Walk references from index.json down through indexes and manifests.
        let corrupt: BTreeSet<Digest> = report.corrupt.iter().map(|(d, _)| d.clone()).collect();
        let roots = self
            .read_index()?
            .manifests
            .into_iter()
            .map(|m| (m.digest, m.media_type))
            .collect();
        let (_, missing) = self.walk(roots, |d| present.contains(d), &corrupt)?;
        report.missing = missing.into_iter().collect();
        report.corrupt.sort();
        report.stray_temp_files.sort();
        if !report.is_healthy() {
            tracing::warn!(
                corrupt = report.corrupt.len(),
                missing = report.missing.len(),
                "image store fsck found problems"
            );
        }
        Ok(report)
    }
}

impl ImageStore {
    /// Every blob reachable from `roots` (digest, media type) through indexes and manifests,
    /// split into those that `exists` and those that don't. Blobs in `opaque` are not looked
    /// into (corrupt ones, say).
    fn walk(
        &self,
        roots: Vec<(String, String)>,
        exists: impl Fn(&Digest) -> bool,
        opaque: &BTreeSet<Digest>,
    ) -> Result<(BTreeSet<Digest>, BTreeSet<Digest>), ImageError> {
        let mut reached = BTreeSet::new();
        let mut missing = BTreeSet::new();
        let mut queue = roots;
        while let Some((digest, media_type)) = queue.pop() {
            let Ok(digest) = Digest::parse(&digest) else {
                continue;
            };
            if reached.contains(&digest) || missing.contains(&digest) {
                continue;
            }
            if !exists(&digest) {
                missing.insert(digest);
                continue;
            }
            reached.insert(digest.clone());
            if opaque.contains(&digest) {
                continue;
            }
            let is_manifest = media_type == MANIFEST_MEDIA_TYPE
                || media_type == "application/vnd.docker.distribution.manifest.v2+json";
            let is_index = media_type == INDEX_MEDIA_TYPE || media_type == DOCKER_LIST_MEDIA_TYPE;
            if !is_manifest && !is_index {
                continue;
            }
            let Ok(value) = serde_json::from_slice::<Value>(&self.read_blob(&digest)?) else {
                continue;
            };
            let descriptors = if is_index {
                value.get("manifests").cloned()
            } else {
                let mut all = vec![value.get("config").cloned().unwrap_or(Value::Null)];
                if let Some(Value::Array(layers)) = value.get("layers") {
                    all.extend(layers.iter().cloned());
                }
                Some(Value::Array(all))
            };
            if let Some(Value::Array(descriptors)) = descriptors {
                for d in descriptors {
                    if let (Some(digest), media_type) = (
                        d.get("digest").and_then(Value::as_str),
                        d.get("mediaType").and_then(Value::as_str).unwrap_or(""),
                    ) {
                        queue.push((digest.to_owned(), media_type.to_owned()));
                    }
                }
            }
        }
        Ok((reached, missing))
    }

    /// Copies image `manifest` and every blob it references from the layout `from` (another
    /// wharf store, or any OCI layout: `skopeo copy`'s, a stack exported elsewhere) into this
    /// store, each blob re-hashed on the way. Blobs already here are not copied again; the
    /// manifest comes last. The image is not tagged.
    pub fn copy_image(&self, from: &ImageStore, manifest: &Digest) -> Result<(), ImageError> {
        let roots = vec![(manifest.to_string(), MANIFEST_MEDIA_TYPE.to_owned())];
        let (reached, missing) = from.walk(roots, |d| from.has_blob(d), &BTreeSet::new())?;
        if let Some(digest) = missing.into_iter().next() {
            return Err(ImageError::BlobMissing { digest });
        }
        let mut order: Vec<&Digest> = reached.iter().filter(|d| *d != manifest).collect();
        order.push(manifest);
        for digest in order {
            if self.has_blob(digest) {
                continue;
            }
            let mut reader = from.open_blob(digest)?;
            let mut writer = self.blob_writer()?;
            io::copy(&mut reader, &mut writer).map_err(ImageError::io(
                "cannot copy blob from",
                from.blob_path(digest),
            ))?;
            let (written, _) = writer.finish()?;
            if written != *digest {
                return Err(ImageError::Corrupt {
                    digest: digest.clone(),
                    actual: written,
                });
            }
        }
        Ok(())
    }

    /// Whether every blob of image `manifest` (the manifest, its config and its layers) is
    /// stored: an image that can be unpacked.
    pub fn is_complete(&self, manifest: &Digest) -> Result<bool, ImageError> {
        let roots = vec![(manifest.to_string(), MANIFEST_MEDIA_TYPE.to_owned())];
        let (_, missing) = self.walk(roots, |d| self.has_blob(d), &BTreeSet::new())?;
        Ok(missing.is_empty())
    }

    /// Garbage collection: keeps the images (manifests) in `keep` and everything they
    /// reference; untags every other image, then deletes every blob nothing kept references,
    /// and temp files older than [`STALE_TEMP_AGE`] (what an interrupted write left). Tags go
    /// first, so a crash midway leaves only unreferenced blobs behind (the next run removes
    /// them), never a reference to a deleted blob. The caller makes sure nothing writes images
    /// it is about to reference meanwhile.
    pub fn collect(&self, keep: &BTreeSet<Digest>) -> Result<Collection, ImageError> {
        let mut report = Collection::default();
        let mut untagged = Vec::new();
        let mut untagged_manifests = BTreeSet::new();
        self.update_index(|index| {
            index.manifests.retain(|m| {
                let digest = Digest::parse(&m.digest).ok();
                let kept = digest.as_ref().is_some_and(|d| keep.contains(d));
                if !kept {
                    untagged.extend(m.tag().map(str::to_owned));
                    untagged_manifests.extend(digest);
                }
                kept
            });
        })?;
        report.untagged = untagged;
        let roots = keep
            .iter()
            .map(|d| (d.to_string(), MANIFEST_MEDIA_TYPE.to_owned()))
            .collect();
        let (reached, _) = self.walk(roots, |d| self.has_blob(d), &BTreeSet::new())?;
        report.kept_blobs = reached.len();
        let sha256 = self.blobs_dir().join("sha256");
        let mut doomed = Vec::new();
        for entry in fs::read_dir(&sha256).map_err(ImageError::io("cannot list", &sha256))? {
            let entry = entry.map_err(ImageError::io("cannot list", &sha256))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let Ok(digest) = Digest::parse(&format!("sha256:{name}")) else {
                continue; // not a blob: fsck reports it
            };
            if !reached.contains(&digest) {
                let len = entry.metadata().map(|m| m.len()).unwrap_or(0);
                doomed.push((digest, entry.path(), len));
            }
        }
        // Manifests first, so a crash midway never leaves a manifest whose layers are gone
        // (an image that looks present but can't be unpacked).
        doomed.sort_by_key(|(digest, _, _)| !untagged_manifests.contains(digest));
        for (_, path, len) in doomed {
            match fs::remove_file(&path) {
                Ok(()) => {
                    report.removed_blobs += 1;
                    report.bytes += len;
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(ImageError::io("cannot remove", &path)(e)),
            }
        }
        for dir in [self.root.clone(), self.blobs_dir(), sha256] {
            for entry in fs::read_dir(&dir).map_err(ImageError::io("cannot list", &dir))? {
                let entry = entry.map_err(ImageError::io("cannot list", &dir))?;
                let stale = entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|age| age > STALE_TEMP_AGE);
                if entry.file_name().to_string_lossy().starts_with(TEMP_PREFIX) && stale {
                    let len = entry.metadata().map(|m| m.len()).unwrap_or(0);
                    if fs::remove_file(entry.path()).is_ok() {
                        report.removed_temp_files += 1;
                        report.bytes += len;
                    }
                }
            }
        }
        if report.removed_blobs > 0 {
            tracing::info!(
                blobs = report.removed_blobs,
                bytes = report.bytes,
                "collected unreferenced image blobs"
            );
        }
        Ok(report)
    }
}

/// A temp file older than this belongs to no write in progress.
pub const STALE_TEMP_AGE: std::time::Duration = std::time::Duration::from_secs(60 * 60);

/// What [`ImageStore::collect`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Collection {
    /// Tags removed (their images were not kept).
    pub untagged: Vec<String>,
    /// Blobs deleted.
    pub removed_blobs: usize,
    /// Leftover temp files deleted.
    pub removed_temp_files: usize,
    /// Bytes freed.
    pub bytes: u64,
    /// Blobs the kept images reference.
    pub kept_blobs: usize,
}

/// Serialises layout metadata. Every type passed here is plain data with string keys, for which
/// serde_json cannot fail; `Vec::new()` would only surface as a parse error later.
pub(crate) fn to_json<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_names_are_validated() {
        for ok in ["web", "myapp:v12", "a/b-c_d.e@f+g", "0"] {
            validate_tag(ok).unwrap();
        }
        for bad in ["", "-x", "a b", "a\nb", "ü", &"x".repeat(129)] {
            let err = validate_tag(bad).unwrap_err();
            assert!(err.to_string().starts_with("invalid tag"), "{err}");
        }
    }
}
