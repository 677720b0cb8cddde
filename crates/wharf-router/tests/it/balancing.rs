//! Load balancing, failover, retries and connection reuse.

use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use wharf_core::backend::{Routes, Upstream};
use wharf_router::RouterConfig;

use crate::support::{TestRouter, TestUpstream, APP_ID, HOST};

#[tokio::test]
async fn sequential_requests_spread_evenly_over_three_instances() {
    let a = TestUpstream::named("a").await;
    let b = TestUpstream::named("b").await;
    let c = TestUpstream::named("c").await;
    let router = TestRouter::start().await;
    router.route(&[&a, &b, &c]);
    let client = router.client();
    for _ in 0..300 {
        let response = client.get(router.url(HOST, "/")).send().await.unwrap();
        assert_eq!(response.status(), 200);
        response.bytes().await.unwrap();
    }
    for (name, upstream) in [("a", &a), ("b", &b), ("c", &c)] {
        let n = upstream.requests();
        assert!((90..=110).contains(&n), "{name} got {n} of 300");
    }
    router.stop().await;
    for u in [a, b, c] {
        u.stop().await;
    }
}

#[tokio::test]
async fn a_dead_instance_is_skipped() {
    let live = TestUpstream::named("live").await;
    // A port that was just closed: connecting is refused.
    let dead_addr = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let router = TestRouter::start().await;
    router.route(&[]);
    router.router.set(
        APP_ID,
        vec![
            Upstream {
                id: "web.1-dead".into(),
                dyno: "web.1".into(),
                addr: dead_addr,
                release_version: 1,
            },
            live.upstream("web.2"),
        ],
    );
    let client = router.client();
    for i in 0..40 {
        let response = client.get(router.url(HOST, "/")).send().await.unwrap();
        assert_eq!(response.status(), 200, "request {i}");
        assert_eq!(response.text().await.unwrap(), "live");
    }
    assert_eq!(live.requests(), 40);
    router.stop().await;
    live.stop().await;
}

#[tokio::test]
async fn all_instances_dead_gets_503() {
    let dead_addr = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let router = TestRouter::start().await;
    router.route(&[]);
    router.router.set(
        APP_ID,
        vec![Upstream {
            id: "web.1-dead".into(),
            dyno: "web.1".into(),
            addr: dead_addr,
            release_version: 1,
        }],
    );
    let response = router
        .client()
        .get(router.url(HOST, "/"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    router.stop().await;
}

#[tokio::test]
async fn keep_alive_connections_are_reused() {
    keep_alive_reuse(RouterConfig::default()).await;
}

#[tokio::test]
async fn keep_alive_connections_are_reused_on_the_callers_runtime_without_workers() {
    keep_alive_reuse(RouterConfig {
        workers: 0,
        ..RouterConfig::default()
    })
    .await;
}

#[tokio::test]
async fn keep_alive_connections_are_reused_by_each_of_several_workers() {
    keep_alive_reuse(RouterConfig {
        workers: 3,
        ..RouterConfig::default()
    })
    .await;
}

/// 50 requests on each of 3 client connections (spread over the workers, each with its own idle
/// upstream connections) reuse a few upstream connections.
async fn keep_alive_reuse(config: RouterConfig) {
    let web = TestUpstream::named("app").await;
    let router = TestRouter::with(config, false).await;
    router.route(&[&web]);
    let clients: Vec<_> = (0..3)
        .map(|_| {
            router
                .client_builder()
                .pool_max_idle_per_host(1)
                .build()
                .unwrap()
        })
        .collect();
    for _ in 0..50 {
        for client in &clients {
            let response = client.get(router.url(HOST, "/")).send().await.unwrap();
            assert_eq!(response.status(), 200);
            response.bytes().await.unwrap();
        }
    }
    let connections = web.connections.load(Ordering::SeqCst);
    assert_eq!(web.requests(), 150);
    assert!(
        connections < 10,
        "{connections} upstream connections for 150 requests"
    );
    router.stop().await;
    web.stop().await;
}

/// An instance that answers one request per connection and then closes it without saying so
/// (no `Connection: close`), as a server whose keep-alive timeout just ran out does.
async fn one_shot_server(stop: CancellationToken, tasks: TaskTracker) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tasks.clone().spawn(async move {
        loop {
            let (mut stream, _) = tokio::select! {
                () = stop.cancelled() => return,
                accepted = listener.accept() => accepted.unwrap(),
            };
            tasks.spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = stream
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                    .await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn requests_on_connections_the_instance_closed_are_retried() {
    let stop = CancellationToken::new();
    let tasks = TaskTracker::new();
    let addr = one_shot_server(stop.clone(), tasks.clone()).await;
    let router = TestRouter::start().await;
    router.route(&[]);
    router.router.set(
        APP_ID,
        vec![Upstream {
            id: "web.1-x".into(),
            dyno: "web.1".into(),
            addr,
            release_version: 1,
        }],
    );
    let client = router.client();
    for i in 0..30 {
        let response = client.get(router.url(HOST, "/")).send().await.unwrap();
        assert_eq!(response.status(), 200, "request {i}");
        assert_eq!(response.text().await.unwrap(), "ok");
    }
    router.stop().await;
    stop.cancel();
    tasks.close();
    tokio::time::timeout(Duration::from_secs(10), tasks.wait())
        .await
        .unwrap();
}
