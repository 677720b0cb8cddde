//! The router log line of one request, in Heroku's `key=value` form:
//!
//! ```text
//! at=info method=GET path="/x?y" host=app.example request_id=… fwd="1.2.3.4" dyno=web.2 connect=0ms service=3ms status=200 bytes=1234 protocol=http
//! at=error code=H14 desc="No web instances running" method=GET path="/" host=app.example request_id=… fwd="1.2.3.4" dyno= connect= service= status=503 bytes=120 protocol=http
//! ```

use std::fmt::Write;
use std::time::{Duration, Instant};

use crate::exchange::Exchange;

/// Formats the line, once, when the request has finished.
pub(crate) fn line(ex: &Exchange, now: Instant) -> String {
    let mut s = String::with_capacity(256);
    match ex.failure {
        None => s.push_str("at=info"),
        Some(failure) => {
            s.push_str(if failure.is_info() {
                "at=info code="
            } else {
                "at=error code="
            });
            s.push_str(failure.code());
            let _ = write!(s, " desc=\"{failure}\"");
        }
    }
    s.push_str(" method=");
    s.push_str(ex.method.as_str());
    s.push_str(" path=\"");
    let path = ex
        .uri
        .path_and_query()
        .map_or_else(|| ex.uri.path(), |p| p.as_str());
    push_quoted(&mut s, path.as_bytes());
    s.push_str("\" host=");
    s.push_str(&ex.site.host);
    s.push_str(" request_id=");
    push_quoted(&mut s, ex.request_id.as_bytes());
    s.push_str(" fwd=\"");
    push_quoted(&mut s, ex.fwd.as_bytes());
    s.push_str("\" dyno=");
    if let Some(in_flight) = &ex.in_flight {
        s.push_str(&in_flight.upstream().dyno);
    }
    s.push_str(" connect=");
    if let Some(connect) = ex.connect {
        push_millis(&mut s, connect);
    }
    s.push_str(" service=");
    if let Some(sent) = ex.sent {
        push_millis(&mut s, now.saturating_duration_since(sent));
    }
    s.push_str(" status=");
    push_u64(&mut s, u64::from(ex.status));
    s.push_str(" bytes=");
    push_u64(&mut s, ex.bytes);
    s.push_str(if ex.https {
        " protocol=https"
    } else {
        " protocol=http"
    });
    s
}

/// `12ms`: whole milliseconds.
fn push_millis(s: &mut String, d: Duration) {
    push_u64(s, u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    s.push_str("ms");
}

/// A number in decimal, without the formatting machinery `write!` goes through (this runs for
/// every request).
fn push_u64(s: &mut String, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + u8::try_from(n % 10).unwrap_or(0);
        n /= 10;
        if n == 0 {
            break;
        }
    }
    // Digits are ASCII.
    s.push_str(std::str::from_utf8(&digits[at..]).unwrap_or_default());
}

/// Whether a byte goes into a quoted value as it is.
fn plain(b: u8) -> bool {
    matches!(b, 0x20..=0x7e) && b != b'"' && b != b'\\'
}

/// Appends bytes of a header or URI (visible ASCII, as hyper accepted them) with `"` and `\`
/// escaped, anything else as `\xNN`, so a value can't end its quotes or the line early. Runs of
/// plain bytes (usually the whole value) are copied at once.
fn push_quoted(s: &mut String, mut bytes: &[u8]) {
    while !bytes.is_empty() {
        let run = bytes.iter().position(|&b| !plain(b)).unwrap_or(bytes.len());
        let (plain_run, rest) = bytes.split_at(run);
        // Plain bytes are ASCII, so always UTF-8.
        s.push_str(std::str::from_utf8(plain_run).unwrap_or_default());
        let Some((&b, rest)) = rest.split_first() else {
            break;
        };
        match b {
            b'"' => s.push_str("\\\""),
            b'\\' => s.push_str("\\\\"),
            _ => {
                let _ = write!(s, "\\x{b:02x}");
            }
        }
        bytes = rest;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        let mut s = String::new();
        push_quoted(&mut s, b"/a\"b\\c\x01");
        assert_eq!(s, r#"/a\"b\\c\x01"#);
        let mut s = String::new();
        push_quoted(&mut s, b"\xff/plain\x7f");
        assert_eq!(s, r#"\xff/plain\x7f"#);
    }

    #[test]
    fn numbers() {
        let mut s = String::new();
        for n in [0, 7, 10, 200, 1234567890, u64::MAX] {
            push_u64(&mut s, n);
            s.push(' ');
        }
        assert_eq!(s, "0 7 10 200 1234567890 18446744073709551615 ");
    }
}
