//! Segment files on disk: the single writer that appends, rotates and prunes them, and the
//! readers that take the tail or everything after an event id. All of it is blocking file I/O,
//! run on tokio's blocking pool by [`crate::store`].

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::error::LogError;
use crate::filter::Matcher;
use crate::line::{LogLine, StoredLine};
use crate::record;
use crate::Retention;

/// Bytes the writer buffers before a write reaches the file.
const WRITE_BUFFER_BYTES: usize = 64 * 1024;
/// Records a reader looks at to find a segment's first id before giving up on the segment.
const FIRST_ID_PROBE_RECORDS: usize = 64;

/// The file of segment `seq`: `00000001.log`.
pub(crate) fn segment_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:08}.log"))
}

fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".log")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The segment numbers in `dir`, oldest first; none if the directory doesn't exist. Other files
/// are ignored.
pub(crate) fn list_segments(dir: &Path) -> Result<Vec<u64>, LogError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(LogError::ListSegments {
                path: dir.to_owned(),
                source,
            })
        }
    };
    let mut segments = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| LogError::ListSegments {
            path: dir.to_owned(),
            source,
        })?;
        if let Some(seq) = entry.file_name().to_str().and_then(parse_segment_name) {
            segments.push(seq);
        }
    }
    segments.sort_unstable();
    Ok(segments)
}

/// A segment's bytes; `None` if it was pruned since it was listed.
fn read_segment(dir: &Path, seq: u64) -> Result<Option<Vec<u8>>, LogError> {
    let path = segment_path(dir, seq);
    match fs::read(&path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(LogError::ReadSegment { path, source }),
    }
}

/// The well-formed records of a segment and how many lines were corrupt or torn.
fn parse_segment(bytes: &[u8]) -> (Vec<StoredLine>, u64) {
    let (lines, used) = record::complete_lines(bytes);
    let mut records = Vec::new();
    let mut corrupt = u64::from(used < bytes.len());
    for line in lines {
        match record::decode(line) {
            Some(stored) => records.push(stored),
            None => corrupt += 1,
        }
    }
    (records, corrupt)
}

/// The newest `n` lines matching `matcher`, oldest first, and the last id stored when read.
pub(crate) struct Tail {
    pub(crate) lines: Vec<StoredLine>,
    pub(crate) last_id: u64,
}

pub(crate) fn read_tail(dir: &Path, matcher: &Matcher, n: usize) -> Result<Tail, LogError> {
    let mut lines = Vec::new();
    let mut last_id = 0;
    for seq in list_segments(dir)?.into_iter().rev() {
        if lines.len() >= n && last_id != 0 {
            break;
        }
        let Some(bytes) = read_segment(dir, seq)? else {
            continue;
        };
        let (records, _) = parse_segment(&bytes);
        if last_id == 0 {
            last_id = records.last().map_or(0, |r| r.id.get());
        }
        for stored in records.into_iter().rev() {
            if lines.len() >= n {
                break;
            }
            if matcher.matches(&stored.line) {
                lines.push(stored);
            }
        }
    }
    lines.reverse();
    Ok(Tail { lines, last_id })
}

/// Where a follower has got to: every line up to `last_id` has been seen, and reading goes on
/// at byte `offset` of segment `seq` when that segment is still there.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Cursor {
    pub(crate) last_id: u64,
    pub(crate) at: Option<(u64, u64)>,
}

