//! Building images from directory trees, reading them back, and extracting them.

use std::collections::BTreeMap;
use std::io::{self, BufReader, Read};
use std::path::{Component, Path, PathBuf};

use flate2::read::GzDecoder;
use serde::Serialize;

use crate::blob::FinishedBlob;
use crate::digest::{HashingReader, HashingWriter};
use crate::extract::{self, ExtractError, Extractor, Policy};
use crate::layer::{self, TreeEntry, TreeKind, WriteError};
use crate::store::to_json;
use crate::tarread::{self, WalkError};
use crate::{
    Digest, ImageError, ImageStore, CONFIG_MEDIA_TYPE, LAYER_MEDIA_TYPE, MANIFEST_MEDIA_TYPE,
};

/// What to build: layers bottom first, and the runtime config.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageSpec {
    /// Layers already in the store (a stack's, say), kept as they are, below `layers`.
    pub base: Vec<LayerInfo>,
    pub layers: Vec<LayerSpec>,
    /// e.g. "/app"
    pub working_dir: String,
    pub env: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
    pub cmd: Option<Vec<String>>,
    /// What runs the image (`cmd` is its arguments).
    pub entrypoint: Option<Vec<String>>,
    /// `uid[:gid]` the image's processes run as; `None` leaves it to the runtime (root).
    pub user: Option<String>,
}

/// One layer: (part of) a directory on disk, placed under `prefix` in the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerSpec {
    pub root: PathBuf,
    /// Where `root` goes in the image, e.g. "app"; no leading slash, no `..`; "" for `/`.
    pub prefix: String,
    pub select: Select,
}

