//! A way in for fuzzing, not part of the router's API: one HTTP/1.1 request head, from the bytes
//! a client sends to the head the router sends to the instance. [`parse_head`] stands in for
//! hyper's HTTP/1.1 server (which does this parsing in the real router, privately); [`process`]
//! makes the calls `proxy::handle` makes, in the same order, with the same functions.
//! `fuzz/fuzz_targets/router_head.rs` checks what comes out.

use std::net::SocketAddr;

use bytes::Bytes;
use hyper::header::{HeaderName, HeaderValue, CONTENT_LENGTH, TRANSFER_ENCODING};
use hyper::http::request::Parts;
use hyper::{Method, Request, Uri, Version};

use crate::headers::{self, Forwarded};

/// Header lines hyper reads in one head: its default, which the router keeps.
const MAX_HEADERS: usize = 100;
/// The longest request target hyper accepts.
const MAX_URI_LEN: usize = (u16::MAX - 1) as usize;

/// What the router made of one request head.
#[derive(Debug)]
pub struct Processed {
    /// The head as hyper hands it to the router.
    pub received: Parts,
    /// The exchange switches protocols (a WebSocket handshake).
    pub upgrade: bool,
    /// The request id the router logs and sends both ways.
    pub request_id: HeaderValue,
    /// The key the app is looked up by in the host table; `None` when the router answers 400.
    pub route_key: Option<String>,
    /// The head sent to the instance, if the request was routed (to an app assumed to exist).
    pub upstream: Option<Parts>,
    /// The `X-Forwarded-For` value `to_upstream` returned (the router log's `fwd`).
    pub forwarded_for: Option<HeaderValue>,
}

/// Reads `bytes` as a request head the way hyper's HTTP/1 server does: `httparse` with hyper's
/// default settings, then hyper's checks of the message framing (`Transfer-Encoding` must end in
/// `chunked` and needs HTTP/1.1; `Content-Length` must be digits and agree with itself, and is
/// dropped when `Transfer-Encoding` is present). `None` where hyper answers 400 (or waits for
/// more bytes) before the router sees the request.
pub fn parse_head(bytes: &[u8]) -> Option<Parts> {
    // Parsed from a `Bytes` so that values can share it, as in hyper.
    let head = Bytes::copy_from_slice(bytes);
    let mut lines = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut lines);
    match req.parse(&head) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) | Err(_) => return None,
    }
    let path = req.path?;
    if path.len() > MAX_URI_LEN {
        return None;
    }
    let method = Method::from_bytes(req.method?.as_bytes()).ok()?;
    let uri = Uri::from_maybe_shared(head.slice_ref(path.as_bytes())).ok()?;
    let version = match req.version? {
        1 => Version::HTTP_11,
        _ => Version::HTTP_10,
    };

    let mut request = Request::new(());
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.version_mut() = version;
    let headers = request.headers_mut();
    let (mut te, mut te_chunked, mut content_length) = (false, false, None);
    for line in req.headers.iter() {
        let name = HeaderName::from_bytes(line.name.as_bytes()).ok()?;
        let value = HeaderValue::from_maybe_shared(head.slice_ref(line.value)).ok()?;
        if name == TRANSFER_ENCODING {
            if version != Version::HTTP_11 {
                return None;
            }
            te = true;
            if content_length.take().is_some() {
                headers.remove(CONTENT_LENGTH);
            }
            te_chunked = value
                .to_str()
                .ok()
                .and_then(|v| v.rsplit(',').next())
                .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"));
        } else if name == CONTENT_LENGTH {
            if te {
                continue;
            }
            let n = digits(value.as_bytes())?;
            match content_length {
                Some(prev) if prev != n => return None,
                Some(_) => continue,
                None => content_length = Some(n),
            }
        }
        headers.append(name, value);
    }
    if te && !te_chunked {
        return None;
    }
    Some(request.into_parts().0)
}

/// A `Content-Length` value as hyper reads it: ASCII digits only, no sign, no overflow.
fn digits(bytes: &[u8]) -> Option<u64> {
    if bytes.is_empty() {
        return None;
    }
    bytes.iter().try_fold(0u64, |n, &b| {
        let digit = char::from(b).to_digit(10)?;
        n.checked_mul(10)?.checked_add(u64::from(digit))
    })
}

/// The router's work on one request head from `peer`, received on a listener at `port`, as in
/// `proxy::handle` up to the point where the head goes upstream. The host table is taken to
/// have an app for whatever host the request names.
pub fn process(received: Parts, peer: SocketAddr, port: u16) -> Processed {
    let client_ip = crate::serve::client_ip(peer);
    let port = HeaderValue::from(port);
    let mut parts = received.clone();
    let upgrade = headers::is_upgrade(parts.version, &parts.headers);
    let request_id = headers::request_id(&parts.headers);
    let route_key = headers::request_host(&parts).map(|h| headers::route_key(h).into_owned());
    let (upstream, forwarded_for) = if route_key.is_some() {
        let fwd = headers::to_upstream(
            &mut parts,
            upgrade,
            &Forwarded {
                client_ip: &client_ip,
                port: &port,
                https: false,
                request_id: &request_id,
            },
        );
        (Some(parts), Some(fwd))
    } else {
        (None, None)
    };
    Processed {
        received,
        upgrade,
        request_id,
        route_key,
        upstream,
        forwarded_for,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(text: &str) -> Option<Parts> {
        parse_head(text.as_bytes())
    }

    #[test]
    fn parses_like_hyper() {
        let p = head("GET /x?y HTTP/1.1\r\nHost: a.example\r\nX-A: 1\r\nX-A: 2\r\n\r\n").unwrap();
        assert_eq!(
            (p.method, p.uri.to_string()),
            (Method::GET, "/x?y".to_owned())
        );
        assert_eq!(p.version, Version::HTTP_11);
        assert_eq!(p.headers.get_all("x-a").iter().count(), 2);
        // Incomplete, obs-fold, bad framing: hyper answers these itself.
        assert!(head("GET / HTTP/1.1\r\nHost: a\r\n").is_none());
        assert!(head("GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n").is_none());
        assert!(head("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n").is_none());
        assert!(head("POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n").is_none());
        assert!(
            head("POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n").is_none()
        );
        assert!(head("POST / HTTP/1.1\r\nContent-Length: +1\r\n\r\n").is_none());
        let p = head("POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n")
            .unwrap();
        assert!(!p.headers.contains_key(CONTENT_LENGTH));
    }

    #[test]
    fn processes_like_the_proxy() {
        let received =
            head("GET http://App.Example/p HTTP/1.1\r\nHost: other\r\nConnection: close\r\n\r\n")
                .unwrap();
        let out = process(received, "[::ffff:192.0.2.1]:5000".parse().unwrap(), 8080);
        assert_eq!(out.route_key.as_deref(), Some("app.example"));
        let upstream = out.upstream.unwrap();
        assert_eq!(upstream.uri, "/p");
        assert_eq!(upstream.headers["host"], "App.Example");
        assert_eq!(upstream.headers["x-forwarded-for"], "192.0.2.1");
        assert!(!upstream.headers.contains_key("connection"));
    }
}
