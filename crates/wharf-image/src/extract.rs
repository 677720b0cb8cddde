//! Writing tar entries into a directory without ever escaping it.
//!
//! The rules that keep writes inside `dest`, whatever the archive says:
//! - paths are normalised first: absolute paths and `..` are refused;
//! - every parent directory is checked with `lstat` and created if missing; a parent that is a
//!   symlink is refused, so nothing is ever written through a symlink;
//! - files are created with `O_EXCL` (after removing what a lower layer left there), so the last
//!   component is never followed either;
//! - hard links may only point at regular files already in `dest`, reached without symlinks;
//! - device files, fifos and sparse files are refused; setuid/setgid/sticky bits are dropped;
//! - directory modes are applied at the end (so a read-only directory can't block later
//!   entries), re-checking each path, and always keep the owner's `rwx`.
//!
//! `dest` must be private to the caller while this runs: the checks are not atomic against
//! another process changing it concurrently.

use std::collections::{BTreeMap, HashSet};
use std::ffi::OsStr;
use std::fs::{self, OpenOptions};
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::tarread::{display_path, join, normalize, Kind, RawEntry};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Policy {
    /// Image layers: later entries replace earlier ones, `.wh.` whiteouts delete lower-layer
    /// entries, symlink targets are kept verbatim (they are never followed while extracting).
    Layer,
    /// Source archives: entries never replace one another, `.wh.` names are ordinary names.
    /// Symlink targets are validated by the archive checker before they get here.
    Source,
}

#[derive(Debug)]
pub(crate) enum ExtractError {
    /// The entry is unsafe or malformed; the string says why.
    Refused(String),
    Io {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
}

fn io_err(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> ExtractError {
    let path = path.to_path_buf();
    move |source| ExtractError::Io { op, path, source }
}

const OPAQUE: &[u8] = b".wh..wh..opq";
const WHITEOUT: &[u8] = b".wh.";

pub(crate) struct Extractor {
    dest: PathBuf,
    policy: Policy,
    /// Directory modes to apply at the end, by normalised path.
    dir_modes: BTreeMap<Vec<Vec<u8>>, u32>,
    /// Paths written by the current layer (whiteouts only delete lower-layer entries).
    written: HashSet<Vec<u8>>,
    /// Directories that are ancestors of paths written by the current layer.
    ancestors: HashSet<Vec<u8>>,
}

/// Checks that `dest` is absent or an empty directory, and creates it if absent. `Ok(false)`
/// means it exists and is not empty.
pub(crate) fn prepare_dest(dest: &Path) -> io::Result<bool> {
    match fs::symlink_metadata(dest) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            fs::create_dir_all(dest)?;
            Ok(true)
        }
        Err(e) => Err(e),
        Ok(m) if m.is_dir() => Ok(fs::read_dir(dest)?.next().is_none()),
        Ok(_) => Ok(false),
    }
}

/// Removes everything inside `dest` (used to undo a failed extraction). Doesn't follow symlinks.
pub(crate) fn clear_dir(dest: &Path) -> io::Result<()> {
    for child in fs::read_dir(dest)? {
        let child = child?;
        if child.file_type()?.is_dir() {
            fs::remove_dir_all(child.path())?;
        } else {
            fs::remove_file(child.path())?;
        }
    }
    Ok(())
}

impl Extractor {
    pub(crate) fn new(dest: &Path, policy: Policy) -> Extractor {
        Extractor {
            dest: dest.to_path_buf(),
            policy,
            dir_modes: BTreeMap::new(),
            written: HashSet::new(),
            ancestors: HashSet::new(),
        }
    }

    /// Starts a new layer: whiteouts from now on may delete what earlier layers wrote.
    pub(crate) fn start_layer(&mut self) {
        self.written.clear();
        self.ancestors.clear();
    }

