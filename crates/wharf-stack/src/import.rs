//! Stacks made elsewhere: a run and a build image brought in with `skopeo` from an OCI layout,
//! an OCI or Docker archive, or a registry, stored as they are (layers and config unchanged;
//! skopeo compresses uncompressed layers with gzip on the way) and tagged as wharf's own
//! stacks are. An image whose layers are compressed otherwise (zstd, as registries serve more
//! and more) is copied once more by skopeo with its layers recompressed with gzip: the same
//! files, new layer digests. Anything with `/bin/sh` and the libraries its apps need can be a
//! run image.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use wharf_image::{Digest, ImageStore};

use crate::{io, list, Role, Stack, StackError, TAG_PREFIX};

/// The transports `skopeo` reads that make sense for a stack.
const TRANSPORTS: [&str; 4] = ["oci:", "oci-archive:", "docker-archive:", "docker://"];

/// gzip layer media types (OCI and Docker's).
const GZIP_LAYERS: [&str; 2] = [
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
];

/// Whether `name` may name an imported stack: lowercase letters, digits and `-`, 2 to 40,
/// starting with a letter; not `wharf-1` nor one of the stacks wharf makes.
pub fn check_name(name: &str) -> Result<(), String> {
    let shaped = (2..=40).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !shaped {
        return Err(format!(
            "`{name}` can't name a stack: use 2 to 40 lowercase letters, digits and `-`, \
             starting with a letter"
        ));
    }
    if name == "wharf-1" || crate::default_stack(name).is_some() {
        return Err(format!(
            "`{name}` is one of wharf's own stacks; import under another name"
        ));
    }
    Ok(())
}

/// Checks `reference` names one of [`TRANSPORTS`].
pub fn check_reference(reference: &str) -> Result<(), StackError> {
    let known = TRANSPORTS.iter().any(|t| {
        reference
            .strip_prefix(t)
            .is_some_and(|rest| !rest.is_empty())
    });
    if known && !reference.chars().any(char::is_control) {
        Ok(())
    } else {
        Err(StackError::BadReference {
            reference: reference.to_owned(),
        })
    }
}

/// Brings each `(role, reference)` into `store` as stack `name`'s image of that role, copying
/// through an OCI layout in `work` (a scratch directory, removed after), and says what it does
/// through `progress`.
pub async fn import(
    name: &str,
    images: &[(Role, String)],
    store: &ImageStore,
    work: &Path,
    progress: &mut (dyn FnMut(&str) + Send),
) -> Result<Stack, StackError> {
    let skopeo = find_skopeo().ok_or(StackError::NoSkopeo)?;
    for (_, reference) in images {
        check_reference(reference)?;
    }
    let _ = std::fs::remove_dir_all(work);
    std::fs::create_dir_all(work).map_err(io("create", work))?;
    let result = async {
        for (role, reference) in images {
            progress(&format!(
                "Copying the {} image of {name} from {reference}",
                role.as_str()
            ));
            let layout = work.join(role.as_str());
            let copy = |options: &'static [&'static str], from: String, to: &Path| SkopeoCopy {
                skopeo: &skopeo,
                reference,
                options,
                from,
                to: format!("oci:{}:image", to.display()),
            };
            copy(&["--retry-times", "2"], reference.clone(), &layout)
                .run(progress)
                .await?;
            let layout = match other_compression(&layout)? {
                None => layout,
                Some(media_type) => {
                    progress(&format!(
                        "Its layers are {media_type}; recompressing them with gzip"
                    ));
                    let gzipped = work.join(format!("{}-gzip", role.as_str()));
                    let from = format!("oci:{}:image", layout.display());
                    copy(
                        &["--dest-compress", "--dest-compress-format", "gzip"],
                        from,
                        &gzipped,
                    )
                    .run(progress)
                    .await?;
                    gzipped
                }
            };
            let (store, reference, role) = (store.clone(), reference.clone(), *role);
            let tag = format!("{TAG_PREFIX}{name}/{}", role.as_str());
            let manifest =
                tokio::task::spawn_blocking(move || store_copy(&store, &layout, &reference, &tag))
                    .await
                    .map_err(|e| StackError::Io {
                        action: "store",
                        path: work.to_path_buf(),
                        source: std::io::Error::other(e.to_string()),
                    })??;
            progress(&format!("{} image of {name}: {manifest}", role.as_str()));
        }
        list(store)?
            .into_iter()
            .find(|s| s.name == name)
            .ok_or_else(|| StackError::Unknown {
                name: name.to_owned(),
            })
    }
    .await;
    let _ = std::fs::remove_dir_all(work);
    result
}

/// One `skopeo copy OPTIONS FROM TO`, its output to `progress`; a failure names `reference`,
/// the image being imported.
struct SkopeoCopy<'a> {
    skopeo: &'a Path,
    reference: &'a str,
    options: &'static [&'static str],
    from: String,
    to: String,
}

impl SkopeoCopy<'_> {
    async fn run(self, progress: &mut (dyn FnMut(&str) + Send)) -> Result<(), StackError> {
        let mut command = tokio::process::Command::new(self.skopeo);
        command
            .arg("copy")
            .args(self.options)
            .arg(&self.from)
            .arg(&self.to)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        let (status, last) = crate::run_streamed(command, self.skopeo, progress).await?;
        if status.success() {
            Ok(())
        } else {
            Err(StackError::Skopeo {
                reference: self.reference.to_owned(),
                status,
                last,
            })
        }
    }
}

/// The media type of the first layer of the image tagged `image` in `layout` that is not
/// gzip-compressed, if any.
fn other_compression(layout: &Path) -> Result<Option<String>, StackError> {
    let from = ImageStore::open(layout)?;
    let image = from.image(&from.resolve("image")?)?;
    Ok(image
        .manifest
        .layers()
        .iter()
        .map(|layer| layer.media_type().to_string())
        .find(|media_type| !GZIP_LAYERS.contains(&media_type.as_str())))
}

/// Copies the image tagged `image` in the layout at `layout` into `store` and tags it `tag`.
fn store_copy(
    store: &ImageStore,
    layout: &Path,
    reference: &str,
    tag: &str,
) -> Result<Digest, StackError> {
    let from = ImageStore::open(layout)?;
    let manifest = from.resolve("image")?;
    let image = from.image(&manifest)?;
    for layer in image.manifest.layers() {
        let media_type = layer.media_type().to_string();
        if !GZIP_LAYERS.contains(&media_type.as_str()) {
            return Err(StackError::NotGzip {
                reference: reference.to_owned(),
                layer: layer.digest().to_string(),
                media_type,
            });
        }
    }
    store.copy_image(&from, &manifest)?;
    store.tag(tag, &manifest)?;
    Ok(manifest)
}

pub(crate) fn find_skopeo() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("skopeo"))
        .find(|p| p.is_file())
}
