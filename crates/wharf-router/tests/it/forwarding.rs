//! What the instance and the client see of each other's headers.

use crate::support::{TestRouter, TestUpstream, HOST};

#[tokio::test]
async fn forwarding_headers_request_id_and_via() {
    let web = TestUpstream::start(std::sync::Arc::new(|_req| {
        Box::pin(async {
            let mut response = crate::support::text("ok");
            let headers = response.headers_mut();
            headers.insert("connection", "x-upstream-private".parse().unwrap());
            headers.insert("x-upstream-private", "1".parse().unwrap());
            headers.insert("keep-alive", "timeout=5".parse().unwrap());
            headers.insert("x-app", "1".parse().unwrap());
            response
        })
    }))
    .await;
    let router = TestRouter::start().await;
    router.route(&[&web]);
    let client = router.client();
    let port = router.addr.port().to_string();

    // A client id that is valid is kept; the client's X-Forwarded-For is extended.
    let response = client
        .get(router.url(HOST, "/path?q=1"))
        .header("x-request-id", "client-id-0123456789abcdef")
        .header("x-forwarded-for", "203.0.113.7")
        .header("x-forwarded-proto", "https")
        .header("connection", "x-private")
        .header("x-private", "secret")
        .header("te", "trailers")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let h = response.headers();
    assert_eq!(h["x-request-id"], "client-id-0123456789abcdef");
    assert_eq!(h["via"], "1.1 wharf");
    assert_eq!(h["x-app"], "1");
    assert!(!h.contains_key("x-upstream-private"), "{h:?}");
    assert!(!h.contains_key("keep-alive"), "{h:?}");

    let seen = web.last();
    assert_eq!(seen.uri, "/path?q=1");
    let h = &seen.headers;
    assert_eq!(h["host"], format!("{HOST}:{port}"));
    assert_eq!(h["x-forwarded-for"], "203.0.113.7, 127.0.0.1");
    assert_eq!(h["x-forwarded-proto"], "http");
    assert_eq!(h["x-forwarded-port"], port.as_str());
    assert_eq!(h["x-request-id"], "client-id-0123456789abcdef");
    assert_eq!(h["via"], "1.1 wharf");
    let start: u64 = h["x-request-start"].to_str().unwrap().parse().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    assert!(start <= now && now - start < 60_000, "{start} vs {now}");
    assert!(!h.contains_key("x-private"), "{h:?}");
    assert!(!h.contains_key("te"), "{h:?}");
    assert!(!h.contains_key("connection"), "{h:?}");

    // An invalid id (too short) is replaced by a new UUID, sent both ways.
    let response = client
        .get(router.url(HOST, "/"))
        .header("x-request-id", "short")
        .send()
        .await
        .unwrap();
    let id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(id.len(), 36, "{id}");
    assert_ne!(id, "short");
    assert_eq!(web.last().headers["x-request-id"], id.as_str());
    assert_eq!(web.last().headers["x-forwarded-for"], "127.0.0.1");

    // Without one, a new one too, different each time.
    let first = client.get(router.url(HOST, "/")).send().await.unwrap();
    let second = client.get(router.url(HOST, "/")).send().await.unwrap();
    assert_ne!(
        first.headers()["x-request-id"],
        second.headers()["x-request-id"]
    );

    router.stop().await;
    web.stop().await;
}
