//! The on-disk record, one stored line per line of a segment file; the format is described in
//! the crate documentation. `text length` is what makes a torn record detectable: a record cut
//! short by a crash fails that check (or has too few fields), so it is never mistaken for a
//! shorter line.

use chrono::{DateTime, Datelike, SecondsFormat, Timelike, Utc};

use crate::line::{EventId, LogLine, Source, StoredLine};
use crate::scan::{self, push_decimal, put_padded};

/// Appends the record for line `id` to `out`, ending with a newline.
///
/// This runs once per stored line (for the router, once per request), so it writes straight into
/// `out`: no intermediate `String` for the id, the time or the text length.
pub(crate) fn encode(id: u64, line: &LogLine, out: &mut Vec<u8>) {
    push_decimal(out, id);
    out.push(b'\t');
    push_time(line.time, out);
    out.push(b'\t');
    out.extend_from_slice(line.source.as_str().as_bytes());
    out.push(b'\t');
    escape_into(&line.process, out);
    out.push(b'\t');
    // Most texts have nothing to escape: one fast scan says so, and the text's length and bytes
    // are then written as they are.
    if scan::position(line.text.as_bytes(), needs_escape).is_none() {
        push_decimal(out, line.text.len() as u64);
        out.push(b'\t');
        out.extend_from_slice(line.text.as_bytes());
    } else {
        push_decimal(out, escaped_len(&line.text) as u64);
        out.push(b'\t');
        escape_into(&line.text, out);
    }
    out.push(b'\n');
}

/// Appends `time` as `time.to_rfc3339_opts(SecondsFormat::Nanos, true)` writes it, e.g.
/// `2026-09-21T14:13:20.000000005Z`.
fn push_time(time: DateTime<Utc>, out: &mut Vec<u8>) {
    let time = time.naive_utc();
    let (year, nano) = (time.year(), time.nanosecond());
    if !(0..=9999).contains(&year) || nano >= 1_000_000_000 {
        // A year chrono writes with a sign, or a leap second (written as second 60): normalized
        // lines have neither, so chrono may as well write these.
        let text = time.and_utc().to_rfc3339_opts(SecondsFormat::Nanos, true);
        out.extend_from_slice(text.as_bytes());
        return;
    }
    let mut text = *b"0000-00-00T00:00:00.000000000Z";
    put_padded(&mut text[0..4], year.unsigned_abs());
    put_padded(&mut text[5..7], time.month());
    put_padded(&mut text[8..10], time.day());
    put_padded(&mut text[11..13], time.hour());
    put_padded(&mut text[14..16], time.minute());
    put_padded(&mut text[17..19], time.second());
    put_padded(&mut text[20..29], nano);
    out.extend_from_slice(&text);
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

/// Whether `b` is written as a two-byte escape. Branch-free (`|`, not `matches!`), so that
/// [`scan::position`] can test many bytes at once.
fn needs_escape(b: u8) -> bool {
    (b == b'\\') | (b == b'\t') | (b == b'\n') | (b == b'\r')
}

fn escaped_len(s: &str) -> usize {
    s.len() + s.bytes().filter(|&b| needs_escape(b)).count()
}

/// Appends `s` with `\`, tab, newline and carriage return escaped. The bytes between two escapes
/// are copied as one slice. Each escaped byte is ASCII, so it is never part of a multi-byte
/// UTF-8 character, and scanning bytes rather than chars is exact.
fn escape_into(s: &str, out: &mut Vec<u8>) {
    let mut rest = s.as_bytes();
    while let Some(at) = scan::position(rest, needs_escape) {
        out.extend_from_slice(&rest[..at]);
        out.extend_from_slice(match rest[at] {
            b'\\' => b"\\\\",
            b'\t' => b"\\t",
            b'\n' => b"\\n",
            _ => b"\\r", // the last byte `needs_escape` accepts
        });
        rest = &rest[at + 1..];
    }
    out.extend_from_slice(rest);
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
    use proptest::prelude::*;

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

    /// `encode` as it was first written (`to_string`, chrono's RFC 3339 writer, and an escape a
    /// byte at a time): the reference for the allocation-free version.
    fn encode_reference(id: u64, line: &LogLine) -> Vec<u8> {
        fn escape(s: &str, out: &mut Vec<u8>) {
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
        let mut text = Vec::new();
        escape(&line.text, &mut text);
        let mut out = Vec::new();
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
        escape(&line.process, &mut out);
        out.push(b'\t');
        out.extend_from_slice(text.len().to_string().as_bytes());
        out.push(b'\t');
        out.extend_from_slice(&text);
        out.push(b'\n');
        out
    }

    /// Any time chrono can hold: the years 0001–9999 most of the time, but also years RFC 3339
    /// cannot write in four digits, and leap seconds.
    fn any_time() -> impl Strategy<Value = DateTime<Utc>> {
        let secs = prop_oneof![
            -62_135_596_800i64..253_402_300_800, // 0001-01-01 ..= 9999-12-31
            -8_000_000_000_000i64..8_000_000_000_000,
        ];
        let nanos = prop_oneof![3 => 0u32..1_000_000_000, 1 => 1_000_000_000u32..2_000_000_000];
        (secs, nanos).prop_filter_map("a time chrono can hold", |(secs, nanos)| {
            // A leap second (nanos >= 1e9) is only valid in the last second of a minute.
            let secs = if nanos >= 1_000_000_000 {
                secs - secs.rem_euclid(60) + 59
            } else {
                secs
            };
            Utc.timestamp_opt(secs, nanos).single()
        })
    }

    fn any_source() -> impl Strategy<Value = Source> {
        prop_oneof![Just(Source::App), Just(Source::Wharf), Just(Source::Router)]
    }

    /// Arbitrary text, or text dense in the bytes that are escaped, mixed with multi-byte chars
    /// and long enough to cross the escape scan's 16-byte blocks.
    fn any_text() -> impl Strategy<Value = String> {
        prop_oneof![any::<String>(), "[\\\\\t\n\ra-zé🚢\u{2028}]{0,80}"]
    }

    proptest! {
        #[test]
        fn encode_matches_the_reference(
            id in prop_oneof![1u64..1000, any::<u64>()],
            time in any_time(),
            source in any_source(),
            process in any_text(),
            text in any_text(),
        ) {
            let line = LogLine { time, source, process, text };
            let (got, want) = (encoded(id, &line), encode_reference(id, &line));
            prop_assert_eq!(String::from_utf8_lossy(&got), String::from_utf8_lossy(&want));
        }
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
