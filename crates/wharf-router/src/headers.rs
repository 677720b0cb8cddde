//! Header rewriting: hop-by-hop headers out both ways, the forwarding headers in, the request id.

use std::borrow::Cow;
use std::cell::RefCell;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::{BufMut, BytesMut};
use hyper::header::{
    Entry, HeaderMap, HeaderName, HeaderValue, CONNECTION, COOKIE, HOST, TE, TRAILER,
    TRANSFER_ENCODING, UPGRADE, VIA,
};
use hyper::http::request::Parts;
use hyper::Version;

pub(crate) const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub(crate) const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub(crate) const X_FORWARDED_PORT: HeaderName = HeaderName::from_static("x-forwarded-port");
pub(crate) const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
pub(crate) const X_REQUEST_START: HeaderName = HeaderName::from_static("x-request-start");
const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
const PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

const VIA_WHARF: HeaderValue = HeaderValue::from_static("1.1 wharf");
const HTTP: HeaderValue = HeaderValue::from_static("http");
const HTTPS: HeaderValue = HeaderValue::from_static("https");
const UPGRADE_TOKEN: HeaderValue = HeaderValue::from_static("upgrade");

/// Whether the request asks to switch protocols (WebSocket): HTTP/1.1 with `Upgrade` and
/// `Connection: upgrade`.
pub(crate) fn is_upgrade(version: Version, headers: &HeaderMap) -> bool {
    version == Version::HTTP_11
        && headers.contains_key(UPGRADE)
        && connection_has(headers, "upgrade")
}

fn connection_has(headers: &HeaderMap, token: &str) -> bool {
    headers.get_all(CONNECTION).iter().any(|v| {
        v.to_str()
            .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    })
}

/// The hop-by-hop headers, each a bit of the mask [`remove_hop_by_hop`] computes.
static HOP_BY_HOP: [HeaderName; 7] = [
    CONNECTION,
    KEEP_ALIVE,
    PROXY_CONNECTION,
    TE,
    TRAILER,
    TRANSFER_ENCODING,
    UPGRADE,
];
const CONNECTION_BIT: u8 = 1 << 0;
const UPGRADE_BIT: u8 = 1 << 6;

/// The bit of a hop-by-hop header in [`HOP_BY_HOP`], 0 for others. Standard names compare as
/// enum values; only the two that are not standard compare as text.
fn hop_by_hop_bit(name: &HeaderName) -> u8 {
    if name == CONNECTION {
        CONNECTION_BIT
    } else if name == TE {
        1 << 3
    } else if name == TRAILER {
        1 << 4
    } else if name == TRANSFER_ENCODING {
        1 << 5
    } else if name == UPGRADE {
        UPGRADE_BIT
    } else {
        match name.as_str() {
            "keep-alive" => 1 << 1,
            "proxy-connection" => 1 << 2,
            _ => 0,
        }
    }
}

/// Removes the hop-by-hop headers: `Connection` and the headers it names, `Keep-Alive`,
/// `Proxy-Connection`, `TE`, `Trailer`, `Transfer-Encoding` and `Upgrade`. With `upgrade`, the
/// exchange switches protocols and `Upgrade` with `Connection: upgrade` stay.
pub(crate) fn remove_hop_by_hop(headers: &mut HeaderMap, upgrade: bool) {
    // One pass over the (few) names notes which hop-by-hop headers there are, so that only
    // those are removed: each lookup or removal hashes the name. Most heads have none, or only
    // `Connection` naming no other header (`keep-alive`, `close`).
    let present = headers
        .keys()
        .fold(0, |bits, name| bits | hop_by_hop_bit(name));
    if present & CONNECTION_BIT != 0 {
        for name in connection_named(headers, upgrade) {
            headers.remove(name);
        }
    }
    for (i, name) in HOP_BY_HOP.iter().enumerate() {
        let bit = 1 << i;
        if present & bit != 0 && !(upgrade && bit == UPGRADE_BIT) {
            headers.remove(name);
        }
    }
    if upgrade {
        headers.insert(CONNECTION, UPGRADE_TOKEN);
    }
}

