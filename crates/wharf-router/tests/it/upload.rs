//! Bodies are streamed, never buffered whole: a 1 GiB upload passes with bounded memory.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;

use crate::support::{text, TestRouter, TestUpstream, HOST};

/// The process's peak resident set size, in KiB.
fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/self/status")
}

#[tokio::test]
async fn a_1_gib_upload_streams_through_with_bounded_memory() {
    const TOTAL: u64 = 1 << 30;
    // Counts the body as it arrives, keeping none of it.
    let web = TestUpstream::start(Arc::new(|req| {
        Box::pin(async move {
            let mut body = req.into_body();
            let mut n = 0u64;
            while let Some(frame) = body.frame().await {
                match frame {
                    Ok(frame) => n += frame.data_ref().map_or(0, |d| d.len() as u64),
                    Err(_) => return text("error"),
                }
            }
            text(n.to_string())
        })
    }))
    .await;
    let router = TestRouter::start().await;
    router.route(&[&web]);
    let client = router.client();
    // Warm up the client, the router and the instance, then start measuring from here (peak
    // reset where the kernel allows: "5" > clear_refs).
    client.get(router.url(HOST, "/")).send().await.unwrap();
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let before = peak_rss_kib();

    let chunk = Bytes::from(vec![0x5a; 64 * 1024]);
    let chunks = TOTAL / chunk.len() as u64;
    let stream = futures_util::stream::iter(
        (0..chunks).map(move |_| Ok::<_, std::io::Error>(chunk.clone())),
    );
    let response = tokio::time::timeout(
        Duration::from_secs(300),
        client
            .post(router.url(HOST, "/upload"))
            .body(reqwest::Body::wrap_stream(stream))
            .send(),
    )
    .await
    .expect("upload within 5 minutes")
    .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), TOTAL.to_string());

    let grown_mib = peak_rss_kib().saturating_sub(before) / 1024;
    assert!(
        grown_mib < 100,
        "peak RSS grew by {grown_mib} MiB for a 1 GiB upload"
    );

    router.stop().await;
    web.stop().await;
}
