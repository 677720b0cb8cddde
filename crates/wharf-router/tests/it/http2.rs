//! HTTP/2 clients (prior knowledge, h2c), routed by the request's authority.

use crate::support::{TestRouter, TestUpstream, HOST};

#[tokio::test]
async fn http2_clients_are_served() {
    let web = TestUpstream::named("app").await;
    let router = TestRouter::start().await;
    router.route(&[&web]);
    let client = router
        .client_builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();

    // Concurrent streams on one connection.
    let requests = (0..20).map(|i| {
        let client = client.clone();
        let url = router.url(HOST, &format!("/h2/{i}"));
        async move {
            client
                .get(url)
                .header("cookie", "a=1")
                .send()
                .await
                .unwrap()
        }
    });
    for response in futures_util::future::join_all(requests).await {
        assert_eq!(response.version(), reqwest::Version::HTTP_2);
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["via"], "1.1 wharf");
        assert_eq!(response.text().await.unwrap(), "app");
    }
    assert_eq!(web.requests(), 20);
    let seen = web.last();
    // The instance speaks HTTP/1.1: it gets an origin-form URI and a Host.
    assert!(seen.uri.to_string().starts_with("/h2/"), "{}", seen.uri);
    assert_eq!(
        seen.headers["host"],
        format!("{HOST}:{}", router.addr.port())
    );

    let response = client
        .post(router.url(HOST, "/upload"))
        .body(vec![1u8; 100_000])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(web.last().method, "POST");

    router.stop().await;
    web.stop().await;
}
