//! One log line: its fields, its event id, and Heroku's text rendering of it.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, NaiveDate, Utc};

use crate::error::{shown, LogError};
use crate::scan;

/// Longest text kept for one line, in bytes; longer text is cut and marked [`TRUNCATED_MARK`].
pub const MAX_TEXT_BYTES: usize = 64 * 1024;
/// Longest process name kept, in bytes; longer names are cut.
pub const MAX_PROCESS_BYTES: usize = 128;
/// Appended to a text that was cut to [`MAX_TEXT_BYTES`].
pub const TRUNCATED_MARK: &str = " [truncated]";

/// Who wrote a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    /// The app's own output (stdout and stderr of an instance or a one-off process).
    App,
    /// The platform: state changes, starts, exits, overflow notices.
    Wharf,
    /// The HTTP router: one line per request.
    Router,
}

impl Source {
    /// The name stored and accepted by filters: `app`, `wharf` or `router`.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::App => "app",
            Source::Wharf => "wharf",
            Source::Router => "router",
        }
    }

    /// The name in Heroku's line format, where router lines are platform lines (`wharf[router]`).
    pub fn heroku_name(self) -> &'static str {
        match self {
            Source::App => "app",
            Source::Wharf | Source::Router => "wharf",
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Source {
    type Err = LogError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "app" => Ok(Source::App),
            "wharf" => Ok(Source::Wharf),
            "router" => Ok(Source::Router),
            _ => Err(LogError::InvalidSource { value: shown(s) }),
        }
    }
}

/// One line of an app's log.
///
/// `text` is one line: [`crate::AppLog::append`] strips a trailing line break and replaces each
/// embedded `\r\n`, `\r` or `\n` with a space, so one `LogLine` is always one stored line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// When the line was printed or the event happened.
    pub time: DateTime<Utc>,
    /// Who wrote it.
    pub source: Source,
    /// The process it is about: `web.1`, `run.1`, `router`, `api`, or `wharf` for log notices.
    pub process: String,
    /// The line itself, without a trailing newline.
    pub text: String,
}

impl LogLine {
    /// A line stamped now.
    pub fn new(source: Source, process: impl Into<String>, text: impl Into<String>) -> Self {
        LogLine {
            time: Utc::now(),
            source,
            process: process.into(),
            text: text.into(),
        }
    }

    /// A line the app printed, stamped now.
    pub fn app(process: impl Into<String>, text: impl Into<String>) -> Self {
        Self::new(Source::App, process, text)
    }

    /// A platform event about `process` (e.g. `web.1`), stamped now; see [`crate::events`] for
    /// the texts.
    pub fn event(process: impl Into<String>, text: impl Into<String>) -> Self {
        Self::new(Source::Wharf, process, text)
    }

    /// A router line (process `router`), stamped now.
    pub fn router(text: impl Into<String>) -> Self {
        Self::new(Source::Router, "router", text)
    }

    /// The line in Heroku's format: `2026-11-24T22:13:28.123456+00:00 app[web.1]: text`, with
    /// `wharf` where Heroku says `heroku` (`wharf[web.1]: State changed from starting to up`,
    /// `wharf[router]: at=info method=GET …`).
    pub fn heroku_format(&self) -> String {
        format!(
            "{} {}[{}]: {}",
            self.time.format("%Y-%m-%dT%H:%M:%S%.6f%:z"),
            self.source.heroku_name(),
            one_line(&self.process),
            one_line(&self.text)
        )
    }

    /// The line as [`crate::AppLog::append`] stores it: `text` and `process` made one line (see
    /// above), `text` cut to [`MAX_TEXT_BYTES`] and `process` to [`MAX_PROCESS_BYTES`], and the
    /// time clamped to the years 0001–9999 (leap seconds folded), which RFC 3339 can write.
    pub fn normalized(mut self) -> Self {
        if let Cow::Owned(text) = one_line(&self.text) {
            self.text = text;
        }
        if self.text.len() > MAX_TEXT_BYTES {
            let keep = floor_char_boundary(&self.text, MAX_TEXT_BYTES - TRUNCATED_MARK.len());
            self.text.truncate(keep);
            self.text.push_str(TRUNCATED_MARK);
        }
        if let Cow::Owned(process) = one_line(&self.process) {
            self.process = process;
        }
        if self.process.len() > MAX_PROCESS_BYTES {
            let keep = floor_char_boundary(&self.process, MAX_PROCESS_BYTES);
            self.process.truncate(keep);
        }
        self.time = storable_time(self.time);
        self
    }
}

