//! The uploaded-source-archive checker and extractor (`wharf_image::archive::{check, unpack}`),
//! with small limits. Input: a tar.gz used as the upload as it is when it starts with the gzip
//! magic bytes, or else a plain tar, whose header checksums are fixed up (so that mutations get
//! past the tar reader's checksum test) before it is gzipped.
//!
//! Properties, besides not panicking:
//! - `unpack` writes nothing outside its destination: it unpacks into `<tmp>/dest`, and `<tmp>`
//!   holds only `dest` and the upload afterwards; every symlink it made that resolves, resolves
//!   inside `dest`; only files, directories and symlinks appear, without setuid/setgid/sticky
//!   bits;
//! - `check` and `unpack` agree: both accept (with the same summary) or both refuse, and a
//!   refusal is the archive's fault (`is_refusal`), never an internal error;
//! - a failed `unpack` leaves `dest` empty.

#![no_main]

use std::fs;
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use wharf_image::archive::{self, Limits};

/// Small enough that every input is cheap; the path limit is production's, so that paths the
/// server accepts are tried.
const LIMITS: Limits = Limits {
    max_archive_bytes: 64 << 10,
    max_unpacked_bytes: 64 << 10,
    max_entries: 64,
    max_path_len: 1024,
};

fuzz_target!(|data: &[u8]| {
    let upload = if data.starts_with(&[0x1f, 0x8b]) {
        data.to_vec()
    } else {
        let mut tar = data.to_vec();
        fix_checksums(&mut tar);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&tar).unwrap();
        gz.finish().unwrap()
    };

    let tmp = tempfile::Builder::new()
        .prefix("wharf-fuzz-archive.")
        .tempdir_in(scratch())
        .unwrap();
    let archive_path = tmp.path().join("upload.tar.gz");
    fs::write(&archive_path, &upload).unwrap();
    let dest = tmp.path().join("dest");

    let checked = archive::check(&archive_path, &LIMITS);
    let unpacked = archive::unpack(&archive_path, &dest, &LIMITS);

    assert_eq!(
        names_in(tmp.path()),
        ["dest", "upload.tar.gz"],
        "unpack wrote next to its destination"
    );
    match (&checked, &unpacked) {
        (Ok(c), Ok(u)) => {
            assert_eq!(c, u, "check and unpack count differently");
            check_tree(&dest);
        }
        (Err(c), Err(u)) => {
            assert!(c.is_refusal(), "check failed on its side: {c:?}");
            assert!(u.is_refusal(), "unpack failed on its side: {u:?}");
            assert!(names_in(&dest).is_empty(), "a failed unpack left files");
        }
        _ => panic!("check and unpack disagree: check {checked:?}, unpack {unpacked:?}"),
    }
});

/// Where temporary directories go: memory when there is a tmpfs, for speed.
fn scratch() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let shm = Path::new("/dev/shm");
        if shm.is_dir() && tempfile::tempdir_in(shm).is_ok() {
            shm.to_path_buf()
        } else {
            std::env::temp_dir()
        }
    })
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Everything under `dest` is a plain file, directory or symlink, and symlinks stay inside.
fn check_tree(dest: &Path) {
    let root = fs::canonicalize(dest).unwrap();
    let mut todo = vec![dest.to_path_buf()];
    while let Some(dir) = todo.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let meta = fs::symlink_metadata(&path).unwrap();
            let kind = meta.file_type();
            assert!(
                !(kind.is_fifo()
                    || kind.is_socket()
                    || kind.is_block_device()
                    || kind.is_char_device()),
                "special file {}",
                path.display()
            );
            assert_eq!(meta.permissions().mode() & 0o7000, 0, "{}", path.display());
            if kind.is_symlink() {
                // A dangling link or a loop can't be resolved here; the checker's own
                // resolution covers those.
                if let Ok(target) = fs::canonicalize(&path) {
                    assert!(
                        target.starts_with(&root),
                        "symlink {} resolves to {} outside the tree",
                        path.display(),
                        target.display()
                    );
                }
            } else if kind.is_dir() {
                todo.push(path);
            }
        }
    }
}

/// Recomputes the checksum of every header block, walking the tar as a reader would: a header,
/// then its data rounded up to whole 512-byte blocks.
fn fix_checksums(tar: &mut [u8]) {
    let mut at = 0usize;
    while let Some(block) = tar.get_mut(at..at + 512) {
        // Zero blocks end the archive; a checksum would make them headers.
        if block.iter().all(|&b| b == 0) {
            at += 512;
            continue;
        }
        let mut header = tar::Header::from_byte_slice(block).clone();
        header.set_cksum();
        block.copy_from_slice(header.as_bytes());
        let size = header.entry_size().unwrap_or(0);
        let data_blocks = usize::try_from(size.div_ceil(512)).unwrap_or(usize::MAX);
        at = match data_blocks
            .checked_mul(512)
            .and_then(|n| n.checked_add(at + 512))
        {
            Some(next) => next,
            None => return,
        };
    }
}
