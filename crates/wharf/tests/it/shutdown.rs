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