/// Which entries of a layer's root go in the layer. Paths are relative to the root and match
/// themselves and everything below them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Select {
    All,
    /// Only these paths (and the directories leading to them).
    Only(Vec<PathBuf>),
    /// Everything but these paths.
    AllExcept(Vec<PathBuf>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltImage {
    pub manifest: Digest,
    pub config: Digest,
    pub layers: Vec<LayerInfo>,
    /// Manifest + config + compressed layers, in bytes.
    pub size: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerInfo {
    /// Digest of the compressed blob.
    pub digest: Digest,
    /// Digest of the uncompressed tar.
    pub diff_id: Digest,
    /// Size of the compressed blob.
    pub size: u64,
    /// The blob was already in the store.
    pub reused: bool,
}

/// A manifest and its config, read back and verified.
#[derive(Debug, Clone)]
pub struct Image {
    pub manifest_digest: Digest,
    pub manifest: oci_spec::image::ImageManifest,
    pub config: oci_spec::image::ImageConfiguration,
}

impl Image {
    pub fn labels(&self) -> BTreeMap<String, String> {
        self.runtime()
            .and_then(|c| c.labels().as_ref())
            .map(|l| l.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default()
    }

    /// `Env` as a map (`K=V`, split at the first `=`).
    pub fn env(&self) -> BTreeMap<String, String> {
        self.runtime()
            .and_then(|c| c.env().as_ref())
            .map(|env| {
                env.iter()
                    .map(|kv| match kv.split_once('=') {
                        Some((k, v)) => (k.to_owned(), v.to_owned()),
                        None => (kv.clone(), String::new()),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The layers, bottom first, as [`ImageSpec::base`] takes them.
    pub fn layers(&self) -> Vec<LayerInfo> {
        self.manifest
            .layers()
            .iter()
            .zip(self.config.rootfs().diff_ids())
            .filter_map(|(descriptor, diff_id)| {
                Some(LayerInfo {
                    digest: descriptor.digest().to_string().parse().ok()?,
                    diff_id: diff_id.parse().ok()?,
                    size: descriptor.size(),
                    reused: true,
                })
            })
            .collect()
    }

    pub fn working_dir(&self) -> Option<String> {
        self.runtime().and_then(|c| c.working_dir().clone())
    }

    pub fn cmd(&self) -> Option<Vec<String>> {
        self.runtime().and_then(|c| c.cmd().clone())
    }

    pub fn entrypoint(&self) -> Option<Vec<String>> {
        self.runtime().and_then(|c| c.entrypoint().clone())
    }

    pub fn user(&self) -> Option<String> {
        self.runtime().and_then(|c| c.user().clone())
    }

    fn runtime(&self) -> Option<&oci_spec::image::Config> {
        self.config.config().as_ref()
    }
}

// The JSON written for configs and manifests. Own types rather than oci-spec's, whose label
// map is a HashMap: iteration order would make the bytes (and so the digest) vary.
#[derive(Serialize)]
struct ConfigJson<'a> {
    architecture: &'static str,
    os: &'static str,
    config: RuntimeJson<'a>,
    rootfs: RootFsJson,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct RuntimeJson<'a> {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    env: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    entrypoint: Option<&'a [String]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cmd: Option<&'a [String]>,
    #[serde(skip_serializing_if = "str::is_empty")]
    working_dir: &'a str,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    labels: &'a BTreeMap<String, String>,
}

#[derive(Serialize)]
struct RootFsJson {
    #[serde(rename = "type")]
    kind: &'static str,
    diff_ids: Vec<Digest>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ManifestJson {
    schema_version: u32,
    media_type: &'static str,
    config: DescriptorJson,
    layers: Vec<DescriptorJson>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DescriptorJson {
    media_type: &'static str,
    digest: Digest,
    size: u64,
}

/// This machine's architecture in OCI (Go) spelling.
fn oci_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
        "powerpc64" => "ppc64",
        "loongarch64" => "loong64",
        other => other,
    }
}

fn oci_os() -> &'static str {
    match std::env::consts::OS {
        "macos" => "darwin",
        other => other,
    }
}

/// A relative path made only of normal components, as archive name bytes.
fn clean_relative(path: &Path) -> Option<Vec<u8>> {
    use std::os::unix::ffi::OsStrExt;
    let mut out = Vec::new();
    for c in path.components() {
        match c {
            Component::Normal(n) => {
                if !out.is_empty() {
                    out.push(b'/');
                }
                out.extend_from_slice(n.as_bytes());
            }
            Component::CurDir => {}
            _ => return None,
        }
    }
    Some(out)
}

impl LayerSpec {
    /// Collects the entries this layer holds, validating the spec.
    fn entries(&self) -> Result<Vec<TreeEntry>, ImageError> {
        let invalid = |reason: String| ImageError::InvalidLayerSpec {
            root: self.root.clone(),
            reason,
        };
        let prefix = clean_relative(Path::new(&self.prefix))
            .filter(|_| !self.prefix.starts_with('/'))
            .ok_or_else(|| {
                invalid(format!(
                    "prefix `{}` must be a relative path without `..`",
                    self.prefix
                ))
            })?;
        let (only, except) = match &self.select {
            Select::All => (None, Vec::new()),
            Select::Only(paths) => (Some(paths.as_slice()), Vec::new()),
            Select::AllExcept(paths) => (None, paths.clone()),
        };
        for p in only.unwrap_or_default().iter().chain(&except) {
            if clean_relative(p).is_none_or(|c| c.is_empty()) {
                return Err(invalid(format!(
                    "selected path `{}` must be relative, non-empty and without `..`",
                    p.display()
                )));
            }
        }
        if !self.root.is_dir() {
            return Err(invalid("the root is not a directory".to_owned()));
        }

        let mut entries = Vec::new();
        // The prefix's own directories, so extractors see them with the same mode everywhere.
        let mut name = Vec::new();
        for comp in prefix.split(|&b| b == b'/').filter(|c| !c.is_empty()) {
            name.extend_from_slice(comp);
            name.push(b'/');
            entries.push(TreeEntry {
                name: name.clone(),
                source: None,
                kind: TreeKind::Dir,
            });
        }

        let root = &self.root;
        let relative = |p: &Path| p.strip_prefix(root).unwrap_or(p).to_path_buf();
        let excluded = |rel: &Path| except.iter().any(|e| rel.starts_with(e));
        let selected = |rel: &Path, is_dir: bool| match only {
            None => true,
            Some(only) => only
                .iter()
                .any(|o| rel.starts_with(o) || (is_dir && o.starts_with(rel))),
        };
        let walk = walkdir::WalkDir::new(root)
            .min_depth(1)
            .follow_links(false)
            .into_iter()
            .filter_entry(|e| {
                let rel = relative(e.path());
                !excluded(&rel) && selected(&rel, e.file_type().is_dir())
            });
        for item in walk {
            let item = item.map_err(|e| ImageError::SourceEntry {
                path: e.path().unwrap_or(root).to_path_buf(),
                reason: e
                    .io_error()
                    .map_or_else(|| e.to_string(), |io| io.to_string()),
            })?;
            let source_err = |reason: String| ImageError::SourceEntry {
                path: item.path().to_path_buf(),
                reason,
            };
            if item.file_name().as_encoded_bytes().starts_with(b".wh.") {
                return Err(source_err(
                    "names starting with `.wh.` are reserved for OCI whiteouts".to_owned(),
                ));
            }
            let rel = relative(item.path());
            let meta = item.metadata().map_err(|e| source_err(e.to_string()))?;
            if let Some(entry) = TreeEntry::from_disk(&prefix, &rel, item.path(), &meta)
                .map_err(|e| source_err(e.to_string()))?
            {
                entries.push(entry);
            }
        }
        Ok(entries)
    }
}

/// Ends a layer written through `out` (uncompressed bytes hashed into the diff_id, then
/// gzipped into a blob): the blob is stored under its digest.
fn finish_layer(
    out: HashingWriter<flate2::write::GzEncoder<crate::BlobWriter>>,
    blobs: &Path,
) -> Result<LayerInfo, ImageError> {
    let (gz, diff_id, _) = out.finish();
    let blob = gz
        .finish()
        .map_err(ImageError::io("cannot write layer to", blobs))?;
    let FinishedBlob {
        digest,
        size,
        existed,
    } = blob.finish_blob()?;
    Ok(LayerInfo {
        digest,
        diff_id,
        size,
        reused: existed,
    })
}

impl ImageStore {
    /// Builds an image from `spec`: one deterministic layer per [`LayerSpec`], a config without
    /// timestamps, and a manifest. The same trees and spec always give the same digests. The
    /// image is not tagged.
    pub fn build_image(&self, spec: &ImageSpec) -> Result<BuiltImage, ImageError> {
        let mut layers = Vec::with_capacity(spec.base.len() + spec.layers.len());
        for base in &spec.base {
            if !self.has_blob(&base.digest) {
                return Err(ImageError::BlobMissing {
                    digest: base.digest.clone(),
                });
            }
            layers.push(LayerInfo {
                reused: true,
                ..base.clone()
            });
        }
        for layer_spec in &spec.layers {
            let entries = layer_spec.entries()?;
            let info = self.write_layer(entries)?;
            tracing::debug!(
                root = %layer_spec.root.display(),
                layer = %info.digest,
                reused = info.reused,
                "built layer"
            );
            layers.push(info);
        }

        let env: Vec<String> = spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let config = ConfigJson {
            architecture: oci_arch(),
            os: oci_os(),
            config: RuntimeJson {
                env,
                user: spec.user.as_deref(),
                entrypoint: spec.entrypoint.as_deref(),
                cmd: spec.cmd.as_deref(),
                working_dir: &spec.working_dir,
                labels: &spec.labels,
            },
            rootfs: RootFsJson {
                kind: "layers",
                diff_ids: layers.iter().map(|l| l.diff_id.clone()).collect(),
            },
        };
        let config_bytes = to_json(&config);
        let config_digest = self.put_blob(&config_bytes)?;
        let manifest = ManifestJson {
            schema_version: 2,
            media_type: MANIFEST_MEDIA_TYPE,
            config: DescriptorJson {
                media_type: CONFIG_MEDIA_TYPE,
                digest: config_digest.clone(),
                size: config_bytes.len() as u64,
            },
            layers: layers
                .iter()
                .map(|l| DescriptorJson {
                    media_type: LAYER_MEDIA_TYPE,
                    digest: l.digest.clone(),
                    size: l.size,
                })
                .collect(),
        };
        let manifest_bytes = to_json(&manifest);
        let manifest_digest = self.put_blob(&manifest_bytes)?;
        let size = manifest_bytes.len() as u64
            + config_bytes.len() as u64
            + layers.iter().map(|l| l.size).sum::<u64>();
        tracing::info!(manifest = %manifest_digest, layers = layers.len(), size, "built image");
        Ok(BuiltImage {
            manifest: manifest_digest,
            config: config_digest,
            layers,
            size,
        })
    }

    /// Stores an uncompressed tar stream as a layer, byte for byte (owners, modes, times and
    /// special files as the tar has them: an operating system's root filesystem, say),
    /// compressed with the same settings as every layer, so the same tar gives the same blob.
    pub fn import_tar_layer(&self, mut tar: impl Read) -> Result<LayerInfo, ImageError> {
        let blobs = self.root().join("blobs");
        let mut out = HashingWriter::new(layer::gzip(self.blob_writer()?));
        io::copy(&mut tar, &mut out).map_err(ImageError::io("cannot write layer to", &blobs))?;
        finish_layer(out, &blobs)
    }

    /// Writes one layer: tar → diff_id hash → gzip → blob (compressed digest), in one pass.
    fn write_layer(&self, entries: Vec<TreeEntry>) -> Result<LayerInfo, ImageError> {
        let blobs = self.root().join("blobs");
        let tar_out = HashingWriter::new(layer::gzip(self.blob_writer()?));
        let (tar_out, _) = layer::write_tar(entries, tar_out).map_err(|e| match e {
            WriteError::Source { path, source } => ImageError::SourceEntry {
                path,
                reason: source.to_string(),
            },
            WriteError::Changed { path } => ImageError::SourceEntry {
                path,
                reason: "the file changed while it was being archived".to_owned(),
            },
            WriteError::Out(e) => ImageError::io("cannot write layer to", &blobs)(e),
        })?;
        finish_layer(tar_out, &blobs)
    }

    /// Reads and verifies a manifest and its config.
    pub fn image(&self, manifest: &Digest) -> Result<Image, ImageError> {
        let bytes = self.read_blob(manifest)?;
        let invalid = |reason: String| ImageError::InvalidManifest {
            digest: manifest.clone(),
            reason,
        };
        let parsed = oci_spec::image::ImageManifest::from_reader(&bytes[..])
            .map_err(|e| invalid(e.to_string()))?;
        if let Some(mt) = parsed.media_type() {
            if mt.to_string() != MANIFEST_MEDIA_TYPE {
                return Err(ImageError::UnsupportedMediaType {
                    digest: manifest.clone(),
                    media_type: mt.to_string(),
                });
            }
        }
        let config_digest = Digest::parse(parsed.config().digest().as_ref())
            .map_err(|e| invalid(format!("config descriptor: {e}")))?;
        let config_bytes = self.read_blob(&config_digest)?;
        let config =
            oci_spec::image::ImageConfiguration::from_reader(&config_bytes[..]).map_err(|e| {
                ImageError::InvalidConfig {
                    digest: config_digest.clone(),
                    reason: e.to_string(),
                }
            })?;
        if config.rootfs().diff_ids().len() != parsed.layers().len() {
            return Err(invalid(format!(
                "{} layers but the config lists {} diff_ids",
                parsed.layers().len(),
                config.rootfs().diff_ids().len()
            )));
        }
        Ok(Image {
            manifest_digest: manifest.clone(),
            manifest: parsed,
            config,
        })
    }

    /// Applies the image's layers in order into `dest`, which must be absent or empty. Unsafe
    /// entries (see the `extract` module: absolute paths, `..`, writes through symlinks, device
    /// files) fail the whole extraction; whiteouts are applied. Every layer is checked against
    /// its digest and diff_id. On error `dest` is left empty.
    pub fn extract(&self, manifest: &Digest, dest: &Path) -> Result<(), ImageError> {
        self.extract_from(manifest, 0, dest)
    }

    /// [`extract`](Self::extract) of the layers from the `first`-th (counting from 0, bottom
    /// first) up: an app's own layers without the stack's run image below them.
    pub fn extract_from(
        &self,
        manifest: &Digest,
        first: usize,
        dest: &Path,
    ) -> Result<(), ImageError> {
        let image = self.image(manifest)?;
        match extract::prepare_dest(dest) {
            Ok(true) => {}
            Ok(false) => {
                return Err(ImageError::DestNotEmpty {
                    path: dest.to_path_buf(),
                })
            }
            Err(e) => return Err(ImageError::io("cannot prepare", dest)(e)),
        }
        let result = self.extract_layers(&image, first, dest);
        if result.is_err() {
            if let Err(e) = extract::clear_dir(dest) {
                tracing::error!(dest = %dest.display(), error = %e, "cannot clean up a failed extraction");
            }
        }
        result
    }

    fn extract_layers(&self, image: &Image, first: usize, dest: &Path) -> Result<(), ImageError> {
        let mut extractor = Extractor::new(dest, Policy::Layer);
        let diff_ids = image.config.rootfs().diff_ids();
        for (descriptor, diff_id) in image.manifest.layers().iter().zip(diff_ids).skip(first) {
            let digest = Digest::parse(descriptor.digest().as_ref()).map_err(|e| {
                ImageError::InvalidManifest {
                    digest: image.manifest_digest.clone(),
                    reason: format!("layer descriptor: {e}"),
                }
            })?;
            let expected_diff_id =
                Digest::parse(diff_id).map_err(|e| ImageError::InvalidConfig {
                    digest: image.manifest_digest.clone(),
                    reason: format!("diff_id: {e}"),
                })?;
            let media_type = descriptor.media_type().to_string();
            let gzipped = match media_type.as_str() {
                LAYER_MEDIA_TYPE | "application/vnd.docker.image.rootfs.diff.tar.gzip" => true,
                "application/vnd.oci.image.layer.v1.tar" => false,
                _ => return Err(ImageError::UnsupportedMediaType { digest, media_type }),
            };
            extractor.start_layer();
            let blob = BufReader::new(self.open_blob(&digest)?);
            let tar: Box<dyn Read> = if gzipped {
                Box::new(GzDecoder::new(blob))
            } else {
                Box::new(blob)
            };
            let mut tar = HashingReader::new(tar);
            let walked = tarread::walk(&mut tar, |raw, data| {
                extractor.apply(&raw, data).map_err(|e| (raw.display(), e))
            });
            if let Err(e) = walked {
                return Err(self.layer_error(&digest, e));
            }
            // Read to the end so the blob reader checks the digest, and hash the whole tar.
            let actual_diff_id = match tar.finish() {
                Ok((_, diff_id, _)) => diff_id,
                Err(e) => return Err(self.layer_error(&digest, WalkError::Format(e))),
            };
            if actual_diff_id != expected_diff_id {
                return Err(ImageError::DiffIdMismatch {
                    layer: digest,
                    expected: expected_diff_id,
                    actual: actual_diff_id,
                });
            }
        }
        extractor.finish().map_err(|e| match e {
            ExtractError::Io { op, path, source } => ImageError::Io { op, path, source },
            ExtractError::Refused(reason) => ImageError::UnsafeEntry {
                layer: image.manifest_digest.clone(),
                entry: dest.display().to_string(),
                reason,
            },
        })
    }

    fn layer_error(&self, layer: &Digest, e: WalkError<(String, ExtractError)>) -> ImageError {
        let e = match e {
            WalkError::Format(io) => {
                // A read failure is most often a damaged blob: say so if it is.
                if let Err(corrupt @ ImageError::Corrupt { .. }) = self.verify_blob(layer) {
                    return corrupt;
                }
                return ImageError::LayerUnreadable {
                    layer: layer.clone(),
                    source: io,
                };
            }
            WalkError::MetadataTooLarge { index } => {
                return ImageError::LayerUnreadable {
                    layer: layer.clone(),
                    source: io::Error::other(format!(
                        "the headers of entry {index} are over 1 MiB (long name or pax records)"
                    )),
                }
            }
            WalkError::Visit(e) => e,
        };
        match e {
            (entry, ExtractError::Refused(reason)) => ImageError::UnsafeEntry {
                layer: layer.clone(),
                entry,
                reason,
            },
            (_, ExtractError::Io { op, path, source }) => ImageError::Io { op, path, source },
        }
    }
}
