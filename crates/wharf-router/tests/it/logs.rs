//! Router lines in the app's log.

use std::time::Duration;

use crate::support::{route, wait_until, TestRouter, TestUpstream, APP_ID, HOST};

#[tokio::test]
async fn every_request_for_the_app_becomes_a_router_line() {
    let web = TestUpstream::named("hello").await;
    let router = TestRouter::with(wharf_router::RouterConfig::default(), true).await;
    router.route(&[&web]);
    let client = router.client();

    let response = client
        .get(router.url(HOST, "/x?y=1"))
        .header("x-request-id", "log-test-0123456789abcdef")
        .send()
        .await
        .unwrap();
    assert_eq!(response.text().await.unwrap(), "hello");
    // A request for no app is in no app's log.
    client
        .get(router.url("other.example", "/"))
        .send()
        .await
        .unwrap();
    // No instance: an error line.
    router.set(&[]);
    let response = client.get(router.url(HOST, "/gone")).send().await.unwrap();
    assert_eq!(response.status(), 503);
    // Maintenance: an info line with its code.
    router
        .router
        .set_hosts(vec![(HOST.to_owned(), route(true))]);
    client.get(router.url(HOST, "/m")).send().await.unwrap();

    let lines = wait_until("three router lines", Duration::from_secs(10), || async {
        let lines = router.log_lines().await;
        (lines.len() >= 3).then_some(lines)
    })
    .await;
    assert_eq!(lines.len(), 3, "{lines:#?}");

    let ok = &lines[0];
    assert!(
        ok.starts_with(&format!(
            r#"at=info method=GET path="/x?y=1" host={HOST} request_id=log-test-0123456789abcdef fwd="127.0.0.1" dyno=web.1 connect="#
        )),
        "{ok}"
    );
    assert!(ok.contains("ms service="), "{ok}");
    assert!(ok.ends_with(" status=200 bytes=5 protocol=http"), "{ok}");

    let none = &lines[1];
    assert!(
        none.starts_with(r#"at=error code=H14 desc="No web instances running" method=GET path="/gone" host=app.example request_id="#),
        "{none}"
    );
    assert!(
        none.contains(r#" fwd="127.0.0.1" dyno= connect= service= status=503 bytes="#),
        "{none}"
    );

    let maintenance = &lines[2];
    assert!(
        maintenance.starts_with(r#"at=info code=H80 desc="Maintenance mode" method=GET path="/m""#),
        "{maintenance}"
    );
    assert!(maintenance.contains(" status=503 "), "{maintenance}");

    router.stop().await;
    web.stop().await;
}

/// The router's threads stop with `serve`; the app's log writer, started by a router line, must
/// not stop with them: the lines of the last requests are written when the store shuts down.
#[tokio::test]
async fn the_last_router_lines_are_written_after_the_router_stops() {
    let web = TestUpstream::named("hello").await;
    let mut router = TestRouter::with(wharf_router::RouterConfig::default(), true).await;
    router.route(&[&web]);
    let response = router
        .client()
        .get(router.url(HOST, "/last"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.text().await.unwrap(), "hello");
    let (store, _dir) = router.logs.take().expect("a log store");
    let log = store.app(APP_ID);
    router.stop().await;
    store.shutdown().await;
    let lines = log
        .read(&wharf_logs::LogFilter {
            source: Some("router".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert!(
        lines[0].line.text.contains(r#"path="/last""#),
        "{:?}",
        lines[0].line.text
    );
    web.stop().await;
}
