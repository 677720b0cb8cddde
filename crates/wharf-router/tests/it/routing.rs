//! Routing by host, and the router's own answers.

use std::time::Duration;

use wharf_core::backend::Routes;

use crate::support::{raw_exchange, route, TestRouter, TestUpstream, APP_ID, HOST};

#[tokio::test]
async fn hostnames_route_to_their_app_whatever_the_port_or_case() {
    let web = TestUpstream::named("app").await;
    let other = TestUpstream::named("other").await;
    let router = TestRouter::start().await;
    router.router.set_hosts(vec![
        (HOST.to_owned(), route(false)),
        // A custom domain of the same app.
        ("www.app.example".to_owned(), route(false)),
        (
            "other.example".to_owned(),
            wharf_router::AppRoute {
                app_id: "app-2".into(),
                app_name: "other".into(),
                maintenance: false,
                https_redirect: false,
            },
        ),
    ]);
    router.router.set(APP_ID, vec![web.upstream("web.1")]);
    router.router.set("app-2", vec![other.upstream("web.1")]);
    let client = router.client();

    for (host, body) in [
        (HOST, "app"),
        ("www.app.example", "app"),
        ("other.example", "other"),
    ] {
        // The URL's port ends up in Host (`app.example:PORT`); it is ignored.
        let response = client.get(router.url(host, "/")).send().await.unwrap();
        assert_eq!(response.status(), 200, "{host}");
        assert_eq!(response.text().await.unwrap(), body, "{host}");
    }
    assert_eq!(web.requests(), 2);
    assert_eq!(other.requests(), 1);

    // Host is case-insensitive.
    let answer = raw_exchange(
        router.addr,
        b"GET / HTTP/1.1\r\nHost: APP.Example:80\r\nConnection: close\r\n\r\n",
        Duration::from_secs(10),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("app"), "{answer}");

    router.stop().await;
    web.stop().await;
    other.stop().await;
}

#[tokio::test]
async fn unknown_host_gets_404_as_html_or_json() {
    let router = TestRouter::start().await;
    router.route(&[]);
    let client = router.client();

    let response = client
        .get(router.url("other.example", "/"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    assert_eq!(
        response.headers()["content-type"],
        "text/html; charset=utf-8"
    );
    assert!(response.headers().contains_key("x-request-id"));
    let body = response.text().await.unwrap();
    assert!(body.contains("<title>No such app</title>"), "{body}");

    let response = client
        .get(router.url("other.example", "/"))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    assert_eq!(response.headers()["content-type"], "application/json");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["id"], "not_found");
    assert!(body["message"].as_str().unwrap().contains("no app"));

    router.stop().await;
}

#[tokio::test]
async fn app_without_instances_gets_503() {
    let router = TestRouter::start().await;
    router.route(&[]);
    let response = router
        .client()
        .get(router.url(HOST, "/"))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["id"], "no_web_instance");
    assert_eq!(
        body["message"],
        "No web instance is up to handle this request."
    );
    router.stop().await;
}

#[tokio::test]
async fn app_in_maintenance_gets_503_with_retry_after() {
    let web = TestUpstream::named("app").await;
    let router = TestRouter::start().await;
    router.route(&[&web]);
    router
        .router
        .set_hosts(vec![(HOST.to_owned(), route(true))]);

    let response = router
        .client()
        .get(router.url(HOST, "/"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key("retry-after"));
    let body = response.text().await.unwrap();
    assert!(body.contains("maintenance"), "{body}");
    assert_eq!(web.requests(), 0, "maintenance never reaches an instance");

    // Out of maintenance: served again.
    router
        .router
        .set_hosts(vec![(HOST.to_owned(), route(false))]);
    let response = router
        .client()
        .get(router.url(HOST, "/"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    router.stop().await;
    web.stop().await;
}

#[tokio::test]
async fn request_without_host_gets_400() {
    let router = TestRouter::start().await;
    let answer = raw_exchange(
        router.addr,
        b"GET / HTTP/1.0\r\n\r\n",
        Duration::from_secs(10),
    )
    .await;
    assert!(answer.contains(" 400 "), "{answer}");
    router.stop().await;
}

#[tokio::test]
async fn oversized_request_head_gets_431() {
    let web = TestUpstream::named("app").await;
    let router = TestRouter::start().await;
    router.route(&[&web]);
    let big = "x".repeat(40 * 1024);
    let request = format!("GET / HTTP/1.1\r\nHost: {HOST}\r\nX-Big: {big}\r\n\r\n");
    let answer = raw_exchange(router.addr, request.as_bytes(), Duration::from_secs(10)).await;
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
    assert_eq!(web.requests(), 0);

    // A head under the limit passes.
    let ok = "x".repeat(16 * 1024);
    let response = router
        .client()
        .get(router.url(HOST, "/"))
        .header("x-big", ok)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    router.stop().await;
    web.stop().await;
}

/// Request smuggling: the router and the app must never disagree on where a request ends.
/// Two `Content-Length`s, or a transfer coding other than chunked last, are refused with 400 and
/// reach no app. With both `Content-Length` and `Transfer-Encoding`, hyper follows
/// `Transfer-Encoding`, drops `Content-Length` (the app never sees both) and closes the
/// connection after the answer: a request hidden behind the body is never read.
#[tokio::test]
async fn ambiguous_request_lengths_smuggle_nothing() {
    let web = TestUpstream::named("app").await;
    let router = TestRouter::start().await;
    router.route(&[&web]);
    for (what, head) in [
        (
            "two Content-Lengths",
            "POST / HTTP/1.1\r\nHost: HOST\r\nContent-Length: 4\r\nContent-Length: 40\r\n\r\nabcd",
        ),
        (
            "a transfer coding other than chunked last",
            "POST / HTTP/1.1\r\nHost: HOST\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
        ),
    ] {
        let request = head.replace("HOST", HOST);
        let answer = raw_exchange(router.addr, request.as_bytes(), Duration::from_secs(10)).await;
        assert!(answer.starts_with("HTTP/1.1 400"), "{what}: {answer}");
    }
    assert_eq!(web.requests(), 0, "no refused request reached the app");

    let smuggling = format!(
        "POST / HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n\
         0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: {HOST}\r\n\r\n"
    );
    let answer = raw_exchange(router.addr, smuggling.as_bytes(), Duration::from_secs(10)).await;
    assert_eq!(
        answer.matches("HTTP/1.1 ").count(),
        1,
        "one answer: {answer}"
    );
    assert!(
        answer.to_ascii_lowercase().contains("connection: close"),
        "{answer}"
    );
    assert_eq!(web.requests(), 1, "only the POST reached the app");
    let seen = web.last();
    assert_eq!(seen.uri.path(), "/");
    assert!(
        !seen.headers.contains_key("content-length"),
        "the app never sees both lengths: {:?}",
        seen.headers
    );
    router.stop().await;
    web.stop().await;
}
