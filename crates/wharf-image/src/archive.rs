//! Source archives: the gzipped tarball the CLI uploads and the server unpacks for a build.
//!
//! [`pack_dir`] writes a directory as a deterministic tar.gz (the same rules as image layers:
//! sorted entries, fixed mtimes and owners, normalised modes), honouring `.gitignore` files the
//! way git would (nested files included; the user's global excludes and `.git/info/exclude`
//! deliberately not, so the result doesn't depend on the machine) and a `.slugignore` at the
//! root (Heroku's list of patterns to leave out of the build). `.git` is always left out.
//!
//! [`check`] and [`unpack`] treat the archive as hostile: they refuse non-gzip input, empty
//! archives, absolute paths, `..`, NUL bytes in paths, symlinks whose target leaves the tree
//! (checked again at the end against every other symlink, since `a -> .` then `b -> a/../x`
//! escapes although each target looks harmless on its own), entries below a symlink, hard links
//! to anything but an earlier file, device files, fifos, duplicate entries, and archives past the
//! [`Limits`].
//! Every refusal names the entry. `unpack` enforces the same rules while writing, whatever an
//! earlier `check` said, and leaves `dest` empty on error.

use std::cell::Cell;
use std::collections::{BTreeMap, HashSet};
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use flate2::read::GzDecoder;

use crate::extract::{self, ExtractError, Extractor, Policy};
use crate::layer::{self, TreeEntry, TreeKind, WriteError};
use crate::tarread::{self, display_path, join, normalize, Kind, RawEntry, WalkError};

/// Size limits for an uploaded archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The compressed archive.
    pub max_archive_bytes: u64,
    /// The sum of all entries' sizes once unpacked.
    pub max_unpacked_bytes: u64,
    pub max_entries: u64,
    /// Bytes in one entry's path, as stored.
    pub max_path_len: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_archive_bytes: 512 << 20,
            max_unpacked_bytes: 2 << 30,
            max_entries: 100_000,
            max_path_len: 1024,
        }
    }
}

/// What [`pack_dir`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackSummary {
    pub entries: u64,
    /// Uncompressed file content, in bytes.
    pub bytes: u64,
}

/// What [`check`] or [`unpack`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArchiveSummary {
    pub entries: u64,
    /// Uncompressed content, in bytes.
    pub bytes: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("the upload is not a gzip-compressed tar archive")]
    NotGzip,

    #[error("the archive is corrupt or truncated")]
    Malformed {
        #[source]
        source: io::Error,
    },

    #[error("the archive has no entries")]
    Empty,

    #[error("the archive is larger than the limit of {limit} bytes")]
    TooLarge { limit: u64 },

    #[error("entry `{entry}`: {reason}")]
    Refused { entry: String, reason: String },

    #[error("cannot unpack into `{}`: the directory is not empty", path.display())]
    DestNotEmpty { path: PathBuf },

    #[error("cannot pack `{}`: {reason}", path.display())]
    Pack { path: PathBuf, reason: String },

    #[error("{op} `{}`", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl ArchiveError {
    /// True when the archive itself is at fault (a 4xx for an upload), false when the failure
    /// is on this side (I/O, a non-empty destination).
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            ArchiveError::NotGzip
                | ArchiveError::Malformed { .. }
                | ArchiveError::Empty
                | ArchiveError::TooLarge { .. }
                | ArchiveError::Refused { .. }
        )
    }

    fn io(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> ArchiveError {
        let path = path.to_path_buf();
        move |source| ArchiveError::Io { op, path, source }
    }
}

