use std::time::Duration;

use wharf_run::{ProcessSpec, SandboxMode};

use crate::fixture::{Fixture, Sink};

const PROBE: &str = "touch $PWD/written 2>/dev/null && echo code-writable || echo code-read-only; \
                     touch $HOME/x && echo home-writable; \
                     ls $WHARF_DATA 2>/dev/null | grep -q images && echo data-visible || echo data-hidden; \
                     echo pid=$$; while true; do sleep 1; done";

async fn probe(sandbox: SandboxMode) -> Vec<String> {
    let fx = Fixture::new(sandbox).await;
    let sink = Sink::new();
    let mut desired = fx.desired(1, vec![ProcessSpec::new("worker", 1, PROBE)]);
    desired.release.env.insert(
        "WHARF_DATA".into(),
        fx.config.data_dir.to_string_lossy().into_owned(),
    );
    fx.sup.apply(desired, sink.clone());
    fx.until("probe output", 30, |_| sink.lines_of("worker.1").len() >= 4)
        .await;
    let lines = sink.lines_of("worker.1");
    let one = fx
        .sup
        .run_one_off("app1", &fx.release(1), "touch $PWD/x", true, sink.clone())
        .await
        .unwrap();
    assert_ne!(
        tokio::time::timeout(Duration::from_secs(20), one.exit)
            .await
            .unwrap()
            .unwrap(),
        0
    );
    fx.sup.shutdown().await;
    lines
}

#[tokio::test]
async fn namespaces_keep_the_code_read_only_and_hide_the_data_dir() {
    let lines = probe(SandboxMode::Namespaces).await;
    assert_eq!(
        &lines[..3],
        ["code-read-only", "home-writable", "data-hidden"]
    );
    assert_eq!(lines[3], "pid=2", "own pid namespace (bwrap's init is 1)");
}

#[tokio::test]
async fn without_a_sandbox_root_drops_to_an_unprivileged_user() {
    if !nix::unistd::geteuid().is_root() {
        return;
    }
    let lines = probe(SandboxMode::None).await;
    assert_eq!(&lines[..2], ["code-read-only", "home-writable"]);
}

#[tokio::test]
async fn namespaces_deliver_the_stop_signal_to_the_app() {
    let fx = Fixture::new(SandboxMode::Namespaces).await;
    let sink = Sink::new();
    let mut spec = ProcessSpec::new(
        "worker",
        1,
        "trap 'echo bye; exit 0' TERM; echo ready; while true; do sleep 0.1; done",
    );
    spec.grace = Duration::from_secs(20);
    fx.sup.apply(fx.desired(1, vec![spec]), sink.clone());
    fx.until("ready", 30, |_| {
        sink.lines_of("worker.1").contains(&"ready".to_owned())
    })
    .await;
    fx.sup.remove("app1").await;
    assert!(
        sink.has_event("worker.1", "Process exited with status 0"),
        "{:#?}",
        sink.events()
    );
    assert!(!sink.has_event("worker.1", "Stopping all processes with SIGKILL"));
    fx.sup.shutdown().await;
}

#[tokio::test]
async fn memory_and_pids_limits_go_into_a_cgroup() {
    let v1 = std::path::Path::new("/sys/fs/cgroup/memory");
    let v2 = std::path::Path::new("/sys/fs/cgroup/cgroup.controllers");
    if !nix::unistd::geteuid().is_root() || !(v1.is_dir() || v2.is_file()) {
        return;
    }
    let fx = Fixture::new(SandboxMode::None).await;
    let sink = Sink::new();
    let app_id = format!("cgtest{}", std::process::id());
    let mut spec = ProcessSpec::new("worker", 1, "sleep 1000");
    spec.memory_limit = Some(256 * 1024 * 1024);
    let mut desired = fx.desired(1, vec![spec]);
    desired.app_id = app_id.clone();
    fx.sup.apply(desired, sink.clone());
    let pid = wharf_test_support::wait_until_async(
        Duration::from_secs(30),
        "the instance to have a pid",
        || {
            let status = fx.sup.status(&app_id);
            let pid = status.first().and_then(|s| s.pid);
            std::future::ready(pid.ok_or_else(|| format!("{status:#?}")))
        },
    )
    .await;
    let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert!(
        cgroups.contains(&format!("/wharf/{app_id}/worker.1-")),
        "{cgroups}"
    );
    let leaf = cgroups
        .lines()
        .find_map(|l| {
            l.split_once(&format!("/wharf/{app_id}/"))
                .map(|(_, r)| r.to_owned())
        })
        .unwrap();
    let limit_file = if v2.is_file() {
        format!("/sys/fs/cgroup/wharf/{app_id}/{leaf}/memory.max")
    } else {
        format!("/sys/fs/cgroup/memory/wharf/{app_id}/{leaf}/memory.limit_in_bytes")
    };
    assert_eq!(
        std::fs::read_to_string(limit_file).unwrap().trim(),
        (256 * 1024 * 1024).to_string()
    );
    fx.sup.remove(&app_id).await;
    fx.sup.shutdown().await;
}

/// A process past its memory limit is stopped with R15 and restarted with backoff, whether or
/// not the host's cgroups account for memory (wharf measures the group itself once a second).
#[tokio::test]
async fn a_process_past_its_memory_limit_is_stopped_and_restarted() {
    let fx = Fixture::new(SandboxMode::None).await;
    let sink = Sink::new();
    let mut spec = ProcessSpec::new(
        "hog",
        1,
        "python3 -c \"import time\nx = []\nwhile True:\n    x.append(bytearray(8 << 20))\n    \
         print('held', len(x) * 8, flush=True)\n    time.sleep(0.05)\"",
    );
    spec.memory_limit = Some(64 << 20);
    fx.sup.apply(fx.desired(1, vec![spec]), sink.clone());
    fx.until("a restart after the limit", 60, |f| {
        f.status().first().is_some_and(|s| s.restarts >= 1)
    })
    .await;
    let held: Vec<u64> = sink
        .lines_of("hog.1")
        .iter()
        .filter_map(|l| l.strip_prefix("held ")?.parse().ok())
        .collect();
    let most = held.iter().max().copied().unwrap_or(0);
    assert!(most >= 32, "the hog ran: {held:?}");
    // Once a second at 160 MiB/s: stopped well before it could hold four times its limit.
    assert!(most <= 256, "the hog reached {most} MiB of its 64");
    assert!(
        sink.events()
            .iter()
            .any(|(p, e)| p == "hog.1" && e.starts_with("Error R15 (Memory quota vastly exceeded)"))
            || most <= 64,
        "{:#?}",
        sink.events()
    );
    fx.sup.shutdown().await;
}
