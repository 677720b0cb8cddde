//! WebSocket through the router.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use wharf_core::backend::{Routes, Upstream};

use crate::support::{TestRouter, APP_ID, HOST};

/// A WebSocket server that echoes every message.
async fn echo_server(stop: CancellationToken, tasks: TaskTracker) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tasks.clone().spawn(async move {
        loop {
            let (stream, _) = tokio::select! {
                () = stop.cancelled() => return,
                accepted = listener.accept() => accepted.unwrap(),
            };
            let stop = stop.clone();
            tasks.spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
                    return;
                };
                loop {
                    let message = tokio::select! {
                        () = stop.cancelled() => return,
                        message = ws.next() => message,
                    };
                    match message {
                        Some(Ok(m)) if m.is_text() || m.is_binary() => {
                            if ws.send(m).await.is_err() {
                                return;
                            }
                        }
                        Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                        Some(Ok(_)) => {}
                    }
                }
            });
        }
    });
    addr
}

#[tokio::test]
async fn websocket_messages_pass_both_ways() {
    let stop = CancellationToken::new();
    let tasks = TaskTracker::new();
    let addr = echo_server(stop.clone(), tasks.clone()).await;
    let router = TestRouter::start().await;
    router.route(&[]);
    router.router.set(
        APP_ID,
        vec![Upstream {
            id: "web.1-ws".into(),
            dyno: "web.1".into(),
            addr,
            release_version: 1,
        }],
    );

    let request = format!("ws://{HOST}:{}/socket", router.addr.port())
        .into_client_request()
        .unwrap();
    let stream = TcpStream::connect(router.addr).await.unwrap();
    let (mut ws, response) = tokio_tungstenite::client_async(request, stream)
        .await
        .expect("handshake through the router");
    assert_eq!(response.status(), 101);
    assert_eq!(response.headers()["via"], "1.1 wharf");

    for i in 0..20 {
        let text = format!("hello {i}");
        ws.send(Message::text(text.clone())).await.unwrap();
        let echoed = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(echoed.into_text().unwrap().as_str(), text);
    }
    let big = vec![7u8; 256 * 1024];
    ws.send(Message::binary(big.clone())).await.unwrap();
    let echoed = tokio::time::timeout(Duration::from_secs(10), ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(echoed.into_data().as_ref(), big.as_slice());
    ws.close(None).await.unwrap();
    drop(ws);

    router.stop().await;
    stop.cancel();
    tasks.close();
    tokio::time::timeout(Duration::from_secs(10), tasks.wait())
        .await
        .unwrap();
}
