//! The router's own answers: a small HTML page, or `{"id": …, "message": …}` for clients whose
//! `Accept` prefers JSON. Every page is a constant, so serving one allocates nothing.

use bytes::Bytes;
use hyper::header::HeaderValue;
use hyper::StatusCode;

/// Seconds a maintenance page asks clients to wait (`Retry-After`).
pub(crate) const MAINTENANCE_RETRY_AFTER: HeaderValue = HeaderValue::from_static("60");

pub(crate) const HTML: HeaderValue = HeaderValue::from_static("text/html; charset=utf-8");
pub(crate) const JSON: HeaderValue = HeaderValue::from_static("application/json");

/// One of the router's own answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Page {
    BadRequest,
    NotFound,
    Maintenance,
    NoInstance,
    Unreachable,
    BadGateway,
    Timeout,
    /// The client stopped sending its request body.
    ClientTimeout,
    /// Never seen by the client (it is gone); only its status is logged.
    ClientClosed,
}

macro_rules! html {
    ($title:literal, $message:literal) => {
        concat!(
            "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>",
            $title,
            "</title><style>body{font-family:sans-serif;margin:4em auto;max-width:36em;\
             color:#333}h1{font-size:1.4em}</style></head>\n<body><h1>",
            $title,
            "</h1><p>",
            $message,
            "</p></body></html>\n"
        )
    };
}

macro_rules! json {
    ($id:literal, $message:literal) => {
        concat!("{\"id\":\"", $id, "\",\"message\":\"", $message, "\"}\n")
    };
}

macro_rules! page {
    ($status:expr, $id:literal, $title:literal, $message:literal) => {
        ($status, html!($title, $message), json!($id, $message))
    };
}

impl Page {
    fn parts(self) -> (StatusCode, &'static str, &'static str) {
        match self {
            Page::BadRequest => page!(
                StatusCode::BAD_REQUEST,
                "bad_request",
                "Bad request",
                "The request does not say which host it is for."
            ),
            Page::NotFound => page!(
                StatusCode::NOT_FOUND,
                "not_found",
                "No such app",
                "There is no app at this address."
            ),
            Page::Maintenance => page!(
                StatusCode::SERVICE_UNAVAILABLE,
                "maintenance",
                "Offline for maintenance",
                "This app is undergoing maintenance. Please check back soon."
            ),
            Page::NoInstance => page!(
                StatusCode::SERVICE_UNAVAILABLE,
                "no_web_instance",
                "Application unavailable",
                "No web instance is up to handle this request."
            ),
            Page::Unreachable => page!(
                StatusCode::SERVICE_UNAVAILABLE,
                "unreachable",
                "Application unavailable",
                "The app's web instances could not be reached."
            ),
            Page::BadGateway => page!(
                StatusCode::BAD_GATEWAY,
                "bad_gateway",
                "Application error",
                "The app's web instance closed the connection without a complete response."
            ),
            Page::Timeout => page!(
                StatusCode::GATEWAY_TIMEOUT,
                "timeout",
                "Application timeout",
                "The app's web instance did not answer in time."
            ),
            Page::ClientTimeout => page!(
                StatusCode::REQUEST_TIMEOUT,
                "client_timeout",
                "Request timeout",
                "The request body stopped arriving before it was complete."
            ),
            Page::ClientClosed => (
                // nginx's "client closed request", as Heroku logs H27.
                StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
                "",
                "",
            ),
        }
    }

    pub(crate) fn status(self) -> StatusCode {
        self.parts().0
    }

    /// The page's body and content type, HTML or JSON.
    pub(crate) fn render(self, json: bool) -> (Bytes, HeaderValue) {
        let (_, html, body) = self.parts();
        if json {
            (Bytes::from_static(body.as_bytes()), JSON)
        } else {
            (Bytes::from_static(html.as_bytes()), HTML)
        }
    }
}