/// A line as stored: its event id and the line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredLine {
    /// Its position in the app's log.
    pub id: EventId,
    /// The line.
    pub line: LogLine,
}

/// A line's position in its app's log: strictly increasing per app, never reused while the app's
/// log exists (the next id is derived from the last stored line when the log is reopened). Written
/// and parsed as a decimal number, so it serves as the SSE `id:` and `Last-Event-ID`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EventId(u64);

impl EventId {
    /// The id with this number.
    pub const fn new(n: u64) -> Self {
        EventId(n)
    }

    /// Its number.
    pub const fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl FromStr for EventId {
    type Err = LogError;

    /// Parses a decimal number; surrounding whitespace (as an HTTP header may carry) is ignored.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let digits = s.trim();
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(LogError::InvalidEventId { value: shown(s) });
        }
        digits
            .parse()
            .map(EventId)
            .map_err(|_| LogError::InvalidEventId { value: shown(s) })
    }
}

/// `text` without a trailing line break and with every inner `\r\n`, `\r` or `\n` made a space.
///
/// Only `\r` and `\n` count as line breaks (not U+2028, U+2029 or other Unicode breaks). Both
/// are ASCII, so they are never part of a multi-byte UTF-8 character: the text is scanned as
/// bytes, and every index next to one of them is a char boundary.
pub(crate) fn one_line(text: &str) -> Cow<'_, str> {
    let bytes = text.as_bytes();
    let end = bytes
        .iter()
        .rposition(|&b| !is_line_break(b))
        .map_or(0, |last| last + 1);
    let trimmed = &text[..end];
    if scan::position(trimmed.as_bytes(), is_line_break).is_none() {
        return Cow::Borrowed(trimmed);
    }
    let mut out = String::with_capacity(trimmed.len());
    let mut rest = trimmed;
    while let Some(at) = scan::position(rest.as_bytes(), is_line_break) {
        out.push_str(&rest[..at]);
        out.push(' ');
        // `\r\n` is one break.
        let len = if rest.as_bytes()[at..].starts_with(b"\r\n") {
            2
        } else {
            1
        };
        rest = &rest[at + len..];
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// Whether `b` is `\r` or `\n`. Branch-free, so that [`scan::position`] can test many bytes at
/// once.
fn is_line_break(b: u8) -> bool {
    (b == b'\r') | (b == b'\n')
}

/// The largest index `<= at` that is a char boundary of `s`.
fn floor_char_boundary(s: &str, at: usize) -> usize {
    let mut i = at.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// `time` clamped to the years RFC 3339 can write (0001–9999), with a leap second folded into the
/// second before it, so every stored time parses back to itself.
fn storable_time(time: DateTime<Utc>) -> DateTime<Utc> {
    use chrono::Timelike;
    let min = NaiveDate::from_ymd_opt(1, 1, 1)
        .and_then(|d| d.and_hms_nano_opt(0, 0, 0, 0))
        .map(|t| t.and_utc());
    let max = NaiveDate::from_ymd_opt(9999, 12, 31)
        .and_then(|d| d.and_hms_nano_opt(23, 59, 59, 999_999_999))
        .map(|t| t.and_utc());
    let time = match (min, max) {
        (Some(min), _) if time < min => min,
        (_, Some(max)) if time > max => max,
        _ => time,
    };
    if time.nanosecond() >= 1_000_000_000 {
        time.with_nanosecond(time.nanosecond() - 1_000_000_000)
            .unwrap_or(time)
    } else {
        time
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(micros: i64) -> DateTime<Utc> {
        Utc.timestamp_micros(micros)
            .single()
            .expect("valid timestamp")
    }

    #[test]
    fn heroku_format_matches_herokus_layout() {
        let time = Utc.with_ymd_and_hms(2026, 11, 24, 22, 13, 28).unwrap()
            + chrono::Duration::microseconds(123_456);
        let mut line = LogLine::app("web.1", "listening on 5000");
        line.time = time;
        assert_eq!(
            line.heroku_format(),
            "2026-11-24T22:13:28.123456+00:00 app[web.1]: listening on 5000"
        );
        line.source = Source::Wharf;
        line.text = "State changed from starting to up".into();
        assert_eq!(
            line.heroku_format(),
            "2026-11-24T22:13:28.123456+00:00 wharf[web.1]: State changed from starting to up"
        );
        let mut router = LogLine::router("at=info method=GET path=\"/\"");
        router.time = time;
        assert_eq!(
            router.heroku_format(),
            "2026-11-24T22:13:28.123456+00:00 wharf[router]: at=info method=GET path=\"/\""
        );
    }

    #[test]
    fn normalizing_makes_one_line() {
        let line = LogLine::app("web.1", "a\r\nb\rc\nd\r\n\n").normalized();
        assert_eq!(line.text, "a b c d");
        let line = LogLine::app("web\n1", "plain").normalized();
        assert_eq!(line.process, "web 1");
        assert_eq!(line.text, "plain");
    }

    #[test]
    fn normalizing_cuts_long_text_on_a_char_boundary() {
        let line = LogLine::app("web.1", "é".repeat(MAX_TEXT_BYTES)).normalized();
        assert!(line.text.len() <= MAX_TEXT_BYTES);
        assert!(line.text.ends_with(TRUNCATED_MARK));
        let line = LogLine::app("ü".repeat(MAX_PROCESS_BYTES), "x").normalized();
        assert!(line.process.len() <= MAX_PROCESS_BYTES);
    }

    #[test]
    fn normalizing_clamps_times_rfc3339_cannot_write() {
        let mut line = LogLine::app("web.1", "x");
        line.time = DateTime::<Utc>::MIN_UTC;
        assert_eq!(
            line.normalized().time.to_rfc3339(),
            "0001-01-01T00:00:00+00:00"
        );
        let mut line = LogLine::app("web.1", "x");
        line.time = at(1_700_000_000_123_456);
        assert_eq!(line.clone().normalized().time, line.time);
    }

    #[test]
    fn event_ids_parse_as_decimal_numbers() {
        assert_eq!("42".parse::<EventId>().unwrap(), EventId::new(42));
        assert_eq!(" 7\r\n".parse::<EventId>().unwrap(), EventId::new(7));
        assert_eq!(EventId::new(1234).to_string(), "1234");
        for bad in ["", "+1", "-1", "1.5", "abc", "99999999999999999999999"] {
            let err = bad.parse::<EventId>().unwrap_err();
            assert!(err.to_string().starts_with("event id `"), "{err}");
        }
    }

    /// `one_line` as it was first written, a char at a time: the reference for the byte scan.
    fn one_line_reference(text: &str) -> String {
        let trimmed = text.trim_end_matches(['\r', '\n']);
        let mut out = String::with_capacity(trimmed.len());
        let mut chars = trimmed.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\r' => {
                    if chars.peek() == Some(&'\n') {
                        chars.next();
                    }
                    out.push(' ');
                }
                '\n' => out.push(' '),
                c => out.push(c),
            }
        }
        out
    }

    proptest::proptest! {
        #[test]
        fn one_line_matches_the_char_at_a_time_reference(
            text in proptest::prop_oneof![
                proptest::arbitrary::any::<String>(),
                // Dense in breaks, with multi-byte chars (U+2028 is not a break) next to them,
                // and long enough to cross the scan's 16-byte blocks.
                "[\r\n\r\na-zé🚢\u{2028}\u{2029}\u{85}]{0,80}",
            ],
        ) {
            let got = one_line(&text);
            proptest::prop_assert_eq!(got.as_ref(), one_line_reference(&text));
            // Borrowed exactly when nothing but a trailing break was removed.
            let unchanged = text.starts_with(got.as_ref());
            proptest::prop_assert_eq!(matches!(got, Cow::Borrowed(_)), unchanged);
        }
    }

    #[test]
    fn sources_round_trip_through_their_names() {
        for source in [Source::App, Source::Wharf, Source::Router] {
            assert_eq!(source.as_str().parse::<Source>().unwrap(), source);
        }
        assert!("heroku".parse::<Source>().is_err());
    }
}