/// The lines after `cursor` that match, oldest first, reading at most about `budget` bytes;
/// moves the cursor past every line read (matching or not). Returns whether more may be ready.
pub(crate) fn read_after(
    dir: &Path,
    matcher: &Matcher,
    cursor: &mut Cursor,
    budget: usize,
) -> Result<(Vec<StoredLine>, bool), LogError> {
    let segments = list_segments(dir)?;
    let mut out = Vec::new();
    let (mut index, mut offset) = match cursor.at {
        Some((seq, offset)) => match segments.binary_search(&seq) {
            Ok(index) => (index, offset),
            // Pruned since: start from wherever the next id now is.
            Err(_) => (locate(dir, &segments, cursor.last_id)?, 0),
        },
        None => (locate(dir, &segments, cursor.last_id)?, 0),
    };
    let budget = budget.max(1);
    let mut left = budget;
    while let Some(&seq) = segments.get(index) {
        let path = segment_path(dir, seq);
        let mut chunk = Vec::new();
        match File::open(&path) {
            Ok(mut file) => {
                let read = file
                    .seek(SeekFrom::Start(offset))
                    .and_then(|_| file.take(left as u64).read_to_end(&mut chunk));
                read.map_err(|source| LogError::ReadSegment {
                    path: path.clone(),
                    source,
                })?;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => return Err(LogError::ReadSegment { path, source }),
        }
        let full = chunk.len() >= left;
        let (lines, mut used) = record::complete_lines(&chunk);
        for line in lines {
            let Some(stored) = record::decode(line) else {
                continue;
            };
            if stored.id.get() <= cursor.last_id {
                continue;
            }
            cursor.last_id = stored.id.get();
            if matcher.matches(&stored.line) {
                out.push(stored);
            }
        }
        if used == 0 && full && left == budget {
            // A whole budget's worth of bytes without a line break is garbage, not a line being
            // written (records are far shorter); skip it rather than stall on it.
            used = chunk.len();
        }
        offset += used as u64;
        left -= used;
        cursor.at = Some((seq, offset));
        if full {
            return Ok((out, true));
        }
        // This segment is read to its end; a newer one means this one is finished.
        index += 1;
        offset = 0;
    }
    Ok((out, false))
}

/// The index of the segment to start reading lines after `last_id` from: the newest segment
/// whose first line is at most `last_id + 1`, or the oldest when every retained line is newer.
fn locate(dir: &Path, segments: &[u64], last_id: u64) -> Result<usize, LogError> {
    if last_id == 0 {
        return Ok(0);
    }
    for (index, &seq) in segments.iter().enumerate().rev() {
        if let Some(first) = first_id(dir, seq)? {
            if first <= last_id.saturating_add(1) {
                return Ok(index);
            }
        }
    }
    Ok(0)
}

fn first_id(dir: &Path, seq: u64) -> Result<Option<u64>, LogError> {
    let path = segment_path(dir, seq);
    let file = match File::open(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(LogError::ReadSegment { path, source }),
    };
    let mut reader = BufReader::new(file);
    let mut line = Vec::new();
    for _ in 0..FIRST_ID_PROBE_RECORDS {
        line.clear();
        let n = reader
            .read_until(b'\n', &mut line)
            .map_err(|source| LogError::ReadSegment {
                path: path.clone(),
                source,
            })?;
        if n == 0 || line.last() != Some(&b'\n') {
            return Ok(None);
        }
        if let Some(stored) = record::decode(&line[..line.len() - 1]) {
            return Ok(Some(stored.id.get()));
        }
    }
    Ok(None)
}

/// The one writer of an app's segments.
pub(crate) struct SegmentWriter {
    dir: PathBuf,
    limits: Retention,
    /// Segment numbers on disk, oldest first; the last is the one being appended to.
    segments: VecDeque<u64>,
    file: BufWriter<File>,
    /// Bytes in the current segment, including those still buffered.
    size: u64,
    last_id: u64,
    scratch: Vec<u8>,
}

impl SegmentWriter {
    /// Opens an app's log for appending, creating its directory. The next id follows the last
    /// well-formed line; a torn last line is left in place and closed with a newline, so it is
    /// skipped as corrupt. Returns the writer and the number of corrupt lines skipped.
    pub(crate) fn open(dir: &Path, limits: Retention) -> Result<(SegmentWriter, u64), LogError> {
        fs::create_dir_all(dir).map_err(|source| LogError::CreateDir {
            path: dir.to_owned(),
            source,
        })?;
        let segments = list_segments(dir)?;
        let mut last_id = 0;
        let mut corrupt = 0;
        for &seq in segments.iter().rev() {
            let Some(bytes) = read_segment(dir, seq)? else {
                continue;
            };
            let (records, bad) = parse_segment(&bytes);
            corrupt += bad;
            if let Some(max) = records.iter().map(|r| r.id.get()).max() {
                last_id = max;
                break;
            }
        }
        let current = segments.last().copied().unwrap_or(1);
        let path = segment_path(dir, current);
        let (mut file, size) = open_for_append(&path)?;
        let mut size = size;
        if size > 0 && !ends_with_newline(&path)? {
            file.write_all(b"\n")
                .map_err(|source| LogError::WriteSegment {
                    path: path.clone(),
                    source,
                })?;
            size += 1;
        }
        let mut segments: VecDeque<u64> = segments.into();
        if segments.back() != Some(&current) {
            segments.push_back(current);
        }
        let mut writer = SegmentWriter {
            dir: dir.to_owned(),
            limits,
            segments,
            file: BufWriter::with_capacity(WRITE_BUFFER_BYTES, file),
            size,
            last_id,
            scratch: Vec::new(),
        };
        writer.prune();
        Ok((writer, corrupt))
    }

    /// The id of the last line appended.
    pub(crate) fn last_id(&self) -> u64 {
        self.last_id
    }

    /// Appends a (normalized) line, starting a new segment first if it would overflow this one.
    pub(crate) fn append(&mut self, line: &LogLine) -> Result<u64, LogError> {
        let id = self.last_id.saturating_add(1);
        self.scratch.clear();
        record::encode(id, line, &mut self.scratch);
        let len = self.scratch.len() as u64;
        if self.size > 0 && self.size.saturating_add(len) > self.limits.segment_bytes {
            self.rotate()?;
        }
        let result = self.file.write_all(&self.scratch);
        result.map_err(|source| self.write_error(source))?;
        self.size += len;
        self.last_id = id;
        Ok(id)
    }

    /// Hands everything buffered to the file, so readers see it.
    pub(crate) fn flush(&mut self) -> Result<(), LogError> {
        let result = self.file.flush();
        result.map_err(|source| self.write_error(source))
    }

    /// Flushes and waits until the current segment's data is on the disk.
    pub(crate) fn sync(&mut self) -> Result<(), LogError> {
        self.flush()?;
        let result = self.file.get_ref().sync_data();
        result.map_err(|source| self.write_error(source))
    }

    fn current(&self) -> u64 {
        self.segments.back().copied().unwrap_or(1)
    }

    fn write_error(&self, source: io::Error) -> LogError {
        LogError::WriteSegment {
            path: segment_path(&self.dir, self.current()),
            source,
        }
    }

    fn rotate(&mut self) -> Result<(), LogError> {
        // Readers move on to the next segment only once it exists, so this one must be complete
        // on the file before the next is created.
        self.flush()?;
        let next = self.current().saturating_add(1);
        let (file, size) = open_for_append(&segment_path(&self.dir, next))?;
        self.file = BufWriter::with_capacity(WRITE_BUFFER_BYTES, file);
        self.size = size;
        self.segments.push_back(next);
        self.prune();
        Ok(())
    }

    fn prune(&mut self) {
        while self.segments.len() > self.limits.max_segments.max(1) {
            let Some(oldest) = self.segments.pop_front() else {
                break;
            };
            let path = segment_path(&self.dir, oldest);
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(error) => {
                    tracing::warn!(path = %path.display(), %error, "cannot remove an old log segment");
                }
            }
        }
    }
}