/// Whether the request's `Accept` ranks JSON (`application/json`, `application/*+json`) above
/// HTML. Ties, wildcards alone and a missing header give HTML.
pub(crate) fn prefers_json(accept: Option<&HeaderValue>) -> bool {
    // (q in thousandths, specificity): a more specific match ranks above a wildcard.
    let mut json = (0u16, 0u8);
    let mut html = (0u16, 0u8);
    if let Some(value) = accept.and_then(|v| v.to_str().ok()) {
        for range in value.split(',') {
            let mut params = range.split(';');
            let media = params.next().unwrap_or("").trim();
            let q = params
                .filter_map(|p| p.trim().strip_prefix("q="))
                .next()
                .map_or(1000, parse_q);
            let (kind, sub) = media.split_once('/').unwrap_or((media, ""));
            let is_json = kind.eq_ignore_ascii_case("application")
                && (sub.eq_ignore_ascii_case("json")
                    || sub.len() > 5 && sub[sub.len() - 5..].eq_ignore_ascii_case("+json"));
            let is_html = kind.eq_ignore_ascii_case("text") && sub.eq_ignore_ascii_case("html");
            let json_match = if is_json {
                Some(2)
            } else if kind.eq_ignore_ascii_case("application") && sub == "*" {
                Some(1)
            } else if kind == "*" {
                Some(0)
            } else {
                None
            };
            let html_match = if is_html {
                Some(2)
            } else if kind.eq_ignore_ascii_case("text") && sub == "*" {
                Some(1)
            } else if kind == "*" {
                Some(0)
            } else {
                None
            };
            // The most specific matching range decides q, as RFC 9110 says.
            if let Some(s) = json_match {
                if s > json.1 || (s == json.1 && json.0 == 0) {
                    json = (q, s);
                }
            }
            if let Some(s) = html_match {
                if s > html.1 || (s == html.1 && html.0 == 0) {
                    html = (q, s);
                }
            }
        }
    }
    json.0 > html.0 || (json.0 == html.0 && json.0 > 0 && json.1 > html.1)
}

/// `q` as thousandths; anything unreadable counts as 0.
fn parse_q(q: &str) -> u16 {
    let q = q.trim();
    let (int, frac) = q.split_once('.').unwrap_or((q, ""));
    let whole = match int {
        "1" => 1000,
        "0" | "" => 0,
        _ => return 0,
    };
    let mut thousandths = 0u16;
    let mut scale = 100u16;
    for b in frac.bytes().take(3) {
        if !b.is_ascii_digit() {
            return 0;
        }
        thousandths += u16::from(b - b'0') * scale;
        scale /= 10;
    }
    (whole + thousandths).min(1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json_for(accept: &str) -> bool {
        prefers_json(Some(&HeaderValue::from_str(accept).unwrap()))
    }

    #[test]
    fn json_only_when_preferred() {
        assert!(json_for("application/json"));
        assert!(json_for("application/vnd.heroku+json; version=3"));
        assert!(json_for("text/html;q=0.5, application/json"));
        assert!(json_for("application/json, */*;q=0.1"));
        assert!(!prefers_json(None));
        assert!(!json_for("*/*"));
        assert!(!json_for("text/html, application/json"));
        assert!(!json_for(
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
        ));
        assert!(!json_for("application/json;q=0, */*"));
    }

    #[test]
    fn q_values() {
        assert_eq!(parse_q("1"), 1000);
        assert_eq!(parse_q("0.5"), 500);
        assert_eq!(parse_q("0.125"), 125);
        assert_eq!(parse_q("1.0"), 1000);
        assert_eq!(parse_q("x"), 0);
    }

    #[test]
    fn pages_are_well_formed() {
        for page in [
            Page::BadRequest,
            Page::NotFound,
            Page::Maintenance,
            Page::NoInstance,
            Page::Unreachable,
            Page::BadGateway,
            Page::Timeout,
        ] {
            let (json, _) = page.render(true);
            assert!(json.starts_with(b"{\"id\":\""), "{page:?}");
            let (html, _) = page.render(false);
            assert!(html.starts_with(b"<!DOCTYPE html>"), "{page:?}");
        }
    }
}
