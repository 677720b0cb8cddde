//! Deterministic tar streams of directory trees, shared by image layers and source archives.
//!
//! The same tree always gives the same bytes: entries sorted by name (byte order, directories
//! with a trailing `/`), mtime 0, uid/gid 0 with empty user and group names, mode 0755 for
//! directories and for files with any execute bit and 0644 for other files, 0777 for symlinks,
//! symlink targets verbatim, GNU headers (GNU long-name/long-link entries for names over 100
//! bytes), no xattrs, no pax records. Hard links are stored as separate regular files; sockets,
//! fifos and device files are skipped. The root directory itself is not an entry.

use std::ffi::OsStr;
use std::fs::{File, Metadata};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Every layer entry's mtime. Zero is what `SOURCE_DATE_EPOCH=0` tools produce; skopeo, umoci
/// and Go's archive/tar read it fine.
pub(crate) const MTIME: u64 = 0;

pub(crate) enum TreeKind {
    Dir,
    File { exec: bool },
    Symlink(PathBuf),
}

pub(crate) struct TreeEntry {
    /// The name in the archive: relative, `/`-separated, with a trailing `/` for directories.
    pub name: Vec<u8>,
    /// Where to read it from; `None` for directories that only exist in the archive (a prefix).
    pub source: Option<PathBuf>,
    pub kind: TreeKind,
}

impl TreeEntry {
    /// Classifies a directory entry from its (not followed) metadata; `None` for sockets, fifos
    /// and devices, which are skipped.
    pub(crate) fn from_disk(
        name_prefix: &[u8],
        rel: &Path,
        path: &Path,
        meta: &Metadata,
    ) -> io::Result<Option<TreeEntry>> {
        let file_type = meta.file_type();
        let mut name = name_prefix.to_vec();
        if !name.is_empty() {
            name.push(b'/');
        }
        name.extend_from_slice(rel.as_os_str().as_bytes());
        let kind = if file_type.is_dir() {
            name.push(b'/');
            TreeKind::Dir
        } else if file_type.is_file() {
            TreeKind::File {
                exec: meta.permissions().mode() & 0o111 != 0,
            }
        } else if file_type.is_symlink() {
            TreeKind::Symlink(std::fs::read_link(path)?)
        } else {
            tracing::debug!(path = %path.display(), "skipping special file");
            return Ok(None);
        };
        Ok(Some(TreeEntry {
            name,
            source: Some(path.to_path_buf()),
            kind,
        }))
    }
}

#[derive(Debug)]
pub(crate) enum WriteError {
    /// Reading a source file failed.
    Source { path: PathBuf, source: io::Error },
    /// A file changed size while it was being archived.
    Changed { path: PathBuf },
    /// Writing the output failed.
    Out(io::Error),
}

#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct TarStats {
    pub entries: u64,
    /// Bytes of regular-file content.
    pub file_bytes: u64,
}

/// Writes `entries` as a deterministic tar stream (see the module docs) and returns the writer.
pub(crate) fn write_tar<W: Write>(
    mut entries: Vec<TreeEntry>,
    out: W,
) -> Result<(W, TarStats), WriteError> {
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    entries.dedup_by(|a, b| a.name == b.name);
    let mut stats = TarStats::default();
    let mut builder = tar::Builder::new(out);
    for entry in &entries {
        let name = Path::new(OsStr::from_bytes(&entry.name));
        let mut header = tar::Header::new_gnu();
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(MTIME);
        match &entry.kind {
            TreeKind::Dir => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_mode(0o755);
                header.set_size(0);
                builder
                    .append_data(&mut header, name, io::empty())
                    .map_err(WriteError::Out)?;
            }
            TreeKind::File { exec } => {
                let path = entry.source.as_deref().unwrap_or(name);
                let source = |e| WriteError::Source {
                    path: path.to_path_buf(),
                    source: e,
                };
                let file = File::open(path).map_err(source)?;
                let len = file.metadata().map_err(source)?.len();
                header.set_entry_type(tar::EntryType::Regular);
                header.set_mode(if *exec { 0o755 } else { 0o644 });
                header.set_size(len);
                let mut reader = ExactReader {
                    inner: file.take(len),
                    left: len,
                    changed: false,
                };
                let result = builder.append_data(&mut header, name, &mut reader);
                if reader.changed {
                    return Err(WriteError::Changed {
                        path: path.to_path_buf(),
                    });
                }
                result.map_err(WriteError::Out)?;
                stats.file_bytes += len;
            }
            TreeKind::Symlink(target) => {
                let target = target.as_os_str().as_bytes();
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_mode(0o777);
                header.set_size(0);
                let slot = &mut header.as_old_mut().linkname;
                if target.len() <= slot.len() {
                    slot[..target.len()].copy_from_slice(target);
                } else {
                    // GNU long-link entry; written by hand because the tar crate's own would
                    // normalise the target, and targets are kept verbatim.
                    let mut long = tar::Header::new_gnu();
                    long.as_old_mut().name[..13].copy_from_slice(b"././@LongLink");
                    long.set_mode(0o644);
                    long.set_uid(0);
                    long.set_gid(0);
                    long.set_mtime(0);
                    long.set_entry_type(tar::EntryType::GNULongLink);
                    long.set_size(target.len() as u64 + 1);
                    long.set_cksum();
                    builder
                        .append(&long, target.chain(&[0u8][..]))
                        .map_err(WriteError::Out)?;
                }
                builder
                    .append_data(&mut header, name, io::empty())
                    .map_err(WriteError::Out)?;
            }
        }
        stats.entries += 1;
    }
    let out = builder.into_inner().map_err(WriteError::Out)?;
    Ok((out, stats))
}

/// Yields exactly `left` bytes or fails, so a file that shrinks mid-copy can't produce an entry
/// whose header disagrees with its data.
struct ExactReader<R> {
    inner: R,
    left: u64,
    changed: bool,
}

impl<R: Read> Read for ExactReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.left -= n as u64;
        if n == 0 && self.left > 0 && !buf.is_empty() {
            self.changed = true;
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "file shrank while being archived",
            ));
        }
        Ok(n)
    }
}

/// A deterministic gzip stream: no file name, mtime 0, fixed level.
pub(crate) fn gzip<W: Write>(out: W) -> flate2::write::GzEncoder<W> {
    flate2::GzBuilder::new()
        .mtime(0)
        .write(out, flate2::Compression::new(6))
}