fn open_for_append(path: &Path) -> Result<(File, u64), LogError> {
    let opened = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|file| Ok((file.metadata()?.len(), file)));
    let (size, file) = opened.map_err(|source| LogError::WriteSegment {
        path: path.to_owned(),
        source,
    })?;
    Ok((file, size))
}

fn ends_with_newline(path: &Path) -> Result<bool, LogError> {
    let mut last = [0u8; 1];
    let read = File::open(path).and_then(|mut file| {
        file.seek(SeekFrom::End(-1))?;
        file.read_exact(&mut last)
    });
    read.map_err(|source| LogError::ReadSegment {
        path: path.to_owned(),
        source,
    })?;
    Ok(last[0] == b'\n')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::LogFilter;

    fn all() -> Matcher {
        LogFilter::default().matcher().unwrap()
    }

    fn limits(segment_bytes: u64, max_segments: usize) -> Retention {
        Retention {
            segment_bytes,
            max_segments,
        }
    }

    fn texts(lines: &[StoredLine]) -> Vec<String> {
        lines.iter().map(|l| l.line.text.clone()).collect()
    }

    #[test]
    fn segment_names_are_numbers() {
        assert_eq!(parse_segment_name("00000001.log"), Some(1));
        assert_eq!(parse_segment_name("123456789.log"), Some(123_456_789));
        for bad in ["x.log", ".log", "00000001.log.tmp", "+1.log", "1.txt"] {
            assert_eq!(parse_segment_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn rotation_keeps_segments_under_the_size_and_prunes_the_oldest() {
        let dir = tempfile::tempdir().unwrap();
        let (mut writer, _) = SegmentWriter::open(dir.path(), limits(300, 3)).unwrap();
        for i in 0..100 {
            writer
                .append(&LogLine::app("web.1", format!("line {i}")))
                .unwrap();
        }
        writer.flush().unwrap();
        let segments = list_segments(dir.path()).unwrap();
        assert_eq!(segments.len(), 3);
        for &seq in &segments {
            let len = fs::metadata(segment_path(dir.path(), seq)).unwrap().len();
            assert!(len <= 300, "segment {seq} has {len} bytes");
        }
        let tail = read_tail(dir.path(), &all(), 1500).unwrap();
        assert_eq!(tail.last_id, 100);
        assert_eq!(tail.lines.last().unwrap().line.text, "line 99");
        assert!(tail.lines.len() < 100);
        let ids: Vec<u64> = tail.lines.iter().map(|l| l.id.get()).collect();
        assert!(ids.windows(2).all(|w| w[1] == w[0] + 1), "{ids:?}");
    }

    #[test]
    fn a_torn_last_line_is_skipped_and_appending_goes_on_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let (mut writer, _) = SegmentWriter::open(dir.path(), Retention::default()).unwrap();
        writer.append(&LogLine::app("web.1", "one")).unwrap();
        writer.append(&LogLine::app("web.1", "two")).unwrap();
        writer.flush().unwrap();
        drop(writer);
        let path = segment_path(dir.path(), 1);
        let bytes = fs::read(&path).unwrap();
        fs::write(&path, &bytes[..bytes.len() - 3]).unwrap();

        let (mut writer, corrupt) = SegmentWriter::open(dir.path(), Retention::default()).unwrap();
        assert_eq!(corrupt, 1);
        assert_eq!(writer.last_id(), 1);
        writer.append(&LogLine::app("web.1", "three")).unwrap();
        writer.flush().unwrap();
        let tail = read_tail(dir.path(), &all(), 10).unwrap();
        assert_eq!(texts(&tail.lines), ["one", "three"]);
        assert_eq!(tail.lines[1].id.get(), 2);
    }

    #[test]
    fn reading_after_an_id_resumes_across_segments() {
        let dir = tempfile::tempdir().unwrap();
        let (mut writer, _) = SegmentWriter::open(dir.path(), limits(200, 100)).unwrap();
        for i in 1..=50 {
            writer
                .append(&LogLine::app("web.1", format!("{i}")))
                .unwrap();
        }
        writer.flush().unwrap();
        assert!(list_segments(dir.path()).unwrap().len() > 3);
        for after in [0, 1, 7, 25, 49, 50] {
            let mut cursor = Cursor {
                last_id: after,
                at: None,
            };
            let mut got = Vec::new();
            loop {
                let (lines, more) = read_after(dir.path(), &all(), &mut cursor, 150).unwrap();
                got.extend(lines.into_iter().map(|l| l.id.get()));
                if !more {
                    break;
                }
            }
            assert_eq!(got, ((after + 1)..=50).collect::<Vec<_>>(), "after {after}");
            assert_eq!(cursor.last_id, 50);
        }
    }

    #[test]
    fn garbage_without_line_breaks_does_not_stall_a_reader() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(segment_path(dir.path(), 1), vec![b'x'; 1000]).unwrap();
        fs::write(segment_path(dir.path(), 2), b"").unwrap();
        let (mut writer, corrupt) = SegmentWriter::open(dir.path(), Retention::default()).unwrap();
        assert_eq!(corrupt, 1);
        writer
            .append(&LogLine::app("web.1", "after garbage"))
            .unwrap();
        writer.flush().unwrap();
        let mut cursor = Cursor::default();
        let mut got = Vec::new();
        for _ in 0..100 {
            let (lines, more) = read_after(dir.path(), &all(), &mut cursor, 64).unwrap();
            got.extend(texts(&lines));
            if !more {
                break;
            }
        }
        assert_eq!(got, ["after garbage"]);
    }
}