/// Every entry of `dir` a pack includes — `.gitignore`d and `.slugignore`d paths and `.git`
/// left out — as (path relative to `dir`, path, metadata), in walk order.
fn walk(dir: &Path) -> Result<Vec<(PathBuf, PathBuf, fs::Metadata)>, ArchiveError> {
    let pack_err = |path: &Path, reason: String| ArchiveError::Pack {
        path: path.to_path_buf(),
        reason,
    };
    let slugignore_path = dir.join(".slugignore");
    let mut slugignore = ignore::gitignore::GitignoreBuilder::new(dir);
    if slugignore_path.is_file() {
        if let Some(e) = slugignore.add(&slugignore_path) {
            return Err(pack_err(&slugignore_path, e.to_string()));
        }
    }
    let slugignore = slugignore
        .build()
        .map_err(|e| pack_err(&slugignore_path, e.to_string()))?;

    let walker = ignore::WalkBuilder::new(dir)
        .standard_filters(false)
        .git_ignore(true)
        .require_git(false)
        .follow_links(false)
        .filter_entry(move |e| {
            let is_dir = e.file_type().is_some_and(|t| t.is_dir());
            e.file_name() != ".git" && !slugignore.matched(e.path(), is_dir).is_ignore()
        })
        .build();
    let mut entries = Vec::new();
    for item in walker {
        let item = item.map_err(|e| pack_err(dir, e.to_string()))?;
        if item.depth() == 0 {
            continue;
        }
        let path = item.path();
        let rel = path.strip_prefix(dir).unwrap_or(path).to_path_buf();
        let meta = fs::symlink_metadata(path).map_err(|e| pack_err(path, e.to_string()))?;
        entries.push((rel, path.to_path_buf(), meta));
    }
    Ok(entries)
}

/// A digest of what [`pack_dir`] would pack from `dir`, from each entry's path, kind, size and
/// modification time (contents are not read): it changes when the source does, cheaply enough
/// to check every second.
pub fn fingerprint(dir: &Path) -> Result<crate::Digest, ArchiveError> {
    use std::os::unix::fs::MetadataExt;
    let mut text = String::new();
    for (rel, _, meta) in walk(dir)? {
        text.push_str(&format!(
            "{}\0{:o}\0{}\0{}.{}\n",
            rel.display(),
            meta.mode(),
            meta.len(),
            meta.mtime(),
            meta.mtime_nsec()
        ));
    }
    Ok(crate::Digest::of(text.as_bytes()))
}

/// Packs `dir` as a deterministic tar.gz into `out`. The result passes [`check`] (with limits
/// large enough): a symlink that leaves `dir` is refused here rather than at upload.
pub fn pack_dir(dir: &Path, out: impl Write) -> Result<PackSummary, ArchiveError> {
    let pack_err = |path: &Path, reason: String| ArchiveError::Pack {
        path: path.to_path_buf(),
        reason,
    };
    if !dir.is_dir() {
        return Err(pack_err(dir, "not a directory".to_owned()));
    }
    let mut entries = Vec::new();
    for (rel, path, meta) in walk(dir)? {
        if let Some(entry) = TreeEntry::from_disk(b"", &rel, &path, &meta)
            .map_err(|e| pack_err(&path, e.to_string()))?
        {
            entries.push(entry);
        }
    }

    // Hold the tree to the rules the server will apply, so a bad symlink fails here.
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    let unlimited = Limits {
        max_archive_bytes: u64::MAX,
        max_unpacked_bytes: u64::MAX,
        max_entries: u64::MAX,
        max_path_len: usize::MAX,
    };
    let mut checker = Checker::new(&unlimited);
    for entry in &entries {
        use std::os::unix::ffi::OsStrExt;
        let (kind, link) = match &entry.kind {
            TreeKind::Dir => (Kind::Dir, None),
            TreeKind::File { .. } => (Kind::File, None),
            TreeKind::Symlink(t) => (Kind::Symlink, Some(t.as_os_str().as_bytes().to_vec())),
        };
        checker.check(&RawEntry {
            path: entry.name.clone(),
            link,
            kind,
            mode: 0,
            size: 0,
        })?;
    }
    checker.finish()?;

    let (gz, stats) = layer::write_tar(entries, layer::gzip(out)).map_err(|e| match e {
        WriteError::Source { path, source } => pack_err(&path, source.to_string()),
        WriteError::Changed { path } => pack_err(
            &path,
            "the file changed while it was being archived".to_owned(),
        ),
        WriteError::Out(e) => ArchiveError::io("cannot write the archive of", dir)(e),
    })?;
    gz.finish()
        .map_err(ArchiveError::io("cannot write the archive of", dir))?;
    Ok(PackSummary {
        entries: stats.entries,
        bytes: stats.file_bytes,
    })
}

