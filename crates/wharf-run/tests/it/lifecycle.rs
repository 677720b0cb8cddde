use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use wharf_run::{InstanceState, ProcessSpec, SandboxMode, Supervisor};

use crate::fixture::{alive, Fixture, Sink};

#[tokio::test]
async fn crash_loop_backs_off_and_records_the_exit() {
    let fx = Fixture::new(SandboxMode::None).await;
    let sink = Sink::new();
    fx.sup.apply(
        fx.desired(1, vec![ProcessSpec::new("worker", 1, "sh -c 'exit 3'")]),
        sink.clone(),
    );
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while seen.len() < 4 {
        assert!(Instant::now() < deadline, "saw only {seen:?}");
        if let Some(s) = fx.status().first() {
            if s.state == InstanceState::Crashed && !seen.iter().any(|(r, _)| *r == s.restarts) {
                assert_eq!(s.last_exit.as_deref(), Some("status 3"));
                seen.push((s.restarts, s.next_restart_in.unwrap()));
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // base 100 ms ±20%, doubling: the fourth wait is at least 800*0.8 ms minus polling slack.
    assert!(seen[0].1 <= Duration::from_millis(120), "{seen:?}");
    assert!(seen[3].1 >= Duration::from_millis(500), "{seen:?}");
    assert!(seen.windows(2).all(|w| w[1].0 > w[0].0));
    assert!(sink.has_event("worker.1", "Process exited with status 3"));
    assert!(sink.has_event("worker.1", "State changed from up to crashed"));
    fx.sup.shutdown().await;
}

#[tokio::test]
async fn healthy_uptime_resets_the_backoff() {
    let fx = Fixture::with(SandboxMode::None, |c| {
        c.healthy_reset = Duration::from_millis(300);
    })
    .await;
    let sink = Sink::new();
    // Crashes three times at once, then runs until the test creates `go`, then crashes again.
    let cmd = "n=$(cat $OUT/count 2>/dev/null || echo 0); n=$((n+1)); echo $n > $OUT/count; \
               if [ $n -le 3 ]; then exit 1; fi; while [ ! -f $OUT/go ]; do sleep 0.05; done; exit 1";
    fx.sup.apply(
        fx.desired(1, vec![ProcessSpec::new("worker", 1, cmd)]),
        sink.clone(),
    );
    fx.until("running after three crashes", 30, |f| {
        f.status()
            .first()
            .is_some_and(|s| s.restarts == 3 && s.state == InstanceState::Up)
    })
    .await;
    let since = fx.status()[0].since;
    fx.until("healthy_reset of uptime", 10, |_| {
        SystemTime::now().duration_since(since).unwrap_or_default() > Duration::from_millis(600)
    })
    .await;
    std::fs::write(fx.out.join("go"), "").unwrap();
    fx.until("crashed again", 30, |f| {
        f.status()
            .first()
            .is_some_and(|s| s.state == InstanceState::Crashed)
    })
    .await;
    let next = fx.status()[0].next_restart_in.unwrap();
    // Without the reset this would be 100 ms * 2^3 ± 20%.
    assert!(next <= Duration::from_millis(120), "{next:?}");
    fx.sup.shutdown().await;
}

#[tokio::test]
async fn stop_signal_handled_within_grace_is_not_killed() {
    let fx = Fixture::new(SandboxMode::None).await;
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
    assert!(sink.lines_of("worker.1").contains(&"bye".to_owned()));
    fx.sup.shutdown().await;
}

#[tokio::test]
async fn ignored_stop_signal_is_followed_by_sigkill_after_grace() {
    let fx = Fixture::new(SandboxMode::None).await;
    let sink = Sink::new();
    let mut spec = ProcessSpec::new(
        "worker",
        1,
        "trap '' TERM; echo ready; while true; do sleep 0.1; done",
    );
    spec.grace = Duration::from_secs(1);
    fx.sup.apply(fx.desired(1, vec![spec]), sink.clone());
    fx.until("ready", 30, |_| {
        sink.lines_of("worker.1").contains(&"ready".to_owned())
    })
    .await;
    fx.sup.remove("app1").await;
    assert!(sink.has_event("worker.1", "Stopping all processes with SIGKILL"));
    assert!(
        sink.has_event("worker.1", "Process exited with signal SIGKILL"),
        "{:#?}",
        sink.events()
    );
    fx.sup.shutdown().await;
}

#[tokio::test]
async fn grandchildren_die_with_the_group() {
    let fx = Fixture::new(SandboxMode::None).await;
    let sink = Sink::new();
    // The grandchild ignores SIGTERM and outlives the app's own exit.
    let cmd = "(trap '' TERM; exec sleep 1000) & echo $! > $OUT/grandchild; \
               trap 'exit 0' TERM; while true; do sleep 0.1; done";
    fx.sup.apply(
        fx.desired(1, vec![ProcessSpec::new("worker", 1, cmd)]),
        sink.clone(),
    );
    fx.until("grandchild pid", 30, |f| {
        f.read_out("grandchild").is_some_and(|s| s.ends_with('\n'))
    })
    .await;
    let pid: i32 = fx.read_out("grandchild").unwrap().trim().parse().unwrap();
    assert!(alive(pid));
    fx.sup.remove("app1").await;
    assert!(!alive(pid), "the grandchild {pid} survived the stop");
    fx.sup.shutdown().await;
}

#[tokio::test]
async fn env_and_fresh_scratch() {
    let fx = Fixture::new(SandboxMode::None).await;
    let sink = Sink::new();
    let cmd =
        "echo \"PORT=$PORT DYNO=$DYNO V=$WHARF_RELEASE_VERSION G=$GREETING\"; cat $APP_FILE; \
               ls $HOME; touch $HOME/leftover; echo started >> $OUT/starts; \
               while true; do sleep 0.1; done";
    fx.sup.apply(
        fx.desired(4, vec![ProcessSpec::new("worker", 1, cmd)]),
        sink.clone(),
    );
    fx.until("output", 30, |_| sink.lines_of("worker.1").len() >= 2)
        .await;
    // The first start must have recorded itself before it is restarted,
    // or the restart can kill it between its output and that record.
    fx.until("first start", 30, |f| {
        f.read_out("starts").is_some_and(|s| s.lines().count() == 1)
    })
    .await;
    let port = fx.status()[0].port.unwrap();
    let lines = sink.lines_of("worker.1");
    assert_eq!(lines[0], format!("PORT={port} DYNO=worker.1 V=4 G=hi"));
    assert_eq!(
        lines[1], "hello from the app",
        "image env paths point at the tree"
    );
    fx.sup
        .restart("app1", wharf_run::Target::All)
        .await
        .unwrap();
    fx.until("second start", 30, |f| {
        f.read_out("starts").is_some_and(|s| s.lines().count() == 2)
    })
    .await;
    fx.until("output of the second start", 30, |_| {
        sink.lines_of("worker.1").len() >= 4
    })
    .await;
    assert!(
        !sink.lines_of("worker.1").iter().any(|l| l == "leftover"),
        "HOME was not wiped: {:?}",
        sink.lines_of("worker.1")
    );
    fx.sup.shutdown().await;
    let run = fx.config.data_dir.join("run").join("app1");
    assert_eq!(
        std::fs::read_dir(&run).unwrap().count(),
        0,
        "scratch wiped on stop"
    );
}

#[tokio::test]
async fn boot_timeout_crashes_with_r10() {
    let fx = Fixture::with(SandboxMode::None, |c| {
        c.boot_timeout = Duration::from_secs(1)
    })
    .await;
    let sink = Sink::new();
    fx.sup.apply(
        fx.desired(1, vec![ProcessSpec::new("web", 1, "sleep 1000")]),
        sink.clone(),
    );
    fx.until("crashed", 30, |f| {
        f.status()
            .first()
            .is_some_and(|s| s.state == InstanceState::Crashed)
    })
    .await;
    assert!(sink.has_event(
        "web.1",
        "Error R10 (Boot timeout) -> web.1 failed to bind to $PORT within 1 second"
    ));
    assert_eq!(fx.status()[0].last_exit.as_deref(), Some("signal SIGKILL"));
    fx.sup.shutdown().await;
}

/// A port that answers from a socket no process of the instance holds (another program's,
/// which took the port first) does not make the instance up: routed to, it would fail.
#[tokio::test]
async fn a_port_held_by_another_program_is_not_up() {
    let fx = Fixture::with(SandboxMode::None, |c| {
        c.boot_timeout = Duration::from_secs(2)
    })
    .await;
    let sink = Sink::new();
    // The listener leaves the instance's process group (and session) before it binds, and
    // holds none of its output; it is started once, not again at the restart after the crash.
    let command = "if mkdir $OUT/listener 2>/dev/null; then \
                   setsid python3 -m http.server $PORT --bind 127.0.0.1 >/dev/null 2>&1 </dev/null & \
                   echo listener=$!; fi; exec sleep 1000";
    fx.sup.apply(
        fx.desired(1, vec![ProcessSpec::new("web", 1, command)]),
        sink.clone(),
    );
    fx.until("the listener's pid", 30, |_| {
        !sink.lines_of("web.1").is_empty()
    })
    .await;
    let listener: i32 = sink.lines_of("web.1")[0]
        .strip_prefix("listener=")
        .and_then(|pid| pid.trim().parse().ok())
        .expect("the listener's pid");
    // It left the instance's group: this test ends it, whatever happens below.
    struct Kill(i32);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(self.0),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
    let _listener = Kill(listener);
    fx.until("crashed", 30, |f| {
        f.status()
            .first()
            .is_some_and(|s| s.state == InstanceState::Crashed)
    })
    .await;
    let never_up = !sink.has_event("web.1", "State changed from starting to up");
    drop(_listener);
    assert!(never_up, "the instance was up on another program's socket");
    assert!(sink.has_event(
        "web.1",
        "Error R10 (Boot timeout) -> web.1 failed to bind to $PORT within 2 seconds"
    ));
    fx.sup.shutdown().await;
}

#[tokio::test]
async fn health_path_gates_up() {
    let fx = Fixture::new(SandboxMode::None).await;
    let sink = Sink::new();
    let mut spec = crate::fixture::web(1);
    spec.health_path = Some("/hello.txt".to_owned());
    fx.sup.apply(fx.desired(1, vec![spec]), sink.clone());
    fx.until("up", 30, |f| f.names_in("up") == ["web.1"]).await;
    fx.sup.shutdown().await;
}

#[tokio::test]
async fn a_flooding_instance_does_not_stall_the_supervisor() {
    let fx = Fixture::new(SandboxMode::None).await;
    let sink = Sink::counting();
    fx.sup.apply(
        fx.desired(1, vec![ProcessSpec::new("worker", 1, "yes flood-line")]),
        sink.clone(),
    );
    fx.until("100k lines", 60, |_| {
        sink.line_count.load(Ordering::SeqCst) >= 100_000
    })
    .await;
    let t = Instant::now();
    assert_eq!(fx.status().len(), 1);
    assert!(t.elapsed() < Duration::from_secs(1));
    tokio::time::timeout(Duration::from_secs(10), fx.sup.remove("app1"))
        .await
        .expect("stop finished while flooding");
    fx.sup.shutdown().await;
}

#[test]
fn processes_of_a_killed_server_are_stopped_by_the_next() {
    let dir = tempfile::tempdir().unwrap();
    // Cgroups are the machine's: an app id of its own keeps tests running side by side apart.
    let app = format!("stale{}", std::process::id());
    let data = dir.path().join("data");
    let config = crate::fixture::config(&data, SandboxMode::None);
    let images = wharf_image::ImageStore::open(&data.join("images")).unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    let image = images
        .build_image(&wharf_image::ImageSpec {
            layers: vec![wharf_image::LayerSpec {
                root: src,
                prefix: "app".into(),
                select: wharf_image::Select::All,
            }],
            working_dir: "/app".into(),
            ..Default::default()
        })
        .unwrap()
        .manifest;
    let desired = wharf_run::DesiredApp {
        app_id: app.clone(),
        app_name: "app-one".into(),
        release: wharf_run::ReleaseSpec {
            version: 1,
            image: image.to_string(),
            env: Default::default(),
            image_env: Default::default(),
            run_image: None,
            web_health: None,
        },
        processes: vec![ProcessSpec::new("worker", 2, "sleep 1000")],
    };
    let _guard = KillOnDrop(data.join("run"));

    // The "old server": its own runtime, dropped without shutdown — like a crash.
    let old_pids = {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let (config, images, desired) = (config.clone(), images.clone(), desired.clone());
        let app = app.clone();
        let pids = rt.block_on(async move {
            let sup = Supervisor::start(config, images, Default::default())
                .await
                .unwrap();
            let release = desired.release.clone();
            sup.apply(desired, Sink::new());
            let mut pids = wharf_test_support::wait_until_async(
                Duration::from_secs(30),
                "both instances to be up",
                || {
                    let s = sup.status(&app);
                    let up = s.len() == 2 && s.iter().all(|i| i.state == InstanceState::Up);
                    let pids = s
                        .iter()
                        .map(|i| i.pid.unwrap_or(0) as i32)
                        .collect::<Vec<_>>();
                    std::future::ready(if up { Ok(pids) } else { Err(format!("{s:#?}")) })
                },
            )
            .await;
            // A terminal one-off whose shell put a job in a group of its own: when this server
            // dies, its terminal hangs up and the shell goes, but the job lives on.
            let mut one = sup
                .run_one_off_in_terminal(
                    &app,
                    &release,
                    "set -m; sleep 1000 & echo bg=$!; exec sleep 1000",
                    wharf_run::TtySize::default(),
                    Sink::new(),
                )
                .await
                .unwrap();
            let seen = crate::oneoff::read_until(one.output.as_mut().unwrap(), "\n").await;
            let job: i32 = seen
                .split("bg=")
                .nth(1)
                .and_then(|s| s.split_whitespace().next())
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| panic!("no pid in {seen:?}"));
            pids.push(job);
            pids
        });
        // Gone as a crash goes: nothing waits (not even for the terminal's reader, which
        // blocks until the terminal closes).
        rt.shutdown_background();
        pids
    };
    assert!(
        old_pids.iter().all(|p| alive(*p)),
        "a dropped supervisor must not kill"
    );
    // The old server's cgroups, still holding its processes.
    let cgroup_dirs: Vec<std::path::PathBuf> =
        ["/sys/fs/cgroup/wharf", "/sys/fs/cgroup/pids/wharf"]
            .iter()
            .map(|root| std::path::Path::new(root).join(&app))
            .filter_map(|dir| std::fs::read_dir(dir).ok())
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_dir())
            .collect();

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async move {
        let sup = Supervisor::start(config, images, Default::default())
            .await
            .unwrap();
        for pid in &old_pids {
            assert!(!alive(*pid), "stale process {pid} still runs");
        }
        for dir in &cgroup_dirs {
            assert!(
                !dir.exists(),
                "the old server's cgroup {} is left",
                dir.display()
            );
        }
        sup.apply(desired, Sink::new());
        wharf_test_support::wait_until_async(Duration::from_secs(30), "two instances up", || {
            let s = sup.status(&app);
            let up = s.iter().filter(|i| i.state == InstanceState::Up).count();
            std::future::ready(if up == 2 {
                Ok(())
            } else {
                Err(format!("{s:#?}"))
            })
        })
        .await;
        sup.shutdown().await;
    });
}

struct KillOnDrop(std::path::PathBuf);
impl Drop for KillOnDrop {
    fn drop(&mut self) {
        crate::fixture::kill_recorded(&self.0);
    }
}
