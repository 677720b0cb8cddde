use std::io;
use std::path::PathBuf;

use crate::Digest;

/// Everything the image store can refuse or fail at. Messages name the blob, path, tag or
/// layer entry involved; the underlying cause (if any) is in `source()`.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("{op} `{}`", path.display())]
    Io {
        /// What was being done, e.g. "cannot read blob file".
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("invalid digest `{input}`: {reason}")]
    InvalidDigest { input: String, reason: &'static str },

    #[error("`{}` is an OCI image layout of version `{version}`, but only 1.0.0 is supported", path.display())]
    ForeignLayout { path: PathBuf, version: String },

    #[error("`{}` is not empty and is not an OCI image layout (it has no `oci-layout` file)", path.display())]
    NotALayout { path: PathBuf },

    #[error("`{}` is not a valid layout file: {reason}", path.display())]
    InvalidLayoutFile { path: PathBuf, reason: String },

    #[error("blob {digest} is not in the image store")]
    BlobMissing { digest: Digest },

    #[error("blob {digest} is corrupt: its content hashes to {actual}")]
    Corrupt { digest: Digest, actual: Digest },

    #[error("blob {digest} is not a valid image manifest: {reason}")]
    InvalidManifest { digest: Digest, reason: String },

    #[error("blob {digest} is not a valid image config: {reason}")]
    InvalidConfig { digest: Digest, reason: String },

    #[error("blob {digest} has unsupported media type `{media_type}`")]
    UnsupportedMediaType { digest: Digest, media_type: String },

    #[error("invalid tag `{name}`: {reason}")]
    InvalidTag { name: String, reason: &'static str },

    #[error("tag `{name}` does not exist")]
    TagNotFound { name: String },

    #[error("invalid layer spec for `{}`: {reason}", root.display())]
    InvalidLayerSpec { root: PathBuf, reason: String },

    #[error("cannot put `{}` in a layer: {reason}", path.display())]
    SourceEntry { path: PathBuf, reason: String },

    #[error("cannot extract into `{}`: the directory is not empty", path.display())]
    DestNotEmpty { path: PathBuf },

    #[error("layer {layer}: entry `{entry}`: {reason}")]
    UnsafeEntry {
        layer: Digest,
        entry: String,
        reason: String,
    },

    #[error("layer {layer} is not a readable tar archive")]
    LayerUnreadable {
        layer: Digest,
        #[source]
        source: io::Error,
    },

    #[error("layer {layer} unpacks to {actual}, but the image config says {expected}")]
    DiffIdMismatch {
        layer: Digest,
        expected: Digest,
        actual: Digest,
    },
}

impl ImageError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> Self {
        let path = path.into();
        move |source| ImageError::Io { op, path, source }
    }
}