/// Reads the whole archive and applies every rule, writing nothing.
pub fn check(archive: &Path, limits: &Limits) -> Result<ArchiveSummary, ArchiveError> {
    let (reader, too_large) = open_archive(archive, limits)?;
    let mut checker = Checker::new(limits);
    tarread::walk(reader, |raw, _| checker.check(&raw).map(drop))
        .map_err(|e| walk_error(e, limits, &too_large))?;
    checker.finish()
}

/// Unpacks the archive into `dest` (absent or empty), applying every rule of [`check`] as it
/// goes. On error, `dest` is left empty.
pub fn unpack(
    archive: &Path,
    dest: &Path,
    limits: &Limits,
) -> Result<ArchiveSummary, ArchiveError> {
    match extract::prepare_dest(dest) {
        Ok(true) => {}
        Ok(false) => {
            return Err(ArchiveError::DestNotEmpty {
                path: dest.to_path_buf(),
            })
        }
        Err(e) => return Err(ArchiveError::io("cannot prepare", dest)(e)),
    }
    let result = unpack_into(archive, dest, limits);
    if result.is_err() {
        if let Err(e) = extract::clear_dir(dest) {
            tracing::error!(dest = %dest.display(), error = %e, "cannot clean up a failed unpack");
        }
    }
    result
}

fn unpack_into(
    archive: &Path,
    dest: &Path,
    limits: &Limits,
) -> Result<ArchiveSummary, ArchiveError> {
    let (reader, too_large) = open_archive(archive, limits)?;
    let mut checker = Checker::new(limits);
    let mut extractor = Extractor::new(dest, Policy::Source);
    tarread::walk(reader, |raw, data| {
        if !checker.check(&raw)? {
            return Ok(());
        }
        extractor
            .apply(&raw, data)
            .map_err(|e| extract_error(&raw.display(), e))
    })
    .map_err(|e| walk_error(e, limits, &too_large))?;
    let summary = checker.finish()?;
    extractor
        .finish()
        .map_err(|e| extract_error(&dest.display().to_string(), e))?;
    Ok(summary)
}

fn extract_error(entry: &str, e: ExtractError) -> ArchiveError {
    match e {
        ExtractError::Refused(reason) => ArchiveError::Refused {
            entry: entry.to_owned(),
            reason,
        },
        ExtractError::Io { op, path, source } => ArchiveError::Io { op, path, source },
    }
}

fn walk_error(e: WalkError<ArchiveError>, limits: &Limits, too_large: &Cell<bool>) -> ArchiveError {
    match e {
        WalkError::Format(_) if too_large.get() => ArchiveError::TooLarge {
            limit: limits.max_archive_bytes,
        },
        WalkError::Format(source) => ArchiveError::Malformed { source },
        WalkError::MetadataTooLarge { index } => ArchiveError::Refused {
            entry: format!("#{}", index + 1),
            reason: "its long name or pax headers are over 1 MiB".to_owned(),
        },
        WalkError::Visit(e) => e,
    }
}

/// Fails reads past `left` bytes, flagging why (the file may grow after its size was checked).
struct CappedReader<R> {
    inner: R,
    left: u64,
    exceeded: Rc<Cell<bool>>,
}