/// The headers present that `Connection` names, other than the hop-by-hop ones (removed
/// anyway, or kept for an upgrade) and `Host`. Allocates only when there are some, which is rare.
fn connection_named(headers: &HeaderMap, upgrade: bool) -> Vec<HeaderName> {
    let mut named = Vec::new();
    for value in headers.get_all(CONNECTION) {
        // Read as bytes: one token that isn't text (obs-text) must not hide the others.
        for token in value
            .as_bytes()
            .split(|&b| b == b',')
            .map(<[u8]>::trim_ascii)
        {
            let hop_by_hop = HOP_BY_HOP
                .iter()
                .any(|h| h.as_str().as_bytes().eq_ignore_ascii_case(token));
            // `Host` is what the request was routed by, and every HTTP/1.1 request needs one:
            // the instance must see it, whatever the client lists.
            if hop_by_hop
                || token.eq_ignore_ascii_case(b"host")
                || (upgrade && token.eq_ignore_ascii_case(b"upgrade"))
            {
                continue;
            }
            // Names are lowercase; a token names a header whatever its case.
            let Some(name) = headers
                .keys()
                .find(|name| name.as_str().as_bytes().eq_ignore_ascii_case(token))
            else {
                continue;
            };
            named.push(name.clone());
        }
    }
    named
}

/// A request id a client sent that the router keeps: 20 to 200 of `A-Z a-z 0-9 + / = -`.
pub(crate) fn valid_request_id(value: &HeaderValue) -> bool {
    let b = value.as_bytes();
    (20..=200).contains(&b.len())
        && b.iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'/' | b'=' | b'-'))
}

/// The client's request id if valid, else a new UUID v4.
pub(crate) fn request_id(headers: &HeaderMap) -> HeaderValue {
    match headers.get(X_REQUEST_ID) {
        Some(v) if valid_request_id(v) => v.clone(),
        _ => new_request_id(),
    }
}

fn new_request_id() -> HeaderValue {
    let id = uuid::Builder::from_random_bytes(rand::random()).into_uuid();
    let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
    let text = id.hyphenated().encode_lower(&mut buf);
    HeaderValue::from_str(text).unwrap_or(HeaderValue::from_static("-"))
}

/// What the forwarding headers say about the client connection.
pub(crate) struct Forwarded<'a> {
    /// The client's IP, as `X-Forwarded-For` appends it.
    pub(crate) client_ip: &'a HeaderValue,
    /// The router listener's port.
    pub(crate) port: &'a HeaderValue,
    /// The client connection is TLS (`X-Forwarded-Proto: https`).
    pub(crate) https: bool,
    pub(crate) request_id: &'a HeaderValue,
}

/// Rewrites a client's request head for the instance, in place: hop-by-hop headers out, the
/// forwarding headers, request id and `Via` in, `Host` from the URI's authority when it has one
/// (HTTP/2, or an absolute-form request), and the URI made origin-form for HTTP/1.1. Returns the
/// `X-Forwarded-For` value sent (the log's `fwd`).
pub(crate) fn to_upstream(parts: &mut Parts, upgrade: bool, fwd: &Forwarded<'_>) -> HeaderValue {
    let was_h2 = parts.version == Version::HTTP_2;
    let headers = &mut parts.headers;
    remove_hop_by_hop(headers, upgrade);

    if let Some(authority) = parts.uri.authority() {
        if let Ok(host) = HeaderValue::from_str(authority.as_str()) {
            headers.insert(HOST, host);
        }
    }
    if parts.uri.scheme().is_some() || parts.uri.authority().is_some() {
        let path = parts
            .uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| hyper::http::uri::PathAndQuery::from_static("/"));
        parts.uri = hyper::Uri::from(path);
    }
    if was_h2 {
        join_cookies(headers);
    }
    parts.version = Version::HTTP_11;

    // Room for the six added below at once, instead of growing the map on the way.
    headers.reserve(6);
    let forwarded_for = append_forwarded_for(headers, fwd.client_ip);
    headers.insert(X_FORWARDED_PROTO, if fwd.https { HTTPS } else { HTTP });
    headers.insert(X_FORWARDED_PORT, fwd.port.clone());
    headers.insert(X_REQUEST_ID, fwd.request_id.clone());
    headers.insert(X_REQUEST_START, request_start());
    headers.append(VIA, VIA_WHARF);
    forwarded_for
}

