//! Health checks: a web instance is up when its port accepts a TCP connection and, with a
//! health path, when `GET <path>` answers 2xx or 3xx.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How often a booting instance is probed.
const INTERVAL: Duration = Duration::from_millis(50);
/// One probe's own time limit.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// Returns once the instance answers; the caller bounds it with the boot timeout.
pub(crate) async fn wait_healthy(port: u16, health_path: Option<String>) {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    loop {
        if probe(addr, health_path.as_deref()).await {
            return;
        }
        tokio::time::sleep(INTERVAL).await;
    }
}

async fn probe(addr: SocketAddr, path: Option<&str>) -> bool {
    let attempt = async {
        let mut stream = TcpStream::connect(addr).await.ok()?;
        let Some(path) = path else {
            return Some(true);
        };
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: wharf-health-check\r\nConnection: close\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut head = Vec::with_capacity(64);
        let mut buf = [0u8; 256];
        while !head.contains(&b'\n') && head.len() < 1024 {
            let n = stream.read(&mut buf).await.ok()?;
            if n == 0 {
                break;
            }
            head.extend_from_slice(&buf[..n]);
        }
        Some(status_is_healthy(&head))
    };
    matches!(
        tokio::time::timeout(PROBE_TIMEOUT, attempt).await,
        Ok(Some(true))
    )
}

/// `HTTP/1.x 2xx` or `3xx` on the status line.
fn status_is_healthy(head: &[u8]) -> bool {
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let text = String::from_utf8_lossy(line);
    let mut parts = text.split_whitespace();
    let version_ok = parts.next().is_some_and(|v| v.starts_with("HTTP/"));
    let code: u16 = parts.next().and_then(|c| c.parse().ok()).unwrap_or(0);
    version_ok && (200..400).contains(&code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    #[test]
    fn status_lines() {
        assert!(status_is_healthy(b"HTTP/1.1 200 OK\r\n"));
        assert!(status_is_healthy(b"HTTP/1.0 302 Found\r\n"));
        assert!(!status_is_healthy(b"HTTP/1.1 503 Service Unavailable\r\n"));
        assert!(!status_is_healthy(b"garbage"));
    }

    #[tokio::test]
    async fn probes_a_real_socket() {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let n = s.read(&mut buf).await.unwrap();
            assert!(buf[..n].starts_with(b"GET /health HTTP/1.1\r\n"));
            s.write_all(b"HTTP/1.1 500 Oops\r\n\r\n").await.unwrap();
            let (mut s, _) = listener.accept().await.unwrap();
            let _ = s.read(&mut buf).await.unwrap();
            s.write_all(b"HTTP/1.1 204 No Content\r\n\r\n")
                .await
                .unwrap();
        });
        assert!(!probe(addr, Some("/health")).await);
        assert!(probe(addr, Some("/health")).await);
        server.await.unwrap();
    }
}
