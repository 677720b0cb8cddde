//! The router's metric families.

use std::time::Duration;

use crate::support::{wait_until, TestRouter, TestUpstream, HOST};

#[tokio::test]
async fn requests_are_counted_by_app_and_status_class() {
    let web = TestUpstream::named("ok").await;
    let router = TestRouter::start().await;
    router.route(&[&web]);
    let client = router.client();
    for _ in 0..3 {
        client.get(router.url(HOST, "/")).send().await.unwrap();
    }
    client
        .get(router.url("other.example", "/"))
        .send()
        .await
        .unwrap();
    router.set(&[]);
    client.get(router.url(HOST, "/")).send().await.unwrap();

    let text = wait_until(
        "the requests to be counted",
        Duration::from_secs(10),
        || async {
            let text = router.metrics_text();
            text.contains(r#"wharf_router_requests_total{app="app",class="5xx"} 1"#)
                .then_some(text)
        },
    )
    .await;
    for expected in [
        r#"wharf_router_requests_total{app="app",class="2xx"} 3"#,
        r#"wharf_router_errors_total{app="app",code="H14"} 1"#,
        r#"wharf_router_request_duration_seconds_count{app="app"} 4"#,
        r#"wharf_router_requests_in_flight{app="app"} 0"#,
        r#"wharf_router_upstreams{app="app"} 0"#,
        "wharf_router_unrouted_requests_total 1",
        "# TYPE wharf_router_request_duration_seconds histogram",
    ] {
        assert!(text.contains(expected), "{expected} missing from\n{text}");
    }
    router.stop().await;
    web.stop().await;
}