/// Rewrites an instance's response head for the client, in place.
pub(crate) fn to_client(headers: &mut HeaderMap, upgrade: bool, request_id: &HeaderValue) {
    remove_hop_by_hop(headers, upgrade);
    headers.append(VIA, VIA_WHARF);
    headers.insert(X_REQUEST_ID, request_id.clone());
}

/// `X-Forwarded-For` with the client's IP appended to what the client sent (several lines
/// joined into one).
fn append_forwarded_for(headers: &mut HeaderMap, client_ip: &HeaderValue) -> HeaderValue {
    // One lookup (hashing the name) for both the check and the insertion.
    match headers.entry(X_FORWARDED_FOR) {
        Entry::Vacant(entry) => {
            entry.insert(client_ip.clone());
            client_ip.clone()
        }
        Entry::Occupied(mut entry) => {
            let mut joined = BytesMut::with_capacity(64);
            for v in entry.iter() {
                let v = v.as_bytes().trim_ascii();
                if !v.is_empty() {
                    joined.put_slice(v);
                    joined.put_slice(b", ");
                }
            }
            joined.put_slice(client_ip.as_bytes());
            let value = HeaderValue::from_maybe_shared(joined.freeze())
                .unwrap_or_else(|_| client_ip.clone());
            entry.insert(value.clone());
            value
        }
    }
}

/// HTTP/2 may split `Cookie` into several fields; HTTP/1.1 wants one, joined with `; `.
fn join_cookies(headers: &mut HeaderMap) {
    let mut cookies = headers.get_all(COOKIE).iter();
    if cookies.next().is_none() || cookies.next().is_none() {
        return;
    }
    let mut joined = BytesMut::new();
    for v in headers.get_all(COOKIE) {
        if !joined.is_empty() {
            joined.put_slice(b"; ");
        }
        joined.put_slice(v.as_bytes());
    }
    if let Ok(v) = HeaderValue::from_maybe_shared(joined.freeze()) {
        headers.insert(COOKIE, v);
    }
}

fn epoch_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

thread_local! {
    /// The last `X-Request-Start` value made on this thread: requests in the same millisecond
    /// share it instead of each formatting (and allocating) their own.
    static REQUEST_START: RefCell<(u64, HeaderValue)> =
        const { RefCell::new((0, HeaderValue::from_static("0"))) };
}

/// `X-Request-Start`: now, in milliseconds since the Unix epoch.
fn request_start() -> HeaderValue {
    let now = epoch_millis();
    REQUEST_START.with(|last| {
        let mut last = last.borrow_mut();
        if last.0 != now {
            *last = (now, HeaderValue::from(now));
        }
        last.1.clone()
    })
}

/// The host a request is for: the URI's authority (HTTP/2, absolute-form) or else `Host`,
/// without port or trailing dot. Not yet lowercased. `None` (a 400) without a host, or with more
/// than one `Host` header (RFC 9112, 3.2): the router would route by one and the instance might
/// read another.
pub(crate) fn request_host(parts: &Parts) -> Option<&str> {
    let mut hosts = parts.headers.get_all(HOST).iter();
    let host_header = hosts.next();
    if hosts.next().is_some() {
        return None;
    }
    let raw = match parts.uri.authority() {
        Some(a) => a.as_str(),
        None => host_header?.to_str().ok()?,
    };
    // Userinfo is not allowed in `Host`, but an absolute URI could carry it.
    let raw = raw.rsplit_once('@').map_or(raw, |(_, h)| h).trim();
    let host = if let Some(rest) = raw.strip_prefix('[') {
        // [v6]:port
        &raw[..rest.find(']')? + 2]
    } else {
        raw.split_once(':').map_or(raw, |(h, _)| h)
    };
    let host = host.strip_suffix('.').unwrap_or(host);
    (!host.is_empty()).then_some(host)
}

