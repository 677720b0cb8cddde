//! The router log line of one request, in Heroku's `key=value` form:
//!
//! ```text
//! at=info method=GET path="/x?y" host=app.example request_id=… fwd="1.2.3.4" dyno=web.2 connect=0ms service=3ms status=200 bytes=1234 protocol=http
//! at=error code=H14 desc="No web instances running" method=GET path="/" host=app.example request_id=… fwd="1.2.3.4" dyno= connect= service= status=503 bytes=120 protocol=http
//! ```

use std::fmt::Write;
use std::time::Instant;

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
        let _ = write!(s, "{}ms", connect.as_millis());
    }
    s.push_str(" service=");
    if let Some(sent) = ex.sent {
        let _ = write!(s, "{}ms", now.saturating_duration_since(sent).as_millis());
    }
    let _ = write!(s, " status={} bytes={} protocol=http", ex.status, ex.bytes);
    s
}

/// Appends bytes of a header or URI (visible ASCII, as hyper accepted them) with `"` and `\`
/// escaped, anything else as `\xNN`, so a value can't end its quotes or the line early.
fn push_quoted(s: &mut String, bytes: &[u8]) {
    for &b in bytes {
        match b {
            b'"' => s.push_str("\\\""),
            b'\\' => s.push_str("\\\\"),
            0x20..=0x7e => s.push(char::from(b)),
            _ => {
                let _ = write!(s, "\\x{b:02x}");
            }
        }
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
    }
}
