//! The router's handling of a request head (`wharf_router::fuzz`: hyper's parsing, then what
//! `proxy::handle` does before sending upstream: upgrade detection, request id, host and route
//! key, `headers::to_upstream`). Input: the raw bytes of an HTTP/1.x request head.
//!
//! Properties of the head sent upstream, for two client addresses (IPv4 and IPv6):
//! - no hop-by-hop header survives, nor any header the client's `Connection` names, except
//!   `Upgrade` (unchanged) with `Connection: upgrade` when the exchange switches protocols;
//! - every other header of the client's passes unchanged;
//! - it is HTTP/1.1 with an origin-form target, and exactly one `Host`: the request target's
//!   authority when it has one, else the client's `Host` (the one the request was routed by);
//! - `X-Request-Id` is one valid id (the client's when that was valid), `X-Forwarded-For` is one
//!   value that ends with the client's address (after what the client sent), and
//!   `X-Forwarded-Proto`, `X-Forwarded-Port`, `X-Request-Start` and `Via` are the router's;
//! - the route key is lowercase, without userinfo or port.

#![no_main]

use std::net::SocketAddr;

use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::Version;
use libfuzzer_sys::fuzz_target;
use wharf_router::fuzz::{self, Processed};

const HOP_BY_HOP: [&str; 7] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];
/// Headers the router sets itself (Host only from an absolute-form target).
const SET_BY_ROUTER: [&str; 7] = [
    "host",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-port",
    "x-request-id",
    "x-request-start",
    "via",
];
const PORT: u16 = 8080;
const PEERS: [(&str, &str); 2] = [
    ("203.0.113.7:40000", "203.0.113.7"),
    ("[2001:db8::5]:40000", "2001:db8::5"),
];

fuzz_target!(|data: &[u8]| {
    let Some(received) = fuzz::parse_head(data) else {
        return;
    };
    for (peer, ip) in PEERS {
        let peer: SocketAddr = peer.parse().unwrap();
        check(fuzz::process(received.clone(), peer, PORT), ip);
    }
});

fn check(out: Processed, client_ip: &str) {
    let received = &out.received.headers;
    assert!(
        valid_request_id(out.request_id.as_bytes()),
        "{:?}",
        out.request_id
    );
    if let Some(sent) = received.get("x-request-id") {
        if valid_request_id(sent.as_bytes()) {
            assert_eq!(
                &out.request_id, sent,
                "a valid client request id was replaced"
            );
        }
    }
    if out.upgrade {
        assert_eq!(out.received.version, Version::HTTP_11);
        assert!(received.contains_key("upgrade"));
    }
    let Some(key) = &out.route_key else {
        assert!(out.upstream.is_none());
        return;
    };
    assert!(!key.is_empty());
    assert!(
        !key.bytes().any(|b| b.is_ascii_uppercase()),
        "route key {key:?}"
    );
    assert!(!key.contains('@'), "route key {key:?} has userinfo");
    if key.starts_with('[') {
        assert!(key.ends_with(']'), "route key {key:?}");
    } else {
        assert!(!key.contains(':'), "route key {key:?} has a port");
    }

    let upstream = out.upstream.as_ref().unwrap();
    let sent = &upstream.headers;
    assert_eq!(upstream.version, Version::HTTP_11);
    assert!(upstream.uri.scheme().is_none() && upstream.uri.authority().is_none());

    // Hop-by-hop headers.
    for name in HOP_BY_HOP {
        match name {
            "upgrade" if out.upgrade => assert_eq!(values(sent, name), values(received, name)),
            "connection" if out.upgrade => assert_eq!(values(sent, name), [b"upgrade"]),
            _ => assert!(
                !sent.contains_key(name),
                "hop-by-hop `{name}` sent: {sent:?}"
            ),
        }
    }
    let named = connection_named(received);
    for name in &named {
        // Hop-by-hop names were checked above; the router sets its own headers again.
        if !HOP_BY_HOP.contains(&name.as_str()) && !SET_BY_ROUTER.contains(&name.as_str()) {
            assert!(
                !sent.contains_key(name),
                "`{name}` is named by Connection: {sent:?}"
            );
        }
    }
    // End-to-end headers pass as they are.
    for name in received.keys() {
        let name = name.as_str();
        if !HOP_BY_HOP.contains(&name)
            && !SET_BY_ROUTER.contains(&name)
            && !named.iter().any(|n| n == name)
        {
            assert_eq!(
                values(sent, name),
                values(received, name),
                "`{name}` changed"
            );
        }
    }

    // Host: the authority of an absolute-form target, else the client's, exactly once.
    let host = values(sent, "host");
    match out.received.uri.authority() {
        Some(authority) => assert_eq!(host, [authority.as_str().as_bytes()]),
        None => assert_eq!(host, values(received, "host"), "Host changed"),
    }
    assert_eq!(host.len(), 1, "{} Host headers sent", host.len());

    // The router's own headers.
    let forwarded_for = values(sent, "x-forwarded-for");
    assert_eq!(forwarded_for.len(), 1);
    assert_eq!(
        Some(forwarded_for[0]),
        out.forwarded_for.as_ref().map(HeaderValue::as_bytes)
    );
    let client_sent: Vec<&[u8]> = if named.iter().any(|n| n == "x-forwarded-for") {
        Vec::new()
    } else {
        values(received, "x-forwarded-for")
            .into_iter()
            .map(<[u8]>::trim_ascii)
            .filter(|v| !v.is_empty())
            .collect()
    };
    let mut expected = client_sent.join(&b", "[..]);
    if !expected.is_empty() {
        expected.extend_from_slice(b", ");
    }
    expected.extend_from_slice(client_ip.as_bytes());
    assert_eq!(forwarded_for[0], &expected[..], "X-Forwarded-For");
    assert_eq!(values(sent, "x-forwarded-proto"), [b"http"]);
    assert_eq!(
        values(sent, "x-forwarded-port"),
        [PORT.to_string().as_bytes()]
    );
    assert_eq!(values(sent, "x-request-id"), [out.request_id.as_bytes()]);
    let start = values(sent, "x-request-start");
    assert!(
        start.len() == 1 && start[0].iter().all(u8::is_ascii_digit),
        "{start:?}"
    );
    let via = values(sent, "via");
    assert_eq!(via.last(), Some(&&b"1.1 wharf"[..]));
    if !named.iter().any(|n| n == "via") {
        assert_eq!(via[..via.len() - 1], values(received, "via")[..], "Via");
    }
}

fn values<'a>(headers: &'a HeaderMap, name: &str) -> Vec<&'a [u8]> {
    headers
        .get_all(name)
        .iter()
        .map(HeaderValue::as_bytes)
        .collect()
}

/// The header names a `Connection` header lists, as a proxy must read them (RFC 9110, 7.6.1):
/// comma-separated tokens, in any case.
fn connection_named(headers: &HeaderMap) -> Vec<String> {
    let mut named = Vec::new();
    for value in headers.get_all("connection") {
        for token in value.as_bytes().split(|&b| b == b',') {
            if let Ok(name) = HeaderName::from_bytes(token.trim_ascii()) {
                named.push(name.as_str().to_owned());
            }
        }
    }
    named
}

/// What the router accepts as a client's request id: 20 to 200 of `A-Z a-z 0-9 + / = -`.
fn valid_request_id(id: &[u8]) -> bool {
    (20..=200).contains(&id.len())
        && id
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'/' | b'=' | b'-'))
}
