//! Writing blobs atomically and reading them back with verification.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use sha2::{Digest as _, Sha256};

use crate::digest::HashingWriter;
use crate::{Digest, ImageError};

/// Temp files in the layout start with this; `fsck` reports leftovers (from a crash) as stray.
pub(crate) const TEMP_PREFIX: &str = ".wharf-tmp-";

/// Creates a new, uniquely named temp file in `dir`.
pub(crate) fn create_temp(dir: &Path) -> Result<(File, PathBuf), ImageError> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    loop {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let name = format!(
            "{TEMP_PREFIX}{}-{}-{nanos}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let path = dir.join(name);
        match OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(file) => return Ok((file, path)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(ImageError::io("cannot create temp file", path)(e)),
        }
    }
}

/// Makes a rename in `dir` durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), ImageError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(ImageError::io("cannot sync directory", dir))
}

/// Writes `bytes` to `target` atomically: temp file in the same directory, fsync, rename, fsync
/// of the directory.
pub(crate) fn write_atomic(target: &Path, bytes: &[u8]) -> Result<(), ImageError> {
    let dir = target.parent().unwrap_or(Path::new("."));
    let (mut file, temp) = create_temp(dir)?;
    let result = file
        .write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(ImageError::io("cannot write temp file", &temp))
        .and_then(|()| {
            fs::rename(&temp, target)
                .map_err(ImageError::io("cannot rename temp file onto", target))
        });
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result?;
    sync_dir(dir)
}

/// A blob being written: content goes to a temp file in `blobs/` and is hashed on the way;
/// [`BlobWriter::finish`] moves it to `blobs/sha256/<hex>`. Dropping an unfinished writer removes
/// the temp file.
pub struct BlobWriter {
    writer: Option<HashingWriter<BufWriter<File>>>,
    temp: PathBuf,
    sha256_dir: PathBuf,
}

/// What finishing a blob did.
pub(crate) struct FinishedBlob {
    pub digest: Digest,
    pub size: u64,
    /// The blob was already in the store before this write.
    pub existed: bool,
}

impl BlobWriter {
    pub(crate) fn create(blobs_dir: &Path) -> Result<BlobWriter, ImageError> {
        let (file, temp) = create_temp(blobs_dir)?;
        Ok(BlobWriter {
            writer: Some(HashingWriter::new(BufWriter::new(file))),
            temp,
            sha256_dir: blobs_dir.join("sha256"),
        })
    }

    /// Flushes and fsyncs the content and moves it to its content address. If the blob already
    /// exists this is harmless: the rename replaces it with identical bytes (and so also repairs
    /// a copy that was corrupted on disk).
    pub fn finish(self) -> Result<(Digest, u64), ImageError> {
        self.finish_blob().map(|b| (b.digest, b.size))
    }

    pub(crate) fn finish_blob(mut self) -> Result<FinishedBlob, ImageError> {
        let Some(writer) = self.writer.take() else {
            return Err(ImageError::Io {
                op: "blob writer was already finished for",
                path: self.temp.clone(),
                source: io::Error::other("finished twice"),
            });
        };
        let (buffered, digest, size) = writer.finish();
        let file = buffered
            .into_inner()
            .map_err(|e| ImageError::io("cannot write temp file", &self.temp)(e.into_error()))?;
        file.sync_all()
            .map_err(ImageError::io("cannot sync temp file", &self.temp))?;
        drop(file);
        let target = self.sha256_dir.join(digest.hex());
        let existed = target.is_file();
        fs::rename(&self.temp, &target)
            .map_err(ImageError::io("cannot move blob into place at", &target))?;
        sync_dir(&self.sha256_dir)?;
        Ok(FinishedBlob {
            digest,
            size,
            existed,
        })
    }
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.writer {
            Some(w) => w.write(buf),
            None => Err(io::Error::other("blob writer is finished")),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.writer {
            Some(w) => w.flush(),
            None => Ok(()),
        }
    }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        if self.writer.is_some() {
            // Unfinished: nothing refers to the temp file, so it is garbage.
            let _ = fs::remove_file(&self.temp);
        }
    }
}

/// Reads a blob and checks its hash at the end: the read that reaches end of file fails with
/// an `InvalidData` error wrapping [`ImageError::Corrupt`] if the content doesn't match.
pub struct BlobReader {
    file: BufReader<File>,
    hasher: Option<Sha256>,
    expected: Digest,
    corrupt: Option<Digest>,
}

impl BlobReader {
    pub(crate) fn new(file: File, expected: Digest) -> BlobReader {
        BlobReader {
            file: BufReader::new(file),
            hasher: Some(Sha256::new()),
            expected,
            corrupt: None,
        }
    }

    fn corrupt_error(&self, actual: Digest) -> io::Error {
        io::Error::new(
            io::ErrorKind::InvalidData,
            ImageError::Corrupt {
                digest: self.expected.clone(),
                actual,
            },
        )
    }
}

impl Read for BlobReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(actual) = &self.corrupt {
            return Err(self.corrupt_error(actual.clone()));
        }
        let n = self.file.read(buf)?;
        if n == 0 && !buf.is_empty() {
            if let Some(hasher) = self.hasher.take() {
                let actual = Digest::from_hasher(hasher);
                if actual != self.expected {
                    self.corrupt = Some(actual.clone());
                    return Err(self.corrupt_error(actual));
                }
            }
        } else if let Some(hasher) = &mut self.hasher {
            hasher.update(&buf[..n]);
        }
        Ok(n)
    }
}
