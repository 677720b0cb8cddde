//! wharf's image store: a content-addressed store of blobs laid out as an OCI image layout
//! (`oci-layout`, `index.json`, `blobs/sha256/<hex>`) under one directory, readable by standard
//! tools such as skopeo and umoci. It owns deterministic layer building (the same tree always
//! gives the same bytes, so the same digest), image manifests and configs, tags in `index.json`,
//! integrity checks (`fsck`), and safe extraction of images into directories. The [`archive`]
//! module owns the source-archive format shared by the CLI (packing a directory) and the server
//! (checking and unpacking an untrusted upload). This crate must not touch the database or speak
//! HTTP: callers hand it paths and bytes, and it hands back digests and typed errors.

mod blob;
mod digest;
mod error;
mod extract;
mod image;
mod layer;
mod store;
mod tarread;

pub mod archive;

pub use blob::{BlobReader, BlobWriter};
pub use digest::Digest;
pub use error::ImageError;
pub use image::{BuiltImage, Image, ImageSpec, LayerInfo, LayerSpec, Select};
pub use store::{Collection, FsckReport, ImageStore};

/// Media type of the OCI image manifests this store writes.
pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
/// Media type of the OCI image configs this store writes.
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.image.config.v1+json";
/// Media type of the layers this store writes.
pub const LAYER_MEDIA_TYPE: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// The `index.json` annotation that names a tag.
pub const REF_NAME_ANNOTATION: &str = "org.opencontainers.image.ref.name";
