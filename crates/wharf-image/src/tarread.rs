//! Reading tar streams that may be hostile: entry by entry, with a cap on the metadata the tar
//! crate buffers in memory (GNU long names and pax records), and path normalisation that refuses
//! absolute paths and `..`.

use std::cell::Cell;
use std::io::{self, Read};
use std::rc::Rc;

/// The most bytes of headers, GNU long names and pax records allowed before one entry's data.
/// The tar crate reads long names and pax records into memory, so without a cap a crafted
/// archive could make it allocate gigabytes.
const METADATA_BUDGET: u64 = 1 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    File,
    Dir,
    Symlink,
    HardLink,
    CharDevice,
    BlockDevice,
    Fifo,
    Sparse,
    /// A pax global header: metadata for the whole archive, not an entry.
    GlobalHeader,
    Other(u8),
}

impl Kind {
    fn of(t: tar::EntryType) -> Kind {
        use tar::EntryType as T;
        match t {
            T::Regular | T::Continuous => Kind::File,
            T::Directory => Kind::Dir,
            T::Symlink => Kind::Symlink,
            T::Link => Kind::HardLink,
            T::Char => Kind::CharDevice,
            T::Block => Kind::BlockDevice,
            T::Fifo => Kind::Fifo,
            T::GNUSparse => Kind::Sparse,
            T::XGlobalHeader => Kind::GlobalHeader,
            other => Kind::Other(other.as_byte()),
        }
    }
}

/// One entry's header, as stored (paths not yet normalised).
pub(crate) struct RawEntry {
    pub path: Vec<u8>,
    pub link: Option<Vec<u8>>,
    pub kind: Kind,
    pub mode: u32,
    pub size: u64,
}

impl RawEntry {
    pub(crate) fn display(&self) -> String {
        display_path(&self.path)
    }
}

#[derive(Debug)]
pub(crate) enum WalkError<E> {
    /// The stream is not a readable tar (or the decompressor failed).
    Format(io::Error),
    /// The metadata before entry number `index` (0-based) went past [`METADATA_BUDGET`].
    MetadataTooLarge { index: u64 },
    /// The visitor refused an entry.
    Visit(E),
}

struct BudgetReader<R> {
    inner: R,
    budget: Rc<Cell<u64>>,
    exceeded: Rc<Cell<bool>>,
}

impl<R: Read> Read for BudgetReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.budget.get();
        if left == 0 && !buf.is_empty() {
            self.exceeded.set(true);
            return Err(io::Error::other("tar metadata is too large"));
        }
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        self.budget.set(left - n as u64);
        Ok(n)
    }
}

/// Calls `visit` for every entry of the tar stream in `reader`, in order, with a reader over the
/// entry's data; whatever `visit` leaves unread is skipped.
pub(crate) fn walk<R: Read, E>(
    reader: R,
    mut visit: impl FnMut(RawEntry, &mut dyn Read) -> Result<(), E>,
) -> Result<(), WalkError<E>> {
    let budget = Rc::new(Cell::new(METADATA_BUDGET));
    let exceeded = Rc::new(Cell::new(false));
    let mut archive = tar::Archive::new(BudgetReader {
        inner: reader,
        budget: budget.clone(),
        exceeded: exceeded.clone(),
    });
    let mut entries = archive.entries().map_err(WalkError::Format)?;
    let mut index = 0u64;
    loop {
        budget.set(METADATA_BUDGET);
        let fail = |e: io::Error| {
            if exceeded.get() {
                WalkError::MetadataTooLarge { index }
            } else {
                WalkError::Format(e)
            }
        };
        let Some(entry) = entries.next() else { break };
        let mut entry = entry.map_err(fail)?;
        let header = entry.header();
        let raw = RawEntry {
            path: entry.path_bytes().into_owned(),
            link: entry.link_name_bytes().map(|l| l.into_owned()),
            kind: Kind::of(header.entry_type()),
            // An unparsable mode is not a safety problem: fall back to a plain file's.
            mode: header.mode().unwrap_or(0o644),
            size: entry.size(),
        };
        budget.set(raw.size);
        let mut data = NotingReader {
            inner: &mut entry,
            failed: None,
        };
        let visited = visit(raw, &mut data);
        // The stream broke while the visitor read the data: the archive's fault, whatever the
        // visitor made of it (an extractor sees a failed copy).
        if let Some(e) = data.failed {
            return Err(fail(e));
        }
        visited.map_err(WalkError::Visit)?;
        io::copy(&mut entry, &mut io::sink()).map_err(WalkError::Format)?;
        index += 1;
    }
    Ok(())
}

