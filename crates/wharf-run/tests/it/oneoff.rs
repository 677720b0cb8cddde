use std::time::Duration;

use tokio::io::AsyncWriteExt;
use wharf_run::SandboxMode;

use crate::fixture::{Fixture, Sink};

#[tokio::test]
async fn attached_exit_code_and_stdin_round_trip() {
    let fx = Fixture::new(SandboxMode::None).await;
    let sink = Sink::new();
    let r = fx.release(3);
    let one = fx
        .sup
        .run_one_off("app1", &r, "sh -c 'exit 7'", true, sink.clone())
        .await
        .unwrap();
    assert_eq!(one.name, "run.1");
    assert_eq!(
        tokio::time::timeout(Duration::from_secs(20), one.exit)
            .await
            .unwrap()
            .unwrap(),
        7
    );

    let mut cat = fx
        .sup
        .run_one_off("app1", &r, "cat", true, sink.clone())
        .await
        .unwrap();
    assert_eq!(cat.name, "run.2");
    let mut stdin = cat.stdin.take().unwrap();
    stdin.write_all(b"ping\n").await.unwrap();
    drop(stdin);
    let mut out = Vec::new();
    let mut rx = cat.output.take().unwrap();
    while let Some(chunk) = tokio::time::timeout(Duration::from_secs(20), rx.recv())
        .await
        .unwrap()
    {
        out.extend(chunk);
    }
    assert_eq!(out, b"ping\n");
    assert_eq!(cat.exit.await.unwrap(), 0);

    let env = fx
        .sup
        .run_one_off(
            "app1",
            &r,
            "echo $DYNO $WHARF_RELEASE_VERSION",
            false,
            sink.clone(),
        )
        .await
        .unwrap();
    assert!(env.output.is_none());
    assert_eq!(env.exit.await.unwrap(), 0);
    assert_eq!(sink.lines_of("run.3"), ["run.3 3"]);
    fx.sup.shutdown().await;
}

/// A running one-off is listed beside the instances' status, can be stopped by name, is held
/// by the same cgroup limits as an instance, and is gone from the list once it ended.
#[tokio::test]
async fn one_offs_are_listed_limited_and_stopped_by_name() {
    let fx = Fixture::new(SandboxMode::None).await;
    let sink = Sink::new();
    let r = fx.release(2);
    // Cgroups are the machine's: an app id of its own keeps tests running side by side apart.
    let app = format!("oneoff{}", std::process::id());
    let app = app.as_str();
    let one = fx
        .sup
        .run_one_off(app, &r, "sleep 1000", false, sink.clone())
        .await
        .unwrap();
    let listed = fx.sup.one_offs(app);
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].name, one.name);
    assert_eq!(listed[0].process_type, "run");
    assert_eq!(listed[0].release_version, 2);
    assert_eq!(listed[0].command, "sleep 1000");
    assert_eq!(listed[0].pid, one.pid);
    let pid = one.pid.unwrap();
    let cgroups_here = std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").is_file()
        || std::path::Path::new("/sys/fs/cgroup/pids/wharf").is_dir();
    if nix::unistd::geteuid().is_root() && cgroups_here {
        let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
        assert!(
            cgroup.contains(&format!("/wharf/{app}/{}", one.name)),
            "{cgroup}"
        );
    }

    assert!(!fx.sup.stop_one_off(app, "run.99"));
    assert!(fx.sup.stop_one_off(app, &one.name));
    let code = tokio::time::timeout(Duration::from_secs(20), one.exit)
        .await
        .unwrap()
        .unwrap();
    assert_ne!(code, 0, "stopped by a signal");
    fx.until("the one-off to leave the list", 20, |f| {
        f.sup.one_offs(app).is_empty()
    })
    .await;
    assert!(sink.has_event(&one.name, "Stopping all processes with SIGTERM"));
    fx.sup.shutdown().await;
}
