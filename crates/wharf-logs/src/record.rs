//! The on-disk record, one stored line per line of a segment file; the format is described in
//! the crate documentation. `text length` is what makes a torn record detectable: a record cut
//! short by a crash fails that check (or has too few fields), so it is never mistaken for a
//! shorter line.

use chrono::{DateTime, SecondsFormat, Utc};

use crate::line::{EventId, LogLine, Source, StoredLine};

/// Appends the record for line `id` to `out`, ending with a newline.
pub(crate) fn encode(id: u64, line: &LogLine, out: &mut Vec<u8>) {
    out.extend_from_slice(id.to_string().as_bytes());
    out.push(b'\t');
    out.extend_from_slice(
        line.time
            .to_rfc3339_opts(SecondsFormat::Nanos, true)
            .as_bytes(),
    );
    out.push(b'\t');
    out.extend_from_slice(line.source.as_str().as_bytes());
    out.push(b'\t');
    escape_into(&line.process, out);
    out.push(b'\t');
    out.extend_from_slice(escaped_len(&line.text).to_string().as_bytes());
    out.push(b'\t');
    escape_into(&line.text, out);
    out.push(b'\n');
}

/// Parses one record (without its newline); `None` if it is not a whole, well-formed record.
pub(crate) fn decode(record: &[u8]) -> Option<StoredLine> {
    let record = std::str::from_utf8(record).ok()?;
    let mut fields = record.splitn(6, '\t');
    let id = parse_decimal(fields.next()?)?;
    if id == 0 {
        return None;
    }
    let time = DateTime::parse_from_rfc3339(fields.next()?)
        .ok()?
        .with_timezone(&Utc);
    let source: Source = fields.next()?.parse().ok()?;
    let process = unescape(fields.next()?)?;
    let text_len = parse_decimal(fields.next()?)?;
    let text = fields.next()?;
    if u64::try_from(text.len()).ok()? != text_len {
        return None;
    }
    let text = unescape(text)?;
    Some(StoredLine {
        id: EventId::new(id),
        line: LogLine {
            time,
            source,
            process,
            text,
        },
    })
}

fn parse_decimal(field: &str) -> Option<u64> {
    if field.is_empty() || !field.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    field.parse().ok()
}

fn escaped_len(s: &str) -> usize {
    s.len()
        + s.bytes()
            .filter(|b| matches!(b, b'\\' | b'\t' | b'\n' | b'\r'))
            .count()
}

fn escape_into(s: &str, out: &mut Vec<u8>) {
    for b in s.bytes() {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b => out.push(b),
        }
    }
}

fn unescape(s: &str) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push(match chars.next()? {
                '\\' => '\\',
                't' => '\t',
                'n' => '\n',
                'r' => '\r',
                _ => return None,
            }),
            '\t' | '\n' | '\r' => return None,
            c => out.push(c),
        }
    }
    Some(out)
}

/// Splits a segment's bytes into its complete lines (each without its newline) and the number of
/// bytes they span; bytes after the last newline are an unfinished (or torn) record.
pub(crate) fn complete_lines(bytes: &[u8]) -> (impl Iterator<Item = &[u8]>, usize) {
    let complete = bytes
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |last| last + 1);
    let lines = bytes[..complete]
        .split_inclusive(|&b| b == b'\n')
        .map(|line| line.strip_suffix(b"\n").unwrap_or(line));
    (lines, complete)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn odd_line() -> LogLine {
        LogLine {
            time: Utc.timestamp_opt(1_790_000_000, 123_456_789).unwrap(),
            source: Source::Router,
            process: "we\tb.1\\\n".into(),
            text: "tab\there\\back\\\\slash\r\nCRLF ünïcødé 🚢 \\t not a tab \u{0}\u{7f}".into(),
        }
    }

    fn encoded(id: u64, line: &LogLine) -> Vec<u8> {
        let mut out = Vec::new();
        encode(id, line, &mut out);
        out
    }

    #[test]
    fn every_field_round_trips_exactly() {
        for line in [
            odd_line(),
            LogLine {
                text: String::new(),
                process: String::new(),
                ..odd_line()
            },
        ] {
            let bytes = encoded(7, &line);
            assert_eq!(bytes.iter().filter(|&&b| b == b'\n').count(), 1);
            assert_eq!(bytes.last(), Some(&b'\n'));
            let stored = decode(&bytes[..bytes.len() - 1]).expect("decodes");
            assert_eq!(stored.id, EventId::new(7));
            assert_eq!(stored.line, line);
        }
    }

    #[test]
    fn the_format_is_readable() {
        let line = LogLine {
            time: Utc.timestamp_opt(1_790_000_000, 5).unwrap(),
            source: Source::App,
            process: "web.1".into(),
            text: "hello\tworld".into(),
        };
        assert_eq!(
            String::from_utf8(encoded(42, &line)).unwrap(),
            "42\t2026-09-21T14:13:20.000000005Z\tapp\tweb.1\t12\thello\\tworld\n"
        );
    }

    #[test]
    fn every_cut_of_a_record_is_rejected() {
        let bytes = encoded(123, &odd_line());
        let record = &bytes[..bytes.len() - 1];
        for cut in 0..record.len() {
            assert!(decode(&record[..cut]).is_none(), "cut at {cut} decoded");
        }
    }

    #[test]
    fn garbage_is_rejected() {
        for bad in [
            &b""[..],
            b"\0\0\0\0",
            b"0\t2026-09-21T14:13:20Z\tapp\tweb.1\t1\tx",
            b"+1\t2026-09-21T14:13:20Z\tapp\tweb.1\t1\tx",
            b"1\tyesterday\tapp\tweb.1\t1\tx",
            b"1\t2026-09-21T14:13:20Z\theroku\tweb.1\t1\tx",
            b"1\t2026-09-21T14:13:20Z\tapp\tweb.1\t2\tx",
            b"1\t2026-09-21T14:13:20Z\tapp\tweb.1\t2\t\\q",
            b"1\t2026-09-21T14:13:20Z\tapp\tweb.1\t3\tx\ty",
            b"1\t2026-09-21T14:13:20Z\tapp\tweb.1\t1\t\xff",
        ] {
            assert!(
                decode(bad).is_none(),
                "{:?} decoded",
                String::from_utf8_lossy(bad)
            );
        }
        assert!(decode(b"1\t2026-09-21T14:13:20Z\tapp\tweb.1\t1\tx").is_some());
    }

    #[test]
    fn complete_lines_leave_an_unfinished_tail() {
        let (lines, used) = complete_lines(b"a\nbb\n\ncc");
        assert_eq!(lines.collect::<Vec<_>>(), vec![&b"a"[..], b"bb", b""]);
        assert_eq!(used, 6);
        let (lines, used) = complete_lines(b"no newline");
        assert_eq!(lines.count(), 0);
        assert_eq!(used, 0);
    }
}