/// Passes reads through, keeping the first error other than `Interrupted` (which readers retry);
/// the caller gets a copy of it.
struct NotingReader<R> {
    inner: R,
    failed: Option<io::Error>,
}

impl<R: Read> Read for NotingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).map_err(|e| {
            if e.kind() == io::ErrorKind::Interrupted {
                return e;
            }
            let copy = io::Error::new(e.kind(), e.to_string());
            self.failed.get_or_insert(e);
            copy
        })
    }
}

/// Why a path was refused.
pub(crate) const ABSOLUTE: &str = "absolute paths are not allowed";
pub(crate) const DOTDOT: &str = "path leaves the archive root (`..`)";
/// A file name can't hold one (long names and pax records can).
pub(crate) const NUL: &str = "the path contains a NUL byte";

/// Splits an archive path into its normal components, dropping `.` and empty ones; refuses
/// absolute paths, `..` and NUL bytes. The result may be empty (for `./`).
pub(crate) fn normalize(path: &[u8]) -> Result<Vec<Vec<u8>>, &'static str> {
    if path.first() == Some(&b'/') {
        return Err(ABSOLUTE);
    }
    if path.contains(&0) {
        return Err(NUL);
    }
    let mut out = Vec::new();
    for part in path.split(|&b| b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => return Err(DOTDOT),
            p => out.push(p.to_vec()),
        }
    }
    Ok(out)
}

pub(crate) fn join(components: &[Vec<u8>]) -> Vec<u8> {
    components.join(&b'/')
}

/// A path from an archive, made safe to show: invalid UTF-8 replaced, control characters
/// escaped (entry names end up in terminals and HTTP responses).
pub(crate) fn display_path(path: &[u8]) -> String {
    let mut out = String::new();
    for c in String::from_utf8_lossy(path).chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_refuses_absolute_and_dotdot() {
        assert_eq!(normalize(b"/etc/passwd"), Err(ABSOLUTE));
        assert_eq!(normalize(b"a/../../b"), Err(DOTDOT));
        assert_eq!(normalize(b"a/.."), Err(DOTDOT));
        assert_eq!(
            normalize(b"./a//b/./c/").unwrap(),
            vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]
        );
        assert!(normalize(b"./").unwrap().is_empty());
        assert_eq!(normalize(b"..a/b..").unwrap().len(), 2);
        assert_eq!(normalize(b"a\0b"), Err(NUL));
    }

    #[test]
    fn display_escapes_control_characters() {
        assert_eq!(display_path(b"a\nb\x1b[31m"), "a\\nb\\u{1b}[31m");
        assert_eq!(display_path(b"caf\xc3\xa9"), "café");
    }

    #[test]
    fn oversized_long_name_is_refused_without_buffering_it() {
        // A GNU long-name entry claiming 64 MiB: the walker must stop at the budget.
        let mut header = tar::Header::new_gnu();
        header.as_gnu_mut().unwrap().name[..13].copy_from_slice(b"././@LongLink");
        header.set_entry_type(tar::EntryType::GNULongName);
        header.set_size(64 << 20);
        header.set_cksum();
        let mut data = header.as_bytes().to_vec();
        data.extend(std::iter::repeat_n(b'a', 2 << 20));
        let err = walk(&data[..], |_, _| Ok::<(), ()>(())).unwrap_err();
        assert!(
            matches!(err, WalkError::MetadataTooLarge { index: 0 }),
            "{err:?}"
        );
    }
}
