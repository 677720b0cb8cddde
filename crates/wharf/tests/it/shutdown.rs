//! `wharf server` stops cleanly on SIGTERM and SIGINT: exit 0, and its data intact.

use crate::harness::{Cli, Server};

#[test]
fn sigterm_stops_the_server_with_status_0() {
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().join("wharf");
    let server = Server::start_in(&data_dir);
    let cli = Cli::logged_in(&server);
    cli.run(&["apps", "create", "myapp"]).success();
    cli.run(&["config", "set", "FOO=bar", "-a", "myapp"])
        .success();
    let url = server.url.clone();

    let (status, stderr) = server.stop_with("-TERM");
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("SIGTERM"),
        "the server says why it stops: {stderr}"
    );
    let stderr = cli.run(&["--url", &url, "apps"]).error();
    assert!(
        stderr.contains("cannot reach wharf at"),
        "it no longer answers: {stderr}"
    );

    // What was stored before the stop is there after a restart.
    let server = Server::start_in(&data_dir);
    cli.login(&server).success();
    assert_eq!(
        cli.run(&["config", "get", "FOO", "-a", "myapp"])
            .success()
            .stdout,
        "bar\n"
    );
}

#[test]
fn sigint_stops_the_server_with_status_0() {
    let server = Server::start();
    let (status, stderr) = server.stop_with("-INT");
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("SIGINT"), "{stderr}");
}

/// A server whose stderr reader went away (a closed terminal, a dead log pipe) still stops
/// cleanly: writing its log must not become a panic that leaves it running.
#[test]
fn sigterm_stops_a_server_whose_stderr_is_gone() {
    use std::io::BufRead;
    let temp = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(crate::harness::WHARF.as_str())
        .args([
            "server",
            "--api-addr",
            "127.0.0.1:0",
            "--router-addr",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(temp.path().join("wharf"))
        .env_remove("WHARF_URL")
        .env_remove("WHARF_ADMIN_TOKEN")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    struct Reap(std::process::Child);
    impl Drop for Reap {
        fn drop(&mut self) {
            if let Ok(None) = self.0.try_wait() {
                let _ = self.0.kill();
                let _ = self.0.wait();
            }
        }
    }
    let stderr = child.stderr.take().unwrap();
    let mut child = Reap(child);
    let mut lines = std::io::BufReader::new(stderr).lines();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let line = lines
            .next()
            .expect("the server printed its address")
            .unwrap();
        if line.contains("listening on") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the server never started"
        );
    }
    drop(lines); // the reader goes away
    crate::harness::send_signal(child.0.id(), "-TERM");
    let status = crate::harness::wait_until(
        std::time::Duration::from_secs(30),
        "the server to exit",
        || {
            child
                .0
                .try_wait()
                .map_err(|e| e.to_string())?
                .ok_or_else(|| "still running".to_owned())
        },
    );
    assert_eq!(status.code(), Some(0));
}