impl<R: Read> Read for CappedReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n as u64 > self.left {
            self.exceeded.set(true);
            return Err(io::Error::other("the archive is over the size limit"));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

type ArchiveReader = GzDecoder<BufReader<CappedReader<File>>>;

fn open_archive(
    path: &Path,
    limits: &Limits,
) -> Result<(ArchiveReader, Rc<Cell<bool>>), ArchiveError> {
    let file = File::open(path).map_err(ArchiveError::io("cannot open archive", path))?;
    let size = file
        .metadata()
        .map_err(ArchiveError::io("cannot inspect archive", path))?
        .len();
    if size > limits.max_archive_bytes {
        return Err(ArchiveError::TooLarge {
            limit: limits.max_archive_bytes,
        });
    }
    let exceeded = Rc::new(Cell::new(false));
    let mut reader = BufReader::new(CappedReader {
        inner: file,
        left: limits.max_archive_bytes,
        exceeded: exceeded.clone(),
    });
    let head = reader
        .fill_buf()
        .map_err(ArchiveError::io("cannot read archive", path))?;
    if !head.starts_with(&[0x1f, 0x8b]) {
        return Err(ArchiveError::NotGzip);
    }
    Ok((GzDecoder::new(reader), exceeded))
}

/// The archive rules, applied entry by entry in archive order.
struct Checker<'a> {
    limits: &'a Limits,
    entries: u64,
    bytes: u64,
    files: HashSet<Vec<u8>>,
    dirs: HashSet<Vec<u8>>,
    symlinks: BTreeMap<Vec<u8>, Vec<u8>>,
}

const ESCAPES: &str = "leaves the archive root";
/// Like the kernel's limit on symlinks followed in one lookup.
const MAX_SYMLINK_HOPS: usize = 40;