    pub(crate) fn apply(
        &mut self,
        raw: &RawEntry,
        data: &mut dyn Read,
    ) -> Result<(), ExtractError> {
        let refuse = |r: &str| Err(ExtractError::Refused(r.to_owned()));
        match raw.kind {
            Kind::GlobalHeader => return Ok(()),
            Kind::CharDevice | Kind::BlockDevice => return refuse("device files are not allowed"),
            Kind::Fifo => return refuse("fifos are not allowed"),
            Kind::Sparse => return refuse("sparse files are not supported"),
            Kind::Other(b) => {
                return Err(ExtractError::Refused(format!(
                    "unsupported entry type `{}`",
                    (b as char).escape_default()
                )))
            }
            Kind::File | Kind::Dir | Kind::Symlink | Kind::HardLink => {}
        }
        let comps = normalize(&raw.path).map_err(|r| ExtractError::Refused(r.to_owned()))?;
        let Some((last, parents)) = comps.split_last() else {
            return if raw.kind == Kind::Dir {
                Ok(()) // `./`: the root itself
            } else {
                refuse("entry has an empty path")
            };
        };
        if self.policy == Policy::Layer && last.starts_with(WHITEOUT) {
            return self.whiteout(parents, last);
        }

        let parent = self.ensure_parents(parents)?;
        let target = parent.join(OsStr::from_bytes(last));
        let existing = match fs::symlink_metadata(&target) {
            Ok(m) => Some(m),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(io_err("cannot inspect", &target)(e)),
        };
        if let Some(existing) = existing {
            let is_dir = existing.is_dir();
            match (self.policy, is_dir, raw.kind == Kind::Dir) {
                (_, true, true) => {}
                (Policy::Source, true, false) => {
                    return refuse("conflicts with an earlier directory")
                }
                (Policy::Source, false, _) => return refuse("appears twice in the archive"),
                (Policy::Layer, true, false) => {
                    fs::remove_dir_all(&target).map_err(io_err("cannot replace", &target))?
                }
                (Policy::Layer, false, _) => {
                    fs::remove_file(&target).map_err(io_err("cannot replace", &target))?
                }
            }
        }

        match raw.kind {
            Kind::Dir => {
                if !target.is_dir() {
                    fs::create_dir(&target).map_err(io_err("cannot create directory", &target))?;
                }
                self.dir_modes
                    .insert(comps.clone(), (raw.mode & 0o777) | 0o700);
            }
            Kind::File => {
                let mut file = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&target)
                    .map_err(io_err("cannot create file", &target))?;
                io::copy(data, &mut file).map_err(io_err("cannot write file", &target))?;
                file.set_permissions(fs::Permissions::from_mode(raw.mode & 0o777))
                    .map_err(io_err("cannot set the mode of", &target))?;
            }
            Kind::Symlink => {
                let link = raw.link.as_deref().unwrap_or_default();
                if link.is_empty() {
                    return refuse("symlink has an empty target");
                }
                if link.contains(&0) {
                    return refuse("symlink target contains a NUL byte");
                }
                std::os::unix::fs::symlink(OsStr::from_bytes(link), &target)
                    .map_err(io_err("cannot create symlink", &target))?;
            }
            Kind::HardLink => {
                let link = raw.link.as_deref().unwrap_or_default();
                let source = self.existing_file(link)?;
                fs::hard_link(&source, &target)
                    .map_err(io_err("cannot create hard link", &target))?;
            }
            // Other kinds returned early above.
            _ => return refuse("unsupported entry type"),
        }
        self.written.insert(join(&comps));
        for i in 1..comps.len() {
            self.ancestors.insert(join(&comps[..i]));
        }
        Ok(())
    }

    /// Applies directory modes, deepest first. Paths that are gone or now reached through a
    /// symlink (a later entry replaced a directory) are skipped: `chmod` would follow them.
    pub(crate) fn finish(self) -> Result<(), ExtractError> {
        for (comps, mode) in self.dir_modes.iter().rev() {
            if let Some(path) = self.lookup(comps)? {
                if fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir()) {
                    fs::set_permissions(&path, fs::Permissions::from_mode(*mode))
                        .map_err(io_err("cannot set the mode of", &path))?;
                }
            }
        }
        Ok(())
    }

    /// Creates missing parent directories; refuses to go through a symlink or a file.
    fn ensure_parents(&mut self, parents: &[Vec<u8>]) -> Result<PathBuf, ExtractError> {
        let mut path = self.dest.clone();
        for (i, comp) in parents.iter().enumerate() {
            path.push(OsStr::from_bytes(comp));
            match fs::symlink_metadata(&path) {
                Ok(m) if m.is_dir() => {}
                Ok(m) if m.file_type().is_symlink() => {
                    return Err(ExtractError::Refused(format!(
                        "path goes through the symlink `{}`",
                        display_path(&join(&parents[..=i]))
                    )))
                }
                Ok(_) => {
                    return Err(ExtractError::Refused(format!(
                        "parent `{}` is not a directory",
                        display_path(&join(&parents[..=i]))
                    )))
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    fs::create_dir(&path).map_err(io_err("cannot create directory", &path))?
                }
                Err(e) => return Err(io_err("cannot inspect", &path)(e)),
            }
        }
        Ok(path)
    }

    /// The path of `comps` in dest if every parent is a real directory (no symlinks) and the
    /// last component exists (not followed); `None` otherwise.
    fn lookup(&self, comps: &[Vec<u8>]) -> Result<Option<PathBuf>, ExtractError> {
        let mut path = self.dest.clone();
        for (i, comp) in comps.iter().enumerate() {
            path.push(OsStr::from_bytes(comp));
            match fs::symlink_metadata(&path) {
                Ok(m) if m.is_dir() || i + 1 == comps.len() => {}
                Ok(_) => return Ok(None),
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(io_err("cannot inspect", &path)(e)),
            }
        }
        Ok(Some(path))
    }

    fn existing_file(&self, link: &[u8]) -> Result<PathBuf, ExtractError> {
        let not_found = || {
            ExtractError::Refused(format!(
                "hard link target `{}` is not a file extracted earlier",
                display_path(link)
            ))
        };
        let comps = normalize(link).map_err(|r| {
            ExtractError::Refused(format!("hard link target `{}`: {r}", display_path(link)))
        })?;
        if comps.is_empty() {
            return Err(not_found());
        }
        let path = self.lookup(&comps)?.ok_or_else(not_found)?;
        match fs::symlink_metadata(&path) {
            Ok(m) if m.is_file() => Ok(path),
            _ => Err(not_found()),
        }
    }

    fn whiteout(&mut self, parents: &[Vec<u8>], name: &[u8]) -> Result<(), ExtractError> {
        let Some(dir) = self.lookup(parents)? else {
            return Ok(()); // nothing below to hide
        };
        if !fs::symlink_metadata(&dir).is_ok_and(|m| m.is_dir()) {
            return Ok(());
        }
        if name == OPAQUE {
            return self.clear_lower(&dir, &join(parents));
        }
        let hidden = &name[WHITEOUT.len()..];
        if hidden.is_empty() || hidden == b"." || hidden == b".." || hidden.contains(&b'/') {
            return Err(ExtractError::Refused(
                "whiteout names no entry to delete".to_owned(),
            ));
        }
        let mut key = join(parents);
        if !key.is_empty() {
            key.push(b'/');
        }
        key.extend_from_slice(hidden);
        if self.written.contains(&key) {
            return Ok(());
        }
        remove_entry(&dir.join(OsStr::from_bytes(hidden)))
    }

    /// Opaque whiteout: removes everything under `dir` that the current layer didn't write.
    fn clear_lower(&self, dir: &Path, key: &[u8]) -> Result<(), ExtractError> {
        let children = fs::read_dir(dir).map_err(io_err("cannot list", dir))?;
        for child in children {
            let child = child.map_err(io_err("cannot list", dir))?;
            let mut child_key = key.to_vec();
            if !child_key.is_empty() {
                child_key.push(b'/');
            }
            child_key.extend_from_slice(child.file_name().as_bytes());
            let path = child.path();
            let is_dir = child
                .file_type()
                .map_err(io_err("cannot inspect", &path))?
                .is_dir();
            let keep = self.written.contains(&child_key) || self.ancestors.contains(&child_key);
            if keep && is_dir {
                self.clear_lower(&path, &child_key)?;
            } else if !keep {
                remove_entry(&path)?;
            }
        }
        Ok(())
    }
}

fn remove_entry(path: &Path) -> Result<(), ExtractError> {
    let result = match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    };
    result.map_err(io_err("cannot remove", path))
}