/// The key a host is looked up by in the host table: lowercase, allocating only when needed.
pub(crate) fn route_key(host: &str) -> Cow<'_, str> {
    if host.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(host.to_ascii_lowercase())
    } else {
        Cow::Borrowed(host)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::Request;

    fn parts(req: Request<()>) -> Parts {
        req.into_parts().0
    }

    #[test]
    fn host_without_port() {
        let p = parts(
            Request::get("/")
                .header("host", "App.Example:8080")
                .body(())
                .unwrap(),
        );
        assert_eq!(request_host(&p), Some("App.Example"));
        let p = parts(
            Request::get("/")
                .header("host", "[::1]:80")
                .body(())
                .unwrap(),
        );
        assert_eq!(request_host(&p), Some("[::1]"));
        let p = parts(
            Request::get("/")
                .header("host", "a.example.")
                .body(())
                .unwrap(),
        );
        assert_eq!(request_host(&p), Some("a.example"));
        let p = parts(
            Request::get("http://h2.example:443/x")
                .header("host", "other")
                .body(())
                .unwrap(),
        );
        assert_eq!(request_host(&p), Some("h2.example"));
        let p = parts(Request::get("/").body(()).unwrap());
        assert_eq!(request_host(&p), None);
        let p = parts(Request::get("/").header("host", ":80").body(()).unwrap());
        assert_eq!(request_host(&p), None);
    }

    #[test]
    fn more_than_one_host_header_is_refused() {
        // Found by fuzz/corpus/router_head/duplicate_host: the router routed by the first Host
        // and sent both on, so the instance could read the other.
        let p = parts(
            Request::get("/")
                .header("host", "app.example.com")
                .header("host", "admin.example.com")
                .body(())
                .unwrap(),
        );
        assert_eq!(request_host(&p), None);
        let p = parts(
            Request::get("http://app.example.com/")
                .header("host", "a")
                .header("host", "b")
                .body(())
                .unwrap(),
        );
        assert_eq!(request_host(&p), None);
    }

    #[test]
    fn connection_cannot_remove_host() {
        // Found by fuzz/corpus/router_head/connection_host: `Connection: host` made the router
        // send the instance a request without the Host it was routed by.
        let mut h = HeaderMap::new();
        h.insert(HOST, HeaderValue::from_static("app.example.com"));
        h.insert(CONNECTION, HeaderValue::from_static("Host, x-other"));
        h.insert("x-other", HeaderValue::from_static("1"));
        remove_hop_by_hop(&mut h, false);
        assert_eq!(h.len(), 1, "{h:?}");
        assert_eq!(h[HOST], "app.example.com");
    }

    #[test]
    fn connection_with_non_text_bytes_still_names_headers() {
        // Found by fuzz/corpus/router_head/connection_obs_text: a `Connection` value with a
        // byte over 0x7f was skipped whole, so the headers it named went upstream.
        let mut h = HeaderMap::new();
        h.insert(
            CONNECTION,
            HeaderValue::from_bytes(b"x-secret, caf\xe9").unwrap(),
        );
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("x-kept", HeaderValue::from_static("1"));
        remove_hop_by_hop(&mut h, false);
        assert_eq!(h.len(), 1, "{h:?}");
        assert!(h.contains_key("x-kept"));
    }

    #[test]
    fn hop_by_hop_removed() {
        let mut h = HeaderMap::new();
        h.insert(CONNECTION, HeaderValue::from_static("close, X-Secret"));
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert(TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
        h.insert(UPGRADE, HeaderValue::from_static("websocket"));
        h.insert("x-kept", HeaderValue::from_static("1"));
        remove_hop_by_hop(&mut h, false);
        assert_eq!(h.len(), 1, "{h:?}");
        assert!(h.contains_key("x-kept"));
    }

    #[test]
    fn hop_by_hop_bits_follow_the_table() {
        for (i, name) in HOP_BY_HOP.iter().enumerate() {
            assert_eq!(hop_by_hop_bit(name), 1 << i, "{name}");
        }
        assert_eq!(hop_by_hop_bit(&HOST), 0);
        assert_eq!(hop_by_hop_bit(&X_FORWARDED_FOR), 0);
    }

    #[test]
    fn only_connection_keep_alive_is_cheap_and_correct() {
        let mut h = HeaderMap::new();
        h.insert(CONNECTION, HeaderValue::from_static("keep-alive"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("x-kept", HeaderValue::from_static("1"));
        remove_hop_by_hop(&mut h, false);
        assert_eq!(h.len(), 1, "{h:?}");
        // A name in `Connection` in any case, listed among others.
        let mut h = HeaderMap::new();
        h.append(CONNECTION, HeaderValue::from_static("close"));
        h.append(CONNECTION, HeaderValue::from_static(" X-Other ,te"));
        h.insert("x-other", HeaderValue::from_static("1"));
        h.insert(TE, HeaderValue::from_static("trailers"));
        h.insert("x-kept", HeaderValue::from_static("1"));
        remove_hop_by_hop(&mut h, false);
        assert_eq!(h.len(), 1, "{h:?}");
        assert!(h.contains_key("x-kept"));
    }

    #[test]
    fn upgrade_headers_kept_for_upgrades() {
        let mut h = HeaderMap::new();
        h.insert(CONNECTION, HeaderValue::from_static("keep-alive, Upgrade"));
        h.insert(UPGRADE, HeaderValue::from_static("websocket"));
        remove_hop_by_hop(&mut h, true);
        assert_eq!(h.get(CONNECTION).unwrap(), "upgrade");
        assert_eq!(h.get(UPGRADE).unwrap(), "websocket");
    }

    #[test]
    fn request_ids() {
        assert!(valid_request_id(&HeaderValue::from_static(
            "abcdefghij0123456789"
        )));
        assert!(valid_request_id(&HeaderValue::from_static(
            "a+b/c=d-e0123456789xyz"
        )));
        assert!(!valid_request_id(&HeaderValue::from_static("short")));
        assert!(!valid_request_id(&HeaderValue::from_static(
            "has space 0123456789abc"
        )));
        let generated = request_id(&HeaderMap::new());
        assert_eq!(generated.len(), 36);
        assert!(valid_request_id(&generated));
        assert_ne!(generated, request_id(&HeaderMap::new()));
    }

    #[test]
    fn forwarding_headers() {
        let mut p = parts(
            Request::get("http://app.example/x?y")
                .version(Version::HTTP_2)
                .header("x-forwarded-for", "1.2.3.4")
                .header("cookie", "a=1")
                .header("cookie", "b=2")
                .header("te", "trailers")
                .body(())
                .unwrap(),
        );
        let ip = HeaderValue::from_static("127.0.0.1");
        let port = HeaderValue::from_static("8080");
        let id = HeaderValue::from_static("abcdefghij0123456789");
        let fwd = to_upstream(
            &mut p,
            false,
            &Forwarded {
                client_ip: &ip,
                port: &port,
                https: false,
                request_id: &id,
            },
        );
        assert_eq!(fwd, "1.2.3.4, 127.0.0.1");
        assert_eq!(p.uri, "/x?y");
        assert_eq!(p.version, Version::HTTP_11);
        let h = &p.headers;
        assert_eq!(h.get(HOST).unwrap(), "app.example");
        assert_eq!(h.get(X_FORWARDED_FOR).unwrap(), "1.2.3.4, 127.0.0.1");
        assert_eq!(h.get(X_FORWARDED_PROTO).unwrap(), "http");
        assert_eq!(h.get(X_FORWARDED_PORT).unwrap(), "8080");
        assert_eq!(h.get(X_REQUEST_ID).unwrap(), "abcdefghij0123456789");
        assert_eq!(h.get(VIA).unwrap(), "1.1 wharf");
        assert_eq!(h.get(COOKIE).unwrap(), "a=1; b=2");
        assert!(!h.contains_key(TE));
        let start: u64 = h
            .get(X_REQUEST_START)
            .unwrap()
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(start > 1_600_000_000_000);
    }
}