impl<'a> Checker<'a> {
    fn new(limits: &'a Limits) -> Checker<'a> {
        Checker {
            limits,
            entries: 0,
            bytes: 0,
            files: HashSet::new(),
            dirs: HashSet::new(),
            symlinks: BTreeMap::new(),
        }
    }

    /// `Ok(false)` for headers that are not entries (pax global headers).
    fn check(&mut self, raw: &RawEntry) -> Result<bool, ArchiveError> {
        let refuse = |reason: String| ArchiveError::Refused {
            entry: raw.display(),
            reason,
        };
        if raw.kind == Kind::GlobalHeader {
            return Ok(false);
        }
        self.entries += 1;
        if self.entries > self.limits.max_entries {
            return Err(refuse(format!(
                "the archive has more than {} entries",
                self.limits.max_entries
            )));
        }
        if raw.path.len() > self.limits.max_path_len {
            return Err(refuse(format!(
                "the path is {} bytes long, over the limit of {}",
                raw.path.len(),
                self.limits.max_path_len
            )));
        }
        self.bytes = self.bytes.saturating_add(raw.size);
        if self.bytes > self.limits.max_unpacked_bytes {
            return Err(refuse(format!(
                "the archive unpacks to more than {} bytes",
                self.limits.max_unpacked_bytes
            )));
        }
        match raw.kind {
            Kind::CharDevice | Kind::BlockDevice => {
                return Err(refuse("device files are not allowed".to_owned()))
            }
            Kind::Fifo => return Err(refuse("fifos are not allowed".to_owned())),
            Kind::Sparse => return Err(refuse("sparse files are not supported".to_owned())),
            Kind::Other(b) => {
                return Err(refuse(format!(
                    "unsupported entry type `{}`",
                    (b as char).escape_default()
                )))
            }
            Kind::File | Kind::Dir | Kind::Symlink | Kind::HardLink | Kind::GlobalHeader => {}
        }
        let comps = normalize(&raw.path).map_err(|r| refuse(r.to_owned()))?;
        let Some((_, parents)) = comps.split_last() else {
            return match raw.kind {
                Kind::Dir => Ok(true),
                _ => Err(refuse("the entry has an empty path".to_owned())),
            };
        };
        for i in 1..=parents.len() {
            let key = join(&comps[..i]);
            if self.symlinks.contains_key(&key) {
                return Err(refuse(format!(
                    "the path goes through the symlink `{}`",
                    display_path(&key)
                )));
            }
            if self.files.contains(&key) {
                return Err(refuse(format!("parent `{}` is a file", display_path(&key))));
            }
            self.dirs.insert(key);
        }
        let key = join(&comps);
        let seen_file = self.files.contains(&key) || self.symlinks.contains_key(&key);
        if seen_file {
            return Err(refuse("the entry appears twice in the archive".to_owned()));
        }
        if raw.kind != Kind::Dir && self.dirs.contains(&key) {
            return Err(refuse(
                "the entry conflicts with an earlier directory".to_owned(),
            ));
        }
        match raw.kind {
            Kind::Dir => {
                self.dirs.insert(key);
            }
            Kind::File => {
                self.files.insert(key);
            }
            Kind::Symlink => {
                let target = raw.link.as_deref().unwrap_or_default();
                let shown = display_path(target);
                if target.is_empty() {
                    return Err(refuse("the symlink has an empty target".to_owned()));
                }
                if target.starts_with(b"/") {
                    return Err(refuse(format!("symlink target `{shown}` is absolute")));
                }
                if target.contains(&0) {
                    return Err(refuse(format!(
                        "symlink target `{shown}` contains a NUL byte"
                    )));
                }
                let mut depth = parents.len();
                for part in target.split(|&b| b == b'/') {
                    match part {
                        b"" | b"." => {}
                        b".." if depth == 0 => {
                            return Err(refuse(format!("symlink target `{shown}` {ESCAPES}")))
                        }
                        b".." => depth -= 1,
                        _ => depth += 1,
                    }
                }
                self.symlinks.insert(key, target.to_vec());
            }
            Kind::HardLink => {
                let target = raw.link.as_deref().unwrap_or_default();
                let shown = display_path(target);
                let target = normalize(target)
                    .map_err(|r| refuse(format!("hard link target `{shown}`: {r}")))?;
                if !self.files.contains(&join(&target)) {
                    return Err(refuse(format!(
                        "hard link target `{shown}` is not an earlier file in the archive"
                    )));
                }
                self.files.insert(key);
            }
            _ => {}
        }
        Ok(true)
    }

    /// Rules that need the whole archive: not empty, and no symlink escaping through others.
    fn finish(&self) -> Result<ArchiveSummary, ArchiveError> {
        if self.entries == 0 {
            return Err(ArchiveError::Empty);
        }
        for (link, target) in &self.symlinks {
            if let Some(reason) = self.escapes(link) {
                return Err(ArchiveError::Refused {
                    entry: display_path(link),
                    reason: format!("symlink target `{}` {reason}", display_path(target)),
                });
            }
        }
        Ok(ArchiveSummary {
            entries: self.entries,
            bytes: self.bytes,
        })
    }

    /// Resolves `link` as the kernel would in the unpacked tree (following the other symlinks)
    /// and says why it is unsafe, if it is.
    fn escapes(&self, link: &[u8]) -> Option<&'static str> {
        let mut at: Vec<&[u8]> = link.split(|&b| b == b'/').collect();
        at.pop();
        // Components still to walk, last to walk first.
        let mut todo: Vec<&[u8]> = self.symlinks.get(link)?.rsplit(|&b| b == b'/').collect();
        let mut hops = 0;
        while let Some(part) = todo.pop() {
            match part {
                b"" | b"." => {}
                b".." => {
                    if at.pop().is_none() {
                        return Some(ESCAPES);
                    }
                }
                _ => {
                    at.push(part);
                    if let Some(target) = self.symlinks.get(&at.join(&b'/')) {
                        hops += 1;
                        if hops > MAX_SYMLINK_HOPS {
                            return Some("goes through too many symlinks");
                        }
                        if target.starts_with(b"/") {
                            return Some("leads to an absolute symlink");
                        }
                        at.pop();
                        todo.extend(target.rsplit(|&b| b == b'/'));
                    }
                }
            }
        }
        None
    }
}
