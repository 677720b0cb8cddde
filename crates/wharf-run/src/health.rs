//! Health checks: a web instance is up when its port accepts a TCP connection on a socket its
//! own processes listen on (not another program's that took the port first: then the
//! instance can't bind it and would crash once routed to) and, with a health path, when
//! `GET <path>` answers 2xx or 3xx.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How often a booting instance is probed.
const INTERVAL: Duration = Duration::from_millis(50);
/// One probe's own time limit, unless the check sets one.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// Returns once the instance of process group `pgid` answers on `port`, from a socket one of
/// its processes holds; the caller bounds it with the boot timeout.
pub(crate) async fn wait_healthy(
    port: u16,
    pgid: i32,
    health_path: Option<String>,
    timeout: Option<Duration>,
) {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let timeout = timeout.unwrap_or(PROBE_TIMEOUT);
    loop {
        if probe(addr, health_path.as_deref(), timeout).await && listens(pgid, port) {
            return;
        }
        tokio::time::sleep(INTERVAL).await;
    }
}

/// Whether a process of group `pgid` holds a socket listening on TCP `port` (IPv4 or IPv6).
/// Where that can't be told (no `/proc/net`, or the group's open files can't be read), yes.
fn listens(pgid: i32, port: u16) -> bool {
    let mut inodes = Vec::new();
    let mut readable = false;
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        if let Ok(text) = std::fs::read_to_string(table) {
            readable = true;
            inodes.extend(listening_inodes(&text, port));
        }
    }
    if !readable {
        return true;
    }
    if inodes.is_empty() {
        return false;
    }
    let mut inspected = false;
    for p in crate::runtime::process_table() {
        if p.pgrp != pgid || p.zombie {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(format!("/proc/{}/fd", p.pid)) else {
            continue;
        };
        inspected = true;
        let holds = fds
            .flatten()
            .filter_map(|fd| std::fs::read_link(fd.path()).ok())
            .any(|target| {
                let target = target.to_string_lossy();
                target
                    .strip_prefix("socket:[")
                    .and_then(|rest| rest.strip_suffix(']'))
                    .and_then(|inode| inode.parse::<u64>().ok())
                    .is_some_and(|inode| inodes.contains(&inode))
            });
        if holds {
            return true;
        }
    }
    // Where the group's open files can't be read, the port's answer has to do.
    !inspected
}

/// The inodes of the sockets listening on `port` in a `/proc/net/tcp` (or `tcp6`) table.
fn listening_inodes(table: &str, port: u16) -> Vec<u64> {
    const LISTEN: &str = "0A";
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let local_port = fields.get(1)?.rsplit_once(':')?.1;
            let listening =
                u16::from_str_radix(local_port, 16).ok()? == port && *fields.get(3)? == LISTEN;
            listening.then(|| fields.get(9)?.parse().ok()).flatten()
        })
        .collect()
}

async fn probe(addr: SocketAddr, path: Option<&str>, timeout: Duration) -> bool {
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
    matches!(tokio::time::timeout(timeout, attempt).await, Ok(Some(true)))
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
    use std::os::unix::process::CommandExt;
    use tokio::net::TcpListener;

    #[test]
    fn status_lines() {
        assert!(status_is_healthy(b"HTTP/1.1 200 OK\r\n"));
        assert!(status_is_healthy(b"HTTP/1.0 302 Found\r\n"));
        assert!(!status_is_healthy(b"HTTP/1.1 503 Service Unavailable\r\n"));
        assert!(!status_is_healthy(b"garbage"));
    }

    #[test]
    fn listening_sockets_are_found_by_port() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 4242 1 0000000000000000 100 0 0 10 0
   1: 0100007F:1F90 0100007F:C350 01 00000000:00000000 00:00000000 00000000  1000        0 4343 1 0000000000000000 20 4 30 10 -1
   2: 00000000:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4444 1 0000000000000000 100 0 0 10 0
";
        assert_eq!(listening_inodes(table, 8080), vec![4242]);
        assert_eq!(listening_inodes(table, 80), vec![4444]);
        assert!(listening_inodes(table, 443).is_empty());
    }

    /// A port another process listens on is not the instance's.
    #[tokio::test]
    async fn a_socket_of_another_process_group_does_not_count() {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let own_group = nix::unistd::getpgrp().as_raw();
        assert!(listens(own_group, port));
        // A group that is not this test's.
        let mut other = std::process::Command::new("sleep")
            .arg("30")
            .process_group(0)
            .spawn()
            .unwrap();
        let other_group = other.id() as i32;
        assert!(!listens(other_group, port));
        other.kill().unwrap();
        other.wait().unwrap();
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
        assert!(!probe(addr, Some("/health"), PROBE_TIMEOUT).await);
        assert!(probe(addr, Some("/health"), PROBE_TIMEOUT).await);
        server.await.unwrap();
    }
}
