//! Draining an instance, and draining the whole router on shutdown.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, Semaphore};
use wharf_core::backend::Routes;

use crate::support::{text, wait_for, TestRouter, TestUpstream, APP_ID, HOST};

/// An instance whose `/slow` answers only once `gate` gets a permit, telling `arrived` when such
/// a request came in; other paths answer "slow" at once.
async fn gated_upstream() -> (TestUpstream, Arc<Semaphore>, mpsc::UnboundedReceiver<()>) {
    let gate = Arc::new(Semaphore::new(0));
    let (arrived_tx, arrived) = mpsc::unbounded_channel();
    let web = TestUpstream::start(Arc::new({
        let gate = Arc::clone(&gate);
        move |req| {
            let gate = Arc::clone(&gate);
            let arrived = arrived_tx.clone();
            Box::pin(async move {
                if req.uri().path() == "/slow" {
                    let _ = arrived.send(());
                    gate.acquire().await.unwrap().forget();
                    return text("slow done");
                }
                text("slow")
            })
        }
    }))
    .await;
    (web, gate, arrived)
}

async fn arrived(rx: &mut mpsc::UnboundedReceiver<()>) {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("the slow request reaches the instance")
        .unwrap();
}

#[tokio::test]
async fn drain_waits_for_requests_in_flight_while_new_ones_go_elsewhere() {
    let (slow, gate, mut arrivals) = gated_upstream().await;
    let fast = TestUpstream::named("fast").await;
    let router = TestRouter::start().await;
    router.route(&[&slow]);
    let client = router.client();
    let in_flight = tokio::spawn({
        let request = client.get(router.url(HOST, "/slow"));
        async move { request.send().await.unwrap().text().await.unwrap() }
    });
    arrived(&mut arrivals).await;
    router.set(&[&slow, &fast]);

    let slow_id = slow.upstream("web.1").id;
    let drain = tokio::spawn({
        let router = router.router.clone();
        let id = slow_id.clone();
        async move { router.drain(APP_ID, &id).await }
    });
    // Once draining, only one instance is in rotation.
    wait_for("the drain to start", Duration::from_secs(10), || async {
        router
            .metrics_text()
            .contains(r#"wharf_router_upstreams{app="app"} 1"#)
    })
    .await;

    for _ in 0..20 {
        let response = client.get(router.url(HOST, "/")).send().await.unwrap();
        assert_eq!(response.text().await.unwrap(), "fast");
    }
    assert_eq!(
        slow.requests(),
        1,
        "nothing new goes to a draining instance"
    );
    assert!(
        !drain.is_finished(),
        "drain waits for the request in flight"
    );

    gate.add_permits(1);
    assert_eq!(in_flight.await.unwrap(), "slow done");
    tokio::time::timeout(Duration::from_secs(10), drain)
        .await
        .expect("drain resolves once the request is done")
        .unwrap();

    // Draining an id the router doesn't know resolves at once.
    tokio::time::timeout(
        Duration::from_secs(5),
        router.router.drain(APP_ID, "web.9-unknown"),
    )
    .await
    .unwrap();

    router.stop().await;
    slow.stop().await;
    fast.stop().await;
}

#[tokio::test]
async fn an_instance_taken_out_of_rotation_finishes_its_requests() {
    let (old, gate, mut arrivals) = gated_upstream().await;
    let new = TestUpstream::named("new").await;
    let router = TestRouter::start().await;
    router.route(&[&old]);
    let client = router.client();
    let in_flight = tokio::spawn({
        let request = client.get(router.url(HOST, "/slow"));
        async move { request.send().await.unwrap().text().await.unwrap() }
    });
    arrived(&mut arrivals).await;

    // A deploy: the new instance replaces the old in the table, then the old one is drained.
    router.set(&[&new]);
    let drain = tokio::spawn({
        let router = router.router.clone();
        let id = old.upstream("web.1").id;
        async move { router.drain(APP_ID, &id).await }
    });
    let response = client.get(router.url(HOST, "/")).send().await.unwrap();
    assert_eq!(response.text().await.unwrap(), "new");
    assert!(!drain.is_finished());

    gate.add_permits(1);
    assert_eq!(in_flight.await.unwrap(), "slow done");
    tokio::time::timeout(Duration::from_secs(10), drain)
        .await
        .expect("drain resolves once the request is done")
        .unwrap();

    router.stop().await;
    old.stop().await;
    new.stop().await;
}

#[tokio::test]
async fn shutdown_stops_accepting_and_lets_requests_in_flight_finish() {
    let (web, gate, mut arrivals) = gated_upstream().await;
    let router = TestRouter::start().await;
    router.route(&[&web]);
    let in_flight = tokio::spawn({
        let request = router.client().get(router.url(HOST, "/slow"));
        async move {
            let response = request.send().await.unwrap();
            (response.status(), response.text().await.unwrap())
        }
    });
    arrived(&mut arrivals).await;

    router.begin_shutdown();
    let addr = router.addr;
    wait_for(
        "the listener to close",
        Duration::from_secs(10),
        || async move { tokio::net::TcpStream::connect(addr).await.is_err() },
    )
    .await;

    gate.add_permits(1);
    let (status, body) = in_flight.await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(body, "slow done");
    router.stop().await;
    web.stop().await;
}
