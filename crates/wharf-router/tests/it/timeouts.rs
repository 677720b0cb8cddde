//! First-byte and idle timeouts.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper::Response;
use wharf_router::RouterConfig;

use crate::support::{raw_exchange, wait_until, TestRouter, TestUpstream, HOST};

#[tokio::test]
async fn no_response_head_within_the_first_byte_timeout_gets_504() {
    // An instance that never answers.
    let web = TestUpstream::start(Arc::new(|_req| {
        Box::pin(async {
            std::future::pending::<()>().await;
            unreachable!()
        })
    }))
    .await;
    let config = RouterConfig {
        first_byte_timeout: Duration::from_millis(300),
        ..RouterConfig::default()
    };
    let router = TestRouter::with(config, true).await;
    router.route(&[&web]);

    let started = Instant::now();
    let response = router
        .client()
        .get(router.url(HOST, "/slow"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 504);
    assert!(started.elapsed() >= Duration::from_millis(300));
    let body = response.text().await.unwrap();
    assert!(body.contains("did not answer in time"), "{body}");

    let line = wait_until("the H12 log line", Duration::from_secs(10), || async {
        router.log_lines().await.pop()
    })
    .await;
    assert!(
        line.starts_with(r#"at=error code=H12 desc="Request timeout" method=GET path="/slow""#),
        "{line}"
    );
    assert!(line.contains(" dyno=web.1 "), "{line}");
    assert!(line.contains(" status=504 "), "{line}");

    router.stop().await;
    web.stop().await;
}

#[tokio::test]
async fn a_stalled_response_body_closes_the_connection_after_the_idle_timeout() {
    // Sends a head and one chunk, then nothing more.
    let web = TestUpstream::start(Arc::new(|_req| {
        Box::pin(async {
            let chunks = futures_util::stream::once(async {
                Ok::<_, hyper::Error>(Frame::data(Bytes::from_static(b"first")))
            })
            .chain(futures_util::stream::pending());
            Response::new(BodyExt::boxed(StreamBody::new(chunks)))
        })
    }))
    .await;
    let config = RouterConfig {
        idle_timeout: Duration::from_millis(300),
        ..RouterConfig::default()
    };
    let router = TestRouter::with(config, false).await;
    router.route(&[&web]);

    let mut response = router
        .client()
        .get(router.url(HOST, "/stream"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.chunk().await.unwrap().unwrap(), "first");
    let started = Instant::now();
    let end = tokio::time::timeout(Duration::from_secs(10), response.chunk())
        .await
        .expect("the router closes the stalled connection");
    assert!(end.is_err(), "the body ends with an error: {end:?}");
    assert!(started.elapsed() >= Duration::from_millis(200));

    router.stop().await;
    web.stop().await;
}

#[tokio::test]
async fn a_slow_request_head_is_cut_off() {
    let config = RouterConfig {
        idle_timeout: Duration::from_millis(300),
        ..RouterConfig::default()
    };
    let router = TestRouter::with(config, false).await;
    let started = Instant::now();
    // Half a head, never finished: the router closes the connection.
    let answer = raw_exchange(
        router.addr,
        b"GET / HTTP/1.1\r\nHost: app.exa",
        Duration::from_secs(10),
    )
    .await;
    assert!(started.elapsed() < Duration::from_secs(9), "{answer}");
    router.stop().await;
}

#[tokio::test]
async fn a_stalled_upload_gets_408_after_the_idle_timeout() {
    // The instance reads the body to its end before it answers; the client never finishes it.
    let web = TestUpstream::start(Arc::new(|req: hyper::Request<hyper::body::Incoming>| {
        Box::pin(async move {
            let _ = req.into_body().collect().await;
            crate::support::text("never")
        })
    }))
    .await;
    let config = RouterConfig {
        idle_timeout: Duration::from_millis(300),
        ..RouterConfig::default()
    };
    let router = TestRouter::with(config, true).await;
    router.route(&[&web]);
    let started = Instant::now();
    let answer = raw_exchange(
        router.addr,
        format!(
            "POST /upload HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: 1000000\r\n\r\nonly ten b"
        )
        .as_bytes(),
        Duration::from_secs(10),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(started.elapsed() >= Duration::from_millis(300), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(9), "{answer}");
    let line = wait_until("the H28 log line", Duration::from_secs(10), || async {
        router.log_lines().await.pop()
    })
    .await;
    assert!(
        line.starts_with(r#"at=error code=H28 desc="Client Connection Idle" method=POST"#),
        "{line}"
    );
    assert!(line.contains(" status=408 "), "{line}");
    router.stop().await;
    web.stop().await;
}
